//! The blocked loop around a microkernel, and its split across threads.
//!
//! Rows of the packed activations are taken in blocks of at most
//! [`a_block_bytes`] so that a block stays in L2 while every weight panel
//! streams past it once; inside a block, each panel meets each group of
//! `MR` rows. A tile's dot products go straight to the [`Epilogue`], which
//! writes final outputs: no m×n intermediate is stored.
//!
//! Inner dimensions longer than the kernel's `MAX_DEPTH` are cut into runs
//! of that length, each summed exactly in `i32` by the kernel and the runs
//! added in `i64`.
//!
//! With threads, large batches are split by rows (each thread packs its
//! rows, then streams all panels past them) and small batches by panels
//! (each thread streams its share of the weights — the GEMV case); see
//! [`rows_per_task`] for where one ends and the other begins. Every
//! output is computed by the same operations in the same order whatever
//! the split, so results are identical for every thread count.

use std::ops::Range;

use super::aligned::LineAligned;
use super::cache;
use super::kernel::Kernel;
use super::pack::{PackedRows, PackedWeights, Rows};
use crate::alloc::try_filled;
#[cfg(feature = "parallel")]
use crate::alloc::try_with_capacity;
use crate::error::QuantError;

/// Size of a block of packed activations: 3/8 of the core's L2, so that
/// the block, the weight panel streaming past it and the outputs share the
/// L2 (192 KiB on a 512 KiB L2, 768 KiB on a 2 MiB one; larger blocks
/// stream each panel past more rows).
fn a_block_bytes() -> usize {
    (cache::l2_bytes() / 8 * 3).clamp(128 * 1024, 1024 * 1024)
}

