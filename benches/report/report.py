"""benches/report.sh's helper: small queries for the script, and the page.

    report.py cpus                    the vCPUs this process may run on, one a line
    report.py shapes                  the benches' shapes (benches/common/mod.rs), MxKxN,...
    report.py read-mib SHAPES         the weights' sizes in MiB, for ceiling.c's read loops
    report.py executables BUILD.json  "bench-name path" of each bench cargo built
    report.py unavailable WHY DETAIL  a peer's JSON when it did not run
    report.py write WORKDIR OUT.md    docs/benchmarks.md from the sitting's raw results

Standard library only. Every ratio on the page divides two numbers of the
same sitting (WORKDIR).
"""
import glob
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The kernels in the crate's order of preference; others found in the
# results are appended.
KERNEL_ORDER = ["x86_64-u8i8i32-amx", "x86_64-u8i8i32-avx512vnni", "x86_64-u8i8i32-avxvnni",
                "x86_64-u7i8i32-avx2", "x86_64-i8i8i32-avx2", "portable-i8i8i32"]
# Rows up to which the AMX kernel runs the AVX-512 VNNI tile instead
# (src/gemm/x86_64/amx.rs).
AMX_SMALL_ROWS = 8
FLAGS = ["avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni", "avx_vnni",
         "amx_tile", "amx_int8"]


# ---- small queries ------------------------------------------------------------
def cpus():
    for c in sorted(os.sched_getaffinity(0)):
        print(c)


def bench_shapes():
    """[(m, p, n)] from benches/common/mod.rs's SHAPES."""
    with open(os.path.join(ROOT, "benches", "common", "mod.rs")) as fh:
        text = fh.read()
    block = re.search(r"pub const SHAPES[^=]*=\s*\[(.*?)\];", text, re.S)
    shapes = re.findall(r"\((\d+),\s*(\d+),\s*(\d+)\)", block.group(1)) if block else []
    if not shapes:
        sys.exit("no SHAPES in benches/common/mod.rs")
    return [tuple(int(v) for v in s) for s in shapes]


def parse_shapes(text):
    return [tuple(int(v) for v in s.split("x")) for s in text.split(",")]


def weights_mib(p, n):
    return p * n / 2**20


def read_mib(text):
    sizes = []
    for _, p, n in parse_shapes(text):
        if weights_mib(p, n) not in sizes:
            sizes.append(weights_mib(p, n))
    print(",".join("%g" % s for s in sorted(sizes, reverse=True)))


def executables(path):
    with open(path) as fh:
        for line in fh:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if (msg.get("reason") == "compiler-artifact" and msg.get("executable")
                    and "bench" in msg["target"]["kind"]):
                print(msg["target"]["name"], msg["executable"])


# ---- reading the sitting ----------------------------------------------------------
def read(path, default=""):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return default


def load_jsonl(path):
    out = {}
    for line in read(path).splitlines():
        line = line.strip()
        if line.startswith("{"):
            rec = json.loads(line)
            out[rec["id"]] = rec
    return out


