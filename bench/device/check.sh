#!/usr/bin/env bash
# Device check of the CUDA backend, for a machine with nvcc and gcc (no Swift toolchain needed).
#
#   bench/device/check.sh              GPU machine: build the library and the harness, compare every
#                                      kernel with the CPU reference kernels, time the stream kernels
#                                      and GEMM, run the shadow-vs-in-place experiment (< 5 min on an
#                                      H100/H200). Exit status 1 if any check fails.
#   bench/device/check.sh --self-test  any machine (no GPU): build both, check the library's table,
#                                      its no-device errors and the CPU-side references, and dry-run
#                                      every device check on a host table.
#
# Output goes to stdout; set ZT_CHECK_LOG=path to keep a copy. The harness binary is
# Kernels/build/zt_device_check (Kernels/build is git-ignored).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
mode="full"
case "${1:-}" in
    --self-test) mode="self-test" ;;
    "") ;;
    *) echo "usage: $0 [--self-test]" >&2; exit 2 ;;
esac

Kernels/build.sh

CC="${CC:-gcc}"
CXX="${CXX:-g++}"
obj="Kernels/build/check"
mkdir -p "$obj"
# References are compiled without contraction or fast-math: the CPU kernels' numerics contract.
cflags=(-O2 -ffp-contract=off -fno-fast-math -D_GNU_SOURCE -IKernels/include -pthread -Wall)
# The CPU kernels the harness compares against. gemm.c and cpu_api.c need OpenBLAS: GEMM references
# are naive loops in check.c, which also supplies a naive zt_sgemm for newton_schulz.c.
# cuda_loader.c is the loader the Swift backend uses.
cpu_srcs=(perturb frontier convert elementwise rows attention rope embedding newton_schulz jaguar projection local_grad dequant threads cuda_loader fused_half)
objs=()
pids=()
for s in "${cpu_srcs[@]}"; do
    "$CC" -std=gnu11 "${cflags[@]}" -c "Kernels/cpu/$s.c" -o "$obj/$s.o" &
    pids+=($!)
    objs+=("$obj/$s.o")
done
"$CXX" -std=c++17 "${cflags[@]}" -IKernels/cuda -c bench/device/emulate.cpp -o "$obj/emulate.o" &
pids+=($!)
"$CC" -std=gnu11 "${cflags[@]}" -c bench/device/check.c -o "$obj/check.o" &
pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done
"$CXX" -o Kernels/build/zt_device_check "$obj/check.o" "$obj/emulate.o" "${objs[@]}" -ldl -lm -pthread

lib="$root/Kernels/build/libzotune_cuda.so"
log="${ZT_CHECK_LOG:-/dev/null}"
if [[ "$mode" == "self-test" ]]; then
    Kernels/build/zt_device_check --self-test "$lib" 2>&1 | tee "$log"
    exit "${PIPESTATUS[0]}"
fi

# cuBLAS is dlopened by name: its usual places (toolkit, pip wheels) on the loader path.
source bench/device/cublas_env.sh
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader || true
    # The peak SM clock, for the bf16 floor's instruction limit if the driver reports none (check_floor.c).
    ZT_SM_CLOCK_MHZ=$(nvidia-smi --query-gpu=clocks.max.sm --format=csv,noheader,nounits 2>/dev/null | head -n 1 | tr -d ' ') || true
    export ZT_SM_CLOCK_MHZ
fi
Kernels/build/zt_device_check "$lib" 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
