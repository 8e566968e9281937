//! The oracle's arithmetic, written from the equations of
//! `src/requant/mod.rs` ((8)–(10), (18), (19), (20)) and
//! `/work/shared/PEERS.md`, sharing no code with the crate's output stages.
//!
//! Integer and rational steps are exact (`i128`, with the rounding done on
//! a numerator over a power of two); float steps are single IEEE
//! operations in the precision the equation names, and the roundings to
//! an integer of a float are exact (`round_ties_even` / `round`, which
//! never round twice).

use qlinear::{Requantizer, Rounding};

/// How an exact tie is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tie {
    /// Toward +∞ (`shr_half_up`, `SRDHM`, `TFLITE_SINGLE_ROUNDING`).
    Up,
    /// Away from zero (gemmlowp `RoundingDivideByPOT`, `QuantizeMultiplier`).
    Away,
    /// To even.
    Even,
}

/// A stand-in for "far beyond any i32 plus any zero point": a value this
/// large saturates every result it feeds.
pub const HUGE: i128 = 1 << 100;

/// `v / 2^k` rounded to the nearest integer, exact ties broken by `tie`;
/// also whether the quotient was an exact tie. `|v| < 2^126`.
pub fn round_shift_tie(v: i128, k: u64, tie: Tie) -> (i128, bool) {
    assert!(
        v.unsigned_abs() < 1u128 << 126,
        "round_shift operand {v} out of range"
    );
    if k == 0 {
        return (v, false);
    }
    if k >= 127 {
        // |v| < 2^126 ≤ 2^(k−1): the quotient is strictly inside (−1/2, 1/2).
        return (0, false);
    }
    let floor = v >> k; // arithmetic shift: the floor of v / 2^k
    let rem = v - (floor << k); // in [0, 2^k)
    let half = 1i128 << (k - 1);
    if rem < half {
        (floor, false)
    } else if rem > half {
        (floor + 1, false)
    } else {
        let r = match tie {
            Tie::Up => floor + 1,
            Tie::Away => {
                if v < 0 {
                    floor
                } else {
                    floor + 1
                }
            }
            Tie::Even => floor + (floor & 1),
        };
        (r, true)
    }
}

/// [`round_shift_tie`] without the tie flag.
pub fn round_shift(v: i128, k: u64, tie: Tie) -> i128 {
    round_shift_tie(v, k, tie).0
}

/// `v` saturated to `i32`.
pub fn saturate_i32(v: i128) -> i32 {
    v.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32
}

/// The exact `x·q·2^(e − 31)` for `e ≥ 31` (an integer), with every
/// magnitude of at least 2^100 represented by ±[`HUGE`] (such a value
/// saturates any i32 result and outweighs any zero point).
fn exact_scaled(x: i128, q: i128, e: i64) -> i128 {
    let product = x * q; // |x| < 2^63, q < 2^31
    let s = e - 31;
    if product == 0 {
        0
    } else if s >= 100 || product.abs() >= HUGE >> s {
        product.signum() * HUGE
    } else {
        product << s
    }
}