def load_json(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        return {"failed": "no results (%s)" % exc}


def criterion_results(home):
    """{(group, function, value): GOPS} from criterion's new/ results
    (median)."""
    out = {}
    for path in glob.glob(os.path.join(home, "**", "new", "benchmark.json"), recursive=True):
        with open(path) as fh:
            bench = json.load(fh)
        with open(os.path.join(os.path.dirname(path), "estimates.json")) as fh:
            median_ns = json.load(fh)["median"]["point_estimate"]
        elements = (bench.get("throughput") or {}).get("Elements")
        if elements and median_ns > 0:
            out[(bench["group_id"], bench["function_id"], bench["value_str"])] = elements / median_ns
    return out


def machine():
    info, flags = {}, set()
    for line in read("/proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("model name", "cpu family", "model", "stepping") and key not in info:
            info[key] = value
        elif key == "flags" and not flags:
            flags = set(value.split())
    lscpu = {}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            key, _, value = line.partition(":")
            lscpu[key.strip()] = value.strip()
    except OSError:
        pass
    name = info.get("model name", "unknown CPU")
    detail = ", ".join("%s %s" % (k.replace("cpu ", ""), info[k])
                       for k in ("cpu family", "model", "stepping") if k in info)
    vcpus = "%d vCPUs" % (os.cpu_count() or 0)
    if lscpu.get("Thread(s) per core"):
        vcpus += ", %s thread(s) per core" % lscpu["Thread(s) per core"]
    if "hypervisor" in flags:
        vcpus += ", virtual machine" + (" (%s)" % lscpu["Hypervisor vendor"]
                                        if lscpu.get("Hypervisor vendor") else "")
    caches = ", ".join("%s %s" % (k.split()[0], lscpu[k]) for k in
                       ("L1d cache", "L2 cache", "L3 cache") if lscpu.get(k))
    return {"name": name, "detail": detail, "vcpus": vcpus, "caches": caches,
            "has": [f for f in FLAGS if f in flags], "lacks": [f for f in FLAGS if f not in flags]}


# ---- formatting -----------------------------------------------------------------------
def g(v):
    """GOPS."""
    if v is None:
        return "–"
    return "%.0f" % v if v >= 10 else "%.1f" % v


def pct(v):
    return "–" if v is None else "%.0f %%" % (100 * v)


def times(v):
    if v is None:
        return "–"
    return "%.2f×" % v if v < 10 else "%.1f×" % v if v < 100 else "%.0f×" % v


def table(head, rows, align=None):
    align = align or ["---"] + ["---:"] * (len(head) - 1)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pair(cells):
    """"one thread / two threads", or the single value if both say the same."""
    return cells[0] if len(set(cells)) == 1 and not cells[0][0].isdigit() else " / ".join(cells)


def shape_name(s):
    return "%d×%d×%d" % s


def short(kernel):
    return kernel.replace("x86_64-", "")


# ---- the page --------------------------------------------------------------------------
class Sitting:
    def __init__(self, work):
        self.work = work
        self.quick = read(os.path.join(work, "quick")) == "1"
        def pair_sum(when):
            a = load_jsonl(os.path.join(work, "ceiling-%s-2a.jsonl" % when))
            b = load_jsonl(os.path.join(work, "ceiling-%s-2b.jsonl" % when))
            return {k: a[k]["gops"] + b[k]["gops"] for k in a
                    if "gops" in a[k] and k in b and "gops" in b[k]}
        start = load_jsonl(os.path.join(work, "ceiling-start-1.jsonl"))
        end = load_jsonl(os.path.join(work, "ceiling-end-1.jsonl"))
        # Loop metadata (from whichever run there is), then medians per run.
        self.c1 = start or end
        self.one_at = {w: {k: r["gops"] for k, r in c.items() if "gops" in r}
                       for w, c in (("start", start), ("end", end))}
        self.best = {}
        for c in (start, end):
            for k, r in c.items():
                if "best" in r:
                    self.best[k] = max(self.best.get(k, 0), r["best"])
        self.two_at = {"start": pair_sum("start"), "end": pair_sum("end")}
        self.crit = criterion_results(os.path.join(work, "criterion"))
        self.ort = load_json(os.path.join(work, "ort.json"))
        self.torch = load_json(os.path.join(work, "torch.json"))
        self.machine = machine()
        shapes = sorted({tuple(int(v) for v in grp.split()[-1].split("x"))
                         for grp, _, _ in self.crit if re.fullmatch(r"(dynamic )?\d+x\d+x\d+", grp)},
                        key=lambda s: s)
        order = {s: i for i, s in enumerate(bench_shapes())}
        self.shapes = sorted(shapes, key=lambda s: order.get(s, len(order)))
        kernels = {v for (grp, fn, v) in self.crit if fn == "1 thread" and not grp.startswith("dynamic")}
        self.kernels = [k for k in KERNEL_ORDER if k in kernels] + sorted(kernels - set(KERNEL_ORDER))
        defaults = {v for (grp, fn, v) in self.crit if fn == "all threads" and not grp.startswith("dynamic")}
        self.default = sorted(defaults)[0] if defaults else None

    # -- ceilings --
    def one(self, loop):
        """A loop's one-vCPU figure: the higher of its start and end medians."""
        vals = [v[loop] for v in self.one_at.values() if loop in v]
        return max(vals) if vals else None

    def two(self, loop):
        """The same for the two processes' sum."""
        vals = [v[loop] for v in self.two_at.values() if loop in v]
        return max(vals) if vals else None

    def loop_for(self, kernel, m):
        """The compute loop id bounding `kernel` at m rows, or None."""
        if kernel == "x86_64-u8i8i32-amx" and m <= AMX_SMALL_ROWS:
            kernel = "x86_64-u8i8i32-avx512vnni"
        for rec in self.c1.values():
            if rec.get("kernel") == kernel:
                return rec["id"]
        return None

    def read_gops(self, shape, two):
        """GOPS of reading this shape's weights once (the faster of the
        plain and the prefetching loop), on one vCPU or two."""
        _, p, n = shape
        best = None
        for rec in self.c1.values():
            if rec.get("mib") is not None and abs(rec["mib"] - weights_mib(p, n)) < 1e-9:
                v = self.two(rec["id"]) if two else self.one(rec["id"])
                if v is not None and (best is None or v > best):
                    best = v
        return best

    def bound(self, kernel, shape, two=False):
        """(GOPS, memory-bound?) the kernel cannot pass on this shape: its
        instruction loop, or m × reading the weights if that is lower."""
        loop = self.loop_for(kernel, shape[0])
        if loop is None:
            return None, False
        compute = self.two(loop) if two else self.one(loop)
        memory = self.read_gops(shape, two)
        memory = None if memory is None else shape[0] * memory
        if compute is None:
            return None, False
        if memory is not None and memory < compute:
            return memory, True
        return compute, False

    def vs_bound(self, gops, kernel, shape, two=False):
        b, mem = self.bound(kernel, shape, two)
        if gops is None:
            return "–"
        if b is None:
            return g(gops)
        return "%s (%s%s)" % (g(gops), pct(gops / b), " R" if mem else "")

    # -- peers --
    def peer_status(self, data):
        for key in ("unavailable", "failed"):
            if key in data:
                return "%s: %s" % ("not importable" if key == "unavailable" else "failed", data[key])
        return None

    def peer(self, data, op, shape, threads):
        for r in data.get("results", []):
            if (r.get("op"), (r["m"], r["k"], r["n"]), r.get("threads")) == (op, shape, threads):
                return r.get("gops")
        return None

    def peer_ratio(self, ours, data, op, shape, threads, missing):
        if self.peer_status(data):
            return missing
        theirs = self.peer(data, op, shape, threads)
        return times(ours / theirs) if ours and theirs else "–"


def header(s, work):
    m = s.machine
    commit = read(os.path.join(work, "commit"))
    try:
        with open(os.path.join(work, "dirty")) as fh:
            dirty = [line[3:].rstrip("\n") for line in fh if line.strip()]
    except OSError:
        dirty = []
    source = "`%s`" % commit[:12]
    if dirty:
        shown = ", ".join("`%s`" % d for d in dirty[:8]) + (", …" if len(dirty) > 8 else "")
        source += " plus uncommitted changes to %d file%s (%s)" % (
            len(dirty), "" if len(dirty) == 1 else "s", shown)
    tools = "; ".join(read(os.path.join(work, "tools")).splitlines())
    for data, name, key in ((s.ort, "onnxruntime", "onnxruntime"), (s.torch, "torch", "torch")):
        if key in data:
            tools += "; %s %s" % (name, data[key])
    seconds = int(read(os.path.join(work, "seconds"), "0") or 0)
    kernels = ", ".join("`%s`%s" % (k, " (default)" if k == s.default else "") for k in s.kernels)
    rows = [
        ("CPU", "%s (%s); %s; %s" % (m["name"], m["detail"], m["vcpus"], m["caches"])),
        ("SIMD flags", " ".join(m["has"]) + ("; absent: " + " ".join(m["lacks"]) if m["lacks"] else "")),
        ("qlinear kernels run here", kernels or "–"),
        ("Date", read(os.path.join(work, "date"))),
        ("Commit", source),
        ("Tools", tools),
        ("Command", "`%s` (took %d min %02d s)" % (read(os.path.join(work, "command")),
                                                 seconds // 60, seconds % 60)),
    ]
    out = ["# Benchmarks", "",
           "<!-- Written by benches/report.sh, whole: edit the script, not this page. -->", ""]
    if s.quick:
        out += ["**A `--quick` run: it checks that the report's pipeline works. The numbers "
                "below are not measurements.**", ""]
    out += ["Everything on this page comes from one sitting of `benches/report.sh` on one "
            "machine; every ratio divides two numbers of that sitting.", "",
            table(["", ""], rows, ["---", "---"]), ""]
    return out


INTRO = """\
What the tables show (GOPS = 2·m·p·n / time, 10⁹ per second; a shape m×p×n is
an m×p input times p×n weights):

1. **Ceilings**: `benches/ceiling/ceiling.c`, the inner loop of each kernel's
   tile with its data in L1, and loops that read a buffer of each shape's
   weight size in order; on one vCPU, and as two processes at once, one per
   vCPU (their sum); at the start of the sitting and again at its end, to
   show how far the machine drifted meanwhile.
2. **Kernels against their ceilings**: criterion's `gemm` bench (the layer's
   `forward`, int8 in and out), each kernel on one thread, and the default
   kernel on two; in brackets the fraction of the kernel's bound: its
   instruction loop, or m × the read loop of the shape's weights where that
   is lower (marked R: the GEMV's bound).
3. **Against ONNX Runtime and PyTorch**: the default kernel's GOPS divided by
   the peer's on the same shape and thread count (`benches/peers/`); above
   1× qlinear is faster.
4. **Dynamic layers** (f32 in and out, activations quantized per call):
   criterion's `dynamic` bench against ONNX Runtime's and PyTorch's dynamic
   quantized MatMul / Linear, likewise.
5. **Thread scaling**: the `thread_scaling` bench's one- and two-thread
   pairs, beside the same ratio of the kernel's bound.
6. **Requantizers**: the `requantizers` bench, each output stage relative to
   `Float64` in the same rounds.
7. **The peers' own figures**, which the ratios of 3 and 4 divide by.
"""


def ceilings_section(s):
    cpu = s.machine["name"]
    out = ["## 1. Instruction ceilings on %s" % cpu, ""]
    head = ["loop", "instruction", "bounds kernel", "1 vCPU: start / end (best)",
            "2 vCPUs, sum: start / end", "2 / 1"]
    rows = []

    def at(runs, loop):
        return " / ".join(g(runs[w].get(loop)) for w in ("start", "end"))

    for rec in s.c1.values():
        kernel = "`%s`" % short(rec["kernel"]) if rec.get("kernel") else ""
        if "skipped" in rec:
            rows.append([rec["name"], rec["instruction"], kernel, "not run: " + rec["skipped"], "", ""])
            continue
        one, two = s.one(rec["id"]), s.two(rec["id"])
        rows.append([rec["name"], rec["instruction"], kernel,
                     "%s (%s)" % (at(s.one_at, rec["id"]), g(s.best.get(rec["id"]))),
                     at(s.two_at, rec["id"]) if two else "–",
                     times(two / one) if one and two else "–"])
    out += [table(head, rows, ["---", "---", "---", "---:", "---:", "---:"]), ""]
    out += ["GOPS: medians over the rounds of short bursts, every loop in every round, measured "
            "at the start of the sitting and again at its end (best: the fastest burst of "
            "either). A kernel's bound below is the higher of the two medians, and 2 / 1 divides "
            "the higher ones. A read "
            "loop reads its buffer over and over, so the buffer sits where a layer's weights "
            "sit when the layer runs over and over (L2 or L3 if it fits); with two processes "
            "each reads half of it. A GEMV does 2 operations per weight byte: GB/s = GOPS / 2.", ""]
    return out


def kernels_section(s):
    out = ["## 2. Kernels against their ceilings on %s" % s.machine["name"], ""]
    if not s.kernels:
        return out + ["No `gemm` results.", ""]
    head = ["shape m×p×n"]
    for k in s.kernels:
        loop = s.loop_for(k, 10**9)
        bound = "ceiling %s" % g(s.one(loop)) if loop and s.one(loop) else "no ceiling loop"
        head.append("`%s`, 1 thread<br>(%s)" % (short(k), bound))
    head.append("default `%s`, 2 threads" % short(s.default) if s.default else "2 threads")
    head.append("ndarray f32 `dot`, 1 thread")
    rows = []
    for shape in s.shapes:
        grp = "%dx%dx%d" % shape
        row = [shape_name(shape)]
        for k in s.kernels:
            row.append(s.vs_bound(s.crit.get((grp, "1 thread", k)), k, shape))
        row.append(s.vs_bound(s.crit.get((grp, "all threads", s.default)), s.default, shape, two=True)
                   if s.default else "–")
        row.append(g(s.crit.get((grp, "ndarray f32 dot", "1 thread"))))
        rows.append(row)
    out += [table(head, rows), ""]
    notes = ["In brackets: GOPS / the kernel's bound from table 1, the higher of its loop's medians "
             "(two threads: of the two-vCPU sums). "
             "R: the bound is m × reading the weights (m × the faster read loop of that size), "
             "lower there than the instruction loop."]
    if "x86_64-u8i8i32-amx" in s.kernels:
        notes.append("The AMX kernel runs up to %d rows on the AVX-512 VNNI tile, so there its bound "
                     "is `vpdpbusd zmm`'s." % AMX_SMALL_ROWS)
    missing = [k for k in KERNEL_ORDER if k not in s.kernels]
    if missing:
        notes.append("Not on this CPU: %s." % ", ".join("`%s`" % short(k) for k in missing))
    out += [" ".join(notes), ""]
    return out


def peers_section(s):
    cpu = s.machine["name"]
    out = ["## 3. Against ONNX Runtime and PyTorch on %s" % cpu, ""]
    if not s.default:
        return out + ["No `gemm` results.", ""]
    no_ort, no_torch = s.peer_status(s.ort), s.peer_status(s.torch)
    ort_cell = "ORT " + no_ort.split(":")[0] if no_ort else None
    torch_cell = "PyTorch " + no_torch.split(":")[0] if no_torch else None
    head = ["shape m×p×n", "qlinear GOPS", "÷ ORT QLinearMatMul s8×s8", "÷ ORT QLinearMatMul u8×s8",
            "÷ ORT MatMulInteger u8×s8 (i32 out)", "÷ PyTorch quantized Linear (x86)"]
    rows = []
    for shape in s.shapes:
        grp = "%dx%dx%d" % shape
        cells = [[], [], [], [], []]
        for t, fn in ((1, "1 thread"), (2, "all threads")):
            ours = s.crit.get((grp, fn, s.default))
            cells[0].append(g(ours))
            for i, op in enumerate(("qlinear_s8s8", "qlinear_u8s8", "matmulinteger_u8s8")):
                cells[i + 1].append(s.peer_ratio(ours, s.ort, op, shape, t, ort_cell))
            cells[4].append(s.peer_ratio(ours, s.torch, "linear_x86", shape, t, torch_cell))
        rows.append([shape_name(shape)] + [pair(c) for c in cells])
    out += [table(head, rows), ""]
    notes = ["Each cell: one thread / two threads. qlinear: the `gemm` bench's default kernel `%s` "
             "(int8 in, int8 out, one requantization per output); ORT's QLinearMatMul does the same arithmetic, its MatMulInteger stops at "
             "the int32 accumulators, PyTorch's static quantized Linear maps u8 to u8." % s.default]
    for name, status in (("ONNX Runtime", no_ort), ("PyTorch", no_torch)):
        if status:
            notes.append("%s %s." % (name, status))
    out += [" ".join(notes), ""]
    return out


def dynamic_section(s):
    out = ["## 4. Dynamic layers on %s" % s.machine["name"], ""]
    cells = {}
    for (grp, fn, value), v in s.crit.items():
        mt = re.fullmatch(r"dynamic (\d+)x(\d+)x(\d+)", grp)
        if not mt:
            continue
        for conv in ("onnxruntime u8", "pytorch x86 u7"):
            if value.startswith(conv + " "):
                shape = tuple(int(x) for x in mt.groups())
                cells[(shape, conv, fn)] = (v, value[len(conv) + 1:])
    if not cells:
        return out + ["No `dynamic` results.", ""]
    no_ort, no_torch = s.peer_status(s.ort), s.peer_status(s.torch)
    ort_cell = "ORT " + no_ort.split(":")[0] if no_ort else None
    torch_cell = "PyTorch " + no_torch.split(":")[0] if no_torch else None
    head = ["shape m×p×n", "qlinear, ORT's convention, GOPS", "÷ ORT dynamic MatMul",
            "qlinear, PyTorch's convention, GOPS", "÷ PyTorch dynamic Linear (x86)"]
    rows, kernels = [], {}
    for shape in s.shapes:
        cols = [[], [], [], []]
        for t, fn in ((1, "1 thread"), (2, "all threads")):
            for i, (conv, data, op, missing) in enumerate((
                    ("onnxruntime u8", s.ort, "dynamic_u8s8", ort_cell),
                    ("pytorch x86 u7", s.torch, "dynamic_x86", torch_cell))):
                ours, kernel = cells.get((shape, conv, fn), (None, None))
                if kernel:
                    kernels.setdefault(conv, set()).add(kernel)
                cols[2 * i].append(g(ours))
                cols[2 * i + 1].append(s.peer_ratio(ours, data, op, shape, t, missing))
        rows.append([shape_name(shape)] + [pair(c) for c in cols])
    out += [table(head, rows), ""]
    notes = ["Each cell: one thread / two threads. qlinear's `DynamicLinear` with ONNX Runtime's activation convention (u8, asymmetric; "
             "kernel %s) and PyTorch's x86 one (7-bit, reduce_range; kernel %s); weights int8 per "
             "tensor, symmetric. ORT: the graph quantize_dynamic writes for a MatMul, which ORT "
             "fuses into DynamicQuantizeMatMul." % tuple(
                 ", ".join("`%s`" % short(k) for k in sorted(kernels.get(c, []))) or "–"
                 for c in ("onnxruntime u8", "pytorch x86 u7"))]
    for name, status in (("ONNX Runtime", no_ort), ("PyTorch", no_torch)):
        if status:
            notes.append("%s %s." % (name, status))
    out += [" ".join(notes), ""]
    return out


def markdown_rows(text):
    """Data rows of a markdown table in `text`, as lists of cells."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"[|\-: ]+", line):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def scaling_section(s):
    out = ["## 5. Thread scaling on %s" % s.machine["name"], ""]
    rows = markdown_rows(read(os.path.join(s.work, "thread_scaling.md")))[1:]
    if not rows:
        return out + ["No `thread_scaling` results%s." % (
            ": " + read(os.path.join(s.work, "thread_scaling.log")).splitlines()[-1]
            if read(os.path.join(s.work, "thread_scaling.log")) else ""), ""]
    head = ["shape m×p×n", "kernel", "1 thread GOPS", "2 threads GOPS", "2 / 1 (median of pairs)",
            "2 / 1 of the kernel's bound", "2 threads, fraction of the 2-vCPU bound"]
    body = []
    for r in rows:
        if len(r) < 5:
            continue
        shape = tuple(int(v) for v in r[0].split("x"))
        kernel = r[1].strip("`")
        b1, _ = s.bound(kernel, shape)
        b2, mem = s.bound(kernel, shape, two=True)
        try:
            two = float(r[3])
        except ValueError:
            two = None
        body.append([shape_name(shape), "`%s`" % short(kernel), r[2], r[3], r[4] + "×",
                     times(b2 / b1) + (" R" if mem else "") if b1 and b2 else "–",
                     pct(two / b2) if two and b2 else "–"])
    out += [table(head, body, ["---", "---", "---:", "---:", "---:", "---:", "---:"]), ""]
    out += ["Each pair times a batch of calls on a one-thread pool, then on a two-thread pool, "
            "back to back; the bound's ratio is table 1's two-vCPU sum over its one-vCPU median "
            "(R: the read loop's).", ""]
    return out


def requant_section(s):
    out = ["## 6. Requantizers on %s" % s.machine["name"], ""]
    rows = markdown_rows(read(os.path.join(s.work, "requantizers.md")))
    if len(rows) < 2:
        return out + ["No `requantizers` results.", ""]
    body = [[r[0].replace("x", "×"), "`%s`" % short(r[1].strip("`"))] + r[2:] for r in rows[1:]]
    out += [table(rows[0], body, ["---", "---"] + ["---:"] * (len(rows[0]) - 2)), ""]
    out += ["One thread, the default kernel, int8 in and out: median GOPS of each output stage "
            "and, in brackets, the median over rounds of its speed relative to `Float64` (the "
            "default, as in table 2) in the same round.", ""]
    return out


def peers_own_section(s):
    out = ["## 7. The peers' own figures on %s" % s.machine["name"], ""]
    cols = []  # (label, data, op)
    for data, name, ops in (
            (s.ort, "ORT", [("qlinear_s8s8", "QLinearMatMul s8×s8"), ("qlinear_u8s8", "QLinearMatMul u8×s8"),
                            ("matmulinteger_u8s8", "MatMulInteger u8×s8"),
                            ("dynamic_u8s8", "dynamic MatMul (f32)")]),
            (s.torch, "PyTorch", [("linear_x86", "quantized Linear, x86"),
                                  ("dynamic_x86", "dynamic Linear, x86 (f32)")])):
        status = s.peer_status(data)
        if status:
            out.append("%s: %s." % ("ONNX Runtime" if name == "ORT" else name, status))
            continue
        cols += [("%s %s" % (name, label), data, op) for op, label in ops]
    if not cols:
        return out + [""]
    if out[-1] != "":
        out.append("")
    head = ["shape m×k×n"] + [c[0] + ", 1 / 2 threads" for c in cols]
    rows, wrong = [], []
    for shape in s.shapes:
        row = [shape_name(shape)]
        for label, data, op in cols:
            vals = []
            for t in (1, 2):
                v = s.peer(data, op, shape, t)
                vals.append(g(v))
                for r in data.get("results", []):
                    if ((r.get("op"), (r["m"], r["k"], r["n"]), r.get("threads")) == (op, shape, t)
                            and r.get("wrong_fraction")):
                        wrong.append("%s %s, %d thread(s): %.4f %% of outputs wrong" % (
                            label, shape_name(shape), t, 100 * r["wrong_fraction"]))
            row.append(" / ".join(vals))
        rows.append(row)
    out += [table(head, rows), ""]
    note = ("GOPS, median time per call including the input's feeding and the output's allocation, as a "
            "caller sees them; ORT sessions use intra_op_num_threads, PyTorch torch.set_num_threads. "
            "Exactness on full-range data (the static ops): ")
    note += "; ".join(wrong) + "." if wrong else "every output exact."
    out += [note, ""]
    return out


def write(work, out_path):
    s = Sitting(work)
    lines = header(s, work) + [INTRO]
    for section in (ceilings_section, kernels_section, peers_section, dynamic_section,
                    scaling_section, requant_section, peers_own_section):
        lines += section(s)
    with open(out_path, "w") as fh:
        fh.write("\n".join(lines).rstrip() + "\n")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "cpus":
        cpus()
    elif cmd == "shapes":
        print(",".join("%dx%dx%d" % s for s in bench_shapes()))
    elif cmd == "read-mib":
        read_mib(args[0])
    elif cmd == "executables":
        executables(args[0])
    elif cmd == "unavailable":
        print(json.dumps({args[0]: args[1] if len(args) > 1 else "", "results": []}))
    elif cmd == "write":
        write(args[0], args[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
