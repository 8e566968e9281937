//! [`CallBuffers`]: what a dynamic layer computes per call besides its
//! output, kept by a `DynamicWorkspace` so that calls after the first
//! allocate nothing.

use crate::params::QuantParams;
use crate::workspace::Workspace;

/// The per-call vectors of [`DynamicLinear`](crate::DynamicLinear): each
/// is cleared and refilled by a call, its capacity kept for the next.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallBuffers {
    /// Activation params, one per row.
    pub(crate) params: Vec<QuantParams>,
    /// Extremes per chunk (per tensor) or per row, or the index of the
    /// first non-finite value in it.
    pub(crate) extremes: Vec<Result<(f32, f32), usize>>,
    /// The quantized input, in the first buffer of its type.
    pub(crate) quantized: Workspace,
    /// `z_X[i] + shift`, per row.
    pub(crate) row_zero_points: Vec<i64>,
    /// The same modulo 2^32.
    pub(crate) wrapped_zero_points: Vec<i32>,
    /// `s_X[i]`, per row.
    pub(crate) row_scales: Vec<f32>,
}
