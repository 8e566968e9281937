//! Dynamic quantization: real activations in, real outputs out, the
//! activations quantized on every call (PyTorch's
//! `quantized.dynamic.Linear`, ONNX Runtime's `DynamicQuantizeLinear` +
//! `MatMulInteger`).
//!
//! Per call, each row `i` of `X` (or the whole tensor) gets parameters
//! `(s_X[i], z_X[i])` from its own min and max under the chosen scheme and
//! range, is quantized by (5), multiplied exactly by the int8 weights, and
//! the accumulator is scaled back:
//!
//! ```text
//! (23) acc[i,j] = Σ_k (Xq[i,k] − z_X[i])·(Wq[k,j] − z_W[j])                      exact, (11)
//!      y[i,j]   = f32(acc[i,j]) · f32(f32(s_X[i])·f32(s_W[j])) + b[j]            f32, in this order
//! ```
//!
//! (ONNX Runtime's order.) Where the scale product overflows `f32`, a zero
//! accumulator still gives `0 + b[j]` (ONNX Runtime would give NaN);
//! weight scales beyond `f32` and non-finite biases are refused.
//!
//! Inputs, weights and biases of any [`Real`] type are converted to `f32`
//! first (an `f64` beyond `f32` is an infinity, and refused); `y` is
//! computed in `f32` by (23) and converted to the output's type.
//!
//! With [`Granularity::PerRow`] a row's result depends on that row alone:
//! it is the same whether the row is run alone or in any batch.
//!
//! Each call reads its input twice before the product: once for the
//! extremes (which also finds any non-finite value), once to quantize. Both
//! loops vectorize, compiled for the instruction set of the layer's kernel.
//! Inputs of 2^15 elements or more (2^16 for kernels whose passes run on
//! AVX-512) are split across the rayon pool: by rows, and a whole tensor's
//! extremes by pieces; the results do not depend on the split. Where the
//! call's parameters bound every accumulator within `i32`, (11) is summed
//! in wrapping `i32`, which gives the same accumulators (see
//! `WrappingTerms`).

use ndarray::{s, Array1, Array2, ArrayBase, ArrayView2, Data, DataMut, Ix2};

use crate::accumulator::{check_bound, wrap_i32_into, Terms, WrappingTerms};
use crate::alloc::{fill_row_major, try_refill, try_with_capacity};
use crate::dynamic_buffers::CallBuffers;
use crate::elem::QuantElem;
use crate::error::{check_inner_dim, check_out_shape, check_size, QuantError};
use crate::gemm::driver::{Dots, Epilogue};
use crate::gemm::pack::PackedWeights;
use crate::gemm::KernelChoice;
use crate::linear::{check_len, to_matrix};
use crate::observer::finite_extremes;
use crate::params::{QuantParams, QuantRange, Scheme};
use crate::quantize::{check_finite, check_range_fits, ScalarQuantizer};
use crate::real::{as_f32_slice, into_f32_array, Real};
use crate::weights::{negated_zero_points, WeightParams};
use std::borrow::Cow;

/// Which values share one set of activation parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Granularity {
    /// One scale and zero point for the whole input (ONNX Runtime, PyTorch).
    #[default]
    PerTensor,
    /// One per row: a row's output does not depend on the rest of the batch.
    PerRow,
}

/// How [`DynamicLinear`] quantizes its input on each call.
///
/// With the `serde` feature, fields missing from the data take their
/// [`Default`] values, so a config names only what it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
pub struct DynamicActivations {
    /// Per tensor or per row.
    pub granularity: Granularity,
    /// How parameters come from the observed min and max.
    pub scheme: Scheme,
    /// The integer range the activations are quantized into (`u8` storage
    /// for unsigned ranges, `i8` for signed ones).
    pub range: QuantRange,
}

