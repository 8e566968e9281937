//! Layers shared between threads. `QuantizedLinear` and `DynamicLinear`
//! are `Send + Sync`; one layer called from many threads at once, or from
//! inside the caller's own rayon pools (nested `par_iter` over rows
//! included, and a pool of one thread), returns the bits of a call on one
//! thread, and never deadlocks. Every shape is checked against the crate's
//! own split decision (`qlinear::gemm::__introspect`), so that the calls
//! meant to split across the crate's threads do, and the others do not.

use std::sync::{Barrier, Once};

use ndarray::{concatenate, s, Array2, ArrayView2, Axis};
use qlinear::gemm::__introspect::{geometry, Plan};
use qlinear::{
    Bias, DynamicActivations, DynamicLinear, Granularity, QuantParams, QuantRange, QuantizedLinear,
    Requantizer, Rounding, Scheme,
};
use rayon::prelude::*;

const fn assert_send_sync<T: Send + Sync>() {}

// Compile-time: a layer can be shared by reference across threads and
// moved into them.
const _: () = {
    assert_send_sync::<QuantizedLinear>();
    assert_send_sync::<DynamicLinear>();
};

/// Threads of rayon's global pool, which layers called from outside any
/// pool use: more than one whatever the machine, so that the crate's own
/// split happens there too.
const GLOBAL_THREADS: usize = 3;

/// Plain threads calling one layer at once.
const CALLERS: usize = 8;

/// Batch sizes tried, smallest first, for a call of the 256×256 layers
/// that the crate splits by rows: the faster the kernel, the more rows it
/// takes to be worth a second thread.
const SPLIT_BATCHES: [usize; 5] = [16, 24, 64, 160, 320];

/// Whether the crate splits calls across threads at all (its `parallel`
/// feature).
const SPLITS: bool = cfg!(feature = "parallel");

/// Sizes the global pool before any test uses rayon (every test calls this
/// first), and returns its thread count.
fn global_pool() -> usize {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(GLOBAL_THREADS)
            .build_global()
            .expect("the global pool is first built here");
    });
    assert_eq!(rayon::current_num_threads(), GLOBAL_THREADS);
    GLOBAL_THREADS
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// Deterministic values over `[lo, hi]`.
fn pattern(len: usize, seed: u64, lo: i32, hi: i32) -> Vec<i32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let span = (hi - lo + 1) as u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            lo + (state % span) as i32
        })
        .collect()
}

fn weights(p: usize, n: usize, seed: u64) -> Array2<i8> {
    let values = pattern(p * n, seed, -128, 127);
    Array2::from_shape_vec((p, n), values.into_iter().map(|v| v as i8).collect()).unwrap()
}

fn int8_input(m: usize, p: usize, seed: u64) -> Array2<i8> {
    let values = pattern(m * p, seed, -128, 127);
    Array2::from_shape_vec((m, p), values.into_iter().map(|v| v as i8).collect()).unwrap()
}

fn f32_input(m: usize, p: usize, seed: u64) -> Array2<f32> {
    let values = pattern(m * p, seed, -1000, 1000);
    Array2::from_shape_vec(
        (m, p),
        values.into_iter().map(|v| v as f32 / 97.0).collect(),
    )
    .unwrap()
}

/// A static layer with per-channel weights, an int32 bias and a
/// fixed-point requantizer; output scale from the depth, so that outputs
/// spread over int8, few of them clamped.
fn static_layer(p: usize, n: usize, seed: u64) -> QuantizedLinear {
    let w = weights(p, n, seed);
    let channels: Vec<QuantParams> = (0..n)
        .map(|j| QuantParams::new(0.004 * (1.0 + j as f64 / n as f64), (j % 7) as i32 - 3).unwrap())
        .collect();
    let bias = Bias::Int32(pattern(n, seed + 1, -5000, 5000).into_iter().collect());
    let input = QuantParams::new(0.02, 5).unwrap();
    let output = QuantParams::new(0.02 * 0.004 * 200.0 * (p as f64).sqrt(), -3).unwrap();
    QuantizedLinear::from_quantized(w, channels, bias, input, output)
        .and_then(|l| l.with_requantizer(Requantizer::FixedPoint(Rounding::Double)))
        .unwrap()
}

/// A dynamic layer quantizing each row with its own parameters, so that a
/// row's output does not depend on the other rows of the call.
fn dynamic_layer(p: usize, n: usize, seed: u64) -> DynamicLinear {
    let w = weights(p, n, seed);
    DynamicLinear::from_quantized(w, QuantParams::new(0.004, 0).unwrap(), None)
        .and_then(|l| {
            l.with_activations(DynamicActivations {
                granularity: Granularity::PerRow,
                scheme: Scheme::Affine,
                range: QuantRange::UINT8,
            })
        })
        .unwrap()
}

