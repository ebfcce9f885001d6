// CPU kernels that write an activation rounded to bf16/f16 for the next mixed-precision GEMMs
// (Kernels/cpu/fused_half.c; the CPU table's rmsnorm_half and swiglu_half, zt_backend_api.h).
#ifndef ZT_HALF_H
#define ZT_HALF_H

#include <stdint.h>

#include "zt_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

// rmsnorm / swiglu (zt_cpu.h) with the output also (out NULL: only) written rounded to half_dtype
// (ZT_BF16 or ZT_F16) into half: the bits of the op followed by zt_convert. Return 0, 1 for another
// dtype, 2 when out of memory (3: an unknown act).
int zt_rmsnorm_half(float *out, void *half, zt_dtype half_dtype, const float *x, const float *gamma, int64_t rows,
                    int64_t dim, float eps);
int zt_swiglu_half(float *out, void *half, zt_dtype half_dtype, const float *gate, const float *up, int64_t n);
// ABI 12's producers, the same contract: layernorm; act(x) (⊙ mul when non-NULL; act a
// zt_activation_kind); attention (zt_cpu.h's arguments).
int zt_layernorm_half(float *out, void *half, zt_dtype half_dtype, const float *x, const float *gamma, const float *beta,
                      int64_t rows, int64_t dim, float eps);
int zt_activation_half(int act, float *out, void *half, zt_dtype half_dtype, const float *x, const float *mul, int64_t n);
int zt_attention_half(float *out, void *half, zt_dtype half_dtype, const float *q, const float *k, const float *v,
                      const uint8_t *key_mask, int64_t B, int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv,
                      int64_t D, float scale, int64_t window, float softcap);

#ifdef __cplusplus
}
#endif
#endif
