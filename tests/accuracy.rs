//! The dequantized output of a layer against the real-valued reference: every
//! element within the error bound (15) of `src/linear.rs`, which the scales
//! imply — and the bound is nearly reached, so it is not a loose tolerance.

use ndarray::{Array1, Array2};
use qlinear::{F32Bias, QuantParams, QuantizedLinear};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const U32: f64 = 1.0 / 16_777_216.0; // 2^-24, f32 unit roundoff

/// Per-element quantization error of (5) for values inside the range.
fn element_error(p: QuantParams) -> f64 {
    p.scale * (0.5 + (384.0 + 2.0 * f64::from(p.zero_point.unsigned_abs())) * U32)
}

/// Params for data within [lo, hi], with a margin so nothing is clipped by
/// the truncated zero point.
fn params_for(lo: f64, hi: f64) -> QuantParams {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let margin = (hi - lo) * 0.02 + 1e-6;
    QuantParams::from_range(lo - margin, hi + margin).unwrap()
}

fn min_max<'a>(v: impl Iterator<Item = &'a f32>) -> (f64, f64) {
    v.fold((f64::MAX, f64::MIN), |(a, b), &x| {
        (a.min(f64::from(x)), b.max(f64::from(x)))
    })
}

/// One random layer; returns the largest ratio error/bound seen.
fn run_case(rng: &mut StdRng, int8_bias: bool) -> f64 {
    let m = rng.random_range(1..9);
    let p = rng.random_range(1..300);
    let n = rng.random_range(1..20);
    let xs = 10f64.powf(rng.random_range(-2.0..2.0));
    let ws = 10f64.powf(rng.random_range(-2.0..1.0));
    let shift = rng.random_range(-0.5..0.5);
    let x =
        Array2::from_shape_simple_fn((m, p), || ((rng.random::<f64>() - 0.5 + shift) * xs) as f32);
    let w = Array2::from_shape_simple_fn((p, n), || ((rng.random::<f64>() - 0.5) * ws) as f32);
    let b =
        Array1::from_shape_simple_fn(n, || ((rng.random::<f64>() - 0.5) * xs * ws * 4.0) as f32);

    let px = {
        let (lo, hi) = min_max(x.iter());
        params_for(lo, hi)
    };
    let pw = {
        let (lo, hi) = min_max(w.iter());
        params_for(lo, hi)
    };
    let pb = {
        let (lo, hi) = min_max(b.iter());
        params_for(lo, hi)
    };
    // The exact result in f64 from the f32 inputs, and its range for s_Y.
    let x64 = x.mapv(f64::from);
    let w64 = w.mapv(f64::from);
    let y = x64.dot(&w64) + &b.mapv(f64::from);
    let (lo, hi) = y
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, c), &v| (a.min(v), c.max(v)));
    let py = {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let margin = (hi - lo) * 0.1 + 1e-6;
        QuantParams::from_range(lo - margin, hi + margin).unwrap()
    };
    let bias = if int8_bias {
        F32Bias::RealWithParams {
            values: b.view(),
            params: pb,
        }
    } else {
        F32Bias::Real(b.view())
    };
    let layer = QuantizedLinear::from_f32(&w, pw, bias, px, py).unwrap();
    let y_dq = layer.forward_f32(&x).unwrap();

    let (ex, ew) = (element_error(px), element_error(pw));
    let eb = if int8_bias {
        element_error(pb)
    } else {
        px.scale * pw.scale / 2.0
    };
    let mut worst = 0.0f64;
    for i in 0..m {
        for j in 0..n {
            let mut bound = py.scale / 2.0 + eb;
            let mut magnitude = f64::from(b[j].abs());
            for k in 0..p {
                bound += ex * w64[[k, j]].abs() + ew * x64[[i, k]].abs() + ex * ew;
                magnitude += (x64[[i, k]] * w64[[k, j]]).abs();
            }
            let got = f64::from(y_dq[[i, j]]);
            // f32 rounding of the dequantized output, and f64 rounding in the
            // requantizer and in this test's own sums.
            bound += got.abs() * U32
                + (magnitude + py.scale * f64::from(py.zero_point.unsigned_abs())) * 1e-14;
            let err = (got - y[[i, j]]).abs();
            assert!(
                err <= bound,
                "({i},{j}) of {m}×{p}×{n}: error {err} > bound {bound}"
            );
            worst = worst.max(err / bound);
        }
    }
    worst
}

#[test]
fn dequantized_output_is_within_the_bound_the_scales_imply() {
    let mut rng = StdRng::seed_from_u64(2026);
    let mut tightest = 0.0f64;
    for case in 0..200 {
        tightest = tightest.max(run_case(&mut rng, case % 2 == 0));
    }
    // The bound is reached to within a factor of two somewhere: it is tight.
    assert!(
        tightest > 0.5,
        "largest error/bound ratio was only {tightest}"
    );
}
