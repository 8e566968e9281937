//! Property tests: random layers and inputs, every kernel equal to the
//! naive oracle; quantization error within half a step.

use ndarray::Array2;
use proptest::prelude::*;
use qlinear::{
    available_kernels, dequantize, quantize, Bias, DynamicActivations, DynamicLinear, ElemKind,
    FusedActivation, Granularity, QuantParams, QuantRange, QuantizedLinear, Requantizer, Rounding,
    Scheme, MIN_SCALE,
};

/// Scales from the smallest valid one to beyond f32, and invalid ones.
const SCALES: [f64; 14] = [
    MIN_SCALE,
    1e-30,
    1e-6,
    0.004,
    0.05,
    0.3,
    1.0,
    7.0,
    1e6,
    1e30,
    1e300,
    0.0,
    -1.0,
    f64::NAN,
];

/// Zero points inside int8 and uint8, just outside, and at the ends of i32.
const ZERO_POINTS: [i32; 10] = [
    0,
    3,
    -128,
    127,
    255,
    -129,
    1000,
    -70_000,
    i32::MAX,
    i32::MIN,
];

/// A fast deterministic bit stream for test data (xorshift64).
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

/// Mostly valid scales, sometimes invalid ones.
fn scale_index() -> impl Strategy<Value = usize> {
    prop_oneof![12 => 0usize..11, 1 => 11usize..14]
}

/// Mostly zero points near int8, sometimes far outside.
fn zero_point_index() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0usize..5, 1 => 5usize..10]
}

fn params(scale: usize, zero_point: usize) -> QuantParams {
    QuantParams {
        scale: SCALES[scale % SCALES.len()],
        zero_point: ZERO_POINTS[zero_point % ZERO_POINTS.len()],
    }
}

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
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Whatever the parameters and options, a layer is either refused with
    /// an error or computes exactly what the oracle computes; nothing
    /// panics. (Struct literals let any scale and zero point through.)
    #[test]
    fn extreme_layers_are_refused_or_exact(
        (m, p, n) in (1usize..6, 0usize..40, 1usize..20),
        seed in any::<u64>(),
        (sx, sw, sy) in (scale_index(), scale_index(), scale_index()),
        (zx, zw, zy) in (zero_point_index(), zero_point_index(), zero_point_index()),
        (mode, activation, options) in (any::<u8>(), 0u8..4, any::<u8>()),
        output_shift in prop::option::weighted(0.75, 0i32..24),
        bias in prop::option::of(prop_oneof![-100_000i32..100_000, any::<i32>()]),
    ) {
        let mut bits = xorshift(seed);
        let mut next = move || bits() as i8;
        let w = Array2::from_shape_simple_fn((p, n), &mut next);
        let x = Array2::from_shape_simple_fn((m, p), &mut next);
        let bias = bias.map_or(Bias::None, |b| Bias::Int32(vec![b; n].into()));
        let (px, pw) = (params(sx, zx), params(sw, zw));
        // Mostly an output scale of s_X·s_W·2^k, so that for some k the
        // outputs spread over the range instead of all clamping.
        let py = match output_shift {
            Some(k) => QuantParams { scale: px.scale * pw.scale * 2f64.powi(k), zero_point: -5 },
            None => params(sy, zy),
        };
        let built = QuantizedLinear::from_quantized(w, pw, bias, px, py)
            .and_then(|l| l.with_requantizer(requantizer(mode)))
            .and_then(|l| l.with_fused_activation(match activation {
                0 => FusedActivation::None,
                1 => FusedActivation::Relu,
                2 => FusedActivation::Relu6,
                _ => FusedActivation::ReluN1To1,
            }))
            .and_then(|l| if options & 1 == 1 { l.with_input_range(QuantRange::INT8_REDUCED) } else { Ok(l) });
        let Ok(layer) = built else { return Ok(()) };
        let x = if options & 1 == 1 { x.mapv(|v| v >> 1) } else { x };
        match (layer.forward(&x), layer.forward_reference(&x)) {
            (Ok(y), Ok(want)) => prop_assert_eq!(y, want),
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "forward {:?} but reference {:?}", a, b),
        }
        if options & 2 == 2 {
            let u8_layer = layer.with_activation_type(ElemKind::Uint8);
            if let Ok(l) = u8_layer {
                let xu = x.mapv(|v| (i16::from(v) + 128) as u8);
                match (l.forward(&xu), l.forward_reference(&xu)) {
                    (Ok(y), Ok(want)) => prop_assert_eq!(y, want),
                    (Err(a), Err(b)) => prop_assert_eq!(a, b),
                    (a, b) => prop_assert!(false, "u8: forward {:?} but reference {:?}", a, b),
                }
            }
        }
    }

    /// Dynamic layers on finite input either refuse the layer or the call,
    /// or return finite-or-infinite outputs: never NaN, never a panic.
    #[test]
    fn dynamic_layers_never_return_nan_for_finite_input(
        (m, p, n) in (0usize..5, 0usize..12, 0usize..6),
        seed in any::<u64>(),
        (sw, zw) in (scale_index(), zero_point_index()),
        magnitude in -45i32..=38,
        (per_row, scheme, unsigned) in (any::<bool>(), 0u8..3, any::<bool>()),
        bias in prop::option::of(-1e30f32..1e30),
    ) {
        let mut next = xorshift(seed);
        let w = Array2::from_shape_simple_fn((p, n), || next() as i8);
        let x = Array2::from_shape_simple_fn((m, p), || {
            (next() as i32 as f32 / i32::MAX as f32) * 10f32.powi(magnitude)
        });
        let activations = DynamicActivations {
            granularity: if per_row { Granularity::PerRow } else { Granularity::PerTensor },
            scheme: [Scheme::Notebook, Scheme::Affine, Scheme::Symmetric][usize::from(scheme)],
            range: if unsigned { QuantRange::UINT8 } else { QuantRange::INT8 },
        };
        let layer = DynamicLinear::from_quantized(w, params(sw, zw), bias.map(|b| vec![b; n].into()))
            .and_then(|l| l.with_activations(activations));
        if let Ok(y) = layer.and_then(|l| l.forward(&x)) {
            prop_assert!(y.iter().all(|v| !v.is_nan()), "{:?}", y);
        }
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
        let mut bits = xorshift(seed);
        let mut next = move || bits() as i8;
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
