// Causal, key-masked, grouped-query attention reading a KV cache in place, with an online
// (flash-style) softmax: no score matrix in device memory. Semantics of Kernels/cpu/attention.c:
//   q, out (B, T, Hq, D); k, v (B, S_cap, Hkv, D), first S positions used; query t sits at key
//   index S − T + t and sees keys 0 … S − T + t that key_mask(B, S_cap) allows (NULL: all);
//   query head h reads kv head h / (Hq / Hkv); a query with no allowed key gets 0. window > 0:
//   query index i sees only keys i − window < j ≤ i, a key range (each row, or block of rows
//   rounded down to a tile, starts its key loop at its first window key): O(window) per query.
//   softcap > 0 (Gemma 2): an allowed key's score s = scale·q·k becomes softcap·tanh(s / softcap)
//   before the online max (CUDA's tanhf, ≤ 2 ulp, not a fast intrinsic); masked keys stay −inf,
//   as transformers caps before it adds the mask. 0: none (the code path of the uncapped kernel).
// Two kernels:
//   tile: a block per (32 queries, head, batch); K/V tiles of 32 keys staged in shared memory and
//         reused by all 32 queries; 4 warps × 8 query rows; lane j scores key j of the tile, then
//         each lane accumulates its D/32 output columns in registers. D ≤ 256 (templated on 64,
//         128, 256), used when T ≥ 8.
//   warp: a warp per query row, any D (q and the accumulator in shared memory); decode (T small)
//         and large D.
// attention_half runs the same kernels and launch choice with the output also rounded to bf16/f16 at
// the store (o_proj's 16-bit input): its f32 output is attention's bits, its copy convert's.
// ZOTUNE_ATTN=tile|warp forces one (tests). Exponentials are CUDA's expf and dot products run in a
// different order from the CPU, so results agree within tolerance, not bit for bit.
#include <stdlib.h>
#include <string.h>

#include "kernels.cuh"
#include "numerics.cuh"

#define FULL_MASK 0xFFFFFFFFu

// softcap·tanh(s / softcap) with each step rounded alone (no contraction), as the CPU's f32 steps.
__device__ __forceinline__ float soft_cap(float s, float softcap) {
    return __fmul_rn(softcap, tanhf(__fdiv_rn(s, softcap)));
}

// An output element: into out (NULL: not written) and, with half (attention_half), rounded to hd
// (ZT_BF16 / ZT_F16) by convert's integer rounding: o_proj's 16-bit input from the same kernel.
__device__ __forceinline__ void attn_store(float *out, void *half, int hd, int64_t i, float v) {
    if (half) {
        if (hd == ZT_BF16) zt_st<ZT_BF16>(half, i, v);
        else zt_st<ZT_F16>(half, i, v);
    }
    if (out) out[i] = v;
}

// ---- warp kernel ---------------------------------------------------------------------------------

#define AW_WARPS 4

