//! Calibration observers on known distributions, against min/max on data
//! with outliers, and on every edge case of `src/observer/mod.rs`.
//!
//! SQNR comparisons quantize the whole data set with each observer's
//! parameters (`Scheme::Affine`, `QuantRange::INT8`), dequantize, and measure
//! (13) against the original, outliers included. Run with `--nocapture` to
//! see the numbers.

use ndarray::{s, Array1, Array2, Axis};
use qlinear::observer::{Histogram, MAX_BINS};
use qlinear::{
    dequantize, quantize, quantize_as, sqnr_db, HistogramObserver, MinMaxObserver,
    MovingAverageMinMaxObserver, Observer, PerChannelMinMaxObserver, PercentileObserver,
    QuantError, QuantParams, QuantRange, Scheme,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// `n` standard normal samples by the Box–Muller transform.
fn gaussian(rng: &mut StdRng, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
        let u2 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        out.push((r * t.cos()) as f32);
        out.push((r * t.sin()) as f32);
    }
    out.truncate(n);
    out
}

fn uniform(rng: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// `n` N(0, 1) samples and `outliers` values alternating +50, −50, shuffled
/// in at random positions.
fn gaussian_with_outliers(seed: u64, n: usize, outliers: usize) -> Array1<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut x = gaussian(&mut rng, n);
    for k in 0..outliers {
        let v = if k % 2 == 0 { 50.0 } else { -50.0 };
        let at = rng.random_range(0..=x.len());
        x.insert(at, v);
    }
    Array1::from(x)
}

/// SQNR (13) of `x` quantized with `o`'s affine int8 parameters.
fn sqnr(o: &impl Observer, x: &Array1<f32>) -> f64 {
    let p = o.params(Scheme::Affine, QuantRange::INT8).unwrap();
    sqnr_db(x, &dequantize(&quantize(x, p), p)).unwrap()
}

/// SQNR of min/max, histogram and percentile (0.01, 99.99) on `x`, all fed
/// in batches of 10 000; prints the ranges and the SQNRs, and returns the
/// SQNRs and the histogram's range.
fn compare(label: &str, x: &Array1<f32>) -> (f64, f64, f64, (f64, f64)) {
    let mut minmax = MinMaxObserver::new();
    let mut hist = HistogramObserver::new();
    let mut pct = PercentileObserver::new(0.01, 99.99).unwrap();
    for batch in x.axis_chunks_iter(Axis(0), 10_000) {
        minmax.observe(&batch);
        hist.observe(&batch);
        pct.observe(&batch);
    }
    let db = (sqnr(&minmax, x), sqnr(&hist, x), sqnr(&pct, x));
    let r = |o: &dyn Observer| {
        let (lo, hi) = o.range().unwrap();
        format!("[{lo:.3}, {hi:.3}]")
    };
    println!(
        "{label}\n  min/max    {:>18}  SQNR {:.2} dB\n  histogram  {:>18}  SQNR {:.2} dB\n  \
         percentile {:>18}  SQNR {:.2} dB",
        r(&minmax),
        db.0,
        r(&hist),
        db.1,
        r(&pct),
        db.2
    );
    (db.0, db.1, db.2, hist.range().unwrap())
}

fn exact_min_max(values: impl IntoIterator<Item = f32>) -> (f64, f64) {
    values.into_iter().fold((f64::MAX, f64::MIN), |(a, b), v| {
        (a.min(f64::from(v)), b.max(f64::from(v)))
    })
}

// ---------------------------------------------------------------- known data

