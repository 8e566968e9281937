//! What the benches share: the shapes, the benchmark layer, and
//! each kernel's version of it with the input it accepts.

use ndarray::Array2;
use qlinear::{Bias, QuantParams, QuantRange, QuantizedLinear};

/// m×p×n: a GEMV and a 4-row batch over a 4096² layer (decoding), small
/// and large batches over 1024² layers, a cube, and a long, wide product.
pub const SHAPES: [(usize, usize, usize); 6] = [
    (1, 4096, 4096),
    (4, 4096, 4096),
    (16, 1024, 1024),
    (128, 1024, 1024),
    (512, 512, 512),
    (256, 2048, 2048),
];

/// A layer over `w` (p×n) whose outputs spread over the int8 range for
/// random full-range inputs, so the output stage does real work.
pub fn layer(w: &Array2<i8>) -> QuantizedLinear {
    let p = w.nrows();
    let px = QuantParams::new(0.02, 3).unwrap();
    let pw = QuantParams::new(0.01, 0).unwrap();
    let py = QuantParams::new(0.02 * 0.01 * 64.0 * (p as f64).sqrt(), -5).unwrap();
    QuantizedLinear::from_quantized(w.clone(), pw, Bias::None, px, py).unwrap()
}

/// `base` pinned to `kernel`, and the input to give it: the 7-bit kernel
/// only takes layers declared 7-bit, so it gets `x7`, the others `x`.
pub fn for_kernel<'a>(
    base: &QuantizedLinear,
    kernel: &str,
    x: &'a Array2<i8>,
    x7: &'a Array2<i8>,
) -> (QuantizedLinear, &'a Array2<i8>) {
    if kernel.contains("u7") {
        let layer = base.clone().with_input_range(QuantRange::INT8_REDUCED);
        (layer.unwrap().with_kernel(kernel).unwrap(), x7)
    } else {
        (base.clone().with_kernel(kernel).unwrap(), x)
    }
}

/// The middle value (the upper one of an even count); `v` must not be
/// empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Whether `row` contains every filter given after `--` (`cargo bench`
/// itself passes `--bench`, which is not a filter), for the benches with
/// their own harness.
pub fn kept(row: &str) -> bool {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .all(|f| row.contains(f.as_str()))
}
