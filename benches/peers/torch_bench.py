"""Benchmark PyTorch's quantized Linear layers, beside ONNX Runtime the
other peer qlinear is compared with, on the shapes of qlinear's own benches.

Two kinds (--kinds), each timed with every quantized engine in --engines
and torch.set_num_threads(t) for each t in --threads; each timing is the
median over repeated calls after warm-up, the output's allocation
included, as a caller sees it. GOPS = 2*m*k*n / median seconds / 1e9.

static: torch.ao.nn.quantized.Linear as a converted model runs it: quint8
input (zero point 128), qint8 weight (per tensor, zero point 0) prepacked
once at construction, quint8 output, no bias. Exactness: inputs and
weights are random over their whole ranges, and the scales are powers of
two (input 2^-6, weight 2^-7, output 2^(r-13)), so the requantization
multiplier is exactly 2^-r and every output has one right value,
clamp(round_half_even(acc / 2^r) + 128, 0, 255), where acc is the exact
int64 accumulator (r spreads the outputs over the range). The script
reports the fraction of outputs that differ from it and the largest
difference: a rounding-mode mismatch shows as differences of 1 on ties, a
saturating int16 fast path as large ones.

dynamic: torch.ao.nn.quantized.dynamic.Linear, float32 in and out, the
activations quantized on every call (PyTorch's x86 convention: uint8 with
reduce_range, per tensor), qint8 weights per tensor and symmetric, no
bias; inputs uniform in [-3, 3], weights in [-0.5, 0.5]. Timed only: its
float outputs have no single right value to compare with.

    pip install torch numpy            # the PyPI wheel (CUDA build; runs on CPU)
    python3 benches/peers/torch_bench.py --quick      # validation only
    python3 benches/peers/torch_bench.py --threads 1,2 --json /tmp/torch.json
    bash benches/report.sh     # runs this script too, for docs/benchmarks.md
"""
import argparse
import json
import math
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts", "peers"))
from common import (add_benchmark_arguments, cpu_description, exact_matmul,  # noqa: E402
                    median_time, parse_benchmark_arguments, parse_shapes)

A_ZP, A_SCALE_LOG2, W_SCALE_LOG2 = 128, -6, -7


def output_shift(k):
    """r such that acc / 2^r has a standard deviation of about 40 for
    full-range data (acc's is about 74 * 74 * sqrt(k))."""
    return max(0, round(math.log2(74.0 * 74.0 * math.sqrt(k) / 40.0)))


def expected_output(acc, r):
    y = np.round(acc.astype(np.float64) / float(2 ** r))  # half to even; exact below 2^53
    return np.clip(y.astype(np.int64) + A_ZP, 0, 255)


def make_layer(torch, w, r):
    """A quantized Linear holding w (k x n int8) with output scale such
    that the requantization multiplier is 2^-r."""
    import torch.ao.nn.quantized as nnq
    k, n = w.shape
    layer = nnq.Linear(k, n, dtype=torch.qint8)
    qw = torch._make_per_tensor_quantized_tensor(
        torch.from_numpy(np.ascontiguousarray(w.T)), 2.0 ** W_SCALE_LOG2, 0)
    layer.set_weight_bias(qw, None)
    layer.scale = 2.0 ** (A_SCALE_LOG2 + W_SCALE_LOG2 + r)
    layer.zero_point = A_ZP
    return layer


