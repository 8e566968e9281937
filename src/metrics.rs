//! Accuracy of a quantized result against a real-valued reference.
//!
//! ```text
//! (13) SQNR = 10·log10( Σ ref² / Σ (ref − approx)² )   dB
//! (14) max abs error = max |ref − approx|
//! ```
//!
//! Both are computed in `f64`. A perfect match gives an SQNR of `+∞`; an
//! all-zero reference matched exactly, or empty arrays, give an SQNR of NaN
//! (and a largest error of 0). A NaN in either array gives NaN for both
//! measures.

use ndarray::{ArrayBase, Data, Dimension};

use crate::error::QuantError;

/// Signal-to-quantization-noise ratio in dB, equation (13).
///
/// ```
/// use ndarray::array;
/// let r = array![1.0f32, -1.0];
/// let db = qlinear::sqnr_db(&r, &array![1.1f32, -0.9]).unwrap();
/// assert!((db - 20.0).abs() < 1e-4);
/// ```
pub fn sqnr_db<S1, S2, D>(
    reference: &ArrayBase<S1, D>,
    approx: &ArrayBase<S2, D>,
) -> Result<f64, QuantError>
where
    S1: Data<Elem = f32>,
    S2: Data<Elem = f32>,
    D: Dimension,
{
    check_shapes(reference.shape(), approx.shape())?;
    let (signal, noise) =
        reference
            .iter()
            .zip(approx.iter())
            .fold((0.0f64, 0.0f64), |(s, n), (&r, &a)| {
                let (r, a) = (f64::from(r), f64::from(a));
                (s + r * r, n + (r - a) * (r - a))
            });
    Ok(10.0 * (signal / noise).log10())
}

/// Largest absolute difference, equation (14); 0 for empty arrays.
///
/// ```
/// use ndarray::array;
/// let e = qlinear::max_abs_error(&array![1.0f32, 2.0], &array![1.5f32, 2.0]).unwrap();
/// assert_eq!(e, 0.5);
/// ```
pub fn max_abs_error<S1, S2, D>(
    reference: &ArrayBase<S1, D>,
    approx: &ArrayBase<S2, D>,
) -> Result<f64, QuantError>
where
    S1: Data<Elem = f32>,
    S2: Data<Elem = f32>,
    D: Dimension,
{
    check_shapes(reference.shape(), approx.shape())?;
    Ok(reference
        .iter()
        .zip(approx.iter())
        .map(|(&r, &a)| (f64::from(r) - f64::from(a)).abs())
        .fold(0.0, |m: f64, d| {
            if m.is_nan() || d.is_nan() {
                f64::NAN
            } else {
                m.max(d)
            }
        }))
}

fn check_shapes(left: &[usize], right: &[usize]) -> Result<(), QuantError> {
    if left == right {
        Ok(())
    } else {
        Err(QuantError::ShapeMismatch {
            left: left.to_vec(),
            right: right.to_vec(),
        })
    }
}