impl DynamicActivations {
    /// ONNX Runtime's `DynamicQuantizeLinear`: affine uint8 `[0, 255]`, per
    /// tensor.
    pub const ONNX_RUNTIME: DynamicActivations = DynamicActivations {
        granularity: Granularity::PerTensor,
        scheme: Scheme::Affine,
        range: QuantRange::UINT8,
    };
    /// PyTorch's x86 (fbgemm) dynamic linear: affine uint8 with
    /// `reduce_range`, `[0, 127]`, per tensor. The 7-bit range also lets
    /// the reduced-range kernel run where it is the fastest.
    pub const PYTORCH_X86: DynamicActivations = DynamicActivations {
        granularity: Granularity::PerTensor,
        scheme: Scheme::Affine,
        range: QuantRange::UINT8_REDUCED,
    };
}

impl Default for DynamicActivations {
    fn default() -> Self {
        DynamicActivations::ONNX_RUNTIME
    }
}

/// A linear layer with int8 weights whose activations are quantized on
/// every call: `f32` in, `f32` out (or any [`Real`] type, through `f32`).
///
/// ```
/// use ndarray::array;
/// use qlinear::{
///     DynamicActivations, DynamicLinear, Granularity, QuantRange, Scheme, WeightLayout, WeightParams,
/// };
///
/// let w = array![[0.5f32, -1.0], [0.25, 2.0], [-1.5, 0.75]];
/// let pw = WeightParams::per_channel(&w, WeightLayout::InOut, Scheme::Symmetric, QuantRange::INT8_NARROW)?;
/// let b = array![0.1f32, -0.2];
/// let layer = DynamicLinear::from_f32(&w, pw, Some(b.clone()))?.with_activations(DynamicActivations {
///     granularity: Granularity::PerRow,
///     ..DynamicActivations::ONNX_RUNTIME
/// })?;
/// let x = array![[1.0f32, 0.5, -2.0], [0.01, 0.02, 0.03]];
/// let y = layer.forward(&x)?;
/// let exact = x.dot(&w) + &b;
/// assert!((&y - &exact).iter().all(|e| e.abs() < 0.05));
/// # Ok::<(), qlinear::QuantError>(())
/// ```
#[derive(Debug, Clone)]
pub struct DynamicLinear {
    packed: PackedWeights,
    kernel: KernelChoice,
    /// What [`KERNEL_ENV`](crate::gemm::KERNEL_ENV) named when the layer
    /// was built.
    kernel_from_env: Option<KernelChoice>,
    /// The kernel [`with_kernel`](Self::with_kernel) asked for.
    kernel_request: Option<KernelChoice>,
    weight: WeightParams,
    weight_scales: Vec<f32>,
    /// `−z_W[j]`; empty when every weight zero point is 0.
    neg_w_zero_points: Vec<i64>,
    /// `d[j] = −Σ_k Wq[k,j] + p·z_W[j]`, the coefficient of `z'_X[i]` in (11).
    zero_point_terms: Vec<i64>,
    /// The two vectors above modulo 2^32, for calls whose accumulators fit
    /// in `i32`.
    wrapped_terms: WrappingTerms,
    max_w_zero_point: u64,
    bias: Option<Array1<f32>>,
    activations: DynamicActivations,
}

