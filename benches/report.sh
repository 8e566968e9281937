#!/usr/bin/env bash
# Writes docs/benchmarks.md, whole, from one sitting on this machine:
#
#   1. the instruction ceilings of the kernels this CPU has
#      (benches/ceiling/ceiling.c), on one vCPU and on two at once;
#   2. the peers: ONNX Runtime (benches/peers/ort_bench.py) and PyTorch
#      (benches/peers/torch_bench.py), one thread and two, on the benches'
#      shapes; a peer that is not importable is reported as such;
#   3. the Rust benches: criterion's `gemm` and `dynamic` (read from their
#      estimates.json, median), then `thread_scaling` and `requantizers`;
#   4. the ceilings again, to show how far the machine drifted; a kernel's
#      bound is the higher of its loop's two medians.
#
# Every table's ratios divide numbers of this sitting only. The benches are
# built before anything is measured, and the built binaries are run
# directly, so the sources may change meanwhile without a rebuild in the
# middle of the sitting.
#
#   bash benches/report.sh           # about 15–25 min on 2 vCPUs
#   bash benches/report.sh --quick   # about 3 min (plus the build): checks the
#                                    # pipeline, the numbers mean nothing
#
# Needs cargo, gcc (11 or later), taskset and python3 (the page is written
# with the standard library only; the peers need numpy, onnx, onnxruntime
# and torch, see scripts/peers/README.md). Not part of CI. The raw results
# stay in the directory printed at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done
command="bash benches/report.sh$([ "$quick" = 1 ] && echo ' --quick' || true)"

for tool in cargo gcc taskset python3 git; do
  command -v "$tool" > /dev/null || { echo "report.sh needs $tool" >&2; exit 1; }
done

# The kernels are chosen as a user's process chooses them.
unset QLINEAR_KERNEL

work="$(mktemp -d "${TMPDIR:-/tmp}/qlinear-report.XXXXXX")"
started=$(date +%s)
log() { echo "[report.sh $(( $(date +%s) - started )) s] $*" >&2; }
py() { python3 "$root/benches/report/report.py" "$@"; }

# The vCPUs this process may run on: the first two carry the ceiling's
# pinned processes.
mapfile -t cpus < <(py cpus)
# Everything else runs on those two as well, "all threads" meaning both.
if [ "${#cpus[@]}" -ge 2 ]; then
  threads=1,2 pin="${cpus[0]},${cpus[1]}"
  export RAYON_NUM_THREADS=2
else
  threads=1 pin="${cpus[0]}"
  export RAYON_NUM_THREADS=1
fi
shapes="$(py shapes)"
read_mib="$(py read-mib "$shapes")"

# ---- the sitting's facts, once -------------------------------------------
date -u '+%Y-%m-%d %H:%M UTC' > "$work/date"
git rev-parse HEAD > "$work/commit"
git status --porcelain --untracked-files=no > "$work/dirty" || true
{
  rustc --version
  gcc --version | head -n 1
  python3 --version
} > "$work/tools" 2>&1
echo "$command" > "$work/command"
echo "$quick" > "$work/quick"

# ---- build --------------------------------------------------------------
log "building the benches (cargo bench --no-run)"
cargo bench --no-run --message-format=json-render-diagnostics > "$work/build.json"
py executables "$work/build.json" > "$work/executables"
bench_bin() { awk -v n="$1" '$1 == n { print $2 }' "$work/executables"; }
for b in gemm dynamic thread_scaling requantizers; do
  [ -x "$(bench_bin "$b")" ] || { echo "no executable for bench $b" >&2; exit 1; }
done
gcc -O2 -Wall -o "$work/ceiling" benches/ceiling/ceiling.c

if [ "$quick" = 1 ]; then
  ceiling_args=(--rounds 5 0.002)
  criterion_args=(--quick)
  peer_args=(--quick)
  custom_filter=(16x1024x1024)