/// A kernel whose blocked loop (with the epilogue inlined into it) and
/// per-call passes run compiled for its own instruction set. Kept apart
/// from [`Kernel`], so that the microkernel contract depends on nothing
/// in the driver: the SIMD kernels implement it with [`stamp_compute!`],
/// the portable kernel takes the defaults.
pub(crate) trait Stamped: Kernel {
    /// [`compute`] over `rows` × `panels`, compiled for the kernel.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn compute<O, E>(
        self,
        w: &PackedWeights,
        a: &Rows<'_, Self::A>,
        rows: Range<usize>,
        panels: Range<usize>,
        epilogue: &E,
        out: &mut [O],
        origin: (usize, usize, usize),
    ) where
        E: Epilogue<O>,
    {
        compute(self, w, a, rows, panels, epilogue, out, origin)
    }

    /// Runs `f` compiled for this kernel's instruction set, so that the
    /// loops inlined into it (functions marked `#[inline(always)]`)
    /// vectorize as wide as the kernel does: the per-call passes of a
    /// dynamic layer. Results cannot change: Rust's integer and float
    /// arithmetic does not depend on the instruction set.
    #[inline]
    fn vectorized<R>(self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// Implements [`Stamped`] for a kernel token: [`Stamped::compute`] calls
/// the blocked loop from a function compiled with `$features` (with
/// `around`, inside `$around(|| …)`, for state the kernel sets up once per
/// call), and [`Stamped::vectorized`] runs its closure with the same
/// features. Invoked inside `impl Stamped for …`.
macro_rules! stamp_compute {
    ($features:literal) => {
        $crate::gemm::driver::stamp_compute!($features, around = $crate::gemm::driver::just_run);
    };
    ($features:literal, around = $around:path) => {
        #[inline]
        fn compute<O, E>(
            self,
            w: &$crate::gemm::pack::PackedWeights,
            a: &$crate::gemm::pack::Rows<'_, Self::A>,
            rows: std::ops::Range<usize>,
            panels: std::ops::Range<usize>,
            epilogue: &E,
            out: &mut [O],
            origin: (usize, usize, usize),
        ) where
            E: $crate::gemm::driver::Epilogue<O>,
        {
            #[target_feature(enable = $features)]
            #[allow(clippy::too_many_arguments)]
            fn stamped<K: $crate::gemm::kernel::Kernel, O, E: $crate::gemm::driver::Epilogue<O>>(
                k: K,
                w: &$crate::gemm::pack::PackedWeights,
                a: &$crate::gemm::pack::Rows<'_, K::A>,
                rows: std::ops::Range<usize>,
                panels: std::ops::Range<usize>,
                epilogue: &E,
                out: &mut [O],
                origin: (usize, usize, usize),
            ) {
                $crate::gemm::driver::compute(k, w, a, rows, panels, epilogue, out, origin)
            }
            // SAFETY: this kernel's token exists only on CPUs with `$features`.
            let run = || unsafe { stamped(self, w, a, rows, panels, epilogue, out, origin) };
            $around(run)
        }

        #[inline]
        fn vectorized<R>(self, f: impl FnOnce() -> R) -> R {
            #[target_feature(enable = $features)]
            fn stamped<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            // SAFETY: this kernel's token exists only on CPUs with `$features`.
            unsafe { stamped(f) }
        }
    };
}
pub(crate) use stamp_compute;

/// Runs `run`: the `around` of kernels with no per-call state.
#[inline(always)]
pub(crate) fn just_run(run: impl FnOnce()) {
    run()
}

/// Rows of packed activations per block for inner dimension `kp`: as many
/// as fit in [`a_block_bytes`], in whole row groups, at least one.
pub(crate) fn block_rows<K: Kernel>(kp: usize) -> usize {
    (a_block_bytes() / (kp.max(1) * std::mem::size_of::<K::A>()))
        .max(K::MR)
        .next_multiple_of(K::MR)
}

/// Largest tile any kernel produces (`MR·NR`).
pub(crate) const MAX_TILE: usize = 1024;

/// Work below which threads cost more than they save (multiply-adds),
/// whatever the kernel.
#[cfg(feature = "parallel")]
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// Estimated one-thread call time below which a second thread costs more
/// than it saves (see [`is_parallel`]).
#[cfg(feature = "parallel")]
const PARALLEL_MIN_NS: usize = 16_000;

/// Weight bytes per nanosecond one core streams, for a GEMV's time
/// estimate: 1 MiB of weights took 19 µs at 1×1024×1024 on the
/// development host, so the figure is rounded up to 64 and such a call
/// (which gains 1.26–1.35× from a second thread there) still splits.
#[cfg(feature = "parallel")]
const WEIGHT_BYTES_PER_NS: usize = 64;

/// A tile's dot products: `i32` straight from the kernel, or `i64` when
/// the inner dimension was cut into runs.
#[derive(Clone, Copy)]
pub(crate) enum Dots<'a> {
    I32(&'a [i32]),
    I64(&'a [i64]),
}

/// Turns a tile of exact dot products into outputs.
pub(crate) trait Epilogue<O>: Sync {
    /// Writes `out[r·out_stride + c]` for `r < rows`, `c < cols`, from
    /// `dots[r·dots_stride + c]` = `Σ_k x'[i0 + r, k]·W[k, j0 + c]` and the
    /// tile's row sums `row_sums[r]` = `Σ_k x'[i0 + r, k]` (empty if not
    /// taken).
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        i0: usize,
        j0: usize,
        rows: usize,
        cols: usize,
        dots: Dots<'_>,
        dots_stride: usize,
        row_sums: &[i64],
        out: &mut [O],
        out_stride: usize,
    );
}

/// Packs the m rows of activations with `pack` and computes every output
/// of the m×n product into `out` (row-major, m·n).
///
/// `pack(rows, stride, data, row_sums)` must fill `data` (rows `stride`
/// elements apart) and `row_sums`, each starting at row `rows.start`, for
/// those rows; see `pack_rows_into`.
/// The packed rows are allocated where they are filled: with the row
/// split, by each task for its own rows, so that zeroing them is shared
/// out too and their pages are first touched by the core that reads them.
pub(crate) fn run<K, O, E, P>(
    kernel: K,
    w: &PackedWeights,
    pack: &P,
    (m, with_row_sums): (usize, bool),
    epilogue: &E,
    out: &mut [O],
) where
    K: Stamped,
    O: Copy + Default + Send,
    E: Epilogue<O>,
    P: Fn(Range<usize>, usize, &mut [K::A], &mut [i64]) + Sync,
{
    let n = w.n();
    debug_assert_eq!(out.len(), m * n);
    assert!(K::MR * K::NR <= MAX_TILE && w.nr() == K::NR);
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(feature = "parallel")]
    {
        let plan = plan::<K>(m, n, w.kp(), rayon::current_num_threads());
        if plan != Plan::OneThread {
            return run_parallel(kernel, w, pack, (m, with_row_sums), epilogue, out, plan);
        }
    }
    let a = PackedRows::<K>::packed(0..m, w.kp(), with_row_sums, pack);
    let panels = 0..w.panels();
    kernel.compute(w, &a.rows(), 0..m, panels, epilogue, out, (0, 0, n));
}