impl DynamicLinear {
    /// A layer from int8 weights `w_q` (p×n), their params and an optional
    /// real bias, with [`DynamicActivations::ONNX_RUNTIME`].
    pub fn from_quantized(
        w_q: Array2<i8>,
        weight: impl Into<WeightParams>,
        bias: Option<Array1<f32>>,
    ) -> Result<DynamicLinear, QuantError> {
        let weight = weight.into();
        let (p, n) = w_q.dim();
        let (scales, zero_points) = weight.expand(n)?;
        // (23) takes s_W in f32.
        let weight_scales: Vec<f32> = scales.iter().map(|&s| s as f32).collect();
        if let Some(j) = weight_scales.iter().position(|s| !s.is_finite()) {
            return Err(QuantError::InvalidScale { scale: scales[j] });
        }
        if let Some(b) = &bias {
            check_len("bias", n, b.len())?;
            check_finite(b, "bias")?;
        }
        let activations = DynamicActivations::default();
        let kernel_from_env = KernelChoice::from_env();
        let kernel = KernelChoice::select_with(kernel_from_env, activations.range);
        let (nr, kg) = kernel.layout();
        let packed = PackedWeights::new(&w_q, nr, kg);
        let zero_point_terms = zero_point_terms(packed.col_sums(), p, &zero_points)?;
        let neg_w_zero_points = negated_zero_points(&zero_points);
        let wrapped_terms = WrappingTerms::new(&Terms {
            neg_w_zero_points: &neg_w_zero_points,
            column_terms: &[],
            row_zero_points: &[],
            zero_point_terms: &zero_point_terms,
        });
        let layer = DynamicLinear {
            packed,
            kernel,
            kernel_from_env,
            kernel_request: None,
            weight,
            weight_scales,
            neg_w_zero_points,
            zero_point_terms,
            wrapped_terms,
            max_w_zero_point: zero_points
                .iter()
                .map(|z| u64::from(z.unsigned_abs()))
                .max()
                .unwrap_or(0),
            bias,
            activations,
        };
        layer.with_activations(activations)
    }

    /// A layer from real weights `w` (p×n), quantized with `weight`. Any
    /// [`Real`] weights and bias (of one type): each value is converted to
    /// `f32` first (an `f32` bias is kept as it is).
    ///
    /// ```
    /// use ndarray::array;
    /// use qlinear::{DynamicLinear, QuantParams};
    /// let w = array![[0.5f64, -0.25]];
    /// let pw = QuantParams::new(0.25, 0)?;
    /// let layer = DynamicLinear::from_f32(&w, pw, Some(array![0.1f64, 1e-3]))?;
    /// let same = DynamicLinear::from_f32(&w.mapv(|v| v as f32), pw, Some(array![0.1f32, 1e-3]))?;
    /// let x = array![[2.0f64]];
    /// assert_eq!(layer.forward(&x)?, same.forward(&x.mapv(|v| v as f32))?.mapv(f64::from));
    /// # Ok::<(), qlinear::QuantError>(())
    /// ```
    pub fn from_f32<S>(
        w: &ArrayBase<S, Ix2>,
        weight: impl Into<WeightParams>,
        bias: Option<Array1<S::Elem>>,
    ) -> Result<DynamicLinear, QuantError>
    where
        S: Data,
        S::Elem: Real,
    {
        let weight = weight.into();
        let bias = bias.map(into_f32_array);
        DynamicLinear::from_quantized(weight.quantize(w)?, weight, bias)
    }

    /// The same layer quantizing its activations as `activations` says.
    ///
    /// Errors if the range is not within `i8` or `u8`, or if a kernel
    /// pinned by [`with_kernel`](Self::with_kernel) is not exact for it.
    pub fn with_activations(
        mut self,
        activations: DynamicActivations,
    ) -> Result<DynamicLinear, QuantError> {
        let range = activations.range;
        if check_range_fits::<u8>(range).is_err() {
            check_range_fits::<i8>(range)?;
        }
        let kernel = KernelChoice::choose(self.kernel_request, self.kernel_from_env, range)?;
        self.activations = activations;
        let layout = kernel.layout();
        if layout != self.packed.layout() {
            self.packed = PackedWeights::new(&self.packed.unpack(), layout.0, layout.1);
        }
        self.kernel = kernel;
        Ok(self)
    }

