// CPU emulation of the CUDA perturbation-stream kernels: the block function of
// Kernels/cuda/numerics.cuh (the code each GPU thread runs per Philox block) compiled for the host
// with g++ -ffp-contract=off, so the harness can check the kernels' head/tail/vector logic and
// conversions against the CPU kernels bit for bit on a machine without a GPU.
// Blocks run in reverse order: the result must not depend on which thread ran first.
#include "numerics.cuh"

extern "C" int zt_emu_stream(int op, void *x, zt_dtype dt, const void *src, zt_dtype sdt, int64_t n, uint64_t first,
                             uint64_t seed, uint32_t tensor_id, uint32_t stream, float a, float step, float decay,
                             float a1, float a2, int vec_mode);
extern "C" int zt_emu_zo_update(int kind, void *x, zt_dtype dt, float *s1, float *s2, int64_t n, uint64_t first,
                                uint64_t seed, uint32_t tensor_id, uint32_t stream, const zt_zo_update_args *args,
                                int vec_mode);
extern "C" int zt_emu_perturb_hessian(void *x, zt_dtype dt, const float *h, int64_t n, uint64_t first, uint64_t seed,
                                      uint32_t tensor_id, uint32_t stream, float a, int vec_mode);

template <int OP, int DT, int SDT, int KIND = 0>
static void run(const zt_stream_args &g) {
    const uint64_t nb = zt_stream_blocks(g.first, g.n);
    for (uint64_t t = nb; t-- > 0;) zt_stream_block<OP, DT, SDT, KIND>(g, g.first / 4 + t);
}

template <int OP, int KIND = 0>
static int by_dtype(const zt_stream_args &g, zt_dtype dt) {
    switch (dt) {
    case ZT_F32: run<OP, ZT_F32, ZT_F32, KIND>(g); return 0;
    case ZT_BF16: run<OP, ZT_BF16, ZT_BF16, KIND>(g); return 0;
    case ZT_F16: run<OP, ZT_F16, ZT_F16, KIND>(g); return 0;
    default: return -1;
    }
}

template <int OP, int DT>
static int by_src(const zt_stream_args &g, zt_dtype sdt) {
    switch (sdt) {
    case ZT_F32: run<OP, DT, ZT_F32>(g); return 0;
    case ZT_BF16: run<OP, DT, ZT_BF16>(g); return 0;
    case ZT_F16: run<OP, DT, ZT_F16>(g); return 0;
    default: return -1;
    }
}

template <int OP>
static int by_dst(const zt_stream_args &g, zt_dtype dt, zt_dtype sdt) {
    switch (dt) {
    case ZT_F32: return by_src<OP, ZT_F32>(g, sdt);
    case ZT_BF16: return by_src<OP, ZT_BF16>(g, sdt);
    case ZT_F16: return by_src<OP, ZT_F16>(g, sdt);
    default: return -1;
    }
}

// As the CUDA launchers: op ZT_OP_*; src ignored for PERTURB/UPDATE/FILL/REPLAY (x is the source).
// vec_mode −1: vector path when the pointers allow it (as the device decides); 0: never;
// 1: always (host memcpy does not need alignment, so this runs the vector path on any offset).
int zt_emu_stream(int op, void *x, zt_dtype dt, const void *src, zt_dtype sdt, int64_t n, uint64_t first,
                  uint64_t seed, uint32_t tensor_id, uint32_t stream, float a, float step, float decay, float a1,
                  float a2, int vec_mode) {
    if (n <= 0) return 0;
    if (op == ZT_OP_CONVERT && dt == sdt) {  // the launcher copies (NaN payloads untouched)
        memcpy(x, src, (size_t)n * (size_t)zt_dtype_size(dt));
        return 0;
    }
    zt_stream_args g = zt_stream_base(x, n, op == ZT_OP_CONVERT ? 0 : first, seed, tensor_id, stream);
    g.src = (op == ZT_OP_COPY || op == ZT_OP_CONVERT) ? src : x;
    if (op != ZT_OP_COPY && op != ZT_OP_CONVERT) sdt = dt;
    g.a = a;
    g.step = step;
    g.decay = decay;
    g.a1 = a1;
    g.a2 = a2;
    const int64_t xs = zt_dtype_size(dt), ss = zt_dtype_size(sdt);
    g.vec = vec_mode < 0 ? zt_stream_vec_ok(x, xs, g.src, ss, g.first) : vec_mode;
    switch (op) {
    case ZT_OP_PERTURB: return by_dst<ZT_OP_PERTURB>(g, dt, sdt);
    case ZT_OP_UPDATE: return by_dst<ZT_OP_UPDATE>(g, dt, sdt);
    case ZT_OP_COPY: return by_dst<ZT_OP_COPY>(g, dt, sdt);
    case ZT_OP_FILL: return by_dst<ZT_OP_FILL>(g, dt, sdt);
    case ZT_OP_CONVERT: return by_dst<ZT_OP_CONVERT>(g, dt, sdt);
    case ZT_OP_REPLAY: return by_dst<ZT_OP_REPLAY>(g, dt, sdt);
    default: return -1;
    }
}