#[test]
fn min_max_of_uniform_batches_is_the_exact_extremes() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut o = MinMaxObserver::new();
    let mut all = Vec::new();
    for _ in 0..10 {
        let batch = uniform(&mut rng, 5_000, -3.0, 7.0);
        o.observe(&Array1::from(batch.clone()));
        all.extend(batch);
    }
    let (lo, hi) = o.range().unwrap();
    assert_eq!((lo, hi), exact_min_max(all));
    assert!(
        (-3.0..-2.99).contains(&lo) && (6.99..7.0).contains(&hi),
        "{lo} {hi}"
    );
    assert_eq!((o.count(), o.skipped()), (50_000, 0));
    let p = o.params(Scheme::Affine, QuantRange::INT8).unwrap();
    assert_eq!(p, QuantParams::affine(lo, hi, QuantRange::INT8).unwrap());
}

#[test]
fn moving_average_follows_31_and_converges() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut o = MovingAverageMinMaxObserver::new();
    assert_eq!(o.averaging_constant(), 0.01);
    o.observe(&Array1::from(vec![0.0f32, 10.0]));
    assert_eq!(o.range().unwrap(), (0.0, 10.0)); // the first batch sets it
                                                 // Every later batch spans exactly [−1, 1].
    let (mut min, mut max) = (0.0f64, 10.0f64);
    for k in 0..1000 {
        let mut batch = uniform(&mut rng, 64, -1.0, 1.0);
        batch[k % 64] = -1.0;
        batch[(k + 7) % 64] = 1.0;
        o.observe(&Array1::from(batch));
        min = (1.0 - 0.01) * min - 0.01;
        max = (1.0 - 0.01) * max + 0.01;
        if k < 3 {
            assert_eq!(o.range().unwrap(), (min, max), "batch {k}");
        }
    }
    let (lo, hi) = o.range().unwrap();
    // 0.99^1000 ≈ 4.3e-5 of the initial gap remains.
    assert!(
        (lo + 1.0).abs() < 1e-4 && (hi - 1.0).abs() < 1e-3,
        "{lo} {hi}"
    );
    assert!((lo - min).abs() < 1e-12 && (hi - max).abs() < 1e-12);

    // c = 1 keeps the last batch only, c = 0 the first.
    let mut last = MovingAverageMinMaxObserver::with_averaging_constant(1.0).unwrap();
    let mut first = MovingAverageMinMaxObserver::with_averaging_constant(0.0).unwrap();
    for batch in [[-5.0f32, 5.0], [-1.0, 2.0]] {
        last.observe(&Array1::from(batch.to_vec()));
        first.observe(&Array1::from(batch.to_vec()));
    }
    assert_eq!(last.range().unwrap(), (-1.0, 2.0));
    assert_eq!(first.range().unwrap(), (-5.0, 5.0));
    // Even after a batch far larger than the next one, where
    // old + c·(new − old) cancels (1e38 + (5 − 1e38) = 0 < 5).
    let mut last = MovingAverageMinMaxObserver::with_averaging_constant(1.0).unwrap();
    last.observe(&Array1::from(vec![0.0f32, 1e38]));
    last.observe(&Array1::from(vec![5.0f32]));
    assert_eq!(last.range().unwrap(), (5.0, 5.0));
}

#[test]
fn moving_averages_never_invert_the_range() {
    let mut rng = StdRng::seed_from_u64(31);
    for c in [1.0, 0.9, 0.5, 0.01, 1e-9] {
        let mut o = MovingAverageMinMaxObserver::with_averaging_constant(c).unwrap();
        let mut pc = PerChannelMinMaxObserver::new()
            .with_averaging_constant(c)
            .unwrap();
        for _ in 0..2000 {
            // Batches of wildly different magnitudes, some of one value.
            let scale = 10f32.powi(rng.random_range(-30..=38));
            let a = rng.random_range(-1.0f32..1.0) * scale;
            let b = if rng.random_bool(0.3) {
                a
            } else {
                rng.random_range(-1.0f32..1.0) * scale
            };
            o.observe(&Array1::from(vec![a, b]));
            pc.observe(&Array2::from_shape_vec((2, 1), vec![a, b]).unwrap())
                .unwrap();
            let (lo, hi) = o.range().unwrap();
            assert!(lo <= hi, "c = {c}: [{lo}, {hi}]");
            let (lo, hi) = pc.ranges().unwrap()[0];
            assert!(lo <= hi, "per channel, c = {c}: [{lo}, {hi}]");
        }
    }
}

