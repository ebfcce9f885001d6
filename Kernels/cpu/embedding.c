// Embedding lookup: out(n, dim) = table(vocab, dim)[ids(n)], widened to f32.
#include "zt_cpu.h"
#include "cpu_isa.h"
#include "zt_threads.h"

#include <string.h>

#define GRAIN_ELEMS 16384  // elements copied per task at least

typedef struct {
    float *out;              // (n, dim)
    const void *table;       // (vocab, dim) in `dtype`
    const int32_t *ids;      // (n)
    int64_t vocab, dim;
    zt_dtype dtype;
} emb_ctx;

ZT_ISA_CLONES static void emb_range(void *p, int64_t lo, int64_t hi) {
    const emb_ctx *c = p;
    const int64_t dim = c->dim;
    for (int64_t t = lo; t < hi; t++) {
        float *restrict dst = c->out + t * dim;
        const int64_t id = c->ids[t];
        if (id < 0 || id >= c->vocab) {
            memset(dst, 0, (size_t)dim * sizeof(float));
            continue;
        }
        switch (c->dtype) {
        case ZT_F32:
            memcpy(dst, (const float *)c->table + id * dim, (size_t)dim * sizeof(float));
            break;
        case ZT_F16: {
            const uint16_t *src = (const uint16_t *)c->table + id * dim;
            for (int64_t j = 0; j < dim; j++) dst[j] = zt_f16_to_f32(src[j]);
            break;
        }
        case ZT_BF16: {
            const uint16_t *src = (const uint16_t *)c->table + id * dim;
            for (int64_t j = 0; j < dim; j++) dst[j] = zt_bf16_to_f32(src[j]);
            break;
        }
        default:  // unknown dtype: zeros rather than reading garbage
            memset(dst, 0, (size_t)dim * sizeof(float));
            break;
        }
    }
}

int64_t zt_embedding(float *out, const void *table, zt_dtype dtype, int64_t vocab, int64_t dim,
                     const int32_t *ids, int64_t n) {
    // Count bad ids up front (cheap, n ints) so the tasks need no shared counter.
    int64_t bad = 0;
    for (int64_t t = 0; t < n; t++) bad += (ids[t] < 0 || (int64_t)ids[t] >= vocab);
    if (dim <= 0) return bad;
    emb_ctx c = {out, table, ids, vocab, dim, dtype};
    int64_t grain = GRAIN_ELEMS / dim;
    zt_parallel_for(n, grain < 1 ? 1 : grain, emb_range, &c);
    return bad;
}
