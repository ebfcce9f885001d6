// GGML block dequantization (zt_quant.h). One decoder per format turns a run of contiguous blocks
// into f32; the driver splits a (rows, cols) matrix into runs of blocks, gathers source rows (to
// undo llama.cpp's q/k permutation) and converts to f16/bf16 through a small stack buffer.
#include "convert_inline.h"
#include "zt_quant.h"
#include "zt_threads.h"

#include <stdlib.h>
#include <string.h>

// gguf-py computes d·q and then ± m as two rounded f32 operations; an FMA would change the bits.
#pragma STDC FP_CONTRACT OFF

// Elements per parallel task: dequantization is a few ns per element, so small tensors stay serial.
#define GRAIN_ELEMS 16384
// Elements decoded at a time when the output is f16/bf16 (one K-quant block is 256).
#define TMP_ELEMS 4096

// Little-endian loads from unaligned block fields (blocks are 18, 20, 22, … bytes long).
ZT_INLINE float ld_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return zt_f16_f32(h);
}

ZT_INLINE uint32_t ld_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

// ---- 32-element formats: y(nb·32) from x(nb blocks) ---------------------------------------------
// Low nibbles of the 16 quant bytes are elements 0…15, high nibbles 16…31.

static void deq_q4_0(float *restrict y, const uint8_t *restrict x, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 18, y += 32) {
        const float d = ld_f16(x);
        const uint8_t *q = x + 2;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((int)(q[j] & 15) - 8);
            y[j + 16] = d * (float)((int)(q[j] >> 4) - 8);
        }
    }
}

static void deq_q4_1(float *restrict y, const uint8_t *restrict x, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 20, y += 32) {
        const float d = ld_f16(x), m = ld_f16(x + 2);
        const uint8_t *q = x + 4;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)(q[j] & 15) + m;
            y[j + 16] = d * (float)(q[j] >> 4) + m;
        }
    }
}

