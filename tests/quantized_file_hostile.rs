//! Hostile quantized model files: every one is a `QuantError::ModelFile`
//! naming what is wrong, never a panic, and none makes the loader allocate
//! much more than the file's own size.
//!
//! The corpus: a small saved model truncated at every byte, with every bit
//! of its header flipped, and rewritten with each kind of lie a file can
//! tell (missing, extra, retyped and reshaped tensors; NaN, negative and
//! zero scales; ranges, clamps and zero points a layer refuses; unknown
//! versions and settings; layers that do not chain; headers whose lengths,
//! offsets and shapes lie).

use std::collections::HashMap;

use ndarray::{array, Array1};
use qlinear::{
    Bias, FusedActivation, QuantError, QuantParams, QuantizedLinear, QuantizedSequential,
    Requantizer, Rounding, WeightLayout, WeightParams,
};
use safetensors::{serialize, tensor::TensorView, Dtype, SafeTensors};

/// Loads `bytes`, checking that the memory held at any one time on the
/// way stays within a small multiple of the file's size.
fn load(bytes: &[u8]) -> Result<QuantizedSequential, QuantError> {
    let mut result = None;
    let info = allocation_counter::measure(|| {
        result = Some(QuantizedSequential::from_safetensors(bytes));
    });
    assert!(
        info.bytes_max <= 64 * bytes.len() as u64 + 65536,
        "a {}-byte file made the loader hold {} bytes",
        bytes.len(),
        info.bytes_max
    );
    result.expect("measured")
}

/// Loads `bytes` and expects a model-file error mentioning `needle`.
fn refused(case: &str, bytes: &[u8], needle: &str) {
    match load(bytes) {
        Err(QuantError::ModelFile { what }) => assert!(
            what.contains(needle),
            "{case}: the error `{what}` does not mention `{needle}`"
        ),
        Err(other) => panic!("{case}: not a model-file error: {other:?}"),
        Ok(_) => panic!("{case}: a hostile file was accepted"),
    }
}

/// Two layers: int8 bias and per-channel weights under `Float64`, then an
/// int32 bias and per-tensor weights under the fixed-point requantizer.
fn model() -> QuantizedSequential {
    let (px, ph, py) = (
        QuantParams::new(0.05, -3).unwrap(),
        QuantParams::new(0.1, -128).unwrap(),
        QuantParams::new(0.2, 5).unwrap(),
    );
    let w0 = array![[50i8, -20, 10], [5, 40, -30]];
    let channels = WeightParams::PerChannel(vec![
        QuantParams::new(0.01, 0).unwrap(),
        QuantParams::new(0.02, 1).unwrap(),
        QuantParams::new(0.015, -2).unwrap(),
    ]);
    let hidden = QuantizedLinear::builder_int8(w0.view(), WeightLayout::InOut, channels)
        .input_params(px)
        .output_params(ph)
        .bias(Bias::Int8 {
            values: array![10i8, -5, 3],
            params: QuantParams::new(0.01, 0).unwrap(),
        })
        .fused_activation(FusedActivation::Relu)
        .build()
        .unwrap();
    let w1 = array![[10i8, 4], [-20, 7], [30, -1]];
    let last = QuantizedLinear::builder_int8(
        w1.view(),
        WeightLayout::InOut,
        QuantParams::new(0.01, 0).unwrap(),
    )
    .input_params(ph)
    .output_params(py)
    .bias(Bias::Int32(Array1::from(vec![100, -250])))
    .requantizer(Requantizer::FixedPoint(Rounding::Double))
    .build()
    .unwrap();
    QuantizedSequential::new(vec![hidden, last]).unwrap()
}

fn saved() -> Vec<u8> {
    model().to_safetensors().unwrap()
}

/// A tensor as stored: type, shape, bytes.
type Tensor = (Dtype, Vec<usize>, Vec<u8>);

/// The tensors and metadata of a file, to be rewritten.
struct Parts {
    tensors: Vec<(String, Tensor)>,
    metadata: HashMap<String, String>,
}

