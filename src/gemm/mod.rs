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
//! kernel for a full-range layer, falls back to the automatic choice (a
//! name this CPU cannot honour is reported once on stderr; see
//! [`forced_kernel`]).
//! [`QuantizedLinear::with_kernel`](crate::QuantizedLinear::with_kernel)
//! does the same for one layer, with an error instead of a fallback.

mod aligned;
mod cache;
pub(crate) mod driver;
pub(crate) mod kernel;
pub(crate) mod pack;
mod portable;
pub mod reference;
mod scratch;
#[cfg(target_arch = "x86_64")]
mod x86_64;

/// Not part of the API: the kernels' geometry and the driver's decisions
/// on this host, read by the crate's own tests instead of copies of its
/// constants. May change in any release.
#[doc(hidden)]
#[path = "introspect.rs"]
pub mod __introspect;

use std::ops::Range;
use std::sync::{Mutex, PoisonError};

use ndarray::{ArrayBase, Data, Ix2};

use crate::elem::{ElemKind, QuantElem};
use crate::error::QuantError;
use crate::params::QuantRange;
use driver::{Epilogue, Stamped};
use kernel::{ADomain, Kernel};
use pack::{OutOfRange, PackedWeights};
use portable::Portable;

/// Environment variable naming the kernel layers run instead of the
/// fastest: `portable`, `avx2`, `avx2-u7`, `avxvnni`, `avx512vnni`, `amx`,
/// or a full name as [`available_kernels`] lists them.
///
/// Read when a layer is built (its builders keep what it read); whatever it
/// says, no layer runs an instruction this CPU lacks:
///
/// - unset or empty: the automatic choice, the fastest kernel exact for the
///   layer's input range;
/// - a kernel this CPU runs: that kernel, for every layer it is exact for;
///   a layer it is not exact for (`avx2-u7` with a full-range input) takes
///   the automatic choice, so that one setting serves a whole program;
/// - a kernel this CPU cannot run (or, for `amx`, whose tile state the OS
///   refuses), or no kernel at all: the automatic choice, and one line on
///   stderr per process and value, so that a typo or a missing instruction
///   set does not go unnoticed. [`forced_kernel`] gives a program the same
///   answer.
///
/// `with_kernel` ([`QuantizedLinear`](crate::QuantizedLinear::with_kernel),
/// [`DynamicLinear`](crate::DynamicLinear::with_kernel)) pins a kernel for
/// one layer instead, with an error rather than a fallback.
pub const KERNEL_ENV: &str = "QLINEAR_KERNEL";

/// Names of every kernel this CPU can run, fastest first.
///
/// Listing asks the OS for nothing: AMX is listed when the CPU has it and
/// the OS enables its tile state, and Linux's per-process tile permission
/// is requested only when a layer first selects AMX (if refused, AMX is no
/// longer listed and layers take the next kernel).
///
/// ```
/// assert!(qlinear::available_kernels().contains(&"portable-i8i8i32"));
/// ```
pub fn available_kernels() -> Vec<&'static str> {
    KINDS
        .into_iter()
        .filter(|k| k.supported())
        .map(KernelKind::name)
        .collect()
}

/// Name of the kernel a full-range int8 layer built now would run, e.g.
/// `x86_64-i8i8i32-avx2` or `portable-i8i8i32`. (On an AMX CPU this asks
/// for the tile permission, as building that layer would.)
///
/// ```
/// assert!(qlinear::kernel_name().contains("i8i32"));
/// ```
pub fn kernel_name() -> &'static str {
    KernelChoice::select(QuantRange::INT8).name()
}

/// What [`KERNEL_ENV`] forces, checked as building a layer now would check
/// it: `Ok(None)` when it is unset or empty, `Ok(Some(name))` (the full
/// name) when it names a kernel this CPU runs, and
/// [`QuantError::KernelUnavailable`] when it names no kernel or one this CPU
/// cannot run, in which case layers take the automatic choice.
///
/// ```
/// match qlinear::gemm::forced_kernel() {
///     Ok(Some(name)) => assert!(qlinear::available_kernels().contains(&name)),
///     Ok(None) => {}
///     Err(e) => eprintln!("ignored: {e}"),
/// }
/// ```
pub fn forced_kernel() -> Result<Option<&'static str>, QuantError> {
    match EnvRequest::read() {
        EnvRequest::Unset => Ok(None),
        EnvRequest::Kernel(k) => Ok(Some(k.name())),
        EnvRequest::Unknown(name) | EnvRequest::Unavailable(name, _) => {
            Err(QuantError::KernelUnavailable {
                name,
                available: available_kernels(),
            })
        }
    }
}

