#!/usr/bin/env bash
# Times the CPU elementwise kernels in place and out of place (bench/elementwise_kernel.c) at -O2 as
# the release build, and checks that in place gives the out-of-place bits.
#   bench/elementwise_kernel.sh [THREADS] [OTHER.c]
# OTHER.c: a second elementwise.c (e.g. `git show REV:Kernels/cpu/elementwise.c > /tmp/old.c`),
# timed in the same process, alternating, with its in-place bits compared to this tree's.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags=(-O2 -D_GNU_SOURCE -IKernels/include -IKernels/cpu -Ibench)
objs=()
if [ -n "${2:-}" ]; then
    cp "$2" "$out/other.c"
    clang "${flags[@]}" -c "$out/other.c" -o "$out/other_raw.o"
    ren=()
    for f in zt_swiglu zt_add zt_silu zt_gelu_erf; do ren+=(--redefine-sym "$f=${f}_other" -G "${f}_other"); done
    objcopy "${ren[@]}" "$out/other_raw.o" "$out/other.o"
    objs+=("$out/other.o")
    flags+=(-DZT_EW_OTHER)
fi
clang "${flags[@]}" bench/elementwise_kernel.c Kernels/cpu/elementwise.c Kernels/cpu/threads.c "${objs[@]}" -o "$out/elementwise_kernel" -lpthread -lm
"$out/elementwise_kernel" "${1:-$(nproc)}"
