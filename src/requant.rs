//! The output stage: exact accumulator in, output integer out.
//!
//! Each [`Requantizer`] is one exact recipe, bit for bit the arithmetic of
//! the system it is named after (measured on the real runtimes; see the
//! README's "Guarantees"). `acc` is the exact accumulator of (11) including
//! an int32 bias; `z` the output zero point; `[lo, hi]` the output clamp;
//! `f32(·)`/`f64(·)` the precision of each step, each operation rounded in
//! the order written.
//!
//! **`Float64`** — the notebook (numpy):
//!
//! ```text
//! (8)  o[j] = f64(z) + (s_b/s_Y)·f64(bq[j] − z_b)      (int8 bias; f64(z) without one)
//! (9)  M[j] = (s_X·s_W[j]) / s_Y
//! (10) out  = clamp(round_half_even(o[j] + M[j]·f64(acc)), lo, hi)
//! ```
//!
//! **`TfliteReference`** — LiteRT's reference kernels, scales taken as
//! `f32` as TFLite stores them:
//!
//! ```text
//! (18) M[j] = f64(s_X)·f64(s_W[j]) / f64(s_Y)
//!      out  = clamp(round_half_away(f64(acc)·M[j]) + z, lo, hi)
//! ```
//!
//! **`FixedPoint(rounding)`** — integer only once the layer is built.
//! Per-tensor `M = f64(f32(s_X·s_W)) / f64(s_Y)`, per-channel
//! `M[j] = f64(s_X)·f64(s_W[j]) / f64(s_Y)`; `(q, e) =`
//! [`quantize_multiplier`]`(M)`; then [`multiply_by_quantized_multiplier`]:
//!
//! ```text
//! (19) HalfUp: out = clamp(shr_half_up(SRDHM(acc·2^max(e,0), q), max(−e,0)) + z)   LiteRT optimized
//!      Double: out = clamp(RDivByPOT(SRDHM(acc·2^max(e,0), q), max(−e,0)) + z)     gemmlowp, TFLite Micro
//!      Single: out = clamp(((acc·q + 2^(30−e)) >> (31−e)) + z)                     TFLITE_SINGLE_ROUNDING
//! ```
//!
//! **`Float32`** — XNNPACK (LiteRT's default delegate) and ONNX Runtime's
//! `QLinearMatMul`:
//!
//! ```text
//! (20) m[j] = f32(f32(s_X·s_W[j]) / s_Y)
//!      out  = clamp(round_half_even(f32(acc)·m[j]) + z, lo, hi)
//! ```
//!
//! The notebook adds the zero point before rounding, the others after: on
//! an exact tie with an odd `z` the results differ by one.

use crate::error::QuantError;
use crate::params::QuantParams;

/// Which arithmetic turns the exact accumulator into the output integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Requantizer {
    /// The notebook's `f64` simulation, (8)–(10): zero point added before
    /// rounding, ties to even.
    #[default]
    Float64,
    /// LiteRT's reference kernels (`BUILTIN_REF`), (18).
    TfliteReference,
    /// Fixed-point multiplier and shift, (19); integer only.
    FixedPoint(Rounding),
    /// XNNPACK and ONNX Runtime `QLinearMatMul`, (20).
    Float32,
}

/// The rounding of a fixed-point requantizer, (19).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rounding {
    /// LiteRT's optimized kernels: the final shift rounds ties up (toward
    /// +∞).
    #[default]
    HalfUp,
    /// gemmlowp / TFLite Micro `MultiplyByQuantizedMultiplier`: the final
    /// shift rounds ties away from zero, after a first rounding in `SRDHM`.
    Double,
    /// `TFLITE_SINGLE_ROUNDING` (ruy): one rounding of the 64-bit product.
    Single,
}

/// A multiplier `M ≈ multiplier · 2^(shift − 31)` with `multiplier` in
/// `[2^30, 2^31)` (or 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantizedMultiplier {
    /// The Q31 mantissa.
    pub multiplier: i32,
    /// The power of two: positive shifts left, negative right.
    pub shift: i32,
}

