//! A stack run through a `Workspace`: the same bits as `forward` and
//! `forward_f32`, into outputs of any layout, and no allocation at all once
//! the workspace and the packing buffers have seen the batch.

use ndarray::{Array2, ShapeBuilder};
use qlinear::gemm::__introspect::{geometry, Plan};
use qlinear::{
    ConvertOptions, ElemKind, FloatLinear, FloatSequential, FusedActivation, MinMaxObserver,
    QuantizedSequential, WeightLayout, Workspace,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// A random f32 MLP of `widths`, ReLU between layers, quantized by
/// calibrating on random batches.
fn mlp(rng: &mut StdRng, widths: &[usize], kind: ElemKind) -> QuantizedSequential {
    let layers = widths
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let weight =
                Array2::from_shape_simple_fn((w[1], w[0]), || rng.random_range(-0.3f32..0.3));
            let bias = Array2::from_shape_simple_fn((1, w[1]), || rng.random_range(-0.1f32..0.1));
            let activation = if i + 2 < widths.len() {
                FusedActivation::Relu
            } else {
                FusedActivation::None
            };
            FloatLinear::new(
                weight.view(),
                WeightLayout::OutIn,
                Some(bias.row(0)),
                activation,
            )
            .unwrap()
        })
        .collect();
    let model = FloatSequential::new(layers).unwrap();
    let batches: Vec<Array2<f32>> = (0..4)
        .map(|_| Array2::from_shape_simple_fn((32, widths[0]), || rng.random_range(-1.0f32..1.0)))
        .collect();
    let calibration = model
        .calibrate(batches.iter().map(|b| b.view()), MinMaxObserver::new())
        .unwrap();
    let options = ConvertOptions {
        activation_type: kind,
        ..ConvertOptions::default()
    };
    calibration.convert(&model, &options).unwrap()
}

#[test]
fn workspace_paths_equal_forward_and_forward_f32() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut workspace = Workspace::new();
    for kind in [ElemKind::Int8, ElemKind::Uint8] {
        for widths in [&[64, 96, 48, 10][..], &[7, 3], &[5, 9, 2]] {
            let stack = mlp(&mut rng, widths, kind);
            // Batches that grow and shrink, through one workspace.
            for m in [1, 9, 4, 0, 33] {
                let x =
                    Array2::from_shape_simple_fn((m, widths[0]), || rng.random_range(-1.5f32..1.5));
                let want = stack.forward_f32(&x).unwrap();
                // A column-major output: every element still overwritten.
                let mut out = Array2::from_elem((m, stack.out_features()).f(), f32::NAN);
                stack
                    .forward_f32_into(&x, &mut out, &mut workspace)
                    .unwrap();
                assert_eq!(out, want, "{kind:?} {widths:?} m = {m}");
                match kind {
                    ElemKind::Int8 => {
                        let x_q =
                            Array2::from_shape_simple_fn((m, widths[0]), || rng.random::<i8>());
                        let mut out = Array2::from_elem((m, stack.out_features()), 99i8);
                        stack.forward_into(&x_q, &mut out, &mut workspace).unwrap();
                        assert_eq!(out, stack.forward(&x_q).unwrap());
                    }
                    ElemKind::Uint8 => {
                        let x_q =
                            Array2::from_shape_simple_fn((m, widths[0]), || rng.random::<u8>());
                        let mut out = Array2::from_elem((m, stack.out_features()), 99u8);
                        stack.forward_into(&x_q, &mut out, &mut workspace).unwrap();
                        assert_eq!(out, stack.forward(&x_q).unwrap());
                    }
                }
            }
        }
    }
    assert!(workspace.bytes() > 0);
}

#[test]
fn wrong_output_shapes_are_errors() {
    let mut rng = StdRng::seed_from_u64(6);
    let stack = mlp(&mut rng, &[4, 3, 2], ElemKind::Int8);
    let mut workspace = Workspace::new();
    let x = Array2::<f32>::zeros((2, 4));
    let mut out = Array2::<f32>::zeros((2, 3));
    assert!(stack
        .forward_f32_into(&x, &mut out, &mut workspace)
        .is_err());
    let mut out = Array2::<i8>::zeros((3, 2));
    assert!(stack
        .forward_into(&Array2::<i8>::zeros((2, 4)), &mut out, &mut workspace)
        .is_err());
    let x = Array2::from_elem((1, 4), f32::NAN);
    let mut out = Array2::<f32>::zeros((1, 2));
    assert!(stack
        .forward_f32_into(&x, &mut out, &mut workspace)
        .is_err());
}

/// After one call, a small MLP's forward allocates nothing: the workspace
/// holds the activations, each thread keeps its packing buffers. Every
/// layer runs on one thread at these batches (checked from the plan the
/// crate makes), so this thread's count is the whole count.
#[test]
fn calls_after_the_first_allocate_nothing() {
    let mut rng = StdRng::seed_from_u64(7);
    let widths = [64, 96, 48, 10];
    let stack = mlp(&mut rng, &widths, ElemKind::Int8);
    let mut workspace = Workspace::new();
    for m in [1, 16] {
        for layer in stack.layers() {
            let g = geometry(layer.kernel_name()).expect("a kernel of this machine");
            let plan = g.plan(
                m,
                layer.in_features(),
                layer.out_features(),
                rayon::current_num_threads(),
            );
            assert_eq!(plan, Plan::OneThread, "{} at m = {m}", layer.kernel_name());
        }
        let x = Array2::from_shape_simple_fn((m, 64), || rng.random_range(-1.0f32..1.0));
        let x_q = Array2::from_shape_simple_fn((m, 64), || rng.random::<i8>());
        let mut out = Array2::<f32>::zeros((m, 10));
        let mut out_q = Array2::<i8>::zeros((m, 10));
        stack
            .forward_f32_into(&x, &mut out, &mut workspace)
            .unwrap();
        stack
            .forward_into(&x_q, &mut out_q, &mut workspace)
            .unwrap();
        let again = allocation_counter::measure(|| {
            stack
                .forward_f32_into(&x, &mut out, &mut workspace)
                .unwrap();
            stack
                .forward_into(&x_q, &mut out_q, &mut workspace)
                .unwrap();
        });
        assert_eq!(again.count_total, 0, "m = {m}: {again:?}");
        // The first call on a fresh workspace does allocate: the count sees them.
        let fresh = allocation_counter::measure(|| {
            stack
                .forward_into(&x_q, &mut out_q, &mut Workspace::new())
                .unwrap();
        });
        assert!(fresh.count_total > 0);
    }
}
