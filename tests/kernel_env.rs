//! `QLINEAR_KERNEL` ([`KERNEL_ENV`]) as its documentation promises: read
//! once, when a layer is built; a kernel this CPU runs is taken by every
//! layer it is exact for (the 7-bit one by 7-bit layers only); an empty
//! value means the automatic choice; a name of no kernel, or of a kernel
//! this CPU lacks (whichever those are here), falls back to the automatic
//! choice, is reported by `forced_kernel`, and is printed on stderr once
//! per process; and no value makes the crate ask for AMX's tile permission
//! unless a layer is to run AMX.
//!
//! A binary of its own, since the variable is process-wide: each test holds
//! [`ENV`] while it sets the variable or builds layers. What needs a fresh
//! process (what was printed, whether the permission was asked for) runs
//! this binary again as a child with the variable set.

use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};

use ndarray::{array, Array2};
use qlinear::gemm::__introspect::{all_kernels, tile_permission_requested, KernelGeometry};
use qlinear::gemm::forced_kernel;
use qlinear::{
    available_kernels, kernel_name, Bias, DynamicActivations, DynamicLinear, FusedActivation,
    QuantError, QuantParams, QuantRange, QuantizedLinear, Requantizer, KERNEL_ENV,
};

/// Held by every test while it sets the variable or builds layers.
static ENV: Mutex<()> = Mutex::new(());

/// Set in the environment of the child processes.
const CHILD: &str = "QLINEAR_KERNEL_ENV_TEST_CHILD";

/// Takes [`ENV`] and sets the variable to `value` (removes it for `None`).
fn set(value: Option<&str>) -> MutexGuard<'static, ()> {
    let guard = ENV.lock().unwrap_or_else(PoisonError::into_inner);
    put(value);
    guard
}

/// Sets the variable; the caller holds [`ENV`].
fn put(value: Option<&str>) {
    match value {
        Some(v) => std::env::set_var(KERNEL_ENV, v),
        None => std::env::remove_var(KERNEL_ENV),
    }
}

fn params() -> QuantParams {
    QuantParams::new(0.05, 0).unwrap()
}

fn weights() -> Array2<i8> {
    Array2::from_shape_fn((6, 5), |(k, j)| (k * 37 + j * 11) as i8)
}

/// A full-range int8 layer.
fn full_range() -> QuantizedLinear {
    QuantizedLinear::from_quantized(weights(), params(), Bias::None, params(), params()).unwrap()
}

/// A layer declared over 7-bit inputs.
fn seven_bit() -> QuantizedLinear {
    full_range()
        .with_input_range(QuantRange::INT8_REDUCED)
        .unwrap()
}

/// A dynamic layer with activations as `activations` says.
fn dynamic(activations: DynamicActivations) -> DynamicLinear {
    DynamicLinear::from_quantized(weights(), params(), None)
        .and_then(|l| l.with_activations(activations))
        .unwrap()
}

/// The kernels each kind of layer gets with the variable unset.
#[derive(Debug, PartialEq)]
struct Choice {
    full_range: &'static str,
    seven_bit: &'static str,
    dynamic: &'static str,
    dynamic_seven_bit: &'static str,
}

/// The kernel of each kind of layer built now.
fn choice() -> Choice {
    Choice {
        full_range: full_range().kernel_name(),
        seven_bit: seven_bit().kernel_name(),
        dynamic: dynamic(DynamicActivations::ONNX_RUNTIME).kernel_name(),
        dynamic_seven_bit: dynamic(DynamicActivations::PYTORCH_X86).kernel_name(),
    }
}

