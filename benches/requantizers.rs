//! The layer's `forward` with each requantizer, on the shapes, one
//! thread, the default kernel: what each output stage costs on top of the
//! same product. Throughput counts 2·m·p·n operations, as in the `gemm`
//! bench, whose rows use the default requantizer (`Float64`).
//!
//! `cargo bench --bench requantizers`; `cargo bench --bench requantizers
//! -- 512x` for one shape.

// Shared with the other benches, which use the rest of it.
#[allow(dead_code)]
mod common;

use common::{layer, SHAPES};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array2;
use qlinear::{Requantizer, Rounding};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::hint::black_box;
use std::time::Duration;

const REQUANTIZERS: [(&str, Requantizer); 6] = [
    ("Float64", Requantizer::Float64),
    ("TfliteReference", Requantizer::TfliteReference),
    (
        "FixedPoint(HalfUp)",
        Requantizer::FixedPoint(Rounding::HalfUp),
    ),
    (
        "FixedPoint(Double)",
        Requantizer::FixedPoint(Rounding::Double),
    ),
    (
        "FixedPoint(Single)",
        Requantizer::FixedPoint(Rounding::Single),
    ),
    ("Float32", Requantizer::Float32),
];

fn requantizers(c: &mut Criterion) {
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    for (m, p, n) in SHAPES {
        let mut group = c.benchmark_group(format!("requantizers {m}x{p}x{n}"));
        group
            .throughput(Throughput::Elements((2 * m * p * n) as u64))
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            .sample_size(20);
        let w = Array2::from_shape_simple_fn((p, n), || rng.random::<i8>());
        let x = Array2::from_shape_simple_fn((m, p), || rng.random::<i8>());
        let base = layer(&w);
        for (name, requantizer) in REQUANTIZERS {
            let layer = base.clone().with_requantizer(requantizer).unwrap();
            let id = BenchmarkId::new(name, layer.kernel_name());
            group.bench_with_input(id, &x, |b, x| {
                one_thread.install(|| b.iter(|| black_box(layer.forward::<_, i8>(x).unwrap())))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, requantizers);
criterion_main!(benches);
