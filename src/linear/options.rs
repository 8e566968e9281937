//! What a layer's options derive: the kernel, the terms of (11), the
//! bound (12) and the output stage, all validated together.

use super::{check_len, Bias, Options, OutputClamp, Prepared};
use crate::accumulator::{check_bound, Terms, WrappingTerms};
use crate::elem::ElemKind;
use crate::error::QuantError;
use crate::gemm::pack::PackedWeights;
use crate::gemm::KernelChoice;
use crate::params::{QuantParams, QuantRange};
use crate::quantize::check_range_fits;
use crate::requant::{Int8BiasTerm, OutputStage, Requantizer, StageInputs};
use crate::weights::negated_zero_points;

impl Options {
    /// The declared input range, or the activation type's full range.
    pub(super) fn input_range(&self) -> QuantRange {
        self.input_range
            .unwrap_or_else(|| self.activation_type.range())
    }

    /// The kernel asked for, or the fastest that is exact for the input
    /// range.
    pub(super) fn kernel(&self) -> Result<KernelChoice, QuantError> {
        KernelChoice::choose(
            self.kernel_request,
            self.kernel_from_env,
            self.input_range(),
        )
    }

    /// Derives everything the forward pass needs, validating every option.
    pub(super) fn prepare(
        &self,
        packed: &PackedWeights,
        kernel: KernelChoice,
    ) -> Result<Prepared, QuantError> {
        let Options {
            ref weight,
            input,
            output,
            ref bias,
            requantizer,
            activation_type,
            input_range: _,
            clamp,
            kernel_request: _,
            kernel_from_env: _,
        } = *self;
        let input_range = self.input_range();
        input.validate()?;
        output.validate()?;
        let (p, n) = (packed.p(), packed.n());
        let (weight_scales, w_zero_points) = weight.expand(n)?;
        match activation_type {
            ElemKind::Int8 => check_range_fits::<i8>(input_range)?,
            ElemKind::Uint8 => check_range_fits::<u8>(input_range)?,
        }
        let (bias32, int8_bias): (Vec<i64>, Option<(Vec<i8>, QuantParams)>) = match bias {
            Bias::None => (vec![0; n], None),
            Bias::Int8 { values, params } => {
                check_len("bias", n, values.len())?;
                params.validate()?;
                (vec![0; n], Some((values.to_vec(), *params)))
            }
            Bias::Int32(values) => {
                check_len("bias", n, values.len())?;
                (values.iter().map(|&v| i64::from(v)).collect(), None)
            }
        };
        let max_bias = bias32.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
        let max_zw = w_zero_points
            .iter()
            .map(|z| u64::from(z.unsigned_abs()))
            .max()
            .unwrap_or(0);
        let zx = input.zero_point;
        check_bound(
            p,
            384 + u64::from(zx.unsigned_abs()),
            128 + max_zw,
            max_bias,
            i64::MAX as u128,
        )?;
        // The largest |acc| of (7) any declared input can give.
        let max_x = (i64::from(input_range.qmin) - i64::from(zx))
            .unsigned_abs()
            .max((i64::from(input_range.qmax) - i64::from(zx)).unsigned_abs());
        let max_w = w_zero_points
            .iter()
            .map(|&z| {
                (128 + i64::from(z))
                    .unsigned_abs()
                    .max((127 - i64::from(z)).unsigned_abs())
            })
            .max()
            .unwrap_or(0);
        let acc_bound = check_bound(p, max_x, max_w, max_bias, i64::MAX as u128)?;
        if matches!(requantizer, Requantizer::FixedPoint(_)) {
            check_bound(p, max_x, max_w, max_bias, i32::MAX as u128)?;
        }

        let shift = kernel.shift(activation_type, input_range);
        let z_shifted = i64::from(zx) + i64::from(shift);
        let column_terms: Vec<i64> = (0..n)
            .map(|j| {
                -z_shifted * packed.col_sums()[j]
                    + p as i64 * z_shifted * i64::from(w_zero_points[j])
                    + bias32[j]
            })
            .collect();
        let neg_w_zero_points = negated_zero_points(&w_zero_points);

        let type_range = activation_type.range();
        let clamp = match clamp {
            OutputClamp::Activation(a) => a.clamp(output, activation_type, requantizer),
            OutputClamp::Explicit(min, max) => {
                if !(min <= max && min >= type_range.qmin && max <= type_range.qmax) {
                    return Err(QuantError::InvalidClamp {
                        min,
                        max,
                        type_min: type_range.qmin,
                        type_max: type_range.qmax,
                    });
                }
                (min, max)
            }
        };
        let stage = OutputStage::new(StageInputs {
            requantizer,
            input,
            weight_scales: &weight_scales,
            per_channel: weight.is_per_channel(),
            output,
            int8_bias: int8_bias.as_ref().map(|(values, params)| Int8BiasTerm {
                values,
                params: *params,
            }),
            clamp,
            acc_bound,
        })?;
        // The f64 stages may add c[j] themselves, skipping the i64
        // accumulator, when (11) has no row term (see `Requantize::write`).
        let stage = if neg_w_zero_points.is_empty() {
            stage.with_column_terms(&column_terms, acc_bound)
        } else {
            stage
        };
        let terms = Terms {
            neg_w_zero_points: &neg_w_zero_points,
            column_terms: &column_terms,
            row_zero_points: &[],
            zero_point_terms: &[],
        };
        let wrapping = (acc_bound <= i32::MAX as u128).then(|| WrappingTerms::new(&terms));
        Ok(Prepared {
            kernel,
            shift,
            w_zero_points,
            neg_w_zero_points,
            column_terms,
            bias32,
            clamp,
            stage,
            wrapping,
        })
    }
}
