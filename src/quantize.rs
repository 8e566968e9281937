//! Quantize and dequantize, bit for bit as numpy computes them.
//!
//! numpy evaluates the notebook's `np.round(1/s * x + z)` on an `f32` array
//! with `1/s` and `z` as weak Python scalars, so everything happens in `f32`:
//!
//! ```text
//! (5)  q = clamp(round_half_even(f32(x · f32(1/s)) + f32(z)), qmin, qmax)
//! ```
//!
//! with the product and the sum each rounded to `f32` (no fused
//! multiply-add), and `1/s` computed in `f64` then rounded to `f32` once.
//! Dequantization, `s * (q.astype(int32) − z)`, runs in `f64` and is rounded
//! to `f32` at the end:
//!
//! ```text
//! (6)  r = f32(s · f64(q − z))
//! ```
//!
//! A NaN has no quantized value; [`quantize`] maps it to the quantized value
//! of real 0 (the zero point, clamped to the range) and [`try_quantize`]
//! refuses it. Infinities saturate to the range bounds, as any finite value
//! beyond the range does.
//!
//! Every function takes any [`Real`] type: each value is converted to
//! `f32` first (an `f64` beyond `f32` becomes ±∞), and dequantized values
//! are computed in `f32` as (6) says and converted to the requested type.

use ndarray::{ArrayBase, ArrayView2, ArrayViewMut2, Data, DataMut, Dimension, Ix2, Zip};

use crate::alloc::try_map;
use crate::elem::QuantElem;
use crate::error::QuantError;
use crate::params::{QuantParams, QuantRange};
use crate::real::Real;
use crate::workspace::matrix_mut;

/// `1.5·2^23`. Added to an `f32` of magnitude at most `2^22`, it gives a sum
/// in `[2^23, 2^24]`, where `f32` values are the integers: the addition
/// rounds half to even (the default rounding mode).
const ROUNDING_BIAS: f32 = 12_582_912.0;

/// Largest bound for which [`ROUNDING_BIAS`] rounds exactly.
const BIAS_BOUND: i32 = 1 << 22;

/// Equation (5) for one parameter set, with the `f32` constants prepared once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScalarQuantizer {
    inv_scale: f32,
    zero_point: f32,
    qmin: f32,
    qmax: f32,
    nan_value: i32,
    /// The range lies within `±2^22`, so rounding can use the bias; true
    /// for every 8-bit range.
    small_range: bool,
}

impl ScalarQuantizer {
    /// Prepares (5) for `params` onto `range`.
    pub(crate) fn new(params: QuantParams, range: QuantRange) -> ScalarQuantizer {
        let zero_point = params.zero_point.clamp(range.qmin, range.qmax);
        ScalarQuantizer {
            inv_scale: (1.0 / params.scale) as f32,
            zero_point: params.zero_point as f32,
            qmin: range.qmin as f32,
            qmax: range.qmax as f32,
            nan_value: zero_point,
            small_range: -BIAS_BOUND <= range.qmin && range.qmax <= BIAS_BOUND,
        }
    }

    /// Equation (5); NaN gives the quantized value of real 0, and an
    /// infinity its end of the range (also when `f32(1/s)` is 0 and
    /// `∞·f32(1/s)` is NaN).
    #[inline]
    pub(crate) fn quantize(&self, x: f32) -> i32 {
        let y = x * self.inv_scale + self.zero_point;
        if y.is_nan() {
            match x {
                f32::INFINITY => self.qmax as i32,
                f32::NEG_INFINITY => self.qmin as i32,
                _ => self.nan_value,
            }
        } else if self.small_range {
            self.round_in_small_range(y)
        } else {
            // In range after the clamp, so the cast is exact.
            y.round_ties_even().clamp(self.qmin, self.qmax) as i32
        }
    }

