//! Kernel exactness: every kernel this CPU runs equals the oracle
//! (`forward_reference`, the naive `i128` loop of `gemm/reference.rs`) bit
//! for bit, and `accumulate` equals an `i128` accumulator computed here:
//!
//! * on every (m, p, n) of a grid around the kernels' tiles
//!   (`grid_*`), past the A row-block boundary (`row_blocks`), on gemmlowp's
//!   odd shapes with every requantizer, bias and weight parametrisation
//!   (`gemmlowp_odd_shapes_*`), and past each kernel's `MAX_DEPTH`
//!   (`depth_past_max_depth`);
//! * on strided, transposed, negative-stride and sliced inputs, and into
//!   canary-filled outputs and output views (`strided_*`);
//! * with extreme values and zero points (`extremes_*`, `zero_points_*`);
//! * inside rayon pools of 1 to 4 threads, split by rows and by weight
//!   panels (`threads_*`).
//!
//! Shapes meant to reach a path of the driver (a second row block, a depth
//! cut into runs, a thread split) are chosen from what the crate reports
//! for this host (`qlinear::gemm::__introspect`: block sizes from its L2
//! size, its split decisions), and each such test asserts that every
//! kernel reached the path.
//!
//! Outputs are scaled from the exact accumulators so that they are spread
//! over the output type; each case asserts that enough of them lie strictly
//! inside the clamp for the comparison to mean something.
//!
//! The `memcheck_*` tests are small versions for `.ci/valgrind.sh`.

#[path = "kernels/support.rs"]
mod support;

use ndarray::{s, Array2, ArrayBase, ArrayView2, Data, Ix2, ShapeBuilder};
use qlinear::gemm::__introspect::all_kernels;
#[cfg(feature = "parallel")]
use qlinear::gemm::__introspect::{l2_bytes, Plan};
use qlinear::{
    available_kernels, ElemKind, QuantElem, QuantError, QuantRange, QuantizedLinear, Requantizer,
    Rounding,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use support::*;

const FIXED_POINT: [Requantizer; 3] = [
    Requantizer::FixedPoint(Rounding::HalfUp),
    Requantizer::FixedPoint(Rounding::Double),
    Requantizer::FixedPoint(Rounding::Single),
];

/// Every requantizer, `Float64` twice (it is the only one taking an int8
/// bias).
const REQUANTIZERS: [Requantizer; 7] = [
    Requantizer::Float64,
    Requantizer::TfliteReference,
    FIXED_POINT[0],
    Requantizer::Float64,
    FIXED_POINT[1],
    FIXED_POINT[2],
    Requantizer::Float32,
];

fn names(kernels: &[Spec]) -> Vec<&'static str> {
    kernels.iter().map(|k| k.name).collect()
}

/// Builds the layer; a fixed-point requantizer refusing a layer whose
/// accumulator could leave `i32` (checked against the bound computed here)
/// is a correct answer, after which the layer is rebuilt with `Float64`.
fn build_or_fall_back(problem: &mut Problem, ctx: &str) -> QuantizedLinear {
    match problem.build(None) {
        Ok(layer) => layer,
        Err(e) if is_justified_refusal(problem, &e) => {
            problem.config.requantizer = Requantizer::Float64;
            problem
                .build(None)
                .unwrap_or_else(|e| panic!("{ctx}: Float64 refused too: {e}"))
        }
        Err(e) => panic!("{ctx}: layer refused: {e} {}", problem.config.summary()),
    }
}

/// One problem checked on `kernels`: the oracle and the exact accumulator
/// are computed once on all of `x`, then every kernel runs on the first `m`
/// rows of `x` for every `m` in `ms` (rows are independent, so the oracle
/// of the first `m` rows is the first `m` rows of the oracle).
fn check_problem<T: QuantElem + PartialEq>(
    kernels: &[Spec],
    problem: &mut Problem,
    x: &Array2<T>,
    ms: impl Fn(&Spec) -> Vec<usize>,
    ctx: &str,
) {
    let base = build_or_fall_back(problem, ctx);
    let oracle = base.forward_reference(x).unwrap();
    let exact = problem.acc.clone();
    let summary = problem.config.summary();
    assert_meaningful(
        &oracle,
        base.output_clamp(),
        0.3,
        &format!("{ctx} {summary}"),
    );
    for k in kernels {
        let layer = base.clone().with_kernel(k.name).unwrap();
        assert_eq!(layer.kernel_name(), k.name);
        for m in ms(k) {
            let ctx = format!("{ctx} kernel={} m={m} {summary}", k.name);
            check(&layer, &top(x, m), top(&oracle, m), top(&exact, m), &ctx);
        }
    }
}

// ------------------------------------------------------------------ table

/// The kernels under test are those the crate lists, each with the
/// geometry the crate reports for it; the 7-bit kernel refuses full-range
/// layers, and every kernel takes 7-bit ones.
#[test]
fn kernel_table_matches_this_cpu() {
    let all = kernels();
    let names = names(&all);
    assert_eq!(names, available_kernels(), "fastest first");
    let compiled: Vec<&str> = all_kernels().iter().map(|k| k.name).collect();
    assert!(names.iter().all(|n| compiled.contains(n)), "{compiled:?}");
    assert!(names.contains(&"portable-i8i8i32"));
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        assert!(names.contains(&"x86_64-i8i8i32-avx2"));
        assert!(names.contains(&"x86_64-u7i8i32-avx2"));
    }
    eprintln!("kernels under test: {names:?}");
    // The 7-bit kernel refuses full-range layers instead of being inexact.
    let mut rng = StdRng::seed_from_u64(1);
    let x: Array2<i8> = random_x(&mut rng, 2, 3, QuantRange::INT8);
    let w = random_w(&mut rng, 3, 2);
    let problem = Problem::new(&mut rng, Config::plain(0), w, &x);
    for k in reduced_kernels() {
        let e = problem.build(Some(k.name)).unwrap_err();
        assert!(matches!(e, QuantError::KernelUnavailable { .. }), "{e}");
    }
    for k in &all {
        for (kind, range) in reduced_ranges() {
            let mut reduced = problem.clone();
            reduced.config.kind = kind;
            reduced.config.range = range;
            let layer = reduced.build(Some(k.name)).unwrap();
            assert_eq!(layer.kernel_name(), k.name);
        }
    }
}

