//! Saving a quantized stack as safetensors and loading it back: random
//! stacks of every requantizer and activation type give bit-identical
//! outputs after the round trip, and saving is deterministic.

use ndarray::{Array1, Array2};
use proptest::prelude::*;
use qlinear::{
    Bias, ElemKind, FusedActivation, QuantElem, QuantError, QuantParams, QuantRange,
    QuantizedLinear, QuantizedSequential, Requantizer, Rounding, WeightLayout, WeightParams,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const REQUANTIZERS: [Requantizer; 6] = [
    Requantizer::Float64,
    Requantizer::TfliteReference,
    Requantizer::FixedPoint(Rounding::HalfUp),
    Requantizer::FixedPoint(Rounding::Double),
    Requantizer::FixedPoint(Rounding::Single),
    Requantizer::Float32,
];

fn full_range(kind: ElemKind) -> QuantRange {
    match kind {
        ElemKind::Int8 => QuantRange::INT8,
        ElemKind::Uint8 => QuantRange::UINT8,
    }
}

/// The params and declared range of one boundary between layers.
fn boundary(rng: &mut StdRng, kind: ElemKind) -> (QuantParams, QuantRange) {
    let full = full_range(kind);
    let scale = rng.random_range(0.01..0.2);
    let zero_point = rng.random_range(full.qmin..=full.qmax);
    let range = if rng.random_bool(0.5) {
        full
    } else {
        let lo = rng.random_range(full.qmin..full.qmax);
        QuantRange::new(lo, rng.random_range(lo + 1..=full.qmax)).unwrap()
    };
    (QuantParams::new(scale, zero_point).unwrap(), range)
}

/// A random stack of 1 to 3 layers, every option drawn at random.
fn random_stack(rng: &mut StdRng, kind: ElemKind, requantizer: Requantizer) -> QuantizedSequential {
    let depth = rng.random_range(1..=3);
    let widths: Vec<usize> = (0..=depth)
        .map(|_| [1, 2, 5, 17, 40][rng.random_range(0..5)])
        .collect();
    let boundaries: Vec<_> = (0..=depth).map(|_| boundary(rng, kind)).collect();
    let layers = (0..depth)
        .map(|i| {
            let (p, n) = (widths[i], widths[i + 1]);
            let w = Array2::from_shape_fn((p, n), |_| rng.random_range(-127i8..=127));
            let weight = if rng.random_bool(0.5) {
                WeightParams::PerTensor(weight_param(rng))
            } else {
                WeightParams::PerChannel((0..n).map(|_| weight_param(rng)).collect())
            };
            let bias = match rng.random_range(0..3) {
                0 => Bias::None,
                1 if requantizer == Requantizer::Float64 => Bias::Int8 {
                    values: Array1::from_shape_fn(n, |_| rng.random_range(-128i8..=127)),
                    params: QuantParams::new(0.01, rng.random_range(-5..=5)).unwrap(),
                },
                _ => Bias::Int32(Array1::from_shape_fn(n, |_| rng.random_range(-3000..=3000))),
            };
            let ((input, input_range), (output, next_range)) = (boundaries[i], boundaries[i + 1]);
            let builder = QuantizedLinear::builder_int8(w.view(), WeightLayout::InOut, weight)
                .input_params(input)
                .input_range(input_range)
                .output_params(output)
                .bias(bias)
                .requantizer(requantizer)
                .activation_type(kind);
            let last = i + 1 == depth;
            let builder = if next_range == full_range(kind) || last {
                if rng.random_bool(0.3) {
                    let lo = rng.random_range(next_range.qmin..next_range.qmax);
                    builder.output_clamp(lo, rng.random_range(lo..=next_range.qmax))
                } else {
                    let activations = [
                        FusedActivation::None,
                        FusedActivation::Relu,
                        FusedActivation::Relu6,
                        FusedActivation::ReluN1To1,
                    ];
                    builder.fused_activation(activations[rng.random_range(0..4)])
                }
            } else {
                builder.output_clamp(next_range.qmin, next_range.qmax)
            };
            builder.build().expect("the random layer is valid")
        })
        .collect();
    QuantizedSequential::new(layers).expect("the random layers chain")
}

/// A weight scale and zero point, symmetric or not.
fn weight_param(rng: &mut StdRng) -> QuantParams {
    let zero_point = if rng.random_bool(0.5) {
        0
    } else {
        rng.random_range(-10..=10)
    };
    QuantParams::new(rng.random_range(0.001..0.02), zero_point).unwrap()
}

/// Random inputs inside the stack's declared input range.
fn inputs<T: QuantElem>(rng: &mut StdRng, model: &QuantizedSequential, m: usize) -> Array2<T> {
    let range = model.layers()[0].input_range();
    Array2::from_shape_fn((m, model.in_features()), |_| {
        T::from_i32_clamped(rng.random_range(range.qmin..=range.qmax))
    })
}

fn check_round_trip<T: QuantElem>(
    rng: &mut StdRng,
    model: &QuantizedSequential,
) -> Result<(), QuantError> {
    let bytes = model.to_safetensors()?;
    let loaded = QuantizedSequential::from_safetensors(&bytes)?;
    assert_eq!(loaded.layers().len(), model.layers().len());
    for (a, b) in loaded.layers().iter().zip(model.layers()) {
        assert_eq!(a.unpack_weights(), b.unpack_weights());
        assert_eq!(a.weight_params(), b.weight_params());
        assert_eq!(a.bias(), b.bias());
        assert_eq!(a.requantizer(), b.requantizer());
        assert_eq!(a.output_clamp(), b.output_clamp());
        assert_eq!(a.input_range(), b.input_range());
    }
    let x = inputs::<T>(rng, model, 7);
    assert_eq!(loaded.forward(&x)?, model.forward(&x)?);
    let real = Array2::from_shape_fn((5, model.in_features()), |_| {
        rng.random_range(-30.0f32..30.0)
    });
    let (a, b) = (loaded.forward_f32(&real)?, model.forward_f32(&real)?);
    assert!(a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()));
    assert_eq!(loaded.to_safetensors()?, bytes, "saving is deterministic");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// For every requantizer and activation type: save, load, and the same
    /// layers and the same output bits, and the same bytes when saved again.
    #[test]
    fn round_trip_is_bit_identical(seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        for requantizer in REQUANTIZERS {
            for kind in [ElemKind::Int8, ElemKind::Uint8] {
                let model = random_stack(&mut rng, kind, requantizer);
                match kind {
                    ElemKind::Int8 => check_round_trip::<i8>(&mut rng, &model).unwrap(),
                    ElemKind::Uint8 => check_round_trip::<u8>(&mut rng, &model).unwrap(),
                }
            }
        }
    }
}

