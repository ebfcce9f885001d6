// The perturbation stream z of ALGORITHMS.md §2, shared verbatim by the CPU kernels (C) and the
// CUDA kernels (nvcc): the same (seed, tensorId, stream, element) gives the same z on both.
//
//   Philox4x32-10 (Salmon et al., SC'11): key = (seed lo, seed hi),
//   counter = (j lo, j hi, tensorId, stream), j = element / 4; element i takes word i % 4.
//   Words (w0, w1) and (w2, w3) become two Box–Muller pairs:
//     z[4j+0] = r(w0)·cos 2πu(w1), z[4j+1] = r(w0)·sin 2πu(w1),   r(w) = sqrt(−2 ln u(w)),
//     z[4j+2] = r(w2)·cos 2πu(w3), z[4j+3] = r(w2)·sin 2πu(w3).
//
// Bit-identity across devices: every float operation below is a single IEEE operation with
// round-to-nearest (fmaf is explicit; plain * and + are kept from being contracted into FMAs on
// the host by a pragma and on the device by the __f*_rn intrinsics). No libm call is made: log,
// sin and cos are our own polynomials, accurate to a few float ulp, and sqrt is correctly rounded
// on both. Changing anything here changes the stream: bump ZT_Z_STREAM_VERSION.
#ifndef ZT_PHILOX_H
#define ZT_PHILOX_H

#include <stdint.h>

// Version of the z stream; stored in every trajectory file.
#define ZT_Z_STREAM_VERSION 1

// Stream ids: independent uses of one step seed.
#define ZT_STREAM_WEIGHTS 0u
#define ZT_STREAM_SECOND 1u
#define ZT_STREAM_ACTIVATIONS 2u  // Zoop: noise added to layer outputs (index: token row · width + channel)
#define ZT_STREAM_INIT 3u         // random initial weights (zotune pretrain, block re-initialisation)
// Low-rank directions E_k = A_k B_kᵀ/√r of a (rows × cols) matrix (LowRankProbe.swift): direction k
// takes elements [k·r·(rows+cols), (k+1)·r·(rows+cols)): A_kᵀ (r × rows) first, then B_kᵀ (r × cols).
#define ZT_STREAM_LOWRANK 4u

#if defined(__CUDACC__)
#define ZT_FN static __host__ __device__ __forceinline__
#else
#define ZT_FN static inline __attribute__((always_inline))
#endif

#if defined(__clang__) && !defined(__CUDA_ARCH__)
#define ZT_NO_CONTRACT _Pragma("clang fp contract(off)")
#else
#define ZT_NO_CONTRACT
#endif

#if defined(__CUDA_ARCH__)
#define ZT_FMUL(a, b) __fmul_rn((a), (b))
#define ZT_FADD(a, b) __fadd_rn((a), (b))
#define ZT_FMA(a, b, c) __fmaf_rn((a), (b), (c))
#define ZT_SQRT(a) __fsqrt_rn(a)
#else
#define ZT_FMUL(a, b) ((a) * (b))
#define ZT_FADD(a, b) ((a) + (b))
#define ZT_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#if defined(__clang__)
// The elementwise builtin does not touch errno, so loops over it still vectorize.
#define ZT_SQRT(a) __builtin_elementwise_sqrt(a)
#else
#define ZT_SQRT(a) __builtin_sqrtf(a)
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct { uint32_t v[4]; } zt_u32x4;

ZT_FN uint32_t zt_f32_bits(float f) { union { float f; uint32_t u; } c; c.f = f; return c.u; }
ZT_FN float zt_bits_f32(uint32_t u) { union { float f; uint32_t u; } c; c.u = u; return c.f; }

