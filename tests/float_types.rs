//! Every real-valued API on `f64`, `f16` and `bf16` equals converting the
//! input to `f32` first (written out here per type, not through the
//! crate's `Real`) and calling the `f32` API, with `f32` outputs converted
//! to the input's type. The `f64` inputs include values `f32` cannot hold
//! exactly, values that tie in `f32`, and values beyond `f32` (±1e300).

use std::fmt::Debug;

use ndarray::{array, s, Array1, Array2, ArrayView2};
use qlinear::{
    dequantize, dequantize_as, quantize, quantize_as, try_dequantize, try_dequantize_as,
    try_quantize, ChannelObserver, DynamicActivations, DynamicLinear, ElemKind, F32Bias,
    FusedActivation, Granularity, HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver,
    Observer, PerChannelMinMaxObserver, PercentileObserver, QuantError, QuantParams, QuantRange,
    QuantizedLinear, QuantizedSequential, Real, Scheme, WeightLayout, WeightParams,
};

/// A float type under test, with its conversions to and from `f32`
/// written out independently of the crate.
trait Case: Real + PartialEq + Debug {
    fn to32(self) -> f32;
    fn from32(v: f32) -> Self;
    /// `v` in this type (rounded as the type rounds).
    fn of(v: f64) -> Self;
    /// Values that are special for this type: ties, values beyond `f32`,
    /// values `f32` cannot hold exactly, infinities (no NaN).
    fn specials() -> Vec<Self>;
}

impl Case for f64 {
    fn to32(self) -> f32 {
        self as f32
    }
    fn from32(v: f32) -> f64 {
        f64::from(v)
    }
    fn of(v: f64) -> f64 {
        v
    }
    fn specials() -> Vec<f64> {
        vec![
            1e300,
            -1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            3.5e38, // beyond f32::MAX (3.4028235e38)
            1e-300, // below the smallest f32
            0.1,
            1.0 / 3.0,
            1.0 + 2f64.powi(-24), // halfway between two f32: ties to even, 1
            1.0 + 3.0 * 2f64.powi(-24), // halfway: to even, 1 + 2^-22
            0.5 + 2f64.powi(-30), // rounds to 0.5 in f32, then ties to even in (5)
            -(2.5 - 2f64.powi(-40)), // below the tie in f64, the tie in f32
            0.30000000000000004,
        ]
    }
}

#[cfg(feature = "half")]
impl Case for half::f16 {
    fn to32(self) -> f32 {
        half::f16::to_f32(self)
    }
    fn from32(v: f32) -> half::f16 {
        half::f16::from_f32(v)
    }
    fn of(v: f64) -> half::f16 {
        half::f16::from_f64(v)
    }
    fn specials() -> Vec<half::f16> {
        use half::f16;
        vec![
            f16::INFINITY,
            f16::NEG_INFINITY,
            f16::MAX,
            f16::MIN,
            f16::MIN_POSITIVE_SUBNORMAL,
            f16::from_f32(0.1),
            f16::from_f32(-2.5),
        ]
    }
}

#[cfg(feature = "half")]
impl Case for half::bf16 {
    fn to32(self) -> f32 {
        half::bf16::to_f32(self)
    }
    fn from32(v: f32) -> half::bf16 {
        half::bf16::from_f32(v)
    }
    fn of(v: f64) -> half::bf16 {
        half::bf16::from_f64(v)
    }
    fn specials() -> Vec<half::bf16> {
        use half::bf16;
        vec![
            bf16::INFINITY,
            bf16::NEG_INFINITY,
            bf16::MAX,
            bf16::MIN,
            bf16::from_f32(1e30),
            bf16::from_f32(0.1),
            bf16::from_f32(-2.5),
        ]
    }
}

/// Deterministic values in `[-scale, scale)`, at full `f64` precision.
fn randoms(n: usize, scale: f64, seed: u64) -> Vec<f64> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// An m×p input of random values with the type's specials spread over it
/// when `specials`.
fn input<F: Case>(m: usize, p: usize, specials: bool, seed: u64) -> Array2<F> {
    let mut values: Vec<F> = randoms(m * p, 3.0, seed).into_iter().map(F::of).collect();
    if specials {
        for (k, v) in F::specials().into_iter().enumerate() {
            let at = (k * 7 + 3) % values.len();
            values[at] = v;
        }
    }
    Array2::from_shape_vec((m, p), values).unwrap()
}

/// The error of `r`, as text: a NaN in it is not equal to itself.
fn e<T: Debug>(r: Result<T, QuantError>) -> String {
    format!("{:?}", r.unwrap_err())
}

