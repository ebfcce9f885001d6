// Perturbation-stream kernels (perturb, restore+update, replay step, perturbed copy, fill_normal, the
// fused ZO optimizer updates, HiZOO's probe) and dtype conversion. One thread per Philox block of 4
// elements, grid-stride: z is made in registers from zt_philox.h and never stored. The element math
// lives in numerics.cuh, shared with the CPU emulation of bench/device; results are bit-identical to
// Kernels/cpu/perturb.c and convert.c. KIND (zt_zo_kind, 0 for the other ops) is a template
// constant: each optimizer gets its own kernel, with no branch on the kind per element.
#include "kernels.cuh"
#include "numerics.cuh"

#define STREAM_THREADS 256

// Philox blocks first/4 + t for t in [0, nblocks), grid-stride.
template <int OP, int DT, int SDT, int KIND>
__global__ void __launch_bounds__(STREAM_THREADS) stream_kernel(zt_stream_args g, uint64_t nblocks) {
    const uint64_t j0 = g.first / 4;
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; t < nblocks; t += stride)
        zt_stream_block<OP, DT, SDT, KIND>(g, j0 + t);
}

template <int OP, int DT, int SDT, int KIND = 0>
static void launch_stream(const zt_stream_args &g, const char *what) {
    zt_ctx *c = zt_ctx_get();
    if (!c) return;
    const uint64_t nblocks = zt_stream_blocks(g.first, g.n);
    // 16 blocks of 256 threads per SM: full occupancy at ≤ 64 registers per thread (the Philox
    // rounds and polynomials need ~40), and enough loads in flight for HBM.
    stream_kernel<OP, DT, SDT, KIND><<<zt_grid(c, (int64_t)nblocks, STREAM_THREADS, 16), STREAM_THREADS, 0, c->stream>>>(g, nblocks);
    zt_launch_check(what);
}

static bool dtype_ok(zt_dtype d) { return d == ZT_F32 || d == ZT_BF16 || d == ZT_F16; }

// Runtime dtypes → template instance.
template <int OP, int KIND = 0>
static void dispatch_same(const zt_stream_args &g, zt_dtype dt, const char *what) {
    switch (dt) {
    case ZT_F32: launch_stream<OP, ZT_F32, ZT_F32, KIND>(g, what); break;
    case ZT_BF16: launch_stream<OP, ZT_BF16, ZT_BF16, KIND>(g, what); break;
    case ZT_F16: launch_stream<OP, ZT_F16, ZT_F16, KIND>(g, what); break;
    default: zt_async_error((int)cudaErrorInvalidValue, "%s: unknown dtype %d", what, (int)dt);
    }
}

template <int OP, int DT>
static void dispatch_src(const zt_stream_args &g, zt_dtype sdt, const char *what) {
    switch (sdt) {
    case ZT_F32: launch_stream<OP, DT, ZT_F32>(g, what); break;
    case ZT_BF16: launch_stream<OP, DT, ZT_BF16>(g, what); break;
    case ZT_F16: launch_stream<OP, DT, ZT_F16>(g, what); break;
    default: zt_async_error((int)cudaErrorInvalidValue, "%s: unknown source dtype %d", what, (int)sdt);
    }
}

template <int OP>
static void dispatch_pair(const zt_stream_args &g, zt_dtype dt, zt_dtype sdt, const char *what) {
    switch (dt) {
    case ZT_F32: dispatch_src<OP, ZT_F32>(g, sdt, what); break;
    case ZT_BF16: dispatch_src<OP, ZT_BF16>(g, sdt, what); break;
    case ZT_F16: dispatch_src<OP, ZT_F16>(g, sdt, what); break;
    default: zt_async_error((int)cudaErrorInvalidValue, "%s: unknown dtype %d", what, (int)dt);
    }
}

