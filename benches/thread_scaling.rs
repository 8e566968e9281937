//! How much a second thread speeds up `forward`, per kernel and shape, on
//! a machine whose speed drifts (a shared VM: the same run can be 2× apart
//! minutes later).
//!
//! Criterion measures one configuration after another, so its one-thread
//! and all-thread figures come from different minutes and their ratio
//! carries the drift. Here each pair — one batch of calls on a one-thread
//! pool, then one on a two-thread pool — is timed back to back, and the
//! median of the pairs' ratios is reported with the median GOPS of each.
//!
//! `cargo bench --bench thread_scaling`; arguments after `--` keep only
//! the rows whose shape or kernel name contains each of them, e.g.
//! `-- 512x u7`.

mod common;

use common::{for_kernel, kept, layer, median, SHAPES};
use ndarray::Array2;
use qlinear::available_kernels;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::{ThreadPool, ThreadPoolBuilder};
use std::hint::black_box;
use std::time::Instant;

/// Pairs timed per kernel and shape.
const PAIRS: usize = 31;

/// Operations per timed batch, so that short products are repeated.
const OPS_PER_BATCH: f64 = 4e8;

fn main() {
    let pool = |threads| {
        ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    };
    let (one, two): (ThreadPool, ThreadPool) = (pool(1), pool(2));
    let mut rng = StdRng::seed_from_u64(1);
    println!("| shape m×p×n | kernel | 1 thread GOPS | 2 threads GOPS | 2 / 1 (median of {PAIRS} pairs) |");
    println!("|---|---|---|---|---|");
    for (m, p, n) in SHAPES {
        let shape = format!("{m}x{p}x{n}");
        let kernels: Vec<_> = available_kernels()
            .into_iter()
            .filter(|kernel| kept(&format!("{shape} {kernel}")))
            .collect();
        if kernels.is_empty() {
            continue;
        }
        let w = Array2::from_shape_simple_fn((p, n), || rng.random::<i8>());
        let x = Array2::from_shape_simple_fn((m, p), || rng.random::<i8>());
        let x7 = x.mapv(|v| v >> 1);
        let base = layer(&w);
        let ops = 2.0 * (m * p * n) as f64;
        let calls = (OPS_PER_BATCH / ops).ceil() as usize;
        for kernel in kernels {
            let (layer, input) = for_kernel(&base, kernel, &x, &x7);
            let batch = |pool: &ThreadPool| {
                pool.install(|| {
                    // One untimed call first: the pool's other workers fell
                    // asleep while the other pool ran, and waking a vCPU can
                    // take longer than a whole short call. The timed calls
                    // then see the pool as a model's layers do, one call
                    // after another.
                    black_box(layer.forward::<_, i8>(input).unwrap());
                    let start = Instant::now();
                    for _ in 0..calls {
                        black_box(layer.forward::<_, i8>(input).unwrap());
                    }
                    start.elapsed().as_secs_f64() / calls as f64
                })
            };
            batch(&one);
            batch(&two);
            let (mut t1, mut t2, mut ratios) = (vec![], vec![], vec![]);
            for _ in 0..PAIRS {
                let (a, b) = (batch(&one), batch(&two));
                t1.push(ops / a / 1e9);
                t2.push(ops / b / 1e9);
                ratios.push(a / b);
            }
            println!(
                "| {shape} | `{kernel}` | {:.0} | {:.0} | {:.2} |",
                median(t1),
                median(t2),
                median(ratios)
            );
        }
    }
}
