//! Quantizes a PyTorch MLP saved as safetensors to int8 and measures its
//! accuracy on labelled CSV data, or evaluates an int8 model saved before.
//!
//! ```text
//! cargo run --release --example quantize_mlp -- \
//!     --weights model.safetensors --layers net.0,net.2,net.4 \
//!     --calibrate calib.csv --evaluate test.csv \
//!     [--observer minmax|histogram|percentile] [--per-tensor] \
//!     [--save model.int8.safetensors] [--predictions labels.txt]
//! cargo run --release --example quantize_mlp -- \
//!     --load model.int8.safetensors --evaluate test.csv [--predictions labels.txt]
//! ```
//!
//! CSV files have no header and one sample per row: the integer label, then
//! the features. ReLU follows every named layer but the last; a sample's
//! prediction is the index of the largest output (the first on a tie).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use ndarray::{Array2, ArrayView2, Axis};
use qlinear::{
    ConvertOptions, FloatSequential, FusedActivation, HistogramObserver, MinMaxObserver, Observer,
    PercentileObserver, QuantError, QuantizedSequential, WeightGranularity,
};

const USAGE: &str = "\
Quantize a PyTorch MLP (Linear, ReLU, ..., Linear) saved as safetensors to int8.

usage:
  quantize_mlp --weights FILE --layers NAMES --calibrate CSV --evaluate CSV
               [--observer minmax|histogram|percentile] [--per-tensor]
               [--save FILE] [--predictions FILE]
  quantize_mlp --load FILE --evaluate CSV [--predictions FILE]

options:
  --weights FILE      the f32 model: safetensors, PyTorch's names, weights out x in
  --layers NAMES      its Linear layers in order, e.g. net.0,net.2,net.4 (ReLU between them)
  --calibrate CSV     samples the activation ranges are measured on
  --evaluate CSV      samples the accuracy is measured on
  --observer KIND     how activation ranges are chosen; default histogram (PyTorch's
                      default: clips outliers where that lowers the error), or minmax
                      (the whole range), or percentile (0.01 % to 99.99 %)
  --per-tensor        one weight scale per layer; default one per output channel,
                      symmetric (more accurate where channels differ in range)
  --save FILE         write the int8 model (safetensors)
  --load FILE         evaluate an int8 model written by --save
  --predictions FILE  write the int8 model's predicted label per sample, one per line
  -h, --help          print this help

CSV: no header; per row the integer label, then the features.
Prints the f32 accuracy (with --weights) and the int8 accuracy.
On an error: one line on stderr starting with 'error: ', exit code 2.";

/// Rows per calibration or inference batch: bounds the memory of a large CSV.
const BATCH_ROWS: usize = 256;

/// Lower and upper percentiles of `--observer percentile` (TensorRT's usual choice).
const PERCENTILES: (f64, f64) = (0.01, 99.99);

/// What to run, checked against the usage.
struct Command {
    source: Source,
    evaluate: String,
    predictions: Option<String>,
}

/// Where the int8 model comes from.
enum Source {
    /// Quantize an f32 model.
    Quantize(Quantize),
    /// Load an int8 model saved by `--save`.
    Load(String),
}

/// An f32 model file, its layers, and how to quantize it.
struct Quantize {
    weights: String,
    layers: Vec<String>,
    calibrate: String,
    observer: ObserverKind,
    granularity: WeightGranularity,
    save: Option<String>,
}

/// The activation observers offered by `--observer`.
#[derive(Clone, Copy)]
enum ObserverKind {
    MinMax,
    Histogram,
    Percentile,
}

/// Labelled samples read from a CSV file.
struct Dataset {
    labels: Vec<usize>,
    features: Array2<f32>,
}

fn main() -> ExitCode {
    let outcome = parse_args(std::env::args_os().skip(1)).and_then(|command| match command {
        Some(command) => run(&command),
        None => print(USAGE),
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.replace('\n', " "));
            ExitCode::from(2)
        }
    }
}

