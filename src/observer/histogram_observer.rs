//! The clipping range of least expected error, equations (35) and (36).

use super::histogram::Histogram;
use super::Observer;
use crate::error::QuantError;
use crate::params::{QuantParams, QuantRange, Scheme};

/// A histogram of the observed values, and the clipping range that
/// minimises the expected squared quantization error, equations (33)–(36):
/// the role of PyTorch's `HistogramObserver`.
///
/// Clipping trades two errors: values beyond the range are moved to its
/// ends, and every value inside is rounded to a step that shrinks as the
/// range does. (35) prices both from the histogram. PyTorch walks its
/// start and end bins inward greedily, a quantile step at a time, and stops
/// at the first increase; this observer evaluates (35) for every pair of bin
/// edges (prefix sums make each candidate O(1), and a bound prunes most
/// pairs), so gaps in the histogram cannot stop the search early.
///
/// Minimising (35) is minimising the noise of the SQNR (13), so the range
/// is pulled in only as far as that pays. For `k` outliers at `±A` beside
/// `n` values of a narrow bulk, clipping to `±R` costs `k·(A − R)²` and the
/// step `s = 2R/(qmax − qmin)` costs `n·s²/12`; the best end is
///
/// ```text
/// R = A / (1 + n/(k·3·(qmax − qmin)²))      (3·255² ≈ 195 000 for int8)
/// ```
///
/// so outliers rarer than about one in 195 000 values are pulled in more
/// than half way, and more frequent ones barely (6 in 10⁵ keep 92% of
/// `A`). Data without outliers gets a range close to min/max.
///
/// The search depends on the number of levels: [`Observer::params`] searches
/// for its `target`, and [`Observer::range`] for 256 levels (8 bits). The
/// search does not model the widening of [`Scheme::Affine`] to include 0 or
/// the symmetric range of [`Scheme::Symmetric`]; the scheme applies those to
/// the range found, as PyTorch does.
///
/// ```
/// use ndarray::Array1;
/// use qlinear::{dequantize, quantize, sqnr_db, HistogramObserver, MinMaxObserver, Observer,
///               QuantRange, Scheme};
///
/// // A million values spread evenly over [−1, 1], and two outliers at ±100.
/// let mut x: Vec<f32> = (0..1_000_000).map(|i| (i as f32 + 0.5) / 500_000.0 - 1.0).collect();
/// x.extend([-100.0, 100.0]);
/// let x = Array1::from(x);
///
/// let (mut hist, mut minmax) = (HistogramObserver::new(), MinMaxObserver::new());
/// hist.observe(&x);
/// minmax.observe(&x);
/// let (lo, hi) = hist.range()?;
/// // Pulled in to about 100/(1 + 10⁶/(2·195 000)) ≈ 28.
/// assert!(25.0 < hi && hi < 31.0 && lo == -hi);
///
/// let sqnr = |o: &dyn Observer| -> Result<f64, qlinear::QuantError> {
///     let p = o.params(Scheme::Affine, QuantRange::INT8)?;
///     sqnr_db(&x, &dequantize(&quantize(&x, p), p))
/// };
/// assert!(sqnr(&hist)? > sqnr(&minmax)? + 3.0);
/// # Ok::<(), qlinear::QuantError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramObserver {
    histogram: Histogram,
    skipped: u64,
}

impl HistogramObserver {
    /// PyTorch's default number of bins.
    pub const DEFAULT_BINS: usize = 2048;

    /// An observer with [`Self::DEFAULT_BINS`] bins.
    pub fn new() -> HistogramObserver {
        HistogramObserver {
            histogram: Histogram::new(Self::DEFAULT_BINS),
            skipped: 0,
        }
    }

    /// This observer with `bins` bins instead, and nothing observed: more
    /// bins resolve the range more finely, the search costs O(bins²) at worst.
    ///
    /// Errors if `bins` is 0 or above [`MAX_BINS`](super::MAX_BINS).
    pub fn with_bins(self, bins: usize) -> Result<HistogramObserver, QuantError> {
        super::check_bins(bins)?;
        Ok(HistogramObserver {
            histogram: Histogram::new(bins),
            skipped: 0,
        })
    }

    /// The histogram observed so far.
    pub fn histogram(&self) -> &Histogram {
        &self.histogram
    }

    /// The range of least expected error (36) for `target`'s number of
    /// levels. Constant data gives `min == max`.
    pub fn range_for(&self, target: QuantRange) -> Result<(f64, f64), QuantError> {
        let target = QuantRange::new(target.qmin, target.qmax)?;
        let (lo, hi) = self.histogram.bounds().ok_or(QuantError::NothingObserved {
            observer: "HistogramObserver",
        })?;
        if lo == hi {
            return Ok((lo, hi));
        }
        let steps = f64::from(target.qmax) - f64::from(target.qmin);
        let (a, b) = least_error_bins(self.histogram.counts(), steps);
        let bins = self.histogram.bins();
        let edge = |k: usize| match k {
            0 => lo,
            k if k == bins => hi,
            k => lo + (hi - lo) * (k as f64 / bins as f64),
        };
        Ok((edge(a), edge(b + 1)))
    }
}

impl Default for HistogramObserver {
    fn default() -> Self {
        HistogramObserver::new()
    }
}

