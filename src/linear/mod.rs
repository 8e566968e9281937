//! `QuantizedLinear`: `Y = X·W + b` with 8-bit activations and weights.
//!
//! The accumulator of (7) is computed as
//!
//! ```text
//! (11) acc[i,j] = dot[i,j] − z_W[j]·r[i] + c[j]
//!      dot[i,j] = Σ_k x'[i,k]·Wq[k,j]                  (the kernel, x' = Xq + shift)
//!      r[i]     = Σ_k x'[i,k]                          (only when some z_W[j] ≠ 0)
//!      c[j]     = −z'·Σ_k Wq[k,j] + p·z'·z_W[j] + b32[j],   z' = z_X + shift
//! ```
//!
//! where `shift` moves the activations into the kernel's domain (0 for
//! int8 into the int8 kernels and u8 into the u8 ones, ±128 between them,
//! and `−qmin` of the declared 7-bit range for the u7 kernel); (11) equals
//! (7) exactly for every shift. `c[j]` and the column sums belong to the
//! weights and are computed once, at construction, with the output stage's
//! per-column constants. Every term of (11) is bounded by
//!
//! ```text
//! (12) |acc| ≤ p·(384 + |z_X|)·(128 + max_j |z_W[j]|) + max_j |b32[j]|
//! ```
//!
//! and construction refuses a layer whose bound (12) exceeds `i64::MAX`, so
//! the `i64` evaluation of (11) is exact for every input. The fixed-point
//! requantizers need the true accumulator in `i32`; they refuse layers
//! whose `p·max|x − z_X|·max|w − z_W| + max|b32|` exceeds `i32::MAX`.
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

mod builder;
mod epilogue;
mod options;

pub use builder::LinearBuilder;

use epilogue::{Accumulate, Requantize};

use std::marker::PhantomData;

use ndarray::{Array1, Array2, ArrayBase, ArrayView1, Data, DataMut, Ix2};

use crate::accumulator::{Terms, WrappingTerms};
use crate::activation::FusedActivation;
use crate::alloc::{fill_row_major, try_filled};
use crate::elem::{ElemKind, QuantElem};
use crate::error::{check_inner_dim, check_out_shape, check_size, QuantError};
use crate::gemm::driver::Epilogue;
use crate::gemm::pack::{OutOfRange, PackedWeights};
use crate::gemm::{reference, KernelChoice};
use crate::params::{QuantParams, QuantRange};
use crate::quantize::{check_finite, through_quantized};
use crate::real::Real;
use crate::requant::{with_stage, ColumnRequant, OutputStage, Requantizer};
use crate::weights::{WeightLayout, WeightParams};

/// A bias already quantized.
#[derive(Debug, Clone, PartialEq)]
pub enum Bias {
    /// No bias.
    None,
    /// The notebook's int8 bias with its own scale and zero point; it enters
    /// the output stage in `f64`, equation (8), so it needs
    /// [`Requantizer::Float64`].
    Int8 {
        /// One quantized value per output column.
        values: Array1<i8>,
        /// The bias's own parameters.
        params: QuantParams,
    },
    /// The TFLite convention: scale `s_X·s_W[j]`, zero point 0, added to
    /// the exact accumulator.
    Int32(Array1<i32>),
}

/// A bias in real values, as the caller has it, quantized when the layer
/// is built: `f32` by default, or any [`Real`] type `F`, each value
/// converted to `f32` first (an `f64` beyond `f32` is an infinity, which
/// is refused).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum F32Bias<'a, F = f32> {
    /// No bias.
    None,
    /// One real value per output feature, as PyTorch, TFLite and ONNX
    /// Runtime keep it: quantized to [`Bias::Int32`] with scale
    /// `s_X·s_W[j]` and zero point 0,
    /// `b32[j] = round_half_even(f64(b[j]) / (s_X·s_W[j]))`; a value that
    /// does not fit in `i32` is an error naming its column.
    Real(ArrayView1<'a, F>),
    /// Real values with parameters of their own, as the notebook has them:
    /// quantized to [`Bias::Int8`] with `params` (needs
    /// [`Requantizer::Float64`]).
    RealWithParams {
        /// One real value per output feature.
        values: ArrayView1<'a, F>,
        /// Parameters to quantize the bias with.
        params: QuantParams,
    },
}

