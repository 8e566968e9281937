//! Helpers for `tests/kernels.rs`: the kernels under test (as the crate
//! describes them), data generation, an
//! accumulator computed here (independently of the crate), layer building
//! and the comparison against the oracle `forward_reference`.
#![allow(dead_code)]

use std::fmt::Debug;

use ndarray::{s, Array1, Array2, ArrayBase, ArrayView2, Data, Ix2};
use qlinear::gemm::__introspect::geometry;
use qlinear::{
    available_kernels, Bias, ElemKind, QuantElem, QuantError, QuantParams, QuantRange,
    QuantizedLinear, Requantizer, WeightParams,
};
use rand::rngs::StdRng;
use rand::RngExt;

/// What the crate knows of a kernel: tile, k-group, `MAX_DEPTH`, and the
/// row blocks and thread splits its driver takes on this host. Read from
/// the crate, so that shapes are chosen to reach each path as the crate is
/// tuned now.
pub use qlinear::gemm::__introspect::KernelGeometry as Spec;

/// Every kernel this CPU runs, as the crate lists it, fastest first.
pub fn kernels() -> Vec<Spec> {
    available_kernels()
        .into_iter()
        .map(|name| {
            let spec = geometry(name).unwrap_or_else(|| panic!("{name}: no geometry"));
            assert_eq!(spec.name, name);
            spec
        })
        .collect()
}

/// Kernels exact for full-range (8-bit) inputs.
pub fn full_range_kernels() -> Vec<Spec> {
    kernels().into_iter().filter(|s| !s.reduced()).collect()
}

/// The 7-bit kernels.
pub fn reduced_kernels() -> Vec<Spec> {
    kernels().into_iter().filter(|s| s.reduced()).collect()
}

/// The input ranges used with the 7-bit kernel: `(type, declared range)`.
pub fn reduced_ranges() -> Vec<(ElemKind, QuantRange)> {
    vec![
        (ElemKind::Int8, QuantRange::INT8_REDUCED),
        (ElemKind::Uint8, QuantRange::UINT8_REDUCED),
        (ElemKind::Int8, QuantRange::new(-128, -1).unwrap()),
        (ElemKind::Uint8, QuantRange::new(128, 255).unwrap()),
        (ElemKind::Int8, QuantRange::new(0, 127).unwrap()),
    ]
}

// ---------------------------------------------------------------- data

/// Uniform over `[lo, hi]`, with the two ends more often (1 in 8 each).
pub fn value(rng: &mut StdRng, lo: i32, hi: i32) -> i32 {
    match rng.random_range(0..16u32) {
        0 => lo,
        1 => hi,
        _ => rng.random_range(lo..=hi),
    }
}

/// m×p activations over `range`.
pub fn random_x<T: QuantElem>(
    rng: &mut StdRng,
    m: usize,
    p: usize,
    range: QuantRange,
) -> Array2<T> {
    Array2::from_shape_simple_fn((m, p), || {
        T::from_i32_clamped(value(rng, range.qmin, range.qmax))
    })
}

/// p×n int8 weights over the whole range.
pub fn random_w(rng: &mut StdRng, p: usize, n: usize) -> Array2<i8> {
    Array2::from_shape_simple_fn((p, n), || value(rng, -128, 127) as i8)
}

/// `x` converted to `i32`.
pub fn widen<T: QuantElem, S: Data<Elem = T>>(x: &ArrayBase<S, Ix2>) -> Array2<i32> {
    x.map(|v| v.to_i32())
}

// ------------------------------------------------ the test's accumulator

/// `Σ_k (x[i,k] − zx)·(w[k,j] − zw[j]) + bias[j]` in `i128`, written here
/// as the definition (centred products), not as the crate's expansion.
pub fn exact_acc<T: QuantElem, S: Data<Elem = T>>(
    x: &ArrayBase<S, Ix2>,
    w: &Array2<i8>,
    zx: i32,
    zw: &[i32],
    bias: &[i64],
) -> Array2<i128> {
    let (m, p) = x.dim();
    let n = w.ncols();
    assert_eq!(w.nrows(), p);
    assert_eq!(zw.len(), n);
    assert_eq!(bias.len(), n);
    // Plain indexing: ndarray's iterators over empty rows trip a memcheck
    // false positive (a branch on an uninitialised, unused index).
    let xc: Vec<Vec<i64>> = (0..m)
        .map(|i| {
            (0..p)
                .map(|k| i64::from(x[[i, k]].to_i32()) - i64::from(zx))
                .collect()
        })
        .collect();
    let wc: Vec<Vec<i64>> = (0..n)
        .map(|j| {
            (0..p)
                .map(|k| i64::from(w[[k, j]]) - i64::from(zw[j]))
                .collect()
        })
        .collect();
    let mut acc = Array2::<i128>::zeros((m, n));
    for i in 0..m {
        for j in 0..n {
            let dot: i128 = xc[i]
                .iter()
                .zip(&wc[j])
                .map(|(&a, &b)| i128::from(a) * i128::from(b))
                .sum();
            acc[[i, j]] = dot + i128::from(bias[j]);
        }
    }
    acc
}

