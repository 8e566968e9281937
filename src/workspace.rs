//! [`Workspace`]: the buffers a [`QuantizedSequential`] runs through,
//! kept by the caller so that calls after the first allocate nothing.
//!
//! [`QuantizedSequential`]: crate::QuantizedSequential

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::alloc::too_large;
use crate::error::QuantError;

/// Buffers for [`QuantizedSequential::forward_into`] and
/// [`forward_f32_into`]: the activations between layers, and the
/// quantized input and output of the real-valued path.
///
/// Each buffer grows to the largest batch it has seen and is reused after;
/// one workspace serves stacks of either activation type and any width.
/// Keep one per thread (it is `Send`, and cheap to create).
///
/// [`QuantizedSequential::forward_into`]: crate::QuantizedSequential::forward_into
/// [`forward_f32_into`]: crate::QuantizedSequential::forward_f32_into
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    pub(crate) int8: [Vec<i8>; 4],
    pub(crate) uint8: [Vec<u8>; 4],
}

impl Workspace {
    /// An empty workspace; its buffers grow on first use.
    pub fn new() -> Workspace {
        Workspace::default()
    }

    /// Bytes the buffers hold now.
    pub fn bytes(&self) -> usize {
        let held = |v: &[usize; 4]| v.iter().sum::<usize>();
        held(&self.int8.each_ref().map(Vec::capacity))
            + held(&self.uint8.each_ref().map(Vec::capacity))
    }
}

/// `buf` as an m×n matrix to be overwritten, grown if needed.
pub(crate) fn matrix_mut<'b, T: Copy + Default>(
    buf: &'b mut Vec<T>,
    what: &'static str,
    (m, n): (usize, usize),
) -> Result<ArrayViewMut2<'b, T>, QuantError> {
    let len = m.checked_mul(n).ok_or_else(|| too_large(what, &[m, n]))?;
    if len > buf.len() {
        buf.try_reserve(len - buf.len())
            .map_err(|_| too_large(what, &[m, n]))?;
        buf.resize(len, T::default());
    }
    Ok(ArrayViewMut2::from_shape((m, n), &mut buf[..len]).expect("len = m·n"))
}

/// The first m·n values of `buf`, as filled by [`matrix_mut`].
pub(crate) fn matrix<T>(buf: &[T], (m, n): (usize, usize)) -> ArrayView2<'_, T> {
    ArrayView2::from_shape((m, n), &buf[..m * n]).expect("filled as m×n")
}
