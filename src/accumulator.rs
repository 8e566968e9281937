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

    /// Hands (11) for every row `i` of a tile to `finish(i, accs, out_row)`,
    /// exactly, in `i64`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn for_tile<O>(
        &self,
        tile: (usize, usize, usize, usize),
        dots: Dots<'_>,
        dots_stride: usize,
        row_sums: &[i64],
        out: &mut [O],
        out_stride: usize,
        finish: impl FnMut(usize, &[i64], &mut [O]),
    ) {
        let columns = ColumnTerms {
            column_terms: self.column_terms,
            neg_w_zero_points: self.neg_w_zero_points,
            zero_point_terms: self.zero_point_terms,
        };
        let row_sum = |r: usize| row_sums.get(r).copied().unwrap_or(0);
        let rows = (self.row_zero_points, out, out_stride);
        match dots {
            Dots::I32(d) => tile_rows(columns, tile, (d, dots_stride), row_sum, rows, finish),
            Dots::I64(d) => tile_rows(columns, tile, (d, dots_stride), row_sum, rows, finish),
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
    /// the call's `row_zero_points` (from [`wrap_i32_into`]; empty for a static
    /// layer).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn for_tile<O>(
        &self,
        tile: (usize, usize, usize, usize),
        dots: &[i32],
        dots_stride: usize,
        row_sums: &[i64],
        row_zero_points: &[i32],
        out: &mut [O],
        out_stride: usize,
        finish: impl FnMut(usize, &[i32], &mut [O]),
    ) {
        let columns = ColumnTerms {
            column_terms: &self.column_terms,
            neg_w_zero_points: &self.neg_w_zero_points,
            zero_point_terms: &self.zero_point_terms,
        };
        // Modulo 2^32, as every term.
        let row_sum = |r: usize| row_sums[r] as i32;
        let rows = (row_zero_points, out, out_stride);
        tile_rows(columns, tile, (dots, dots_stride), row_sum, rows, finish);
    }
}

/// The integer (11) is summed in: `i64`, exactly, or `i32` with wrapping
/// arithmetic where every accumulator fits (see [`WrappingTerms`]).
trait Lane: Copy + Default {
    fn add(self, other: Self) -> Self;
    fn mul(self, other: Self) -> Self;
}

impl Lane for i64 {
    #[inline(always)]
    fn add(self, other: i64) -> i64 {
        self + other
    }
    #[inline(always)]
    fn mul(self, other: i64) -> i64 {
        self * other
    }
}

impl Lane for i32 {
    #[inline(always)]
    fn add(self, other: i32) -> i32 {
        self.wrapping_add(other)
    }
    #[inline(always)]
    fn mul(self, other: i32) -> i32 {
        self.wrapping_mul(other)
    }
}

/// The per-column terms of (11) in one [`Lane`] type; each may be empty.
#[derive(Clone, Copy)]
struct ColumnTerms<'a, A> {
    column_terms: &'a [A],
    neg_w_zero_points: &'a [A],
    zero_point_terms: &'a [A],
}

/// (11) for each row `r` of the tile `(i0, j0, rows, cols)`:
/// `acc = dot + c[j] + r[i]·(−z_W[j]) + z'_X[i]·d[j]`, each term skipped
/// when its slice is empty, handed to `finish(i0 + r, accs, out_row)`.
/// The one loop of both [`Terms::for_tile`] and [`WrappingTerms::for_tile`].
#[inline(always)]
fn tile_rows<A: Lane, D: Copy + Into<A>, O>(
    terms: ColumnTerms<'_, A>,
    (i0, j0, rows, cols): (usize, usize, usize, usize),
    (dots, dots_stride): (&[D], usize),
    row_sum: impl Fn(usize) -> A,
    (row_zero_points, out, out_stride): (&[A], &mut [O], usize),
    mut finish: impl FnMut(usize, &[A], &mut [O]),
) {
    let span = j0..j0 + cols;
    let mut accs = [A::default(); MAX_NR];
    let accs = &mut accs[..cols];
    for r in 0..rows {
        let i = i0 + r;
        for (acc, &dot) in accs.iter_mut().zip(&dots[r * dots_stride..][..cols]) {
            *acc = dot.into();
        }
        if !terms.column_terms.is_empty() {
            for (acc, &c) in accs.iter_mut().zip(&terms.column_terms[span.clone()]) {
                *acc = acc.add(c);
            }
        }
        if !terms.neg_w_zero_points.is_empty() {
            let sum = row_sum(r);
            for (acc, &nz) in accs.iter_mut().zip(&terms.neg_w_zero_points[span.clone()]) {
                *acc = acc.add(sum.mul(nz));
            }
        }
        if let Some(&zx) = row_zero_points.get(i) {
            for (acc, &d) in accs.iter_mut().zip(&terms.zero_point_terms[span.clone()]) {
                *acc = acc.add(zx.mul(d));
            }
        }
        finish(i, accs, &mut out[r * out_stride..][..cols]);
    }
}

/// `values` modulo 2^32.
pub(crate) fn wrap_i32(values: &[i64]) -> Vec<i32> {
    let mut wrapped = Vec::new();
    wrap_i32_into(values, &mut wrapped);
    wrapped
}

/// `values` modulo 2^32, into `out` (cleared first).
pub(crate) fn wrap_i32_into(values: &[i64], out: &mut Vec<i32>) {
    out.clear();
    out.extend(values.iter().map(|&x| x as i32));
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
