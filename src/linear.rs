//! `QuantizedLinear`: `Y = X·W + b` with int8 activations and weights.
//!
//! The accumulator of (7) is computed as
//!
//! ```text
//! (11) acc[i,j] = dot[i,j] − z_W[j]·r[i] + c[j]
//!      dot[i,j] = Σ_k Xq[i,k]·Wq[k,j]
//!      r[i]     = Σ_k Xq[i,k]                      (only when some z_W[j] ≠ 0)
//!      c[j]     = −z_X·Σ_k Wq[k,j] + p·z_X·z_W[j] + b32[j]
//! ```
//!
//! where `c[j]` belongs to the weights and is computed once, at
//! construction, together with the output stage's per-column constants.
//! Every term of (11) is bounded by
//!
//! ```text
//! (12) |acc| ≤ p·(128 + |z_X|)·(128 + max_j |z_W[j]|) + max_j |b32[j]|
//! ```
//!
//! and construction refuses a layer whose bound (12) exceeds `i64::MAX`, so
//! the `i64` evaluation of (11) is exact for every input.
//!
//! # Accuracy against real arithmetic
//!
//! Let `Y = X·W + b` be computed exactly from the real inputs. Quantizing
//! one value `v` with params `(s, z)` by (5) moves it by at most
//! `e = s·(1/2 + (384 + 2|z|)·2^-24)` (half a step, plus the `f32`
//! roundings of (5)) as long as `v` lies inside the representable range
//! `[s·(qmin − z), s·(qmax − z)]`. The layer's integer arithmetic is exact,
//! so the only other errors are the final rounding to `s_Y` and float
//! rounding in (10) and (6). Hence, when nothing is clipped,
//!
//! ```text
//! (15) |Y_dq[i,j] − Y[i,j]| ≤ s_Y/2 + Σ_k (e_X·|W[k,j]| + e_W·|X[i,k]| + e_X·e_W) + e_b
//!                             + 2^-24·|Y_dq[i,j]| + δ
//! ```
//!
//! with `e_b = s_X·s_W/2` for an int32 bias or `e(s_b, z_b)` for an int8
//! one, and `δ` the `f64` rounding of (10), of order `2^-50·(Σ_k |X·W| +
//! s_Y·|z_Y|)`. The first term is the output step; the sum is the
//! propagated input and weight error. `tests/accuracy.rs` checks (15) on
//! random layers and that it is nearly attained.

use ndarray::{Array1, Array2, ArrayBase, ArrayView1, Data, Ix2};

use crate::error::QuantError;
use crate::gemm::{self, reference};
use crate::params::{QuantParams, QuantRange};
use crate::quantize::{check_no_nan, dequantize, quantize, try_quantize};
use crate::requant::{Int8BiasTerm, OutputStage, Requantizer};

/// A bias already quantized.
#[derive(Debug, Clone, PartialEq)]
pub enum Bias {
    /// No bias.
    None,
    /// The notebook's int8 bias with its own scale and zero point; it enters
    /// the output stage in `f64`, equation (8).
    Int8 {
        /// One quantized value per output column.
        values: Array1<i8>,
        /// The bias's own parameters.
        params: QuantParams,
    },
    /// The TFLite convention: scale `s_X·s_W`, zero point 0, added to the
    /// exact accumulator.
    Int32(Array1<i32>),
}

/// A bias in real values, for [`QuantizedLinear::from_f32`] to quantize.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum F32Bias<'a> {
    /// No bias.
    None,
    /// Quantize to int8 with `params`, as the notebook does.
    Int8 {
        /// One real value per output column.
        values: ArrayView1<'a, f32>,
        /// Parameters to quantize the bias with.
        params: QuantParams,
    },
    /// Quantize to int32 with scale `s_X·s_W` and zero point 0 (TFLite):
    /// `b32[j] = round_half_even(f64(b[j]) / (s_X·s_W))`; a value that does
    /// not fit in `i32` is an error.
    Int32(ArrayView1<'a, f32>),
}

