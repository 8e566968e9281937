//! The one error type of the crate.
//!
//! Every input a user can get wrong comes back as a `QuantError` value whose
//! message names the offending values and says what would be accepted.

use std::fmt;

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
    /// An observer asked for parameters before it saw any finite value.
    NothingObserved {
        /// Which observer, e.g. `"MinMaxObserver"`.
        observer: &'static str,
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
}

impl fmt::Display for QuantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantError::InvalidRange { alpha, beta } => write!(
                f,
                "invalid real range [{alpha}, {beta}]: both bounds must be finite and alpha < beta"
            ),
            QuantError::InvalidScale { scale } => write!(
                f,
                "invalid scale {scale}: a scale must be finite and positive, and its reciprocal \
                 must be finite in f32 (scale >= {:e})",
                crate::params::MIN_SCALE
            ),
            QuantError::InvalidTargetRange { qmin, qmax } => write!(
                f,
                "invalid integer range [{qmin}, {qmax}]: qmin must be below qmax and both must fit \
                 the integer type"
            ),
            QuantError::ZeroPointOutOfRange { zero_point } => write!(
                f,
                "zero point {zero_point} does not fit in i32: the real range is too far from 0 \
                 for its width; widen the range or include 0 in it"
            ),
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
            QuantError::NonFinite { what, index, value } => write!(
                f,
                "{what} holds the non-finite value {value} at flat index {index} (row-major); \
                 replace or mask it before quantizing"
            ),
            QuantError::InvalidMultiplier { what, value } => write!(
                f,
                "requantization multiplier {what} = {value} cannot be represented; check that \
                 the input, weight and output scales are of sensible relative size"
            ),
            QuantError::BiasOutOfRange {
                column,
                value,
                scale,
            } => write!(
                f,
                "bias {value} of column {column} does not fit in i32 at scale {scale} \
                 (s_X·s_W): use larger input or weight scales, or an int8 bias"
            ),
            QuantError::NothingObserved { observer } => write!(
                f,
                "{observer} has not seen any finite value yet: observe calibration data first"
            ),
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
        }
    }
}

impl std::error::Error for QuantError {}
