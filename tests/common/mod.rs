//! Shared test helpers: numpy's legacy random generator and test data.
#![allow(dead_code, unused_imports)]

use ndarray::Array2;

mod numpy_random;
pub use numpy_random::NumpyRandom;

/// Reads a file from `tests/data/`.
pub fn data(name: &str) -> serde_json::Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A JSON matrix of numbers as `f32` (each written as its exact f64 widening).
pub fn f32_matrix(v: &serde_json::Value) -> Array2<f32> {
    let rows: Vec<Vec<f32>> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    to_matrix(rows)
}

/// A JSON matrix of integers as `i8`.
pub fn i8_matrix(v: &serde_json::Value) -> Array2<i8> {
    let rows: Vec<Vec<i8>> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap() as i8)
                .collect()
        })
        .collect();
    to_matrix(rows)
}

/// A flat JSON list of numbers.
pub fn f64_list(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// A flat JSON list of integers.
pub fn i64_list(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn to_matrix<T: Clone>(rows: Vec<Vec<T>>) -> Array2<T> {
    let (r, c) = (rows.len(), rows.first().map_or(0, Vec::len));
    Array2::from_shape_vec((r, c), rows.concat()).unwrap()
}
