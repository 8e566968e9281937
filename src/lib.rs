//! Exact affine int8 quantization and quantized linear layers over
//! [`ndarray`].
//!
//! ```
//! use ndarray::array;
//! use qlinear::{F32Bias, QuantParams, QuantizedLinear};
//!
//! // Parameters from real ranges, as the notebook derives them.
//! let px = QuantParams::from_range(-1.0, 1.0)?;
//! let pw = QuantParams::from_range(-0.5, 0.5)?;
//! let py = QuantParams::from_range(-2.0, 2.0)?;
//!
//! let w = array![[0.25f32, -0.5, 0.125], [0.5, 0.25, -0.25]]; // 2 inputs × 3 outputs
//! let b = array![0.1f32, 0.0, -0.1];
//! let layer = QuantizedLinear::from_f32(&w, pw, F32Bias::Real(b.view()), px, py)?;
//!
//! let x = array![[0.5f32, -0.25], [1.0, 1.0]];
//! let y = layer.forward_f32(&x)?;
//! let exact = x.dot(&w) + &b;
//! // Within the bound the scales imply (see the README's "Accuracy").
//! assert!((&y - &exact).iter().all(|e| e.abs() < 0.03));
//! # Ok::<(), qlinear::QuantError>(())
//! ```
//!
//! The arithmetic is the seed notebook's (`docs/seed_notebook.txt`), reproduced bit
//! for bit: [`quantize()`] in `f32` with ties to even, [`dequantize()`] in
//! `f64`, an exact integer accumulator (never a silent wrap), and the `f64`
//! requantization of [`Requantizer::Float64`]. Beyond it:
//!
//! - parameters: [`QuantParams`] (notebook, [affine](QuantParams::affine),
//!   [symmetric](QuantParams::symmetric)), target ranges [`QuantRange`],
//!   per-channel [`WeightParams`];
//! - layers: [`QuantizedLinear`] (int8 or uint8 activations, the
//!   [`Requantizer`]s of numpy, LiteRT, XNNPACK and ONNX Runtime bit for
//!   bit, fused activations) and [`DynamicLinear`]; stacks of them,
//!   [`QuantizedSequential`] and [`DynamicSequential`];
//! - calibration: the [`observer`]s, [`sqnr_db`], [`max_abs_error`];
//! - real types: every real-valued API takes `f32`, `f64` and (feature
//!   `half`, on by default) `half::f16` and `half::bf16`, converted to
//!   `f32` first ([`Real`]);
//! - speed: packed weights and SIMD kernels chosen at run time
//!   ([`kernel_name`], [`available_kernels`]), every one equal to the naive
//!   [`gemm::reference`] loop.
//!
//! The numbered equations in the module docs ([`params`],
//! [`quantize`](mod@quantize), [`requant`], [`linear`], [`dynamic`],
//! [`observer`], [`metrics`]) are the specification.
#![deny(missing_docs)]

mod accumulator;
pub mod activation;
mod alloc;
pub mod calibration;
pub mod dynamic;
mod dynamic_buffers;
pub mod dynamic_sequential;
pub mod elem;
mod elem_kind;
pub mod error;
pub mod float_sequential;
pub mod gemm;
pub mod linear;
pub mod metrics;
mod model_file;
pub mod observer;
pub mod params;
pub mod quantize;
mod quantized_file;
pub mod real;
pub mod requant;
pub mod sequential;
#[cfg(feature = "serde")]
mod serde_fields;
pub mod weights;
pub mod workspace;

pub use activation::FusedActivation;
pub use calibration::{Calibration, ConvertOptions, WeightGranularity};
pub use dynamic::{DynamicActivations, DynamicLinear, Granularity};
pub use dynamic_sequential::{DynamicSequential, DynamicWorkspace};
pub use elem::{ElemKind, QuantElem};
pub use error::QuantError;
pub use float_sequential::{FloatLinear, FloatSequential};
pub use gemm::{available_kernels, forced_kernel, kernel_name, KERNEL_ENV};
pub use linear::{Bias, F32Bias, LinearBuilder, QuantizedLinear};
pub use metrics::{max_abs_error, sqnr_db};
pub use observer::{
    ChannelObserver, HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver, Observer,
    PerChannelMinMaxObserver, PercentileObserver,
};
pub use params::{QuantParams, QuantRange, Scheme, MIN_SCALE};
pub use quantize::{
    dequantize, dequantize_as, quantize, quantize_as, try_dequantize, try_dequantize_as,
    try_quantize,
};
pub use quantized_file::FORMAT_VERSION;
pub use real::Real;
pub use requant::{Requantizer, Rounding};
pub use sequential::QuantizedSequential;
pub use weights::{WeightLayout, WeightParams};
pub use workspace::Workspace;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The guide's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/guide.md")]
pub struct GuideDoctests;
