//! Production schemes: per-channel weights, uint8 activations, dynamic
//! quantization, requantizer errors.

use ndarray::{array, Array1, Array2, Axis};
use qlinear::gemm::reference;
use qlinear::{
    available_kernels, quantize_as, sqnr_db, Bias, DynamicActivations, DynamicLinear, ElemKind,
    F32Bias, Granularity, QuantError, QuantParams, QuantRange, QuantizedLinear, Requantizer,
    Rounding, Scheme, WeightLayout, WeightParams, MIN_SCALE,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn uniform(
    rng: &mut StdRng,
    rows: usize,
    cols: usize,
    scale: impl Fn(usize) -> f32,
) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(_, j)| {
        (rng.random::<f32>() * 2.0 - 1.0) * scale(j)
    })
}

/// Weights whose columns span four orders of magnitude.
fn skewed_weights(rng: &mut StdRng) -> Array2<f32> {
    uniform(rng, 256, 64, |j| 10f32.powf(-2.0 + 4.0 * j as f32 / 63.0))
}

/// TFLite's weights: symmetric on [-127, 127], per output column or for
/// the whole matrix.
fn symmetric_weight_params(w: &Array2<f32>, per_channel: bool) -> WeightParams {
    let range = QuantRange::INT8_NARROW;
    if per_channel {
        WeightParams::per_channel(w, WeightLayout::InOut, Scheme::Symmetric, range)
    } else {
        WeightParams::per_tensor(w, Scheme::Symmetric, range)
    }
    .unwrap()
}

#[test]
fn per_channel_weights_beat_per_tensor_on_columns_of_different_ranges() {
    let mut rng = StdRng::seed_from_u64(3);
    let w = skewed_weights(&mut rng);
    let mut db = Vec::new();
    for per_channel in [false, true] {
        let params = symmetric_weight_params(&w, per_channel);
        let w_q = params.quantize(&w).unwrap();
        let w_dq = Array2::from_shape_fn(w.dim(), |(k, j)| {
            let p = params.channel(j).unwrap();
            (p.scale * f64::from(w_q[[k, j]])) as f32
        });
        db.push(sqnr_db(&w, &w_dq).unwrap());
    }
    println!(
        "weight SQNR per tensor {:.2} dB, per channel {:.2} dB",
        db[0], db[1]
    );
    assert!(
        db[1] > db[0] + 10.0,
        "per-channel {} vs per-tensor {}",
        db[1],
        db[0]
    );

    // The same holds for the layer's output.
    let x = uniform(&mut rng, 32, 256, |_| 1.0);
    let b = Array1::zeros(64);
    let exact = x.dot(&w);
    let px = QuantParams::affine(-1.0, 1.0, QuantRange::INT8).unwrap();
    let (lo, hi) = exact
        .iter()
        .fold((0f32, 0f32), |(a, c), &v| (a.min(v), c.max(v)));
    let py = QuantParams::affine(f64::from(lo), f64::from(hi), QuantRange::INT8).unwrap();
    let mut out_db = Vec::new();
    for per_channel in [false, true] {
        let pw = symmetric_weight_params(&w, per_channel);
        let layer = QuantizedLinear::from_f32(&w, pw, F32Bias::Real(b.view()), px, py).unwrap();
        let acc = layer
            .accumulate(&quantize_as::<i8, _, _>(&x, px, QuantRange::INT8).unwrap())
            .unwrap();
        // Compare the accumulator dequantized, to isolate the weight error.
        let y = Array2::from_shape_fn(acc.dim(), |(i, j)| {
            (acc[[i, j]] as f64 * px.scale * layer.weight_params().channel(j).unwrap().scale) as f32
        });
        out_db.push(sqnr_db(&exact, &y).unwrap());
    }
    println!(
        "layer SQNR per tensor {:.2} dB, per channel {:.2} dB",
        out_db[0], out_db[1]
    );
    assert!(out_db[1] > out_db[0] + 3.0, "{out_db:?}");
}