// The stateful ops, set up as perturb.cu's launchers do (s2 only for Adam and DIRECTION; state alignment joins
// the vector decision); vec_mode as above.
static zt_stream_args state_args(void *x, zt_dtype dt, float *s1, float *s2, int64_t n, uint64_t first, uint64_t seed,
                                 uint32_t tensor_id, uint32_t stream, int vec_mode) {
    zt_stream_args g = zt_stream_base(x, n, first, seed, tensor_id, stream);
    g.s1 = s1;
    g.s2 = s2;
    const int64_t xs = zt_dtype_size(dt);
    g.vec = vec_mode < 0 ? zt_stream_vec_ok(x, xs, x, xs, first) && zt_stream_state_vec_ok(s1, s2, first) : vec_mode;
    return g;
}

int zt_emu_zo_update(int kind, void *x, zt_dtype dt, float *s1, float *s2, int64_t n, uint64_t first, uint64_t seed,
                     uint32_t tensor_id, uint32_t stream, const zt_zo_update_args *args, int vec_mode) {
    if (n <= 0) return 0;
    const int two = kind == ZT_ZO_ADAM || kind == ZT_ZO_DIRECTION;  // Adam's v or DIRECTION's D
    zt_stream_args g = state_args(x, dt, s1, two ? s2 : NULL, n, first, seed, tensor_id, stream, vec_mode);
    g.zo = *args;
    switch (kind) {
    case ZT_ZO_MOMENTUM: return by_dtype<ZT_OP_ZO, ZT_ZO_MOMENTUM>(g, dt);
    case ZT_ZO_ADAM: return by_dtype<ZT_OP_ZO, ZT_ZO_ADAM>(g, dt);
    case ZT_ZO_HIZOO: return by_dtype<ZT_OP_ZO, ZT_ZO_HIZOO>(g, dt);
    case ZT_ZO_DIRECTION: return by_dtype<ZT_OP_ZO, ZT_ZO_DIRECTION>(g, dt);
    default: return -1;
    }
}

int zt_emu_perturb_hessian(void *x, zt_dtype dt, const float *h, int64_t n, uint64_t first, uint64_t seed,
                           uint32_t tensor_id, uint32_t stream, float a, int vec_mode) {
    if (n <= 0) return 0;
    zt_stream_args g = state_args(x, dt, (float *)h, NULL, n, first, seed, tensor_id, stream, vec_mode);
    g.a = a;
    return by_dtype<ZT_OP_HPERTURB>(g, dt);
}

// The CUDA dequantization kernel's element decoder (Kernels/cuda/dequant.cuh) run on the host, as
// dequantize_rows of the host table: out(rows, cols) = rows ids[r] (or r) of src; bad ids give
// zero rows and are counted.
#include "dequant.cuh"

template <int TYPE>
static void deq_rows(float *out, const uint8_t *src, int64_t src_rows, int64_t cols, const int32_t *ids, int64_t rows,
                     int64_t elems, int64_t bytes, int64_t *bad) {
    const int64_t bpr = cols / elems;
    for (int64_t r = rows; r-- > 0;) {
        const int64_t sr = ids ? ids[r] : r;
        const bool ok = sr >= 0 && sr < src_rows;
        *bad += !ok;
        for (int64_t c = 0; c < cols; c++)
            out[r * cols + c] = ok ? zt_deq_elem<TYPE>(src + (sr * bpr + c / elems) * bytes, (int)(c % elems)) : 0.0f;
    }
}