/// What [`KERNEL_ENV`] holds, resolved against this CPU.
enum EnvRequest {
    /// Unset or empty.
    Unset,
    /// A kernel this CPU runs.
    Kernel(KernelChoice),
    /// A value that names no kernel.
    Unknown(String),
    /// A kernel this CPU cannot run.
    Unavailable(String, KernelKind),
}

impl EnvRequest {
    fn read() -> EnvRequest {
        let value = std::env::var_os(KERNEL_ENV).unwrap_or_default();
        let value = value.to_string_lossy().into_owned();
        if value.is_empty() {
            return EnvRequest::Unset;
        }
        match KernelKind::by_name(&value) {
            None => EnvRequest::Unknown(value),
            Some(kind) => match kind.token() {
                Some(k) => EnvRequest::Kernel(k),
                None => EnvRequest::Unavailable(value, kind),
            },
        }
    }
}

/// Prints `message()` on stderr unless it was printed for `value` before
/// in this process: layers are built often, a misconfiguration needs
/// saying once.
fn warn_once(value: &str, message: impl FnOnce() -> String) {
    static WARNED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(PoisonError::into_inner);
    if !warned.iter().any(|v| v == value) {
        warned.push(value.to_owned());
        eprintln!("{}", message());
    }
}

/// A kernel compiled into the crate, whether or not this CPU runs it:
/// what is known without its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KernelKind {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx2U7,
    #[cfg(target_arch = "x86_64")]
    AvxVnni,
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
    #[cfg(target_arch = "x86_64")]
    Amx,
}

/// Every kernel compiled in, fastest first: the order the automatic choice
/// tries them in.
#[cfg(target_arch = "x86_64")]
const KINDS: [KernelKind; 6] = [
    KernelKind::Amx,
    KernelKind::Avx512Vnni,
    KernelKind::AvxVnni,
    KernelKind::Avx2U7,
    KernelKind::Avx2,
    KernelKind::Portable,
];
#[cfg(not(target_arch = "x86_64"))]
const KINDS: [KernelKind; 1] = [KernelKind::Portable];

/// Evaluates `$body` with `$K` an alias of the kernel type of `$kind`.
macro_rules! with_kernel_type {
    ($kind:expr, $K:ident => $body:expr) => {
        match $kind {
            KernelKind::Portable => {
                type $K = Portable;
                $body
            }
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2 => {
                type $K = x86_64::Avx2;
                $body
            }
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2U7 => {
                type $K = x86_64::Avx2U7;
                $body
            }
            #[cfg(target_arch = "x86_64")]
            KernelKind::AvxVnni => {
                type $K = x86_64::AvxVnni;
                $body
            }
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512Vnni => {
                type $K = x86_64::Avx512Vnni;
                $body
            }
            #[cfg(target_arch = "x86_64")]
            KernelKind::Amx => {
                type $K = x86_64::Amx;
                $body
            }
        }
    };
}
pub(crate) use with_kernel_type;

impl KernelKind {
    /// The kernel called `name`, short or full.
    pub(crate) fn by_name(name: &str) -> Option<KernelKind> {
        KINDS
            .into_iter()
            .find(|k| k.name() == name || k.short_name() == name)
    }