#[test]
fn per_channel_params_are_validated() {
    let p = QuantParams::new(0.1, 0).unwrap();
    let e = QuantizedLinear::from_quantized(Array2::zeros((3, 4)), vec![p; 3], Bias::None, p, p)
        .unwrap_err();
    assert_eq!(
        e,
        QuantError::LengthMismatch {
            what: "per-channel weight params",
            expected: 4,
            found: 3
        }
    );
    let bad = QuantParams {
        scale: 0.0,
        zero_point: 0,
    };
    let e = QuantizedLinear::from_quantized(Array2::zeros((3, 2)), vec![p, bad], Bias::None, p, p)
        .unwrap_err();
    assert!(matches!(e, QuantError::InvalidScale { .. }));
}

#[test]
fn int32_bias_is_quantized_per_channel_and_overflow_names_the_column() {
    let w = array![[1.0f32, 1.0]];
    let pw = WeightParams::PerChannel(vec![
        QuantParams::new(0.5, 0).unwrap(),
        QuantParams::new(0.25, 0).unwrap(),
    ]);
    let px = QuantParams::new(0.5, 0).unwrap();
    let b = array![1.0f32, 1.0];
    let layer = QuantizedLinear::from_f32(&w, pw.clone(), F32Bias::Real(b.view()), px, px).unwrap();
    // 1/(0.5·0.5) = 4 and 1/(0.5·0.25) = 8.
    assert_eq!(layer.bias(), &Bias::Int32(array![4, 8]));
    let huge = array![0.0f32, 1e9];
    let e = QuantizedLinear::from_f32(&w, pw, F32Bias::Real(huge.view()), px, px).unwrap_err();
    assert!(
        matches!(e, QuantError::BiasOutOfRange { column: 1, .. }),
        "{e}"
    );
}

#[test]
fn uint8_activations_equal_the_int8_layer_shifted_by_128() {
    let mut rng = StdRng::seed_from_u64(5);
    let w = Array2::from_shape_simple_fn((37, 19), || rng.random::<i8>());
    let x_u8 = Array2::from_shape_simple_fn((9, 37), || rng.random::<u8>());
    let x_i8 = x_u8.mapv(|v| (i16::from(v) - 128) as i8);
    let pw = QuantParams::new(0.01, 3).unwrap();
    for requantizer in [
        Requantizer::TfliteReference,
        Requantizer::FixedPoint(Rounding::Double),
        Requantizer::Float32,
    ] {
        // Zero points 140 (u8) and 12 (i8) describe the same real values;
        // these requantizers add the output zero point after rounding, so
        // shifting it by 128 shifts the output by 128.
        let u = QuantizedLinear::from_quantized(
            w.clone(),
            pw,
            Bias::None,
            QuantParams::new(0.02, 140).unwrap(),
            QuantParams::new(0.5, 130).unwrap(),
        )
        .and_then(|l| l.with_activation_type(ElemKind::Uint8))
        .and_then(|l| l.with_requantizer(requantizer))
        .unwrap();
        let s = QuantizedLinear::from_quantized(
            w.clone(),
            pw,
            Bias::None,
            QuantParams::new(0.02, 12).unwrap(),
            QuantParams::new(0.5, 2).unwrap(),
        )
        .and_then(|l| l.with_requantizer(requantizer))
        .unwrap();
        let y_u = u.forward(&x_u8).unwrap();
        let y_s = s.forward(&x_i8).unwrap();
        assert_eq!(
            y_u.mapv(|v| i16::from(v) - 128),
            y_s.mapv(i16::from),
            "{requantizer:?}"
        );
        assert_eq!(u.accumulate(&x_u8).unwrap(), s.accumulate(&x_i8).unwrap());
        assert!(y_u.iter().any(|&v| v > 0 && v < 255));
    }
    // The wrong type is an error, not a reinterpretation.
    let s = QuantizedLinear::from_quantized(w, pw, Bias::None, pw, pw).unwrap();
    assert!(matches!(
        s.forward(&x_u8),
        Err(QuantError::ActivationType { .. })
    ));
}

