//! TFLite's fixed-point multiplier, equation (19): `QuantizeMultiplier`,
//! `SaturatingRoundingDoublingHighMul` and the three rounding shifts.

use super::Rounding;
use crate::error::QuantError;

/// A multiplier `M ≈ multiplier · 2^(shift − 31)` with `multiplier` in
/// `[2^30, 2^31)` (or 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantizedMultiplier {
    /// The Q31 mantissa.
    pub multiplier: i32,
    /// The power of two: positive shifts left, negative right.
    pub shift: i32,
}

/// TFLite's `QuantizeMultiplier`: `(f, e) = frexp(M)` with `f ∈ [0.5, 1)`,
/// `q = round_half_away(f·2^31)`; if `q = 2^31` then `q = 2^30, e += 1`;
/// if `e < −31` then `(q, e) = (0, 0)`.
///
/// Errors for a negative, NaN or infinite `M`.
///
/// ```
/// use qlinear::requant::{quantize_multiplier, QuantizedMultiplier};
/// assert_eq!(
///     quantize_multiplier(0.5).unwrap(),
///     QuantizedMultiplier { multiplier: 1 << 30, shift: 0 }
/// );
/// assert_eq!(quantize_multiplier(0.0).unwrap().multiplier, 0);
/// ```
pub fn quantize_multiplier(m: f64) -> Result<QuantizedMultiplier, QuantError> {
    if !(m.is_finite() && m >= 0.0) {
        return Err(QuantError::InvalidMultiplier {
            what: "fixed-point multiplier",
            value: m,
        });
    }
    if m == 0.0 {
        return Ok(QuantizedMultiplier {
            multiplier: 0,
            shift: 0,
        });
    }
    let (f, mut e) = frexp(m);
    let mut q = (f * 2f64.powi(31)).round() as i64;
    if q == 1i64 << 31 {
        q = 1 << 30;
        e += 1;
    }
    if e < -31 {
        return Ok(QuantizedMultiplier {
            multiplier: 0,
            shift: 0,
        });
    }
    Ok(QuantizedMultiplier {
        multiplier: q as i32,
        shift: e,
    })
}

/// `(f, e)` with `m = f·2^e`, `f ∈ [0.5, 1)`, for finite `m > 0`.
fn frexp(m: f64) -> (f64, i32) {
    let bits = m.to_bits();
    let exp_field = ((bits >> 52) & 0x7ff) as i32;
    if exp_field == 0 {
        // Subnormal: scale into the normal range first.
        let (f, e) = frexp(m * 2f64.powi(64));
        return (f, e - 64);
    }
    let f = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (f, exp_field - 1022)
}

/// `acc · M` in fixed point, (19), saturated to `i32`.
///
/// Defined exactly for every `QuantizedMultiplier`, including hand-built
/// ones outside what [`quantize_multiplier`] returns: the products and
/// shifts are taken in 128 bits, as if the integers were wide enough, and
/// only the result is saturated. Where `x·2^shift` and the result fit in
/// `i32` this is gemmlowp's and TFLite's arithmetic bit for bit; beyond,
/// TFLite wraps, saturates an intermediate or (single rounding) replaces
/// a shift above 30 by `(2^31 − 1, 30)`, and each of those gives a wrong
/// number where this gives the rounded true value.
///
/// ```
/// use qlinear::requant::{
///     multiply_by_quantized_multiplier, quantize_multiplier, QuantizedMultiplier, Rounding,
/// };
/// let m = quantize_multiplier(0.3).unwrap();
/// // gemmlowp's double rounding: −1001·0.3 = −300.3, yet −301.
/// assert_eq!(multiply_by_quantized_multiplier(-1001, m, Rounding::Double), -301);
/// assert_eq!(multiply_by_quantized_multiplier(-1001, m, Rounding::Single), -300);
/// // A multiplier of (2^31 − 1)·2^0: the true product, not TFLite's 2^30.
/// let big = QuantizedMultiplier { multiplier: i32::MAX, shift: 31 };
/// assert_eq!(multiply_by_quantized_multiplier(1, big, Rounding::Single), i32::MAX);
/// ```
pub fn multiply_by_quantized_multiplier(x: i32, m: QuantizedMultiplier, rounding: Rounding) -> i32 {
    let (x, q) = (i128::from(x), i128::from(m.multiplier));
    if x == 0 || q == 0 {
        return 0;
    }
    let value = match rounding {
        Rounding::Single => shift_round(x * q, 31 - i64::from(m.shift), Tie::Up),
        Rounding::HalfUp | Rounding::Double => {
            // |x·2^left| ≤ 2^95 and |q| ≤ 2^31: the product fits in i128.
            // Past a left shift of 64 every nonzero product saturates.
            let left = i64::from(m.shift).clamp(0, 64);
            let high = shift_round((x << left) * q, 31, Tie::Up);
            let tie = if rounding == Rounding::HalfUp {
                Tie::Up
            } else {
                Tie::AwayFromZero
            };
            shift_round(high, -i64::from(m.shift).min(0), tie)
        }
    };
    value.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32
}

