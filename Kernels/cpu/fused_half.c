// rmsnorm_half and swiglu_half on the CPU (zt_backend_api.h): the op, then its output rounded to
// bf16/f16 by zt_convert, a panel at a time so the f32 panel is still in cache when it is rounded.
// The CPU is the reference of the round-after pair, so these are that pair by construction; the
// device fuses the rounding into the producing kernel and is held to these bits.
#include <stdlib.h>

#include "zt_cpu.h"
#include "zt_half.h"

enum { PANEL_ELEMS = 1 << 16 };  // 256 KiB of f32: an L2-sized panel

static int half_ok(zt_dtype dt) { return dt == ZT_BF16 || dt == ZT_F16; }

int zt_rmsnorm_half(float *out, void *half, zt_dtype half_dtype, const float *x, const float *gamma, int64_t rows,
                    int64_t dim, float eps) {
    if (!half_ok(half_dtype)) return 1;
    if (rows <= 0 || dim <= 0) return 0;
    const int64_t panel = dim >= PANEL_ELEMS ? 1 : PANEL_ELEMS / dim;
    float *scratch = out ? NULL : malloc((size_t)(panel < rows ? panel : rows) * (size_t)dim * sizeof(float));
    if (!out && !scratch) return 2;
    for (int64_t r = 0; r < rows; r += panel) {
        const int64_t k = rows - r < panel ? rows - r : panel;
        float *o = out ? out + r * dim : scratch;
        zt_rmsnorm(o, x + r * dim, gamma, k, dim, eps);
        zt_convert((uint16_t *)half + r * dim, half_dtype, o, ZT_F32, k * dim);
    }
    free(scratch);
    return 0;
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
