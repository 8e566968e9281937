//! The terms of the exact accumulator, equation (11) of [`crate::linear`],
//! and its bound (12): shared by the static and the dynamic layers.

use crate::error::QuantError;
use crate::gemm::driver::Dots;

/// The per-column and per-row terms of (11). Each slice may be empty,
/// meaning its term is zero.
#[derive(Clone, Copy)]
pub(crate) struct Terms<'a> {
    /// `−z_W[j]`, times the row sum `r[i]`.
    pub(crate) neg_w_zero_points: &'a [i64],
    /// `c[j]`, for a zero point fixed at construction.
    pub(crate) column_terms: &'a [i64],
    /// `z'_X[i]` when every row has its own zero point (dynamic layers) …
    pub(crate) row_zero_points: &'a [i64],
    /// … and its coefficient `d[j] = −Σ_k Wq[k,j] + p·z_W[j]`.
    pub(crate) zero_point_terms: &'a [i64],
}

impl Terms<'_> {
    /// Whether (11) is `dot + c[j]`: no term depends on the row.
    #[inline(always)]
    pub(crate) fn columns_only(&self) -> bool {
        self.neg_w_zero_points.is_empty() && self.row_zero_points.is_empty()
    }

    /// Equation (11) for row `i` of a tile: `accs[c]` for column `j0 + c`.
    #[inline(always)]
    fn row<D: Copy + Into<i64>>(
        &self,
        dots: &[D],
        i: usize,
        row_sum: i64,
        j0: usize,
        accs: &mut [i64],
    ) {
        let span = j0..j0 + dots.len();
        for (acc, &dot) in accs.iter_mut().zip(dots) {
            *acc = dot.into();
        }
        if !self.column_terms.is_empty() {
            for (acc, &c) in accs.iter_mut().zip(&self.column_terms[span.clone()]) {
                *acc += c;
            }
        }
        if !self.neg_w_zero_points.is_empty() {
            for (acc, &nz) in accs.iter_mut().zip(&self.neg_w_zero_points[span.clone()]) {
                *acc += row_sum * nz;
            }
        }
        if let Some(&zx) = self.row_zero_points.get(i) {
            for (acc, &d) in accs.iter_mut().zip(&self.zero_point_terms[span]) {
                *acc += zx * d;
            }
        }
    }

    /// Hands (11) for every row `i` of a tile to `finish(i, accs, out_row)`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn for_tile<O>(
        &self,
        (i0, j0, rows, cols): (usize, usize, usize, usize),
        dots: Dots<'_>,
        dots_stride: usize,
        row_sums: &[i64],
        out: &mut [O],
        out_stride: usize,
        mut finish: impl FnMut(usize, &[i64], &mut [O]),
    ) {
        let mut accs = [0i64; MAX_NR];
        let accs = &mut accs[..cols];
        for r in 0..rows {
            let i = i0 + r;
            let row_sum = row_sums.get(r).copied().unwrap_or(0);
            let span = r * dots_stride..r * dots_stride + cols;
            match dots {
                Dots::I32(d) => self.row(&d[span], i, row_sum, j0, accs),
                Dots::I64(d) => self.row(&d[span], i, row_sum, j0, accs),
            }
            finish(i, accs, &mut out[r * out_stride..r * out_stride + cols]);
        }
    }
}

/// The terms of (11) reduced modulo 2^32.
///
/// Where every accumulator provably fits in `i32` (`|acc| ≤ 2^31 − 1`),
/// (11) computed with wrapping `i32` arithmetic on these gives the exact
/// accumulator: the sum is right modulo 2^32, and only one value of `i32`
/// is. Any conversion of that `i32` then equals the same conversion of
/// the exact `i64`, so output stages give the same bits as on the `i64`
/// path, without 64-bit multiplies or conversions.
#[derive(Debug, Clone)]
pub(crate) struct WrappingTerms {
    column_terms: Vec<i32>,
    neg_w_zero_points: Vec<i32>,
    zero_point_terms: Vec<i32>,
}

impl WrappingTerms {
    /// The per-column `terms` modulo 2^32, built with the layer; a
    /// dynamic layer's row zero points come with each call. Only used for
    /// layers (or calls) whose accumulators all fit in `i32`.
    pub(crate) fn new(terms: &Terms<'_>) -> WrappingTerms {
        WrappingTerms {
            column_terms: wrap_i32(terms.column_terms),
            neg_w_zero_points: wrap_i32(terms.neg_w_zero_points),
            zero_point_terms: wrap_i32(terms.zero_point_terms),
        }
    }

    /// [`Terms::for_tile`] from a tile's `i32` dot products, in `i32`, with
    /// the call's `row_zero_points` (from [`wrap_i32`]; empty for a static
    /// layer).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn for_tile<O>(
        &self,
        (i0, j0, rows, cols): (usize, usize, usize, usize),
        dots: &[i32],
        dots_stride: usize,
        row_sums: &[i64],
        row_zero_points: &[i32],
        out: &mut [O],
        out_stride: usize,
        mut finish: impl FnMut(usize, &[i32], &mut [O]),
    ) {
        let span = j0..j0 + cols;
        let mut accs = [0i32; MAX_NR];
        let accs = &mut accs[..cols];
        for r in 0..rows {
            let i = i0 + r;
            accs.copy_from_slice(&dots[r * dots_stride..][..cols]);
            if !self.column_terms.is_empty() {
                for (acc, &c) in accs.iter_mut().zip(&self.column_terms[span.clone()]) {
                    *acc = acc.wrapping_add(c);
                }
            }
            if !self.neg_w_zero_points.is_empty() {
                let row_sum = row_sums[r] as i32;
                for (acc, &nz) in accs.iter_mut().zip(&self.neg_w_zero_points[span.clone()]) {
                    *acc = acc.wrapping_add(row_sum.wrapping_mul(nz));
                }
            }
            if let Some(&zx) = row_zero_points.get(i) {
                for (acc, &d) in accs.iter_mut().zip(&self.zero_point_terms[span.clone()]) {
                    *acc = acc.wrapping_add(zx.wrapping_mul(d));
                }
            }
            finish(i, accs, &mut out[r * out_stride..][..cols]);
        }
    }
}

/// `values` modulo 2^32.
pub(crate) fn wrap_i32(values: &[i64]) -> Vec<i32> {
    values.iter().map(|&x| x as i32).collect()
}

/// Widest tile any kernel produces.
const MAX_NR: usize = 64;

/// `p·a·b + c ≤ limit`, else the accumulator-overflow error; returns the
/// bound.
pub(crate) fn check_bound(
    p: usize,
    a: u64,
    b: u64,
    c: u64,
    limit: u128,
) -> Result<u128, QuantError> {
    let bound = (p as u128)
        .checked_mul(u128::from(a))
        .and_then(|v| v.checked_mul(u128::from(b)))
        .and_then(|v| v.checked_add(u128::from(c)))
        .unwrap_or(u128::MAX);
    if bound <= limit {
        Ok(bound)
    } else {
        Err(QuantError::AccumulatorOverflow {
            inner_dim: p,
            bound,
            limit,
        })
    }
}