/// How [`shift_round`] breaks a tie.
#[derive(Clone, Copy, PartialEq)]
enum Tie {
    /// Toward +∞.
    Up,
    /// Away from zero.
    AwayFromZero,
}

/// `v / 2^right` rounded to the nearest integer (ties as `tie` says), or
/// `v · 2^(−right)` for a negative `right`, saturated to `±2^100` (far
/// outside `i32`). `|v| < 2^127`.
fn shift_round(v: i128, right: i64, tie: Tie) -> i128 {
    const LIMIT: i128 = 1 << 100;
    if right <= 0 {
        let left = (-right).min(100) as u32;
        return match v.checked_mul(1i128 << left) {
            Some(p) => p.clamp(-LIMIT, LIMIT),
            None => v.signum() * LIMIT,
        };
    }
    if right >= 128 {
        // |v| / 2^right < 1/2: rounds to 0 under either rule.
        return 0;
    }
    let r = right as u32;
    let floor = v >> r;
    let remainder = v - (floor << r);
    let half = 1i128 << (r - 1);
    let up = remainder > half || (remainder == half && (tie == Tie::Up || v > 0));
    floor + i128::from(up)
}

/// The smallest shift [`quantize_multiplier`] returns, and so the smallest
/// [`multiply`] takes.
const MIN_SHIFT: i32 = -31;

/// (19) for a multiplier whose shift is at least [`MIN_SHIFT`], as every
/// one from [`quantize_multiplier`] is, and (`HalfUp`, `Double`) for `x`
/// whose `x·2^shift` fits in `i32`, as the layer guarantees for those
/// modes: the output stages call this directly, with multipliers derived
/// when the layer was built. Equal to [`multiply_by_quantized_multiplier`]
/// there.
#[inline]
pub(crate) fn multiply(x: i32, m: QuantizedMultiplier, rounding: Rounding) -> i32 {
    let QuantizedMultiplier {
        multiplier: q,
        shift,
    } = m;
    debug_assert!(shift >= MIN_SHIFT || rounding != Rounding::Single);
    match rounding {
        Rounding::HalfUp | Rounding::Double => {
            let left = shift.max(0);
            let right = (-shift).max(0);
            let high = srdhm(saturating_shl(x, left), q);
            if rounding == Rounding::HalfUp {
                shr_half_up(high, right)
            } else {
                rounding_divide_by_pot(high, right)
            }
        }
        // A multiplier of 2^30 or more (shift above 30): TFLite would
        // replace it by (2^31 − 1, 30); the exact product instead.
        Rounding::Single if shift > 30 => multiply_by_quantized_multiplier(x, m, rounding),
        Rounding::Single => {
            let total = 31 - shift;
            let v = (i64::from(x) * i64::from(q) + (1i64 << (total - 1))) >> total;
            saturate(v)
        }
    }
}

