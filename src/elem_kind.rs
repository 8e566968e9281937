//! [`ElemKind`], the activation type as a value: a leaf, so that errors
//! can name it without depending on the quantized types themselves.

/// The two 8-bit quantized types, as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ElemKind {
    /// `i8`.
    Int8,
    /// `u8`.
    Uint8,
}
