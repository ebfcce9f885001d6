#!/usr/bin/env bash
# Times the CPU elementwise kernels in place and out of place (bench/elementwise_kernel.c) at -O2 as
# the release build, and checks that in place gives the out-of-place bits.
#   bench/elementwise_kernel.sh [THREADS] [OTHER.c]
# OTHER.c: a second elementwise.c (e.g. `git show REV:Kernels/cpu/elementwise.c > /tmp/old.c`),
# timed in the same process, alternating, with its in-place bits compared to this tree's.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bench/kernel_ab.sh bench/elementwise_kernel.c Kernels/cpu/elementwise.c "zt_swiglu zt_add zt_silu zt_gelu_erf" \
    ZT_EW_OTHER "${1:-$(nproc)}" "${2:-}"
