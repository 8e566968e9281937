//! The epilogues a layer hands the kernels: the output stage fused into
//! the write-back, or the exact accumulator itself.

use std::marker::PhantomData;

use crate::accumulator::{Terms, WrappingTerms};
use crate::elem::QuantElem;
use crate::gemm::driver::{Dots, Epilogue};
use crate::requant::{ColumnRequant, DotsTile};

/// Output stage fused into the kernel's write-back.
pub(super) struct Requantize<'a, R, T> {
    pub(super) terms: Terms<'a>,
    /// The same terms in `i32`, for layers whose accumulators fit.
    pub(super) wrapping: Option<&'a WrappingTerms>,
    pub(super) stage: &'a R,
    pub(super) out: PhantomData<T>,
}

impl<R: ColumnRequant, T: QuantElem> Epilogue<T> for Requantize<'_, R, T> {
    #[inline(always)]
    fn write(
        &self,
        i0: usize,
        j0: usize,
        rows: usize,
        cols: usize,
        dots: Dots<'_>,
        dots_stride: usize,
        row_sums: &[i64],
        out: &mut [T],
        out_stride: usize,
    ) {
        if let Dots::I32(dots) = dots {
            let tile = DotsTile {
                j0,
                rows,
                cols,
                dots,
                dots_stride,
                out_stride,
            };
            if self.terms.columns_only() && self.stage.write_from_dots(tile, out) {
                return;
            }
            if let Some(wrapping) = self.wrapping {
                wrapping.for_tile(
                    (i0, j0, rows, cols),
                    dots,
                    dots_stride,
                    row_sums,
                    &[],
                    out,
                    out_stride,
                    |_, accs, out| self.stage.apply_row_i32(accs, j0, out),
                );
                return;
            }
        }
        let tile = (i0, j0, rows, cols);
        self.terms.for_tile(
            tile,
            dots,
            dots_stride,
            row_sums,
            out,
            out_stride,
            |_, accs, out| self.stage.apply_row(accs, j0, out),
        );
    }
}

/// Writes the accumulator itself.
pub(super) struct Accumulate<'a> {
    pub(super) terms: Terms<'a>,
}

impl Epilogue<i64> for Accumulate<'_> {
    #[inline(always)]
    fn write(
        &self,
        i0: usize,
        j0: usize,
        rows: usize,
        cols: usize,
        dots: Dots<'_>,
        dots_stride: usize,
        row_sums: &[i64],
        out: &mut [i64],
        out_stride: usize,
    ) {
        let tile = (i0, j0, rows, cols);
        self.terms.for_tile(
            tile,
            dots,
            dots_stride,
            row_sums,
            out,
            out_stride,
            |_, accs, out| out.copy_from_slice(accs),
        );
    }
}
