// CPU kernels of FZOO, Sparse MeZO and MeZO-SVRG (zt_frontier.h): group loops over the element math
// of frontier_math.h on the worker pool, and Sparse MeZO's per-tensor threshold (an exact k-th
// smallest |θ| by radix selection, so every device and thread count gives the same value).
// Scalar Philox per group: these passes run once or a few times per step (docs/optimizers.md).
#include "frontier_math.h"
#include "zt_cpu.h"
#include "zt_threads.h"

typedef struct {
    const zt_sum_args *a;
    void *out;
    const void *src;
    zt_dtype odt, sdt;
    int64_t n;
    uint64_t first, g_first;
    uint32_t tid;
} sum_job;

static void sum_range(void *ctx, int64_t b, int64_t e) {
    const sum_job *j = ctx;
    for (int64_t t = b; t < e; t++) zt_sum_group(j->a, j->out, j->odt, j->src, j->sdt, j->n, j->first, j->tid, j->g_first + (uint64_t)t);
}

void zt_stream_sum(void *out, zt_dtype out_dtype, const void *src, zt_dtype src_dtype, int64_t n, uint64_t first,
                   uint32_t tensor_id, const zt_sum_args *args) {
    if (n <= 0 || args->count < 1 || args->count > ZT_SUM_MAX_TERMS) return;
    const int len = zt_sum_group_len(args->dir);
    sum_job j = {.a = args, .out = out, .src = src ? src : out, .odt = out_dtype, .sdt = src ? src_dtype : out_dtype,
                 .n = n, .first = first, .g_first = first / (uint64_t)len, .tid = tensor_id};
    // Groups never share an element, so any split gives the same bits.
    zt_parallel_for((int64_t)zt_fr_groups(first, n, len), 1 << 10, sum_range, &j);
}

typedef struct {
    int op;
    const zt_masked_args *a;
    void *x;
    zt_dtype dt;
    uint8_t *mask;
    int64_t n;
    uint64_t first, seed;
    uint32_t tid, stream;
} masked_job;

static void masked_range(void *ctx, int64_t b, int64_t e) {
    const masked_job *j = ctx;
    for (int64_t t = b; t < e; t++)
        zt_masked_group(j->op, j->a, j->x, j->dt, j->mask, j->n, j->first, j->seed, j->tid, j->stream, j->first / 4 + (uint64_t)t);
}

void zt_masked_stream(int op, void *x, zt_dtype dtype, uint8_t *mask, int64_t n, uint64_t first, uint64_t seed,
                      uint32_t tensor_id, uint32_t stream, const zt_masked_args *args) {
    if (n <= 0) return;
    masked_job j = {.op = op, .a = args, .x = x, .dt = dtype, .mask = mask, .n = n, .first = first, .seed = seed,
                    .tid = tensor_id, .stream = stream};
    zt_parallel_for((int64_t)zt_fr_groups(first, n, 4), 1 << 12, masked_range, &j);
}

// The k-th smallest |x| (k in [1, n]): radix selection on the bits of |x| (for non-negative floats
// the order of the bit patterns is the order of the values), 8 bits per pass, most significant
// first. Host memory only; a device tensor is copied to the host first (docs/optimizers.md).
float zt_kth_abs(const void *x, zt_dtype dtype, int64_t n, int64_t k) {
    if (n <= 0) return 0.0f;
    if (k < 1) k = 1;
    if (k > n) k = n;
    uint32_t prefix = 0, known = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        int64_t hist[256] = {0};
        for (int64_t i = 0; i < n; i++) {
            const uint32_t key = zt_f32_bits(zt_fr_load(x, dtype, i)) & 0x7FFFFFFFu;
            if ((key & known) == prefix) hist[(key >> shift) & 255u]++;
        }
        int b = 0;
        while (b < 255 && hist[b] < k) k -= hist[b++];
        prefix |= (uint32_t)b << shift;
        known |= 255u << shift;
    }
    return zt_bits_f32(prefix);
}
