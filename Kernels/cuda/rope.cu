// Rotary position embedding (GPT-NeoX / Hugging Face rotate_half layout) on x(n, heads, head_dim)
// in place, as Kernels/cpu/rope.c:
//   x[i] ← x[i]·cos − x[i+h]·sin,  x[i+h] ← x[i+h]·cos + x[i]·sin,  h = rot_dim/2, i < h,
// angle = pos·inv_freq[i] as an f32 product, cos and sin each multiplied by the attention factor
// `scale` (exact for 1). One block per token: the block computes the token's
// cos/sin table once (a tile of frequencies at a time, in shared memory) and every head uses it.
// cosf/sinf are CUDA's (≤ 2 ulp, full range reduction) instead of glibc's, so results agree with
// the CPU within a few ulp; the products and sums are single roundings (__f*_rn) as on the CPU.
#include "kernels.cuh"

#define ROPE_THREADS 128
#define ROPE_TILE 1024  // frequencies per shared-memory tile

__global__ void __launch_bounds__(ROPE_THREADS) rope_kernel(float *x, const int32_t *pos, int64_t n, int64_t heads,
                                                            int64_t head_dim, int64_t half, const float *inv_freq,
                                                            float scale) {
    __shared__ float cs[ROPE_TILE], sn[ROPE_TILE];
    for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
        const float fpos = (float)pos[t];
        float *xt = x + t * heads * head_dim;
        for (int64_t i0 = 0; i0 < half; i0 += ROPE_TILE) {
            const int64_t m = half - i0 < ROPE_TILE ? half - i0 : ROPE_TILE;
            __syncthreads();  // the previous tile's table is no longer read
            for (int64_t i = threadIdx.x; i < m; i += blockDim.x) {
                float s, c;
                sincosf(__fmul_rn(fpos, inv_freq[i0 + i]), &s, &c);
                cs[i] = __fmul_rn(c, scale);
                sn[i] = __fmul_rn(s, scale);
            }
            __syncthreads();
            for (int64_t e = threadIdx.x; e < heads * m; e += blockDim.x) {
                const int64_t h = e / m, i = e % m;
                float *a = xt + h * head_dim + i0 + i;
                float *b = a + half;
                const float x1 = *a, x2 = *b;
                *a = __fsub_rn(__fmul_rn(x1, cs[i]), __fmul_rn(x2, sn[i]));
                *b = __fadd_rn(__fmul_rn(x2, cs[i]), __fmul_rn(x1, sn[i]));
            }
        }
    }
}

void zt_cu_rope(float *d_x, const int32_t *d_pos, int64_t n, int64_t heads, int64_t head_dim,
                int64_t rot_dim, const float *d_inv_freq, float scale) {
    const int64_t half = rot_dim / 2;
    if (n <= 0 || half <= 0 || heads <= 0) return;
    zt_ctx *c = zt_ctx_get();
    if (!c) return;
    const unsigned grid = (unsigned)(n < 65535 * 16 ? n : 65535 * 16);
    rope_kernel<<<grid, ROPE_THREADS, 0, c->stream>>>(d_x, d_pos, n, heads, head_dim, half, d_inv_freq, scale);
    zt_launch_check("rope");
}
