# Sourced by check.sh, e2e.sh and run.sh: the CUDA library dlopens cuBLAS by name
# (libcublas.so.13, .12, libcublas.so; Kernels/cuda/gemm.cu), so its directory must be on the
# loader path of every process that runs a GEMM: the toolkit's lib64 and the pip wheels' lib
# folders are added to LD_LIBRARY_PATH. ZOTUNE_CUBLAS=path/libcublas.so.N names one library (it is
# loaded first) and puts its folder first. Sets zt_cublas_dirs to what was added ("" if none).
zt_cublas_dirs=""
if [[ -n ${ZOTUNE_CUBLAS:-} ]]; then zt_cublas_dirs=$(dirname "$ZOTUNE_CUBLAS"); fi
zt_dirs=("${CUDA_HOME:-/nonexistent}/lib64" /usr/local/cuda/lib64)
while read -r zt_p; do  # every folder of the nvidia namespace package (pip wheels)
    if [[ -n $zt_p ]]; then zt_dirs+=("$zt_p/cu13/lib" "$zt_p/cublas/lib" "$zt_p/cu12/lib"); fi
done < <(python3 -c 'import nvidia; print("\n".join(nvidia.__path__))' 2>/dev/null || true)
for zt_d in "${zt_dirs[@]}"; do
    if compgen -G "$zt_d/libcublas.so*" > /dev/null; then zt_cublas_dirs="${zt_cublas_dirs:+$zt_cublas_dirs:}$zt_d"; fi
done
if [[ -n $zt_cublas_dirs ]]; then export LD_LIBRARY_PATH="$zt_cublas_dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
unset zt_dirs zt_p zt_d