static zt_stream_args make_args(void *x, zt_dtype dt, const void *src, zt_dtype sdt, int64_t n, uint64_t first,
                                uint64_t seed, uint32_t tensor_id, uint32_t stream, float a, float step, float decay) {
    zt_stream_args g = zt_stream_base(x, n, first, seed, tensor_id, stream);  // a1, a2, state, zo: the caller's
    g.src = src ? src : x;
    g.a = a;
    g.step = step;
    g.decay = decay;
    const int64_t xs = dtype_ok(dt) ? zt_dtype_size(dt) : 4, ss = dtype_ok(sdt) ? zt_dtype_size(sdt) : 4;
    g.vec = zt_stream_vec_ok(x, xs, g.src, ss, first);
    return g;
}

void zt_cu_perturb(void *d_x, zt_dtype dtype, int64_t n, uint64_t first,
                   uint64_t seed, uint32_t tensor_id, uint32_t stream, float a) {
    if (n <= 0) return;
    zt_stream_args g = make_args(d_x, dtype, NULL, dtype, n, first, seed, tensor_id, stream, a, 0.0f, 0.0f);
    dispatch_same<ZT_OP_PERTURB>(g, dtype, "perturb");
}

void zt_cu_restore_update(void *d_x, zt_dtype dtype, int64_t n, uint64_t first, uint64_t seed,
                          uint32_t tensor_id, uint32_t stream, float restore, float step, float decay) {
    if (n <= 0) return;
    zt_stream_args g = make_args(d_x, dtype, NULL, dtype, n, first, seed, tensor_id, stream, restore, step, decay);
    dispatch_same<ZT_OP_UPDATE>(g, dtype, "restore_update");
}

void zt_cu_replay_step(void *d_x, zt_dtype dtype, int64_t n, uint64_t first, uint64_t seed, uint32_t tensor_id,
                       uint32_t stream, float a1, float a2, float restore, float step, float decay) {
    if (n <= 0) return;
    zt_stream_args g = make_args(d_x, dtype, NULL, dtype, n, first, seed, tensor_id, stream, restore, step, decay);
    g.a1 = a1;
    g.a2 = a2;
    dispatch_same<ZT_OP_REPLAY>(g, dtype, "replay_step");
}

void zt_cu_perturbed_copy(void *d_out, zt_dtype out_dtype, const void *d_src, zt_dtype src_dtype, int64_t n,
                          uint64_t first, uint64_t seed, uint32_t tensor_id, uint32_t stream, float a) {
    if (n <= 0) return;
    zt_stream_args g = make_args(d_out, out_dtype, d_src, src_dtype, n, first, seed, tensor_id, stream, a, 0.0f, 0.0f);
    dispatch_pair<ZT_OP_COPY>(g, out_dtype, src_dtype, "perturbed_copy");
}

void zt_cu_fill_normal(void *d_out, zt_dtype dtype, int64_t n, uint64_t first,
                       uint64_t seed, uint32_t tensor_id, uint32_t stream, float scale) {
    if (n <= 0) return;
    zt_stream_args g = make_args(d_out, dtype, NULL, dtype, n, first, seed, tensor_id, stream, scale, 0.0f, 0.0f);
    dispatch_same<ZT_OP_FILL>(g, dtype, "fill_normal");
}

void zt_cu_zo_update(int kind, void *d_x, zt_dtype dtype, float *d_s1, float *d_s2, int64_t n, uint64_t first,
                     uint64_t seed, uint32_t tensor_id, uint32_t stream, const zt_zo_update_args *args) {
    if (n <= 0) return;
    zt_stream_args g = make_args(d_x, dtype, NULL, dtype, n, first, seed, tensor_id, stream, 0.0f, 0.0f, 0.0f);
    g.s1 = d_s1;
    g.s2 = (kind == ZT_ZO_ADAM || kind == ZT_ZO_DIRECTION) ? d_s2 : NULL;  // the other kinds never touch s2
    if ((kind == ZT_ZO_ADAM || kind == ZT_ZO_DIRECTION) && !d_s2) {
        zt_async_error((int)cudaErrorInvalidValue, "zo_update: kind %d needs its second array", kind);
        return;
    }
    g.zo = *args;
    g.vec = g.vec && zt_stream_state_vec_ok(g.s1, g.s2, first);
    switch (kind) {
    case ZT_ZO_MOMENTUM: dispatch_same<ZT_OP_ZO, ZT_ZO_MOMENTUM>(g, dtype, "zo_update"); break;
    case ZT_ZO_ADAM: dispatch_same<ZT_OP_ZO, ZT_ZO_ADAM>(g, dtype, "zo_update"); break;
    case ZT_ZO_HIZOO: dispatch_same<ZT_OP_ZO, ZT_ZO_HIZOO>(g, dtype, "zo_update"); break;
    case ZT_ZO_DIRECTION: dispatch_same<ZT_OP_ZO, ZT_ZO_DIRECTION>(g, dtype, "zo_update"); break;
    default: zt_async_error((int)cudaErrorInvalidValue, "zo_update: unknown optimizer kind %d", kind);
    }
}

