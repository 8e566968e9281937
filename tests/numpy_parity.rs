//! Bit-for-bit parity with numpy running the notebook's own functions on
//! many random and edge-case inputs (`tests/data/numpy_golden.json`, made by
//! `scripts/numpy_golden.py`).

mod common;

use common::{data, f64_list, i64_list};
use ndarray::{Array1, Array2};
use qlinear::{dequantize, quantize, Bias, QuantParams, QuantRange, QuantizedLinear};

fn params(case: &serde_json::Value, s: &str, z: &str) -> QuantParams {
    QuantParams::new(case[s].as_f64().unwrap(), case[z].as_i64().unwrap() as i32).unwrap()
}

#[test]
fn from_range_matches_generate_quantization_constants() {
    let golden = data("numpy_golden.json");
    let cases = golden["from_range"].as_array().unwrap();
    assert!(cases.len() > 200);
    for case in cases {
        let (alpha, beta) = (
            case["alpha"].as_f64().unwrap(),
            case["beta"].as_f64().unwrap(),
        );
        let got = match (case.get("qmin"), case.get("qmax")) {
            (Some(lo), Some(hi)) => {
                let range =
                    QuantRange::new(lo.as_i64().unwrap() as i32, hi.as_i64().unwrap() as i32);
                QuantParams::from_range_in(alpha, beta, range.unwrap())
            }
            _ => QuantParams::from_range(alpha, beta),
        }
        .unwrap();
        assert_eq!(got, params(case, "s", "z"), "[{alpha}, {beta}]");
    }
}

#[test]
fn quantize_and_dequantize_match_numpy() {
    let golden = data("numpy_golden.json");
    let mut outside_int8 = 0;
    for case in golden["quantize"].as_array().unwrap() {
        let p = params(case, "s", "z");
        outside_int8 += usize::from(!(-128..=127).contains(&p.zero_point));
        let x: Array1<f32> = f64_list(&case["x"]).into_iter().map(|v| v as f32).collect();
        let want: Array1<i8> = i64_list(&case["q"]).into_iter().map(|v| v as i8).collect();
        let q = quantize(&x, p);
        assert_eq!(q, want, "s={} z={}", p.scale, p.zero_point);
        let want_dq: Array1<f32> = f64_list(&case["dequantized"])
            .into_iter()
            .map(|v| v as f32)
            .collect();
        assert_eq!(dequantize(&q, p), want_dq);
    }
    assert!(
        outside_int8 > 5,
        "the golden set must cover zero points outside int8"
    );
}

#[test]
fn quantized_matmul_matches_numpy() {
    let golden = data("numpy_golden.json");
    let cases = golden["matmul"].as_array().unwrap();
    assert!(cases.len() > 100);
    for (c, case) in cases.iter().enumerate() {
        let dim = |k: &str| case[k].as_u64().unwrap() as usize;
        let (m, p, n) = (dim("m"), dim("p"), dim("n"));
        let ints = |k: &str| {
            i64_list(&case[k])
                .into_iter()
                .map(|v| v as i8)
                .collect::<Vec<_>>()
        };
        let x_q = Array2::from_shape_vec((m, p), ints("X_q")).unwrap();
        let w_q = Array2::from_shape_vec((p, n), ints("W_q")).unwrap();
        let want = Array2::from_shape_vec((m, n), ints("Y_q")).unwrap();
        let bias = Bias::Int8 {
            values: Array1::from(ints("b_q")),
            params: params(case, "s_b", "z_b"),
        };
        let layer = QuantizedLinear::from_quantized(
            w_q,
            params(case, "s_W", "z_W"),
            bias,
            params(case, "s_X", "z_X"),
            params(case, "s_Y", "z_Y"),
        )
        .unwrap();
        assert_eq!(layer.forward(&x_q).unwrap(), want, "case {c}");
        assert_eq!(
            layer.forward_reference(&x_q).unwrap(),
            want,
            "case {c} (reference)"
        );
    }
}
