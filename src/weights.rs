//! Weight parameters: one `(s, z)` for the whole tensor or one per output
//! column.

use ndarray::{Array2, ArrayBase, Axis, Data, Ix2};

use crate::alloc::try_filled;
use crate::error::{check_size, QuantError};
use crate::observer::{MinMaxObserver, Observer, PerChannelMinMaxObserver};
use crate::params::{QuantParams, QuantRange, Scheme};
use crate::quantize::{check_no_nan, ScalarQuantizer};
use crate::real::Real;

/// How a weight matrix is stored. qlinear's `W` is p×n (inputs ×
/// outputs); PyTorch, Hugging Face and candle store `nn.Linear.weight` as
/// n×p. A square matrix in the wrong layout is still a valid layer, with
/// wrong outputs, so the layout is always named where weights come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum WeightLayout {
    /// p×n: one row per input feature, one column per output feature
    /// (the notebook's and the crate's own).
    InOut,
    /// n×p: one row per output feature (PyTorch's `nn.Linear.weight`,
    /// safetensors files of PyTorch models, candle's `Linear`).
    OutIn,
}

/// Quantization parameters of a weight matrix `W` (p×n).
///
/// Per-channel parameters hold one entry per output column `j` of `W`
/// (TFLite's per-channel FULLY_CONNECTED, PyTorch's per-channel linear);
/// zero points may be non-zero (asymmetric).
///
/// ```
/// use qlinear::{QuantParams, WeightParams};
/// let p = QuantParams::new(0.1, 0).unwrap();
/// let w: WeightParams = p.into();
/// assert_eq!(w, WeightParams::PerTensor(p));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum WeightParams {
    /// One scale and zero point for all of `W`.
    PerTensor(QuantParams),
    /// One scale and zero point per output column of `W`.
    PerChannel(Vec<QuantParams>),
}

impl From<QuantParams> for WeightParams {
    fn from(p: QuantParams) -> WeightParams {
        WeightParams::PerTensor(p)
    }
}

impl From<Vec<QuantParams>> for WeightParams {
    fn from(p: Vec<QuantParams>) -> WeightParams {
        WeightParams::PerChannel(p)
    }
}

impl WeightParams {
    /// Parameters of output column `j` (`None` past the last channel).
    pub fn channel(&self, j: usize) -> Option<QuantParams> {
        match self {
            WeightParams::PerTensor(p) => Some(*p),
            WeightParams::PerChannel(v) => v.get(j).copied(),
        }
    }

    /// Whether there is one entry per column.
    pub fn is_per_channel(&self) -> bool {
        matches!(self, WeightParams::PerChannel(_))
    }

    /// One parameter set for all of the real weights `w` (any layout),
    /// from their min and max under `scheme` onto `range`. NaN is an
    /// error. Any [`Real`] weights: each value is converted to `f32` first.
    ///
    /// ```
    /// use ndarray::array;
    /// use qlinear::{QuantRange, Scheme, WeightParams};
    /// let w = array![[0.5f32, -20.0], [-0.25, 10.0]];
    /// let p = WeightParams::per_tensor(&w, Scheme::Symmetric, QuantRange::INT8_NARROW)?;
    /// assert_eq!(p.channel(1).unwrap().scale, 20.0 / 127.0);
    /// # Ok::<(), qlinear::QuantError>(())
    /// ```
    pub fn per_tensor<S>(
        w: &ArrayBase<S, Ix2>,
        scheme: Scheme,
        range: QuantRange,
    ) -> Result<WeightParams, QuantError>
    where
        S: Data,
        S::Elem: Real,
    {
        check_no_nan(w, "weights")?;
        let mut observer = MinMaxObserver::new();
        observer.observe(w);
        Ok(WeightParams::PerTensor(observer.params(scheme, range)?))
    }