/// Quantizes or loads the model, then measures and writes its predictions.
fn run(command: &Command) -> Result<(), String> {
    let (float, int8) = match &command.source {
        Source::Quantize(q) => {
            let (float, int8) = quantize(q)?;
            (Some(float), int8)
        }
        Source::Load(path) => {
            let int8 = QuantizedSequential::from_safetensors(&read(path)?);
            (None, int8.map_err(|e| format!("{path}: {e}"))?)
        }
    };
    let test = read_csv(&command.evaluate, int8.in_features(), int8.out_features())?;
    if let Some(float) = &float {
        let predicted = predict(&test.features, |x| float.forward(&x))?;
        print_accuracy("f32", &predicted, &test.labels)?;
    }
    let predicted = predict(&test.features, |x| int8.forward_f32(&x))?;
    print_accuracy("int8", &predicted, &test.labels)?;
    if let Some(path) = &command.predictions {
        let lines: String = predicted.iter().map(|p| format!("{p}\n")).collect();
        std::fs::write(path, lines).map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    Ok(())
}

/// Load → calibrate → convert → save: all the quantization there is.
fn quantize(q: &Quantize) -> Result<(FloatSequential, QuantizedSequential), String> {
    let model = FloatSequential::from_safetensors(&read(&q.weights)?, &relu_between(&q.layers))
        .map_err(|e| format!("{}: {}", q.weights, name_layers(e, &q.layers)))?;
    let samples = read_csv(&q.calibrate, model.in_features(), model.out_features())?;
    let options = ConvertOptions {
        weight_granularity: q.granularity,
        ..ConvertOptions::default()
    };
    let x = samples.features.view();
    let int8 = match q.observer {
        ObserverKind::Histogram => convert(&model, x, HistogramObserver::new(), &options),
        ObserverKind::MinMax => convert(&model, x, MinMaxObserver::new(), &options),
        ObserverKind::Percentile => PercentileObserver::new(PERCENTILES.0, PERCENTILES.1)
            .and_then(|observer| convert(&model, x, observer, &options)),
    };
    let int8 = int8.map_err(|e| format!("quantizing {}: {e}", q.weights))?;
    if let Some(path) = &q.save {
        let bytes = int8.to_safetensors().map_err(|e| format!("{path}: {e}"))?;
        std::fs::write(path, bytes).map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    Ok((model, int8))
}

/// Calibrates `model` on `x` in batches with copies of `observer`, then converts it.
fn convert<O: Observer + Clone>(
    model: &FloatSequential,
    x: ArrayView2<'_, f32>,
    observer: O,
    options: &ConvertOptions,
) -> Result<QuantizedSequential, QuantError> {
    let calibration = model.calibrate(x.axis_chunks_iter(Axis(0), BATCH_ROWS), observer)?;
    calibration.convert(model, options)
}

/// Each layer name with ReLU after it, but none after the last.
fn relu_between(names: &[String]) -> Vec<(&str, FusedActivation)> {
    let mut layers: Vec<_> = names
        .iter()
        .map(|n| (n.as_str(), FusedActivation::Relu))
        .collect();
    if let Some(last) = layers.last_mut() {
        last.1 = FusedActivation::None;
    }
    layers
}

/// The error, with the user's layer names where it counts layers from 0.
fn name_layers(e: QuantError, names: &[String]) -> String {
    match &e {
        QuantError::LayerMismatch { layer, what } if *layer >= 1 && *layer < names.len() => {
            format!(
                "layer {} cannot follow {}: {what}",
                names[*layer],
                names[layer - 1]
            )
        }
        _ => e.to_string(),
    }
}

/// The predicted class of every row of `x`, run through `forward` in batches.
fn predict(
    x: &Array2<f32>,
    forward: impl Fn(ArrayView2<'_, f32>) -> Result<Array2<f32>, QuantError>,
) -> Result<Vec<usize>, String> {
    let mut predicted = Vec::with_capacity(x.nrows());
    for batch in x.axis_chunks_iter(Axis(0), BATCH_ROWS) {
        let y = forward(batch).map_err(|e| format!("inference: {e}"))?;
        predicted.extend(y.rows().into_iter().map(|row| argmax(row.iter().copied())));
    }
    Ok(predicted)
}

/// The index of the largest value, the first one on a tie (as `torch.argmax`).
fn argmax(values: impl Iterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// Prints the percentage of predictions equal to their label.
fn print_accuracy(model: &str, predicted: &[usize], labels: &[usize]) -> Result<(), String> {
    let correct = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    let percent = 100.0 * correct as f64 / labels.len() as f64;
    print(&format!("{model} accuracy: {percent:.2} %"))
}

/// Writes a line to stdout; an error rather than a panic if it is closed.
fn print(line: &str) -> Result<(), String> {
    writeln!(std::io::stdout(), "{line}").map_err(|e| format!("cannot write to stdout: {e}"))
}

/// The bytes of the file at `path`.
fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))
}

/// The samples of a CSV file: each row a label below `classes`, then `width` features.
fn read_csv(path: &str, width: usize, classes: usize) -> Result<Dataset, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let (mut labels, mut values) = (Vec::new(), Vec::new());
    let rows = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    for (i, line) in rows {
        let label = parse_row(line, width, classes, &mut values)
            .map_err(|what| format!("{path} line {}: {what}", i + 1))?;
        labels.push(label);
    }
    if labels.is_empty() {
        return Err(format!("{path}: no samples"));
    }
    let features = Array2::from_shape_vec((labels.len(), width), values)
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(Dataset { labels, features })
}

