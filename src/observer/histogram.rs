//! The histogram behind the histogram observers, equations (33) and (34).

use super::{scan, BatchStats};

/// A histogram of the finite values observed, with `B` equal bins over the
/// exact observed range `[lo, hi]`, equations (33) and (34).
///
/// The range grows with the data; the counts of earlier batches are then
/// re-binned by (34), so they may be fractional. Their sum stays the number
/// of values observed, up to rounding. Constant data (`lo == hi`) is held
/// in bin 0.
///
/// ```
/// use ndarray::array;
/// use qlinear::{HistogramObserver, Observer};
///
/// let mut o = HistogramObserver::new().with_bins(4).unwrap();
/// o.observe(&array![0.0f32, 1.0, 1.5, 4.0]);
/// let h = o.histogram();
/// assert_eq!(h.bounds(), Some((0.0, 4.0)));
/// assert_eq!(h.counts(), &[1.0, 2.0, 0.0, 1.0]); // the maximum falls in the last bin
/// // A batch reaching −4 doubles the range: every new bin covers two old ones.
/// o.observe(&array![-4.0f32]);
/// assert_eq!(o.histogram().counts(), &[1.0, 0.0, 3.0, 1.0]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    counts: Vec<f64>,
    bounds: Option<(f64, f64)>,
    total: u64,
}

impl Histogram {
    /// An empty histogram with `bins` bins (at least 1).
    pub(crate) fn new(bins: usize) -> Histogram {
        debug_assert!(bins > 0);
        Histogram {
            counts: vec![0.0; bins],
            bounds: None,
            total: 0,
        }
    }

    /// The number of bins `B`.
    pub fn bins(&self) -> usize {
        self.counts.len()
    }

    /// The count of each bin, bin 0 starting at `lo`.
    pub fn counts(&self) -> &[f64] {
        &self.counts
    }

    /// The observed range `[lo, hi]`, exact; `None` before any finite value.
    pub fn bounds(&self) -> Option<(f64, f64)> {
        self.bounds
    }

    /// The width `w` of a bin, equation (33); 0 before any finite value or
    /// for constant data.
    pub fn bin_width(&self) -> f64 {
        self.bounds
            .map_or(0.0, |(lo, hi)| (hi - lo) / self.bins() as f64)
    }

    /// Number of finite values observed.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Adds the finite values of one batch, growing the range first if the
    /// batch reaches beyond it. Returns the batch's statistics.
    pub(crate) fn add(&mut self, values: &[f32]) -> BatchStats {
        let stats = scan(values);
        let Some((lo, hi)) = stats.bounds() else {
            return stats;
        };
        let (lo, hi) = match self.bounds {
            None => (lo, hi),
            Some((old_lo, old_hi)) => {
                let grown = (old_lo.min(lo), old_hi.max(hi));
                if grown != (old_lo, old_hi) {
                    self.rebin(grown);
                }
                grown
            }
        };
        self.bounds = Some((lo, hi));
        let bins = self.bins();
        let scale = bins as f64 / (hi - lo); // +∞ for constant data: bin 0
        for &v in values {
            if v.is_finite() {
                let pos = (f64::from(v) - lo) * scale; // ≥ 0; NaN only for 0·∞
                let bin = if pos.is_nan() { 0 } else { pos as usize };
                self.counts[bin.min(bins - 1)] += 1.0;
            }
        }
        self.total += stats.finite;
        stats
    }

    /// Moves the counts onto `new` bounds containing the current ones,
    /// equation (34).
    fn rebin(&mut self, new: (f64, f64)) {
        let Some((lo, hi)) = self.bounds else {
            return;
        };
        let bins = self.bins();
        let b = bins as f64;
        let old = std::mem::replace(&mut self.counts, vec![0.0; bins]);
        let (new_lo, new_hi) = new;
        let new_width = (new_hi - new_lo) / b;
        // Position of a real value in units of new bins.
        let pos = |x: f64| ((x - new_lo) / new_width).clamp(0.0, b);
        let last = bins - 1;
        for (i, &n) in old.iter().enumerate() {
            if n == 0.0 {
                continue;
            }
            let from = pos(lo + (hi - lo) * (i as f64 / b));
            let to = pos(lo + (hi - lo) * ((i + 1) as f64 / b));
            let first = (from as usize).min(last);
            // The bin holding the end of the old bin (exclusive).
            let end = ((to.ceil() as usize).max(1) - 1).clamp(first, last);
            if first == end || to <= from {
                self.counts[first] += n;
                continue;
            }
            let mut given = 0.0;
            for j in first..end {
                let overlap = (to.min((j + 1) as f64) - from.max(j as f64)).max(0.0);
                let part = n * overlap / (to - from);
                self.counts[j] += part;
                given += part;
            }
            self.counts[end] += (n - given).max(0.0);
        }
    }