    /// One parameter set per output feature of the real weights `w`,
    /// stored as `layout` says, from each feature's min and max under
    /// `scheme` onto `range`. NaN is an error. TFLite's and PyTorch's
    /// weights: `Scheme::Symmetric`, `QuantRange::INT8_NARROW`. Any
    /// [`Real`] weights: each value is converted to `f32` first.
    ///
    /// ```
    /// use ndarray::array;
    /// use qlinear::{QuantRange, Scheme, WeightLayout, WeightParams};
    /// // PyTorch's layout: one row per output feature.
    /// let w = array![[0.5f32, -0.25], [-20.0, 10.0]];
    /// let p = WeightParams::per_channel(&w, WeightLayout::OutIn, Scheme::Symmetric, QuantRange::INT8_NARROW)?;
    /// assert_eq!(p.channel(0).unwrap().scale, 0.5 / 127.0);
    /// assert_eq!(p.channel(1).unwrap().scale, 20.0 / 127.0);
    /// # Ok::<(), qlinear::QuantError>(())
    /// ```
    pub fn per_channel<S>(
        w: &ArrayBase<S, Ix2>,
        layout: WeightLayout,
        scheme: Scheme,
        range: QuantRange,
    ) -> Result<WeightParams, QuantError>
    where
        S: Data,
        S::Elem: Real,
    {
        check_no_nan(w, "weights")?;
        let axis = match layout {
            WeightLayout::InOut => Axis(1),
            WeightLayout::OutIn => Axis(0),
        };
        let mut observer = PerChannelMinMaxObserver::with_axis(axis)?;
        observer.observe(w)?;
        Ok(WeightParams::PerChannel(observer.params(scheme, range)?))
    }

    /// Parameters of the real weights `w` (p×n), per output column if
    /// `per_channel`.
    #[deprecated(
        since = "0.2.0",
        note = "a bool says nothing at the call site: use `WeightParams::per_tensor` or `WeightParams::per_channel`"
    )]
    pub fn from_weights<S: Data<Elem = f32>>(
        w: &ArrayBase<S, Ix2>,
        scheme: Scheme,
        range: QuantRange,
        per_channel: bool,
    ) -> Result<WeightParams, QuantError> {
        if per_channel {
            WeightParams::per_channel(w, WeightLayout::InOut, scheme, range)
        } else {
            WeightParams::per_tensor(w, scheme, range)
        }
    }

    /// Quantizes real weights `w` (p×n) by (5), column `j` with channel
    /// `j`'s params, into int8. NaN is an error, and so is a result too
    /// large to allocate. Any [`Real`] weights: each value is converted to
    /// `f32` first.
    pub fn quantize<S>(&self, w: &ArrayBase<S, Ix2>) -> Result<Array2<i8>, QuantError>
    where
        S: Data,
        S::Elem: Real,
    {
        let (scales, zero_points) = self.expand(w.ncols())?;
        // Allocated before the first pass over `w`.
        let mut w_q = try_filled("quantized weights", w.shape(), 0i8)?;
        check_no_nan(w, "weights")?;
        let quantizers: Vec<ScalarQuantizer> = scales
            .iter()
            .zip(&zero_points)
            .map(|(&scale, &zero_point)| {
                ScalarQuantizer::new(QuantParams { scale, zero_point }, QuantRange::INT8)
            })
            .collect();
        if w.ncols() > 0 {
            for (row_q, row) in w_q.chunks_exact_mut(w.ncols()).zip(w.rows()) {
                for ((q, &v), quantizer) in row_q.iter_mut().zip(&row).zip(&quantizers) {
                    *q = quantizer.quantize(v.to_f32_nearest()) as i8;
                }
            }
        }
        Ok(Array2::from_shape_vec(w.dim(), w_q).expect("p·n values"))
    }

    /// Validates every entry and the channel count against `n` columns, and
    /// returns one `(scale, zero point)` per column.
    pub(crate) fn expand(&self, n: usize) -> Result<(Vec<f64>, Vec<i32>), QuantError> {
        check_size("per-column weight params", &[n])?;
        match self {
            WeightParams::PerTensor(p) => {
                p.validate()?;
                Ok((vec![p.scale; n], vec![p.zero_point; n]))
            }
            WeightParams::PerChannel(v) => {
                if v.len() != n {
                    return Err(QuantError::LengthMismatch {
                        what: "per-channel weight params",
                        expected: n,
                        found: v.len(),
                    });
                }
                for p in v {
                    p.validate()?;
                }
                Ok((
                    v.iter().map(|p| p.scale).collect(),
                    v.iter().map(|p| p.zero_point).collect(),
                ))
            }
        }
    }
}

/// `−z_W[j]` for each column, the coefficient of the row sum in (11); empty
/// when every zero point is 0, so that the row sums can be skipped.
pub(crate) fn negated_zero_points(zero_points: &[i32]) -> Vec<i64> {
    if zero_points.iter().any(|&z| z != 0) {
        zero_points.iter().map(|&z| -i64::from(z)).collect()
    } else {
        Vec::new()
    }
}