else
  ceiling_args=()
  criterion_args=()
  peer_args=()
  custom_filter=()
fi

# ---- 1. ceilings ---------------------------------------------------------
# ceilings WHEN: one process on the first vCPU, then one on each of the
# first two at once, each reading half of every read loop's buffer.
ceiling() { QLINEAR_STREAM_MIB="$read_mib" taskset -c "$1" "$work/ceiling" --json "${@:2}" "${ceiling_args[@]}"; }
ceilings() {
  log "ceilings ($1) on vCPU ${cpus[0]}"
  ceiling "${cpus[0]}" > "$work/ceiling-$1-1.jsonl" || log "ceiling failed"
  if [ "${#cpus[@]}" -ge 2 ]; then
    log "ceilings ($1) on vCPUs ${cpus[0]} and ${cpus[1]} at once"
    local at=$(( $(date +%s) + 2 )) first
    ceiling "${cpus[0]}" --split 2 --start-at "$at" > "$work/ceiling-$1-2a.jsonl" &
    first=$!
    ceiling "${cpus[1]}" --split 2 --start-at "$at" > "$work/ceiling-$1-2b.jsonl" &
    { wait "$first" && wait $!; } || log "ceiling failed"
  fi
}
ceilings start

# ---- 2. peers ------------------------------------------------------------
# peer NAME SCRIPT MODULES ARGS...: runs SCRIPT if MODULES import, and
# leaves NAME.json either way (with "unavailable" or "failed" if not run).
peer() {
  local name="$1" script="$2" modules="$3"
  shift 3
  local why
  if ! why="$(python3 -c "import $modules" 2>&1)"; then
    log "$name: not importable"
    py unavailable "unavailable" "$(printf '%s\n' "$why" | tail -n 1)" > "$work/$name.json"
    return
  fi
  log "$name ($script)"
  if ! taskset -c "$pin" python3 "$script" --threads "$threads" --shapes "$shapes" --json "$work/$name.json" \
      "${peer_args[@]}" "$@" > "$work/$name.md" 2> "$work/$name.log"; then
    py unavailable "failed" "$(tail -n 1 "$work/$name.log")" > "$work/$name.json"
  fi
}
peer ort benches/peers/ort_bench.py "numpy, onnx, onnxruntime" \
  --ops qlinear_s8s8,qlinear_u8s8,matmulinteger_u8s8,dynamic_u8s8
peer torch benches/peers/torch_bench.py "numpy, torch" --engines x86 --kinds static,dynamic

# ---- 3. the Rust benches -------------------------------------------------
# A bench that fails leaves its table empty on the page ("no results"), and
# the sitting goes on.
export CRITERION_HOME="$work/criterion"
rust_bench() {
  local name="$1" out="$2"
  shift 2
  taskset -c "$pin" "$(bench_bin "$name")" --bench "$@" > "$out" 2> "$work/$name.log" ||
    log "bench $name failed: see $work/$name.log"
}
log "cargo bench --bench gemm (criterion; the naive reference is left out)"
rust_bench gemm "$work/gemm.out" --noplot "${criterion_args[@]}" \
  '^[0-9]+x[0-9]+x[0-9]+/(1 thread|all threads|ndarray f32 dot)/'
log "cargo bench --bench dynamic (criterion)"
rust_bench dynamic "$work/dynamic.out" --noplot "${criterion_args[@]}"
log "cargo bench --bench thread_scaling"
rust_bench thread_scaling "$work/thread_scaling.md" "${custom_filter[@]}"
log "cargo bench --bench requantizers"
rust_bench requantizers "$work/requantizers.md" "${custom_filter[@]}"

# ---- 4. the ceilings again -----------------------------------------------
ceilings end

echo $(( $(date +%s) - started )) > "$work/seconds"
py write "$work" docs/benchmarks.md
log "wrote docs/benchmarks.md; raw results in $work"
