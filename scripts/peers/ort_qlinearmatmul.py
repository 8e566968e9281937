"""Reference outputs of ONNX Runtime's QLinearMatMul (CPU), from the real
runtime, for qlinear's peer-parity tests.

For every case this script builds a one-node ONNX model with onnx.helper
(A a graph input; B, the scales and zero points constant initializers),
runs it in onnxruntime (one thread, sequential), checks the output against
a numpy re-implementation of shared/PEERS.md's ONNX rule

    y = clamp(round_half_even(f32(acc) * f32(f32(s_a*s_b[col]) / s_y)) + z_y)

(acc = sum_k (a - z_a)(b - z_b[col]), exact) and writes every case to
tests/data/ort_qlinearmatmul_cases.json. Outputs in the JSON are always
what the runtime computed, never the formula's.

It also measures whether ORT's uint8 x int8 kernels are exact on this CPU
(PEERS.md: on AVX2 without VNNI they saturate int16 pair sums): random
full-range inputs through MatMulInteger and QLinearMatMul, compared with
an exact int64 product.

    pip install onnxruntime==1.32.0 onnx numpy
    python3 scripts/peers/ort_qlinearmatmul.py
    python3 scripts/peers/ort_qlinearmatmul.py --check-only --scale 0.1
"""
import argparse
import math
import os
import sys
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (ONNX_OPSET, cpu_description, exact_matmul, f32,  # noqa: E402
                    f32_to_json, f32hex, matmul_integer_model, onnx_requantize,
                    ort_session, qlinear_matmul_model, round_half_even, run_session,
                    write_cases_json)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "..", "tests", "data", "ort_qlinearmatmul_cases.json")

RANGES = {"int8": (-128, 127), "uint8": (0, 255)}
DTYPES = {"int8": np.int8, "uint8": np.uint8}


# =============================================================================
# Case generation
# =============================================================================
def log_uniform(rng, lo, hi, size=None):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size))


def make_case(category, *, a_type, a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp):
    b_scale = np.atleast_1d(np.asarray(b_scale, dtype=np.float32))
    b_zp = np.atleast_1d(np.asarray(b_zp, dtype=np.int64))
    if b_zp.size != b_scale.size:  # one zero point per scale
        b_zp = np.full(b_scale.size, int(b_zp[0]))
    return {
        "category": category, "a_type": a_type,
        "m": int(a.shape[0]), "k": int(a.shape[1]), "n": int(b.shape[1]),
        "a": np.asarray(a, dtype=np.int64), "a_scale": f32(a_scale), "a_zero_point": int(a_zp),
        "b": np.asarray(b, dtype=np.int64), "b_scale": b_scale, "b_zero_point": b_zp,
        "y_scale": f32(y_scale), "y_zero_point": int(y_zp),
    }


def rand_a(rng, a_type, shape):
    lo, hi = RANGES[a_type]
    return rng.integers(lo, hi + 1, size=shape)


def rand_zp(rng, a_type):
    lo, hi = RANGES[a_type]
    return int(rng.integers(lo, hi + 1))


def weight_zero_points(rng, n, per_column, nonzero):
    size = n if per_column else 1
    if not nonzero:
        return np.zeros(size, dtype=np.int64)
    return rng.integers(-20, 21, size=size)


def y_scale_for(rng, a_scale, b_scale, acc, lo=2.0, hi=200.0):
    """A y scale mapping the accumulator spread to ~[lo, hi] output steps."""
    spread = max(float(np.std(acc)), float(np.abs(acc).max(initial=0)) / 3.0, 1.0)
    M = log_uniform(rng, lo, hi) / spread
    return f32(float(a_scale) * float(np.exp(np.mean(np.log(b_scale.astype(np.float64))))) / M)


def gen_random(rng, n_cases, a_type, category="random"):
    out = []
    for i in range(n_cases):
        m, k, n = int(rng.integers(1, 9)), int(np.round(log_uniform(rng, 1, 64))), int(rng.integers(1, 33))
        per_column = bool(rng.integers(0, 2))
        a, a_zp = rand_a(rng, a_type, (m, k)), rand_zp(rng, a_type)
        bmax = int(rng.choice([127, 127, 64, 8]))
        b = rng.integers(-bmax - (bmax == 127), bmax + 1, size=(k, n))
        b_zp = weight_zero_points(rng, n, per_column, rng.random() < 0.3)
        a_scale = log_uniform(rng, 2**-10, 1.0)
        b_scale = (log_uniform(rng, 2**-12, 2**-2) * log_uniform(rng, 1, 16, n if per_column else 1)).astype(np.float32)
        acc = exact_matmul(a, b, a_zp, b_zp)
        y_scale = y_scale_for(rng, a_scale, b_scale, acc)
        out.append(make_case(category, a_type=a_type, a=a, a_scale=a_scale, a_zp=a_zp, b=b,
                             b_scale=b_scale, b_zp=b_zp, y_scale=y_scale,
                             y_zp=rand_zp(rng, a_type)))
    return out


