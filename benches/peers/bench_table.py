"""Markdown tables of GOPS from criterion's results (target/criterion) and,
optionally, an ONNX Runtime run of ort_bench.py (--ort JSON) and a PyTorch
run of torch_bench.py (--torch JSON), for the README: the static layers,
then (if `cargo bench --bench dynamic` ran) the dynamic ones.

    cargo bench --bench gemm
    cargo bench --bench dynamic
    python3 benches/peers/ort_bench.py --threads 1,2 --json /tmp/ort.json
    python3 benches/peers/torch_bench.py --threads 1,2 --json /tmp/torch.json
    python3 benches/peers/bench_table.py --ort /tmp/ort.json --torch /tmp/torch.json

GOPS = 2·m·p·n / median time.
"""
import argparse
import json
import os

SHAPES = [(1, 4096, 4096), (4, 4096, 4096), (16, 1024, 1024), (128, 1024, 1024),
          (512, 512, 512), (256, 2048, 2048)]


def criterion_gops(root, shape, function, parameter):
    m, p, n = shape
    return gops_at(os.path.join(root, f"{m}x{p}x{n}", function, parameter), shape)


def peer_gops(path):
    """{(op, (m, k, n), threads): GOPS} from a peer script's JSON, or {}."""
    if not path:
        return {}
    with open(path) as fh:
        return {(r["op"], (r["m"], r["k"], r["n"]), r["threads"]): r["gops"]
                for r in json.load(fh)["results"] if "gops" in r}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--criterion", default="target/criterion")
    ap.add_argument("--ort", help="JSON written by ort_bench.py --json")
    ap.add_argument("--torch", help="JSON written by torch_bench.py --json")
    args = ap.parse_args()
    ort, torch = peer_gops(args.ort), peer_gops(args.torch)
    kernels = ["x86_64-u8i8i32-amx", "x86_64-u8i8i32-avx512vnni", "x86_64-u8i8i32-avxvnni", "x86_64-u7i8i32-avx2",
               "x86_64-i8i8i32-avx2", "portable-i8i8i32"]
    head = ["shape m×p×n"] + [f"`{k.replace('x86_64-', '')}` 1 thr" for k in kernels] + \
        ["default, 2 thr", "ndarray f32", "reference"]
    if ort:
        head += ["ORT u8u8 1/2 thr", "ORT u8s8 1/2 thr", "ORT QLinear s8s8 1/2 thr"]
    if torch:
        head += ["PyTorch Linear u8s8 (x86) 1/2 thr"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    fmt = lambda v: "–" if v is None else (f"{v:.0f}" if v >= 10 else f"{v:.1f}")
    for shape in SHAPES:
        row = [f"{shape[0]}×{shape[1]}×{shape[2]}"]
        row += [fmt(criterion_gops(args.criterion, shape, "1 thread", k)) for k in kernels]
        row.append(fmt(criterion_gops(args.criterion, shape, "all threads", kernels[0])))
        row.append(fmt(criterion_gops(args.criterion, shape, "ndarray f32 dot", "1 thread")))
        row.append(fmt(criterion_gops(args.criterion, shape, "reference", "naive i128")))
        if ort:
            for op in ["matmulinteger_u8u8", "matmulinteger_u8s8", "qlinear_s8s8"]:
                row.append(f"{fmt(ort.get((op, shape, 1)))} / {fmt(ort.get((op, shape, 2)))}")
        if torch:
            row.append(f"{fmt(torch.get(('linear_x86', shape, 1)))} / "
                       f"{fmt(torch.get(('linear_x86', shape, 2)))}")
        print("| " + " | ".join(row) + " |")
    dynamic_table(args.criterion, torch)


def dynamic_table(root, torch):
    """`cargo bench --bench dynamic` beside PyTorch's dynamic Linear, if
    criterion has results of the former."""
    conventions = [("onnxruntime u8", "ONNX Runtime's"), ("pytorch x86 u7", "PyTorch's")]
    cells = {}
    for shape in SHAPES:
        m, p, n = shape
        for threads in ("1 thread", "all threads"):
            base = os.path.join(root, f"dynamic {m}x{p}x{n}", threads)
            if not os.path.isdir(base):
                continue
            for name, _ in conventions:
                # The bench names each result "<convention> <kernel>".
                for entry in sorted(os.listdir(base)):
                    if entry.startswith(name + " "):
                        cells[(shape, name, threads)] = gops_at(os.path.join(base, entry), shape)
    if not cells:
        return
    fmt = lambda v: "–" if v is None else (f"{v:.0f}" if v >= 10 else f"{v:.1f}")
    head = ["shape m×p×n"] + [f"qlinear, {label} activations, 1 / 2 thr" for _, label in conventions]
    head.append("ndarray f32 `dot` 1 thr")
    if torch:
        head.append("PyTorch dynamic Linear (x86) 1 / 2 thr")
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for shape in SHAPES:
        row = [f"{shape[0]}×{shape[1]}×{shape[2]}"]
        for name, _ in conventions:
            row.append(f"{fmt(cells.get((shape, name, '1 thread')))} / "
                       f"{fmt(cells.get((shape, name, 'all threads')))}")
        row.append(fmt(criterion_gops(root, shape, "ndarray f32 dot", "1 thread")))
        if torch:
            row.append(f"{fmt(torch.get(('dynamic_x86', shape, 1)))} / "
                       f"{fmt(torch.get(('dynamic_x86', shape, 2)))}")
        print("| " + " | ".join(row) + " |")


def gops_at(directory, shape):
    """GOPS of the criterion result in `directory`, or None."""
    m, p, n = shape
    path = os.path.join(directory, "new", "estimates.json")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return 2 * m * p * n / json.load(fh)["median"]["point_estimate"]


main()
