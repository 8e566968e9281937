"""Reference outputs of LiteRT (TFLite) int8 FULLY_CONNECTED, from the real
interpreter, for qlinear's peer-parity tests.

For every case this script
  1. builds a one-operator .tflite model in memory (int8 input/output, int8
     filter with zero point 0 and per-tensor or per-channel scales, int32
     bias with scale s_in*s_w[c], a fused activation),
  2. runs it through the LiteRT interpreter in its three op-resolver modes:
     BUILTIN_REF (reference kernels), BUILTIN_WITHOUT_DEFAULT_DELEGATES
     (optimized kernels) and AUTO (the default: XNNPACK delegate),
  3. checks each mode's output against a numpy re-implementation of the
     rule in shared/PEERS.md for that mode and counts mismatches,
and writes all cases to tests/data/tflite_fc_cases.json in the layout of
shared/ref/tflite_fc_sample.json. CI never runs this; the JSON is data.

    pip install ai-edge-litert==2.3.0 numpy
    python3 scripts/peers/tflite_fc.py            # writes the JSON
    python3 scripts/peers/tflite_fc.py --check-only --out /tmp/x.json

The model is written with the flatbuffer object API that ai-edge-litert
ships (ai_edge_litert.schema_py_generated), so nothing else is needed.
"""
import argparse
import math
import os
import sys
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (cpu_description, f32, f32_to_json, f32hex,  # noqa: E402
                    round_half_away, round_half_even, write_cases_json)

import flatbuffers  # noqa: E402  (a dependency of ai-edge-litert)
from ai_edge_litert import interpreter as litert  # noqa: E402
from ai_edge_litert import schema_py_generated as fb  # noqa: E402

MODES = ["BUILTIN_REF", "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "AUTO"]
ACTIVATIONS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
I32_MIN, I32_MAX = -(2**31), 2**31 - 1

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "..", "tests", "data", "tflite_fc_cases.json")


# =============================================================================
# Model building and running
# =============================================================================
def _quant(scales, zero_points, dim=0):
    q = fb.QuantizationParametersT()
    q.scale = [float(s) for s in scales]
    q.zeroPoint = [int(z) for z in zero_points]
    q.quantizedDimension = dim
    return q


def _tensor(name, shape, ttype, buffer, quant):
    t = fb.TensorT()
    t.name = name
    t.shape = list(shape)
    t.type = ttype
    t.buffer = buffer
    t.quantization = quant
    return t


def _buffer(data=None):
    b = fb.BufferT()
    if data is not None:
        b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
    return b


def build_fc_model(case):
    """Serialize a one-op int8 FULLY_CONNECTED model for `case` (see
    make_case for the keys) and return the .tflite bytes."""
    B, D, U = case["batches"], case["accum_depth"], case["units"]
    s_w = case["filter_scales"]                      # float32 array, len 1 or U
    bias_scales = case["bias_scales_f32"]           # float32 array, same length
    nq = len(s_w)
    has_bias = case["bias"] is not None

    tensors = [
        _tensor("input", [B, D], fb.TensorType.INT8, 0,
                _quant([case["input_scale"]], [case["input_zero_point"]])),
        _tensor("filter", [U, D], fb.TensorType.INT8, 1,
                _quant(s_w, [0] * nq, 0)),
        _tensor("output", [B, U], fb.TensorType.INT8, 0,
                _quant([case["output_scale"]], [case["output_zero_point"]])),
    ]
    if has_bias:
        tensors.append(_tensor("bias", [U], fb.TensorType.INT32, 2,
                               _quant(bias_scales, [0] * nq, 0)))
    opts = fb.FullyConnectedOptionsT()
    opts.fusedActivationFunction = getattr(fb.ActivationFunctionType, case["activation"])
    opts.weightsFormat = fb.FullyConnectedOptionsWeightsFormat.DEFAULT
    opts.keepNumDims = False

    op = fb.OperatorT()
    op.opcodeIndex = 0
    # tensor order: input 0, filter 1, output 2, bias 3; -1 marks "no bias"
    op.inputs, op.outputs = [0, 1, 3 if has_bias else -1], [2]
    op.builtinOptionsType = fb.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = opts

    code = fb.OperatorCodeT()
    code.builtinCode = fb.BuiltinOperator.FULLY_CONNECTED
    code.deprecatedBuiltinCode = fb.BuiltinOperator.FULLY_CONNECTED
    code.version = 4  # the int8 version of the op

    sg = fb.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators = tensors, [0], [2], [op]
    sg.name = "main"

    model = fb.ModelT()
    model.version = 3
    model.description = "qlinear peer case"
    model.operatorCodes = [code]
    model.subgraphs = [sg]
    model.buffers = [
        _buffer(),  # buffer 0: the empty sentinel, used by input and output
        _buffer(case["filter"].astype(np.int8)),
    ]
    if has_bias:
        model.buffers.append(_buffer(case["bias"].astype("<i4")))
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def run_mode(model_bytes, x, mode):
    """Run the model on int8 input x in one op-resolver mode. Returns the
    int8 output and whether a delegate (XNNPACK) took the node."""
    interp = litert.Interpreter(
        model_content=model_bytes, num_threads=1,
        experimental_op_resolver_type=getattr(litert.OpResolverType, mode))
    interp.allocate_tensors()
    delegated = any(op["op_name"] == "DELEGATE" for op in interp._get_ops_details())
    interp.set_tensor(interp.get_input_details()[0]["index"], x.astype(np.int8))
    interp.invoke()
    y = interp.get_tensor(interp.get_output_details()[0]["index"]).copy()
    return y, delegated


