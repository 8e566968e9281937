#!/usr/bin/env bash
# Builds ceiling.c and runs it on one vCPU, then on two at once (one
# process pinned to each), to show what the AVX2 kernels' instruction mixes
# can reach on this machine and how much a second vCPU adds to code that
# touches nothing beyond L1; and how fast one and two vCPUs read the GEMV's
# weights. Needs gcc and taskset; not part of CI.
#   benches/ceiling/run.sh [burst seconds, default 0.01]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${TMPDIR:-/tmp}/qlinear-ceiling"
gcc -O2 -Wall -o "$bin" "$here/ceiling.c"
echo "== one process, vCPU 0"
taskset -c 0 "$bin" "$@"
echo "== two processes at once, one on each vCPU: median GOPS of each, and their sum"
echo "   (the GEMV loop: each reads 8 MiB, half the weights, as two threads do)"
QLINEAR_STREAM_MIB=8 taskset -c 0 "$bin" "$@" > "$bin.0" &
QLINEAR_STREAM_MIB=8 taskset -c 1 "$bin" "$@" > "$bin.1" &
wait
paste -d'\n' "$bin.0" "$bin.1" | awk '
  NR <= 2 { next }
  { name = substr($0, 1, 52); median = $(NF - 2) }
  NR % 2 == 1 { first = median; next }
  { printf "%s %6.1f + %6.1f = %6.1f\n", name, first, median, first + median }'
