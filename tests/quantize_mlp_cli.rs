//! The `quantize_mlp` example run as a user runs it: a PyTorch-style MLP
//! file and CSV data in, accuracies and predictions out, and every wrong
//! input a one-line error with exit code 2.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::SystemTime;

use qlinear::{FloatSequential, FusedActivation};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use safetensors::{serialize, tensor::TensorView, Dtype};

/// Widths of the fixture model, input first: 8 → 16 → 12 → 3.
const WIDTHS: [usize; 4] = [8, 16, 12, 3];

/// Layer names as PyTorch's `nn.Sequential(Linear, ReLU, Linear, ReLU, Linear)` saves them.
const LAYERS: [&str; 3] = ["net.0", "net.2", "net.4"];

/// Rows of the test CSV.
const TEST_ROWS: usize = 300;

/// The example binary that `cargo test` builds next to this test's `deps/`
/// directory; a target filter such as `--test quantize_mlp_cli` skips that
/// build, so an older binary than its sources is refused rather than tested.
fn example_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(find_example_binary)
}

/// The checked path of [`example_binary`], found once.
fn find_example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("quantize_mlp{}", std::env::consts::EXE_SUFFIX));
    let rebuild =
        "run `cargo test` (it builds the examples) or `cargo build --example quantize_mlp`";
    let built = fs::metadata(&binary).and_then(|m| m.modified());
    let built = built.unwrap_or_else(|_| panic!("{} is missing: {rebuild}", binary.display()));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut sources = vec![root.join("src")];
    let mut newest = modified(&root.join("examples/quantize_mlp.rs"));
    while let Some(dir) = sources.pop() {
        for entry in fs::read_dir(&dir)
            .expect("src/")
            .map(|e| e.expect("an entry").path())
        {
            if entry.is_dir() {
                sources.push(entry);
            } else {
                newest = newest.max(modified(&entry));
            }
        }
    }
    assert!(
        built >= newest,
        "{} is older than its sources: {rebuild}",
        binary.display()
    );
    binary
}

/// When the file at `path` was last written.
fn modified(path: &Path) -> SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("a source file's time")
}

/// A temporary directory holding the model and CSV files, removed at the end.
struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    /// The model file, a calibration CSV and a test CSV, the same for every test.
    fn new(test: &str) -> Fixture {
        let name = format!("qlinear-quantize-mlp-{}-{test}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a temporary directory");
        let fixture = Fixture { dir };
        let mut rng = StdRng::seed_from_u64(20);
        let model_file = model_file(&mut rng);
        fs::write(fixture.path("model.safetensors"), &model_file).expect("write the model");
        let model = FloatSequential::from_safetensors(&model_file, &layers()).expect("the model");
        fs::write(fixture.path("calib.csv"), csv(&model, &mut rng, 512)).expect("write");
        fs::write(fixture.path("test.csv"), csv(&model, &mut rng, TEST_ROWS)).expect("write");
        fixture
    }

    /// The path of `name` in the fixture directory.
    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// Runs the example with `args`, file names taken relative to the fixture directory.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(example_binary())
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("the example runs")
    }

    /// Runs the f32 form of the command line with `extra` options; it must succeed.
    fn quantize(&self, extra: &[&str]) -> String {
        let mut args = vec![
            "--weights",
            "model.safetensors",
            "--layers",
            "net.0,net.2,net.4",
        ];
        args.extend(["--calibrate", "calib.csv", "--evaluate", "test.csv"]);
        args.extend(extra);
        succeeded(&self.run(&args))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The MLP's tensors, weights out × in with PyTorch's default
/// initialisation range (±1/√in).
fn mlp_tensors(rng: &mut StdRng) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut tensors = Vec::new();
    for (name, pair) in LAYERS.iter().zip(WIDTHS.windows(2)) {
        let (inputs, outputs) = (pair[0], pair[1]);
        let bound = 1.0 / (inputs as f32).sqrt();
        let mut values =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..bound)).collect() };
        tensors.push((
            format!("{name}.weight"),
            vec![outputs, inputs],
            values(outputs * inputs),
        ));
        tensors.push((format!("{name}.bias"), vec![outputs], values(outputs)));
    }
    tensors
}

