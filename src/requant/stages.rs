//! The prepared output stages, one per requantizer: per-column constants
//! computed at construction and the per-element arithmetic of (10), (18),
//! (19) and (20).
//!
//! Each stage clamps *before* rounding where that is cheaper: with integer
//! bounds, rounding is monotone and fixes integers, so
//! `clamp(round(v)) = round(clamp(v))`, and the clamped value is small
//! enough for the exact roundings of (22).

use super::fixed_point::{
    double_lane, half_up_lane, multiply_unsaturated, single_product, MultiplierLanes,
    QuantizedMultiplier,
};
use super::round::{
    clamp_f32, clamp_f64, half_away_f64, half_even_f32, half_even_f64, small_i64_to_f64,
};
use super::Rounding;
use crate::elem::QuantElem;

/// Maps an exact accumulator of output column `j` to the clamped output
/// integer. One implementation per requantizer, so the per-element loop
/// holds no branch on the mode.
pub(crate) trait ColumnRequant: Sync {
    /// The output integer for accumulator `acc` of column `j`.
    fn apply(&self, acc: i64, j: usize) -> i32;

    /// Writes a tile's outputs straight from its `i32` dot products when
    /// the stage holds the layer's column terms `c[j]` and the whole of
    /// (11) is `dot + c[j]`; returns `false`, having written nothing,
    /// otherwise.
    #[inline(always)]
    fn write_from_dots<T: QuantElem>(&self, _tile: DotsTile<'_>, _out: &mut [T]) -> bool {
        false
    }

    /// `out[c] = apply(accs[c], j0 + c)`.
    #[inline(always)]
    fn apply_row<T: QuantElem>(&self, accs: &[i64], j0: usize, out: &mut [T]) {
        for (c, (o, &acc)) in out.iter_mut().zip(accs).enumerate() {
            *o = T::from_i32_clamped(self.apply(acc, j0 + c));
        }
    }

    /// [`apply_row`](Self::apply_row) for accumulators that fit in `i32`:
    /// stages override it with loops that vectorize in 32-bit lanes.
    #[inline(always)]
    fn apply_row_i32<T: QuantElem>(&self, accs: &[i32], j0: usize, out: &mut [T]) {
        apply_each(self, accs, j0, out);
    }
}

/// `out[c] = apply(accs[c], j0 + c)`, one element at a time: where a stage
/// has no 32-bit lanes.
#[inline(always)]
fn apply_each<R: ColumnRequant + ?Sized, T: QuantElem>(
    stage: &R,
    accs: &[i32],
    j0: usize,
    out: &mut [T],
) {
    for (c, (o, &acc)) in out.iter_mut().zip(accs).enumerate() {
        *o = T::from_i32_clamped(stage.apply(i64::from(acc), j0 + c));
    }
}

/// One tile's dot products, `dots[r·dots_stride + c]` for output
/// `(i0 + r, j0 + c)`, and where its outputs go: `out[r·out_stride + c]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DotsTile<'a> {
    pub(crate) j0: usize,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) dots: &'a [i32],
    pub(crate) dots_stride: usize,
    pub(crate) out_stride: usize,
}

/// `c[j]` of (11) as `f64`, for a stage that converts `f64(acc)` and a
/// layer whose (11) is `acc = dot + c[j]`, or empty where that is not exact.
///
/// `f64(dot) + f64(c[j])` is `f64(acc)` exactly when all three are integers
/// below `2^53` in magnitude. This holds for `|acc| ≤ 2^51` (from
/// `acc_bound`) and `|c[j]| ≤ 2^52` (checked here), since then
/// `|dot| ≤ 2^51 + 2^52`. The tile then needs no widening to `i64` and no
/// conversion of it.
pub(crate) fn exact_column_terms(column_terms: &[i64], acc_bound: u128) -> Vec<f64> {
    const EXACT: u64 = 1 << 52;
    if acc_bound <= 1 << 51 && column_terms.iter().all(|c| c.unsigned_abs() <= EXACT) {
        column_terms.iter().map(|&c| c as f64).collect()
    } else {
        Vec::new()
    }
}

