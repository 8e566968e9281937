//! Packed weight panels with their column sums, and packed activations.
//!
//! Weights `W` (p×n) are stored once, at layer construction, as int8 panels
//! of `NR` columns. The inner dimension is padded with zeros to `kp`, a
//! multiple of the kernel's k-group `KG`, and the last panel with zero
//! columns. Inside panel `t`, the value of `W[k, t·NR + c]` sits at
//!
//! ```text
//! (17) data[t·kp·NR + ((k / KG)·NR + c)·KG + k % KG]
//! ```
//!
//! so that one k-group of `NR` columns is `NR·KG` contiguous bytes — the
//! operand of one or two SIMD loads — and the panels are streamed in
//! order. Values stay int8 (kernels widen in registers): the packed bytes
//! are `kp·n_pad` for `p·n` weights. The column sums `Σ_k W[k, j]` are kept
//! beside the panels.
//!
//! Activations `X` (m×p) are packed per call, row-major with `kp` elements
//! per row, shifted into the kernel's domain (`x' = x + shift`) and
//! converted to its element type; their row sums are taken on the way.
//! With threads split by rows, each thread packs the rows it then
//! computes, so they are already in its core's cache.

use std::ops::Range;

use ndarray::{s, ArrayBase, ArrayView2, Data, Ix2};

use super::aligned::{AlignedVec, LINE};
use super::kernel::Kernel;
use super::scratch;
use crate::elem::QuantElem;

/// Int8 weight panels for one kernel layout, with column sums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackedWeights {
    nr: usize,
    kg: usize,
    p: usize,
    n: usize,
    kp: usize,
    data: AlignedVec<i8>,
    col_sums: Vec<i64>,
}

impl PackedWeights {
    /// Packs `w` (p×n, any layout) for panels of `nr` columns and k-groups of
    /// `kg`, by (17).
    pub(crate) fn new<S: Data<Elem = i8>>(w: &ArrayBase<S, Ix2>, nr: usize, kg: usize) -> Self {
        let (p, n) = w.dim();
        let kp = p.div_ceil(kg) * kg;
        let panels = n.div_ceil(nr);
        let mut data = AlignedVec::new(panels * kp * nr);
        let mut col_sums = vec![0i64; n];
        let panels_data = data.as_mut_slice();
        for ((k, j), &v) in w.indexed_iter() {
            let (t, c) = (j / nr, j % nr);
            panels_data[t * kp * nr + ((k / kg) * nr + c) * kg + k % kg] = v;
            col_sums[j] += i64::from(v);
        }
        PackedWeights {
            nr,
            kg,
            p,
            n,
            kp,
            data,
            col_sums,
        }
    }

    /// Inner dimension `p`.
    pub(crate) fn p(&self) -> usize {
        self.p
    }

    /// Output columns `n`.
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// Inner dimension padded to a whole k-group.
    pub(crate) fn kp(&self) -> usize {
        self.kp
    }

    /// Columns per panel.
    pub(crate) fn nr(&self) -> usize {
        self.nr
    }

    /// `(NR, KG)` of the layout.
    pub(crate) fn layout(&self) -> (usize, usize) {
        (self.nr, self.kg)
    }

    /// The weights read back as a p×n matrix.
    pub(crate) fn unpack(&self) -> ndarray::Array2<i8> {
        ndarray::Array2::from_shape_fn((self.p, self.n), |(k, j)| self.get(k, j))
    }

    /// Number of panels.
    pub(crate) fn panels(&self) -> usize {
        self.n.div_ceil(self.nr)
    }

    /// Panel `t`, `kp·NR` bytes.
    #[inline]
    pub(crate) fn panel(&self, t: usize) -> &[i8] {
        let len = self.kp * self.nr;
        &self.data.as_slice()[t * len..(t + 1) * len]
    }

    /// `Σ_k W[k, j]` for every column.
    pub(crate) fn col_sums(&self) -> &[i64] {
        &self.col_sums
    }

