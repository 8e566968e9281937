//! Reading an f32 model from a safetensors file (the format PyTorch,
//! Hugging Face, candle and burn write), by PyTorch's state-dict names.
//!
//! The file is untrusted input: the `safetensors` crate checks the header
//! against the buffer before any tensor is read, and every tensor here is
//! checked for its name, type, rank and shape before it is converted, so a
//! malformed file is a [`QuantError::ModelFile`], never a panic or an
//! allocation larger than the file.

use ndarray::{ArrayView1, ArrayView2};
use safetensors::{Dtype, SafeTensors};

use crate::activation::FusedActivation;
use crate::error::QuantError;
use crate::float_sequential::{FloatLinear, FloatSequential};
use crate::weights::WeightLayout;

impl FloatSequential {
    /// The model whose layer `i` is the tensor `{name}.weight` (out × in,
    /// as PyTorch saves `nn.Linear`) and, if the file has it,
    /// `{name}.bias`, for `layers[i] = (name, activation)`, in that order.
    ///
    /// `f32`, `f64`, `f16` and `bf16` tensors are converted to `f32` once,
    /// here (`f64` rounded to nearest; a value beyond `f32` is an error);
    /// `f16` and `bf16` need the `half` feature (on by default), without
    /// which they are a [`QuantError::ModelFile`] error.
    ///
    /// Errors ([`QuantError::ModelFile`]) on a malformed or truncated file,
    /// a missing weight, another type or rank, a bias whose length is not
    /// the weight's number of rows; and as [`FloatSequential::new`] does.
    ///
    /// ```
    /// use qlinear::{FloatSequential, FusedActivation};
    /// use safetensors::{serialize, tensor::TensorView, Dtype};
    ///
    /// let w: Vec<u8> = [0.5f32, -1.0, 0.25, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    /// let file = serialize([("fc.weight", TensorView::new(Dtype::F32, vec![2, 2], &w).unwrap())], None).unwrap();
    /// let model = FloatSequential::from_safetensors(&file, &[("fc", FusedActivation::None)])?;
    /// assert_eq!(model.layers()[0].weight()[[0, 1]], 0.25); // stored in × out
    /// # Ok::<(), qlinear::QuantError>(())
    /// ```
    pub fn from_safetensors(
        bytes: &[u8],
        layers: &[(&str, FusedActivation)],
    ) -> Result<FloatSequential, QuantError> {
        let file = SafeTensors::deserialize(bytes).map_err(|e| QuantError::ModelFile {
            what: format!("not a readable safetensors file: {e}"),
        })?;
        let layers = layers
            .iter()
            .map(|&(name, activation)| {
                let weight_name = format!("{name}.weight");
                let Some((shape, weight)) = read_f32(&file, &weight_name, 2)? else {
                    return Err(missing(&file, &weight_name));
                };
                let weight = ArrayView2::from_shape((shape[0], shape[1]), &weight)
                    .expect("read_f32 checked the length against the shape");
                let bias = read_f32(&file, &format!("{name}.bias"), 1)?;
                let bias_view = bias.as_ref().map(|(_, b)| ArrayView1::from(b));
                FloatLinear::new(weight, WeightLayout::OutIn, bias_view, activation).map_err(|e| {
                    QuantError::ModelFile {
                        what: format!("layer {name}: {e}"),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        FloatSequential::new(layers)
    }
}

/// A tensor's shape and its values in `f32`, row-major.
type F32Tensor = (Vec<usize>, Vec<f32>);

/// The tensor `name` as `f32` values with its shape, if the file has it;
/// an error if it is not of `rank` dimensions or not a float type.
fn read_f32(
    file: &SafeTensors<'_>,
    name: &str,
    rank: usize,
) -> Result<Option<F32Tensor>, QuantError> {
    let Ok(view) = file.tensor(name) else {
        return Ok(None);
    };
    let shape = view.shape().to_vec();
    if shape.len() != rank {
        return Err(QuantError::ModelFile {
            what: format!("tensor {name} has shape {shape:?}, not {rank} dimensions"),
        });
    }
    let data = view.data();
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        #[cfg(feature = "half")]
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        #[cfg(feature = "half")]
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        #[cfg(not(feature = "half"))]
        half @ (Dtype::F16 | Dtype::BF16) => {
            return Err(QuantError::ModelFile {
                what: format!(
                    "tensor {name} is {half:?}, and qlinear was built without the \
                     `half` feature (which reads F16 and BF16)"
                ),
            })
        }
        other => {
            return Err(QuantError::ModelFile {
                what: format!("tensor {name} is {other:?}; expected F32, F64, F16 or BF16"),
            })
        }
    };
    // The crate checked data against shape and type; checked again here,
    // as the views built from them rely on it.
    if Some(values.len()) != shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
        return Err(QuantError::ModelFile {
            what: format!("tensor {name}: {} values for shape {shape:?}", values.len()),
        });
    }
    Ok(Some((shape, values)))
}

/// The error for a missing tensor, with the names the file does have.
fn missing(file: &SafeTensors<'_>, name: &str) -> QuantError {
    let mut names = file.names();
    names.sort();
    let shown: Vec<&str> = names.iter().take(8).copied().collect();
    let more = names.len().saturating_sub(shown.len());
    QuantError::ModelFile {
        what: format!(
            "no tensor {name}; the file has {}{}",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ),
    }
}