/// [`ColumnRequant::write_from_dots`] for the stages that convert
/// `f64(acc)`: output `(r, c)` is `one(a[j], b[j], f64(dot) + c[j])` for
/// column `j = j0 + c`. Returns `false` when `column_terms` is empty.
#[inline(always)]
fn f64_from_dots<T: QuantElem>(
    tile: DotsTile<'_>,
    out: &mut [T],
    column_terms: &[f64],
    (a, b): (&[f64], &[f64]),
    one: impl Fn(f64, f64, f64) -> i32,
) -> bool {
    if column_terms.is_empty() {
        return false;
    }
    let span = tile.j0..tile.j0 + tile.cols;
    let (c, a, b) = (&column_terms[span.clone()], &a[span.clone()], &b[span]);
    // Whole tiles of the kernels' panel widths; measured 5–8 % faster
    // overall at 512×512×512 (AMX, AVX-512 VNNI, 7-bit AVX2).
    match tile.cols {
        32 => f64_full_width::<32, T>(tile, out, (c, a, b), &one),
        16 => f64_full_width::<16, T>(tile, out, (c, a, b), &one),
        _ => {
            for r in 0..tile.rows {
                let dots = &tile.dots[r * tile.dots_stride..][..tile.cols];
                let out = &mut out[r * tile.out_stride..][..tile.cols];
                let columns = c.iter().zip(a).zip(b);
                for ((y, &dot), ((&c, &a), &b)) in out.iter_mut().zip(dots).zip(columns) {
                    *y = T::from_i32_clamped(one(a, b, f64::from(dot) + c));
                }
            }
        }
    }
    true
}

/// [`f64_from_dots`] for a tile `W` columns wide: the column constants are
/// copied into arrays once per tile, so that they stay in registers for
/// every row, and each row is one unrolled pass with no remainder.
#[inline(always)]
fn f64_full_width<const W: usize, T: QuantElem>(
    tile: DotsTile<'_>,
    out: &mut [T],
    (c, a, b): (&[f64], &[f64], &[f64]),
    one: &impl Fn(f64, f64, f64) -> i32,
) {
    let as_array = |v: &[f64]| -> [f64; W] { std::array::from_fn(|k| v[k]) };
    let (c, a, b) = (as_array(c), as_array(a), as_array(b));
    for r in 0..tile.rows {
        let dots: &[i32; W] = tile.dots[r * tile.dots_stride..][..W].try_into().unwrap();
        let out: &mut [T; W] = (&mut out[r * tile.out_stride..][..W]).try_into().unwrap();
        for k in 0..W {
            out[k] = T::from_i32_clamped(one(a[k], b[k], f64::from(dots[k]) + c[k]));
        }
    }
}

/// Prepared (8)–(10): `out = clamp(round_half_even(o[j] + M[j]·f64(acc)))`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Float64Stage {
    offsets: Vec<f64>,
    multipliers: Vec<f64>,
    lo: f64,
    hi: f64,
    /// Every accumulator is within `2^51`, so `f64(acc)` can take the
    /// exact path that vectorizes without AVX-512.
    small_acc: bool,
    /// `c[j]` of (11) as `f64`, when it is all of (11) besides the dot
    /// product and the sum `f64(dot) + c[j]` is exact (see
    /// [`Float64Stage::with_column_terms`]); empty otherwise.
    column_terms: Vec<f64>,
}

impl Float64Stage {
    /// From `o[j]` and `M[j]` (finite), the clamp, and the largest `|acc|`
    /// the layer can produce.
    pub(crate) fn new(
        offsets: Vec<f64>,
        multipliers: Vec<f64>,
        (lo, hi): (i32, i32),
        acc_bound: u128,
    ) -> Self {
        Float64Stage {
            offsets,
            multipliers,
            lo: f64::from(lo),
            hi: f64::from(hi),
            small_acc: acc_bound <= 1 << 51,
            column_terms: Vec::new(),
        }
    }

    /// Lets tiles skip the `i64` accumulator (see [`exact_column_terms`]).
    pub(crate) fn with_column_terms(mut self, column_terms: &[i64], acc_bound: u128) -> Self {
        self.column_terms = exact_column_terms(column_terms, acc_bound);
        self
    }

    #[inline(always)]
    fn one(&self, offset: f64, multiplier: f64, acc: f64) -> i32 {
        // `o + M·acc` is a number or an infinity (both factors finite);
        // the clamp bounds it for (22).
        let v = offset + multiplier * acc;
        half_even_f64(clamp_f64(v, self.lo, self.hi)) as i32
    }
}

impl ColumnRequant for Float64Stage {
    #[inline]
    fn apply(&self, acc: i64, j: usize) -> i32 {
        self.one(self.offsets[j], self.multipliers[j], acc as f64)
    }

    #[inline(always)]
    fn apply_row_i32<T: QuantElem>(&self, accs: &[i32], j0: usize, out: &mut [T]) {
        let span = j0..j0 + accs.len();
        let columns = self.offsets[span.clone()]
            .iter()
            .zip(&self.multipliers[span]);
        for ((o, &acc), (&offset, &multiplier)) in out.iter_mut().zip(accs).zip(columns) {
            *o = T::from_i32_clamped(self.one(offset, multiplier, f64::from(acc)));
        }
    }