#[test]
fn moving_average_damps_a_single_extreme_batch() {
    let mut o = MovingAverageMinMaxObserver::new();
    let mut m = MinMaxObserver::new();
    for k in 0..100 {
        let batch = if k == 50 {
            vec![-100.0f32, 100.0]
        } else {
            vec![-1.0, 1.0]
        };
        o.observe(&Array1::from(batch.clone()));
        m.observe(&Array1::from(batch));
    }
    assert_eq!(m.range().unwrap(), (-100.0, 100.0));
    let (lo, hi) = o.range().unwrap();
    assert!(lo > -2.0 && hi < 2.0, "{lo} {hi}");
}

/// A 257×6 matrix whose columns span very different ranges (from ~1e-3 to
/// ~1e3, some one-sided).
fn wide_columns(rng: &mut StdRng) -> Array2<f32> {
    let spans = [1e-3f32, 0.5, 3.0, 40.0, 1e3, 7.0];
    let shifts = [0.0f32, 0.5, -3.0, 0.0, 2e3, -20.0];
    Array2::from_shape_fn((257, 6), |(_, j)| {
        shifts[j] + spans[j] * rng.random_range(-1.0f32..1.0)
    })
}

#[test]
fn per_channel_ranges_are_the_exact_column_extremes() {
    let mut rng = StdRng::seed_from_u64(3);
    let w = wide_columns(&mut rng);
    let mut o = PerChannelMinMaxObserver::new();
    assert_eq!(o.axis(), Axis(1));
    // In three batches of rows.
    for rows in [s![..100, ..], s![100..101, ..], s![101.., ..]] {
        o.observe(&w.slice(rows)).unwrap();
    }
    let want: Vec<(f64, f64)> = w
        .columns()
        .into_iter()
        .map(|c| exact_min_max(c.iter().copied()))
        .collect();
    assert_eq!(o.ranges().unwrap(), want);
    assert_eq!(o.channels(), Some(6));
    assert_eq!(o.count(), 257 * 6);

    for scheme in [Scheme::Affine, Scheme::Symmetric, Scheme::Notebook] {
        let p = o.params(scheme, QuantRange::INT8_NARROW).unwrap();
        let expected: Vec<QuantParams> = want
            .iter()
            .map(|&(lo, hi)| scheme.params(lo, hi, QuantRange::INT8_NARROW).unwrap())
            .collect();
        assert_eq!(p, expected, "{scheme:?}");
    }

    // The same weights in PyTorch's out × in layout, channels along axis 0.
    let mut rows = PerChannelMinMaxObserver::with_axis(Axis(0)).unwrap();
    rows.observe(&w.t()).unwrap();
    assert_eq!(rows.ranges().unwrap(), want);

    // One observer per column agrees too.
    for (j, c) in w.columns().into_iter().enumerate() {
        let mut m = MinMaxObserver::new();
        m.observe(&c);
        assert_eq!(m.range().unwrap(), want[j]);
    }
}

#[test]
fn per_channel_moving_average_and_channel_count_mismatch() {
    let mut o = PerChannelMinMaxObserver::new()
        .with_averaging_constant(0.5)
        .unwrap();
    o.observe(&ndarray::array![[0.0f32, -4.0], [2.0, 4.0]])
        .unwrap();
    o.observe(&ndarray::array![[-2.0f32, 0.0], [0.0, 0.0]])
        .unwrap();
    assert_eq!(o.ranges().unwrap(), vec![(-1.0, 1.0), (-2.0, 2.0)]);

    let before = o.clone();
    let err = o.observe(&Array2::<f32>::ones((2, 3))).unwrap_err();
    assert!(matches!(
        err,
        QuantError::LengthMismatch {
            expected: 2,
            found: 3,
            ..
        }
    ));
    assert_eq!(o, before, "a refused batch records nothing");
}

