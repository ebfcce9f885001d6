// Causal, key-masked, grouped-query attention with an online (flash-style) softmax, optionally
// over a sliding window of keys. A task owns a block of query rows (up to Q_BLOCK positions t of
// one b and head h); the output rows double as the running accumulators, so memory beyond the
// caller's is one transposed key tile, one tile of scores and two floats per query on the stack,
// whatever S is. A window is a key range, not a mask over all S: a block's key loop starts at the
// tile holding its first query's first key, so a window costs O(window) per query.
// Key tiles start at the batch row's first unmasked key rather than at key 0, so a left-padded
// row groups its keys into the same tiles (the same partial sums) as the row without padding.
#include "zt_cpu.h"
#include "cpu_isa.h"
#include "zt_threads.h"
#include "fast_exp.h"

#include <math.h>

#define KEY_TILE 64        // keys scored per online-softmax step
#define LANES 8            // partial sums per dot product (vectorizes, shorter rounding chains)
#define Q_BLOCK 32         // queries of one head per task, sharing each key tile
#define TILE_DIM 256       // head dims up to this use the transposed tile (64 KB on the stack)
#define GRAIN_WORK 32768   // multiply-adds per task at least

typedef struct {
    float *out;               // (B, T, Hq, D)
    const float *q;           // (B, T, Hq, D)
    const float *k, *v;       // (B, S_cap, Hkv, D), first S positions used
    const uint8_t *key_mask;  // (B, S_cap) or NULL
    int64_t T, S, S_cap, Hq, Hkv, D;
    int64_t window;           // keys per query including itself; 0 = all (causal only)
    float scale;
} attn_ctx;