/// How `run` shares out a product: the one decision behind every split,
/// so that what the tests read (`gemm::__introspect`) is what runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// All of it on the calling thread.
    OneThread,
    /// Tasks of `rows_per_task` rows (the last one shorter), each of which
    /// packs its rows and streams the panels past them, in `panel_tasks`
    /// tasks of consecutive panels (more than one only when the weights
    /// do not fit in L2).
    Rows {
        /// Rows per task.
        rows_per_task: usize,
        /// Panel tasks per row task.
        panel_tasks: usize,
    },
    /// All rows packed once, then `tasks` tasks of consecutive panels.
    Panels {
        /// Tasks asked for (fewer when there are fewer panels).
        tasks: usize,
    },
}

/// The split [`run`] takes for an m×n product of inner dimension `kp`
/// (padded to the kernel's k-group) on a pool of `threads`: see
/// [`is_parallel`] and [`rows_per_task`].
pub(crate) fn plan<K: Kernel>(m: usize, n: usize, kp: usize, threads: usize) -> Plan {
    #[cfg(feature = "parallel")]
    if m > 0 && n > 0 && is_parallel::<K>(m, n, kp, threads) {
        return match rows_per_task::<K>(m, n, kp, threads) {
            Some(rows_per_task) => Plan::Rows {
                rows_per_task,
                panel_tasks: if weights_fit_l2::<K>(n, kp) {
                    1
                } else {
                    PANEL_TASKS_PER_ROW_TASK
                },
            },
            None => Plan::Panels { tasks: threads },
        };
    }
    let _ = (m, n, kp, threads);
    Plan::OneThread
}

#[cfg(feature = "parallel")]
fn run_parallel<K, O, E, P>(
    kernel: K,
    w: &PackedWeights,
    pack: &P,
    (m, with_row_sums): (usize, bool),
    epilogue: &E,
    out: &mut [O],
    plan: Plan,
) where
    K: Stamped,
    O: Copy + Default + Send,
    E: Epilogue<O>,
    P: Fn(Range<usize>, usize, &mut [K::A], &mut [i64]) + Sync,
{
    use rayon::prelude::*;
    let (n, kp) = (w.n(), w.kp());
    if let Plan::Rows {
        rows_per_task,
        panel_tasks,
    } = plan
    {
        // Split by rows: whole row groups per task. Each task packs its
        // own rows first, so the core that reads them also wrote them.
        // With weights beyond L2, a task's panels are split too (see
        // `rows_per_task`).
        out.par_chunks_mut(rows_per_task * n)
            .with_max_len(1)
            .enumerate()
            .for_each(|(t, task_out)| {
                let start = t * rows_per_task;
                let rows = start..(start + rows_per_task).min(m);
                let a = PackedRows::<K>::packed(rows.clone(), kp, with_row_sums, pack);
                if panel_tasks == 1 {
                    let origin = (rows.start, 0, n);
                    kernel.compute(
                        w,
                        &a.rows(),
                        rows,
                        0..w.panels(),
                        epilogue,
                        task_out,
                        origin,
                    );
                } else {
                    by_panels(kernel, w, &a.rows(), rows, panel_tasks, epilogue, task_out);
                }
            });
    } else if let Plan::Panels { tasks } = plan {
        // Split by weight panels; each task fills its own columns from
        // every row, packed once up front.
        let a = PackedRows::<K>::packed(0..m, kp, with_row_sums, pack);
        by_panels(kernel, w, &a.rows(), 0..m, tasks, epilogue, out);
    }
}

/// Whether the packed weights of an n-column, depth-`kp` layer fit in a
/// core's L2.
#[cfg(feature = "parallel")]
fn weights_fit_l2<K: Kernel>(n: usize, kp: usize) -> bool {
    n.div_ceil(K::NR) * K::NR * kp <= cache::l2_bytes()
}