/// A layer with extreme zero points and scales (legal for the crate) makes
/// the trip too: the file stores every `i32` zero point and `f64` scale
/// exactly.
#[test]
fn extreme_params_round_trip() {
    let w = Array2::from_shape_fn((3, 2), |(i, j)| (i as i8 - 1) * 50 + j as i8);
    let layer = QuantizedLinear::builder_int8(
        w.view(),
        WeightLayout::InOut,
        QuantParams::new(f64::MIN_POSITIVE.max(qlinear::MIN_SCALE), 1_000).unwrap(),
    )
    .input_params(QuantParams::new(1e-3, i32::MIN / 4).unwrap())
    .output_params(QuantParams::new(1.0 / 3.0, i32::MAX).unwrap())
    .build()
    .unwrap();
    let model = QuantizedSequential::new(vec![layer]).unwrap();
    let loaded = QuantizedSequential::from_safetensors(&model.to_safetensors().unwrap()).unwrap();
    let x = Array2::from_shape_fn((4, 3), |(i, j)| (i as i32 * 60 - j as i32 * 40 - 60) as i8);
    assert_eq!(loaded.forward(&x).unwrap(), model.forward(&x).unwrap());
    assert_eq!(
        loaded.layers()[0].output_params().scale.to_bits(),
        (1.0f64 / 3.0).to_bits()
    );
}

/// The file names what it holds: the format version and each layer's
/// settings, readable by any safetensors reader.
#[test]
fn metadata_describes_the_model() {
    let p = QuantParams::new(0.05, 3).unwrap();
    let w = Array2::from_elem((2, 2), 7i8);
    let layer = QuantizedLinear::builder_int8(w.view(), WeightLayout::InOut, p)
        .input_params(p)
        .output_params(p)
        .requantizer(Requantizer::FixedPoint(Rounding::Single))
        .activation_type(ElemKind::Uint8)
        .build()
        .unwrap();
    let bytes = QuantizedSequential::new(vec![layer])
        .unwrap()
        .to_safetensors()
        .unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let text = &header.metadata().as_ref().unwrap()["qlinear"];
    assert_eq!(
        text,
        &format!(
            "format_version={} layers=1 layers.0.activation_type=uint8 layers.0.bias=none \
             layers.0.requantizer=fixed_point_single",
            qlinear::FORMAT_VERSION
        )
    );
}