# =============================================================================
# The PEERS.md rules, re-implemented in numpy
# =============================================================================
def accumulator(case):
    """acc[b][c] = sum_d filter[c][d]*(input[b][d] - z_in) + bias[c], exact
    (no bias term when the case has none)."""
    x = case["input"].astype(np.int64) - case["input_zero_point"]
    acc = x @ case["filter"].astype(np.int64).T
    if case["bias"] is not None:
        acc = acc + case["bias"].astype(np.int64)
    assert acc.min() >= I32_MIN and acc.max() <= I32_MAX, "accumulator overflows int32"
    return acc


def act_range(activation, s_out, z_out):
    """The quantized clamp of a fused activation (PEERS.md)."""
    def q(v):  # z_out + round_half_away(f32(v / s_out)), the division in f32
        return z_out + int(round_half_away(np.float64(f32(v) / f32(s_out))))
    lo, hi = -128, 127
    if activation == "RELU":
        lo = max(lo, q(0.0))
    elif activation == "RELU6":
        lo, hi = max(lo, q(0.0)), min(hi, q(6.0))
    elif activation == "RELU_N1_TO_1":
        lo, hi = max(lo, q(-1.0)), min(hi, q(1.0))
    return lo, hi


def xnnpack_act_range(activation, s_out, z_out):
    """The clamp the XNNPACK delegate applies (measured): the real bound
    divided by s_out in f32, plus z_out in f32, then rounded half to even,
    so it differs from act_range when v/s_out is a tie (e.g. 16.5)."""
    def q(v):
        return int(round_half_even(np.float32(np.float32(f32(v) / f32(s_out)) + np.float32(z_out))))
    lo, hi = -128, 127
    if activation in ("RELU", "RELU6"):
        lo = max(lo, q(0.0))
    if activation == "RELU6":
        hi = min(hi, q(6.0))
    elif activation == "RELU_N1_TO_1":
        lo, hi = max(lo, q(-1.0)), min(hi, q(1.0))
    return lo, hi


def _finish(r, case, clamp=None):
    lo, hi = clamp if clamp is not None else (case["act_min"], case["act_max"])
    y = r + case["output_zero_point"]
    return np.clip(y, lo, hi).astype(np.int64)


def rule_builtin_ref(case, acc):
    """Reference kernels: round_half_away(f64(acc) * M) + z_out, with
    M = f64(s_in) * f64(s_w[c]) / f64(s_out)."""
    M = (np.float64(case["input_scale"]) * case["filter_scales"].astype(np.float64)
         / np.float64(case["output_scale"]))
    return _finish(round_half_away(acc.astype(np.float64) * M[None, :]), case)


def quantize_multiplier(M):
    """(q, e) with M ~= q * 2^(e-31), q in [2^30, 2^31), as PEERS.md."""
    if M == 0.0:
        return 0, 0
    f, e = math.frexp(M)
    q = int(math.floor(f * 2.0**31 + 0.5))  # f > 0: this is round_half_away
    if q == 2**31:
        q, e = 2**30, e + 1
    if e < -31:
        q, e = 0, 0
    return q, e


