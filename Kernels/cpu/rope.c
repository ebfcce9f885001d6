// Rotary position embedding, GPT-NeoX / Hugging Face "rotate_half" layout, in place:
//   x[i]        ← x[i]·cos − x[i + h]·sin
//   x[i + h]    ← x[i + h]·cos + x[i]·sin        (h = rot_dim/2, i < h)
// with cos and sin each multiplied by the attention factor `scale` first (f32 products, as
// transformers scales its cos/sin tables); ×1 is exact. Dims ≥ rot_dim pass through.
#include "zt_cpu.h"
#include "cpu_isa.h"
#include "zt_threads.h"

#include <math.h>

#define GRAIN_ELEMS 16384  // rotated elements per task at least
#define ANGLE_TILE 128     // cos/sin computed per token in tiles of this many frequencies

typedef struct {
    float *x;                // (n, heads, head_dim)
    const int32_t *pos;      // (n)
    const float *inv_freq;   // (rot_dim/2)
    int64_t heads, head_dim, half;
    float scale;
} rope_ctx;

ZT_ISA_CLONES static void rope_range(void *p, int64_t lo, int64_t hi) {
    const rope_ctx *c = p;
    const int64_t heads = c->heads, hd = c->head_dim, half = c->half;
    float cs[ANGLE_TILE], sn[ANGLE_TILE];
    for (int64_t t = lo; t < hi; t++) {
        const float fpos = (float)c->pos[t];
        float *xt = c->x + t * heads * hd;
        // The angle table is shared by all heads of the token: compute it once per tile.
        for (int64_t i0 = 0; i0 < half; i0 += ANGLE_TILE) {
            const int64_t m = half - i0 < ANGLE_TILE ? half - i0 : ANGLE_TILE;
            for (int64_t i = 0; i < m; i++) {
                const float ang = fpos * c->inv_freq[i0 + i];  // f32 product, as transformers
                cs[i] = cosf(ang) * c->scale;
                sn[i] = sinf(ang) * c->scale;
            }
            for (int64_t h = 0; h < heads; h++) {
                float *restrict a = xt + h * hd + i0;   // first half
                float *restrict b = a + half;           // second half, disjoint from a
                for (int64_t i = 0; i < m; i++) {
                    const float x1 = a[i], x2 = b[i];
                    a[i] = x1 * cs[i] - x2 * sn[i];
                    b[i] = x2 * cs[i] + x1 * sn[i];
                }
            }
        }
    }
}

void zt_rope(float *x, const int32_t *pos, int64_t n, int64_t heads, int64_t head_dim,
             int64_t rot_dim, const float *inv_freq, float scale) {
    const int64_t half = rot_dim / 2;
    if (half <= 0 || heads <= 0) return;
    rope_ctx c = {x, pos, inv_freq, heads, head_dim, half, scale};
    int64_t grain = GRAIN_ELEMS / (heads * 2 * half);
    zt_parallel_for(n, grain < 1 ? 1 : grain, rope_range, &c);
}
