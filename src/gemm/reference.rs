//! The naive triple loop: the oracle every faster kernel is tested against.
//!
//! It computes the notebook's accumulator with its four terms exactly as
//! written, in `i128`, where no input the API accepts can overflow:
//!
//! ```text
//! (7)  acc[i,j] = Σ_k Xq[i,k]·Wq[k,j] − z_W[j]·Σ_k Xq[i,k] − z_X·Σ_k Wq[k,j] + p·z_X·z_W[j]
//! ```
//!
//! Nothing here is clever on purpose: it is the definition, not a kernel.

use ndarray::{Array2, ArrayBase, Data, Ix2};

use crate::alloc::try_filled;
use crate::elem::QuantElem;
use crate::error::{check_inner_dim, QuantError};

/// Equation (7) for `x` (m×p, `i8` or `u8`) and int8 `w` (p×n) with input
/// zero point `zx` and one weight zero point per column of `w`, in `i128`.
///
/// `x.ncols()` must equal `w.nrows()` and `w_zero_points` must hold one
/// value per column of `w`; otherwise the result is an error.
///
/// ```
/// use ndarray::array;
/// use qlinear::gemm::reference::accumulate;
///
/// let x = array![[1i8, 2]];
/// let w = array![[3i8], [4]];
/// // (1−1)(3−0) + (2−1)(4−0) = 4
/// assert_eq!(accumulate(&x, &w, 1, &[0]).unwrap()[[0, 0]], 4);
/// ```
pub fn accumulate<T, Sx, Sw>(
    x: &ArrayBase<Sx, Ix2>,
    w: &ArrayBase<Sw, Ix2>,
    zx: i32,
    w_zero_points: &[i32],
) -> Result<Array2<i128>, QuantError>
where
    T: QuantElem,
    Sx: Data<Elem = T>,
    Sw: Data<Elem = i8>,
{
    check_inner_dim(x.ncols(), w.nrows())?;
    if w_zero_points.len() != w.ncols() {
        return Err(QuantError::LengthMismatch {
            what: "weight zero points",
            expected: w.ncols(),
            found: w_zero_points.len(),
        });
    }
    let (m, p) = x.dim();
    let n = w.ncols();
    let zx = i128::from(zx);
    let mut acc = Array2::from_shape_vec((m, n), try_filled("accumulator", &[m, n], 0i128)?)
        .expect("m·n values");
    for i in 0..m {
        for j in 0..n {
            let zw = i128::from(w_zero_points[j]);
            let mut product_sum = 0i128;
            let mut x_sum = 0i128;
            let mut w_sum = 0i128;
            for k in 0..p {
                let xv = i128::from(x[[i, k]].to_i32());
                let wv = i128::from(w[[k, j]]);
                product_sum += xv * wv;
                x_sum += xv;
                w_sum += wv;
            }
            acc[[i, j]] = product_sum - zw * x_sum - zx * w_sum + (p as i128) * zx * zw;
        }
    }
    Ok(acc)
}