/// Largest `|acc|`, at least 1.
pub fn max_abs(acc: &Array2<i128>) -> u128 {
    acc.iter()
        .map(|a| a.unsigned_abs())
        .max()
        .unwrap_or(0)
        .max(1)
}

// ----------------------------------------------------------- layers

/// How the weights are parametrised.
#[derive(Debug, Clone, PartialEq)]
pub enum Weights {
    /// One zero point for the whole tensor.
    PerTensor(i32),
    /// One `(scale factor in [1, 2), zero point)` per column.
    PerChannel(Vec<(f64, i32)>),
}

/// Which bias a layer has; values are drawn by [`Problem::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BiasKind {
    None,
    Int32,
    /// With its own params; `Float64` only.
    Int8,
}

/// Everything but the data.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub kind: ElemKind,
    /// Declared input range; activations are drawn in it.
    pub range: QuantRange,
    pub zx: i32,
    pub weights: Weights,
    pub bias: BiasKind,
    pub requantizer: Requantizer,
    /// Explicit output clamp, if any.
    pub clamp: Option<(i32, i32)>,
}

impl Config {
    /// int8 activations over the full range, per-tensor zero weight zero
    /// point, no bias, `Float64`.
    pub fn plain(zx: i32) -> Config {
        Config {
            kind: ElemKind::Int8,
            range: QuantRange::INT8,
            zx,
            weights: Weights::PerTensor(0),
            bias: BiasKind::None,
            requantizer: Requantizer::Float64,
            clamp: None,
        }
    }

    /// A one-line description for failure messages.
    pub fn summary(&self) -> String {
        let weights = match &self.weights {
            Weights::PerTensor(z) => format!("per-tensor z_W={z}"),
            Weights::PerChannel(c) => {
                let zs: Vec<i32> = c.iter().take(4).map(|&(_, z)| z).collect();
                format!("per-channel z_W={zs:?}.. ({} channels)", c.len())
            }
        };
        format!(
            "[{:?} range {}..={} z_X={} {weights} bias {:?} {:?} clamp {:?}]",
            self.kind,
            self.range.qmin,
            self.range.qmax,
            self.zx,
            self.bias,
            self.requantizer,
            self.clamp
        )
    }

    /// Weight zero point of every column.
    pub fn zw(&self, n: usize) -> Vec<i32> {
        match &self.weights {
            Weights::PerTensor(z) => vec![*z; n],
            Weights::PerChannel(c) => c.iter().map(|&(_, z)| z).collect(),
        }
    }
}

/// Random per-channel parameters with zero points over `[-128, 127]`,
/// ends included, and one column at each end when there are enough.
pub fn per_channel(rng: &mut StdRng, n: usize) -> Weights {
    Weights::PerChannel(
        (0..n)
            .map(|j| {
                let z = match j {
                    0 => -128,
                    1 => 127,
                    _ => value(rng, -128, 127),
                };
                (1.0 + rng.random::<f64>(), z)
            })
            .collect(),
    )
}

pub const S_X: f64 = 0.02;
pub const S_W: f64 = 0.004;

/// A layer description and the exact accumulator of its data.
#[derive(Debug, Clone)]
pub struct Problem {
    pub config: Config,
    pub w: Array2<i8>,
    pub bias32: Vec<i64>,
    pub bias8: Vec<i8>,
    pub output: QuantParams,
    pub bias8_params: QuantParams,
    /// The exact accumulator of the `x` given to [`Problem::new`], int32
    /// bias included (as `accumulate` returns it).
    pub acc: Array2<i128>,
}

