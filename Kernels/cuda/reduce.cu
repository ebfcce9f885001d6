// Deterministic multi-block Σx² / Σ(a − b)² in double (reduce.cuh has the partition and order):
// one kernel writes a double partial per block in a fixed slot, a second sums each reduction's
// partials with a fixed tree. No atomics, and a grid fixed by n alone, so the same bits on every
// run and every GPU model; up to ZT_RED_BLOCKS blocks stream the data instead of the one block
// before (≈ 10–30 GB/s). Used by sum_squares, squared_distance (local_grad.cu) and the
// Newton–Schulz norms (newton_schulz.cu), which reduce up to ZT_RED_GROUP matrices per launch.
#include <pthread.h>

#include "kernels.cuh"
#include "reduce.cuh"

// Block sums of reduction k (array k starts at element k·stride of a and b) into
// partials[k·ZT_RED_BLOCKS + block]. Grid (P, reductions).
template <int DT, bool DIFF>
__global__ void __launch_bounds__(ZT_RED_THREADS) red_partial_kernel(const void *a, const void *b, int64_t n, int64_t stride,
                                                                     int64_t chunk, double *partials) {
    __shared__ double part[ZT_RED_THREADS];
    const int t = threadIdx.x;
    const int64_t base = (int64_t)blockIdx.y * stride, s = (int64_t)blockIdx.x * chunk;
    const int64_t e = s + chunk < n ? s + chunk : n;
    part[t] = zt_red_thread<DT, DIFF>(a, b, base + s, base + e, t);
    __syncthreads();
    for (int w = ZT_RED_THREADS / 2; w > 0; w >>= 1) {
        zt_red_tree_level(part, w, t);
        __syncthreads();
    }
    if (t == 0) partials[(int64_t)blockIdx.y * ZT_RED_BLOCKS + blockIdx.x] = part[0];
}

// out[k] = the tree over partials[k·ZT_RED_BLOCKS + 0 … blocks − 1], zero-padded to ZT_RED_BLOCKS.
// Grid (reductions), ZT_RED_BLOCKS threads.
__global__ void __launch_bounds__(ZT_RED_BLOCKS) red_final_kernel(const double *partials, int64_t blocks, double *out) {
    __shared__ double part[ZT_RED_BLOCKS];
    const int t = threadIdx.x;
    part[t] = t < blocks ? partials[(int64_t)blockIdx.x * ZT_RED_BLOCKS + t] : 0.0;
    __syncthreads();
    for (int w = ZT_RED_BLOCKS / 2; w > 0; w >>= 1) {
        zt_red_tree_level(part, w, t);
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = part[0];
}

// The partials of ZT_RED_GROUP reductions and their ZT_RED_GROUP results, per device, allocated on
// first use and kept (the library's own memory; 260 KB). All work is on the device's one stream,
// so consecutive reductions reuse it safely.
static double *g_scratch[ZT_MAX_DEVICES];
static pthread_mutex_t g_scratch_lock = PTHREAD_MUTEX_INITIALIZER;

static int scratch(zt_ctx *c, double **partials) {
    pthread_mutex_lock(&g_scratch_lock);
    int err = 0;
    if (!g_scratch[c->device]) {
        void *p = NULL;
        err = zt_cu_malloc_library(&p, (size_t)ZT_RED_GROUP * (ZT_RED_BLOCKS + 1) * sizeof(double));
        if (!err) g_scratch[c->device] = (double *)p;
    }
    *partials = g_scratch[c->device];
    pthread_mutex_unlock(&g_scratch_lock);
    return err;
}

int zt_cu_red_sums(zt_ctx *c, double **d_sums) {
    double *p = NULL;
    const int err = scratch(c, &p);
    *d_sums = p ? p + (size_t)ZT_RED_GROUP * ZT_RED_BLOCKS : NULL;
    return err;
}

int zt_cu_sumsq_enqueue(zt_ctx *c, const void *d_a, const void *d_b, zt_dtype dtype, int64_t n, int64_t count,
                        int64_t stride, double *d_out, const char *what) {
    if (count < 1 || count > ZT_RED_GROUP || n < 1)
        return zt_error((int)cudaErrorInvalidValue, "%s: reduction of %lld × %lld elements", what, (long long)count, (long long)n);
    double *partials = NULL;
    if (int err = scratch(c, &partials)) return err;
    int64_t blocks, chunk;
    zt_red_partition(n, &blocks, &chunk);
    const dim3 grid((unsigned)blocks, (unsigned)count);
#define ZT_RED_LAUNCH(DT, DIFF) \
    red_partial_kernel<DT, DIFF><<<grid, ZT_RED_THREADS, 0, c->stream>>>(d_a, d_b, n, stride, chunk, partials)
    switch (dtype * 2 + (d_b != nullptr)) {
    case ZT_F32 * 2: ZT_RED_LAUNCH(ZT_F32, false); break;
    case ZT_F32 * 2 + 1: ZT_RED_LAUNCH(ZT_F32, true); break;
    case ZT_BF16 * 2: ZT_RED_LAUNCH(ZT_BF16, false); break;
    case ZT_BF16 * 2 + 1: ZT_RED_LAUNCH(ZT_BF16, true); break;
    case ZT_F16 * 2: ZT_RED_LAUNCH(ZT_F16, false); break;
    case ZT_F16 * 2 + 1: ZT_RED_LAUNCH(ZT_F16, true); break;
    default: return zt_error((int)cudaErrorInvalidValue, "%s: unknown dtype %d", what, (int)dtype);
    }
#undef ZT_RED_LAUNCH
    red_final_kernel<<<(unsigned)count, ZT_RED_BLOCKS, 0, c->stream>>>(partials, blocks, d_out);
    return zt_cuda_check(cudaGetLastError(), what);
}
