#!/usr/bin/env bash
# Builds Kernels/build/libzotune_cuda.so from Kernels/cuda/*.cu: sm_80 and sm_90 machine code plus
# compute_90 PTX (JIT for newer GPUs), CUDA runtime linked statically, so the library needs only
# the driver (libcuda.so.1) at run time; cuBLAS is dlopened when a GEMM first runs.
#
#   Kernels/build.sh            build (objects are rebuilt only when a source, a header or the flags changed)
#   Kernels/build.sh --clean    remove Kernels/build/cuda first
#
# nvcc: $NVCC, else $CUDA_HOME/bin/nvcc, else nvcc on PATH, else the pip wheel's
# (python3 -c "import nvidia" → …/nvidia/cu13/bin/nvcc or cu12). ZT_CUDA_ARCHS overrides the
# -gencode list (e.g. "-gencode arch=compute_90,code=sm_90": one architecture, perturb.cu in 14 s not 22 s;
# bench/device/run.sh builds only the GPU's own); objects built for another list are rebuilt.
# ZT_BUILD_DIR puts the build elsewhere (default Kernels/build).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
src="$here/cuda"
out="${ZT_BUILD_DIR:-$here/build}"
obj="$out/cuda"

if [[ "${1:-}" == "--clean" ]]; then rm -rf "$obj"; fi

find_nvcc() {
    if [[ -n "${NVCC:-}" ]]; then echo "$NVCC"; return; fi
    if [[ -n "${CUDA_HOME:-}" && -x "$CUDA_HOME/bin/nvcc" ]]; then echo "$CUDA_HOME/bin/nvcc"; return; fi
    if command -v nvcc >/dev/null 2>&1; then command -v nvcc; return; fi
    for d in /usr/local/cuda/bin; do
        if [[ -x "$d/nvcc" ]]; then echo "$d/nvcc"; return; fi
    done
    local site
    site="$(python3 -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null || true)"
    for v in cu13 cu12; do
        if [[ -n "$site" && -x "$site/nvidia/$v/bin/nvcc" ]]; then echo "$site/nvidia/$v/bin/nvcc"; return; fi
    done
    return 1
}

nvcc="$(find_nvcc)" || { echo "build.sh: nvcc not found (set NVCC or CUDA_HOME)" >&2; exit 1; }
cuda_root="$(cd "$(dirname "$nvcc")/.." && pwd)"
# The static runtime lives in lib64 (toolkit installs) or lib (pip wheels).
libdir=""
for d in "$cuda_root/lib64" "$cuda_root/lib" "$cuda_root/targets/x86_64-linux/lib"; do
    if [[ -f "$d/libcudart_static.a" ]]; then libdir="$d"; break; fi
done
[[ -n "$libdir" ]] || { echo "build.sh: libcudart_static.a not found under $cuda_root" >&2; exit 1; }

archs="${ZT_CUDA_ARCHS:--gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90}"
# No --use_fast_math: denormals, IEEE division and sqrt are part of the numerics contract
# (docs/cuda.md). Contraction stays on for ordinary code; the bit-identical kernels use __f*_rn
# intrinsics, which are never contracted. Host code is compiled without contraction too.
flags=(-O3 -std=c++20 -I"$here/include" -I"$src" -Xcompiler -fPIC -Xcompiler -fvisibility=hidden
       -Xcompiler -ffp-contract=off -Xcompiler -Wall --expt-relaxed-constexpr $archs)

mkdir -p "$obj"
# Objects compiled with other flags or architectures are stale (linking them would mix lists or
# miss the GPU's): the flags are kept in a stamp. Objects from before the stamp used the defaults.
stamp="${flags[*]}"
[[ -f "$obj/flags" || -n "${ZT_CUDA_ARCHS:-}" ]] || printf '%s\n' "$stamp" > "$obj/flags"
if [[ "$(cat "$obj/flags" 2>/dev/null)" != "$stamp" ]]; then rm -f "$obj"/*.o; printf '%s\n' "$stamp" > "$obj/flags"; fi
echo "nvcc: $nvcc ($("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"

# Rebuild an object when its .cu or any header it may include is newer.
headers=("$src"/*.cuh "$here"/include/*.h)
jobs="${ZT_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
(( jobs > 16 )) && jobs=16  # one nvcc per .cu on a GPU machine's 16 cores
pids=()
fail=0
for cu in "$src"/*.cu; do
    o="$obj/$(basename "${cu%.cu}").o"
    stale=0
    [[ -f "$o" ]] || stale=1
    for h in "$cu" "${headers[@]}"; do [[ "$h" -nt "$o" ]] && stale=1; done
    (( stale )) || continue
    echo "  nvcc $(basename "$cu")"
    "$nvcc" "${flags[@]}" -c "$cu" -o "$o" &
    pids+=($!)
    if (( ${#pids[@]} >= jobs )); then
        wait "${pids[0]}" || fail=1
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do wait "$p" || fail=1; done
(( fail == 0 )) || { echo "build.sh: compilation failed" >&2; exit 1; }

# Export only the entry point (and the harness's debug hook): the static runtime's symbols stay
# local, so the library can share a process with other CUDA runtimes (PyTorch, cuBLAS).
cat > "$obj/exports.map" <<'EOF'
{ global: zt_cuda_get_api; zt_cuda_debug_philox; local: *; };
EOF
"$nvcc" -shared -cudart static $archs -L"$libdir" -o "$out/libzotune_cuda.so" "$obj"/*.o \
    -Xlinker --version-script="$obj/exports.map" -Xlinker -z,defs -ldl -lpthread -lrt
echo "built $out/libzotune_cuda.so"