// smem: per warp q (D) and acc (D).
__global__ void __launch_bounds__(AW_WARPS * 32)
attn_warp_kernel(float *out, void *half, int hd, const float *q, const float *k, const float *v, const uint8_t *key_mask,
                 int64_t B, int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                 int64_t window, float softcap, int vec) {
    extern __shared__ float4 smem_w[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float *qs = (float *)smem_w + (size_t)warp * 2 * D;
    float *acc = qs + D;
    const int64_t group = Hq / Hkv, kv_stride = Hkv * D;
    const int64_t nrows = B * T * Hq;
    for (int64_t row = (int64_t)blockIdx.x * AW_WARPS + warp; row < nrows; row += (int64_t)gridDim.x * AW_WARPS) {
        // row = (b·T + t)·Hq + h, the output layout.
        const int64_t h = row % Hq, bt = row / Hq, t = bt % T, b = bt / T;
        const float *kb = k + (b * S_cap * Hkv + h / group) * D;  // key 0 of this kv head
        const float *vb = v + (b * S_cap * Hkv + h / group) * D;
        const uint8_t *mrow = key_mask ? key_mask + b * S_cap : NULL;
        const int64_t nkeys = S - T + t + 1;  // causal: keys 0 … S − T + t
        const int64_t kfirst = window > 0 && nkeys > window ? nkeys - window : 0;  // window: from here

        __syncwarp();  // the previous row's reads of qs are done
        for (int64_t d = lane; d < D; d += 32) {
            qs[d] = q[row * D + d];
            acc[d] = 0.0f;
        }
        __syncwarp();
        float m = -INFINITY;  // running max of allowed scores
        float l = 0.0f;       // this lane's share of Σ exp(score − m)
        for (int64_t s0 = kfirst; s0 < nkeys; s0 += 32) {
            const int64_t j = s0 + lane;
            const bool allowed = j < nkeys && (!mrow || mrow[j]);
            float score = -INFINITY;
            if (allowed) {
                const float *kr = kb + j * kv_stride;
                float dot = 0.0f;
                if (vec) {
                    for (int64_t d = 0; d < D; d += 4) {
                        const float4 kk = *(const float4 *)(kr + d), qq = *(const float4 *)(qs + d);
                        dot += qq.x * kk.x + qq.y * kk.y + qq.z * kk.z + qq.w * kk.w;
                    }
                } else {
                    for (int64_t d = 0; d < D; d++) dot += qs[d] * kr[d];
                }
                score = scale * dot;
                if (softcap > 0.0f) score = soft_cap(score, softcap);
            }
            const unsigned allowed_bits = __ballot_sync(FULL_MASK, allowed);
            if (!allowed_bits) continue;  // whole tile masked: nothing to add
            const float m_new = fmaxf(m, zt_warp_max(score));
            const float alpha = expf(m - m_new);  // 0 on the first allowed tile (m = −inf)
            const float p = allowed ? expf(score - m_new) : 0.0f;
            l = l * alpha + p;
            if (alpha != 1.0f)
                for (int64_t d = lane; d < D; d += 32) acc[d] *= alpha;
            const int nvalid = (int)(nkeys - s0 < 32 ? nkeys - s0 : 32);
            for (int jj = 0; jj < nvalid; jj++) {
                const float pj = __shfl_sync(FULL_MASK, p, jj);
                if (!((allowed_bits >> jj) & 1u)) continue;  // masked key (uniform)
                const float *vr = vb + (s0 + jj) * kv_stride;
                for (int64_t d = lane; d < D; d += 32) acc[d] += pj * vr[d];
            }
            m = m_new;
        }
        const float lsum = zt_warp_sum(l);  // ≥ 1 once any key was allowed
        const float inv = lsum > 0.0f ? 1.0f / lsum : 0.0f;
        for (int64_t d = lane; d < D; d += 32) attn_store(out, half, hd, row * D + d, lsum > 0.0f ? acc[d] * inv : 0.0f);
    }
}

// ---- tile kernel ---------------------------------------------------------------------------------

#define AT_BQ 32       // queries per block
#define AT_BK 32       // keys per tile (one per lane)
#define AT_WARPS 4
#define AT_RPW (AT_BQ / AT_WARPS)  // query rows per warp

template <int DMAX>
static constexpr size_t tile_smem_bytes() {
    // Qs (BQ, DMAX), Ks (BK, DMAX + 4) padded so lanes' float4 rows fall in distinct banks,
    // Vs (BK, DMAX), Ps (warps, rows per warp, BK).
    return sizeof(float) * ((size_t)AT_BQ * DMAX + (size_t)AT_BK * (DMAX + 4) + (size_t)AT_BK * DMAX +
                            (size_t)AT_WARPS * AT_RPW * AT_BK);
}

// grid (ceil(T / BQ), Hq, B).
template <int DMAX>
__global__ void __launch_bounds__(AT_WARPS * 32)
attn_tile_kernel(float *out, void *half, int hd, const float *q, const float *k, const float *v, const uint8_t *key_mask,
                 int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                 int64_t window, float softcap, int vec) {
    constexpr int KP = DMAX + 4;     // K row stride in shared memory
    constexpr int NI = DMAX / 32;    // output columns per lane
    extern __shared__ float4 smem_t[];
    float *Qs = (float *)smem_t;
    float *Ks = Qs + AT_BQ * DMAX;
    float *Vs = Ks + AT_BK * KP;
    float *Ps = Vs + AT_BK * DMAX;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int64_t t0 = (int64_t)blockIdx.x * AT_BQ, h = blockIdx.y, b = blockIdx.z;
    const int64_t kv_stride = Hkv * D;
    const float *kb = k + (b * S_cap * Hkv + h / (Hq / Hkv)) * D;
    const float *vb = v + (b * S_cap * Hkv + h / (Hq / Hkv)) * D;
    const uint8_t *mrow = key_mask ? key_mask + b * S_cap : NULL;
    const int64_t tlast = (t0 + AT_BQ < T ? t0 + AT_BQ : T) - 1;
    const int64_t kend = S - T + tlast + 1;  // keys seen by the block's last query
    // Window: the block's first query's first key, rounded down to a tile; rows mask the rest.
    const int64_t kfirst = window > 0 && S - T + t0 + 1 > window ? (S - T + t0 + 1 - window) / AT_BK * AT_BK : 0;
    const int dp4 = (int)((D + 3) / 4);      // float4s per row that hold data (rest is zero)

    // Q tile, zero-padded past T and past D.
    for (int idx = tid; idx < AT_BQ * DMAX; idx += AT_WARPS * 32) {
        const int r = idx / DMAX, d = idx % DMAX;
        const int64_t t = t0 + r;
        Qs[idx] = (t < T && d < D) ? q[((b * T + t) * Hq + h) * D + d] : 0.0f;
    }

    float m[AT_RPW], l[AT_RPW], acc[AT_RPW][NI];
#pragma unroll
    for (int r = 0; r < AT_RPW; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < NI; i++) acc[r][i] = 0.0f;
    }
    float *Pw = Ps + warp * AT_RPW * AT_BK;

    for (int64_t k0 = kfirst; k0 < kend; k0 += AT_BK) {
        __syncthreads();  // every warp is done with the previous K/V tile (and Qs is written)
        if (vec) {        // D % 4 == 0 and 16-byte aligned k, v: whole float4s
            for (int idx = tid; idx < AT_BK * (DMAX / 4); idx += AT_WARPS * 32) {
                const int rr = idx / (DMAX / 4), d = 4 * (idx % (DMAX / 4));
                const int64_t key = k0 + rr;
                float4 kk = make_float4(0.f, 0.f, 0.f, 0.f), vv = kk;
                if (key < kend && d < D) {
                    kk = *(const float4 *)(kb + key * kv_stride + d);
                    vv = *(const float4 *)(vb + key * kv_stride + d);
                }
                *(float4 *)(Ks + rr * KP + d) = kk;
                *(float4 *)(Vs + rr * DMAX + d) = vv;
            }
        } else {
            for (int idx = tid; idx < AT_BK * DMAX; idx += AT_WARPS * 32) {
                const int rr = idx / DMAX, d = idx % DMAX;
                const int64_t key = k0 + rr;
                const bool in = key < kend && d < D;
                Ks[rr * KP + d] = in ? kb[key * kv_stride + d] : 0.0f;
                Vs[rr * DMAX + d] = in ? vb[key * kv_stride + d] : 0.0f;
            }
        }
        __syncthreads();

        // Scores of key k0 + lane against the warp's 8 query rows.
        const int64_t key = k0 + lane;
        const bool key_ok = key < kend && (!mrow || mrow[key]);
        float s[AT_RPW];
#pragma unroll
        for (int r = 0; r < AT_RPW; r++) s[r] = 0.0f;
        const float4 *K4 = (const float4 *)(Ks + lane * KP);
        for (int d4 = 0; d4 < dp4; d4++) {
            const float4 kk = K4[d4];
#pragma unroll
            for (int r = 0; r < AT_RPW; r++) {
                const float4 qq = ((const float4 *)(Qs + (warp * AT_RPW + r) * DMAX))[d4];
                s[r] += qq.x * kk.x + qq.y * kk.y + qq.z * kk.z + qq.w * kk.w;
            }
        }
        // Online softmax per row; p goes to shared memory for the P·V product.
#pragma unroll
        for (int r = 0; r < AT_RPW; r++) {
            const int64_t tq = t0 + warp * AT_RPW + r;
            const bool ok = key_ok && tq < T && key <= S - T + tq && (window <= 0 || key > S - T + tq - window);
            float sc = ok ? scale * s[r] : -INFINITY;
            if (ok && softcap > 0.0f) sc = soft_cap(sc, softcap);
            const float tmax = zt_warp_max(sc);
            float p = 0.0f;
            if (tmax != -INFINITY) {  // uniform over the warp
                const float m_new = fmaxf(m[r], tmax);
                const float alpha = expf(m[r] - m_new);
                p = ok ? expf(sc - m_new) : 0.0f;
                l[r] = l[r] * alpha + p;
                if (alpha != 1.0f) {
#pragma unroll
                    for (int i = 0; i < NI; i++) acc[r][i] *= alpha;
                }
                m[r] = m_new;
            }
            Pw[r * AT_BK + lane] = p;
        }
        __syncwarp();
        // acc(rows, lane + 32i) += Σ_j p(row, j) · V(j, lane + 32i)
        const int nk = (int)(kend - k0 < AT_BK ? kend - k0 : AT_BK);
        for (int jj = 0; jj < nk; jj++) {
            float vv[NI];
#pragma unroll
            for (int i = 0; i < NI; i++) vv[i] = Vs[jj * DMAX + lane + 32 * i];
#pragma unroll
            for (int r = 0; r < AT_RPW; r++) {
                const float pj = Pw[r * AT_BK + jj];
                if (pj != 0.0f) {  // masked (or underflowed) key: adds nothing; uniform over the warp
#pragma unroll
                    for (int i = 0; i < NI; i++) acc[r][i] += pj * vv[i];
                }
            }
        }
    }

#pragma unroll
    for (int r = 0; r < AT_RPW; r++) {
        const int64_t tq = t0 + warp * AT_RPW + r;
        const float lsum = zt_warp_sum(l[r]);
        if (tq < T) {
            const float inv = lsum > 0.0f ? 1.0f / lsum : 0.0f;
            const int64_t o = ((b * T + tq) * Hq + h) * D;
#pragma unroll
            for (int i = 0; i < NI; i++) {
                const int d = lane + 32 * i;
                if (d < D) attn_store(out, half, hd, o + d, lsum > 0.0f ? acc[r][i] * inv : 0.0f);
            }
        }
    }
}