/// TFLite's `QuantizeMultiplier`: `(f, e) = frexp(M)` with `f ∈ [0.5, 1)`,
/// `q = round_half_away(f·2^31)`; if `q = 2^31` then `q = 2^30, e += 1`;
/// if `e < −31` then `(q, e) = (0, 0)`.
///
/// Errors for a negative, NaN or infinite `M`.
///
/// ```
/// use qlinear::requant::{quantize_multiplier, QuantizedMultiplier};
/// assert_eq!(
///     quantize_multiplier(0.5).unwrap(),
///     QuantizedMultiplier { multiplier: 1 << 30, shift: 0 }
/// );
/// assert_eq!(quantize_multiplier(0.0).unwrap().multiplier, 0);
/// ```
pub fn quantize_multiplier(m: f64) -> Result<QuantizedMultiplier, QuantError> {
    if !(m.is_finite() && m >= 0.0) {
        return Err(QuantError::InvalidMultiplier {
            what: "fixed-point multiplier",
            value: m,
        });
    }
    if m == 0.0 {
        return Ok(QuantizedMultiplier {
            multiplier: 0,
            shift: 0,
        });
    }
    let (f, mut e) = frexp(m);
    let mut q = (f * 2f64.powi(31)).round() as i64;
    if q == 1i64 << 31 {
        q = 1 << 30;
        e += 1;
    }
    if e < -31 {
        return Ok(QuantizedMultiplier {
            multiplier: 0,
            shift: 0,
        });
    }
    Ok(QuantizedMultiplier {
        multiplier: q as i32,
        shift: e,
    })
}

/// `(f, e)` with `m = f·2^e`, `f ∈ [0.5, 1)`, for finite `m > 0`.
fn frexp(m: f64) -> (f64, i32) {
    let bits = m.to_bits();
    let exp_field = ((bits >> 52) & 0x7ff) as i32;
    if exp_field == 0 {
        // Subnormal: scale into the normal range first.
        let (f, e) = frexp(m * 2f64.powi(64));
        return (f, e - 64);
    }
    let f = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (f, exp_field - 1022)
}

/// `acc · M` in fixed point, (19), saturated to `i32`.
///
/// ```
/// use qlinear::requant::{multiply_by_quantized_multiplier, quantize_multiplier, Rounding};
/// let m = quantize_multiplier(0.3).unwrap();
/// // gemmlowp's double rounding: −1001·0.3 = −300.3, yet −301.
/// assert_eq!(multiply_by_quantized_multiplier(-1001, m, Rounding::Double), -301);
/// assert_eq!(multiply_by_quantized_multiplier(-1001, m, Rounding::Single), -300);
/// ```
pub fn multiply_by_quantized_multiplier(x: i32, m: QuantizedMultiplier, rounding: Rounding) -> i32 {
    let QuantizedMultiplier {
        multiplier: q,
        shift,
    } = m;
    match rounding {
        Rounding::HalfUp | Rounding::Double => {
            let left = shift.max(0);
            let right = (-shift).max(0);
            let high = srdhm(saturating_shl(x, left), q);
            if rounding == Rounding::HalfUp {
                shr_half_up(high, right)
            } else {
                rounding_divide_by_pot(high, right)
            }
        }
        Rounding::Single => {
            let (q, shift) = if shift > 30 {
                (i32::MAX, 30)
            } else {
                (q, shift)
            };
            let total = 31 - shift;
            let v = (i64::from(x) * i64::from(q) + (1i64 << (total - 1))) >> total;
            saturate(v)
        }
    }
}

/// Saturating rounding doubling high multiply: `(a·b + nudge) / 2^31`,
/// truncating, with `nudge = 2^30` or `1 − 2^30` by the sign of `a·b`.
fn srdhm(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = i64::from(a) * i64::from(b);
    let nudge = if ab >= 0 {
        1i64 << 30
    } else {
        1 - (1i64 << 30)
    };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// `(v + 2^(r−1)) >> r`: ties toward +∞.
fn shr_half_up(v: i32, r: i32) -> i32 {
    if r == 0 {
        return v;
    }
    ((i64::from(v) + (1i64 << (r - 1))) >> r) as i32
}

/// gemmlowp's `RoundingDivideByPOT`: ties away from zero.
fn rounding_divide_by_pot(v: i32, r: i32) -> i32 {
    let v = i64::from(v);
    let mask = (1i64 << r) - 1;
    let remainder = v & mask;
    let threshold = (mask >> 1) + i64::from(v < 0);
    ((v >> r) + i64::from(remainder > threshold)) as i32
}

fn saturating_shl(x: i32, left: i32) -> i32 {
    if x == 0 || left == 0 {
        return x;
    }
    if left >= 32 {
        return if x > 0 { i32::MAX } else { i32::MIN };
    }
    saturate(i64::from(x) << left)
}

fn saturate(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Maps an exact accumulator of output column `j` to the clamped output
/// integer. One implementation per requantizer, so the per-element loop
/// holds no branch on the mode.
pub(crate) trait ColumnRequant: Sync {
    /// The output integer for accumulator `acc` of column `j`.
    fn apply(&self, acc: i64, j: usize) -> i32;
}

/// (8)–(10) for one output column, prepared at construction.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Float64Column {
    offset: f64,
    multiplier: f64,
}

/// Prepared (8)–(10).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Float64Stage {
    columns: Vec<Float64Column>,
    lo: f64,
    hi: f64,
}

