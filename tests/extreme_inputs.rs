//! Extreme but valid inputs: each section is a class of input that once
//! gave a wrong number without an error, or aborted the process where an
//! `Err` is promised. Expected values come from the equations, worked by
//! hand in the comments, never from the crate.

use ndarray::{array, Array2};
use qlinear::requant::{multiply_by_quantized_multiplier, QuantizedMultiplier};
use qlinear::{
    available_kernels, quantize, quantize_as, try_dequantize, try_quantize, Bias, DynamicLinear,
    MinMaxObserver, Observer, PerChannelMinMaxObserver, QuantError, QuantParams, QuantRange,
    QuantizedLinear, Requantizer, Rounding,
};

fn unit() -> QuantParams {
    QuantParams::new(1.0, 0).unwrap()
}

fn is_too_large<T: std::fmt::Debug>(r: Result<T, QuantError>, what: &str) {
    match r {
        Err(QuantError::TooLarge { what: w, .. }) => assert_eq!(w, what),
        other => panic!("expected TooLarge({what}), got {other:?}"),
    }
}

// ---------------------------------------------------------------------
// Fixed-point multipliers of 2^30 and more with single rounding.

/// `p_X = p_W = (1, 0)`, `p_Y = (2^-31, −2^30)`: `M = 2^31`, so
/// `y = x·2^31 − 2^30`: −2^30 → −128, 2^30 → 127, 3·2^30 → 127. TFLite's
/// single rounding replaces a shift above 30 by `(2^31 − 1, 30)`, which
/// makes x = 1 come out as `2^30 − 2^30 = 0`.
/// The 1×1 layer `W = [[1]]`, `p_X = p_W = (1, 0)`, output params `out`,
/// with single rounding: on `x`, every kernel that takes it and the
/// notebook's f64 requantizer give `want`.
fn single_rounding_gives(out: QuantParams, x: Array2<i8>, want: Array2<i8>) {
    let base = QuantizedLinear::from_quantized(array![[1i8]], unit(), Bias::None, unit(), out)
        .unwrap()
        .with_requantizer(Requantizer::FixedPoint(Rounding::Single))
        .unwrap();
    let mut kernels = 0;
    for name in available_kernels() {
        let Ok(layer) = base.clone().with_kernel(name) else {
            continue; // the 7-bit kernel refuses a full-range layer
        };
        assert_eq!(layer.kernel_name(), name);
        assert_eq!(layer.forward(&x).unwrap(), want, "{name}");
        kernels += 1;
    }
    assert!(kernels >= 1);
    let f64_layer = base.with_requantizer(Requantizer::Float64).unwrap();
    assert_eq!(f64_layer.forward(&x).unwrap(), want);
}

/// `p_Y = (2^-31, −2^30)`: `M = 2^31`, so `y = x·2^31 − 2^30`: −2^30 →
/// −128, 2^30 → 127, 3·2^30 → 127. TFLite's single rounding replaces a
/// shift above 30 by `(2^31 − 1, 30)`, which makes x = 1 come out as
/// `2^30 − 2^30 = 0`.
#[test]
fn single_rounding_takes_multipliers_of_2_pow_30_and_more_exactly() {
    let out = QuantParams::new(2f64.powi(-31), -(1 << 30)).unwrap();
    let x = array![[0i8], [1], [2], [-1]];
    single_rounding_gives(out, x, array![[-128i8], [127], [127], [-128]]);
}

/// `M = 2^25`, `z_Y = −2^31`: `y = x·2^25 − 2^31`, so x = 63, 64, 65 give
/// −2^25 → −128, 0 and 2^25 → 127. A product saturated to `i32` before
/// the zero point is added (TFLite's i32 arithmetic) gives −1 for 64 and
/// 65: the output lands at the wrong end of the range.
#[test]
fn single_rounding_adds_the_zero_point_to_the_true_product() {
    let out = QuantParams::new(2f64.powi(-25), i32::MIN).unwrap();
    let x = array![[63i8], [64], [65], [127]];
    single_rounding_gives(out, x, array![[-128i8], [0], [127], [127]]);
}