    /// `y` clamped to the range and rounded half to even, for a range
    /// within `±2^22`; a NaN gives `qmin`.
    ///
    /// Clamps before rounding: rounding is monotone and the bounds are
    /// integers, so the order does not change the result, and clamping
    /// first lets one addition of [`ROUNDING_BIAS`] round. The sum `t`
    /// lies in `[2^23, 2^24]`, where the bits of `t` minus those of the bias
    /// are the rounded integer, so no float-to-int conversion is needed.
    /// The whole is branch-free and vectorizes (`round_ties_even` is a call
    /// to `rintf` per element without SSE4.1, and a saturating `as i32`
    /// does not vectorize). Plain compares rather than `f32::max`/`min`,
    /// whose NaN rules cost extra instructions.
    #[inline]
    fn round_in_small_range(&self, y: f32) -> i32 {
        let above_min = if y > self.qmin { y } else { self.qmin };
        let t = if above_min < self.qmax {
            above_min
        } else {
            self.qmax
        } + ROUNDING_BIAS;
        t.to_bits() as i32 - ROUNDING_BIAS.to_bits() as i32
    }

    /// [`quantize`](Self::quantize) of each of `src` into `dst`, as `T`
    /// (the range must lie within `T`), for finite `src` and valid params
    /// (a finite `1/s`): `x/s + z` cannot be NaN there, so the loop needs
    /// no NaN select and vectorizes. A NaN in `src` would give `qmin`
    /// rather than the zero point (for ranges within `±2^22`).
    #[inline(always)] // into `Stamped::vectorized`
    pub(crate) fn quantize_finite_slice<T: QuantElem>(self, src: &[f32], dst: &mut [T]) {
        if self.small_range {
            for (d, &x) in dst.iter_mut().zip(src) {
                let y = x * self.inv_scale + self.zero_point;
                *d = T::from_i32_clamped(self.round_in_small_range(y));
            }
        } else {
            for (d, &x) in dst.iter_mut().zip(src) {
                *d = T::from_i32_clamped(self.quantize(x));
            }
        }
    }
}

/// Equation (6) for one value.
#[inline]
pub(crate) fn dequantize_value(q: i32, params: QuantParams) -> f32 {
    (params.scale * (i64::from(q) - i64::from(params.zero_point)) as f64) as f32
}

/// Quantizes `x` to int8 with the notebook's arithmetic, equation (5).
///
/// Works on arrays of any dimension and layout (views, transposed and
/// strided views); the result has the same shape. NaN maps to the zero point
/// clamped to `[-128, 127]`, and `params` are used as given (a struct
/// literal can hold a scale [`QuantParams::new`] refuses; the result is
/// still clamped); use [`try_quantize`] to refuse both instead.
///
/// Any [`Real`] input: each value is converted to `f32` first, then (5).
///
/// # Panics
///
/// If the result cannot be allocated (a broadcast view of 2^62 elements
/// asks for 2^62 bytes); [`try_quantize`] and [`quantize_as`] return
/// [`QuantError::TooLarge`] instead.
///
/// ```
/// use ndarray::array;
/// use qlinear::{quantize, QuantParams};
///
/// let p = QuantParams::new(0.5, 3).unwrap();
/// let q = quantize(&array![[0.0f32, 0.25, -0.75], [1e9, -1e9, f32::NAN]], p);
/// // 0.25/0.5 + 3 = 3.5 rounds half to even: 4; -0.75/0.5 + 3 = 1.5: 2.
/// assert_eq!(q, array![[3i8, 4, 2], [127, -128, 3]]);
/// ```
pub fn quantize<S, D>(x: &ArrayBase<S, D>, params: QuantParams) -> ndarray::Array<i8, D>
where
    S: Data,
    S::Elem: Real,
    D: Dimension,
{
    let quantizer = ScalarQuantizer::new(params, QuantRange::INT8);
    // The clamp to [-128, 127] makes the narrowing cast exact.
    x.mapv(|v| quantizer.quantize(v.to_f32_nearest()) as i8)
}

