//! [`LinearBuilder`]: every option of a [`QuantizedLinear`] named, set in
//! any order, and validated together once, by [`LinearBuilder::build`].

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use super::{quantize_bias_i32, Bias, F32Bias, Options, OutputClamp, QuantizedLinear};
use crate::activation::FusedActivation;
use crate::elem::ElemKind;
use crate::error::{check_size, QuantError};
use crate::gemm::KernelChoice;
use crate::params::{QuantParams, QuantRange};
use crate::quantize::{check_no_nan, quantize_as};
use crate::real::Real;
use crate::requant::Requantizer;
use crate::weights::{WeightLayout, WeightParams};

/// The weights a builder starts from.
#[derive(Debug, Clone)]
enum Weights<'w> {
    Int8(ArrayView2<'w, i8>),
    /// Real weights, quantized when the builder was made: their shape as
    /// stored, and the p×n int8 weights or why they could not be
    /// quantized (reported by `build`, after the options' own errors).
    Real {
        dim: (usize, usize),
        quantized: Result<Array2<i8>, QuantError>,
    },
}

/// The bias a builder was given; real values are kept converted to `f32`,
/// the documented semantics of every real type, and quantized when built.
#[derive(Debug, Clone)]
enum BiasInput {
    Quantized(Bias),
    Real(Array1<f32>),
    RealWithParams(Array1<f32>, QuantParams),
}

impl BiasInput {
    /// The quantized bias of a layer of `n` outputs with input scale
    /// `input_scale` and weight scales `weight_scales` (one per output).
    fn quantize(
        self,
        n: usize,
        input_scale: f64,
        weight_scales: &[f64],
    ) -> Result<Bias, QuantError> {
        match self {
            BiasInput::Quantized(bias) => Ok(bias),
            BiasInput::RealWithParams(values, params) => {
                super::check_len("bias", n, values.len())?;
                params.validate()?;
                check_no_nan(&values, "bias")?;
                Ok(Bias::Int8 {
                    values: quantize_as(&values, params, QuantRange::INT8)?,
                    params,
                })
            }
            BiasInput::Real(values) => {
                super::check_len("bias", n, values.len())?;
                let scales: Vec<f64> = weight_scales.iter().map(|s_w| input_scale * s_w).collect();
                Ok(Bias::Int32(quantize_bias_i32(values.view(), &scales)?))
            }
        }
    }
}

/// Options of a [`QuantizedLinear`], from
/// [`QuantizedLinear::builder_f32`] or [`QuantizedLinear::builder_int8`].
///
/// Setters take plain values and never fail; [`build`](Self::build)
/// checks the whole set at once, so the order of the calls does not
/// matter, and packs the weights once. The input and output parameters
/// are required; everything else has the notebook's default (int8
/// activations, [`Requantizer::Float64`], no bias, no clamp beyond the
/// output type, the fastest kernel).
///
/// ```
/// use ndarray::array;
/// use qlinear::{
///     ElemKind, F32Bias, QuantParams, QuantRange, QuantizedLinear, Requantizer, WeightLayout,
///     WeightParams,
/// };
///
/// // PyTorch's nn.Linear(2, 3).weight: out × in.
/// let w = array![[0.25f32, 0.5], [-0.5, 0.25], [0.125, -0.25]];
/// let b = array![0.1f32, 0.0, -0.1];
/// let layer = QuantizedLinear::builder_f32(w.view(), WeightLayout::OutIn, WeightParams::PerTensor(
///     QuantParams::new(0.5 / 127.0, 0)?,
/// ))
/// .bias_f32(F32Bias::Real(b.view()))
/// .activation_type(ElemKind::Uint8)
/// .input_params(QuantParams::affine(-1.0, 1.0, QuantRange::UINT8)?)
/// .output_params(QuantParams::affine(-2.0, 2.0, QuantRange::UINT8)?)
/// .requantizer(Requantizer::Float32)
/// .build()?;
/// assert_eq!((layer.in_features(), layer.out_features()), (2, 3));
/// # Ok::<(), qlinear::QuantError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct LinearBuilder<'w> {
    weights: Weights<'w>,
    layout: WeightLayout,
    weight_params: WeightParams,
    bias: BiasInput,
    input: Option<QuantParams>,
    output: Option<QuantParams>,
    requantizer: Requantizer,
    activation_type: ElemKind,
    input_range: Option<QuantRange>,
    clamp: OutputClamp,
    kernel: Option<String>,
}

impl QuantizedLinear {
    /// A builder from real weights stored as `layout` says, quantized here
    /// with `params` (per tensor, or one entry per output feature); a
    /// problem with them is reported by [`build`](LinearBuilder::build).
    /// Any [`Real`] weights: each value is converted to `f32` first.
    pub fn builder_f32<F: Real>(
        weights: ArrayView2<'_, F>,
        layout: WeightLayout,
        params: impl Into<WeightParams>,
    ) -> LinearBuilder<'_> {
        let params = params.into();
        let weights = Weights::Real {
            dim: weights.dim(),
            quantized: params.quantize(&in_out(weights, layout)),
        };
        LinearBuilder::new(weights, layout, params)
    }

    /// A builder from int8 weights stored as `layout` says, with their
    /// quantization `params`.
    pub fn builder_int8(
        weights: ArrayView2<'_, i8>,
        layout: WeightLayout,
        params: impl Into<WeightParams>,
    ) -> LinearBuilder<'_> {
        LinearBuilder::new(Weights::Int8(weights), layout, params.into())
    }
}

