# Sourced by check.sh, e2e.sh and run.sh: the CUDA library dlopens cuBLAS by name
# (libcublas.so.13, .12, libcublas.so; Kernels/cuda/gemm.cu), so its directory must be on the
# loader path of every process that runs a GEMM: the toolkit's lib64 and the pip wheels' lib
# folders are added to LD_LIBRARY_PATH. ZOTUNE_CUBLAS=path/libcublas.so.N names one library (it is
# loaded first) and puts its folder first. Sets zt_cublas_dirs to what was added ("" if none).
zt_cublas_dirs=""
if [[ -n ${ZOTUNE_CUBLAS:-} ]]; then zt_cublas_dirs=$(dirname "$ZOTUNE_CUBLAS"); fi
zt_site="$(python3 -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null || true)"
for zt_d in "${CUDA_HOME:-/nonexistent}/lib64" /usr/local/cuda/lib64 \
            "$zt_site/nvidia/cu13/lib" "$zt_site/nvidia/cublas/lib" "$zt_site/nvidia/cu12/lib"; do
    if compgen -G "$zt_d/libcublas.so*" > /dev/null; then zt_cublas_dirs="${zt_cublas_dirs:+$zt_cublas_dirs:}$zt_d"; fi
done
if [[ -n $zt_cublas_dirs ]]; then export LD_LIBRARY_PATH="$zt_cublas_dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
unset zt_site zt_d
