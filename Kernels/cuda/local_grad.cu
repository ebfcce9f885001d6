// Zoop's local update, the CUDA twins of Kernels/cpu/local_grad.c: per-row scaling (bit-identical),
// Σx² and Σ(a − b)² in double (reduce.cu: many blocks in a fixed partition and order, the same
// bits every run; not the CPU's block order, so equal to it within double rounding), and Adam on
// a given direction through the shared element function (zt_adam_direction_elem in zt_optim.h: bit-identical).
#include "kernels.cuh"
#include "numerics.cuh"
#include "zt_optim.h"

#define LG_THREADS 256

__global__ void __launch_bounds__(LG_THREADS) scale_rows_kernel(float *x, int64_t rows, int64_t cols, const float *s) {
    const int64_t n = rows * cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x[i] = __fmul_rn(x[i], s[i / cols]);
}

void zt_cu_scale_rows(float *d_x, int64_t rows, int64_t cols, const float *d_scales) {
    zt_ctx *c = zt_ctx_get();
    if (!c || rows <= 0 || cols <= 0) return;
    scale_rows_kernel<<<zt_grid(c, rows * cols, LG_THREADS), LG_THREADS, 0, c->stream>>>(d_x, rows, cols, d_scales);
    zt_launch_check("scale_rows");
}

static int sumsq(const void *d_a, const void *d_b, zt_dtype dtype, int64_t n, double *result, const char *what) {
    *result = 0;
    zt_ctx *c = zt_ctx_get();
    if (!c) return zt_ctx_status();
    if (n <= 0) return 0;
    // Multi-block, fixed partition and order (reduce.cu): the same bits every run.
    if (int err = zt_cu_sumsq_enqueue(c, d_a, d_b, dtype, n, 1, 0, c->d_sum, what)) return err;
    zt_launch_check(what);
    double sum = 0;
    if (int err = zt_read_host(c, &sum, c->d_sum, sizeof sum, what)) return err;  // an earlier launch error too
    *result = sum;
    return 0;
}

int zt_cu_sum_squares(const float *d_x, int64_t n, double *result) { return sumsq(d_x, nullptr, ZT_F32, n, result, "sum_squares"); }

int zt_cu_squared_distance(const void *d_a, const void *d_b, zt_dtype dtype, int64_t n, double *result) {
    return sumsq(d_a, d_b, dtype, n, result, "squared_distance");
}

template <int DT>
__global__ void __launch_bounds__(LG_THREADS) adam_direction_kernel(void *x, float *m, float *v, const float *d, int64_t n,
                                                                    zt_zo_update_args p) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float mi = m[i], vi = v[i];
        zt_st<DT>(x, i, zt_adam_direction_elem(&p, zt_ld<DT>(x, i), d[i], &mi, &vi));
        m[i] = mi;
        v[i] = vi;
    }
}

void zt_cu_adam_direction(void *d_x, zt_dtype dtype, float *d_m, float *d_v, const float *d_dir, int64_t n,
                          const zt_zo_update_args *args) {
    zt_ctx *c = zt_ctx_get();
    if (!c || n <= 0) return;
    const unsigned grid = zt_grid(c, n, LG_THREADS);
    const zt_zo_update_args p = *args;
    switch (dtype) {
    case ZT_F32: adam_direction_kernel<ZT_F32><<<grid, LG_THREADS, 0, c->stream>>>(d_x, d_m, d_v, d_dir, n, p); break;
    case ZT_BF16: adam_direction_kernel<ZT_BF16><<<grid, LG_THREADS, 0, c->stream>>>(d_x, d_m, d_v, d_dir, n, p); break;
    case ZT_F16: adam_direction_kernel<ZT_F16><<<grid, LG_THREADS, 0, c->stream>>>(d_x, d_m, d_v, d_dir, n, p); break;
    default: zt_async_error((int)cudaErrorInvalidValue, "adam_direction: unknown dtype %d", (int)dtype); return;
    }
    zt_launch_check("adam_direction");
}