def _srdhm(a, b):
    """Saturating rounding doubling high mul on int64 arrays holding int32."""
    ab = a * b
    nudge = np.where(ab >= 0, 2**30, 1 - 2**30)
    s = ab + nudge
    r = np.where(s >= 0, s // 2**31, -((-s) // 2**31))  # truncate toward zero
    return np.where((a == I32_MIN) & (b == I32_MIN), I32_MAX, r)


def _wrap32(v):
    return ((v + 2**31) % 2**32) - 2**31


def rule_optimized(case, acc, wrap=True):
    """Optimized kernels: fixed-point QuantizeMultiplier / SRDHM / rounding
    right shift with ties toward +inf. acc * 2^e (multipliers > 1) is an
    int32 product that wraps around on overflow, as measured; wrap=False
    gives the overflow-free variant, for counting what wrapping changes."""
    s_in, s_out, s_w = case["input_scale"], case["output_scale"], case["filter_scales"]
    if case["per_channel"]:
        Ms = [np.float64(s_in) * np.float64(s) / np.float64(s_out) for s in s_w]
    else:  # the product s_in*s_w is rounded to f32 first
        Ms = [np.float64(f32(s_in) * f32(s_w[0])) / np.float64(s_out)] * case["units"]
    out = np.empty_like(acc)
    for c, M in enumerate(Ms):
        q, e = quantize_multiplier(float(M))
        left, right = max(e, 0), max(-e, 0)
        x = acc[:, c] * 2**left
        if wrap:
            x = _wrap32(x)
        else:  # saturate instead, into the int64 SRDHM below
            x = np.clip(x, I32_MIN, I32_MAX)
        v = _srdhm(x, np.int64(q))
        if right > 0:
            v = (v + 2**(right - 1)) >> right
        out[:, c] = v
    return _finish(out, case)


def rule_xnnpack(case, acc):
    """XNNPACK: round_half_even(f32(acc) * f32(f32(s_in*s_w[c]) / s_out)) + z_out,
    clamped to xnnpack_act_range (not act_min/act_max)."""
    scale = (f32(case["input_scale"]) * case["filter_scales"].astype(np.float32)) / f32(case["output_scale"])
    scale = scale.astype(np.float32)
    y = acc.astype(np.int32).astype(np.float32) * scale[None, :]
    clamp = xnnpack_act_range(case["activation"], case["output_scale"], case["output_zero_point"])
    return _finish(round_half_even(y.astype(np.float32)), case, clamp)


RULES = {
    "BUILTIN_REF": rule_builtin_ref,
    "BUILTIN_WITHOUT_DEFAULT_DELEGATES": rule_optimized,
    "AUTO": rule_xnnpack,
}


# =============================================================================
# Case generation
# =============================================================================
def log_uniform(rng, lo, hi, size=None):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size))


def make_case(category, *, per_channel, x, w, bias, s_in, z_in, s_w, s_out, z_out,
              activation):
    """Bundle one case with float32 scales; derive bias scales and the
    activation clamp."""
    s_in, s_out = f32(s_in), f32(s_out)
    s_w = np.atleast_1d(np.asarray(s_w, dtype=np.float32))
    if not per_channel:
        s_w = s_w[:1]
    case = {
        "category": category, "per_channel": bool(per_channel),
        "batches": int(x.shape[0]), "accum_depth": int(x.shape[1]), "units": int(w.shape[0]),
        "input_scale": s_in, "input_zero_point": int(z_in), "input": x.astype(np.int64),
        "filter": w.astype(np.int64), "filter_scales": s_w,
        "bias": None if bias is None else np.asarray(bias, dtype=np.int64),
        # bias scale s_in*s_w[c] computed in f32, as a converter writes it
        "bias_scales_f32": (s_in * s_w).astype(np.float32),
        "output_scale": s_out, "output_zero_point": int(z_out), "activation": activation,
    }
    case["act_min"], case["act_max"] = act_range(activation, s_out, z_out)
    return case


def maybe_no_bias(rng, bias, p=0.1):
    """Drop the bias tensor (FULLY_CONNECTED's optional input) with probability p."""
    return None if rng.random() < p else bias


