//! `x86_64-i8i8i32-avx2`: exact int8 × int8 with `vpmaddwd`.
//!
//! Both operands are sign-extended to 16 bits (activations when packed,
//! weights in registers with `vpmovsxbw`), so `vpmaddwd` forms
//! `a0·b0 + a1·b1` exactly in each 32-bit lane (at most `2·128² = 2^15`),
//! and `vpaddd` accumulates. No input value can saturate anything.
//!
//! Tile: up to 6 rows × 16 columns, 12 accumulators; per k-pair, one 32-bit
//! broadcast of `(x[k], x[k+1])` per row and two widened weight loads. Six
//! rows rather than four spread each `vpmovsxbw` over 12 `vpmaddwd`
//! instead of 8, the most the 16 `ymm` registers allow (12 accumulators,
//! two weight vectors, a broadcast and a product).

use std::arch::x86_64::*;

use crate::gemm::driver::{stamp_compute, Stamped};
use crate::gemm::kernel::{max_depth, simd_tile, ADomain, Kernel};

/// The AVX2 full-range kernel. Obtain it with [`Avx2::new`].
#[derive(Debug, Clone, Copy)]
pub struct Avx2 {
    _cpu_has_avx2: (),
}

impl Avx2 {
    /// The kernel, if this CPU has AVX2.
    pub fn new() -> Option<Avx2> {
        is_x86_feature_detected!("avx2").then_some(Avx2 { _cpu_has_avx2: () })
    }
}

const NR: usize = 16;

// SAFETY: `Avx2` is only constructed after detecting AVX2, and `tile` checks
// every slice length before the unsafe body runs.
unsafe impl Kernel for Avx2 {
    type A = i16;
    const NAME: &'static str = "x86_64-i8i8i32-avx2";
    const MR: usize = 6;
    const NR: usize = NR;
    const KG: usize = 2;
    const DOMAIN: ADomain = ADomain::I8;
    const MAX_DEPTH: usize = max_depth(128, 128, 2);
    const MACS_PER_NS: usize = 40;

    #[inline]
    fn pack_a(v: i32) -> i16 {
        v as i16
    }

    simd_tile!("avx2", body: i16, [1 2 3 4 5], 6);
}

// Its blocked loop and passes compiled for its instruction set.
impl Stamped for Avx2 {
    stamp_compute!("avx2");
}

/// The tile, written once; `simd_tile!` stamps it with the instruction set.
#[inline(always)]
unsafe fn body<const R: usize, const PREFETCH: bool>(
    a: *const i16,
    a_stride: usize,
    b: *const i8,
    kp: usize,
    dots: *mut i32,
) {
    // SAFETY (whole body): the caller guarantees AVX2 and the bounds given
    // in `tile`; every pointer offset below stays inside them.
    unsafe {
        let mut lo = [_mm256_setzero_si256(); R];
        let mut hi = [_mm256_setzero_si256(); R];
        for g in 0..kp / 2 {
            let w = b.add(g * 2 * NR);
            if PREFETCH {
                super::prefetch_weights(w);
            }
            let w_lo = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.cast()));
            let w_hi = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(16).cast()));
            for r in 0..R {
                let pair = a.add(r * a_stride + 2 * g).cast::<i32>().read_unaligned();
                let x = _mm256_set1_epi32(pair);
                lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(x, w_lo));
                hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(x, w_hi));
            }
        }
        for r in 0..R {
            _mm256_storeu_si256(dots.add(r * NR).cast(), lo[r]);
            _mm256_storeu_si256(dots.add(r * NR + 8).cast(), hi[r]);
        }
    }
}
