//! Weight parameters: one `(s, z)` for the whole tensor or one per output
//! column.

use crate::error::QuantError;
use crate::params::QuantParams;

/// Quantization parameters of a weight matrix `W` (p×n).
///
/// Per-channel parameters hold one entry per output column `j` of `W`
/// (TFLite's per-channel FULLY_CONNECTED, PyTorch's per-channel linear);
/// zero points may be non-zero (asymmetric).
///
/// ```
/// use qlinear::{QuantParams, WeightParams};
/// let p = QuantParams::new(0.1, 0).unwrap();
/// let w: WeightParams = p.into();
/// assert_eq!(w, WeightParams::PerTensor(p));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum WeightParams {
    /// One scale and zero point for all of `W`.
    PerTensor(QuantParams),
    /// One scale and zero point per output column of `W`.
    PerChannel(Vec<QuantParams>),
}

impl From<QuantParams> for WeightParams {
    fn from(p: QuantParams) -> WeightParams {
        WeightParams::PerTensor(p)
    }
}

impl From<Vec<QuantParams>> for WeightParams {
    fn from(p: Vec<QuantParams>) -> WeightParams {
        WeightParams::PerChannel(p)
    }
}

impl WeightParams {
    /// Parameters of output column `j` (`None` past the last channel).
    pub fn channel(&self, j: usize) -> Option<QuantParams> {
        match self {
            WeightParams::PerTensor(p) => Some(*p),
            WeightParams::PerChannel(v) => v.get(j).copied(),
        }
    }

    /// Whether there is one entry per column.
    pub fn is_per_channel(&self) -> bool {
        matches!(self, WeightParams::PerChannel(_))
    }

    /// Validates every entry and the channel count against `n` columns, and
    /// returns one `(scale, zero point)` per column.
    pub(crate) fn expand(&self, n: usize) -> Result<(Vec<f64>, Vec<i32>), QuantError> {
        match self {
            WeightParams::PerTensor(p) => {
                p.validate()?;
                Ok((vec![p.scale; n], vec![p.zero_point; n]))
            }
            WeightParams::PerChannel(v) => {
                if v.len() != n {
                    return Err(QuantError::LengthMismatch {
                        what: "per-channel weight params",
                        expected: n,
                        found: v.len(),
                    });
                }
                for p in v {
                    p.validate()?;
                }
                Ok((
                    v.iter().map(|p| p.scale).collect(),
                    v.iter().map(|p| p.zero_point).collect(),
                ))
            }
        }
    }
}