    /// The same layer running the kernel called `name` (see
    /// [`available_kernels`](crate::available_kernels)) instead of the
    /// fastest: to compare kernels, or to pin one.
    ///
    /// Errors if this CPU cannot run it or it is not exact for the
    /// activations' range (the 7-bit kernel with an 8-bit range).
    ///
    /// ```
    /// use ndarray::array;
    /// use qlinear::{DynamicActivations, DynamicLinear, QuantParams};
    /// let p = QuantParams::new(1.0, 0).unwrap();
    /// let layer = DynamicLinear::from_quantized(array![[1i8]], p, None)?;
    /// let portable = layer.clone().with_kernel("portable")?;
    /// assert_eq!(portable.kernel_name(), "portable-i8i8i32");
    /// assert!(layer.with_kernel("no-such-kernel").is_err());
    /// # Ok::<(), qlinear::QuantError>(())
    /// ```
    pub fn with_kernel(mut self, name: &str) -> Result<DynamicLinear, QuantError> {
        self.kernel_request = Some(KernelChoice::named(name)?);
        let activations = self.activations;
        self.with_activations(activations)
    }

    /// Runs the layer on real input `x` (m×p, any layout). Any [`Real`]
    /// input: each value is converted to `f32` first, and the output,
    /// computed in `f32` by (23), is converted back to the input's type.
    ///
    /// Errors on a NaN or an infinity in `x` (parameters derived from the
    /// data cannot represent either), a wrong number of columns, an output
    /// too large to allocate, or activation parameters that
    /// [`Scheme::Notebook`] cannot derive from the data: a range narrower
    /// than about `255·MIN_SCALE`, or one so far from 0 that its zero point
    /// would let the accumulator leave `i64`.
    pub fn forward<S>(&self, x: &ArrayBase<S, Ix2>) -> Result<Array2<S::Elem>, QuantError>
    where
        S: Data,
        S::Elem: Real,
    {
        check_inner_dim(x.ncols(), self.in_features())?;
        let (m, n) = (x.nrows(), self.out_features());
        // Allocated before the first pass over `x`.
        let mut out = self.kernel.new_output::<S::Elem>(m, &self.packed)?;
        self.forward_slice(x, &mut out, &mut CallBuffers::default())?;
        Ok(to_matrix(m, n, out))
    }

    /// [`forward`](Self::forward) into an existing m×n array (any layout),
    /// every element of which is overwritten: no output allocation when
    /// `out` is in standard layout. Input and output may be of any
    /// [`Real`] types, not necessarily the same: the input is converted to
    /// `f32` first and the `f32` output to `out`'s type.
    ///
    /// Errors as `forward` does, and if `out` is not m×n.
    ///
    /// ```
    /// use ndarray::{array, Array2};
    /// use qlinear::{DynamicLinear, QuantParams};
    /// let w = QuantParams::new(0.5, 0)?;
    /// let layer = DynamicLinear::from_quantized(array![[2i8, -2]], w, None)?;
    /// let mut y = Array2::<f32>::zeros((1, 2));
    /// layer.forward_into(&array![[1.0f32]], &mut y)?;
    /// assert_eq!(y, layer.forward(&array![[1.0f32]])?);
    /// # Ok::<(), qlinear::QuantError>(())
    /// ```
    pub fn forward_into<S, So>(
        &self,
        x: &ArrayBase<S, Ix2>,
        out: &mut ArrayBase<So, Ix2>,
    ) -> Result<(), QuantError>
    where
        S: Data,
        S::Elem: Real,
        So: DataMut,
        So::Elem: Real,
    {
        self.forward_into_with(x, out, &mut CallBuffers::default())
    }

    /// [`forward_into`](Self::forward_into) with the per-call vectors in
    /// `buffers`: no allocation once they have served a batch as large,
    /// for `f32` input in standard layout and an output in standard layout.
    pub(crate) fn forward_into_with<S, So>(
        &self,
        x: &ArrayBase<S, Ix2>,
        out: &mut ArrayBase<So, Ix2>,
        buffers: &mut CallBuffers,
    ) -> Result<(), QuantError>
    where
        S: Data,
        S::Elem: Real,
        So: DataMut,
        So::Elem: Real,
    {
        check_inner_dim(x.ncols(), self.in_features())?;
        check_out_shape(out.shape(), (x.nrows(), self.out_features()))?;
        fill_row_major(out, |slice| self.forward_slice(x, slice, buffers))
    }