def rand_i8(rng, shape, lo=-128, hi=127):
    return rng.integers(lo, hi + 1, size=shape)


def near(rng, centre, radius, shape):
    """int8 values within `radius` of `centre` (clipped to int8)."""
    return np.clip(centre + rng.integers(-radius, radius + 1, size=shape), -128, 127)


def choose_output_scale(rng, s_in, s_w, acc, lo=2.0, hi=300.0):
    """An output scale that maps the accumulator's spread to roughly
    [lo, hi] output steps, so outputs are neither all zero nor all clamped."""
    spread = max(float(np.std(acc)), float(np.abs(acc).max()) / 3.0, 1.0)
    M = log_uniform(rng, lo, hi) / spread
    return f32(float(f32(s_in)) * float(np.exp(np.mean(np.log(s_w.astype(np.float64))))) / M)


def gen_random(rng, n):
    out = []
    for _ in range(n):
        B, U = int(rng.integers(1, 9)), int(rng.integers(1, 41))
        D = int(np.round(log_uniform(rng, 1, 64)))
        per_channel = bool(rng.integers(0, 2))
        z_in, z_out = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
        wmax = int(rng.choice([127, 127, 64, 16, 4]))
        x, w = rand_i8(rng, (B, D)), rand_i8(rng, (U, D), -wmax, wmax)
        s_in = log_uniform(rng, 2**-10, 1.0)
        s_w = log_uniform(rng, 2**-12, 2**-2) * log_uniform(rng, 1, 16, U)
        acc0 = (x - z_in) @ w.T
        bias = rng.integers(-int(np.std(acc0)) - 1, int(np.std(acc0)) + 2, size=U)
        s_out = choose_output_scale(rng, s_in, s_w, acc0 + bias)
        act = str(rng.choice(ACTIVATIONS))
        out.append(make_case("random", per_channel=per_channel, x=x, w=w,
                             bias=maybe_no_bias(rng, bias),
                             s_in=s_in, z_in=z_in, s_w=s_w, s_out=s_out, z_out=z_out,
                             activation=act))
    return out


def gen_ties(rng, n):
    """Power-of-two scales, so M = 2^-k exactly and acc*M lands on .5 for
    many accumulators of both signs; odd and even output zero points."""
    out = []
    for i in range(n):
        B, U = int(rng.integers(1, 9)), int(rng.integers(1, 25))
        D = int(rng.integers(1, 9))
        per_channel = i % 2 == 1
        k = int(rng.choice([1, 1, 2, 3, 4]))           # M = 2^-k (per channel varies)
        a = int(rng.integers(-9, -1))                    # s_in = 2^a
        if per_channel:
            b = rng.integers(-10, -4, size=U)            # s_w[c] = 2^b[c]
        else:
            b = np.full(U, int(rng.integers(-10, -4)))
        c = a + int(b.max()) + k                         # s_out = 2^c: M_c = 2^(a+b-c) <= 2^-k
        z_in = int(rng.integers(-128, 128))
        z_out = int(rng.integers(-60, 61))
        x = near(rng, z_in, 6, (B, D))
        w = rng.integers(-4, 5, size=(U, D))
        bias = rng.integers(-8, 9, size=U)
        act = str(rng.choice(ACTIVATIONS, p=[0.55, 0.15, 0.15, 0.15]))
        out.append(make_case("ties", per_channel=per_channel, x=x, w=w,
                             bias=maybe_no_bias(rng, bias),
                             s_in=2.0**a, z_in=z_in, s_w=2.0**b.astype(float), s_out=2.0**c,
                             z_out=z_out, activation=act))
    return out


def gen_left_shift(rng, n):
    """Effective multipliers > 1 (QuantizeMultiplier exponent > 0)."""
    out = []
    for i in range(n):
        B, U, D = int(rng.integers(1, 9)), int(rng.integers(1, 17)), int(rng.integers(1, 5))
        per_channel = i % 2 == 1
        z_in, z_out = int(rng.integers(-128, 128)), int(rng.integers(-100, 101))
        x = near(rng, z_in, 3, (B, D))
        w = rng.integers(-3, 4, size=(U, D))
        bias = rng.integers(-4, 5, size=U)
        s_in = log_uniform(rng, 2**-9, 2**-3)
        s_w = log_uniform(rng, 2**-9, 2**-3) * log_uniform(rng, 1, 4, U)
        M = log_uniform(rng, 1.0001, 40.0)               # target multiplier
        s_out = f32(float(s_in) * float(np.min(s_w)) / M)  # every M_c >= M > 1
        act = str(rng.choice(ACTIVATIONS, p=[0.55, 0.15, 0.15, 0.15]))
        out.append(make_case("left_shift", per_channel=per_channel, x=x, w=w,
                             bias=maybe_no_bias(rng, bias),
                             s_in=s_in, z_in=z_in, s_w=s_w, s_out=s_out, z_out=z_out,
                             activation=act))
    return out


