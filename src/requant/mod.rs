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

mod fixed_point;
mod round;
mod stages;

pub use fixed_point::{multiply_by_quantized_multiplier, quantize_multiplier, QuantizedMultiplier};
pub(crate) use stages::{
    ColumnRequant, DotsTile, FixedPointStage, Float32Stage, Float64Stage, TfliteReferenceStage,
};

use crate::error::QuantError;
use crate::params::QuantParams;

/// Which arithmetic turns the exact accumulator into the output integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
pub(crate) struct StageInputs<'a> {
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
    /// Gives the stages that convert `f64(acc)` the layer's `c[j]`, for a
    /// layer whose (11) is `dot + c[j]`, so that tiles can skip the `i64`
    /// accumulator (see `stages::exact_column_terms`); the others are
    /// returned unchanged.
    pub(crate) fn with_column_terms(self, column_terms: &[i64], acc_bound: u128) -> OutputStage {
        match self {
            OutputStage::Float64(s) => {
                OutputStage::Float64(s.with_column_terms(column_terms, acc_bound))
            }
            OutputStage::TfliteReference(s) => {
                OutputStage::TfliteReference(s.with_column_terms(column_terms, acc_bound))
            }
            other => other,
        }
    }

    /// Prepares the stage: every per-column constant, once.
    pub(crate) fn new(inputs: StageInputs<'_>) -> Result<OutputStage, QuantError> {
        let z = inputs.output.zero_point;
        if inputs.int8_bias.is_some() && inputs.requantizer != Requantizer::Float64 {
            return Err(QuantError::IncompatibleOptions {
                reason: "an int8 bias with its own scale enters only the notebook's Float64 \
                         requantizer; give the bias as int32 (Bias::Int32 or F32Bias::Real) \
                         for the TFLite and ONNX Runtime requantizers",
            });
        }
        let f32_scale = |s: f64| s as f32;
        let (s_x, s_y) = (inputs.input.scale, inputs.output.scale);
        Ok(match inputs.requantizer {
            Requantizer::Float64 => {
                let z_y = f64::from(z);
                let bias_ratio = match inputs.int8_bias {
                    Some(b) => finite("s_b/s_Y", b.params.scale / s_y)?,
                    None => 0.0,
                };
                let multipliers = inputs
                    .weight_scales
                    .iter()
                    .map(|&s_w| finite("s_X*s_W/s_Y", s_x * s_w / s_y))
                    .collect::<Result<Vec<_>, QuantError>>()?;
                let offsets = (0..inputs.weight_scales.len())
                    .map(|j| {
                        Ok(match inputs.int8_bias {
                            Some(b) => {
                                let centred =
                                    i64::from(b.values[j]) - i64::from(b.params.zero_point);
                                finite(
                                    "z_Y + (s_b/s_Y)*(b_q - z_b)",
                                    z_y + bias_ratio * centred as f64,
                                )?
                            }
                            None => z_y,
                        })
                    })
                    .collect::<Result<Vec<_>, QuantError>>()?;
                OutputStage::Float64(Float64Stage::new(
                    offsets,
                    multipliers,
                    inputs.clamp,
                    inputs.acc_bound,
                ))
            }
            Requantizer::TfliteReference => {
                let multipliers = inputs
                    .weight_scales
                    .iter()
                    .map(|&s_w| {
                        let m = f64::from(f32_scale(s_x)) * f64::from(f32_scale(s_w))
                            / f64::from(f32_scale(s_y));
                        finite("f64(s_X)*f64(s_W)/f64(s_Y)", m)
                            .and_then(|m| positive("f64(s_X)*f64(s_W)/f64(s_Y)", m))
                    })
                    .collect::<Result<Vec<_>, QuantError>>()?;
                OutputStage::TfliteReference(TfliteReferenceStage::new(
                    multipliers,
                    z,
                    inputs.clamp,
                ))
            }
            Requantizer::FixedPoint(rounding) => {
                let multipliers = inputs
                    .weight_scales
                    .iter()
                    .map(|&s_w| {
                        let m = if inputs.per_channel {
                            f64::from(f32_scale(s_x)) * f64::from(f32_scale(s_w))
                                / f64::from(f32_scale(s_y))
                        } else {
                            f64::from(f32_scale(s_x) * f32_scale(s_w)) / f64::from(f32_scale(s_y))
                        };
                        let m = positive("fixed-point multiplier", m)?;
                        let q = quantize_multiplier(m)?;
                        // HalfUp and Double form acc·2^shift in i32 (LiteRT's
                        // optimized kernels let it wrap, measured): refuse
                        // layers where that product could leave i32, that
                        // is, unless acc_bound ≤ ⌊(2^31 − 1) / 2^shift⌋.
                        // (Not `checked_shl`: it checks only the shift
                        // amount and lets the product's high bits fall off.)
                        let left = q.shift.max(0) as u32;
                        let largest = (i32::MAX as u128).checked_shr(left).unwrap_or(0);
                        if rounding != Rounding::Single && inputs.acc_bound > largest {
                            return Err(QuantError::LeftShiftOverflow {
                                multiplier: m,
                                shift: q.shift,
                                acc_bound: inputs.acc_bound,
                            });
                        }
                        Ok(q)
                    })
                    .collect::<Result<Vec<_>, QuantError>>()?;
                OutputStage::FixedPoint(FixedPointStage::new(
                    rounding,
                    multipliers,
                    z,
                    inputs.clamp,
                ))
            }
            Requantizer::Float32 => {
                let multipliers = inputs
                    .weight_scales
                    .iter()
                    .map(|&s_w| {
                        let m = f32_scale(s_x) * f32_scale(s_w) / f32_scale(s_y);
                        finite("f32(f32(s_X*s_W)/s_Y)", f64::from(m))
                            .and_then(|m| positive("f32(f32(s_X*s_W)/s_Y)", m))?;
                        Ok(m)
                    })
                    .collect::<Result<Vec<_>, QuantError>>()?;
                OutputStage::Float32(Float32Stage::new(multipliers, z, inputs.clamp))
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
