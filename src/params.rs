//! Affine quantization parameters and the ways to derive them.
//!
//! A real value `r` and its quantized value `q` are related by
//!
//! ```text
//! (1)  r = s · (q − z)
//! (2)  q = clamp(round_half_even(r / s + z), qmin, qmax)
//! ```
//!
//! with scale `s > 0` and zero point `z`. This module holds `(s, z)`
//! ([`QuantParams`]), the integer target range `[qmin, qmax]`
//! ([`QuantRange`]) and the derivations of `(s, z)` from a real range.

use crate::error::QuantError;

/// The smallest scale accepted: below it `1/s` overflows `f32`, and
/// quantization (which multiplies by `f32(1/s)`) would produce infinities.
pub const MIN_SCALE: f64 = 1.0 / (f32::MAX as f64);

/// An integer target range `[qmin, qmax]` that quantized values are clamped to.
///
/// With the `serde` feature, deserializing checks `qmin < qmax` as
/// [`QuantRange::new`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "crate::serde_fields::QuantRangeFields")
)]
pub struct QuantRange {
    /// Smallest quantized value.
    pub qmin: i32,
    /// Largest quantized value.
    pub qmax: i32,
}

impl QuantRange {
    /// Full signed 8-bit range `[-128, 127]`, the notebook's target.
    pub const INT8: QuantRange = QuantRange {
        qmin: -128,
        qmax: 127,
    };

    /// Narrow signed 8-bit range `[-127, 127]`, TFLite's weight range: it
    /// keeps −128 out so that symmetric weights negate exactly.
    pub const INT8_NARROW: QuantRange = QuantRange {
        qmin: -127,
        qmax: 127,
    };

    /// Unsigned 8-bit range `[0, 255]`, the PyTorch/ONNX Runtime x86
    /// activation convention.
    pub const UINT8: QuantRange = QuantRange { qmin: 0, qmax: 255 };

    /// Reduced signed range `[-64, 63]` (7 bits), PyTorch's `reduce_range`
    /// for int8.
    pub const INT8_REDUCED: QuantRange = QuantRange {
        qmin: -64,
        qmax: 63,
    };

    /// Reduced unsigned range `[0, 127]` (7 bits), PyTorch's `reduce_range`
    /// for uint8 activations.
    pub const UINT8_REDUCED: QuantRange = QuantRange { qmin: 0, qmax: 127 };

    /// A range `[qmin, qmax]`; `qmin < qmax` is required.
    ///
    /// ```
    /// # use qlinear::QuantRange;
    /// assert!(QuantRange::new(-128, 127).is_ok());
    /// assert!(QuantRange::new(5, 5).is_err());
    /// ```
    pub fn new(qmin: i32, qmax: i32) -> Result<QuantRange, QuantError> {
        if qmin < qmax {
            Ok(QuantRange { qmin, qmax })
        } else {
            Err(QuantError::InvalidTargetRange { qmin, qmax })
        }
    }

    /// Whether `other` lies within this range.
    pub fn contains(self, other: QuantRange) -> bool {
        self.qmin <= other.qmin && other.qmax <= self.qmax
    }

    /// Number of steps between the bounds, `qmax − qmin`, as `f64`.
    pub(crate) fn steps(self) -> f64 {
        (i64::from(self.qmax) - i64::from(self.qmin)) as f64
    }
}

/// Scale and zero point of an affine quantization, equations (1) and (2).
///
/// The zero point is an `i32` and may lie outside the target range: a real
/// range that excludes 0 gives such a zero point, and every computation in
/// the crate stays exact with it.
///
/// With the `serde` feature, deserializing checks the scale as
/// [`QuantParams::new`] does.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "crate::serde_fields::QuantParamsFields")
)]
pub struct QuantParams {
    /// Real value of one quantization step, `s` in (1).
    pub scale: f64,
    /// Quantized value that represents real 0, `z` in (1).
    pub zero_point: i32,
}

