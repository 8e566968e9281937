//! Exact rounding to integers without a libm call.
//!
//! Baseline x86_64 has no rounding instruction (`roundsd` is SSE4.1), so
//! `f64::round_ties_even` and `f64::round` become function calls — a third
//! of the output stage's time. These are exact replacements on the ranges
//! the output stages use (values already clamped to the output range):
//!
//! ```text
//! (22) round_half_even(v) = (v + 1.5·2^52) − 1.5·2^52     f64, |v| ≤ 2^51
//!      round_half_even(v) = (v + 1.5·2^23) − 1.5·2^23     f32, |v| ≤ 2^22
//!      round_half_away(v) = t + [v − t ≥ 1/2] − [v − t ≤ −1/2],  t = trunc(v)
//! ```
//!
//! The first two add a constant whose unit in the last place is 1, so the
//! sum is rounded to an integer by the hardware's default
//! round-to-nearest-even, and the subtraction is exact. In the third,
//! `v − t` is exact, so the comparison decides ties exactly (unlike
//! `floor(v + 0.5)`).

/// `round_half_even(v)` for `|v| ≤ 2^51`, (22).
#[inline]
pub(crate) fn half_even_f64(v: f64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5·2^52
    (v + MAGIC) - MAGIC
}

/// `round_half_even(v)` for `|v| ≤ 2^22`, (22).
#[inline]
pub(crate) fn half_even_f32(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5·2^23
    (v + MAGIC) - MAGIC
}

/// `round_half_away(v)` for `|v| < 2^62`, (22).
#[inline]
pub(crate) fn half_away_f64(v: f64) -> i64 {
    let t = v as i64;
    let frac = v - t as f64;
    t + i64::from(frac >= 0.5) - i64::from(frac <= -0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(half_even_f64(v), v.round_ties_even(), "{v}");
            assert_eq!(half_away_f64(v), v.round() as i64, "{v}");
            let f = v as f32;
            if f.abs() <= 4_194_304.0 {
                assert_eq!(half_even_f32(f), f.round_ties_even(), "{f}");
            }
        }
    }

    #[test]
    fn f32_halves_and_their_neighbours() {
        for k in -20_000i32..20_000 {
            for centre in [k as f32 + 0.5, k as f32] {
                let (mut up, mut down) = (centre, centre);
                for _ in 0..32 {
                    assert_eq!(half_even_f32(up), up.round_ties_even(), "{up}");
                    assert_eq!(half_even_f32(down), down.round_ties_even(), "{down}");
                    up = up.next_up();
                    down = down.next_down();
                }
            }
        }
        let mut bits = 0u32;
        while bits < 0x4a80_0000 {
            // every f32 of magnitude up to 2^22, at a stride
            let v = f32::from_bits(bits);
            assert_eq!(half_even_f32(v), v.round_ties_even(), "{v}");
            assert_eq!(half_even_f32(-v), (-v).round_ties_even(), "{v}");
            bits += 0x0000_0f1d;
        }
    }
}
