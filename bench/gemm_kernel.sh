#!/usr/bin/env bash
# Times the CPU SGEMM (bench/gemm_kernel.c: Kernels/cpu/gemm.c over the system OpenBLAS) at SmolLM2's
# forward shapes, at -O2 as the release build.
#   bench/gemm_kernel.sh [THREADS] [OTHER.c]
# OTHER.c: a second gemm.c (e.g. `git show REV:Kernels/cpu/gemm.c > /tmp/old.c`), timed in the same
# process, calls alternating, for a before/after ratio (other ms / this ms) and its largest output
# difference.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
srcs=(Kernels/cpu/gemm.c Kernels/cpu/threads.c Kernels/cpu/convert.c)
flags=(-O2 -D_GNU_SOURCE -IKernels/include -IKernels/cpu)
if [ -n "${2:-}" ]; then
    # Every function the other file exports, renamed: only its zt_sgemm is called.
    { for f in $(grep -oE '^[a-z][a-z_0-9 *]* \*?(zt_[a-z_0-9]+)\(' "$2" | grep -oE 'zt_[a-z_0-9]+' | sort -u); do
          echo "#define $f ${f}_other"
      done; cat "$2"; } > "$out/other.c"
    srcs+=("$out/other.c")
    flags+=(-DZT_GEMM_OTHER)
fi
clang "${flags[@]}" bench/gemm_kernel.c "${srcs[@]}" -o "$out/gemm_kernel" -lopenblas -lpthread -lm
"$out/gemm_kernel" "${1:-$(nproc)}"