#[test]
fn fixed_point_multiply_is_the_true_product_past_a_shift_of_30() {
    let m = |multiplier, shift| QuantizedMultiplier { multiplier, shift };
    let single = Rounding::Single;
    // 1·(2^31 − 1)·2^0.
    assert_eq!(
        multiply_by_quantized_multiplier(1, m(i32::MAX, 31), single),
        i32::MAX
    );
    assert_eq!(
        multiply_by_quantized_multiplier(-1, m(i32::MAX, 31), single),
        -i32::MAX
    );
    // 1·2^30·2^0 = 2^30, −2·2^30 = −2^31.
    assert_eq!(
        multiply_by_quantized_multiplier(1, m(1 << 30, 31), single),
        1 << 30
    );
    assert_eq!(
        multiply_by_quantized_multiplier(-2, m(1 << 30, 31), single),
        i32::MIN
    );
    // 3·2^30·2^-1 = 1.5·2^30, exact; and 2^30·2^1 = 2^31 saturates.
    assert_eq!(
        multiply_by_quantized_multiplier(3, m(1 << 30, 30), single),
        3 << 29
    );
    assert_eq!(
        multiply_by_quantized_multiplier(1, m(1 << 30, 32), single),
        i32::MAX
    );
    // Doubling roundings: x·2^31 is taken exactly, not saturated first:
    // 2·2^31·2^30/2^31 = 2^31 saturates; 1·2^31·2^30/2^31 = 2^30.
    for r in [Rounding::HalfUp, Rounding::Double] {
        assert_eq!(
            multiply_by_quantized_multiplier(2, m(1 << 30, 31), r),
            i32::MAX
        );
        assert_eq!(
            multiply_by_quantized_multiplier(1, m(1 << 30, 31), r),
            1 << 30
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-3, m(1 << 30, 31), r),
            i32::MIN
        );
    }
}

// ---------------------------------------------------------------------
// Infinities at scales whose reciprocal is 0 in f32.

/// `f32(1/1e46)` is 0, so `∞·f32(1/s)` is NaN; infinities still saturate.
#[test]
fn infinities_saturate_at_any_scale() {
    let x = array![f32::INFINITY, f32::NEG_INFINITY, 1e30, f32::NAN];
    for scale in [1e46, 1e300, f64::MAX, 1.0] {
        let p = QuantParams::new(scale, 3).unwrap();
        let q = quantize(&x, p);
        assert_eq!((q[0], q[1], q[3]), (127, -128, 3), "scale {scale}");
        let u = quantize_as::<u8, _, _>(&x, p, QuantRange::UINT8).unwrap();
        assert_eq!((u[0], u[1]), (255, 0), "scale {scale}");
        let n = quantize_as::<i8, _, _>(&x, p, QuantRange::INT8_NARROW).unwrap();
        assert_eq!((n[0], n[1]), (127, -127), "scale {scale}");
        let t = try_quantize(&x.slice(ndarray::s![..3]), p).unwrap();
        assert_eq!((t[0], t[1]), (127, -128), "scale {scale}");
    }
    // Through a layer: ∞ quantizes to 127 and −∞ to −128, so y = x·1.
    let big = QuantParams::new(1e46, 0).unwrap();
    let layer =
        QuantizedLinear::from_quantized(array![[1i8]], unit(), Bias::None, big, big).unwrap();
    let y = layer
        .forward_f32(&array![[f32::INFINITY], [f32::NEG_INFINITY], [0.0]])
        .unwrap();
    // 127·1e46 and −128·1e46 overflow f32 to ±∞; 0 stays 0.
    assert_eq!(y, array![[f32::INFINITY], [f32::NEG_INFINITY], [0.0]]);
}

// ---------------------------------------------------------------------
// Custom ranges as wide as i32.