/// How outputs are clamped, resolved against the output params.
#[derive(Debug, Clone, Copy, PartialEq)]
enum OutputClamp {
    Activation(FusedActivation),
    Explicit(i32, i32),
}

/// Everything derived from the layer's parameters, rebuilt when an option
/// changes.
#[derive(Debug, Clone)]
struct Prepared {
    kernel: KernelChoice,
    shift: i32,
    w_zero_points: Vec<i32>,
    /// `−z_W[j]`; empty when every weight zero point is 0.
    neg_w_zero_points: Vec<i64>,
    column_terms: Vec<i64>,
    bias32: Vec<i64>,
    clamp: (i32, i32),
    stage: OutputStage,
    /// (11) modulo 2^32, when every accumulator of the layer fits in `i32`.
    wrapping: Option<WrappingTerms>,
}

/// A linear layer `Y = X·W + b` over 8-bit integers, exact and reproducible.
///
/// `W` is p×n (inputs × outputs, the notebook's layout), packed once for
/// the fastest kernel this CPU supports. Build it from quantized parts with
/// [`from_quantized`](Self::from_quantized) or from real weights with
/// [`from_f32`](Self::from_f32); choose the arithmetic with
/// [`with_requantizer`](Self::with_requantizer); run it with
/// [`forward`](Self::forward) (8-bit in, 8-bit out) or
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
    packed: PackedWeights,
    options: Options,
    prepared: Prepared,
}

/// What the user chose; everything in [`Prepared`] derives from it.
#[derive(Debug, Clone)]
struct Options {
    weight: WeightParams,
    input: QuantParams,
    output: QuantParams,
    bias: Bias,
    requantizer: Requantizer,
    activation_type: ElemKind,
    /// The declared input range; `None` is the activation type's full
    /// range, whichever type is chosen later.
    input_range: Option<QuantRange>,
    clamp: OutputClamp,
    kernel_request: Option<KernelChoice>,
    /// What [`KERNEL_ENV`](crate::gemm::KERNEL_ENV) named when the layer
    /// was built.
    kernel_from_env: Option<KernelChoice>,
}

impl QuantizedLinear {
    /// A layer from int8 weights `w_q` (p×n), their params (per tensor or
    /// per channel), a bias, and the input and output params. Activations
    /// are int8 and the requantizer is the notebook's until changed.
    ///
    /// Errors: an invalid scale in any params, a bias or per-channel list
    /// whose length is not `n`, a requantization multiplier that is not
    /// finite, or a layer whose accumulator bound (12) exceeds `i64`.
    pub fn from_quantized(
        w_q: Array2<i8>,
        weight: impl Into<WeightParams>,
        bias: Bias,
        input: QuantParams,
        output: QuantParams,
    ) -> Result<QuantizedLinear, QuantError> {
        QuantizedLinear::builder_int8(w_q.view(), WeightLayout::InOut, weight)
            .bias(bias)
            .input_params(input)
            .output_params(output)
            .build()
    }

    /// The layer of `options` over int8 weights `w_q` (p×n, any layout):
    /// validates the whole options and packs the weights once.
    fn from_spec<S: Data<Elem = i8>>(
        w_q: &ArrayBase<S, Ix2>,
        options: Options,
    ) -> Result<QuantizedLinear, QuantError> {
        check_size("per-column terms", &[w_q.ncols()])?;
        let kernel = options.kernel()?;
        let (nr, kg) = kernel.layout();
        let packed = PackedWeights::new(w_q, nr, kg);
        let prepared = options.prepare(&packed, kernel)?;
        Ok(QuantizedLinear {
            packed,
            options,
            prepared,
        })
    }