// Q5: bit j of the u32 qh is the fifth bit of element j.
static void deq_q5_0(float *restrict y, const uint8_t *restrict x, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 22, y += 32) {
        const float d = ld_f16(x);
        const uint32_t qh = ld_u32(x + 2);
        const uint8_t *q = x + 6;
        for (int j = 0; j < 16; j++) {
            int lo = (int)((q[j] & 15) | (((qh >> j) & 1) << 4));
            int hi = (int)((q[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
            y[j] = d * (float)(lo - 16);
            y[j + 16] = d * (float)(hi - 16);
        }
    }
}

static void deq_q5_1(float *restrict y, const uint8_t *restrict x, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 24, y += 32) {
        const float d = ld_f16(x), m = ld_f16(x + 2);
        const uint32_t qh = ld_u32(x + 4);
        const uint8_t *q = x + 8;
        for (int j = 0; j < 16; j++) {
            uint32_t lo = (q[j] & 15) | (((qh >> j) & 1) << 4);
            uint32_t hi = (q[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
            y[j] = d * (float)lo + m;
            y[j + 16] = d * (float)hi + m;
        }
    }
}

static void deq_q8_0(float *restrict y, const uint8_t *restrict x, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 34, y += 32) {
        const float d = ld_f16(x);
        const int8_t *q = (const int8_t *)(x + 2);
        for (int j = 0; j < 32; j++) y[j] = (float)q[j] * d;
    }
}

// ---- 256-element K formats ---------------------------------------------------------------------
// 8 sub-blocks of 32, each with a 6-bit scale and 6-bit min packed into 12 bytes: bytes 0–3 hold
// scales 0–3 (low 6 bits) and the top 2 bits of scales 4–7; bytes 4–7 the same for mins; bytes
// 8–11 the low 4 bits of scale (low nibble) and min (high nibble) 4–7.
ZT_INLINE void k_scale_min(const uint8_t *s, int j, float *sc, float *mn) {
    if (j < 4) {
        *sc = (float)(s[j] & 63);
        *mn = (float)(s[j + 4] & 63);
    } else {
        *sc = (float)((s[j + 4] & 15) | ((s[j - 4] >> 6) << 4));
        *mn = (float)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

// Q4_K: 4 chunks of 32 quant bytes; chunk c's low nibbles are sub-block 2c, high nibbles 2c + 1.
static void deq_q4_k(float *restrict y, const uint8_t *restrict x, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 144, y += 256) {
        const float d = ld_f16(x), dmin = ld_f16(x + 2);
        const uint8_t *s = x + 4, *q = x + 16;
        for (int c = 0; c < 4; c++, q += 32) {
            float sc0, m0, sc1, m1;
            k_scale_min(s, 2 * c, &sc0, &m0);
            k_scale_min(s, 2 * c + 1, &sc1, &m1);
            const float d0 = d * sc0, dm0 = dmin * m0, d1 = d * sc1, dm1 = dmin * m1;
            float *yc = y + 64 * c;
            for (int l = 0; l < 32; l++) {
                yc[l] = d0 * (float)(q[l] & 15) - dm0;
                yc[l + 32] = d1 * (float)(q[l] >> 4) - dm1;
            }
        }
    }
}

// Q5_K: as Q4_K; bit i of qh[l] is the fifth bit of element l of sub-block i.
static void deq_q5_k(float *restrict y, const uint8_t *restrict x, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 176, y += 256) {
        const float d = ld_f16(x), dmin = ld_f16(x + 2);
        const uint8_t *s = x + 4, *qh = x + 16, *q = x + 48;
        for (int c = 0; c < 4; c++, q += 32) {
            float sc0, m0, sc1, m1;
            k_scale_min(s, 2 * c, &sc0, &m0);
            k_scale_min(s, 2 * c + 1, &sc1, &m1);
            const float d0 = d * sc0, dm0 = dmin * m0, d1 = d * sc1, dm1 = dmin * m1;
            const int b0 = 2 * c, b1 = 2 * c + 1;
            float *yc = y + 64 * c;
            for (int l = 0; l < 32; l++) {
                uint32_t lo = (q[l] & 15u) | (((uint32_t)(qh[l] >> b0) & 1u) << 4);
                uint32_t hi = (q[l] >> 4) | (((uint32_t)(qh[l] >> b1) & 1u) << 4);
                yc[l] = d0 * (float)lo - dm0;
                yc[l + 32] = d1 * (float)hi - dm1;
            }
        }
    }
}

// Q6_K: two halves of 128 elements. In half h, element r = 32k + l (k < 4, l < 32) takes its low
// 4 bits from ql[64h + l + 32·(k & 1)] (low nibble for k < 2, high for k ≥ 2) and its top 2 bits
// from bits 2k of qh[32h + l]; 16 int8 scales, one per 16 elements, times the f16 d.
static void deq_q6_k(float *restrict y, const uint8_t *restrict x, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 210, y += 256) {
        const uint8_t *ql = x, *qh = x + 128;
        const int8_t *sc = (const int8_t *)(x + 192);
        const float d = ld_f16(x + 208);
        float ds[16];
        for (int i = 0; i < 16; i++) ds[i] = d * (float)sc[i];
        for (int h = 0; h < 2; h++) {
            const uint8_t *lq = ql + 64 * h, *hq = qh + 32 * h;
            const float *dh = ds + 8 * h;
            float *yh = y + 128 * h;
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                int q0 = (int)((lq[l] & 15) | ((hq[l] & 3) << 4)) - 32;
                int q1 = (int)((lq[l + 32] & 15) | (((hq[l] >> 2) & 3) << 4)) - 32;
                int q2 = (int)((lq[l] >> 4) | (((hq[l] >> 4) & 3) << 4)) - 32;
                int q3 = (int)((lq[l + 32] >> 4) | (((hq[l] >> 6) & 3) << 4)) - 32;
                yh[l] = dh[is] * (float)q0;
                yh[l + 32] = dh[is + 2] * (float)q1;
                yh[l + 64] = dh[is + 4] * (float)q2;
                yh[l + 96] = dh[is + 6] * (float)q3;
            }
        }
    }
}