/// With `[qmin, qmax] = [−2^31, 2^31 − 1]`, (4) is
/// `z = trunc((β·qmin − α·qmax)/(β − α))`: for `[0, 1e308]` exactly
/// `qmin`; for `[−1e305, 1e305]` it is `−1/2`, truncated to 0. Both
/// products overflow f64 as written.
#[test]
fn full_i32_ranges_give_their_zero_points() {
    let r = QuantRange::new(i32::MIN, i32::MAX).unwrap();
    let p = QuantParams::from_range_in(0.0, 1e308, r).unwrap();
    assert_eq!(p.zero_point, i32::MIN);
    assert_eq!(p.scale, 1e308 / 4_294_967_295.0);
    let p = QuantParams::from_range_in(-1e305, 1e305, r).unwrap();
    assert_eq!(p.zero_point, 0);
    let p = QuantParams::from_range_in(-f64::MAX / 2.0, f64::MAX / 2.0, r).unwrap();
    assert_eq!(p.zero_point, 0);
    let p = QuantParams::from_range_in(-1e308, 0.0, r).unwrap();
    assert_eq!(p.zero_point, i32::MAX);
    // The 8-bit ranges are unchanged: the notebook's own example.
    let p = QuantParams::from_range(-100.0, 80.0).unwrap();
    assert_eq!(p.zero_point, 13);
}

// ---------------------------------------------------------------------
// Sizes below isize::MAX bytes that no machine can allocate.

/// A 0×4 layer on a 2^56 × 0 batch: 2^58 output bytes pass the
/// `isize::MAX` check, and the allocator then fails.
#[test]
fn outputs_no_machine_can_hold_are_errors() {
    let huge = 1usize << 56;
    let p0 =
        QuantizedLinear::from_quantized(Array2::zeros((0, 4)), unit(), Bias::None, unit(), unit())
            .unwrap();
    let x = Array2::<i8>::zeros((huge, 0));
    is_too_large(p0.forward(&x), "output");
    is_too_large(p0.accumulate(&x), "accumulator");
    is_too_large(p0.forward_reference(&x), "accumulator");
    is_too_large(p0.forward_f32(&Array2::<f32>::zeros((huge, 0))), "output");
    let dynamic = DynamicLinear::from_quantized(Array2::zeros((0, 4)), unit(), None).unwrap();
    is_too_large(dynamic.forward(&Array2::<f32>::zeros((huge, 0))), "output");
}

/// A broadcast view of 2^50 rows holds 16 bytes; a pass over it would run
/// for days. Each call fails on the allocation before its first pass.
#[test]
fn broadcast_batches_fail_before_any_pass_over_them() {
    let rows = 1usize << 50;
    let one = Array2::<f32>::zeros((1, 4));
    let x = one.broadcast((rows, 4)).unwrap();
    let layer =
        QuantizedLinear::from_quantized(Array2::zeros((4, 4)), unit(), Bias::None, unit(), unit())
            .unwrap();
    is_too_large(layer.forward_f32(&x), "output");
    let dynamic = DynamicLinear::from_quantized(Array2::zeros((4, 4)), unit(), None).unwrap();
    is_too_large(dynamic.forward(&x), "output");
    is_too_large(try_quantize(&x, unit()), "quantized array");
    is_too_large(
        quantize_as::<u8, _, _>(&x, unit(), QuantRange::UINT8),
        "quantized array",
    );
    let xq = Array2::<i8>::zeros((1, 4));
    let xq = xq.broadcast((rows, 4)).unwrap();
    is_too_large(layer.forward(&xq), "output");
    is_too_large(try_dequantize(&xq, unit()), "dequantized array");
    // Weights: a broadcast 2^40 × 2^10 real matrix.
    let w = Array2::<f32>::zeros((1, 1 << 10));
    let w = w.broadcast((1 << 40, 1 << 10)).unwrap();
    is_too_large(
        qlinear::WeightParams::from(unit()).quantize(&w),
        "quantized weights",
    );
    // A per-channel observer over 2^62 channels.
    let c = Array2::<f32>::zeros((1, 1));
    let c = c.broadcast((1, 1 << 62)).unwrap();
    is_too_large(
        PerChannelMinMaxObserver::new().observe(&c),
        "per-channel statistics",
    );
}

/// `Observer::observe` returns nothing, so a view whose copy cannot be
/// allocated is its documented panic, not an abort.
#[test]
#[should_panic(expected = "cannot be allocated")]
fn observing_an_uncopyable_view_is_the_documented_panic() {
    let one = Array2::<f32>::zeros((1, 1));
    let view = one.broadcast((1 << 31, 1 << 31)).unwrap();
    MinMaxObserver::new().observe(&view);
}
