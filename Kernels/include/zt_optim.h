// Element math of the fused ZO optimizer updates (docs/optimizers.md), shared verbatim by the CPU
// kernels (Kernels/cpu/perturb.c) and the CUDA kernels (Kernels/cuda/numerics.cuh), like the
// Philox header: one definition, so the same (state, z, scalars) give the same bits on both.
//
// Every update is one pass over θ that regenerates z: it first redoes the step's probe
// perturbations when replaying (a1, a2: each rounded to the storage dtype by the caller, exactly
// as the separate in-place passes of training stored them; both 0 in training), undoes the last
// probe (restore), then advances the optimizer state (always f32) and writes θ. Weight decay is
// decoupled, as in MeZO's update: θ −= decay·θ_restored with decay = η·λ (0 for 1-D tensors).
//
// Operation order follows torch.optim where a torch optimizer is the reference: SGD momentum
// buf = buf·μ + ĝ (bit-identical to torch); Adam m = lerp(m, ĝ, 1 − β₁),
// v = v·β₂ + ((1 − β₂)·ĝ)·ĝ, θ += (−η/(1 − β₁ᵗ))·m / (√v / √(1 − β₂ᵗ) + ε). Adam stays within
// about 1 ulp per step of torch's CPU Adam, not bit-identical: 1 − β is formed here from the f32
// β, η is f32, and torch's vectorised addcmul fuses the v update (OptimizerReferenceTests).
#ifndef ZT_OPTIM_H
#define ZT_OPTIM_H

#include "zt_philox.h"

#if defined(__CUDA_ARCH__)
#define ZT_FDIV(a, b) __fdiv_rn((a), (b))
#else
#define ZT_FDIV(a, b) ((a) / (b))
#endif

#ifdef __cplusplus
extern "C" {
#endif

// Which optimizer a fused update runs.
typedef enum {
    ZT_ZO_MOMENTUM = 1,  // ZO-SGD-MMT: s1 = m
    ZT_ZO_ADAM = 2,      // ZO-Adam: s1 = m, s2 = v
    ZT_ZO_HIZOO = 3,     // HiZOO: s1 = H (diagonal Hessian estimate; probes move along z/√H)
    ZT_ZO_DIRECTION = 4, // ZO-Muon: s1 = SGD buffer, s2 = the update direction D (read only, e.g. NS(g·Z)):
                         // buf = buf·μ + D, θ −= η·buf (the probes still move along z)
} zt_zo_kind;

// The scalars of one fused update (one direction of one step).
typedef struct zt_zo_update_args {
    float a1, a2;        // replay: probe perturbations redone first (0 in training)
    float restore;       // coefficient of the last probe's undo (ε for the two-sided estimate)
    float g;             // projected gradient (ℓ₊ − ℓ₋)/2ε
    float lr;            // η_t; Adam: η_t / (1 − β₁ᵗ)
    float decay;         // η_t·λ (decoupled weight decay; 0 for biases and norm gains)
    float beta1;         // MMT, DIRECTION: μ; Adam: β₁
    float beta2;         // Adam: β₂
    float adam_eps;      // Adam: ε added to the bias-corrected √v
    float bc2_sqrt;      // Adam: √(1 − β₂ᵗ)
    float curvature;     // HiZOO: α·|ℓ₊ + ℓ₋ − 2ℓ₀| / (2ε²)
    float keep;          // HiZOO: 1 − α
} zt_zo_update_args;

// The direction the probes of `kind` move θ along: z, or z/√H for HiZOO (H before this step).
ZT_FN float zt_zo_direction(int kind, float z, float s1) {
    ZT_NO_CONTRACT
    return kind == ZT_ZO_HIZOO ? ZT_FDIV(z, ZT_SQRT(s1)) : z;
}

// θ after the update, from x2 (θ as the probes left it, already rounded to storage), z, the
// probe direction d = zt_zo_direction(kind, z, *s1) and the state, which is updated in place.
ZT_FN float zt_zo_update_elem(int kind, const zt_zo_update_args *p, float x2, float z, float d, float *s1, float *s2) {
    ZT_NO_CONTRACT
    const float r = ZT_FMA(p->restore, d, x2);  // θ restored
    float moved;
    if (kind == ZT_ZO_MOMENTUM) {
        const float m = ZT_FADD(ZT_FMUL(*s1, p->beta1), ZT_FMUL(p->g, z));
        *s1 = m;
        moved = ZT_FMA(-p->lr, m, r);
    } else if (kind == ZT_ZO_ADAM) {
        const float gz = ZT_FMUL(p->g, z);
        const float m = ZT_FMA(ZT_FADD(1.0f, -p->beta1), ZT_FADD(gz, -*s1), *s1);
        const float v = ZT_FADD(ZT_FMUL(*s2, p->beta2), ZT_FMUL(ZT_FMUL(ZT_FADD(1.0f, -p->beta2), gz), gz));
        *s1 = m;
        *s2 = v;
        const float denom = ZT_FADD(ZT_FDIV(ZT_SQRT(v), p->bc2_sqrt), p->adam_eps);
        moved = ZT_FADD(r, ZT_FDIV(ZT_FMUL(-p->lr, m), denom));
    } else if (kind == ZT_ZO_DIRECTION) {
        const float m = ZT_FADD(ZT_FMUL(*s1, p->beta1), *s2);
        *s1 = m;
        moved = ZT_FMA(-p->lr, m, r);
    } else {  // ZT_ZO_HIZOO: H ← (1 − α)H + α·|Δℓ|/(2ε²)·H z², then θ −= η g z/√H_new
        const float h = *s1;
        const float h_new = ZT_FMA(p->keep, h, ZT_FMUL(ZT_FMUL(ZT_FMUL(p->curvature, h), z), z));
        *s1 = h_new;
        moved = ZT_FMA(-ZT_FMUL(p->lr, p->g), ZT_FDIV(z, ZT_SQRT(h_new)), r);
    }
    return ZT_FMA(-p->decay, r, moved);
}

// DiZO's projection (zt_lerp): a + α(b − a), formed in f32 (θ⁰ = a, the search's start θ = b),
// so a probe is computed into the weights from two unchanged shadows and never drifts.
ZT_FN float zt_lerp_elem(float a, float b, float alpha) {
    ZT_NO_CONTRACT
    return ZT_FMA(alpha, ZT_FADD(b, -a), a);
}

// Adam on a given f32 direction d (Zoop-Adam, zt_adam_direction): the ZO-Adam element math with
// ĝ = d; lr is η_t/(1 − β₁ᵗ), decay η_t·λ on θ before the step; m, v updated in place.
ZT_FN float zt_adam_direction_elem(const zt_zo_update_args *p, float x, float d, float *m, float *v) {
    ZT_NO_CONTRACT
    const float m1 = ZT_FMA(ZT_FADD(1.0f, -p->beta1), ZT_FADD(d, -*m), *m);
    const float v1 = ZT_FADD(ZT_FMUL(*v, p->beta2), ZT_FMUL(ZT_FMUL(ZT_FADD(1.0f, -p->beta2), d), d));
    *m = m1;
    *v = v1;
    const float denom = ZT_FADD(ZT_FDIV(ZT_SQRT(v1), p->bc2_sqrt), p->adam_eps);
    const float moved = ZT_FADD(x, ZT_FDIV(ZT_FMUL(-p->lr, m1), denom));
    return ZT_FMA(-p->decay, x, moved);
}

#ifdef __cplusplus
}
#endif
#endif