// ---- launcher ------------------------------------------------------------------------------------

// Per device and tile<64,128,256>: 1 once the opt-in shared memory is set, −1 when the driver refused
// it (the tile kernel is then never launched there: the warp kernel runs instead).
static int g_smem_set[ZT_MAX_DEVICES][4];

template <int DMAX>
static bool launch_tile(zt_ctx *c, float *out, void *half, int hd, const float *q, const float *k, const float *v, const uint8_t *mask,
                        int64_t B, int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv, int64_t D,
                        float scale, int64_t window, float softcap, int slot) {
    constexpr size_t smem = tile_smem_bytes<DMAX>();
    if (smem > c->smem_optin || g_smem_set[c->device][slot] < 0) return false;
    if (!g_smem_set[c->device][slot]) {
        // A refused attribute is not an error of the call: the warp kernel (≤ 8 KB of shared memory
        // for D ≤ 256, no opt-in) computes the same contract. It must not launch the tile kernel
        // without its shared memory (the launch fails and attn stays unwritten).
        if (cudaFuncSetAttribute(attn_tile_kernel<DMAX>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) !=
            cudaSuccess) {
            cudaGetLastError();  // not left for the next launch check to misattribute
            g_smem_set[c->device][slot] = -1;
            return false;
        }
        g_smem_set[c->device][slot] = 1;
    }
    const int vec = D % 4 == 0 && zt_aligned(k, 16) && zt_aligned(v, 16);
    dim3 grid((unsigned)((T + AT_BQ - 1) / AT_BQ), (unsigned)Hq, (unsigned)B);
    attn_tile_kernel<DMAX><<<grid, AT_WARPS * 32, smem, c->stream>>>(out, half, hd, q, k, v, mask, T, S, S_cap, Hq, Hkv, D,
                                                                      scale, window, softcap, vec);
    zt_launch_check("attention (tile)");
    return true;
}