/// The tensors as a safetensors file of f32 values.
fn safetensors_file(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, values)| values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors.iter().zip(&bytes).map(|((name, shape, _), bytes)| {
        let view = TensorView::new(Dtype::F32, shape.clone(), bytes).expect("a tensor");
        (name.clone(), view)
    });
    serialize(views, None).expect("serialize")
}

/// The model file of an MLP whose last bias centres its outputs on
/// Gaussian inputs, so that every class is predicted about as often.
fn model_file(rng: &mut StdRng) -> Vec<u8> {
    let mut tensors = mlp_tensors(rng);
    let model = FloatSequential::from_safetensors(&safetensors_file(&tensors), &layers())
        .expect("the model");
    let x = ndarray::Array2::from_shape_simple_fn((2000, WIDTHS[0]), || gaussian(rng));
    let mean = model
        .forward(&x)
        .expect("f32 forward")
        .mean_axis(ndarray::Axis(0));
    let last_bias = &mut tensors.last_mut().expect("the last bias").2;
    for (b, m) in last_bias.iter_mut().zip(mean.expect("rows")) {
        *b -= m;
    }
    safetensors_file(&tensors)
}

/// The layers with ReLU between them, as the example reads them.
fn layers() -> Vec<(&'static str, FusedActivation)> {
    let activations = [
        FusedActivation::Relu,
        FusedActivation::Relu,
        FusedActivation::None,
    ];
    LAYERS.into_iter().zip(activations).collect()
}

/// `rows` samples labelled by the f32 model's own argmax, as CSV. Samples
/// whose two largest outputs are within 1e-3 are left out, so that no
/// order of summation can change an f32 label.
fn csv(model: &FloatSequential, rng: &mut StdRng, rows: usize) -> String {
    let mut text = String::new();
    let mut kept = 0;
    while kept < rows {
        let x = ndarray::Array2::from_shape_simple_fn((1, WIDTHS[0]), || gaussian(rng));
        let y = model.forward(&x).expect("f32 forward");
        let mut outputs: Vec<(usize, f32)> = y.iter().copied().enumerate().collect();
        outputs.sort_by(|a, b| b.1.total_cmp(&a.1));
        if outputs[0].1 - outputs[1].1 < 1e-3 {
            continue;
        }
        let features: Vec<String> = x.iter().map(|v| v.to_string()).collect();
        text += &format!("{},{}\n", outputs[0].0, features.join(","));
        kept += 1;
    }
    text
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut StdRng) -> f32 {
    let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
    ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
}

/// The stdout of a run that must have exited with 0.
fn succeeded(output: &Output) -> String {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "exit {:?}; stderr: {stderr}",
        output.status
    );
    stdout.into_owned()
}

/// The value of the `int8 accuracy: X %` line.
fn int8_accuracy(stdout: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("int8 accuracy: "))
        .expect("int8 line");
    let value = line
        .trim_start_matches("int8 accuracy: ")
        .trim_end_matches(" %");
    value.parse().expect("a number")
}

#[test]
fn quantizes_with_defaults_and_writes_one_prediction_per_row() {
    let fixture = Fixture::new("defaults");
    let stdout = fixture.quantize(&["--predictions", "labels.txt"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0], "f32 accuracy: 100.00 %");
    assert!(int8_accuracy(&stdout) >= 95.0, "{stdout}");
    let predictions = fs::read_to_string(fixture.path("labels.txt")).expect("predictions");
    assert_eq!(predictions.lines().count(), TEST_ROWS);
    assert!(predictions
        .lines()
        .all(|l| l.parse::<usize>().is_ok_and(|p| p < 3)));
}

