#!/usr/bin/env bash
# Times the CPU attention kernel alone (bench/attention_kernel.c) at -O2 as the release build.
#   [SOFTCAP=c] [REPS=k] bench/attention_kernel.sh [THREADS] [OTHER.c]
# OTHER.c: a second attention.c (e.g. `git show REV:Kernels/cpu/attention.c > /tmp/old.c`), timed in
# the same process for a before/after ratio (other ms / this ms) and its largest output difference;
# one from before the softcap argument is called without it. SOFTCAP=c: scores soft-capped at c.
# REPS=k: k times the calls per shape. Wall and CPU ms (all threads) are both printed: on a busy
# machine the CPU ratio is the steadier one.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
srcs=(Kernels/cpu/attention.c Kernels/cpu/threads.c)
flags=(-O2 -D_GNU_SOURCE -IKernels/include -IKernels/cpu)
if [ -n "${2:-}" ]; then
    sed 's/^void zt_attention(/void zt_attention_other(/' "$2" > "$out/other.c"
    srcs+=("$out/other.c")
    flags+=(-DZT_ATTENTION_OTHER=zt_attention_other)
    grep -q 'int64_t window, float softcap)' "$2" || flags+=(-DZT_ATTENTION_OTHER_NO_SOFTCAP)
fi
clang "${flags[@]}" bench/attention_kernel.c "${srcs[@]}" -o "$out/attention_kernel" -lpthread -lm
"$out/attention_kernel" "${1:-$(nproc)}"
