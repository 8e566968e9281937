//! `LinearBuilder`: options in any order give the same layer, weights in
//! either layout give the same layer, and what is missing or inconsistent
//! is one error at `build`.

use ndarray::{array, Array2, ArrayView1, ArrayView2};
use qlinear::{
    available_kernels, Bias, ElemKind, F32Bias, FusedActivation, LinearBuilder, QuantError,
    QuantParams, QuantRange, QuantizedLinear, Requantizer, Rounding, WeightLayout, WeightParams,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// One option of the builder, applied by [`apply`].
#[derive(Debug, Clone, Copy)]
enum Option_ {
    Requantizer,
    ActivationType,
    InputRange,
    Activation,
    Kernel,
    Bias,
}

const OPTIONS: [Option_; 6] = [
    Option_::Requantizer,
    Option_::ActivationType,
    Option_::InputRange,
    Option_::Activation,
    Option_::Kernel,
    Option_::Bias,
];

fn apply<'w>(
    b: LinearBuilder<'w>,
    o: Option_,
    bias: ArrayView1<'w, f32>,
    kernel: &str,
) -> LinearBuilder<'w> {
    match o {
        Option_::Requantizer => b.requantizer(Requantizer::FixedPoint(Rounding::Double)),
        Option_::ActivationType => b.activation_type(ElemKind::Uint8),
        // 7 bits, so that every kernel can run it.
        Option_::InputRange => b.input_range(QuantRange::UINT8_REDUCED),
        Option_::Activation => b.fused_activation(FusedActivation::Relu6),
        Option_::Kernel => b.kernel(kernel),
        Option_::Bias => b.bias_f32(F32Bias::Real(bias)),
    }
}

/// Every permutation of `items`.
fn permutations<T: Copy>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, first);
            all.push(p);
        }
    }
    all
}

/// What a layer is, as its accessors and its outputs on `x` show it.
fn fingerprint(layer: &QuantizedLinear, x: &Array2<u8>) -> String {
    format!(
        "{:?} {:?} {:?} {:?} {} {:?} {:?} {:?}",
        layer.requantizer(),
        layer.activation_type(),
        layer.input_range(),
        layer.output_clamp(),
        layer.kernel_name(),
        layer.bias(),
        layer.unpack_weights(),
        layer.forward(x).unwrap(),
    )
}

#[test]
fn options_in_every_order_give_the_same_layer() {
    let mut rng = StdRng::seed_from_u64(16);
    let w = Array2::from_shape_simple_fn((5, 7), || rng.random_range(-1.0f32..1.0));
    let bias = Array2::from_shape_simple_fn((1, 7), || rng.random_range(-0.5f32..0.5));
    // The 7-bit input range lets every kernel run; the last one listed is
    // the slowest, so not the one chosen by default.
    let kernels = available_kernels();
    let kernel = *kernels.last().unwrap();
    let x = Array2::from_shape_simple_fn((3, 5), || rng.random_range(0u8..=127));
    let px = QuantParams::new(1.0 / 64.0, 128).unwrap();
    let py = QuantParams::new(1.0 / 32.0, 128).unwrap();
    let pw = WeightParams::PerTensor(QuantParams::new(1.0 / 127.0, 0).unwrap());

    let mut seen = None;
    let orders = permutations(&OPTIONS);
    assert_eq!(orders.len(), 720);
    for order in &orders {
        let mut b = QuantizedLinear::builder_f32(w.view(), WeightLayout::InOut, pw.clone())
            .input_params(px)
            .output_params(py);
        for &o in order {
            b = apply(b, o, bias.row(0), kernel);
        }
        let layer = b.build().unwrap_or_else(|e| panic!("{order:?}: {e}"));
        // The options all took effect.
        assert_eq!(layer.kernel_name(), kernel);
        assert_eq!(layer.input_range(), QuantRange::UINT8_REDUCED);
        assert_eq!(
            layer.requantizer(),
            Requantizer::FixedPoint(Rounding::Double)
        );
        assert!(matches!(layer.bias(), Bias::Int32(_)));
        let f = fingerprint(&layer, &x);
        match &seen {
            None => seen = Some(f),
            Some(first) => assert_eq!(&f, first, "{order:?}"),
        }
    }
}

/// The layer's own option methods commute where both orders are valid,
/// and an explicit input range survives a change of activation type.
#[test]
fn with_methods_keep_an_explicit_input_range() {
    let p = QuantParams::new(1.0, 128).unwrap();
    let base = QuantizedLinear::from_quantized(
        array![[1i8]],
        QuantParams::new(1.0, 0).unwrap(),
        Bias::None,
        p,
        p,
    )
    .unwrap();
    let a = base
        .clone()
        .with_activation_type(ElemKind::Uint8)
        .and_then(|l| l.with_input_range(QuantRange::UINT8_REDUCED))
        .unwrap();
    assert_eq!(a.input_range(), QuantRange::UINT8_REDUCED);
    // Asked of an int8 layer, a uint8 range is refused at once, never
    // silently replaced.
    assert!(matches!(
        base.clone().with_input_range(QuantRange::UINT8),
        Err(QuantError::InvalidTargetRange { .. })
    ));
    // A narrow int8 range does not fit u8: the type change is refused
    // rather than resetting the range.
    let narrow = base.with_input_range(QuantRange::INT8_REDUCED).unwrap();
    assert!(matches!(
        narrow.with_activation_type(ElemKind::Uint8),
        Err(QuantError::InvalidTargetRange { .. })
    ));
}