/// What the crate does with an m×p×n call of `kernel` on `threads`.
fn plan(kernel: &str, (m, p, n): (usize, usize, usize), threads: usize) -> Plan {
    geometry(kernel).unwrap().plan(m, p, n, threads)
}

/// The first batch size in `ms` that the crate splits by rows on every
/// pool of 2 to `GLOBAL_THREADS` threads for a p×n layer on `kernel`.
fn rows_splitting(kernel: &str, ms: &[usize], p: usize, n: usize) -> usize {
    *ms.iter()
        .find(|&&m| {
            (2..=GLOBAL_THREADS).all(|t| matches!(plan(kernel, (m, p, n), t), Plan::Rows { .. }))
        })
        .unwrap_or_else(|| panic!("{kernel}: no batch of {ms:?} splits by rows at {p}×{n}"))
}

/// Asserts the crate's decision for `shape` on `threads`: split or not.
fn assert_plan(kernel: &str, shape: (usize, usize, usize), threads: usize, splits: bool) {
    let plan = plan(kernel, shape, threads);
    assert_eq!(
        plan != Plan::OneThread,
        splits,
        "{kernel} {shape:?} on {threads} threads: {plan:?}"
    );
}

/// The calls of every test: a static and a dynamic layer of 256×256 (a
/// batch of 3 stays on one thread, the first of `SPLIT_BATCHES` that
/// splits by rows for both layers' kernels does) and of 1024×1024 (one row:
/// 1 MiB of weights, split by weight panels).
struct Cases {
    small: (QuantizedLinear, DynamicLinear),
    wide: (QuantizedLinear, DynamicLinear),
    /// Batches for the 256×256 layers: one that stays on one thread, one
    /// that splits by rows.
    batches: [usize; 2],
}

impl Cases {
    fn new() -> Cases {
        let threads = global_pool();
        let small = (static_layer(256, 256, 1), dynamic_layer(256, 256, 2));
        let wide = (static_layer(1024, 1024, 3), dynamic_layer(1024, 1024, 4));
        let mut split = SPLIT_BATCHES[0];
        for kernel in [small.0.kernel_name(), small.1.kernel_name()] {
            if SPLITS {
                split = split.max(rows_splitting(kernel, &SPLIT_BATCHES, 256, 256));
            }
        }
        for kernel in [small.0.kernel_name(), small.1.kernel_name()] {
            assert_plan(kernel, (3, 256, 256), threads, false);
            assert_plan(kernel, (split, 256, 256), threads, SPLITS);
        }
        for kernel in [wide.0.kernel_name(), wide.1.kernel_name()] {
            let gemv = plan(kernel, (1, 1024, 1024), threads);
            assert!(
                !SPLITS || matches!(gemv, Plan::Panels { .. }),
                "{kernel}: {gemv:?}"
            );
            assert_plan(kernel, (1, 1024, 1024), threads, SPLITS);
        }
        eprintln!("batches of 3 and {split} rows at 256×256, 1 row at 1024×1024");
        Cases {
            small,
            wide,
            batches: [3, split],
        }
    }

    /// Every call: (static layer, dynamic layer, batch).
    fn calls(&self) -> Vec<(&QuantizedLinear, &DynamicLinear, usize)> {
        let (s, d) = (&self.small.0, &self.small.1);
        let mut calls: Vec<_> = self.batches.iter().map(|&m| (s, d, m)).collect();
        calls.push((&self.wide.0, &self.wide.1, 1));
        calls
    }
}

/// The results of one call of each layer, compared bit for bit.
#[derive(Debug, PartialEq)]
struct Bits {
    y: Array2<i8>,
    acc: Array2<i64>,
    dynamic: Array2<u32>,
}

fn run(layer: &QuantizedLinear, dynamic: &DynamicLinear, m: usize) -> Bits {
    let p = layer.in_features();
    let x = int8_input(m, p, 10 + m as u64);
    let xf = f32_input(m, p, 20 + m as u64);
    Bits {
        y: layer.forward(&x).unwrap(),
        acc: layer.accumulate(&x).unwrap(),
        dynamic: dynamic.forward(&xf).unwrap().mapv(f32::to_bits),
    }
}

/// The same as [`run`], one row per call, the rows in parallel on the
/// current pool.
fn run_by_rows(layer: &QuantizedLinear, dynamic: &DynamicLinear, m: usize) -> Bits {
    let p = layer.in_features();
    let x = int8_input(m, p, 10 + m as u64);
    let xf = f32_input(m, p, 20 + m as u64);
    let rows: Vec<(Array2<i8>, Array2<i64>, Array2<f32>)> = (0..m)
        .into_par_iter()
        .map(|i| {
            let row = x.slice(s![i..i + 1, ..]);
            let row_f = xf.slice(s![i..i + 1, ..]);
            (
                layer.forward(&row).unwrap(),
                layer.accumulate(&row).unwrap(),
                dynamic.forward(&row_f).unwrap(),
            )
        })
        .collect();
    Bits {
        y: stack(rows.iter().map(|r| r.0.view()).collect()),
        acc: stack(rows.iter().map(|r| r.1.view()).collect()),
        dynamic: stack(rows.iter().map(|r| r.2.view()).collect()).mapv(f32::to_bits),
    }
}