impl<'w> LinearBuilder<'w> {
    fn new(weights: Weights<'w>, layout: WeightLayout, weight_params: WeightParams) -> Self {
        LinearBuilder {
            weights,
            layout,
            weight_params,
            bias: BiasInput::Quantized(Bias::None),
            input: None,
            output: None,
            requantizer: Requantizer::Float64,
            activation_type: ElemKind::Int8,
            input_range: None,
            clamp: OutputClamp::Activation(FusedActivation::None),
            kernel: None,
        }
    }

    /// The parameters of the layer's input activations (required).
    pub fn input_params(mut self, params: QuantParams) -> Self {
        self.input = Some(params);
        self
    }

    /// The parameters of the layer's output activations (required).
    pub fn output_params(mut self, params: QuantParams) -> Self {
        self.output = Some(params);
        self
    }

    /// A bias already quantized (replaces any bias set before).
    pub fn bias(mut self, bias: Bias) -> Self {
        self.bias = BiasInput::Quantized(bias);
        self
    }

    /// A real bias, quantized when the layer is built (replaces any bias
    /// set before). Any [`Real`] type, not necessarily the weights': each
    /// value is converted to `f32` first.
    pub fn bias_f32<F: Real>(mut self, bias: F32Bias<'_, F>) -> Self {
        let to_f32 = |v: ArrayView1<'_, F>| v.mapv(F::to_f32_nearest);
        self.bias = match bias {
            F32Bias::None => BiasInput::Quantized(Bias::None),
            F32Bias::Real(values) => BiasInput::Real(to_f32(values)),
            F32Bias::RealWithParams { values, params } => {
                BiasInput::RealWithParams(to_f32(values), params)
            }
        };
        self
    }

    /// The output stage's arithmetic (see [`Requantizer`]).
    pub fn requantizer(mut self, requantizer: Requantizer) -> Self {
        self.requantizer = requantizer;
        self
    }

    /// `i8` or `u8` activations in and out; the input and output params
    /// are read in that type's domain. The input range, unless set, is the
    /// type's full range.
    pub fn activation_type(mut self, kind: ElemKind) -> Self {
        self.activation_type = kind;
        self
    }

    /// Inputs declared within `range` (e.g. [`QuantRange::UINT8_REDUCED`]):
    /// see [`QuantizedLinear::with_input_range`]. Must fit the activation
    /// type.
    pub fn input_range(mut self, range: QuantRange) -> Self {
        self.input_range = Some(range);
        self
    }

    /// A fused activation, as a clamp derived from the output params
    /// (replaces [`output_clamp`](Self::output_clamp)).
    pub fn fused_activation(mut self, activation: FusedActivation) -> Self {
        self.clamp = OutputClamp::Activation(activation);
        self
    }

    /// Outputs clamped to `[min, max]` in the quantized domain (replaces
    /// [`fused_activation`](Self::fused_activation)).
    pub fn output_clamp(mut self, min: i32, max: i32) -> Self {
        self.clamp = OutputClamp::Explicit(min, max);
        self
    }

    /// The kernel called `name` (see [`available_kernels`](crate::available_kernels))
    /// instead of the fastest.
    pub fn kernel(mut self, name: &str) -> Self {
        self.kernel = Some(name.to_string());
        self
    }

    /// The layer, or the first problem with the options as a whole: a
    /// missing input or output params, invalid params or weights, a bias
    /// or per-channel list whose length is not the number of outputs, an
    /// input range that does not fit the activation type, a kernel this
    /// CPU lacks, or a requantizer that cannot represent the layer (see
    /// [`QuantizedLinear::from_quantized`] and
    /// [`QuantizedLinear::with_requantizer`]).
    pub fn build(self) -> Result<QuantizedLinear, QuantError> {
        let input = self.input.ok_or(QuantError::MissingOption {
            what: "input params",
            setter: "input_params",
        })?;
        let output = self.output.ok_or(QuantError::MissingOption {
            what: "output params",
            setter: "output_params",
        })?;
        input.validate()?;
        let kernel_request = match &self.kernel {
            Some(name) => Some(KernelChoice::named(name)?),
            None => None,
        };
        let n = self.out_features();
        check_size("per-column terms", &[n])?;
        let (scales, _) = self.weight_params.expand(n)?;
        let bias = self.bias.quantize(n, input.scale, &scales)?;
        let options = Options {
            weight: self.weight_params,
            input,
            output,
            bias,
            requantizer: self.requantizer,
            activation_type: self.activation_type,
            input_range: self.input_range,
            clamp: self.clamp,
            kernel_request,
            kernel_from_env: KernelChoice::from_env(),
        };
        match self.weights {
            Weights::Int8(w) => QuantizedLinear::from_spec(&in_out(w, self.layout), options),
            Weights::Real { quantized, .. } => QuantizedLinear::from_spec(&quantized?, options),
        }
    }

    /// The number of output features, from the weights' shape and layout.
    fn out_features(&self) -> usize {
        let (rows, cols) = match &self.weights {
            Weights::Int8(w) => w.dim(),
            Weights::Real { dim, .. } => *dim,
        };
        match self.layout {
            WeightLayout::InOut => cols,
            WeightLayout::OutIn => rows,
        }
    }
}

/// `w` in the crate's p×n layout: a transposed view, never a copy.
fn in_out<A>(w: ArrayView2<'_, A>, layout: WeightLayout) -> ArrayView2<'_, A> {
    match layout {
        WeightLayout::InOut => w,
        WeightLayout::OutIn => w.reversed_axes(),
    }
}
