//! The per-core L2 size, which sets how many packed activation rows the
//! blocked loop keeps resident while weight panels stream past them.
//!
//! Read once from CPUID on x86-64 (Intel's leaf 4, AMD's leaf 0x8000001D:
//! both list the caches in the same format); elsewhere, or if the CPU does
//! not say, a 512 KiB L2 is assumed.

use std::sync::OnceLock;

/// Assumed when the CPU does not report its L2.
const DEFAULT_L2_BYTES: usize = 512 * 1024;

/// Bytes of L2 cache per core.
pub(crate) fn l2_bytes() -> usize {
    static L2: OnceLock<usize> = OnceLock::new();
    *L2.get_or_init(|| detect().unwrap_or(DEFAULT_L2_BYTES))
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Option<usize> {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // Sub-leaf i describes one cache: EAX[4:0] its type (0: no more
    // caches, 1: data, 2: instructions, 3: unified), EAX[7:5] its level;
    // its size is ways × partitions × line size × sets, each stored minus 1.
    let l2_in = |leaf: u32| {
        (0..16)
            .map(|i| __cpuid_count(leaf, i))
            .take_while(|c| c.eax & 0x1f != 0)
            .find(|c| (c.eax >> 5) & 0x7 == 2 && c.eax & 0x1f != 2)
            .map(|c| {
                let ways = (c.ebx >> 22) as usize + 1;
                let partitions = ((c.ebx >> 12) & 0x3ff) as usize + 1;
                let line = (c.ebx & 0xfff) as usize + 1;
                let sets = c.ecx as usize + 1;
                ways * partitions * line * sets
            })
    };
    let max_leaf = __cpuid(0).eax;
    let max_extended_leaf = __cpuid(0x8000_0000).eax;
    let intel = (max_leaf >= 4).then(|| l2_in(4)).flatten();
    let amd = || {
        (max_extended_leaf >= 0x8000_001d)
            .then(|| l2_in(0x8000_001d))
            .flatten()
    };
    intel.or_else(amd).filter(|&bytes| bytes > 0)
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn l2_size_is_plausible() {
        let l2 = super::l2_bytes();
        assert!((64 * 1024..=64 * 1024 * 1024).contains(&l2), "{l2}");
        eprintln!("L2: {} KiB", l2 / 1024);
    }
}
