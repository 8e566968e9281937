//! Exact int8 products: `Σ_k Xq[i,k]·Wq[k,j]`.
//!
//! Every product of two int8 values lies in `[−16 256, 16 384]`, so an `i32`
//! holds the sum of [`I32_SAFE_DEPTH`] of them whatever their values.
//! Longer sums are split into runs of that length, each summed in `i32`
//! and the runs added in `i64`: the result is exact for any inner dimension.

pub mod reference;

/// Longest run of int8×int8 products whose sum provably fits in `i32`:
/// `131 071 · 16 384 = 2 147 467 264 < 2^31 − 1`.
pub const I32_SAFE_DEPTH: usize = (i32::MAX as usize) / (128 * 128);

/// Exact dot product of two int8 slices of equal length.
#[inline]
pub(crate) fn dot(a: &[i8], b: &[i8]) -> i64 {
    debug_assert_eq!(a.len(), b.len());
    a.chunks(I32_SAFE_DEPTH)
        .zip(b.chunks(I32_SAFE_DEPTH))
        .map(|(ra, rb)| {
            let run: i32 = ra
                .iter()
                .zip(rb)
                .map(|(&x, &y)| i32::from(x) * i32::from(y))
                .sum();
            i64::from(run)
        })
        .sum()
}

/// Exact sum of an int8 slice.
#[inline]
pub(crate) fn sum(a: &[i8]) -> i64 {
    a.iter().map(|&v| i64::from(v)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_depth_is_the_largest_that_cannot_overflow() {
        let worst = 128i64 * 128;
        assert!(I32_SAFE_DEPTH as i64 * worst <= i64::from(i32::MAX));
        assert!((I32_SAFE_DEPTH as i64 + 1) * worst > i64::from(i32::MAX));
    }

    #[test]
    fn dot_is_exact_past_the_safe_depth() {
        let n = 3 * I32_SAFE_DEPTH + 5;
        let a = vec![-128i8; n];
        assert_eq!(dot(&a, &a), n as i64 * 16_384);
        let b = vec![127i8; n];
        assert_eq!(dot(&a, &b), -(n as i64) * 16_256);
    }
}
