//! [`QuantizedSequential`]: quantized layers run one after another, their
//! 8-bit activations passed on without leaving the quantized domain.

use ndarray::{Array2, ArrayBase, Data, DataMut, Ix2};

use crate::alloc::try_filled;
use crate::elem::{ElemKind, QuantElem};
use crate::error::{check_inner_dim, check_out_shape, QuantError};
use crate::linear::to_matrix;
use crate::linear::QuantizedLinear;
use crate::params::QuantParams;
use crate::quantize::through_quantized;
use crate::real::Real;
use crate::workspace::{matrix, matrix_mut, Workspace};

/// A stack of [`QuantizedLinear`] layers (an MLP: each layer's fused
/// activation, e.g. ReLU, is its clamp), run one after another on 8-bit
/// activations.
///
/// Each layer's output is the next one's input unchanged, so the stack
/// checks when it is built that every pair fits: the widths chain, the
/// activation types agree, the output params of one layer are the input
/// params of the next (bit for bit), and the outputs one layer can produce
/// lie in the input range the next declares.
///
/// ```
/// use ndarray::array;
/// use qlinear::{FusedActivation, QuantParams, QuantizedLinear, QuantizedSequential, WeightLayout};
///
/// let (pw, px, ph, py) = (
///     QuantParams::new(0.01, 0)?,
///     QuantParams::new(0.05, 0)?,
///     QuantParams::new(0.1, -128)?,
///     QuantParams::new(0.2, 0)?,
/// );
/// let (w1, w2) = (array![[50i8, -20, 10], [5, 40, -30]], array![[10i8], [-20], [30]]);
/// let hidden = QuantizedLinear::builder_int8(w1.view(), WeightLayout::InOut, pw)
///     .input_params(px)
///     .output_params(ph)
///     .fused_activation(FusedActivation::Relu)
///     .build()?;
/// let last = QuantizedLinear::builder_int8(w2.view(), WeightLayout::InOut, pw)
///     .input_params(ph)
///     .output_params(py)
///     .build()?;
/// let mlp = QuantizedSequential::new(vec![hidden.clone(), last.clone()])?;
/// let x = array![[20i8, -7], [127, 127]];
/// // The same bits as running the layers by hand.
/// assert_eq!(mlp.forward(&x)?, last.forward(&hidden.forward(&x)?)?);
/// let y = mlp.forward_f32(&array![[1.0f32, -0.35]])?;
/// assert_eq!(y.dim(), (1, 1));
/// # Ok::<(), qlinear::QuantError>(())
/// ```
#[derive(Debug, Clone)]
pub struct QuantizedSequential {
    layers: Vec<QuantizedLinear>,
}