impl QuantParams {
    /// Parameters from a scale and a zero point, validated.
    ///
    /// The scale must be finite, positive and at least [`MIN_SCALE`].
    ///
    /// ```
    /// # use qlinear::QuantParams;
    /// let p = QuantParams::new(0.5, -3).unwrap();
    /// assert_eq!(p.zero_point, -3);
    /// assert!(QuantParams::new(0.0, 0).is_err());
    /// assert!(QuantParams::new(f64::NAN, 0).is_err());
    /// ```
    pub fn new(scale: f64, zero_point: i32) -> Result<QuantParams, QuantError> {
        let params = QuantParams { scale, zero_point };
        params.validate()?;
        Ok(params)
    }

    /// The notebook's `generate_quantization_int8_constants(alpha, beta)`:
    /// parameters mapping `[alpha, beta]` onto `[-128, 127]`.
    ///
    /// `s = (β − α)/255` and `z = trunc((β·(−128) − α·127)/(β − α))`, in
    /// `f64`, the truncation being Python's `int()`. The range need not
    /// contain 0; if it does not, `z` falls outside `[-128, 127]`.
    ///
    /// ```
    /// # use qlinear::QuantParams;
    /// let p = QuantParams::from_range(-100.0, 80.0).unwrap();
    /// assert_eq!(p.scale, 180.0 / 255.0);
    /// assert_eq!(p.zero_point, 13);
    /// ```
    pub fn from_range(alpha: f64, beta: f64) -> Result<QuantParams, QuantError> {
        QuantParams::from_range_in(alpha, beta, QuantRange::INT8)
    }

    /// The notebook's `generate_quantization_constants(alpha, beta, alpha_q,
    /// beta_q)` for any integer target range:
    ///
    /// ```text
    /// (3)  s = (β − α) / (qmax − qmin)
    /// (4)  z = trunc((β·qmin − α·qmax) / (β − α))
    /// ```
    ///
    /// ```
    /// # use qlinear::{QuantParams, QuantRange};
    /// let p = QuantParams::from_range_in(0.0, 1.0, QuantRange::new(0, 255).unwrap()).unwrap();
    /// assert_eq!(p.zero_point, 0);
    /// ```
    pub fn from_range_in(
        alpha: f64,
        beta: f64,
        range: QuantRange,
    ) -> Result<QuantParams, QuantError> {
        check_real_range(alpha, beta)?;
        let range = QuantRange::new(range.qmin, range.qmax)?;
        let width = beta - alpha;
        let scale = width / range.steps();
        let (qmin, qmax) = (f64::from(range.qmin), f64::from(range.qmax));
        let mut zero_point = (beta * qmin - alpha * qmax) / width;
        if !zero_point.is_finite() {
            // Bounds so large that the products overflow: (4) is the same
            // ratio with both bounds scaled by 2^-32, exact there; as
            // |q| ≤ 2^31, no product of a scaled bound overflows.
            let (a, b) = (alpha / 4_294_967_296.0, beta / 4_294_967_296.0);
            zero_point = (b * qmin - a * qmax) / (b - a);
        }
        let params = QuantParams {
            scale,
            zero_point: trunc_to_i32(zero_point)?,
        };
        params.validate()?;
        Ok(params)
    }

    /// Affine parameters as gemmlowp, PyTorch and TFLite derive them: the
    /// range is widened to include 0, then
    ///
    /// ```text
    /// (3a) min' = min(min, 0),  max' = max(max, 0)
    /// (3b) s = (max' − min') / (qmax − qmin)
    /// (4a) z = clamp(round_half_even(qmin − min'/s), qmin, qmax)
    /// ```
    ///
    /// so real 0 is exactly representable and the zero point lies in the
    /// range; constant data `min == max ≠ 0` becomes `[0, max]` or
    /// `[min, 0]`, as in PyTorch's observers. Where PyTorch raises the scale
    /// to its `eps`, this raises it to [`MIN_SCALE`] (so tiny and subnormal
    /// ranges still give valid params), and all zeros give scale 1 and zero
    /// point 0. NaN or infinite bounds, or `min > max`, are errors.
    ///
    /// ```
    /// # use qlinear::{QuantParams, QuantRange};
    /// let p = QuantParams::affine(0.5, 6.0, QuantRange::UINT8).unwrap();
    /// assert_eq!((p.scale, p.zero_point), (6.0 / 255.0, 0));
    /// let p = QuantParams::affine(-1.0, 3.0, QuantRange::INT8).unwrap();
    /// assert_eq!(p.zero_point, -64); // round(−128 + 1/(4/255)) = round(−64.25)
    /// ```
    pub fn affine(min: f64, max: f64, range: QuantRange) -> Result<QuantParams, QuantError> {
        let range = QuantRange::new(range.qmin, range.qmax)?;
        if let Some(p) = all_zero(min, max, range)? {
            return Ok(p);
        }
        let (lo, hi) = (min.min(0.0), max.max(0.0));
        let scale = ((hi - lo) / range.steps()).max(MIN_SCALE);
        let z = (f64::from(range.qmin) - lo / scale).round_ties_even();
        let zero_point = z.clamp(f64::from(range.qmin), f64::from(range.qmax)) as i32;
        QuantParams::new(scale, zero_point)
    }