    /// A layer from real weights `w` (p×n), quantized with `weight` (per
    /// tensor, or column `j` with channel `j`'s params), and a real bias
    /// quantized as [`F32Bias`] says. Any [`Real`] weights and bias (of
    /// one type): each value is converted to `f32` first.
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
    ///     F32Bias::Real(b.view()),
    ///     QuantParams::from_range(-1.0, 1.0).unwrap(),
    ///     QuantParams::from_range(-4.0, 4.0).unwrap(),
    /// )
    /// .unwrap();
    /// let y = layer.forward_f32(&array![[1.0f32, 0.5]]).unwrap();
    /// assert!((y[[0, 0]] - 0.725).abs() < 0.05 && (y[[0, 1]] + 0.2).abs() < 0.05);
    /// ```
    pub fn from_f32<S>(
        w: &ArrayBase<S, Ix2>,
        weight: impl Into<WeightParams>,
        bias: F32Bias<'_, S::Elem>,
        input: QuantParams,
        output: QuantParams,
    ) -> Result<QuantizedLinear, QuantError>
    where
        S: Data,
        S::Elem: Real,
    {
        // Views are invariant over their lifetime: both borrowed anew.
        let bias = match bias {
            F32Bias::None => F32Bias::None,
            F32Bias::RealWithParams { values, params } => F32Bias::RealWithParams {
                values: values.reborrow(),
                params,
            },
            F32Bias::Real(values) => F32Bias::Real(values.reborrow()),
        };
        QuantizedLinear::builder_f32(w.view(), WeightLayout::InOut, weight)
            .bias_f32(bias)
            .input_params(input)
            .output_params(output)
            .build()
    }

    /// The same layer with another requantizer (see [`Requantizer`]).
    ///
    /// Errors if the requantizer cannot represent the layer's multipliers,
    /// needs an int32 accumulator the layer could exceed, or cannot take an
    /// int8 bias.
    ///
    /// ```
    /// use ndarray::array;
    /// use qlinear::{Bias, QuantParams, QuantizedLinear, Requantizer, Rounding};
    /// let p = QuantParams::new(0.5, 1).unwrap();
    /// let w = QuantParams::new(0.5, 0).unwrap();
    /// let layer = QuantizedLinear::from_quantized(array![[3i8]], w, Bias::None, p, p)?
    ///     .with_requantizer(Requantizer::FixedPoint(Rounding::HalfUp))?;
    /// // (5 − 1)·3 = 12, ·0.5·0.5/0.5 = 6, + 1
    /// assert_eq!(layer.forward(&array![[5i8]])?, array![[7i8]]);
    /// # Ok::<(), qlinear::QuantError>(())
    /// ```
    pub fn with_requantizer(
        mut self,
        requantizer: Requantizer,
    ) -> Result<QuantizedLinear, QuantError> {
        self.options.requantizer = requantizer;
        self.reprepare()
    }

    /// The same layer with outputs clamped to `[min, max]` in the quantized
    /// domain (a fused activation given as integers).
    ///
    /// Errors if `min > max` or the bounds leave the output type.
    pub fn with_output_clamp(mut self, min: i32, max: i32) -> Result<QuantizedLinear, QuantError> {
        self.options.clamp = OutputClamp::Explicit(min, max);
        self.reprepare()
    }

    /// The same layer with a fused activation, as a clamp derived from the
    /// output params as LiteRT derives it, (21).
    ///
    /// ```
    /// use ndarray::array;
    /// use qlinear::{Bias, FusedActivation, QuantParams, QuantizedLinear};
    /// let p = QuantParams::new(1.0, 0).unwrap();
    /// let relu = QuantizedLinear::from_quantized(array![[1i8]], p, Bias::None, p, p)?
    ///     .with_fused_activation(FusedActivation::Relu)?;
    /// assert_eq!(relu.forward(&array![[-5i8], [5]])?, array![[0i8], [5]]);
    /// # Ok::<(), qlinear::QuantError>(())
    /// ```
    pub fn with_fused_activation(
        mut self,
        activation: FusedActivation,
    ) -> Result<QuantizedLinear, QuantError> {
        self.options.clamp = OutputClamp::Activation(activation);
        self.reprepare()
    }

