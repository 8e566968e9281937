//! Exact int8 GEMM: kernel choice, packing and the blocked loop.
//!
//! The layer asks for `Σ_k x'[i,k]·W[k,j]` over packed weights; this module
//! picks the fastest kernel the CPU supports (checked at run time), packs
//! the activations for it and runs the blocked loop of `driver.rs`, handing
//! each tile to the layer's output stage. `reference.rs` is the oracle every
//! kernel is tested against.
//!
//! In the order they are preferred:
//!
//! | kernel | instructions | activations | tile (MR×NR) |
//! |---|---|---|---|
//! | `x86_64-u8i8i32-amx` | `tdpbusd` tiles (≤ 8 rows: as avx512vnni) | full range (stored `x + 128`) | 32×32 |
//! | `x86_64-u8i8i32-avx512vnni` | `vpdpbusd` zmm | full range (stored `x + 128`) | 8×32 |
//! | `x86_64-u8i8i32-avxvnni` | `vpdpbusd` ymm | full range (stored `x + 128`) | 6×16 |
//! | `x86_64-u7i8i32-avx2` | `vpmaddubsw` + `vpmaddwd` | 7-bit input ranges only | 4×16 |
//! | `x86_64-i8i8i32-avx2` | `vpmovsxbw` + `vpmaddwd` | full range | 6×16 |
//! | `portable-i8i8i32` | plain Rust | full range | 4×16 |
//!
//! The environment variable [`KERNEL_ENV`], read when a layer is built,
//! names a kernel to use instead (`portable`, `avx2`, `avx2-u7`, `avxvnni`,
//! `avx512vnni`, `amx`, or a full name); a kernel this CPU lacks, or the 7-bit
//! kernel for a full-range layer, falls back to the automatic choice.
//! [`QuantizedLinear::with_kernel`](crate::QuantizedLinear::with_kernel)
//! does the same for one layer, with an error instead of a fallback.

mod aligned;
mod cache;
pub(crate) mod driver;
pub(crate) mod kernel;
pub(crate) mod pack;
mod portable;
pub mod reference;
#[cfg(target_arch = "x86_64")]
mod x86_64;

use std::ops::Range;

use ndarray::{ArrayBase, Data, Ix2};

use crate::elem::{ElemKind, QuantElem};
use crate::error::QuantError;
use crate::params::QuantRange;
use driver::Epilogue;
use kernel::{ADomain, Kernel};
use pack::{OutOfRange, PackedWeights};
use portable::Portable;

/// Environment variable read when a layer is built: a kernel name
/// (`portable`, `avx2`, `avx2-u7`, `avxvnni`, `avx512vnni`, `amx`, or a full
/// name)
/// to use instead of the fastest; unset, empty or unknown picks the
/// fastest.
pub const KERNEL_ENV: &str = "QLINEAR_KERNEL";

/// Names of every kernel this CPU can run, fastest first.
///
/// ```
/// assert!(qlinear::available_kernels().contains(&"portable-i8i8i32"));
/// ```
pub fn available_kernels() -> Vec<&'static str> {
    KernelChoice::available()
        .into_iter()
        .map(KernelChoice::name)
        .collect()
}

/// Name of the kernel a full-range int8 layer built now would run, e.g.
/// `x86_64-i8i8i32-avx2` or `portable-i8i8i32`.
///
/// ```
/// assert!(qlinear::kernel_name().contains("i8i32"));
/// ```
pub fn kernel_name() -> &'static str {
    KernelChoice::select(QuantRange::INT8).name()
}

/// A kernel a layer runs, holding its CPU-support token.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KernelChoice {
    Portable(Portable),
    #[cfg(target_arch = "x86_64")]
    Avx2(x86_64::Avx2),
    #[cfg(target_arch = "x86_64")]
    Avx2U7(x86_64::Avx2U7),
    #[cfg(target_arch = "x86_64")]
    AvxVnni(x86_64::AvxVnni),
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni(x86_64::Avx512Vnni),
    #[cfg(target_arch = "x86_64")]
    Amx(x86_64::Amx),
}

