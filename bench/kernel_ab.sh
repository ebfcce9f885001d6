#!/usr/bin/env bash
# Builds and runs a single-kernel CPU benchmark at -O2 as the release build, optionally against a
# second version of the kernel's source file linked into the same process (its named functions
# renamed FN_other, every other symbol of it made local), for before/after ratios in one run.
#   bench/kernel_ab.sh BENCH.c KERNEL.c "FN FN …" DEFINE THREADS [OTHER.c]
# BENCH.c is built with -DDEFINE when OTHER.c is given (it then declares and calls FN_other).
# Used by bench/rows_kernel.sh and bench/elementwise_kernel.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=$1 kernel=$2 fns=$3 define=$4 threads=$5 other=${6:-}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags=(-O2 -D_GNU_SOURCE -IKernels/include -IKernels/cpu -Ibench)
objs=()
if [ -n "$other" ]; then
    cp "$other" "$out/other.c"
    clang "${flags[@]}" -c "$out/other.c" -o "$out/other_raw.o"
    ren=()
    for f in $fns; do ren+=(--redefine-sym "$f=${f}_other" -G "${f}_other"); done
    objcopy "${ren[@]}" "$out/other_raw.o" "$out/other.o"
    objs+=("$out/other.o")
    flags+=("-D$define")
fi
clang "${flags[@]}" "$bench" "$kernel" Kernels/cpu/threads.c "${objs[@]}" -o "$out/bench" -lpthread -lm
"$out/bench" "$threads"
