//! Every input a user can get wrong returns its `Err`, never a panic, with a
//! message that names the offending values.

use ndarray::{array, Array1, Array2};
use qlinear::{
    max_abs_error, sqnr_db, try_quantize, Bias, DynamicLinear, F32Bias, QuantError, QuantParams,
    QuantRange, QuantizedLinear, WeightParams,
};

fn unit() -> QuantParams {
    QuantParams::new(1.0, 0).unwrap()
}

fn layer(p: usize, n: usize) -> QuantizedLinear {
    QuantizedLinear::from_quantized(Array2::zeros((p, n)), unit(), Bias::None, unit(), unit())
        .unwrap()
}

#[test]
fn bad_real_ranges() {
    for (a, b) in [
        (1.0, 1.0),
        (3.0, -3.0),
        (f64::NAN, 1.0),
        (0.0, f64::NAN),
        (0.0, f64::INFINITY),
    ] {
        let e = QuantParams::from_range(a, b).unwrap_err();
        assert!(matches!(e, QuantError::InvalidRange { .. }), "{a} {b}: {e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("{a}")) && msg.contains(&format!("{b}")),
            "{msg}"
        );
    }
}

#[test]
fn bad_scales() {
    for s in [0.0, -0.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e-40] {
        let e = QuantParams::new(s, 0).unwrap_err();
        assert!(matches!(e, QuantError::InvalidScale { .. }), "{s}");
        // The value, in plain or (for extreme magnitudes) scientific form.
        let message = e.to_string();
        let named = message.contains(&format!("{s}")) || message.contains(&format!("{s:e}"));
        assert!(named && message.len() < 200, "{message}");
    }
    let e = QuantParams::from_range(-f64::MAX, f64::MAX).unwrap_err();
    assert!(
        e.to_string()
            .contains("[-1.7976931348623157e308, 1.7976931348623157e308]"),
        "{e}"
    );
}

#[test]
fn bad_target_range() {
    let e = QuantRange::new(127, -128).unwrap_err();
    assert_eq!(
        e,
        QuantError::InvalidTargetRange {
            qmin: 127,
            qmax: -128
        }
    );
    assert!(e.to_string().contains("[127, -128]"));
}

#[test]
fn params_built_by_struct_literal_are_validated_by_the_layer() {
    let bad = QuantParams {
        scale: -1.0,
        zero_point: 0,
    };
    for (w, x, y) in [
        (bad, unit(), unit()),
        (unit(), bad, unit()),
        (unit(), unit(), bad),
    ] {
        let e = QuantizedLinear::from_quantized(Array2::zeros((2, 2)), w, Bias::None, x, y);
        assert!(matches!(e, Err(QuantError::InvalidScale { scale }) if scale == -1.0));
    }
    let bias = Bias::Int8 {
        values: Array1::zeros(2),
        params: bad,
    };
    let e = QuantizedLinear::from_quantized(Array2::zeros((2, 2)), unit(), bias, unit(), unit());
    assert!(matches!(e, Err(QuantError::InvalidScale { .. })));
}

#[test]
fn x_columns_must_match_w_rows() {
    let l = layer(3, 4);
    let want = QuantError::InnerDimensionMismatch {
        x_cols: 5,
        w_rows: 3,
    };
    assert_eq!(l.forward(&Array2::<i8>::zeros((2, 5))).unwrap_err(), want);
    assert_eq!(
        l.forward_reference(&Array2::<i8>::zeros((2, 5)))
            .unwrap_err(),
        want
    );
    assert_eq!(
        l.accumulate(&Array2::<i8>::zeros((2, 5))).unwrap_err(),
        want
    );
    assert_eq!(
        l.forward_f32(&Array2::<f32>::zeros((2, 5))).unwrap_err(),
        want
    );
    let msg = want.to_string();
    assert!(msg.contains('5') && msg.contains('3'), "{msg}");
}

#[test]
fn bias_length_must_match_w_columns() {
    let w = Array2::<i8>::zeros((3, 4));
    let want = QuantError::LengthMismatch {
        what: "bias",
        expected: 4,
        found: 2,
    };
    let int8 = Bias::Int8 {
        values: Array1::zeros(2),
        params: unit(),
    };
    let e = QuantizedLinear::from_quantized(w.clone(), unit(), int8, unit(), unit());
    assert_eq!(e.unwrap_err(), want);
    let e =
        QuantizedLinear::from_quantized(w, unit(), Bias::Int32(Array1::zeros(2)), unit(), unit());
    assert_eq!(e.unwrap_err(), want);
    let wf = Array2::<f32>::zeros((3, 4));
    let b = Array1::<f32>::zeros(2);
    let e = QuantizedLinear::from_f32(&wf, unit(), F32Bias::Real(b.view()), unit(), unit());
    assert_eq!(e.unwrap_err(), want);
    let e = QuantizedLinear::from_f32(
        &wf,
        unit(),
        F32Bias::RealWithParams {
            values: b.view(),
            params: unit(),
        },
        unit(),
        unit(),
    );
    assert_eq!(e.unwrap_err(), want);
    assert!(want.to_string().contains("length 2") && want.to_string().contains("4 output columns"));
}

