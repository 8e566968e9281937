//! `x86_64-u8i8i32-amx`: exact int8 with AMX tiles (`tdpbusd`).
//!
//! `tdpbusd` multiplies a 16×64 tile of unsigned bytes by a 16×(16·4) tile
//! of signed bytes in the VNNI layout and adds each group of four products
//! to a 32-bit element of a 16×16 accumulator tile, with no intermediate
//! saturation — the arithmetic of `vpdpbusd`, 1 024 products per
//! instruction. Activations are packed as `x + 128` in `[0, 255]`, so every
//! product lies in `[−32 640, 32 385]` and a tile sums at most `MAX_DEPTH`
//! of them exactly, as in `avx512_vnni.rs`.
//!
//! Tile: 32 rows × 32 columns in four accumulator tiles (tmm4–7), fed by two
//! activation tiles (tmm0–1, 16 rows × 64 bytes of packed activations) and
//! two weight tiles (tmm2–3, 16 k-quads × 64 bytes of one panel half). The
//! weight panels are the AVX-512 VNNI kernel's (32 columns, k-quads), so
//! a tile of at most 8 rows — the GEMV case, where 16-row tiles would be
//! mostly padding — and the last `kp mod 64` values of the inner dimension
//! are computed by that kernel instead.
//!
//! The tile configuration is loaded once per call of the blocked loop
//! (`compute` runs inside [`Amx::with_tiles_configured`]), not once per
//! tile: `ldtilecfg` and `tilerelease` cost about as much as a
//! 32×32×512 tile's arithmetic, and hoisting them measured 2–18 % faster
//! (largest on short inner dimensions). A tile run on its own configures
//! and releases the tiles itself.
//!
//! Linux must grant the process the tile state first
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`); the token is
//! only issued once it has. The request is made once, by [`Amx::new`],
//! which the crate calls only for a layer that is to run AMX (chosen
//! automatically, by `QLINEAR_KERNEL` or by `with_kernel`): listing the
//! kernels ([`Amx::supported`]) reads CPUID and XCR0 and asks for nothing,
//! so a process that never runs AMX never enlarges its signal frames.

use std::arch::asm;
use std::cell::Cell;
use std::sync::OnceLock;

use super::Avx512Vnni;
use crate::gemm::driver::{stamp_compute, Stamped};
use crate::gemm::kernel::{check_tile_bounds, max_depth, ADomain, Kernel};

/// The AMX-INT8 kernel. Obtain it with [`Amx::new`].
#[derive(Debug, Clone, Copy)]
pub struct Amx {
    /// The AVX-512 VNNI kernel for small tiles and depth tails (every AMX
    /// CPU has it; holding its token proves it).
    vnni: Avx512Vnni,
}

/// Linux's answer to the tile permission request, once made.
static PERMISSION: OnceLock<bool> = OnceLock::new();

impl Amx {
    /// The kernel, if [`Amx::supported`] and Linux grants this process the
    /// tile state, which is asked for on the first call only.
    pub fn new() -> Option<Amx> {
        let vnni = Avx512Vnni::new()?;
        let granted = cpu_and_os_support() && *PERMISSION.get_or_init(request_tile_permission);
        granted.then_some(Amx { vnni })
    }

    /// Whether this CPU has AMX-TILE, AMX-INT8 and the AVX-512 VNNI
    /// kernel's features, the OS enables tile state, and this process has
    /// not been refused the permission: without asking for it.
    pub fn supported() -> bool {
        Avx512Vnni::new().is_some() && cpu_and_os_support() && PERMISSION.get() != Some(&false)
    }

    /// Whether the tile permission has been asked for in this process.
    pub fn permission_requested() -> bool {
        PERMISSION.get().is_some()
    }
}

/// CPUID.(EAX=7, ECX=0):EDX bits 24 (AMX-TILE) and 25 (AMX-INT8), and the
/// OS's tile state in XCR0; Linux only, where the permission request is
/// implemented. Read once: CPUID traps to the hypervisor in a VM. Callers
/// hold an AVX-512 VNNI token first, so CPUID has leaf 7.
fn cpu_and_os_support() -> bool {
    static SUPPORT: OnceLock<bool> = OnceLock::new();
    *SUPPORT.get_or_init(|| {
        let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
        let cpu_has_amx = leaf7.edx & (1 << 24) != 0 && leaf7.edx & (1 << 25) != 0;
        cfg!(target_os = "linux") && cpu_has_amx && os_enables_tile_state()
    })
}

/// XCR0 bits 17 (XTILECFG) and 18 (XTILEDATA): the OS saves and restores
/// tile state, the precondition of Linux's per-process permission.
fn os_enables_tile_state() -> bool {
    // CPUID.1:ECX bit 27 (OSXSAVE): the OS has enabled XGETBV.
    if std::arch::x86_64::__cpuid(1).ecx & (1 << 27) == 0 {
        return false;
    }
    let xcr0: u32;
    // SAFETY: with OSXSAVE set (checked above) XGETBV with ECX = 0 reads
    // XCR0 and cannot fault; it touches no memory and only writes EAX and
    // EDX.
    unsafe {
        asm!(
            "xgetbv",
            in("ecx") 0,
            out("eax") xcr0,
            out("edx") _,
            options(nomem, nostack, preserves_flags)
        );
    }
    let tile_state = (1 << 17) | (1 << 18);
    xcr0 & tile_state == tile_state
}

#[cfg(target_os = "linux")]
fn request_tile_permission() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) asks the
    // kernel to let this process use AMX tile data; it reads and writes no
    // user memory, and the syscall clobbers only rax, rcx and r11.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        );
    }
    ret == 0
}

#[cfg(not(target_os = "linux"))]
fn request_tile_permission() -> bool {
    false
}

const NR: usize = 32;
/// Values of the inner dimension per tile step.
const K_STEP: usize = 64;
/// Rows of one activation tile.
const TILE_ROWS: usize = 16;

/// `ldtilecfg`'s 64-byte operand: palette 1, tiles 0–7 of 16 rows × 64
/// bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

static CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

// SAFETY: `Amx` is only constructed after detecting AMX-TILE and AMX-INT8
// (and holding an AVX-512 VNNI token) and after the OS granted tile state;
// `tile` checks every slice length before the unsafe body runs.
unsafe impl Kernel for Amx {
    type A = u8;
    const NAME: &'static str = "x86_64-u8i8i32-amx";
    const MR: usize = 2 * TILE_ROWS;
    const NR: usize = NR;
    const KG: usize = 4;
    const DOMAIN: ADomain = ADomain::U8;
    const MAX_DEPTH: usize = max_depth(255, 128, 4);
    const MACS_PER_NS: usize = 600;
    // Its passes run on AVX-512: see `dynamic::splits_passes`.
    const PASS_SPLIT_ELEMENTS: usize = 1 << 16;
    // Its tile is two 16-row tiles, and 9 to 16 rows still run on one
    // (8 or fewer go to AVX-512 VNNI).
    const MIN_SPLIT_ROWS: usize = Avx512Vnni::MR + 1;

    #[inline]
    fn pack_a(v: i32) -> u8 {
        v as u8
    }

    /// A streaming tile prefetches the weights 8 KiB ahead, in AMX tiles as
    /// in the AVX-512 VNNI kernel's: batches of 16–64 rows over weights
    /// beyond L2 are otherwise bound by the hardware prefetchers.
    fn tile<const STREAMING: bool>(
        &self,
        rows: usize,
        a: &[u8],
        a_stride: usize,
        b: &[i8],
        kp: usize,
        dots: &mut [i32],
    ) {
        check_tile_bounds::<Self>(rows, a.len(), a_stride, b.len(), kp, dots.len());
        if rows <= Avx512Vnni::MR {
            return self.vnni.tile::<STREAMING>(rows, a, a_stride, b, kp, dots);
        }
        // Whole activation tiles are loaded: the rows past `rows` are the
        // zero padding `PackedRows::packed` adds up to a multiple of MR.
        let tiles = rows.div_ceil(TILE_ROWS);
        let loaded = tiles * TILE_ROWS;
        assert!(
            a.len() >= (loaded - 1) * a_stride + kp,
            "activation rows not padded to whole tiles"
        );
        assert!(dots.len() >= loaded * NR, "tile output too short");
        let main = kp - kp % K_STEP;
        let configured = TILES_CONFIGURED.get();
        // SAFETY: the token proves AMX and the tile permission; the tiles
        // are configured here unless `with_tiles_configured` already did
        // on this thread (it clears the flag when it releases them). Activation
        // tile t, step k0 reads rows 16t..16t+16 at bytes k0..k0+64 < kp of
        // `a` (checked above); weight tiles read 16 k-quads of 64 bytes at
        // offsets < kp·NR of `b` (prefetches are hints, and read nothing);
        // the stores write `loaded` rows of NR i32 into `dots` (checked
        // above).
        unsafe {
            if !configured {
                configure_tiles();
            }
            tile_amx(
                STREAMING,
                tiles == 2,
                a.as_ptr(),
                a_stride,
                b.as_ptr(),
                main,
                dots.as_mut_ptr(),
            );
            if !configured {
                release_tiles();
            }
        };
        if main < kp {
            // The last kp mod 64 values, 8 rows at a time, added in.
            let mut tail = [0i32; 8 * NR];
            for r0 in (0..rows).step_by(Avx512Vnni::MR) {
                let r = (rows - r0).min(Avx512Vnni::MR);
                let a_tail = &a[r0 * a_stride + main..];
                self.vnni
                    .tile::<false>(r, a_tail, a_stride, &b[main * NR..], kp - main, &mut tail);
                for (d, t) in dots[r0 * NR..(r0 + r) * NR].iter_mut().zip(&tail) {
                    *d += t;
                }
            }
        }
    }
}

// Its blocked loop and passes compiled for its instruction set.
impl Stamped for Amx {
    stamp_compute!(
        "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni",
        around = Self::with_tiles_configured
    );
}

thread_local! {
    /// Whether this thread is inside [`Amx::with_tiles_configured`], so
    /// that the tile configuration is loaded and stays loaded (Linux saves
    /// and restores it with the thread) until it returns.
    static TILES_CONFIGURED: Cell<bool> = const { Cell::new(false) };
}

impl Amx {
    /// Runs `run` (one call's blocked loop) with the tiles configured once,
    /// instead of once per tile: `ldtilecfg` and `tilerelease` cost about
    /// as much as a 32×32×512 tile's arithmetic.
    fn with_tiles_configured(run: impl FnOnce()) {
        if TILES_CONFIGURED.get() {
            return run();
        }
        // SAFETY: only `Amx::compute` calls this, holding the token that
        // proves AMX and the tile permission.
        unsafe { configure_tiles() };
        TILES_CONFIGURED.set(true);
        // Released even if `run` unwinds, so the flag never outlives the
        // configuration.
        struct Release;
        impl Drop for Release {
            fn drop(&mut self) {
                TILES_CONFIGURED.set(false);
                // SAFETY: as above; the tiles were configured by this thread.
                unsafe { release_tiles() };
            }
        }
        let _release = Release;
        run()
    }
}

/// Loads [`CONFIG`].
///
/// # Safety
///
/// AMX must be usable by this thread.
#[inline]
unsafe fn configure_tiles() {
    // SAFETY: forwarded; `CONFIG` is a valid palette-1 configuration.
    unsafe { asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly)) };
}

/// Returns the tiles to their initial state, so that context switches need
/// not save them.
///
/// # Safety
///
/// AMX must be usable by this thread.
#[inline]
unsafe fn release_tiles() {
    // SAFETY: forwarded.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// `dots` (32 i32 per row) = the tile products over the first `main`
/// (a multiple of 64) values of the inner dimension, for 16 or 32 rows.
///
/// # Safety
///
/// AMX must be usable by this thread with [`CONFIG`] loaded, and the
/// pointers valid for the accesses described in [`Amx::tile`].
unsafe fn tile_amx(
    prefetch: bool,
    two_tiles: bool,
    a: *const u8,
    a_stride: usize,
    b: *const i8,
    main: usize,
    dots: *mut i32,
) {
    let b_stride = 4 * NR; // bytes per k-quad of a panel
    let c_stride = 4 * NR; // bytes per row of `dots`
                           // SAFETY (whole body): forwarded from `tile`; each load and store stays
                           // within the bounds stated there.
    unsafe {
        asm!(
            "tilezero tmm4",
            "tilezero tmm5",
            "tilezero tmm6",
            "tilezero tmm7",
            options(nostack, nomem)
        );
        let a1 = a.add(TILE_ROWS * a_stride);
        for k0 in (0..main).step_by(K_STEP) {
            let w = b.add(k0 / 4 * b_stride);
            if prefetch {
                // The step's 2 KiB of weights, 8 KiB (4 steps) ahead.
                for line in 0..K_STEP / 4 * b_stride / 64 {
                    super::prefetch_weights(w.wrapping_add(line * 64));
                }
            }
            asm!(
                "tileloadd tmm2, [{w} + {ws} * 1]",
                "tileloadd tmm3, [{w2} + {ws} * 1]",
                "tileloadd tmm0, [{x} + {xs} * 1]",
                "tdpbusd tmm4, tmm0, tmm2",
                "tdpbusd tmm5, tmm0, tmm3",
                w = in(reg) w,
                w2 = in(reg) w.add(64),
                ws = in(reg) b_stride,
                x = in(reg) a.add(k0),
                xs = in(reg) a_stride,
                options(nostack, readonly)
            );
            if two_tiles {
                asm!(
                    "tileloadd tmm1, [{x} + {xs} * 1]",
                    "tdpbusd tmm6, tmm1, tmm2",
                    "tdpbusd tmm7, tmm1, tmm3",
                    x = in(reg) a1.add(k0),
                    xs = in(reg) a_stride,
                    options(nostack, readonly)
                );
            }
        }
        asm!(
            "tilestored [{c} + {cs} * 1], tmm4",
            "tilestored [{c2} + {cs} * 1], tmm5",
            c = in(reg) dots,
            c2 = in(reg) dots.add(16),
            cs = in(reg) c_stride,
            options(nostack)
        );
        if two_tiles {
            let lower = dots.add(TILE_ROWS * NR);
            asm!(
                "tilestored [{c} + {cs} * 1], tmm6",
                "tilestored [{c2} + {cs} * 1], tmm7",
                c = in(reg) lower,
                c2 = in(reg) lower.add(16),
                cs = in(reg) c_stride,
                options(nostack)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tile computed outside `compute` configures and releases the tiles
    /// itself; one inside `with_tiles_configured` uses its configuration.
    /// Both equal the plain sum, and the flag is clear afterwards.
    #[test]
    fn tiles_are_exact_with_and_without_the_per_call_configuration() {
        let Some(amx) = Amx::new() else {
            eprintln!("no AMX here: nothing to check");
            return;
        };
        let (rows, kp) = (2 * TILE_ROWS - 3, 2 * K_STEP + 12);
        let a: Vec<u8> = (0..2 * TILE_ROWS * kp)
            .map(|i| (i * 37 % 256) as u8)
            .collect();
        let b: Vec<i8> = (0..kp * NR).map(|i| (i * 91 % 256) as u8 as i8).collect();
        // (17) with KG = 4: W[k, c] at (k / 4)·NR·4 + c·4 + k % 4.
        let expected: Vec<i32> = (0..rows * NR)
            .map(|e| {
                let (r, c) = (e / NR, e % NR);
                (0..kp)
                    .map(|k| {
                        i32::from(a[r * kp + k]) * i32::from(b[(k / 4) * NR * 4 + c * 4 + k % 4])
                    })
                    .sum()
            })
            .collect();
        let mut alone = vec![i32::MIN; 2 * TILE_ROWS * NR];
        amx.tile::<false>(rows, &a, kp, &b, kp, &mut alone);
        assert_eq!(alone[..rows * NR], expected[..]);
        let mut inside = vec![i32::MIN; 2 * TILE_ROWS * NR];
        Amx::with_tiles_configured(|| {
            assert!(TILES_CONFIGURED.get());
            amx.tile::<false>(rows, &a, kp, &b, kp, &mut inside);
        });
        assert!(!TILES_CONFIGURED.get());
        assert_eq!(inside[..rows * NR], expected[..]);
    }
}