#[test]
fn out_in_weights_and_their_transpose_give_the_same_layer() {
    let mut rng = StdRng::seed_from_u64(17);
    let (p, n) = (6, 4);
    // Square too: the case where the wrong layout would still run.
    for (p, n) in [(p, n), (5, 5)] {
        let w = Array2::from_shape_simple_fn((p, n), || rng.random_range(-1.0f32..1.0));
        let w_out_in = w.t().as_standard_layout().into_owned();
        let b = Array2::from_shape_simple_fn((1, n), || rng.random_range(-0.5f32..0.5));
        let channels: Vec<QuantParams> = (0..n)
            .map(|j| QuantParams::new((j + 1) as f64 / 127.0, 0).unwrap())
            .collect();
        let x = Array2::from_shape_simple_fn((3, p), || rng.random_range(-100i8..100));
        let px = QuantParams::new(0.01, 3).unwrap();
        let py = QuantParams::new(0.02, -5).unwrap();
        let build = |w: ArrayView2<'_, f32>, layout| {
            QuantizedLinear::builder_f32(w, layout, channels.clone())
                .bias_f32(F32Bias::Real(b.row(0)))
                .input_params(px)
                .output_params(py)
                .build()
                .unwrap()
        };
        let in_out = build(w.view(), WeightLayout::InOut);
        let out_in = build(w_out_in.view(), WeightLayout::OutIn);
        assert_eq!((out_in.in_features(), out_in.out_features()), (p, n));
        assert_eq!(out_in.unpack_weights(), in_out.unpack_weights());
        assert_eq!(out_in.bias(), in_out.bias());
        assert_eq!(out_in.forward(&x).unwrap(), in_out.forward(&x).unwrap());

        // int8 weights, and the old positional constructor.
        let w_q = in_out.unpack_weights();
        let w_q_out_in = w_q.t().as_standard_layout().into_owned();
        let int8 =
            QuantizedLinear::builder_int8(w_q_out_in.view(), WeightLayout::OutIn, channels.clone())
                .bias(in_out.bias().clone())
                .input_params(px)
                .output_params(py)
                .build()
                .unwrap();
        let positional = QuantizedLinear::from_quantized(
            w_q.clone(),
            channels.clone(),
            in_out.bias().clone(),
            px,
            py,
        )
        .unwrap();
        assert_eq!(int8.forward(&x).unwrap(), in_out.forward(&x).unwrap());
        assert_eq!(positional.forward(&x).unwrap(), in_out.forward(&x).unwrap());
    }
}

#[test]
fn missing_and_inconsistent_options_are_one_error_at_build() {
    let w = array![[1i8, 2], [3, 4]];
    let p = QuantParams::new(1.0, 0).unwrap();
    let builder = QuantizedLinear::builder_int8(w.view(), WeightLayout::InOut, p);
    let e = builder.clone().output_params(p).build().unwrap_err();
    assert_eq!(
        e,
        QuantError::MissingOption {
            what: "input params",
            setter: "input_params"
        }
    );
    assert!(e.to_string().contains(".input_params("), "{e}");
    let e = builder.clone().input_params(p).build().unwrap_err();
    assert!(matches!(
        e,
        QuantError::MissingOption {
            setter: "output_params",
            ..
        }
    ));
    let ok = builder.clone().input_params(p).output_params(p);
    // A u8 range on int8 activations, whatever the order.
    assert!(matches!(
        ok.clone().input_range(QuantRange::UINT8).build(),
        Err(QuantError::InvalidTargetRange { .. })
    ));
    assert!(matches!(
        ok.clone().kernel("no-such-kernel").build(),
        Err(QuantError::KernelUnavailable { .. })
    ));
    // A bias of the wrong length names it.
    let e = ok
        .clone()
        .bias(Bias::Int32(array![1, 2, 3]))
        .build()
        .unwrap_err();
    assert!(matches!(
        e,
        QuantError::LengthMismatch {
            what: "bias",
            expected: 2,
            found: 3
        }
    ));
    // Per-channel params with the wrong count, in PyTorch's layout.
    let e = QuantizedLinear::builder_int8(w.view(), WeightLayout::OutIn, vec![p; 3])
        .input_params(p)
        .output_params(p)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            e,
            QuantError::LengthMismatch {
                expected: 2,
                found: 3,
                ..
            }
        ),
        "{e}"
    );
}