void zt_cu_perturb_hessian(void *d_x, zt_dtype dtype, const float *d_h, int64_t n, uint64_t first, uint64_t seed,
                           uint32_t tensor_id, uint32_t stream, float a) {
    if (n <= 0) return;
    zt_stream_args g = make_args(d_x, dtype, NULL, dtype, n, first, seed, tensor_id, stream, a, 0.0f, 0.0f);
    g.s1 = (float *)d_h;  // read only
    g.vec = g.vec && zt_stream_state_vec_ok(g.s1, NULL, first);
    dispatch_same<ZT_OP_HPERTURB>(g, dtype, "perturb_hessian");
}

// ---- List-driven passes: many small tensors in one launch -----------------------------------------
// blockIdx.y picks the item, blockIdx.x × threads stride over its Philox blocks with the single-tensor
// kernel's element code (zt_stream_block), so every element gets the same bits as zt_cu_perturb /
// zt_cu_restore_update. The list travels by value in the launch's parameters (≤ 4 KiB): no copy.
#define LIST_MAX 64
struct zt_list_launch {
    zt_list_item items[LIST_MAX];
    uint64_t vec;  // bit i: item i may take the vector path
};

// An item's arguments: the single-tensor kernel's, for this block row's tensor.
__device__ __forceinline__ zt_stream_args item_args(void *x, int64_t n, uint64_t first, uint32_t tensor_id, uint64_t seed,
                                                    uint32_t stream, uint64_t vec_bits) {
    zt_stream_args g = zt_stream_base(x, n, first, seed, tensor_id, stream);
    g.vec = (int)((vec_bits >> blockIdx.y) & 1);
    return g;
}

// This block row's share of the item's Philox blocks.
template <int OP, int DT, int KIND>
__device__ __forceinline__ void item_blocks(const zt_stream_args &g) {
    const uint64_t nblocks = zt_stream_blocks(g.first, g.n), j0 = g.first / 4;
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; t < nblocks; t += stride)
        zt_stream_block<OP, DT, DT, KIND>(g, j0 + t);
}

// Enough blocks in x for the largest item, at most what fills the device once over the list.
static dim3 list_grid(const zt_ctx *c, uint64_t max_blocks, int count) {
    uint64_t gx = (max_blocks + STREAM_THREADS - 1) / STREAM_THREADS, cap = (uint64_t)(16 * c->sm_count) / (uint64_t)count + 1;
    gx = gx < 1 ? 1 : gx > cap ? cap : gx;
    return dim3((unsigned)gx, (unsigned)count);
}

template <int OP, int DT>
__global__ void __launch_bounds__(STREAM_THREADS) list_kernel(zt_list_launch L, uint64_t seed, uint32_t stream, float a,
                                                              float step) {
    const zt_list_item it = L.items[blockIdx.y];
    zt_stream_args g = item_args(it.x, it.n, it.first, it.tensor_id, seed, stream, L.vec);
    g.a = a;
    g.step = step;
    g.decay = it.decay;
    item_blocks<OP, DT, 0>(g);
}

template <int OP>
static void launch_list(const zt_list_launch &L, int count, uint64_t max_blocks, zt_dtype dt, uint64_t seed, uint32_t stream,
                        float a, float step) {
    zt_ctx *c = zt_ctx_get();
    if (!c) return;
    const dim3 grid = list_grid(c, max_blocks, count);
    switch (dt) {
    case ZT_F32: list_kernel<OP, ZT_F32><<<grid, STREAM_THREADS, 0, c->stream>>>(L, seed, stream, a, step); break;
    case ZT_BF16: list_kernel<OP, ZT_BF16><<<grid, STREAM_THREADS, 0, c->stream>>>(L, seed, stream, a, step); break;
    default: list_kernel<OP, ZT_F16><<<grid, STREAM_THREADS, 0, c->stream>>>(L, seed, stream, a, step); break;
    }
    zt_launch_check("stream_list");
}