// ------------------------------------------------------- histogram vs min/max

/// The end `R = A/(1 + n/(k·3·255²))` that (35) predicts for `k` outliers
/// at `±A` beside `n` values of a narrow bulk (`HistogramObserver` docs).
fn predicted_end(a: f64, n: f64, k: f64) -> f64 {
    a / (1.0 + n / (k * 3.0 * 255.0 * 255.0))
}

#[test]
fn histogram_and_percentile_beat_min_max_on_gaussian_with_rare_outliers() {
    // 10⁶ N(0, 1) samples and two outliers, at +50 and −50: one in 500 000,
    // rarer than one in ≈195 000, so (36) pulls the ends in more than half
    // way, to ≈14; the percentiles clip the outliers altogether.
    let x = gaussian_with_outliers(4, 1_000_000, 2);
    let label = "10^6 N(0,1) + outliers at +50 and -50:";
    let (minmax, hist, pct, (lo, hi)) = compare(label, &x);
    assert!(hist > minmax + 3.0, "{hist} vs {minmax}");
    assert!(pct > minmax + 3.0, "{pct} vs {minmax}");
    assert!(hist >= pct, "(36) minimises the error: {hist} vs {pct}");
    let r = predicted_end(50.0, 1e6, 2.0);
    assert!(
        (lo + r).abs() < 1.0 && (hi - r).abs() < 1.0,
        "{lo} {hi} vs ±{r}"
    );
}

#[test]
fn histogram_keeps_outliers_that_are_not_rare_enough_to_clip() {
    // 10⁵ N(0, 1) samples and six outliers at ±50: one in 17 000. Keeping
    // them costs every value a coarser step, clipping costs each the square
    // of its move; here (36) pulls the ends in only to ≈46, close to
    // min/max, and cannot lose to it. The percentile range clips the
    // outliers to ≈±3.8 regardless and pays for it.
    let x = gaussian_with_outliers(5, 100_000, 6);
    let label = "10^5 N(0,1) + 3 outliers at +50 and 3 at -50:";
    let (minmax, hist, pct, (lo, hi)) = compare(label, &x);
    assert!(hist > minmax - 0.5, "{hist} vs {minmax}");
    assert!(pct < minmax, "{pct} vs {minmax}");
    let r = predicted_end(50.0, 1e5, 6.0);
    assert!(
        (lo + r).abs() < 1.0 && (hi - r).abs() < 1.0,
        "{lo} {hi} vs ±{r}"
    );
}

#[test]
fn histogram_is_not_worse_than_min_max_without_outliers() {
    let mut rng = StdRng::seed_from_u64(6);
    let x = Array1::from(uniform(&mut rng, 200_000, -2.0, 3.0));
    let (minmax, hist, pct, _) = compare("2·10^5 U(-2, 3):", &x);
    assert!(hist > minmax - 0.5, "{hist} vs {minmax}");
    assert!(pct > minmax - 0.5, "{pct} vs {minmax}");

    let x = Array1::from(gaussian(&mut rng, 200_000));
    let (minmax, hist, pct, _) = compare("2·10^5 N(0, 1):", &x);
    assert!(hist > minmax - 0.5, "{hist} vs {minmax}");
    assert!(pct > minmax - 0.5, "{pct} vs {minmax}");
}