#[test]
fn reduced_input_ranges_are_enforced() {
    let p = QuantParams::new(1.0, 0).unwrap();
    let layer = QuantizedLinear::from_quantized(Array2::ones((3, 2)), p, Bias::None, p, p)
        .and_then(|l| l.with_input_range(QuantRange::INT8_REDUCED))
        .unwrap();
    assert_eq!(
        layer.forward(&array![[63i8, -64, 0]]).unwrap(),
        array![[-1i8, -1]]
    );
    let e = layer.forward(&array![[1i8, 2, 64]]).unwrap_err();
    assert_eq!(
        e,
        QuantError::InputOutOfRange {
            index: 2,
            value: 64,
            qmin: -64,
            qmax: 63
        }
    );
    assert!(layer.forward_reference(&array![[1i8, 2, 64]]).is_err());
    // forward_f32 quantizes into the declared range instead.
    let y = layer.forward_f32(&array![[100.0f32, 0.0, 0.0]]).unwrap();
    assert_eq!(y, array![[63.0f32, 63.0]]);
    assert!(matches!(
        QuantizedLinear::from_quantized(Array2::ones((1, 1)), p, Bias::None, p, p)
            .and_then(|l| l.with_input_range(QuantRange::UINT8)),
        Err(QuantError::InvalidTargetRange { .. })
    ));
}

#[test]
fn invalid_clamps_and_multipliers_are_errors() {
    let p = QuantParams::new(1.0, 0).unwrap();
    let layer =
        || QuantizedLinear::from_quantized(Array2::ones((2, 2)), p, Bias::None, p, p).unwrap();
    for (lo, hi) in [(5, 4), (-129, 0), (0, 128)] {
        assert!(
            matches!(
                layer().with_output_clamp(lo, hi),
                Err(QuantError::InvalidClamp { .. })
            ),
            "{lo} {hi}"
        );
    }
    assert_eq!(
        layer()
            .with_output_clamp(-3, 3)
            .unwrap()
            .forward(&array![[9i8, 9]])
            .unwrap(),
        array![[3i8, 3]]
    );
    // M = 2^40 cannot be a HalfUp multiplier (its left shift leaves i32).
    let tiny = QuantParams::new(2f64.powi(-40), 0).unwrap();
    let big =
        QuantizedLinear::from_quantized(Array2::ones((2, 2)), p, Bias::None, p, tiny).unwrap();
    for r in [Rounding::HalfUp, Rounding::Double] {
        assert!(matches!(
            big.clone().with_requantizer(Requantizer::FixedPoint(r)),
            Err(QuantError::LeftShiftOverflow { .. })
        ));
    }
    // Every multiplier from 2^31 up to the largest one f32 scales allow
    // (2^126, with s_Y = MIN_SCALE): the shift check once let 256·2^k past
    // for k ≥ 120, where the product's bits all fall off a u128, and the
    // lanes then wrapped.
    let mut tiny_scales: Vec<f64> = (31..=126).map(|k| 2f64.powi(-k)).collect();
    tiny_scales.push(MIN_SCALE);
    for s_y in tiny_scales {
        let out = QuantParams::new(s_y, 0).unwrap();
        let l = QuantizedLinear::from_quantized(Array2::ones((2, 2)), p, Bias::None, p, out);
        for r in [Rounding::HalfUp, Rounding::Double] {
            let built = l
                .clone()
                .unwrap()
                .with_requantizer(Requantizer::FixedPoint(r));
            assert!(
                matches!(built, Err(QuantError::LeftShiftOverflow { .. })),
                "s_Y = {s_y:e}, {r:?}: {:?}",
                built.map(|_| "built")
            );
        }
    }
    // Single rounding saturates the multiplier as TFLite does.
    let single = big
        .clone()
        .with_requantizer(Requantizer::FixedPoint(Rounding::Single))
        .unwrap();
    assert_eq!(
        single.forward(&array![[1i8, 0], [0, 0]]).unwrap(),
        array![[127i8, 127], [0, 0]]
    );
    // An int8 bias needs the notebook's requantizer.
    let int8 = Bias::Int8 {
        values: Array1::zeros(2),
        params: p,
    };
    let l = QuantizedLinear::from_quantized(Array2::ones((2, 2)), p, int8, p, p).unwrap();
    assert!(matches!(
        l.with_requantizer(Requantizer::Float32),
        Err(QuantError::IncompatibleOptions { .. })
    ));
    // Fixed point needs the accumulator in i32.
    let wide =
        QuantizedLinear::from_quantized(Array2::ones((200_000, 1)), p, Bias::None, p, p).unwrap();
    assert!(matches!(
        wide.with_requantizer(Requantizer::FixedPoint(Rounding::HalfUp)),
        Err(QuantError::AccumulatorOverflow { limit, .. }) if limit == i32::MAX as u128
    ));
}

