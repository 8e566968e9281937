//! Calibration as PyTorch's prepare / convert does it: run the f32 model
//! over the user's batches with an observer at every layer boundary, then
//! convert it to a [`QuantizedSequential`] whose activation params come
//! from those observers and whose weights are quantized from the model's.

use ndarray::{ArrayBase, ArrayView2, Data, Ix2};

use crate::elem::ElemKind;
use crate::error::{check_inner_dim, QuantError};
use crate::float_sequential::FloatSequential;
use crate::linear::{F32Bias, QuantizedLinear};
use crate::observer::Observer;
use crate::params::{QuantRange, Scheme};
use crate::requant::Requantizer;
use crate::sequential::QuantizedSequential;
use crate::weights::{WeightLayout, WeightParams};

/// One parameter set for a whole weight matrix, or one per output feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum WeightGranularity {
    /// One `(scale, zero point)` for all of `W`.
    PerTensor,
    /// One per output feature: the usual choice, and the more accurate
    /// where features differ in range.
    #[default]
    PerChannel,
}

/// How [`Calibration::convert`] quantizes a model.
///
/// The default is the most accurate setting for typical models: int8
/// activations with affine params, per-channel symmetric weights on
/// `[-127, 127]` (TFLite's and PyTorch's weights), and the notebook's
/// `Float64` requantizer. Pick the requantizer and activation type of a
/// deployment target from the README's table to match that runtime.
///
/// With the `serde` feature, fields missing from the data take their
/// [`Default`] values, so a config names only what it changes.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
pub struct ConvertOptions {
    /// `i8` or `u8` activations between layers (full range).
    pub activation_type: ElemKind,
    /// How activation params are derived from an observed range.
    pub activation_scheme: Scheme,
    /// Per tensor or per output feature.
    pub weight_granularity: WeightGranularity,
    /// How weight params are derived from the weights' range.
    pub weight_scheme: Scheme,
    /// The integer range of the weights.
    pub weight_range: QuantRange,
    /// Every layer's output stage.
    pub requantizer: Requantizer,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            activation_type: ElemKind::Int8,
            activation_scheme: Scheme::Affine,
            weight_granularity: WeightGranularity::PerChannel,
            weight_scheme: Scheme::Symmetric,
            weight_range: QuantRange::INT8_NARROW,
            requantizer: Requantizer::Float64,
        }
    }
}

impl ConvertOptions {
    /// The params of real weights `w` (p×n) under the `weight_*` fields.
    pub(crate) fn weight_params(&self, w: ArrayView2<'_, f32>) -> Result<WeightParams, QuantError> {
        match self.weight_granularity {
            WeightGranularity::PerTensor => {
                WeightParams::per_tensor(&w, self.weight_scheme, self.weight_range)
            }
            WeightGranularity::PerChannel => WeightParams::per_channel(
                &w,
                WeightLayout::InOut,
                self.weight_scheme,
                self.weight_range,
            ),
        }
    }
}

/// One observer per boundary of a [`FloatSequential`] (its input, then
/// each layer's output after its activation), fed by running the model.
///
/// ```
/// use ndarray::{array, Array2};
/// use qlinear::{
///     ConvertOptions, FloatLinear, FloatSequential, FusedActivation, HistogramObserver,
///     WeightLayout,
/// };
///
/// // nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)), weights out × in.
/// let (w0, b0) = (array![[0.5f32, -1.0], [0.25, 0.75], [-0.5, 0.5]], array![0.1f32, 0.0, -0.1]);
/// let w1 = array![[1.0f32, -0.5, 0.25]];
/// let model = FloatSequential::new(vec![
///     FloatLinear::new(w0.view(), WeightLayout::OutIn, Some(b0.view()), FusedActivation::Relu)?,
///     FloatLinear::new(w1.view(), WeightLayout::OutIn, None, FusedActivation::None)?,
/// ])?;
/// let batches: Vec<Array2<f32>> = (0..4)
///     .map(|k| Array2::from_shape_fn((64, 2), |(i, j)| ((i * 7 + j * 3 + k) % 17) as f32 / 8.0 - 1.0))
///     .collect();
/// let calibration = model.calibrate(batches.iter().map(|b| b.view()), HistogramObserver::new())?;
/// let int8 = calibration.convert(&model, &ConvertOptions::default())?;
/// let x = array![[0.5f32, -0.25]];
/// let (y, y_f32) = (int8.forward_f32(&x)?, model.forward(&x)?);
/// assert!((y[[0, 0]] - y_f32[[0, 0]]).abs() < 0.05);
/// # Ok::<(), qlinear::QuantError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Calibration<O> {
    observers: Vec<O>,
}

