//! The layer's `forward` on the shared shapes, per kernel on one thread
//! and with the default kernel on all threads, against the naive reference
//! loop and `ndarray`'s f32 `dot`. Throughput counts 2·m·p·n operations per
//! product, so criterion's "elem/s" reads as operations per second (GOPS
//! when it says Gelem/s).
//!
//! `cargo bench --bench gemm`; `cargo bench --bench gemm -- 1x4096` for one
//! shape.

// Shared with the other benches, which use the rest of it.
#[allow(dead_code)]
mod common;

use common::{for_kernel, layer, SHAPES};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array2;
use qlinear::available_kernels;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::hint::black_box;
use std::time::Duration;

fn gemm(c: &mut Criterion) {
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    for (m, p, n) in SHAPES {
        let shape = format!("{m}x{p}x{n}");
        let mut group = c.benchmark_group(&shape);
        group
            .throughput(Throughput::Elements((2 * m * p * n) as u64))
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3))
            .sample_size(20);
        let w = Array2::from_shape_simple_fn((p, n), || rng.random::<i8>());
        let x = Array2::from_shape_simple_fn((m, p), || rng.random::<i8>());
        // 7-bit activations for the reduced-range kernel.
        let x7 = x.mapv(|v| v >> 1);
        let base = layer(&w);
        for kernel in available_kernels() {
            let (l, input) = for_kernel(&base, kernel, &x, &x7);
            group.bench_with_input(BenchmarkId::new("1 thread", kernel), input, |b, x| {
                one_thread.install(|| b.iter(|| black_box(l.forward(x).unwrap())))
            });
        }
        group.bench_with_input(
            BenchmarkId::new("all threads", base.kernel_name()),
            &x,
            |b, x| b.iter(|| black_box(base.forward(x).unwrap())),
        );
        let xf = x.mapv(f32::from);
        let wf = w.mapv(f32::from);
        group.bench_with_input(
            BenchmarkId::new("ndarray f32 dot", "1 thread"),
            &xf,
            |b, xf| b.iter(|| black_box(xf.dot(&wf))),
        );
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(1));
        group.bench_with_input(BenchmarkId::new("reference", "naive i128"), &x, |b, x| {
            b.iter(|| black_box(base.forward_reference(x).unwrap()))
        });
        group.finish();
    }
}

criterion_group!(benches, gemm);
criterion_main!(benches);