/// (23) computed independently: quantize each row, i128 accumulator, f32
/// scaling in the documented order.
fn dynamic_expected(
    x: &Array2<f32>,
    w_q: &Array2<i8>,
    pw: QuantParams,
    b: &Array1<f32>,
    params: &[QuantParams],
    range: QuantRange,
) -> Array2<f32> {
    let mut y = Array2::zeros((x.nrows(), w_q.ncols()));
    for (i, p) in params.iter().enumerate() {
        let row = x.row(i).insert_axis(Axis(0)).to_owned();
        let acc = if range.qmin >= 0 {
            reference::accumulate(
                &quantize_as::<u8, _, _>(&row, *p, range).unwrap(),
                w_q,
                p.zero_point,
                &vec![pw.zero_point; w_q.ncols()],
            )
        } else {
            reference::accumulate(
                &quantize_as::<i8, _, _>(&row, *p, range).unwrap(),
                w_q,
                p.zero_point,
                &vec![pw.zero_point; w_q.ncols()],
            )
        }
        .unwrap();
        for j in 0..w_q.ncols() {
            y[[i, j]] = acc[[0, j]] as f32 * (p.scale as f32 * pw.scale as f32) + b[j];
        }
    }
    y
}

#[test]
fn dynamic_quantization_matches_its_definition() {
    let mut rng = StdRng::seed_from_u64(9);
    let w = uniform(&mut rng, 70, 33, |_| 0.5);
    let b = Array1::from_shape_simple_fn(33, || rng.random::<f32>());
    let pw = QuantParams::symmetric(-0.5, 0.5, QuantRange::INT8_NARROW).unwrap();
    let x = uniform(&mut rng, 11, 70, |_| 3.0) + 1.0;
    for activations in [
        DynamicActivations::ONNX_RUNTIME,
        DynamicActivations::PYTORCH_X86,
        DynamicActivations {
            granularity: Granularity::PerRow,
            ..DynamicActivations::ONNX_RUNTIME
        },
        DynamicActivations {
            granularity: Granularity::PerRow,
            scheme: Scheme::Symmetric,
            range: QuantRange::INT8,
        },
    ] {
        let layer = DynamicLinear::from_f32(&w, pw, Some(b.clone()))
            .unwrap()
            .with_activations(activations)
            .unwrap();
        let params = layer.activation_params(x.view()).unwrap();
        let y = layer.forward(&x).unwrap();
        let w_q = WeightParams::from(pw).quantize(&w).unwrap();
        assert_eq!(
            y,
            dynamic_expected(&x, &w_q, pw, &b, &params, activations.range),
            "{activations:?}"
        );
        let exact = x.dot(&w) + &b;
        let db = sqnr_db(&exact, &y).unwrap();
        assert!(db > 25.0, "{activations:?}: {db} dB");
    }
}