    #[inline(always)]
    fn write_from_dots<T: QuantElem>(&self, tile: DotsTile<'_>, out: &mut [T]) -> bool {
        let columns = (&self.offsets[..], &self.multipliers[..]);
        f64_from_dots(tile, out, &self.column_terms, columns, |o, m, acc| {
            self.one(o, m, acc)
        })
    }

    #[inline(always)]
    fn apply_row<T: QuantElem>(&self, accs: &[i64], j0: usize, out: &mut [T]) {
        let n = accs.len();
        let columns = self.offsets[j0..j0 + n]
            .iter()
            .zip(&self.multipliers[j0..j0 + n]);
        let lanes = out.iter_mut().zip(accs).zip(columns);
        // One loop per conversion, so that each vectorizes.
        if self.small_acc {
            for ((o, &acc), (&offset, &multiplier)) in lanes {
                *o = T::from_i32_clamped(self.one(offset, multiplier, small_i64_to_f64(acc)));
            }
        } else {
            for ((o, &acc), (&offset, &multiplier)) in lanes {
                *o = T::from_i32_clamped(self.one(offset, multiplier, acc as f64));
            }
        }
    }
}

/// Prepared (18): `out = clamp(round_half_away(f64(acc)·M[j]) + z)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TfliteReferenceStage {
    multipliers: Vec<f64>,
    zero_point: i64,
    /// The clamp moved before the zero point: `[lo − z, hi − z]`.
    lo: f64,
    hi: f64,
    /// As [`Float64Stage`]'s.
    column_terms: Vec<f64>,
}

impl TfliteReferenceStage {
    /// From `M[j]` (finite), the output zero point and the clamp.
    pub(crate) fn new(multipliers: Vec<f64>, zero_point: i32, (lo, hi): (i32, i32)) -> Self {
        let z = i64::from(zero_point);
        TfliteReferenceStage {
            multipliers,
            zero_point: z,
            lo: (i64::from(lo) - z) as f64,
            hi: (i64::from(hi) - z) as f64,
            column_terms: Vec::new(),
        }
    }

    /// Lets tiles skip the `i64` accumulator (see [`exact_column_terms`]).
    pub(crate) fn with_column_terms(mut self, column_terms: &[i64], acc_bound: u128) -> Self {
        self.column_terms = exact_column_terms(column_terms, acc_bound);
        self
    }

    #[inline(always)]
    fn one(&self, multiplier: f64, acc: f64) -> i32 {
        let v = acc * multiplier;
        (half_away_f64(clamp_f64(v, self.lo, self.hi)) + self.zero_point) as i32
    }
}

impl ColumnRequant for TfliteReferenceStage {
    #[inline]
    fn apply(&self, acc: i64, j: usize) -> i32 {
        self.one(self.multipliers[j], acc as f64)
    }

    #[inline(always)]
    fn apply_row_i32<T: QuantElem>(&self, accs: &[i32], j0: usize, out: &mut [T]) {
        let multipliers = &self.multipliers[j0..j0 + accs.len()];
        for ((o, &acc), &multiplier) in out.iter_mut().zip(accs).zip(multipliers) {
            *o = T::from_i32_clamped(self.one(multiplier, f64::from(acc)));
        }
    }

    #[inline(always)]
    fn write_from_dots<T: QuantElem>(&self, tile: DotsTile<'_>, out: &mut [T]) -> bool {
        // The stage has one constant per column: it goes in both places.
        let columns = (&self.multipliers[..], &self.multipliers[..]);
        f64_from_dots(tile, out, &self.column_terms, columns, |_, m, acc| {
            self.one(m, acc)
        })
    }
}

/// Prepared (19): integer arithmetic only.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FixedPointStage {
    rounding: Rounding,
    multipliers: Vec<QuantizedMultiplier>,
    zero_point: i64,
    lo: i64,
    hi: i64,
    /// The multipliers as vectorizable lanes (always, for multipliers
    /// from `quantize_multiplier`).
    lanes: Option<MultiplierLanes>,
}

impl FixedPointStage {
    /// From the quantized multipliers, the output zero point and the clamp.
    pub(crate) fn new(
        rounding: Rounding,
        multipliers: Vec<QuantizedMultiplier>,
        zero_point: i32,
        (lo, hi): (i32, i32),
    ) -> Self {
        FixedPointStage {
            rounding,
            lanes: MultiplierLanes::new(&multipliers, rounding),
            multipliers,
            zero_point: i64::from(zero_point),
            lo: i64::from(lo),
            hi: i64::from(hi),
        }
    }
}

impl ColumnRequant for FixedPointStage {
    #[inline]
    fn apply(&self, acc: i64, j: usize) -> i32 {
        // The layer refuses weights whose accumulator could leave i32, so
        // the narrowing is exact.
        let acc = acc.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        // The zero point is added to the exact product, not a saturated one.
        let scaled = multiply_unsaturated(acc, self.multipliers[j], self.rounding);
        (scaled + self.zero_point).clamp(self.lo, self.hi) as i32
    }

