// Zoop's local update (docs/optimizers.md): per-row scaling of the regenerated activation noise
// by α of the row's sample, the squared norm of an estimate (per-tensor normalisation), and Adam
// on a given direction. The estimate itself is one GEMM (zt_sgemm).
#include <math.h>
#include <stdlib.h>

#include "convert_inline.h"
#include "cpu_isa.h"
#include "zt_cpu.h"
#include "zt_optim.h"
#include "zt_threads.h"

typedef struct {
    float *x;
    const float *s;
    int64_t cols;
} rows_job;

ZT_ISA_CLONES static void scale_rows_range(void *ctx, int64_t b, int64_t e) {
    const rows_job *j = ctx;
    for (int64_t r = b; r < e; r++) {
        const float s = j->s[r];
        float *row = j->x + r * j->cols;
        for (int64_t c = 0; c < j->cols; c++) row[c] *= s;
    }
}

void zt_scale_rows(float *x, int64_t rows, int64_t cols, const float *scales) {
    rows_job j = {.x = x, .s = scales, .cols = cols};
    zt_parallel_for(rows, cols >= 8192 ? 1 : 8192 / cols, scale_rows_range, &j);
}

// Σ(a − b)² (b NULL: Σa²) in double over fixed blocks of ZT_SUMSQ_BLOCK elements, the block sums
// added in order: the result does not depend on the thread count.
#define ZT_SUMSQ_BLOCK 4096

typedef struct {
    const void *a, *b;
    zt_dtype dt;
    int64_t n;
    double *partial;
} sumsq_job;

ZT_INLINE double sumsq_block(const sumsq_job *j, zt_dtype dt, int64_t s, int64_t t) {
    double acc = 0;
    if (j->b) {
        for (int64_t i = s; i < t; i++) {
            const double d = (double)zt_load(j->a, dt, i) - (double)zt_load(j->b, dt, i);
            acc += d * d;
        }
    } else {
        for (int64_t i = s; i < t; i++) {
            const double v = (double)zt_load(j->a, dt, i);
            acc += v * v;
        }
    }
    return acc;
}

ZT_ISA_CLONES static void sumsq_range(void *ctx, int64_t b, int64_t e) {
    const sumsq_job *j = ctx;
    for (int64_t k = b; k < e; k++) {
        const int64_t s = k * ZT_SUMSQ_BLOCK, t = s + ZT_SUMSQ_BLOCK < j->n ? s + ZT_SUMSQ_BLOCK : j->n;
        j->partial[k] = j->dt == ZT_F32 ? sumsq_block(j, ZT_F32, s, t)
                      : j->dt == ZT_BF16 ? sumsq_block(j, ZT_BF16, s, t) : sumsq_block(j, ZT_F16, s, t);
    }
}

static double sumsq(const void *a, const void *b, zt_dtype dtype, int64_t n) {
    const int64_t blocks = (n + ZT_SUMSQ_BLOCK - 1) / ZT_SUMSQ_BLOCK;
    double stack[256];
    double *partial = blocks <= 256 ? stack : malloc((size_t)blocks * sizeof(double));
    if (!partial) return NAN;
    sumsq_job j = {.a = a, .b = b, .dt = dtype, .n = n, .partial = partial};
    zt_parallel_for(blocks, 4, sumsq_range, &j);
    double sum = 0;
    for (int64_t k = 0; k < blocks; k++) sum += partial[k];
    if (partial != stack) free(partial);
    return sum;
}

double zt_sum_squares(const float *x, int64_t n) { return sumsq(x, NULL, ZT_F32, n); }

double zt_squared_distance(const void *a, const void *b, zt_dtype dtype, int64_t n) { return sumsq(a, b, dtype, n); }

typedef struct {
    void *x;
    zt_dtype dt;
    float *m, *v;
    const float *d;
    zt_zo_update_args p;
} adam_job;

ZT_INLINE void adam_typed(const adam_job *j, zt_dtype dt, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++)
        zt_store(j->x, dt, i, zt_adam_direction_elem(&j->p, zt_load(j->x, dt, i), j->d[i], &j->m[i], &j->v[i]));
}

ZT_ISA_CLONES static void adam_range(void *ctx, int64_t b, int64_t e) {
    const adam_job *j = ctx;
    if (j->dt == ZT_F32) adam_typed(j, ZT_F32, b, e);
    else if (j->dt == ZT_BF16) adam_typed(j, ZT_BF16, b, e);
    else adam_typed(j, ZT_F16, b, e);
}

void zt_adam_direction(void *x, zt_dtype dtype, float *m, float *v, const float *d, int64_t n,
                       const zt_zo_update_args *args) {
    adam_job j = {.x = x, .dt = dtype, .m = m, .v = v, .d = d, .p = *args};
    zt_parallel_for(n, 32768, adam_range, &j);
}
