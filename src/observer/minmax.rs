//! The running minimum and maximum, equation (30).

use super::{scan, Observer};
use crate::error::QuantError;

/// Running min and max of everything observed, equation (30): the range
/// that clips nothing, PyTorch's `MinMaxObserver`.
///
/// Best when the calibration data has no outliers (weights, bounded
/// activations); one stray value stretches the range and coarsens the step
/// for everything else, which [`HistogramObserver`](super::HistogramObserver)
/// avoids.
///
/// ```
/// use ndarray::array;
/// use qlinear::{MinMaxObserver, Observer, QuantRange, Scheme};
///
/// let mut o = MinMaxObserver::new();
/// o.observe(&array![0.5f32, -1.0, f32::NAN]);
/// o.observe(&array![[3.0f32, 0.0]]);
/// assert_eq!(o.range()?, (-1.0, 3.0));
/// assert_eq!(o.skipped(), 1);
/// let p = o.params(Scheme::Affine, QuantRange::INT8)?;
/// assert_eq!(p.scale, 4.0 / 255.0);
/// # Ok::<(), qlinear::QuantError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MinMaxObserver {
    bounds: Option<(f64, f64)>,
    count: u64,
    skipped: u64,
}

impl MinMaxObserver {
    /// An observer that has seen nothing.
    pub fn new() -> MinMaxObserver {
        MinMaxObserver::default()
    }
}

impl Observer for MinMaxObserver {
    fn observe_slice(&mut self, values: &[f32]) {
        let stats = scan(values);
        self.skipped += stats.skipped;
        let Some((lo, hi)) = stats.bounds() else {
            return;
        };
        self.count += stats.finite;
        self.bounds = Some(match self.bounds {
            None => (lo, hi),
            Some((min, max)) => (min.min(lo), max.max(hi)),
        });
    }

    fn range(&self) -> Result<(f64, f64), QuantError> {
        self.bounds.ok_or(QuantError::NothingObserved {
            observer: "MinMaxObserver",
        })
    }

    fn count(&self) -> u64 {
        self.count
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}