/// A linear layer `Y = X·W + b` over int8, exact and reproducible.
///
/// `W` is p×n (inputs × outputs, the notebook's layout). Build it from
/// quantized parts with [`from_quantized`](Self::from_quantized) or from
/// real weights with [`from_f32`](Self::from_f32); run it with
/// [`forward`](Self::forward) (int8 in, int8 out) or
/// [`forward_f32`](Self::forward_f32).
///
/// ```
/// use ndarray::array;
/// use qlinear::{Bias, QuantParams, QuantizedLinear};
///
/// let p = QuantParams::new(0.5, 0).unwrap();
/// let layer = QuantizedLinear::from_quantized(array![[2i8, 0], [0, 2]], p, Bias::None, p, p).unwrap();
/// // acc = 3·2 = 6, times 0.5·0.5/0.5: 3.
/// assert_eq!(layer.forward(&array![[3i8, -1]]).unwrap(), array![[3i8, -1]]);
/// ```
#[derive(Debug, Clone)]
pub struct QuantizedLinear {
    /// `W` transposed, row-major: output column `j`'s weights are
    /// `weights_t[j·p .. (j+1)·p]`.
    weights_t: Vec<i8>,
    in_features: usize,
    out_features: usize,
    weight: QuantParams,
    input: QuantParams,
    output: QuantParams,
    bias: Bias,
    w_zero_points: Vec<i32>,
    needs_row_sums: bool,
    column_terms: Vec<i64>,
    stage: OutputStage,
}

impl QuantizedLinear {
    /// A layer from int8 weights `w_q` (p×n) with params `weight`, a bias,
    /// and the input and output params.
    ///
    /// Errors: an invalid scale in any params, a bias whose length is not
    /// `n`, a requantization multiplier that is not finite, or a layer whose
    /// accumulator bound (12) exceeds `i64`.
    pub fn from_quantized(
        w_q: Array2<i8>,
        weight: QuantParams,
        bias: Bias,
        input: QuantParams,
        output: QuantParams,
    ) -> Result<QuantizedLinear, QuantError> {
        weight.validate()?;
        input.validate()?;
        output.validate()?;
        let (p, n) = w_q.dim();
        let w_zero_points = vec![weight.zero_point; n];
        let weight_scales = vec![weight.scale; n];
        let (bias32, int8_bias) = match &bias {
            Bias::None => (vec![0; n], None),
            Bias::Int8 { values, params } => {
                check_len("bias", n, values.len())?;
                params.validate()?;
                (vec![0; n], Some((values.to_vec(), *params)))
            }
            Bias::Int32(values) => {
                check_len("bias", n, values.len())?;
                (values.to_vec(), None)
            }
        };
        let max_bias = bias32.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
        check_accumulator_bound(p, input.zero_point, &w_zero_points, max_bias)?;

        let stage = OutputStage::float64(
            input,
            &weight_scales,
            output,
            int8_bias.as_ref().map(|(values, params)| Int8BiasTerm {
                values,
                params: *params,
            }),
            QuantRange::INT8,
        )?;

        let weights_t: Vec<i8> = w_q.t().iter().copied().collect();
        let zx = i64::from(input.zero_point);
        let column_terms = (0..n)
            .map(|j| {
                let w_sum = gemm::sum(&weights_t[j * p..(j + 1) * p]);
                let zw = i64::from(w_zero_points[j]);
                -zx * w_sum + p as i64 * zx * zw + i64::from(bias32[j])
            })
            .collect();
        let needs_row_sums = w_zero_points.iter().any(|&z| z != 0);
        Ok(QuantizedLinear {
            weights_t,
            in_features: p,
            out_features: n,
            weight,
            input,
            output,
            bias,
            w_zero_points,
            needs_row_sums,
            column_terms,
            stage,
        })
    }

    /// A layer from real weights `w` (p×n), quantized with `weight`, and a
    /// real bias quantized as [`F32Bias`] says.
    ///
    /// ```
    /// use ndarray::array;
    /// use qlinear::{F32Bias, QuantParams, QuantizedLinear};
    ///
    /// let w = array![[0.5f32, -1.0], [0.25, 2.0]];
    /// let b = array![0.1f32, -0.2];
    /// let layer = QuantizedLinear::from_f32(
    ///     &w,
    ///     QuantParams::from_range(-2.0, 2.0).unwrap(),
    ///     F32Bias::Int32(b.view()),
    ///     QuantParams::from_range(-1.0, 1.0).unwrap(),
    ///     QuantParams::from_range(-4.0, 4.0).unwrap(),
    /// )
    /// .unwrap();
    /// let y = layer.forward_f32(&array![[1.0f32, 0.5]]).unwrap();
    /// assert!((y[[0, 0]] - 0.725).abs() < 0.05 && (y[[0, 1]] + 0.2).abs() < 0.05);
    /// ```
    pub fn from_f32<S>(
        w: &ArrayBase<S, Ix2>,
        weight: QuantParams,
        bias: F32Bias<'_>,
        input: QuantParams,
        output: QuantParams,
    ) -> Result<QuantizedLinear, QuantError>
    where
        S: Data<Elem = f32>,
    {
        weight.validate()?;
        input.validate()?;
        check_no_nan(w, "weights")?;
        let n = w.ncols();
        let bias = match bias {
            F32Bias::None => Bias::None,
            F32Bias::Int8 { values, params } => {
                check_len("bias", n, values.len())?;
                params.validate()?;
                Bias::Int8 {
                    values: try_quantize(&values, params).map_err(|e| rename(e, "bias"))?,
                    params,
                }
            }
            F32Bias::Int32(values) => {
                check_len("bias", n, values.len())?;
                Bias::Int32(quantize_bias_i32(values, input.scale * weight.scale)?)
            }
        };
        QuantizedLinear::from_quantized(quantize(w, weight), weight, bias, input, output)
    }