impl ColumnRequant for Float64Stage {
    #[inline]
    fn apply(&self, acc: i64, j: usize) -> i32 {
        let c = self.columns[j];
        // `o` and `M` are finite, so the sum is a number or an infinity;
        // the clamp brings either into range and the cast is exact.
        (c.offset + c.multiplier * acc as f64)
            .round_ties_even()
            .clamp(self.lo, self.hi) as i32
    }
}

/// Prepared (18).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TfliteReferenceStage {
    multipliers: Vec<f64>,
    zero_point: f64,
    lo: f64,
    hi: f64,
}

impl ColumnRequant for TfliteReferenceStage {
    #[inline]
    fn apply(&self, acc: i64, j: usize) -> i32 {
        let scaled = (acc as f64 * self.multipliers[j]).round();
        (scaled + self.zero_point).clamp(self.lo, self.hi) as i32
    }
}

/// Prepared (19): integer arithmetic only.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FixedPointStage {
    rounding: Rounding,
    multipliers: Vec<QuantizedMultiplier>,
    zero_point: i32,
    lo: i32,
    hi: i32,
}

impl ColumnRequant for FixedPointStage {
    #[inline]
    fn apply(&self, acc: i64, j: usize) -> i32 {
        // The layer refuses weights whose accumulator could leave i32.
        let acc = saturate(acc);
        let scaled = multiply_by_quantized_multiplier(acc, self.multipliers[j], self.rounding);
        (i64::from(scaled) + i64::from(self.zero_point))
            .clamp(i64::from(self.lo), i64::from(self.hi)) as i32
    }
}

/// Prepared (20).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Float32Stage {
    multipliers: Vec<f32>,
    zero_point: i64,
    lo: i64,
    hi: i64,
}

impl ColumnRequant for Float32Stage {
    #[inline]
    fn apply(&self, acc: i64, j: usize) -> i32 {
        let scaled = (acc as f32 * self.multipliers[j]).round_ties_even();
        // Bounded first so that adding the zero point cannot overflow.
        let scaled = scaled.clamp(-1e15, 1e15) as i64;
        (scaled + self.zero_point).clamp(self.lo, self.hi) as i32
    }
}

/// A layer's prepared output stage.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OutputStage {
    Float64(Float64Stage),
    TfliteReference(TfliteReferenceStage),
    FixedPoint(FixedPointStage),
    Float32(Float32Stage),
}

/// Calls `$body` with `$s` bound to the stage inside `$stage`, so that the
/// body is compiled once per requantizer.
macro_rules! with_stage {
    ($stage:expr, $s:ident => $body:expr) => {
        match $stage {
            $crate::requant::OutputStage::Float64($s) => $body,
            $crate::requant::OutputStage::TfliteReference($s) => $body,
            $crate::requant::OutputStage::FixedPoint($s) => $body,
            $crate::requant::OutputStage::Float32($s) => $body,
        }
    };
}
pub(crate) use with_stage;

/// The int8 bias of the notebook, as it enters (8).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Int8BiasTerm<'a> {
    pub(crate) values: &'a [i8],
    pub(crate) params: QuantParams,
}

/// What the output stage is built from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StageSpec<'a> {
    pub(crate) requantizer: Requantizer,
    pub(crate) input: QuantParams,
    /// One scale per output column.
    pub(crate) weight_scales: &'a [f64],
    /// Whether the weights were given per channel (TFLite derives the
    /// fixed-point multiplier differently for per-tensor weights).
    pub(crate) per_channel: bool,
    pub(crate) output: QuantParams,
    pub(crate) int8_bias: Option<Int8BiasTerm<'a>>,
    /// Output clamp `[lo, hi]`.
    pub(crate) clamp: (i32, i32),
    /// Largest `|acc|` any input can produce.
    pub(crate) acc_bound: u128,
}

