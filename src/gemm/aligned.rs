//! Buffers that start on a cache line.
//!
//! The kernels load whole 64-byte rows of packed weights and activations
//! (an AMX tile row, a zmm register). A row that straddles two cache lines
//! costs two line reads instead of one, and large allocations from the
//! system allocator start 16 bytes past a page boundary, so every such row
//! would straddle.

/// Alignment of the first element: one cache line.
pub(crate) const LINE: usize = 64;

/// A value on a [`LINE`]-byte boundary (for stack buffers).
#[repr(C, align(64))]
pub(crate) struct LineAligned<T>(pub(crate) T);

/// `len` values of `T`, the first on a [`LINE`]-byte boundary.
pub(crate) struct AlignedVec<T> {
    buf: Vec<T>,
    start: usize,
    len: usize,
}

impl<T: Copy + Default> AlignedVec<T> {
    /// `len` default values.
    pub(crate) fn new(len: usize) -> Self {
        let slack = LINE / std::mem::size_of::<T>().max(1);
        let buf = vec![T::default(); len + slack];
        // `align_offset` may decline (usize::MAX); then the buffer is used
        // as it is, unaligned but correct.
        let start = match buf.as_ptr().align_offset(LINE) {
            offset if offset <= slack => offset,
            _ => 0,
        };
        AlignedVec { buf, start, len }
    }

    /// No values and no allocation.
    pub(crate) fn empty() -> Self {
        AlignedVec {
            buf: Vec::new(),
            start: 0,
            len: 0,
        }
    }

    /// The values.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[T] {
        &self.buf[self.start..self.start + self.len]
    }

    /// The values, writable.
    #[inline]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.buf[self.start..self.start + self.len]
    }

    /// Holds `len` default values in the same allocation, if it has room
    /// for them past its aligned start; otherwise unchanged.
    pub(crate) fn refill(&mut self, len: usize) -> bool {
        if self.start + len > self.buf.len() {
            return false;
        }
        self.len = len;
        self.as_mut_slice().fill(T::default());
        true
    }

    /// Bytes allocated, slack included.
    pub(crate) fn bytes(&self) -> usize {
        self.buf.len() * std::mem::size_of::<T>()
    }
}

impl<T: Copy + Default> Clone for AlignedVec<T> {
    fn clone(&self) -> Self {
        // A fresh allocation has its own offset to the next line.
        let mut copy = AlignedVec::new(self.len);
        copy.as_mut_slice().copy_from_slice(self.as_slice());
        copy
    }
}

impl<T: Copy + Default + PartialEq> PartialEq for AlignedVec<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Copy + Default + Eq> Eq for AlignedVec<T> {}

impl<T: Copy + Default + std::fmt::Debug> std::fmt::Debug for AlignedVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_line_and_clones_keep_values_and_alignment() {
        for len in [0, 1, 63, 64, 65, 4096, 1 << 20] {
            let mut bytes = AlignedVec::<u8>::new(len);
            let mut wide = AlignedVec::<i16>::new(len);
            assert_eq!(bytes.as_slice().as_ptr() as usize % LINE, 0, "len {len}");
            assert_eq!(wide.as_slice().as_ptr() as usize % LINE, 0, "len {len}");
            assert_eq!((bytes.as_slice().len(), wide.as_slice().len()), (len, len));
            for (i, (b, w)) in bytes
                .as_mut_slice()
                .iter_mut()
                .zip(wide.as_mut_slice())
                .enumerate()
            {
                (*b, *w) = (i as u8, i as i16);
            }
            let (b2, w2) = (bytes.clone(), wide.clone());
            assert_eq!(b2.as_slice().as_ptr() as usize % LINE, 0);
            assert_eq!(w2.as_slice().as_ptr() as usize % LINE, 0);
            assert!(b2 == bytes && w2 == wide);
        }
    }
}