/// Dynamic parameters from each row's (or the tensor's) min and max found
/// by a plain fold, and the same results from transposed and strided
/// inputs, whose non-finite values are reported at their logical
/// row-major index.
#[test]
fn dynamic_params_come_from_extremes_in_any_layout() {
    let mut rng = StdRng::seed_from_u64(12);
    let w = uniform(&mut rng, 37, 19, |_| 1.0);
    let pw = symmetric_weight_params(&w, true);
    // 9×37, the transposed storage of a 37×9 array; rows of different ranges.
    let stored = uniform(&mut rng, 37, 9, |j| 0.1 + j as f32);
    let x = stored.t();
    let extremes = |v: &mut dyn Iterator<Item = f32>| {
        v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), e| {
            (lo.min(f64::from(e)), hi.max(f64::from(e)))
        })
    };
    for activations in [
        DynamicActivations::ONNX_RUNTIME,
        DynamicActivations {
            granularity: Granularity::PerRow,
            scheme: Scheme::Symmetric,
            range: QuantRange::INT8,
        },
        DynamicActivations {
            granularity: Granularity::PerRow,
            ..DynamicActivations::PYTORCH_X86
        },
    ] {
        let layer = DynamicLinear::from_f32(&w, pw.clone(), None)
            .unwrap()
            .with_activations(activations)
            .unwrap();
        let want: Vec<QuantParams> = (0..x.nrows())
            .map(|i| {
                let (lo, hi) = match activations.granularity {
                    Granularity::PerTensor => extremes(&mut x.iter().copied()),
                    Granularity::PerRow => extremes(&mut x.row(i).iter().copied()),
                };
                activations
                    .scheme
                    .params(lo, hi, activations.range)
                    .unwrap()
            })
            .collect();
        assert_eq!(layer.activation_params(x).unwrap(), want, "{activations:?}");
        let standard = x.to_owned();
        let y = layer.forward(&standard).unwrap();
        assert_eq!(layer.forward(&x).unwrap(), y, "{activations:?}");
        let every_other = layer.forward(&x.slice(ndarray::s![..;2, ..])).unwrap();
        assert_eq!(
            every_other,
            y.slice(ndarray::s![..;2, ..]),
            "{activations:?}"
        );
        let mut with_nan = stored.clone();
        with_nan[[30, 4]] = f32::NAN; // x[[4, 30]]
        with_nan[[2, 6]] = f32::INFINITY; // x[[6, 2]]: later in row-major order
        assert!(matches!(
            layer.forward(&with_nan.t()),
            Err(QuantError::NonFinite { index, .. }) if index == 4 * 37 + 30
        ));
    }
}

/// Inputs large enough to be scanned and quantized in parallel: the same
/// parameters as a plain fold and the same outputs on 1 to 3 threads, and
/// the first non-finite value reported when later pieces hold others.
#[cfg(feature = "parallel")]
#[test]
fn large_dynamic_inputs_are_identical_on_any_thread_count() {
    let mut rng = StdRng::seed_from_u64(13);
    // 68 000 inputs, above 2^16 (split on every kernel): five pieces of 2^14.
    let (m, p, n) = (170, 400, 24);
    let w = uniform(&mut rng, p, n, |_| 1.0);
    let pw = QuantParams::symmetric(-1.0, 1.0, QuantRange::INT8).unwrap();
    let x = Array2::from_shape_fn((m, p), |(i, _)| {
        (rng.random::<f32>() - 0.3) * (1.0 + i as f32)
    });
    let fold = |v: ndarray::ArrayView1<'_, f32>| {
        v.iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &e| {
                (lo.min(f64::from(e)), hi.max(f64::from(e)))
            })
    };
    let flat = x.view().into_shape_with_order(m * p).unwrap();
    for granularity in [Granularity::PerTensor, Granularity::PerRow] {
        let activations = DynamicActivations {
            granularity,
            ..DynamicActivations::ONNX_RUNTIME
        };
        let layer = DynamicLinear::from_f32(&w, pw, None)
            .unwrap()
            .with_activations(activations)
            .unwrap();
        let want: Vec<QuantParams> = (0..m)
            .map(|i| {
                let (lo, hi) = match granularity {
                    Granularity::PerTensor => fold(flat),
                    Granularity::PerRow => fold(x.row(i)),
                };
                Scheme::Affine.params(lo, hi, QuantRange::UINT8).unwrap()
            })
            .collect();
        let mut with_bad = x.clone();
        with_bad[[100, 7]] = f32::INFINITY; // index 40 007, in the third piece
        with_bad[[130, 0]] = f32::NAN; // in the fourth
        let mut outputs = vec![];
        for threads in 1..=3 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                assert_eq!(layer.activation_params(x.view()).unwrap(), want);
                outputs.push(layer.forward(&x).unwrap());
                assert!(matches!(
                    layer.forward(&with_bad),
                    Err(QuantError::NonFinite { index: 40_007, value, .. }) if value.is_infinite()
                ));
            });
        }
        assert!(outputs.iter().all(|y| *y == outputs[0]), "{granularity:?}");
    }
}

