//! `DynamicSequential`: the same bits as chaining `DynamicLinear::forward`
//! and the activations by hand, with or without a workspace; widths
//! checked pair by pair; close to the f32 model; and, per row, a row's
//! output independent of its batch.

use ndarray::{s, Array1, Array2, Axis, ShapeBuilder};
use qlinear::{
    sqnr_db, ConvertOptions, DynamicActivations, DynamicLinear, DynamicSequential,
    DynamicWorkspace, FloatLinear, FloatSequential, FusedActivation, Granularity, QuantError,
    QuantParams, QuantRange, Scheme, WeightGranularity,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// A random f32 model of the given widths, PyTorch-initialised
/// (`U(±1/√p)`), with `hidden` after every layer but the last.
fn model(rng: &mut StdRng, widths: &[usize], hidden: FusedActivation) -> FloatSequential {
    let layers = widths
        .windows(2)
        .enumerate()
        .map(|(i, pair)| {
            let (p, n) = (pair[0], pair[1]);
            let bound = 1.0 / (p as f32).sqrt();
            let w = Array2::from_shape_simple_fn((n, p), || rng.random_range(-bound..bound));
            let b = Array1::from_shape_simple_fn(n, || rng.random_range(-bound..bound));
            let activation = if i + 2 < widths.len() {
                hidden
            } else {
                FusedActivation::None
            };
            FloatLinear::new(
                w.view(),
                qlinear::WeightLayout::OutIn,
                Some(b.view()),
                activation,
            )
            .unwrap()
        })
        .collect();
    FloatSequential::new(layers).unwrap()
}

fn input(rng: &mut StdRng, m: usize, p: usize) -> Array2<f32> {
    Array2::from_shape_simple_fn((m, p), || rng.random_range(-2.0f32..2.0))
}

/// The activation as a reader of PyTorch would write it.
fn activate(activation: FusedActivation, v: f32) -> f32 {
    let (lo, hi) = match activation {
        FusedActivation::None => return v,
        FusedActivation::Relu => (0.0, f32::INFINITY),
        FusedActivation::Relu6 => (0.0, 6.0),
        FusedActivation::ReluN1To1 => (-1.0, 1.0),
    };
    if v < lo {
        lo
    } else if v > hi {
        hi
    } else {
        v
    }
}

fn by_hand(stack: &DynamicSequential, x: &Array2<f32>) -> Array2<f32> {
    let mut y = x.clone();
    for (layer, activation) in stack.layers() {
        y = layer.forward(&y).unwrap();
        y.mapv_inplace(|v| activate(*activation, v));
    }
    y
}

fn bits(a: &Array2<f32>) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}

const PER_ROW_INT8: DynamicActivations = DynamicActivations {
    granularity: Granularity::PerRow,
    scheme: Scheme::Symmetric,
    range: QuantRange::INT8,
};

#[test]
fn stacks_equal_their_layers_chained_by_hand() {
    let mut rng = StdRng::seed_from_u64(5);
    let settings = [
        DynamicActivations::ONNX_RUNTIME,
        DynamicActivations::PYTORCH_X86,
        PER_ROW_INT8,
    ];
    for hidden in [
        FusedActivation::Relu,
        FusedActivation::Relu6,
        FusedActivation::ReluN1To1,
    ] {
        let float = model(&mut rng, &[64, 96, 48, 10], hidden);
        for activations in settings {
            for weight_granularity in [WeightGranularity::PerChannel, WeightGranularity::PerTensor]
            {
                let options = ConvertOptions {
                    weight_granularity,
                    ..ConvertOptions::default()
                };
                let stack = DynamicSequential::from_float(&float, &options, activations).unwrap();
                assert_eq!((stack.in_features(), stack.out_features()), (64, 10));
                for m in [1, 7, 33] {
                    let x = input(&mut rng, m, 64);
                    let y = stack.forward(&x).unwrap();
                    assert_eq!(bits(&y), bits(&by_hand(&stack, &x)), "{activations:?}");
                }
            }
        }
    }
}

