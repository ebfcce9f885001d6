#!/usr/bin/env bash
# Kernel microbenchmark on this machine: release build, then `zotune bench kernels` twice: with the
# environment as it is (OpenBLAS safety settings kept) and without OPENBLAS_CORETYPE/L2_SIZE.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product zotune >/dev/null
echo "== environment as set (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset})"
.build/release/zotune bench kernels --device cpu "$@"
echo "== without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .build/release/zotune bench kernels --device cpu "$@"