    /// The body of [`forward`](Self::forward) into `out`, row-major m×n,
    /// for an `x` of `p` columns.
    fn forward_slice<S, O>(
        &self,
        x: &ArrayBase<S, Ix2>,
        out: &mut [O],
        buffers: &mut CallBuffers,
    ) -> Result<(), QuantError>
    where
        S: Data,
        S::Elem: Real,
        O: Real,
    {
        let values = row_major_checked(x.view())?;
        self.params_of_rows(&values, (x.nrows(), x.ncols()), buffers)?;
        if self.activations.range.qmin >= 0 {
            self.run::<u8, O>(&values, buffers, out)
        } else {
            self.run::<i8, O>(&values, buffers, out)
        }
    }

    /// The activation parameters [`forward`](Self::forward) uses for `x`:
    /// one per row, or the same one repeated for every row, of any [`Real`]
    /// input converted to `f32` first. Errors as `forward` does on a NaN or
    /// an infinity.
    pub fn activation_params<F: Real>(
        &self,
        x: ArrayView2<'_, F>,
    ) -> Result<Vec<QuantParams>, QuantError> {
        let mut buffers = CallBuffers::default();
        self.params_of_rows(&row_major_checked(x)?, x.dim(), &mut buffers)?;
        Ok(buffers.params)
    }

    /// [`activation_params`](Self::activation_params) of the `m` rows of `p`
    /// stored in `values`, row-major, into `buffers.params`.
    fn params_of_rows(
        &self,
        values: &[f32],
        (m, p): (usize, usize),
        buffers: &mut CallBuffers,
    ) -> Result<(), QuantError> {
        let DynamicActivations {
            granularity,
            scheme,
            range,
        } = self.activations;
        let non_finite = |index: usize| QuantError::NonFinite {
            what: "input",
            index,
            value: f64::from(values[index]),
        };
        let extremes = |part: &[f32]| self.kernel.vectorized(|| finite_extremes(part));
        let params_of = |(lo, hi): (f32, f32)| {
            if lo <= hi {
                scheme.params(f64::from(lo), f64::from(hi), range)
            } else {
                // Nothing seen (p = 0): nothing to scale.
                scheme.params(0.0, 0.0, range)
            }
        };
        match granularity {
            Granularity::PerTensor => {
                let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
                let parts = &mut buffers.extremes;
                map_chunks(self.kernel, values, EXTREMES_CHUNK, extremes, parts);
                // In order, so that the first non-finite value is reported.
                for (k, part) in parts.iter().enumerate() {
                    let (part_lo, part_hi) =
                        part.map_err(|i| non_finite(k * EXTREMES_CHUNK + i))?;
                    (lo, hi) = (lo.min(part_lo), hi.max(part_hi));
                }
                let params = params_of((lo, hi))?;
                try_refill(&mut buffers.params, "activation params", &[m], params)
            }
            Granularity::PerRow if p == 0 => {
                let params = params_of((f32::INFINITY, f32::NEG_INFINITY))?;
                try_refill(&mut buffers.params, "activation params", &[m], params)
            }
            Granularity::PerRow => {
                // Every row's values are checked before any row's
                // parameters, so a non-finite value is reported before a
                // scheme's refusal of an earlier row.
                let rows = &mut buffers.extremes;
                map_chunks(self.kernel, values, p, extremes, rows);
                if let Some((i, j)) = rows
                    .iter()
                    .enumerate()
                    .find_map(|(i, e)| e.err().map(|j| (i, j)))
                {
                    return Err(non_finite(i * p + j));
                }
                buffers.params.clear();
                for &row in rows.iter() {
                    let row = row.expect("every row checked finite above");
                    buffers.params.push(params_of(row)?);
                }
                Ok(())
            }
        }
    }