    /// The same layer taking and producing activations of another type:
    /// `ElemKind::Uint8` is the PyTorch / ONNX Runtime x86 convention. The
    /// input and output params are read in that type's domain, and the
    /// input range becomes the type's full range.
    ///
    /// ```
    /// use ndarray::array;
    /// use qlinear::{Bias, ElemKind, QuantParams, QuantizedLinear};
    /// let p = QuantParams::new(1.0, 128).unwrap();
    /// let w = QuantParams::new(1.0, 0).unwrap();
    /// let layer = QuantizedLinear::from_quantized(array![[2i8]], w, Bias::None, p, p)?
    ///     .with_activation_type(ElemKind::Uint8)?;
    /// // (130 − 128)·2 + 128
    /// assert_eq!(layer.forward(&array![[130u8]])?, array![[132u8]]);
    /// # Ok::<(), qlinear::QuantError>(())
    /// ```
    pub fn with_activation_type(mut self, kind: ElemKind) -> Result<QuantizedLinear, QuantError> {
        self.options.activation_type = kind;
        self.reprepare()
    }

    /// The same layer with inputs declared within `range` (e.g.
    /// [`QuantRange::INT8_REDUCED`] or [`QuantRange::UINT8_REDUCED`], 7
    /// bits). [`forward_f32`](Self::forward_f32) quantizes into it,
    /// [`forward`](Self::forward) refuses values outside it, and a range of
    /// at most 128 values lets the faster reduced-range kernel run exactly.
    pub fn with_input_range(mut self, range: QuantRange) -> Result<QuantizedLinear, QuantError> {
        self.options.input_range = Some(range);
        self.reprepare()
    }

    /// The same layer running the kernel called `name` (see
    /// [`available_kernels`](crate::available_kernels)) instead of the
    /// fastest: to compare kernels, or to pin one.
    ///
    /// Errors if this CPU cannot run it or it is not exact for the layer's
    /// input range (the 7-bit kernel).
    ///
    /// ```
    /// use ndarray::array;
    /// use qlinear::{Bias, QuantParams, QuantizedLinear};
    /// let p = QuantParams::new(1.0, 0).unwrap();
    /// let layer = QuantizedLinear::from_quantized(array![[1i8]], p, Bias::None, p, p)?;
    /// let portable = layer.clone().with_kernel("portable")?;
    /// assert_eq!(portable.kernel_name(), "portable-i8i8i32");
    /// assert!(layer.with_kernel("no-such-kernel").is_err());
    /// # Ok::<(), qlinear::QuantError>(())
    /// ```
    pub fn with_kernel(mut self, name: &str) -> Result<QuantizedLinear, QuantError> {
        self.options.kernel_request = Some(KernelChoice::named(name)?);
        self.reprepare()
    }

    /// Re-derives everything after an option changed, repacking the
    /// weights only if the kernel's layout changed.
    fn reprepare(mut self) -> Result<QuantizedLinear, QuantError> {
        let kernel = self.options.kernel()?;
        let layout = kernel.layout();
        if layout != self.packed.layout() {
            self.packed = PackedWeights::new(&self.packed.unpack(), layout.0, layout.1);
        }
        self.prepared = self.options.prepare(&self.packed, kernel)?;
        Ok(self)
    }

    /// Runs the layer on quantized input `x` (m×p, any layout; `i8` or `u8`
    /// as the layer was built): quantized output (m×n) of the same type.
    ///
    /// Errors if `x` does not have `p` columns, is of the other type, or
    /// holds a value outside the declared input range; and if an `x`
    /// without columns has so many rows that the output could not be
    /// allocated.
    pub fn forward<S, T>(&self, x: &ArrayBase<S, Ix2>) -> Result<Array2<T>, QuantError>
    where
        S: Data<Elem = T>,
        T: QuantElem,
    {
        self.check_input::<T>(x.dim())?;
        let (m, n) = (x.nrows(), self.out_features());
        let mut out = to_matrix(m, n, self.prepared.kernel.new_output(m, &self.packed)?);
        self.requantize_into(x, &mut out)?;
        Ok(out)
    }

