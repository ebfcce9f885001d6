// Causal, key-masked, grouped-query attention with an online (flash-style) softmax, optionally
// over a sliding window of keys. A task owns up to ROWS_MAX query rows: a block of consecutive
// queries t of one b times the query heads of one kv head (a GQA group), so every key and value
// row read serves all of them. Per key tile the task computes the scores of all its rows, the
// online-softmax update and the value sum, each as a register-blocked micro-kernel:
//   scores  S(key j, row r) = Σ_d k_j[d]·q_r[d]: rows in the vector lanes (Qᵀ packed once per task),
//           a key's element broadcast; 6 keys × 16 rows of accumulators. The softmax then runs
//           down the key axis with rows in lanes: no horizontal reductions.
//   values  out_r = α_r·out_r + Σ_j p(j, r)·v_j: head dims in the lanes, 6 rows × 16 dims of
//           accumulators, v rows read in place.
// Every product chain runs over d (scores) or j (values) in order, one lane per row, so a row's bits
// do not depend on which rows share its task, its lane or the thread count.
// Memory beyond the caller's is Qᵀ, one tile of scores and a few floats per row, on the stack.
// softcap > 0 (Gemma 2): each score becomes softcap·tanh(score / softcap) right after the scale and
// before the mask and the online max, as transformers orders it; tanh is fast_tanh.h's (≤ 1.08 ulp,
// vectorized over a key's rows) on the scores the task computed. softcap = 0 skips that step, so
// those rows keep their bits.
// A window is a key range, not a mask over all S: a task's key loop starts at the tile holding its
// first query's first key, so a window costs O(window) per query. Key tiles start at the batch row's
// first unmasked key rather than at key 0, so a left-padded row groups its keys into the same tiles
// (the same partial sums) as the row without padding.
#include "zt_cpu.h"
#include "cpu_isa.h"
#include "zt_threads.h"
#include "fast_tanh.h"

#include <math.h>

#define KEY_TILE 64      // keys scored per online-softmax step
#define ROWS_MAX 96      // query rows (queries × heads of a group) per task, a multiple of 8
#define Q_BLOCK_MAX 64   // queries per task at most (bounds the work past the causal diagonal)
#define DIM_CHUNK 128    // head dims of Qᵀ packed at once; larger heads are scored in chunks
#define GRAIN_WORK 32768 // multiply-adds per task at least
#define DYNAMIC_WORK ((int64_t)1 << 28)  // multiply-adds of a call from which tasks are claimed

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));  // unaligned loads and stores
typedef int32_t v8i __attribute__((vector_size(32)));

#define LOADU(p) (*(const v8u *)(p))
#define STOREU(p, x) (*(v8u *)(p) = (x))

// Helpers are macros or take pointers: a vector argument or result changes the ABI of a function
// without AVX, which clang rejects in the baseline build even when the call is inlined.
#define SPLAT8(x) ((v8){(x), (x), (x), (x), (x), (x), (x), (x)})
#define SELECT8(m, a, b) ((v8)(((v8i)(m) & (v8i)(a)) | (~(v8i)(m) & (v8i)(b))))

// x[0 … 7] = zt_exp (fast_exp.h) in place for x ≤ 0 (the softmax's s − max and α's m_old − m_new):
// the same steps, so a lane rounds as the scalar function does with the same contractions; rint as
// (t + 1.5·2²³) − 1.5·2²³, exact for |t| ≤ 2²² (here ≤ 128). zt_exp clamps x to [−87.3, 88] first;
// here the top never binds, and below −87.3 (−inf included) the result is 0 whatever the steps
// compute from the unclamped x, so the clamp is left out: the same bits, three vector ops fewer.
static inline __attribute__((always_inline)) void exp8(float *x8) {
    const v8 x = *(const v8 *)x8, lo = SPLAT8(-87.3f), magic = SPLAT8(12582912.0f);
    v8 t = x * 1.44269504f;
    v8 k = t + magic;
    k = k - magic;
    v8 r = k * -0.693145752f + x;
    r = k * -1.42860677e-06f + r;
    v8 p = r * 1.98412698e-04f + 1.38888889e-03f;
    p = r * p + 8.33333333e-03f;
    p = r * p + 4.16666667e-02f;
    p = r * p + 1.66666667e-01f;
    p = r * p + 0.5f;
    p = r * p + 1.0f;
    p = r * p + 1.0f;
    v8 scale = (v8)((__builtin_convertvector(k, v8i) + 127) << 23);
    *(v8 *)x8 = SELECT8(x < lo, SPLAT8(0.0f), p * scale);
}