/// `activation_params` takes its rows from `x` whatever its width; every
/// value is checked for finiteness before any row's parameters are
/// derived; inputs too large to copy are refused, not a panic.
#[test]
fn dynamic_params_follow_their_input_and_check_it_first() {
    let per_row = |scheme| DynamicActivations {
        granularity: Granularity::PerRow,
        scheme,
        range: QuantRange::UINT8,
    };
    let layer = DynamicLinear::from_quantized(
        Array2::<i8>::ones((3, 2)),
        QuantParams::new(1.0, 0).unwrap(),
        None,
    )
    .unwrap()
    .with_activations(per_row(Scheme::Affine))
    .unwrap();
    for x in [
        array![[1.0f32, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.0, 9.0]],
        array![[1.0f32], [2.0], [-3.0]],
    ] {
        let want: Vec<QuantParams> = x
            .rows()
            .into_iter()
            .map(|row| {
                let lo = row.iter().fold(f64::INFINITY, |a, &v| a.min(f64::from(v)));
                let hi = row
                    .iter()
                    .fold(f64::NEG_INFINITY, |a, &v| a.max(f64::from(v)));
                Scheme::Affine.params(lo, hi, QuantRange::UINT8).unwrap()
            })
            .collect();
        assert_eq!(layer.activation_params(x.view()).unwrap(), want);
    }
    // The first row's range is too far from 0 for the notebook's zero
    // point; the NaN in the second row is still the error reported.
    let notebook = layer
        .clone()
        .with_activations(per_row(Scheme::Notebook))
        .unwrap();
    let x = array![[1e9f32, 1e9 + 64.0], [f32::NAN, 1.0]];
    assert!(matches!(
        notebook.activation_params(x.view()),
        Err(QuantError::NonFinite { index: 2, .. })
    ));
    // Without output columns, a broadcast input of 2^62 rows still has to
    // be copied and quantized.
    let no_outputs = DynamicLinear::from_quantized(
        Array2::<i8>::zeros((1, 0)),
        QuantParams::new(1.0, 0).unwrap(),
        None,
    )
    .unwrap();
    let one = array![[1.0f32]];
    let huge = one.broadcast((1usize << 62, 1)).unwrap();
    assert!(matches!(
        no_outputs.forward(&huge),
        Err(QuantError::TooLarge { .. })
    ));
    assert!(matches!(
        no_outputs.activation_params(huge),
        Err(QuantError::TooLarge { .. })
    ));
    let wide = Array2::<f32>::zeros((1, 1 << 10));
    let huge = wide.broadcast((1usize << 50, 1 << 10)).unwrap();
    let layer = DynamicLinear::from_quantized(
        Array2::<i8>::zeros((1 << 10, 0)),
        QuantParams::new(1.0, 0).unwrap(),
        None,
    )
    .unwrap();
    assert!(matches!(
        layer.forward(&huge),
        Err(QuantError::TooLarge { what: "input", .. })
    ));
}

