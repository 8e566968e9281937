//! What each requantizer's output stage costs on top of the same product:
//! the layer's `forward` with every requantizer, on the shared shapes,
//! one thread, the default kernel (int8 in, int8 out).
//!
//! The requantizers are timed in rotation, one batch of calls each per
//! round, so that every round sees one minute of a host whose speed
//! drifts (see `thread_scaling.rs`); a table gives each requantizer's
//! median GOPS and, in brackets, the median over rounds of its speed
//! relative to `Float64` (the default, the `gemm` bench's figure) in the
//! same round.
//!
//! `cargo bench --bench requantizers`; arguments after `--` keep only the
//! shapes that contain each of them, e.g. `-- 512x`.

// Shared with the other benches, which use the rest of it.
#[allow(dead_code)]
mod common;

use common::{kept, layer, median, SHAPES};
use ndarray::Array2;
use qlinear::{Requantizer, Rounding};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::hint::black_box;
use std::time::Instant;

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

/// Rounds per shape.
const ROUNDS: usize = 31;

/// Operations per timed batch, so that short products are repeated.
const OPS_PER_BATCH: f64 = 2e9;

fn main() {
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let names: Vec<&str> = REQUANTIZERS.iter().map(|(name, _)| *name).collect();
    println!("| shape m×p×n | kernel | {} |", names.join(" | "));
    println!("|---|---|{}", "---|".repeat(names.len()));
    for (m, p, n) in SHAPES {
        let w = Array2::from_shape_simple_fn((p, n), || rng.random::<i8>());
        let x = Array2::from_shape_simple_fn((m, p), || rng.random::<i8>());
        let shape = format!("{m}x{p}x{n}");
        if !kept(&shape) {
            continue;
        }
        let base = layer(&w);
        let layers: Vec<_> = REQUANTIZERS
            .iter()
            .map(|&(_, r)| base.clone().with_requantizer(r).unwrap())
            .collect();
        let ops = 2.0 * (m * p * n) as f64;
        let calls = (OPS_PER_BATCH / ops).ceil() as usize;
        let batch = |layer: &qlinear::QuantizedLinear| {
            let start = Instant::now();
            for _ in 0..calls {
                black_box(layer.forward::<_, i8>(&x).unwrap());
            }
            ops / (start.elapsed().as_secs_f64() / calls as f64) / 1e9
        };
        let mut gops = vec![Vec::new(); layers.len()];
        let mut relative = vec![Vec::new(); layers.len()];
        one_thread.install(|| {
            layers.iter().for_each(|l| {
                batch(l);
            });
            for _ in 0..ROUNDS {
                let round: Vec<f64> = layers.iter().map(batch).collect();
                for (i, &g) in round.iter().enumerate() {
                    gops[i].push(g);
                    relative[i].push(g / round[0]);
                }
            }
        });
        let cells: Vec<String> = gops
            .into_iter()
            .zip(relative)
            .map(|(g, r)| format!("{:.0} ({:.2})", median(g), median(r)))
            .collect();
        println!(
            "| {shape} | `{}` | {} |",
            base.kernel_name(),
            cells.join(" | ")
        );
    }
}
