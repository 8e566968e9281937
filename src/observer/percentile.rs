//! Clipping to percentiles of the histogram, equation (37).

use super::histogram::Histogram;
use super::Observer;
use crate::error::QuantError;

/// A histogram of the observed values, clipped to a lower and an upper
/// percentile, equation (37).
///
/// Simpler and cheaper than the search of
/// [`HistogramObserver`](super::HistogramObserver), and blind to the cost
/// of what it clips: it drops the same fraction of values whatever their
/// distance, so it suits data whose tails are known to be noise (a common
/// choice is 0.01 / 99.99, TensorRT's and NVIDIA's percentile
/// calibration). `0` and `100` give the exact min and max; other
/// percentiles are resolved to within a bin, `(hi − lo)/B`, which a far
/// outlier widens.
///
/// ```
/// use ndarray::Array1;
/// use qlinear::{Observer, PercentileObserver};
///
/// // 0, 1, …, 999 and one outlier.
/// let mut x: Vec<f32> = (0..1000).map(|i| i as f32).collect();
/// x.push(1e4);
/// let mut o = PercentileObserver::new(1.0, 99.0).unwrap();
/// o.observe(&Array1::from(x));
/// let (lo, hi) = o.range()?;
/// assert!(lo < 20.0 && 980.0 < hi && hi < 1000.0); // the outlier is out
/// assert_eq!(PercentileObserver::new(0.0, 100.0).unwrap().percentiles(), (0.0, 100.0));
/// # Ok::<(), qlinear::QuantError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PercentileObserver {
    histogram: Histogram,
    lower: f64,
    upper: f64,
    skipped: u64,
}

impl PercentileObserver {
    /// An observer clipping to the `lower` and `upper` percentiles (each in
    /// `[0, 100]`), with 2048 bins.
    ///
    /// Errors unless `0 ≤ lower < upper ≤ 100` (NaN fails).
    pub fn new(lower: f64, upper: f64) -> Result<PercentileObserver, QuantError> {
        if !(0.0 <= lower && lower < upper && upper <= 100.0) {
            return Err(QuantError::InvalidConfig {
                what: "percentiles must satisfy 0 <= lower < upper <= 100 (value: the lower one)",
                value: lower,
            });
        }
        Ok(PercentileObserver {
            histogram: Histogram::new(super::HistogramObserver::DEFAULT_BINS),
            lower,
            upper,
            skipped: 0,
        })
    }

    /// This observer with `bins` bins instead, and nothing observed. The
    /// percentiles are interpolated within a bin, so they are exact for
    /// values uniform within each bin.
    ///
    /// Errors if `bins` is 0 or above [`MAX_BINS`](super::MAX_BINS).
    pub fn with_bins(self, bins: usize) -> Result<PercentileObserver, QuantError> {
        super::check_bins(bins)?;
        Ok(PercentileObserver {
            histogram: Histogram::new(bins),
            skipped: 0,
            ..self
        })
    }

    /// The `(lower, upper)` percentiles.
    pub fn percentiles(&self) -> (f64, f64) {
        (self.lower, self.upper)
    }

    /// The histogram observed so far.
    pub fn histogram(&self) -> &Histogram {
        &self.histogram
    }
}

impl Observer for PercentileObserver {
    fn observe_slice(&mut self, values: &[f32]) {
        self.skipped += self.histogram.add(values).skipped;
    }

    fn range(&self) -> Result<(f64, f64), QuantError> {
        let nothing = QuantError::NothingObserved {
            observer: "PercentileObserver",
        };
        let lo = self.histogram.quantile(self.lower / 100.0);
        let hi = self.histogram.quantile(self.upper / 100.0);
        match (lo, hi) {
            (Some(lo), Some(hi)) => Ok((lo, hi.max(lo))),
            _ => Err(nothing),
        }
    }

    fn count(&self) -> u64 {
        self.histogram.total()
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}
