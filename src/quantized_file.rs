//! Saving a [`QuantizedSequential`] as a safetensors file and loading it
//! back, bit for bit; the layout is in [`QuantizedSequential::to_safetensors`].
//!
//! The file is untrusted input: the `safetensors` crate checks the header
//! against the buffer, each tensor's type and shape is checked before it is
//! decoded, and the layers are rebuilt through the same checks as building
//! them by hand. Every malformation is a [`QuantError::ModelFile`], and
//! nothing is allocated beyond the file's own size.

use std::collections::{BTreeMap, HashMap};

use ndarray::{Array1, ArrayView2};
use safetensors::{serialize, tensor::TensorView, Dtype, SafeTensors};

use crate::elem::ElemKind;
use crate::error::QuantError;
use crate::linear::{Bias, QuantizedLinear};
use crate::params::{QuantParams, QuantRange};
use crate::requant::{Requantizer, Rounding};
use crate::sequential::QuantizedSequential;
use crate::weights::{WeightLayout, WeightParams};

/// The version of the quantized model file layout (see
/// [`QuantizedSequential::to_safetensors`]) that this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The metadata key holding the format description.
const METADATA_KEY: &str = "qlinear";

impl QuantizedSequential {
    /// The stack as a safetensors file, from which
    /// [`from_safetensors`](Self::from_safetensors) rebuilds layers whose
    /// outputs are bit-identical to these. The same stack always gives the
    /// same bytes.
    ///
    /// Layer `i` is stored as these tensors (little-endian):
    ///
    /// | tensor | type | shape |
    /// |---|---|---|
    /// | `layers.{i}.weight` | I8 | p × n (inputs × outputs, the crate's layout) |
    /// | `layers.{i}.weight_scale`, `…weight_zero_point` | F64, I32 | `[]` per tensor, `[n]` per channel |
    /// | `layers.{i}.bias` (absent: no bias) | I32, or I8 | `[n]` |
    /// | `layers.{i}.bias_scale`, `…bias_zero_point` (I8 bias only) | F64, I32 | `[]` |
    /// | `layers.{i}.input_scale`, `…input_zero_point` | F64, I32 | `[]` |
    /// | `layers.{i}.output_scale`, `…output_zero_point` | F64, I32 | `[]` |
    /// | `layers.{i}.input_range`, `…output_clamp` | I32 | `[2]`: low, high |
    ///
    /// The metadata holds one entry, `qlinear`: sorted `key=value` pairs
    /// separated by spaces, `format_version=1` (see [`FORMAT_VERSION`]),
    /// `layers=N`, and per layer `layers.{i}.activation_type` (`int8`,
    /// `uint8`), `layers.{i}.bias` (`none`, `int32`, `int8`) and
    /// `layers.{i}.requantizer` (`float64`,
    /// `tflite_reference`, `fixed_point_half_up`, `fixed_point_double`,
    /// `fixed_point_single`, `float32`). The kernel is not stored: the
    /// loading machine picks its own, and every kernel gives the same
    /// outputs.
    ///
    /// Errors ([`QuantError::ModelFile`]) only if the serializer fails.
    ///
    /// ```
    /// use ndarray::array;
    /// use qlinear::{QuantParams, QuantizedLinear, QuantizedSequential, WeightLayout};
    ///
    /// let p = QuantParams::new(0.05, 3)?;
    /// let w = array![[50i8, -20], [5, 40]];
    /// let layer = QuantizedLinear::builder_int8(w.view(), WeightLayout::InOut, p)
    ///     .input_params(p)
    ///     .output_params(p)
    ///     .build()?;
    /// let model = QuantizedSequential::new(vec![layer])?;
    /// let bytes = model.to_safetensors()?; // std::fs::write(path, bytes) to keep it
    /// let loaded = QuantizedSequential::from_safetensors(&bytes)?;
    /// let x = array![[20i8, -7], [127, -128]];
    /// assert_eq!(loaded.forward(&x)?, model.forward(&x)?);
    /// # Ok::<(), qlinear::QuantError>(())
    /// ```
    pub fn to_safetensors(&self) -> Result<Vec<u8>, QuantError> {
        let mut tensors = Vec::new();
        let mut description = BTreeMap::new();
        description.insert("format_version".to_string(), FORMAT_VERSION.to_string());
        description.insert("layers".to_string(), self.layers().len().to_string());
        for (i, layer) in self.layers().iter().enumerate() {
            let name = |what: &str| format!("layers.{i}.{what}");
            description.insert(
                name("activation_type"),
                activation_name(layer.activation_type()).to_string(),
            );
            description.insert(
                name("requantizer"),
                requantizer_name(layer.requantizer()).to_string(),
            );
            let bias_kind = match layer.bias() {
                Bias::None => "none",
                Bias::Int32(_) => "int32",
                Bias::Int8 { .. } => "int8",
            };
            description.insert(name("bias"), bias_kind.to_string());
            let w = layer.unpack_weights();
            tensors.push(Stored::new(
                name("weight"),
                Dtype::I8,
                w.shape(),
                i8s(w.iter()),
            ));
            let (scales, zero_points) = params_lists(layer.weight_params());
            let shape: &[usize] = match layer.weight_params() {
                WeightParams::PerTensor(_) => &[],
                WeightParams::PerChannel(c) => &[c.len()],
            };
            tensors.push(Stored::new(
                name("weight_scale"),
                Dtype::F64,
                shape,
                f64s(scales),
            ));
            let zero_points = i32s(zero_points);
            tensors.push(Stored::new(
                name("weight_zero_point"),
                Dtype::I32,
                shape,
                zero_points,
            ));
            match layer.bias() {
                Bias::None => {}
                Bias::Int32(b) => {
                    let values = i32s(b.iter().copied());
                    tensors.push(Stored::new(name("bias"), Dtype::I32, &[b.len()], values));
                }
                Bias::Int8 { values, params } => {
                    let bytes = i8s(values.iter());
                    tensors.push(Stored::new(name("bias"), Dtype::I8, &[values.len()], bytes));
                    push_params(&mut tensors, &name("bias"), *params);
                }
            }
            push_params(&mut tensors, &name("input"), layer.input_params());
            push_params(&mut tensors, &name("output"), layer.output_params());
            let range = layer.input_range();
            let range = i32s([range.qmin, range.qmax]);
            tensors.push(Stored::new(name("input_range"), Dtype::I32, &[2], range));
            let (lo, hi) = layer.output_clamp();
            let clamp = i32s([lo, hi]);
            tensors.push(Stored::new(name("output_clamp"), Dtype::I32, &[2], clamp));
        }
        let description: Vec<String> = description
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let metadata = HashMap::from([(METADATA_KEY.to_string(), description.join(" "))]);
        let views = tensors
            .iter()
            .map(|t| {
                TensorView::new(t.dtype, t.shape.clone(), &t.bytes).map(|v| (t.name.as_str(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(serializer_error)?;
        serialize(views, Some(metadata)).map_err(serializer_error)
    }

    /// The stack saved by [`to_safetensors`](Self::to_safetensors) in
    /// `bytes`: the same layers, giving bit-identical outputs, each with
    /// the fastest kernel of this machine.
    ///
    /// Errors ([`QuantError::ModelFile`], naming the tensor or entry) on a
    /// truncated or malformed file, a format version this crate does not
    /// read, a missing, unexpected or misshapen tensor, a tensor of another
    /// type, and any parameter that building the layer by hand would
    /// refuse (a NaN, negative or zero scale; a range or clamp outside the
    /// activation type; a zero point whose layer could overflow its
    /// accumulator), or a stack whose layers do not chain.
    pub fn from_safetensors(bytes: &[u8]) -> Result<QuantizedSequential, QuantError> {
        let file = SafeTensors::deserialize(bytes)
            .map_err(|e| file_error(format!("not a readable safetensors file: {e}")))?;
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| file_error(format!("not a readable safetensors file: {e}")))?;
        let description = Description::parse(header.metadata().as_ref(), file.len())?;
        let mut read = Vec::new();
        let layers = (0..description.layers)
            .map(|i| {
                let mut reader = LayerReader {
                    file: &file,
                    prefix: format!("layers.{i}."),
                    read: &mut read,
                };
                reader.layer(&description, i).map_err(|e| match e {
                    QuantError::ModelFile { .. } => e,
                    other => file_error(format!("layer {i}: {other}")),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if read.len() != file.len() {
            let mut unexpected: Vec<&str> = file
                .names()
                .into_iter()
                .filter(|n| !read.iter().any(|r| r == n))
                .collect();
            unexpected.sort();
            return Err(file_error(format!(
                "unexpected tensor {} (a layer past layers={}, or a name this format does \
                 not use)",
                unexpected.first().copied().unwrap_or("?"),
                description.layers
            )));
        }
        QuantizedSequential::new(layers)
            .map_err(|e| file_error(format!("the layers do not chain: {e}")))
    }
}

/// A tensor to be written.
struct Stored {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Stored {
    fn new(name: String, dtype: Dtype, shape: &[usize], bytes: Vec<u8>) -> Stored {
        Stored {
            name,
            dtype,
            shape: shape.to_vec(),
            bytes,
        }
    }
}

fn i8s<'a>(values: impl Iterator<Item = &'a i8>) -> Vec<u8> {
    values.map(|&v| v as u8).collect()
}

fn i32s(values: impl IntoIterator<Item = i32>) -> Vec<u8> {
    values.into_iter().flat_map(i32::to_le_bytes).collect()
}

fn f64s(values: impl IntoIterator<Item = f64>) -> Vec<u8> {
    values.into_iter().flat_map(f64::to_le_bytes).collect()
}

/// The scales and zero points of `weight`, one per channel or one in all.
fn params_lists(weight: &WeightParams) -> (Vec<f64>, Vec<i32>) {
    let all: &[QuantParams] = match weight {
        WeightParams::PerTensor(p) => std::slice::from_ref(p),
        WeightParams::PerChannel(c) => c,
    };
    (
        all.iter().map(|p| p.scale).collect(),
        all.iter().map(|p| p.zero_point).collect(),
    )
}

/// `{prefix}_scale` and `{prefix}_zero_point`, as scalars.
fn push_params(tensors: &mut Vec<Stored>, prefix: &str, p: QuantParams) {
    let scale = f64s([p.scale]);
    tensors.push(Stored::new(
        format!("{prefix}_scale"),
        Dtype::F64,
        &[],
        scale,
    ));
    let zero_point = i32s([p.zero_point]);
    tensors.push(Stored::new(
        format!("{prefix}_zero_point"),
        Dtype::I32,
        &[],
        zero_point,
    ));
}

fn activation_name(kind: ElemKind) -> &'static str {
    match kind {
        ElemKind::Int8 => "int8",
        ElemKind::Uint8 => "uint8",
    }
}

/// Every requantizer with its name in the file.
const REQUANTIZERS: [(Requantizer, &str); 6] = [
    (Requantizer::Float64, "float64"),
    (Requantizer::TfliteReference, "tflite_reference"),
    (
        Requantizer::FixedPoint(Rounding::HalfUp),
        "fixed_point_half_up",
    ),
    (
        Requantizer::FixedPoint(Rounding::Double),
        "fixed_point_double",
    ),
    (
        Requantizer::FixedPoint(Rounding::Single),
        "fixed_point_single",
    ),
    (Requantizer::Float32, "float32"),
];

fn requantizer_name(requantizer: Requantizer) -> &'static str {
    REQUANTIZERS
        .iter()
        .find(|(r, _)| *r == requantizer)
        .map(|(_, name)| *name)
        .expect("every requantizer is listed")
}

fn file_error(what: String) -> QuantError {
    QuantError::ModelFile { what }
}

fn serializer_error(e: safetensors::SafeTensorError) -> QuantError {
    file_error(format!("cannot serialize: {e}"))
}

/// The metadata entry, parsed.
struct Description {
    layers: usize,
    entries: HashMap<String, String>,
}

impl Description {
    /// The description in `metadata`, for a file holding `tensors` tensors.
    fn parse(
        metadata: Option<&HashMap<String, String>>,
        tensors: usize,
    ) -> Result<Description, QuantError> {
        let Some(text) = metadata.and_then(|m| m.get(METADATA_KEY)) else {
            return Err(file_error(format!(
                "no `{METADATA_KEY}` metadata entry: not a file written by \
                 QuantizedSequential::to_safetensors"
            )));
        };
        let mut entries = HashMap::new();
        for pair in text.split_whitespace() {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(file_error(format!(
                    "metadata entry `{pair}` is not key=value"
                )));
            };
            if entries.insert(key.to_string(), value.to_string()).is_some() {
                return Err(file_error(format!("metadata key `{key}` appears twice")));
            }
        }
        let mut description = Description { layers: 0, entries };
        let version = description.get("format_version")?;
        if version != FORMAT_VERSION.to_string() {
            return Err(file_error(format!(
                "format version {version}; this version of qlinear reads version \
                 {FORMAT_VERSION} (a newer qlinear may read it)"
            )));
        }
        let layers = description.get("layers")?;
        let layers: usize = layers
            .parse()
            .map_err(|_| file_error(format!("layers={layers} is not a count")))?;
        // Every layer has at least 9 tensors: the count cannot promise more
        // layers than the file holds.
        if layers == 0 || layers > tensors / 9 {
            return Err(file_error(format!(
                "layers={layers}, but the file holds {tensors} tensors (9 to 12 per layer)"
            )));
        }
        description.layers = layers;
        Ok(description)
    }

    fn get(&self, key: &str) -> Result<&str, QuantError> {
        self.entries
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| file_error(format!("metadata has no `{key}`")))
    }
}

/// Reads one layer's tensors, recording every name it reads.
struct LayerReader<'f, 'd> {
    file: &'f SafeTensors<'d>,
    prefix: String,
    read: &'f mut Vec<String>,
}

impl<'d> LayerReader<'_, 'd> {
    fn layer(&mut self, d: &Description, i: usize) -> Result<QuantizedLinear, QuantError> {
        let kind = match d.get(&format!("layers.{i}.activation_type"))? {
            "int8" => ElemKind::Int8,
            "uint8" => ElemKind::Uint8,
            other => {
                return Err(file_error(format!(
                    "layers.{i}.activation_type={other}; expected int8 or uint8"
                )))
            }
        };
        let requantizer = d.get(&format!("layers.{i}.requantizer"))?;
        let Some(&(requantizer, _)) = REQUANTIZERS.iter().find(|(_, n)| *n == requantizer) else {
            let known: Vec<&str> = REQUANTIZERS.iter().map(|(_, n)| *n).collect();
            return Err(file_error(format!(
                "layers.{i}.requantizer={requantizer}; expected one of {}",
                known.join(", ")
            )));
        };
        let weight = self.required("weight")?;
        let (p, n) = match *weight.shape() {
            [p, n] => (p, n),
            ref other => return Err(self.shape_error("weight", other, "p × n")),
        };
        let w = self.decode("weight", &weight, Dtype::I8, 1, |b| b[0] as i8)?;
        let w = ArrayView2::from_shape((p, n), &w)
            .map_err(|e| file_error(format!("{}weight: {e}", self.prefix)))?;
        let weight_params = self.weight_params(n)?;
        let bias = self.bias(d.get(&format!("layers.{i}.bias"))?, n)?;
        let input = self.params("input")?;
        let output = self.params("output")?;
        let [qmin, qmax] = self.pair("input_range")?;
        let [lo, hi] = self.pair("output_clamp")?;
        QuantizedLinear::builder_int8(w, WeightLayout::InOut, weight_params)
            .input_params(input)
            .output_params(output)
            .bias(bias)
            .requantizer(requantizer)
            .activation_type(kind)
            .input_range(QuantRange { qmin, qmax })
            .output_clamp(lo, hi)
            .build()
    }

    /// The tensor `{prefix}{what}`, if the file has it.
    fn optional(&mut self, what: &str) -> Option<TensorView<'d>> {
        let name = format!("{}{what}", self.prefix);
        let view = self.file.tensor(&name).ok()?;
        self.read.push(name);
        Some(view)
    }

    fn required(&mut self, what: &str) -> Result<TensorView<'d>, QuantError> {
        self.optional(what)
            .ok_or_else(|| file_error(format!("no tensor {}{what}", self.prefix)))
    }

    /// The values of `view`, checked to be of `dtype`, `size` bytes each.
    fn decode<T>(
        &self,
        what: &str,
        view: &TensorView<'_>,
        dtype: Dtype,
        size: usize,
        value: impl Fn(&[u8]) -> T,
    ) -> Result<Vec<T>, QuantError> {
        if view.dtype() != dtype {
            return Err(file_error(format!(
                "tensor {}{what} is {:?}; expected {dtype:?}",
                self.prefix,
                view.dtype()
            )));
        }
        let elements = view
            .shape()
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d));
        // The safetensors crate checked this; the views built on it rely on it.
        if elements.and_then(|e| e.checked_mul(size)) != Some(view.data().len()) {
            return Err(file_error(format!(
                "tensor {}{what}: {} bytes for shape {:?}",
                self.prefix,
                view.data().len(),
                view.shape()
            )));
        }
        Ok(view.data().chunks_exact(size).map(value).collect())
    }

    fn shape_error(&self, what: &str, found: &[usize], expected: &str) -> QuantError {
        file_error(format!(
            "tensor {}{what} has shape {found:?}; expected {expected}",
            self.prefix
        ))
    }

    /// A scalar tensor (shape `[]`) of `dtype`.
    fn scalar<T>(
        &mut self,
        what: &str,
        dtype: Dtype,
        size: usize,
        value: impl Fn(&[u8]) -> T,
    ) -> Result<T, QuantError> {
        let view = self.required(what)?;
        if !view.shape().is_empty() {
            return Err(self.shape_error(what, view.shape(), "[] (a scalar)"));
        }
        let mut values = self.decode(what, &view, dtype, size, value)?;
        Ok(values.remove(0))
    }

    /// `{what}_scale` and `{what}_zero_point`, validated.
    fn params(&mut self, what: &str) -> Result<QuantParams, QuantError> {
        let scale = self.scalar(&format!("{what}_scale"), Dtype::F64, 8, f64_at)?;
        let zero_point = self.scalar(&format!("{what}_zero_point"), Dtype::I32, 4, i32_at)?;
        QuantParams::new(scale, zero_point)
            .map_err(|e| file_error(format!("{}{what}_scale: {e}", self.prefix)))
    }

    /// An I32 tensor of shape `[2]`.
    fn pair(&mut self, what: &str) -> Result<[i32; 2], QuantError> {
        let view = self.required(what)?;
        if view.shape() != [2] {
            return Err(self.shape_error(what, view.shape(), "[2]"));
        }
        let v = self.decode(what, &view, Dtype::I32, 4, i32_at)?;
        Ok([v[0], v[1]])
    }

    /// Per-tensor (shape `[]`) or per-channel (shape `[n]`) weight params.
    fn weight_params(&mut self, n: usize) -> Result<WeightParams, QuantError> {
        let scales = self.required("weight_scale")?;
        let zero_points = self.required("weight_zero_point")?;
        let shape = scales.shape().to_vec();
        if !(shape.is_empty() || shape == [n]) {
            return Err(self.shape_error("weight_scale", &shape, &format!("[] or [{n}]")));
        }
        if zero_points.shape() != shape {
            let expected = format!("{shape:?}, as weight_scale");
            return Err(self.shape_error("weight_zero_point", zero_points.shape(), &expected));
        }
        let scales = self.decode("weight_scale", &scales, Dtype::F64, 8, f64_at)?;
        let zero_points = self.decode("weight_zero_point", &zero_points, Dtype::I32, 4, i32_at)?;
        let params = scales
            .into_iter()
            .zip(zero_points)
            .enumerate()
            .map(|(j, (s, z))| {
                QuantParams::new(s, z).map_err(|e| {
                    file_error(format!("{}weight_scale, channel {j}: {e}", self.prefix))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(if shape.is_empty() {
            WeightParams::PerTensor(params[0])
        } else {
            WeightParams::PerChannel(params)
        })
    }

    /// The bias of `kind` (the metadata's `none`, `int32` or `int8`).
    fn bias(&mut self, kind: &str, n: usize) -> Result<Bias, QuantError> {
        let expected = match kind {
            "none" => return Ok(Bias::None),
            "int32" => Dtype::I32,
            "int8" => Dtype::I8,
            other => {
                return Err(file_error(format!(
                    "{}bias={other}; expected none, int32 or int8",
                    self.prefix
                )))
            }
        };
        let view = self.required("bias")?;
        if view.shape() != [n] {
            return Err(self.shape_error("bias", view.shape(), &format!("[{n}]")));
        }
        if view.dtype() != expected {
            return Err(file_error(format!(
                "tensor {}bias is {:?}; the metadata says {kind}",
                self.prefix,
                view.dtype()
            )));
        }
        match view.dtype() {
            Dtype::I32 => {
                let values = self.decode("bias", &view, Dtype::I32, 4, i32_at)?;
                Ok(Bias::Int32(Array1::from(values)))
            }
            Dtype::I8 => {
                let values = self.decode("bias", &view, Dtype::I8, 1, |b| b[0] as i8)?;
                let params = self.params("bias")?;
                Ok(Bias::Int8 {
                    values: Array1::from(values),
                    params,
                })
            }
            _ => unreachable!("checked against the metadata above"),
        }
    }
}

fn i32_at(b: &[u8]) -> i32 {
    i32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn f64_at(b: &[u8]) -> f64 {
    f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}
