//! The one error type of the crate.
//!
//! Every input a user can get wrong comes back as a `QuantError` value whose
//! message names the offending values and says what would be accepted.

use std::fmt;

use crate::elem_kind::ElemKind;

/// What went wrong, with the values that caused it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum QuantError {
    /// A real range `[alpha, beta]` that cannot define parameters: a bound is
    /// NaN or infinite, or `alpha >= beta`.
    InvalidRange {
        /// Lower bound as given.
        alpha: f64,
        /// Upper bound as given.
        beta: f64,
    },
    /// A scale that is zero, negative, NaN or infinite, or so small that its
    /// reciprocal overflows `f32`.
    InvalidScale {
        /// The scale as given or derived.
        scale: f64,
    },
    /// An integer target range with `qmin >= qmax`, or one that does not fit
    /// the integer type it is used with.
    InvalidTargetRange {
        /// Lower bound.
        qmin: i32,
        /// Upper bound.
        qmax: i32,
    },
    /// A derived zero point that does not fit in `i32` (a real range far from
    /// zero compared with its width).
    ZeroPointOutOfRange {
        /// The zero point before it was converted to an integer.
        zero_point: f64,
    },
    /// `X` has a different number of columns than `W` has rows.
    InnerDimensionMismatch {
        /// Columns of the input `X` (its inner dimension `p`).
        x_cols: usize,
        /// Rows of the weights `W` (the layer's inner dimension).
        w_rows: usize,
    },
    /// Two arrays that must have the same shape do not.
    ShapeMismatch {
        /// Shape of the first array.
        left: Vec<usize>,
        /// Shape of the second array.
        right: Vec<usize>,
    },
    /// A per-column vector (bias, per-channel parameters) whose length is not
    /// the number of output columns of `W`.
    LengthMismatch {
        /// What the vector is, e.g. `"bias"`.
        what: &'static str,
        /// Number of output columns of `W`.
        expected: usize,
        /// Length given.
        found: usize,
    },
    /// A real number that the operation cannot represent: a NaN to quantize,
    /// or an infinite bias.
    NonFinite {
        /// Which input held the value, e.g. `"input"` or `"bias"`.
        what: &'static str,
        /// Position in logical row-major order.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A requantization multiplier (a ratio of scales) that is not finite or
    /// that the chosen arithmetic cannot represent.
    InvalidMultiplier {
        /// Which multiplier, e.g. `"s_X*s_W/s_Y"`.
        what: &'static str,
        /// The multiplier's value.
        value: f64,
    },
    /// A real bias that does not fit in `i32` at the scale it is quantized
    /// with.
    BiasOutOfRange {
        /// Output column of the bias value.
        column: usize,
        /// The real bias value.
        value: f64,
        /// The scale it was quantized with, `s_X·s_W`.
        scale: f64,
    },
    /// Options that cannot be combined, with the reason.
    IncompatibleOptions {
        /// What conflicts and what to do instead.
        reason: &'static str,
    },
    /// An input activation outside the range the layer was declared with
    /// (a reduced 7-bit range, say).
    InputOutOfRange {
        /// Position in logical row-major order.
        index: usize,
        /// The value.
        value: i32,
        /// Declared lower bound.
        qmin: i32,
        /// Declared upper bound.
        qmax: i32,
    },
    /// Activations of one integer type given to a layer built for the other.
    ActivationType {
        /// The type the layer was built for.
        expected: ElemKind,
        /// The type given.
        found: ElemKind,
    },
    /// An output clamp `[min, max]` that is empty or outside the output type.
    InvalidClamp {
        /// Lower bound as given.
        min: i32,
        /// Upper bound as given.
        max: i32,
        /// Smallest value of the output type.
        type_min: i32,
        /// Largest value of the output type.
        type_max: i32,
    },
    /// A kernel asked for by name that this CPU cannot run, or that is not
    /// exact for the layer's input range.
    KernelUnavailable {
        /// The name asked for.
        name: String,
        /// The kernels this CPU can run.
        available: Vec<&'static str>,
    },
    /// An observer configured with a value outside its valid range.
    InvalidConfig {
        /// Which setting, and what it accepts.
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// Layers that cannot run one after the other: layer `layer` does not
    /// take what layer `layer − 1` produces.
    LayerMismatch {
        /// Index of the second layer of the pair.
        layer: usize,
        /// What differs, with both values.
        what: String,
    },
    /// A layer stack with no layer.
    EmptyStack,
    /// A model file that cannot be read as the model asked for: malformed,
    /// truncated, or without the tensors, types or shapes expected.
    ModelFile {
        /// What is wrong, naming the tensor where there is one.
        what: String,
    },
    /// A builder's `build` was called without a required option.
    MissingOption {
        /// What is missing, e.g. `"input params"`.
        what: &'static str,
        /// The builder method that sets it.
        setter: &'static str,
    },
    /// An observer asked for parameters before it saw any finite value.
    NothingObserved {
        /// Which observer, e.g. `"MinMaxObserver"`.
        observer: &'static str,
    },
    /// A fixed-point multiplier above 1 whose left shift of the accumulator
    /// could leave `i32` in the 32-bit pipeline the requantizer reproduces.
    LeftShiftOverflow {
        /// The multiplier `M`.
        multiplier: f64,
        /// Its left shift `e`.
        shift: i32,
        /// The largest `|acc|` the layer can produce.
        acc_bound: u128,
    },
    /// The worst-case accumulator of a layer does not fit the integer type
    /// its arithmetic needs, so a result could be wrong.
    AccumulatorOverflow {
        /// The layer's inner dimension `p`.
        inner_dim: usize,
        /// The worst-case magnitude of the accumulator.
        bound: u128,
        /// The largest magnitude the arithmetic can hold.
        limit: u128,
    },
    /// An array the operation would allocate is too large: beyond
    /// `isize::MAX` bytes, or more than the allocator could provide (a
    /// broadcast view of 2^50 rows holds little data, but its outputs
    /// would not fit in any memory).
    TooLarge {
        /// What would be allocated, e.g. `"output"`.
        what: &'static str,
        /// Its shape.
        shape: Vec<usize>,
    },
}

/// Bytes of the widest element the crate stores per row, column or output
/// (`i128`, in the reference accumulator).
const WIDEST_ELEMENT: usize = 16;

/// Refuses an array of `shape` whose elements, at [`WIDEST_ELEMENT`] bytes,
/// would pass `isize::MAX` bytes: allocating it would panic on capacity
/// overflow. An m×n output with n ≥ 1 also bounds every per-row buffer.
pub(crate) fn check_size(what: &'static str, shape: &[usize]) -> Result<(), QuantError> {
    if shape.contains(&0) {
        return Ok(());
    }
    let bytes = shape
        .iter()
        .try_fold(WIDEST_ELEMENT, |acc, &d| acc.checked_mul(d));
    match bytes {
        Some(b) if b <= isize::MAX as usize => Ok(()),
        _ => Err(QuantError::TooLarge {
            what,
            shape: shape.to_vec(),
        }),
    }
}

/// An input of `x_cols` columns for weights of `w_rows` rows: they must be
/// equal.
pub(crate) fn check_inner_dim(x_cols: usize, w_rows: usize) -> Result<(), QuantError> {
    if x_cols == w_rows {
        Ok(())
    } else {
        Err(QuantError::InnerDimensionMismatch { x_cols, w_rows })
    }
}

/// An output array of shape `found` for a result of `m×n`.
pub(crate) fn check_out_shape(found: &[usize], (m, n): (usize, usize)) -> Result<(), QuantError> {
    if found == [m, n] {
        Ok(())
    } else {
        Err(QuantError::ShapeMismatch {
            left: vec![m, n],
            right: found.to_vec(),
        })
    }
}

/// An `f64` in a message: plain notation for everyday magnitudes,
/// scientific beyond them, so `f64::MAX` is not 309 digits.
struct Num(f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let magnitude = self.0.abs();
        if magnitude.is_finite() && magnitude != 0.0 && !(1e-6..1e9).contains(&magnitude) {
            write!(f, "{:e}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl fmt::Display for QuantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantError::InvalidRange { alpha, beta } => {
                let (alpha, beta) = (Num(*alpha), Num(*beta));
                write!(
                f,
                "invalid real range [{alpha}, {beta}]: both bounds must be finite and alpha < beta"
            )
            }
            QuantError::InvalidScale { scale } => {
                let scale = Num(*scale);
                write!(
                f,
                "invalid scale {scale}: a scale must be finite and positive, and its reciprocal \
                 must be finite in f32 (scale >= {:e})",
                crate::params::MIN_SCALE
            )
            }
            QuantError::InvalidTargetRange { qmin, qmax } => write!(
                f,
                "invalid integer range [{qmin}, {qmax}]: qmin must be below qmax and both must fit \
                 the integer type"
            ),
            QuantError::ZeroPointOutOfRange { zero_point } => {
                let zero_point = Num(*zero_point);
                write!(
                f,
                "zero point {zero_point} does not fit in i32: the real range is too far from 0 \
                 for its width; widen the range or include 0 in it"
            )
            }
            QuantError::InnerDimensionMismatch { x_cols, w_rows } => write!(
                f,
                "inner dimensions differ: X has {x_cols} columns but W has {w_rows} rows \
                 (X must be m×p and W p×n)"
            ),
            QuantError::ShapeMismatch { left, right } => write!(
                f,
                "shapes differ: {left:?} and {right:?}; compare arrays of the same shape"
            ),
            QuantError::LengthMismatch {
                what,
                expected,
                found,
            } => write!(
                f,
                "{what} has length {found} but W has {expected} output columns; give one value \
                 per output column"
            ),
            QuantError::NonFinite { what, index, value } => {
                let value = Num(*value);
                write!(
                f,
                "{what} holds the non-finite value {value} at flat index {index} (row-major); \
                 replace or mask it before quantizing"
            )
            }
            QuantError::InvalidMultiplier { what, value } => {
                let value = Num(*value);
                write!(
                f,
                "requantization multiplier {what} = {value} cannot be represented; check that \
                 the input, weight and output scales are of sensible relative size"
            )
            }
            QuantError::BiasOutOfRange {
                column,
                value,
                scale,
            } => {
                let (value, scale) = (Num(*value), Num(*scale));
                write!(
                    f,
                    "bias {value} of column {column} does not fit in i32 at scale {scale} \
                     (s_X·s_W): use larger input or weight scales, or an int8 bias"
                )
            }
            QuantError::IncompatibleOptions { reason } => write!(f, "incompatible options: {reason}"),
            QuantError::InputOutOfRange {
                index,
                value,
                qmin,
                qmax,
            } => write!(
                f,
                "input value {value} at flat index {index} (row-major) lies outside the layer's \
                 declared input range [{qmin}, {qmax}]; quantize the input with that range"
            ),
            QuantError::ActivationType { expected, found } => write!(
                f,
                "the layer takes {expected:?} activations but was given {found:?}; convert the \
                 input or build the layer with with_activation_type"
            ),
            QuantError::InvalidClamp {
                min,
                max,
                type_min,
                type_max,
            } => write!(
                f,
                "invalid output clamp [{min}, {max}]: need min <= max within [{type_min}, {type_max}]"
            ),
            QuantError::KernelUnavailable { name, available } => {
                let why = if name.contains("u7") {
                    " (the 7-bit kernel needs an input range of at most 128 values)"
                } else {
                    ""
                };
                write!(
                    f,
                    "kernel {name:?} cannot run this layer on this CPU{why}; available: \
                     {available:?}"
                )
            }
            QuantError::InvalidConfig { what, value } => {
                write!(f, "invalid observer setting {}: {what}", Num(*value))
            }
            QuantError::LayerMismatch { layer, what } => write!(
                f,
                "layer {layer} cannot follow layer {}: {what}",
                layer - 1
            ),
            QuantError::EmptyStack => write!(f, "a layer stack needs at least one layer"),
            QuantError::ModelFile { what } => write!(f, "model file: {what}"),
            QuantError::MissingOption { what, setter } => write!(
                f,
                "the layer needs its {what}: call .{setter}(…) before .build()"
            ),
            QuantError::NothingObserved { observer } => write!(
                f,
                "{observer} has not seen any finite value yet: observe calibration data first"
            ),
            QuantError::LeftShiftOverflow {
                multiplier,
                shift,
                acc_bound,
            } => {
                let multiplier = Num(*multiplier);
                write!(
                f,
                "multiplier {multiplier} needs acc·2^{shift}, which reaches {acc_bound}·2^{shift} \
                 and leaves i32 (LiteRT's optimized kernels wrap there); use Rounding::Single or \
                 Requantizer::TfliteReference, or a larger output scale"
            )
            }
            QuantError::AccumulatorOverflow {
                inner_dim,
                bound,
                limit,
            } => write!(
                f,
                "accumulator could reach {bound} with inner dimension {inner_dim}, beyond the \
                 {limit} the arithmetic holds; use smaller zero points, a smaller inner \
                 dimension, or a requantizer with wider arithmetic"
            ),
            QuantError::TooLarge { what, shape } => write!(
                f,
                "{what} of shape {shape:?} could not be allocated (too large for this machine's \
                 memory or address space); split the batch or the layer"
            ),
        }
    }
}

impl std::error::Error for QuantError {}