/// What layers get with the variable unset; the caller holds [`ENV`].
fn automatic() -> Choice {
    put(None);
    let auto = choice();
    assert_eq!(auto.full_range, kernel_name());
    assert_eq!(forced_kernel().unwrap(), None);
    auto
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

/// Values that name no kernel.
const UNKNOWN: [&str; 3] = ["no-such-kernel", "AVX2", "portable "];

#[test]
fn the_kernel_variable_is_read_when_a_layer_is_built() {
    let guard = set(Some("portable"));
    let p = QuantParams::new(0.5, 0).unwrap();
    let layer = QuantizedLinear::from_quantized(array![[1i8, 2]], p, Bias::None, p, p).unwrap();
    let dynamic = DynamicLinear::from_quantized(array![[1i8, 2]], p, None).unwrap();
    put(None);

    let layer = layer
        .with_requantizer(Requantizer::Float32)
        .and_then(|l| l.with_fused_activation(FusedActivation::Relu))
        .and_then(|l| l.with_input_range(QuantRange::INT8_REDUCED))
        .unwrap();
    assert_eq!(layer.kernel_name(), "portable-i8i8i32");
    let dynamic = dynamic
        .with_activations(DynamicActivations::default())
        .unwrap();
    assert_eq!(dynamic.kernel_name(), "portable-i8i8i32");

    // A layer built now gets the automatic choice.
    let fresh = QuantizedLinear::from_quantized(array![[1i8]], p, Bias::None, p, p).unwrap();
    assert_eq!(fresh.kernel_name(), qlinear::kernel_name());
    drop(guard);
}

/// Unset and empty are the same: the automatic choice.
#[test]
fn an_empty_value_is_the_automatic_choice() {
    let _guard = set(None);
    let auto = automatic();
    put(Some(""));
    assert_eq!(forced_kernel().unwrap(), None);
    assert_eq!(choice(), auto);
}

/// Every kernel this CPU has, by full and short name, is what every layer
/// it is exact for runs; the 7-bit kernel leaves full-range layers to the
/// automatic choice.
#[test]
fn kernels_this_cpu_has_are_taken_where_exact() {
    let _guard = set(None);
    let auto = automatic();
    for name in available_kernels() {
        let k = all_kernels().into_iter().find(|k| k.name == name).unwrap();
        for value in [k.name, k.short_name] {
            put(Some(value));
            assert_eq!(forced_kernel().unwrap(), Some(name), "{value}");
            let got = choice();
            assert_eq!(got.seven_bit, name, "{value}");
            assert_eq!(got.dynamic_seven_bit, name, "{value}");
            if k.reduced() {
                assert_eq!(got.full_range, auto.full_range, "{value}");
                assert_eq!(got.dynamic, auto.dynamic, "{value}");
            } else {
                assert_eq!(got.full_range, name, "{value}");
                assert_eq!(got.dynamic, name, "{value}");
            }
        }
    }
}

/// The 7-bit kernel named in the variable: full-range layers keep the
/// automatic choice and compute the oracle's outputs; 7-bit ones take it.
#[test]
fn the_7_bit_kernel_leaves_full_range_layers_alone() {
    let Some(k) = reduced_kernel() else {
        eprintln!("no 7-bit kernel on this CPU");
        return;
    };
    let _guard = set(None);
    let auto = automatic();
    put(Some(k.short_name));
    let layer = full_range();
    assert_eq!(layer.kernel_name(), auto.full_range);
    assert_ne!(layer.kernel_name(), k.name);
    let x = Array2::from_shape_fn((4, 6), |(i, j)| (i * 61 + j * 23) as i8);
    assert_eq!(
        layer.forward(&x).unwrap(),
        layer.forward_reference(&x).unwrap()
    );
    let layer = seven_bit();
    assert_eq!(layer.kernel_name(), k.name);
    let x = x.mapv(|v| v / 2);
    assert_eq!(
        layer.forward(&x).unwrap(),
        layer.forward_reference(&x).unwrap()
    );
}

/// A name of no kernel, or of one this CPU lacks: the automatic choice,
/// and `forced_kernel` says why.
#[test]
fn names_this_cpu_cannot_honour_fall_back() {
    let _guard = set(None);
    let auto = automatic();
    let lacking = lacking();
    let values = UNKNOWN
        .iter()
        .copied()
        .chain(lacking.iter().flat_map(|k| [k.name, k.short_name]));
    for value in values {
        put(Some(value));
        match forced_kernel() {
            Err(QuantError::KernelUnavailable { name, available }) => {
                assert_eq!(name, value);
                assert_eq!(available, available_kernels());
            }
            other => panic!("{value}: {other:?}"),
        }
        assert_eq!(choice(), auto, "{value}");
        assert_eq!(kernel_name(), auto.full_range, "{value}");
    }
}

/// `with_kernel` wins over the variable.
#[test]
fn with_kernel_overrides_the_variable() {
    let _guard = set(Some("portable"));
    for name in available_kernels() {
        let layer = seven_bit().with_kernel(name).unwrap();
        assert_eq!(layer.kernel_name(), name);
    }
    for k in lacking() {
        assert!(seven_bit().with_kernel(k.name).is_err(), "{}", k.name);
    }
}

/// Runs test `test` of this binary in a child process with the variable
/// set to `value`; returns its stderr.
fn run_child(test: &str, value: &str) -> String {
    let _guard = set(None);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--include-ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(KERNEL_ENV, value)
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{test} with {KERNEL_ENV}={value:?}: {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("1 passed"), "{test} did not run:\n{stdout}");
    stderr
}

/// Lines of `stderr` that are the crate's notes about the variable.
fn notes(stderr: &str) -> Vec<&str> {
    let prefix = format!("qlinear: {KERNEL_ENV}=");
    stderr.lines().filter(|l| l.starts_with(&prefix)).collect()
}

/// Builds layers of every kind, twice, and asks `kernel_name`.
#[test]
#[ignore = "child process of a_value_not_honoured_is_printed_once"]
fn child_builds_layers() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let _guard = ENV.lock().unwrap_or_else(PoisonError::into_inner);
    for _ in 0..2 {
        choice();
        kernel_name();
    }
}