static void attention(float *d_out, void *d_half, int hd, const float *d_q, const float *d_k, const float *d_v,
                      const uint8_t *d_key_mask, int64_t B, int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv,
                      int64_t D, float scale, int64_t window, float softcap) {
    if (B <= 0 || T <= 0 || Hq <= 0 || Hkv <= 0 || D <= 0) return;
    zt_ctx *c = zt_ctx_get();
    if (!c) return;
    if (S_cap < S) S_cap = S;
    if (S < T || Hq % Hkv != 0 || B > 65535 || Hq > 65535 || window < 0 || !(softcap >= 0.0f)) {
        zt_async_error((int)cudaErrorInvalidValue,
                       "attention: bad shape B %lld T %lld S %lld Hq %lld Hkv %lld window %lld softcap %g",
                       (long long)B, (long long)T, (long long)S, (long long)Hq, (long long)Hkv, (long long)window,
                       (double)softcap);
        return;
    }
    if (softcap == INFINITY) softcap = 0.0f;  // the limit: no cap
    const char *force = getenv("ZOTUNE_ATTN");
    const bool want_tile = force ? strcmp(force, "tile") == 0 : T >= 8;
    if (want_tile && D <= 256) {
        const float *q = d_q, *k = d_k, *v = d_v;
        const float sc = scale, cap = softcap;
        const uint8_t *m = d_key_mask;
        const int64_t w = window;
        bool done = D <= 64    ? launch_tile<64>(c, d_out, d_half, hd, q, k, v, m, B, T, S, S_cap, Hq, Hkv, D, sc, w, cap, 0)
                    : D <= 128 ? launch_tile<128>(c, d_out, d_half, hd, q, k, v, m, B, T, S, S_cap, Hq, Hkv, D, sc, w, cap, 1)
                               : launch_tile<256>(c, d_out, d_half, hd, q, k, v, m, B, T, S, S_cap, Hq, Hkv, D, sc, w, cap, 2);
        if (done) return;
    }
    const size_t smem = (size_t)AW_WARPS * 2 * (size_t)D * sizeof(float);
    if (smem > 48 * 1024) {
        if (smem > c->smem_optin) {
            zt_async_error((int)cudaErrorInvalidValue, "attention: head dim %lld needs %zu bytes of shared memory",
                           (long long)D, smem);
            return;
        }
        if (zt_cuda_check_async(cudaFuncSetAttribute(attn_warp_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                     (int)smem),
                                "attention (shared memory)"))
            return;
    }
    const int vec = D % 4 == 0 && zt_aligned(d_k, 16);
    const int64_t rows = B * T * Hq;
    int64_t blocks = (rows + AW_WARPS - 1) / AW_WARPS;
    if (blocks > (int64_t)c->sm_count * 64) blocks = (int64_t)c->sm_count * 64;
    attn_warp_kernel<<<(unsigned)blocks, AW_WARPS * 32, smem, c->stream>>>(d_out, d_half, hd, d_q, d_k, d_v, d_key_mask, B, T, S,
                                                                           S_cap, Hq, Hkv, D, scale, window, softcap,
                                                                           vec);
    zt_launch_check("attention (warp)");
}

