//! [`QuantizedSequential`]: quantized layers run one after another, their
//! 8-bit activations passed on without leaving the quantized domain.

use ndarray::{Array2, ArrayBase, Data, Ix2};

use crate::elem::{ElemKind, QuantElem};
use crate::error::{check_inner_dim, QuantError};
use crate::linear::QuantizedLinear;
use crate::params::QuantParams;
use crate::quantize::through_quantized;
use crate::real::Real;

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
        match self.hidden(x)? {
            Some(h) => self.last().forward(&h),
            None => self.last().forward(x),
        }
    }

    /// The output of every layer but the last on `x`; `None` for a stack
    /// of one layer.
    fn hidden<S, T>(&self, x: &ArrayBase<S, Ix2>) -> Result<Option<Array2<T>>, QuantError>
    where
        S: Data<Elem = T>,
        T: QuantElem,
    {
        let before_last = &self.layers[..self.layers.len() - 1];
        let Some((first, middle)) = before_last.split_first() else {
            return Ok(None);
        };
        let mut h = first.forward(x)?;
        for layer in middle {
            h = layer.forward(&h)?;
        }
        Ok(Some(h))
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
        match self.activation_type() {
            ElemKind::Int8 => self.forward_f32_as::<i8, S>(x),
            ElemKind::Uint8 => self.forward_f32_as::<u8, S>(x),
        }
    }

    fn forward_f32_as<T, S>(&self, x: &ArrayBase<S, Ix2>) -> Result<Array2<S::Elem>, QuantError>
    where
        T: QuantElem,
        S: Data,
        S::Elem: Real,
    {
        let first = self.first();
        check_inner_dim(x.ncols(), first.in_features())?;
        let input = (first.input_params(), first.input_range());
        let output = (self.out_features(), self.output_params());
        through_quantized::<T, S>(x, input, output, |x_q, y_q| match self.hidden(x_q)? {
            Some(h) => self.last().forward_into(&h, y_q),
            None => self.last().forward_into(x_q, y_q),
        })
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