fn to32<F: Case>(x: &Array2<F>) -> Array2<f32> {
    x.mapv(F::to32)
}

fn params() -> Vec<QuantParams> {
    vec![
        QuantParams::new(0.5, 0).unwrap(),
        QuantParams::new(0.0123, -7).unwrap(),
        QuantParams::new(1.0 / 3.0, 100).unwrap(),
        QuantParams::new(1e-30, 0).unwrap(),
    ]
}

fn quantize_family<F: Case>() {
    let x = input::<F>(9, 7, true, 1);
    let x32 = to32(&x);
    for p in params() {
        assert_eq!(quantize(&x, p), quantize(&x32, p), "{p:?}");
        // Transposed and strided views.
        assert_eq!(quantize(&x.t(), p), quantize(&x32.t(), p));
        let strided = s![..;2, 1..;3];
        assert_eq!(
            quantize(&x.slice(strided), p),
            quantize(&x32.slice(strided), p)
        );
        for range in [QuantRange::UINT8, QuantRange::UINT8_REDUCED] {
            assert_eq!(
                quantize_as::<u8, _, _>(&x, p, range),
                quantize_as::<u8, _, _>(&x32, p, range)
            );
        }
        assert_eq!(
            quantize_as::<i8, _, _>(&x, p, QuantRange::INT8_NARROW),
            quantize_as::<i8, _, _>(&x32, p, QuantRange::INT8_NARROW)
        );
        let q = try_quantize(&x, p).unwrap();
        assert_eq!(q, try_quantize(&x32, p).unwrap());
        let want = dequantize(&q, p).mapv(F::from32);
        assert_eq!(dequantize_as::<F, _, _>(&q, p), want);
        assert_eq!(try_dequantize_as::<F, _, _>(&q, p).unwrap(), want);
        assert_eq!(
            try_dequantize_as::<F, _, _>(&q.t(), p).unwrap(),
            try_dequantize(&q.t(), p).unwrap().mapv(F::from32)
        );
    }
    // NaN: mapped to the zero point by `quantize`, refused by the others.
    let mut with_nan = x.clone();
    with_nan[[4, 5]] = F::nan();
    let nan32 = to32(&with_nan);
    let p = QuantParams::new(0.1, 3).unwrap();
    assert_eq!(quantize(&with_nan, p), quantize(&nan32, p));
    let err = try_quantize(&with_nan, p).unwrap_err();
    assert_eq!(format!("{err:?}"), e(try_quantize(&nan32, p)));
    assert!(
        matches!(err, QuantError::NonFinite { index: 33, .. }),
        "{err}"
    );
}

