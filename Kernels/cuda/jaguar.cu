// The Jaguar optimizers' passes (Kernels/include/zt_jaguar.h) and θ += α·D, the CUDA twins of
// Kernels/cpu/jaguar.c with the same per-element operations: results are bit-identical.
//
// Probes and the MEMORY pass run one thread per selected entry (k_rows × k_cols, found with the
// permutation π); the dense SIGN / SGD passes one thread per element, testing membership with
// π⁻¹. The permutations are built on the host (zt_perm_make, a handful of integer ops) and passed
// by value.
#include "kernels.cuh"
#include "numerics.cuh"
#include "zt_jaguar.h"

#define JG_THREADS 256

struct jg_args {
    void *x;
    float *m;
    uint64_t first, seed;
    uint32_t tensor_id;
    float a;  // probe step
    zt_jaguar_args p;
    zt_perm rows, cols;
};

template <int DT>
__device__ __forceinline__ float jg_probed(const jg_args &g, float x, float s) {
    if (g.p.a1 != 0.0f) x = zt_round_to<DT>(ZT_FMA(g.p.a1, s, x));
    if (g.p.a2 != 0.0f) x = zt_round_to<DT>(ZT_FMA(g.p.a2, s, x));
    return x;
}

__device__ __forceinline__ float jg_sign(const jg_args &g, uint64_t e) {
    return g.p.signs ? zt_select_sign(g.seed, g.tensor_id, e) : 1.0f;
}

// KIND 0: probe; ZT_JAGUAR_MEMORY: restore + memory of the selection.
template <int DT, int KIND>
__global__ void __launch_bounds__(JG_THREADS) jaguar_sparse_kernel(jg_args g, int64_t total) {
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = t / g.p.k_cols, jj = t % g.p.k_cols;
        const int64_t r = zt_perm_at(&g.rows, (uint32_t)i), c = zt_perm_at(&g.cols, (uint32_t)jj);
        const int64_t at = r * g.p.cols + c;
        const float s = jg_sign(g, g.first + (uint64_t)at);
        const float x = zt_ld<DT>(g.x, at);
        if (KIND == 0) {
            zt_st<DT>(g.x, at, ZT_FMA(g.a, s, x));
        } else {
            const float restored = ZT_FMA(g.p.restore, s, jg_probed<DT>(g, x, s));
            g.m[at] = zt_jaguar_memory(&g.p, g.m[at], s);
            zt_st<DT>(g.x, at, restored);
        }
    }
}

template <int DT, int KIND>
__global__ void __launch_bounds__(JG_THREADS) jaguar_dense_kernel(jg_args g, int64_t n) {
    for (int64_t at = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; at < n; at += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = at / g.p.cols, c = at % g.p.cols;
        const int selected = zt_perm_rank(&g.rows, (uint32_t)r) < (uint32_t)g.p.k_rows &&
                             zt_perm_rank(&g.cols, (uint32_t)c) < (uint32_t)g.p.k_cols;
        float x = zt_ld<DT>(g.x, at), s = 1.0f;
        if (selected) {
            s = jg_sign(g, g.first + (uint64_t)at);
            x = ZT_FMA(g.p.restore, s, jg_probed<DT>(g, x, s));
        }
        float m = g.m[at];
        const float out = zt_jaguar_dense_elem(KIND, &g.p, selected, x, s, &m);
        g.m[at] = m;
        zt_st<DT>(g.x, at, out);
    }
}

template <int DT>
__global__ void __launch_bounds__(JG_THREADS) add_scaled_kernel(void *x, int64_t n, float alpha, const float *d) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        zt_st<DT>(x, i, ZT_FMA(alpha, d[i], zt_ld<DT>(x, i)));
}

static jg_args make_args(void *x, float *m, uint64_t first, uint64_t seed, uint32_t tensor_id, const zt_jaguar_args *args,
                         float a) {
    jg_args g;
    g.x = x;
    g.m = m;
    g.first = first;
    g.seed = seed;
    g.tensor_id = tensor_id;
    g.a = a;
    g.p = *args;
    g.rows = zt_perm_make((uint32_t)args->rows, seed, tensor_id, ZT_STREAM_SELECT_ROWS);
    g.cols = zt_perm_make((uint32_t)args->cols, seed, tensor_id, ZT_STREAM_SELECT_COLS);
    return g;
}

