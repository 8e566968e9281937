//! Exact rounding to integers without a libm call or a checked conversion.
//!
//! Baseline x86_64 has no rounding instruction (`roundsd` is SSE4.1), so
//! `f64::round_ties_even` and `f64::round` become function calls, and a
//! float-to-int `as` cast checks for NaN and overflow. The output stages
//! clamp first, so their values are small and never NaN; for such values
//! these are exact replacements:
//!
//! ```text
//! (22) round_half_even(v) = bits(v + 1.5·2^52) − bits(1.5·2^52)     f64, |v| ≤ 2^51
//!      round_half_even(v) = bits(v + 1.5·2^23) − bits(1.5·2^23)     f32, |v| ≤ 2^22
//!      round_half_away(v) = r + [v − r = ½ ∧ v > 0] − [v − r = −½ ∧ v < 0],  r = round_half_even(v)
//!      f64(a)             = float(bits(1.5·2^52) + a) − 1.5·2^52        integer a, |a| ≤ 2^51
//! ```
//!
//! Adding the constant (whose unit in the last place is 1) makes the
//! hardware round the sum to an integer with its default
//! round-to-nearest-even; in that binade the bit pattern grows by exactly
//! one per unit, so the difference of bit patterns is the rounded value.
//! `v − r` is exact, so the tie test of the third line is exact.

/// `f64(v)` for `|v| ≤ 2^51`, exactly: the bit pattern of `1.5·2^52 + v`
/// is that of `1.5·2^52` plus `v`, the reverse of (22). Unlike an `i64` to
/// `f64` conversion it vectorizes without AVX-512.
#[inline(always)]
pub(crate) fn small_i64_to_f64(v: i64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5·2^52
    f64::from_bits((MAGIC.to_bits() as i64 + v) as u64) - MAGIC
}

/// `round_half_even(v)` for `|v| ≤ 2^51`, (22).
#[inline(always)]
pub(crate) fn half_even_f64(v: f64) -> i64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5·2^52
    (v + MAGIC).to_bits() as i64 - MAGIC.to_bits() as i64
}

/// `round_half_even(v)` for `|v| ≤ 2^22`, (22).
#[inline(always)]
pub(crate) fn half_even_f32(v: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5·2^23
    (v + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32
}

/// `round_half_away(v)` for `|v| ≤ 2^51`, (22).
#[inline(always)]
pub(crate) fn half_away_f64(v: f64) -> i64 {
    let r = half_even_f64(v);
    let d = v - r as f64;
    r + i64::from(d == 0.5 && v > 0.0) - i64::from(d == -0.5 && v < 0.0)
}

/// `v` clamped to `[lo, hi]`; a NaN becomes `lo`. Compiles to one `max`
/// and one `min` instruction.
#[inline(always)]
pub(crate) fn clamp_f64(v: f64, lo: f64, hi: f64) -> f64 {
    let v = if v > lo { v } else { lo };
    if v < hi {
        v
    } else {
        hi
    }
}

/// [`clamp_f64`] for `f32`.
#[inline(always)]
pub(crate) fn clamp_f32(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v > lo { v } else { lo };
    if v < hi {
        v
    } else {
        hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_integers_convert_exactly() {
        let limit = 1i64 << 51;
        for v in [
            0,
            1,
            -1,
            2,
            -3,
            1 << 31,
            -(1 << 31) - 1,
            limit - 1,
            -limit + 1,
            limit,
            -limit,
            123_456_789_012_345,
        ] {
            assert_eq!(small_i64_to_f64(v), v as f64, "{v}");
        }
        let mut v = -limit;
        while v < limit {
            assert_eq!(small_i64_to_f64(v), v as f64, "{v}");
            v += 0x0000_1234_5678_9abd;
        }
    }

    #[test]
    fn clamps_map_nan_to_the_lower_bound() {
        assert_eq!(clamp_f64(f64::NAN, -3.0, 5.0), -3.0);
        assert_eq!(clamp_f64(f64::INFINITY, -3.0, 5.0), 5.0);
        assert_eq!(clamp_f64(f64::NEG_INFINITY, -3.0, 5.0), -3.0);
        assert_eq!(clamp_f64(1.5, -3.0, 5.0), 1.5);
        assert_eq!(clamp_f32(f32::NAN, 0.0, 255.0), 0.0);
        assert_eq!(clamp_f32(300.0, 0.0, 255.0), 255.0);
    }

    /// Every half-integer and its neighbours in a wide band, and a sweep of
    /// bit patterns, against the standard library.
    #[test]
    fn agree_with_the_standard_library() {
        let mut values = Vec::new();
        for k in -300_000i64..300_000 {
            let h = k as f64 + 0.5;
            values.extend([h, h.next_up(), h.next_down(), k as f64]);
        }
        for e in 0..51 {
            let big = 2f64.powi(e);
            values.extend([
                big,
                -big,
                big + 0.5,
                -big - 0.5,
                big - 0.5,
                (big * 1.5).floor() + 0.5,
            ]);
        }
        values.extend([
            0.0,
            -0.0,
            0.49999999999999994,
            -0.49999999999999994,
            2f64.powi(51),
            -2f64.powi(51),
        ]);
        let mut bits = 0x3ff0_0000_0000_0000u64;
        while f64::from_bits(bits) < 2f64.powi(51) {
            values.push(f64::from_bits(bits));
            values.push(-f64::from_bits(bits));
            bits += 0x0000_0123_4567_89ab;
        }
        for v in values {
            assert_eq!(half_even_f64(v), v.round_ties_even() as i64, "{v}");
            assert_eq!(half_away_f64(v), v.round() as i64, "{v}");
            let f = v as f32;
            if f.abs() <= 4_194_304.0 {
                assert_eq!(half_even_f32(f), f.round_ties_even() as i32, "{f}");
            }
        }
    }

    #[test]
    fn f32_halves_and_their_neighbours() {
        for k in -20_000i32..20_000 {
            for centre in [k as f32 + 0.5, k as f32] {
                let (mut up, mut down) = (centre, centre);
                for _ in 0..32 {
                    assert_eq!(half_even_f32(up), up.round_ties_even() as i32, "{up}");
                    assert_eq!(half_even_f32(down), down.round_ties_even() as i32, "{down}");
                    up = up.next_up();
                    down = down.next_down();
                }
            }
        }
        let mut bits = 0u32;
        while bits < 0x4a80_0000 {
            // every f32 of magnitude up to 2^22, at a stride
            let v = f32::from_bits(bits);
            assert_eq!(half_even_f32(v), v.round_ties_even() as i32, "{v}");
            assert_eq!(half_even_f32(-v), (-v).round_ties_even() as i32, "{v}");
            bits += 0x0000_0f1d;
        }
    }
}