    /// Quantizes the rows in `values` (m×p, row-major) with their `params`
    /// into `T` and runs the kernel with the [`Dequantize`] epilogue.
    fn run<T: QuantElem, O: Real>(
        &self,
        values: &[f32],
        buffers: &mut CallBuffers,
        out: &mut [O],
    ) -> Result<(), QuantError> {
        let range = self.activations.range;
        let CallBuffers {
            params,
            quantized,
            row_zero_points,
            wrapped_zero_points,
            row_scales,
            ..
        } = buffers;
        let (m, p) = (params.len(), self.in_features());
        let [x_q, ..] = T::buffers(quantized);
        quantize_rows::<T>(self.kernel, values, p, params, range, x_q)?;
        let x_q = ArrayView2::from_shape((m, p), &x_q[..]).expect("m·p values");
        let shift = self.kernel.shift(T::KIND, range);
        let max_zx = params
            .iter()
            .map(|p| u64::from(p.zero_point.unsigned_abs()))
            .max()
            .unwrap_or(0);
        check_bound(
            self.in_features(),
            384 + max_zx,
            128 + self.max_w_zero_point,
            0,
            i64::MAX as u128,
        )?;
        row_zero_points.clear();
        row_zero_points.extend(
            params
                .iter()
                .map(|p| i64::from(p.zero_point) + i64::from(shift)),
        );
        let terms = Terms {
            neg_w_zero_points: &self.neg_w_zero_points,
            column_terms: &[],
            row_zero_points,
            zero_point_terms: &self.zero_point_terms,
        };
        let max_distance = params
            .iter()
            .map(|p| {
                let z = i64::from(p.zero_point);
                (i64::from(range.qmax) - z)
                    .max(z - i64::from(range.qmin))
                    .unsigned_abs()
            })
            .max()
            .unwrap_or(0);
        let fits_i32 = check_bound(
            self.in_features(),
            max_distance,
            128 + self.max_w_zero_point,
            0,
            i32::MAX as u128,
        )
        .is_ok();
        let epilogue = Dequantize {
            layer: self,
            terms,
            wrapping: fits_i32.then(|| {
                wrap_i32_into(row_zero_points, wrapped_zero_points);
                (&self.wrapped_terms, &wrapped_zero_points[..])
            }),
            row_scales: {
                row_scales.clear();
                row_scales.extend(params.iter().map(|p| p.scale as f32));
                row_scales
            },
        };
        let with_row_sums = !self.neg_w_zero_points.is_empty();
        self.kernel
            .execute(
                &self.packed,
                &x_q,
                shift,
                (range.qmin, range.qmax),
                with_row_sums,
                &epilogue,
                out,
            )
            .map_err(|e| QuantError::InputOutOfRange {
                index: e.index,
                value: e.value,
                qmin: range.qmin,
                qmax: range.qmax,
            })
    }

    /// Inner dimension `p`.
    pub fn in_features(&self) -> usize {
        self.packed.p()
    }

    /// Output dimension `n`.
    pub fn out_features(&self) -> usize {
        self.packed.n()
    }

    /// Parameters of the weights.
    pub fn weight_params(&self) -> &WeightParams {
        &self.weight
    }

    /// How activations are quantized.
    pub fn activations(&self) -> DynamicActivations {
        self.activations
    }

    /// Name of the kernel this layer runs.
    pub fn kernel_name(&self) -> &'static str {
        self.kernel.name()
    }
}

/// Whether an input of `elements` values is scanned and quantized on the
/// rayon pool: from the kernel's [`PASS_SPLIT_ELEMENTS`] (2^15, or 2^16
/// where the passes run on AVX-512). Below it, waking another thread costs
/// more than it saves.
///
/// AVX-512 passes are about twice as fast per value, so they pay for a
/// second thread only at twice the size (measured with alternating
/// one- and two-thread rounds in one process).
///
/// [`PASS_SPLIT_ELEMENTS`]: crate::gemm::kernel::Kernel::PASS_SPLIT_ELEMENTS
#[cfg(feature = "parallel")]
fn splits_passes(kernel: KernelChoice, elements: usize) -> bool {
    rayon::current_num_threads() > 1 && elements >= kernel.pass_split_elements()
}