// Scores of NK keys (k0 + c·ks, dims [0, dn)) for NV·8 rows: s[c·RP + lane] (+)= Σ_d qt[d·RP + lane]·k_c[d].
// `first` starts the sums at 0, else they continue from s (a later chunk of dims); `scale`
// multiplies them once all dims are in (scale 1 leaves them as they are).
static inline __attribute__((always_inline)) void score_block(float *restrict s, const float *restrict qt,
                                                              int64_t RP, const float *restrict k0, int64_t ks,
                                                              int64_t dn, int first, float scale, const int NK,
                                                              const int NV) {
    v8 acc[6][2];
    for (int c = 0; c < NK; c++)
        for (int v = 0; v < NV; v++) acc[c][v] = first ? SPLAT8(0.0f) : *(const v8 *)(s + c * RP + 8 * v);
    for (int64_t d = 0; d < dn; d++) {
        v8 qv[2];
        for (int v = 0; v < NV; v++) qv[v] = *(const v8 *)(qt + d * RP + 8 * v);
        for (int c = 0; c < NK; c++) {
            const float kc = k0[c * ks + d];
            for (int v = 0; v < NV; v++) acc[c][v] += qv[v] * kc;
        }
    }
    for (int c = 0; c < NK; c++)
        for (int v = 0; v < NV; v++) *(v8 *)(s + c * RP + 8 * v) = scale == 1.0f ? acc[c][v] : acc[c][v] * scale;
}

// One NV·8-lane column of rows over the tile's n keys, in blocks of 6 keys then the rest.
static inline __attribute__((always_inline)) void score_rows(float *restrict s, const float *restrict qt, int64_t RP,
                                                             const float *restrict k0, int64_t ks, int64_t dn,
                                                             int64_t n, int first, float scale, const int NV) {
    int64_t j = 0;
    for (; j + 6 <= n; j += 6) score_block(s + j * RP, qt, RP, k0 + j * ks, ks, dn, first, scale, 6, NV);
    switch (n - j) {
    case 5: score_block(s + j * RP, qt, RP, k0 + j * ks, ks, dn, first, scale, 5, NV); break;
    case 4: score_block(s + j * RP, qt, RP, k0 + j * ks, ks, dn, first, scale, 4, NV); break;
    case 3: score_block(s + j * RP, qt, RP, k0 + j * ks, ks, dn, first, scale, 3, NV); break;
    case 2: score_block(s + j * RP, qt, RP, k0 + j * ks, ks, dn, first, scale, 2, NV); break;
    case 1: score_block(s + j * RP, qt, RP, k0 + j * ks, ks, dn, first, scale, 1, NV); break;
    default: break;
    }
}