void zt_cu_attention(float *d_out, const float *d_q, const float *d_k, const float *d_v, const uint8_t *d_key_mask,
                     int64_t B, int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                     int64_t window, float softcap) {
    attention(d_out, NULL, ZT_F32, d_q, d_k, d_v, d_key_mask, B, T, S, S_cap, Hq, Hkv, D, scale, window, softcap);
}
// The same kernels and launch choice with the rounded store on: the f32 output is attention's bits.
int zt_cu_attention_half(float *d_out, void *d_half, zt_dtype half_dtype, const float *d_q, const float *d_k,
                         const float *d_v, const uint8_t *d_key_mask, int64_t B, int64_t T, int64_t S, int64_t S_cap,
                         int64_t Hq, int64_t Hkv, int64_t D, float scale, int64_t window, float softcap) {
    if (half_dtype != ZT_BF16 && half_dtype != ZT_F16)
        return zt_error((int)cudaErrorInvalidValue, "attention_half: half dtype %d is not bf16 or f16", (int)half_dtype);
    if (B <= 0 || T <= 0 || Hq <= 0 || Hkv <= 0 || D <= 0) return 0;
    if (!zt_ctx_get()) return zt_ctx_status();  // no device: say so (shape errors stay sticky, as attention's)
    attention(d_out, d_half, (int)half_dtype, d_q, d_k, d_v, d_key_mask, B, T, S, S_cap, Hq, Hkv, D, scale, window, softcap);
    return 0;
}
