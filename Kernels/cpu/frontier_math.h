// Element math of FZOO, Sparse MeZO and MeZO-SVRG's stream kernels (zt_frontier.h), one group of
// elements at a time: 32 elements (one Philox word of Rademacher bits) or 4 (one block of normals).
// Shared verbatim by the CPU kernels (frontier.c), the CUDA kernels (../cuda/frontier.cu, one thread
// per group) and the device harness's emulation, so the same arguments give the same bits on both.
// Every float operation is one IEEE operation (ZT_FMA/FADD/FMUL, never contracted).
#ifndef ZT_FRONTIER_MATH_H
#define ZT_FRONTIER_MATH_H

#include "convert_inline.h"
#include "zt_frontier.h"
#include "zt_philox.h"

ZT_FN float zt_fr_round(zt_dtype dt, float v) {
    if (dt == ZT_F32) return v;
    if (dt == ZT_BF16) return zt_bf16_f32(zt_f32_bf16(v));
    return zt_f16_f32(zt_f32_f16(v));
}

ZT_FN float zt_fr_load(const void *p, zt_dtype dt, int64_t i) {
    if (dt == ZT_F32) return ((const float *)p)[i];
    if (dt == ZT_BF16) return zt_bf16_f32(((const uint16_t *)p)[i]);
    return zt_f16_f32(((const uint16_t *)p)[i]);
}

ZT_FN void zt_fr_store(void *p, zt_dtype dt, int64_t i, float v) {
    if (dt == ZT_F32) ((float *)p)[i] = v;
    else if (dt == ZT_BF16) ((uint16_t *)p)[i] = zt_f32_bf16(v);
    else ((uint16_t *)p)[i] = zt_f32_f16(v);
}

// Rademacher sign of global element i: −1 where bit i mod 32 of word ⌊i/32⌋ mod 4 of Philox block
// ⌊i/128⌋ is set (one block gives 128 signs).
ZT_FN float zt_rademacher_at(uint64_t seed, uint32_t tensor_id, uint32_t stream, uint64_t i) {
    zt_u32x4 w = zt_philox_block(seed, tensor_id, stream, i >> 7);
    return ((w.v[(i >> 5) & 3] >> (i & 31)) & 1u) ? -1.0f : 1.0f;
}

// Elements per group: a Rademacher word or a block of normals.
ZT_FN int zt_sum_group_len(int dir) { return dir == ZT_DIR_RADEMACHER ? 32 : 4; }

// Groups covering global elements [first, first + n).
ZT_FN uint64_t zt_fr_groups(uint64_t first, int64_t n, int len) {
    return n <= 0 ? 0 : (first + (uint64_t)n - 1) / (uint64_t)len - first / (uint64_t)len + 1;
}

// Directions of term k for the group starting at global element g0 (len elements).
ZT_FN void zt_sum_dirs(const zt_sum_args *a, int k, uint32_t tid, uint64_t g0, float *d) {
    if (a->dir == ZT_DIR_RADEMACHER) {
        zt_u32x4 w = zt_philox_block(a->seed[k], tid, a->stream[k], g0 >> 7);
        const uint32_t word = w.v[(g0 >> 5) & 3];
        for (int e = 0; e < 32; e++) d[e] = ((word >> e) & 1u) ? -1.0f : 1.0f;
    } else {
        zt_normal_block(a->seed[k], tid, a->stream[k], g0 >> 2, d);
    }
}

// stream_sum on group G (global elements [G·len, G·len + len) ∩ [first, first + n)).
ZT_FN void zt_sum_group(const zt_sum_args *a, void *out, zt_dtype odt, const void *src, zt_dtype sdt, int64_t n,
                        uint64_t first, uint32_t tid, uint64_t G) {
    ZT_NO_CONTRACT
    const int len = zt_sum_group_len(a->dir);
    const uint64_t g0 = G * (uint64_t)len;
    const int64_t lo = (int64_t)(g0 > first ? g0 - first : 0);
    const int64_t hi = (int64_t)(g0 + (uint64_t)len - first) < n ? (int64_t)(g0 + (uint64_t)len - first) : n;
    const int e0 = (int)((int64_t)(first + (uint64_t)lo) - (int64_t)g0);
    float x[32], acc[32], d[32];
    for (int64_t i = lo; i < hi; i++) {
        x[e0 + (i - lo)] = zt_fr_load(src, sdt, i);
        acc[e0 + (i - lo)] = 0.0f;
    }
    const int e1 = e0 + (int)(hi - lo);
    for (int k = 0; k < a->count; k++) {
        zt_sum_dirs(a, k, tid, g0, d);
        if (a->probe_eps != 0.0f) {  // replay: probe k and its undo, each stored in src's dtype
            for (int e = e0; e < e1; e++) {
                const float p = zt_fr_round(sdt, ZT_FADD(x[e], ZT_FMUL(a->probe_eps, d[e])));
                x[e] = zt_fr_round(sdt, ZT_FADD(p, ZT_FMUL(-a->probe_eps, d[e])));
            }
        }
        for (int e = e0; e < e1; e++) acc[e] = ZT_FMA(a->coef[k], d[e], acc[e]);
    }
    for (int64_t i = lo; i < hi; i++) {
        const int e = e0 + (int)(i - lo);
        zt_fr_store(out, odt, i, ZT_FADD(x[e], acc[e]));
    }
}

// masked_stream on Philox block j (global elements [4j, 4j + 4) ∩ [first, first + n)).
ZT_FN void zt_masked_group(int op, const zt_masked_args *a, void *x, zt_dtype dt, uint8_t *mask, int64_t n,
                           uint64_t first, uint64_t seed, uint32_t tid, uint32_t stream, uint64_t j) {
    ZT_NO_CONTRACT
    float z[4];
    zt_normal_block(seed, tid, stream, j, z);
    const uint64_t g0 = 4 * j;
    for (int e = 0; e < 4; e++) {
        const uint64_t g = g0 + (uint64_t)e;
        if (g < first || g >= first + (uint64_t)n) continue;
        const int64_t i = (int64_t)(g - first);
        const float v = zt_fr_load(x, dt, i);
        int m;
        if (op == ZT_MASK_SET_PERTURB || op == ZT_MASK_REPLAY) {
            m = (v < 0.0f ? -v : v) <= a->threshold;  // |θ|: the signed rule would select every negative weight
            if (op == ZT_MASK_SET_PERTURB) mask[i] = (uint8_t)m;
        } else {
            m = mask[i] != 0;
        }
        if (!m) continue;
        float r;
        if (op == ZT_MASK_SET_PERTURB || op == ZT_MASK_PERTURB) {
            r = ZT_FMA(a->a, z[e], v);
        } else {
            float x2 = v;
            if (op == ZT_MASK_REPLAY) {
                x2 = zt_fr_round(dt, ZT_FMA(a->a1, z[e], x2));
                x2 = zt_fr_round(dt, ZT_FMA(a->a2, z[e], x2));
            }
            const float restored = ZT_FMA(a->restore, z[e], x2);
            r = ZT_FMA(-a->step, z[e], restored);
        }
        zt_fr_store(x, dt, i, r);
    }
}

#endif