    /// Symmetric parameters: zero point 0 for a signed range, the midpoint
    /// `(qmin + qmax + 1)/2` for an unsigned one (128 for uint8), and
    ///
    /// ```text
    /// (3c) s = max(|min|, |max|) / ((qmax − qmin)/2)
    /// ```
    ///
    /// as PyTorch's symmetric observers compute it (`/127.5` for int8, `/127`
    /// for [`QuantRange::INT8_NARROW`], TFLite's symmetric weights), raised
    /// to at least [`MIN_SCALE`]. All zeros give scale 1 and zero point 0.
    ///
    /// ```
    /// # use qlinear::{QuantParams, QuantRange};
    /// let p = QuantParams::symmetric(-0.5, 2.54, QuantRange::INT8_NARROW).unwrap();
    /// assert_eq!((p.scale, p.zero_point), (0.02, 0));
    /// let p = QuantParams::symmetric(-1.0, 1.0, QuantRange::UINT8).unwrap();
    /// assert_eq!(p.zero_point, 128);
    /// ```
    pub fn symmetric(min: f64, max: f64, range: QuantRange) -> Result<QuantParams, QuantError> {
        let range = QuantRange::new(range.qmin, range.qmax)?;
        if let Some(p) = all_zero(min, max, range)? {
            return Ok(p);
        }
        let bound = min.abs().max(max.abs());
        let scale = (bound / (range.steps() / 2.0)).max(MIN_SCALE);
        let zero_point = if range.qmin < 0 {
            0
        } else {
            ((i64::from(range.qmin) + i64::from(range.qmax) + 1) / 2) as i32
        };
        QuantParams::new(scale, zero_point)
    }

    /// Checks the invariants [`QuantParams::new`] enforces, for values built
    /// with a struct literal.
    pub fn validate(&self) -> Result<(), QuantError> {
        let s = self.scale;
        let reciprocal_fits = ((1.0 / s) as f32).is_finite();
        if s.is_finite() && s > 0.0 && reciprocal_fits {
            Ok(())
        } else {
            Err(QuantError::InvalidScale { scale: s })
        }
    }
}

/// A real range is usable when both bounds are finite and `alpha < beta`.
pub(crate) fn check_real_range(alpha: f64, beta: f64) -> Result<(), QuantError> {
    if alpha.is_finite() && beta.is_finite() && alpha < beta && (beta - alpha).is_finite() {
        Ok(())
    } else {
        Err(QuantError::InvalidRange { alpha, beta })
    }
}

/// How parameters are derived from an observed real range `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Scheme {
    /// The notebook's [`QuantParams::from_range_in`]: the range as given,
    /// the zero point truncated and possibly outside the target range.
    Notebook,
    /// [`QuantParams::affine`] (gemmlowp, PyTorch, TFLite activations).
    #[default]
    Affine,
    /// [`QuantParams::symmetric`] (TFLite weights, PyTorch symmetric).
    Symmetric,
}

