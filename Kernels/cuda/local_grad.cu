// Zoop's local update, the CUDA twins of Kernels/cpu/local_grad.c: per-row scaling (bit-identical),
// Σx² and Σ(a − b)² in double (one block, a fixed order: the same bits every run, not the CPU's
// block order, so equal to it within double rounding), and Adam on a given direction through the
// shared element function (zt_adam_direction_elem in zt_optim.h: bit-identical).
#include "kernels.cuh"
#include "numerics.cuh"
#include "zt_optim.h"

#define LG_THREADS 256
#define SUMSQ_THREADS 1024

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

// *sum = Σ (a − b)² (DIFF) or Σ a²: each thread a fixed strided subset, then a fixed tree.
template <int DT, bool DIFF>
__global__ void __launch_bounds__(SUMSQ_THREADS) sumsq_kernel(const void *a, const void *b, int64_t n, double *sum) {
    __shared__ double part[SUMSQ_THREADS];
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += SUMSQ_THREADS) {
        const double v = DIFF ? (double)zt_ld<DT>(a, i) - (double)zt_ld<DT>(b, i) : (double)zt_ld<DT>(a, i);
        s += v * v;
    }
    part[threadIdx.x] = s;
    __syncthreads();
    for (int w = SUMSQ_THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) *sum = part[0];
}

static int sumsq(const void *d_a, const void *d_b, zt_dtype dtype, int64_t n, double *result, const char *what) {
    *result = 0;
    zt_ctx *c = zt_ctx_get();
    if (!c) return zt_ctx_status();
    if (n <= 0) return 0;
    switch (dtype * 2 + (d_b != nullptr)) {
    case ZT_F32 * 2: sumsq_kernel<ZT_F32, false><<<1, SUMSQ_THREADS, 0, c->stream>>>(d_a, d_b, n, c->d_sum); break;
    case ZT_F32 * 2 + 1: sumsq_kernel<ZT_F32, true><<<1, SUMSQ_THREADS, 0, c->stream>>>(d_a, d_b, n, c->d_sum); break;
    case ZT_BF16 * 2: sumsq_kernel<ZT_BF16, false><<<1, SUMSQ_THREADS, 0, c->stream>>>(d_a, d_b, n, c->d_sum); break;
    case ZT_BF16 * 2 + 1: sumsq_kernel<ZT_BF16, true><<<1, SUMSQ_THREADS, 0, c->stream>>>(d_a, d_b, n, c->d_sum); break;
    case ZT_F16 * 2: sumsq_kernel<ZT_F16, false><<<1, SUMSQ_THREADS, 0, c->stream>>>(d_a, d_b, n, c->d_sum); break;
    case ZT_F16 * 2 + 1: sumsq_kernel<ZT_F16, true><<<1, SUMSQ_THREADS, 0, c->stream>>>(d_a, d_b, n, c->d_sum); break;
    default: return zt_error((int)cudaErrorInvalidValue, "%s: unknown dtype %d", what, (int)dtype);
    }
    if (int err = zt_cuda_check(cudaGetLastError(), what)) return err;
    if (int err = zt_cuda_check(cudaMemcpyAsync(result, c->d_sum, sizeof(double), cudaMemcpyDeviceToHost, c->stream), what)) return err;
    return zt_cuda_check(cudaStreamSynchronize(c->stream), what);
}

void zt_cu_sum_squares_to(const float *d_x, int64_t n, double *d_sum, cudaStream_t stream) {
    sumsq_kernel<ZT_F32, false><<<1, SUMSQ_THREADS, 0, stream>>>(d_x, nullptr, n, d_sum);
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