/// Elements per piece when a whole tensor's extremes are found in pieces.
const EXTREMES_CHUNK: usize = 1 << 14;

/// `f` of each `chunk`-long piece of `data`, in order; on the rayon pool
/// when `data` is large for `kernel`. `chunk` must not be 0.
fn map_chunks<R: Send>(
    kernel: KernelChoice,
    data: &[f32],
    chunk: usize,
    f: impl Fn(&[f32]) -> R + Sync + Send,
    out: &mut Vec<R>,
) {
    out.clear();
    #[cfg(feature = "parallel")]
    if splits_passes(kernel, data.len()) {
        use rayon::prelude::*;
        out.par_extend(data.par_chunks(chunk).map(f));
        return;
    }
    #[cfg(not(feature = "parallel"))]
    let _ = kernel;
    out.extend(data.chunks(chunk).map(f));
}

/// `d[j] = −Σ_k Wq[k,j] + p·z_W[j]` of (11) for each column, or the
/// accumulator-overflow error where it leaves `i64` (`p·z_W` alone can,
/// for `p > 2^32`).
fn zero_point_terms(
    col_sums: &[i64],
    p: usize,
    zero_points: &[i32],
) -> Result<Vec<i64>, QuantError> {
    col_sums
        .iter()
        .zip(zero_points)
        .map(|(&sum, &z)| {
            let d = p as i128 * i128::from(z) - i128::from(sum);
            i64::try_from(d).map_err(|_| QuantError::AccumulatorOverflow {
                inner_dim: p,
                bound: d.unsigned_abs(),
                limit: i64::MAX as u128,
            })
        })
        .collect()
}

/// The rows in `values` (each `p` long, row-major), each quantized with its
/// `params` onto `range`; on the rayon pool when they are many. The values
/// must be finite (see [`ScalarQuantizer::quantize_finite_slice`]).
fn quantize_rows<T: QuantElem>(
    kernel: KernelChoice,
    values: &[f32],
    p: usize,
    params: &[QuantParams],
    range: QuantRange,
    x_q: &mut Vec<T>,
) -> Result<(), QuantError> {
    try_refill(x_q, "quantized input", &[params.len(), p], T::default())?;
    if p == 0 {
        return Ok(());
    }
    let quantize_row = |((row, row_q), &row_params): ((&[f32], &mut [T]), &QuantParams)| {
        let quantizer = ScalarQuantizer::new(row_params, range);
        kernel.vectorized(|| quantizer.quantize_finite_slice(row, row_q))
    };
    #[cfg(feature = "parallel")]
    if splits_passes(kernel, x_q.len()) {
        use rayon::prelude::*;
        let rows = values.par_chunks_exact(p).zip(x_q.par_chunks_exact_mut(p));
        rows.zip(params).for_each(quantize_row);
        return Ok(());
    }
    let rows = values.chunks_exact(p).zip(x_q.chunks_exact_mut(p));
    rows.zip(params).for_each(quantize_row);
    Ok(())
}

/// The elements of `x` as `f32` in logical row-major order: borrowed when
/// `x` is `f32` stored that way, copied once otherwise (transposed, strided
/// or broadcast views, other types), so that every later pass reads one
/// contiguous slice.
///
/// Errors if the copy, the quantized copy or the per-row parameters could
/// not be allocated.
fn row_major_checked<F: Real>(x: ArrayView2<'_, F>) -> Result<Cow<'_, [f32]>, QuantError> {
    check_size("activation params", &[x.nrows()])?;
    check_size("input", &[x.nrows(), x.ncols()])?;
    if let Some(values) = x.to_slice().and_then(as_f32_slice) {
        return Ok(Cow::Borrowed(values));
    }
    let mut copy = try_with_capacity("input", &[x.nrows(), x.ncols()])?;
    copy.extend(x.iter().map(|&v| v.to_f32_nearest()));
    Ok(Cow::Owned(copy))
}

/// (23) fused into the kernel's write-back.
struct Dequantize<'a> {
    layer: &'a DynamicLinear,
    terms: Terms<'a>,
    /// The terms of (11) in `i32` with the call's row zero points, when
    /// every accumulator of this call provably fits in `i32`.
    wrapping: Option<(&'a WrappingTerms, &'a [i32])>,
    row_scales: &'a [f32],
}