    /// `W[k, j]`, read back from the panels.
    pub(crate) fn get(&self, k: usize, j: usize) -> i8 {
        let (t, c) = (j / self.nr, j % self.nr);
        self.data.as_slice()
            [t * self.kp * self.nr + ((k / self.kg) * self.nr + c) * self.kg + k % self.kg]
    }

    /// Bytes held: the panels and the column sums.
    pub(crate) fn bytes(&self) -> usize {
        self.data.bytes() + self.col_sums.len() * std::mem::size_of::<i64>()
    }
}

/// Activations packed for kernel `K`: rows `first..first + m` of `kp`
/// elements each.
#[derive(Debug)]
pub(crate) struct PackedRows<K: Kernel> {
    data: AlignedVec<K::A>,
    stride: usize,
    /// `Σ_k x'[i, k]` per row, in the kernel's domain (empty when not asked).
    row_sums: Vec<i64>,
    first: usize,
}

impl<K: Kernel> PackedRows<K> {
    /// Rows `rows`, filled by `pack(rows, stride, data, row_sums)` (see
    /// [`pack_rows_into`]) over zeroed storage.
    ///
    /// Rows come in whole tiles: kernels that load fixed-size tiles (AMX)
    /// read the zero rows past the last, and discard what they compute from
    /// them.
    pub(crate) fn packed<P>(rows: Range<usize>, kp: usize, with_row_sums: bool, pack: &P) -> Self
    where
        P: Fn(Range<usize>, usize, &mut [K::A], &mut [i64]),
    {
        let m = rows.len();
        let stride = row_stride::<K::A>(kp);
        let mut a = PackedRows {
            data: scratch::zeroed(m.next_multiple_of(K::MR) * stride),
            stride,
            row_sums: scratch::zeroed_sums(if with_row_sums { m } else { 0 }),
            first: rows.start,
        };
        pack(rows, stride, a.data.as_mut_slice(), &mut a.row_sums);
        a
    }

    /// The rows, as the blocked loop reads them.
    pub(crate) fn rows(&self) -> Rows<'_, K::A> {
        Rows {
            data: self.data.as_slice(),
            stride: self.stride,
            row_sums: &self.row_sums,
            first: self.first,
        }
    }
}

impl<K: Kernel> Drop for PackedRows<K> {
    fn drop(&mut self) {
        scratch::give_back(std::mem::replace(&mut self.data, AlignedVec::empty()));
        scratch::give_back_sums(std::mem::take(&mut self.row_sums));
    }
}

/// Elements per packed activation row: `kp`, rounded up to whole cache
/// lines once a row fills one, so that every row starts on a line.
fn row_stride<A>(kp: usize) -> usize {
    let per_line = LINE / std::mem::size_of::<A>().max(1);
    if kp >= per_line {
        kp.next_multiple_of(per_line)
    } else {
        kp
    }
}

/// A view of packed rows from row `first` on: `data` starts with row
/// `first`, and so does `row_sums` (empty when not taken).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rows<'a, A> {
    pub(crate) data: &'a [A],
    pub(crate) stride: usize,
    pub(crate) row_sums: &'a [i64],
    pub(crate) first: usize,
}

/// A value of `x` outside the range the layer declared for its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutOfRange {
    pub(crate) index: usize,
    pub(crate) value: i32,
}

