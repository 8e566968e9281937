//! The portable kernel: plain Rust for every target and as the forced
//! fallback. Its panels hold one row of `NR` weights per `k` (`KG = 1`), so
//! the inner loop is a broadcast multiply-add over contiguous columns.

use super::driver::Stamped;
use super::kernel::{check_tile_bounds, max_depth, ADomain, Kernel};

/// Portable kernel, `portable-i8i8i32`. Always available.
#[derive(Debug, Clone, Copy, Default)]
pub struct Portable;

// SAFETY: `tile` is safe Rust and uses no special instructions.
unsafe impl Kernel for Portable {
    type A = i16;
    const NAME: &'static str = "portable-i8i8i32";
    const MR: usize = 4;
    const NR: usize = 16;
    const KG: usize = 1;
    const DOMAIN: ADomain = ADomain::I8;
    const MAX_DEPTH: usize = max_depth(128, 128, 1);
    const MACS_PER_NS: usize = 4;

    #[inline]
    fn pack_a(v: i32) -> i16 {
        v as i16
    }

    fn tile<const STREAMING: bool>(
        &self,
        rows: usize,
        a: &[i16],
        a_stride: usize,
        b: &[i8],
        kp: usize,
        dots: &mut [i32],
    ) {
        check_tile_bounds::<Self>(rows, a.len(), a_stride, b.len(), kp, dots.len());
        const NR: usize = Portable::NR;
        for r in 0..rows {
            let a_row = &a[r * a_stride..r * a_stride + kp];
            let mut acc = [0i32; NR];
            // One weight row of the panel per k: a broadcast multiply-add
            // over NR contiguous columns, which compilers vectorize.
            for (&x, w) in a_row.iter().zip(b.chunks_exact(NR)) {
                let x = i32::from(x);
                for (c, &w) in acc.iter_mut().zip(w) {
                    *c += x * i32::from(w);
                }
            }
            dots[r * NR..(r + 1) * NR].copy_from_slice(&acc);
        }
    }
}

// The blocked loop as compiled for the crate's baseline target.
impl Stamped for Portable {}