impl Scheme {
    /// Parameters for `[min, max]` onto `range` under this scheme. For every
    /// scheme all zeros give scale 1 and zero point 0, other constant data
    /// (`min == max`) is widened to include 0 (the notebook's formula would
    /// divide by zero), and NaN or infinite bounds or `min > max` are
    /// errors.
    ///
    /// ```
    /// # use qlinear::{QuantRange, Scheme};
    /// let p = Scheme::Symmetric.params(-1.0, 0.5, QuantRange::INT8_NARROW).unwrap();
    /// assert_eq!(p.zero_point, 0);
    /// ```
    pub fn params(self, min: f64, max: f64, range: QuantRange) -> Result<QuantParams, QuantError> {
        match self {
            Scheme::Notebook => {
                let range = QuantRange::new(range.qmin, range.qmax)?;
                match all_zero(min, max, range)? {
                    Some(p) => Ok(p),
                    None if min == max => {
                        QuantParams::from_range_in(min.min(0.0), max.max(0.0), range)
                    }
                    None => QuantParams::from_range_in(min, max, range),
                }
            }
            Scheme::Affine => QuantParams::affine(min, max, range),
            Scheme::Symmetric => QuantParams::symmetric(min, max, range),
        }
    }
}

/// The edge cases every scheme shares: invalid bounds are errors, and all
/// zeros (no width even after widening to include 0) give scale 1 and zero
/// point 0. `range` must be valid.
fn all_zero(min: f64, max: f64, range: QuantRange) -> Result<Option<QuantParams>, QuantError> {
    if !(min.is_finite() && max.is_finite()) || min > max {
        return Err(QuantError::InvalidRange {
            alpha: min,
            beta: max,
        });
    }
    if min == 0.0 && max == 0.0 {
        return Ok(Some(QuantParams {
            scale: 1.0,
            zero_point: 0i32.clamp(range.qmin, range.qmax),
        }));
    }
    Ok(None)
}

