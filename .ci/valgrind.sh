#!/usr/bin/env bash
# Memcheck over the GEMM kernels: builds tests/kernels.rs in release with
# debug info and runs its `memcheck_*` tests (small versions of the
# exactness tests: tile edges, strided inputs and output views, the depth
# split, row blocks, both thread splits, an odd shape with every
# requantizer) under valgrind's memcheck.
#
# Usage: .ci/valgrind.sh [TEST-FILTER]      (default: memcheck_)
#
# Exits non-zero on any valgrind error, any test failure, or a crash
# (e.g. SIGILL). Valgrind 3.19 emulates AVX2 but not AVX-512 or AVX-VNNI
# and hides their CPUID bits, so under it the crate lists only the kernels
# it can run; the script prints which ones were covered. Valgrind's emulated
# CPU also reports its own cache sizes, from which the crate sizes its row
# blocks: the tests pick their shapes from what the crate reports at run
# time, and print the blocks and thread splits they reached.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || {
    echo "valgrind.sh: valgrind not found" >&2
    exit 2
}
filter="${1:-memcheck_}"

# Debug info for valgrind's stack traces. The changed profile would
# invalidate the ordinary release build, so build in a directory of its own
# unless the caller chose one.
export CARGO_PROFILE_RELEASE_DEBUG=true
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/valgrind}"

start=$(date +%s)
json=$(cargo test --release --test kernels --no-run --message-format=json)
bin=$(printf '%s\n' "$json" |
    grep '"reason":"compiler-artifact"' |
    grep '"name":"kernels"' |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' |
    tail -n 1)
if [[ -z "$bin" || ! -x "$bin" ]]; then
    echo "valgrind.sh: could not find the kernels test binary" >&2
    exit 2
fi
echo "valgrind.sh: $bin (filter: $filter)"
"$bin" --list "$filter" | grep ': test$' | sed 's/^/  /'

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
valgrind --tool=memcheck --error-exitcode=1 --leak-check=no \
    "$bin" "$filter" --test-threads=1 --nocapture 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

echo
covered=$(sed -n 's/.*memcheck kernels: //p' "$log" | tail -n 1)
echo "valgrind.sh: kernels covered under valgrind: ${covered:-unknown (memcheck_kernels_covered not run)}"
echo "valgrind.sh: $(($(date +%s) - start)) s, exit status $status"
exit "$status"
