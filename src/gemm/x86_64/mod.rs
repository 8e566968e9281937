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