    /// Runs the layer on int8 input `x` (m×p, any layout): int8 out (m×n).
    ///
    /// Errors if `x` does not have `p` columns.
    pub fn forward<S>(&self, x: &ArrayBase<S, Ix2>) -> Result<Array2<i8>, QuantError>
    where
        S: Data<Elem = i8>,
    {
        let mut out = Array2::<i8>::zeros((x.nrows(), self.out_features));
        self.for_each_accumulator(x, |i, j, acc| {
            out[[i, j]] = self.stage.apply(acc, j) as i8;
        })?;
        Ok(out)
    }

    /// The exact accumulator of (11) for int8 input `x` (m×p), before the
    /// output stage: `Σ_k (Xq[i,k] − z_X)(Wq[k,j] − z_W[j])`, plus the int32
    /// bias if the layer has one. This is ONNX's `MatMulInteger`.
    ///
    /// ```
    /// use ndarray::array;
    /// use qlinear::{Bias, QuantParams, QuantizedLinear};
    ///
    /// let pw = QuantParams::new(1.0, 1).unwrap();
    /// let px = QuantParams::new(1.0, -2).unwrap();
    /// let layer = QuantizedLinear::from_quantized(array![[3i8], [5]], pw, Bias::None, px, px).unwrap();
    /// // (1+2)(3−1) + (0+2)(5−1) = 14
    /// assert_eq!(layer.accumulate(&array![[1i8, 0]]).unwrap(), array![[14i64]]);
    /// ```
    pub fn accumulate<S>(&self, x: &ArrayBase<S, Ix2>) -> Result<Array2<i64>, QuantError>
    where
        S: Data<Elem = i8>,
    {
        let mut out = Array2::<i64>::zeros((x.nrows(), self.out_features));
        self.for_each_accumulator(x, |i, j, acc| out[[i, j]] = acc)?;
        Ok(out)
    }

    /// Evaluates (11) for every output position and hands it to `sink`.
    fn for_each_accumulator<S>(
        &self,
        x: &ArrayBase<S, Ix2>,
        mut sink: impl FnMut(usize, usize, i64),
    ) -> Result<(), QuantError>
    where
        S: Data<Elem = i8>,
    {
        self.check_input(x.ncols())?;
        let p = self.in_features;
        let mut x_row = Vec::with_capacity(p);
        for (i, row) in x.rows().into_iter().enumerate() {
            x_row.clear();
            x_row.extend(row.iter().copied());
            let row_sum = if self.needs_row_sums {
                gemm::sum(&x_row)
            } else {
                0
            };
            for j in 0..self.out_features {
                let w_col = &self.weights_t[j * p..(j + 1) * p];
                let acc = gemm::dot(&x_row, w_col) - i64::from(self.w_zero_points[j]) * row_sum
                    + self.column_terms[j];
                sink(i, j, acc);
            }
        }
        Ok(())
    }

    /// Quantizes real input `x` with the input params, runs
    /// [`forward`](Self::forward) and dequantizes with the output params.
    ///
    /// Errors on a NaN in `x` and on a wrong number of columns.
    pub fn forward_f32<S>(&self, x: &ArrayBase<S, Ix2>) -> Result<Array2<f32>, QuantError>
    where
        S: Data<Elem = f32>,
    {
        self.check_input(x.ncols())?;
        let x_q = try_quantize(x, self.input)?;
        Ok(dequantize(&self.forward(&x_q)?, self.output))
    }