impl Observer for HistogramObserver {
    fn observe_slice(&mut self, values: &[f32]) {
        self.skipped += self.histogram.add(values).skipped;
    }

    fn range(&self) -> Result<(f64, f64), QuantError> {
        self.range_for(QuantRange::INT8)
    }

    fn params(&self, scheme: Scheme, target: QuantRange) -> Result<QuantParams, QuantError> {
        let (min, max) = self.range_for(target)?;
        scheme.params(min, max, target)
    }

    fn count(&self) -> u64 {
        self.histogram.total()
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// The bins `(a, b)`, `a ≤ b`, minimising (35) for `steps = qmax − qmin`.
///
/// Everything is in units of the bin width `w` (which scales (35) by `w²`
/// and so leaves the minimiser alone), with bin centres at `u_i = i + ½`:
/// the cost of clipping below edge `a` is `Σ_{i<a} n_i·((u_i − a)² + 1/12)`,
/// a function of `a` alone, and likewise above edge `e = b + 1`; both come
/// from prefix sums of `n_i`, `n_i·u_i` and `n_i·u_i²`.
fn least_error_bins(counts: &[f64], steps: f64) -> (usize, usize) {
    let bins = counts.len();
    // Prefix sums: n[k] = Σ_{i<k} n_i, s1[k] = Σ_{i<k} n_i·u_i, s2[k] = Σ n_i·u_i².
    let mut n = vec![0.0; bins + 1];
    let mut s1 = vec![0.0; bins + 1];
    let mut s2 = vec![0.0; bins + 1];
    for (i, &c) in counts.iter().enumerate() {
        let u = i as f64 + 0.5;
        n[i + 1] = n[i] + c;
        s1[i + 1] = s1[i] + c * u;
        s2[i + 1] = s2[i] + c * u * u;
    }
    // Σ n_i·((u_i − e)² + 1/12) over bins k0 ≤ i < k1.
    let clip = |k0: usize, k1: usize, e: f64| {
        let (cn, c1, c2) = (n[k1] - n[k0], s1[k1] - s1[k0], s2[k1] - s2[k0]);
        (c2 - 2.0 * e * c1 + e * e * cn + cn / 12.0).max(0.0)
    };
    // below[a]: clipped below edge a; above[e]: clipped above edge e.
    let below: Vec<f64> = (0..=bins).map(|a| clip(0, a, a as f64)).collect();
    let above: Vec<f64> = (0..=bins).map(|e| clip(e, bins, e as f64)).collect();
    let rounding = 1.0 / (12.0 * steps * steps);

    let mut best = (f64::INFINITY, 0, bins - 1);
    // below[] grows with a and above[] as e falls, so once their sum alone
    // reaches the best error no smaller window can win.
    for a in 0..bins {
        if below[a] >= best.0 {
            break;
        }
        for e in (a + 1..=bins).rev() {
            let clipped = below[a] + above[e];
            if clipped >= best.0 {
                break;
            }
            let width = (e - a) as f64;
            let error = clipped + (n[e] - n[a]) * width * width * rounding;
            if error < best.0 {
                best = (error, a, e - 1);
            }
        }
    }
    (best.1, best.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (35) evaluated directly, for comparison with the prefix sums.
    fn direct_error(counts: &[f64], a: usize, b: usize, steps: f64) -> f64 {
        let (lo, hi) = (a as f64, (b + 1) as f64);
        let s = (hi - lo) / steps;
        counts
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let m = i as f64 + 0.5;
                if i < a {
                    c * ((m - lo).powi(2) + 1.0 / 12.0)
                } else if i > b {
                    c * ((m - hi).powi(2) + 1.0 / 12.0)
                } else {
                    c * s * s / 12.0
                }
            })
            .sum()
    }

    #[test]
    fn the_search_finds_the_minimum_of_25_over_all_windows() {
        let shapes: [&[f64]; 4] = [
            &[5.0, 0.0, 0.0, 40.0, 90.0, 40.0, 0.0, 0.0, 0.0, 1.0],
            &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            &[0.0, 3.0, 0.0, 0.0, 1000.0, 2.0, 0.0],
            &[7.0],
        ];
        for counts in shapes {
            for steps in [1.0, 3.0, 255.0] {
                let (a, b) = least_error_bins(counts, steps);
                let found = direct_error(counts, a, b, steps);
                for a2 in 0..counts.len() {
                    for b2 in a2..counts.len() {
                        let other = direct_error(counts, a2, b2, steps);
                        assert!(found <= other + 1e-9 * other.max(1.0), "{counts:?} {steps}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_lone_far_bin_is_clipped_only_when_rare_enough() {
        // 10⁶ values in bin 0 and one far away: the best range pulls the
        // outlier in (part way: clipping it to edge e costs (99.5 − e)², the
        // step for everyone else grows with e).
        let mut counts = vec![0.0; 100];
        counts[0] = 1e6;
        counts[99] = 1.0;
        let (a, b) = least_error_bins(&counts, 255.0);
        assert_eq!(a, 0);
        assert!(b < 60, "{b}");
        // A thousand of them are kept.
        counts[99] = 1000.0;
        assert_eq!(least_error_bins(&counts, 255.0), (0, 99));
    }
}