/// An accumulator of (11), in either width.
trait Accumulator: Copy {
    /// The nearest `f32` (one rounding).
    fn to_f32(self) -> f32;
    fn is_zero(self) -> bool;
}

macro_rules! accumulator {
    ($($t:ty),*) => {$(
        impl Accumulator for $t {
            #[inline(always)]
            fn to_f32(self) -> f32 {
                self as f32
            }
            #[inline(always)]
            fn is_zero(self) -> bool {
                self == 0
            }
        }
    )*};
}
accumulator!(i32, i64);

impl Dequantize<'_> {
    /// (23) for row `i` from its accumulators `accs[c]`, column `j0 + c`,
    /// in `f32`, stored as `O`.
    #[inline(always)]
    fn dequantize_row<A, O>(&self, i: usize, j0: usize, accs: &[A], out: &mut [O])
    where
        A: Accumulator,
        O: Real,
    {
        let l = self.layer;
        let sx = self.row_scales[i];
        let scales = &l.weight_scales[j0..j0 + accs.len()];
        // An f32 scale product can overflow to ∞, where a zero accumulator
        // must still give 0, not ∞·0 = NaN.
        let product = |acc: A, sw: f32| {
            let y = acc.to_f32() * (sx * sw);
            if acc.is_zero() {
                0.0
            } else {
                y
            }
        };
        let values = out.iter_mut().zip(accs).zip(scales);
        match &l.bias {
            None => {
                for ((o, &acc), &sw) in values {
                    *o = O::from_f32_nearest(product(acc, sw));
                }
            }
            Some(b) => {
                for (((o, &acc), &sw), &b) in values.zip(b.slice(s![j0..j0 + accs.len()])) {
                    *o = O::from_f32_nearest(product(acc, sw) + b);
                }
            }
        }
    }
}

impl<O: Real> Epilogue<O> for Dequantize<'_> {
    #[inline(always)]
    fn write(
        &self,
        i0: usize,
        j0: usize,
        rows: usize,
        cols: usize,
        dots: Dots<'_>,
        dots_stride: usize,
        row_sums: &[i64],
        out: &mut [O],
        out_stride: usize,
    ) {
        if let (Dots::I32(dots), Some((w, row_zero_points))) = (dots, &self.wrapping) {
            w.for_tile(
                (i0, j0, rows, cols),
                dots,
                dots_stride,
                row_sums,
                row_zero_points,
                out,
                out_stride,
                |i, accs, out| self.dequantize_row(i, j0, accs, out),
            );
            return;
        }
        self.terms.for_tile(
            (i0, j0, rows, cols),
            dots,
            dots_stride,
            row_sums,
            out,
            out_stride,
            |i, accs, out| self.dequantize_row(i, j0, accs, out),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `p·z_W` with `p = 2^33` and `z_W = i32::MIN` is −2^64: an error,
    /// not an overflow; the largest that fits is exact.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn zero_point_terms_beyond_i64_are_errors() {
        let err = zero_point_terms(&[0], 1 << 33, &[i32::MIN]).unwrap_err();
        assert!(
            matches!(err, QuantError::AccumulatorOverflow { inner_dim, .. } if inner_dim == 1 << 33),
            "{err}"
        );
        let d = zero_point_terms(&[5, -7], 1 << 32, &[-3, i32::MIN]).unwrap();
        assert_eq!(d, vec![-(3i64 << 32) - 5, i64::MIN + 7]);
    }
}
