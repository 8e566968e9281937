//! Buffers whose size the caller's input decides, allocated so that a
//! size the machine cannot hold is [`QuantError::TooLarge`], not an
//! abort: the standard allocation paths abort the process when the
//! allocator fails, which a library must not do on a user's input.

use ndarray::{Array, ArrayBase, ArrayView2, Data, DataMut, Dimension, Ix2};

use crate::error::{check_size, QuantError};

/// `shape.iter().product()` values equal to `value`, or
/// [`QuantError::TooLarge`] naming `what` and `shape`.
pub(crate) fn try_filled<T: Clone>(
    what: &'static str,
    shape: &[usize],
    value: T,
) -> Result<Vec<T>, QuantError> {
    let mut v = try_with_capacity(what, shape)?;
    v.resize(len(shape), value);
    Ok(v)
}

/// `v` cleared and refilled with `shape.iter().product()` copies of
/// `value`, its capacity grown only if needed (a call after the first with
/// no larger shape allocates nothing), or [`QuantError::TooLarge`].
pub(crate) fn try_refill<T: Clone>(
    v: &mut Vec<T>,
    what: &'static str,
    shape: &[usize],
    value: T,
) -> Result<(), QuantError> {
    check_size(what, shape)?;
    v.clear();
    v.try_reserve(len(shape))
        .map_err(|_| too_large(what, shape))?;
    v.resize(len(shape), value);
    Ok(())
}

/// An empty vector with room for `shape.iter().product()` values, or
/// [`QuantError::TooLarge`].
pub(crate) fn try_with_capacity<T>(
    what: &'static str,
    shape: &[usize],
) -> Result<Vec<T>, QuantError> {
    check_size(what, shape)?;
    let mut v = Vec::new();
    v.try_reserve_exact(len(shape))
        .map_err(|_| too_large(what, shape))?;
    Ok(v)
}

/// `f` of each element of `x`, in an array of `x`'s shape, or
/// [`QuantError::TooLarge`] if it cannot be allocated.
pub(crate) fn try_map<A, B, S, D>(
    what: &'static str,
    x: &ArrayBase<S, D>,
    mut f: impl FnMut(A) -> B,
) -> Result<Array<B, D>, QuantError>
where
    A: Copy,
    S: Data<Elem = A>,
    D: Dimension,
{
    let mut v = try_with_capacity(what, x.shape())?;
    // A contiguous slice in logical order maps in one pass that vectorizes.
    match x.as_slice() {
        Some(values) => v.extend(values.iter().map(|&a| f(a))),
        None => v.extend(x.iter().map(|&a| f(a))),
    }
    Ok(Array::from_shape_vec(x.raw_dim(), v).expect("one value per element, in logical order"))
}

/// Runs `fill` on `out`'s elements as one row-major slice: in place when
/// `out` is in standard layout, else through a buffer then copied in.
pub(crate) fn fill_row_major<T, So>(
    out: &mut ArrayBase<So, Ix2>,
    fill: impl FnOnce(&mut [T]) -> Result<(), QuantError>,
) -> Result<(), QuantError>
where
    T: Clone + Default,
    So: DataMut<Elem = T>,
{
    if let Some(slice) = out.as_slice_mut() {
        return fill(slice);
    }
    let (m, n) = out.dim();
    let mut buffer = try_filled("output", &[m, n], T::default())?;
    fill(&mut buffer)?;
    out.assign(&ArrayView2::from_shape((m, n), &buffer).expect("m·n values"));
    Ok(())
}

/// The error for an allocation of `shape` that failed.
pub(crate) fn too_large(what: &'static str, shape: &[usize]) -> QuantError {
    QuantError::TooLarge {
        what,
        shape: shape.to_vec(),
    }
}

/// The number of elements of `shape`, for a shape [`check_size`] accepted.
fn len(shape: &[usize]) -> usize {
    shape.iter().product()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, ShapeBuilder};

    #[test]
    fn sizes_the_allocator_refuses_are_errors() {
        // 2^56 bytes: below isize::MAX, far beyond any address space.
        let err = try_filled("output", &[1 << 28, 1 << 28], 0u8).unwrap_err();
        assert!(
            matches!(err, QuantError::TooLarge { what: "output", .. }),
            "{err}"
        );
        let err = try_filled("output", &[usize::MAX, 2], 0u8).unwrap_err();
        assert!(matches!(err, QuantError::TooLarge { .. }), "{err}");
        assert_eq!(try_filled("output", &[2, 3], 7u8).unwrap(), vec![7; 6]);
        assert!(try_filled("output", &[0, usize::MAX], 7u8)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn try_map_keeps_shape_and_logical_order() {
        let x = array![[1, 2, 3], [4, 5, 6]];
        let t = x.t();
        assert_eq!(try_map("t", &t, |v| v * 10).unwrap(), t.mapv(|v| v * 10));
        let f = Array::from_shape_vec((2, 3).f(), vec![1, 4, 2, 5, 3, 6]).unwrap();
        assert_eq!(try_map("f", &f, |v| v + 1).unwrap(), x.mapv(|v| v + 1));
    }
}
