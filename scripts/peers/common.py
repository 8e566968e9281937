"""Helpers shared by the peer scripts (tflite_fc.py, ort_qlinearmatmul.py,
../../benches/peers/ort_bench.py, ../../benches/peers/torch_bench.py).

Everything here is plain numpy / Python: exact rounding helpers, float32
bit-pattern helpers, a compact JSON writer, a short description of the
machine the runtimes ran on, and the benchmarks' shared options and timer.
"""
import json
import platform
import statistics
import struct
import time

import numpy as np


# --- float32 helpers ---------------------------------------------------------
def f32(x):
    """The float32 nearest to x (as a numpy float32 scalar)."""
    return np.float32(x)


def f32hex(x):
    """The 8-hex-digit IEEE-754 bit pattern of float32(x), lower case."""
    return struct.pack(">f", float(np.float32(x))).hex()


def f32_from_hex(h):
    """Inverse of f32hex: a numpy float32 from its bit pattern."""
    return np.float32(struct.unpack(">f", bytes.fromhex(h))[0])


def f32_to_json(x):
    """A float32 as a Python float (the exact f64 widening, so the decimal
    that json writes round-trips to the same float32)."""
    return float(np.float32(x))


# --- exact rounding of float arrays ------------------------------------------
def round_half_away(x):
    """Round to nearest, ties away from zero (C's round()), exactly.

    x is a float array. The fractional part x - trunc(x) is exact in binary
    floating point, so comparing it with 0.5 decides ties without the
    classic floor(x + 0.5) error on 0.49999999999999994.
    """
    x = np.asarray(x)
    t = np.trunc(x)
    frac = np.abs(x - t)
    return t + np.sign(x) * (frac >= 0.5)


def round_half_even(x):
    """Round to nearest, ties to even (numpy's rint, IEEE default)."""
    return np.rint(np.asarray(x))


# --- JSON ---------------------------------------------------------------------
def write_cases_json(path, meta, list_key, cases):
    """Write {"meta": meta, list_key: cases} as valid JSON with one case per
    line: small on disk and still readable with grep / a line-based diff."""
    with open(path, "w") as fh:
        fh.write("{\n\"meta\": ")
        fh.write(json.dumps(meta, indent=1))
        fh.write(",\n\"%s\": [\n" % list_key)
        for i, case in enumerate(cases):
            fh.write(json.dumps(case, separators=(",", ":")))
            fh.write(",\n" if i + 1 < len(cases) else "\n")
        fh.write("]\n}\n")


# --- benchmarks ----------------------------------------------------------------
DEFAULT_SHAPES = "1x4096x4096,4x4096x4096,16x1024x1024,128x1024x1024,512x512x512,256x2048x2048"


def add_benchmark_arguments(ap, threads_help):
    """The options every peer benchmark takes."""
    ap.add_argument("--quick", action="store_true",
                    help="1 warm-up and 2 timed runs per point: validates the script, not a measurement")
    ap.add_argument("--threads", default="1,2", help=threads_help)
    ap.add_argument("--shapes", default=DEFAULT_SHAPES, help="comma-separated MxKxN")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10, help="minimum timed runs per point")
    ap.add_argument("--min-seconds", type=float, default=1.0, help="minimum measuring time per point")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="also write the results to this JSON file")


def parse_benchmark_arguments(ap):
    """ap's arguments, with --quick applied."""
    args = ap.parse_args()
    if args.quick:
        args.warmup, args.reps, args.min_seconds = 1, 2, 0.0
    return args


def parse_shapes(text):
    """[(m, k, n), ...] from "MxKxN,MxKxN"."""
    return [tuple(int(v) for v in item.lower().split("x")) for item in text.split(",")]


def median_time(call, warmup, reps, min_seconds):
    """(median seconds, runs, last result) of call() over at least `reps`
    runs and at least `min_seconds` of measuring, after `warmup` runs."""
    result = None
    for _ in range(warmup):
        result = call()
    times = []
    start = time.perf_counter()
    while len(times) < reps or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times), result


# --- machine description ------------------------------------------------------
def cpu_description():
    """Model name and the SIMD flags that decide which int8 kernels the
    runtimes pick (Linux only; other systems get platform.processor())."""
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and model in ("", "unknown", "x86_64"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    interesting = ["avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8"]
    return {
        "machine": platform.machine(),
        "cpu": model,
        "simd": [f for f in interesting if f in flags],
    }


# --- ONNX Runtime helpers (onnx / onnxruntime are imported only when used) ---
ONNX_OPSET = 21


def onnx_model(nodes, inputs, outputs, initializers, name="qlinear_peer"):
    """A single-graph ONNX model at opset ONNX_OPSET, checked by onnx."""
    import onnx
    from onnx import helper
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              producer_name="qlinear scripts/peers")
    onnx.checker.check_model(model)
    return model


