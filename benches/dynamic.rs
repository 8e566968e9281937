//! `DynamicLinear::forward` (f32 in, f32 out, the activations quantized on
//! every call) on the shared shapes, with ONNX Runtime's and PyTorch's
//! activation conventions, on one thread and on all threads. Throughput
//! counts 2·m·p·n operations, as in the `gemm` bench, whose `ndarray f32
//! dot` rows are the float baseline.
//!
//! `cargo bench --bench dynamic`; `cargo bench --bench dynamic -- 512x` for
//! one shape.

// Shared with the other benches, which use the rest of it.
#[allow(dead_code)]
mod common;

use common::SHAPES;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array2;
use qlinear::{DynamicActivations, DynamicLinear, QuantRange, Scheme, WeightParams};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::hint::black_box;
use std::time::Duration;

fn dynamic(c: &mut Criterion) {
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    let conventions = [
        ("onnxruntime u8", DynamicActivations::ONNX_RUNTIME),
        ("pytorch x86 u7", DynamicActivations::PYTORCH_X86),
    ];
    for (m, p, n) in SHAPES {
        let mut group = c.benchmark_group(format!("dynamic {m}x{p}x{n}"));
        group
            .throughput(Throughput::Elements((2 * m * p * n) as u64))
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(20);
        let w = Array2::from_shape_simple_fn((p, n), || rng.random::<f32>() - 0.5);
        let x = Array2::from_shape_simple_fn((m, p), || 6.0 * rng.random::<f32>() - 3.0);
        // Per tensor and symmetric, as PyTorch's and ONNX Runtime's
        // dynamic quantization tools store weights by default.
        let pw = WeightParams::per_tensor(&w, Scheme::Symmetric, QuantRange::INT8).unwrap();
        for (name, activations) in conventions {
            let layer = DynamicLinear::from_f32(&w, pw.clone(), None)
                .unwrap()
                .with_activations(activations)
                .unwrap();
            let id = format!("{name} {}", layer.kernel_name());
            group.bench_with_input(BenchmarkId::new("1 thread", &id), &x, |b, x| {
                one_thread.install(|| b.iter(|| black_box(layer.forward(x).unwrap())))
            });
            group.bench_with_input(BenchmarkId::new("all threads", &id), &x, |b, x| {
                b.iter(|| black_box(layer.forward(x).unwrap()))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, dynamic);
criterion_main!(benches);