#[test]
fn forward_into_equals_forward_and_reuses_its_workspace() {
    let mut rng = StdRng::seed_from_u64(6);
    for widths in [&[20, 10][..], &[20, 30, 10], &[20, 30, 50, 15, 10]] {
        let float = model(&mut rng, widths, FusedActivation::Relu);
        let stack = DynamicSequential::from_float(&float, &ConvertOptions::default(), PER_ROW_INT8)
            .unwrap();
        // One workspace across batch sizes that grow and shrink.
        let mut workspace = DynamicWorkspace::default();
        for m in [3, 40, 1, 40, 0] {
            let x = input(&mut rng, m, 20);
            let y = stack.forward(&x).unwrap();
            let mut out = Array2::from_elem((m, 10), f32::NAN);
            stack.forward_into(&x, &mut out, &mut workspace).unwrap();
            assert_eq!(bits(&out), bits(&y), "{widths:?}, m = {m}");
            // Column-major output and a transposed input: the same bits.
            let mut out_f = Array2::from_elem((m, 10).f(), f32::NAN);
            let x_t = x.t().to_owned();
            stack
                .forward_into(&x_t.t(), &mut out_f, &mut workspace)
                .unwrap();
            assert_eq!(bits(&out_f.as_standard_layout().to_owned()), bits(&y));
        }
    }
}

#[test]
fn wrong_shapes_are_errors() {
    let mut rng = StdRng::seed_from_u64(7);
    let float = model(&mut rng, &[8, 6, 4], FusedActivation::Relu);
    let stack =
        DynamicSequential::from_float(&float, &ConvertOptions::default(), Default::default())
            .unwrap();
    let mut workspace = DynamicWorkspace::default();
    let err = stack.forward(&input(&mut rng, 2, 7)).unwrap_err();
    assert!(
        matches!(err, QuantError::InnerDimensionMismatch { .. }),
        "{err}"
    );
    let mut out = Array2::zeros((2, 5));
    let err = stack
        .forward_into(&input(&mut rng, 2, 8), &mut out, &mut workspace)
        .unwrap_err();
    assert!(matches!(err, QuantError::ShapeMismatch { .. }), "{err}");
    // A NaN is an error, not a quantized zero.
    let mut x = input(&mut rng, 2, 8);
    x[[1, 3]] = f32::NAN;
    let err = stack.forward(&x).unwrap_err();
    assert!(matches!(err, QuantError::NonFinite { .. }), "{err}");
}

fn layer(p: usize, n: usize) -> DynamicLinear {
    let w = Array2::from_shape_fn((p, n), |(k, j)| (k as f32 - j as f32) / 8.0);
    DynamicLinear::from_f32(&w, QuantParams::new(0.01, 0).unwrap(), None).unwrap()
}