template <int KIND>
static void launch_sparse(zt_ctx *c, const jg_args &g, zt_dtype dt, const char *what) {
    const int64_t total = g.p.k_rows * g.p.k_cols;
    const unsigned grid = zt_grid(c, total, JG_THREADS);
    switch (dt) {
    case ZT_F32: jaguar_sparse_kernel<ZT_F32, KIND><<<grid, JG_THREADS, 0, c->stream>>>(g, total); break;
    case ZT_BF16: jaguar_sparse_kernel<ZT_BF16, KIND><<<grid, JG_THREADS, 0, c->stream>>>(g, total); break;
    case ZT_F16: jaguar_sparse_kernel<ZT_F16, KIND><<<grid, JG_THREADS, 0, c->stream>>>(g, total); break;
    default: zt_async_error((int)cudaErrorInvalidValue, "%s: unknown dtype %d", what, (int)dt); return;
    }
    zt_launch_check(what);
}

template <int KIND>
static void launch_dense(zt_ctx *c, const jg_args &g, zt_dtype dt) {
    const int64_t n = g.p.rows * g.p.cols;
    const unsigned grid = zt_grid(c, n, JG_THREADS);
    switch (dt) {
    case ZT_F32: jaguar_dense_kernel<ZT_F32, KIND><<<grid, JG_THREADS, 0, c->stream>>>(g, n); break;
    case ZT_BF16: jaguar_dense_kernel<ZT_BF16, KIND><<<grid, JG_THREADS, 0, c->stream>>>(g, n); break;
    case ZT_F16: jaguar_dense_kernel<ZT_F16, KIND><<<grid, JG_THREADS, 0, c->stream>>>(g, n); break;
    default: zt_async_error((int)cudaErrorInvalidValue, "jaguar_update: unknown dtype %d", (int)dt); return;
    }
    zt_launch_check("jaguar_update");
}

void zt_cu_jaguar_probe(void *d_x, zt_dtype dtype, uint64_t first, uint64_t seed, uint32_t tensor_id,
                        const zt_jaguar_args *args, float a) {
    zt_ctx *c = zt_ctx_get();
    if (!c || args->k_rows <= 0 || args->k_cols <= 0) return;
    launch_sparse<0>(c, make_args(d_x, NULL, first, seed, tensor_id, args, a), dtype, "jaguar_probe");
}

void zt_cu_jaguar_update(int kind, void *d_x, zt_dtype dtype, float *d_m, uint64_t first, uint64_t seed,
                         uint32_t tensor_id, const zt_jaguar_args *args) {
    zt_ctx *c = zt_ctx_get();
    if (!c || args->rows <= 0 || args->cols <= 0) return;
    const jg_args g = make_args(d_x, d_m, first, seed, tensor_id, args, 0.0f);
    switch (kind) {
    case ZT_JAGUAR_SIGN: launch_dense<ZT_JAGUAR_SIGN>(c, g, dtype); break;
    case ZT_JAGUAR_SGD: launch_dense<ZT_JAGUAR_SGD>(c, g, dtype); break;
    case ZT_JAGUAR_MEMORY: launch_sparse<ZT_JAGUAR_MEMORY>(c, g, dtype, "jaguar_update"); break;
    default: zt_async_error((int)cudaErrorInvalidValue, "jaguar_update: unknown kind %d", kind);
    }
}

void zt_cu_add_scaled(void *d_x, zt_dtype dtype, int64_t n, float alpha, const float *d_dir) {
    zt_ctx *c = zt_ctx_get();
    if (!c || n <= 0) return;
    const unsigned grid = zt_grid(c, n, JG_THREADS);
    switch (dtype) {
    case ZT_F32: add_scaled_kernel<ZT_F32><<<grid, JG_THREADS, 0, c->stream>>>(d_x, n, alpha, d_dir); break;
    case ZT_BF16: add_scaled_kernel<ZT_BF16><<<grid, JG_THREADS, 0, c->stream>>>(d_x, n, alpha, d_dir); break;
    case ZT_F16: add_scaled_kernel<ZT_F16><<<grid, JG_THREADS, 0, c->stream>>>(d_x, n, alpha, d_dir); break;
    default: zt_async_error((int)cudaErrorInvalidValue, "add_scaled: unknown dtype %d", (int)dtype); return;
    }
    zt_launch_check("add_scaled");
}