    /// The full name, `arch-AiBiAcc-isa`.
    pub(crate) fn name(self) -> &'static str {
        with_kernel_type!(self, K => K::NAME)
    }

    /// The name [`KERNEL_ENV`] and `with_kernel` also accept.
    pub(crate) fn short_name(self) -> &'static str {
        match self {
            KernelKind::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2U7 => "avx2-u7",
            #[cfg(target_arch = "x86_64")]
            KernelKind::AvxVnni => "avxvnni",
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512Vnni => "avx512vnni",
            #[cfg(target_arch = "x86_64")]
            KernelKind::Amx => "amx",
        }
    }

    /// Domain of the packed activations.
    pub(crate) fn domain(self) -> ADomain {
        with_kernel_type!(self, K => K::DOMAIN)
    }

    /// Whether the kernel is exact for activations within `input_range`.
    pub(crate) fn accepts(self, input_range: QuantRange) -> bool {
        let width = i64::from(input_range.qmax) - i64::from(input_range.qmin);
        self.domain() != ADomain::U7 || width <= 127
    }

    /// Whether this CPU runs the kernel, as far as can be told without
    /// asking the OS for anything (see [`available_kernels`]).
    pub(crate) fn supported(self) -> bool {
        match self {
            KernelKind::Portable => true,
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2 => x86_64::Avx2::new().is_some(),
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2U7 => x86_64::Avx2U7::new().is_some(),
            #[cfg(target_arch = "x86_64")]
            KernelKind::AvxVnni => x86_64::AvxVnni::new().is_some(),
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512Vnni => x86_64::Avx512Vnni::new().is_some(),
            #[cfg(target_arch = "x86_64")]
            KernelKind::Amx => x86_64::Amx::supported(),
        }
    }

    /// The kernel's token, if this CPU runs it. Called only for a kernel a
    /// layer is about to use: AMX's asks Linux for the tile permission (on
    /// its first call).
    pub(crate) fn token(self) -> Option<KernelChoice> {
        match self {
            KernelKind::Portable => Some(KernelChoice::Portable(Portable)),
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2 => x86_64::Avx2::new().map(KernelChoice::Avx2),
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2U7 => x86_64::Avx2U7::new().map(KernelChoice::Avx2U7),
            #[cfg(target_arch = "x86_64")]
            KernelKind::AvxVnni => x86_64::AvxVnni::new().map(KernelChoice::AvxVnni),
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512Vnni => x86_64::Avx512Vnni::new().map(KernelChoice::Avx512Vnni),
            #[cfg(target_arch = "x86_64")]
            KernelKind::Amx => x86_64::Amx::new().map(KernelChoice::Amx),
        }
    }
}

