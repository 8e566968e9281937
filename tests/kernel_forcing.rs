//! Pinning a kernel with `with_kernel`: a name that is no kernel, a kernel
//! this CPU lacks (whichever those are here: the crate's kernels minus
//! `available_kernels()`), and the 7-bit kernel on a layer whose inputs
//! are full-range are refused with `KernelUnavailable` before anything
//! runs; every kernel this CPU has is taken by its full and short name and
//! computes the oracle's outputs. (`QLINEAR_KERNEL` is tested in
//! `tests/kernel_env.rs`, a binary of its own.)

use ndarray::Array2;
use qlinear::gemm::__introspect::{all_kernels, geometry, KernelGeometry};
use qlinear::{
    available_kernels, Bias, DynamicActivations, DynamicLinear, Granularity, QuantError,
    QuantParams, QuantRange, QuantizedLinear, Scheme,
};

fn params() -> QuantParams {
    QuantParams::new(0.05, 3).unwrap()
}

/// A 5×7 int8 layer (full-range int8 inputs until changed).
fn layer() -> QuantizedLinear {
    let w = Array2::from_shape_fn((5, 7), |(k, j)| (k * 31 + j * 17) as i8);
    QuantizedLinear::from_quantized(w, params(), Bias::None, params(), params()).unwrap()
}

/// A 5×7 dynamic layer with activations over `range`.
fn dynamic(range: QuantRange) -> DynamicLinear {
    let w = Array2::from_shape_fn((5, 7), |(k, j)| (k * 13 + j * 29) as i8);
    DynamicLinear::from_quantized(w, params(), None)
        .and_then(|l| {
            l.with_activations(DynamicActivations {
                granularity: Granularity::PerTensor,
                scheme: Scheme::Affine,
                range,
            })
        })
        .unwrap()
}

/// Kernels the crate has that this CPU cannot run.
fn lacking() -> Vec<KernelGeometry> {
    let available = available_kernels();
    all_kernels()
        .into_iter()
        .filter(|k| !available.contains(&k.name))
        .collect()
}

/// The 7-bit kernel, if this CPU runs it.
fn reduced_kernel() -> Option<KernelGeometry> {
    let available = available_kernels();
    all_kernels()
        .into_iter()
        .find(|k| k.reduced() && available.contains(&k.name))
}

/// Fails unless `result` is the documented refusal of `name`.
#[track_caller]
fn assert_refused<T>(result: Result<T, QuantError>, name: &str) {
    match result {
        Err(QuantError::KernelUnavailable {
            name: refused,
            available,
        }) => {
            assert_eq!(refused, name);
            assert_eq!(available, available_kernels());
        }
        Err(e) => panic!("{name}: unexpected error {e}"),
        Ok(_) => panic!("{name}: accepted"),
    }
}

#[test]
fn names_of_no_kernel_are_refused() {
    for name in [
        "no-such-kernel",
        "",
        "AVX2",
        " portable",
        "x86_64-i8i8i32-avx3",
    ] {
        assert!(geometry(name).is_none(), "{name:?} is a kernel");
        assert_refused(layer().with_kernel(name), name);
        assert_refused(dynamic(QuantRange::UINT8).with_kernel(name), name);
    }
}

/// Whichever kernels the crate has and this CPU lacks, by full and short
/// name.
#[test]
fn kernels_this_cpu_lacks_are_refused() {
    let lacking = lacking();
    eprintln!(
        "lacking here: {:?}",
        lacking.iter().map(|k| k.name).collect::<Vec<_>>()
    );
    for k in lacking {
        for name in [k.name, k.short_name] {
            assert_refused(layer().with_kernel(name), name);
            let reduced = layer().with_input_range(QuantRange::INT8_REDUCED).unwrap();
            assert_refused(reduced.with_kernel(name), name);
            assert_refused(dynamic(QuantRange::UINT8).with_kernel(name), name);
            assert_refused(dynamic(QuantRange::UINT8_REDUCED).with_kernel(name), name);
        }
    }
}

/// The 7-bit kernel is refused for full-range inputs, whether the layer
/// has them when the kernel is pinned or gets them after; it is taken for
/// 7-bit ones.
#[test]
fn the_7_bit_kernel_refuses_full_range_layers() {
    let Some(k) = reduced_kernel() else {
        eprintln!("no 7-bit kernel on this CPU: refused as a lacking kernel");
        return;
    };
    // Refused by full name, whichever name was asked for.
    for name in [k.name, k.short_name] {
        assert_refused(layer().with_kernel(name), k.name);
        let uint8 = layer()
            .with_activation_type(qlinear::ElemKind::Uint8)
            .unwrap();
        assert_refused(uint8.with_kernel(name), k.name);
        assert_refused(dynamic(QuantRange::UINT8).with_kernel(name), k.name);
        assert_refused(dynamic(QuantRange::INT8).with_kernel(name), k.name);

        let pinned = layer()
            .with_input_range(QuantRange::INT8_REDUCED)
            .and_then(|l| l.with_kernel(name))
            .unwrap();
        assert_eq!(pinned.kernel_name(), k.name);
        // Widening the range afterwards is refused too.
        assert_refused(pinned.with_input_range(QuantRange::INT8), k.name);

        let pinned = dynamic(QuantRange::UINT8_REDUCED)
            .with_kernel(name)
            .unwrap();
        assert_eq!(pinned.kernel_name(), k.name);
        let widened = pinned.with_activations(DynamicActivations {
            granularity: Granularity::PerTensor,
            scheme: Scheme::Affine,
            range: QuantRange::UINT8,
        });
        assert_refused(widened, k.name);
    }
}

/// Every kernel this CPU has, pinned by either name, is the one that runs,
/// and equals the oracle.
#[test]
fn kernels_this_cpu_has_are_taken_by_either_name() {
    let x = Array2::from_shape_fn((3, 5), |(i, k)| ((i * 50 + k * 7) % 128) as i8 - 64);
    for name in available_kernels() {
        let k = geometry(name).unwrap();
        for alias in [k.name, k.short_name] {
            let range = if k.reduced() {
                QuantRange::INT8_REDUCED
            } else {
                QuantRange::INT8
            };
            let pinned = layer()
                .with_input_range(range)
                .and_then(|l| l.with_kernel(alias))
                .unwrap();
            assert_eq!(pinned.kernel_name(), name, "{alias}");
            assert_eq!(
                pinned.forward(&x).unwrap(),
                pinned.forward_reference(&x).unwrap(),
                "{alias}"
            );
            let range = if k.reduced() {
                QuantRange::UINT8_REDUCED
            } else {
                QuantRange::UINT8
            };
            let d = dynamic(range).with_kernel(alias).unwrap();
            assert_eq!(d.kernel_name(), name, "{alias}");
        }
    }
}