/// Accumulators at the edge of `i32`: where `p·max|Xq − z_X|·max|Wq − z_W|`
/// just fits, the layer computes (11) in wrapping `i32`; one step wider,
/// in `i64`. Both must give (23) exactly on every kernel, with weight zero
/// points and without, per tensor and per row, in 8 and 7 bits.
#[test]
fn dynamic_accumulators_at_the_i32_edge_are_exact() {
    let mut cases = 0;
    for w_zero_point in [0, 100] {
        let pw = QuantParams::new(1.0, w_zero_point).unwrap();
        let w_span = 128 + w_zero_point.unsigned_abs() as usize;
        for range in [QuantRange::UINT8, QuantRange::UINT8_REDUCED] {
            let x_span = (range.qmax - range.qmin) as usize;
            let fast_p = i32::MAX as usize / (x_span * w_span);
            for p in [fast_p, fast_p + 1] {
                let w_q = Array2::from_shape_fn((p, 3), |(k, j)| match j {
                    0 => -128i8,
                    1 => 127,
                    _ => (k % 256) as u8 as i8,
                });
                // Per row, row 0 quantizes to q_max with z_X = q_min, row 1
                // to q_min with z_X = q_max: |acc| reaches the bound above.
                let x = Array2::from_shape_fn((2, p), |(i, _)| [1.0f32, -1.0][i]);
                for granularity in [Granularity::PerTensor, Granularity::PerRow] {
                    let activations = DynamicActivations {
                        granularity,
                        scheme: Scheme::Affine,
                        range,
                    };
                    let layer = DynamicLinear::from_quantized(w_q.clone(), pw, None)
                        .unwrap()
                        .with_activations(activations)
                        .unwrap();
                    let params = layer.activation_params(x.view()).unwrap();
                    let zero = Array1::zeros(3);
                    let want = dynamic_expected(&x, &w_q, pw, &zero, &params, range);
                    for kernel in available_kernels() {
                        let Ok(layer) = layer.clone().with_kernel(kernel) else {
                            continue; // the 7-bit kernel with an 8-bit range
                        };
                        assert_eq!(
                            layer.forward(&x).unwrap(),
                            want,
                            "{kernel}, p {p}, z_W {w_zero_point}, {activations:?}"
                        );
                        cases += 1;
                    }
                }
            }
        }
    }
    assert!(cases >= 16, "{cases}");
}

#[test]
fn per_row_dynamic_rows_do_not_depend_on_the_batch() {
    let mut rng = StdRng::seed_from_u64(11);
    let w = uniform(&mut rng, 64, 40, |_| 1.0);
    let pw = symmetric_weight_params(&w, true);
    let mut x = uniform(&mut rng, 6, 64, |_| 1.0);
    x.row_mut(3).mapv_inplace(|v| v * 1000.0); // one row of a very different range
    let per_row = DynamicActivations {
        granularity: Granularity::PerRow,
        ..DynamicActivations::ONNX_RUNTIME
    };
    let layer = DynamicLinear::from_f32(&w, pw.clone(), None)
        .unwrap()
        .with_activations(per_row)
        .unwrap();
    let batch = layer.forward(&x).unwrap();
    for i in 0..x.nrows() {
        let alone = layer.forward(&x.slice(ndarray::s![i..i + 1, ..])).unwrap();
        assert_eq!(alone.row(0), batch.row(i), "row {i}");
    }
    // Per tensor, the large row changes the others' results: the property is not trivial.
    let per_tensor = DynamicLinear::from_f32(&w, pw, None).unwrap();
    let batch = per_tensor.forward(&x).unwrap();
    let alone = per_tensor.forward(&x.slice(ndarray::s![0..1, ..])).unwrap();
    assert_ne!(alone.row(0), batch.row(0));
}