impl Problem {
    /// Weights `w`, a bias drawn as `config` says, and output params
    /// derived from the exact accumulators of `x` so that
    /// `|M[j]·acc| ≤ 100`: outputs are spread over the output type rather
    /// than clamped.
    pub fn new<T: QuantElem, S: Data<Elem = T>>(
        rng: &mut StdRng,
        config: Config,
        w: Array2<i8>,
        x: &ArrayBase<S, Ix2>,
    ) -> Problem {
        let n = w.ncols();
        if let Weights::PerChannel(c) = &config.weights {
            assert_eq!(c.len(), n);
        }
        let zw = config.zw(n);
        let acc0 = exact_acc(x, &w, config.zx, &zw, &vec![0; n]);
        let half = (max_abs(&acc0) / 2).min(i32::MAX as u128) as i64;
        let bias32: Vec<i64> = match config.bias {
            BiasKind::Int32 => (0..n)
                .map(|j| match j {
                    0 => half,
                    1 => -half,
                    _ => rng.random_range(-half..=half),
                })
                .collect(),
            _ => vec![0; n],
        };
        let bias8: Vec<i8> = match config.bias {
            BiasKind::Int8 => (0..n)
                .map(|j| match j {
                    0 => -128,
                    1 => 127,
                    _ => rng.random::<i8>(),
                })
                .collect(),
            _ => vec![0; n],
        };
        let mut acc = acc0;
        for mut row in acc.rows_mut() {
            for (a, &b) in row.iter_mut().zip(&bias32) {
                *a += i128::from(b);
            }
        }
        let s_w_max = match &config.weights {
            Weights::PerTensor(_) => S_W,
            Weights::PerChannel(c) => c.iter().map(|&(f, _)| f * S_W).fold(S_W, f64::max),
        };
        let s_y = S_X * s_w_max * max_abs(&acc) as f64 / 100.0;
        let z_y = match config.kind {
            ElemKind::Int8 => rng.random_range(-15..=15),
            ElemKind::Uint8 => rng.random_range(113..=143),
        };
        let output = QuantParams::new(s_y, z_y).unwrap();
        // An int8 bias moves outputs by at most 0.05·255 ≈ 13 steps.
        let bias8_params = QuantParams::new(0.05 * s_y, rng.random_range(-20..=20)).unwrap();
        Problem {
            config,
            w,
            bias32,
            bias8,
            output,
            bias8_params,
            acc,
        }
    }

    pub fn n(&self) -> usize {
        self.w.ncols()
    }

    pub fn p(&self) -> usize {
        self.w.nrows()
    }

    /// The exact accumulator of `x` for this layer (int32 bias included,
    /// as `accumulate` returns it).
    pub fn exact<T: QuantElem, S: Data<Elem = T>>(&self, x: &ArrayBase<S, Ix2>) -> Array2<i128> {
        exact_acc(
            x,
            &self.w,
            self.config.zx,
            &self.config.zw(self.n()),
            &self.bias32,
        )
    }

    pub fn weight_params(&self) -> WeightParams {
        match &self.config.weights {
            Weights::PerTensor(z) => QuantParams::new(S_W, *z).unwrap().into(),
            Weights::PerChannel(c) => c
                .iter()
                .map(|&(f, z)| QuantParams::new(f * S_W, z).unwrap())
                .collect::<Vec<_>>()
                .into(),
        }
    }

    /// The layer, on `kernel` if given (else the crate's choice).
    pub fn build(&self, kernel: Option<&str>) -> Result<QuantizedLinear, QuantError> {
        let c = &self.config;
        let bias = match c.bias {
            BiasKind::None => Bias::None,
            BiasKind::Int32 => Bias::Int32(Array1::from_iter(
                self.bias32.iter().map(|&b| i32::try_from(b).unwrap()),
            )),
            BiasKind::Int8 => Bias::Int8 {
                values: Array1::from_vec(self.bias8.clone()),
                params: self.bias8_params,
            },
        };
        let input = QuantParams::new(S_X, c.zx).unwrap();
        let mut layer = QuantizedLinear::from_quantized(
            self.w.clone(),
            self.weight_params(),
            bias,
            input,
            self.output,
        )?;
        if c.kind != ElemKind::Int8 {
            layer = layer.with_activation_type(c.kind)?;
        }
        if c.range != c.kind.range() {
            layer = layer.with_input_range(c.range)?;
        }
        if c.requantizer != Requantizer::Float64 {
            layer = layer.with_requantizer(c.requantizer)?;
        }
        if let Some((lo, hi)) = c.clamp {
            layer = layer.with_output_clamp(lo, hi)?;
        }
        if let Some(name) = kernel {
            layer = layer.with_kernel(name)?;
            assert_eq!(layer.kernel_name(), name);
        }
        Ok(layer)
    }

    /// `max|x − z_X|` over the declared range and `max|w − z_W|` over int8:
    /// the factors of the layer's documented accumulator bound.
    pub fn bound_factors(&self) -> (u128, u128) {
        let c = &self.config;
        let zx = i64::from(c.zx);
        let max_x = (i64::from(c.range.qmin) - zx)
            .unsigned_abs()
            .max((i64::from(c.range.qmax) - zx).unsigned_abs());
        let max_w = c
            .zw(self.n())
            .iter()
            .map(|&z| {
                (128 + i64::from(z))
                    .unsigned_abs()
                    .max((127 - i64::from(z)).unsigned_abs())
            })
            .max()
            .unwrap_or(0);
        (u128::from(max_x), u128::from(max_w))
    }