static inline float dot(const float *restrict a, const float *restrict b, int64_t n) {
    float s[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) s[j] += a[i + j] * b[i + j];
    for (; i < n; i++) s[0] += a[i] * b[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// s[j] = q · k_j for a whole tile from its transpose kt (D rows of KEY_TILE keys): the key index
// is the vector lane, so the tile's 64 sums stay in registers and no per-key horizontal
// reduction is needed (scoring one key at a time spent most of its time reducing).
static inline __attribute__((always_inline)) void tile_scores(float *restrict s, const float *restrict q,
                                                              const float *restrict kt, int64_t D) {
    float acc[KEY_TILE] = {0};
    for (int64_t d = 0; d < D; d++) {
        const float qd = q[d];
        const float *restrict row = kt + d * KEY_TILE;
        for (int j = 0; j < KEY_TILE; j++) acc[j] += qd * row[j];
    }
    for (int j = 0; j < KEY_TILE; j++) s[j] = acc[j];
}

static inline __attribute__((always_inline)) float lane_max(const float *restrict x) {
    float mx[LANES];
    for (int l = 0; l < LANES; l++) mx[l] = x[l];
    for (int j = LANES; j < KEY_TILE; j += LANES)
        for (int l = 0; l < LANES; l++) mx[l] = x[j + l] > mx[l] ? x[j + l] : mx[l];
    float r = mx[0];
    for (int l = 1; l < LANES; l++) r = mx[l] > r ? mx[l] : r;
    return r;
}

static inline __attribute__((always_inline)) float lane_sum(const float *restrict x) {
    float s[LANES] = {0};
    for (int j = 0; j < KEY_TILE; j += LANES)
        for (int l = 0; l < LANES; l++) s[l] += x[j + l];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// acc = alpha·acc + Σ_j p[j]·v_j over a tile's n value rows.
static inline __attribute__((always_inline)) void add_values(float *restrict acc, const float *restrict p,
                                                             const float *restrict v, int64_t n, int64_t stride,
                                                             float alpha, const int64_t D) {
    float a[D];
    for (int64_t d = 0; d < D; d++) a[d] = alpha * acc[d];
    for (int64_t j = 0; j < n; j++) {
        const float pj = p[j];
        if (pj == 0.0f) continue;  // masked (its value row may hold anything)
        const float *restrict vr = v + j * stride;
        for (int64_t d = 0; d < D; d++) a[d] += pj * vr[d];
    }
    for (int64_t d = 0; d < D; d++) acc[d] = a[d];
}

// One task: up to Q_BLOCK consecutive queries of one (b, head). Each key tile is transposed once
// and scored against every query of the block before the next is loaded, so a tile read from
// memory serves Q_BLOCK rows. Per query and tile: scores, the tile's max, exp, and the value
// rows added into the output row (rescaled when the running max moves).
ZT_ISA_CLONES static void attn_range(void *p, int64_t lo, int64_t hi) {
    const attn_ctx *c = p;
    const int64_t T = c->T, S = c->S, S_cap = c->S_cap, Hq = c->Hq, Hkv = c->Hkv, D = c->D, W = c->window;
    const int64_t group = Hq / Hkv, blocks = (T + Q_BLOCK - 1) / Q_BLOCK;
    const int64_t kv_stride = Hkv * D;  // elements between consecutive keys of one head
    const int transposed = D <= TILE_DIM;
    float kt[TILE_DIM * KEY_TILE];
    float score[KEY_TILE];
    float m[Q_BLOCK];  // running max of allowed scores, per query
    float l[Q_BLOCK];  // running Σ exp(score − m), per query
    for (int64_t task = lo; task < hi; task++) {
        // task = (b·blocks + block)·Hq + h: heads fastest, so neighbouring tasks share a kv head.
        const int64_t h = task % Hq, bb = task / Hq, t0 = (bb % blocks) * Q_BLOCK, b = bb / blocks;
        const int64_t nq = T - t0 < Q_BLOCK ? T - t0 : Q_BLOCK;
        const float *kb = c->k + (b * S_cap * Hkv + h / group) * D;  // key 0 of this kv head
        const float *vb = c->v + (b * S_cap * Hkv + h / group) * D;
        const uint8_t *mask = c->key_mask ? c->key_mask + b * S_cap : NULL;
        // Output row of query t: (b·T + t)·Hq + h; it doubles as the accumulator.
        const int64_t row_stride = Hq * D;
        float *out0 = c->out + ((b * T + t0) * Hq + h) * D;
        const float *q0 = c->q + ((b * T + t0) * Hq + h) * D;
        for (int64_t i = 0; i < nq; i++) {
            for (int64_t d = 0; d < D; d++) out0[i * row_stride + d] = 0.0f;
            m[i] = -INFINITY;
            l[i] = 0.0f;
        }
        const int64_t first_q = S - T + t0;        // key index of the block's first query
        const int64_t last_keys = first_q + nq;     // causal: query t sees keys 0 … S − T + t
        // Tile origin: the first unmasked key (none: the loop is empty and the rows stay 0).
        int64_t origin = 0;
        if (mask)
            while (origin < last_keys && !mask[origin]) origin++;
        // The block's first needed key: its first query's window start, down to a tile boundary.
        const int64_t lo = W > 0 && first_q - W + 1 > origin ? first_q - W + 1 : origin;
        for (int64_t s0 = origin + (lo - origin) / KEY_TILE * KEY_TILE; s0 < last_keys; s0 += KEY_TILE) {
            const int64_t tile_n = last_keys - s0 < KEY_TILE ? last_keys - s0 : KEY_TILE;
            if (transposed) {
                // Keys past the tile's end are zeros: their scores are finite and masked below.
                for (int64_t j = 0; j < KEY_TILE; j++) {
                    const float *kr = kb + (s0 + j) * kv_stride;
                    if (j < tile_n)
                        for (int64_t d = 0; d < D; d++) kt[d * KEY_TILE + j] = kr[d];
                    else
                        for (int64_t d = 0; d < D; d++) kt[d * KEY_TILE + j] = 0.0f;
                }
            }
            for (int64_t i = 0; i < nq; i++) {
                const int64_t nkeys = first_q + i + 1;
                const int64_t lo_i = W > 0 ? nkeys - W : 0;  // window: keys lo_i … nkeys − 1
                if (s0 >= nkeys || s0 + KEY_TILE <= lo_i) continue;
                const int64_t n = nkeys - s0 < KEY_TILE ? nkeys - s0 : KEY_TILE;
                const float *restrict qr = q0 + i * row_stride;
                float *restrict acc = out0 + i * row_stride;
                if (transposed)
                    tile_scores(score, qr, kt, D);
                else
                    for (int64_t j = 0; j < n; j++) score[j] = dot(qr, kb + (s0 + j) * kv_stride, D);
                // Lane-wise loops (the max and the sum in LANES partials): each vectorizes.
                for (int64_t j = 0; j < KEY_TILE; j++) score[j] *= c->scale;
                for (int64_t j = n; j < KEY_TILE; j++) score[j] = -INFINITY;
                for (int64_t j = 0; j < lo_i - s0; j++) score[j] = -INFINITY;  // before the window
                if (mask)
                    for (int64_t j = 0; j < n; j++) score[j] = mask[s0 + j] ? score[j] : -INFINITY;
                const float tmax = lane_max(score);
                if (tmax == -INFINITY) continue;  // whole tile masked: nothing to add
                const float m_new = tmax > m[i] ? tmax : m[i];
                const float alpha = zt_exp(m[i] - m_new);  // 0 on the first allowed tile (m = −inf)
                // exp(−inf) = 0: masked keys weigh nothing.
                for (int64_t j = 0; j < KEY_TILE; j++) score[j] = zt_exp(score[j] - m_new);
                const float lsum = lane_sum(score);
                // Common head sizes as constants: the row then stays in registers over the tile.
                if (D == 64)
                    add_values(acc, score, vb + s0 * kv_stride, n, kv_stride, alpha, 64);
                else if (D == 128)
                    add_values(acc, score, vb + s0 * kv_stride, n, kv_stride, alpha, 128);
                else
                    add_values(acc, score, vb + s0 * kv_stride, n, kv_stride, alpha, D);
                l[i] = l[i] * alpha + lsum;
                m[i] = m_new;
            }
        }
        // l ≥ 1 once any key was allowed (the max contributes e⁰); l = 0 means none: acc stays 0.
        for (int64_t i = 0; i < nq; i++) {
            if (l[i] > 0.0f) {
                float *restrict acc = out0 + i * row_stride;
                const float inv = 1.0f / l[i];
                for (int64_t d = 0; d < D; d++) acc[d] *= inv;
            }
        }
    }
}

void zt_attention(float *out, const float *q, const float *k, const float *v, const uint8_t *key_mask,
                  int64_t B, int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                  int64_t window) {
    if (B <= 0 || T <= 0 || Hq <= 0 || Hkv <= 0 || D <= 0) return;
    attn_ctx c = {out, q, k, v, key_mask, T, S, S_cap < S ? S : S_cap, Hq, Hkv, D, window < 0 ? 0 : window, scale};
    // Per task: up to Q_BLOCK rows of about (S − T/2) keys, or the window and a block's
    // spread (plus a tile of rounding), × 2D multiply-adds.
    const int64_t blocks = (T + Q_BLOCK - 1) / Q_BLOCK, nqb = T < Q_BLOCK ? T : Q_BLOCK;
    int64_t keys = S - T / 2;
    if (c.window > 0 && c.window < keys - nqb - KEY_TILE) keys = c.window + nqb + KEY_TILE;
    int64_t work = nqb * keys * 2 * D;
    int64_t grain = GRAIN_WORK / (work > 0 ? work : 1);
    zt_parallel_for(B * blocks * Hq, grain < 1 ? 1 : grain, attn_range, &c);
}
