// Coordinate-block selection and element math of the Jaguar optimizers (docs/optimizers.md),
// shared verbatim by the CPU kernels (Kernels/cpu/jaguar.c) and the CUDA kernels
// (Kernels/cuda/jaguar.cu): the same (seed, tensor, element) select the same entries with the same
// signs on both, and the same scalars give the same bits.
//
// Selection. A tensor is seen as a (rows, cols) matrix (a 1-D tensor as 1 × n). Each step selects
// k_rows of its rows and k_cols of its columns; the selected entries are their k_rows × k_cols
// crossings (the released ZO-Jaguar code's sub-matrix). The i-th selected row is π(i) for a
// pseudo-random permutation π of [0, rows) keyed by (seed, tensor, ZT_STREAM_SELECT_ROWS), and
// likewise for columns, so:
//   - the selection is exactly k_rows × k_cols entries, drawn without replacement, uniformly;
//   - any kernel thread finds the i-th selected index (π) or whether an index is selected
//     (π⁻¹(x) < k) on its own, with integer arithmetic only: no host RNG, no sort, no index list.
// π is a 4-round balanced Feistel network on the smallest even number of bits covering n, made a
// permutation of [0, n) by cycle walking (re-apply until the value falls inside; the domain is
// under 4n, so a few rounds on average).
#ifndef ZT_JAGUAR_H
#define ZT_JAGUAR_H

#include "zt_philox.h"

#ifdef __cplusplus
extern "C" {
#endif

// Stream ids of the selection and of the Rademacher signs (independent of the weights stream).
#define ZT_STREAM_SELECT_ROWS 0x4A520001u
#define ZT_STREAM_SELECT_COLS 0x4A520002u
#define ZT_STREAM_SELECT_SIGNS 0x4A520003u

typedef struct {
    uint32_t n;          // permuted domain [0, n)
    uint32_t half_bits;  // Feistel half width h: 2^(2h) ≥ n
    uint32_t key[4];     // round keys
} zt_perm;

// murmur3's 32-bit finalizer: the Feistel round function.
ZT_FN uint32_t zt_fmix32(uint32_t h) {
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

ZT_FN zt_perm zt_perm_make(uint32_t n, uint64_t seed, uint32_t tensor_id, uint32_t stream) {
    zt_perm p;
    p.n = n;
    uint32_t h = 1;
    while (h < 16 && ((uint64_t)1 << (2 * h)) < (uint64_t)n) h++;
    p.half_bits = h;
    zt_u32x4 k = zt_philox_block(seed, tensor_id, stream, 0);
    for (int i = 0; i < 4; i++) p.key[i] = k.v[i];
    return p;
}

ZT_FN uint32_t zt_feistel(const zt_perm *p, uint32_t x) {
    const uint32_t h = p->half_bits, mask = (h >= 16) ? 0xFFFFu : ((1u << h) - 1u);
    uint32_t l = (x >> h) & mask, r = x & mask;
    for (int i = 0; i < 4; i++) {
        const uint32_t t = l ^ (zt_fmix32(r ^ p->key[i]) & mask);
        l = r;
        r = t;
    }
    return (l << h) | r;
}

ZT_FN uint32_t zt_feistel_inverse(const zt_perm *p, uint32_t x) {
    const uint32_t h = p->half_bits, mask = (h >= 16) ? 0xFFFFu : ((1u << h) - 1u);
    uint32_t l = (x >> h) & mask, r = x & mask;
    for (int i = 3; i >= 0; i--) {
        const uint32_t t = r ^ (zt_fmix32(l ^ p->key[i]) & mask);
        r = l;
        l = t;
    }
    return (l << h) | r;
}

// π(i) for i < n: the i-th selected index.
ZT_FN uint32_t zt_perm_at(const zt_perm *p, uint32_t i) {
    uint32_t x = zt_feistel(p, i);
    while (x >= p->n) x = zt_feistel(p, x);
    return x;
}

// π⁻¹(x) for x < n: the rank at which x is drawn (selected iff rank < k).
ZT_FN uint32_t zt_perm_rank(const zt_perm *p, uint32_t x) {
    uint32_t y = zt_feistel_inverse(p, x);
    while (y >= p->n) y = zt_feistel_inverse(p, y);
    return y;
}

// ±1 for the element at global index e (Rademacher, one Philox word per element).
ZT_FN float zt_select_sign(uint64_t seed, uint32_t tensor_id, uint64_t e) {
    zt_u32x4 w = zt_philox_block(seed, tensor_id, ZT_STREAM_SELECT_SIGNS, e >> 2);
    return (w.v[e & 3] >> 31) ? -1.0f : 1.0f;
}

// Which Jaguar pass runs.
typedef enum {
    ZT_JAGUAR_SIGN = 1,    // final paper: m_sel ← β·m_sel + (1 − β)·ĝ·s; θ −= η·sign(m) on every entry (dense)
    ZT_JAGUAR_SGD = 2,     // released code: buf ← μ·buf + G (G = g on the selection, 0 elsewhere); θ −= η·buf (dense)
    ZT_JAGUAR_MEMORY = 3,  // Jaguar-Muon: m_sel ← β·m_sel + (1 − β)·ĝ·s only; θ is restored (sparse)
} zt_jaguar_kind;

// The tensor's selection and the scalars of one pass.
typedef struct zt_jaguar_args {
    int64_t rows, cols;      // the tensor as a (rows, cols) matrix (1-D: 1 × n); each < 2^31
    int64_t k_rows, k_cols;  // selected rows and columns, 1 ≤ k ≤ dim
    int32_t signs;           // 1: Rademacher signs s on the selection (paper variants); 0: s = +1 (released code)
    float a1, a2;            // replay: the step's probe moves along s, redone first (0 in training)
    float restore;           // undo of the last probe along s
    float g;                 // SIGN, MEMORY: ĝ = (ℓ₊ − ℓ₋)/2τ; SGD: G, the gradient value of every selected entry
    float beta;              // SIGN, MEMORY: memory EMA factor β
    float momentum;          // SGD: μ
    float lr;                // SIGN, SGD: η
} zt_jaguar_args;

// Memory of a selected entry: β·m + (1 − β)·(ĝ·s).
ZT_FN float zt_jaguar_memory(const zt_jaguar_args *p, float m, float s) {
    ZT_NO_CONTRACT
    return ZT_FADD(ZT_FMUL(p->beta, m), ZT_FMUL(ZT_FADD(1.0f, -p->beta), ZT_FMUL(p->g, s)));
}

// θ after the SIGN or SGD pass from r (θ restored where selected, else θ as stored); advances *m.
ZT_FN float zt_jaguar_dense_elem(int kind, const zt_jaguar_args *p, int selected, float r, float s, float *m) {
    ZT_NO_CONTRACT
    if (kind == ZT_JAGUAR_SIGN) {
        const float mem = selected ? zt_jaguar_memory(p, *m, s) : *m;
        *m = mem;
        const float sg = mem > 0.0f ? 1.0f : (mem < 0.0f ? -1.0f : 0.0f);
        return ZT_FMA(-p->lr, sg, r);
    }
    // SGD, torch order: buf = buf·μ + grad
    const float buf = ZT_FADD(ZT_FMUL(*m, p->momentum), selected ? p->g : 0.0f);
    *m = buf;
    return ZT_FMA(-p->lr, buf, r);
}

#ifdef __cplusplus
}
#endif
#endif
