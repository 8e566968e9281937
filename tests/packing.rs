//! Packed weights stay int8: at most 1.1× the bytes of the int8 weights for
//! every kernel's layout once `p ≥ 256` and `n ≥ 640` (and on common
//! smaller shapes), and they read back exactly.

use ndarray::Array2;
use qlinear::{available_kernels, Bias, QuantParams, QuantRange, QuantizedLinear};

fn layer(p: usize, n: usize) -> (Array2<i8>, QuantizedLinear) {
    let w = Array2::from_shape_fn((p, n), |(k, j)| ((k * 31 + j * 17) % 256) as u8 as i8);
    let q = QuantParams::new(0.01, 0).unwrap();
    let l = QuantizedLinear::from_quantized(w.clone(), q, Bias::None, q, q).unwrap();
    (w, l.with_input_range(QuantRange::INT8_REDUCED).unwrap())
}

#[test]
fn packed_weights_take_at_most_1_1x_the_int8_bytes() {
    // Common shapes, and the worst remainders at the edge of the documented
    // region: p one past a multiple of 4 (the largest k-group), n one past
    // a multiple of 32 (the widest panel).
    let edge = [256, 257, 301].into_iter();
    let edge = edge.flat_map(|p| [640, 641, 705].map(|n| (p, n)));
    for (p, n) in [(1024, 1000), (768, 3072), (300, 301), (100, 320)]
        .into_iter()
        .chain(edge)
    {
        let (w, base) = layer(p, n);
        for kernel in available_kernels() {
            let l = base.clone().with_kernel(kernel).unwrap();
            let ratio = l.packed_weight_bytes() as f64 / (p * n) as f64;
            assert!(ratio <= 1.1, "{p}×{n} {kernel}: {ratio:.4}×");
            assert_eq!(
                l.unpack_weights(),
                w,
                "{kernel}: weights must read back exactly"
            );
        }
    }
    // A 4096×4096 layer stays ≈16 MiB: the panels, 32 KiB of column sums
    // and one cache line of slack to start the panels on a line.
    let (_, big) = layer(4096, 4096);
    assert_eq!(big.packed_weight_bytes(), 4096 * 4096 + 8 * 4096 + 64);
}
