//! The output stage: exact accumulator in, output integer out.
//!
//! Each requantizer is one exact arithmetic recipe. The notebook's
//! ([`Requantizer::Float64`]) is, per output column `j`,
//!
//! ```text
//! (8)  o[j]   = f64(z_Y) + (s_b/s_Y) · f64(bq[j] − z_b)      (int8 bias; f64(z_Y) without one)
//! (9)  M[j]   = (s_X · s_W[j]) / s_Y
//! (10) out    = clamp(round_half_even(o[j] + M[j] · f64(acc)), lo, hi)
//! ```
//!
//! each operation rounded to `f64` in this order, as numpy evaluates it.
//! `o[j]` and `M[j]` are computed once, when the layer is built. `f64(acc)`
//! is exact while `|acc| ≤ 2^53`.

use crate::error::QuantError;
use crate::params::{QuantParams, QuantRange};

/// Which arithmetic turns the exact accumulator into the output integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Requantizer {
    /// The notebook's `f64` simulation, equations (8)–(10): zero point added
    /// before rounding, ties to even.
    #[default]
    Float64,
}

/// Equations (8)–(10) for one output column, prepared at construction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Float64Column {
    offset: f64,
    multiplier: f64,
}

/// The prepared output stage of a layer: one entry per output column and
/// the clamp bounds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutputStage {
    columns: Vec<Float64Column>,
    lo: f64,
    hi: f64,
}

/// The int8 bias of the notebook, as it enters (8).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Int8BiasTerm<'a> {
    pub(crate) values: &'a [i8],
    pub(crate) params: QuantParams,
}

impl OutputStage {
    /// Prepares (8) and (9) for every column. `weight_scales` has one scale
    /// per output column.
    pub(crate) fn float64(
        input: QuantParams,
        weight_scales: &[f64],
        output: QuantParams,
        bias: Option<Int8BiasTerm<'_>>,
        range: QuantRange,
    ) -> Result<OutputStage, QuantError> {
        let z_y = f64::from(output.zero_point);
        let bias_ratio = match bias {
            Some(b) => finite("s_b/s_Y", b.params.scale / output.scale)?,
            None => 0.0,
        };
        let columns = weight_scales
            .iter()
            .enumerate()
            .map(|(j, &s_w)| {
                let multiplier = finite("s_X*s_W/s_Y", input.scale * s_w / output.scale)?;
                let offset = match bias {
                    Some(b) => {
                        let centred = i64::from(b.values[j]) - i64::from(b.params.zero_point);
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
        Ok(OutputStage {
            columns,
            lo: f64::from(range.qmin),
            hi: f64::from(range.qmax),
        })
    }

    /// Equation (10) for column `j`.
    #[inline]
    pub(crate) fn apply(&self, acc: i64, j: usize) -> i32 {
        let c = self.columns[j];
        // `o` and `M` are finite and `acc` is an integer, so the sum is a
        // number or an infinity; the clamp brings either into range.
        (c.offset + c.multiplier * acc as f64)
            .round_ties_even()
            .clamp(self.lo, self.hi) as i32
    }
}

fn finite(what: &'static str, value: f64) -> Result<f64, QuantError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(QuantError::InvalidMultiplier { what, value })
    }
}