    /// [`forward`](Self::forward) into an existing m×n array (any layout),
    /// every element of which is overwritten: no allocation when `out` is
    /// in standard layout.
    ///
    /// Errors as `forward` does, and if `out` is not m×n.
    ///
    /// ```
    /// use ndarray::{array, Array2};
    /// use qlinear::{Bias, QuantParams, QuantizedLinear};
    /// let p = QuantParams::new(1.0, 0).unwrap();
    /// let layer = QuantizedLinear::from_quantized(array![[1i8, 2]], p, Bias::None, p, p)?;
    /// let mut y = Array2::<i8>::zeros((1, 2));
    /// layer.forward_into(&array![[3i8]], &mut y)?;
    /// assert_eq!(y, array![[3i8, 6]]);
    /// # Ok::<(), qlinear::QuantError>(())
    /// ```
    pub fn forward_into<S, So, T>(
        &self,
        x: &ArrayBase<S, Ix2>,
        out: &mut ArrayBase<So, Ix2>,
    ) -> Result<(), QuantError>
    where
        S: Data<Elem = T>,
        So: DataMut<Elem = T>,
        T: QuantElem,
    {
        self.check_input::<T>(x.dim())?;
        check_out_shape(out.shape(), (x.nrows(), self.out_features()))?;
        self.requantize_into(x, out)
    }

    /// The body of [`forward_into`](Self::forward_into), for an `x` that
    /// passed [`check_input`](Self::check_input) and an m×n `out`.
    fn requantize_into<S, So, T>(
        &self,
        x: &ArrayBase<S, Ix2>,
        out: &mut ArrayBase<So, Ix2>,
    ) -> Result<(), QuantError>
    where
        S: Data<Elem = T>,
        So: DataMut<Elem = T>,
        T: QuantElem,
    {
        with_stage!(&self.prepared.stage, stage => {
            let epilogue = Requantize {
                terms: self.terms(),
                wrapping: self.prepared.wrapping.as_ref(),
                stage,
                out: PhantomData::<T>,
            };
            fill_row_major(out, |slice| self.run(x, &epilogue, slice))
        })
    }

    /// The exact accumulator of (7) for quantized input `x` (m×p), before
    /// the output stage: `Σ_k (Xq[i,k] − z_X)(Wq[k,j] − z_W[j])`, plus the
    /// int32 bias if the layer has one. Without a bias this is ONNX's
    /// `MatMulInteger`.
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
    pub fn accumulate<S, T>(&self, x: &ArrayBase<S, Ix2>) -> Result<Array2<i64>, QuantError>
    where
        S: Data<Elem = T>,
        T: QuantElem,
    {
        self.check_input::<T>(x.dim())?;
        let (m, n) = (x.nrows(), self.out_features());
        let mut out = try_filled("accumulator", &[m, n], 0i64)?;
        self.run(
            x,
            &Accumulate {
                terms: self.terms(),
            },
            &mut out,
        )?;
        Ok(to_matrix(m, n, out))
    }

    /// Quantizes real input `x` with the input params (into the declared
    /// input range), runs [`forward`](Self::forward) and dequantizes with
    /// the output params.
    ///
    /// Any [`Real`] input: each value is converted to `f32` first, and the
    /// output, computed in `f32`, is converted back to the input's type.
    ///
    /// Errors on a NaN in `x`, on a wrong number of columns, and on a batch
    /// too large to allocate (found before any pass over `x`).
    ///
    /// ```
    /// use ndarray::array;
    /// use qlinear::{Bias, QuantParams, QuantizedLinear};
    /// let p = QuantParams::new(0.5, 0)?;
    /// let layer = QuantizedLinear::from_quantized(array![[2i8]], p, Bias::None, p, p)?;
    /// let x = array![[0.75f64], [1e300]];
    /// let y = layer.forward_f32(&x)?;
    /// assert_eq!(y, layer.forward_f32(&x.mapv(|v| v as f32))?.mapv(f64::from));
    /// assert_eq!(y, array![[1.0f64], [63.5]]);
    /// # Ok::<(), qlinear::QuantError>(())
    /// ```
    pub fn forward_f32<S>(&self, x: &ArrayBase<S, Ix2>) -> Result<Array2<S::Elem>, QuantError>
    where
        S: Data,
        S::Elem: Real,
    {
        match self.options.activation_type {
            ElemKind::Int8 => self.forward_f32_as::<i8, S>(x),
            ElemKind::Uint8 => self.forward_f32_as::<u8, S>(x),
        }
    }

