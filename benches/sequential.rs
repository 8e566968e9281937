//! Whole MLPs: a small one (64→96→48→10) and an MNIST-sized one
//! (784→1024→1024→10), ReLU between layers, at batch 1 and batch 500.
//! Each is run as a calibrated int8 stack on int8 input, as the same
//! layers chained by hand (what the stack costs over its layers), real in
//! and out through the int8 stack, as the f32 model on ndarray's `dot`,
//! and as a dynamic stack (its input quantized at every layer).
//! Throughput counts 2·m·Σp·n operations, as the `gemm` bench does.
//!
//! `cargo bench --bench sequential` (about 1–2 min); `cargo bench --bench
//! sequential -- 784` for the larger model.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::Array2;
use qlinear::{
    quantize_as, ConvertOptions, DynamicActivations, DynamicSequential, DynamicWorkspace,
    FloatLinear, FloatSequential, FusedActivation, MinMaxObserver, WeightLayout, Workspace,
};
use std::hint::black_box;
use std::time::Duration;

/// A 64-bit linear congruential generator (Knuth's MMIX constants):
/// the same weights and inputs on every machine and `rand` version.
struct Lcg(u64);

impl Lcg {
    /// Uniform in `[-1, 1)`, from the top 24 bits.
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn matrix(&mut self, (rows, cols): (usize, usize), scale: f32) -> Array2<f32> {
        Array2::from_shape_simple_fn((rows, cols), || scale * self.next())
    }
}

/// The f32 model of `widths`, PyTorch-initialised (`U(±1/√p)`), ReLU
/// after every layer but the last.
fn model(rng: &mut Lcg, widths: &[usize]) -> FloatSequential {
    let last = widths.len() - 2;
    let layers = widths
        .windows(2)
        .enumerate()
        .map(|(i, pair)| {
            let (p, n) = (pair[0], pair[1]);
            let bound = 1.0 / (p as f32).sqrt();
            let w = rng.matrix((n, p), bound);
            let b = rng.matrix((1, n), bound);
            let activation = if i < last {
                FusedActivation::Relu
            } else {
                FusedActivation::None
            };
            FloatLinear::new(w.view(), WeightLayout::OutIn, Some(b.row(0)), activation).unwrap()
        })
        .collect();
    FloatSequential::new(layers).unwrap()
}

fn sequential(c: &mut Criterion) {
    let mut rng = Lcg(7);
    for widths in [&[64, 96, 48, 10][..], &[784, 1024, 1024, 10]] {
        let float = model(&mut rng, widths);
        let p = widths[0];
        let batches: Vec<Array2<f32>> = (0..4).map(|_| rng.matrix((256, p), 1.0)).collect();
        let calibration = float
            .calibrate(batches.iter().map(|b| b.view()), MinMaxObserver::new())
            .unwrap();
        let options = ConvertOptions::default();
        let int8 = calibration.convert(&float, &options).unwrap();
        let dynamic =
            DynamicSequential::from_float(&float, &options, DynamicActivations::default()).unwrap();
        let name = widths
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join("-");
        let ops: usize = widths.windows(2).map(|w| 2 * w[0] * w[1]).sum();
        for m in [1, 500] {
            let x = rng.matrix((m, p), 1.0);
            let first = &int8.layers()[0];
            let x_q: Array2<i8> =
                quantize_as(&x, first.input_params(), first.input_range()).unwrap();
            let large = m * ops > 100_000_000;
            let mut group = c.benchmark_group(format!("sequential {name} m={m}"));
            group
                .throughput(Throughput::Elements((m * ops) as u64))
                .warm_up_time(Duration::from_millis(200))
                .measurement_time(Duration::from_millis(if large { 1500 } else { 700 }))
                .sample_size(if large { 10 } else { 30 });
            group.bench_function("int8 stack forward", |b| {
                b.iter(|| black_box(int8.forward(&x_q).unwrap()))
            });
            let (mut out_q, mut workspace_q) = (
                Array2::<i8>::zeros((m, int8.out_features())),
                Workspace::new(),
            );
            group.bench_function("int8 stack forward_into", |b| {
                b.iter(|| {
                    int8.forward_into(&x_q, &mut out_q, &mut workspace_q)
                        .unwrap();
                    black_box(&out_q);
                })
            });
            group.bench_function("int8 layers by hand", |b| {
                let (first, rest) = int8.layers().split_first().unwrap();
                b.iter(|| {
                    let mut h = first.forward(&x_q).unwrap();
                    for layer in rest {
                        h = layer.forward(&h).unwrap();
                    }
                    black_box(h)
                })
            });
            group.bench_function("int8 stack forward_f32", |b| {
                b.iter(|| black_box(int8.forward_f32(&x).unwrap()))
            });
            let mut out_f32 = Array2::<f32>::zeros((m, int8.out_features()));
            group.bench_function("int8 stack forward_f32_into", |b| {
                b.iter(|| {
                    int8.forward_f32_into(&x, &mut out_f32, &mut workspace_q)
                        .unwrap();
                    black_box(&out_f32);
                })
            });
            group.bench_function("f32 ndarray", |b| {
                b.iter(|| black_box(float.forward(&x).unwrap()))
            });
            group.bench_function("dynamic forward", |b| {
                b.iter(|| black_box(dynamic.forward(&x).unwrap()))
            });
            let (mut out, mut workspace) = (
                Array2::zeros((m, dynamic.out_features())),
                DynamicWorkspace::default(),
            );
            group.bench_function("dynamic forward_into", |b| {
                b.iter(|| {
                    dynamic.forward_into(&x, &mut out, &mut workspace).unwrap();
                    black_box(&out);
                })
            });
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    // The numbers only: rendering plots adds time to every benchmark.
    config = Criterion::default().without_plots();
    targets = sequential
}
criterion_main!(benches);
