//! The seed notebook's example, run through qlinear: prints what the notebook
//! prints, in its order, then the accuracy of the int8 result.
//!
//! Run with `cargo run --example linear_demo`.

#[path = "../tests/common/numpy_random.rs"]
mod numpy_random;

use ndarray::{Array1, Array2, Axis};
use numpy_random::NumpyRandom;
use qlinear::{
    dequantize, max_abs_error, quantize, sqnr_db, Bias, QuantError, QuantParams, QuantizedLinear,
};

fn main() -> Result<(), QuantError> {
    // np.random.seed(0); m, p, n = 2, 3, 4
    let mut rng = NumpyRandom::seed(0);
    let (m, p, n) = (2, 3, 4);

    let px = QuantParams::from_range(-100.0, 80.0)?;
    let x = rng.uniform_f32(-100.0, 80.0, m, p);
    let pw = QuantParams::from_range(-20.0, 10.0)?;
    let w = rng.uniform_f32(-20.0, 10.0, p, n);
    let pb = QuantParams::from_range(-500.0, 500.0)?;
    let b = rng.uniform_f32(-500.0, 500.0, 1, n);
    let py = QuantParams::from_range(-3000.0, 3000.0)?;

    let y_expected = x.dot(&w) + &b;
    let y_q_expected = quantize(&y_expected, py);

    let b_q: Array1<i8> = quantize(&b, pb).index_axis_move(Axis(0), 0);
    let layer = QuantizedLinear::from_quantized(
        quantize(&w, pw),
        pw,
        Bias::Int8 {
            values: b_q,
            params: pb,
        },
        px,
        py,
    )?;
    let y_q_simulated = layer.forward(&quantize(&x, px))?;
    let y_simulated = dequantize(&y_q_simulated, py);

    println!("Expected FP32 Y:");
    println!("{}", numpy_style(&y_expected.mapv(|v| v.to_string())));
    println!("Expected FP32 Y Quantized:");
    println!("{}", numpy_style(&y_q_expected.mapv(|v| v.to_string())));
    println!("Expected Quantized Y_q from Quantized Matrix Multiplication:");
    println!("{}", numpy_style(&y_q_simulated.mapv(|v| v.to_string())));
    println!("Expected Quantized Y_q from Quantized Matrix Multiplication Dequantized:");
    println!("{}", numpy_style(&y_simulated.mapv(|v| v.to_string())));

    let direct = dequantize(&y_q_expected, py);
    println!();
    println!("| against the f32 Y                    | max abs error | SQNR (dB) |");
    println!("|--------------------------------------|---------------|-----------|");
    for (name, approx) in [
        ("int8 quantized matmul (Y_q dequant.)", &y_simulated),
        ("f32 Y quantized directly (the floor)", &direct),
    ] {
        println!(
            "| {name:<36} | {:>13.4} | {:>9.2} |",
            max_abs_error(&y_expected, approx)?,
            sqnr_db(&y_expected, approx)?
        );
    }
    Ok(())
}

/// Lays out a matrix of printed numbers as numpy does: integer parts
/// right-aligned, fractional parts left-aligned, in brackets.
fn numpy_style(cells: &Array2<String>) -> String {
    let split = |s: &String| match s.split_once('.') {
        Some((int, frac)) => (int.to_string(), format!(".{frac}")),
        None => (s.clone(), String::new()),
    };
    let int_width = cells.iter().map(|s| split(s).0.len()).max().unwrap_or(0);
    let frac_width = cells.iter().map(|s| split(s).1.len()).max().unwrap_or(0);
    let rows: Vec<String> = cells
        .rows()
        .into_iter()
        .map(|row| {
            let items: Vec<String> = row
                .iter()
                .map(|s| {
                    let (int, frac) = split(s);
                    format!("{int:>int_width$}{frac:<frac_width$}")
                })
                .collect();
            format!("[{}]", items.join(" "))
        })
        .collect();
    format!("[{}]", rows.join("\n "))
}
