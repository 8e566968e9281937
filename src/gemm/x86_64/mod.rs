//! x86_64 kernels, one file per instruction set. Each kernel type is a
//! token: its only constructor checks the CPU at run time.

mod amx;
mod avx2;
mod avx2_u7;
mod avx512_vnni;
mod avx_vnni;

pub use amx::Amx;
pub use avx2::Avx2;
pub use avx2_u7::Avx2U7;
pub use avx512_vnni::Avx512Vnni;
pub use avx_vnni::AvxVnni;

/// How far ahead in the weight panels a streaming tile prefetches: 8 KiB,
/// about 400 ns of reading at the 20 GB/s one core gets here, enough to
/// cover a trip to memory. 2, 4 and 8 KiB measured within a few percent of
/// each other at 1×4096×4096 and 4×4096×4096; 8 KiB was ahead for the
/// AVX-512 VNNI kernel at batch 1.
const WEIGHT_PREFETCH_BYTES: usize = 8192;

/// Asks for the cache line of weights `WEIGHT_PREFETCH_BYTES` past `w`.
#[inline(always)]
fn prefetch_weights(w: *const i8) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: SSE is part of every x86_64 CPU. A prefetch is a hint: it
    // reads nothing the program sees and never faults, so an address past
    // the end of the panels (computed with `wrapping_add`) is harmless.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(WEIGHT_PREFETCH_BYTES)) }
}