/// Rows stacked into one matrix.
fn stack<T: Clone>(rows: Vec<ArrayView2<'_, T>>) -> Array2<T> {
    concatenate(Axis(0), &rows).unwrap()
}

/// Each call on one thread: what every other way of calling must return.
/// The static layer's also equals its oracle.
fn single_threaded(cases: &Cases) -> Vec<Bits> {
    pool(1).install(|| {
        cases
            .calls()
            .into_iter()
            .map(|(layer, dynamic, m)| {
                let bits = run(layer, dynamic, m);
                let x = int8_input(m, layer.in_features(), 10 + m as u64);
                assert_eq!(bits.y, layer.forward_reference(&x).unwrap());
                // Most outputs inside the clamp: a comparison of clamped
                // values would show little.
                let inside = bits.y.iter().filter(|&&v| v > -128 && v < 127).count();
                assert!(
                    inside * 10 >= bits.y.len() * 9,
                    "{inside} of {}",
                    bits.y.len()
                );
                bits
            })
            .collect()
    })
}

#[test]
fn layers_are_send_and_sync() {
    assert_send_sync::<QuantizedLinear>();
    assert_send_sync::<DynamicLinear>();
    assert_send_sync::<&QuantizedLinear>();
}

/// `CALLERS` plain threads call the same layers at once (released together
/// by a barrier), each twice; the layers split their work on the global
/// pool meanwhile.
#[test]
fn many_threads_call_one_layer() {
    let cases = Cases::new();
    let want = single_threaded(&cases);
    let calls = cases.calls();
    let start = Barrier::new(CALLERS);
    std::thread::scope(|scope| {
        for caller in 0..CALLERS {
            let (calls, want, start) = (&calls, &want, &start);
            scope.spawn(move || {
                start.wait();
                for round in 0..2 {
                    // Callers take the calls in different orders.
                    for i in 0..calls.len() {
                        let c = (i + caller + round) % calls.len();
                        let (layer, dynamic, m) = calls[c];
                        let got = run(layer, dynamic, m);
                        assert!(got == want[c], "caller {caller}, round {round}, batch {m}");
                    }
                }
            });
        }
    });
}

/// Calls made inside the caller's own pools of 1 to 3 threads: from the
/// pool's thread, and as a `par_iter` over rows whose every row is a call
/// (the wide layer's rows each split again, on the same pool).
#[test]
fn calls_inside_the_callers_rayon_pools() {
    let cases = Cases::new();
    let want = single_threaded(&cases);
    let (layer, dynamic) = &cases.wide;
    let wide_rows = pool(1).install(|| run(layer, dynamic, WIDE_ROWS));
    for threads in 1..=3 {
        let pool = pool(threads);
        pool.install(|| {
            assert_eq!(rayon::current_num_threads(), threads);
            for (c, (layer, dynamic, m)) in cases.calls().into_iter().enumerate() {
                let (p, n) = (layer.in_features(), layer.out_features());
                let splits = SPLITS && threads > 1 && (m > 3 || p == 1024);
                assert_plan(layer.kernel_name(), (m, p, n), threads, splits);
                assert_plan(dynamic.kernel_name(), (m, p, n), threads, splits);
                let ctx = format!("{threads} threads, batch {m}×{p}×{n}");
                assert!(run(layer, dynamic, m) == want[c], "{ctx}");
                assert!(run_by_rows(layer, dynamic, m) == want[c], "{ctx}, by rows");
            }
            // Rows of the wide layers, each split across the pool, from a
            // par_iter on it.
            let (layer, dynamic) = &cases.wide;
            let got = run_by_rows(layer, dynamic, WIDE_ROWS);
            assert!(got == wide_rows, "{threads} threads, {WIDE_ROWS} wide rows");
        });
    }
}

/// Rows of the wide layers called one by one from a `par_iter`.
const WIDE_ROWS: usize = 6;

/// Several plain threads enter the same pool of 2 at once, each running
/// every call there.
#[test]
fn threads_share_the_callers_pool() {
    let cases = Cases::new();
    let want = single_threaded(&cases);
    let calls = cases.calls();
    let shared = pool(2);
    std::thread::scope(|scope| {
        for caller in 0..4 {
            let (calls, want, shared) = (&calls, &want, &shared);
            scope.spawn(move || {
                shared.install(|| {
                    for (c, &(layer, dynamic, m)) in calls.iter().enumerate() {
                        let got = run(layer, dynamic, m);
                        assert!(got == want[c], "caller {caller}, batch {m}");
                    }
                })
            });
        }
    });
}
