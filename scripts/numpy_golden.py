"""Golden vectors for qlinear's numpy-parity tests.

Runs the seed notebook's own functions (copied verbatim below from
docs/seed_notebook.txt) on many random and edge-case inputs and writes what numpy
computed to tests/data/numpy_golden.json. CI never runs this: the JSON is
committed. Regenerate with

    pip install numpy==2.4.6
    python3 scripts/numpy_golden.py

Each f32 value is written as the exact decimal of its f64 widening.
"""
import json
import os

import numpy as np


# --- the notebook's functions, verbatim -------------------------------------
def quantization(x, s, z, alpha_q, beta_q):
    x_q = np.round(1 / s * x + z, decimals=0)
    x_q = np.clip(x_q, a_min=alpha_q, a_max=beta_q)
    return x_q


def quantization_int8(x, s, z):
    x_q = quantization(x, s, z, alpha_q=-128, beta_q=127)
    x_q = x_q.astype(np.int8)
    return x_q


def dequantization(x_q, s, z):
    x_q = x_q.astype(np.int32)
    x = s * (x_q - z)
    x = x.astype(np.float32)
    return x


def generate_quantization_constants(alpha, beta, alpha_q, beta_q):
    s = (beta - alpha) / (beta_q - alpha_q)
    z = int((beta * alpha_q - alpha * beta_q) / (beta - alpha))
    return s, z


def generate_quantization_int8_constants(alpha, beta):
    b = 8
    alpha_q = -2**(b - 1)
    beta_q = 2**(b - 1) - 1
    s, z = generate_quantization_constants(alpha=alpha, beta=beta,
                                           alpha_q=alpha_q, beta_q=beta_q)
    return s, z


def quantization_matrix_multiplication_int8(X_q, W_q, b_q, s_X, z_X, s_W, z_W,
                                            s_b, z_b, s_Y, z_Y):
    p = W_q.shape[0]
    Y_q_simulated = (z_Y + (s_b / s_Y * (b_q.astype(np.int32) - z_b)) + (
        (s_X * s_W / s_Y) *
        (np.matmul(X_q.astype(np.int32), W_q.astype(np.int32)) -
         z_W * np.sum(X_q.astype(np.int32), axis=1, keepdims=True) - z_X *
         np.sum(W_q.astype(np.int32), axis=0, keepdims=True) + p * z_X * z_W)))
    Y_q_simulated = np.round(Y_q_simulated, decimals=0)
    Y_q_simulated = np.clip(Y_q_simulated, a_min=-128, a_max=127)
    Y_q_simulated = Y_q_simulated.astype(np.int8)
    return Y_q_simulated
# -----------------------------------------------------------------------------


rng = np.random.default_rng(20261127)


