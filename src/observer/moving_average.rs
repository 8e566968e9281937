//! Batch min and max averaged over batches, equation (31).

use super::{check_averaging_constant, scan, Observer};
use crate::error::QuantError;

/// Exponential moving average of each batch's min and max, equation (31):
/// PyTorch's `MovingAverageMinMaxObserver`.
///
/// The first batch with a finite value sets the range; every later one
/// moves each bound a fraction `c` of the way to that batch's extreme. A
/// rare extreme batch therefore moves the range only a little, and the range
/// tracks data whose spread drifts during calibration.
///
/// ```
/// use ndarray::array;
/// use qlinear::{MovingAverageMinMaxObserver, Observer};
///
/// let mut o = MovingAverageMinMaxObserver::with_averaging_constant(0.5).unwrap();
/// o.observe(&array![-2.0f32, 2.0]); // first batch: [-2, 2]
/// o.observe(&array![-1.0f32, 4.0]); // min −2 + ½(−1 + 2), max 2 + ½(4 − 2)
/// assert_eq!(o.range()?, (-1.5, 3.0));
/// # Ok::<(), qlinear::QuantError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MovingAverageMinMaxObserver {
    averaging_constant: f64,
    bounds: Option<(f64, f64)>,
    count: u64,
    skipped: u64,
}

impl MovingAverageMinMaxObserver {
    /// PyTorch's default averaging constant `c` in (31).
    pub const DEFAULT_AVERAGING_CONSTANT: f64 = 0.01;

    /// An observer with the default constant `c = 0.01`.
    pub fn new() -> MovingAverageMinMaxObserver {
        MovingAverageMinMaxObserver {
            averaging_constant: Self::DEFAULT_AVERAGING_CONSTANT,
            bounds: None,
            count: 0,
            skipped: 0,
        }
    }

    /// An observer with averaging constant `c`: 1 keeps only the last batch,
    /// 0 only the first.
    ///
    /// Errors if `c` is not in `[0, 1]` (NaN included).
    pub fn with_averaging_constant(c: f64) -> Result<MovingAverageMinMaxObserver, QuantError> {
        check_averaging_constant(c)?;
        Ok(MovingAverageMinMaxObserver {
            averaging_constant: c,
            ..MovingAverageMinMaxObserver::new()
        })
    }

    /// The averaging constant `c` of (31).
    pub fn averaging_constant(&self) -> f64 {
        self.averaging_constant
    }
}

impl Default for MovingAverageMinMaxObserver {
    fn default() -> Self {
        MovingAverageMinMaxObserver::new()
    }
}

impl Observer for MovingAverageMinMaxObserver {
    fn observe_slice(&mut self, values: &[f32]) {
        let stats = scan(values);
        self.skipped += stats.skipped;
        let Some((lo, hi)) = stats.bounds() else {
            return;
        };
        self.count += stats.finite;
        let c = self.averaging_constant;
        self.bounds = Some(match self.bounds {
            None => (lo, hi),
            Some(old) => super::moving_average(old, (lo, hi), c),
        });
    }

    fn range(&self) -> Result<(f64, f64), QuantError> {
        self.bounds.ok_or(QuantError::NothingObserved {
            observer: "MovingAverageMinMaxObserver",
        })
    }

    fn count(&self) -> u64 {
        self.count
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}