#[test]
fn histogram_search_uses_the_target_number_of_levels() {
    // Fewer levels make the step coarser, so clipping pays sooner: the
    // range for 7 bits is no wider than for 8.
    let x = gaussian_with_outliers(7, 200_000, 0);
    let mut o = HistogramObserver::new();
    o.observe(&x);
    let (lo8, hi8) = o.range_for(QuantRange::INT8).unwrap();
    let (lo7, hi7) = o.range_for(QuantRange::INT8_REDUCED).unwrap();
    assert!(lo7 >= lo8 && hi7 <= hi8 && hi7 - lo7 < hi8 - lo8);
    assert_eq!(o.range().unwrap(), (lo8, hi8));
    assert_eq!(o.range_for(QuantRange::UINT8).unwrap(), (lo8, hi8));
    let p = o.params(Scheme::Affine, QuantRange::INT8_REDUCED).unwrap();
    assert_eq!(
        p,
        QuantParams::affine(lo7, hi7, QuantRange::INT8_REDUCED).unwrap()
    );
    assert!(matches!(
        o.range_for(QuantRange { qmin: 3, qmax: 3 }),
        Err(QuantError::InvalidTargetRange { .. })
    ));
}

#[test]
fn growing_the_histogram_batch_by_batch_matches_one_batch() {
    // Batches of ever wider spread re-bin the histogram nine times.
    let mut rng = StdRng::seed_from_u64(8);
    let base = gaussian(&mut rng, 100_000);
    let batches: Vec<Array1<f32>> = base
        .chunks(10_000)
        .enumerate()
        .map(|(k, c)| Array1::from_iter(c.iter().map(|v| v * (1.0 + k as f32) / 10.0)))
        .collect();
    let mut grown = HistogramObserver::new();
    let mut at_once = HistogramObserver::new();
    let mut all = Vec::new();
    for b in &batches {
        grown.observe(b);
        all.extend(b.iter().copied());
    }
    at_once.observe(&Array1::from(all));
    let (g, o) = (grown.histogram(), at_once.histogram());
    assert_eq!(g.bounds(), o.bounds());
    assert_eq!(g.total(), 100_000);
    let sum: f64 = g.counts().iter().sum();
    assert!((sum - 100_000.0).abs() < 1e-6, "{sum}");
    let (g_lo, g_hi) = grown.range().unwrap();
    let (o_lo, o_hi) = at_once.range().unwrap();
    let w = g.bin_width();
    assert!(
        (g_lo - o_lo).abs() <= 2.0 * w && (g_hi - o_hi).abs() <= 2.0 * w,
        "{g_lo} {g_hi} vs {o_lo} {o_hi}, bin {w}"
    );
}

#[test]
fn percentiles_0_and_100_are_min_and_max() {
    let mut rng = StdRng::seed_from_u64(9);
    let x = Array1::from(gaussian(&mut rng, 10_000));
    let mut p = PercentileObserver::new(0.0, 100.0)
        .unwrap()
        .with_bins(64)
        .unwrap();
    let mut m = MinMaxObserver::new();
    p.observe(&x);
    m.observe(&x);
    assert_eq!(p.range().unwrap(), m.range().unwrap());
    assert_eq!(p.histogram().bins(), 64);

    // The median of a symmetric sample is near 0, and the quartiles of
    // N(0, 1) are ±0.674.
    let mut q = PercentileObserver::new(25.0, 75.0).unwrap();
    q.observe(&x);
    let (lo, hi) = q.range().unwrap();
    assert!(
        (lo + 0.674).abs() < 0.03 && (hi - 0.674).abs() < 0.03,
        "{lo} {hi}"
    );
}

// ----------------------------------------------------------------- edge cases

/// One fresh observer of every kind, with the name its errors carry.
fn every_observer() -> Vec<(&'static str, Box<dyn Observer>)> {
    vec![
        ("MinMaxObserver", Box::new(MinMaxObserver::new())),
        (
            "MovingAverageMinMaxObserver",
            Box::new(MovingAverageMinMaxObserver::new()),
        ),
        ("HistogramObserver", Box::new(HistogramObserver::new())),
        (
            "PercentileObserver",
            Box::new(PercentileObserver::new(0.01, 99.99).unwrap()),
        ),
    ]
}