impl QuantizedSequential {
    /// The stack of `layers`, in order.
    ///
    /// Errors: [`QuantError::EmptyStack`], or [`QuantError::LayerMismatch`]
    /// naming the first pair that does not fit and how.
    pub fn new(layers: Vec<QuantizedLinear>) -> Result<QuantizedSequential, QuantError> {
        if layers.is_empty() {
            return Err(QuantError::EmptyStack);
        }
        for (i, pair) in layers.windows(2).enumerate() {
            check_pair(&pair[0], &pair[1])
                .map_err(|what| QuantError::LayerMismatch { layer: i + 1, what })?;
        }
        Ok(QuantizedSequential { layers })
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[QuantizedLinear] {
        &self.layers
    }

    /// The first layer's input width.
    pub fn in_features(&self) -> usize {
        self.first().in_features()
    }

    /// The last layer's output width.
    pub fn out_features(&self) -> usize {
        self.last().out_features()
    }

    /// Parameters of the stack's input (the first layer's).
    pub fn input_params(&self) -> QuantParams {
        self.first().input_params()
    }

    /// Parameters of the stack's output (the last layer's).
    pub fn output_params(&self) -> QuantParams {
        self.last().output_params()
    }

    /// The activation type of every layer.
    pub fn activation_type(&self) -> ElemKind {
        self.first().activation_type()
    }

    /// Runs every layer on quantized input `x` (m × `in_features`, `i8` or
    /// `u8` as the layers were built): the last layer's quantized output.
    ///
    /// Errors as [`QuantizedLinear::forward`] does for the first layer.
    pub fn forward<S, T>(&self, x: &ArrayBase<S, Ix2>) -> Result<Array2<T>, QuantError>
    where
        S: Data<Elem = T>,
        T: QuantElem,
    {
        let (m, n) = (x.nrows(), self.out_features());
        let mut out = to_matrix(m, n, try_filled("output", &[m, n], T::default())?);
        self.forward_into(x, &mut out, &mut Workspace::new())?;
        Ok(out)
    }

    /// [`forward`](Self::forward) into `out` (m × `out_features`, any
    /// layout, every element overwritten), the activations between layers
    /// kept in `workspace`: once the workspace has seen a batch this large,
    /// the call allocates nothing (with the layers' packing buffers, which
    /// each thread keeps) when `out` is in standard layout and the product
    /// runs on one thread.
    ///
    /// Errors as `forward` does, and if `out` is not m × `out_features`.
    ///
    /// ```
    /// use ndarray::{array, Array2};
    /// use qlinear::{QuantParams, QuantizedLinear, QuantizedSequential, WeightLayout, Workspace};
    ///
    /// let p = QuantParams::new(0.1, 0)?;
    /// let w = array![[20i8, -10], [5, 30]];
    /// let layer = |w: &Array2<i8>| {
    ///     QuantizedLinear::builder_int8(w.view(), WeightLayout::InOut, p)
    ///         .input_params(p)
    ///         .output_params(p)
    ///         .build()
    /// };
    /// let mlp = QuantizedSequential::new(vec![layer(&w)?, layer(&w)?])?;
    /// let mut workspace = Workspace::new();
    /// let mut y = Array2::<i8>::zeros((1, 2));
    /// for x in [array![[10i8, 20]], array![[-3i8, 7]]] {
    ///     mlp.forward_into(&x, &mut y, &mut workspace)?; // allocates on the first call only
    ///     assert_eq!(y, mlp.forward(&x)?);
    /// }
    /// # Ok::<(), qlinear::QuantError>(())
    /// ```
    pub fn forward_into<S, So, T>(
        &self,
        x: &ArrayBase<S, Ix2>,
        out: &mut ArrayBase<So, Ix2>,
        workspace: &mut Workspace,
    ) -> Result<(), QuantError>
    where
        S: Data<Elem = T>,
        So: DataMut<Elem = T>,
        T: QuantElem,
    {
        let [_, a, b, _] = T::buffers(workspace);
        self.run(x, out, (a, b))
    }

    /// Every layer on `x`, the last into `out`, the others through `a` and
    /// `b` in turn.
    fn run<S, So, T>(
        &self,
        x: &ArrayBase<S, Ix2>,
        out: &mut ArrayBase<So, Ix2>,
        (a, b): (&mut Vec<T>, &mut Vec<T>),
    ) -> Result<(), QuantError>
    where
        S: Data<Elem = T>,
        So: DataMut<Elem = T>,
        T: QuantElem,
    {
        let (last, before_last) = self.layers.split_last().expect("a stack is never empty");
        let Some((first, middle)) = before_last.split_first() else {
            return last.forward_into(x, out);
        };
        let m = x.nrows();
        let (mut filled, mut spare) = (a, b);
        first.forward_into(
            x,
            &mut matrix_mut(filled, "activations", (m, first.out_features()))?,
        )?;
        let mut width = first.out_features();
        for layer in middle {
            let shape = (m, layer.out_features());
            layer.forward_into(
                &matrix(filled, (m, width)),
                &mut matrix_mut(spare, "activations", shape)?,
            )?;
            std::mem::swap(&mut filled, &mut spare);
            width = layer.out_features();
        }
        last.forward_into(&matrix(filled, (m, width)), out)
    }

    /// Quantizes real input `x` with the first layer's params (into its
    /// declared input range), runs [`forward`](Self::forward) and
    /// dequantizes with the last layer's params. Any [`Real`] input: each
    /// value is converted to `f32` first, and the output, computed in
    /// `f32`, is converted back to the input's type.
    ///
    /// Errors on a NaN in `x` and as `forward` does.
    pub fn forward_f32<S>(&self, x: &ArrayBase<S, Ix2>) -> Result<Array2<S::Elem>, QuantError>
    where
        S: Data,
        S::Elem: Real,
    {
        check_inner_dim(x.ncols(), self.in_features())?;
        // Allocated first, so that a batch too large fails before any pass.
        let (m, n) = (x.nrows(), self.out_features());
        let mut out = to_matrix(m, n, try_filled("output", &[m, n], S::Elem::default())?);
        self.forward_f32_into(x, &mut out, &mut Workspace::new())?;
        Ok(out)
    }

    /// [`forward_f32`](Self::forward_f32) into `out` (m ×
    /// `out_features`, any layout, every element overwritten), through
    /// `workspace`: after the first call with a batch this large it
    /// allocates nothing, as [`forward_into`](Self::forward_into). Input
    /// and output may be of any [`Real`] types.
    ///
    /// Errors as `forward_f32` does, and if `out` is not m × `out_features`.
    pub fn forward_f32_into<S, So>(
        &self,
        x: &ArrayBase<S, Ix2>,
        out: &mut ArrayBase<So, Ix2>,
        workspace: &mut Workspace,
    ) -> Result<(), QuantError>
    where
        S: Data,
        S::Elem: Real,
        So: DataMut,
        So::Elem: Real,
    {
        match self.activation_type() {
            ElemKind::Int8 => self.forward_f32_into_as::<i8, S, So>(x, out, workspace),
            ElemKind::Uint8 => self.forward_f32_into_as::<u8, S, So>(x, out, workspace),
        }
    }

    fn forward_f32_into_as<T, S, So>(
        &self,
        x: &ArrayBase<S, Ix2>,
        out: &mut ArrayBase<So, Ix2>,
        workspace: &mut Workspace,
    ) -> Result<(), QuantError>
    where
        T: QuantElem,
        S: Data,
        S::Elem: Real,
        So: DataMut,
        So::Elem: Real,
    {
        let first = self.first();
        check_inner_dim(x.ncols(), first.in_features())?;
        check_out_shape(out.shape(), (x.nrows(), self.out_features()))?;
        let [input, a, b, output] = T::buffers(workspace);
        let input_params = (first.input_params(), first.input_range());
        through_quantized(
            x,
            input_params,
            self.output_params(),
            out,
            (input, output),
            |x_q, y_q| self.run(&x_q, y_q, (a, b)),
        )
    }

    fn first(&self) -> &QuantizedLinear {
        &self.layers[0]
    }

    fn last(&self) -> &QuantizedLinear {
        &self.layers[self.layers.len() - 1]
    }
}

/// Why `next` cannot take `prev`'s output, if it cannot.
fn check_pair(prev: &QuantizedLinear, next: &QuantizedLinear) -> Result<(), String> {
    if prev.out_features() != next.in_features() {
        return Err(format!(
            "{} outputs, but {} inputs",
            prev.out_features(),
            next.in_features()
        ));
    }
    if prev.activation_type() != next.activation_type() {
        return Err(format!(
            "{:?} activations out, but {:?} in",
            prev.activation_type(),
            next.activation_type()
        ));
    }
    let (out, input) = (prev.output_params(), next.input_params());
    // Bit for bit: a scale one ulp off would requantize with other numbers.
    if out.scale.to_bits() != input.scale.to_bits() || out.zero_point != input.zero_point {
        return Err(format!(
            "output params (scale {:e}, zero point {}) differ from input params \
             (scale {:e}, zero point {})",
            out.scale, out.zero_point, input.scale, input.zero_point
        ));
    }
    let ((lo, hi), range) = (prev.output_clamp(), next.input_range());
    if lo < range.qmin || hi > range.qmax {
        return Err(format!(
            "outputs in [{lo}, {hi}], but the input range is [{}, {}]",
            range.qmin, range.qmax
        ));
    }
    Ok(())
}
