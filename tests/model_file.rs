//! Reading f32 models from safetensors files: every float type, PyTorch's
//! names and layout, and hostile files as errors, never panics.

use half::{bf16, f16};
use ndarray::{Array1, Array2};
use qlinear::{FloatLinear, FloatSequential, FusedActivation, QuantError, WeightLayout};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use safetensors::{serialize, tensor::TensorView, Dtype};

/// A 6 → 5 → 3 model's tensors: `net.0` with a bias, `net.2` without,
/// weights out × in, as PyTorch's state dict names them.
fn tensors(rng: &mut StdRng) -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
    let mut values = |n: usize| {
        (0..n)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect::<Vec<_>>()
    };
    vec![
        ("net.0.weight", vec![5, 6], values(30)),
        ("net.0.bias", vec![5], values(5)),
        ("net.2.weight", vec![3, 5], values(15)),
    ]
}

/// The bytes of `values` in `dtype`, and the f32 each one reads back as.
fn encode(values: &[f32], dtype: Dtype) -> (Vec<u8>, Vec<f32>) {
    match dtype {
        Dtype::F32 => (
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            values.to_vec(),
        ),
        Dtype::F64 => (
            values
                .iter()
                .flat_map(|&v| f64::from(v).to_le_bytes())
                .collect(),
            values.to_vec(),
        ),
        Dtype::F16 => (
            values
                .iter()
                .flat_map(|&v| f16::from_f32(v).to_le_bytes())
                .collect(),
            values.iter().map(|&v| f16::from_f32(v).to_f32()).collect(),
        ),
        Dtype::BF16 => (
            values
                .iter()
                .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
                .collect(),
            values.iter().map(|&v| bf16::from_f32(v).to_f32()).collect(),
        ),
        other => panic!("{other:?}"),
    }
}

/// A tensor as the file stores it: name, shape, bytes, type.
type Stored<'a> = (&'a str, Vec<usize>, Vec<u8>, Dtype);