def ort_session(model, intra_threads=1):
    """An ONNX Runtime CPU session: sequential execution, inter_op 1."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = intra_threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), sess_options=so,
                                providers=["CPUExecutionProvider"])


def _np_to_elem(dtype):
    from onnx import TensorProto
    return {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8,
            np.dtype(np.int32): TensorProto.INT32, np.dtype(np.float32): TensorProto.FLOAT}[np.dtype(dtype)]


def qlinear_matmul_model(m, k, n, a_dtype, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp,
                         b_is_input=False):
    """Y = QLinearMatMul(A, ...) with A (m x k) a graph input. B (k x n, int8
    or uint8) and all scales / zero points are constant initializers (as in
    a deployed model, so ORT may prepack B) unless b_is_input, when B is a
    second graph input. b_scale / b_zp are 1-element (per tensor) or
    n-element (per column) arrays; they are written as scalars when of
    length 1."""
    from onnx import helper, numpy_helper
    a_dtype = np.dtype(a_dtype)
    y_dtype = a_dtype  # QLinearMatMul's output type follows A's here
    b_scale = np.asarray(b_scale, dtype=np.float32)
    b_zp = np.asarray(b_zp, dtype=b.dtype)
    if b_scale.size == 1:
        b_scale, b_zp = b_scale.reshape(()), b_zp.reshape(())
    inits = [
        numpy_helper.from_array(np.array(a_scale, dtype=np.float32), "a_scale"),
        numpy_helper.from_array(np.array(a_zp, dtype=a_dtype), "a_zero_point"),
        numpy_helper.from_array(b_scale, "b_scale"),
        numpy_helper.from_array(b_zp, "b_zero_point"),
        numpy_helper.from_array(np.array(y_scale, dtype=np.float32), "y_scale"),
        numpy_helper.from_array(np.array(y_zp, dtype=y_dtype), "y_zero_point"),
    ]
    inputs = [helper.make_tensor_value_info("a", _np_to_elem(a_dtype), [m, k])]
    if b_is_input:
        inputs.append(helper.make_tensor_value_info("b", _np_to_elem(b.dtype), [k, n]))
    else:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(b), "b"))
    node = helper.make_node(
        "QLinearMatMul",
        ["a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point", "y_scale",
         "y_zero_point"], ["y"])
    outputs = [helper.make_tensor_value_info("y", _np_to_elem(y_dtype), [m, n])]
    return onnx_model([node], inputs, outputs, inits)


def matmul_integer_model(m, k, n, a_dtype, b, a_zp=0, b_zp=0, b_is_input=False):
    """Y (int32) = MatMulInteger(A, B, a_zero_point, b_zero_point), A a
    graph input, B a constant initializer unless b_is_input."""
    from onnx import helper, numpy_helper
    a_dtype = np.dtype(a_dtype)
    inits = [
        numpy_helper.from_array(np.array(a_zp, dtype=a_dtype), "a_zero_point"),
        numpy_helper.from_array(np.array(b_zp, dtype=b.dtype), "b_zero_point"),
    ]
    inputs = [helper.make_tensor_value_info("a", _np_to_elem(a_dtype), [m, k])]
    if b_is_input:
        inputs.append(helper.make_tensor_value_info("b", _np_to_elem(b.dtype), [k, n]))
    else:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(b), "b"))
    node = helper.make_node("MatMulInteger", ["a", "b", "a_zero_point", "b_zero_point"], ["y"])
    outputs = [helper.make_tensor_value_info("y", _np_to_elem(np.int32), [m, n])]
    return onnx_model([node], inputs, outputs, inits)


def run_session(sess, a, b=None):
    feeds = {"a": a}
    if b is not None:
        feeds["b"] = b
    return sess.run(None, feeds)[0]


def onnx_requantize(acc, a_scale, b_scale, y_scale, y_zp, lo, hi):
    """PEERS.md's ONNX Runtime rule: clamp(round_half_even(f32(acc) *
    f32(f32(s_a*s_b[col]) / s_y)) + z_y). acc is the exact integer
    accumulator (m x n); b_scale has 1 or n elements."""
    scale = ((np.float32(a_scale) * np.asarray(b_scale, dtype=np.float32)).astype(np.float32)
             / np.float32(y_scale)).astype(np.float32)
    y = np.asarray(acc).astype(np.int32).astype(np.float32) * scale.reshape(1, -1)
    return np.clip(round_half_even(y.astype(np.float32)).astype(np.int64) + int(y_zp), lo, hi)


def exact_matmul(a, b, a_zp=0, b_zp=0):
    """sum_k (a - a_zp)(b - b_zp[col]) exactly, as int64. Uses float64 BLAS
    (exact: every partial sum is far below 2^53) for speed."""
    a = np.asarray(a, dtype=np.float64) - float(a_zp)
    b = np.asarray(b, dtype=np.float64) - np.asarray(b_zp, dtype=np.float64).reshape(1, -1)
    r = a @ b
    assert np.abs(r).max(initial=0) < 2.0**52
    return r.astype(np.int64)
