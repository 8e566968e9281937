//! Calibrates one linear layer from real data with every observer and
//! scheme, static and dynamic, and prints how close each gets to the f32
//! reference on held-out data.
//!
//! Run with `cargo run --release --example calibrate`.

use ndarray::{Array1, Array2};
use qlinear::{
    max_abs_error, sqnr_db, DynamicActivations, DynamicLinear, F32Bias, Granularity,
    HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver, Observer, PercentileObserver,
    QuantError, QuantRange, QuantizedLinear, Scheme, WeightLayout, WeightParams,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const IN: usize = 256;
const OUT: usize = 64;

/// Activations: Gaussian with rare large outliers, as real layers see.
fn activations(rng: &mut StdRng, rows: usize) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, IN), || {
        let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
        let g = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
        let outlier = if rng.random_bool(1e-4) { 12.0 } else { 1.0 };
        (g * outlier) as f32
    })
}

/// An observer of each kind, by name.
fn observers() -> Vec<(&'static str, Box<dyn Observer>)> {
    vec![
        ("min/max", Box::new(MinMaxObserver::new())),
        (
            "moving average",
            Box::new(MovingAverageMinMaxObserver::new()),
        ),
        ("histogram", Box::new(HistogramObserver::new())),
        (
            "percentile 99.99",
            Box::new(PercentileObserver::new(0.01, 99.99).expect("valid percentiles")),
        ),
    ]
}

/// The range each scheme quantizes weights into.
fn weight_range(scheme: Scheme) -> QuantRange {
    match scheme {
        Scheme::Symmetric => QuantRange::INT8_NARROW,
        _ => QuantRange::INT8,
    }
}

fn main() -> Result<(), QuantError> {
    let mut rng = StdRng::seed_from_u64(2026);
    // Weights whose output columns have ranges 30 times apart.
    let w = Array2::from_shape_fn((IN, OUT), |(_, j)| {
        (rng.random::<f32>() * 2.0 - 1.0) * 10f32.powf(-1.5 + 1.5 * j as f32 / OUT as f32)
    });
    let b = Array1::from_shape_simple_fn(OUT, || rng.random::<f32>() * 0.1);
    let calibration = activations(&mut rng, 4096);
    let eval = activations(&mut rng, 1024);
    let reference = eval.dot(&w) + &b;
    let calibration_out = calibration.dot(&w) + &b;

    println!("| scheme | observer | weights | quantization | SQNR (dB) | max abs error |");
    println!("|---|---|---|---|---|---|");
    for scheme in [Scheme::Notebook, Scheme::Affine, Scheme::Symmetric] {
        for per_channel in [false, true] {
            let pw = weight_params(&w, scheme, per_channel)?;
            let granularity = if per_channel {
                "per channel"
            } else {
                "per tensor"
            };
            for (name, mut input_observer) in observers() {
                let (_, mut output_observer) = observers()
                    .into_iter()
                    .find(|(n, _)| *n == name)
                    .expect("same list");
                for batch in calibration.outer_iter().collect::<Vec<_>>().chunks(256) {
                    let rows: Vec<f32> = batch.iter().flat_map(|r| r.iter().copied()).collect();
                    input_observer.observe_slice(&rows);
                }
                for batch in calibration_out.outer_iter().collect::<Vec<_>>().chunks(256) {
                    let rows: Vec<f32> = batch.iter().flat_map(|r| r.iter().copied()).collect();
                    output_observer.observe_slice(&rows);
                }
                let px = input_observer.params(scheme, QuantRange::INT8)?;
                let py = output_observer.params(scheme, QuantRange::INT8)?;
                let layer =
                    QuantizedLinear::from_f32(&w, pw.clone(), F32Bias::Real(b.view()), px, py)?;
                let y = layer.forward_f32(&eval)?;
                println!(
                    "| {scheme:?} | {name} | {granularity} | static | {:.2} | {:.4} |",
                    sqnr_db(&reference, &y)?,
                    max_abs_error(&reference, &y)?
                );
            }
            for (label, granularity_mode) in [
                ("dynamic, per tensor", Granularity::PerTensor),
                ("dynamic, per row", Granularity::PerRow),
            ] {
                let activations = DynamicActivations {
                    granularity: granularity_mode,
                    scheme,
                    range: QuantRange::INT8,
                };
                let layer = DynamicLinear::from_f32(&w, pw.clone(), Some(b.clone()))?
                    .with_activations(activations)?;
                let y = layer.forward(&eval)?;
                println!(
                    "| {scheme:?} | — | {granularity} | {label} | {:.2} | {:.4} |",
                    sqnr_db(&reference, &y)?,
                    max_abs_error(&reference, &y)?
                );
            }
        }
    }
    Ok(())
}

/// The weights' params under `scheme` onto its range, per output column or
/// for the whole matrix.
fn weight_params(
    w: &Array2<f32>,
    scheme: Scheme,
    per_channel: bool,
) -> Result<WeightParams, QuantError> {
    if per_channel {
        WeightParams::per_channel(w, WeightLayout::InOut, scheme, weight_range(scheme))
    } else {
        WeightParams::per_tensor(w, scheme, weight_range(scheme))
    }
}
