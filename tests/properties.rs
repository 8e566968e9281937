//! Property tests: random layers and inputs, every kernel equal to the
//! naive oracle; quantization error within half a step.

use ndarray::Array2;
use proptest::prelude::*;
use qlinear::{
    available_kernels, dequantize, quantize, Bias, QuantParams, QuantRange, QuantizedLinear,
    Requantizer, Rounding,
};

fn requantizer(i: u8) -> Requantizer {
    match i % 6 {
        0 => Requantizer::Float64,
        1 => Requantizer::TfliteReference,
        2 => Requantizer::FixedPoint(Rounding::HalfUp),
        3 => Requantizer::FixedPoint(Rounding::Double),
        4 => Requantizer::FixedPoint(Rounding::Single),
        _ => Requantizer::Float32,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn every_kernel_equals_the_oracle(
        (m, p, n) in (0usize..12, 0usize..80, 0usize..40),
        seed in any::<u64>(),
        zx in -200i32..200,
        zw in -130i32..130,
        zy in -20i32..20,
        scale_exp in -9i32..-3,
        mode in any::<u8>(),
    ) {
        let mut s = seed | 1;
        let mut next = move || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s as i8 };
        let w = Array2::from_shape_simple_fn((p, n), &mut next);
        let x = Array2::from_shape_simple_fn((m, p), &mut next);
        let px = QuantParams::new(0.05, zx).unwrap();
        let pw = QuantParams::new(0.02, zw).unwrap();
        let py = QuantParams::new(0.05 * 0.02 * 2f64.powi(-scale_exp), zy).unwrap();
        let bias = Bias::Int32((0..n).map(|j| (j as i32 - 7) * 311).collect());
        let layer = QuantizedLinear::from_quantized(w, pw, bias, px, py).unwrap()
            .with_requantizer(requantizer(mode)).unwrap();
        let want = layer.forward_reference(&x).unwrap();
        for kernel in available_kernels() {
            if kernel.contains("u7") { continue; }
            let l = layer.clone().with_kernel(kernel).unwrap();
            prop_assert_eq!(&l.forward(&x).unwrap(), &want, "{}", kernel);
        }
    }

    #[test]
    fn quantization_error_is_at_most_half_a_step(
        alpha in -1e4f64..0.0,
        width in 1e-3f64..1e4,
        t in 0.0f64..=1.0,
    ) {
        let beta = alpha + width;
        let p = QuantParams::affine(alpha, beta, QuantRange::INT8).unwrap();
        let x = (alpha + t * width) as f32;
        let back = dequantize(&quantize(&ndarray::array![x], p), p)[0];
        let err = (f64::from(back) - f64::from(x)).abs();
        // Half a step, plus the f32 roundings of (5) and (6).
        let slack = p.scale * (384.0 + 2.0 * f64::from(p.zero_point.unsigned_abs())) * 2f64.powi(-24)
            + f64::from(x.abs()) * 2f64.powi(-23);
        prop_assert!(err <= p.scale / 2.0 + slack, "x={} err={} s={}", x, err, p.scale);
    }
}
