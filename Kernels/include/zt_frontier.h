// Arguments of the stream kernels of FZOO, Sparse MeZO and MeZO-SVRG (docs/optimizers.md;
// ZO-FRONTIER §2, §5, §6). The element math is Kernels/cpu/frontier_math.h, shared by the CPU
// kernels (cpu/frontier.c) and their CUDA twins (cuda/frontier.cu).
#ifndef ZT_FRONTIER_H
#define ZT_FRONTIER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// FZOO's probe k draws its Rademacher signs on stream ZT_STREAM_RADEMACHER + k of the step seed.
#define ZT_STREAM_RADEMACHER 0x465A0000u
#define ZT_SUM_MAX_TERMS 64

// Direction of the terms of stream_sum.
enum { ZT_DIR_RADEMACHER = 1, ZT_DIR_NORMAL = 2 };

// stream_sum: out = src + Σ_k coef[k]·d_k, d_k the direction of (seed[k], tensor, stream[k]):
// the sum formed in f32 in k order (fma from 0), added to src once and rounded once to out's dtype.
// Rademacher d: element i is −1 if bit (i mod 128) of Philox block ⌊i/128⌋ is set, else +1.
// probe_eps ≠ 0 (FZOO replay): before the sum, each term's probe and undo are redone on src in k
// order, x ← rnd(rnd(x + ε·d_k) − ε·d_k), the roundings training's separate passes stored.
typedef struct zt_sum_args {
    int dir;                          // ZT_DIR_*
    int count;                        // terms, 1 .. ZT_SUM_MAX_TERMS
    float probe_eps;
    uint64_t seed[ZT_SUM_MAX_TERMS];
    uint32_t stream[ZT_SUM_MAX_TERMS];
    float coef[ZT_SUM_MAX_TERMS];
} zt_sum_args;

// masked_stream ops (Sparse MeZO). m is the element's mask: |θ| ≤ threshold of the clean θ.
enum {
    ZT_MASK_SET_PERTURB = 0,  // m = |x| ≤ h from x (clean), stored in mask; x ← rnd(x + a·m·z)
    ZT_MASK_PERTURB = 1,      // x ← rnd(x + a·m·z), m from mask
    ZT_MASK_UPDATE = 2,       // m from mask: r = x + restore·z, x ← rnd(r − step·z) where m
    ZT_MASK_REPLAY = 3,       // m = |x| ≤ h from x; where m: the step's two probes (a1, a2, each
                              // rounded), then UPDATE; mask not read or written
};

typedef struct zt_masked_args {
    float threshold, a, a1, a2, restore, step;
} zt_masked_args;

#ifdef __cplusplus
}
#endif
#endif