def gen_ties(rng, n_cases, a_type):
    """Power-of-two scales: the multiplier is 2^-k exactly, so acc * M is a
    .5 tie for many accumulators, of both signs. Output zero points mostly
    odd, where adding z_y after rounding differs from adding it before."""
    out = []
    for i in range(n_cases):
        m, k, n = int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 25))
        per_column = i % 2 == 1
        kk = int(rng.choice([1, 1, 2, 3]))
        ea = int(rng.integers(-9, -1))
        eb = rng.integers(-10, -4, size=n if per_column else 1)
        ey = ea + int(eb.max()) + kk
        a_zp = rand_zp(rng, a_type)
        lo, hi = RANGES[a_type]
        a = np.clip(a_zp + rng.integers(-6, 7, size=(m, k)), lo, hi)
        b_zp = weight_zero_points(rng, n, per_column, rng.random() < 0.3)
        b = np.clip(b_zp.reshape(1, -1) + rng.integers(-4, 5, size=(k, n)), -128, 127)
        centre = (lo + hi + 1) // 2
        y_zp = int(np.clip(centre + 2 * int(rng.integers(-30, 31)) + (1 if rng.random() < 0.8 else 0), lo, hi))
        out.append(make_case("ties", a_type=a_type, a=a, a_scale=2.0**ea, a_zp=a_zp, b=b,
                             b_scale=2.0**eb.astype(float), b_zp=b_zp, y_scale=2.0**ey, y_zp=y_zp))
    return out


def gen_long_k(rng, n_cases, a_type):
    out = []
    for i in range(n_cases):
        m, n = int(rng.integers(1, 3)), int(rng.integers(1, 5))
        k = 4096 if i == 0 else int(np.round(log_uniform(rng, 256, 2048)))
        per_column = i % 2 == 1
        a, a_zp = rand_a(rng, a_type, (m, k)), rand_zp(rng, a_type)
        b = rng.integers(-128, 128, size=(k, n))
        b_zp = weight_zero_points(rng, n, per_column, rng.random() < 0.3)
        a_scale = log_uniform(rng, 2**-10, 1.0)
        b_scale = (log_uniform(rng, 2**-12, 2**-2) * log_uniform(rng, 1, 8, n if per_column else 1)).astype(np.float32)
        acc = exact_matmul(a, b, a_zp, b_zp)
        out.append(make_case("long_k", a_type=a_type, a=a, a_scale=a_scale, a_zp=a_zp, b=b,
                             b_scale=b_scale, b_zp=b_zp, y_scale=y_scale_for(rng, a_scale, b_scale, acc),
                             y_zp=rand_zp(rng, a_type)))
    return out


def gen_big_acc(rng, n_cases, a_type):
    """Accumulators beyond 2^24, where f32(acc) is itself rounded."""
    out = []
    lo, hi = RANGES[a_type]
    for i in range(n_cases):
        m, n, k = int(rng.integers(1, 3)), int(rng.integers(1, 5)), int(rng.integers(600, 1100))
        a_zp = lo if rng.random() < 0.5 else hi
        far = hi if a_zp == lo else lo
        a = np.where(rng.random((m, k)) < 0.95, far, rand_a(rng, a_type, (m, k)))
        sign = rng.choice([-1, 1], size=(1, n))
        b = np.where(rng.random((k, n)) < 0.95, np.where(sign > 0, 127, -128), rng.integers(-128, 128, size=(k, n)))
        b_zp = np.zeros(1, dtype=np.int64)
        a_scale = log_uniform(rng, 2**-8, 2**-2)
        b_scale = np.array([log_uniform(rng, 2**-10, 2**-4)], dtype=np.float32)
        acc = exact_matmul(a, b, a_zp, b_zp)
        assert np.abs(acc).max() > 2**24
        # outputs spread over ~[-120, 120] steps around the zero point
        M = rng.uniform(60.0, 120.0) / float(np.abs(acc).max())
        y_scale = f32(float(a_scale) * float(b_scale[0]) / M)
        y_zp = (lo + hi + 1) // 2 + int(rng.integers(-5, 6))
        out.append(make_case("big_acc", a_type=a_type, a=a, a_scale=a_scale, a_zp=a_zp, b=b,
                             b_scale=b_scale, b_zp=b_zp, y_scale=y_scale, y_zp=y_zp))
    return out