#[test]
fn nan_inputs_are_refused_where_a_result_is_promised() {
    let l = layer(2, 2);
    let e = l
        .forward_f32(&array![[0.0f32, 1.0], [f32::NAN, 0.0]])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        QuantError::NonFinite {
            what: "input",
            index: 2,
            value: f64::NAN
        }
        .to_string()
    );
    assert!(matches!(
        try_quantize(&array![f32::NAN], unit()),
        Err(QuantError::NonFinite { index: 0, .. })
    ));

    let w = array![[1.0f32, f32::NAN]];
    let e = QuantizedLinear::from_f32(&w, unit(), F32Bias::None, unit(), unit()).unwrap_err();
    assert!(matches!(
        e,
        QuantError::NonFinite {
            what: "weights",
            index: 1,
            ..
        }
    ));

    let w = array![[1.0f32, 2.0]];
    for bad in [f32::NAN, f32::INFINITY] {
        let b = array![0.0f32, bad];
        let e = QuantizedLinear::from_f32(&w, unit(), F32Bias::Real(b.view()), unit(), unit())
            .unwrap_err();
        assert!(
            matches!(
                e,
                QuantError::NonFinite {
                    what: "bias",
                    index: 1,
                    ..
                }
            ),
            "{e}"
        );
    }
    let b = array![f32::NAN, 0.0];
    let e = QuantizedLinear::from_f32(
        &w,
        unit(),
        F32Bias::RealWithParams {
            values: b.view(),
            params: unit(),
        },
        unit(),
        unit(),
    );
    assert!(matches!(
        e,
        Err(QuantError::NonFinite {
            what: "bias",
            index: 0,
            ..
        })
    ));
}