fn file(tensors: &[Stored<'_>]) -> Vec<u8> {
    let views = tensors.iter().map(|(name, shape, data, dtype)| {
        (*name, TensorView::new(*dtype, shape.clone(), data).unwrap())
    });
    serialize(views, None).unwrap()
}

const LAYERS: [(&str, FusedActivation); 2] = [
    ("net.0", FusedActivation::Relu),
    ("net.2", FusedActivation::None),
];

#[test]
fn every_float_type_loads_as_converting_to_f32_first() {
    let mut rng = StdRng::seed_from_u64(31);
    let t = tensors(&mut rng);
    for dtype in [Dtype::F32, Dtype::F64, Dtype::F16, Dtype::BF16] {
        let encoded: Vec<_> = t.iter().map(|(_, _, v)| encode(v, dtype)).collect();
        let bytes = file(
            &t.iter()
                .zip(&encoded)
                .map(|((n, s, _), (data, _))| (*n, s.clone(), data.clone(), dtype))
                .collect::<Vec<_>>(),
        );
        if cfg!(not(feature = "half")) && matches!(dtype, Dtype::F16 | Dtype::BF16) {
            let err = model_file_error(&bytes, &LAYERS);
            assert!(err.contains("without the `half` feature"), "{err}");
            continue;
        }
        let model = FloatSequential::from_safetensors(&bytes, &LAYERS).unwrap();
        // The same model built from the f32 values each element reads back as.
        let w0 = Array2::from_shape_vec((5, 6), encoded[0].1.clone()).unwrap();
        let b0 = Array1::from(encoded[1].1.clone());
        let w2 = Array2::from_shape_vec((3, 5), encoded[2].1.clone()).unwrap();
        let want = FloatSequential::new(vec![
            FloatLinear::new(
                w0.view(),
                WeightLayout::OutIn,
                Some(b0.view()),
                FusedActivation::Relu,
            )
            .unwrap(),
            FloatLinear::new(w2.view(), WeightLayout::OutIn, None, FusedActivation::None).unwrap(),
        ])
        .unwrap();
        assert_eq!(model, want, "{dtype:?}");
        assert_eq!((model.in_features(), model.out_features()), (6, 3));
        let x = Array2::from_shape_simple_fn((4, 6), || rng.random_range(-1.0f32..1.0));
        assert_eq!(model.forward(&x).unwrap(), want.forward(&x).unwrap());
    }
}

fn f32_file(rng: &mut StdRng) -> Vec<u8> {
    let t = tensors(rng);
    file(
        &t.iter()
            .map(|(n, s, v)| (*n, s.clone(), encode(v, Dtype::F32).0, Dtype::F32))
            .collect::<Vec<_>>(),
    )
}

fn model_file_error(bytes: &[u8], layers: &[(&str, FusedActivation)]) -> String {
    match FloatSequential::from_safetensors(bytes, layers) {
        Err(e @ QuantError::ModelFile { .. }) | Err(e @ QuantError::LayerMismatch { .. }) => {
            e.to_string()
        }
        other => panic!("expected a model-file error, got {other:?}"),
    }
}

#[test]
fn truncated_and_flipped_files_are_errors_never_panics() {
    let mut rng = StdRng::seed_from_u64(32);
    let bytes = f32_file(&mut rng);
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut cases = 0;
    // Every cut inside the length prefix and the header, then steps
    // through the data.
    let cuts = (0..header).chain((header..bytes.len()).step_by(3));
    for cut in cuts {
        let e = model_file_error(&bytes[..cut], &LAYERS);
        assert!(e.starts_with("model file:"), "cut at {cut}: {e}");
        cases += 1;
    }
    // Every header byte flipped, one at a time, every bit pattern that
    // matters: an error or, where the flip left the file valid (a digit
    // of an offset into padding, a space), a model; never a panic.
    for at in 0..header {
        for mask in [0x01u8, 0x20, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[at] ^= mask;
            let _ = FloatSequential::from_safetensors(&b, &LAYERS);
            cases += 1;
        }
    }
    // A header length that claims more than the file, and absurd sizes.
    for claim in [u64::MAX, 1 << 62, bytes.len() as u64] {
        let mut b = bytes.clone();
        b[..8].copy_from_slice(&claim.to_le_bytes());
        model_file_error(&b, &LAYERS);
        cases += 1;
    }
    assert!(cases > 1000, "{cases}");
}

#[test]
fn wrong_names_types_and_shapes_name_the_tensor() {
    let mut rng = StdRng::seed_from_u64(33);
    let bytes = f32_file(&mut rng);
    let e = model_file_error(&bytes, &[("net.1", FusedActivation::None)]);
    assert!(
        e.contains("no tensor net.1.weight") && e.contains("net.0.weight"),
        "{e}"
    );
    // Layers named out of order do not chain.
    let e = model_file_error(
        &bytes,
        &[
            ("net.2", FusedActivation::None),
            ("net.0", FusedActivation::None),
        ],
    );
    assert!(e.contains("layer 1 cannot follow layer 0"), "{e}");

    let ints: Vec<u8> = (0..30i32).flat_map(|v| v.to_le_bytes()).collect();
    let floats: Vec<u8> = (0..30).flat_map(|v| (v as f32).to_le_bytes()).collect();
    let short_bias: Vec<u8> = (0..4).flat_map(|v| (v as f32).to_le_bytes()).collect();
    let nan: Vec<u8> = (0..30).flat_map(|_| f32::NAN.to_le_bytes()).collect();
    let huge: Vec<u8> = (0..30).flat_map(|_| 1e300f64.to_le_bytes()).collect();
    let cases: [(Vec<Stored<'_>>, &str); 5] = [
        (vec![("fc.weight", vec![5, 6], ints, Dtype::I32)], "I32"),
        (
            vec![("fc.weight", vec![30], floats.clone(), Dtype::F32)],
            "not 2 dimensions",
        ),
        (
            vec![
                ("fc.weight", vec![5, 6], floats, Dtype::F32),
                ("fc.bias", vec![4], short_bias, Dtype::F32),
            ],
            "bias",
        ),
        (vec![("fc.weight", vec![5, 6], nan, Dtype::F32)], "NaN"),
        (vec![("fc.weight", vec![5, 6], huge, Dtype::F64)], "weights"),
    ];
    for (tensors, words) in cases {
        let e = model_file_error(&file(&tensors), &[("fc", FusedActivation::None)]);
        assert!(e.contains(words), "{words}: {e}");
    }
}