    /// The fixed-point requantizers' documented bound,
    /// `p·max|x − z_X|·max|w − z_W| + max|b32|`.
    pub fn i32_bound(&self) -> u128 {
        let (max_x, max_w) = self.bound_factors();
        let max_b = self
            .bias32
            .iter()
            .map(|b| u128::from(b.unsigned_abs()))
            .max()
            .unwrap_or(0);
        self.p() as u128 * max_x * max_w + max_b
    }
}

/// Whether `e` is a documented refusal of a fixed-point requantizer for
/// `problem` (the accumulator could leave `i32`), checked against the bound
/// computed here.
pub fn is_justified_refusal(problem: &Problem, e: &QuantError) -> bool {
    if !matches!(problem.config.requantizer, Requantizer::FixedPoint(_)) {
        return false;
    }
    match e {
        QuantError::AccumulatorOverflow { .. } => problem.i32_bound() > i32::MAX as u128,
        // M ≥ 1 (a left shift) is only possible when |acc| is tiny.
        QuantError::LeftShiftOverflow { multiplier, .. } => *multiplier >= 0.5,
        _ => false,
    }
}

// ----------------------------------------------------------- checking

/// Outputs strictly inside the clamp, over all outputs (1 when empty).
pub fn inside_fraction<T: QuantElem>(y: &Array2<T>, (lo, hi): (i32, i32)) -> f64 {
    if y.is_empty() {
        return 1.0;
    }
    let inside = y
        .iter()
        .filter(|v| {
            let v = v.to_i32();
            lo < v && v < hi
        })
        .count();
    inside as f64 / y.len() as f64
}

/// Fails unless at least `min` of `y` lies strictly inside the clamp: a
/// comparison of clamped values would show little.
pub fn assert_meaningful<T: QuantElem>(y: &Array2<T>, clamp: (i32, i32), min: f64, ctx: &str) {
    let f = inside_fraction(y, clamp);
    assert!(
        f >= min,
        "{ctx}: only {:.0}% of outputs inside the clamp {clamp:?}; the test is not meaningful",
        f * 100.0
    );
}

/// Fails with the first difference and the number of differences.
#[track_caller]
pub fn assert_same<A, B>(got: ArrayView2<A>, want: ArrayView2<B>, what: &str, ctx: &str)
where
    A: Copy + Debug + TryFrom<B> + PartialEq,
    B: Copy + Debug,
{
    assert_eq!(got.dim(), want.dim(), "{ctx}: {what}: shape");
    let mut first = None;
    let mut count = 0usize;
    for ((idx, &g), &w) in got.indexed_iter().zip(want.iter()) {
        if A::try_from(w).ok() != Some(g) {
            count += 1;
            first.get_or_insert((idx, g, w));
        }
    }
    if let Some(((i, j), g, w)) = first {
        panic!(
            "{ctx}: {what}: {count} of {} outputs differ; first at [{i}, {j}]: expected {w:?}, got {g:?}",
            got.len()
        );
    }
}

/// The two canaries outputs are pre-filled with: an element left unwritten
/// shows as one of them in at least one of the two runs, whatever the
/// oracle says.
pub fn canaries<T: QuantElem>() -> [T; 2] {
    match T::RANGE.qmin {
        0 => [T::from_i32_clamped(0xA5), T::from_i32_clamped(0x3C)],
        _ => [T::from_i32_clamped(-77), T::from_i32_clamped(113)],
    }
}

/// `forward`, `accumulate` and `forward_into` (a standard-layout output
/// pre-filled with a canary) of `layer` on `x` against the oracle and the
/// exact accumulator.
#[track_caller]
pub fn check<T, S>(
    layer: &QuantizedLinear,
    x: &ArrayBase<S, Ix2>,
    oracle: ArrayView2<T>,
    exact: ArrayView2<i128>,
    ctx: &str,
) where
    T: QuantElem + PartialEq,
    S: Data<Elem = T>,
{
    let y = layer
        .forward(x)
        .unwrap_or_else(|e| panic!("{ctx}: forward: {e}"));
    assert_same(y.view(), oracle, "forward vs forward_reference", ctx);
    let acc = layer
        .accumulate(x)
        .unwrap_or_else(|e| panic!("{ctx}: accumulate: {e}"));
    assert_same(acc.view(), exact, "accumulate vs exact i128", ctx);
    // `forward` fills a fresh array; this one starts as a canary that is
    // not 0, so an element left unwritten cannot match in both.
    let mut out = Array2::from_elem(oracle.dim(), canaries::<T>()[0]);
    layer
        .forward_into(x, &mut out)
        .unwrap_or_else(|e| panic!("{ctx}: forward_into: {e}"));
    assert_same(out.view(), oracle, "forward_into (canary-filled)", ctx);
}

/// Rows `..m` of a matrix.
pub fn top<A>(a: &Array2<A>, m: usize) -> ArrayView2<'_, A> {
    a.slice(s![..m, ..])
}
