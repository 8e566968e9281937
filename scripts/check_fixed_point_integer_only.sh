#!/usr/bin/env bash
# Checks that the fixed-point forward path executes no floating-point
# operation: disassembles every function of a release test binary that is
# specialised for `FixedPointStage` (the fused epilogue, the blocked loop,
# the activation packing and the threaded split, for every kernel) plus the
# fixed-point helpers, and fails if any of them contains a floating-point
# arithmetic, comparison, rounding or conversion instruction.
set -euo pipefail
cd "$(dirname "$0")/.."
# v0 symbol mangling keeps generic arguments in the names, so that the
# functions specialised for FixedPointStage can be found.
export RUSTFLAGS="-C symbol-mangling-version=v0"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/mangling-v0}
bin=$(cargo test --release --test peers --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*peers[^"]*\)".*/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "could not build the peers test binary" >&2; exit 1; }
objdump -d -C --no-show-raw-insn "$bin" | awk '
  /^[0-9a-f]+ <.*>:$/ {
    name = $0
    # Construction-time helpers (quantize_multiplier, frexp) may use floats.
    inside = (name ~ /FixedPointStage/ && name !~ /drop_in_place/) ||
             name ~ /fixed_point::(multiply(_by_quantized_multiplier)?|srdhm|shr_half_up|rounding_divide_by_pot|saturating_shl|saturate)/

    if (inside) checked++
    next
  }
  inside {
    # The mnemonic is the first word after the address.
    n = split($0, field, "\t")
    if (n < 2) next
    split(field[2], word, " ")
    op = word[1]
    if (op ~ /^v?(add|sub|mul|div|min|max|sqrt|round|cmp)[sp][sd]$/ || op ~ /^v?cvt/ ||
        op ~ /^v?u?comis[sd]$/ || op ~ /^v?fn?m(add|sub)/ || op ~ /^f(ld|st|add|mul|div|sub|i)/) {
      print "floating-point instruction in " name ": " $0
      bad++
    }
  }
  END {
    if (checked == 0) { print "no fixed-point functions found to check"; exit 1 }
    printf "%d fixed-point functions checked, %d floating-point instructions\n", checked, bad
    exit bad > 0
  }'
