// The Jaguar optimizers' passes (zt_jaguar.h) and the dense "apply a direction" update of the
// matrix optimizers, on the worker pool.
//
// Probes and the memory pass touch only the selected k_rows × k_cols entries (about 1 % of a
// matrix by default): they run over the selected rows, finding the i-th selected index with the
// permutation. The dense passes run over every row and test membership with the inverse
// permutation, once per row and, in selected rows only, once per entry.
#include "convert_inline.h"
#include "cpu_isa.h"
#include "zt_cpu.h"
#include "zt_jaguar.h"
#include "zt_threads.h"

typedef struct {
    void *x;
    zt_dtype dt;
    float *m;
    uint64_t first, seed;
    uint32_t tensor_id;
    int kind;
    float a;               // probe step
    zt_jaguar_args p;
    zt_perm rows, cols;
} jaguar_job;

// Rounds v to what storage dtype dt holds.
ZT_INLINE float jg_round(zt_dtype dt, float v) {
    if (dt == ZT_F32) return v;
    if (dt == ZT_BF16) return zt_bf16_f32(zt_f32_bf16(v));
    return zt_f16_f32(zt_f32_f16(v));
}

// θ of a selected entry as the step's probes left it: replay redoes a1, a2 (each rounded to
// storage as the in-place probes of training stored them).
ZT_INLINE float jg_probed(const jaguar_job *j, float x, float s) {
    ZT_NO_CONTRACT
    if (j->p.a1 != 0.0f) x = jg_round(j->dt, ZT_FMA(j->p.a1, s, x));
    if (j->p.a2 != 0.0f) x = jg_round(j->dt, ZT_FMA(j->p.a2, s, x));
    return x;
}

ZT_INLINE float jg_sign(const jaguar_job *j, uint64_t e) {
    return j->p.signs ? zt_select_sign(j->seed, j->tensor_id, e) : 1.0f;
}

// Selected rows [b, e) (by rank i): probe, or MEMORY's restore + memory update.
static void sparse_range(void *ctx, int64_t b, int64_t e) {
    ZT_NO_CONTRACT
    const jaguar_job *j = ctx;
    const int64_t cols = j->p.cols;
    for (int64_t i = b; i < e; i++) {
        const int64_t r = zt_perm_at(&j->rows, (uint32_t)i);
        for (int64_t jj = 0; jj < j->p.k_cols; jj++) {
            const int64_t c = zt_perm_at(&j->cols, (uint32_t)jj);
            const int64_t at = r * cols + c;
            const uint64_t g = j->first + (uint64_t)at;
            const float s = jg_sign(j, g);
            const float x = zt_load(j->x, j->dt, at);
            if (j->kind == 0) {  // probe
                zt_store(j->x, j->dt, at, ZT_FMA(j->a, s, x));
            } else {             // ZT_JAGUAR_MEMORY
                const float restored = ZT_FMA(j->p.restore, s, jg_probed(j, x, s));
                j->m[at] = zt_jaguar_memory(&j->p, j->m[at], s);
                zt_store(j->x, j->dt, at, restored);
            }
        }
    }
}

// Rows [b, e) of the dense SIGN / SGD pass; kind and dtype are compile-time constants at each
// call site. Rows without a probed entry (most of them) take a branch-free loop that vectorises.
ZT_INLINE void dense_rows(const jaguar_job *j, int kind, zt_dtype dt, int64_t b, int64_t e) {
    ZT_NO_CONTRACT
    const zt_jaguar_args p = j->p;  // a local copy: cannot alias the state, so it stays in registers
    const int64_t cols = p.cols;
    for (int64_t r = b; r < e; r++) {
        float *m = j->m + r * cols;
        const int64_t base = r * cols;
        if (zt_perm_rank(&j->rows, (uint32_t)r) >= (uint32_t)p.k_rows) {
            for (int64_t c = 0; c < cols; c++)
                zt_store(j->x, dt, base + c, zt_jaguar_dense_elem(kind, &p, 0, zt_load(j->x, dt, base + c), 1.0f, &m[c]));
            continue;
        }
        for (int64_t c = 0; c < cols; c++) {
            const int selected = zt_perm_rank(&j->cols, (uint32_t)c) < (uint32_t)p.k_cols;
            float x = zt_load(j->x, dt, base + c), s = 1.0f;
            if (selected) {
                s = jg_sign(j, j->first + (uint64_t)(base + c));
                x = ZT_FMA(p.restore, s, jg_probed(j, x, s));
            }
            zt_store(j->x, dt, base + c, zt_jaguar_dense_elem(kind, &p, selected, x, s, &m[c]));
        }
    }
}

