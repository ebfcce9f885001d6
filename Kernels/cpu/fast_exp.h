// exp(x) for f32 written so loops over it vectorize (libm's expf is a call per element; plain
// multiply-adds, not fmaf, which is a libm call on baseline x86-64 builds): range
// reduction x = k·ln2 + r, |r| ≤ ln2/2 (ln2 split so k·ln2_hi is exact), a degree-7 Taylor polynomial in r (truncation < 3e-9
// relative) and 2^k assembled in the exponent bits. Within 2 ulp of expf over the clamped range;
// exp(x) is 0 below −87.3 (−inf included) and saturates at exp(88) ≈ 1.65e38 above 88.
#ifndef ZT_FAST_EXP_H
#define ZT_FAST_EXP_H
#include <stdint.h>

static inline __attribute__((always_inline)) float zt_exp(float x) {
    float xc = x < -87.3f ? -87.3f : (x > 88.0f ? 88.0f : x);   // keeps k in [−126, 127]
    float k = __builtin_rintf(xc * 1.44269504f);
    float r = k * -0.693145752f + xc;
    r = k * -1.42860677e-06f + r;
    float p = r * 1.98412698e-04f + 1.38888889e-03f;
    p = r * p + 8.33333333e-03f;
    p = r * p + 4.16666667e-02f;
    p = r * p + 1.66666667e-01f;
    p = r * p + 0.5f;
    p = r * p + 1.0f;
    p = r * p + 1.0f;
    union { uint32_t u; float f; } scale;
    scale.u = (uint32_t)((int32_t)k + 127) << 23;
    float y = p * scale.f;
    return x < -87.3f ? 0.0f : y;
}

#endif