// ---- Unquantized "blocks" of one element ---------------------------------------------------------

static void deq_f32(float *restrict y, const uint8_t *restrict x, int64_t n) { memcpy(y, x, (size_t)n * 4); }

// memcpy loads: general.alignment may be 1, so even 2-byte elements can be unaligned.
static void deq_f16(float *restrict y, const uint8_t *restrict x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, x + 2 * i, 2);
        y[i] = zt_f16_f32(h);
    }
}

static void deq_bf16(float *restrict y, const uint8_t *restrict x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, x + 2 * i, 2);
        y[i] = zt_bf16_f32(h);
    }
}

typedef void (*deq_fn)(float *restrict, const uint8_t *restrict, int64_t);

typedef struct {
    int64_t elems, bytes;
    deq_fn fn;
} quant_traits;

static quant_traits traits(int type) {
    switch (type) {
    case ZT_GGML_F32: return (quant_traits){1, 4, deq_f32};
    case ZT_GGML_F16: return (quant_traits){1, 2, deq_f16};
    case ZT_GGML_BF16: return (quant_traits){1, 2, deq_bf16};
    case ZT_GGML_Q4_0: return (quant_traits){32, 18, deq_q4_0};
    case ZT_GGML_Q4_1: return (quant_traits){32, 20, deq_q4_1};
    case ZT_GGML_Q5_0: return (quant_traits){32, 22, deq_q5_0};
    case ZT_GGML_Q5_1: return (quant_traits){32, 24, deq_q5_1};
    case ZT_GGML_Q8_0: return (quant_traits){32, 34, deq_q8_0};
    case ZT_GGML_Q4_K: return (quant_traits){256, 144, deq_q4_k};
    case ZT_GGML_Q5_K: return (quant_traits){256, 176, deq_q5_k};
    case ZT_GGML_Q6_K: return (quant_traits){256, 210, deq_q6_k};
    default: return (quant_traits){0, 0, NULL};
    }
}

int64_t zt_quant_block_elems(int type) { return traits(type).elems; }
int64_t zt_quant_block_bytes(int type) { return traits(type).bytes; }

// ---- Driver ------------------------------------------------------------------------------------

typedef struct {
    void *out;
    zt_dtype out_dt;
    const uint8_t *src;
    const int64_t *src_row;
    quant_traits t;
    int64_t bpr;   // blocks per row
    int64_t cols;
} deq_job;

// Decodes n blocks at x into out elements [o, o + n·elems), converting through a stack buffer.
static void decode_run(const deq_job *j, const uint8_t *x, int64_t o, int64_t n) {
    if (j->out_dt == ZT_F32) {
        j->t.fn((float *)j->out + o, x, n);
        return;
    }
    float tmp[TMP_ELEMS];
    const int64_t step = TMP_ELEMS / j->t.elems;  // whole blocks per pass
    for (int64_t b = 0; b < n; b += step) {
        const int64_t nb = n - b < step ? n - b : step, ne = nb * j->t.elems;
        j->t.fn(tmp, x + b * j->t.bytes, nb);
        uint16_t *dst = (uint16_t *)j->out + o + b * j->t.elems;
        if (j->out_dt == ZT_F16) {
            for (int64_t i = 0; i < ne; i++) dst[i] = zt_f32_f16(tmp[i]);
        } else {
            for (int64_t i = 0; i < ne; i++) dst[i] = zt_f32_bf16(tmp[i]);
        }
    }
}