/// Rows `rows` of the product, from their packed `a`, into `out` (those
/// rows, `n` wide), as `tasks` tasks of consecutive weight panels. Each
/// task fills a buffer of its own columns, copied into place after.
#[cfg(feature = "parallel")]
fn by_panels<K, O, E>(
    kernel: K,
    w: &PackedWeights,
    a: &Rows<'_, K::A>,
    rows: Range<usize>,
    tasks: usize,
    epilogue: &E,
    out: &mut [O],
) where
    K: Stamped,
    O: Copy + Default + Send,
    E: Epilogue<O>,
{
    use rayon::prelude::*;
    let (n, panels, height) = (w.n(), w.panels(), rows.len());
    let per_task = panels.div_ceil(tasks);
    let parts: Vec<(usize, usize, Vec<O>)> = (0..panels.div_ceil(per_task))
        .into_par_iter()
        .with_max_len(1)
        .map(|t| {
            let range = t * per_task..((t + 1) * per_task).min(panels);
            let j0 = range.start * K::NR;
            let width = (range.end * K::NR).min(n) - j0;
            let mut local = vec![O::default(); height * width];
            let origin = (rows.start, j0, width);
            kernel.compute(w, a, rows.clone(), range, epilogue, &mut local, origin);
            (j0, width, local)
        })
        .collect();
    for (j0, width, local) in parts {
        for (dst, src) in out.chunks_exact_mut(n).zip(local.chunks_exact(width)) {
            dst[j0..j0 + width].copy_from_slice(src);
        }
    }
}

/// Whether [`run`] splits an m×n product of inner dimension `kp` across
/// `threads`: at least [`PARALLEL_MIN_MACS`] multiply-adds, and an
/// estimated one-thread time of at least [`PARALLEL_MIN_NS`], the longer of
/// the arithmetic at the kernel's [`Kernel::MACS_PER_NS`] and the weights'
/// streaming at [`WEIGHT_BYTES_PER_NS`].
///
/// A task costs a few microseconds beyond its share of the arithmetic (a
/// worker's wake-up, rayon's hand-over, on AMX the tile configuration and
/// a fresh cache), so calls of 5–10 µs ran slower on two threads than on
/// one, and calls from about 16 µs gained. A multiply-add count alone
/// cannot draw that line: AMX does 2^22 of them in 7 µs, the full-range
/// AVX2 kernel in 76 µs.
#[cfg(feature = "parallel")]
fn is_parallel<K: Kernel>(m: usize, n: usize, kp: usize, threads: usize) -> bool {
    let macs = m.saturating_mul(n).saturating_mul(kp);
    let arithmetic_ns = macs / K::MACS_PER_NS;
    let streaming_ns = n.saturating_mul(kp) / WEIGHT_BYTES_PER_NS;
    threads > 1 && macs >= PARALLEL_MIN_MACS && arithmetic_ns.max(streaming_ns) >= PARALLEL_MIN_NS
}

/// Rows per task when a parallel [`run`] of m rows into n columns of depth
/// `kp` splits by rows (whole row groups, but for the single-group case
/// below), or `None` when it splits by weight panels.
///
/// By rows with at least two row groups per thread. With one to two per
/// thread, by rows too if the packed weights fit in a core's L2, where
/// every task streaming all of them costs little; otherwise by panels, so
/// that each core streams half (rows won by about a third with 256 KiB–1
/// MiB of weights, and lost by a sixth with 4 MiB).
///
/// Tasks are smaller than an even share, so that rayon hands the rest to
/// whichever core is free: cores do not all run at one speed (hybrid CPUs
/// pair fast and slow cores, and a shared host's vCPUs drift apart), and
/// an even split waits for the slowest. With the weights in L2, about
/// [`ROW_TASKS_PER_THREAD`] row tasks per thread. Beyond L2, one per
/// thread, since each row task streams all the weights; [`run`] splits
/// each into [`PANEL_TASKS_PER_ROW_TASK`] panel tasks instead, which
/// together stream them once.
///
/// A single row group with the weights in L2 is cut into row tasks of at
/// least [`Kernel::MIN_SPLIT_ROWS`] where the kernel allows it: AMX's 32
/// rows into two tiles of 9–16 rows, each streaming every panel from its
/// own L2, rather than a panel split (1.3–1.9× faster with the weights in
/// L2, slower beyond it).
#[cfg(feature = "parallel")]
fn rows_per_task<K: Kernel>(m: usize, n: usize, kp: usize, threads: usize) -> Option<usize> {
    let row_groups = m.div_ceil(K::MR);
    let in_l2 = weights_fit_l2::<K>(n, kp);
    if row_groups == 1 && in_l2 && m >= 2 * K::MIN_SPLIT_ROWS {
        return Some(m.div_ceil(threads.min(m / K::MIN_SPLIT_ROWS)));
    }
    let by_rows = row_groups >= 2 * threads || (row_groups >= threads && in_l2);
    let tasks = threads * if in_l2 { ROW_TASKS_PER_THREAD } else { 1 };
    by_rows.then(|| row_groups.div_ceil(tasks) * K::MR)
}