def gen_left_shift_overflow(rng, n):
    """Multipliers in [128, 255] (QuantizeMultiplier exponent 8) with
    accumulators beyond 2^23, so acc * 2^8 leaves int32: the optimized
    kernels wrap around there while the other modes saturate. (XNNPACK
    refuses multipliers >= 256 at prepare time, which bounds M here.)"""
    out = []
    for i in range(n):
        B, U = int(rng.integers(1, 5)), int(rng.integers(2, 9))
        D = int(rng.integers(280, 420))
        per_channel = i % 2 == 1
        z_in = int(rng.choice([-128, -127, 126, 127]))
        z_out = int(rng.integers(-128, 128))
        # inputs mostly at the far end from z_in, filters mostly of one sign per
        # channel at full magnitude, plus a few mixed channels that stay small
        far = 127 if z_in < 0 else -128
        x = np.where(rng.random((B, D)) < 0.9, far, rand_i8(rng, (B, D)))
        sign = rng.choice([-1, 1], size=(U, 1))
        w = np.where(rng.random((U, D)) < 0.9, sign * rng.integers(100, 128, size=(U, D)),
                     rand_i8(rng, (U, D), -127, 127))
        w[0] = rand_i8(rng, (D,), -127, 127) * rng.choice([-1, 1], size=D) // 64  # small acc
        s_in = log_uniform(rng, 2**-8, 2**-2)
        s_w = log_uniform(rng, 2**-10, 2**-4) * (log_uniform(rng, 1, 1.5, U) if per_channel else 1)
        M = rng.uniform(128.0, 255.0 / (1.5 if per_channel else 1.0))
        s_out = f32(float(s_in) * float(np.min(s_w)) / M)
        bias = rng.integers(-1000, 1001, size=U)
        act = str(rng.choice(ACTIVATIONS, p=[0.7, 0.1, 0.1, 0.1]))
        out.append(make_case("left_shift_overflow", per_channel=per_channel, x=x, w=w,
                             bias=maybe_no_bias(rng, bias), s_in=s_in, z_in=z_in, s_w=s_w,
                             s_out=s_out, z_out=z_out, activation=act))
    return out


