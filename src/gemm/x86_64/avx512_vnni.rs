//! `x86_64-u8i8i32-avx512vnni`: exact int8 with `vpdpbusd` on 512 bits.
//!
//! `vpdpbusd` multiplies four unsigned bytes by four signed bytes and adds
//! the four products to a 32-bit lane, with no intermediate saturation. The
//! activations are packed as `x + 128` (or as given for uint8 inputs), so
//! they lie in `[0, 255]` and every product in `[−32 640, 32 385]`: the sum
//! is exact up to `MAX_DEPTH` values, and the layer folds the `+128` into
//! its column terms, equation (11). Full-range inputs are exact.
//!
//! Tile: up to 8 rows × 32 columns, 16 accumulators; per k-quad one 32-bit
//! broadcast per row and two 64-byte weight loads.

use std::arch::x86_64::*;

use crate::gemm::driver::{stamp_compute, Stamped};
use crate::gemm::kernel::{max_depth, simd_tile, ADomain, Kernel};

/// The AVX-512 VNNI kernel. Obtain it with [`Avx512Vnni::new`].
#[derive(Debug, Clone, Copy)]
pub struct Avx512Vnni {
    _cpu_has_avx512_vnni: (),
}

impl Avx512Vnni {
    /// The kernel, if this CPU has AVX-512 F, BW, DQ, VL and VNNI (DQ and VL
    /// vectorize the output stage compiled with the kernel).
    pub fn new() -> Option<Avx512Vnni> {
        let ok = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni");
        ok.then_some(Avx512Vnni {
            _cpu_has_avx512_vnni: (),
        })
    }
}

const NR: usize = 32;

// SAFETY: `Avx512Vnni` is only constructed after detecting AVX-512 F, BW,
// DQ, VL and VNNI, and `tile` checks every slice length before the unsafe body runs.
unsafe impl Kernel for Avx512Vnni {
    type A = u8;
    const NAME: &'static str = "x86_64-u8i8i32-avx512vnni";
    const MR: usize = 8;
    const NR: usize = NR;
    const KG: usize = 4;
    const DOMAIN: ADomain = ADomain::U8;
    const MAX_DEPTH: usize = max_depth(255, 128, 4);
    const MACS_PER_NS: usize = 180;
    // Its passes run on AVX-512: see `dynamic::splits_passes`.
    const PASS_SPLIT_ELEMENTS: usize = 1 << 16;

    #[inline]
    fn pack_a(v: i32) -> u8 {
        v as u8
    }

    simd_tile!("avx512f,avx512bw,avx512vnni", body: u8, [1 2 3 4 5 6 7], 8);
}

// Its blocked loop and passes compiled for its instruction set.
impl Stamped for Avx512Vnni {
    stamp_compute!("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni");
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
        let mut lo = [_mm512_setzero_si512(); R];
        let mut hi = [_mm512_setzero_si512(); R];
        for g in 0..kp / 4 {
            let w = b.add(g * 4 * NR);
            if PREFETCH {
                super::prefetch_weights(w);
                super::prefetch_weights(w.wrapping_add(64));
            }
            let w_lo = _mm512_loadu_si512(w.cast());
            let w_hi = _mm512_loadu_si512(w.add(64).cast());
            for r in 0..R {
                let quad = a.add(r * a_stride + 4 * g).cast::<i32>().read_unaligned();
                let x = _mm512_set1_epi32(quad);
                lo[r] = _mm512_dpbusd_epi32(lo[r], x, w_lo);
                hi[r] = _mm512_dpbusd_epi32(hi[r], x, w_hi);
            }
        }
        for r in 0..R {
            _mm512_storeu_si512(dots.add(r * NR).cast(), lo[r]);
            _mm512_storeu_si512(dots.add(r * NR + 16).cast(), hi[r]);
        }
    }
}