/// Calls `$body` with `$k` bound to the kernel token inside `$choice`.
macro_rules! with_kernel {
    ($choice:expr, $k:ident => $body:expr) => {
        match $choice {
            KernelChoice::Portable($k) => $body,
            #[cfg(target_arch = "x86_64")]
            KernelChoice::Avx2($k) => $body,
            #[cfg(target_arch = "x86_64")]
            KernelChoice::Avx2U7($k) => $body,
            #[cfg(target_arch = "x86_64")]
            KernelChoice::AvxVnni($k) => $body,
            #[cfg(target_arch = "x86_64")]
            KernelChoice::Avx512Vnni($k) => $body,
            #[cfg(target_arch = "x86_64")]
            KernelChoice::Amx($k) => $body,
        }
    };
}

impl KernelChoice {
    /// Every kernel this CPU can run, fastest first.
    pub(crate) fn available() -> Vec<KernelChoice> {
        #[allow(unused_mut)]
        let mut kernels = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            kernels.extend(x86_64::Amx::new().map(KernelChoice::Amx));
            kernels.extend(x86_64::Avx512Vnni::new().map(KernelChoice::Avx512Vnni));
            kernels.extend(x86_64::AvxVnni::new().map(KernelChoice::AvxVnni));
            kernels.extend(x86_64::Avx2U7::new().map(KernelChoice::Avx2U7));
            kernels.extend(x86_64::Avx2::new().map(KernelChoice::Avx2));
        }
        kernels.push(KernelChoice::Portable(Portable));
        kernels
    }

    /// The kernel called `name` (short or full), if this CPU can run it.
    pub(crate) fn by_name(name: &str) -> Option<KernelChoice> {
        let full = match name {
            "portable" => "portable-i8i8i32",
            "avx2" => "x86_64-i8i8i32-avx2",
            "avx2-u7" => "x86_64-u7i8i32-avx2",
            "avxvnni" => "x86_64-u8i8i32-avxvnni",
            "avx512vnni" => "x86_64-u8i8i32-avx512vnni",
            "amx" => "x86_64-u8i8i32-amx",
            other => other,
        };
        KernelChoice::available()
            .into_iter()
            .find(|k| k.name() == full)
    }

    /// Whether the kernel is exact for activations within `input_range`.
    pub(crate) fn accepts(self, input_range: QuantRange) -> bool {
        fn domain_of<K: Kernel>(_: K) -> ADomain {
            K::DOMAIN
        }
        let width = i64::from(input_range.qmax) - i64::from(input_range.qmin);
        with_kernel!(self, k => domain_of(k)) != ADomain::U7 || width <= 127
    }

    /// The kernel [`KERNEL_ENV`] names, if this CPU can run it. Layers read
    /// it once, when they are built, and keep it through their builders.
    pub(crate) fn from_env() -> Option<KernelChoice> {
        KernelChoice::by_name(&std::env::var(KERNEL_ENV).unwrap_or_default())
    }

    /// The fastest kernel for activations declared within `input_range`,
    /// unless [`KERNEL_ENV`] names another that fits.
    pub(crate) fn select(input_range: QuantRange) -> KernelChoice {
        KernelChoice::select_with(KernelChoice::from_env(), input_range)
    }

    /// `forced` if it fits `input_range`, else the fastest kernel that does.
    pub(crate) fn select_with(
        forced: Option<KernelChoice>,
        input_range: QuantRange,
    ) -> KernelChoice {
        if let Some(k) = forced.filter(|k| k.accepts(input_range)) {
            return k;
        }
        let candidates = KernelChoice::available().into_iter();
        let mut fitting = candidates.filter(|k| k.accepts(input_range));
        fitting.next().unwrap_or(KernelChoice::Portable(Portable))
    }

    /// The kernel's name.
    pub(crate) fn name(self) -> &'static str {
        fn name_of<K: Kernel>(_: K) -> &'static str {
            K::NAME
        }
        with_kernel!(self, k => name_of(k))
    }

    /// `(NR, KG)`: the weight layout the kernel streams.
    pub(crate) fn layout(self) -> (usize, usize) {
        fn layout_of<K: Kernel>(_: K) -> (usize, usize) {
            (K::NR, K::KG)
        }
        with_kernel!(self, k => layout_of(k))
    }

    /// The shift `x' = x + shift` that moves activations of type `kind`
    /// declared within `range` into the kernel's domain.
    pub(crate) fn shift(self, kind: ElemKind, range: QuantRange) -> i32 {
        fn domain_of<K: Kernel>(_: K) -> ADomain {
            K::DOMAIN
        }
        match (with_kernel!(self, k => domain_of(k)), kind) {
            (ADomain::I8, ElemKind::Int8) | (ADomain::U8, ElemKind::Uint8) => 0,
            (ADomain::I8, ElemKind::Uint8) => -128,
            (ADomain::U8, ElemKind::Int8) => 128,
            (ADomain::U7, _) => -range.qmin,
        }
    }

    /// [`Kernel::vectorized`] of the kernel.
    #[inline]
    pub(crate) fn vectorized<R>(self, f: impl FnOnce() -> R) -> R {
        with_kernel!(self, k => k.vectorized(f))
    }

    /// [`Kernel::PASS_SPLIT_ELEMENTS`] of the kernel.
    #[cfg(feature = "parallel")]
    pub(crate) fn pass_split_elements(self) -> usize {
        fn of<K: Kernel>(_: K) -> usize {
            K::PASS_SPLIT_ELEMENTS
        }
        with_kernel!(self, k => of(k))
    }

    /// A zeroed output for [`execute`](Self::execute) of `m` rows into `w`'s
    /// columns; see [`driver::new_output`].
    pub(crate) fn new_output<O: Copy + Default + Send + Sync>(
        self,
        m: usize,
        w: &PackedWeights,
    ) -> Result<Vec<O>, QuantError> {
        fn go<K: Kernel, O: Copy + Default + Send + Sync>(
            _: K,
            m: usize,
            w: &PackedWeights,
        ) -> Result<Vec<O>, QuantError> {
            driver::new_output::<K, O>(m, w.n(), w.kp())
        }
        with_kernel!(self, k => go(k, m, w))
    }

    /// Packs `x` for the kernel and computes every output through
    /// `epilogue` into `out` (row-major m×n). Activations outside
    /// `[lo, hi]` are refused.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn execute<T, S, O, E>(
        self,
        w: &PackedWeights,
        x: &ArrayBase<S, Ix2>,
        shift: i32,
        bounds: (i32, i32),
        with_row_sums: bool,
        epilogue: &E,
        out: &mut [O],
    ) -> Result<(), OutOfRange>
    where
        T: QuantElem,
        S: Data<Elem = T>,
        O: Copy + Default + Send,
        E: Epilogue<O>,
    {
        fn go<K, T, S, O, E>(
            k: K,
            w: &PackedWeights,
            x: &ArrayBase<S, Ix2>,
            shift: i32,
            bounds: (i32, i32),
            with_row_sums: bool,
            epilogue: &E,
            out: &mut [O],
        ) -> Result<(), OutOfRange>
        where
            K: Kernel,
            T: QuantElem,
            S: Data<Elem = T>,
            O: Copy + Default + Send,
            E: Epilogue<O>,
        {
            k.vectorized(|| pack::check_range(x, bounds))?;
            let m = x.nrows();
            let x = x.view();
            let pack =
                |rows: Range<usize>, stride: usize, data: &mut [K::A], row_sums: &mut [i64]| {
                    pack::pack_rows_into::<K, T>(&x, rows, stride, shift, data, row_sums)
                };
            driver::run(k, w, &pack, (m, with_row_sums), epilogue, out);
            Ok(())
        }
        with_kernel!(self, k => go(k, w, x, shift, bounds, with_row_sums, epilogue, out))
    }
}
