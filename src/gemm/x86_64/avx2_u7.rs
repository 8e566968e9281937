//! `x86_64-u7i8i32-avx2`: the reduced-range kernel, `vpmaddubsw`.
//!
//! `vpmaddubsw` multiplies unsigned bytes by signed bytes and adds adjacent
//! pairs into saturating 16-bit lanes. With activations in `[0, 127]` a pair
//! sum lies in `[2·127·(−128), 2·127·127] = [−32 512, 32 258]`, inside
//! `i16`, so it never saturates: the kernel is exact *because* it is only
//! selected for layers whose input range is 7 bits (checked again when the
//! activations are packed). `vpmaddwd` with ones then adds pairs of pairs
//! into 32-bit lanes.
//!
//! Tile: up to 4 rows × 16 columns; per k-quad one 32-bit broadcast of
//! `x[k..k+4]` per row and two 32-byte weight loads (no widening).

use std::arch::x86_64::*;

use crate::gemm::driver::{stamp_compute, Stamped};
use crate::gemm::kernel::{max_depth, simd_tile, ADomain, Kernel};

/// The AVX2 reduced-range kernel. Obtain it with [`Avx2U7::new`].
#[derive(Debug, Clone, Copy)]
pub struct Avx2U7 {
    _cpu_has_avx2: (),
}

impl Avx2U7 {
    /// The kernel, if this CPU has AVX2.
    pub fn new() -> Option<Avx2U7> {
        is_x86_feature_detected!("avx2").then_some(Avx2U7 { _cpu_has_avx2: () })
    }
}

const NR: usize = 16;

// SAFETY: `Avx2U7` is only constructed after detecting AVX2, and `tile`
// checks every slice length before the unsafe body runs.
unsafe impl Kernel for Avx2U7 {
    type A = u8;
    const NAME: &'static str = "x86_64-u7i8i32-avx2";
    const MR: usize = 4;
    const NR: usize = NR;
    const KG: usize = 4;
    const DOMAIN: ADomain = ADomain::U7;
    const MAX_DEPTH: usize = max_depth(127, 128, 4);
    const MACS_PER_NS: usize = 60;

    #[inline]
    fn pack_a(v: i32) -> u8 {
        v as u8
    }

    simd_tile!("avx2", body: u8, [1 2 3], 4);
}

// Its blocked loop and passes compiled for its instruction set.
impl Stamped for Avx2U7 {
    stamp_compute!("avx2");
}

/// The tile, written once; `simd_tile!` stamps it with the instruction set.
#[inline(always)]
unsafe fn body<const R: usize, const PREFETCH: bool>(
    a: *const u8,
    a_stride: usize,
    b: *const i8,
    kp: usize,
    dots: *mut i32,
) {
    // SAFETY (whole body): the caller guarantees AVX2 and the bounds given
    // in `tile`; every pointer offset below stays inside them.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let mut lo = [_mm256_setzero_si256(); R];
        let mut hi = [_mm256_setzero_si256(); R];
        for g in 0..kp / 4 {
            let w = b.add(g * 4 * NR);
            if PREFETCH {
                super::prefetch_weights(w);
            }
            let w_lo = _mm256_loadu_si256(w.cast());
            let w_hi = _mm256_loadu_si256(w.add(32).cast());
            for r in 0..R {
                let quad = a.add(r * a_stride + 4 * g).cast::<i32>().read_unaligned();
                let x = _mm256_set1_epi32(quad);
                let p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(x, w_lo), ones);
                let p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(x, w_hi), ones);
                lo[r] = _mm256_add_epi32(lo[r], p_lo);
                hi[r] = _mm256_add_epi32(hi[r], p_hi);
            }
        }
        for r in 0..R {
            _mm256_storeu_si256(dots.add(r * NR).cast(), lo[r]);
            _mm256_storeu_si256(dots.add(r * NR + 8).cast(), hi[r]);
        }
    }
}