#[test]
fn saved_model_loads_to_the_same_accuracy_and_predictions() {
    let fixture = Fixture::new("save-load");
    let saved = [
        "--save",
        "model.int8.safetensors",
        "--predictions",
        "saved.txt",
    ];
    let stdout = fixture.quantize(&saved);
    let load = ["--load", "model.int8.safetensors", "--evaluate", "test.csv"];
    let loaded = succeeded(&fixture.run(&[&load[..], &["--predictions", "loaded.txt"]].concat()));
    let int8_line = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("int8"))
            .map(str::to_string)
    };
    assert_eq!(
        loaded.lines().count(),
        1,
        "no f32 model, no f32 line: {loaded}"
    );
    assert_eq!(int8_line(&loaded), int8_line(&stdout));
    let read = |name| fs::read_to_string(fixture.path(name)).expect("predictions");
    assert_eq!(read("loaded.txt"), read("saved.txt"));
}

#[test]
fn every_observer_and_per_tensor_weights_run() {
    let fixture = Fixture::new("observers");
    for options in [
        &["--observer", "minmax"][..],
        &["--observer", "histogram"],
        &["--observer", "percentile"],
        &["--per-tensor"],
        &["--observer", "minmax", "--per-tensor"],
    ] {
        let stdout = fixture.quantize(options);
        let accuracy = int8_accuracy(&stdout);
        assert!((0.0..=100.0).contains(&accuracy));
        eprintln!("{options:?}: int8 accuracy {accuracy:.2} %");
    }
}

#[test]
fn help_prints_the_usage_and_exits_0() {
    let fixture = Fixture::new("help");
    for flag in ["--help", "-h"] {
        let stdout = succeeded(&fixture.run(&[flag]));
        assert!(
            stdout.contains("--observer") && stdout.contains("default"),
            "{stdout}"
        );
    }
}

#[test]
fn wrong_inputs_are_one_line_errors_with_exit_code_2() {
    let fixture = Fixture::new("errors");
    let test_csv = fs::read_to_string(fixture.path("test.csv")).expect("test.csv");
    let with_row_3 = |row: &str| {
        let mut lines: Vec<&str> = test_csv.lines().collect();
        lines[2] = row;
        lines.join("\n")
    };
    let bad_rows = [
        ("bad.csv", "1,0.5,abc,0,0,0,0,0,0", "line 3: feature 2"),
        ("negative.csv", "-1,0,0,0,0,0,0,0,0", "line 3: label \"-1\""),
        (
            "fraction.csv",
            "1.5,0,0,0,0,0,0,0,0",
            "line 3: label \"1.5\"",
        ),
        (
            "short.csv",
            "1,0,0,0",
            "line 3: 3 features, but the model takes 8",
        ),
    ];
    for (name, row, _) in bad_rows {
        fs::write(fixture.path(name), with_row_3(row)).expect("write");
    }
    let (model, all) = ("--weights model.safetensors", "--layers net.0,net.2,net.4");
    let (calib, test) = ("--calibrate calib.csv", "--evaluate test.csv");
    let mut cases = vec![
        (
            format!("--weights absent.safetensors {all} {calib} {test}"),
            "absent.safetensors",
        ),
        (
            format!("{model} {all} {calib} --evaluate absent.csv"),
            "absent.csv",
        ),
        (
            format!("{model} --layers net.0,net.9 {calib} {test}"),
            "net.9.weight",
        ),
        (
            format!("{model} --layers net.0,net.4 {calib} {test}"),
            "net.4 cannot follow net.0",
        ),
        (format!("{model} {calib} {test}"), "missing --layers"),
        (format!("{test} --frobnicate"), "--frobnicate"),
        (format!("--load x {model} {test}"), "--load"),
    ];
    for (name, _, expected) in bad_rows {
        let args = format!("{model} {all} {calib} --evaluate {name}");
        cases.push((args, expected));
    }
    for (args, expected) in cases {
        let output = fixture.run(&args.split(' ').collect::<Vec<_>>());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: {stderr:?} lacks {expected:?}"
        );
    }
}