def make_dynamic_layer(torch, w_real):
    """A dynamic quantized Linear holding w_real (k x n float32) as qint8,
    per tensor and symmetric, as quantize_dynamic's default weight observer
    stores it."""
    import torch.ao.nn.quantized.dynamic as nnqd
    k, n = w_real.shape
    layer = nnqd.Linear(k, n, dtype=torch.qint8)
    bound = float(np.abs(w_real).max())
    qw = torch.quantize_per_tensor(torch.from_numpy(np.ascontiguousarray(w_real.T)),
                                   bound / 127.5, 0, torch.qint8)
    layer.set_weight_bias(qw, None)
    return layer


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_benchmark_arguments(ap, "comma-separated torch.set_num_threads values")
    ap.add_argument("--engines", default="x86,fbgemm",
                    help="comma-separated torch.backends.quantized engines (onednn ran this "
                         "layer at under 0.1 GOPS here, so it is not in the default list)")
    ap.add_argument("--kinds", default="static,dynamic",
                    help="comma-separated: static (quantized.Linear), dynamic (quantized.dynamic.Linear)")
    args = parse_benchmark_arguments(ap)

    import torch
    warnings.filterwarnings("ignore", message=".*deprecated.*")
    threads = [int(t) for t in args.threads.split(",")]
    engines = [e.strip() for e in args.engines.split(",")]
    kinds = [k.strip() for k in args.kinds.split(",")]
    for k in kinds:
        if k not in ("static", "dynamic"):
            sys.exit("unknown kind %r; choose from static, dynamic" % k)
    supported = torch.backends.quantized.supported_engines
    for e in [e for e in engines if e not in supported]:
        print("engine %r not supported here, skipped; choose from %s" % (e, ", ".join(supported)),
              file=sys.stderr)
    engines = [e for e in engines if e in supported]
    if not engines:
        sys.exit("none of the engines is supported here")

    rng = np.random.default_rng(args.seed)
    results = []
    for (m, k, n) in parse_shapes(args.shapes):
        a = rng.integers(0, 256, size=(m, k), dtype=np.int16).astype(np.uint8)
        w = rng.integers(-128, 128, size=(k, n), dtype=np.int16).astype(np.int8)
        r = output_shift(k)
        want = expected_output(exact_matmul(a, w, a_zp=A_ZP), r)
        x_real = rng.uniform(-3.0, 3.0, size=(m, k)).astype(np.float32)
        w_real = rng.uniform(-0.5, 0.5, size=(k, n)).astype(np.float32)
        for kind in kinds:
            for engine in engines:
                torch.backends.quantized.engine = engine
                op = "%s_%s" % ("linear" if kind == "static" else "dynamic", engine)
                try:
                    if kind == "static":
                        layer = make_layer(torch, w, r)
                        x = torch._make_per_tensor_quantized_tensor(
                            torch.from_numpy(a), 2.0 ** A_SCALE_LOG2, A_ZP)
                    else:
                        layer = make_dynamic_layer(torch, w_real)
                        x = torch.from_numpy(x_real)
                except Exception as exc:  # e.g. an engine that refuses this layout
                    results.append({"op": op, "m": m, "k": k, "n": n, "error": str(exc)[:200]})
                    continue
                for t in threads:
                    torch.set_num_threads(t)
                    row = {"op": op, "kind": kind, "engine": engine, "m": m, "k": k, "n": n,
                           "threads": t}
                    try:
                        sec, runs, y = median_time(lambda: layer(x), args.warmup, args.reps,
                                                   args.min_seconds)
                    except Exception as exc:
                        row["error"] = str(exc)[:200]
                        results.append(row)
                        continue
                    row.update({"median_ms": sec * 1e3, "runs": runs,
                                "gops": 2.0 * m * k * n / sec / 1e9})
                    if kind == "static":
                        diff = np.abs(y.int_repr().numpy().astype(np.int64) - want)
                        row.update({"wrong_fraction": float((diff != 0).mean()),
                                    "max_abs_error": int(diff.max(initial=0))})
                    results.append(row)
                print("  done %s %dx%dx%d" % (op, m, k, n), file=sys.stderr)

    title = "PyTorch %s quantized Linear (static: u8 x s8 -> u8; dynamic: f32 -> f32), %s%s" % (
        torch.__version__, cpu_description()["cpu"],
        " (--quick: NOT a measurement)" if args.quick else "")
    print("### " + title)
    print()
    print("| op | m x k x n | threads | median ms | GOPS | wrong outputs | max error |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in results:
        shape = "%d x %d x %d" % (row["m"], row["k"], row["n"])
        if "error" in row:
            print("| %s | %s | %s | error: %s | | | |" % (
                row["op"], shape, row.get("threads", "-"), row["error"].replace("|", "/")))
            continue
        exactness = ("%.4f%% | %d" % (100.0 * row["wrong_fraction"], row["max_abs_error"])
                     if "wrong_fraction" in row else "– | –")
        print("| %s | %s | %d | %.3f | %.1f | %s |" % (
            row["op"], shape, row["threads"], row["median_ms"], row["gops"], exactness))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"title": title, "torch": torch.__version__,
                       "engines": engines, "kinds": kinds, "machine": cpu_description(), "quick": args.quick,
                       "warmup": args.warmup, "min_reps": args.reps,
                       "min_seconds": args.min_seconds, "results": results}, fh, indent=1)
            fh.write("\n")


if __name__ == "__main__":
    main()
