//! [`FloatSequential`]: the f32 model a quantized stack is calibrated
//! from, layer by layer as PyTorch's `nn.Sequential` of `nn.Linear` and
//! activations runs it.
//!
//! The model, its `forward` and [`FloatSequential::calibrate`] are `f32`
//! only (it is the `f32` reference the quantized stack is measured
//! against); the quantized stack it converts to takes any
//! [`Real`](crate::Real) type.

use ndarray::{Array1, Array2, ArrayBase, ArrayView1, ArrayView2, Data, Ix2};

use crate::activation::FusedActivation;
use crate::error::{check_inner_dim, QuantError};
use crate::weights::WeightLayout;

/// One f32 linear layer `y = act(x·W + b)`, its weights kept p×n
/// (inputs × outputs).
#[derive(Debug, Clone, PartialEq)]
pub struct FloatLinear {
    weight: Array2<f32>,
    bias: Option<Array1<f32>>,
    activation: FusedActivation,
}

impl FloatLinear {
    /// The layer of `weight` stored as `layout` says (PyTorch's
    /// `nn.Linear.weight` is [`WeightLayout::OutIn`]), an optional bias of
    /// one value per output, and the activation that follows it.
    ///
    /// Errors if the bias length is not the number of outputs, or a weight
    /// or bias is NaN or infinite.
    pub fn new(
        weight: ArrayView2<'_, f32>,
        layout: WeightLayout,
        bias: Option<ArrayView1<'_, f32>>,
        activation: FusedActivation,
    ) -> Result<FloatLinear, QuantError> {
        let weight = match layout {
            WeightLayout::InOut => weight.to_owned(),
            WeightLayout::OutIn => weight.t().as_standard_layout().into_owned(),
        };
        crate::quantize::check_finite(&weight, "weights")?;
        if let Some(b) = &bias {
            crate::linear::check_len("bias", weight.ncols(), b.len())?;
            crate::quantize::check_finite(b, "bias")?;
        }
        Ok(FloatLinear {
            weight,
            bias: bias.map(|b| b.to_owned()),
            activation,
        })
    }

    /// The weights, p×n.
    pub fn weight(&self) -> ArrayView2<'_, f32> {
        self.weight.view()
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<ArrayView1<'_, f32>> {
        self.bias.as_ref().map(|b| b.view())
    }

    /// The activation after the layer.
    pub fn activation(&self) -> FusedActivation {
        self.activation
    }

    /// Input width `p`.
    pub fn in_features(&self) -> usize {
        self.weight.nrows()
    }

    /// Output width `n`.
    pub fn out_features(&self) -> usize {
        self.weight.ncols()
    }

    /// `act(x·W + b)` in f32, for `x` of `p` columns.
    pub fn forward<S: Data<Elem = f32>>(
        &self,
        x: &ArrayBase<S, Ix2>,
    ) -> Result<Array2<f32>, QuantError> {
        check_inner_dim(x.ncols(), self.in_features())?;
        let mut y = x.dot(&self.weight);
        if let Some(b) = &self.bias {
            y += b;
        }
        self.activation.apply_real(&mut y);
        Ok(y)
    }
}

/// A stack of [`FloatLinear`] layers, each one's output the next one's
/// input: the f32 model to calibrate (see
/// [`Calibration`](crate::Calibration)).
#[derive(Debug, Clone, PartialEq)]
pub struct FloatSequential {
    layers: Vec<FloatLinear>,
}

impl FloatSequential {
    /// The stack of `layers`, in order.
    ///
    /// Errors: [`QuantError::EmptyStack`], or
    /// [`QuantError::LayerMismatch`] where a layer's input width is not the
    /// previous one's output width.
    pub fn new(layers: Vec<FloatLinear>) -> Result<FloatSequential, QuantError> {
        if layers.is_empty() {
            return Err(QuantError::EmptyStack);
        }
        for (i, pair) in layers.windows(2).enumerate() {
            if pair[0].out_features() != pair[1].in_features() {
                return Err(QuantError::LayerMismatch {
                    layer: i + 1,
                    what: format!(
                        "{} outputs, but {} inputs",
                        pair[0].out_features(),
                        pair[1].in_features()
                    ),
                });
            }
        }
        Ok(FloatSequential { layers })
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[FloatLinear] {
        &self.layers
    }

    /// The first layer's input width.
    pub fn in_features(&self) -> usize {
        self.layers[0].in_features()
    }

    /// The last layer's output width.
    pub fn out_features(&self) -> usize {
        self.layers[self.layers.len() - 1].out_features()
    }

    /// Every layer in f32, in order (`f32` input only: this is the `f32`
    /// reference model).
    pub fn forward<S: Data<Elem = f32>>(
        &self,
        x: &ArrayBase<S, Ix2>,
    ) -> Result<Array2<f32>, QuantError> {
        let mut y = self.layers[0].forward(x)?;
        for layer in &self.layers[1..] {
            y = layer.forward(&y)?;
        }
        Ok(y)
    }
}