/// Quantizes `x` to `T` (`i8` or `u8`) within `range`, equation (5): for
/// the uint8, narrow and reduced ranges of [`QuantRange`].
///
/// Errors if `range` does not fit in `T`, `params` are invalid (built by
/// a struct literal with a scale [`QuantParams::new`] refuses), or the
/// result cannot be allocated ([`QuantError::TooLarge`]). NaN maps to the
/// zero point clamped into `range`. Any [`Real`] input: each value is
/// converted to `f32` first, then (5).
///
/// ```
/// use ndarray::array;
/// use qlinear::{quantize_as, QuantParams, QuantRange};
///
/// let p = QuantParams::new(0.1, 128).unwrap();
/// let q = quantize_as::<u8, _, _>(&array![-12.8f32, 0.0, 12.7, 100.0], p, QuantRange::UINT8).unwrap();
/// assert_eq!(q, array![0u8, 128, 255, 255]);
/// let r = quantize_as::<i8, _, _>(&array![100.0f32], p, QuantRange::INT8_NARROW);
/// assert_eq!(r.unwrap(), array![127i8]);
/// assert!(quantize_as::<i8, _, _>(&array![1.0f32], p, QuantRange::UINT8).is_err());
/// ```
pub fn quantize_as<T, S, D>(
    x: &ArrayBase<S, D>,
    params: QuantParams,
    range: QuantRange,
) -> Result<ndarray::Array<T, D>, QuantError>
where
    T: QuantElem,
    S: Data,
    S::Elem: Real,
    D: Dimension,
{
    check_range_fits::<T>(range)?;
    params.validate()?;
    let quantizer = ScalarQuantizer::new(params, range);
    try_map("quantized array", x, |v| {
        T::from_i32_clamped(quantizer.quantize(v.to_f32_nearest()))
    })
}

/// The real-in, real-out path of the layers and stacks: `x` quantized
/// with `input` onto its range as `T` into `x_buf`, `run` from it into
/// `y_buf` (m × `out.ncols()`), that dequantized with `output` into `out`
/// (in `f32`, then converted to `out`'s type). Both buffers are sized
/// before any pass over `x`, so that a batch too large fails first, and
/// reused as they are when large enough. The caller has checked `x`'s
/// columns and `out`'s shape. Errors on a NaN in `x`, and as `run` does.
pub(crate) fn through_quantized<T, S, So>(
    x: &ArrayBase<S, Ix2>,
    (input, range): (QuantParams, QuantRange),
    output: QuantParams,
    out: &mut ArrayBase<So, Ix2>,
    (x_buf, y_buf): (&mut Vec<T>, &mut Vec<T>),
    run: impl FnOnce(ArrayView2<'_, T>, &mut ArrayViewMut2<'_, T>) -> Result<(), QuantError>,
) -> Result<(), QuantError>
where
    T: QuantElem,
    S: Data,
    S::Elem: Real,
    So: DataMut,
    So::Elem: Real,
{
    let mut x_q = matrix_mut(x_buf, "quantized input", x.dim())?;
    let mut y_q = matrix_mut(y_buf, "quantized output", out.dim())?;
    check_no_nan(x, "input")?;
    let quantizer = ScalarQuantizer::new(input, range);
    Zip::from(&mut x_q)
        .and(x)
        .for_each(|q, &v| *q = T::from_i32_clamped(quantizer.quantize(v.to_f32_nearest())));
    run(x_q.view(), &mut y_q)?;
    Zip::from(out)
        .and(&y_q)
        .for_each(|y, &q| *y = Real::from_f32_nearest(dequantize_value(q.to_i32(), output)));
    Ok(())
}

/// `range` must be ordered and lie within `T`.
pub(crate) fn check_range_fits<T: QuantElem>(range: QuantRange) -> Result<(), QuantError> {
    let ordered = QuantRange::new(range.qmin, range.qmax)?;
    if T::RANGE.contains(ordered) {
        Ok(())
    } else {
        Err(QuantError::InvalidTargetRange {
            qmin: range.qmin,
            qmax: range.qmax,
        })
    }
}

/// Like [`quantize`], but a NaN anywhere in `x` is an error naming its
/// position, and so are invalid `params` and a result too large to
/// allocate. Any [`Real`] input: each value is converted to `f32` first
/// (an `f64` NaN is a NaN; an `f64` beyond `f32` saturates as ±∞).
///
/// ```
/// use ndarray::array;
/// use qlinear::{try_quantize, QuantError, QuantParams};
///
/// let p = QuantParams::new(1.0, 0).unwrap();
/// let err = try_quantize(&array![1.0f32, f32::NAN], p).unwrap_err();
/// assert!(matches!(err, QuantError::NonFinite { index: 1, .. }));
/// ```
pub fn try_quantize<S, D>(
    x: &ArrayBase<S, D>,
    params: QuantParams,
) -> Result<ndarray::Array<i8, D>, QuantError>
where
    S: Data,
    S::Elem: Real,
    D: Dimension,
{
    params.validate()?;
    let q = quantize_as::<i8, _, _>(x, params, QuantRange::INT8)?;
    check_no_nan(x, "input")?;
    Ok(q)
}