/// Python's `int(v)` for a float, refusing values outside `i32`.
fn trunc_to_i32(v: f64) -> Result<i32, QuantError> {
    let t = v.trunc();
    if t.is_finite() && t >= f64::from(i32::MIN) && t <= f64::from(i32::MAX) {
        Ok(t as i32)
    } else {
        Err(QuantError::ZeroPointOutOfRange { zero_point: v })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_point_truncates_toward_zero_like_python_int() {
        // (β·qmin − α·qmax)/(β − α) = (1·(−128) − (−1)·127)/2 = −0.5 → int() gives 0.
        let p = QuantParams::from_range(-1.0, 1.0).unwrap();
        assert_eq!(p.zero_point, 0);
        // Range [1, 2]: (2·(−128) − 1·127)/1 = −383, outside int8 but kept.
        let p = QuantParams::from_range(1.0, 2.0).unwrap();
        assert_eq!(p.zero_point, -383);
    }

    #[test]
    fn bad_ranges_and_scales_are_errors() {
        for (a, b) in [
            (1.0, 1.0),
            (2.0, 1.0),
            (f64::NAN, 1.0),
            (0.0, f64::INFINITY),
            (f64::NEG_INFINITY, 0.0),
            (-f64::MAX, f64::MAX),
        ] {
            assert!(
                matches!(
                    QuantParams::from_range(a, b),
                    Err(QuantError::InvalidRange { .. })
                ),
                "[{a}, {b}]"
            );
        }
        for s in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-300, MIN_SCALE / 2.0] {
            assert!(
                matches!(QuantParams::new(s, 0), Err(QuantError::InvalidScale { .. })),
                "{s}"
            );
        }
        assert!(QuantParams::new(MIN_SCALE, 0).is_ok());
    }

    #[test]
    fn zero_point_beyond_i32_is_an_error() {
        let r = QuantParams::from_range(1.0e6, 1.0e6 + 1.0e-3);
        assert!(matches!(r, Err(QuantError::ZeroPointOutOfRange { .. })));
    }

    #[test]
    fn tiny_width_gives_scale_error_not_panic() {
        let r = QuantParams::from_range(0.0, 1e-320);
        assert!(r.is_err());
    }

    #[test]
    fn affine_widens_to_include_zero_and_clamps_the_zero_point() {
        let p = QuantParams::affine(2.0, 4.0, QuantRange::INT8).unwrap();
        assert_eq!(p.scale, 4.0 / 255.0);
        assert_eq!(p.zero_point, -128);
        let p = QuantParams::affine(-4.0, -2.0, QuantRange::UINT8).unwrap();
        assert_eq!(p.zero_point, 255);
        // s = 1 and qmin − min/s = −127.5 exactly: (4a) rounds to even.
        let p = QuantParams::affine(-0.5, 254.5, QuantRange::INT8).unwrap();
        assert_eq!(p.scale, 1.0);
        assert_eq!(p.zero_point, -128); // −127.5 rounds to −128 (even)
    }

    #[test]
    fn huge_bounds_do_not_overflow_the_zero_point() {
        // β·qmin − α·qmax would be −∞ + ∞ in f64; (4) is −0.5 → int() gives 0.
        let p = QuantParams::from_range(-1e307, 1e307).unwrap();
        assert_eq!((p.scale, p.zero_point), (2e307 / 255.0, 0));
        let p = QuantParams::from_range(-1e307, 3e307).unwrap();
        assert_eq!(p.zero_point, -64); // trunc((3·(−128) + 127)/4) = trunc(−64.25)
    }

    #[test]
    fn degenerate_and_invalid_ranges() {
        for scheme in [QuantParams::affine, QuantParams::symmetric] {
            let p = scheme(0.0, 0.0, QuantRange::INT8).unwrap();
            assert_eq!((p.scale, p.zero_point), (1.0, 0));
            // Tiny and subnormal widths: the scale is raised to MIN_SCALE.
            for hi in [1e-40, 5e-324] {
                let p = scheme(0.0, hi, QuantRange::INT8).unwrap();
                assert_eq!(p.scale, MIN_SCALE);
                assert!(p.validate().is_ok());
            }
            for (lo, hi) in [(f64::NAN, 1.0), (0.0, f64::INFINITY), (1.0, 0.0)] {
                assert!(matches!(
                    scheme(lo, hi, QuantRange::INT8),
                    Err(QuantError::InvalidRange { .. })
                ));
            }
        }
    }

    #[test]
    fn constant_data_is_widened_to_include_zero() {
        let affine = |v| QuantParams::affine(v, v, QuantRange::INT8).unwrap();
        assert_eq!(
            (affine(3.5).scale, affine(3.5).zero_point),
            (3.5 / 255.0, -128)
        );
        assert_eq!(
            (affine(-2.0).scale, affine(-2.0).zero_point),
            (2.0 / 255.0, 127)
        );
        let p = QuantParams::symmetric(-2.0, -2.0, QuantRange::INT8).unwrap();
        assert_eq!((p.scale, p.zero_point), (2.0 / 127.5, 0));
        let p = Scheme::Notebook.params(3.5, 3.5, QuantRange::INT8).unwrap();
        assert_eq!(p, QuantParams::from_range(0.0, 3.5).unwrap());
        let p = Scheme::Notebook.params(0.0, 0.0, QuantRange::INT8).unwrap();
        assert_eq!((p.scale, p.zero_point), (1.0, 0));
    }

    #[test]
    fn every_scheme_checks_the_target_range_first() {
        let reversed = QuantRange { qmin: 5, qmax: -5 };
        for scheme in [Scheme::Notebook, Scheme::Affine, Scheme::Symmetric] {
            for (lo, hi) in [(0.0, 0.0), (1.0, 1.0), (-1.0, 1.0)] {
                assert!(
                    matches!(
                        scheme.params(lo, hi, reversed),
                        Err(QuantError::InvalidTargetRange { qmin: 5, qmax: -5 })
                    ),
                    "{scheme:?} [{lo}, {hi}]"
                );
            }
        }
    }

    #[test]
    fn symmetric_zero_points() {
        let signed = QuantParams::symmetric(-3.0, 1.0, QuantRange::INT8).unwrap();
        assert_eq!((signed.scale, signed.zero_point), (3.0 / 127.5, 0));
        let reduced = QuantParams::symmetric(-3.0, 1.0, QuantRange::UINT8_REDUCED).unwrap();
        assert_eq!(reduced.zero_point, 64);
    }

    #[test]
    fn target_range_must_be_ordered() {
        let r = QuantParams::from_range_in(0.0, 1.0, QuantRange { qmin: 3, qmax: 3 });
        assert!(matches!(r, Err(QuantError::InvalidTargetRange { .. })));
    }
}