def gen_zero_point_extremes(rng, n_cases, a_type):
    lo, hi = RANGES[a_type]
    zs = [lo, lo + 1, (lo + hi) // 2, (lo + hi + 1) // 2, hi - 1, hi]
    out = []
    for i in range(n_cases):
        m, k, n = int(rng.integers(1, 9)), int(rng.integers(1, 48)), int(rng.integers(1, 33))
        per_column = i % 2 == 0
        a, a_zp = rand_a(rng, a_type, (m, k)), int(rng.choice(zs))
        b = rng.integers(-128, 128, size=(k, n))
        b_zp = weight_zero_points(rng, n, per_column, i % 3 == 0)
        a_scale = log_uniform(rng, 2**-10, 1.0)
        b_scale = (log_uniform(rng, 2**-12, 2**-2) * log_uniform(rng, 1, 16, n if per_column else 1)).astype(np.float32)
        acc = exact_matmul(a, b, a_zp, b_zp)
        out.append(make_case("zero_point_extremes", a_type=a_type, a=a, a_scale=a_scale, a_zp=a_zp,
                             b=b, b_scale=b_scale, b_zp=b_zp,
                             y_scale=y_scale_for(rng, a_scale, b_scale, acc), y_zp=int(rng.choice(zs))))
    return out


# (generator, count for int8 x int8, count for uint8 x int8)
GENERATORS = [
    (gen_random, 70, 30), (gen_ties, 30, 14), (gen_long_k, 10, 6), (gen_big_acc, 6, 4),
    (gen_zero_point_extremes, 14, 10),
]


# =============================================================================
# Running and checking
# =============================================================================
def model_for(case, b_is_input=False):
    return qlinear_matmul_model(
        case["m"], case["k"], case["n"], DTYPES[case["a_type"]], case["a_scale"],
        case["a_zero_point"], case["b"].astype(np.int8), case["b_scale"],
        case["b_zero_point"].astype(np.int8), case["y_scale"], case["y_zero_point"],
        b_is_input=b_is_input)


def run_case(case, b_is_input=False):
    sess = ort_session(model_for(case, b_is_input))
    a = case["a"].astype(DTYPES[case["a_type"]])
    return run_session(sess, a, case["b"].astype(np.int8) if b_is_input else None).astype(np.int64)


def rule(case, acc):
    lo, hi = RANGES[case["a_type"]]
    return onnx_requantize(acc, case["a_scale"], case["b_scale"], case["y_scale"],
                           case["y_zero_point"], lo, hi)


def notebook_order(case, acc):
    """The same f32 product, but with z_y added before rounding (the
    notebook's order), to count where the order matters."""
    lo, hi = RANGES[case["a_type"]]
    scale = ((f32(case["a_scale"]) * case["b_scale"]).astype(np.float32) / f32(case["y_scale"])).astype(np.float32)
    y = acc.astype(np.int32).astype(np.float32) * scale.reshape(1, -1)
    return np.clip(round_half_even(y.astype(np.float64) + case["y_zero_point"]), lo, hi).astype(np.int64)


def to_json_case(case, y, name):
    return {
        "name": name,
        "category": case["category"],
        "m": case["m"], "k": case["k"], "n": case["n"],
        "a": case["a"].tolist(),
        "a_type": case["a_type"],
        "a_scale": f32_to_json(case["a_scale"]),
        "a_scale_f32hex": f32hex(case["a_scale"]),
        "a_zero_point": case["a_zero_point"],
        "b": case["b"].tolist(),
        "b_scale": [f32_to_json(s) for s in case["b_scale"]],
        "b_scale_f32hex": [f32hex(s) for s in case["b_scale"]],
        "b_zero_point": case["b_zero_point"].tolist(),
        "y_scale": f32_to_json(case["y_scale"]),
        "y_scale_f32hex": f32hex(case["y_scale"]),
        "y_zero_point": case["y_zero_point"],
        "y": y.astype(int).tolist(),
    }


def u8s8_exactness(rng, shapes, reps=1, a_types=("uint8", "int8")):
    """Fraction of wrong outputs of ORT's uint8 x int8 (and, for comparison,
    int8 x int8) paths on random full-range data (a over its whole range,
    b in [-128, 127], zero points 0 and mid-range y zero point), vs an
    exact int64 product: MatMulInteger (int32 out) and QLinearMatMul
    (requantized, compared with the rule applied to the exact accumulator),
    with B constant (prepacked) and B a graph input."""
    rows = []
    for a_type, (m, k, n) in [(t, s) for t in a_types for s in shapes]:
        adt = DTYPES[a_type]
        lo, hi = RANGES[a_type]
        y_zp = (lo + hi + 1) // 2
        for b_is_input in (False, True):
            wrong_mi = wrong_q = total = 0
            max_err = 0
            for _ in range(reps):
                a = rng.integers(lo, hi + 1, size=(m, k)).astype(adt)
                b = rng.integers(-128, 128, size=(k, n)).astype(np.int8)
                exact = exact_matmul(a, b)
                # cross-check the float64-BLAS reference against a plain int64 product
                assert np.array_equal(exact, a.astype(np.int64) @ b.astype(np.int64))
                sess = ort_session(matmul_integer_model(m, k, n, adt, b, b_is_input=b_is_input))
                y = run_session(sess, a, b if b_is_input else None).astype(np.int64)
                wrong_mi += int((y != exact).sum())
                max_err = max(max_err, int(np.abs(y - exact).max()))
                # QLinearMatMul with a y scale that keeps outputs off the clamp
                a_s, b_s = f32(0.02), np.array([0.01], dtype=np.float32)
                y_s = f32(float(a_s * b_s[0]) * float(np.abs(exact).max()) / 100.0)
                sess = ort_session(qlinear_matmul_model(m, k, n, adt, a_s, 0, b, b_s, [0], y_s, y_zp,
                                                        b_is_input=b_is_input))
                yq = run_session(sess, a, b if b_is_input else None).astype(np.int64)
                wrong_q += int((yq != onnx_requantize(exact, a_s, b_s, y_s, y_zp, lo, hi)).sum())
                total += m * n
            rows.append({"a_type": a_type, "b_type": "int8", "m": m, "k": k, "n": n,
                         "b": "input" if b_is_input else "constant",
                         "matmulinteger_wrong": wrong_mi / total, "matmulinteger_max_abs_err": max_err,
                         "qlinearmatmul_wrong": wrong_q / total, "outputs": total})
    return rows


def versions():
    from importlib.metadata import version
    out = {}
    for pkg in ("onnxruntime", "onnx", "numpy"):
        try:
            out[pkg] = version(pkg)
        except Exception:
            out[pkg] = "unknown"
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=20240612)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every case count")
    ap.add_argument("--check-only", action="store_true", help="verify, do not write JSON")
    ap.add_argument("--skip-exactness", action="store_true", help="skip the u8 x s8 measurement")
    ap.add_argument("--show", type=int, default=3)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    cases = []
    for gen, n_s8, n_u8 in GENERATORS:
        for a_type, count in (("int8", n_s8), ("uint8", n_u8)):
            cases.extend(gen(rng, max(1, int(round(count * args.scale))), a_type))

    stats = Counter()
    bad_cases = []
    json_cases = []
    for i, case in enumerate(cases):
        y = run_case(case)
        acc = exact_matmul(case["a"], case["b"], case["a_zero_point"], case["b_zero_point"])
        want = rule(case, acc)
        if np.any(y != want):
            bad_cases.append((i, case, acc, y, want))
            stats["bad_outputs"] += int((y != want).sum())
        # the same case with B as a graph input (no prepacking) must agree
        if np.any(run_case(case, b_is_input=True) != y):
            stats["b_input_differs"] += 1
        stats["outputs"] += y.size
        stats["notebook_order_differs"] += int((notebook_order(case, acc) != y).sum())
        scale = ((f32(case["a_scale"]) * case["b_scale"]).astype(np.float32) / f32(case["y_scale"])).astype(np.float32)
        prod = acc.astype(np.float32).astype(np.float64) * scale.astype(np.float64).reshape(1, -1)
        tie = np.abs(prod - np.trunc(prod)) == 0.5
        stats["ties_pos"] += int((tie & (prod > 0)).sum())
        stats["ties_neg"] += int((tie & (prod < 0)).sum())
        stats["per_column"] += case["b_scale"].size > 1
        stats["nonzero_b_zp"] += bool(np.any(case["b_zero_point"] != 0))
        stats["big_acc"] += bool(np.abs(acc).max() > 2**24)
        json_cases.append(to_json_case(case, y, "%s_%s_%d" % (case["category"], case["a_type"], i)))

    print("ONNX Runtime %(onnxruntime)s, onnx %(onnx)s, numpy %(numpy)s" % versions())
    print("cpu: %s" % cpu_description())
    print("cases: %d %s" % (len(cases), dict(Counter((c["category"], c["a_type"]) for c in cases))))
    print("per-column b_scale cases: %d, nonzero b_zero_point cases: %d, |acc| > 2^24 cases: %d"
          % (stats["per_column"], stats["nonzero_b_zp"], stats["big_acc"]))
    print("outputs: %d; exact .5 ties: %d positive, %d negative" % (stats["outputs"], stats["ties_pos"], stats["ties_neg"]))
    print("outputs where adding z_y before rounding (notebook order) would differ: %d" % stats["notebook_order_differs"])
    print("cases where B as a graph input gives a different output than B constant: %d" % stats["b_input_differs"])
    print("mismatches vs the PEERS.md ONNX rule: %d cases, %d outputs" % (len(bad_cases), stats["bad_outputs"]))
    for i, case, acc, y, want in bad_cases[:args.show]:
        r, c = map(int, np.argwhere(y != want)[0])
        print("  case %d (%s %s): y[%d][%d] runtime %d rule %d acc %d" % (
            i, case["category"], case["a_type"], r, c, y[r, c], want[r, c], acc[r, c]))

    exactness = []
    if not args.skip_exactness:
        shapes = [(1, 4096, 256), (16, 256, 64), (64, 1024, 64), (4, 4096, 64), (64, 4096, 128)]
        if args.scale < 1.0:
            shapes = shapes[:3]
        exactness = u8s8_exactness(np.random.default_rng(args.seed + 1), shapes)
        print("random full-range data, fraction of outputs wrong vs exact int64:")
        for r in exactness:
            print("  %5s x int8 %4d x %4d x %4d  B %-8s  MatMulInteger %.4f (max |err| %d)  QLinearMatMul %.4f" % (
                r["a_type"], r["m"], r["k"], r["n"], r["b"], r["matmulinteger_wrong"],
                r["matmulinteger_max_abs_err"], r["qlinearmatmul_wrong"]))

    if not args.check_only:
        meta = {
            "what": (
                "ONNX QLinearMatMul cases run through ONNX Runtime (CPU execution provider, "
                "one thread, sequential). Each case is a one-node model: A (m x k) a graph input "
                "of type a_type; B (k x n, int8, ONNX layout: Y = A B) and all scales and zero "
                "points constant initializers. b_scale / b_zero_point have 1 element (per tensor, "
                "stored as ONNX scalars) or n elements (per column of B, which ORT accepts). "
                "y (m x n, of type a_type) is the runtime's output, never a formula's. Scales are "
                "float32: *_f32hex are their exact bit patterns. Every output equals "
                "clamp(round_half_even(f32(acc) * f32(f32(s_a*s_b[col]) / s_y)) + z_y) with "
                "acc = sum_k (a - z_a)(b - z_b[col]) exact and clamp to a_type's range "
                "(shared/PEERS.md). Generated by scripts/peers/ort_qlinearmatmul.py."),
            "versions": versions(),
            "onnx_opset": ONNX_OPSET,
            "machine": cpu_description(),
            "seed": args.seed,
            "layout": {"a": "m x k, row-major nested lists", "b": "k x n", "y": "m x n",
                       "b_scale": "list, length 1 (per tensor) or n (per column)",
                       "b_zero_point": "list, same length as b_scale"},
            "per_column_b_scale_supported": True,
            "uint8_int8_exactness": exactness,
            "count": len(json_cases),
        }
        write_cases_json(args.out, meta, "cases", json_cases)
        print("wrote %s (%d bytes)" % (os.path.normpath(args.out), os.path.getsize(args.out)))
    return 0 if not bad_cases else 1


if __name__ == "__main__":
    sys.exit(main())