/// Returns an error for the first NaN of `x`, in logical row-major order.
pub(crate) fn check_no_nan<S, D>(x: &ArrayBase<S, D>, what: &'static str) -> Result<(), QuantError>
where
    S: Data,
    S::Elem: Real,
    D: Dimension,
{
    first_where(x, what, |v| v.is_nan())
}

/// Returns an error for the first NaN or infinity of `x` as `f32` (an
/// `f64` beyond `f32` is an infinity), in logical row-major order.
pub(crate) fn check_finite<S, D>(x: &ArrayBase<S, D>, what: &'static str) -> Result<(), QuantError>
where
    S: Data,
    S::Elem: Real,
    D: Dimension,
{
    first_where(x, what, |v| !v.is_finite())
}

/// An error naming the first element of `x` whose `f32` value is `bad`,
/// with that `f32` value.
fn first_where<S, D>(
    x: &ArrayBase<S, D>,
    what: &'static str,
    bad: impl Fn(f32) -> bool,
) -> Result<(), QuantError>
where
    S: Data,
    S::Elem: Real,
    D: Dimension,
{
    let values = x.iter().map(|&v| v.to_f32_nearest());
    match values.enumerate().find(|&(_, v)| bad(v)) {
        None => Ok(()),
        Some((index, v)) => Err(QuantError::NonFinite {
            what,
            index,
            value: f64::from(v),
        }),
    }
}

/// Dequantizes `i8` or `u8` values with the notebook's arithmetic,
/// equation (6).
///
/// Exact for every zero point: `q − z` is formed in `i64` (numpy forms it
/// in `int32`, which can wrap for zero points near the `i32` limits). The
/// result is `f32`; [`dequantize_as`] converts it to another [`Real`] type.
///
/// # Panics
///
/// If the result cannot be allocated (a broadcast view of 2^62 elements
/// asks for 2^64 bytes); [`try_dequantize`] returns
/// [`QuantError::TooLarge`] instead.
///
/// ```
/// use ndarray::array;
/// use qlinear::{dequantize, QuantParams};
///
/// let p = QuantParams::new(0.5, 3).unwrap();
/// assert_eq!(dequantize(&array![3i8, 4, -128], p), array![0.0f32, 0.5, -65.5]);
/// ```
pub fn dequantize<S, D, T>(q: &ArrayBase<S, D>, params: QuantParams) -> ndarray::Array<f32, D>
where
    S: Data<Elem = T>,
    D: Dimension,
    T: QuantElem,
{
    q.mapv(|v| dequantize_value(v.to_i32(), params))
}

/// [`dequantize`] as `F`: each value computed in `f32` by (6), then
/// converted to `F` (rounded to nearest, ties to even; exact for `f64`).
///
/// # Panics
///
/// As [`dequantize`] does; [`try_dequantize_as`] returns
/// [`QuantError::TooLarge`] instead.
///
/// ```
/// use ndarray::array;
/// use qlinear::{dequantize, dequantize_as, QuantParams};
///
/// let p = QuantParams::new(0.1, 0).unwrap();
/// let q = array![1i8, -3];
/// let r = dequantize_as::<f64, _, _>(&q, p);
/// assert_eq!(r, dequantize(&q, p).mapv(f64::from));
/// assert_eq!(r[0], f64::from(0.1f32));
/// ```
pub fn dequantize_as<F, S, D>(q: &ArrayBase<S, D>, params: QuantParams) -> ndarray::Array<F, D>
where
    F: Real,
    S: Data,
    S::Elem: QuantElem,
    D: Dimension,
{
    q.mapv(|v| F::from_f32_nearest(dequantize_value(v.to_i32(), params)))
}

/// [`dequantize`], with a result too large to allocate as
/// [`QuantError::TooLarge`] rather than a panic.
///
/// ```
/// use ndarray::{array, Array2};
/// use qlinear::{try_dequantize, QuantError, QuantParams};
///
/// let p = QuantParams::new(0.5, 3).unwrap();
/// assert_eq!(try_dequantize(&array![3i8, 4], p)?, array![0.0f32, 0.5]);
/// let huge = Array2::<i8>::zeros((1, 1));
/// let huge = huge.broadcast((1 << 31, 1 << 31)).unwrap();
/// assert!(matches!(try_dequantize(&huge, p), Err(QuantError::TooLarge { .. })));
/// # Ok::<(), QuantError>(())
/// ```
pub fn try_dequantize<S, D, T>(
    q: &ArrayBase<S, D>,
    params: QuantParams,
) -> Result<ndarray::Array<f32, D>, QuantError>
where
    S: Data<Elem = T>,
    D: Dimension,
    T: QuantElem,
{
    try_map("dequantized array", q, |v| {
        dequantize_value(v.to_i32(), params)
    })
}

/// [`dequantize_as`], with a result too large to allocate as
/// [`QuantError::TooLarge`] rather than a panic.
///
/// ```
/// use ndarray::array;
/// use qlinear::{try_dequantize_as, QuantParams};
///
/// let p = QuantParams::new(0.5, 3).unwrap();
/// assert_eq!(try_dequantize_as::<f64, _, _>(&array![3u8, 4], p)?, array![0.0f64, 0.5]);
/// # Ok::<(), qlinear::QuantError>(())
/// ```
pub fn try_dequantize_as<F, S, D>(
    q: &ArrayBase<S, D>,
    params: QuantParams,
) -> Result<ndarray::Array<F, D>, QuantError>
where
    F: Real,
    S: Data,
    S::Elem: QuantElem,
    D: Dimension,
{
    try_map("dequantized array", q, |v| {
        F::from_f32_nearest(dequantize_value(v.to_i32(), params))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, s, Array2};

    #[test]
    fn rounds_half_to_even_not_away() {
        let p = QuantParams::new(1.0, 0).unwrap();
        let q = quantize(&array![0.5f32, 1.5, 2.5, -0.5, -1.5, -2.5], p);
        assert_eq!(q, array![0i8, 2, 2, 0, -2, -2]);
    }

    /// Equation (5) as first written, before the bias: round, then clamp.
    fn round_then_clamp(q: &ScalarQuantizer, x: f32) -> i32 {
        let r = (x * q.inv_scale + q.zero_point).round_ties_even();
        if r.is_nan() {
            q.nan_value
        } else {
            r.clamp(q.qmin, q.qmax) as i32
        }
    }

    /// Clamping before rounding, and rounding by the bias, against the
    /// direct order with `round_ties_even`: on every tie near 0 and near
    /// `±2^22` (the bias's limit), random bit patterns and the special
    /// values, for 8-bit ranges, the widest biased range and a wider one.
    #[test]
    fn biased_rounding_after_the_clamp_equals_rounding_first() {
        let bound = BIAS_BOUND as f32;
        let mut values = vec![
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::from_bits(0x8000_0001),
        ];
        for k in -600..600 {
            values.extend([
                k as f32 / 2.0,
                bound + k as f32 / 2.0,
                -bound + k as f32 / 2.0,
            ]);
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            values.push(f32::from_bits((state >> 32) as u32));
        }
        let ranges = [
            QuantRange::INT8,
            QuantRange::UINT8,
            QuantRange::new(-BIAS_BOUND, BIAS_BOUND).unwrap(),
            QuantRange::new(-(1 << 30), 1 << 30).unwrap(),
        ];
        let p = QuantParams::new(1.0, 0).unwrap();
        for range in ranges {
            let q = ScalarQuantizer::new(p, range);
            assert_eq!(q.small_range, range.qmax <= BIAS_BOUND);
            for &y in &values {
                assert_eq!(
                    q.quantize(y),
                    round_then_clamp(&q, y),
                    "{y:e} onto {range:?}"
                );
            }
        }
    }

    /// Without the NaN select, the values of equation (5) as first written
    /// (round, then clamp) on finite input, including products that
    /// overflow to ±∞ and zeros under the largest valid `1/s`, stored as
    /// `i8` and as `u8`; compiled plainly and for every kernel's
    /// instruction set, on every length up to 140 and on the whole input.
    #[test]
    fn finite_slices_quantize_as_rounding_then_clamping() {
        fn check<T: QuantElem + PartialEq + std::fmt::Debug>(q: ScalarQuantizer, src: &[f32]) {
            let want: Vec<T> = src
                .iter()
                .map(|&x| T::from_i32_clamped(round_then_clamp(&q, x)))
                .collect();
            let mut got = vec![T::default(); src.len()];
            q.quantize_finite_slice(src, &mut got);
            assert_eq!(got, want, "{q:?}");
            for k in crate::gemm::KernelChoice::available() {
                for len in (0..=140).chain([src.len()]) {
                    let mut got = vec![T::default(); len];
                    k.vectorized(|| q.quantize_finite_slice(&src[..len], &mut got));
                    assert_eq!(got, want[..len], "{} {q:?}", k.name());
                }
            }
        }
        let mut state = 0x0123_4567_89ab_cdefu64;
        let mut src: Vec<f32> = (0..5000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                f32::from_bits((state >> 32) as u32)
            })
            .filter(|v| v.is_finite())
            .collect();
        src.extend([
            0.0,
            -0.0,
            f32::MAX,
            f32::MIN,
            1e-45,
            -1e-45,
            0.5,
            -2.5,
            127.5,
        ]);
        let largest_reciprocal = 1.0 / f64::from(f32::MAX) * (1.0 + 1e-9);
        for scale in [1.0, 0.03, largest_reciprocal, 1e30] {
            for zero_point in [0, 3, -100, 200, i32::MAX] {
                let params = QuantParams::new(scale, zero_point).unwrap();
                check::<i8>(ScalarQuantizer::new(params, QuantRange::INT8), &src);
                check::<i8>(ScalarQuantizer::new(params, QuantRange::INT8_NARROW), &src);
                check::<u8>(ScalarQuantizer::new(params, QuantRange::UINT8), &src);
                check::<u8>(
                    ScalarQuantizer::new(params, QuantRange::UINT8_REDUCED),
                    &src,
                );
            }
        }
    }

    #[test]
    fn infinities_saturate_and_nan_maps_to_clamped_zero_point() {
        let p = QuantParams::new(1.0, 500).unwrap();
        let q = quantize(&array![f32::INFINITY, f32::NEG_INFINITY, f32::NAN], p);
        assert_eq!(q, array![127i8, -128, 127]);
        let p = QuantParams::new(1.0, -7).unwrap();
        assert_eq!(quantize(&array![f32::NAN], p), array![-7i8]);
    }

    #[test]
    fn any_layout_gives_the_same_values() {
        let p = QuantParams::new(0.1, 2).unwrap();
        let a = Array2::from_shape_fn((5, 7), |(i, j)| (i as f32 - 2.0) * 1.3 + j as f32 * 0.37);
        let want = quantize(&a, p);
        assert_eq!(quantize(&a.t(), p), want.t());
        assert_eq!(
            quantize(&a.slice(s![..;2, 1..;3]), p),
            want.slice(s![..;2, 1..;3])
        );
        assert_eq!(
            quantize(&a.slice(s![..;-1, ..]), p),
            want.slice(s![..;-1, ..])
        );
    }

    #[test]
    fn dequantize_is_exact_for_extreme_zero_points() {
        let p = QuantParams::new(1.0, i32::MIN).unwrap();
        let r = dequantize(&array![127i8], p);
        assert_eq!(r[0], (127.0f64 + 2_147_483_648.0) as f32);
    }

    #[test]
    fn empty_arrays_round_trip() {
        let p = QuantParams::new(1.0, 0).unwrap();
        let e = Array2::<f32>::zeros((0, 3));
        assert_eq!(quantize(&e, p).shape(), &[0, 3]);
        assert_eq!(dequantize(&quantize(&e, p), p).shape(), &[0, 3]);
    }
}