/// The shift `x' = x + shift` that moves activations of type `kind`
/// declared within `range` into `domain`.
pub(crate) fn shift_into(domain: ADomain, kind: ElemKind, range: QuantRange) -> i32 {
    match (domain, kind) {
        (ADomain::I8, ElemKind::Int8) | (ADomain::U8, ElemKind::Uint8) => 0,
        (ADomain::I8, ElemKind::Uint8) => -128,
        (ADomain::U8, ElemKind::Int8) => 128,
        (ADomain::U7, _) => -range.qmin,
    }
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
    /// Every kernel this CPU can run, fastest first, with its token (for
    /// AMX, asking for the tile permission): for tests that run them all.
    #[cfg(test)]
    pub(crate) fn available() -> Vec<KernelChoice> {
        KINDS.into_iter().filter_map(KernelKind::token).collect()
    }

    /// The kernel called `name` (short or full), if this CPU can run it.
    pub(crate) fn by_name(name: &str) -> Option<KernelChoice> {
        KernelKind::by_name(name)?.token()
    }

    /// Which kernel this is.
    pub(crate) fn kind(self) -> KernelKind {
        match self {
            KernelChoice::Portable(_) => KernelKind::Portable,
            #[cfg(target_arch = "x86_64")]
            KernelChoice::Avx2(_) => KernelKind::Avx2,
            #[cfg(target_arch = "x86_64")]
            KernelChoice::Avx2U7(_) => KernelKind::Avx2U7,
            #[cfg(target_arch = "x86_64")]
            KernelChoice::AvxVnni(_) => KernelKind::AvxVnni,
            #[cfg(target_arch = "x86_64")]
            KernelChoice::Avx512Vnni(_) => KernelKind::Avx512Vnni,
            #[cfg(target_arch = "x86_64")]
            KernelChoice::Amx(_) => KernelKind::Amx,
        }
    }

    /// Whether the kernel is exact for activations within `input_range`.
    pub(crate) fn accepts(self, input_range: QuantRange) -> bool {
        self.kind().accepts(input_range)
    }

    /// The kernel [`KERNEL_ENV`] names, if this CPU can run it; otherwise
    /// `None`, with a line on stderr (once per value) if it is set to
    /// something else than a kernel this CPU runs. Layers read it once,
    /// when they are built, and keep it through their builders.
    pub(crate) fn from_env() -> Option<KernelChoice> {
        let (value, why) = match EnvRequest::read() {
            EnvRequest::Unset => return None,
            EnvRequest::Kernel(k) => return Some(k),
            EnvRequest::Unknown(value) => (value, None),
            EnvRequest::Unavailable(value, kind) => (value, Some(kind)),
        };
        warn_once(&value, || {
            let why = match why {
                None => {
                    let known: Vec<&str> = KINDS.into_iter().map(KernelKind::short_name).collect();
                    format!("names no kernel (short names: {})", known.join(", "))
                }
                Some(kind) => format!("names {}, which this CPU cannot run", kind.name()),
            };
            format!(
                "qlinear: {KERNEL_ENV}={value:?} {why}; layers take the automatic choice among {:?}",
                available_kernels()
            )
        });
        None
    }

    /// The fastest kernel for activations declared within `input_range`,
    /// unless [`KERNEL_ENV`] names another that fits.
    pub(crate) fn select(input_range: QuantRange) -> KernelChoice {
        KernelChoice::select_with(KernelChoice::from_env(), input_range)
    }

    /// `forced` if it fits `input_range`, else the fastest kernel that does.
    /// Only the kernels tried take their tokens: AMX asks for its tile
    /// permission only when it is the one chosen, and a refusal moves on
    /// to the next kernel.
    pub(crate) fn select_with(
        forced: Option<KernelChoice>,
        input_range: QuantRange,
    ) -> KernelChoice {
        if let Some(k) = forced.filter(|k| k.accepts(input_range)) {
            return k;
        }
        KINDS
            .into_iter()
            .filter(|k| k.accepts(input_range))
            .find_map(KernelKind::token)
            .unwrap_or(KernelChoice::Portable(Portable))
    }

    /// The kernel's name.
    pub(crate) fn name(self) -> &'static str {
        self.kind().name()
    }

    /// `(NR, KG)`: the weight layout the kernel streams.
    pub(crate) fn layout(self) -> (usize, usize) {
        with_kernel_type!(self.kind(), K => (K::NR, K::KG))
    }

    /// The shift `x' = x + shift` that moves activations of type `kind`
    /// declared within `range` into the kernel's domain.
    pub(crate) fn shift(self, kind: ElemKind, range: QuantRange) -> i32 {
        shift_into(self.kind().domain(), kind, range)
    }

    /// [`Stamped::vectorized`](driver::Stamped::vectorized) of the kernel.
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
            K: Stamped,
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

/// The error for a kernel this CPU cannot run, or cannot run exactly for
/// a layer, with the kernels it can.
fn kernel_unavailable(name: &str) -> QuantError {
    QuantError::KernelUnavailable {
        name: name.to_string(),
        available: available_kernels(),
    }
}

impl KernelChoice {
    /// The kernel called `name` (short or full), or the error a user sees
    /// when this CPU cannot run it.
    pub(crate) fn named(name: &str) -> Result<KernelChoice, QuantError> {
        KernelChoice::by_name(name).ok_or_else(|| kernel_unavailable(name))
    }

    /// The kernel a layer runs: the one requested, if it is exact for
    /// activations within `input_range`; with no request, the fastest that
    /// is (or the one [`KERNEL_ENV`] named when the layer was built).
    pub(crate) fn choose(
        request: Option<KernelChoice>,
        from_env: Option<KernelChoice>,
        input_range: QuantRange,
    ) -> Result<KernelChoice, QuantError> {
        match request {
            Some(k) if k.accepts(input_range) => Ok(k),
            Some(k) => Err(kernel_unavailable(k.name())),
            None => Ok(KernelChoice::select_with(from_env, input_range)),
        }
    }
}
