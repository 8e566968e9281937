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

use ndarray::{ArrayBase, Data, Ix2};

use super::kernel::Kernel;
use crate::elem::QuantElem;

/// Int8 weight panels for one kernel layout, with column sums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackedWeights {
    nr: usize,
    kg: usize,
    p: usize,
    n: usize,
    kp: usize,
    data: Vec<i8>,
    col_sums: Vec<i64>,
}

impl PackedWeights {
    /// Packs `w` (p×n, any layout) for panels of `nr` columns and k-groups of
    /// `kg`, by (17).
    pub(crate) fn new<S: Data<Elem = i8>>(w: &ArrayBase<S, Ix2>, nr: usize, kg: usize) -> Self {
        let (p, n) = w.dim();
        let kp = p.div_ceil(kg) * kg;
        let panels = n.div_ceil(nr);
        let mut data = vec![0i8; panels * kp * nr];
        let mut col_sums = vec![0i64; n];
        for ((k, j), &v) in w.indexed_iter() {
            let (t, c) = (j / nr, j % nr);
            data[t * kp * nr + ((k / kg) * nr + c) * kg + k % kg] = v;
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
        &self.data[t * len..(t + 1) * len]
    }

    /// `Σ_k W[k, j]` for every column.
    pub(crate) fn col_sums(&self) -> &[i64] {
        &self.col_sums
    }

    /// `W[k, j]`, read back from the panels.
    pub(crate) fn get(&self, k: usize, j: usize) -> i8 {
        let (t, c) = (j / self.nr, j % self.nr);
        self.data[t * self.kp * self.nr + ((k / self.kg) * self.nr + c) * self.kg + k % self.kg]
    }

    /// Bytes held: the panels and the column sums.
    pub(crate) fn bytes(&self) -> usize {
        self.data.len() + self.col_sums.len() * std::mem::size_of::<i64>()
    }
}

/// Activations packed for kernel `K`: `m` rows of `kp` elements.
#[derive(Debug)]
pub(crate) struct PackedRows<K: Kernel> {
    pub(crate) data: Vec<K::A>,
    pub(crate) stride: usize,
    /// `Σ_k x'[i, k]` per row, in the kernel's domain (empty when not asked).
    pub(crate) row_sums: Vec<i64>,
}

/// A value of `x` outside the range the layer declared for its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutOfRange {
    pub(crate) index: usize,
    pub(crate) value: i32,
}

/// Packs `x` (m×p, any layout) for kernel `K`: each value `v` is checked to
/// lie in `[lo, hi]` and stored as `K::pack_a(v + shift)`.
pub(crate) fn pack_rows<K: Kernel, T: QuantElem, S: Data<Elem = T>>(
    x: &ArrayBase<S, Ix2>,
    kp: usize,
    shift: i32,
    (lo, hi): (i32, i32),
    with_row_sums: bool,
) -> Result<PackedRows<K>, OutOfRange> {
    let (m, p) = x.dim();
    // Whole tiles of rows: kernels that load fixed-size tiles (AMX) read
    // the zero rows past m, and discard what they compute from them.
    let mut data = vec![K::A::default(); m.next_multiple_of(K::MR) * kp];
    let mut row_sums = Vec::with_capacity(if with_row_sums { m } else { 0 });
    let check = lo > T::RANGE.qmin || hi < T::RANGE.qmax;
    for (i, row) in x.rows().into_iter().enumerate() {
        let dst = &mut data[i * kp..i * kp + p];
        match row.as_slice() {
            // Contiguous rows: plain loops the compiler vectorizes.
            Some(src) => {
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = K::pack_a(v.to_i32() + shift);
                }
                if with_row_sums {
                    row_sums.push(shifted_sum(src, shift));
                }
            }
            None => {
                let src: Vec<T> = row.iter().copied().collect();
                for (d, &v) in dst.iter_mut().zip(&src) {
                    *d = K::pack_a(v.to_i32() + shift);
                }
                if with_row_sums {
                    row_sums.push(shifted_sum(&src, shift));
                }
            }
        }
        if check {
            if let Some(k) = row.iter().position(|v| !(lo..=hi).contains(&v.to_i32())) {
                return Err(OutOfRange {
                    index: i * p + k,
                    value: row[k].to_i32(),
                });
            }
        }
    }
    Ok(PackedRows {
        data,
        stride: kp,
        row_sums,
    })
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
            let total: i64 = packed.data.iter().map(|&v| i64::from(v)).sum();
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
