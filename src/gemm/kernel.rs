//! The microkernel contract and the CPU-support tokens.
//!
//! A kernel computes one tile of exact dot products,
//!
//! ```text
//! (16) dots[r·NR + c] = Σ_{k < kp} A[r, k] · B[k, c]      r < rows ≤ MR, c < NR
//! ```
//!
//! from a packed activation panel `A` (row-major, `a_stride` elements per
//! row, values already moved into the kernel's domain, see [`ADomain`]) and
//! one packed weight panel `B` (see `pack.rs`). `kp` is a multiple of the
//! kernel's k-group and at most [`Kernel::MAX_DEPTH`], so no `i32` sum can
//! overflow whatever the values.
//!
//! A kernel value is a token: it can only be obtained from a constructor
//! that checked, at run time, that the CPU has the instructions it uses.

/// How activations are stored for a kernel, and the shift that moves an
/// activation `x` of the layer into that domain (`x' = x + shift`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ADomain {
    /// Signed 8-bit values, stored widened to `i16`.
    I8,
    /// Unsigned 8-bit values `[0, 255]`.
    U8,
    /// Unsigned 7-bit values `[0, 127]`: `u8 × i8` pair sums cannot
    /// saturate an `i16` (`2·127·128 = 32 512`).
    U7,
}

use super::scratch::Pooled;

/// A microkernel computing (16). See the module docs.
///
/// # Safety
///
/// An implementor must only be constructible on a CPU that supports every
/// instruction [`tile`](Kernel::tile) executes, and `tile` must only read
/// the slices it is given.
pub unsafe trait Kernel: Copy + Send + Sync + 'static {
    /// Packed activation element.
    type A: Copy + Default + Send + Sync + Pooled + 'static;
    /// Name in the form `arch-AiBiAcc-isa`, e.g. `x86_64-i8i8i32-avx2`.
    const NAME: &'static str;
    /// Largest number of rows per tile.
    const MR: usize;
    /// Columns per tile (and per packed weight panel).
    const NR: usize;
    /// The inner dimension is consumed in groups of this many values.
    const KG: usize;
    /// Domain of the packed activations.
    const DOMAIN: ADomain;
    /// Longest inner dimension whose sums provably fit in `i32`, a multiple
    /// of `KG`.
    const MAX_DEPTH: usize;
    /// Multiply-adds per nanosecond one core sustains on this kernel's
    /// tiles, rounded from the development host's benchmarks (the README's
    /// tables): only an estimate of how long a call takes, so that calls
    /// too short to pay for a second thread run on one
    /// (`driver::is_parallel`). It never changes a result.
    #[cfg_attr(not(feature = "parallel"), allow(dead_code))]
    const MACS_PER_NS: usize;
    /// Fewest rows of a row task cut from a single row group (`m ≤ MR`),
    /// for kernels whose tile is made of smaller ones that run as well
    /// alone (`driver::rows_per_task`). `MR` means never.
    #[cfg_attr(not(feature = "parallel"), allow(dead_code))]
    const MIN_SPLIT_ROWS: usize = Self::MR;
    /// Elements from which a dynamic layer splits its per-call passes (run
    /// through `driver::Stamped::vectorized`) across threads: the wider
    /// the kernel's vectors, the faster a pass, and the more elements it
    /// takes to pay for a second thread.
    #[cfg_attr(not(feature = "parallel"), allow(dead_code))]
    const PASS_SPLIT_ELEMENTS: usize = 1 << 15;

    /// Converts an activation already shifted into [`Self::DOMAIN`].
    fn pack_a(v: i32) -> Self::A;

    /// Computes (16) for `rows ≤ MR` rows into `dots[..rows·NR]`.
    ///
    /// `STREAMING` is set for the first tile of a row block, whose weight
    /// panel comes from memory rather than cache: SIMD kernels then
    /// prefetch further along the panels as they go (the panels are
    /// consecutive in memory, so that covers the next panel too). The
    /// hardware prefetchers alone kept a batch-1 product well below the
    /// speed of memory; later tiles of a block find the panel in L2, and
    /// prefetching there only costs. It never changes the result.
    ///
    /// Panics if a slice is too short for the tile: callers in this crate
    /// size them from the same constants.
    fn tile<const STREAMING: bool>(
        &self,
        rows: usize,
        a: &[Self::A],
        a_stride: usize,
        b: &[i8],
        kp: usize,
        dots: &mut [i32],
    );
}

/// Implements [`Kernel::tile`] for a SIMD kernel from its body
/// `$body::<R, PREFETCH>(a: *const $a, a_stride, b, kp, dots)`, written
/// once: the bounds check, then one unsafe call of the body compiled with
/// `$features` and fully unrolled for each row count `R` in `[$r…]` and
/// `$max`, prefetching the weights ahead iff the tile is `STREAMING`.
macro_rules! simd_tile {
    ($features:literal, $body:ident: $a:ty, [$($r:literal)*], $max:literal) => {
        #[inline]
        fn tile<const STREAMING: bool>(
            &self,
            rows: usize,
            a: &[Self::A],
            a_stride: usize,
            b: &[i8],
            kp: usize,
            dots: &mut [i32],
        ) {
            #[target_feature(enable = $features)]
            unsafe fn stamped<const R: usize, const PREFETCH: bool>(
                a: *const $a,
                a_stride: usize,
                b: *const i8,
                kp: usize,
                dots: *mut i32,
            ) {
                // SAFETY: forwarded from `tile`; `$features` are enabled.
                unsafe { $body::<R, PREFETCH>(a, a_stride, b, kp, dots) }
            }
            $crate::gemm::kernel::check_tile_bounds::<Self>(rows, a.len(), a_stride, b.len(), kp, dots.len());
            let (a, b, dots) = (a.as_ptr(), b.as_ptr(), dots.as_mut_ptr());
            // SAFETY: the token (`self`) exists only on CPUs with
            // `$features`. The bounds check above covers every access of
            // the body: row r reads a[r·a_stride .. r·a_stride + kp], the
            // weights b[.. kp·NR], and the tile writes dots[.. rows·NR]
            // (prefetches are hints, and read nothing).
            unsafe {
                match rows {
                    $($r => stamped::<$r, STREAMING>(a, a_stride, b, kp, dots),)*
                    _ => stamped::<$max, STREAMING>(a, a_stride, b, kp, dots),
                }
            }
        }
    };
}
pub(crate) use simd_tile;

/// The length checks every `tile` implementation starts with, so that the
/// unsafe body after them reads only inside the slices.
#[inline]
pub(crate) fn check_tile_bounds<K: Kernel>(
    rows: usize,
    a_len: usize,
    a_stride: usize,
    b_len: usize,
    kp: usize,
    dots_len: usize,
) {
    assert!(rows >= 1 && rows <= K::MR, "tile rows out of range");
    assert!(
        kp.is_multiple_of(K::KG) && kp <= a_stride,
        "tile depth not a whole k-group"
    );
    assert!(
        a_len >= (rows - 1) * a_stride + kp,
        "activation panel too short"
    );
    assert!(b_len >= kp * K::NR, "weight panel too short");
    assert!(dots_len >= rows * K::NR, "tile output too short");
}

/// Largest depth, a multiple of `kg`, for which `depth · max|a| · max|b|`
/// fits in `i32`.
pub(crate) const fn max_depth(max_abs_a: usize, max_abs_b: usize, kg: usize) -> usize {
    let depth = (i32::MAX as usize) / (max_abs_a * max_abs_b);
    depth - depth % kg
}