#[test]
fn mismatched_stacks_name_the_pair() {
    let err = DynamicSequential::new(vec![
        (layer(4, 3), FusedActivation::Relu),
        (layer(3, 5), FusedActivation::Relu),
        (layer(4, 2), FusedActivation::None),
    ])
    .unwrap_err();
    assert_eq!(
        err,
        QuantError::LayerMismatch {
            layer: 2,
            what: "5 outputs, but 4 inputs".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "layer 2 cannot follow layer 1: 5 outputs, but 4 inputs"
    );
    let err = DynamicSequential::new(vec![]).unwrap_err();
    assert_eq!(err, QuantError::EmptyStack);
}

#[test]
fn weight_ranges_beyond_i8_are_refused() {
    let mut rng = StdRng::seed_from_u64(8);
    let float = model(&mut rng, &[8, 4], FusedActivation::None);
    let options = ConvertOptions {
        weight_range: QuantRange::UINT8,
        ..ConvertOptions::default()
    };
    let err = DynamicSequential::from_float(&float, &options, Default::default()).unwrap_err();
    assert!(
        matches!(err, QuantError::InvalidTargetRange { .. }),
        "{err}"
    );
}

/// SQNR of every setting against the f32 model on a random MLP, above a
/// bound 4 dB under what it reaches (about 42 dB with 8-bit activations,
/// 37 dB with PyTorch's 7-bit ones).
#[test]
fn stacks_are_close_to_the_f32_model() {
    let mut rng = StdRng::seed_from_u64(9);
    let float = model(&mut rng, &[64, 96, 48, 10], FusedActivation::Relu);
    let x = input(&mut rng, 256, 64);
    let exact = float.forward(&x).unwrap();
    for (activations, bound) in [
        (DynamicActivations::ONNX_RUNTIME, 38.0),
        (DynamicActivations::PYTORCH_X86, 33.0),
        (PER_ROW_INT8, 38.0),
    ] {
        let stack =
            DynamicSequential::from_float(&float, &ConvertOptions::default(), activations).unwrap();
        let db = sqnr_db(&exact, &stack.forward(&x).unwrap()).unwrap();
        assert!(db > bound, "{activations:?}: {db:.1} dB");
    }
}

/// Per row, a row gives the same bits alone as in any batch, even beside
/// a row a thousand times larger; per tensor, that row changes the others.
#[test]
fn per_row_outputs_do_not_depend_on_the_batch() {
    let mut rng = StdRng::seed_from_u64(10);
    let float = model(&mut rng, &[32, 48, 16], FusedActivation::Relu);
    let mut x = input(&mut rng, 9, 32);
    x.row_mut(4).mapv_inplace(|v| v * 1000.0);
    let per_row = DynamicActivations {
        granularity: Granularity::PerRow,
        ..DynamicActivations::ONNX_RUNTIME
    };
    let stack = DynamicSequential::from_float(&float, &ConvertOptions::default(), per_row).unwrap();
    let batch = stack.forward(&x).unwrap();
    for i in 0..x.nrows() {
        let alone = stack.forward(&x.slice(s![i..i + 1, ..])).unwrap();
        assert_eq!(
            bits(&alone),
            bits(&batch.slice(s![i..i + 1, ..]).to_owned())
        );
        // The row again, now beside the large one.
        let pair = stack.forward(&x.select(Axis(0), &[i, 4])).unwrap();
        assert_eq!(bits(&pair.slice(s![0..1, ..]).to_owned()), bits(&alone));
    }
    let per_tensor = DynamicSequential::from_float(
        &float,
        &ConvertOptions::default(),
        DynamicActivations::ONNX_RUNTIME,
    )
    .unwrap();
    let batch = per_tensor.forward(&x).unwrap();
    let alone = per_tensor.forward(&x.slice(s![0..1, ..])).unwrap();
    assert_ne!(bits(&alone), bits(&batch.slice(s![0..1, ..]).to_owned()));
}

/// After one call, a dynamic stack allocates nothing: the workspace keeps
/// the activations between layers and each layer's quantized input and row
/// parameters, each thread its packing buffers. Every layer runs on one
/// thread at these batches (read from the plan the crate makes), so this
/// thread's count is the whole count.
#[test]
fn calls_after_the_first_allocate_nothing() {
    use qlinear::gemm::__introspect::{geometry, Plan};
    let mut rng = StdRng::seed_from_u64(9);
    let widths = [64, 96, 48, 10];
    let float = model(&mut rng, &widths, FusedActivation::Relu);
    for activations in [PER_ROW_INT8, DynamicActivations::default()] {
        let stack =
            DynamicSequential::from_float(&float, &ConvertOptions::default(), activations).unwrap();
        let mut workspace = DynamicWorkspace::default();
        for m in [1, 16] {
            for (layer, _) in stack.layers() {
                let g = geometry(layer.kernel_name()).expect("a kernel of this machine");
                let plan = g.plan(
                    m,
                    layer.in_features(),
                    layer.out_features(),
                    rayon::current_num_threads(),
                );
                assert_eq!(plan, Plan::OneThread, "{} at m = {m}", layer.kernel_name());
            }
            let x = input(&mut rng, m, 64);
            let mut out = Array2::<f32>::zeros((m, 10));
            stack.forward_into(&x, &mut out, &mut workspace).unwrap();
            let again = allocation_counter::measure(|| {
                stack.forward_into(&x, &mut out, &mut workspace).unwrap();
            });
            assert_eq!(again.count_total, 0, "{activations:?}, m = {m}: {again:?}");
            let fresh = allocation_counter::measure(|| {
                stack
                    .forward_into(&x, &mut out, &mut DynamicWorkspace::default())
                    .unwrap();
            });
            assert!(
                fresh.count_total > 0,
                "the count sees a fresh workspace's allocations"
            );
        }
    }
}