void zt_cu_stream_list(int op, const zt_list_item *items, int count, zt_dtype dtype, uint64_t seed, uint32_t stream, float a,
                       float step) {
    if (!dtype_ok(dtype) || (op != ZT_LIST_PERTURB && op != ZT_LIST_RESTORE_UPDATE)) {
        zt_async_error((int)cudaErrorInvalidValue, "stream_list: op %d, dtype %d", op, (int)dtype);
        return;
    }
    const int64_t es = zt_dtype_size(dtype);
    for (int i0 = 0; i0 < count; i0 += LIST_MAX) {
        zt_list_launch L = {};
        int m = 0;
        uint64_t max_blocks = 0;
        for (int i = i0; i < count && i < i0 + LIST_MAX; i++) {
            if (items[i].n <= 0) continue;
            L.items[m] = items[i];
            if (zt_stream_vec_ok(items[i].x, es, items[i].x, es, items[i].first)) L.vec |= (uint64_t)1 << m;
            const uint64_t b = zt_stream_blocks(items[i].first, items[i].n);
            if (b > max_blocks) max_blocks = b;
            m++;
        }
        if (!m) continue;
        if (op == ZT_LIST_PERTURB) launch_list<ZT_OP_PERTURB>(L, m, max_blocks, dtype, seed, stream, a, step);
        else launch_list<ZT_OP_UPDATE>(L, m, max_blocks, dtype, seed, stream, a, step);
    }
}

// The fused optimizer updates the same way: items carry x, their state arrays and their decay.
#define ZO_LIST_MAX 64
struct zt_zo_list_launch {
    zt_zo_list_item items[ZO_LIST_MAX];
    zt_zo_update_args zo;
    uint64_t vec;
};

template <int DT, int KIND>
__global__ void __launch_bounds__(STREAM_THREADS) zo_list_kernel(zt_zo_list_launch L, uint64_t seed, uint32_t stream) {
    const zt_zo_list_item it = L.items[blockIdx.y];
    zt_stream_args g = item_args(it.x, it.n, it.first, it.tensor_id, seed, stream, L.vec);
    g.s1 = it.s1;
    g.s2 = it.s2;
    g.zo = L.zo;
    g.zo.decay = it.decay;
    item_blocks<ZT_OP_ZO, DT, KIND>(g);
}

template <int DT>
static void launch_zo_list(int kind, const zt_zo_list_launch &L, dim3 grid, cudaStream_t s, uint64_t seed, uint32_t stream) {
    switch (kind) {
    case ZT_ZO_MOMENTUM: zo_list_kernel<DT, ZT_ZO_MOMENTUM><<<grid, STREAM_THREADS, 0, s>>>(L, seed, stream); break;
    case ZT_ZO_ADAM: zo_list_kernel<DT, ZT_ZO_ADAM><<<grid, STREAM_THREADS, 0, s>>>(L, seed, stream); break;
    case ZT_ZO_HIZOO: zo_list_kernel<DT, ZT_ZO_HIZOO><<<grid, STREAM_THREADS, 0, s>>>(L, seed, stream); break;
    default: zo_list_kernel<DT, ZT_ZO_DIRECTION><<<grid, STREAM_THREADS, 0, s>>>(L, seed, stream); break;
    }
}