/// A value outside the declared input range is refused by every kernel,
/// the 7-bit one included (it would not be exact there), and by the
/// oracle; `forward_into` then leaves its output alone.
#[test]
fn values_outside_the_declared_range_are_refused() {
    let mut rng = StdRng::seed_from_u64(2);
    for (kind, range) in reduced_ranges() {
        let config = Config {
            kind,
            range,
            ..Config::plain(range.qmin)
        };
        // The second shape is long enough for the slower kernels to split
        // across threads; the check comes before any split.
        for (m, p, n) in [(5, 9, 17), (64, 128, 160)] {
            let xi =
                Array2::from_shape_simple_fn((m, p), || value(&mut rng, range.qmin, range.qmax));
            let w = random_w(&mut rng, p, n);
            for bad in [range.qmin - 1, range.qmax + 1] {
                if bad < kind.range().qmin || bad > kind.range().qmax {
                    continue;
                }
                let mut xb = xi.clone();
                xb[[m - 1, p - 2]] = bad;
                let index = (m - 1) * p + p - 2;
                for k in kernels() {
                    let ctx = format!("{} {m}x{p}x{n} {kind:?} {range:?} value {bad}", k.name);
                    match kind {
                        ElemKind::Int8 => {
                            refused::<i8>(&mut rng, &config, &w, &xi, &xb, k, index, &ctx)
                        }
                        ElemKind::Uint8 => {
                            refused::<u8>(&mut rng, &config, &w, &xi, &xb, k, index, &ctx)
                        }
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn refused<T: QuantElem + PartialEq>(
    rng: &mut StdRng,
    config: &Config,
    w: &Array2<i8>,
    xi: &Array2<i32>,
    xb: &Array2<i32>,
    k: Spec,
    index: usize,
    ctx: &str,
) {
    let x: Array2<T> = xi.mapv(T::from_i32_clamped);
    let xb: Array2<T> = xb.mapv(T::from_i32_clamped);
    let problem = Problem::new(rng, config.clone(), w.clone(), &x);
    let layer = problem.build(Some(k.name)).unwrap();
    let is_refusal =
        |e: QuantError| matches!(e, QuantError::InputOutOfRange { index: i, .. } if i == index);
    assert!(
        is_refusal(layer.forward(&xb).unwrap_err()),
        "{ctx}: forward"
    );
    assert!(
        is_refusal(layer.accumulate(&xb).unwrap_err()),
        "{ctx}: accumulate"
    );
    assert!(
        is_refusal(layer.forward_reference(&xb).unwrap_err()),
        "{ctx}: oracle"
    );
    // Column-major input takes the strided path of the check; the index
    // reported is still the row-major one.
    let mut xb_columns = Array2::from_elem(xb.dim().f(), T::default());
    xb_columns.assign(&xb);
    assert!(
        is_refusal(layer.forward(&xb_columns).unwrap_err()),
        "{ctx}: forward, column-major"
    );
    let canary = canaries::<T>()[0];
    let mut out = Array2::from_elem((x.nrows(), problem.n()), canary);
    assert!(
        is_refusal(layer.forward_into(&xb, &mut out).unwrap_err()),
        "{ctx}: forward_into"
    );
    assert!(
        out.iter().all(|&v| v == canary),
        "{ctx}: output written on refusal"
    );
    // The same layer accepts the input without the bad value.
    assert_eq!(
        layer.forward(&x).unwrap(),
        layer.forward_reference(&x).unwrap(),
        "{ctx}"
    );
}

// ------------------------------------------------------------------ grid

/// The inner dimensions of the grid: small, around every k-group (2 and
/// 4), and around 64 and 256.
const GRID_P_SHALLOW: [usize; 22] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 15, 16, 17, 31, 32, 33, 63, 64, 65,
];
const GRID_P_DEEP: [usize; 3] = [255, 256, 257];

/// The grid's parametrisation for case number `case`: zero points at the
/// ends of their ranges and random, per-tensor and asymmetric per-channel
/// weights, no, int32 and int8 biases, and every requantizer, rotating
/// with coprime periods.
fn grid_config(
    rng: &mut StdRng,
    case: usize,
    kind: ElemKind,
    range: QuantRange,
    n: usize,
) -> Config {
    let type_range = kind.range();
    let zx = match case % 5 {
        0 => type_range.qmin,
        1 => type_range.qmax,
        2 => range.qmin,
        3 => rng.random_range(type_range.qmin..=type_range.qmax),
        _ => rng.random_range(-300..=300),
    };
    let weights = match case % 4 {
        0 => Weights::PerTensor(0),
        1 => Weights::PerTensor(if case % 8 == 1 { -128 } else { 127 }),
        2 => per_channel(rng, n),
        _ => Weights::PerTensor(rng.random_range(-128..=127)),
    };
    let requantizer = REQUANTIZERS[case % 7];
    let bias = match case % 3 {
        0 => BiasKind::None,
        1 => BiasKind::Int32,
        _ if requantizer == Requantizer::Float64 => BiasKind::Int8,
        _ => BiasKind::Int32,
    };
    Config {
        kind,
        range,
        zx,
        weights,
        bias,
        requantizer,
        clamp: None,
    }
}

/// Every (m, p, n) with m ≤ max MR + 1 and n ≤ max NR + 1 over `kernels`
/// (a superset of each kernel's own grid) and p in `ps`. Full-range
/// kernels alternate int8 and uint8 activations; the 7-bit kernel cycles
/// through 7-bit ranges of both types.
fn grid(kernels: &[Spec], ps: &[usize], seed: u64) {
    if kernels.is_empty() {
        return;
    }
    let reduced = kernels[0].reduced();
    assert!(kernels.iter().all(|k| k.reduced() == reduced));
    let max_m = kernels.iter().map(|k| k.mr + 1).max().unwrap();
    let max_n = kernels.iter().map(|k| k.nr + 1).max().unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut case = 0;
    for &p in ps {
        for n in 0..=max_n {
            case += 1;
            let (kind, range) = if reduced {
                let r = reduced_ranges();
                r[case % r.len()]
            } else if case.is_multiple_of(2) {
                (ElemKind::Int8, QuantRange::INT8)
            } else {
                (ElemKind::Uint8, QuantRange::UINT8)
            };
            let config = grid_config(&mut rng, case, kind, range, n);
            let ctx = format!("grid p={p} n={n}");
            let w = random_w(&mut rng, p, n);
            match kind {
                ElemKind::Int8 => {
                    let x: Array2<i8> = random_x(&mut rng, max_m, p, range);
                    let mut problem = Problem::new(&mut rng, config, w, &x);
                    check_problem(
                        kernels,
                        &mut problem,
                        &x,
                        |k| (0..=(k.mr + 1).min(max_m)).collect(),
                        &ctx,
                    );
                }
                ElemKind::Uint8 => {
                    let x: Array2<u8> = random_x(&mut rng, max_m, p, range);
                    let mut problem = Problem::new(&mut rng, config, w, &x);
                    check_problem(
                        kernels,
                        &mut problem,
                        &x,
                        |k| (0..=(k.mr + 1).min(max_m)).collect(),
                        &ctx,
                    );
                }
            }
        }
    }
}

#[test]
fn grid_full_range_shallow() {
    grid(&full_range_kernels(), &GRID_P_SHALLOW, 11);
}

#[test]
fn grid_full_range_deep() {
    grid(&full_range_kernels(), &GRID_P_DEEP, 12);
}

#[test]
fn grid_reduced_range() {
    let ps: Vec<usize> = GRID_P_SHALLOW.iter().chain(&GRID_P_DEEP).copied().collect();
    grid(&reduced_kernels(), &ps, 13);
}

// ------------------------------------------------------------- row blocks

/// The fewest rows that pass the first row block of every kernel in
/// `kernels` for inner dimension `p`, as the crate sizes blocks on this
/// host (from its L2 cache), preferring a count that ends each kernel's
/// last block in a partial tile.
fn rows_past_a_block(kernels: &[Spec], p: usize) -> usize {
    let most = kernels.iter().map(|k| k.block_rows(p)).max().unwrap();
    let first = most + 1;
    (first..first + 64)
        .find(|m| kernels.iter().all(|k| m % k.mr != 0))
        .unwrap_or(first)
}

/// Asserts that `m` rows of depth `p` are at least two row blocks for every
/// kernel of `kernels`, and says how many.
fn assert_crosses_a_block(kernels: &[Spec], m: usize, p: usize, ctx: &str) {
    for k in kernels {
        let rows = k.block_rows(p);
        assert!(m > rows, "{ctx}: {}: {m} rows are one block", k.name);
        eprintln!(
            "{ctx}: {}: blocks of {rows} rows, {m} rows = {} blocks, last tile {} rows",
            k.name,
            m.div_ceil(rows),
            (m - 1) % k.mr + 1,
        );
    }
}

/// Rows of packed activations are taken in blocks sized from the L2 cache
/// (`driver::block_rows`, read through the crate): at p = 6 150, just
/// enough rows to pass every kernel's first block boundary, the last block
/// ending in a partial tile where the tiles allow; 33 columns make two or
/// three panels. One 7-bit problem serves every kernel.
#[test]
fn row_blocks() {
    let all = kernels();
    let (p, n) = (6_150, 33);
    let m = rows_past_a_block(&all, p);
    assert_crosses_a_block(&all, m, p, "row blocks");
    let mut rng = StdRng::seed_from_u64(21);
    let range = QuantRange::new(-128, -1).unwrap();
    let x: Array2<i8> = random_x(&mut rng, m, p, range);
    let config = Config {
        kind: ElemKind::Int8,
        range,
        zx: -128,
        weights: per_channel(&mut rng, n),
        bias: BiasKind::Int32,
        requantizer: Requantizer::Float64,
        clamp: None,
    };
    let w = random_w(&mut rng, p, n);
    let mut problem = Problem::new(&mut rng, config, w, &x);
    check_problem(&all, &mut problem, &x, |_| vec![m], "row blocks");
}

// ------------------------------------------------------- gemmlowp's shapes

/// gemmlowp's odd test shapes, m×p×n.
const ODD_SHAPES: [(usize, usize, usize); 3] = [(37, 55, 73), (57, 87, 117), (93, 83, 73)];

/// The configurations of the odd shapes: every requantizer, per-tensor and
/// asymmetric per-channel weights, every bias kind, both activation types,
/// zero points at and beyond their limits, and an explicit clamp.
fn odd_configs(rng: &mut StdRng, n: usize, ranges: &[(ElemKind, QuantRange)]) -> Vec<Config> {
    let r = |i: usize| ranges[i % ranges.len()];
    let mk = |i: usize, zx: i32, weights: Weights, bias, requantizer| {
        let (kind, range) = r(i);
        let zx = match (kind, zx) {
            (_, i32::MIN) => range.qmin,
            (_, i32::MAX) => range.qmax,
            (ElemKind::Uint8, z) if (-128..0).contains(&z) => z + 128,
            (_, z) => z,
        };
        Config {
            kind,
            range,
            zx,
            weights,
            bias,
            requantizer,
            clamp: None,
        }
    };
    let z = rng.random_range(-128..=127);
    let zw = rng.random_range(-128..=127);
    let mut configs = vec![
        mk(
            0,
            z,
            Weights::PerTensor(zw),
            BiasKind::None,
            Requantizer::Float64,
        ),
        mk(
            1,
            i32::MIN,
            per_channel(rng, n),
            BiasKind::Int8,
            Requantizer::Float64,
        ),
        mk(
            2,
            i32::MAX,
            Weights::PerTensor(-128),
            BiasKind::Int32,
            Requantizer::TfliteReference,
        ),
        mk(
            3,
            i32::MAX,
            per_channel(rng, n),
            BiasKind::Int32,
            FIXED_POINT[0],
        ),
        mk(
            4,
            i32::MIN,
            Weights::PerTensor(127),
            BiasKind::None,
            FIXED_POINT[1],
        ),
        mk(
            5,
            -1000,
            per_channel(rng, n),
            BiasKind::Int32,
            FIXED_POINT[2],
        ),
        mk(
            6,
            1000,
            per_channel(rng, n),
            BiasKind::Int32,
            Requantizer::Float32,
        ),
        mk(
            7,
            z,
            Weights::PerTensor(0),
            BiasKind::Int32,
            Requantizer::Float64,
        ),
    ];
    // An explicit clamp that leaves most outputs inside.
    configs[7].clamp = Some(match configs[7].kind {
        ElemKind::Int8 => (-70, 90),
        ElemKind::Uint8 => (40, 220),
    });
    configs
}

fn odd_shapes(kernels: &[Spec], ranges: &[(ElemKind, QuantRange)], seed: u64) {
    if kernels.is_empty() {
        return;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    for (m, p, n) in ODD_SHAPES {
        for (c, config) in odd_configs(&mut rng, n, ranges).into_iter().enumerate() {
            let ctx = format!("odd shape {m}x{p}x{n} config {c}");
            let w = random_w(&mut rng, p, n);
            let fixed = matches!(config.requantizer, Requantizer::FixedPoint(_));
            match config.kind {
                ElemKind::Int8 => {
                    let x: Array2<i8> = random_x(&mut rng, m, p, config.range);
                    let mut problem = Problem::new(&mut rng, config, w, &x);
                    check_problem(kernels, &mut problem, &x, |_| vec![m], &ctx);
                    // These layers fit the fixed-point bound: no refusal.
                    assert!(
                        !fixed || matches!(problem.config.requantizer, Requantizer::FixedPoint(_))
                    );
                }
                ElemKind::Uint8 => {
                    let x: Array2<u8> = random_x(&mut rng, m, p, config.range);
                    let mut problem = Problem::new(&mut rng, config, w, &x);
                    check_problem(kernels, &mut problem, &x, |_| vec![m], &ctx);
                    assert!(
                        !fixed || matches!(problem.config.requantizer, Requantizer::FixedPoint(_))
                    );
                }
            }
        }
    }
}

#[test]
fn gemmlowp_odd_shapes_full_range() {
    let ranges = [
        (ElemKind::Int8, QuantRange::INT8),
        (ElemKind::Uint8, QuantRange::UINT8),
        (ElemKind::Int8, QuantRange::INT8),
    ];
    odd_shapes(&full_range_kernels(), &ranges, 31);
}

#[test]
fn gemmlowp_odd_shapes_reduced_range() {
    odd_shapes(&reduced_kernels(), &reduced_ranges(), 32);
}

// ------------------------------------------------- strided inputs, outputs

/// The ways `input_layouts` stores the same logical matrix.
const LAYOUTS: [&str; 6] = [
    "x.t() of a p×m array",
    "s![..;2, ..]",
    "s![..;-1, 1..]",
    "s![.., 1..;2]",
    "s![1.., ..;-1]",
    "column-major",
];

/// The logical m×p matrix `x` stored as the backing array of layout
/// `LAYOUTS[i]`, the rest filled with another value.
fn layout_backing<T: QuantElem>(i: usize, x: &Array2<T>) -> Array2<T> {
    let (m, p) = x.dim();
    let fill = T::from_i32_clamped(T::RANGE.qmax);
    match i {
        0 => x.t().to_owned(),
        1 => {
            let mut b = Array2::from_elem((2 * m, p), fill);
            b.slice_mut(s![..;2, ..]).assign(x);
            b
        }
        2 => {
            let mut b = Array2::from_elem((m, p + 1), fill);
            b.slice_mut(s![..;-1, 1..]).assign(x);
            b
        }
        3 => {
            let mut b = Array2::from_elem((m, 2 * p + 1), fill);
            b.slice_mut(s![.., 1..;2]).assign(x);
            b
        }
        4 => {
            let mut b = Array2::from_elem((m + 1, p), fill);
            b.slice_mut(s![1.., ..;-1]).assign(x);
            b
        }
        _ => {
            let mut b = Array2::from_elem((m, p).f(), fill);
            b.assign(x);
            b
        }
    }
}

/// The view of `layout_backing(i, x)` that is `x`.
fn layout_view<T>(i: usize, b: &Array2<T>) -> ArrayView2<'_, T> {
    match i {
        0 => b.t(),
        1 => b.slice(s![..;2, ..]),
        2 => b.slice(s![..;-1, 1..]),
        3 => b.slice(s![.., 1..;2]),
        4 => b.slice(s![1.., ..;-1]),
        _ => b.view(),
    }
}

/// `forward_into` outputs of every layout, pre-filled with each canary:
/// interior elements must equal the oracle, margins must keep the canary.
fn check_output_views<T, S>(
    layer: &QuantizedLinear,
    x: &ArrayBase<S, Ix2>,
    oracle: &Array2<T>,
    ctx: &str,
) where
    T: QuantElem + PartialEq,
    S: Data<Elem = T>,
{
    let (m, n) = oracle.dim();
    for canary in canaries::<T>() {
        // (a) standard layout.
        let mut out = Array2::from_elem((m, n), canary);
        layer.forward_into(x, &mut out).unwrap();
        assert_same(out.view(), oracle.view(), "forward_into standard", ctx);
        // (b) a view in the middle of a larger array.
        let mut big = Array2::from_elem((m + 2, n + 6), canary);
        layer
            .forward_into(x, &mut big.slice_mut(s![1..m + 1, 3..n + 3]))
            .unwrap();
        assert_same(
            big.slice(s![1..m + 1, 3..n + 3]),
            oracle.view(),
            "forward_into interior view",
            ctx,
        );
        for ((i, j), &v) in big.indexed_iter() {
            let interior = (1..m + 1).contains(&i) && (3..n + 3).contains(&j);
            assert!(
                interior || v == canary,
                "{ctx}: margin [{i}, {j}] overwritten with {v:?}"
            );
        }
        // (c) column-major.
        let mut f_out = Array2::from_elem((m, n).f(), canary);
        layer.forward_into(x, &mut f_out).unwrap();
        assert_same(
            f_out.view(),
            oracle.view(),
            "forward_into column-major",
            ctx,
        );
        // (d) transposed view with reversed rows and a column stride.
        let mut backing = Array2::from_elem((2 * n, m + 1), canary);
        let mut view = backing
            .slice_mut(s![..;2, 1..])
            .slice_move(s![.., ..;-1])
            .reversed_axes();
        layer.forward_into(x, &mut view).unwrap();
        let got = backing
            .slice(s![..;2, 1..])
            .slice_move(s![.., ..;-1])
            .reversed_axes();
        assert_same(
            got,
            oracle.view(),
            "forward_into strided transposed view",
            ctx,
        );
        for ((i, j), &v) in backing.indexed_iter() {
            let interior = i % 2 == 0 && j >= 1;
            assert!(
                interior || v == canary,
                "{ctx}: margin [{i}, {j}] overwritten with {v:?}"
            );
        }
    }
}

fn strided<T: QuantElem + PartialEq>(
    kernels: &[Spec],
    rng: &mut StdRng,
    shape: (usize, usize, usize),
    kind: ElemKind,
    range: QuantRange,
) {
    let (m, p, n) = shape;
    let x: Array2<T> = random_x(rng, m, p, range);
    let config = Config {
        kind,
        range,
        zx: range.qmax,
        weights: per_channel(rng, n),
        bias: BiasKind::Int32,
        requantizer: Requantizer::Float64,
        clamp: None,
    };
    let w = random_w(rng, p, n);
    let problem = Problem::new(rng, config, w, &x);
    let base = problem.build(None).unwrap();
    let oracle = base.forward_reference(&x).unwrap();
    let exact = problem.acc.clone();
    assert_meaningful(&oracle, base.output_clamp(), 0.3, "strided");
    for k in kernels {
        let layer = base.clone().with_kernel(k.name).unwrap();
        for (i, name) in LAYOUTS.iter().enumerate() {
            let backing = layout_backing(i, &x);
            let xv = layout_view(i, &backing);
            assert_eq!(xv, x.view(), "{name}: not the same matrix");
            let ctx = format!(
                "strided {m}x{p}x{n} kernel={} input {name} {kind:?}",
                k.name
            );
            check(&layer, &xv, oracle.view(), exact.view(), &ctx);
            check_output_views(&layer, &xv, &oracle, &ctx);
        }
    }
}

fn strided_shapes(kernels: &[Spec]) -> Vec<(usize, usize, usize)> {
    let mr = kernels.iter().map(|k| k.mr).max().unwrap_or(4);
    let nr = kernels.iter().map(|k| k.nr).max().unwrap_or(16);
    vec![(mr + 1, 9, nr + 1), (1, 13, 2 * nr + 3), (37, 55, 73)]
}

#[test]
fn strided_inputs_and_output_views_full_range() {
    let kernels = full_range_kernels();
    let mut rng = StdRng::seed_from_u64(41);
    for shape in strided_shapes(&kernels) {
        strided::<i8>(&kernels, &mut rng, shape, ElemKind::Int8, QuantRange::INT8);
        strided::<u8>(
            &kernels,
            &mut rng,
            shape,
            ElemKind::Uint8,
            QuantRange::UINT8,
        );
    }
}

#[test]
fn strided_inputs_and_output_views_reduced_range() {
    let kernels = reduced_kernels();
    if kernels.is_empty() {
        return;
    }
    let mut rng = StdRng::seed_from_u64(42);
    for shape in strided_shapes(&kernels) {
        strided::<i8>(
            &kernels,
            &mut rng,
            shape,
            ElemKind::Int8,
            QuantRange::INT8_REDUCED,
        );
        strided::<u8>(
            &kernels,
            &mut rng,
            shape,
            ElemKind::Uint8,
            QuantRange::UINT8_REDUCED,
        );
    }
}

// ---------------------------------------------------------------- extremes

/// Activation patterns over `[lo, hi]`.
fn x_patterns(
    m: usize,
    p: usize,
    lo: i32,
    hi: i32,
    rng: &mut StdRng,
) -> Vec<(&'static str, Array2<i32>)> {
    vec![
        ("all lo", Array2::from_elem((m, p), lo)),
        ("all hi", Array2::from_elem((m, p), hi)),
        (
            "checkerboard",
            Array2::from_shape_fn((m, p), |(i, k)| if (i + k) % 2 == 0 { lo } else { hi }),
        ),
        (
            "row stripes",
            Array2::from_shape_fn((m, p), |(i, _)| if i % 2 == 0 { hi } else { lo }),
        ),
        (
            "random",
            Array2::from_shape_simple_fn((m, p), || value(rng, lo, hi)),
        ),
    ]
}

/// Weight patterns over int8.
fn w_patterns(p: usize, n: usize, rng: &mut StdRng) -> Vec<(&'static str, Array2<i8>)> {
    vec![
        ("all -128", Array2::from_elem((p, n), -128)),
        ("all 127", Array2::from_elem((p, n), 127)),
        (
            "checkerboard",
            Array2::from_shape_fn((p, n), |(k, j)| if (k + j) % 2 == 0 { -128 } else { 127 }),
        ),
        ("random", random_w(rng, p, n)),
    ]
}

/// Every combination of extreme patterns and zero points on a tile-crossing
/// shape, for activations of type `T` declared within `range`.
fn extremes<T: QuantElem + PartialEq>(kernels: &[Spec], range: QuantRange, seed: u64) {
    if kernels.is_empty() {
        return;
    }
    let kind = T::KIND;
    let mut rng = StdRng::seed_from_u64(seed);
    let m = kernels.iter().map(|k| k.mr + 1).max().unwrap();
    let n = kernels.iter().map(|k| k.nr + 1).max().unwrap();
    let p = 19;
    let t = kind.range();
    let zxs = [t.qmin, t.qmax, range.qmin, range.qmax, -1000, 1000];
    let zws = [
        Weights::PerTensor(-128),
        Weights::PerTensor(127),
        Weights::PerTensor(0),
        Weights::PerTensor(-1000),
        Weights::PerChannel((0..n).map(|j| (1.5, [-128, 127, 0, 1000][j % 4])).collect()),
    ];
    let xs = x_patterns(m, p, range.qmin, range.qmax, &mut rng);
    let ws = w_patterns(p, n, &mut rng);
    let mut case = 0usize;
    for (xname, xi) in &xs {
        let x: Array2<T> = xi.mapv(T::from_i32_clamped);
        for (wname, w) in &ws {
            for &zx in &zxs {
                for zw in &zws {
                    case += 1;
                    let config = Config {
                        kind,
                        range,
                        zx,
                        weights: zw.clone(),
                        bias: if case.is_multiple_of(2) {
                            BiasKind::Int32
                        } else {
                            BiasKind::None
                        },
                        requantizer: REQUANTIZERS[case % 7],
                        clamp: None,
                    };
                    let mut problem = Problem::new(&mut rng, config, w.clone(), &x);
                    let ctx = format!("extremes x {xname}, w {wname}");
                    check_problem(kernels, &mut problem, &x, |_| vec![m, 1], &ctx);
                }
            }
        }
    }
}

#[test]
fn extremes_int8() {
    extremes::<i8>(&full_range_kernels(), QuantRange::INT8, 51);
}

#[test]
fn extremes_uint8() {
    extremes::<u8>(&full_range_kernels(), QuantRange::UINT8, 52);
}

#[test]
fn extremes_reduced_range() {
    let kernels = reduced_kernels();
    extremes::<i8>(&kernels, QuantRange::INT8_REDUCED, 53);
    extremes::<u8>(&kernels, QuantRange::UINT8_REDUCED, 54);
    extremes::<i8>(&kernels, QuantRange::new(-128, -1).unwrap(), 55);
    extremes::<u8>(&kernels, QuantRange::new(128, 255).unwrap(), 56);
}

/// Zero points at and next to the `i32` limits. A layer is accepted exactly
/// when its documented bound (12), `p·(384 + |z_X|)·(128 + max|z_W|) +
/// max|b|`, fits `i64`; accepted layers are exact.
#[test]
fn zero_points_near_i32_limits() {
    let kernels = kernels();
    let mut rng = StdRng::seed_from_u64(61);
    let m = kernels.iter().map(|k| k.mr + 1).max().unwrap();
    let n = kernels.iter().map(|k| k.nr + 1).max().unwrap();
    let zxs = [i32::MIN, i32::MIN + 1, i32::MAX - 1, i32::MAX];
    let zws = [0, -128, 127, i32::MIN, i32::MIN + 1, i32::MAX];
    let (mut accepted, mut refused) = (0, 0);
    for p in [1, 2, 3, 9] {
        for &zx in &zxs {
            for &zw in &zws {
                for bias in [BiasKind::None, BiasKind::Int32] {
                    let weights = if zw == 127 {
                        Weights::PerChannel(
                            (0..n)
                                .map(|j| (1.0, [i32::MAX, 0, -128, i32::MIN][j % 4]))
                                .collect(),
                        )
                    } else {
                        Weights::PerTensor(zw)
                    };
                    let ranges: Vec<(ElemKind, QuantRange)> = if p == 3 {
                        reduced_ranges()[..2].to_vec()
                    } else {
                        vec![
                            (ElemKind::Int8, QuantRange::INT8),
                            (ElemKind::Uint8, QuantRange::UINT8),
                        ]
                    };
                    for (kind, range) in ranges {
                        let config = Config {
                            kind,
                            range,
                            zx,
                            weights: weights.clone(),
                            bias,
                            requantizer: Requantizer::Float64,
                            clamp: None,
                        };
                        let ks: Vec<Spec> = kernels
                            .iter()
                            .copied()
                            .filter(|k| k.accepts(range))
                            .collect();
                        let ctx = format!("i32-limit zero points p={p} zx={zx} zw={zw}");
                        let w = random_w(&mut rng, p, n);
                        let ok = match kind {
                            ElemKind::Int8 => {
                                let x: Array2<i8> = random_x(&mut rng, m, p, range);
                                limit_case(&ks, &mut rng, config, w, &x, &ctx)
                            }
                            ElemKind::Uint8 => {
                                let x: Array2<u8> = random_x(&mut rng, m, p, range);
                                limit_case(&ks, &mut rng, config, w, &x, &ctx)
                            }
                        };
                        if ok {
                            accepted += 1;
                        } else {
                            refused += 1;
                        }
                    }
                }
            }
        }
    }
    eprintln!("i32-limit zero points: {accepted} layers accepted, {refused} refused");
    assert!(accepted > 100 && refused > 10);
}

fn limit_case<T: QuantElem + PartialEq>(
    kernels: &[Spec],
    rng: &mut StdRng,
    config: Config,
    w: Array2<i8>,
    x: &Array2<T>,
    ctx: &str,
) -> bool {
    let mut problem = Problem::new(rng, config, w, x);
    let zx = u128::from(problem.config.zx.unsigned_abs());
    let max_zw = problem
        .config
        .zw(problem.n())
        .iter()
        .map(|z| u128::from(z.unsigned_abs()))
        .max()
        .unwrap_or(0);
    let max_b = problem
        .bias32
        .iter()
        .map(|b| u128::from(b.unsigned_abs()))
        .max()
        .unwrap_or(0);
    let bound = problem.p() as u128 * (384 + zx) * (128 + max_zw) + max_b;
    let fits = bound <= i64::MAX as u128;
    match problem.build(None) {
        Ok(_) => assert!(fits, "{ctx}: accepted although bound {bound} > i64::MAX"),
        Err(QuantError::AccumulatorOverflow { .. }) => {
            assert!(!fits, "{ctx}: refused although bound {bound} fits i64");
            return false;
        }
        Err(e) => panic!("{ctx}: unexpected error {e}"),
    }
    check_problem(kernels, &mut problem, x, |_| vec![x.nrows()], ctx);
    true
}

// ------------------------------------------------------------ long depths

/// Inner dimensions at and past each kernel's `MAX_DEPTH`, where the driver
/// sums runs of `MAX_DEPTH` in `i64`. Rows of −128 and 127 against a column
/// of −128 make the product sum leave `i32` in every kernel's domain (x
/// stored as x, x + 128 or x + 64) unless the depth is split. Returns the
/// kernels that split some depth into runs (`Spec::splits_depth`).
fn long_depth(kernels: &[Spec], seed: u64) -> Vec<&'static str> {
    let mut split = Vec::new();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut depths: Vec<usize> = kernels.iter().map(|k| k.max_depth).collect();
    depths.sort_unstable();
    depths.dedup();
    for max_depth in depths {
        let group: Vec<Spec> = kernels
            .iter()
            .copied()
            .filter(|k| k.max_depth == max_depth)
            .collect();
        let reduced = group[0].reduced();
        assert!(group.iter().all(|k| k.reduced() == reduced));
        let range = if reduced {
            QuantRange::INT8_REDUCED
        } else {
            QuantRange::INT8
        };
        let (m, n) = if cfg!(debug_assertions) {
            (3, 3)
        } else {
            (
                group.iter().map(|k| k.mr + 1).max().unwrap(),
                group.iter().map(|k| k.nr + 1).max().unwrap(),
            )
        };
        let mut ps = vec![max_depth, max_depth + 1, max_depth + 5];
        if !cfg!(debug_assertions) {
            ps.push(2 * max_depth + 3);
        }
        for p in ps {
            let x: Array2<i8> = Array2::from_shape_fn((m, p), |(i, _)| match i % 3 {
                0 => range.qmin as i8,
                1 => range.qmax as i8,
                _ => value(&mut rng, range.qmin, range.qmax) as i8,
            });
            let w = Array2::from_shape_fn((p, n), |(_, j)| match j % 3 {
                0 => -128,
                1 => 127,
                _ => value(&mut rng, -128, 127) as i8,
            });
            // The case must need the split: some |Σ x'·w| exceeds i32.
            let shifts: Vec<i64> = group
                .iter()
                .map(|k| i64::from(k.shift(ElemKind::Int8, range)))
                .collect();
            for shift in shifts {
                let worst = (0..m)
                    .map(|i| {
                        (x.row(i).iter().zip(w.column(0)))
                            .map(|(&a, &b)| (i64::from(a) + shift) * i64::from(b))
                            .sum::<i64>()
                            .unsigned_abs()
                    })
                    .max()
                    .unwrap();
                if p > max_depth + 1 {
                    assert!(worst > i32::MAX as u64, "p={p}: no run would overflow");
                }
            }
            let config = Config {
                kind: ElemKind::Int8,
                range,
                zx: -7,
                weights: Weights::PerTensor(3),
                bias: BiasKind::Int32,
                requantizer: Requantizer::Float64,
                clamp: None,
            };
            let mut problem = Problem::new(&mut rng, config, w, &x);
            let ctx = format!("depth p={p} (MAX_DEPTH {max_depth})");
            check_problem(&group, &mut problem, &x, |_| vec![m, 1], &ctx);
            for k in &group {
                assert_eq!(k.splits_depth(p), p > max_depth, "{ctx}: {}", k.name);
                if k.splits_depth(p) {
                    split.push(k.name);
                }
            }
        }
    }
    split
}

/// Layers whose accumulator bound (12) is just within `i32`, where the
/// epilogue takes (11) in wrapping `i32`, and one step past it, where it
/// takes `i64` (and fixed point refuses), with data that reaches the
/// bound, on every requantizer and kernel. Weight and input zero points
/// make both the column and the row-sum terms large.
#[test]
fn accumulators_at_the_i32_edge() {
    let mut rng = StdRng::seed_from_u64(83);
    let (zx, zw) = (-100, 100);
    let (m, n) = (3, 3);
    let groups = [
        (full_range_kernels(), QuantRange::INT8),
        (reduced_kernels(), QuantRange::INT8_REDUCED),
    ];
    for (kernels, range) in groups {
        // max|x − z_X| = q_max + 100, max|w − z_W| = 128 + 100.
        let fast_p = i32::MAX as usize / ((range.qmax - zx) as usize * 228);
        for p in [fast_p, fast_p + 1] {
            let x = Array2::from_shape_fn((m, p), |(i, _)| match i {
                0 => range.qmax as i8,
                1 => range.qmin as i8,
                _ => value(&mut rng, range.qmin, range.qmax) as i8,
            });
            let w = Array2::from_shape_fn((p, n), |(_, j)| match j {
                0 => -128i8,
                1 => 127,
                _ => value(&mut rng, -128, 127) as i8,
            });
            for requantizer in REQUANTIZERS {
                let config = Config {
                    kind: ElemKind::Int8,
                    range,
                    zx,
                    weights: Weights::PerTensor(zw),
                    bias: BiasKind::None,
                    requantizer,
                    clamp: None,
                };
                let mut problem = Problem::new(&mut rng, config, w.clone(), &x);
                assert_eq!(problem.i32_bound() <= i32::MAX as u128, p == fast_p);
                assert_eq!(max_abs(&problem.acc), problem.i32_bound());
                let ctx = format!("i32 edge p={p}");
                check_problem(&kernels, &mut problem, &x, |_| vec![m], &ctx);
            }
        }
    }
}

#[test]
fn depth_past_max_depth() {
    let split = long_depth(&kernels(), 71);
    for k in kernels() {
        assert!(
            split.contains(&k.name),
            "{}: no depth past MAX_DEPTH",
            k.name
        );
    }
}

// ---------------------------------------------------------------- threads

/// A thread split a test is after, as the driver's [`Plan`] (read from the
/// crate) names it.
#[cfg(feature = "parallel")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    /// By rows, the weights in L2: each row task streams every panel.
    Rows,
    /// By rows, each row task cut again into panel tasks: weights beyond L2.
    RowsBeyondL2,
    /// By weight panels, the rows packed once.
    Panels,
    /// Rows or panels, depending on MR and the thread count.
    Mixed,
}

#[cfg(feature = "parallel")]
impl Split {
    fn takes(self, plan: Plan) -> bool {
        match (self, plan) {
            (_, Plan::OneThread) => false,
            (Split::Rows, Plan::Rows { panel_tasks, .. }) => panel_tasks == 1,
            (Split::RowsBeyondL2, Plan::Rows { panel_tasks, .. }) => panel_tasks > 1,
            (Split::Panels, Plan::Panels { .. }) | (Split::Mixed, _) => true,
            _ => false,
        }
    }

    /// Whether the driver splits an m×p×n product on `k` this way in every
    /// pool of 2 to 4 threads.
    fn on(self, k: &Spec, (m, p, n): (usize, usize, usize)) -> bool {
        (2..=4).all(|t| self.takes(k.plan(m, p, n, t)))
    }
}

/// The same product inside pools of 1 to 4 threads: bit-identical, and
/// equal to the oracle. Each kernel must be split as `split` says in every
/// pool of more than one thread, and not in a pool of one.
#[cfg(feature = "parallel")]
fn threads_case(kernels: &[Spec], shape: (usize, usize, usize), split: Split, seed: u64) {
    if kernels.is_empty() {
        return;
    }
    let (m, p, n) = shape;
    let reduced = kernels[0].reduced();
    let (range, kind) = if reduced {
        (QuantRange::INT8_REDUCED, ElemKind::Int8)
    } else {
        (QuantRange::INT8, ElemKind::Int8)
    };
    for k in kernels {
        let plans: Vec<Plan> = (1..=4).map(|t| k.plan(m, p, n, t)).collect();
        assert_eq!(plans[0], Plan::OneThread, "{}: split on one thread", k.name);
        assert!(
            split.on(k, shape),
            "{} {m}x{p}x{n}: not a {split:?} split: {plans:?}",
            k.name
        );
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let x: Array2<i8> = random_x(&mut rng, m, p, range);
    let config = Config {
        kind,
        range,
        zx: 17,
        weights: per_channel(&mut rng, n),
        bias: BiasKind::Int32,
        requantizer: if seed.is_multiple_of(2) {
            Requantizer::Float32
        } else {
            FIXED_POINT[0]
        },
        clamp: None,
    };
    let w = random_w(&mut rng, p, n);
    let mut problem = Problem::new(&mut rng, config, w, &x);
    let ctx = format!("threads {m}x{p}x{n} ({split:?})");
    let base = build_or_fall_back(&mut problem, &ctx);
    let oracle = base.forward_reference(&x).unwrap();
    let exact = problem.acc.clone();
    assert_meaningful(&oracle, base.output_clamp(), 0.3, &ctx);
    for k in kernels {
        let layer = base.clone().with_kernel(k.name).unwrap();
        for t in 1..=4 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap();
            let (y, acc, into) = pool.install(|| {
                assert_eq!(rayon::current_num_threads(), t);
                let mut into = Array2::from_elem((m, n), -77i8);
                layer.forward_into(&x, &mut into).unwrap();
                (
                    layer.forward(&x).unwrap(),
                    layer.accumulate(&x).unwrap(),
                    into,
                )
            });
            let ctx = format!("{ctx} kernel={} threads={t}", k.name);
            assert_same(
                y.view(),
                oracle.view(),
                "forward vs forward_reference",
                &ctx,
            );
            assert_same(
                into.view(),
                oracle.view(),
                "forward_into vs forward_reference",
                &ctx,
            );
            assert_same(acc.view(), exact.view(), "accumulate vs exact i128", &ctx);
        }
    }
}

/// Shapes long enough to split: ragged ones for every build (the later
/// ones long enough for the fastest kernels too), and round benchmark
/// shapes in release.
#[cfg(feature = "parallel")]
fn thread_shapes(split: Split) -> Vec<(usize, usize, usize)> {
    let mut shapes = match split {
        Split::Rows => vec![(65, 129, 131), (257, 67, 61), (257, 260, 150)],
        Split::Panels => vec![(2, 1027, 1009)],
        // On AMX, 30 rows are one row group, cut into row tasks of 10–15.
        _ => vec![(24, 512, 129), (96, 700, 150), (30, 600, 600)],
    };
    if !cfg!(debug_assertions) {
        shapes.push(match split {
            Split::Rows => (64, 512, 512),
            Split::Panels => (2, 4096, 1024),
            _ => (67, 509, 515),
        });
    }
    shapes
}

/// `threads_case` on every shape of `split`, each with the kernels that the
/// driver splits that way on it; every kernel must have run on some shape.
/// Seeds: `seed + i` for full-range kernels on the i-th shape, `seed + 10
/// + i` for the 7-bit one.
#[cfg(feature = "parallel")]
fn split_cases(split: Split, seed: u64) {
    let mut covered = std::collections::HashSet::new();
    for (i, shape) in thread_shapes(split).into_iter().enumerate() {
        let pick = |ks: Vec<Spec>| -> Vec<Spec> {
            ks.into_iter().filter(|k| split.on(k, shape)).collect()
        };
        let (full, reduced) = (pick(full_range_kernels()), pick(reduced_kernels()));
        covered.extend(full.iter().chain(&reduced).map(|k| k.name));
        threads_case(&full, shape, split, seed + i as u64);
        threads_case(&reduced, shape, split, seed + 10 + i as u64);
    }
    for k in kernels() {
        assert!(covered.contains(k.name), "{}: no {split:?} shape", k.name);
    }
}

#[cfg(feature = "parallel")]
#[test]
fn threads_row_split() {
    split_cases(Split::Rows, 80);
}

/// Weights just past a core's L2 (as the crate reads its size): each row
/// task is split again into panel tasks. Release only, for the oracle's
/// sake.
#[cfg(feature = "parallel")]
#[test]
fn threads_row_split_beyond_l2() {
    if cfg!(debug_assertions) {
        return;
    }
    let (m, p) = (256, 2048);
    let n = l2_bytes() / p + 33;
    let shape = (m, p, n);
    eprintln!("beyond L2: {m}x{p}x{n}, L2 {} KiB", l2_bytes() / 1024);
    for k in kernels() {
        assert!(Split::RowsBeyondL2.on(&k, shape), "{}: {shape:?}", k.name);
    }
    threads_case(&full_range_kernels(), shape, Split::RowsBeyondL2, 140);
    threads_case(&reduced_kernels(), shape, Split::RowsBeyondL2, 141);
}

#[cfg(feature = "parallel")]
#[test]
fn threads_panel_split() {
    split_cases(Split::Panels, 101);
}

/// 24, 30 and 96 rows: depending on MR and the thread count, rows or
/// panels.
#[cfg(feature = "parallel")]
#[test]
fn threads_mixed_split() {
    split_cases(Split::Mixed, 120);
}

// ---------------------------------------------------------------- memcheck
//
// Small versions of the tests above, for `.ci/valgrind.sh` (a release
// build under memcheck, where only the kernels valgrind can emulate are
// listed). The tests above cover the same ground, so debug runs skip them.

/// Kernel families and the activations they get: full-range kernels with
/// int8 and uint8 at their full ranges, the 7-bit kernel with 7-bit ranges.
fn memcheck_families() -> Vec<(Vec<Spec>, ElemKind, QuantRange)> {
    let full = full_range_kernels();
    let reduced = reduced_kernels();
    let mut families = vec![
        (full.clone(), ElemKind::Int8, QuantRange::INT8),
        (full, ElemKind::Uint8, QuantRange::UINT8),
    ];
    if !reduced.is_empty() {
        families.push((reduced.clone(), ElemKind::Int8, QuantRange::INT8_REDUCED));
        families.push((reduced, ElemKind::Uint8, QuantRange::new(128, 255).unwrap()));
    }
    families
}

/// An m×p×n problem with asymmetric per-channel weights and an int32 bias,
/// checked on `ks` for every m in `ms`.
fn memcheck_case(
    rng: &mut StdRng,
    ks: &[Spec],
    (kind, range): (ElemKind, QuantRange),
    (m, p, n): (usize, usize, usize),
    ms: &[usize],
    ctx: &str,
) {
    let config = Config {
        kind,
        range,
        zx: if p.is_multiple_of(2) {
            range.qmin
        } else {
            range.qmax
        },
        weights: per_channel(rng, n),
        bias: BiasKind::Int32,
        requantizer: REQUANTIZERS[p % 7],
        clamp: None,
    };
    let w = random_w(rng, p, n);
    let ms = |_: &Spec| ms.to_vec();
    match kind {
        ElemKind::Int8 => {
            let x: Array2<i8> = random_x(rng, m, p, range);
            let mut problem = Problem::new(rng, config, w, &x);
            check_problem(ks, &mut problem, &x, ms, ctx);
        }
        ElemKind::Uint8 => {
            let x: Array2<u8> = random_x(rng, m, p, range);
            let mut problem = Problem::new(rng, config, w, &x);
            check_problem(ks, &mut problem, &x, ms, ctx);
        }
    }
}

/// Prints the kernels the memcheck run covers (valgrind hides the CPUID
/// bits of instructions it cannot emulate, so fewer than natively).
#[test]
fn memcheck_kernels_covered() {
    let names = names(&kernels());
    eprintln!("memcheck kernels: {}", names.join(" "));
    assert!(names.contains(&"portable-i8i8i32"));
}

/// Tiles at their edges for every kernel: m up to MR + 1, n around NR and
/// 2·NR, p around the k-group.
#[cfg_attr(debug_assertions, ignore = "small version for .ci/valgrind.sh")]
#[test]
fn memcheck_tile_edges() {
    let mut rng = StdRng::seed_from_u64(201);
    for (ks, kind, range) in memcheck_families() {
        let max_m = ks.iter().map(|k| k.mr + 1).max().unwrap();
        let ms: Vec<usize> = (0..=max_m).collect();
        for p in [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 65, 257] {
            for n in [0, 1, 15, 16, 17, 31, 32, 33, 65] {
                let ctx = format!("memcheck tiles p={p} n={n}");
                memcheck_case(&mut rng, &ks, (kind, range), (max_m, p, n), &ms, &ctx);
            }
        }
    }
}

/// gemmlowp's first odd shape with every requantizer.
#[cfg_attr(debug_assertions, ignore = "small version for .ci/valgrind.sh")]
#[test]
fn memcheck_odd_shape() {
    let mut rng = StdRng::seed_from_u64(206);
    let (m, p, n) = ODD_SHAPES[0];
    for (ks, kind, range) in memcheck_families() {
        for config in odd_configs(&mut rng, n, &[(kind, range)]) {
            let w = random_w(&mut rng, p, n);
            let ctx = "memcheck odd shape";
            match kind {
                ElemKind::Int8 => {
                    let x: Array2<i8> = random_x(&mut rng, m, p, range);
                    let mut problem = Problem::new(&mut rng, config, w, &x);
                    check_problem(&ks, &mut problem, &x, |_| vec![m], ctx);
                }
                ElemKind::Uint8 => {
                    let x: Array2<u8> = random_x(&mut rng, m, p, range);
                    let mut problem = Problem::new(&mut rng, config, w, &x);
                    check_problem(&ks, &mut problem, &x, |_| vec![m], ctx);
                }
            }
        }
    }
}

/// Strided, transposed and reversed inputs; output views.
#[cfg_attr(debug_assertions, ignore = "small version for .ci/valgrind.sh")]
#[test]
fn memcheck_strided() {
    let mut rng = StdRng::seed_from_u64(202);
    for (ks, kind, range) in memcheck_families() {
        let shape = (ks[0].mr + 1, 7, ks[0].nr + 1);
        match kind {
            ElemKind::Int8 => strided::<i8>(&ks, &mut rng, shape, kind, range),
            ElemKind::Uint8 => strided::<u8>(&ks, &mut rng, shape, kind, range),
        }
    }
}

/// The depth split past each kernel's `MAX_DEPTH`.
#[cfg_attr(debug_assertions, ignore = "small version for .ci/valgrind.sh")]
#[test]
fn memcheck_depth_split() {
    let mut rng = StdRng::seed_from_u64(203);
    for (ks, kind, range) in memcheck_families() {
        if kind == ElemKind::Uint8 {
            continue;
        }
        for k in ks {
            let p = k.max_depth + k.kg + 1;
            assert!(k.splits_depth(p), "{}: p={p} is one run", k.name);
            let ctx = format!("memcheck depth {}", k.name);
            memcheck_case(&mut rng, &[k], (kind, range), (2, p, 2), &[2, 1], &ctx);
        }
    }
}

/// Row blocks: at p = 24 577, just enough rows to pass every kernel's
/// first block (a few rows: under valgrind the crate reads the L2 size of
/// valgrind's emulated CPU, and sizes its blocks from that).
#[cfg_attr(debug_assertions, ignore = "small version for .ci/valgrind.sh")]
#[test]
fn memcheck_row_blocks() {
    let mut rng = StdRng::seed_from_u64(204);
    let all = kernels();
    let (p, n) = (24_577, 17);
    let m = rows_past_a_block(&all, p);
    assert_crosses_a_block(&all, m, p, "memcheck row blocks");
    let range = (ElemKind::Int8, QuantRange::new(-128, -1).unwrap());
    memcheck_case(
        &mut rng,
        &all,
        range,
        (m, p, n),
        &[m],
        "memcheck row blocks",
    );
}

/// Both thread splits, in a pool of 2 threads: each kernel on the first
/// shape the driver splits as asked (the first ones for the kernels
/// valgrind runs, the later ones for the faster kernels of native runs).
#[cfg(feature = "parallel")]
#[cfg_attr(debug_assertions, ignore = "small version for .ci/valgrind.sh")]
#[test]
fn memcheck_threads() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let cases = [
        (
            Split::Rows,
            vec![(36, 128, 240), (64, 256, 240), (96, 512, 240)],
        ),
        (Split::Panels, vec![(2, 1025, 513), (2, 1025, 1025)]),
    ];
    let mut rng = StdRng::seed_from_u64(205);
    for (ks, kind, range) in memcheck_families() {
        for (split, shapes) in &cases {
            let mut left = ks.clone();
            for &(m, p, n) in shapes {
                let (now, later): (Vec<Spec>, Vec<Spec>) = left
                    .into_iter()
                    .partition(|k| split.takes(k.plan(m, p, n, 2)));
                left = later;
                if now.is_empty() {
                    continue;
                }
                eprintln!("memcheck threads {split:?} {m}x{p}x{n}: {:?}", names(&now));
                pool.install(|| {
                    memcheck_case(
                        &mut rng,
                        &now,
                        (kind, range),
                        (m, p, n),
                        &[m],
                        "memcheck threads",
                    )
                });
            }
            assert!(left.is_empty(), "no {split:?} shape for {:?}", names(&left));
        }
    }
}