#[test]
fn dynamic_edges() {
    let w = Array2::<f32>::ones((3, 2));
    let layer = DynamicLinear::from_f32(&w, QuantParams::new(0.01, 0).unwrap(), None).unwrap();
    assert!(matches!(
        layer.forward(&Array2::<f32>::zeros((2, 4))),
        Err(QuantError::InnerDimensionMismatch { .. })
    ));
    assert!(matches!(
        layer.forward(&array![[1.0f32, f32::NAN, 0.0]]),
        Err(QuantError::NonFinite { index: 1, .. })
    ));
    assert_eq!(
        layer
            .forward(&Array2::<f32>::zeros((0, 3)))
            .unwrap()
            .shape(),
        &[0, 2]
    );
    // All zeros: scale 1, zero point 0, exact zeros out.
    assert_eq!(
        layer.forward(&Array2::<f32>::zeros((2, 3))).unwrap(),
        Array2::<f32>::zeros((2, 2))
    );
    let b = Some(array![1.0f32]);
    assert!(matches!(
        DynamicLinear::from_f32(&w, QuantParams::new(0.01, 0).unwrap(), b),
        Err(QuantError::LengthMismatch { .. })
    ));
    let p0 = DynamicLinear::from_f32(
        &Array2::<f32>::zeros((0, 2)),
        QuantParams::new(1.0, 0).unwrap(),
        Some(array![0.5f32, 2.0]),
    )
    .unwrap();
    assert_eq!(
        p0.forward(&Array2::<f32>::zeros((1, 0))).unwrap(),
        array![[0.5f32, 2.0]]
    );
}

#[test]
fn dynamic_extremes_give_finite_exact_zero_columns_and_clear_errors() {
    let unit = QuantParams::new(1.0, 0).unwrap();
    // Weight scales beyond f32 and infinite biases are refused.
    let huge = QuantParams::new(1e300, 0).unwrap();
    assert!(matches!(
        DynamicLinear::from_quantized(array![[0i8, 1]], huge, None),
        Err(QuantError::InvalidScale { scale }) if scale == 1e300
    ));
    assert!(matches!(
        DynamicLinear::from_quantized(array![[1i8, 1]], unit, Some(array![0.5f32, f32::INFINITY])),
        Err(QuantError::NonFinite {
            what: "bias",
            index: 1,
            ..
        })
    ));
    // s_X·s_W overflows f32 (s_X ≈ 3e38/127, s_W = 1e3): a column whose
    // accumulator is 0 is still exactly its bias, the other saturates to ∞.
    let w = QuantParams::new(1e3, 0).unwrap();
    let layer =
        DynamicLinear::from_quantized(array![[0i8, 1]], w, Some(array![0.5f32, 0.5])).unwrap();
    let y = layer.forward(&array![[3e38f32]]).unwrap();
    assert_eq!(y[[0, 0]], 0.5);
    assert_eq!(y[[0, 1]], f32::INFINITY);
    // Infinities, like NaN, have no place in parameters derived from the
    // data: refused, where they used to take the batch's largest finite
    // value (so a row's result depended on the other rows).
    let layer = DynamicLinear::from_quantized(array![[1i8]], unit, None).unwrap();
    for x in [
        array![[f32::INFINITY], [2.0]],
        array![[1.0], [f32::NEG_INFINITY]],
    ] {
        let index = x.iter().position(|v| v.is_infinite()).unwrap();
        let e = layer.forward(&x).unwrap_err();
        assert!(
            matches!(e, QuantError::NonFinite { what: "input", index: i, value } if i == index && value.is_infinite()),
            "{e:?}"
        );
        assert!(layer.activation_params(x.view()).is_err());
    }
    // Rows of tiny or subnormal values get the smallest valid scale instead
    // of an error for the whole batch.
    let layer = DynamicLinear::from_quantized(array![[1i8]], unit, None).unwrap();
    let y = layer.forward(&array![[1e-40f32], [2.0]]).unwrap();
    assert_eq!(y[[1, 0]], 2.0);
    assert!(y[[0, 0]].abs() <= 1e-38, "{}", y[[0, 0]]);
    // A constant row is widened to include 0, so it is represented exactly
    // (it used to get scale 1: 0.3 became 0 and 1000 saturated).
    let layer = DynamicLinear::from_quantized(
        array![[1i8]],
        QuantParams::new(1.0 / 127.0, 0).unwrap(),
        None,
    )
    .unwrap();
    let y = layer.forward(&array![[0.3f32]]).unwrap()[[0, 0]];
    assert!((y - 0.3 / 127.0).abs() < 1e-6, "{y}");
    let y = layer.forward(&array![[1000.0f32]]).unwrap()[[0, 0]];
    assert!((y - 1000.0 / 127.0).abs() < 1e-3, "{y}");
}