    /// The value below which a fraction `q` of the mass lies, equation (37);
    /// `None` before any finite value.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let (lo, hi) = self.bounds?;
        let total: f64 = self.counts.iter().sum();
        if q <= 0.0 || lo == hi || total <= 0.0 {
            return Some(lo);
        }
        if q >= 1.0 {
            return Some(hi);
        }
        let target = q * total;
        let width = self.bin_width();
        let mut below = 0.0;
        for (k, &n) in self.counts.iter().enumerate() {
            if n > 0.0 && below + n >= target {
                let within = ((target - below) / n).clamp(0.0, 1.0);
                let x = lo + (k as f64 + within) * width;
                return Some(x.clamp(lo, hi));
            }
            below += n;
        }
        Some(hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(bins: usize, batches: &[&[f32]]) -> Histogram {
        let mut h = Histogram::new(bins);
        for b in batches {
            h.add(b);
        }
        h
    }

    #[test]
    fn bins_by_23_with_the_maximum_in_the_last_bin() {
        let h = filled(4, &[&[0.0, 0.99, 1.0, 3.99, 4.0]]);
        assert_eq!(h.counts(), &[2.0, 1.0, 0.0, 2.0]);
        assert_eq!(h.bin_width(), 1.0);
    }

    #[test]
    fn rebinning_conserves_the_count() {
        let h = filled(
            7,
            &[
                &[0.1, 0.2, 0.3],
                &[-1.0, 5.0],
                &[100.0],
                &[-1e30, 7.0],
                &[3e38],
            ],
        );
        let sum: f64 = h.counts().iter().sum();
        assert!((sum - 9.0).abs() < 1e-9, "{sum}");
        assert_eq!(h.total(), 9);
        assert_eq!(h.bounds(), Some((-1e30f32 as f64, 3e38f32 as f64)));
    }

    #[test]
    fn rebinning_spreads_a_bin_over_the_bins_it_straddles() {
        // [0, 3] in 3 bins of width 1, then −1 arrives: [−1, 3], width 4/3.
        let mut h = filled(3, &[&[0.0, 1.5, 2.5, 3.0]]);
        assert_eq!(h.counts(), &[1.0, 1.0, 2.0]);
        h.add(&[-1.0]);
        // Old [0, 1) sits at new positions [0.75, 1.5): ⅓ to bin 0, ⅔ to bin 1.
        // Old [1, 2) at [1.5, 2.25): ⅔ to bin 1, ⅓ to bin 2. Old [2, 3) at
        // [2.25, 3): bin 2. And −1 in bin 0.
        let want = [1.0 / 3.0 + 1.0, 2.0 / 3.0 + 2.0 / 3.0, 1.0 / 3.0 + 2.0];
        for (c, w) in h.counts().iter().zip(want) {
            assert!((c - w).abs() < 1e-12, "{:?}", h.counts());
        }
    }

    #[test]
    fn constant_data_sits_in_bin_zero_and_moves_when_the_range_grows() {
        let mut h = filled(4, &[&[2.0, 2.0, 2.0]]);
        assert_eq!(h.counts(), &[3.0, 0.0, 0.0, 0.0]);
        assert_eq!(h.bin_width(), 0.0);
        assert_eq!(h.quantile(0.5), Some(2.0));
        h.add(&[-2.0]);
        assert_eq!(h.counts(), &[1.0, 0.0, 0.0, 3.0]); // 2 is now the maximum
    }

    #[test]
    fn quantiles_interpolate_within_a_bin() {
        let h = filled(2, &[&[0.0, 0.5, 1.5, 2.0]]);
        assert_eq!(h.counts(), &[2.0, 2.0]);
        assert_eq!(h.quantile(0.0), Some(0.0));
        assert_eq!(h.quantile(0.25), Some(0.5));
        assert_eq!(h.quantile(0.75), Some(1.5));
        assert_eq!(h.quantile(1.0), Some(2.0));
        assert_eq!(Histogram::new(3).quantile(0.5), None);
    }
}
