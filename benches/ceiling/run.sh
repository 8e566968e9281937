#!/usr/bin/env bash
# Builds ceiling.c and runs it on one vCPU, then on two at once (one
# process pinned to each), to show what the kernels' instruction mixes
# (AVX2, and where the CPU has them AVX-512 VNNI, AVX-VNNI, AMX) can reach
# on this machine and how much a second vCPU adds to code that touches
# nothing beyond L1; and how fast one and two vCPUs read the GEMV's
# weights. Needs gcc (11 or later) and taskset; not part of CI.
# benches/report.sh runs the same program for docs/benchmarks.md.
#   benches/ceiling/run.sh [burst seconds, default 0.01]
#   QLINEAR_STREAM_MIB=16,4 benches/ceiling/run.sh   # read loops per size
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${TMPDIR:-/tmp}/qlinear-ceiling"
gcc -O2 -Wall -o "$bin" "$here/ceiling.c"
echo "== one process, vCPU 0"
taskset -c 0 "$bin" "$@"
echo "== two processes at once, one on each vCPU: median GOPS of each, and their sum"
echo "   (the read loops: each reads half the weights, as two threads do)"
start=$(( $(date +%s) + 2 ))
taskset -c 0 "$bin" --split 2 --start-at "$start" "$@" > "$bin.0" &
taskset -c 1 "$bin" --split 2 --start-at "$start" "$@" > "$bin.1" &
wait
paste -d'\n' "$bin.0" "$bin.1" | awk '
  NR <= 2 { next }
  { name = substr($0, 1, 56); split(substr($0, 57), f, " "); median = f[1] }
  NR % 2 == 1 { first = median; next }
  /skipped:/ { print; next }
  { printf "%s %6.1f + %6.1f = %6.1f\n", name, first, median, first + median }'