#[test]
fn int32_bias_that_does_not_fit_is_an_error_naming_the_column() {
    let w = array![[1.0f32, 2.0, 3.0]];
    let small = QuantParams::new(1e-3, 0).unwrap();
    let b = array![0.0f32, 1.0, 1e7];
    let e =
        QuantizedLinear::from_f32(&w, small, F32Bias::Real(b.view()), small, unit()).unwrap_err();
    assert!(
        matches!(e, QuantError::BiasOutOfRange { column: 2, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("column 2"));
}

#[test]
fn non_finite_requantization_multiplier_is_an_error() {
    let huge = QuantParams::new(1e200, 0).unwrap();
    let e = QuantizedLinear::from_quantized(Array2::zeros((1, 1)), huge, Bias::None, huge, unit());
    assert!(matches!(e, Err(QuantError::InvalidMultiplier { .. })));
    let tiny = QuantParams::new(1e-38, 0).unwrap();
    let enormous = QuantParams::new(1e300, 0).unwrap();
    let bias = Bias::Int8 {
        values: Array1::zeros(1),
        params: enormous,
    };
    let e = QuantizedLinear::from_quantized(Array2::zeros((1, 1)), unit(), bias, unit(), tiny);
    assert!(matches!(e, Err(QuantError::InvalidMultiplier { .. })));
}

#[test]
fn accumulator_that_could_overflow_i64_is_an_error() {
    let wp = QuantParams::new(1.0, i32::MIN).unwrap();
    let xp = QuantParams::new(1.0, i32::MAX).unwrap();
    let e = QuantizedLinear::from_quantized(Array2::zeros((4, 2)), wp, Bias::None, xp, unit())
        .unwrap_err();
    assert!(
        matches!(e, QuantError::AccumulatorOverflow { inner_dim: 4, .. }),
        "{e}"
    );
    // One row is still representable: (128 + 2^31 − 1)(128 + 2^31) < 2^63.
    assert!(
        QuantizedLinear::from_quantized(Array2::zeros((1, 2)), wp, Bias::None, xp, unit()).is_ok()
    );
}

#[test]
fn metrics_refuse_different_shapes() {
    let e = sqnr_db(&array![1.0f32, 2.0], &array![1.0f32]).unwrap_err();
    assert_eq!(
        e,
        QuantError::ShapeMismatch {
            left: vec![2],
            right: vec![1]
        }
    );
    assert!(max_abs_error(&array![[1.0f32]], &array![[1.0f32, 2.0]]).is_err());
}

#[test]
fn empty_dimensions_are_valid() {
    let b = Bias::Int32(array![5, -7]);
    let p0 =
        QuantizedLinear::from_quantized(Array2::zeros((0, 2)), unit(), b, unit(), unit()).unwrap();
    // p = 0: the result is the bias alone.
    assert_eq!(
        p0.forward(&Array2::<i8>::zeros((3, 0))).unwrap(),
        Array2::from_shape_fn((3, 2), |(_, j)| [5i8, -7][j])
    );
    assert_eq!(
        p0.forward(&Array2::<i8>::zeros((0, 0))).unwrap().shape(),
        &[0, 2]
    );
    let n0 = layer(3, 0);
    assert_eq!(
        n0.forward(&Array2::<i8>::zeros((2, 3))).unwrap().shape(),
        &[2, 0]
    );
    assert_eq!(
        n0.forward_f32(&Array2::<f32>::zeros((0, 3)))
            .unwrap()
            .shape(),
        &[0, 0]
    );
}

#[test]
fn empty_inputs_with_huge_axes_are_refused_not_panics() {
    // Arrays with no elements can have axes of any length; what the
    // operation would allocate for them is refused before it is tried.
    let huge = 1usize << 62;
    let too_large = |what: &'static str, shape: Vec<usize>| QuantError::TooLarge { what, shape };
    let p0 = layer(0, 4);
    let x = Array2::<i8>::zeros((huge, 0));
    assert_eq!(
        p0.forward(&x).unwrap_err(),
        too_large("output", vec![huge, 4])
    );
    assert_eq!(
        p0.accumulate(&x).unwrap_err(),
        too_large("output", vec![huge, 4])
    );
    assert_eq!(
        p0.forward_reference(&x).unwrap_err(),
        too_large("output", vec![huge, 4])
    );
    assert_eq!(
        p0.forward_f32(&Array2::<f32>::zeros((huge, 0)))
            .unwrap_err(),
        too_large("output", vec![huge, 4])
    );
    assert_eq!(
        qlinear::gemm::reference::accumulate(&x, &Array2::<i8>::zeros((0, 4)), 0, &[0; 4])
            .unwrap_err(),
        too_large("accumulator", vec![huge, 4])
    );
    // No output column: the result is empty whatever the batch.
    assert_eq!(layer(0, 0).forward(&x).unwrap().dim(), (huge, 0));

    let wide = Array2::<i8>::zeros((0, huge));
    let e = QuantizedLinear::from_quantized(wide.clone(), unit(), Bias::None, unit(), unit());
    assert_eq!(e.unwrap_err(), too_large("per-column terms", vec![huge]));
    assert_eq!(
        DynamicLinear::from_quantized(wide, unit(), None).unwrap_err(),
        too_large("per-column weight params", vec![huge])
    );
    assert_eq!(
        WeightParams::from(unit())
            .quantize(&Array2::<f32>::zeros((0, huge)))
            .unwrap_err(),
        too_large("per-column weight params", vec![huge])
    );

    let dynamic = DynamicLinear::from_quantized(Array2::zeros((0, 4)), unit(), None).unwrap();
    let xf = Array2::<f32>::zeros((huge, 0));
    assert_eq!(
        dynamic.forward(&xf).unwrap_err(),
        too_large("output", vec![huge, 4])
    );
    assert_eq!(
        dynamic.activation_params(xf.view()).unwrap_err(),
        too_large("activation params", vec![huge])
    );
    let message = p0.forward(&x).unwrap_err().to_string();
    assert!(message.contains("[4611686018427387904, 4]") && message.contains("split the batch"));
}

#[test]
fn fallible_quantizers_check_params_built_by_struct_literal() {
    let bad = QuantParams {
        scale: f64::NAN,
        zero_point: 0,
    };
    let x = array![1.0f32];
    assert!(matches!(
        try_quantize(&x, bad),
        Err(QuantError::InvalidScale { .. })
    ));
    assert!(matches!(
        qlinear::quantize_as::<i8, _, _>(&x, bad, QuantRange::INT8),
        Err(QuantError::InvalidScale { .. })
    ));
    for scale in [-0.1, 0.0, f64::NAN] {
        let out = QuantParams {
            scale,
            zero_point: 0,
        };
        let r = qlinear::activation::clamp_for_real_range(-1.0, 1.0, out, qlinear::ElemKind::Int8);
        assert!(matches!(r, Err(QuantError::InvalidScale { .. })), "{scale}");
    }
}