/// One line on stderr per process for a value the crate cannot honour,
/// however many layers are built; none for the values it can (the 7-bit
/// kernel included, though full-range layers do not take it).
#[test]
fn a_value_not_honoured_is_printed_once() {
    let lacking = lacking();
    let dishonoured = UNKNOWN
        .iter()
        .copied()
        .chain(lacking.iter().map(|k| k.short_name));
    for value in dishonoured {
        let stderr = run_child("child_builds_layers", value);
        let notes = notes(&stderr);
        assert_eq!(notes.len(), 1, "{value}: {stderr}");
        let why = match all_kernels().iter().find(|k| k.short_name == value) {
            Some(k) => format!("names {}, which this CPU cannot run", k.name),
            None => "names no kernel".to_string(),
        };
        assert!(
            notes[0].contains(&format!("{value:?} {why}")),
            "{}",
            notes[0]
        );
        eprintln!("{}", notes[0]);
    }
    let honoured = ["", "portable"]
        .into_iter()
        .chain(available_kernels())
        .chain(reduced_kernel().map(|k| k.short_name));
    for value in honoured {
        let stderr = run_child("child_builds_layers", value);
        assert_eq!(notes(&stderr), Vec::<&str>::new(), "{value}");
    }
}

/// With the variable naming another kernel, listing the kernels and
/// building layers asks for no AMX tile permission; with it removed, a
/// layer asks for it exactly when AMX was listed (and so is the automatic
/// choice).
#[test]
#[ignore = "child process of the_tile_permission_waits_for_a_layer_on_amx"]
fn child_lists_kernels() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let _guard = ENV.lock().unwrap_or_else(PoisonError::into_inner);
    let listed = available_kernels();
    choice();
    assert!(!tile_permission_requested(), "asked with {listed:?}");
    put(None);
    let amx = listed.iter().any(|k| k.contains("amx"));
    assert!(!tile_permission_requested());
    choice();
    assert_eq!(tile_permission_requested(), amx, "{listed:?}");
}

#[test]
fn the_tile_permission_waits_for_a_layer_on_amx() {
    run_child("child_lists_kernels", "portable");
    run_child("child_lists_kernels", "avx2");
}
