//! Not part of the API. The kernels' geometry and the driver's decisions
//! (row blocks, thread splits, depth runs) as this host makes them, so that
//! the crate's tests pick shapes that reach each path and assert that they
//! do, rather than keep copies of constants that go stale when the crate
//! retunes. Hidden from the docs; may change in any release.

use super::driver;
use super::kernel::Kernel;
use super::{shift_into, with_kernel_type, KernelKind, Portable, KINDS};
use crate::elem::ElemKind;
use crate::params::QuantRange;

pub use super::driver::Plan;
pub use super::kernel::ADomain;

#[cfg(target_arch = "x86_64")]
use super::x86_64;

/// What the crate knows of one kernel without running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelGeometry {
    /// Full name, as [`available_kernels`](crate::available_kernels) lists
    /// it.
    pub name: &'static str,
    /// Short name, as `QLINEAR_KERNEL` and `with_kernel` also accept it.
    pub short_name: &'static str,
    /// Rows per tile.
    pub mr: usize,
    /// Columns per tile and per packed weight panel.
    pub nr: usize,
    /// k-group: the inner dimension is padded to a multiple of it.
    pub kg: usize,
    /// Longest padded inner dimension summed in `i32` in one run.
    pub max_depth: usize,
    /// Bytes per packed activation.
    pub a_bytes: usize,
    /// Domain of the packed activations.
    pub domain: ADomain,
    kind: KernelKind,
}

impl KernelGeometry {
    fn of(kind: KernelKind) -> KernelGeometry {
        with_kernel_type!(kind, K => KernelGeometry {
            name: K::NAME,
            short_name: kind.short_name(),
            mr: K::MR,
            nr: K::NR,
            kg: K::KG,
            max_depth: K::MAX_DEPTH,
            a_bytes: std::mem::size_of::<<K as Kernel>::A>(),
            domain: K::DOMAIN,
            kind,
        })
    }

    /// Whether the kernel is exact only for input ranges of at most 128
    /// values.
    pub fn reduced(&self) -> bool {
        self.domain == ADomain::U7
    }

    /// Whether the kernel is exact for inputs declared within `range`.
    pub fn accepts(&self, range: QuantRange) -> bool {
        self.kind.accepts(range)
    }

    /// The inner dimension `p` as packed: padded to a multiple of `kg`.
    pub fn packed_depth(&self, p: usize) -> usize {
        p.div_ceil(self.kg) * self.kg
    }

    /// Whether the driver cuts inner dimension `p` into runs of
    /// `max_depth`.
    pub fn splits_depth(&self, p: usize) -> bool {
        self.packed_depth(p) > self.max_depth
    }

    /// Rows per block of packed activations for inner dimension `p`, as
    /// the blocked loop takes them on this host (from its L2 size).
    pub fn block_rows(&self, p: usize) -> usize {
        let kp = self.packed_depth(p);
        with_kernel_type!(self.kind, K => driver::block_rows::<K>(kp))
    }

    /// The split of an m×p×n product on a pool of `threads`, as the driver
    /// takes it on this host (always [`Plan::OneThread`] without the
    /// `parallel` feature).
    pub fn plan(&self, m: usize, p: usize, n: usize, threads: usize) -> Plan {
        let kp = self.packed_depth(p);
        with_kernel_type!(self.kind, K => driver::plan::<K>(m, n, kp, threads))
    }

    /// The shift `x' = x + shift` that moves activations of type `kind`
    /// declared within `range` into the kernel's domain.
    pub fn shift(&self, kind: ElemKind, range: QuantRange) -> i32 {
        shift_into(self.domain, kind, range)
    }
}

/// The kernel called `name` (full or short), whether or not this CPU runs
/// it; `None` if the crate has no such kernel.
pub fn geometry(name: &str) -> Option<KernelGeometry> {
    KernelKind::by_name(name).map(KernelGeometry::of)
}

/// Every kernel compiled into the crate, fastest first, including those
/// this CPU lacks.
pub fn all_kernels() -> Vec<KernelGeometry> {
    KINDS.into_iter().map(KernelGeometry::of).collect()
}

/// Bytes of L2 cache per core, as the driver sizes its blocks and splits
/// from it.
pub fn l2_bytes() -> usize {
    super::cache::l2_bytes()
}

/// Whether this process has asked the OS for AMX tile state.
#[cfg(target_arch = "x86_64")]
pub fn tile_permission_requested() -> bool {
    x86_64::Amx::permission_requested()
}

/// Whether this process has asked the OS for AMX tile state.
#[cfg(not(target_arch = "x86_64"))]
pub fn tile_permission_requested() -> bool {
    false
}