/// The first value of `x` (row-major) outside `[lo, hi]`, if any. Checked
/// before anything is packed or written, so a refused call leaves its
/// output untouched.
///
/// It runs on the calling thread before the work is split, so it is kept
/// cheap: each contiguous row is tested with a branch-free min/max (which
/// vectorizes), and only a failing row (or a strided one) is searched for
/// its first culprit.
#[inline(always)] // into `Stamped::vectorized`
pub(crate) fn check_range<T: QuantElem, S: Data<Elem = T>>(
    x: &ArrayBase<S, Ix2>,
    (lo, hi): (i32, i32),
) -> Result<(), OutOfRange> {
    if lo <= T::RANGE.qmin && hi >= T::RANGE.qmax {
        return Ok(());
    }
    // Min and max are taken in `T` (16 or 32 values per instruction).
    let (t_min, t_max) = (
        T::from_i32_clamped(T::RANGE.qmin),
        T::from_i32_clamped(T::RANGE.qmax),
    );
    let p = x.ncols();
    for (i, row) in x.rows().into_iter().enumerate() {
        if let Some(src) = row.as_slice() {
            let min = src.iter().fold(t_max, |min, &v| min.min(v));
            let max = src.iter().fold(t_min, |max, &v| max.max(v));
            if lo <= min.to_i32() && max.to_i32() <= hi {
                continue;
            }
        }
        // A failing contiguous row, or a strided one: search it.
        let mut values = row.iter().map(|v| v.to_i32()).enumerate();
        if let Some((k, value)) = values.find(|&(_, v)| !(lo..=hi).contains(&v)) {
            return Err(OutOfRange {
                index: i * p + k,
                value,
            });
        }
    }
    Ok(())
}

/// Packs rows `rows` of `x` for kernel `K`: row `i` goes to
/// `data[(i − rows.start)·stride ..]` as `K::pack_a(v + shift)` for each
/// value `v`, and its sum to `row_sums[i − rows.start]` unless `row_sums`
/// is empty. Padding (`stride − p` values per row) is left as it is: zero.
pub(crate) fn pack_rows_into<K: Kernel, T: QuantElem>(
    x: &ArrayView2<'_, T>,
    rows: Range<usize>,
    stride: usize,
    shift: i32,
    data: &mut [K::A],
    row_sums: &mut [i64],
) {
    let p = x.ncols();
    let with_row_sums = !row_sums.is_empty();
    let mut scratch = Vec::new();
    for (r, row) in x.slice(s![rows, ..]).rows().into_iter().enumerate() {
        // Contiguous rows are read in place, so the loops vectorize.
        let src = match row.to_slice() {
            Some(src) => src,
            None => {
                scratch.clear();
                scratch.extend(row.iter().copied());
                &scratch[..]
            }
        };
        for (d, &v) in data[r * stride..r * stride + p].iter_mut().zip(src) {
            *d = K::pack_a(v.to_i32() + shift);
        }
        if with_row_sums {
            row_sums[r] = shifted_sum(src, shift);
        }
    }
}

/// `Σ (v + shift)` over a row, exactly: runs of 2^16 values are summed in
/// `i32` (at most 255·2^16 < 2^31 in magnitude), the runs in `i64`.
fn shifted_sum<T: QuantElem>(src: &[T], shift: i32) -> i64 {
    let sum: i64 = src
        .chunks(1 << 16)
        .map(|run| i64::from(run.iter().map(|v| v.to_i32()).sum::<i32>()))
        .sum();
    sum + i64::from(shift) * src.len() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn panels_hold_every_weight_once_and_pad_with_zeros() {
        let w = Array2::from_shape_fn((7, 19), |(k, j)| (k as i32 * 19 + j as i32 - 60) as i8);
        for (nr, kg) in [(16, 2), (8, 4), (16, 4), (1, 1)] {
            let packed = PackedWeights::new(&w, nr, kg);
            assert_eq!(packed.kp() % kg, 0);
            for ((k, j), &v) in w.indexed_iter() {
                assert_eq!(packed.get(k, j), v);
            }
            let total: i64 = packed.data.as_slice().iter().map(|&v| i64::from(v)).sum();
            assert_eq!(total, w.iter().map(|&v| i64::from(v)).sum::<i64>());
            for j in 0..19 {
                assert_eq!(
                    packed.col_sums()[j],
                    w.column(j).iter().map(|&v| i64::from(v)).sum::<i64>()
                );
            }
        }
    }
}
