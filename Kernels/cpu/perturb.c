// Perturbation-stream kernels: perturb, fused restore+update, perturbed copy, fill_normal.
//
// These run once per ZO step over every trainable weight (3 passes per MeZO step), so they are
// written for SIMD: z is produced 64 elements (16 Philox blocks) at a time in lane arrays, the
// Philox rounds and the log/sincos polynomials of zt_philox.h are branch-free, and each loop is
// compiled for AVX-512, AVX2+FMA and baseline x86-64, picked once at run time. Math is f32.
#include <stdbool.h>

#include "convert_inline.h"
#include "zt_cpu.h"
#include "zt_optim.h"
#include "zt_philox.h"
#include "zt_threads.h"

#define ZT_LANES 16                  // Philox blocks per batch (16: enough independent work to hide latency)
#define ZT_BATCH (4 * ZT_LANES)      // elements per batch

enum { OP_PERTURB, OP_UPDATE, OP_FILL, OP_COPY, OP_REPLAY, OP_ZO, OP_HPERTURB };

typedef struct {
    void *x;                // (n) destination, elements [first, first + n) of the tensor
    const void *src;        // (n) source of OP_COPY
    zt_dtype dt, src_dt;
    int op;
    uint64_t first, seed;
    uint32_t tensor_id, stream;
    float a, step, decay;   // OP_PERTURB/COPY/FILL: a; OP_UPDATE: restore = a, step, decay
    float a1, a2;           // OP_REPLAY: the two perturbations before the restore (= a)
    float *s1, *s2;         // (n) f32 optimizer state of OP_ZO (s1 = H of OP_HPERTURB), local index
    int kind;               // OP_ZO: zt_zo_kind
    const zt_zo_update_args *zo;
} stream_job;

// z[0 .. ZT_BATCH) for global elements [4·j0, 4·j0 + ZT_BATCH).
ZT_INLINE void normals_batch(uint64_t seed, uint32_t tid, uint32_t stream, uint64_t j0, float *restrict z) {
    ZT_NO_CONTRACT
    float z0[ZT_LANES], z1[ZT_LANES], z2[ZT_LANES], z3[ZT_LANES];
    for (int l = 0; l < ZT_LANES; l++) {
        zt_u32x4 w = zt_philox_block(seed, tid, stream, j0 + (uint64_t)l);
        float c0, s0, c1, s1;
        float r0 = zt_box_muller_radius(w.v[0]);
        zt_sincos_2pi(w.v[1], &c0, &s0);
        float r1 = zt_box_muller_radius(w.v[2]);
        zt_sincos_2pi(w.v[3], &c1, &s1);
        z0[l] = ZT_FMUL(r0, c0);
        z1[l] = ZT_FMUL(r0, s0);
        z2[l] = ZT_FMUL(r1, c1);
        z3[l] = ZT_FMUL(r1, s1);
    }
    for (int l = 0; l < ZT_LANES; l++) {
        z[4 * l + 0] = z0[l];
        z[4 * l + 1] = z1[l];
        z[4 * l + 2] = z2[l];
        z[4 * l + 3] = z3[l];
    }
}

// The per-element operation, in f32, with explicit FMAs so CPU and GPU round alike.
// Rounds v to what storage dtype dt holds (identity for f32).
ZT_INLINE float round_to(zt_dtype dt, float v) {
    if (dt == ZT_F32) return v;
    if (dt == ZT_BF16) return zt_bf16_f32(zt_f32_bf16(v));
    return zt_f16_f32(zt_f32_f16(v));
}

ZT_INLINE float apply_replay(zt_dtype dt, float x, float z, const stream_job *j) {
    ZT_NO_CONTRACT
    float x1 = round_to(dt, ZT_FMA(j->a1, z, x));
    float x2 = j->a2 != 0.0f ? round_to(dt, ZT_FMA(j->a2, z, x1)) : x1;
    float restored = ZT_FMA(j->a, z, x2);
    return ZT_FMA(-j->decay, restored, ZT_FMA(-j->step, z, restored));
}

// OP_ZO: replay's probe perturbations along the kind's direction, then the fused update (zt_optim.h).
ZT_INLINE float apply_zo(zt_dtype dt, float x, float z, const stream_job *j, int64_t i) {
    ZT_NO_CONTRACT
    const zt_zo_update_args *p = j->zo;
    float *s2 = j->s2 ? &j->s2[i] : NULL;
    const float d = zt_zo_direction(j->kind, z, j->s1[i]);
    float x2 = x;
    if (p->a1 != 0.0f) x2 = round_to(dt, ZT_FMA(p->a1, d, x2));
    if (p->a2 != 0.0f) x2 = round_to(dt, ZT_FMA(p->a2, d, x2));
    return zt_zo_update_elem(j->kind, p, x2, z, d, &j->s1[i], s2);
}