/// Equation (19) before saturation: `acc·M` with `M = q·2^(e−31)`, each
/// rounding of the named mode done exactly. Also reports whether a
/// rounding step met an exact tie.
///
/// - `HalfUp`: `h = round_up(acc·2^max(e,0)·q / 2^31)`, then
///   `round_up(h / 2^max(−e,0))`.
/// - `Double`: the same `h`, then `round_away(h / 2^max(−e,0))`.
/// - `Single`: `round_up(acc·q / 2^(31−e))`; for `e ≥ 31` that is the
///   exact integer `acc·q·2^(e−31)`.
///
/// For `e ≥ 31` every mode is the exact product (the first rounding of
/// `HalfUp`/`Double` divides an exact multiple of 2^31, the second shift
/// is 0). `|acc| < 2^63`, `0 ≤ q < 2^31`, any `e`.
pub fn fixed_point_exact(acc: i64, q: i64, e: i64, rounding: Rounding) -> (i128, bool) {
    assert!(
        (0..1i64 << 31).contains(&q),
        "multiplier {q} outside [0, 2^31)"
    );
    let (x, q) = (i128::from(acc), i128::from(q));
    if e >= 31 {
        return (exact_scaled(x, q, e), false);
    }
    match rounding {
        Rounding::Single => round_shift_tie(x * q, (31 - e) as u64, Tie::Up),
        Rounding::HalfUp | Rounding::Double => {
            let left = e.max(0) as u32; // ≤ 30
            let (h, tie1) = round_shift_tie((x << left) * q, 31, Tie::Up);
            let right = (-e).max(0) as u64;
            let tie = if rounding == Rounding::HalfUp {
                Tie::Up
            } else {
                Tie::Away
            };
            let (r, tie2) = round_shift_tie(h, right, tie);
            (r, tie1 || tie2)
        }
    }
}

/// [`fixed_point_exact`] saturated to `i32`: what
/// `multiply_by_quantized_multiplier(x, {q, e}, rounding)` must return.
pub fn multiply_exact(x: i32, q: i32, e: i32, rounding: Rounding) -> i32 {
    saturate_i32(fixed_point_exact(i64::from(x), i64::from(q), i64::from(e), rounding).0)
}

/// TFLite's `QuantizeMultiplier` from the bits of `m` (finite, `m ≥ 0`):
/// `m = f·2^e`, `f ∈ [0.5, 1)`; `q = round_half_away(f·2^31)`; if
/// `q = 2^31` then `(q, e) = (2^30, e + 1)`; if `e < −31` then `(0, 0)`.
/// Also returns whether the `q = 2^31` branch was taken.
pub fn quantize_multiplier(m: f64) -> (i64, i64, bool) {
    assert!(m.is_finite() && m >= 0.0, "multiplier {m}");
    if m == 0.0 {
        return (0, 0, false);
    }
    let bits = m.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let fraction = bits & ((1u64 << 52) - 1);
    // m = n·2^exp2 with n a positive integer of at most 53 bits.
    let (n, exp2) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | 1 << 52, biased - 1075)
    };
    let len = 64 - i64::from(n.leading_zeros()); // f = n / 2^len ∈ [0.5, 1)
    let mut e = exp2 + len;
    // f·2^31 = n·2^(31 − len); positive, so half away = half up.
    let mut q = if len > 31 {
        round_shift(i128::from(n), (len - 31) as u64, Tie::Up)
    } else {
        i128::from(n) << (31 - len)
    };
    let overflowed = q == 1 << 31;
    if overflowed {
        q = 1 << 30;
        e += 1;
    }
    if e < -31 {
        (0, 0, overflowed)
    } else {
        (q as i64, e, overflowed)
    }
}

/// One output column's prepared constants, as each equation defines them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Column {
    /// (8), (9): `o[j]` and `M[j]`, both `f64`.
    Float64 { offset: f64, m: f64 },
    /// (18): `M[j] = f64(s_X)·f64(s_W[j]) / f64(s_Y)`, scales taken as f32.
    TfliteReference { m: f64 },
    /// (19): `M[j]` (f64) and `(q, e) = QuantizeMultiplier(M[j])`.
    FixedPoint {
        m: f64,
        q: i64,
        e: i64,
        rounding: Rounding,
        overflowed: bool,
    },
    /// (20): `m[j] = f32(f32(s_X·s_W[j]) / s_Y)`, scales taken as f32.
    Float32 { m: f32 },
}

/// The int8 bias of (8): values, scale and zero point.
#[derive(Debug, Clone, Copy)]
pub struct Int8Bias<'a> {
    pub values: &'a [i8],
    pub scale: f64,
    pub zero_point: i32,
}

