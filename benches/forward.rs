//! `QuantizedLinear::forward` against `ndarray`'s f32 `dot` on the same
//! shapes. Throughput is reported in elements/s where one element is one
//! operation (2·m·p·n per product), so criterion's "Gelem/s" reads as GOPS.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array2;
use qlinear::{Bias, QuantParams, QuantizedLinear};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::hint::black_box;

const SHAPES: [(usize, usize, usize); 3] = [(1, 1024, 1024), (16, 1024, 1024), (128, 512, 512)];

fn layer(p: usize, n: usize, rng: &mut StdRng) -> QuantizedLinear {
    let w = Array2::from_shape_simple_fn((p, n), || rng.random::<i8>());
    let px = QuantParams::new(0.02, 3).unwrap();
    let pw = QuantParams::new(0.01, 0).unwrap();
    let py = QuantParams::new(0.02 * 0.01 * 128.0 * (p as f64).sqrt(), -5).unwrap();
    QuantizedLinear::from_quantized(w, pw, Bias::None, px, py).unwrap()
}

fn forward_vs_f32(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let mut group = c.benchmark_group("forward");
    for (m, p, n) in SHAPES {
        let id = format!("{m}x{p}x{n}");
        group.throughput(Throughput::Elements((2 * m * p * n) as u64));
        let l = layer(p, n, &mut rng);
        let x = Array2::from_shape_simple_fn((m, p), || rng.random::<i8>());
        group.bench_with_input(BenchmarkId::new("qlinear_forward", &id), &x, |b, x| {
            b.iter(|| black_box(l.forward(x).unwrap()))
        });
        let xf = Array2::from_shape_simple_fn((m, p), || rng.random::<f32>());
        let wf = Array2::from_shape_simple_fn((p, n), || rng.random::<f32>());
        group.bench_with_input(BenchmarkId::new("ndarray_f32_dot", &id), &xf, |b, xf| {
            b.iter(|| black_box(xf.dot(&wf)))
        });
    }
    group.finish();
}

criterion_group!(benches, forward_vs_f32);
criterion_main!(benches);