ZT_ISA_CLONES static void dense_range(void *ctx, int64_t b, int64_t e) {
    const jaguar_job *j = ctx;
#define ZT_JG(K, DT) if (j->kind == K && j->dt == DT) { dense_rows(j, K, DT, b, e); return; }
    ZT_JG(ZT_JAGUAR_SIGN, ZT_F32) ZT_JG(ZT_JAGUAR_SIGN, ZT_BF16) ZT_JG(ZT_JAGUAR_SIGN, ZT_F16)
    ZT_JG(ZT_JAGUAR_SGD, ZT_F32) ZT_JG(ZT_JAGUAR_SGD, ZT_BF16) ZT_JG(ZT_JAGUAR_SGD, ZT_F16)
#undef ZT_JG
}

static jaguar_job make_job(int kind, void *x, zt_dtype dtype, float *m, uint64_t first, uint64_t seed,
                           uint32_t tensor_id, const zt_jaguar_args *args, float a) {
    jaguar_job j = {.x = x, .dt = dtype, .m = m, .first = first, .seed = seed, .tensor_id = tensor_id, .kind = kind,
                    .a = a, .p = *args};
    j.rows = zt_perm_make((uint32_t)args->rows, seed, tensor_id, ZT_STREAM_SELECT_ROWS);
    j.cols = zt_perm_make((uint32_t)args->cols, seed, tensor_id, ZT_STREAM_SELECT_COLS);
    return j;
}

void zt_jaguar_probe(void *x, zt_dtype dtype, uint64_t first, uint64_t seed, uint32_t tensor_id,
                     const zt_jaguar_args *args, float a) {
    jaguar_job j = make_job(0, x, dtype, NULL, first, seed, tensor_id, args, a);
    zt_parallel_for(args->k_rows, (args->k_cols >= 4096 ? 1 : 4096 / args->k_cols), sparse_range, &j);
}

void zt_jaguar_update(int kind, void *x, zt_dtype dtype, float *m, uint64_t first, uint64_t seed, uint32_t tensor_id,
                      const zt_jaguar_args *args) {
    jaguar_job j = make_job(kind, x, dtype, m, first, seed, tensor_id, args, 0.0f);
    if (kind == ZT_JAGUAR_MEMORY)
        zt_parallel_for(args->k_rows, (args->k_cols >= 4096 ? 1 : 4096 / args->k_cols), sparse_range, &j);
    else if (kind == ZT_JAGUAR_SIGN || kind == ZT_JAGUAR_SGD)
        zt_parallel_for(args->rows, (args->cols >= 16384 ? 1 : 16384 / args->cols), dense_range, &j);
}

typedef struct {
    void *x;
    zt_dtype dt;
    const float *d;
    float alpha;
} axpy_job;

ZT_INLINE void axpy_typed(const axpy_job *j, zt_dtype dt, int64_t b, int64_t e) {
    ZT_NO_CONTRACT
    for (int64_t i = b; i < e; i++) zt_store(j->x, dt, i, ZT_FMA(j->alpha, j->d[i], zt_load(j->x, dt, i)));
}

ZT_ISA_CLONES static void axpy_range(void *ctx, int64_t b, int64_t e) {
    const axpy_job *j = ctx;
    if (j->dt == ZT_F32) axpy_typed(j, ZT_F32, b, e);
    else if (j->dt == ZT_BF16) axpy_typed(j, ZT_BF16, b, e);
    else axpy_typed(j, ZT_F16, b, e);
}

void zt_add_scaled(void *x, zt_dtype dtype, int64_t n, float alpha, const float *d) {
    axpy_job j = {.x = x, .dt = dtype, .d = d, .alpha = alpha};
    zt_parallel_for(n, 32768, axpy_range, &j);
}