fn nothing_observed(r: Result<impl std::fmt::Debug, QuantError>, name: &str) {
    match r {
        Err(QuantError::NothingObserved { observer }) => assert_eq!(observer, name),
        other => panic!("{name}: expected NothingObserved, got {other:?}"),
    }
}

#[test]
fn nothing_observed_empty_batches_and_only_nan_batches() {
    for (name, mut o) in every_observer() {
        nothing_observed(o.range(), name);
        nothing_observed(o.params(Scheme::Affine, QuantRange::INT8), name);
        o.observe_slice(&[]);
        nothing_observed(o.range(), name);
        o.observe_slice(&[f32::NAN; 5]);
        nothing_observed(o.range(), name);
        o.observe_slice(&[f32::INFINITY, f32::NEG_INFINITY]);
        nothing_observed(o.range(), name);
        assert_eq!((o.count(), o.skipped()), (0, 7), "{name}");
        let msg = o.range().unwrap_err().to_string();
        assert!(msg.contains(name) && msg.contains("observe"), "{msg}");
    }
}

#[test]
fn non_finite_values_are_skipped_counted_and_never_poison_the_range() {
    for (name, mut o) in every_observer() {
        o.observe_slice(&[1.0, f32::NAN, f32::INFINITY, -2.0, f32::NEG_INFINITY]);
        o.observe_slice(&[f32::NAN]); // an all-NaN batch is a no-op
        o.observe_slice(&[0.5, f32::NAN]);
        assert_eq!((o.count(), o.skipped()), (3, 5), "{name}");
        let (lo, hi) = o.range().unwrap();
        assert!(lo.is_finite() && hi.is_finite(), "{name}");
        assert!((-2.0..=1.0).contains(&lo) && (-2.0..=1.0).contains(&hi) && lo <= hi);
        assert!(o.params(Scheme::Affine, QuantRange::INT8).is_ok(), "{name}");
    }
    let mut m = MinMaxObserver::new();
    m.observe_slice(&[f32::NAN, 3.0, f32::NEG_INFINITY, -1.0]);
    assert_eq!(m.range().unwrap(), (-1.0, 3.0));
}

#[test]
fn an_all_nan_batch_does_not_count_as_the_first_moving_average_batch() {
    let mut o = MovingAverageMinMaxObserver::new();
    o.observe_slice(&[f32::NAN, f32::NAN]);
    o.observe_slice(&[-3.0, 3.0]);
    assert_eq!(o.range().unwrap(), (-3.0, 3.0));
    assert_eq!(o.skipped(), 2);
}

#[test]
fn constant_data_is_exact_and_all_zeros_give_scale_1_zero_point_0() {
    for value in [0.0f32, 2.5, -7.0, 0.3] {
        for (name, mut o) in every_observer() {
            o.observe_slice(&[value; 100]);
            o.observe_slice(&[value; 3]);
            let (lo, hi) = o.range().unwrap();
            assert_eq!((lo, hi), (f64::from(value), f64::from(value)), "{name}");
            for scheme in [Scheme::Notebook, Scheme::Affine, Scheme::Symmetric] {
                for target in [QuantRange::INT8, QuantRange::UINT8] {
                    let p = o.params(scheme, target).unwrap();
                    if value == 0.0 {
                        assert_eq!((p.scale, p.zero_point), (1.0, 0), "{name}");
                    }
                    // The constant is an end of the range widened to include
                    // 0, so it survives a round trip (to f32 rounding); the
                    // symmetric int8 scale (max/127.5) may clip it by half a
                    // step, as in PyTorch.
                    let x = ndarray::array![value];
                    let back = if target == QuantRange::INT8 {
                        dequantize(&quantize_as::<i8, _, _>(&x, p, target).unwrap(), p)[0]
                    } else {
                        dequantize(&quantize_as::<u8, _, _>(&x, p, target).unwrap(), p)[0]
                    };
                    let tolerance = if scheme == Scheme::Symmetric {
                        p.scale as f32 / 2.0 * 1.0001
                    } else {
                        1e-6 * value.abs()
                    };
                    assert!(
                        (back - value).abs() <= tolerance,
                        "{name} {scheme:?} {target:?} {value}: {back}"
                    );
                }
            }
        }
    }
    let mut pc = PerChannelMinMaxObserver::new();
    pc.observe(&Array2::<f32>::zeros((4, 3))).unwrap();
    for p in pc.params(Scheme::Affine, QuantRange::INT8).unwrap() {
        assert_eq!((p.scale, p.zero_point), (1.0, 0));
    }
}

