"""Benchmark ONNX Runtime's integer matmuls, the peer qlinear's own
benches compare against.

Operators (each a one-node ONNX model; A an m x k graph input, B a k x n
constant initializer so ORT can prepack it, as in a deployed model):

  MatMulInteger u8xu8   uint8 A, uint8 B, int32 out (zero points 0)
  MatMulInteger u8xs8   uint8 A, int8 B,  int32 out (zero points 0)
  MatMulInteger s8xs8   int8 A,  int8 B,  int32 out (zero points 0)
  QLinearMatMul u8xs8   uint8 A, int8 B,  uint8 out
  QLinearMatMul s8xs8   int8 A,  int8 B,  int8 out
  dynamic u8xs8         float32 A, quantized on every call, int8 B, float32
                        out: the graph onnxruntime.quantization's
                        quantize_dynamic writes for a MatMul
                        (DynamicQuantizeLinear, MatMulInteger, Cast, Mul),
                        which ORT's optimizer fuses into its own
                        DynamicQuantizeMatMul; B per tensor and symmetric

Sessions use the CPU execution provider, sequential execution,
inter_op_num_threads 1 and intra_op_num_threads from --threads. Each
timing is the median over repeated session.run calls after warm-up;
GOPS = 2*m*k*n / median seconds / 1e9 (input feeding included, as a
caller sees it). On random full-range data the script also reports the
fraction of outputs that differ from the exact result (MatMulInteger: the
exact int64 product; QLinearMatMul: shared/PEERS.md's requantization
applied to the exact accumulator), to show whether a fast path is exact.
The dynamic op is timed only: its float outputs have no single right value
(inputs uniform in [-3, 3], weights in [-0.5, 0.5], as torch_bench.py's
dynamic Linear and qlinear's `dynamic` bench).

    pip install onnxruntime==1.32.0 onnx numpy
    python3 benches/peers/ort_bench.py --quick              # validation only
    python3 benches/peers/ort_bench.py --threads 1,2 --json /tmp/ort_bench.json
    python3 benches/peers/ort_bench.py --shapes 1x4096x4096,512x512x512 --ops qlinear_s8s8
    bash benches/report.sh     # runs this script too, for docs/benchmarks.md
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts", "peers"))
from common import (add_benchmark_arguments, cpu_description, exact_matmul, f32,  # noqa: E402
                    matmul_integer_model, median_time, onnx_model, onnx_requantize,
                    ort_session, parse_benchmark_arguments, parse_shapes,
                    qlinear_matmul_model)

# name -> (operator, A dtype, B dtype)
OPS = {
    "matmulinteger_u8u8": ("MatMulInteger", np.uint8, np.uint8),
    "matmulinteger_u8s8": ("MatMulInteger", np.uint8, np.int8),
    "matmulinteger_s8s8": ("MatMulInteger", np.int8, np.int8),
    "qlinear_u8s8": ("QLinearMatMul", np.uint8, np.int8),
    "qlinear_s8s8": ("QLinearMatMul", np.int8, np.int8),
    "dynamic_u8s8": ("Dynamic", np.float32, np.int8),
}
LABEL = {
    "matmulinteger_u8u8": "MatMulInteger u8xu8",
    "matmulinteger_u8s8": "MatMulInteger u8xs8",
    "matmulinteger_s8s8": "MatMulInteger s8xs8",
    "qlinear_u8s8": "QLinearMatMul u8xs8",
    "qlinear_s8s8": "QLinearMatMul s8xs8",
    "dynamic_u8s8": "dynamic MatMul u8xs8 (f32 in/out)",
}


def full_range(rng, dtype, shape):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape, dtype=np.int16).astype(dtype)


def dynamic_matmul_model(m, k, n, w_real):
    """Y = A·W in float32 as quantize_dynamic rewrites a MatMul: A
    quantized per call by DynamicQuantizeLinear (uint8, asymmetric), W
    (k x n float32) stored as int8 per tensor and symmetric."""
    from onnx import TensorProto, helper, numpy_helper
    b_scale = np.float32(np.abs(w_real).max() / 127.0)
    b = np.clip(np.rint(w_real / b_scale), -127, 127).astype(np.int8)
    inits = [
        numpy_helper.from_array(np.ascontiguousarray(b), "b"),
        numpy_helper.from_array(np.array(b_scale, dtype=np.float32), "b_scale"),
        numpy_helper.from_array(np.array(0, dtype=np.int8), "b_zero_point"),
    ]
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["a"], ["a_q", "a_scale", "a_zero_point"]),
        helper.make_node("MatMulInteger", ["a_q", "b", "a_zero_point", "b_zero_point"], ["acc"]),
        helper.make_node("Mul", ["a_scale", "b_scale"], ["scale"]),
        helper.make_node("Cast", ["acc"], ["acc_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["acc_f", "scale"], ["y"]),
    ]
    inputs = [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])]
    return onnx_model(nodes, inputs, outputs, inits)


def build(op, m, k, n, a_dtype, b):
    """The model for one op and its checker: a function from (A, exact
    accumulator, output) to the number of wrong outputs."""
    kind, _, _ = OPS[op]
    if kind == "MatMulInteger":
        model = matmul_integer_model(m, k, n, a_dtype, b)
        return model, lambda acc, y: int((y.astype(np.int64) != acc).sum())
    # QLinearMatMul: scales that spread the outputs over the output range
    info = np.iinfo(a_dtype)
    y_zp = (int(info.min) + int(info.max) + 1) // 2
    a_s, b_s = f32(0.02), np.array([0.01], dtype=np.float32)
    spread = 3.0 * 74.0 * 74.0 * np.sqrt(k)  # ~3 sigma of a full-range accumulator
    y_s = f32(float(a_s * b_s[0]) * spread / 120.0)
    model = qlinear_matmul_model(m, k, n, a_dtype, a_s, 0, b, b_s, [0], y_s, y_zp)
    return model, lambda acc, y: int((y.astype(np.int64) != onnx_requantize(
        acc, a_s, b_s, y_s, y_zp, int(info.min), int(info.max))).sum())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_benchmark_arguments(ap, "comma-separated intra_op_num_threads values")
    ap.add_argument("--ops", default=",".join(OPS), help="comma-separated, from: " + ", ".join(OPS))
    args = parse_benchmark_arguments(ap)

    import onnxruntime as ort
    threads = [int(t) for t in args.threads.split(",")]
    shapes = parse_shapes(args.shapes)
    ops = [o.strip() for o in args.ops.split(",")]
    for o in ops:
        if o not in OPS:
            sys.exit("unknown op %r; choose from %s" % (o, ", ".join(OPS)))

    rng = np.random.default_rng(args.seed)
    results = []
    for (m, k, n) in shapes:
        data = {}  # per (A dtype, B dtype): inputs and exact accumulator
        for op in ops:
            kind, a_dtype, b_dtype = OPS[op]
            key = (np.dtype(a_dtype).name, np.dtype(b_dtype).name)
            if key not in data and kind == "Dynamic":
                a = rng.uniform(-3.0, 3.0, size=(m, k)).astype(np.float32)
                data[key] = (a, rng.uniform(-0.5, 0.5, size=(k, n)).astype(np.float32), None)
            elif key not in data:
                a, b = full_range(rng, a_dtype, (m, k)), full_range(rng, b_dtype, (k, n))
                data[key] = (a, b, exact_matmul(a, b))
            a, b, acc = data[key]
            try:
                if kind == "Dynamic":
                    model, count_wrong = dynamic_matmul_model(m, k, n, b), None
                else:
                    model, count_wrong = build(op, m, k, n, a_dtype, b)
            except Exception as exc:  # e.g. an op / type pair ORT does not implement
                results.append({"op": op, "m": m, "k": k, "n": n, "error": str(exc)[:200]})
                continue
            for t in threads:
                row = {"op": op, "label": LABEL[op], "m": m, "k": k, "n": n, "threads": t}
                try:
                    sess = ort_session(model, intra_threads=t)
                    feeds = {"a": a}
                    sec, runs, y = median_time(lambda s=sess: s.run(None, feeds)[0],
                                               args.warmup, args.reps, args.min_seconds)
                except Exception as exc:
                    row["error"] = str(exc)[:200]
                    results.append(row)
                    continue
                row.update({"median_ms": sec * 1e3, "runs": runs,
                            "gops": 2.0 * m * k * n / sec / 1e9})
                if count_wrong:
                    row["wrong_fraction"] = count_wrong(acc, y) / y.size
                results.append(row)
                del sess
            print("  done %s %dx%dx%d" % (op, m, k, n), file=sys.stderr)

    title = "ONNX Runtime %s integer matmul, %s%s" % (
        ort.__version__, cpu_description()["cpu"], " (--quick: NOT a measurement)" if args.quick else "")
    print("### " + title)
    print()
    print("| op | m x k x n | threads | median ms | GOPS | wrong outputs |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in results:
        shape = "%d x %d x %d" % (r["m"], r["k"], r["n"])
        if "error" in r:
            print("| %s | %s | %s | error: %s | | |" % (LABEL.get(r["op"], r["op"]), shape,
                                                      r.get("threads", "-"), r["error"].replace("|", "/")))
            continue
        wrong = "%.4f%%" % (100.0 * r["wrong_fraction"]) if "wrong_fraction" in r else "–"
        print("| %s | %s | %d | %.3f | %.1f | %s |" % (
            r["label"], shape, r["threads"], r["median_ms"], r["gops"], wrong))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"title": title, "onnxruntime": ort.__version__, "machine": cpu_description(),
                       "quick": args.quick, "warmup": args.warmup, "min_reps": args.reps,
                       "min_seconds": args.min_seconds, "results": results}, fh, indent=1)
            fh.write("\n")


if __name__ == "__main__":
    main()
