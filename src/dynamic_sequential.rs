//! [`DynamicSequential`]: dynamic layers run one after another with real
//! activations between them, each layer quantizing its input on every call
//! (an LLM's MLP block with int8 weights).

use ndarray::{Array2, ArrayBase, Data, DataMut, Ix2};

use crate::activation::FusedActivation;
use crate::calibration::ConvertOptions;
use crate::dynamic::{DynamicActivations, DynamicLinear};
use crate::dynamic_buffers::CallBuffers;
use crate::error::{check_inner_dim, check_out_shape, QuantError};
use crate::float_sequential::FloatSequential;
use crate::quantize::check_range_fits;
use crate::workspace::{matrix, matrix_mut};

/// A stack of [`DynamicLinear`] layers, each followed by an activation
/// applied to its real output (ReLU is `max(0, y)`, as in
/// [`FloatSequential`]).
///
/// Between layers the activations stay `f32`, and each layer derives its
/// input's parameters from that input on every call, so no calibration is
/// needed; the price is a quantization pass per layer per call.
///
/// ```
/// use ndarray::array;
/// use qlinear::{
///     ConvertOptions, DynamicActivations, DynamicSequential, DynamicWorkspace, FloatLinear,
///     FloatSequential, FusedActivation, WeightLayout,
/// };
///
/// let (w0, w1) = (array![[0.5f32, -1.0], [0.25, 0.75], [-0.5, 0.5]], array![[1.0f32, -0.5, 0.25]]);
/// let model = FloatSequential::new(vec![
///     FloatLinear::new(w0.view(), WeightLayout::OutIn, None, FusedActivation::Relu)?,
///     FloatLinear::new(w1.view(), WeightLayout::OutIn, None, FusedActivation::None)?,
/// ])?;
/// let int8 = DynamicSequential::from_float(
///     &model,
///     &ConvertOptions::default(),
///     DynamicActivations::default(),
/// )?;
/// let x = array![[0.5f32, -0.25], [1.0, 2.0]];
/// let y = int8.forward(&x)?;
/// assert!((&y - &model.forward(&x)?).iter().all(|e| e.abs() < 0.05));
///
/// // The same bits with the buffers between layers kept for the next call.
/// let (mut out, mut workspace) = (y.clone(), DynamicWorkspace::default());
/// int8.forward_into(&x, &mut out, &mut workspace)?;
/// assert_eq!(out, y);
/// # Ok::<(), qlinear::QuantError>(())
/// ```
#[derive(Debug, Clone)]
pub struct DynamicSequential {
    layers: Vec<(DynamicLinear, FusedActivation)>,
}

/// The buffers [`DynamicSequential::forward_into`] passes activations
/// between layers in, and each layer's quantized input and row
/// parameters, kept so that repeated calls do not allocate them again.
///
/// Starts empty; a call grows each buffer to what its batch needs if it
/// is smaller, and never shrinks them. One
/// workspace serves any stack and batch size, one call at a time.
#[derive(Debug, Clone, Default)]
pub struct DynamicWorkspace {
    buffers: [Vec<f32>; 2],
    /// Each layer's per-call vectors (quantized input, row parameters).
    calls: CallBuffers,
}

impl DynamicSequential {
    /// The stack of `layers`, each with the activation applied to its
    /// output, in order.
    ///
    /// Errors: [`QuantError::EmptyStack`], or [`QuantError::LayerMismatch`]
    /// naming the first pair whose widths do not chain.
    pub fn new(
        layers: Vec<(DynamicLinear, FusedActivation)>,
    ) -> Result<DynamicSequential, QuantError> {
        if layers.is_empty() {
            return Err(QuantError::EmptyStack);
        }
        for (i, pair) in layers.windows(2).enumerate() {
            let (prev, next) = (&pair[0].0, &pair[1].0);
            if prev.out_features() != next.in_features() {
                return Err(QuantError::LayerMismatch {
                    layer: i + 1,
                    what: format!(
                        "{} outputs, but {} inputs",
                        prev.out_features(),
                        next.in_features()
                    ),
                });
            }
        }
        Ok(DynamicSequential { layers })
    }