/// What a layer's output stage is derived from.
#[derive(Debug, Clone, Copy)]
pub struct StageInputs<'a> {
    pub requantizer: Requantizer,
    pub s_x: f64,
    /// One scale per output column.
    pub s_w: &'a [f64],
    pub per_channel: bool,
    pub s_y: f64,
    pub z_y: i32,
    pub int8_bias: Option<Int8Bias<'a>>,
}

/// The per-column constants, or why the equations give no usable
/// multiplier (not finite; for the TFLite/ONNX forms also not positive —
/// their `f32` scales can round to 0 or ∞).
pub fn columns(inputs: &StageInputs<'_>) -> Result<Vec<Column>, String> {
    let s = inputs;
    let f32s = |v: f64| v as f32; // TFLite and ONNX store scales as f32
    let usable = |what: &str, m: f64, positive: bool| {
        if m.is_finite() && (!positive || m > 0.0) {
            Ok(m)
        } else {
            Err(format!("{what} = {m}"))
        }
    };
    s.s_w
        .iter()
        .enumerate()
        .map(|(j, &s_w)| match s.requantizer {
            Requantizer::Float64 => {
                // (9): the product first, then the quotient, both f64.
                let m = usable("M", (s.s_x * s_w) / s.s_y, false)?;
                // (8): f64(z) + (s_b/s_Y)·f64(bq − z_b), or f64(z).
                let offset = match s.int8_bias {
                    None => f64::from(s.z_y),
                    Some(b) => {
                        let ratio = usable("s_b/s_Y", b.scale / s.s_y, false)?;
                        let centred = i64::from(b.values[j]) - i64::from(b.zero_point);
                        usable("o", f64::from(s.z_y) + ratio * (centred as f64), false)?
                    }
                };
                Ok(Column::Float64 { offset, m })
            }
            Requantizer::TfliteReference => {
                let m = f64::from(f32s(s.s_x)) * f64::from(f32s(s_w)) / f64::from(f32s(s.s_y));
                Ok(Column::TfliteReference {
                    m: usable("M", m, true)?,
                })
            }
            Requantizer::FixedPoint(rounding) => {
                let m = if s.per_channel {
                    f64::from(f32s(s.s_x)) * f64::from(f32s(s_w)) / f64::from(f32s(s.s_y))
                } else {
                    // The product of the two f32 scales, rounded to f32.
                    f64::from(f32s(s.s_x) * f32s(s_w)) / f64::from(f32s(s.s_y))
                };
                let m = usable("M", m, true)?;
                let (q, e, overflowed) = quantize_multiplier(m);
                Ok(Column::FixedPoint {
                    m,
                    q,
                    e,
                    rounding,
                    overflowed,
                })
            }
            Requantizer::Float32 => {
                let m = f32s(s.s_x) * f32s(s_w) / f32s(s.s_y);
                usable("m", f64::from(m), true)?;
                Ok(Column::Float32 { m })
            }
        })
        .collect()
}

/// One output of the oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub value: i32,
    /// A rounding step met an exact tie.
    pub tie: bool,
    /// The clamp changed the value.
    pub clamped: bool,
    /// (fixed point) Saturating `r` to i32 before adding the zero point, as
    /// TFLite's i32 arithmetic does, would give another (wrong) value.
    pub saturation_order_matters: bool,
}

/// `clamp(r + z)` for an integer-valued float `r` (or ±∞), exactly.
fn add_zero_point_and_clamp(r: f64, z: i32, (lo, hi): (i32, i32)) -> (i32, bool) {
    assert!(!r.is_nan());
    let sum: i128 = if r >= 2f64.powi(80) {
        HUGE
    } else if r <= -(2f64.powi(80)) {
        -HUGE
    } else {
        r as i128 + i128::from(z) // r is an integer here: the cast is exact
    };
    clamp(sum, (lo, hi))
}

fn clamp(v: i128, (lo, hi): (i32, i32)) -> (i32, bool) {
    let c = v.clamp(i128::from(lo), i128::from(hi));
    (c as i32, c != v)
}