impl Parts {
    fn of(bytes: &[u8]) -> Parts {
        let file = SafeTensors::deserialize(bytes).unwrap();
        let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
        let mut tensors: Vec<(String, Tensor)> = file
            .tensors()
            .into_iter()
            .map(|(name, v)| (name, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Parts {
            tensors,
            metadata: header.metadata().clone().unwrap(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let views = self
            .tensors
            .iter()
            .map(|(name, (dtype, shape, data))| {
                (
                    name.as_str(),
                    TensorView::new(*dtype, shape.clone(), data).unwrap(),
                )
            })
            .collect::<Vec<_>>();
        serialize(views, Some(self.metadata.clone())).unwrap()
    }

    fn get(&mut self, name: &str) -> &mut Tensor {
        &mut self
            .tensors
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .1
    }

    fn set(&mut self, name: &str, tensor: Tensor) {
        match self.tensors.iter_mut().find(|(n, _)| n == name) {
            Some(t) => t.1 = tensor,
            None => self.tensors.push((name.to_string(), tensor)),
        }
    }

    fn remove(&mut self, name: &str) {
        self.tensors.retain(|(n, _)| n != name);
    }

    /// The metadata entry with `key` set to `value` (or removed for `None`).
    fn describe(&mut self, key: &str, value: Option<&str>) {
        let text = &self.metadata["qlinear"];
        let mut pairs: Vec<String> = text
            .split(' ')
            .filter(|p| !p.starts_with(&format!("{key}=")))
            .map(str::to_string)
            .collect();
        if let Some(v) = value {
            pairs.push(format!("{key}={v}"));
        }
        self.metadata.insert("qlinear".into(), pairs.join(" "));
    }
}

fn f64_scalar(v: f64) -> Tensor {
    (Dtype::F64, vec![], v.to_le_bytes().to_vec())
}

fn i32s(values: &[i32], shape: Vec<usize>) -> Tensor {
    (
        Dtype::I32,
        shape,
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// The file as saved loads: the corpus below starts from a valid file.
#[test]
fn the_unmodified_file_loads() {
    let model = model();
    let loaded = load(&saved()).unwrap();
    let x = array![[20i8, -7], [127, -128]];
    assert_eq!(loaded.forward(&x).unwrap(), model.forward(&x).unwrap());
    // Rewriting through Parts keeps it valid too, so each case below fails
    // for its own change only.
    assert!(load(&Parts::of(&saved()).bytes()).is_ok());
}

#[test]
fn truncated_at_every_byte() {
    let bytes = saved();
    for cut in 0..bytes.len() {
        match load(&bytes[..cut]) {
            Err(QuantError::ModelFile { .. }) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn every_header_bit_flipped() {
    let bytes = saved();
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let (mut refused, mut accepted) = (0, 0);
    for at in 0..header_end {
        for bit in 0..8 {
            let mut flipped = bytes.clone();
            flipped[at] ^= 1 << bit;
            match load(&flipped) {
                Err(QuantError::ModelFile { .. }) => refused += 1,
                Err(other) => panic!("byte {at} bit {bit}: {other:?}"),
                // A flip the format does not see (none is expected); the
                // model it gives must still run.
                Ok(m) => {
                    accepted += 1;
                    let x = ndarray::Array2::<i8>::zeros((1, m.in_features()));
                    let _ = m.forward(&x);
                }
            }
        }
    }
    assert!(
        refused >= 8 * header_end * 99 / 100,
        "{accepted} of {} flips accepted",
        8 * header_end
    );
}

#[test]
fn metadata_lies() {
    let mut no_metadata = Parts::of(&saved());
    no_metadata.metadata.clear();
    refused("no metadata", &no_metadata.bytes(), "no `qlinear` metadata");

    let cases: [(&str, Option<&str>, &str); 13] = [
        ("layers.0.bias", Some("int16"), "bias=int16"),
        (
            "layers.0.bias",
            Some("none"),
            "unexpected tensor layers.0.bias",
        ),
        ("layers.1.bias", None, "layers.1.bias"),
        ("format_version", Some("2"), "format version 2"),
        ("format_version", Some("one"), "format version one"),
        ("format_version", None, "format_version"),
        ("layers", Some("0"), "layers=0"),
        ("layers", Some("1000000000000"), "layers=1000000000000"),
        ("layers", Some("-1"), "not a count"),
        ("layers", Some("1"), "unexpected tensor layers.1."),
        (
            "layers.0.activation_type",
            Some("int4"),
            "activation_type=int4",
        ),
        (
            "layers.1.requantizer",
            Some("float16"),
            "requantizer=float16",
        ),
        ("layers.1.requantizer", None, "layers.1.requantizer"),
    ];
    for (key, value, needle) in cases {
        let mut parts = Parts::of(&saved());
        parts.describe(key, value);
        refused(&format!("{key}={value:?}"), &parts.bytes(), needle);
    }

    let mut twice = Parts::of(&saved());
    let text = twice.metadata["qlinear"].clone();
    twice
        .metadata
        .insert("qlinear".into(), format!("{text} layers=2"));
    refused("a key twice", &twice.bytes(), "appears twice");
    let mut garbled = Parts::of(&saved());
    garbled
        .metadata
        .insert("qlinear".into(), format!("{text} garbage"));
    refused("not key=value", &garbled.bytes(), "not key=value");
}

#[test]
fn missing_and_extra_tensors() {
    let names: Vec<String> = Parts::of(&saved())
        .tensors
        .into_iter()
        .map(|t| t.0)
        .collect();
    for name in &names {
        let mut parts = Parts::of(&saved());
        parts.remove(name);
        refused(
            &format!("without {name}"),
            &parts.bytes(),
            &format!("no tensor {name}"),
        );
    }
    for extra in ["layers.0.extra", "layers.2.weight", "weight"] {
        let mut parts = Parts::of(&saved());
        parts.set(extra, f64_scalar(1.0));
        refused(extra, &parts.bytes(), &format!("unexpected tensor {extra}"));
    }
}

#[test]
fn tensors_of_another_type_or_shape() {
    let cases: Vec<(&str, Tensor, &str)> = vec![
        (
            "layers.0.weight",
            (Dtype::U8, vec![2, 3], vec![1; 6]),
            "expected I8",
        ),
        (
            "layers.0.weight",
            (Dtype::I8, vec![2, 3, 1], vec![1; 6]),
            "p × n",
        ),
        ("layers.0.weight", (Dtype::I8, vec![6], vec![1; 6]), "p × n"),
        (
            "layers.0.weight_scale",
            (Dtype::F32, vec![3], vec![0; 12]),
            "expected F64",
        ),
        (
            "layers.0.weight_scale",
            (Dtype::F64, vec![4], vec![0; 32]),
            "[] or [3]",
        ),
        (
            "layers.0.weight_zero_point",
            i32s(&[0, 0], vec![2]),
            "as weight_scale",
        ),
        (
            "layers.1.input_zero_point",
            (Dtype::I64, vec![], (1i64 << 40).to_le_bytes().to_vec()),
            "expected I32",
        ),
        ("layers.1.bias", i32s(&[1, 2, 3], vec![3]), "[2]"),
        (
            "layers.1.bias",
            (Dtype::F32, vec![2], vec![0; 8]),
            "the metadata says int32",
        ),
        (
            "layers.1.bias",
            (Dtype::I8, vec![2], vec![0; 2]),
            "the metadata says int32",
        ),
        (
            "layers.0.input_scale",
            (Dtype::F64, vec![1], vec![0; 8]),
            "a scalar",
        ),
        (
            "layers.0.input_range",
            i32s(&[-128, 0, 127], vec![3]),
            "[2]",
        ),
        (
            "layers.1.output_clamp",
            i32s(&[-128, 127], vec![1, 2]),
            "[2]",
        ),
    ];
    for (name, tensor, needle) in cases {
        let mut parts = Parts::of(&saved());
        parts.set(name, tensor);
        refused(name, &parts.bytes(), needle);
    }
}

#[test]
fn parameters_a_layer_refuses() {
    let bad_scales = [f64::NAN, -0.5, 0.0, f64::INFINITY, 1e-300];
    for name in [
        "layers.0.input_scale",
        "layers.1.output_scale",
        "layers.0.bias_scale",
        "layers.1.weight_scale",
    ] {
        for scale in bad_scales {
            let mut parts = Parts::of(&saved());
            parts.set(name, f64_scalar(scale));
            refused(&format!("{name} = {scale}"), &parts.bytes(), name);
        }
    }
    let mut channel = Parts::of(&saved());
    channel.get("layers.0.weight_scale").2[8..16].copy_from_slice(&f64::NAN.to_le_bytes());
    refused("a NaN channel scale", &channel.bytes(), "channel 1");

    let cases: Vec<(&str, Tensor, &str)> = vec![
        ("layers.0.input_range", i32s(&[5, -5], vec![2]), "layer 0"),
        (
            "layers.0.input_range",
            i32s(&[-200, 100], vec![2]),
            "layer 0",
        ),
        ("layers.1.output_clamp", i32s(&[0, 300], vec![2]), "layer 1"),
        (
            "layers.1.output_clamp",
            i32s(&[10, -10], vec![2]),
            "layer 1",
        ),
        // The fixed-point requantizer needs every accumulator in i32.
        (
            "layers.1.input_zero_point",
            i32s(&[i32::MIN], vec![]),
            "layer 1",
        ),
    ];
    for (name, tensor, needle) in cases {
        let mut parts = Parts::of(&saved());
        parts.set(name, tensor);
        refused(name, &parts.bytes(), needle);
    }

    // An int8 bias needs the f64 requantizer.
    let mut int8_bias = Parts::of(&saved());
    int8_bias.describe("layers.1.bias", Some("int8"));
    int8_bias.set("layers.1.bias", (Dtype::I8, vec![2], vec![1, 2]));
    int8_bias.set("layers.1.bias_scale", f64_scalar(0.01));
    int8_bias.set("layers.1.bias_zero_point", i32s(&[0], vec![]));
    refused(
        "an int8 bias under fixed point",
        &int8_bias.bytes(),
        "layer 1",
    );

    let mut unchained = Parts::of(&saved());
    unchained.set("layers.0.output_scale", f64_scalar(0.25));
    refused("unchained", &unchained.bytes(), "do not chain");
}

/// A file of `header` (JSON) and `data` bytes, its length prefix given.
fn raw(length: u64, header: &str, data: usize) -> Vec<u8> {
    let mut bytes = length.to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(std::iter::repeat_n(0u8, data));
    bytes
}

#[test]
fn headers_that_lie() {
    let meta = r#""__metadata__":{"qlinear":"format_version=1 layers=1"}"#;
    let json = |tensors: &str| format!("{{{meta},{tensors}}}");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("length only", 0u64.to_le_bytes().to_vec()),
        ("length past the end", raw(1 << 20, "{}", 0)),
        ("absurd length", raw(u64::MAX, "{}", 0)),
        ("not JSON", raw(7, "{nope!}", 0)),
        ("a shape whose size overflows", {
            let h = json(
                r#""layers.0.weight":{"dtype":"I8","shape":[4611686018427387904,4],"data_offsets":[0,16]}"#,
            );
            raw(h.len() as u64, &h, 16)
        }),
        ("a declared size beyond the data", {
            let h = json(
                r#""layers.0.weight":{"dtype":"I8","shape":[1000000,1000000],"data_offsets":[0,1000000000000]}"#,
            );
            raw(h.len() as u64, &h, 16)
        }),
        ("overlapping offsets", {
            let h = json(
                r#""a":{"dtype":"I8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"I8","shape":[4],"data_offsets":[2,6]}"#,
            );
            raw(h.len() as u64, &h, 6)
        }),
        ("a duplicated tensor name", {
            let h = json(
                r#""layers.0.weight":{"dtype":"I8","shape":[2],"data_offsets":[0,2]},"layers.0.weight":{"dtype":"I8","shape":[2],"data_offsets":[2,4]}"#,
            );
            raw(h.len() as u64, &h, 4)
        }),
        ("a negative dimension", {
            let h = json(r#""layers.0.weight":{"dtype":"I8","shape":[-2,2],"data_offsets":[0,4]}"#);
            raw(h.len() as u64, &h, 4)
        }),
    ];
    for (case, bytes) in cases {
        match load(&bytes) {
            Err(QuantError::ModelFile { .. }) => {}
            other => panic!("{case}: {other:?}"),
        }
    }
}
