// tanh(x) for f32 written branch-free so loops over it vectorize (libm's tanhf is a call per
// element; Gemma 2's soft-capping runs it on every attention score and final logit):
// u = 2⁻²⁴; both bounds hold with or without FMA contraction (it only removes roundings):
//   |x| < 0.9: tanh a = a + c, c = a·z·P(z), z = a², P a degree-6 fit of (tanh a − a)/a³ on
//              [0, 0.81] (0.094u relative with the f32 coefficients in exact arithmetic). c carries
//              z's, a·z's and Horner's roundings (≤ 7u of c), and |c| ≤ 0.256·tanh a below 0.9:
//              ≤ 1.8u of the result, plus the last addition's u: ≤ 2.9u relative.
//   |x| ≥ 0.9: tanh a = 1 − t, t = 2/(e + 1), e = e^{2a} by zt_exp's steps (fast_exp.h; ≤ 2 ulp of
//              expf, so ≤ 5u) with 2a ≤ 20 (tanh rounds to 1 in f32 from a = 9.01 on). t carries
//              e's error, the addition's and the division's: ≤ 7u of t ≤ 0.284, which is ≤ 2.8u of
//              the result (≥ 0.716), plus the subtraction's u: ≤ 3.8u relative.
// Measured over every f32 with |x| < 10 against tanh in double: ≤ 1.08 ulp without FMA, ≤ 1.03
// with (glibc's tanhf: 2.19). tanh(±0) = ±0, subnormals pass through, ±inf → ±1, NaN → NaN.
// ZT_TANH_LIBM (bench/softcap_kernel.sh's baseline build) makes zt_tanh libm's tanhf (zt_gelu_tanh1's too).
#ifndef ZT_FAST_TANH_H
#define ZT_FAST_TANH_H
#include <stdint.h>

#ifdef ZT_TANH_LIBM
#include <math.h>
#define zt_tanh tanhf
#else
static inline __attribute__((always_inline)) float zt_tanh(float x) {
    const float a = __builtin_fabsf(x), z = a * a;
    float p = z * -4.554551851e-04f + 2.582654124e-03f;
    p = z * p + -8.264528587e-03f;
    p = z * p + 2.166353352e-02f;
    p = z * p + -5.392929912e-02f;
    p = z * p + 1.333297789e-01f;
    p = z * p + -3.333332241e-01f;
    const float small = a + a * z * p;
    // e^{2a}: 2a clamped to 20 (NaN too: that lane takes `small`, which is NaN); k = rint(2a/ln2)
    // as (u + 1.5·2²³) − 1.5·2²³, exact here (u ≤ 29) and vectorizable without SSE4.1's roundps.
    const float t = a < 10.0f ? a + a : 20.0f;
    const float k = (t * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = k * -0.693145752f + t;
    r = k * -1.42860677e-06f + r;
    float q = r * 1.98412698e-04f + 1.38888889e-03f;
    q = r * q + 8.33333333e-03f;
    q = r * q + 4.16666667e-02f;
    q = r * q + 1.66666667e-01f;
    q = r * q + 0.5f;
    q = r * q + 1.0f;
    q = r * q + 1.0f;
    union { uint32_t u; float f; } scale;
    scale.u = (uint32_t)((int32_t)k + 127) << 23;
    const float large = 1.0f - 2.0f / (q * scale.f + 1.0f);
    return __builtin_copysignf(a >= 0.9f ? large : small, x);
}
#endif

// GELU in its tanh form (GPT-2's gelu_new, Gemma's GeGLU gate): 0.5·x·(1 + tanh(u)),
// u = √(2/π)(x + 0.044715x³), through zt_tanh so that loops over it vectorize (libm's tanhf is a call
// per element). Against the exact function of the f32 input (u = 2⁻²⁴, first order):
//   û = u(1 + η), |η| ≤ 6u: x², x³, the two constants' f32 forms (½u each), the two products, the
//   sum (its terms share x's sign, so it adds one u) and the product by √(2/π);
//   tanh û − tanh u ≈ (1 − tanh²u)·u·η, and max (1 − tanh²u)|u| = 0.448: ≤ 2.7u absolute;
//   zt_tanh's own ≤ 3.8u·|tanh| ≤ 3.8u absolute; so 1 + tanh is off by ≤ 6.5u absolute;
//   then 1 + t rounds (u), 0.5·x is exact (but below 2⁻¹²⁶), the product rounds (u):
//   |Δ| ≤ 3.25u·|x| + 2u·|gelu x|.
// For x ≥ 0, 1 + tanh u ≥ 1 and that is ≤ 8.5u relative. For x < 0, 1 + tanh u = 2/(1 + e^{2|u|})
// cancels: the absolute bound stands and the relative error grows as e^{2|u|} (≤ 23u at x = −1,
// ~2700u = 1.6e-4 at x = −3; from x ≈ −5.16 tanh rounds to −1 and the result is −0 where the true
// value is below 1.5e-8·|x|) — as in libm's tanhf and torch's f32 gelu_new, which compute the same
// expression. Such outputs are below 0.004 in magnitude and multiply the up projection (GeGLU) or
// feed c_proj (GPT-2): their absolute error, ≤ 3.25u·|x|, is what reaches the logits, whose parity
// tests hold 1e-4. Tests/KernelTests/FastTanhTests.swift checks the bound over a dense sweep.
static inline __attribute__((always_inline)) float zt_gelu_tanh1(float x) {
    const float k = 0.7978845608028654f;  // √(2/π)
    return 0.5f * x * (1.0f + zt_tanh(k * (x + 0.044715f * x * x * x)));
}

#endif
