// The *_half producers on the CPU (zt_backend_api.h): the op, then its output rounded to
// bf16/f16 by zt_convert, a panel at a time so the f32 panel is still in cache when it is rounded.
// The CPU is the reference of the round-after pair, so these are that pair by construction; the
// device fuses the rounding into the producing kernel and is held to these bits.
#include <stdlib.h>

#include "zt_backend_api.h"
#include "zt_cpu.h"
#include "zt_half.h"

enum { PANEL_ELEMS = 1 << 16 };  // 256 KiB of f32: an L2-sized panel

static int half_ok(zt_dtype dt) { return dt == ZT_BF16 || dt == ZT_F16; }

// A norm's rows a panel at a time: the norm into out's rows (or a scratch panel when out is NULL),
// then those rows rounded. rmsnorm_half and layernorm_half differ only in the norm.
typedef struct { const float *gamma, *beta; int64_t dim; float eps; int layer; } norm_args;

static void norm_rows(float *o, const float *x, int64_t rows, const norm_args *a) {
    if (a->layer) zt_layernorm(o, x, a->gamma, a->beta, rows, a->dim, a->eps);
    else zt_rmsnorm(o, x, a->gamma, rows, a->dim, a->eps);
}

static int norm_half(float *out, void *half, zt_dtype half_dtype, const float *x, int64_t rows, const norm_args *a) {
    if (!half_ok(half_dtype)) return 1;
    const int64_t dim = a->dim;
    if (rows <= 0 || dim <= 0) return 0;
    const int64_t panel = dim >= PANEL_ELEMS ? 1 : PANEL_ELEMS / dim;
    float *scratch = out ? NULL : malloc((size_t)(panel < rows ? panel : rows) * (size_t)dim * sizeof(float));
    if (!out && !scratch) return 2;
    for (int64_t r = 0; r < rows; r += panel) {
        const int64_t k = rows - r < panel ? rows - r : panel;
        float *o = out ? out + r * dim : scratch;
        norm_rows(o, x + r * dim, k, a);
        zt_convert((uint16_t *)half + r * dim, half_dtype, o, ZT_F32, k * dim);
    }
    free(scratch);
    return 0;
}

int zt_rmsnorm_half(float *out, void *half, zt_dtype half_dtype, const float *x, const float *gamma, int64_t rows,
                    int64_t dim, float eps) {
    return norm_half(out, half, half_dtype, x, rows, &(norm_args){gamma, NULL, dim, eps, 0});
}

int zt_swiglu_half(float *out, void *half, zt_dtype half_dtype, const float *gate, const float *up, int64_t n) {
    if (!half_ok(half_dtype)) return 1;
    if (n <= 0) return 0;
    float *scratch = out ? NULL : malloc((size_t)(n < PANEL_ELEMS ? n : PANEL_ELEMS) * sizeof(float));
    if (!out && !scratch) return 2;
    for (int64_t i = 0; i < n; i += PANEL_ELEMS) {
        const int64_t k = n - i < PANEL_ELEMS ? n - i : PANEL_ELEMS;
        float *o = out ? out + i : scratch;
        zt_swiglu(o, gate + i, up + i, k);
        zt_convert((uint16_t *)half + i, half_dtype, o, ZT_F32, k);
    }
    free(scratch);
    return 0;
}

int zt_layernorm_half(float *out, void *half, zt_dtype half_dtype, const float *x, const float *gamma, const float *beta,
                      int64_t rows, int64_t dim, float eps) {
    return norm_half(out, half, half_dtype, x, rows, &(norm_args){gamma, beta, dim, eps, 1});
}

// act(x) into a panel of its own (out may alias mul, which the product still reads), then ⊙ mul:
// the kernels and order of activation then mul.
int zt_activation_half(int act, float *out, void *half, zt_dtype half_dtype, const float *x, const float *mul, int64_t n) {
    void (*op)(float *, const float *, int64_t) = act == ZT_ACT_RELU        ? zt_relu
                                                  : act == ZT_ACT_SILU      ? zt_silu
                                                  : act == ZT_ACT_GELU_TANH ? zt_gelu_tanh
                                                  : act == ZT_ACT_GELU_ERF  ? zt_gelu_erf
                                                                            : NULL;
    if (!half_ok(half_dtype)) return 1;
    if (!op) return 3;
    if (n <= 0) return 0;
    float *scratch = (out && !mul) ? NULL : malloc((size_t)(n < PANEL_ELEMS ? n : PANEL_ELEMS) * sizeof(float));
    if ((!out || mul) && !scratch) return 2;
    for (int64_t i = 0; i < n; i += PANEL_ELEMS) {
        const int64_t k = n - i < PANEL_ELEMS ? n - i : PANEL_ELEMS;
        float *o = out ? out + i : scratch;
        if (mul) {
            op(scratch, x + i, k);
            zt_mul(o, scratch, mul + i, k);
        } else {
            op(o, x + i, k);
        }
        zt_convert((uint16_t *)half + i, half_dtype, o, ZT_F32, k);
    }
    free(scratch);
    return 0;
}

// attention's rows depend on whole key ranges, so no panels: the whole output, then one convert.
int zt_attention_half(float *out, void *half, zt_dtype half_dtype, const float *q, const float *k, const float *v,
                      const uint8_t *key_mask, int64_t B, int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv,
                      int64_t D, float scale, int64_t window, float softcap) {
    if (!half_ok(half_dtype)) return 1;
    if (B <= 0 || T <= 0 || Hq <= 0 || D <= 0) return 0;
    const int64_t n = B * T * Hq * D;
    float *o = out ? out : malloc((size_t)n * sizeof(float));
    if (!o) return 2;
    zt_attention(o, q, k, v, key_mask, B, T, S, S_cap, Hq, Hkv, D, scale, window, softcap);
    zt_convert(half, half_dtype, o, ZT_F32, n);
    if (!out) free(o);
    return 0;
}