    /// [`forward_f32`](Self::forward_f32) through activations of type `T`.
    fn forward_f32_as<T, S>(&self, x: &ArrayBase<S, Ix2>) -> Result<Array2<S::Elem>, QuantError>
    where
        T: QuantElem,
        S: Data,
        S::Elem: Real,
    {
        check_inner_dim(x.ncols(), self.in_features())?;
        let (m, n) = (x.nrows(), self.out_features());
        let mut out = to_matrix(m, n, try_filled("output", &[m, n], S::Elem::default())?);
        let input = (self.options.input, self.options.input_range());
        let buffers = (&mut Vec::new(), &mut Vec::new());
        through_quantized::<T, S, _>(
            x,
            input,
            self.options.output,
            &mut out,
            buffers,
            |x_q, y_q| self.forward_into(&x_q, y_q),
        )?;
        Ok(out)
    }

    /// The same result as [`forward`](Self::forward), computed by the naive
    /// triple loop of equation (7) in `i128`: the oracle the kernels are
    /// tested against, public so that a user can check them on their machine.
    pub fn forward_reference<S, T>(&self, x: &ArrayBase<S, Ix2>) -> Result<Array2<T>, QuantError>
    where
        S: Data<Elem = T>,
        T: QuantElem,
    {
        self.check_input::<T>(x.dim())?;
        let range = self.options.input_range();
        if let Some((index, v)) = x
            .iter()
            .map(|v| v.to_i32())
            .enumerate()
            .find(|&(_, v)| v < range.qmin || v > range.qmax)
        {
            return Err(self.range_error(OutOfRange { index, value: v }));
        }
        let w = self.unpack_weights();
        let acc = reference::accumulate(
            x,
            &w,
            self.options.input.zero_point,
            &self.prepared.w_zero_points,
        )?;
        let mut out = Array2::<T>::default(acc.dim());
        with_stage!(&self.prepared.stage, stage => {
            for ((i, j), &a) in acc.indexed_iter() {
                let total = a + i128::from(self.prepared.bias32[j]);
                let total = i64::try_from(total).map_err(|_| self.overflow_error())?;
                out[[i, j]] = T::from_i32_clamped(stage.apply(total, j));
            }
        });
        Ok(out)
    }

    /// Inner dimension `p`: the number of columns `X` must have.
    pub fn in_features(&self) -> usize {
        self.packed.p()
    }

    /// Output dimension `n`: the number of columns of `Y`.
    pub fn out_features(&self) -> usize {
        self.packed.n()
    }

    /// The quantized weights `Wq` (p×n), unpacked from the kernel's panels
    /// into a new array.
    pub fn unpack_weights(&self) -> Array2<i8> {
        self.packed.unpack()
    }

