//! `x86_64-u8i8i32-avxvnni`: exact int8 with `vpdpbusd` on 256 bits (the
//! VEX-encoded AVX-VNNI of CPUs without AVX-512).
//!
//! The arithmetic is that of `avx512_vnni.rs`: activations packed as
//! `x + 128` in `[0, 255]`, four exact `u8 × i8` products added to each
//! 32-bit lane with no saturation, the `+128` folded into the layer's
//! column terms.
//!
//! Tile: up to 6 rows × 16 columns, 12 accumulators of the 16 registers.

use std::arch::x86_64::*;

use crate::gemm::driver::{stamp_compute, Stamped};
use crate::gemm::kernel::{max_depth, simd_tile, ADomain, Kernel};

/// The AVX-VNNI kernel. Obtain it with [`AvxVnni::new`].
#[derive(Debug, Clone, Copy)]
pub struct AvxVnni {
    _cpu_has_avx_vnni: (),
}

impl AvxVnni {
    /// The kernel, if this CPU has AVX2 and AVX-VNNI.
    pub fn new() -> Option<AvxVnni> {
        let ok = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("avxvnni");
        ok.then_some(AvxVnni {
            _cpu_has_avx_vnni: (),
        })
    }
}

const NR: usize = 16;

// SAFETY: `AvxVnni` is only constructed after detecting AVX2 and AVX-VNNI,
// and `tile` checks every slice length before the unsafe body runs.
unsafe impl Kernel for AvxVnni {
    type A = u8;
    const NAME: &'static str = "x86_64-u8i8i32-avxvnni";
    const MR: usize = 6;
    const NR: usize = NR;
    const KG: usize = 4;
    const DOMAIN: ADomain = ADomain::U8;
    const MAX_DEPTH: usize = max_depth(255, 128, 4);
    const MACS_PER_NS: usize = 100;

    #[inline]
    fn pack_a(v: i32) -> u8 {
        v as u8
    }

    simd_tile!("avx2,avxvnni", body: u8, [1 2 3 4 5], 6);
}

// Its blocked loop and passes compiled for its instruction set.
impl Stamped for AvxVnni {
    stamp_compute!("avx2,avxvnni");
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
    // SAFETY (whole body): the caller guarantees the features and the
    // bounds given in `tile`; every pointer offset below stays inside them.
    unsafe {
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
                lo[r] = _mm256_dpbusd_avx_epi32(lo[r], x, w_lo);
                hi[r] = _mm256_dpbusd_avx_epi32(hi[r], x, w_hi);
            }
        }
        for r in 0..R {
            _mm256_storeu_si256(dots.add(r * NR).cast(), lo[r]);
            _mm256_storeu_si256(dots.add(r * NR + 8).cast(), hi[r]);
        }
    }
}