/// Row tasks per thread when the weights fit in L2 (see [`rows_per_task`]).
#[cfg(feature = "parallel")]
const ROW_TASKS_PER_THREAD: usize = 4;

/// Panel tasks per row task when the weights do not fit in L2.
#[cfg(feature = "parallel")]
const PANEL_TASKS_PER_ROW_TASK: usize = 4;

/// A zeroed output of `m·n` values for [`run`]. When `run` will split by
/// rows, the pool zeroes it in the same row ranges, so that each range's
/// cache lines start in the cache of a core that computes it rather than
/// all in the caller's: zeroed by the caller, the other core's writes had
/// to fetch every line from it, and a two-thread dynamic layer at
/// 512×512×512 ran no faster than one thread.
///
/// Errors if the allocator cannot provide it.
pub(crate) fn new_output<K: Kernel, O: Copy + Default + Send + Sync>(
    m: usize,
    n: usize,
    kp: usize,
) -> Result<Vec<O>, QuantError> {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        let threads = rayon::current_num_threads();
        if is_parallel::<K>(m, n, kp, threads) {
            if let Some(rows) = rows_per_task::<K>(m, n, kp, threads) {
                let task = rows * n;
                // Reserved first, so that `collect_into_vec` cannot abort.
                let mut out = try_with_capacity("output", &[m, n])?;
                (0..m * n)
                    .into_par_iter()
                    .with_min_len(task)
                    .with_max_len(task)
                    .map(|_| O::default())
                    .collect_into_vec(&mut out);
                return Ok(out);
            }
        }
    }
    let _ = kp;
    try_filled("output", &[m, n], O::default())
}