    /// The quantized weights `Wq` (p×n).
    #[deprecated(
        since = "0.2.0",
        note = "it unpacks and allocates: renamed `unpack_weights`"
    )]
    pub fn weights(&self) -> Array2<i8> {
        self.unpack_weights()
    }

    /// Bytes the packed weights take, column sums included: the layer's
    /// weight memory. That is `kp·n_pad + 8n + 64` for `p·n` int8 weights,
    /// with `p` padded to the kernel's k-group, `n` to its panel width (at
    /// most 32) and 64 bytes to start the panels on a cache line: 1.002×
    /// the int8 bytes at 4096×4096, and at most 1.1× once `p ≥ 256` and
    /// `n ≥ 640`. Small shapes just past a multiple of 32 columns pad more
    /// (101×321: 1.21× with 32-column panels).
    pub fn packed_weight_bytes(&self) -> usize {
        self.packed.bytes()
    }

    /// Parameters of the weights.
    pub fn weight_params(&self) -> &WeightParams {
        &self.options.weight
    }

    /// Parameters the input is quantized with.
    pub fn input_params(&self) -> QuantParams {
        self.options.input
    }

    /// Parameters of the output.
    pub fn output_params(&self) -> QuantParams {
        self.options.output
    }

    /// The quantized bias.
    pub fn bias(&self) -> &Bias {
        &self.options.bias
    }

    /// The requantizer the output stage uses.
    pub fn requantizer(&self) -> Requantizer {
        self.options.requantizer
    }

    /// The activation type (`i8` or `u8`) of input and output.
    pub fn activation_type(&self) -> ElemKind {
        self.options.activation_type
    }

    /// The declared input range.
    pub fn input_range(&self) -> QuantRange {
        self.options.input_range()
    }

    /// The output clamp `(min, max)` in the quantized domain.
    pub fn output_clamp(&self) -> (i32, i32) {
        self.prepared.clamp
    }

    /// Name of the kernel this layer runs, e.g. `x86_64-i8i8i32-avx2`.
    pub fn kernel_name(&self) -> &'static str {
        self.prepared.kernel.name()
    }

    fn terms(&self) -> Terms<'_> {
        Terms {
            neg_w_zero_points: &self.prepared.neg_w_zero_points,
            column_terms: &self.prepared.column_terms,
            row_zero_points: &[],
            zero_point_terms: &[],
        }
    }

    fn run<S, T, O, E>(
        &self,
        x: &ArrayBase<S, Ix2>,
        epilogue: &E,
        out: &mut [O],
    ) -> Result<(), QuantError>
    where
        S: Data<Elem = T>,
        T: QuantElem,
        O: Copy + Default + Send,
        E: Epilogue<O>,
    {
        let pr = &self.prepared;
        let bounds = (
            self.options.input_range().qmin,
            self.options.input_range().qmax,
        );
        let with_row_sums = !pr.neg_w_zero_points.is_empty();
        pr.kernel
            .execute(
                &self.packed,
                x,
                pr.shift,
                bounds,
                with_row_sums,
                epilogue,
                out,
            )
            .map_err(|e| self.range_error(e))
    }

    fn check_input<T: QuantElem>(&self, (m, x_cols): (usize, usize)) -> Result<(), QuantError> {
        if T::KIND != self.options.activation_type {
            return Err(QuantError::ActivationType {
                expected: self.options.activation_type,
                found: T::KIND,
            });
        }
        check_inner_dim(x_cols, self.in_features())?;
        check_size("output", &[m, self.out_features()])
    }

    fn range_error(&self, e: OutOfRange) -> QuantError {
        QuantError::InputOutOfRange {
            index: e.index,
            value: e.value,
            qmin: self.options.input_range().qmin,
            qmax: self.options.input_range().qmax,
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

/// An m×n matrix from a row-major vector the crate filled itself.
pub(crate) fn to_matrix<T>(m: usize, n: usize, data: Vec<T>) -> Array2<T> {
    Array2::from_shape_vec((m, n), data).expect("the crate allocates m·n elements")
}

pub(crate) fn check_len(
    what: &'static str,
    expected: usize,
    found: usize,
) -> Result<(), QuantError> {
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

/// `round_half_even(f64(b[j]) / scale[j])`, refusing non-finite values
/// and values outside `i32`.
fn quantize_bias_i32(
    values: ArrayView1<'_, f32>,
    scales: &[f64],
) -> Result<Array1<i32>, QuantError> {
    check_finite(&values, "bias")?;
    let mut out = Array1::<i32>::zeros(values.len());
    for (j, ((&b, o), &scale)) in values.iter().zip(out.iter_mut()).zip(scales).enumerate() {
        let q = (f64::from(b) / scale).round_ties_even();
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