/// [`multiply`] without the final saturation to `i32`, for an output
/// stage that adds the zero point next: a product beyond `i32` plus a
/// zero point of the other sign can land back inside the output range,
/// where a saturated one would land at the wrong end. Single rounding
/// products are held to `±2^62` (far beyond any `lo − z`, `hi − z`); the
/// doubling modes never exceed `i32` where the layer uses them.
#[inline]
pub(crate) fn multiply_unsaturated(x: i32, m: QuantizedMultiplier, rounding: Rounding) -> i64 {
    match rounding {
        Rounding::Single if m.shift > 30 => {
            let (x, q) = (i128::from(x), i128::from(m.multiplier));
            shift_round(x * q, 31 - i64::from(m.shift), Tie::Up).clamp(-(1 << 62), 1 << 62) as i64
        }
        Rounding::Single => {
            single_product(x, m.multiplier, (31 - m.shift) as u32, 1 << (30 - m.shift))
        }
        Rounding::HalfUp | Rounding::Double => i64::from(multiply(x, m, rounding)),
    }
}

/// Saturating rounding doubling high multiply: `(a·b + nudge) / 2^31`,
/// truncating, with `nudge = 2^30` or `1 − 2^30` by the sign of `a·b`.
fn srdhm(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = i64::from(a) * i64::from(b);
    let nudge = if ab >= 0 {
        1i64 << 30
    } else {
        1 - (1i64 << 30)
    };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// `(v + 2^(r−1)) >> r`: ties toward +∞.
fn shr_half_up(v: i32, r: i32) -> i32 {
    if r == 0 {
        return v;
    }
    ((i64::from(v) + (1i64 << (r - 1))) >> r) as i32
}

/// gemmlowp's `RoundingDivideByPOT`: ties away from zero.
fn rounding_divide_by_pot(v: i32, r: i32) -> i32 {
    let v = i64::from(v);
    let mask = (1i64 << r) - 1;
    let remainder = v & mask;
    let threshold = (mask >> 1) + i64::from(v < 0);
    ((v >> r) + i64::from(remainder > threshold)) as i32
}

fn saturating_shl(x: i32, left: i32) -> i32 {
    if x == 0 || left == 0 {
        return x;
    }
    if left >= 32 {
        return if x > 0 { i32::MAX } else { i32::MIN };
    }
    saturate(i64::from(x) << left)
}

fn saturate(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// The multipliers of an output stage's columns in the form its loops
/// vectorize: one array per field, each column's (19) reduced to one
/// 32-bit and one 64-bit product, masks and right shifts, with no branch
/// and no variable left shift (which SSE2 code builds through a float
/// conversion, and the fixed-point path holds no float instruction). Only
/// for multipliers from [`quantize_multiplier`] (so `q ≥ 0` and a shift of
/// at least [`MIN_SHIFT`]) and, with `HalfUp` or `Double`, accumulators
/// `x` whose `x·2^shift` fits in `i32`, as the layer guarantees for those
/// modes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MultiplierLanes {
    /// `HalfUp` and `Double`: `x·pow` (`pow = 2^left`), the doubling high
    /// product by `q`, then a right shift by `right` (`mask = 2^right − 1`)
    /// rounded as the mode says.
    Doubling {
        half_up: bool,
        q: Vec<i32>,
        pow: Vec<i32>,
        right: Vec<u32>,
        mask: Vec<i32>,
    },
    /// `Single`: `(x·q + round) >> total` (`round = 2^(total − 1)`),
    /// saturated.
    Single {
        q: Vec<i32>,
        total: Vec<u32>,
        round: Vec<i64>,
    },
}

impl MultiplierLanes {
    /// The lane function of column `j` on `x`, one value at a time (the
    /// output stage runs one loop per mode instead).
    #[cfg(test)]
    fn apply(&self, x: i32, j: usize) -> i32 {
        match self {
            MultiplierLanes::Doubling {
                half_up: true,
                q,
                pow,
                right,
                mask,
            } => half_up_lane(x, q[j], pow[j], right[j], mask[j]),
            MultiplierLanes::Doubling {
                half_up: false,
                q,
                pow,
                right,
                mask,
            } => double_lane(x, q[j], pow[j], right[j], mask[j]),
            MultiplierLanes::Single { q, total, round } => single_lane(x, q[j], total[j], round[j]),
        }
    }

    /// `None` if a multiplier is outside what [`quantize_multiplier`]
    /// returns.
    pub(crate) fn new(
        multipliers: &[QuantizedMultiplier],
        rounding: Rounding,
    ) -> Option<MultiplierLanes> {
        // Single rounding past a shift of 30 needs a left shift: the
        // per-element path takes those (multipliers of 2^30 and more).
        let valid = |m: &QuantizedMultiplier| {
            m.multiplier >= 0
                && m.shift >= MIN_SHIFT
                && (rounding != Rounding::Single || m.shift <= 30)
        };
        if !multipliers.iter().all(valid) {
            return None;
        }
        let each = |f: &dyn Fn(&QuantizedMultiplier) -> i64| -> Vec<i64> {
            multipliers.iter().map(f).collect()
        };
        let narrow = |v: Vec<i64>| v.into_iter().map(|v| v as i32).collect();
        let unsigned = |v: Vec<i64>| v.into_iter().map(|v| v as u32).collect();
        Some(match rounding {
            Rounding::HalfUp | Rounding::Double => {
                let right = each(&|m| i64::from((-m.shift).max(0)));
                MultiplierLanes::Doubling {
                    half_up: rounding == Rounding::HalfUp,
                    q: narrow(each(&|m| i64::from(m.multiplier))),
                    // Past 30, only x = 0 has x·2^left within i32: any
                    // `pow` gives it 0 (2^31 wraps to i32::MIN).
                    pow: narrow(each(&|m| 1i64 << m.shift.clamp(0, 31))),
                    mask: narrow(right.iter().map(|&r| (1i64 << r) - 1).collect()),
                    right: unsigned(right),
                }
            }
            Rounding::Single => {
                let total = each(&|m| i64::from(31 - m.shift));
                MultiplierLanes::Single {
                    q: narrow(each(&|m| i64::from(m.multiplier))),
                    round: total.iter().map(|&t| 1i64 << (t - 1)).collect(),
                    total: unsigned(total),
                }
            }
        })
    }
}

/// [`multiply`] with `Double` rounding, for the lanes of
/// [`MultiplierLanes::Doubling`] and `x·pow` within `i32`.
#[inline(always)]
pub(crate) fn double_lane(x: i32, q: i32, pow: i32, right: u32, mask: i32) -> i32 {
    // gemmlowp's RoundingDivideByPOT: ties away from zero.
    let v = doubling_high(x.wrapping_mul(pow), q);
    let threshold = (mask >> 1) + i32::from(v < 0);
    (v >> right) + i32::from((v & mask) > threshold)
}

/// [`multiply`] with `HalfUp` rounding, under [`double_lane`]'s conditions.
#[inline(always)]
pub(crate) fn half_up_lane(x: i32, q: i32, pow: i32, right: u32, mask: i32) -> i32 {
    let v = i64::from(doubling_high(x.wrapping_mul(pow), q));
    // 2^(right − 1), or 0 when right = 0.
    let round = (i64::from(mask) + 1) >> 1;
    ((v + round) >> right) as i32
}

/// [`multiply`] with `Single` rounding, for the lanes of
/// [`MultiplierLanes::Single`].
#[cfg(test)]
fn single_lane(x: i32, q: i32, total: u32, round: i64) -> i32 {
    saturate(single_product(x, q, total, round))
}

/// `(x·q + round) >> total`, the single rounding of (19) before any
/// saturation: `|x·q| ≤ 2^62`, so it is exact in `i64`.
#[inline(always)]
pub(crate) fn single_product(x: i32, q: i32, total: u32, round: i64) -> i64 {
    (i64::from(x) * i64::from(q) + round) >> total
}

/// [`srdhm`] without its one saturating case, `a = b = i32::MIN` (never
/// met by the lanes, whose `b ≥ 0`), as one floor: `⌊(a·b + 2^30) / 2^31⌋`.
///
/// Both round `a·b / 2^31` to the nearest integer. They can differ only at
/// ties, `a·b = (k + ½)·2^31`. There `srdhm` goes up for `a·b ≥ 0` (it adds
/// 2^30, then truncates a positive value). For `a·b < 0` it goes toward
/// zero (it adds 1 − 2^30, then truncates a negative value), which is also
/// up. The floor form rounds every tie up, so the two agree. The floor form
/// needs no sign select and no correction for a truncating division: one
/// multiply, one add and one arithmetic shift.
#[inline(always)]
fn doubling_high(a: i32, b: i32) -> i32 {
    ((i64::from(a) * i64::from(b) + (1i64 << 30)) >> 31) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qm(multiplier: i32, shift: i32) -> QuantizedMultiplier {
        QuantizedMultiplier { multiplier, shift }
    }

    #[test]
    fn quantize_multiplier_edges() {
        // Exactly 0.5: f = 0.5, q = 2^30, e = 0.
        assert_eq!(quantize_multiplier(0.5).unwrap(), qm(1 << 30, 0));
        // 1.0 = 0.5·2^1.
        assert_eq!(quantize_multiplier(1.0).unwrap(), qm(1 << 30, 1));
        // Just under 1: f·2^31 rounds up to 2^31, so q = 2^30 and e + 1.
        let just_under = 1.0 - f64::EPSILON / 2.0;
        assert_eq!(quantize_multiplier(just_under).unwrap(), qm(1 << 30, 1));
        // The largest f that does not round up.
        let f = (2f64.powi(31) - 1.0) / 2f64.powi(31);
        assert_eq!(quantize_multiplier(f).unwrap(), qm(i32::MAX, 0));
        // Multipliers above 1.
        assert_eq!(quantize_multiplier(3.0).unwrap(), qm(3 << 29, 2));
        assert_eq!(quantize_multiplier(2f64.powi(40)).unwrap(), qm(1 << 30, 41));
        // Below 2^-31: e < −31 gives (0, 0); 2^-32 = 0.5·2^-31 is still kept.
        assert_eq!(
            quantize_multiplier(2f64.powi(-32)).unwrap(),
            qm(1 << 30, -31)
        );
        assert_eq!(quantize_multiplier(2f64.powi(-33)).unwrap(), qm(0, 0));
        assert_eq!(quantize_multiplier(1e-300).unwrap(), qm(0, 0));
        assert_eq!(
            quantize_multiplier(f64::MIN_POSITIVE / 8.0).unwrap(),
            qm(0, 0)
        );
        // Round half away in f·2^31: f = 0.75 + 2^-33 → 0.75·2^31 + 0.25 → down.
        let m = 0.75 + 2f64.powi(-33);
        assert_eq!(quantize_multiplier(m).unwrap(), qm(3 << 29, 0));
        let m = 0.75 + 2f64.powi(-32); // exactly +0.5 after scaling: away from zero
        assert_eq!(quantize_multiplier(m).unwrap(), qm((3 << 29) + 1, 0));
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(quantize_multiplier(bad).is_err());
        }
    }

    #[test]
    fn srdhm_edges() {
        assert_eq!(srdhm(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(srdhm(i32::MIN, i32::MAX), -i32::MAX);
        assert_eq!(srdhm(i32::MAX, i32::MAX), i32::MAX - 1);
        // Ties: a·b = ±2^30 is exactly ±0.5 in units of 2^31. The positive
        // tie rounds up; the negative one, (−2^30 + 1 − 2^30)/2^31 truncated,
        // rounds to 0: SRDHM's ties go toward +∞ for both signs.
        assert_eq!(srdhm(1 << 15, 1 << 15), 1);
        assert_eq!(srdhm(-(1 << 15), 1 << 15), 0);
        assert_eq!(srdhm(-3 << 15, 1 << 15), -1); // −1.5 → −1
        assert_eq!(srdhm(3, 1 << 29), 1); // 1.5·2^30 / 2^31 = 0.75
        assert_eq!(srdhm(-3, 1 << 29), -1);
        assert_eq!(srdhm(1, 1 << 29), 0); // 0.25
        assert_eq!(srdhm(-1, 1 << 29), 0);
    }

    /// The lanes' floor form against gemmlowp's nudge-and-truncate form,
    /// for every `b ≥ 0` the lanes can hold: ties of both signs at every
    /// scale, the ends of the range, and random pairs.
    #[test]
    fn doubling_high_equals_srdhm() {
        let mut cases = vec![
            (i32::MIN, i32::MAX),
            (i32::MAX, i32::MAX),
            (i32::MIN, 0),
            (i32::MIN, 1),
            (i32::MAX, 1),
            (-1, 1),
            (0, i32::MAX),
        ];
        // a·b = (k + ½)·2^31 for odd multiples of 2^30, both signs.
        for shift in 0..=30 {
            for k in [1i64, 3, 5, 7, 1001] {
                let b = 1i32 << shift;
                let a = (k << 30) >> shift;
                if a <= i64::from(i32::MAX) && (a << shift) == k << 30 {
                    cases.push((a as i32, b));
                    cases.push((-(a as i32), b));
                    cases.push((-(a as i32) + 1, b));
                    cases.push((-(a as i32) - 1, b));
                }
            }
        }
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..1_000_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            cases.push((state as i32, (state >> 32) as i32 & i32::MAX));
        }
        for (a, b) in cases {
            assert_eq!(doubling_high(a, b), srdhm(a, b), "a = {a}, b = {b}");
        }
    }

    #[test]
    fn rounding_shifts_at_ties_of_both_signs_and_extreme_shifts() {
        // shr_half_up: ties toward +∞.
        assert_eq!(shr_half_up(5, 1), 3);
        assert_eq!(shr_half_up(-5, 1), -2);
        assert_eq!(shr_half_up(-6, 2), -1); // −1.5 → −1
        assert_eq!(shr_half_up(7, 0), 7);
        assert_eq!(shr_half_up(i32::MAX, 31), 1);
        assert_eq!(shr_half_up(i32::MIN, 31), -1);
        assert_eq!(shr_half_up(1 << 30, 31), 1); // 0.5 → 1
        assert_eq!(shr_half_up(-(1 << 30), 31), 0); // −0.5 → 0
                                                    // RoundingDivideByPOT: ties away from zero.
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(-6, 2), -2);
        assert_eq!(rounding_divide_by_pot(7, 0), 7);
        assert_eq!(rounding_divide_by_pot(1 << 30, 31), 1);
        assert_eq!(rounding_divide_by_pot(-(1 << 30), 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
    }

    #[test]
    fn hand_built_multipliers_with_extreme_shifts_are_defined() {
        // Every bit shifted out: 0, or −1 where a rounding rule says so.
        let roundings = [Rounding::HalfUp, Rounding::Double, Rounding::Single];
        for shift in [-33, -40, -63, -64, -1000, i32::MIN] {
            for rounding in roundings {
                for x in [1000, -1000, i32::MAX, i32::MIN, 0] {
                    let m = qm(1 << 30, shift);
                    let r = multiply_by_quantized_multiplier(x, m, rounding);
                    assert_eq!(r, 0, "{x} {shift} {rounding:?}");
                }
            }
        }
        // Shift −32 with q = x = i32::MIN: the product is 2^62; ×2^−63 is 0.5.
        let m = qm(i32::MIN, -32);
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, m, Rounding::Single),
            1
        );
        // Left shifts of 31 and more all saturate the same way.
        for rounding in roundings {
            let at = |x, shift| multiply_by_quantized_multiplier(x, qm(1 << 30, shift), rounding);
            assert!(
                at(3, 31) >= 1 << 30 && at(-3, 31) <= -(1 << 30),
                "{rounding:?}"
            );
            for shift in [40, 1000, i32::MAX] {
                assert_eq!(at(3, shift), at(3, 31), "{rounding:?}");
                assert_eq!(at(-3, shift), at(-3, 31), "{rounding:?}");
                assert_eq!(at(0, shift), 0);
            }
        }
    }

    #[test]
    fn the_three_roundings_differ_where_they_should() {
        // PEERS.md: −1001 × 0.3 gives −301 with double rounding.
        let m = quantize_multiplier(0.3).unwrap();
        assert_eq!(
            multiply_by_quantized_multiplier(-1001, m, Rounding::Double),
            -301
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-1001, m, Rounding::HalfUp),
            -300
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-1001, m, Rounding::Single),
            -300
        );
        // A tie in the final shift: 6 × 0.25 = 1.5 and −6 × 0.25 = −1.5
        // (0.25 is (2^30, −1): SRDHM halves, then a shift by one rounds).
        let quarter = quantize_multiplier(0.25).unwrap();
        assert_eq!(quarter, qm(1 << 30, -1));
        assert_eq!(
            multiply_by_quantized_multiplier(6, quarter, Rounding::HalfUp),
            2
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-6, quarter, Rounding::HalfUp),
            -1
        );
        assert_eq!(
            multiply_by_quantized_multiplier(6, quarter, Rounding::Double),
            2
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-6, quarter, Rounding::Double),
            -2
        );
        assert_eq!(
            multiply_by_quantized_multiplier(6, quarter, Rounding::Single),
            2
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-6, quarter, Rounding::Single),
            -1
        );
        // With shift 0 the tie is rounded inside SRDHM, toward +∞.
        let half = quantize_multiplier(0.5).unwrap();
        assert_eq!(
            multiply_by_quantized_multiplier(3, half, Rounding::HalfUp),
            2
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-3, half, Rounding::HalfUp),
            -1
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-3, half, Rounding::Double),
            -1
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-3, half, Rounding::Single),
            -1
        );
        // Multiplier 2^-31 exactly (shift −31 after rounding): 2^31·2^-31.
        let tiny = quantize_multiplier(2f64.powi(-31)).unwrap();
        assert_eq!(tiny, qm(1 << 30, -30));
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MAX, tiny, Rounding::HalfUp),
            1
        );
        // (0, 0): everything maps to 0.
        let zero = quantize_multiplier(1e-12).unwrap();
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MAX, zero, Rounding::HalfUp),
            0
        );
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, zero, Rounding::Single),
            0
        );
    }

    #[test]
    fn left_shifts_saturate_instead_of_wrapping() {
        let m = quantize_multiplier(2f64.powi(20)).unwrap();
        for r in [Rounding::HalfUp, Rounding::Double, Rounding::Single] {
            assert_eq!(multiply_by_quantized_multiplier(1, m, r), 1 << 20);
            assert_eq!(multiply_by_quantized_multiplier(-1, m, r), -(1 << 20));
            // 2^12·2^20 = 2^32 does not fit: the result keeps its sign and
            // stays beyond every output range (2^30 after the saturated
            // left shift and the Q31 half, i32::MAX for single rounding).
            assert!(multiply_by_quantized_multiplier(1 << 12, m, r) >= 1 << 30);
            assert!(multiply_by_quantized_multiplier(-(1 << 12), m, r) <= -(1 << 30));
        }
        // Single rounding past a shift of 30: the true product, saturated
        // (TFLite's (2^31 − 1, 30) would give 2^30 for 1·2^40).
        let big = quantize_multiplier(2f64.powi(40)).unwrap();
        for r in [Rounding::HalfUp, Rounding::Double, Rounding::Single] {
            assert_eq!(multiply_by_quantized_multiplier(1, big, r), i32::MAX);
            assert_eq!(multiply_by_quantized_multiplier(-1, big, r), i32::MIN);
        }
        let m = qm(i32::MAX, 31);
        assert_eq!(multiply(1, m, Rounding::Single), i32::MAX);
        assert_eq!(multiply(-1, m, Rounding::Single), -i32::MAX);
        assert_eq!(multiply(1, qm(1 << 30, 31), Rounding::Single), 1 << 30);
        assert_eq!(multiply(-2, qm(1 << 30, 31), Rounding::Single), i32::MIN);
    }

    #[test]
    fn i32_min_inputs() {
        let one_half = quantize_multiplier(0.5).unwrap();
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, one_half, Rounding::HalfUp),
            -(1 << 30)
        );
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, one_half, Rounding::Double),
            -(1 << 30)
        );
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, one_half, Rounding::Single),
            -(1 << 30)
        );
        let almost_one = qm(i32::MAX, 0);
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, almost_one, Rounding::HalfUp),
            i32::MIN + 1
        );
    }

    /// The lanes equal [`multiply`] for every mode, every shift
    /// `quantize_multiplier` can return (and, for `Single`, shifts past
    /// 30), mantissas at their edges and random ones, on every accumulator
    /// of the domain the layer allows: near 0, at its ends, at rounding
    /// ties of every right shift, and random.
    #[test]
    fn lanes_equal_multiply() {
        let mut state = 0x5851_f42d_4c95_7f2du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut cases = 0u64;
        for shift in -31..=40 {
            let mut mantissas = vec![0, 1 << 30, (1 << 30) + 1, i32::MAX, i32::MAX - 1];
            mantissas.extend((0..6).map(|_| (1 << 30) + (next() % (1 << 30)) as i32));
            for &q in &mantissas {
                let m = qm(q, shift);
                for rounding in [Rounding::HalfUp, Rounding::Double, Rounding::Single] {
                    let lanes = MultiplierLanes::new(&[m], rounding);
                    // Single rounding past a shift of 30 runs per element.
                    if rounding == Rounding::Single && shift > 30 {
                        assert_eq!(lanes, None, "{m:?}");
                        continue;
                    }
                    let Some(lanes) = lanes else {
                        panic!("{m:?} has lanes");
                    };
                    // HalfUp and Double need x·2^left within i32.
                    let limit = match rounding {
                        Rounding::Single => i64::from(i32::MAX),
                        _ => i64::from(i32::MAX) >> shift.clamp(0, 31),
                    };
                    let mut xs: Vec<i64> = vec![0, 1, -1, limit, -limit, limit - 1, 1 - limit];
                    for r in 0..32 {
                        let tie = 1i64 << r;
                        xs.extend([tie, -tie, tie / 2, -tie / 2, tie * 3 / 2, -tie * 3 / 2]);
                    }
                    xs.extend((0..64).map(|_| (next() % (2 * limit as u64 + 1)) as i64 - limit));
                    if rounding == Rounding::Single {
                        xs.push(i64::from(i32::MIN));
                    }
                    let allowed = |x: &i64| {
                        x.abs() <= limit
                            || (rounding == Rounding::Single && *x == i64::from(i32::MIN))
                    };
                    for x in xs.into_iter().filter(allowed) {
                        let x = x as i32;
                        let got = lanes.apply(x, 0);
                        assert_eq!(got, multiply(x, m, rounding), "{x} · {m:?} {rounding:?}");
                        let wide = multiply_by_quantized_multiplier(x, m, rounding);
                        assert_eq!(got, wide, "{x} · {m:?} {rounding:?}");
                        cases += 1;
                    }
                }
            }
        }
        assert!(cases > 100_000, "{cases}");
        // Multipliers `quantize_multiplier` never returns have no lanes.
        assert_eq!(MultiplierLanes::new(&[qm(-1, 0)], Rounding::Double), None);
        assert_eq!(
            MultiplierLanes::new(&[qm(1 << 30, -32)], Rounding::Single),
            None
        );
    }
}