    /// The f32 `model` with its weights quantized as the `weight_*` fields
    /// of `options` say (the other fields are for static layers and are
    /// not read), every layer quantizing its input as `activations` says
    /// and keeping the model's bias in `f32` and its activation.
    ///
    /// Taking [`ConvertOptions`] lets one value configure both a
    /// calibrated [`QuantizedSequential`](crate::QuantizedSequential) and
    /// this stack; its default weights (per channel, symmetric,
    /// `[-127, 127]`) suit dynamic layers too.
    ///
    /// Errors if the weight range does not fit `i8` (the weights are
    /// stored as `i8`), or as [`DynamicLinear::from_f32`] and
    /// [`DynamicLinear::with_activations`] do for a layer.
    pub fn from_float(
        model: &FloatSequential,
        options: &ConvertOptions,
        activations: DynamicActivations,
    ) -> Result<DynamicSequential, QuantError> {
        check_range_fits::<i8>(options.weight_range)?;
        let layers = model
            .layers()
            .iter()
            .map(|layer| {
                let w = layer.weight();
                let bias = layer.bias().map(|b| b.to_owned());
                let dynamic = DynamicLinear::from_f32(&w, options.weight_params(w)?, bias)?
                    .with_activations(activations)?;
                Ok((dynamic, layer.activation()))
            })
            .collect::<Result<Vec<_>, QuantError>>()?;
        DynamicSequential::new(layers)
    }

    /// The layers and the activation after each, in order.
    pub fn layers(&self) -> &[(DynamicLinear, FusedActivation)] {
        &self.layers
    }

    /// The first layer's input width.
    pub fn in_features(&self) -> usize {
        self.layers[0].0.in_features()
    }

    /// The last layer's output width.
    pub fn out_features(&self) -> usize {
        self.layers[self.layers.len() - 1].0.out_features()
    }

    /// Runs every layer and its activation on real input `x` (m ×
    /// `in_features`, any layout).
    ///
    /// Errors as [`DynamicLinear::forward`] does, for any layer: a NaN or
    /// an infinity in `x` or in a hidden activation, a wrong number of
    /// columns.
    pub fn forward<S: Data<Elem = f32>>(
        &self,
        x: &ArrayBase<S, Ix2>,
    ) -> Result<Array2<f32>, QuantError> {
        let (first, rest) = self.layers.split_first().expect("a stack is not empty");
        let mut y = first.0.forward(x)?;
        first.1.apply_real(&mut y);
        for (layer, activation) in rest {
            y = layer.forward(&y)?;
            activation.apply_real(&mut y);
        }
        Ok(y)
    }

    /// [`forward`](Self::forward) into an existing m × `out_features`
    /// array (any layout), with the activations between layers and each
    /// layer's per-call vectors in `workspace`: the same bits, and once the
    /// workspace has served a batch at least as large, no allocation at all
    /// when `x` and `out` are in standard layout and the call runs on one
    /// thread.
    ///
    /// Errors as `forward` does, and if `out` is not m × `out_features`.
    pub fn forward_into<S, So>(
        &self,
        x: &ArrayBase<S, Ix2>,
        out: &mut ArrayBase<So, Ix2>,
        workspace: &mut DynamicWorkspace,
    ) -> Result<(), QuantError>
    where
        S: Data<Elem = f32>,
        So: DataMut<Elem = f32>,
    {
        let m = x.nrows();
        check_inner_dim(x.ncols(), self.in_features())?;
        check_out_shape(out.shape(), (m, self.out_features()))?;
        let ((last, last_activation), hidden) =
            self.layers.split_last().expect("a stack is not empty");
        let Some(((first, first_activation), middle)) = hidden.split_first() else {
            last.forward_into_with(x, out, &mut workspace.calls)?;
            last_activation.apply_real(out);
            return Ok(());
        };
        let calls = &mut workspace.calls;
        let [mut filled, mut spare] = workspace.buffers.each_mut();
        let mut h = matrix_mut(filled, "hidden activations", (m, first.out_features()))?;
        first.forward_into_with(x, &mut h, calls)?;
        first_activation.apply_real(&mut h);
        let mut width = first.out_features();
        for (layer, activation) in middle {
            let mut h = matrix_mut(spare, "hidden activations", (m, layer.out_features()))?;
            layer.forward_into_with(&matrix(filled, (m, width)), &mut h, calls)?;
            activation.apply_real(&mut h);
            std::mem::swap(&mut filled, &mut spare);
            width = layer.out_features();
        }
        last.forward_into_with(&matrix(filled, (m, width)), out, calls)?;
        last_activation.apply_real(out);
        Ok(())
    }
}
