//! Long inner dimensions with extreme values: the accumulator is exact where
//! numpy's int32 arithmetic wraps.

use ndarray::{Array1, Array2};
use qlinear::{Bias, QuantParams, QuantizedLinear};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const P: usize = 200_000;

/// Σ_k (x − zx)(w − zw) in i64, the plainest way.
fn exact(x: &[i8], w: &[i8], zx: i64, zw: i64) -> i64 {
    x.iter()
        .zip(w)
        .map(|(&a, &b)| (i64::from(a) - zx) * (i64::from(b) - zw))
        .sum()
}

fn check(x: Array2<i8>, w: Array2<i8>, zx: i32, zw: i32) {
    let (m, n) = (x.nrows(), w.ncols());
    let want = Array2::from_shape_fn((m, n), |(i, j)| {
        let xr: Vec<i8> = x.row(i).to_vec();
        let wc: Vec<i8> = w.column(j).to_vec();
        exact(&xr, &wc, i64::from(zx), i64::from(zw))
    });
    assert!(
        want.iter().any(|&a| i32::try_from(a).is_err()),
        "the case must overflow i32"
    );

    // s_X·s_W/s_Y = 2^-40 maps |acc| < 2^46 into int8 exactly where it matters.
    let px = QuantParams::new(1.0, zx).unwrap();
    let pw = QuantParams::new(1.0, zw).unwrap();
    let py = QuantParams::new(2f64.powi(40), 0).unwrap();
    let layer = QuantizedLinear::from_quantized(w, pw, Bias::None, px, py).unwrap();
    assert_eq!(layer.accumulate(&x).unwrap(), want);
    let y = layer.forward(&x).unwrap();
    let want_y = want.mapv(|a| {
        (a as f64 * 2f64.powi(-40))
            .round_ties_even()
            .clamp(-128.0, 127.0) as i8
    });
    assert_eq!(y, want_y);
    assert_eq!(layer.forward_reference(&x).unwrap(), want_y);
    // A wrapped int32 accumulator would have given something else.
    let wrapped = want.mapv(|a| (a as i32) as f64 * 2f64.powi(-40));
    assert!(wrapped
        .iter()
        .zip(want.iter())
        .any(|(&wr, &a)| wr != a as f64 * 2f64.powi(-40)));
}

#[test]
fn all_minus_128_with_zero_points_far_outside_int8() {
    let x = Array2::from_elem((2, P), -128i8);
    let w = Array2::from_elem((P, 3), -128i8);
    check(x.clone(), w.clone(), 0, 0);
    check(x, w, 1000, -1000);
}

#[test]
fn alternating_extremes() {
    let x = Array2::from_shape_fn((3, P), |(i, k)| if (i + k) % 2 == 0 { 127i8 } else { -128 });
    let w = Array2::from_shape_fn((P, 2), |(k, j)| if (k + j) % 3 == 0 { 127i8 } else { -128 });
    check(x, w, -128, 127);
}

#[test]
fn random_full_range() {
    let mut rng = StdRng::seed_from_u64(7);
    let x = Array2::from_shape_simple_fn((2, P), || {
        if rng.random_bool(0.9) {
            -128i8
        } else {
            rng.random()
        }
    });
    let w = Array2::from_shape_simple_fn((P, 2), || {
        if rng.random_bool(0.9) {
            -128i8
        } else {
            rng.random()
        }
    });
    check(x, w, 5000, -70_000);
}

#[test]
fn int32_bias_is_added_exactly_to_a_large_accumulator() {
    let x = Array2::from_elem((1, P), -128i8);
    let w = Array2::from_elem((P, 1), -128i8);
    let unit = QuantParams::new(1.0, 0).unwrap();
    let bias = Bias::Int32(Array1::from(vec![i32::MIN]));
    let layer = QuantizedLinear::from_quantized(w, unit, bias, unit, unit).unwrap();
    let acc = layer.accumulate(&x).unwrap();
    assert_eq!(acc[[0, 0]], P as i64 * 16_384 + i64::from(i32::MIN));
}