#[test]
fn one_sided_data_is_widened_to_include_zero_by_the_affine_scheme() {
    let mut rng = StdRng::seed_from_u64(10);
    let positive = Array1::from(uniform(&mut rng, 20_000, 2.0, 5.0));
    let negative = positive.mapv(|v| -v);
    for (data, zero_point) in [(&positive, -128), (&negative, 127)] {
        for (name, mut o) in every_observer() {
            o.observe_slice(data.as_slice().unwrap());
            let p = o.params(Scheme::Affine, QuantRange::INT8).unwrap();
            assert_eq!(p.zero_point, zero_point, "{name}");
            let zero = ndarray::array![0.0f32];
            assert_eq!(dequantize(&quantize(&zero, p), p), zero, "{name}");
            // The data is reported as observed, not widened.
            let (lo, hi) = o.range().unwrap();
            assert!(lo.signum() == hi.signum(), "{name}: {lo} {hi}");
        }
    }
}

#[test]
fn histogram_on_a_single_extreme_outlier_neither_panics_nor_divides_by_zero() {
    let cases: Vec<Vec<f32>> = vec![
        [vec![0.0; 999], vec![1e30]].concat(),
        [vec![5.0; 1000], vec![-f32::MAX, f32::MAX]].concat(),
        [vec![1.0], vec![1.0 + f32::EPSILON]].concat(),
        vec![f32::MIN_POSITIVE, 0.0, -f32::MIN_POSITIVE * 1e-6],
        vec![f32::MAX; 10],
    ];
    for values in cases {
        for scheme in [Scheme::Notebook, Scheme::Affine, Scheme::Symmetric] {
            let mut h = HistogramObserver::new();
            let mut p = PercentileObserver::new(0.01, 99.99).unwrap();
            // As one batch, and as one batch per value (re-binning each time).
            h.observe_slice(&values);
            p.observe_slice(&values);
            let mut h1 = HistogramObserver::new().with_bins(16).unwrap();
            for v in &values {
                h1.observe_slice(&[*v]);
            }
            for o in [&h as &dyn Observer, &p, &h1] {
                let (lo, hi) = o.range().unwrap();
                assert!(lo.is_finite() && hi.is_finite() && lo <= hi);
                // A scale may legitimately be out of reach (a width below
                // MIN_SCALE); the point is a value, not a panic.
                if let Ok(q) = o.params(scheme, QuantRange::INT8) {
                    assert!(q.scale.is_finite() && q.scale > 0.0);
                }
            }
            let sum: f64 = h1.histogram().counts().iter().sum();
            assert!((sum - values.len() as f64).abs() < 1e-9);
        }
    }
}