ZT_INLINE float apply_op(int op, float x, float z, float a, float step, float decay) {
    ZT_NO_CONTRACT
    switch (op) {
    case OP_PERTURB:
    case OP_COPY: return ZT_FMA(a, z, x);
    case OP_UPDATE: {
        float restored = ZT_FMA(a, z, x);
        return ZT_FMA(-decay, restored, ZT_FMA(-step, z, restored));
    }
    default: return ZT_FMUL(a, z);
    }
}

// The per-element result of job j at local index i (state ops read and write j->s1/s2 at i).
ZT_INLINE float apply_elem(const stream_job *j, int op, zt_dtype dt, int64_t i, float xi, float zi) {
    ZT_NO_CONTRACT
    if (op == OP_REPLAY) return apply_replay(dt, xi, zi, j);
    if (op == OP_ZO) return apply_zo(dt, xi, zi, j, i);
    if (op == OP_HPERTURB) return ZT_FMA(j->a, zt_zo_direction(ZT_ZO_HIZOO, zi, j->s1[i]), xi);
    return apply_op(op, xi, zi, j->a, j->step, j->decay);
}

// Local elements [b, e) of job j; op and dtypes are compile-time constants at each call site.
ZT_INLINE void stream_range(const stream_job *j, int op, zt_dtype dt, zt_dtype sdt, int64_t b, int64_t e) {
    void *x = j->x;
    const void *src = op == OP_COPY ? j->src : j->x;
    float z[ZT_BATCH];
    int64_t i = b;
    // Head and tail (not on a batch boundary of the global index) go block by block.
    while (i < e && ((j->first + (uint64_t)i) % ZT_BATCH) != 0) {
        uint64_t g = j->first + (uint64_t)i;
        zt_normal_block(j->seed, j->tensor_id, j->stream, g >> 2, z);
        for (; i < e && ((j->first + (uint64_t)i) >> 2) == (g >> 2); i++) {
            float zi = z[(j->first + (uint64_t)i) & 3];
            float xi = op == OP_FILL ? 0.0f : zt_load(src, sdt, i);
            zt_store(x, dt, i, apply_elem(j, op, dt, i, xi, zi));
        }
    }
    for (; i + ZT_BATCH <= e; i += ZT_BATCH) {
        normals_batch(j->seed, j->tensor_id, j->stream, (j->first + (uint64_t)i) >> 2, z);
        for (int k = 0; k < ZT_BATCH; k++) {
            float xi = op == OP_FILL ? 0.0f : zt_load(src, sdt, i + k);
            zt_store(x, dt, i + k, apply_elem(j, op, dt, i + k, xi, z[k]));
        }
    }
    while (i < e) {
        uint64_t g = j->first + (uint64_t)i;
        zt_normal_block(j->seed, j->tensor_id, j->stream, g >> 2, z);
        for (; i < e && ((j->first + (uint64_t)i) >> 2) == (g >> 2); i++) {
            float zi = z[(j->first + (uint64_t)i) & 3];
            float xi = op == OP_FILL ? 0.0f : zt_load(src, sdt, i);
            zt_store(x, dt, i, apply_elem(j, op, dt, i, xi, zi));
        }
    }
}

// Dispatch to a specialised loop for each (op, dtype[, source dtype]).
ZT_INLINE void stream_dispatch(const stream_job *j, int64_t b, int64_t e) {
#define ZT_DT(OP, DT) if (j->dt == DT) { stream_range(j, OP, DT, DT, b, e); return; }
#define ZT_CP(DT, SDT) if (j->dt == DT && j->src_dt == SDT) { stream_range(j, OP_COPY, DT, SDT, b, e); return; }
    switch (j->op) {
    case OP_PERTURB: ZT_DT(OP_PERTURB, ZT_F32) ZT_DT(OP_PERTURB, ZT_BF16) ZT_DT(OP_PERTURB, ZT_F16) return;
    case OP_UPDATE: ZT_DT(OP_UPDATE, ZT_F32) ZT_DT(OP_UPDATE, ZT_BF16) ZT_DT(OP_UPDATE, ZT_F16) return;
    case OP_FILL: ZT_DT(OP_FILL, ZT_F32) ZT_DT(OP_FILL, ZT_BF16) ZT_DT(OP_FILL, ZT_F16) return;
    case OP_REPLAY: ZT_DT(OP_REPLAY, ZT_F32) ZT_DT(OP_REPLAY, ZT_BF16) ZT_DT(OP_REPLAY, ZT_F16) return;
    case OP_ZO: ZT_DT(OP_ZO, ZT_F32) ZT_DT(OP_ZO, ZT_BF16) ZT_DT(OP_ZO, ZT_F16) return;
    case OP_HPERTURB: ZT_DT(OP_HPERTURB, ZT_F32) ZT_DT(OP_HPERTURB, ZT_BF16) ZT_DT(OP_HPERTURB, ZT_F16) return;
    default:
        ZT_CP(ZT_F32, ZT_F32) ZT_CP(ZT_F32, ZT_BF16) ZT_CP(ZT_F32, ZT_F16)
        ZT_CP(ZT_BF16, ZT_BF16) ZT_CP(ZT_BF16, ZT_F32) ZT_CP(ZT_BF16, ZT_F16)
        ZT_CP(ZT_F16, ZT_F16) ZT_CP(ZT_F16, ZT_F32) ZT_CP(ZT_F16, ZT_BF16)
        return;
    }
#undef ZT_DT
#undef ZT_CP
}