impl FloatSequential {
    /// Runs the model over `batches` with a copy of `observer` at every
    /// boundary: PyTorch's prepare and calibration loop in one call.
    /// Batches are `f32`, as the model is.
    ///
    /// Errors if a batch does not have the model's input width.
    pub fn calibrate<'a, O, I>(&self, batches: I, observer: O) -> Result<Calibration<O>, QuantError>
    where
        O: Observer + Clone,
        I: IntoIterator<Item = ArrayView2<'a, f32>>,
    {
        let mut calibration = Calibration::new(self, observer);
        for batch in batches {
            calibration.observe(self, &batch)?;
        }
        Ok(calibration)
    }
}

impl<O: Observer + Clone> Calibration<O> {
    /// Fresh copies of `observer` for every boundary of `model`.
    pub fn new(model: &FloatSequential, observer: O) -> Calibration<O> {
        Calibration {
            observers: vec![observer; model.layers().len() + 1],
        }
    }

    /// Runs `model` on one batch and records every boundary.
    ///
    /// Errors if `x` does not have the model's input width, or `model` has
    /// another number of layers than the one this calibration was made for.
    pub fn observe<S: Data<Elem = f32>>(
        &mut self,
        model: &FloatSequential,
        x: &ArrayBase<S, Ix2>,
    ) -> Result<(), QuantError> {
        self.check_model(model)?;
        check_inner_dim(x.ncols(), model.in_features())?;
        self.observers[0].observe(x);
        let mut h = model.layers()[0].forward(x)?;
        self.observers[1].observe(&h);
        for (layer, observer) in model.layers()[1..].iter().zip(&mut self.observers[2..]) {
            h = layer.forward(&h)?;
            observer.observe(&h);
        }
        Ok(())
    }

    /// The observers, input first.
    pub fn observers(&self) -> &[O] {
        &self.observers
    }

    /// The quantized stack of `model`: layer `i` takes the params of
    /// boundary `i` and produces those of boundary `i + 1`, so the layers
    /// chain exactly; weights and biases are quantized from the model's.
    ///
    /// Errors if a boundary saw no finite value, or as
    /// [`QuantizedLinear`]'s builder does for a layer.
    pub fn convert(
        &self,
        model: &FloatSequential,
        options: &ConvertOptions,
    ) -> Result<QuantizedSequential, QuantError> {
        self.check_model(model)?;
        let range = options.activation_type.range();
        let params = self
            .observers
            .iter()
            .map(|o| o.params(options.activation_scheme, range))
            .collect::<Result<Vec<_>, _>>()?;
        let layers = model
            .layers()
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let w = layer.weight();
                let pw = options.weight_params(w)?;
                let mut builder = QuantizedLinear::builder_f32(w, WeightLayout::InOut, pw)
                    .activation_type(options.activation_type)
                    .input_params(params[i])
                    .output_params(params[i + 1])
                    .requantizer(options.requantizer)
                    .fused_activation(layer.activation());
                if let Some(bias) = layer.bias() {
                    builder = builder.bias_f32(F32Bias::Real(bias));
                }
                builder.build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        QuantizedSequential::new(layers)
    }

    fn check_model(&self, model: &FloatSequential) -> Result<(), QuantError> {
        crate::linear::check_len(
            "calibration boundaries (layers + 1)",
            self.observers.len(),
            model.layers().len() + 1,
        )
    }
}