void zt_cu_zo_update_list(int kind, const zt_zo_list_item *items, int count, zt_dtype dtype, uint64_t seed, uint32_t stream,
                          const zt_zo_update_args *args) {
    if (!dtype_ok(dtype) || (kind != ZT_ZO_MOMENTUM && kind != ZT_ZO_ADAM && kind != ZT_ZO_HIZOO && kind != ZT_ZO_DIRECTION)) {
        zt_async_error((int)cudaErrorInvalidValue, "zo_update_list: kind %d, dtype %d", kind, (int)dtype);
        return;
    }
    const bool two = kind == ZT_ZO_ADAM || kind == ZT_ZO_DIRECTION;
    zt_ctx *c = zt_ctx_get();
    if (!c) return;
    const int64_t es = zt_dtype_size(dtype);
    for (int i0 = 0; i0 < count; i0 += ZO_LIST_MAX) {
        zt_zo_list_launch L = {};
        L.zo = *args;
        int m = 0;
        uint64_t max_blocks = 0;
        for (int i = i0; i < count && i < i0 + ZO_LIST_MAX; i++) {
            if (items[i].n <= 0) continue;
            if (two && !items[i].s2) {
                zt_async_error((int)cudaErrorInvalidValue, "zo_update_list: kind %d needs its second array", kind);
                return;
            }
            L.items[m] = items[i];
            if (!two) L.items[m].s2 = NULL;  // the other kinds never touch s2
            if (zt_stream_vec_ok(items[i].x, es, items[i].x, es, items[i].first) &&
                zt_stream_state_vec_ok(items[i].s1, L.items[m].s2, items[i].first))
                L.vec |= (uint64_t)1 << m;
            const uint64_t b = zt_stream_blocks(items[i].first, items[i].n);
            if (b > max_blocks) max_blocks = b;
            m++;
        }
        if (!m) continue;
        const dim3 grid = list_grid(c, max_blocks, m);
        switch (dtype) {
        case ZT_F32: launch_zo_list<ZT_F32>(kind, L, grid, c->stream, seed, stream); break;
        case ZT_BF16: launch_zo_list<ZT_BF16>(kind, L, grid, c->stream, seed, stream); break;
        default: launch_zo_list<ZT_F16>(kind, L, grid, c->stream, seed, stream); break;
        }
        zt_launch_check("zo_update_list");
    }
}

// Same dtype: a device copy (as the CPU's memcpy). Otherwise through f32, rounding once.
void zt_cu_convert(void *d_dst, zt_dtype dst_dtype, const void *d_src, zt_dtype src_dtype, int64_t n) {
    if (n <= 0) return;
    if (dst_dtype == src_dtype && dtype_ok(dst_dtype)) {
        zt_ctx *c = zt_ctx_get();
        if (!c) return;
        zt_cuda_check_async(cudaMemcpyAsync(d_dst, d_src, (size_t)n * (size_t)zt_dtype_size(dst_dtype),
                                            cudaMemcpyDeviceToDevice, c->stream), "convert (copy)");
        return;
    }
    zt_stream_args g = make_args(d_dst, dst_dtype, d_src, src_dtype, n, 0, 0, 0, 0, 0.0f, 0.0f, 0.0f);
    dispatch_pair<ZT_OP_CONVERT>(g, dst_dtype, src_dtype, "convert");
}

// ---- Debug entry point (not in the table): raw Philox words for the device harness ---------------

__global__ void philox_words_kernel(uint32_t *out, uint64_t nblocks, uint64_t j0, uint64_t seed,
                                    uint32_t tensor_id, uint32_t stream) {
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; t < nblocks; t += stride) {
        zt_u32x4 w = zt_philox_block(seed, tensor_id, stream, j0 + t);
        for (int k = 0; k < 4; k++) out[4 * t + k] = w.v[k];
    }
}

// d_out(4·nblocks) = words of Philox blocks j0 … j0 + nblocks − 1. Returns 0 or a CUDA error.
ZT_EXPORT int zt_cuda_debug_philox(uint32_t *d_out, uint64_t nblocks, uint64_t j0, uint64_t seed,
                                   uint32_t tensor_id, uint32_t stream) {
    zt_ctx *c = zt_ctx_get();
    if (!c) return zt_ctx_status();
    if (!nblocks) return 0;
    philox_words_kernel<<<zt_grid(c, (int64_t)nblocks, 256), 256, 0, c->stream>>>(d_out, nblocks, j0, seed,
                                                                                  tensor_id, stream);
    return zt_cuda_check(cudaGetLastError(), "debug_philox");
}