extern "C" int64_t zt_emu_dequantize_rows(float *out, const void *src, int type, int64_t src_rows, int64_t cols,
                                          const int32_t *ids, int64_t rows) {
    const int64_t elems = zt_quant_block_elems(type), bytes = zt_quant_block_bytes(type);
    if (elems < 32 || cols % elems != 0) return -1;
    int64_t bad = 0;
    const uint8_t *s = (const uint8_t *)src;
    switch (type) {
    case ZT_GGML_Q4_0: deq_rows<ZT_GGML_Q4_0>(out, s, src_rows, cols, ids, rows, elems, bytes, &bad); break;
    case ZT_GGML_Q4_1: deq_rows<ZT_GGML_Q4_1>(out, s, src_rows, cols, ids, rows, elems, bytes, &bad); break;
    case ZT_GGML_Q5_0: deq_rows<ZT_GGML_Q5_0>(out, s, src_rows, cols, ids, rows, elems, bytes, &bad); break;
    case ZT_GGML_Q5_1: deq_rows<ZT_GGML_Q5_1>(out, s, src_rows, cols, ids, rows, elems, bytes, &bad); break;
    case ZT_GGML_Q8_0: deq_rows<ZT_GGML_Q8_0>(out, s, src_rows, cols, ids, rows, elems, bytes, &bad); break;
    case ZT_GGML_Q4_K: deq_rows<ZT_GGML_Q4_K>(out, s, src_rows, cols, ids, rows, elems, bytes, &bad); break;
    case ZT_GGML_Q5_K: deq_rows<ZT_GGML_Q5_K>(out, s, src_rows, cols, ids, rows, elems, bytes, &bad); break;
    case ZT_GGML_Q6_K: deq_rows<ZT_GGML_Q6_K>(out, s, src_rows, cols, ids, rows, elems, bytes, &bad); break;
    default: return -1;
    }
    return bad;
}

// The deterministic multi-block reduction of Kernels/cuda/reduce.cu (sum_squares,
// squared_distance, the Newton–Schulz norm) on the host: the same partition, per-thread order and
// trees (reduce.cuh), blocks and threads run in reverse order. b NULL: Σa².
#include <math.h>

#include "reduce.cuh"

template <int DT, bool DIFF>
static double red_run(const void *a, const void *b, int64_t n) {
    int64_t blocks, chunk;
    zt_red_partition(n, &blocks, &chunk);
    double partials[ZT_RED_BLOCKS], part[ZT_RED_THREADS];
    for (int64_t k = blocks; k-- > 0;) {  // red_partial_kernel, block k
        const int64_t s = k * chunk, e = s + chunk < n ? s + chunk : n;
        for (int t = ZT_RED_THREADS; t-- > 0;) part[t] = zt_red_thread<DT, DIFF>(a, b, s, e, t);
        for (int w = ZT_RED_THREADS / 2; w > 0; w >>= 1)
            for (int t = ZT_RED_THREADS; t-- > 0;) zt_red_tree_level(part, w, t);
        partials[k] = part[0];
    }
    for (int t = 0; t < ZT_RED_BLOCKS; t++) partials[t] = t < blocks ? partials[t] : 0.0;  // red_final_kernel
    for (int w = ZT_RED_BLOCKS / 2; w > 0; w >>= 1)
        for (int t = ZT_RED_BLOCKS; t-- > 0;) zt_red_tree_level(partials, w, t);
    return partials[0];
}

extern "C" double zt_emu_sumsq(const void *a, const void *b, zt_dtype dt, int64_t n) {
    if (n <= 0) return 0.0;
    switch (dt * 2 + (b != nullptr)) {
    case ZT_F32 * 2: return red_run<ZT_F32, false>(a, b, n);
    case ZT_F32 * 2 + 1: return red_run<ZT_F32, true>(a, b, n);
    case ZT_BF16 * 2: return red_run<ZT_BF16, false>(a, b, n);
    case ZT_BF16 * 2 + 1: return red_run<ZT_BF16, true>(a, b, n);
    case ZT_F16 * 2: return red_run<ZT_F16, false>(a, b, n);
    case ZT_F16 * 2 + 1: return red_run<ZT_F16, true>(a, b, n);
    default: return NAN;
    }
}

extern "C" int64_t zt_emu_sumsq_depth(int64_t n) { return zt_red_depth(n); }

// The store of rmsnorm_half / swiglu_half (rows.cu, elementwise.cu): each f32 value the kernel makes
// rounded to half_dtype by numerics.cuh's zt_st, as the device does at the store. Returns −1 for
// another dtype.
extern "C" int zt_emu_round_store(void *half, zt_dtype half_dtype, const float *v, int64_t n) {
    if (half_dtype == ZT_BF16) {
        for (int64_t i = n; i-- > 0;) zt_st<ZT_BF16>(half, i, v[i]);
        return 0;
    }
    if (half_dtype == ZT_F16) {
        for (int64_t i = n; i-- > 0;) zt_st<ZT_F16>(half, i, v[i]);
        return 0;
    }
    return -1;
}
