//! The integer types quantized values are stored in: `i8` and `u8`.

pub use crate::elem_kind::ElemKind;
use crate::params::QuantRange;

mod sealed {
    use crate::workspace::Workspace;

    pub trait Sealed: Sized {
        /// This type's buffers in a workspace.
        fn buffers(ws: &mut Workspace) -> &mut [Vec<Self>; 4];
    }
    impl Sealed for i8 {
        fn buffers(ws: &mut Workspace) -> &mut [Vec<i8>; 4] {
            &mut ws.int8
        }
    }
    impl Sealed for u8 {
        fn buffers(ws: &mut Workspace) -> &mut [Vec<u8>; 4] {
            &mut ws.uint8
        }
    }
}

/// An 8-bit storage type for quantized values. Implemented for `i8` and
/// `u8` only.
pub trait QuantElem:
    Copy + Default + Ord + Send + Sync + std::fmt::Debug + 'static + sealed::Sealed
{
    /// Every value the type holds.
    const RANGE: QuantRange;
    /// Which activation type this is.
    const KIND: ElemKind;
    /// `v`, which the caller has clamped into [`Self::RANGE`].
    fn from_i32_clamped(v: i32) -> Self;
    /// The value, widened.
    fn to_i32(self) -> i32;
}

impl ElemKind {
    /// Every value of the type.
    pub fn range(self) -> QuantRange {
        match self {
            ElemKind::Int8 => QuantRange::INT8,
            ElemKind::Uint8 => QuantRange::UINT8,
        }
    }
}

impl QuantElem for i8 {
    const RANGE: QuantRange = QuantRange::INT8;
    const KIND: ElemKind = ElemKind::Int8;
    #[inline]
    fn from_i32_clamped(v: i32) -> i8 {
        v as i8
    }
    #[inline]
    fn to_i32(self) -> i32 {
        i32::from(self)
    }
}

impl QuantElem for u8 {
    const RANGE: QuantRange = QuantRange::UINT8;
    const KIND: ElemKind = ElemKind::Uint8;
    #[inline]
    fn from_i32_clamped(v: i32) -> u8 {
        v as u8
    }
    #[inline]
    fn to_i32(self) -> i32 {
        i32::from(self)
    }
}