    /// The same result as [`forward`](Self::forward), computed by the naive
    /// triple loop of equation (7) in `i128`: the oracle the kernels are
    /// tested against, public so that a user can check them on their machine.
    pub fn forward_reference<S>(&self, x: &ArrayBase<S, Ix2>) -> Result<Array2<i8>, QuantError>
    where
        S: Data<Elem = i8>,
    {
        self.check_input(x.ncols())?;
        let acc = reference::accumulate(
            x,
            &self.weights(),
            self.input.zero_point,
            &self.w_zero_points,
        )?;
        let bias32: Vec<i128> = match &self.bias {
            Bias::Int32(b) => b.iter().map(|&v| i128::from(v)).collect(),
            _ => vec![0; self.out_features()],
        };
        let mut out = Array2::<i8>::zeros(acc.dim());
        for ((i, j), &a) in acc.indexed_iter() {
            let total = i64::try_from(a + bias32[j]).map_err(|_| self.overflow_error())?;
            out[[i, j]] = self.stage.apply(total, j) as i8;
        }
        Ok(out)
    }

    /// Inner dimension `p`: the number of columns `X` must have.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Output dimension `n`: the number of columns of `Y`.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// The quantized weights `Wq` (p×n).
    pub fn weights(&self) -> Array2<i8> {
        Array2::from_shape_fn((self.in_features, self.out_features), |(k, j)| {
            self.weights_t[j * self.in_features + k]
        })
    }

    /// Parameters of the weights.
    pub fn weight_params(&self) -> QuantParams {
        self.weight
    }

    /// Parameters the input is quantized with.
    pub fn input_params(&self) -> QuantParams {
        self.input
    }

    /// Parameters of the output.
    pub fn output_params(&self) -> QuantParams {
        self.output
    }

    /// The quantized bias.
    pub fn bias(&self) -> &Bias {
        &self.bias
    }

    /// The requantizer the output stage uses.
    pub fn requantizer(&self) -> Requantizer {
        Requantizer::Float64
    }

    fn check_input(&self, x_cols: usize) -> Result<(), QuantError> {
        if x_cols == self.in_features() {
            Ok(())
        } else {
            Err(QuantError::InnerDimensionMismatch {
                x_cols,
                w_rows: self.in_features(),
            })
        }
    }

    fn overflow_error(&self) -> QuantError {
        QuantError::AccumulatorOverflow {
            inner_dim: self.in_features(),
            bound: u128::MAX,
            limit: i64::MAX as u128,
        }
    }
}

fn check_len(what: &'static str, expected: usize, found: usize) -> Result<(), QuantError> {
    if expected == found {
        Ok(())
    } else {
        Err(QuantError::LengthMismatch {
            what,
            expected,
            found,
        })
    }
}

/// Bound (12), checked against `i64`.
fn check_accumulator_bound(
    p: usize,
    zx: i32,
    w_zero_points: &[i32],
    max_bias: u32,
) -> Result<(), QuantError> {
    let max_zw = w_zero_points
        .iter()
        .map(|z| z.unsigned_abs())
        .max()
        .unwrap_or(0);
    let bound = (p as u128)
        .checked_mul(128 + u128::from(zx.unsigned_abs()))
        .and_then(|v| v.checked_mul(128 + u128::from(max_zw)))
        .and_then(|v| v.checked_add(u128::from(max_bias)))
        .unwrap_or(u128::MAX);
    let limit = i64::MAX as u128;
    if bound <= limit {
        Ok(())
    } else {
        Err(QuantError::AccumulatorOverflow {
            inner_dim: p,
            bound,
            limit,
        })
    }
}

/// `round_half_even(f64(b) / scale)`, refusing non-finite values and values
/// outside `i32`.
fn quantize_bias_i32(values: ArrayView1<'_, f32>, scale: f64) -> Result<Array1<i32>, QuantError> {
    let mut out = Array1::<i32>::zeros(values.len());
    for (j, (&b, o)) in values.iter().zip(out.iter_mut()).enumerate() {
        let q = (f64::from(b) / scale).round_ties_even();
        if !b.is_finite() {
            return Err(QuantError::NonFinite {
                what: "bias",
                index: j,
                value: f64::from(b),
            });
        }
        if !(q >= f64::from(i32::MIN) && q <= f64::from(i32::MAX)) {
            return Err(QuantError::BiasOutOfRange {
                column: j,
                value: f64::from(b),
                scale,
            });
        }
        *o = q as i32;
    }
    Ok(out)
}

fn rename(e: QuantError, what: &'static str) -> QuantError {
    match e {
        QuantError::NonFinite { index, value, .. } => QuantError::NonFinite { what, index, value },
        other => other,
    }
}
