#!/usr/bin/env bash
# Times the CPU's vocabulary-wide row kernels alone (bench/rows_kernel.c) at -O2 as the release build.
#   bench/rows_kernel.sh [THREADS] [OTHER.c]
# OTHER.c: a second rows.c (e.g. `git show REV:Kernels/cpu/rows.c > /tmp/old.c`), timed in the same
# process, alternating, for a before/after ratio (other ms / this ms) and its largest output
# difference. Wall and CPU ms are both printed: on a busy machine the CPU ratio is the steadier one.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bench/kernel_ab.sh bench/rows_kernel.c Kernels/cpu/rows.c "zt_token_logprobs zt_log_softmax zt_softmax zt_logsumexp_panel" \
    ZT_ROWS_OTHER "${1:-$(nproc)}" "${2:-}"