// Value sums of NR rows over NV·8 dims: o_r = alpha_r·o_r + Σ_{j<n, ok} p[j·RP + r]·v_j, j in order.
// Keys with ok[j] = 0 (masked; their value rows may hold anything) are skipped, not multiplied by 0.
static inline __attribute__((always_inline)) void value_block(float *const *o, int64_t d0, const float *restrict p,
                                                              int64_t RP, const float *restrict alpha,
                                                              const float *restrict v0, int64_t vs, int64_t n,
                                                              const uint8_t *ok, const int NR, const int NV,
                                                              const int HOLES) {
    v8 acc[6][2];
    for (int r = 0; r < NR; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = alpha[r] * (v8)LOADU(o[r] + d0 + 8 * v);
    for (int64_t j = 0; j < n; j++) {
        if (HOLES && !ok[j]) continue;
        v8 vv[2];
        for (int v = 0; v < NV; v++) vv[v] = LOADU(v0 + j * vs + d0 + 8 * v);
        for (int r = 0; r < NR; r++) {
            const float pj = p[j * RP + r];
            for (int v = 0; v < NV; v++) acc[r][v] += pj * vv[v];
        }
    }
    for (int r = 0; r < NR; r++)
        for (int v = 0; v < NV; v++) STOREU(o[r] + d0 + 8 * v, acc[r][v]);
}

// NR rows over all D dims: blocks of 16 and 8 dims in registers, the last D mod 8 one at a time.
static inline __attribute__((always_inline)) void value_rows(float *const *o, const float *restrict p, int64_t RP,
                                                             const float *restrict alpha, const float *restrict v0,
                                                             int64_t vs, int64_t n, const uint8_t *ok, int64_t D,
                                                             const int NR) {
    int64_t d0 = 0;
    if (ok)
        for (; d0 + 16 <= D; d0 += 16) value_block(o, d0, p, RP, alpha, v0, vs, n, ok, NR, 2, 1);
    else
        for (; d0 + 16 <= D; d0 += 16) value_block(o, d0, p, RP, alpha, v0, vs, n, ok, NR, 2, 0);
    if (d0 + 8 <= D) {
        value_block(o, d0, p, RP, alpha, v0, vs, n, ok, NR, 1, ok != NULL);
        d0 += 8;
    }
    for (int r = 0; r < NR; r++)
        for (int64_t d = d0; d < D; d++) {
            float a = alpha[r] * o[r][d];
            for (int64_t j = 0; j < n; j++)
                if (!ok || ok[j]) a += p[j * RP + r] * v0[j * vs + d];
            o[r][d] = a;
        }
}

typedef struct {
    float *out;               // (B, T, Hq, D)
    const float *q;           // (B, T, Hq, D)
    const float *k, *v;       // (B, S_cap, Hkv, D), first S positions used
    const uint8_t *key_mask;  // (B, S_cap) or NULL
    int64_t T, S, S_cap, Hq, Hkv, D;
    int64_t window;           // keys per query including itself; 0 = all (causal only)
    int64_t hc;               // query heads per task (a divisor of Hq/Hkv)
    int64_t nq;               // queries per task (block)
    float scale;
    float softcap;            // > 0: scores → softcap·tanh(score / softcap); 0: none
    int64_t tasks, grain;     // tasks in all; claimed `grain` at a time
    int64_t next;             // the next unclaimed task (atomic)
    int claimed;              // 1: tasks are claimed (attn_claim), 0: split in contiguous ranges
} attn_ctx;

// Soft-capping of n keys' scores for `lanes` rows: s[j·RP + lane] = cap·tanh(s / cap) in f32 (the
// division, zt_tanh and the product, transformers' three steps), a key's rows as vectors.
static inline __attribute__((always_inline)) void cap_scores(float *restrict s, int64_t RP, int64_t n, int lanes,
                                                             float cap) {
    for (int64_t j = 0; j < n; j++)
        for (int r = 0; r < lanes; r++) s[j * RP + r] = cap * zt_tanh(s[j * RP + r] / cap);
}

// Packs dims [d0, d0 + dn) of the task's R rows as qt[d·RP + r], lanes R … RP − 1 zero.
static inline __attribute__((always_inline)) void pack_q(float *restrict qt, const float *q0, const int64_t *roff,
                                                         int64_t R, int64_t RP, int64_t d0, int64_t dn) {
    for (int64_t r = 0; r < R; r++) {
        const float *restrict qr = q0 + roff[r] + d0;
        for (int64_t d = 0; d < dn; d++) qt[d * RP + r] = qr[d];
    }
    for (int64_t d = 0; d < dn; d++)
        for (int64_t r = R; r < RP; r++) qt[d * RP + r] = 0.0f;
}

// Keys of the tile (of n from s0) that rows up to r_last (clamped to the task's R rows) need:
// rows are in query order, so the last has the most. Keys past it are −inf for those rows anyway.
static inline int64_t keys_upto(const int64_t *nk, int64_t R, int64_t r_last, int64_t s0, int64_t n) {
    const int64_t h = nk[r_last < R ? r_last : R - 1] - s0;
    return h < 0 ? 0 : h > n ? n : h;
}

// Tasks run heads fastest, then the query blocks. Large calls: blocks from the last (the most causal
// work) to the first, claimed in turn by the threads (attn_claim): the light blocks at the end even
// out the threads' finish, a thread that the machine's other work delays takes fewer tasks instead
// of holding up the call, and consecutive tasks read nearly the same keys. Small calls: contiguous
// ranges per thread, blocks in the order 0, last, 1, last − 1, … so each range gets about equal
// causal work. A row's bits do not depend on which thread or task runs it.
ZT_ISA_CLONES static void attn_range(void *p, int64_t lo_task, int64_t hi_task) {
    const attn_ctx *c = p;
    const int64_t T = c->T, S = c->S, S_cap = c->S_cap, Hq = c->Hq, Hkv = c->Hkv, D = c->D, W = c->window;
    const int64_t hc = c->hc, nqb = c->nq, subs = Hq / Hkv / hc, blocks = (T + nqb - 1) / nqb;
    const int64_t kv_stride = Hkv * D;  // elements between consecutive keys of one head
    const float scale = c->scale, softcap = c->softcap;
    float qt[DIM_CHUNK * ROWS_MAX] __attribute__((aligned(32)));
    float sc[KEY_TILE * ROWS_MAX] __attribute__((aligned(32)));  // scores, then weights, (key, row)
    float m[ROWS_MAX] __attribute__((aligned(32)));      // running max of allowed scores, per row
    float l[ROWS_MAX] __attribute__((aligned(32)));      // running Σ exp(score − m), per row
    float alpha[ROWS_MAX] __attribute__((aligned(32)));  // this tile's rescale of the row's sums
    int64_t nk[ROWS_MAX], wlo[ROWS_MAX];                  // row's keys: wlo … nk − 1
    int32_t lim_lo[ROWS_MAX] __attribute__((aligned(32))), lim_hi[ROWS_MAX] __attribute__((aligned(32)));
    int64_t roff[ROWS_MAX];
    float *orow[ROWS_MAX];
    uint8_t ok[KEY_TILE];
    for (int64_t task = lo_task; task < hi_task; task++) {
        const int64_t sub = task % subs, g = task / subs % Hkv, slot = task / subs / Hkv % blocks,
                      b = task / subs / Hkv / blocks;
        const int64_t blk = c->claimed ? blocks - 1 - slot : slot % 2 ? blocks - 1 - slot / 2 : slot / 2;
        const int64_t t0 = blk * nqb, nq = T - t0 < nqb ? T - t0 : nqb, h0 = g * (Hq / Hkv) + sub * hc;
        const int64_t R = nq * hc, RP = (R + 7) / 8 * 8;
        const float *kb = c->k + (b * S_cap * Hkv + g) * D;  // key 0 of this kv head
        const float *vb = c->v + (b * S_cap * Hkv + g) * D;
        const uint8_t *mask = c->key_mask ? c->key_mask + b * S_cap : NULL;
        // Row r = query i = r / hc, head h0 + r % hc; its output doubles as the accumulator.
        const float *q0 = c->q + ((b * T + t0) * Hq + h0) * D;
        float *out0 = c->out + ((b * T + t0) * Hq + h0) * D;
        const int64_t first_q = S - T + t0;     // key index of the block's first query
        const int64_t last_keys = first_q + nq; // causal: query t sees keys 0 … S − T + t
        for (int64_t r = 0; r < RP; r++) {
            m[r] = -INFINITY;
            l[r] = 0.0f;
            if (r < R) {
                roff[r] = (r / hc) * Hq * D + (r % hc) * D;
                orow[r] = out0 + roff[r];
                for (int64_t d = 0; d < D; d++) orow[r][d] = 0.0f;
                nk[r] = first_q + r / hc + 1;
                wlo[r] = W > 0 && nk[r] - W > 0 ? nk[r] - W : 0;
            } else {
                nk[r] = 0;  // padding lanes allow no key
                wlo[r] = 0;
            }
        }
        if (D <= DIM_CHUNK) pack_q(qt, q0, roff, R, RP, 0, D);
        // Tile origin: the first unmasked key (none: the loop is empty and the rows stay 0).
        int64_t origin = 0;
        if (mask)
            while (origin < last_keys && !mask[origin]) origin++;
        // The block's first needed key: its first query's window start, down to a tile boundary.
        const int64_t lo = W > 0 && first_q - W + 1 > origin ? first_q - W + 1 : origin;
        for (int64_t s0 = origin + (lo - origin) / KEY_TILE * KEY_TILE; s0 < last_keys; s0 += KEY_TILE) {
            const int64_t n = last_keys - s0 < KEY_TILE ? last_keys - s0 : KEY_TILE;
            int holes = 0;
            if (mask)
                for (int64_t j = 0; j < n; j++) holes |= !(ok[j] = mask[s0 + j]);
            // Scores, scaled; all dims at once, or chunk by chunk continuing the same sums.
            for (int64_t d0 = 0; d0 < D; d0 += DIM_CHUNK) {
                const int64_t dn = D - d0 < DIM_CHUNK ? D - d0 : DIM_CHUNK;
                if (D > DIM_CHUNK) pack_q(qt, q0, roff, R, RP, d0, dn);
                const float f = d0 + dn == D ? scale : 1.0f;
                int64_t r0 = 0;
                const float *k0 = kb + s0 * kv_stride + d0;
                for (; r0 + 16 <= RP; r0 += 16)
                    score_rows(sc + r0, qt + r0, RP, k0, kv_stride, dn, keys_upto(nk, R, r0 + 15, s0, n), d0 == 0, f, 2);
                if (r0 < RP) score_rows(sc + r0, qt + r0, RP, k0, kv_stride, dn, keys_upto(nk, R, r0 + 7, s0, n), d0 == 0, f, 1);
            }
            // Soft-capping of exactly the scores just computed (the row blocks' key counts above).
            if (softcap > 0.0f) {
                int64_t r0 = 0;
                for (; r0 + 16 <= RP; r0 += 16) cap_scores(sc + r0, RP, keys_upto(nk, R, r0 + 15, s0, n), 16, softcap);
                if (r0 < RP) cap_scores(sc + r0, RP, keys_upto(nk, R, r0 + 7, s0, n), 8, softcap);
            }
            // Masked keys (scores from whatever their rows hold) and keys outside a row's causal
            // range or window weigh exp(−inf) = 0.
            if (holes)
                for (int64_t j = 0; j < n; j++)
                    if (!ok[j])
                        for (int64_t r = 0; r < RP; r++) sc[j * RP + r] = -INFINITY;
            // Rows are in query order, so row 0 has the fewest keys and row R − 1 the latest window.
            // This also covers the scores not computed above (past the last key of a row block).
            if (nk[0] - s0 < n || wlo[R - 1] > s0) {
                for (int64_t r = 0; r < RP; r++) {
                    const int64_t h = nk[r] - s0, w = wlo[r] - s0;
                    lim_hi[r] = (int32_t)(h < 0 ? 0 : h > KEY_TILE ? KEY_TILE : h);
                    lim_lo[r] = (int32_t)(w < 0 ? 0 : w > KEY_TILE ? KEY_TILE : w);
                }
                for (int64_t r = 0; r < RP; r += 8) {
                    const v8i h = *(const v8i *)(lim_hi + r), w = *(const v8i *)(lim_lo + r);
                    for (int64_t j = 0; j < n; j++) {
                        const v8i jj = {(int32_t)j, (int32_t)j, (int32_t)j, (int32_t)j,
                                        (int32_t)j, (int32_t)j, (int32_t)j, (int32_t)j};
                        v8 *s = (v8 *)(sc + j * RP + r);
                        *s = SELECT8((jj < h) & (jj >= w), *s, SPLAT8(-INFINITY));
                    }
                }
            }
            // Online softmax down the key axis, 8 rows per vector: tile max, new running max, the
            // rescale α = exp(m_old − m_new) (0 while a row had no key, 1 when its max stays), the
            // weights and their sum in key order. A row with no allowed key yet keeps m = −inf and
            // measures from 0 instead, so its weights are exp(−inf) = 0, not NaN.
            // A group stops at the keys of the row block below reads (value blocks of 6 rows end
            // within 5 rows of the group); weights past it are never read.
            for (int64_t r = 0; r < RP; r += 8) {
                const int64_t ng = keys_upto(nk, R, r + 15, s0, n);
                v8 mx = SPLAT8(-INFINITY);
                for (int64_t j = 0; j < ng; j++) {
                    const v8 s = *(const v8 *)(sc + j * RP + r);
                    mx = SELECT8(s > mx, s, mx);
                }
                const v8 mo = *(const v8 *)(m + r);
                const v8 mn = SELECT8(mx > mo, mx, mo);
                const v8 mu = SELECT8(mn == SPLAT8(-INFINITY), SPLAT8(0.0f), mn);
                *(v8 *)(alpha + r) = mo - mu;
                exp8(alpha + r);
                const v8 a = *(const v8 *)(alpha + r);
                // Σ in 8 partials by key j mod 8, joined pairwise: a shorter rounding chain, and the
                // sum the kernel has always used (so the rows' bits did not change with this layout).
                v8 part[8];
                for (int u = 0; u < 8; u++) part[u] = SPLAT8(0.0f);
                int64_t j = 0;
                for (; j + 8 <= ng; j += 8)
                    for (int u = 0; u < 8; u++) {
                        v8 *s = (v8 *)(sc + (j + u) * RP + r);
                        *s = *s - mu;
                        exp8((float *)s);
                        part[u] += *s;
                    }
                for (int u = 0; j < ng; j++, u++) {
                    v8 *s = (v8 *)(sc + j * RP + r);
                    *s = *s - mu;
                    exp8((float *)s);
                    part[u] += *s;
                }
                const v8 sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
                *(v8 *)(l + r) = *(const v8 *)(l + r) * a + sum;
                *(v8 *)(m + r) = mn;
            }
            const float *v0 = vb + s0 * kv_stride;
            const uint8_t *okp = holes ? ok : NULL;
            int64_t r0 = 0;
            // A row block sums the keys its last row needs; an earlier row adds exact zeros past its own.
            for (; r0 + 6 <= R; r0 += 6)
                value_rows(orow + r0, sc + r0, RP, alpha + r0, v0, kv_stride, keys_upto(nk, R, r0 + 5, s0, n), okp, D, 6);
            const int64_t nr = keys_upto(nk, R, R - 1, s0, n);
            switch (R - r0) {
            case 5: value_rows(orow + r0, sc + r0, RP, alpha + r0, v0, kv_stride, nr, okp, D, 5); break;
            case 4: value_rows(orow + r0, sc + r0, RP, alpha + r0, v0, kv_stride, nr, okp, D, 4); break;
            case 3: value_rows(orow + r0, sc + r0, RP, alpha + r0, v0, kv_stride, nr, okp, D, 3); break;
            case 2: value_rows(orow + r0, sc + r0, RP, alpha + r0, v0, kv_stride, nr, okp, D, 2); break;
            case 1: value_rows(orow + r0, sc + r0, RP, alpha + r0, v0, kv_stride, nr, okp, D, 1); break;
            default: break;
            }
        }
        // l ≥ 1 once any key was allowed (the max contributes e⁰); l = 0 means none: the row stays 0.
        for (int64_t r = 0; r < R; r++) {
            if (l[r] > 0.0f) {
                const float inv = 1.0f / l[r];
                for (int64_t d = 0; d < D; d++) orow[r][d] *= inv;
            }
        }
    }
}

static void attn_claim(void *p, int64_t lo, int64_t hi) {
    (void)lo, (void)hi;  // the range is not used: a serial fallback's one part claims every task
    attn_ctx *c = p;
    for (int64_t t; (t = __atomic_fetch_add(&c->next, c->grain, __ATOMIC_RELAXED)) < c->tasks;)
        attn_range(c, t, t + c->grain < c->tasks ? t + c->grain : c->tasks);
}

void zt_attention(float *out, const float *q, const float *k, const float *v, const uint8_t *key_mask,
                  int64_t B, int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                  int64_t window, float softcap) {
    if (B <= 0 || T <= 0 || Hq <= 0 || Hkv <= 0 || D <= 0) return;
    // A negative, NaN or infinite cap counts as none (cap·tanh(s / cap) → s as cap → ∞).
    attn_ctx c = {out, q, k, v, key_mask, T, S, S_cap < S ? S : S_cap, Hq, Hkv, D, window < 0 ? 0 : window, 0, 0,
                  scale, softcap > 0.0f && softcap < INFINITY ? softcap : 0.0f, 0, 0, 0, 0};
    // Heads per task: the whole group (each key and value row read once for all its heads) unless
    // that leaves fewer tasks than threads can share evenly (decoding a short batch), then one.
    const int64_t group = Hq / Hkv;
    int64_t hc = group < ROWS_MAX ? group : ROWS_MAX;
    while (group % hc) hc--;
    int64_t nq = ROWS_MAX / hc < Q_BLOCK_MAX ? ROWS_MAX / hc : Q_BLOCK_MAX;
    if (nq > T) nq = T;
    if (B * ((T + nq - 1) / nq) * Hkv < 4 * (int64_t)zt_num_threads()) hc = 1;
    c.hc = hc;
    c.nq = nq;
    // Per task: up to nq·hc rows of about (S − T/2) keys, or the window and a block's spread (plus
    // a tile of rounding), × 2D multiply-adds.
    const int64_t blocks = (T + nq - 1) / nq;
    int64_t keys = S - T / 2;
    if (c.window > 0 && c.window < keys - nq - KEY_TILE) keys = c.window + nq + KEY_TILE;
    int64_t work = nq * hc * keys * 2 * D;
    int64_t grain = GRAIN_WORK / (work > 0 ? work : 1);
    grain = grain < 1 ? 1 : grain;
    c.tasks = B * blocks * Hkv * (group / hc);
    const int64_t threads = zt_num_threads();
    c.claimed = threads > 1 && c.tasks * work >= DYNAMIC_WORK;
    if (!c.claimed) {
        zt_parallel_for(c.tasks, grain, attn_range, &c);
        return;
    }
    // Claims of at least an eighth of a thread's share: few enough that claiming costs nothing.
    const int64_t share = c.tasks / (8 * threads);
    c.grain = grain > share ? grain : share;
    const int64_t units = (c.tasks + c.grain - 1) / c.grain;
    zt_parallel_for(units < threads ? units : threads, 1, attn_claim, &c);
}