/// Rows `rows` × panels `panels` into `out`, whose element `(0, 0)` is
/// output `(out_origin.0, out_origin.1)` and whose row stride is
/// `out_origin.2`.
///
/// Always inlined: each kernel calls it from a wrapper compiled with its
/// own instruction set ([`Stamped::compute`]), so that the epilogue inlined
/// here is vectorized with those instructions too.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn compute<K, O, E>(
    kernel: K,
    w: &PackedWeights,
    a: &Rows<'_, K::A>,
    rows: Range<usize>,
    panels: Range<usize>,
    epilogue: &E,
    out: &mut [O],
    (row0, col0, out_stride): (usize, usize, usize),
) where
    K: Kernel,
    E: Epilogue<O>,
{
    let (kp, n, nr, mr) = (w.kp(), w.n(), K::NR, K::MR);
    let block_rows = block_rows::<K>(kp);
    // On a cache line: AMX stores a tile's sums as 64-byte rows, and rows
    // split across two lines measured 2–8 % slower.
    let mut dots32 = LineAligned([0i32; MAX_TILE]);
    let dots32 = &mut dots32.0;
    let mut dots64 = LineAligned([0i64; MAX_TILE]);
    let dots64 = &mut dots64.0;
    let mut block_start = rows.start;
    while block_start < rows.end {
        let block_end = (block_start + block_rows).min(rows.end);
        for t in panels.clone() {
            let b = w.panel(t);
            let j0 = t * nr;
            let cols = nr.min(n - j0);
            let mut i = block_start;
            while i < block_end {
                let r = mr.min(block_end - i);
                let a_rows = &a.data[(i - a.first) * a.stride..];
                // The block's first tile reads the panel from memory and
                // prefetches ahead; the others find it in L2.
                let tile = if i == block_start {
                    K::tile::<true>
                } else {
                    K::tile::<false>
                };
                let dots = if kp <= K::MAX_DEPTH {
                    tile(&kernel, r, a_rows, a.stride, b, kp, dots32);
                    Dots::I32(dots32)
                } else {
                    dots64[..r * nr].fill(0);
                    let mut k0 = 0;
                    while k0 < kp {
                        let len = K::MAX_DEPTH.min(kp - k0);
                        tile(
                            &kernel,
                            r,
                            &a_rows[k0..],
                            a.stride,
                            &b[k0 * nr..],
                            len,
                            dots32,
                        );
                        for (d64, &d32) in dots64[..r * nr].iter_mut().zip(&dots32[..r * nr]) {
                            *d64 += i64::from(d32);
                        }
                        k0 += len;
                    }
                    Dots::I64(dots64)
                };
                let offset = (i - row0) * out_stride + (j0 - col0);
                let row_sums = if a.row_sums.is_empty() {
                    &[][..]
                } else {
                    &a.row_sums[i - a.first..i - a.first + r]
                };
                epilogue.write(
                    i,
                    j0,
                    r,
                    cols,
                    dots,
                    nr,
                    row_sums,
                    &mut out[offset..],
                    out_stride,
                );
                i += r;
            }
        }
        block_start = block_end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::Portable;

    /// The split decision on the calls `is_parallel`'s measurements name,
    /// and on the thread tests' shapes. Arguments are (m, n, kp).
    #[cfg(all(feature = "parallel", target_arch = "x86_64"))]
    #[test]
    fn short_calls_stay_on_one_thread() {
        use crate::gemm::x86_64::{Amx, Avx2, Avx512Vnni, AvxVnni};
        // 7 µs and 5 µs calls: a second thread lost there.
        assert!(!is_parallel::<Amx>(16, 512, 512, 2));
        assert!(!is_parallel::<Avx512Vnni>(16, 256, 256, 2));
        assert!(!is_parallel::<AvxVnni>(16, 256, 256, 2));
        // A GEMV streaming 1 MiB of weights, and 21–76 µs of arithmetic.
        for threads in [2, 4] {
            assert!(is_parallel::<Amx>(1, 1024, 1024, threads));
            assert!(is_parallel::<Amx>(48, 512, 512, threads));
            assert!(is_parallel::<Avx512Vnni>(16, 512, 512, threads));
            assert!(is_parallel::<Avx2>(16, 256, 256, threads));
            assert!(is_parallel::<Portable>(16, 256, 256, threads));
        }
        assert!(!is_parallel::<Avx2>(16, 256, 256, 1));
        // Below PARALLEL_MIN_MACS whatever the kernel.
        assert!(!is_parallel::<Portable>(16, 256, 255, 2));
        // The fastest kernel on the thread tests' shapes.
        assert!(is_parallel::<Amx>(257, 150, 260, 2));
        assert!(is_parallel::<Amx>(96, 150, 700, 2));
        assert!(is_parallel::<Amx>(2, 1009, 1028, 2));
    }

    /// A single AMX row group in L2 is cut into row tasks of 9 or more
    /// rows; beyond L2, with 8 rows or fewer, and for other kernels, it is
    /// split by panels. Arguments are (m, n, kp, threads).
    #[cfg(all(feature = "parallel", target_arch = "x86_64"))]
    #[test]
    fn single_amx_row_groups_split_into_tiles() {
        use crate::gemm::x86_64::{Amx, Avx512Vnni};
        assert_eq!(rows_per_task::<Amx>(32, 1024, 1024, 2), Some(16));
        assert_eq!(rows_per_task::<Amx>(24, 1024, 1024, 2), Some(12));
        assert_eq!(rows_per_task::<Amx>(18, 1024, 1024, 2), Some(9));
        assert_eq!(rows_per_task::<Amx>(32, 1024, 1024, 4), Some(11));
        assert_eq!(rows_per_task::<Amx>(30, 600, 600, 4), Some(10));
        assert_eq!(rows_per_task::<Amx>(17, 1024, 1024, 2), None);
        assert_eq!(rows_per_task::<Amx>(32, 2048, 2048, 2), None);
        assert_eq!(rows_per_task::<Avx512Vnni>(8, 1024, 1024, 2), None);
    }

    /// Zeroed, of the right length, whether the pool zeroes it in row
    /// ranges (the last one shorter) or the caller does.
    #[test]
    fn new_outputs_are_zeroed() {
        let shapes = [
            (0, 5, 3),
            (3, 0, 3),
            (1, 4, 4),
            (77, 301, 64),
            (300, 257, 80),
        ];
        for threads in 1..=3 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                for (m, n, kp) in shapes {
                    let out = new_output::<Portable, f32>(m, n, kp).unwrap();
                    assert_eq!(out.len(), m * n);
                    assert!(out.iter().all(|&v| v == 0.0), "{m}×{n}, {threads} threads");
                    let out = new_output::<Portable, i8>(m, n, kp).unwrap();
                    assert_eq!(out.len(), m * n);
                    assert!(out.iter().all(|&v| v == 0), "{m}×{n}, {threads} threads");
                }
            });
        }
    }
}