impl OutputStage {
    /// Prepares the stage: every per-column constant, once.
    pub(crate) fn new(spec: StageSpec<'_>) -> Result<OutputStage, QuantError> {
        let (lo, hi) = spec.clamp;
        let z = spec.output.zero_point;
        if spec.int8_bias.is_some() && spec.requantizer != Requantizer::Float64 {
            return Err(QuantError::IncompatibleOptions {
                reason: "an int8 bias with its own scale enters only the notebook's Float64 \
                         requantizer; give the bias as int32 (Bias::Int32 or F32Bias::Int32) \
                         for the TFLite and ONNX Runtime requantizers",
            });
        }
        let f32_scale = |s: f64| s as f32;
        let (s_x, s_y) = (spec.input.scale, spec.output.scale);
        Ok(match spec.requantizer {
            Requantizer::Float64 => {
                let z_y = f64::from(z);
                let bias_ratio = match spec.int8_bias {
                    Some(b) => finite("s_b/s_Y", b.params.scale / s_y)?,
                    None => 0.0,
                };
                let columns = spec
                    .weight_scales
                    .iter()
                    .enumerate()
                    .map(|(j, &s_w)| {
                        let multiplier = finite("s_X*s_W/s_Y", s_x * s_w / s_y)?;
                        let offset = match spec.int8_bias {
                            Some(b) => {
                                let centred =
                                    i64::from(b.values[j]) - i64::from(b.params.zero_point);
                                finite(
                                    "z_Y + (s_b/s_Y)*(b_q - z_b)",
                                    z_y + bias_ratio * centred as f64,
                                )?
                            }
                            None => z_y,
                        };
                        Ok(Float64Column { offset, multiplier })
                    })
                    .collect::<Result<Vec<_>, QuantError>>()?;
                OutputStage::Float64(Float64Stage {
                    columns,
                    lo: f64::from(lo),
                    hi: f64::from(hi),
                })
            }
            Requantizer::TfliteReference => {
                let multipliers = spec
                    .weight_scales
                    .iter()
                    .map(|&s_w| {
                        let m = f64::from(f32_scale(s_x)) * f64::from(f32_scale(s_w))
                            / f64::from(f32_scale(s_y));
                        finite("f64(s_X)*f64(s_W)/f64(s_Y)", m)
                            .and_then(|m| positive("f64(s_X)*f64(s_W)/f64(s_Y)", m))
                    })
                    .collect::<Result<Vec<_>, QuantError>>()?;
                OutputStage::TfliteReference(TfliteReferenceStage {
                    multipliers,
                    zero_point: f64::from(z),
                    lo: f64::from(lo),
                    hi: f64::from(hi),
                })
            }
            Requantizer::FixedPoint(rounding) => {
                let multipliers = spec
                    .weight_scales
                    .iter()
                    .map(|&s_w| {
                        let m = if spec.per_channel {
                            f64::from(f32_scale(s_x)) * f64::from(f32_scale(s_w))
                                / f64::from(f32_scale(s_y))
                        } else {
                            f64::from(f32_scale(s_x) * f32_scale(s_w)) / f64::from(f32_scale(s_y))
                        };
                        let m = positive("fixed-point multiplier", m)?;
                        let q = quantize_multiplier(m)?;
                        // HalfUp and Double form acc·2^shift in i32 (LiteRT's
                        // optimized kernels let it wrap, measured): refuse
                        // layers where that product could leave i32.
                        let shifted = spec.acc_bound.checked_shl(q.shift.max(0) as u32);
                        if rounding != Rounding::Single
                            && shifted.is_none_or(|v| v > i32::MAX as u128)
                        {
                            return Err(QuantError::LeftShiftOverflow {
                                multiplier: m,
                                shift: q.shift,
                                acc_bound: spec.acc_bound,
                            });
                        }
                        Ok(q)
                    })
                    .collect::<Result<Vec<_>, QuantError>>()?;
                OutputStage::FixedPoint(FixedPointStage {
                    rounding,
                    multipliers,
                    zero_point: z,
                    lo,
                    hi,
                })
            }
            Requantizer::Float32 => {
                let multipliers = spec
                    .weight_scales
                    .iter()
                    .map(|&s_w| {
                        let m = f32_scale(s_x) * f32_scale(s_w) / f32_scale(s_y);
                        finite("f32(f32(s_X*s_W)/s_Y)", f64::from(m))
                            .and_then(|m| positive("f32(f32(s_X*s_W)/s_Y)", m))?;
                        Ok(m)
                    })
                    .collect::<Result<Vec<_>, QuantError>>()?;
                OutputStage::Float32(Float32Stage {
                    multipliers,
                    zero_point: i64::from(z),
                    lo: i64::from(lo),
                    hi: i64::from(hi),
                })
            }
        })
    }
}