/// The expected output for exact accumulator `acc` (bias included) in a
/// column with constants `column`, output zero point `z`, clamp `[lo, hi]`.
pub fn requantize(column: &Column, acc: i128, z: i32, clamp_to: (i32, i32)) -> Outcome {
    let none = Outcome {
        value: 0,
        tie: false,
        clamped: false,
        saturation_order_matters: false,
    };
    match *column {
        Column::Float64 { offset, m } => {
            // (10): o + M·f64(acc) (one f64 product, one f64 sum), then
            // round half to even; the zero point is already inside o.
            let v = offset + m * (acc as f64);
            assert!(!v.is_nan());
            let r = v.round_ties_even();
            let tie = (v - v.trunc()).abs() == 0.5;
            let c = r.clamp(f64::from(clamp_to.0), f64::from(clamp_to.1));
            Outcome {
                value: c as i32,
                tie,
                clamped: c != r,
                ..none
            }
        }
        Column::TfliteReference { m } => {
            // (18): f64(acc)·M, round half away, + z, clamp.
            let v = (acc as f64) * m;
            let tie = (v - v.trunc()).abs() == 0.5;
            let (value, clamped) = add_zero_point_and_clamp(v.round(), z, clamp_to);
            Outcome {
                value,
                tie,
                clamped,
                ..none
            }
        }
        Column::FixedPoint { q, e, rounding, .. } => {
            let acc = i64::try_from(acc).expect("fixed-point accumulator beyond i64");
            let (r, tie) = fixed_point_exact(acc, q, e, rounding);
            // The true value: r + z exactly, then the clamp.
            let (value, clamped) = clamp(r + i128::from(z), clamp_to);
            let (saturated_first, _) = clamp(i128::from(saturate_i32(r)) + i128::from(z), clamp_to);
            Outcome {
                value,
                tie,
                clamped,
                saturation_order_matters: value != saturated_first,
            }
        }
        Column::Float32 { m } => {
            // (20): f32(acc)·m in f32, round half to even, + z, clamp.
            let v = (acc as f32) * m;
            let tie = (v - v.trunc()).abs() == 0.5;
            let (value, clamped) =
                add_zero_point_and_clamp(f64::from(v.round_ties_even()), z, clamp_to);
            Outcome {
                value,
                tie,
                clamped,
                ..none
            }
        }
    }
}

#[cfg(test)]
mod self_checks {
    //! The oracle's own arithmetic on hand-worked values.
    use super::*;

    #[test]
    fn rounding_shifts_on_hand_values() {
        // 5/2 = 2.5, −5/2 = −2.5, 7/4 = 1.75, −7/4 = −1.75
        assert_eq!(round_shift_tie(5, 1, Tie::Up), (3, true));
        assert_eq!(round_shift_tie(-5, 1, Tie::Up), (-2, true));
        assert_eq!(round_shift_tie(5, 1, Tie::Away), (3, true));
        assert_eq!(round_shift_tie(-5, 1, Tie::Away), (-3, true));
        assert_eq!(round_shift_tie(5, 1, Tie::Even), (2, true));
        assert_eq!(round_shift_tie(-5, 1, Tie::Even), (-2, true));
        assert_eq!(round_shift_tie(-3, 1, Tie::Even), (-2, true));
        assert_eq!(round_shift_tie(7, 2, Tie::Up), (2, false));
        assert_eq!(round_shift_tie(-7, 2, Tie::Away), (-2, false));
        assert_eq!(round_shift_tie(-6, 2, Tie::Away), (-2, true));
        assert_eq!(round_shift_tie(-6, 2, Tie::Up), (-1, true));
        assert_eq!(round_shift_tie(i128::MAX >> 2, 200, Tie::Up), (0, false));
        assert_eq!(round_shift_tie(1 << 100, 101, Tie::Up), (1, true));
        assert_eq!(round_shift_tie(-(1 << 100), 101, Tie::Up), (0, true));
    }