    /// One loop per rounding mode over the column lanes. `z`, `lo` and `hi`
    /// are `i32`s, so `clamp(saturating(s + z))` is `clamp(s + z)`.
    #[inline(always)]
    fn apply_row_i32<T: QuantElem>(&self, accs: &[i32], j0: usize, out: &mut [T]) {
        let Some(lanes) = &self.lanes else {
            return apply_each(self, accs, j0, out);
        };
        let span = j0..j0 + accs.len();
        let (z, lo, hi) = (self.zero_point as i32, self.lo as i32, self.hi as i32);
        let finish = |scaled: i32| T::from_i32_clamped(scaled.saturating_add(z).clamp(lo, hi));
        match lanes {
            MultiplierLanes::Doubling {
                half_up,
                q,
                pow,
                right,
                mask,
            } => {
                let columns = q[span.clone()]
                    .iter()
                    .zip(&pow[span.clone()])
                    .zip(&right[span.clone()])
                    .zip(&mask[span]);
                let lanes = out.iter_mut().zip(accs).zip(columns);
                // One loop per mode, each with its lane function inlined.
                if *half_up {
                    for ((o, &x), (((&q, &pow), &right), &mask)) in lanes {
                        *o = finish(half_up_lane(x, q, pow, right, mask));
                    }
                } else {
                    for ((o, &x), (((&q, &pow), &right), &mask)) in lanes {
                        *o = finish(double_lane(x, q, pow, right, mask));
                    }
                }
            }
            MultiplierLanes::Single { q, total, round } => {
                let columns = q[span.clone()]
                    .iter()
                    .zip(&total[span.clone()])
                    .zip(&round[span]);
                // The product can leave i32 (up to 2^61): clamped to
                // [lo − z, hi − z] in i64, then z added, as the exact
                // clamp(product + z) is.
                let z = self.zero_point;
                let (lo, hi) = (self.lo - z, self.hi - z);
                for ((o, &x), ((&q, &t), &r)) in out.iter_mut().zip(accs).zip(columns) {
                    let v = single_product(x, q, t, r).clamp(lo, hi) + z;
                    *o = T::from_i32_clamped(v as i32);
                }
            }
        }
    }
}

/// Prepared (20): `out = clamp(round_half_even(f32(acc)·m[j]) + z)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Float32Stage {
    multipliers: Vec<f32>,
    zero_point: i64,
    lo: i64,
    hi: i64,
    /// `[lo − z, hi − z]` as `f32` when both lie within `2^22`, so that the
    /// clamp can come first and (22) round exactly.
    shifted_clamp: Option<(f32, f32)>,
}

impl Float32Stage {
    /// From `m[j]` (finite), the output zero point and the clamp.
    pub(crate) fn new(multipliers: Vec<f32>, zero_point: i32, (lo, hi): (i32, i32)) -> Self {
        let z = i64::from(zero_point);
        let (a, b) = (i64::from(lo) - z, i64::from(hi) - z);
        let small = |v: i64| v.abs() <= 1 << 22;
        Float32Stage {
            multipliers,
            zero_point: z,
            lo: i64::from(lo),
            hi: i64::from(hi),
            shifted_clamp: (small(a) && small(b)).then_some((a as f32, b as f32)),
        }
    }
}

impl ColumnRequant for Float32Stage {
    #[inline]
    fn apply(&self, acc: i64, j: usize) -> i32 {
        let v = acc as f32 * self.multipliers[j];
        match self.shifted_clamp {
            Some((a, b)) => (i64::from(half_even_f32(clamp_f32(v, a, b))) + self.zero_point) as i32,
            None => {
                // Bounded first so that adding the zero point cannot overflow.
                let r = v.round_ties_even().clamp(-1e15, 1e15) as i64;
                (r + self.zero_point).clamp(self.lo, self.hi) as i32
            }
        }
    }

    /// With the clamp first, the rounded value lies in `[lo − z, hi − z]`
    /// and adding `z` gives an `i32` in `[lo, hi]`: no 64-bit lane.
    #[inline(always)]
    fn apply_row_i32<T: QuantElem>(&self, accs: &[i32], j0: usize, out: &mut [T]) {
        let Some((a, b)) = self.shifted_clamp else {
            return apply_each(self, accs, j0, out);
        };
        let z = self.zero_point as i32;
        let multipliers = &self.multipliers[j0..j0 + accs.len()];
        for ((o, &acc), &m) in out.iter_mut().zip(accs).zip(multipliers) {
            let r = half_even_f32(clamp_f32(acc as f32 * m, a, b));
            *o = T::from_i32_clamped(r.wrapping_add(z));
        }
    }
}
