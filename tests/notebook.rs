//! The seed notebook's example, regenerated from its seed and checked against
//! every intermediate value numpy produced (`tests/data/notebook_example.json`).

mod common;

use approx::assert_relative_eq;
use common::{data, f32_matrix, i8_matrix, NumpyRandom};
use ndarray::{Array1, Array2, Axis};
use qlinear::{dequantize, quantize, Bias, QuantParams, QuantizedLinear};

/// `np.random.seed(0); np.random.random_sample(3)`, printed by numpy 2.4.
#[test]
fn generator_matches_numpy_first_draws() {
    let mut r = NumpyRandom::seed(0);
    assert_eq!(r.random_sample(), 0.5488135039273248);
    assert_eq!(r.random_sample(), 0.7151893663724195);
    assert_eq!(r.random_sample(), 0.6027633760716439);
}

/// The notebook's `main()`: one block per matrix, in its order.
struct Notebook {
    x: Array2<f32>,
    w: Array2<f32>,
    b: Array2<f32>,
    px: QuantParams,
    pw: QuantParams,
    pb: QuantParams,
    py: QuantParams,
}

fn run_notebook() -> Notebook {
    let mut rng = NumpyRandom::seed(0);
    let (m, p, n) = (2, 3, 4);
    let px = QuantParams::from_range(-100.0, 80.0).unwrap();
    let x = rng.uniform_f32(-100.0, 80.0, m, p);
    let pw = QuantParams::from_range(-20.0, 10.0).unwrap();
    let w = rng.uniform_f32(-20.0, 10.0, p, n);
    let pb = QuantParams::from_range(-500.0, 500.0).unwrap();
    let b = rng.uniform_f32(-500.0, 500.0, 1, n);
    let py = QuantParams::from_range(-3000.0, 3000.0).unwrap();
    Notebook {
        x,
        w,
        b,
        px,
        pw,
        pb,
        py,
    }
}

fn check_block(name: &str, values: &Array2<f32>, params: QuantParams) {
    let want = &data("notebook_example.json")[name];
    assert_eq!(params.scale, want["s"].as_f64().unwrap(), "{name}: s");
    assert_eq!(
        i64::from(params.zero_point),
        want["z"].as_i64().unwrap(),
        "{name}: z"
    );
    assert_eq!(values, f32_matrix(&want["values"]), "{name}: values");
    let q = quantize(values, params);
    assert_eq!(q, i8_matrix(&want["q"]), "{name}: q");
    assert_eq!(
        dequantize(&q, params),
        f32_matrix(&want["dequantized"]),
        "{name}: dequantized"
    );
}

#[test]
fn inputs_params_and_their_quantization_match_numpy() {
    let nb = run_notebook();
    check_block("X", &nb.x, nb.px);
    check_block("W", &nb.w, nb.pw);
    check_block("b", &nb.b, nb.pb);
    let y = &data("notebook_example.json")["Y"];
    assert_eq!(nb.py.scale, y["s"].as_f64().unwrap());
    assert_eq!(i64::from(nb.py.zero_point), y["z"].as_i64().unwrap());
}

#[test]
fn float_y_and_its_quantization_match_numpy() {
    let nb = run_notebook();
    let want = &data("notebook_example.json")["Y"];
    let y = nb.x.dot(&nb.w) + &nb.b;
    let want_y = f32_matrix(&want["expected_f32"]);
    assert_relative_eq!(y, want_y, max_relative = 1e-6);
    // The printed values of the notebook, to the digits it printed.
    let printed = [
        [242.46051, 95.31735, 217.99707, 574.97864],
        [-88.28122, 172.45425, 216.39151, 212.0112],
    ];
    for (row, want_row) in y.rows().into_iter().zip(printed) {
        for (&v, w) in row.iter().zip(want_row) {
            assert_relative_eq!(v, w, max_relative = 1e-6);
        }
    }
    assert_eq!(
        quantize(&want_y, nb.py),
        i8_matrix(&want["expected_f32_quantized"])
    );
    assert_eq!(
        quantize(&y, nb.py),
        i8_matrix(&want["expected_f32_quantized"])
    );
}

fn notebook_layer(nb: &Notebook) -> QuantizedLinear {
    let b_q: Array1<i8> = quantize(&nb.b, nb.pb).index_axis_move(Axis(0), 0);
    QuantizedLinear::from_quantized(
        quantize(&nb.w, nb.pw),
        nb.pw,
        Bias::Int8 {
            values: b_q,
            params: nb.pb,
        },
        nb.px,
        nb.py,
    )
    .unwrap()
}

#[test]
fn quantized_matmul_matches_numpy_bit_for_bit() {
    let nb = run_notebook();
    let want = &data("notebook_example.json")["Y"];
    let layer = notebook_layer(&nb);
    let x_q = quantize(&nb.x, nb.px);
    let y_q = layer.forward(&x_q).unwrap();
    assert_eq!(y_q, ndarray::array![[10i8, 4, 9, 25], [-4, 7, 9, 9]]);
    assert_eq!(y_q, i8_matrix(&want["q_from_quantized_matmul"]));
    assert_eq!(layer.forward_reference(&x_q).unwrap(), y_q);
    let y_dq = dequantize(&y_q, nb.py);
    assert_eq!(
        y_dq,
        f32_matrix(&want["q_from_quantized_matmul_dequantized"])
    );
    assert_eq!(layer.forward_f32(&nb.x).unwrap(), y_dq);
}

#[test]
fn notebook_assertions_hold() {
    let nb = run_notebook();
    let x_q_dq = dequantize(&quantize(&nb.x, nb.px), nb.px);
    let w_q_dq = dequantize(&quantize(&nb.w, nb.pw), nb.pw);
    let b_q_dq = dequantize(&quantize(&nb.b, nb.pb), nb.pb);
    let y_prime = x_q_dq.dot(&w_q_dq) + &b_q_dq;
    let y_prime_q = quantize(&y_prime, nb.py);
    let y_prime_q_dq = dequantize(&y_prime_q, nb.py);

    let y_q = notebook_layer(&nb)
        .forward(&quantize(&nb.x, nb.px))
        .unwrap();
    // assert np.array_equal(Y_simulated, Y_expected_prime_q_dq)
    assert_eq!(dequantize(&y_q, nb.py), y_prime_q_dq);
    // assert np.array_equal(Y_q_simulated, Y_expected_prime_q)
    assert_eq!(y_q, y_prime_q);
}