fn finite(what: &'static str, value: f64) -> Result<f64, QuantError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(QuantError::InvalidMultiplier { what, value })
    }
}

/// TFLite's scales are `f32`: a scale that rounds to 0 or infinity there
/// gives a multiplier the runtime could not have.
fn positive(what: &'static str, value: f64) -> Result<f64, QuantError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(QuantError::InvalidMultiplier { what, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qm(multiplier: i32, shift: i32) -> QuantizedMultiplier {
        QuantizedMultiplier { multiplier, shift }
    }

    #[test]
    fn quantize_multiplier_edges() {
        // Exactly 0.5: f = 0.5, q = 2^30, e = 0.
        assert_eq!(quantize_multiplier(0.5).unwrap(), qm(1 << 30, 0));
        // 1.0 = 0.5·2^1.
        assert_eq!(quantize_multiplier(1.0).unwrap(), qm(1 << 30, 1));
        // Just under 1: f·2^31 rounds up to 2^31, so q = 2^30 and e + 1.
        let just_under = 1.0 - f64::EPSILON / 2.0;
        assert_eq!(quantize_multiplier(just_under).unwrap(), qm(1 << 30, 1));
        // The largest f that does not round up.
        let f = (2f64.powi(31) - 1.0) / 2f64.powi(31);
        assert_eq!(quantize_multiplier(f).unwrap(), qm(i32::MAX, 0));
        // Multipliers above 1.
        assert_eq!(quantize_multiplier(3.0).unwrap(), qm(3 << 29, 2));
        assert_eq!(quantize_multiplier(2f64.powi(40)).unwrap(), qm(1 << 30, 41));
        // Below 2^-31: e < −31 gives (0, 0); 2^-32 = 0.5·2^-31 is still kept.
        assert_eq!(
            quantize_multiplier(2f64.powi(-32)).unwrap(),
            qm(1 << 30, -31)
        );
        assert_eq!(quantize_multiplier(2f64.powi(-33)).unwrap(), qm(0, 0));
        assert_eq!(quantize_multiplier(1e-300).unwrap(), qm(0, 0));
        assert_eq!(
            quantize_multiplier(f64::MIN_POSITIVE / 8.0).unwrap(),
            qm(0, 0)
        );
        // Round half away in f·2^31: f = 0.75 + 2^-33 → 0.75·2^31 + 0.25 → down.
        let m = 0.75 + 2f64.powi(-33);
        assert_eq!(quantize_multiplier(m).unwrap(), qm(3 << 29, 0));
        let m = 0.75 + 2f64.powi(-32); // exactly +0.5 after scaling: away from zero
        assert_eq!(quantize_multiplier(m).unwrap(), qm((3 << 29) + 1, 0));
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(quantize_multiplier(bad).is_err());
        }
    }

    #[test]
    fn srdhm_edges() {
        assert_eq!(srdhm(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(srdhm(i32::MIN, i32::MAX), -i32::MAX);
        assert_eq!(srdhm(i32::MAX, i32::MAX), i32::MAX - 1);
        // Ties: a·b = ±2^30 is exactly ±0.5 in units of 2^31. The positive
        // tie rounds up; the negative one, (−2^30 + 1 − 2^30)/2^31 truncated,
        // rounds to 0: SRDHM's ties go toward +∞ for both signs.
        assert_eq!(srdhm(1 << 15, 1 << 15), 1);
        assert_eq!(srdhm(-(1 << 15), 1 << 15), 0);
        assert_eq!(srdhm(-3 << 15, 1 << 15), -1); // −1.5 → −1
        assert_eq!(srdhm(3, 1 << 29), 1); // 1.5·2^30 / 2^31 = 0.75
        assert_eq!(srdhm(-3, 1 << 29), -1);
        assert_eq!(srdhm(1, 1 << 29), 0); // 0.25
        assert_eq!(srdhm(-1, 1 << 29), 0);
    }

    #[test]
    fn rounding_shifts_at_ties_of_both_signs_and_extreme_shifts() {
        // shr_half_up: ties toward +∞.
        assert_eq!(shr_half_up(5, 1), 3);
        assert_eq!(shr_half_up(-5, 1), -2);
        assert_eq!(shr_half_up(-6, 2), -1); // −1.5 → −1
        assert_eq!(shr_half_up(7, 0), 7);
        assert_eq!(shr_half_up(i32::MAX, 31), 1);
        assert_eq!(shr_half_up(i32::MIN, 31), -1);
        assert_eq!(shr_half_up(1 << 30, 31), 1); // 0.5 → 1
        assert_eq!(shr_half_up(-(1 << 30), 31), 0); // −0.5 → 0
                                                    // RoundingDivideByPOT: ties away from zero.
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(-6, 2), -2);
        assert_eq!(rounding_divide_by_pot(7, 0), 7);
        assert_eq!(rounding_divide_by_pot(1 << 30, 31), 1);
        assert_eq!(rounding_divide_by_pot(-(1 << 30), 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
    }

    #[test]
    fn the_three_roundings_differ_where_they_should() {
        // PEERS.md: −1001 × 0.3 gives −301 with double rounding.
        let m = quantize_multiplier(0.3).unwrap();
        assert_eq!(
            multiply_by_quantized_multiplier(-1001, m, Rounding::Double),
            -301
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-1001, m, Rounding::HalfUp),
            -300
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-1001, m, Rounding::Single),
            -300
        );
        // A tie in the final shift: 6 × 0.25 = 1.5 and −6 × 0.25 = −1.5
        // (0.25 is (2^30, −1): SRDHM halves, then a shift by one rounds).
        let quarter = quantize_multiplier(0.25).unwrap();
        assert_eq!(quarter, qm(1 << 30, -1));
        assert_eq!(
            multiply_by_quantized_multiplier(6, quarter, Rounding::HalfUp),
            2
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-6, quarter, Rounding::HalfUp),
            -1
        );
        assert_eq!(
            multiply_by_quantized_multiplier(6, quarter, Rounding::Double),
            2
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-6, quarter, Rounding::Double),
            -2
        );
        assert_eq!(
            multiply_by_quantized_multiplier(6, quarter, Rounding::Single),
            2
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-6, quarter, Rounding::Single),
            -1
        );
        // With shift 0 the tie is rounded inside SRDHM, toward +∞.
        let half = quantize_multiplier(0.5).unwrap();
        assert_eq!(
            multiply_by_quantized_multiplier(3, half, Rounding::HalfUp),
            2
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-3, half, Rounding::HalfUp),
            -1
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-3, half, Rounding::Double),
            -1
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-3, half, Rounding::Single),
            -1
        );
        // Multiplier 2^-31 exactly (shift −31 after rounding): 2^31·2^-31.
        let tiny = quantize_multiplier(2f64.powi(-31)).unwrap();
        assert_eq!(tiny, qm(1 << 30, -30));
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MAX, tiny, Rounding::HalfUp),
            1
        );
        // (0, 0): everything maps to 0.
        let zero = quantize_multiplier(1e-12).unwrap();
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MAX, zero, Rounding::HalfUp),
            0
        );
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, zero, Rounding::Single),
            0
        );
    }

    #[test]
    fn left_shifts_saturate_instead_of_wrapping() {
        let m = quantize_multiplier(2f64.powi(20)).unwrap();
        for r in [Rounding::HalfUp, Rounding::Double, Rounding::Single] {
            assert_eq!(multiply_by_quantized_multiplier(1, m, r), 1 << 20);
            assert_eq!(multiply_by_quantized_multiplier(-1, m, r), -(1 << 20));
            // 2^12·2^20 = 2^32 does not fit: the result keeps its sign and
            // stays beyond every output range (2^30 after the saturated
            // left shift and the Q31 half, i32::MAX for single rounding).
            assert!(multiply_by_quantized_multiplier(1 << 12, m, r) >= 1 << 30);
            assert!(multiply_by_quantized_multiplier(-(1 << 12), m, r) <= -(1 << 30));
        }
        // Single rounding saturates a shift above 30 to (2^31 − 1, 30).
        let big = quantize_multiplier(2f64.powi(40)).unwrap();
        assert_eq!(
            multiply_by_quantized_multiplier(1, big, Rounding::Single),
            1 << 30
        );
    }

    #[test]
    fn i32_min_inputs() {
        let one_half = quantize_multiplier(0.5).unwrap();
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, one_half, Rounding::HalfUp),
            -(1 << 30)
        );
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, one_half, Rounding::Double),
            -(1 << 30)
        );
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, one_half, Rounding::Single),
            -(1 << 30)
        );
        let almost_one = qm(i32::MAX, 0);
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, almost_one, Rounding::HalfUp),
            i32::MIN + 1
        );
    }
}
