// Causal, key-masked, grouped-query attention with an online (flash-style) softmax.
// Each task owns whole query rows (b, t, h); the output row doubles as the running accumulator,
// so memory beyond the caller's is one tile of scores on the stack, whatever S and D are.
#include "zt_cpu.h"
#include "cpu_isa.h"
#include "zt_threads.h"
#include "fast_exp.h"

#include <math.h>

#define KEY_TILE 64        // keys scored per online-softmax step
#define LANES 8            // partial sums per dot product (vectorizes, shorter rounding chains)
#define GRAIN_WORK 32768   // multiply-adds per task at least

typedef struct {
    float *out;               // (B, T, Hq, D)
    const float *q;           // (B, T, Hq, D)
    const float *k, *v;       // (B, S_cap, Hkv, D), first S positions used
    const uint8_t *key_mask;  // (B, S_cap) or NULL
    int64_t T, S, S_cap, Hq, Hkv, D;
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

ZT_ISA_CLONES static void attn_range(void *p, int64_t lo, int64_t hi) {
    const attn_ctx *c = p;
    const int64_t T = c->T, S = c->S, S_cap = c->S_cap, Hq = c->Hq, Hkv = c->Hkv, D = c->D;
    const int64_t group = Hq / Hkv;
    const int64_t kv_stride = Hkv * D;  // elements between consecutive keys of one head
    float score[KEY_TILE];
    for (int64_t row = lo; row < hi; row++) {
        // row = (b·T + t)·Hq + h, the output layout.
        const int64_t h = row % Hq, bt = row / Hq, t = bt % T, b = bt / T;
        const float *restrict qr = c->q + row * D;
        float *restrict acc = c->out + row * D;
        const float *kb = c->k + (b * S_cap * Hkv + h / group) * D;  // key 0 of this kv head
        const float *vb = c->v + (b * S_cap * Hkv + h / group) * D;
        const uint8_t *mask = c->key_mask ? c->key_mask + b * S_cap : NULL;
        const int64_t nkeys = S - T + t + 1;  // causal: keys 0 … S − T + t

        for (int64_t d = 0; d < D; d++) acc[d] = 0.0f;
        float m = -INFINITY;  // running max of allowed scores
        float l = 0.0f;       // running Σ exp(score − m)
        for (int64_t s0 = 0; s0 < nkeys; s0 += KEY_TILE) {
            const int64_t n = nkeys - s0 < KEY_TILE ? nkeys - s0 : KEY_TILE;
            float tmax = -INFINITY;
            for (int64_t j = 0; j < n; j++) {
                if (mask && !mask[s0 + j]) {
                    score[j] = -INFINITY;
                    continue;
                }
                score[j] = c->scale * dot(qr, kb + (s0 + j) * kv_stride, D);
                tmax = score[j] > tmax ? score[j] : tmax;
            }
            if (tmax == -INFINITY) continue;  // whole tile masked: nothing to add
            const float m_new = tmax > m ? tmax : m;
            const float alpha = zt_exp(m - m_new);  // 0 on the first allowed tile (m = −inf)
            if (alpha != 1.0f)
                for (int64_t d = 0; d < D; d++) acc[d] *= alpha;
            float lsum = 0.0f;
            for (int64_t j = 0; j < n; j++) {
                if (score[j] == -INFINITY) continue;  // masked key
                const float pj = zt_exp(score[j] - m_new);
                lsum += pj;
                const float *restrict vr = vb + (s0 + j) * kv_stride;
                for (int64_t d = 0; d < D; d++) acc[d] += pj * vr[d];
            }
            l = l * alpha + lsum;
            m = m_new;
        }
        // l ≥ 1 once any key was allowed (the max contributes e⁰); l = 0 means none: acc stays 0.
        if (l > 0.0f) {
            const float inv = 1.0f / l;
            for (int64_t d = 0; d < D; d++) acc[d] *= inv;
        }
    }
}

void zt_attention(float *out, const float *q, const float *k, const float *v, const uint8_t *key_mask,
                  int64_t B, int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv, int64_t D, float scale) {
    if (B <= 0 || T <= 0 || Hq <= 0 || Hkv <= 0 || D <= 0) return;
    attn_ctx c = {out, q, k, v, key_mask, T, S, S_cap < S ? S : S_cap, Hq, Hkv, D, scale};
    // Per row: about (S − T/2) keys × 2D multiply-adds.
    int64_t work = (S - T / 2) * 2 * D;
    int64_t grain = GRAIN_WORK / (work > 0 ? work : 1);
    zt_parallel_for(B * T * Hq, grain < 1 ? 1 : grain, attn_range, &c);
}