// Global block indices [begin, end) over the output, split into runs that stay within one row.
static void deq_range(void *ctx, int64_t begin, int64_t end) {
    const deq_job *j = ctx;
    while (begin < end) {
        const int64_t r = begin / j->bpr, k = begin % j->bpr;
        const int64_t n = end - begin < j->bpr - k ? end - begin : j->bpr - k;
        const int64_t sr = j->src_row ? j->src_row[r] : r;
        decode_run(j, j->src + (sr * j->bpr + k) * j->t.bytes, r * j->cols + k * j->t.elems, n);
        begin += n;
    }
}

int zt_dequantize_rows(void *out, zt_dtype out_dtype, const void *src, int type, int64_t rows, int64_t cols,
                       const int64_t *src_row) {
    const quant_traits t = traits(type);
    if (!t.fn || rows < 0 || cols < 0 || cols % t.elems != 0) return -1;
    if (out_dtype != ZT_F32 && out_dtype != ZT_F16 && out_dtype != ZT_BF16) return -1;
    if (rows == 0 || cols == 0) return 0;
    deq_job j = {out, out_dtype, src, src_row, t, cols / t.elems, cols};
    const int64_t grain = GRAIN_ELEMS / t.elems;
    zt_parallel_for(rows * j.bpr, grain > 0 ? grain : 1, deq_range, &j);
    return 0;
}

int64_t zt_dequantize_gather(float *out, const void *src, int type, int64_t src_rows, int64_t cols,
                             const int32_t *ids, int64_t rows) {
    if (!ids) return zt_dequantize_rows(out, ZT_F32, src, type, rows, cols, NULL);
    if (rows <= 0) return 0;
    // Bad ids read row 0 and are zeroed afterwards: one threaded pass over the good rows' blocks.
    int64_t *map = malloc((size_t)rows * sizeof(int64_t));
    if (!map) return -1;
    int64_t bad = 0;
    for (int64_t r = 0; r < rows; r++) {
        const int ok = ids[r] >= 0 && (int64_t)ids[r] < src_rows;
        bad += !ok;
        map[r] = ok ? ids[r] : 0;
    }
    const int rc = zt_dequantize_rows(out, ZT_F32, src, type, rows, cols, map);
    free(map);
    if (rc != 0) return -1;
    if (bad) {
        for (int64_t r = 0; r < rows; r++) {
            if (ids[r] < 0 || (int64_t)ids[r] >= src_rows) memset(out + r * cols, 0, (size_t)cols * sizeof(float));
        }
    }
    return bad;
}

int zt_dequantize(float *out, const void *src, int type, int64_t n) {
    return zt_dequantize_rows(out, ZT_F32, src, type, 1, n, NULL);
}

// ---- Transpose ---------------------------------------------------------------------------------

typedef struct {
    void *out;
    zt_dtype out_dt;
    const float *src;
    int64_t rows, cols;
} transpose_job;

#define TILE 32

// Output rows [begin, end) in tiles, so both the reads and the writes touch few cache lines.
static void transpose_range(void *ctx, int64_t begin, int64_t end) {
    const transpose_job *j = ctx;
    for (int64_t c0 = begin; c0 < end; c0 += TILE) {
        const int64_t c1 = c0 + TILE < end ? c0 + TILE : end;
        for (int64_t r0 = 0; r0 < j->rows; r0 += TILE) {
            const int64_t r1 = r0 + TILE < j->rows ? r0 + TILE : j->rows;
            for (int64_t c = c0; c < c1; c++) {
                for (int64_t r = r0; r < r1; r++) zt_store(j->out, j->out_dt, c * j->rows + r, j->src[r * j->cols + c]);
            }
        }
    }
}

void zt_transpose_to(void *out, zt_dtype out_dtype, const float *src, int64_t rows, int64_t cols) {
    if (rows <= 0 || cols <= 0) return;
    transpose_job j = {out, out_dtype, src, rows, cols};
    int64_t grain = GRAIN_ELEMS / rows;
    grain = (grain + TILE - 1) / TILE * TILE;
    zt_parallel_for(cols, grain > 0 ? grain : TILE, transpose_range, &j);
}