/// The layer of `w` (p×n) and `b` in `F`, and the same from the `f32`
/// conversions, built through `from_f32` and through the builder.
fn linear_family<F: Case>() {
    let (p, n) = (6, 4);
    let w = input::<F>(p, n, false, 2).mapv(|v| F::of(v.to32() as f64 / 3.0));
    let b: Array1<F> = randoms(n, 0.5, 3).into_iter().map(F::of).collect();
    let (w32, b32) = (to32(&w), b.mapv(F::to32));
    let px = QuantParams::from_range(-3.0, 3.0).unwrap();
    let py = QuantParams::from_range(-4.0, 4.0).unwrap();
    let pw = WeightParams::per_channel(
        &w,
        WeightLayout::InOut,
        Scheme::Symmetric,
        QuantRange::INT8_NARROW,
    )
    .unwrap();
    let pw32 = WeightParams::per_channel(
        &w32,
        WeightLayout::InOut,
        Scheme::Symmetric,
        QuantRange::INT8_NARROW,
    )
    .unwrap();
    assert_eq!(pw, pw32);
    let layer = QuantizedLinear::from_f32(&w, pw.clone(), F32Bias::Real(b.view()), px, py).unwrap();
    let layer32 =
        QuantizedLinear::from_f32(&w32, pw.clone(), F32Bias::Real(b32.view()), px, py).unwrap();
    assert_eq!(layer.unpack_weights(), layer32.unpack_weights());
    assert_eq!(layer.bias(), layer32.bias());

    let x = input::<F>(7, p, true, 4);
    let x32 = to32(&x);
    let y = layer.forward_f32(&x).unwrap();
    assert_eq!(y, layer32.forward_f32(&x32).unwrap().mapv(F::from32));
    assert_eq!(
        layer.forward_f32(&x.t().t()).unwrap(),
        layer32.forward_f32(&x32.t().t()).unwrap().mapv(F::from32)
    );
    let mut with_nan = x.clone();
    with_nan[[2, 1]] = F::nan();
    assert_eq!(
        e(layer.forward_f32(&with_nan)),
        e(layer32.forward_f32(&to32(&with_nan)))
    );

    // The builder: PyTorch's layout, an int8 bias with params of its own,
    // uint8 activations, weights of type F and a bias of type f32 or F.
    let wt = w.t();
    let pb = QuantParams::new(0.01, 2).unwrap();
    fn build<'a, B: Real>(
        weights: ArrayView2<'a, impl Real>,
        bias: F32Bias<'a, B>,
        pw: &WeightParams,
    ) -> QuantizedLinear {
        QuantizedLinear::builder_f32(weights, WeightLayout::OutIn, pw.clone())
            .bias_f32(bias)
            .activation_type(ElemKind::Uint8)
            .input_params(QuantParams::affine(-3.0, 3.0, QuantRange::UINT8).unwrap())
            .output_params(QuantParams::affine(-4.0, 4.0, QuantRange::UINT8).unwrap())
            .build()
            .unwrap()
    }
    let built = build(
        wt.view(),
        F32Bias::RealWithParams {
            values: b.view(),
            params: pb,
        },
        &pw,
    );
    let w32t = w32.t();
    let built32 = QuantizedLinear::builder_f32(w32t.view(), WeightLayout::OutIn, pw.clone())
        .bias_f32(F32Bias::RealWithParams {
            values: b32.view(),
            params: pb,
        })
        .activation_type(ElemKind::Uint8)
        .input_params(QuantParams::affine(-3.0, 3.0, QuantRange::UINT8).unwrap())
        .output_params(QuantParams::affine(-4.0, 4.0, QuantRange::UINT8).unwrap())
        .build()
        .unwrap();
    assert_eq!(built.unpack_weights(), built32.unpack_weights());
    assert_eq!(built.bias(), built32.bias());
    assert_eq!(
        built.forward_f32(&x).unwrap(),
        built32.forward_f32(&x32).unwrap().mapv(F::from32)
    );
    // Weights in F, bias in f32: the same layer as all-f32.
    let mixed = QuantizedLinear::builder_f32(wt.view(), WeightLayout::OutIn, pw.clone())
        .bias_f32(F32Bias::Real(b32.view()))
        .input_params(px)
        .output_params(py)
        .build()
        .unwrap();
    assert_eq!(mixed.unpack_weights(), layer32.unpack_weights());
    assert_eq!(mixed.bias(), layer32.bias());
    let none = build(wt.view(), F32Bias::<F>::None, &pw);
    assert_eq!(none.bias(), &qlinear::Bias::None);

    // A bias beyond f32 is an infinity, refused as the f32 path refuses it.
    if let Some(&huge) = F::specials().first() {
        let mut b_huge = b.clone();
        b_huge[1] = huge;
        let err = QuantizedLinear::from_f32(&w, pw.clone(), F32Bias::Real(b_huge.view()), px, py)
            .unwrap_err();
        let b_huge32 = b_huge.mapv(F::to32);
        assert_eq!(
            err,
            QuantizedLinear::from_f32(&w32, pw.clone(), F32Bias::Real(b_huge32.view()), px, py)
                .unwrap_err()
        );
    }

    // A stack: the layer, then a ReLU layer chained on its output params.
    let w2 = input::<F>(n, 2, false, 5);
    let w2_32 = to32(&w2);
    let pw2 = WeightParams::per_tensor(&w2, Scheme::Symmetric, QuantRange::INT8_NARROW).unwrap();
    assert_eq!(
        pw2,
        WeightParams::per_tensor(&w2_32, Scheme::Symmetric, QuantRange::INT8_NARROW).unwrap()
    );
    let pz = QuantParams::from_range(-20.0, 20.0).unwrap();
    let second = |w: &Array2<F>| {
        QuantizedLinear::from_f32(w, pw2.clone(), F32Bias::None, py, pz)
            .unwrap()
            .with_fused_activation(FusedActivation::Relu)
            .unwrap()
    };
    let second32 = QuantizedLinear::from_f32(&w2_32, pw2.clone(), F32Bias::None, py, pz)
        .unwrap()
        .with_fused_activation(FusedActivation::Relu)
        .unwrap();
    let stack = QuantizedSequential::new(vec![layer.clone(), second(&w2)]).unwrap();
    let stack32 = QuantizedSequential::new(vec![layer32.clone(), second32]).unwrap();
    assert_eq!(
        stack.forward_f32(&x).unwrap(),
        stack32.forward_f32(&x32).unwrap().mapv(F::from32)
    );
    assert_eq!(
        e(stack.forward_f32(&with_nan)),
        e(stack32.forward_f32(&to32(&with_nan)))
    );

    // Quantizing weights with given params.
    assert_eq!(pw.quantize(&w).unwrap(), pw.quantize(&w32).unwrap());
    let mut w_special = input::<F>(p, n, true, 6);
    assert_eq!(
        pw.quantize(&w_special).unwrap(),
        pw.quantize(&to32(&w_special)).unwrap()
    );
    w_special[[0, 0]] = F::nan();
    assert_eq!(
        e(pw.quantize(&w_special)),
        e(pw.quantize(&to32(&w_special)))
    );
}

