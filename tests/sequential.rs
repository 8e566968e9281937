//! `QuantizedSequential`: the same bits as chaining the layers by hand, and
//! one error naming the pair for every way two layers can fail to chain.

use ndarray::{Array2, ArrayView2};
use qlinear::{
    quantize_as, try_dequantize, ElemKind, F32Bias, FusedActivation, QuantError, QuantParams,
    QuantRange, QuantizedLinear, QuantizedSequential, Requantizer, Rounding, WeightLayout,
    WeightParams,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// A layer `p → n` of PyTorch-layout random weights between `input` and
/// `output` params, with a ReLU unless it is the last.
fn layer(
    rng: &mut StdRng,
    (p, n): (usize, usize),
    (input, output): (QuantParams, QuantParams),
    kind: ElemKind,
    requantizer: Requantizer,
    relu: bool,
) -> QuantizedLinear {
    let w = Array2::from_shape_simple_fn((n, p), || rng.random_range(-0.5f32..0.5));
    let b = Array2::from_shape_simple_fn((1, n), || rng.random_range(-0.2f32..0.2));
    let pw = WeightParams::per_channel(
        &w,
        WeightLayout::OutIn,
        qlinear::Scheme::Symmetric,
        QuantRange::INT8_NARROW,
    )
    .unwrap();
    let activation = if relu {
        FusedActivation::Relu
    } else {
        FusedActivation::None
    };
    QuantizedLinear::builder_f32(w.view(), WeightLayout::OutIn, pw)
        .bias_f32(F32Bias::Real(b.row(0)))
        .activation_type(kind)
        .input_params(input)
        .output_params(output)
        .requantizer(requantizer)
        .fused_activation(activation)
        .build()
        .unwrap()
}

fn params(kind: ElemKind, scale: f64) -> QuantParams {
    let z = if kind == ElemKind::Uint8 { 128 } else { 0 };
    QuantParams::new(scale, z).unwrap()
}

/// The stack by hand: quantize, each layer's `forward`, dequantize.
fn by_hand<T: qlinear::QuantElem>(
    layers: &[QuantizedLinear],
    x: ArrayView2<'_, f32>,
) -> Array2<f32> {
    let first = &layers[0];
    let mut y = quantize_as::<T, _, _>(&x, first.input_params(), first.input_range()).unwrap();
    for l in layers {
        y = l.forward(&y).unwrap();
    }
    try_dequantize(&y, layers[layers.len() - 1].output_params()).unwrap()
}

#[test]
fn stacks_equal_their_layers_chained_by_hand() {
    let mut rng = StdRng::seed_from_u64(17);
    let requantizers = [
        Requantizer::Float64,
        Requantizer::Float32,
        Requantizer::TfliteReference,
        Requantizer::FixedPoint(Rounding::HalfUp),
        Requantizer::FixedPoint(Rounding::Single),
    ];
    let mut stacks = 0;
    for kind in [ElemKind::Int8, ElemKind::Uint8] {
        for requantizer in requantizers {
            // 64 → 96 → 48 → 10, the shapes of a small MLP.
            let widths = [64, 96, 48, 10];
            let scales = [0.02, 0.05, 0.05, 0.1];
            let layers: Vec<QuantizedLinear> = (0..3)
                .map(|i| {
                    let io = (params(kind, scales[i]), params(kind, scales[i + 1]));
                    layer(
                        &mut rng,
                        (widths[i], widths[i + 1]),
                        io,
                        kind,
                        requantizer,
                        i < 2,
                    )
                })
                .collect();
            let stack = QuantizedSequential::new(layers.clone()).unwrap();
            assert_eq!((stack.in_features(), stack.out_features()), (64, 10));
            assert_eq!(stack.activation_type(), kind);
            let x = Array2::from_shape_simple_fn((7, 64), || rng.random_range(-2.0f32..2.0));
            let want = match kind {
                ElemKind::Int8 => by_hand::<i8>(&layers, x.view()),
                ElemKind::Uint8 => by_hand::<u8>(&layers, x.view()),
            };
            assert_eq!(
                stack.forward_f32(&x).unwrap(),
                want,
                "{kind:?} {requantizer:?}"
            );
            stacks += 1;
        }
    }
    assert_eq!(stacks, 10);
}

#[test]
fn every_mismatch_is_an_error_naming_the_pair() {
    let mut rng = StdRng::seed_from_u64(18);
    let k = ElemKind::Int8;
    let (a, b, c) = (params(k, 0.02), params(k, 0.05), params(k, 0.1));
    let r = Requantizer::Float64;
    let l0 = layer(&mut rng, (4, 6), (a, b), k, r, true);
    let l1 = layer(&mut rng, (6, 3), (b, c), k, r, false);
    assert!(QuantizedSequential::new(vec![l0.clone(), l1.clone()]).is_ok());
    assert_eq!(
        QuantizedSequential::new(vec![]).unwrap_err(),
        QuantError::EmptyStack
    );

    let mismatch = |layers: Vec<QuantizedLinear>, at: usize, words: &str| {
        let e = QuantizedSequential::new(layers).unwrap_err();
        assert!(
            matches!(&e, QuantError::LayerMismatch { layer, what } if *layer == at && what.contains(words)),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains(&format!("layer {at} cannot follow layer {}", at - 1)),
            "{e}"
        );
    };
    // Widths: 6 outputs into 5 inputs.
    let narrow = layer(&mut rng, (5, 3), (b, c), k, r, false);
    mismatch(vec![l0.clone(), narrow], 1, "6 outputs, but 5 inputs");
    // Params one ulp apart.
    let ulp = QuantParams::new(f64::from_bits(b.scale.to_bits() + 1), 0).unwrap();
    let off = layer(&mut rng, (6, 3), (ulp, c), k, r, false);
    mismatch(vec![l0.clone(), off], 1, "differ from input params");
    // Activation types.
    let u = ElemKind::Uint8;
    let unsigned = layer(&mut rng, (6, 3), (b, c), u, r, false);
    mismatch(
        vec![l0.clone(), unsigned],
        1,
        "Int8 activations out, but Uint8 in",
    );
    // Outputs beyond the next layer's declared 7-bit input range.
    let reduced = l1
        .clone()
        .with_input_range(QuantRange::INT8_REDUCED)
        .unwrap();
    mismatch(vec![l0.clone(), reduced], 1, "the input range is [-64, 63]");
    // The pair is named further down a stack too.
    let l2 = layer(&mut rng, (4, 6), (a, b), k, r, false);
    mismatch(vec![l0, l1, l2], 2, "3 outputs, but 4 inputs");
}

#[test]
fn quantized_forward_takes_the_first_layers_type() {
    let mut rng = StdRng::seed_from_u64(19);
    let k = ElemKind::Uint8;
    let (a, b) = (params(k, 0.02), params(k, 0.05));
    let stack = QuantizedSequential::new(vec![layer(
        &mut rng,
        (4, 2),
        (a, b),
        k,
        Requantizer::Float32,
        false,
    )])
    .unwrap();
    let x = Array2::<u8>::from_elem((2, 4), 140);
    assert_eq!(
        stack.forward(&x).unwrap(),
        stack.layers()[0].forward(&x).unwrap()
    );
    let wrong = Array2::<i8>::zeros((2, 4));
    assert!(matches!(
        stack.forward(&wrong),
        Err(QuantError::ActivationType { .. })
    ));
    let nan = Array2::from_elem((1, 4), f32::NAN);
    assert!(matches!(
        stack.forward_f32(&nan),
        Err(QuantError::NonFinite { .. })
    ));
}
