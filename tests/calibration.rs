//! Calibrating an f32 MLP and converting it: every boundary observes the
//! activations the model produces there, the converted stack chains those
//! params, and the int8 model tracks the f32 one.

use ndarray::{Array1, Array2};
use qlinear::{
    sqnr_db, Calibration, ConvertOptions, ElemKind, FloatLinear, FloatSequential, FusedActivation,
    HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver, Observer, PercentileObserver,
    QuantError, QuantRange, Requantizer, Scheme, WeightGranularity, WeightLayout,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// A 16 → 24 → 12 → 4 MLP with ReLU between layers, PyTorch layout.
fn model(rng: &mut StdRng) -> FloatSequential {
    let widths = [16, 24, 12, 4];
    let layers = (0..3)
        .map(|i| {
            let (p, n) = (widths[i], widths[i + 1]);
            let scale = (2.0 / p as f32).sqrt();
            let w = Array2::from_shape_simple_fn((n, p), || rng.random_range(-scale..scale));
            let b = Array1::from_shape_simple_fn(n, || rng.random_range(-0.1f32..0.1));
            let act = if i < 2 {
                FusedActivation::Relu
            } else {
                FusedActivation::None
            };
            FloatLinear::new(w.view(), WeightLayout::OutIn, Some(b.view()), act).unwrap()
        })
        .collect();
    FloatSequential::new(layers).unwrap()
}

fn batches(rng: &mut StdRng, count: usize) -> Vec<Array2<f32>> {
    (0..count)
        .map(|_| Array2::from_shape_simple_fn((32, 16), || rng.random_range(-1.0f32..1.0)))
        .collect()
}

/// Converts with `options` after calibrating with `observer`; the SQNR of
/// the int8 stack against the f32 model on held-out data.
fn sqnr<O: Observer + Clone>(observer: O, options: &ConvertOptions) -> f64 {
    let mut rng = StdRng::seed_from_u64(21);
    let m = model(&mut rng);
    let calibration = batches(&mut rng, 8);
    let test = Array2::from_shape_simple_fn((200, 16), || rng.random_range(-1.0f32..1.0));
    let c = m
        .calibrate(calibration.iter().map(|b| b.view()), observer)
        .unwrap();
    let int8 = c.convert(&m, options).unwrap();
    assert_eq!(int8.layers().len(), 3);
    assert_eq!(int8.activation_type(), options.activation_type);
    sqnr_db(
        &m.forward(&test).unwrap(),
        &int8.forward_f32(&test).unwrap(),
    )
    .unwrap()
}

#[test]
fn every_observer_gives_an_int8_model_close_to_the_f32_one() {
    let default = ConvertOptions::default();
    let onnx = ConvertOptions {
        activation_type: ElemKind::Uint8,
        requantizer: Requantizer::Float32,
        weight_range: QuantRange::INT8,
        ..ConvertOptions::default()
    };
    let per_tensor = ConvertOptions {
        weight_granularity: WeightGranularity::PerTensor,
        ..ConvertOptions::default()
    };
    for options in [default, onnx, per_tensor] {
        let results = [
            ("minmax", sqnr(MinMaxObserver::new(), &options)),
            (
                "moving average",
                sqnr(MovingAverageMinMaxObserver::new(), &options),
            ),
            ("histogram", sqnr(HistogramObserver::new(), &options)),
            (
                "percentile",
                sqnr(PercentileObserver::new(0.01, 99.99).unwrap(), &options),
            ),
        ];
        for (name, db) in results {
            eprintln!("{name} {options:?}: {db:.1} dB");
            assert!(db > 25.0, "{name} {options:?}: {db:.1} dB");
        }
    }
}

/// Boundary `i` saw exactly the model's activations there: a fresh
/// observer fed by hand gives the params layer `i` takes.
#[test]
fn each_boundary_observes_the_models_activations_there() {
    let mut rng = StdRng::seed_from_u64(22);
    let m = model(&mut rng);
    let data = batches(&mut rng, 3);
    let c = m
        .calibrate(data.iter().map(|b| b.view()), MinMaxObserver::new())
        .unwrap();
    let int8 = c.convert(&m, &ConvertOptions::default()).unwrap();
    let mut by_hand = vec![MinMaxObserver::new(); 4];
    for x in &data {
        by_hand[0].observe(x);
        let mut h = x.clone();
        for (i, layer) in m.layers().iter().enumerate() {
            h = layer.forward(&h).unwrap();
            by_hand[i + 1].observe(&h);
        }
    }
    for (i, layer) in int8.layers().iter().enumerate() {
        let want_in = by_hand[i].params(Scheme::Affine, QuantRange::INT8).unwrap();
        let want_out = by_hand[i + 1]
            .params(Scheme::Affine, QuantRange::INT8)
            .unwrap();
        assert_eq!(layer.input_params(), want_in, "layer {i}");
        assert_eq!(layer.output_params(), want_out, "layer {i}");
    }
    // ReLU outputs are never negative, and the post-ReLU boundary saw that.
    assert_eq!(by_hand[1].range().unwrap().0, 0.0);
}

#[test]
fn calibration_errors_name_what_is_wrong() {
    let mut rng = StdRng::seed_from_u64(23);
    let m = model(&mut rng);
    let wrong = Array2::<f32>::zeros((2, 15));
    let e = m
        .calibrate([wrong.view()], MinMaxObserver::new())
        .unwrap_err();
    assert!(
        matches!(
            e,
            QuantError::InnerDimensionMismatch {
                x_cols: 15,
                w_rows: 16
            }
        ),
        "{e}"
    );
    // Nothing observed: no params to convert with.
    let empty = Calibration::new(&m, MinMaxObserver::new());
    assert!(matches!(
        empty.convert(&m, &ConvertOptions::default()),
        Err(QuantError::NothingObserved { .. })
    ));
    // A calibration of another model.
    let data = batches(&mut rng, 1);
    let c = m
        .calibrate(data.iter().map(|b| b.view()), MinMaxObserver::new())
        .unwrap();
    let shorter = FloatSequential::new(m.layers()[..2].to_vec()).unwrap();
    assert!(matches!(
        c.convert(&shorter, &ConvertOptions::default()),
        Err(QuantError::LengthMismatch {
            expected: 4,
            found: 3,
            ..
        })
    ));
    // Layers that do not chain, and non-finite weights.
    let e = FloatSequential::new(vec![m.layers()[0].clone(), m.layers()[2].clone()]).unwrap_err();
    assert!(
        matches!(e, QuantError::LayerMismatch { layer: 1, .. }),
        "{e}"
    );
    let nan = Array2::from_elem((2, 2), f32::NAN);
    assert!(
        FloatLinear::new(nan.view(), WeightLayout::OutIn, None, FusedActivation::None).is_err()
    );
}
