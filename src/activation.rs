//! Fused activations as output clamps in the quantized domain, derived as
//! LiteRT derives them.
//!
//! A real bound `r` becomes an integer `q(r)` and the clamp is intersected
//! with the output type's range:
//!
//! ```text
//! (21) RELU          [max(qmin, z), qmax]
//!      RELU6         [max(qmin, z), min(qmax, q(6))]
//!      RELU_N1_TO_1  [max(qmin, q(−1)), min(qmax, q(1))]
//! ```
//!
//! LiteRT's own kernels (reference and optimized) use
//! `q(r) = z + round_half_away(f32(r)/f32(s))`; its XNNPACK delegate uses
//! `q(r) = round_half_even(f32(f32(r)/f32(s)) + f32(z))` — measured on
//! LiteRT 2.3.0, they differ when `r/s` is an exact tie. The clamp follows
//! the requantizer: XNNPACK's rule for [`Requantizer::Float32`], LiteRT's
//! kernels' rule for the others.

use ndarray::{ArrayBase, DataMut, Dimension};

use crate::elem::ElemKind;
use crate::error::QuantError;
use crate::params::QuantParams;
use crate::requant::Requantizer;

/// An activation fused into a layer's output, as an integer clamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum FusedActivation {
    /// No clamp beyond the output type's range.
    #[default]
    None,
    /// `max(0, y)`.
    Relu,
    /// `min(max(0, y), 6)`.
    Relu6,
    /// `min(max(−1, y), 1)`.
    ReluN1To1,
}

impl FusedActivation {
    /// The activation on real values, `y ← clamp(y, lo, hi)`: what the
    /// integer clamp (21) stands for, for layers whose outputs stay real.
    pub(crate) fn apply_real<S, D>(self, y: &mut ArrayBase<S, D>)
    where
        S: DataMut<Elem = f32>,
        D: Dimension,
    {
        let (lo, hi) = match self {
            FusedActivation::None => return,
            FusedActivation::Relu => (0.0, f32::INFINITY),
            FusedActivation::Relu6 => (0.0, 6.0),
            FusedActivation::ReluN1To1 => (-1.0, 1.0),
        };
        y.mapv_inplace(|v| v.clamp(lo, hi));
    }

    /// The clamp (21) for outputs with params `output` stored as `kind`,
    /// as the runtime `requantizer` is named after derives it.
    ///
    /// ```
    /// use qlinear::{ElemKind, FusedActivation, QuantParams, Requantizer};
    /// let out = QuantParams::new(0.05, -10).unwrap();
    /// let relu6 = FusedActivation::Relu6.clamp(out, ElemKind::Int8, Requantizer::TfliteReference);
    /// assert_eq!(relu6, (-10, 110));
    /// ```
    pub fn clamp(
        self,
        output: QuantParams,
        kind: ElemKind,
        requantizer: Requantizer,
    ) -> (i32, i32) {
        let range = kind.range();
        let q = |r: f32| match requantizer {
            Requantizer::Float32 => quantize_bound_xnnpack(r, output),
            _ => quantize_bound(r, output),
        };
        let (lo, hi) = match self {
            FusedActivation::None => return (range.qmin, range.qmax),
            FusedActivation::Relu => (q(0.0), i64::MAX),
            FusedActivation::Relu6 => (q(0.0), q(6.0)),
            FusedActivation::ReluN1To1 => (q(-1.0), q(1.0)),
        };
        let fit = |v: i64| v.clamp(i64::from(range.qmin), i64::from(range.qmax)) as i32;
        (fit(lo), fit(hi))
    }
}

/// The clamp for a real output range `[lo, hi]` (e.g. a fused ReLU-n), by
/// the same rule as (21). Errors for a non-finite or reversed range, or
/// invalid `output` params.
///
/// ```
/// use qlinear::{activation::clamp_for_real_range, ElemKind, QuantParams};
/// let out = QuantParams::new(0.1, 0).unwrap();
/// assert_eq!(clamp_for_real_range(-1.0, 2.5, out, ElemKind::Int8).unwrap(), (-10, 25));
/// assert!(clamp_for_real_range(1.0, -1.0, out, ElemKind::Int8).is_err());
/// ```
pub fn clamp_for_real_range(
    lo: f32,
    hi: f32,
    output: QuantParams,
    kind: ElemKind,
) -> Result<(i32, i32), QuantError> {
    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
        return Err(QuantError::InvalidRange {
            alpha: f64::from(lo),
            beta: f64::from(hi),
        });
    }
    output.validate()?;
    let range = kind.range();
    let fit = |v: i64| v.clamp(i64::from(range.qmin), i64::from(range.qmax)) as i32;
    Ok((
        fit(quantize_bound(lo, output)),
        fit(quantize_bound(hi, output)),
    ))
}

/// `z + round_half_away(f32(r) / f32(s))`, saturated to `i64`.
fn quantize_bound(r: f32, output: QuantParams) -> i64 {
    let q = (r / output.scale as f32).round();
    i64::from(output.zero_point) + q.clamp(-1e15, 1e15) as i64
}

/// XNNPACK's `round_half_even(f32(f32(r) / f32(s)) + f32(z))`.
fn quantize_bound_xnnpack(r: f32, output: QuantParams) -> i64 {
    let q = (r / output.scale as f32 + output.zero_point as f32).round_ties_even();
    q.clamp(-1e15, 1e15) as i64
}