#if defined(__x86_64__) && defined(__clang__)
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma,f16c")))
static void stream_avx512(void *ctx, int64_t b, int64_t e) { stream_dispatch(ctx, b, e); }
__attribute__((target("avx2,fma,f16c")))
static void stream_avx2(void *ctx, int64_t b, int64_t e) { stream_dispatch(ctx, b, e); }
#endif
static void stream_generic(void *ctx, int64_t b, int64_t e) { stream_dispatch(ctx, b, e); }

static zt_range_fn pick_stream_fn(void) {
#if defined(__x86_64__) && defined(__clang__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return stream_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return stream_avx2;
#endif
    return stream_generic;
}

static void run_stream(stream_job *j, int64_t n) {
    static zt_range_fn fn = NULL;
    if (!fn) fn = pick_stream_fn();  // benign race: every thread picks the same function
    // Ranges split on batch boundaries of the local index; results do not depend on the split.
    zt_parallel_for(n, 1 << 14, fn, j);
}

void zt_perturb(void *x, zt_dtype dtype, int64_t n, uint64_t first,
                uint64_t seed, uint32_t tensor_id, uint32_t stream, float a) {
    stream_job j = {.x = x, .dt = dtype, .src_dt = dtype, .op = OP_PERTURB, .first = first, .seed = seed,
                    .tensor_id = tensor_id, .stream = stream, .a = a};
    run_stream(&j, n);
}

void zt_restore_update(void *x, zt_dtype dtype, int64_t n, uint64_t first, uint64_t seed,
                       uint32_t tensor_id, uint32_t stream, float restore, float step, float decay) {
    stream_job j = {.x = x, .dt = dtype, .src_dt = dtype, .op = OP_UPDATE, .first = first, .seed = seed,
                    .tensor_id = tensor_id, .stream = stream, .a = restore, .step = step, .decay = decay};
    run_stream(&j, n);
}

void zt_replay_step(void *x, zt_dtype dtype, int64_t n, uint64_t first, uint64_t seed, uint32_t tensor_id,
                    uint32_t stream, float a1, float a2, float restore, float step, float decay) {
    stream_job j = {.x = x, .dt = dtype, .src_dt = dtype, .op = OP_REPLAY, .first = first, .seed = seed,
                    .tensor_id = tensor_id, .stream = stream, .a = restore, .step = step, .decay = decay,
                    .a1 = a1, .a2 = a2};
    run_stream(&j, n);
}

void zt_perturbed_copy(void *out, zt_dtype out_dtype, const void *src, zt_dtype src_dtype, int64_t n,
                       uint64_t first, uint64_t seed, uint32_t tensor_id, uint32_t stream, float a) {
    stream_job j = {.x = out, .src = src, .dt = out_dtype, .src_dt = src_dtype, .op = OP_COPY, .first = first,
                    .seed = seed, .tensor_id = tensor_id, .stream = stream, .a = a};
    run_stream(&j, n);
}

void zt_fill_normal(void *out, zt_dtype dtype, int64_t n, uint64_t first,
                    uint64_t seed, uint32_t tensor_id, uint32_t stream, float scale) {
    stream_job j = {.x = out, .dt = dtype, .src_dt = dtype, .op = OP_FILL, .first = first, .seed = seed,
                    .tensor_id = tensor_id, .stream = stream, .a = scale};
    run_stream(&j, n);
}

void zt_zo_update(int kind, void *x, zt_dtype dtype, float *s1, float *s2, int64_t n, uint64_t first, uint64_t seed,
                  uint32_t tensor_id, uint32_t stream, const zt_zo_update_args *args) {
    stream_job j = {.x = x, .dt = dtype, .src_dt = dtype, .op = OP_ZO, .first = first, .seed = seed,
                    .tensor_id = tensor_id, .stream = stream, .s1 = s1, .s2 = s2, .kind = kind, .zo = args};
    run_stream(&j, n);
}

void zt_perturb_hessian(void *x, zt_dtype dtype, const float *h, int64_t n, uint64_t first, uint64_t seed,
                        uint32_t tensor_id, uint32_t stream, float a) {
    stream_job j = {.x = x, .dt = dtype, .src_dt = dtype, .op = OP_HPERTURB, .first = first, .seed = seed,
                    .tensor_id = tensor_id, .stream = stream, .a = a, .s1 = (float *)h};
    run_stream(&j, n);
}