/// The label of one CSV row; its features are appended to `values`.
fn parse_row(
    line: &str,
    width: usize,
    classes: usize,
    values: &mut Vec<f32>,
) -> Result<usize, String> {
    let mut fields = line.split(',').map(str::trim);
    let label = fields.next().unwrap_or_default();
    let label: usize = label
        .parse()
        .map_err(|_| format!("label {label:?} is not a non-negative integer"))?;
    if label >= classes {
        return Err(format!(
            "label {label}, but the model has {classes} outputs"
        ));
    }
    let start = values.len();
    for (j, field) in fields.enumerate() {
        match field.parse::<f32>() {
            Ok(v) if v.is_finite() => values.push(v),
            _ => return Err(format!("feature {} {field:?} is not a number", j + 1)),
        }
    }
    let found = values.len() - start;
    if found != width {
        return Err(format!("{found} features, but the model takes {width}"));
    }
    Ok(label)
}

/// The command line as a [`Command`]; `None` for `--help`.
fn parse_args(args: impl Iterator<Item = OsString>) -> Result<Option<Command>, String> {
    let (mut given, mut per_tensor) = (BTreeMap::new(), false);
    let mut args = args.map(|a| {
        a.into_string()
            .map_err(|a| format!("argument {a:?} is not UTF-8"))
    });
    while let Some(arg) = args.next().transpose()? {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--per-tensor" => per_tensor = true,
            option if TAKING_A_VALUE.split(' ').any(|o| o == option) => {
                let value = args.next().transpose()?.filter(|v| !v.starts_with("--"));
                let value = value.ok_or_else(|| format!("{option} needs a value (see --help)"))?;
                if given.insert(option.to_string(), value).is_some() {
                    return Err(format!("{option} is given twice"));
                }
            }
            _ => return Err(format!("unknown option {arg:?} (see --help)")),
        }
    }
    command(given, per_tensor).map(Some)
}

/// The options that are followed by a value.
const TAKING_A_VALUE: &str =
    "--weights --layers --calibrate --evaluate --observer --save --load --predictions";

/// The options given, checked against the two forms of the usage.
fn command(mut given: BTreeMap<String, String>, per_tensor: bool) -> Result<Command, String> {
    let evaluate = given
        .remove("--evaluate")
        .ok_or("missing --evaluate CSV (see --help)")?;
    let predictions = given.remove("--predictions");
    let source = match (given.remove("--weights"), given.remove("--load")) {
        (Some(_), Some(_)) => return Err("--load and --weights exclude each other".into()),
        (None, None) => return Err("missing --weights FILE or --load FILE (see --help)".into()),
        (None, Some(load)) => match given.keys().next() {
            Some(option) => return Err(format!("{option} needs --weights, not --load")),
            None if per_tensor => return Err("--per-tensor needs --weights, not --load".into()),
            None => Source::Load(load),
        },
        (Some(weights), None) => Source::Quantize(Quantize {
            weights,
            layers: parse_layers(given.remove("--layers").ok_or("missing --layers NAMES")?)?,
            calibrate: given
                .remove("--calibrate")
                .ok_or("missing --calibrate CSV")?,
            observer: parse_observer(given.get("--observer").map_or("histogram", |o| o))?,
            granularity: match per_tensor {
                true => WeightGranularity::PerTensor,
                false => WeightGranularity::PerChannel,
            },
            save: given.remove("--save"),
        }),
    };
    Ok(Command {
        source,
        evaluate,
        predictions,
    })
}

/// `net.0,net.2,net.4` as its names.
fn parse_layers(list: String) -> Result<Vec<String>, String> {
    let names: Vec<String> = list.split(',').map(|n| n.trim().to_string()).collect();
    if names.iter().any(String::is_empty) {
        return Err(format!("--layers {list:?} has an empty layer name"));
    }
    Ok(names)
}

/// The observer named by `--observer`.
fn parse_observer(name: &str) -> Result<ObserverKind, String> {
    match name {
        "minmax" => Ok(ObserverKind::MinMax),
        "histogram" => Ok(ObserverKind::Histogram),
        "percentile" => Ok(ObserverKind::Percentile),
        _ => Err(format!(
            "--observer {name:?}: expected minmax, histogram or percentile"
        )),
    }
}
