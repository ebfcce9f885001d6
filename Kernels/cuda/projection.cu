// DiZO's projection θ⁰ + α(θ_b − θ⁰) into the weights, the CUDA twin of Kernels/cpu/projection.c:
// the same element function (zt_lerp_elem in zt_optim.h), so results are bit-identical.
#include "kernels.cuh"
#include "numerics.cuh"
#include "zt_optim.h"

#define LERP_THREADS 256

template <int DT>
__global__ void __launch_bounds__(LERP_THREADS) lerp_kernel(void *out, const void *a, const void *b, int64_t n, float alpha) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        zt_st<DT>(out, i, zt_lerp_elem(zt_ld<DT>(a, i), zt_ld<DT>(b, i), alpha));
}

void zt_cu_lerp(void *d_out, zt_dtype dtype, const void *d_a, const void *d_b, int64_t n, float alpha) {
    zt_ctx *c = zt_ctx_get();
    if (!c || n <= 0) return;
    const unsigned grid = zt_grid(c, n, LERP_THREADS);
    switch (dtype) {
    case ZT_F32: lerp_kernel<ZT_F32><<<grid, LERP_THREADS, 0, c->stream>>>(d_out, d_a, d_b, n, alpha); break;
    case ZT_BF16: lerp_kernel<ZT_BF16><<<grid, LERP_THREADS, 0, c->stream>>>(d_out, d_a, d_b, n, alpha); break;
    case ZT_F16: lerp_kernel<ZT_F16><<<grid, LERP_THREADS, 0, c->stream>>>(d_out, d_a, d_b, n, alpha); break;
    default: zt_async_error((int)cudaErrorInvalidValue, "lerp: unknown dtype %d", (int)dtype); return;
    }
    zt_launch_check("lerp");
}