fn dynamic_family<F: Case>() {
    let (p, n) = (5, 3);
    let w = input::<F>(p, n, false, 7);
    let b: Array1<F> = randoms(n, 0.5, 8).into_iter().map(F::of).collect();
    let w32 = to32(&w);
    let pw = WeightParams::per_channel(
        &w,
        WeightLayout::InOut,
        Scheme::Symmetric,
        QuantRange::INT8_NARROW,
    )
    .unwrap();
    let layer = DynamicLinear::from_f32(&w, pw.clone(), Some(b.clone())).unwrap();
    let layer32 = DynamicLinear::from_f32(&w32, pw.clone(), Some(b.mapv(F::to32))).unwrap();
    let x = input::<F>(6, p, false, 9);
    let x32 = to32(&x);
    for activations in [
        DynamicActivations::ONNX_RUNTIME,
        DynamicActivations::PYTORCH_X86,
        DynamicActivations {
            granularity: Granularity::PerRow,
            scheme: Scheme::Symmetric,
            range: QuantRange::INT8,
        },
    ] {
        let a = layer.clone().with_activations(activations).unwrap();
        let a32 = layer32.clone().with_activations(activations).unwrap();
        assert_eq!(
            a.activation_params(x.view()).unwrap(),
            a32.activation_params(x32.view()).unwrap()
        );
        let want = a32.forward(&x32).unwrap();
        assert_eq!(a.forward(&x).unwrap(), want.mapv(F::from32));
        assert_eq!(a.forward(&x.t().t()).unwrap(), want.mapv(F::from32));
        // Into an output of the same type, of f32, and transposed.
        let mut out = Array2::<F>::zeros((6, n));
        a.forward_into(&x, &mut out).unwrap();
        assert_eq!(out, want.mapv(F::from32));
        let mut out32 = Array2::<f32>::zeros((6, n));
        a.forward_into(&x, &mut out32).unwrap();
        assert_eq!(out32, want);
        let mut out_t = Array2::<F>::zeros((n, 6));
        a.forward_into(&x, &mut out_t.view_mut().reversed_axes())
            .unwrap();
        assert_eq!(out_t.t(), want.mapv(F::from32));
        // Non-finite values (±1e300 among them for f64) are refused alike.
        let x_special = input::<F>(6, p, true, 10);
        assert_eq!(e(a.forward(&x_special)), e(a32.forward(&to32(&x_special))));
    }
}

