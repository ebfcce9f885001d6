// The exact (erf) GELU, x·Φ(x) = ½x(1 + erf(x/√2)), for f32 written so loops over it vectorize:
// libm's erff is one call per element, and GPT-NeoX/Pythia run it on every MLP activation (it took
// ~15× the time of the tanh form). erfc(a), a = |x|/√2 ≥ 0, by Abramowitz & Stegun 7.1.26:
//   erfc a ≈ t·(a₁ + t·(a₂ + t·(a₃ + t·(a₄ + t·a₅))))·e^{−a²},  t = 1/(1 + p·a),
// within 1.4e-7 absolute in exact arithmetic (measured over [0, 10] in double; A&S state 1.5e-7);
// e^{−a²} by zt_exp (fast_exp.h). Then ½x(2 − q) for x ≥ 0 and ½x·q for x < 0, q ≈ erfc a: the
// negative side never forms 1 + erf, whose cancellation cost libm's form all accuracy below x ≈ −3.
// Error, u = 2⁻²⁴ (with or without FMA contraction): the fit's 1.4e-7 (2.35u); a's rounding moves q
// by ≤ |q′(a)|·a·u ≤ 0.49u, a²'s by ≤ a²e^{−a²}u ≤ 0.37u; t, the Horner steps and zt_exp's 2 ulp
// ≤ 10u of q ≤ 1; the last subtraction and product ≤ 2u of the result: |Δ| ≤ u·(6.7|x| + 2|gelu x|).
// ±0 keep their sign, +inf → +inf, −inf and NaN → NaN (as ½x(1 + erf(x/√2)) gives them).
#ifndef ZT_FAST_ERF_H
#define ZT_FAST_ERF_H
#include "fast_exp.h"

static inline __attribute__((always_inline)) float zt_gelu_erf1(float x) {
    const float a = __builtin_fabsf(x) * 0.70710678118654752f;   // |x|/√2
    const float t = 1.0f / (1.0f + 0.3275911f * a);
    float p = t * 1.061405429f + -1.453152027f;
    p = t * p + 1.421413741f;
    p = t * p + -0.284496736f;
    p = t * p + 0.254829592f;
    const float q = t * p * zt_exp(-(a * a));                    // erfc a
    return 0.5f * x * (x < 0.0f ? q : 2.0f - q);
}

#endif
