// CUDA twins of Kernels/cpu/frontier.c (FZOO, Sparse MeZO, MeZO-SVRG; zt_frontier.h): one thread
// per group of frontier_math.h, grid-stride; the group code is the CPU's own, so results are
// bit-identical to the CPU kernels. The term list travels by value as a kernel parameter (~1 KB).
#include "kernels.cuh"
#include "../cpu/frontier_math.h"

#define FRONTIER_THREADS 256

__global__ void __launch_bounds__(FRONTIER_THREADS) sum_kernel(zt_sum_args a, void *out, zt_dtype odt, const void *src,
                                                               zt_dtype sdt, int64_t n, uint64_t first, uint32_t tid,
                                                               uint64_t g_first, uint64_t groups) {
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; t < groups; t += stride)
        zt_sum_group(&a, out, odt, src, sdt, n, first, tid, g_first + t);
}

__global__ void __launch_bounds__(FRONTIER_THREADS) masked_kernel(int op, zt_masked_args a, void *x, zt_dtype dt,
                                                                  uint8_t *mask, int64_t n, uint64_t first, uint64_t seed,
                                                                  uint32_t tid, uint32_t stream, uint64_t groups) {
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; t < groups; t += stride)
        zt_masked_group(op, &a, x, dt, mask, n, first, seed, tid, stream, first / 4 + t);
}

static bool fr_dtype_ok(zt_dtype d) { return d == ZT_F32 || d == ZT_BF16 || d == ZT_F16; }

void zt_cu_stream_sum(void *d_out, zt_dtype out_dtype, const void *d_src, zt_dtype src_dtype, int64_t n, uint64_t first,
                      uint32_t tensor_id, const zt_sum_args *args) {
    if (n <= 0) return;
    zt_ctx *c = zt_ctx_get();
    if (!c) return;
    if (!d_src) { d_src = d_out; src_dtype = out_dtype; }
    if (!fr_dtype_ok(out_dtype) || !fr_dtype_ok(src_dtype) || args->count < 1 || args->count > ZT_SUM_MAX_TERMS ||
        (args->dir != ZT_DIR_RADEMACHER && args->dir != ZT_DIR_NORMAL)) {
        zt_async_error((int)cudaErrorInvalidValue, "stream_sum: bad arguments (dtype %d/%d, %d terms, dir %d)",
                       (int)out_dtype, (int)src_dtype, args->count, args->dir);
        return;
    }
    const int len = zt_sum_group_len(args->dir);
    const uint64_t groups = zt_fr_groups(first, n, len);
    sum_kernel<<<zt_grid(c, (int64_t)groups, FRONTIER_THREADS, 8), FRONTIER_THREADS, 0, c->stream>>>(
        *args, d_out, out_dtype, d_src, src_dtype, n, first, tensor_id, first / (uint64_t)len, groups);
    zt_launch_check("stream_sum");
}

void zt_cu_masked_stream(int op, void *d_x, zt_dtype dtype, uint8_t *d_mask, int64_t n, uint64_t first, uint64_t seed,
                         uint32_t tensor_id, uint32_t stream, const zt_masked_args *args) {
    if (n <= 0) return;
    zt_ctx *c = zt_ctx_get();
    if (!c) return;
    if (!fr_dtype_ok(dtype) || op < ZT_MASK_SET_PERTURB || op > ZT_MASK_REPLAY) {
        zt_async_error((int)cudaErrorInvalidValue, "masked_stream: bad arguments (op %d, dtype %d)", op, (int)dtype);
        return;
    }
    const uint64_t groups = zt_fr_groups(first, n, 4);
    masked_kernel<<<zt_grid(c, (int64_t)groups, FRONTIER_THREADS, 16), FRONTIER_THREADS, 0, c->stream>>>(
        op, *args, d_x, dtype, d_mask, n, first, seed, tensor_id, stream, groups);
    zt_launch_check("masked_stream");
}
