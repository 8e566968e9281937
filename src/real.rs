//! [`Real`]: the float types the real-valued APIs accept.
//!
//! Every real-valued API (quantize, the layers' real paths, the
//! observers) takes `f32`, `f64` and, with the `half` feature (on by
//! default), `half::f16` and `half::bf16`, through one generic
//! implementation. The arithmetic is always the `f32` arithmetic of the
//! equations:
//!
//! - each input value is converted to `f32` first, rounded to nearest:
//!   `f64` values beyond `f32`'s range become ±∞ (and then saturate, or are
//!   refused, as any infinity is), `f16` and `bf16` convert exactly;
//! - real outputs are computed in `f32` and converted to the requested
//!   type, rounded to nearest (ties to even).
//!
//! So a call with `f64`, `f16` or `bf16` input gives exactly what
//! converting the input to `f32` and calling with `f32` gives; for `f32`
//! the conversions are the identity and compile away.
//!
//! ```
//! use ndarray::array;
//! use qlinear::{quantize, QuantParams};
//!
//! let p = QuantParams::new(0.5, 0)?;
//! let x = array![0.25f64, 1e300, -1.0];
//! assert_eq!(quantize(&x, p), quantize(&x.mapv(|v| v as f32), p));
//! assert_eq!(quantize(&x, p), array![0i8, 127, -2]);
//! # Ok::<(), qlinear::QuantError>(())
//! ```

use std::fmt::Debug;

use ndarray::{Array, ArrayView, Dimension};
use num_traits::Float;

/// A float type the real-valued APIs accept: `f32`, `f64` and, with the
/// `half` feature, `half::f16` and `half::bf16`. Sealed: the crate's
/// arithmetic is `f32`'s, and these are the types whose conversions to and
/// from `f32` it documents.
pub trait Real: Float + Default + Debug + Send + Sync + 'static + sealed::Sealed {
    /// `self` as `f32`, rounded to nearest: exact for `f32`, `f16` and
    /// `bf16`; an `f64` beyond `f32`'s range becomes ±∞, NaN stays NaN.
    fn to_f32_nearest(self) -> f32;

    /// The `Self` nearest to `v` (ties to even): exact for `f32` and `f64`.
    fn from_f32_nearest(v: f32) -> Self;
}

/// The views of `f32` data the `f32` paths read without a copy.
pub(crate) mod sealed {
    use super::*;

    /// Implemented by the [`Real`] types only; its methods let the generic
    /// code keep the `f32` fast paths (no copy) where `Self` is `f32`.
    pub trait Sealed: Sized {
        /// `x` itself when `Self` is `f32`, else `None`.
        fn as_f32_view<'a, D: Dimension>(
            x: ArrayView<'a, Self, D>,
        ) -> Option<ArrayView<'a, f32, D>>;

        /// `x` itself when `Self` is `f32`, else converted element by
        /// element by [`Real::to_f32_nearest`].
        fn into_f32_array<D: Dimension>(x: Array<Self, D>) -> Array<f32, D>;
    }
}

/// `x` itself when `F` is `f32`, else `None`.
pub(crate) fn as_f32_view<F: Real, D: Dimension>(
    x: ArrayView<'_, F, D>,
) -> Option<ArrayView<'_, f32, D>> {
    F::as_f32_view(x)
}

/// `values` themselves when `F` is `f32`, else `None`.
pub(crate) fn as_f32_slice<F: Real>(values: &[F]) -> Option<&[f32]> {
    F::as_f32_view(ArrayView::from(values)).and_then(|v| v.to_slice())
}

/// `x` itself when `F` is `f32`, else converted element by element.
pub(crate) fn into_f32_array<F: Real, D: Dimension>(x: Array<F, D>) -> Array<f32, D> {
    F::into_f32_array(x)
}

impl Real for f32 {
    #[inline(always)]
    fn to_f32_nearest(self) -> f32 {
        self
    }

    #[inline(always)]
    fn from_f32_nearest(v: f32) -> f32 {
        v
    }
}

impl sealed::Sealed for f32 {
    fn as_f32_view<'a, D: Dimension>(x: ArrayView<'a, f32, D>) -> Option<ArrayView<'a, f32, D>> {
        Some(x)
    }

    fn into_f32_array<D: Dimension>(x: Array<f32, D>) -> Array<f32, D> {
        x
    }
}

impl Real for f64 {
    #[inline(always)]
    fn to_f32_nearest(self) -> f32 {
        self as f32
    }

    #[inline(always)]
    fn from_f32_nearest(v: f32) -> f64 {
        f64::from(v)
    }
}

#[cfg(feature = "half")]
impl Real for half::f16 {
    #[inline(always)]
    fn to_f32_nearest(self) -> f32 {
        self.to_f32()
    }

    #[inline(always)]
    fn from_f32_nearest(v: f32) -> half::f16 {
        half::f16::from_f32(v)
    }
}

#[cfg(feature = "half")]
impl Real for half::bf16 {
    #[inline(always)]
    fn to_f32_nearest(self) -> f32 {
        self.to_f32()
    }

    #[inline(always)]
    fn from_f32_nearest(v: f32) -> half::bf16 {
        half::bf16::from_f32(v)
    }
}

/// [`sealed::Sealed`] for a type other than `f32`: no view to borrow.
macro_rules! converted {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {
            fn as_f32_view<'a, D: Dimension>(
                _: ArrayView<'a, $t, D>,
            ) -> Option<ArrayView<'a, f32, D>> {
                None
            }

            fn into_f32_array<D: Dimension>(x: Array<$t, D>) -> Array<f32, D> {
                x.mapv(Real::to_f32_nearest)
            }
        }
    )*};
}
converted!(f64);
#[cfg(feature = "half")]
converted!(half::f16, half::bf16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_to_nearest_and_saturate_to_infinity() {
        assert_eq!(1e300f64.to_f32_nearest(), f32::INFINITY);
        assert_eq!((-1e300f64).to_f32_nearest(), f32::NEG_INFINITY);
        assert!(f64::NAN.to_f32_nearest().is_nan());
        assert_eq!((1.0f64 + 1e-12).to_f32_nearest(), 1.0);
        assert_eq!(f64::from_f32_nearest(0.1), f64::from(0.1f32));
        let v = [1.5f32, -2.0];
        assert_eq!(as_f32_slice(&v), Some(&v[..]));
        assert_eq!(as_f32_slice(&[1.5f64]), None);
    }

    #[cfg(feature = "half")]
    #[test]
    fn half_types_convert_exactly_and_round_back_to_nearest() {
        use half::{bf16, f16};
        assert_eq!(
            f16::from_f32(0.1).to_f32_nearest(),
            f16::from_f32(0.1).to_f32()
        );
        assert_eq!(f16::from_f32_nearest(65520.0), f16::INFINITY);
        assert_eq!(bf16::from_f32_nearest(1.0 + 2f32.powi(-8)), bf16::ONE);
        assert_eq!(bf16::from_f32_nearest(3.0).to_f32_nearest(), 3.0);
    }
}
