// Branch-free scalar conversions between f32 and the 16-bit storage types, written so that loops
// over them vectorize. Shared by the CPU kernels and the CUDA kernels (Kernels/cuda/numerics.cuh
// includes this file; ZT_FN makes them host+device under nvcc), so both round alike; zt_cpu.h
// exports out-of-line copies.
#ifndef ZT_CONVERT_INLINE_H
#define ZT_CONVERT_INLINE_H
#include "zt_dtype.h"
#include "zt_philox.h"

#define ZT_INLINE static inline __attribute__((always_inline))

ZT_FN float zt_bf16_f32(uint16_t h) { return zt_bits_f32((uint32_t)h << 16); }

// Round to nearest even; NaN keeps its sign and becomes a quiet NaN.
ZT_FN uint16_t zt_f32_bf16(float f) {
    uint32_t x = zt_f32_bits(f);
    uint32_t rounded = (x + 0x7FFFu + ((x >> 16) & 1u)) >> 16;
    uint32_t nan = (x >> 16) | 0x40u;
    return (uint16_t)((x & 0x7FFFFFFFu) > 0x7F800000u ? nan : rounded);
}

ZT_FN float zt_f16_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t em = h & 0x7FFFu;
    // Normals and subnormals alike: place exponent+mantissa in a float and rescale by 2^(127−15).
    uint32_t bits = zt_f32_bits(ZT_FMUL(zt_bits_f32(em << 13), 0x1p112f));
    bits = em >= 0x7C00u ? (0x7F800000u | (em << 13)) : bits;   // inf, NaN
    return zt_bits_f32(bits | sign);
}

ZT_FN uint16_t zt_f32_f16(float f) {
    uint32_t x = zt_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t u = x & 0x7FFFFFFFu;
    // Normal range: rebias the exponent, round the 13 dropped bits to nearest even.
    uint32_t normal = (u - ((127u - 15u) << 23) + 0xFFFu + ((u >> 13) & 1u)) >> 13;
    // |f| < 2^-14: adding 0.5 lines the half's subnormal bits up with the bottom of the float
    // mantissa, and the FPU rounds them to nearest even.
    uint32_t sub = zt_f32_bits(ZT_FADD(zt_bits_f32(u), 0.5f)) - 0x3F000000u;
    uint32_t r = u < 0x38800000u ? sub : normal;
    r = u >= 0x477FF000u ? 0x7C00u : r;                          // ≥ 65520 rounds to inf
    r = u > 0x7F800000u ? 0x7E00u : r;                           // NaN
    return (uint16_t)(sign | r);
}

// Load/store element i of a buffer of storage dtype `dt` as f32 (dt is a constant after inlining).
ZT_INLINE float zt_load(const void *p, zt_dtype dt, int64_t i) {
    if (dt == ZT_F32) return ((const float *)p)[i];
    if (dt == ZT_BF16) return zt_bf16_f32(((const uint16_t *)p)[i]);
    return zt_f16_f32(((const uint16_t *)p)[i]);
}

ZT_INLINE void zt_store(void *p, zt_dtype dt, int64_t i, float v) {
    if (dt == ZT_F32) ((float *)p)[i] = v;
    else if (dt == ZT_BF16) ((uint16_t *)p)[i] = zt_f32_bf16(v);
    else ((uint16_t *)p)[i] = zt_f32_f16(v);
}

#endif