def f32list(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


def random_range():
    kind = rng.integers(0, 4)
    if kind == 0:  # contains zero
        lo = -float(rng.uniform(0.01, 1000.0))
        hi = float(rng.uniform(0.01, 1000.0))
    elif kind == 1:  # positive only: zero point below -128
        lo = float(rng.uniform(0.1, 50.0))
        hi = lo + float(rng.uniform(0.1, 50.0))
    elif kind == 2:  # negative only: zero point above 127
        hi = -float(rng.uniform(0.1, 50.0))
        lo = hi - float(rng.uniform(0.1, 50.0))
    else:  # tiny or huge widths
        c = float(rng.uniform(-1.0, 1.0)) * 10.0 ** float(rng.integers(-3, 4))
        w = 10.0 ** float(rng.uniform(-4, 4))
        lo, hi = c - w * float(rng.uniform(0, 1)), c + w * float(rng.uniform(0.01, 1))
    return lo, hi


def from_range_cases():
    cases = []
    fixed = [(-100.0, 80.0), (-20.0, 10.0), (-500.0, 500.0), (-3000.0, 3000.0),
             (-1.0, 1.0), (0.0, 1.0), (1.0, 2.0), (-2.0, -1.0), (-1e-3, 1e-3),
             (3.0, 1000.0), (-0.5, 0.0)]
    for lo, hi in fixed + [random_range() for _ in range(200)]:
        s, z = generate_quantization_int8_constants(lo, hi)
        cases.append({"alpha": lo, "beta": hi, "s": s, "z": z})
    for lo, hi, qmin, qmax in [(-1.0, 1.0, 0, 255), (0.0, 6.0, 0, 255),
                               (-3.0, 5.0, -127, 127), (-2.5, 7.5, -64, 63),
                               (1.0, 3.0, 0, 15)]:
        s, z = generate_quantization_constants(lo, hi, qmin, qmax)
        cases.append({"alpha": lo, "beta": hi, "qmin": qmin, "qmax": qmax,
                      "s": s, "z": z})
    return cases


def quantize_cases():
    cases = []
    params = [(0.25, 0), (0.5, 3), (2.0, -7), (1.0, 0), (1.0, 127), (1.0, -128)]
    for _ in range(40):
        lo, hi = random_range()
        params.append(generate_quantization_int8_constants(lo, hi))
    for s, z in params:
        lo, hi = s * (-128 - z), s * (127 - z)
        span = hi - lo
        x = rng.uniform(lo - 0.1 * span, hi + 0.1 * span, size=150)
        # values that land on .5 after scaling: ties in exact arithmetic
        k = rng.integers(-140, 140, size=60)
        ties = (k + 0.5 - z) * s
        edges = np.array([0.0, -0.0, lo, hi, 1e30, -1e30])  # infinities: unit tests
        x = np.concatenate([x, ties, edges]).astype(np.float32)
        q = quantization_int8(x, s, z)
        cases.append({"s": s, "z": z, "x": f32list(x), "q": [int(v) for v in q],
                      "dequantized": f32list(dequantization(q, s, z))})
    return cases


def matmul_cases():
    cases = []
    for _ in range(150):
        m, p, n = (int(v) for v in rng.integers(1, 12, size=3))
        if rng.integers(0, 4) == 0:
            p = int(rng.integers(100, 400))
        (s_X, z_X), (s_W, z_W), (s_b, z_b) = (
            generate_quantization_int8_constants(*random_range()) for _ in range(3))
        X_q = rng.integers(-128, 128, size=(m, p), dtype=np.int8)
        W_q = rng.integers(-128, 128, size=(p, n), dtype=np.int8)
        b_q = rng.integers(-128, 128, size=(1, n), dtype=np.int8)
        acc = (X_q.astype(np.int64) - z_X) @ (W_q.astype(np.int64) - z_W)
        if np.abs(acc).max() >= 2**31:
            continue  # numpy's int32 would wrap; qlinear is exact there
        # Output scale sized from the real result so that few outputs clamp.
        y_real = s_X * s_W * acc + s_b * (b_q.astype(np.int64) - z_b)
        s_Y = float(np.abs(y_real).max()) / 127.0 * float(rng.uniform(0.7, 1.3)) + 1e-12
        z_Y = int(rng.integers(-20, 21))
        if len(cases) % 3 == 0:
            # Powers of two and small values: many results fall exactly on
            # .5, where rounding half to even and adding z_Y before rounding
            # are visible.
            X_q = rng.integers(-6, 7, size=(m, p), dtype=np.int8)
            W_q = rng.integers(-6, 7, size=(p, n), dtype=np.int8)
            z_X, z_W, z_b = (int(v) for v in rng.integers(-3, 4, size=3))
            s_X, s_W = 2.0 ** float(rng.integers(-6, 0)), 2.0 ** float(rng.integers(-6, 0))
            s_Y = s_X * s_W * 2.0 ** float(rng.integers(1, 4))
            s_b = s_Y / 2.0
        Y_q = quantization_matrix_multiplication_int8(
            X_q, W_q, b_q, s_X, z_X, s_W, z_W, s_b, z_b, s_Y, z_Y)
        cases.append({
            "m": m, "p": p, "n": n,
            "s_X": s_X, "z_X": z_X, "s_W": s_W, "z_W": z_W,
            "s_b": s_b, "z_b": z_b, "s_Y": s_Y, "z_Y": z_Y,
            "X_q": X_q.ravel().tolist(), "W_q": W_q.ravel().tolist(),
            "b_q": b_q.ravel().tolist(), "Y_q": Y_q.ravel().tolist(),
        })
    return cases


out = {
    "note": "Made by scripts/numpy_golden.py with numpy " + np.__version__
            + " running the seed notebook's functions. Arrays are row-major.",
    "from_range": from_range_cases(),
    "quantize": quantize_cases(),
    "matmul": matmul_cases(),
}
path = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "numpy_golden.json")
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"))
print("wrote", path, {k: len(v) for k, v in out.items() if isinstance(v, list)})