fn observer_family<F: Case>() {
    let batches: Vec<Array2<F>> = (0..3).map(|k| input::<F>(40, 5, k == 1, 20 + k)).collect();
    let mut with_nan = input::<F>(4, 5, true, 30);
    with_nan[[1, 1]] = F::nan();
    fn check<O: Observer + Clone, F: Case>(o: O, batches: &[Array2<F>], last: &Array2<F>) {
        let (mut got, mut want) = (o.clone(), o);
        for x in batches {
            got.observe(x);
            want.observe(&to32(x));
            // A non-contiguous view.
            got.observe(&x.slice(s![..;3, ..]));
            want.observe(&to32(x).slice(s![..;3, ..]));
        }
        got.observe(&last.t());
        want.observe(&to32(last).t());
        assert_eq!(got.range(), want.range());
        assert_eq!((got.count(), got.skipped()), (want.count(), want.skipped()));
        for range in [QuantRange::INT8, QuantRange::UINT8] {
            assert_eq!(
                got.params(Scheme::Affine, range),
                want.params(Scheme::Affine, range)
            );
        }
    }
    check(MinMaxObserver::new(), &batches, &with_nan);
    check(
        MovingAverageMinMaxObserver::with_averaging_constant(0.3).unwrap(),
        &batches,
        &with_nan,
    );
    check(HistogramObserver::new(), &batches, &with_nan);
    check(
        PercentileObserver::new(1.0, 99.0).unwrap(),
        &batches,
        &with_nan,
    );

    // Per channel: the inherent method and the trait's generic one.
    fn through_trait<O: ChannelObserver, F: Case>(o: &mut O, x: &Array2<F>) {
        o.observe(x).unwrap();
    }
    let (mut got, mut by_trait, mut want) = (
        PerChannelMinMaxObserver::new(),
        PerChannelMinMaxObserver::with_axis(ndarray::Axis(1)).unwrap(),
        PerChannelMinMaxObserver::new(),
    );
    for x in batches.iter().chain([&with_nan]) {
        got.observe(x).unwrap();
        through_trait(&mut by_trait, x);
        want.observe(&to32(x)).unwrap();
    }
    let want_params = want.params(Scheme::Symmetric, QuantRange::INT8_NARROW);
    assert_eq!(got.ranges(), want.ranges());
    assert_eq!(by_trait.ranges(), want.ranges());
    assert_eq!(
        got.params(Scheme::Symmetric, QuantRange::INT8_NARROW),
        want_params
    );
    assert_eq!((got.count(), got.skipped()), (want.count(), want.skipped()));
    assert_eq!(
        (by_trait.count(), by_trait.skipped()),
        (want.count(), want.skipped())
    );

    // WeightParams from the same data, both layouts.
    let w = &batches[1];
    assert_eq!(
        WeightParams::per_tensor(w, Scheme::Affine, QuantRange::INT8),
        WeightParams::per_tensor(&to32(w), Scheme::Affine, QuantRange::INT8)
    );
    for layout in [WeightLayout::InOut, WeightLayout::OutIn] {
        assert_eq!(
            WeightParams::per_channel(w, layout, Scheme::Symmetric, QuantRange::INT8_NARROW),
            WeightParams::per_channel(&to32(w), layout, Scheme::Symmetric, QuantRange::INT8_NARROW)
        );
    }
    assert_eq!(
        e(WeightParams::per_tensor(
            &with_nan,
            Scheme::Affine,
            QuantRange::INT8
        )),
        e(WeightParams::per_tensor(
            &to32(&with_nan),
            Scheme::Affine,
            QuantRange::INT8
        ))
    );
}

/// Values `f32` cannot hold change the `f64` result, so the comparisons
/// above are not vacuous: quantizing the `f64` value directly in `f64`
/// would differ from the documented conversion to `f32` first.
#[test]
fn f64_inputs_are_rounded_to_f32_before_quantizing() {
    let p = QuantParams::new(1.0, 0).unwrap();
    // 0.5 + 2^-30 is above the tie in f64, and the tie 0.5 in f32.
    let x = array![0.5f64 + 2f64.powi(-30), 1e300, -1e300, 2.5 - 2f64.powi(-40)];
    assert_eq!(quantize(&x, p), array![0i8, 127, -128, 2]);
    assert_eq!(
        dequantize_as::<f64, _, _>(&array![1i8], QuantParams::new(0.1, 0).unwrap())[0],
        f64::from(0.1f32)
    );
}

#[test]
fn f64_quantize() {
    quantize_family::<f64>();
}

#[test]
fn f64_linear_and_sequential() {
    linear_family::<f64>();
}

#[test]
fn f64_dynamic() {
    dynamic_family::<f64>();
}

#[test]
fn f64_observers_and_weight_params() {
    observer_family::<f64>();
}

#[cfg(feature = "half")]
mod half_types {
    use super::*;
    use half::{bf16, f16};

    #[test]
    fn f16_quantize() {
        quantize_family::<f16>();
    }

    #[test]
    fn bf16_quantize() {
        quantize_family::<bf16>();
    }

    #[test]
    fn f16_linear_and_sequential() {
        linear_family::<f16>();
    }

    #[test]
    fn bf16_linear_and_sequential() {
        linear_family::<bf16>();
    }

    #[test]
    fn f16_dynamic() {
        dynamic_family::<f16>();
    }

    #[test]
    fn bf16_dynamic() {
        dynamic_family::<bf16>();
    }

    #[test]
    fn f16_observers_and_weight_params() {
        observer_family::<f16>();
    }

    #[test]
    fn bf16_observers_and_weight_params() {
        observer_family::<bf16>();
    }

    /// Outputs are rounded from `f32` to the narrow type.
    #[test]
    fn outputs_round_to_the_narrow_type() {
        let p = QuantParams::new(0.1, 0).unwrap();
        let r = dequantize_as::<f16, _, _>(&array![1i8, 127], p);
        assert_eq!(r, array![f16::from_f32(0.1), f16::from_f32(12.7)]);
        let r = dequantize_as::<bf16, _, _>(&array![1i8], p);
        assert_eq!(r, array![bf16::from_f32(0.1)]);
    }
}
