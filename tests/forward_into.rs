//! `forward_into` of both layer types overwrites every element of an
//! output filled with canaries, in standard and in transposed layout, and
//! equals `forward` bit for bit; a wrong output shape is an error.

use ndarray::{Array2, ShapeBuilder};
use qlinear::{
    Bias, DynamicActivations, DynamicLinear, Granularity, QuantError, QuantParams, QuantRange,
    QuantizedLinear, Scheme,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Shapes with remainders against every tile size, and a deep one.
const SHAPES: [(usize, usize, usize); 4] = [(1, 3, 5), (7, 33, 17), (13, 64, 40), (2, 70_000, 3)];

#[test]
fn dynamic_forward_into_overwrites_canaries_and_equals_forward() {
    let mut rng = StdRng::seed_from_u64(21);
    for (m, p, n) in SHAPES {
        let w = Array2::from_shape_simple_fn((p, n), || rng.random::<i8>());
        let x = Array2::from_shape_simple_fn((m, p), || rng.random_range(-3.0f32..3.0));
        for granularity in [Granularity::PerTensor, Granularity::PerRow] {
            let activations = DynamicActivations {
                granularity,
                scheme: Scheme::Affine,
                range: QuantRange::UINT8,
            };
            let layer =
                DynamicLinear::from_quantized(w.clone(), QuantParams::new(0.01, 0).unwrap(), None)
                    .and_then(|l| l.with_activations(activations))
                    .unwrap();
            let want = layer.forward(&x).unwrap();
            for canary in [f32::NAN, 1e30] {
                let mut standard = Array2::from_elem((m, n), canary);
                layer.forward_into(&x, &mut standard).unwrap();
                assert_eq!(standard, want, "{m}x{p}x{n} {granularity:?}");
                let mut transposed = Array2::from_elem((m, n).f(), canary);
                layer.forward_into(&x, &mut transposed).unwrap();
                assert_eq!(
                    transposed, want,
                    "{m}x{p}x{n} {granularity:?} (column-major)"
                );
            }
            let mut wrong = Array2::<f32>::zeros((m, n + 1));
            assert!(matches!(
                layer.forward_into(&x, &mut wrong),
                Err(QuantError::ShapeMismatch { .. })
            ));
        }
    }
}

#[test]
fn static_forward_into_overwrites_canaries_and_equals_forward() {
    let mut rng = StdRng::seed_from_u64(22);
    let p8 = QuantParams::new(1.0 / 64.0, 3).unwrap();
    for (m, p, n) in SHAPES {
        let w = Array2::from_shape_simple_fn((p, n), || rng.random::<i8>());
        let x = Array2::from_shape_simple_fn((m, p), || rng.random::<i8>());
        let py = QuantParams::new(p as f64 / 16.0, -7).unwrap();
        let layer = QuantizedLinear::from_quantized(
            w,
            QuantParams::new(0.01, 1).unwrap(),
            Bias::None,
            p8,
            py,
        )
        .unwrap();
        let want = layer.forward(&x).unwrap();
        for canary in [i8::MIN, i8::MAX, 0x5a] {
            let mut standard = Array2::from_elem((m, n), canary);
            layer.forward_into(&x, &mut standard).unwrap();
            assert_eq!(standard, want, "{m}x{p}x{n}");
            let mut transposed = Array2::from_elem((m, n).f(), canary);
            layer.forward_into(&x, &mut transposed).unwrap();
            assert_eq!(transposed, want, "{m}x{p}x{n} (column-major)");
        }
    }
}