def gen_tiny_multiplier(rng, n):
    """M below 2^-32 (QuantizeMultiplier gives (0, 0)) and just above it,
    with accumulators near the int32 limits so the output can move."""
    out = []
    for i in range(n):
        B, U, D = int(rng.integers(1, 6)), int(rng.integers(1, 9)), int(rng.integers(1, 17))
        per_channel = i % 3 == 2
        z_in, z_out = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
        x, w = rand_i8(rng, (B, D)), rand_i8(rng, (U, D), -127, 127)
        acc0 = (x - z_in) @ w.T
        room = 2**31 - 1 - int(np.abs(acc0).max())
        bias = rng.choice([-1, 1], size=U) * rng.integers(room // 4, room + 1, size=U)
        s_in = log_uniform(rng, 2**-8, 2**-2)
        s_w = log_uniform(rng, 2**-10, 2**-4) * (log_uniform(rng, 1, 2, U) if per_channel else 1)
        if i % 5 == 4:  # exactly on the boundary: power-of-two scales, M = 2^-32 or 2^-33
            s_in, s_w = 2.0**-6, np.full(U, 2.0**-7)
            s_out = 2.0**(-13 + int(rng.choice([32, 33])))
        else:
            # every other case just above 2^-32 (q != 0), the rest below (q == 0)
            M = 2.0**(rng.uniform(-32.0, -31.0) if i % 2 == 0 else rng.uniform(-36.0, -32.0))
            s_out = f32(float(s_in) * float(np.min(s_w)) / M)
        act = str(rng.choice(ACTIVATIONS, p=[0.7, 0.2, 0.05, 0.05]))
        out.append(make_case("tiny_multiplier", per_channel=per_channel, x=x, w=w, bias=bias,
                             s_in=s_in, z_in=z_in, s_w=s_w, s_out=s_out, z_out=z_out,
                             activation=act))
    return out


def gen_long_depth(rng, n):
    out = []
    for i in range(n):
        B, U = int(rng.integers(1, 4)), int(rng.integers(1, 7))
        D = 2000 if i == 0 else int(np.round(log_uniform(rng, 256, 2000)))
        per_channel = i % 2 == 1
        z_in, z_out = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
        x, w = rand_i8(rng, (B, D)), rand_i8(rng, (U, D), -127, 127)
        s_in = log_uniform(rng, 2**-10, 1.0)
        s_w = log_uniform(rng, 2**-12, 2**-2) * log_uniform(rng, 1, 8, U)
        acc0 = (x - z_in) @ w.T
        bias = rng.integers(-int(np.std(acc0)) - 1, int(np.std(acc0)) + 2, size=U)
        s_out = choose_output_scale(rng, s_in, s_w, acc0 + bias)
        act = str(rng.choice(ACTIVATIONS))
        out.append(make_case("long_depth", per_channel=per_channel, x=x, w=w,
                             bias=maybe_no_bias(rng, bias),
                             s_in=s_in, z_in=z_in, s_w=s_w, s_out=s_out, z_out=z_out,
                             activation=act))
    return out


def gen_zero_point_extremes(rng, n):
    """Input and output zero points at and next to the int8 limits, with
    full-range data (including the filter value -128)."""
    zs = [-128, -127, -1, 0, 1, 126, 127]
    out = []
    for i in range(n):
        B, U, D = int(rng.integers(1, 9)), int(rng.integers(1, 41)), int(rng.integers(1, 48))
        per_channel = i % 2 == 0
        z_in, z_out = int(rng.choice(zs)), int(rng.choice(zs))
        x, w = rand_i8(rng, (B, D)), rand_i8(rng, (U, D), -128, 127)
        s_in = log_uniform(rng, 2**-10, 1.0)
        s_w = log_uniform(rng, 2**-12, 2**-2) * log_uniform(rng, 1, 16, U)
        acc0 = (x - z_in) @ w.T
        bias = rng.integers(-int(np.std(acc0)) - 1, int(np.std(acc0)) + 2, size=U)
        s_out = choose_output_scale(rng, s_in, s_w, acc0 + bias)
        act = ACTIVATIONS[i % 4]
        out.append(make_case("zero_point_extremes", per_channel=per_channel, x=x, w=w,
                             bias=maybe_no_bias(rng, bias), s_in=s_in, z_in=z_in, s_w=s_w, s_out=s_out,
                             z_out=z_out, activation=act))
    return out


def activation_tie_scales():
    """Output scales s for which f32(6/s) or f32(1/s) is exactly k + 0.5,
    so the activation bound itself is a rounding tie."""
    found = []
    for bound, act in ((6.0, "RELU6"), (1.0, "RELU_N1_TO_1")):
        for k in range(0, 60):
            s = f32(bound / (k + 0.5))
            if float(f32(bound) / s) == k + 0.5:
                found.append((act, s))
    return found


def gen_activation_edges(rng, n):
    ties = activation_tie_scales()
    out = []
    for i in range(n):
        act, s_out = ties[int(rng.integers(0, len(ties)))]
        B, U, D = int(rng.integers(1, 9)), int(rng.integers(1, 25)), int(rng.integers(1, 17))
        per_channel = i % 2 == 1
        z_in, z_out = int(rng.integers(-128, 128)), int(rng.integers(-50, 51))
        x, w = rand_i8(rng, (B, D)), rand_i8(rng, (U, D), -127, 127)
        s_in = log_uniform(rng, 2**-10, 1.0)
        acc0 = (x - z_in) @ w.T
        spread = max(float(np.std(acc0)), 1.0)
        # filter scales so real outputs span about +-2x the activation bound
        bound = 6.0 if act == "RELU6" else 1.0
        s_w = (2.0 * bound / (float(s_in) * spread)) * log_uniform(rng, 0.5, 2.0, U)
        bias = rng.integers(-int(spread) - 1, int(spread) + 2, size=U)
        out.append(make_case("activation_edges", per_channel=per_channel, x=x, w=w,
                             bias=maybe_no_bias(rng, bias),
                             s_in=s_in, z_in=z_in, s_w=s_w, s_out=s_out, z_out=z_out,
                             activation=act))
    return out


GENERATORS = [
    (gen_random, 130), (gen_ties, 50), (gen_left_shift, 30), (gen_left_shift_overflow, 8),
    (gen_tiny_multiplier, 30),
    (gen_long_depth, 30), (gen_zero_point_extremes, 20), (gen_activation_edges, 20),
]


# =============================================================================
# Serialization
# =============================================================================
def to_json_case(case, cid, outputs):
    return {
        "id": cid,
        "name": "%s_%d" % (case["category"], cid),
        "category": case["category"],
        "per_channel": case["per_channel"],
        "batches": case["batches"],
        "accum_depth": case["accum_depth"],
        "units": case["units"],
        "input_scale": f32_to_json(case["input_scale"]),
        "input_scale_f32hex": f32hex(case["input_scale"]),
        "input_zero_point": case["input_zero_point"],
        "input": case["input"].tolist(),
        "filter": case["filter"].tolist(),
        "filter_scales": [f32_to_json(s) for s in case["filter_scales"]],
        "filter_scales_f32hex": [f32hex(s) for s in case["filter_scales"]],
        "filter_zero_point": 0,
        "bias": None if case["bias"] is None else case["bias"].tolist(),
        "bias_scales": [f32_to_json(s) for s in case["bias_scales_f32"]],
        "output_scale": f32_to_json(case["output_scale"]),
        "output_scale_f32hex": f32hex(case["output_scale"]),
        "output_zero_point": case["output_zero_point"],
        "activation": case["activation"],
        "act_min": case["act_min"],
        "act_max": case["act_max"],
        "tflite": {m: outputs[m].astype(int).tolist() for m in MODES},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="JSON path to write")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply every category's case count (e.g. 0.1 for a quick try)")
    ap.add_argument("--check-only", action="store_true", help="verify, do not write JSON")
    ap.add_argument("--show", type=int, default=3, help="mismatch examples to print per mode")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    cases = []
    for gen, count in GENERATORS:
        cases.extend(gen(rng, max(1, int(round(count * args.scale)))))

    stats = Counter()
    mismatched_cases = {m: [] for m in MODES}
    mismatched_outputs = Counter()
    rule_vs_rule = Counter()  # how often the three rules disagree (how much the cases test)
    json_cases = []
    for cid, case in enumerate(cases):
        model = build_fc_model(case)
        acc = accumulator(case)
        outputs, predicted = {}, {}
        for mode in MODES:
            y, delegated = run_mode(model, case["input"], mode)
            outputs[mode] = y.astype(np.int64)
            if delegated:
                stats["delegated_" + mode] += 1
            predicted[mode] = RULES[mode](case, acc)
            bad = predicted[mode] != outputs[mode]
            if bad.any():
                mismatched_cases[mode].append((cid, case, acc, outputs[mode], predicted[mode]))
                mismatched_outputs[mode] += int(bad.sum())
        for i, m1 in enumerate(MODES):
            for m2 in MODES[i + 1:]:
                if np.any(outputs[m1] != outputs[m2]):
                    rule_vs_rule["%s != %s" % (m1, m2)] += 1
        stats["outputs"] += outputs[MODES[0]].size
        if xnnpack_act_range(case["activation"], case["output_scale"],
                             case["output_zero_point"]) != (case["act_min"], case["act_max"]):
            stats["xnn_clamp_differs"] += 1
        wrapped = rule_optimized(case, acc, wrap=False) != predicted[MODES[1]]
        stats["wrap_outputs"] += int(wrapped.sum())
        stats["wrap_cases"] += bool(wrapped.any())
        # exact .5 ties of acc*M (M as the reference kernels form it)
        M = (np.float64(case["input_scale"]) * case["filter_scales"].astype(np.float64)
             / np.float64(case["output_scale"]))
        prod = acc * M[None, :]
        tie = np.abs(prod - np.trunc(prod)) == 0.5
        stats["ties_pos"] += int((tie & (prod > 0)).sum())
        stats["ties_neg"] += int((tie & (prod < 0)).sum())
        for i, m1 in enumerate(MODES):
            for m2 in MODES[i + 1:]:
                stats["differ %s vs %s" % (m1, m2)] += int((outputs[m1] != outputs[m2]).sum())
        json_cases.append(to_json_case(case, cid, outputs))

    print("cases: %d (%s)" % (len(cases), dict(Counter(c["category"] for c in cases))))
    print("outputs per mode: %d" % stats["outputs"])
    print("AUTO delegated to XNNPACK in %d of %d cases" % (stats["delegated_AUTO"], len(cases)))
    print("cases where XNNPACK's activation clamp differs from act_min/act_max: %d"
          % stats["xnn_clamp_differs"])
    print("exact .5 ties of acc*M among the outputs: %d positive, %d negative"
          % (stats["ties_pos"], stats["ties_neg"]))
    print("optimized-kernel outputs changed by the int32 wrap of acc*2^e: %d (in %d cases)"
          % (stats["wrap_outputs"], stats["wrap_cases"]))
    print("modes that disagree with each other (cases / outputs):")
    for k in sorted(rule_vs_rule):
        a, b = k.split(" != ")
        print("  %-60s %4d / %d" % (k, rule_vs_rule[k], stats["differ %s vs %s" % (a, b)]))
    print("mismatches between each mode and its PEERS.md rule:")
    for mode in MODES:
        print("  %-34s %d cases, %d outputs" % (mode, len(mismatched_cases[mode]),
                                                 mismatched_outputs[mode]))
        for cid, case, acc, got, want in mismatched_cases[mode][:args.show]:
            b, c = map(int, np.argwhere(got != want)[0])
            print("    case %d (%s, per_channel=%s, %s): out[%d][%d] runtime %d, rule %d, "
                  "acc %d, s_in %r s_w %r s_out %r z_out %d clamp [%d, %d]" % (
                      cid, case["category"], case["per_channel"], case["activation"], b, c,
                      got[b, c], want[b, c], acc[b, c], float(case["input_scale"]),
                      float(case["filter_scales"][c if case["per_channel"] else 0]),
                      float(case["output_scale"]), case["output_zero_point"],
                      case["act_min"], case["act_max"]))

    if not args.check_only:
        meta = {
            "what": (
                "int8 FULLY_CONNECTED cases run through the LiteRT (TFLite) interpreter, "
                "ai-edge-litert %s, in its three kernel modes. Layout as TFLite: "
                "input[batches][accum_depth], filter[units][accum_depth] (the transpose of W "
                "in Y = X W + b), int32 bias with scale s_in*s_w[c] (computed in f32) and zero "
                "point 0, filter zero point 0 (symmetric weights). tflite[mode] holds the "
                "interpreter output for each mode: BUILTIN_REF (reference kernels), "
                "BUILTIN_WITHOUT_DEFAULT_DELEGATES (optimized kernels), AUTO (XNNPACK delegate). "
                "act_min/act_max are the quantized clamp of the fused activation as the TFLite "
                "kernels (BUILTIN_REF, BUILTIN_WITHOUT_DEFAULT_DELEGATES) compute it: "
                "z_out + round_half_away(f32(v / s_out)) for v in {0, 6, -1, 1}, within "
                "[-128, 127]. The XNNPACK delegate (AUTO) clamps instead to "
                "round_half_even(f32(f32(v / s_out) + z_out)), which differs when v / s_out is "
                "a tie (category activation_edges). The optimized kernels form acc * 2^e for "
                "multipliers > 1 in int32 with wraparound (category left_shift_overflow). Scales are "
                "float32 in TFLite: *_f32hex are their exact bit patterns. shared/PEERS.md gives "
                "the arithmetic each mode performs. Generated by scripts/peers/tflite_fc.py "
                "(seed %d) on %s; every output was checked against that rule."
                % (litert_version(), args.seed, cpu_description()["cpu"])),
            "count": len(json_cases),
        }
        write_cases_json(args.out, meta, "fc_cases", json_cases)
        print("wrote %s (%d bytes)" % (os.path.normpath(args.out), os.path.getsize(args.out)))
    return 0 if all(not v for v in mismatched_cases.values()) else 1


def litert_version():
    try:
        from importlib.metadata import version
        return version("ai-edge-litert")
    except Exception:  # pragma: no cover - metadata missing
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
