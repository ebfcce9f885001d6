// Element decoder of the GGML block formats for the CUDA dequantization kernel (dequant.cu), also
// compiled for the host by the device check's emulation (bench/device/emulate.cpp), so its math is
// held to the CPU decoders (Kernels/cpu/dequant.c) bit for bit even without a GPU: f16 scales
// widened exactly, then the CPU's f32 products and sums in its order, each rounded on its own.
#ifndef ZT_DEQUANT_CUH
#define ZT_DEQUANT_CUH
#include "numerics.cuh"
#include "zt_quant.h"

#if defined(__CUDA_ARCH__)
#define ZT_FSUB(a, b) __fsub_rn((a), (b))
#else
#define ZT_FSUB(a, b) ((a) - (b))
#endif

ZT_HD float zt_q_f16(const uint8_t *p) { return zt_f16_f32((uint16_t)(p[0] | (p[1] << 8))); }
ZT_HD uint32_t zt_q_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

// Scale and min j (of 8) of a K-quant super-block's 12 packed bytes.
ZT_HD void zt_q_scale_min(const uint8_t *s, int j, float *sc, float *mn) {
    if (j < 4) {
        *sc = (float)(s[j] & 63);
        *mn = (float)(s[j + 4] & 63);
    } else {
        *sc = (float)((s[j + 4] & 15) | ((s[j - 4] >> 6) << 4));
        *mn = (float)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

// Element e of the block at x (e < 32 for the 32-element formats, < 256 for K formats).
template <int TYPE>
ZT_HD float zt_deq_elem(const uint8_t *x, int e) {
    if (TYPE == ZT_GGML_Q4_0) {
        const int q = e < 16 ? (x[2 + e] & 15) : (x[2 + e - 16] >> 4);
        return ZT_FMUL(zt_q_f16(x), (float)(q - 8));
    } else if (TYPE == ZT_GGML_Q4_1) {
        const int q = e < 16 ? (x[4 + e] & 15) : (x[4 + e - 16] >> 4);
        return ZT_FADD(ZT_FMUL(zt_q_f16(x), (float)q), zt_q_f16(x + 2));
    } else if (TYPE == ZT_GGML_Q5_0) {
        const uint32_t qh = zt_q_u32(x + 2);
        const int lo = e < 16 ? (x[6 + e] & 15) : (x[6 + e - 16] >> 4);
        return ZT_FMUL(zt_q_f16(x), (float)((int)(lo | (((qh >> e) & 1u) << 4)) - 16));
    } else if (TYPE == ZT_GGML_Q5_1) {
        const uint32_t qh = zt_q_u32(x + 4);
        const uint32_t lo = e < 16 ? (x[8 + e] & 15u) : (uint32_t)(x[8 + e - 16] >> 4);
        return ZT_FADD(ZT_FMUL(zt_q_f16(x), (float)(lo | (((qh >> e) & 1u) << 4))), zt_q_f16(x + 2));
    } else if (TYPE == ZT_GGML_Q8_0) {
        return ZT_FMUL((float)(int8_t)x[2 + e], zt_q_f16(x));
    } else if (TYPE == ZT_GGML_Q4_K || TYPE == ZT_GGML_Q5_K) {
        // Chunk c of 64: sub-block 2c (low nibbles) then 2c + 1 (high nibbles) of the same 32 bytes.
        const int c = e / 64, hi = (e % 64) >= 32, l = e % 32, sub = 2 * c + hi;
        float sc, mn;
        zt_q_scale_min(x + 4, sub, &sc, &mn);
        const float d0 = ZT_FMUL(zt_q_f16(x), sc), dm0 = ZT_FMUL(zt_q_f16(x + 2), mn);
        const uint8_t *q = x + (TYPE == ZT_GGML_Q4_K ? 16 : 48) + 32 * c;
        uint32_t v = hi ? (uint32_t)(q[l] >> 4) : (q[l] & 15u);
        if (TYPE == ZT_GGML_Q5_K) v |= (((uint32_t)(x[16 + l] >> sub)) & 1u) << 4;
        return ZT_FSUB(ZT_FMUL(d0, (float)v), dm0);
    } else {  // Q6_K: half h of 128, quarter k of 32, lane l; scale 8h + l/16 + 2k.
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const uint8_t *lq = x + 64 * h, *hq = x + 128 + 32 * h;
        const int low = k & 1 ? lq[l + 32] : lq[l];
        const int q = (int)((k < 2 ? (low & 15) : (low >> 4)) | (((hq[l] >> (2 * k)) & 3) << 4)) - 32;
        const float ds = ZT_FMUL(zt_q_f16(x + 208), (float)(int8_t)x[192 + 8 * h + l / 16 + 2 * k]);
        return ZT_FMUL(ds, (float)q);
    }
}

#endif