// Philox4x32-10 of one 128-bit counter under a 64-bit key.
ZT_FN zt_u32x4 zt_philox4x32_10(zt_u32x4 ctr, uint32_t k0, uint32_t k1) {
    for (int round = 0; round < 10; round++) {
        if (round > 0) {  // Weyl key schedule between rounds
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint64_t p0 = (uint64_t)0xD2511F53u * ctr.v[0];
        uint64_t p1 = (uint64_t)0xCD9E8D57u * ctr.v[2];
        zt_u32x4 next;
        next.v[0] = (uint32_t)(p1 >> 32) ^ ctr.v[1] ^ k0;
        next.v[1] = (uint32_t)p1;
        next.v[2] = (uint32_t)(p0 >> 32) ^ ctr.v[3] ^ k1;
        next.v[3] = (uint32_t)p0;
        ctr = next;
    }
    return ctr;
}

// The 4 raw words of block j of (seed, tensorId, stream).
ZT_FN zt_u32x4 zt_philox_block(uint64_t seed, uint32_t tensor_id, uint32_t stream, uint64_t j) {
    zt_u32x4 ctr;
    ctr.v[0] = (uint32_t)j;
    ctr.v[1] = (uint32_t)(j >> 32);
    ctr.v[2] = tensor_id;
    ctr.v[3] = stream;
    return zt_philox4x32_10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
}

// Integer k in [1, 2^24] of a word: the uniform is u = k·2^-24 in (0, 1], never 0.
ZT_FN uint32_t zt_u24(uint32_t w) { return (w >> 8) + 1u; }
ZT_FN float zt_uniform(uint32_t w) { return (float)zt_u24(w) * 0x1p-24f; }

// sqrt(−2 ln u) for u = k·2^-24. u = m·2^e with m in [√½, √2); ln m = 2 atanh(s), s = (m−1)/(m+1),
// |s| ≤ 0.1716, by its series to s^9 (truncation < 1e-9 relative).
ZT_FN float zt_box_muller_radius(uint32_t w) {
    ZT_NO_CONTRACT
    float u = zt_uniform(w);
    uint32_t bits = zt_f32_bits(u);
    int32_t e = (int32_t)(bits >> 23) - 127;                     // u ≥ 2^-24 is normal
    uint32_t mbits = (bits & 0x007FFFFFu) | 0x3F800000u;         // m in [1, 2)
    int big = mbits > 0x3FB504F3u;                               // m > √2 → halve
    mbits = big ? mbits - 0x00800000u : mbits;
    e = big ? e + 1 : e;
    float m = zt_bits_f32(mbits);
    float num = ZT_FADD(m, -1.0f);                               // exact (Sterbenz)
    float den = ZT_FADD(m, 1.0f);
#if defined(__CUDA_ARCH__)
    float s = __fdiv_rn(num, den);
#else
    float s = num / den;
#endif
    float s2 = ZT_FMUL(s, s);
    float p = ZT_FMA(s2, 0.22222222f, 0.28571429f);             // 2/9, 2/7
    p = ZT_FMA(s2, p, 0.4f);                                     // 2/5
    p = ZT_FMA(s2, p, 0.66666667f);                              // 2/3
    p = ZT_FMA(s2, p, 2.0f);
    float lnm = ZT_FMUL(s, p);
    float ef = (float)e;
    // ln u = e·ln2 + ln m, ln2 split so that e·ln2_hi is exact (|e| ≤ 24).
    float lnu = ZT_FMA(ef, 0.693145752f, ZT_FMA(ef, 1.42860677e-06f, lnm));
    float r2 = ZT_FMUL(-2.0f, lnu);                              // exact scaling
    return ZT_SQRT(r2 > 0.0f ? r2 : 0.0f);                       // u = 1 → ln u may be −0
}

// cos and sin of 2π·u for u = k·2^-24. The quadrant is found in integers (exact): k = q·2^22 + rem,
// |rem| ≤ 2^21, so the remainder r = rem·2^-24 is within ±1/8 turn and the polynomials (Taylor in
// turns, truncation < 2e-9) run on |2πr| ≤ π/4.
ZT_FN void zt_sincos_2pi(uint32_t w, float *c_out, float *s_out) {
    ZT_NO_CONTRACT
    int32_t k = (int32_t)zt_u24(w);
    int32_t q = (k + (1 << 21)) >> 22;                           // nearest quarter turn, 0..4
    float r = (float)(k - (q << 22)) * 0x1p-24f;                 // exact
    float r2 = ZT_FMUL(r, r);
    // sin(2πr) = r·(S1 + r²(S3 + r²(S5 + r²(S7 + r² S9)))), S_n = (−1)^((n−1)/2) (2π)^n / n!
    float sp = ZT_FMA(r2, 4.20586939e+01f, -7.67058598e+01f);
    sp = ZT_FMA(r2, sp, 8.16052493e+01f);
    sp = ZT_FMA(r2, sp, -4.13417022e+01f);
    sp = ZT_FMA(r2, sp, 6.28318531e+00f);
    float sn = ZT_FMUL(r, sp);
    // cos(2πr) = 1 + r²(C2 + r²(C4 + r²(C6 + r²(C8 + r² C10)))), C_n = (−1)^(n/2) (2π)^n / n!
    float cp = ZT_FMA(r2, -2.64262568e+01f, 6.02446414e+01f);
    cp = ZT_FMA(r2, cp, -8.54568172e+01f);
    cp = ZT_FMA(r2, cp, 6.49393940e+01f);
    cp = ZT_FMA(r2, cp, -1.97392088e+01f);
    float cs = ZT_FMA(r2, cp, 1.0f);
    // Rotate by q quarter turns: (cos, sin) → (−sin, cos) per quarter.
    int qq = q & 3;
    float c = (qq == 0) ? cs : (qq == 1) ? -sn : (qq == 2) ? -cs : sn;
    float s = (qq == 0) ? sn : (qq == 1) ? cs : (qq == 2) ? -sn : -cs;
    *c_out = c;
    *s_out = s;
}

// The four normals of block j: z[4j .. 4j+3].
ZT_FN void zt_normal_block(uint64_t seed, uint32_t tensor_id, uint32_t stream, uint64_t j, float z[4]) {
    ZT_NO_CONTRACT
    zt_u32x4 w = zt_philox_block(seed, tensor_id, stream, j);
    float c0, s0, c1, s1;
    float r0 = zt_box_muller_radius(w.v[0]);
    zt_sincos_2pi(w.v[1], &c0, &s0);
    float r1 = zt_box_muller_radius(w.v[2]);
    zt_sincos_2pi(w.v[3], &c1, &s1);
    z[0] = ZT_FMUL(r0, c0);
    z[1] = ZT_FMUL(r0, s0);
    z[2] = ZT_FMUL(r1, c1);
    z[3] = ZT_FMUL(r1, s1);
}

// z of one element (slow path: generates its whole block).
ZT_FN float zt_normal_at(uint64_t seed, uint32_t tensor_id, uint32_t stream, uint64_t i) {
    float z[4];
    zt_normal_block(seed, tensor_id, stream, i >> 2, z);
    return z[i & 3];
}

// tensorId: FNV-1a 32-bit of the tensor's checkpoint name (bytes, no terminator).
ZT_FN uint32_t zt_fnv1a32(const char *bytes, uint64_t len) {
    uint32_t h = 0x811C9DC5u;
    for (uint64_t i = 0; i < len; i++) {
        h ^= (uint8_t)bytes[i];
        h *= 0x01000193u;
    }
    return h;
}

#ifdef __cplusplus
}
#endif
#endif