    #[test]
    fn quantize_multiplier_on_hand_values() {
        assert_eq!(quantize_multiplier(0.5), (1 << 30, 0, false));
        assert_eq!(quantize_multiplier(1.0), (1 << 30, 1, false));
        assert_eq!(quantize_multiplier(0.75), (3 << 29, 0, false));
        assert_eq!(quantize_multiplier(2f64.powi(31)), (1 << 30, 32, false));
        // f = 1 − 2^-40 rounds to q = 2^31: (2^30, e + 1).
        assert_eq!(
            quantize_multiplier(1.0 - 2f64.powi(-40)),
            (1 << 30, 1, true)
        );
        // 2^-32 has e = −31: kept; 2^-33 has e = −32: zero.
        assert_eq!(quantize_multiplier(2f64.powi(-32)), (1 << 30, -31, false));
        assert_eq!(quantize_multiplier(2f64.powi(-33)), (0, 0, false));
        // The smallest subnormal: 2^-1074, f = 0.5, e = −1073.
        assert_eq!(quantize_multiplier(f64::from_bits(1)), (0, 0, false));
        // 0.3 = 0x3FD3333333333333: f = 0.6, q = round(0.6·2^31) = 1288490189.
        assert_eq!(quantize_multiplier(0.3), (1_288_490_189, -1, false));
    }

    #[test]
    fn fixed_point_on_hand_values() {
        let (q, e, _) = quantize_multiplier(0.3);
        // PEERS.md: gemmlowp's double rounding gives −301 for −1001·0.3.
        assert_eq!(
            multiply_exact(-1001, q as i32, e as i32, Rounding::Double),
            -301
        );
        assert_eq!(
            multiply_exact(-1001, q as i32, e as i32, Rounding::Single),
            -300
        );
        // Worked examples: the true product, saturated only at the end.
        assert_eq!(multiply_exact(1, i32::MAX, 31, Rounding::Single), i32::MAX);
        assert_eq!(multiply_exact(2, 1 << 30, 31, Rounding::HalfUp), i32::MAX);
        assert_eq!(multiply_exact(1, 1 << 30, 31, Rounding::HalfUp), 1 << 30);
        assert_eq!(multiply_exact(-3, 1 << 30, 32, Rounding::Double), i32::MIN);
        assert_eq!(
            multiply_exact(-1, 1 << 30, 31, Rounding::Double),
            -(1 << 30)
        );
        // 2^30·2^(e−31) with e = 0: x/2, ties up (HalfUp, Single) or away.
        assert_eq!(multiply_exact(-3, 1 << 30, 0, Rounding::HalfUp), -1);
        assert_eq!(multiply_exact(-3, 1 << 30, 0, Rounding::Single), -1);
        // Double with e = 0: the only rounding is SRDHM's (ties up):
        // round_up(−3·2^30 / 2^31) = round_up(−1.5) = −1, then no shift.
        assert_eq!(multiply_exact(-3, 1 << 30, 0, Rounding::Double), -1);
        // e = −1: h = x/2 rounded up, then h/2 rounded: −3 → h = −1 → −0.5.
        assert_eq!(multiply_exact(-3, 1 << 30, -1, Rounding::HalfUp), 0);
        assert_eq!(multiply_exact(-3, 1 << 30, -1, Rounding::Double), -1);
        assert_eq!(multiply_exact(-3, 1 << 30, -1, Rounding::Single), -1); // −0.75
        assert_eq!(multiply_exact(i32::MIN, 0, 64, Rounding::Single), 0);
        assert_eq!(multiply_exact(i32::MIN, 1, 200, Rounding::Single), i32::MIN);
        assert_eq!(
            multiply_exact(i32::MAX, i32::MAX, i32::MIN, Rounding::Double),
            0
        );
    }
}