#[test]
fn per_channel_edge_cases() {
    let mut o = PerChannelMinMaxObserver::new();
    nothing_observed(o.ranges(), "PerChannelMinMaxObserver");
    // Arrays without elements are no-ops and fix nothing.
    o.observe(&Array2::<f32>::zeros((0, 3))).unwrap();
    o.observe(&Array2::<f32>::zeros((5, 0))).unwrap();
    assert_eq!(o.channels(), None);
    // A column of only NaN keeps the whole observer from reporting.
    let w = ndarray::array![[1.0f32, f32::NAN], [-1.0, f32::INFINITY]];
    o.observe(&w).unwrap();
    assert_eq!((o.channels(), o.count(), o.skipped()), (Some(2), 2, 2));
    nothing_observed(
        o.params(Scheme::Affine, QuantRange::INT8),
        "PerChannelMinMaxObserver",
    );
    o.observe(&ndarray::array![[f32::NAN, 4.0]]).unwrap();
    assert_eq!(o.ranges().unwrap(), vec![(-1.0, 1.0), (4.0, 4.0)]);
    assert_eq!(o.skipped(), 3);
    let p = o.params(Scheme::Affine, QuantRange::INT8).unwrap();
    assert_eq!((p[1].scale, p[1].zero_point), (4.0 / 255.0, -128)); // constant column: [0, 4]
                                                                    // Strided and transposed views are read by logical index.
    let big = Array2::from_shape_fn((6, 4), |(i, j)| (i * 10 + j) as f32);
    let mut v = PerChannelMinMaxObserver::new();
    v.observe(&big.slice(s![..;2, ..;-1])).unwrap();
    assert_eq!(
        v.ranges().unwrap(),
        vec![(3.0, 43.0), (2.0, 42.0), (1.0, 41.0), (0.0, 40.0)]
    );
}

#[test]
fn strided_views_observe_the_same_values() {
    let a = Array2::from_shape_fn((7, 5), |(i, j)| (i as f32 - 3.0) * (j as f32 + 0.5));
    let view = a.slice(s![1..;2, ..;-2]);
    let mut strided = MinMaxObserver::new();
    strided.observe(&view);
    let mut owned = MinMaxObserver::new();
    owned.observe(&view.to_owned());
    assert_eq!(strided, owned);
    assert_eq!(strided.count(), view.len() as u64);
}

#[test]
fn the_histogram_is_inspectable() {
    let mut o = HistogramObserver::new().with_bins(10).unwrap();
    o.observe(&Array1::from(vec![0.0f32, 1.0, 9.5, 10.0]));
    let h: &Histogram = o.histogram();
    assert_eq!(
        (h.bins(), h.total(), h.bounds()),
        (10, 4, Some((0.0, 10.0)))
    );
    assert_eq!(h.bin_width(), 1.0);
    assert_eq!(h.counts()[9], 2.0);
}

#[test]
fn bad_configurations_are_errors_not_panics() {
    let bad = |r: Result<(), QuantError>| matches!(r, Err(QuantError::InvalidConfig { .. }));
    for c in [1.5, -0.1, f64::NAN] {
        assert!(bad(
            MovingAverageMinMaxObserver::with_averaging_constant(c).map(|_| ())
        ));
        assert!(bad(PerChannelMinMaxObserver::new()
            .with_averaging_constant(c)
            .map(|_| ())));
    }
    for (lo, hi) in [
        (99.0, 1.0),
        (5.0, 5.0),
        (-1.0, 50.0),
        (1.0, 101.0),
        (f64::NAN, 50.0),
    ] {
        assert!(
            bad(PercentileObserver::new(lo, hi).map(|_| ())),
            "{lo} {hi}"
        );
    }
    let pct = PercentileObserver::new(1.0, 99.0).unwrap();
    for bins in [0, MAX_BINS + 1, usize::MAX] {
        assert!(bad(HistogramObserver::new().with_bins(bins).map(|_| ())));
        assert!(bad(pct.clone().with_bins(bins).map(|_| ())));
    }
    assert!(HistogramObserver::new().with_bins(MAX_BINS).is_ok());
    assert!(bad(PerChannelMinMaxObserver::with_axis(Axis(2)).map(|_| ())));
    let msg = MovingAverageMinMaxObserver::with_averaging_constant(1.5)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("1.5") && msg.contains("[0, 1]"), "{msg}");
}
