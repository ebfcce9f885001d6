#!/usr/bin/env bash
# Times the CPU's vocabulary-wide row kernels alone (bench/rows_kernel.c) at -O2 as the release build.
#   bench/rows_kernel.sh [THREADS] [OTHER.c]
# OTHER.c: a second rows.c (e.g. `git show REV:Kernels/cpu/rows.c > /tmp/old.c`), timed in the same
# process, alternating, for a before/after ratio (other ms / this ms) and its largest output
# difference. Wall and CPU ms are both printed: on a busy machine the CPU ratio is the steadier one.
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
    for f in zt_token_logprobs zt_log_softmax zt_softmax zt_logsumexp_panel; do ren+=(--redefine-sym "$f=${f}_other" -G "${f}_other"); done
    objcopy "${ren[@]}" "$out/other_raw.o" "$out/other.o"
    objs+=("$out/other.o")
    flags+=(-DZT_ROWS_OTHER)
fi
clang "${flags[@]}" bench/rows_kernel.c Kernels/cpu/rows.c Kernels/cpu/threads.c "${objs[@]}" -o "$out/rows_kernel" -lpthread -lm
"$out/rows_kernel" "${1:-$(nproc)}"
