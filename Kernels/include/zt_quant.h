// Dequantization of GGML (llama.cpp / GGUF) block formats. Type codes are GGML's own type ids, so a
// GGUF tensor's type field can be passed straight through. Every block is decoded exactly as
// ggml's reference dequantize_row_* does (f16 scales widened to f32, then one f32 product and at
// most one f32 add/subtract per element, never fused), so results match gguf-py bit for bit.
#ifndef ZT_QUANT_H
#define ZT_QUANT_H

#include <stdint.h>

#include "zt_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    ZT_GGML_F32 = 0,
    ZT_GGML_F16 = 1,
    ZT_GGML_Q4_0 = 2,     // 32 elems, 18 bytes:  f16 d, 16 B nibbles;               x = d·(q − 8)
    ZT_GGML_Q4_1 = 3,     // 32 elems, 20 bytes:  f16 d, f16 m, 16 B nibbles;        x = d·q + m
    ZT_GGML_Q5_0 = 6,     // 32 elems, 22 bytes:  f16 d, u32 high bits, 16 B nibbles; x = d·(q − 16)
    ZT_GGML_Q5_1 = 7,     // 32 elems, 24 bytes:  f16 d, f16 m, u32 high bits, nibbles; x = d·q + m
    ZT_GGML_Q8_0 = 8,     // 32 elems, 34 bytes:  f16 d, 32 int8;                    x = d·q
    ZT_GGML_Q4_K = 12,    // 256 elems, 144 bytes: f16 d, f16 dmin, 12 B 6-bit scales/mins, 128 B nibbles
    ZT_GGML_Q5_K = 13,    // 256 elems, 176 bytes: as Q4_K plus 32 B of fifth bits
    ZT_GGML_Q6_K = 14,    // 256 elems, 210 bytes: 128 B low nibbles, 64 B high 2 bits, 16 int8 scales, f16 d
    ZT_GGML_BF16 = 30,
};

// Elements per block (1 for F32/F16/BF16) and bytes per block; 0 for a type this file cannot decode.
int64_t zt_quant_block_elems(int type);
int64_t zt_quant_block_bytes(int type);

// out(n) = dequantized src (n / block_elems blocks, n a multiple of the block size).
// Returns 0, or −1 (nothing written) for an unknown type or a ragged n.
int zt_dequantize(float *out, const void *src, int type, int64_t n);

// out(rows, cols) in storage dtype out_dtype: row r of out = dequantized row src_row[r] of the
// source matrix (rows, cols) (src_row NULL: identity). cols must be a multiple of the block size;
// each source row is cols / block_elems blocks. f16/bf16 outputs are rounded once, to nearest even.
// Used to undo llama.cpp's q/k row permutation while dequantizing, with no f32 intermediate.
// Returns 0, or −1 (nothing written) for an unknown type or a ragged cols.
int zt_dequantize_rows(void *out, zt_dtype out_dtype, const void *src, int type, int64_t rows, int64_t cols,
                       const int64_t *src_row);

// zt_dequantize_rows into f32 with i32 row ids (an embedding gather from a quantized table, or the
// whole matrix when ids is NULL): the CPU entry of the backend table's dequantize_rows. Ids outside
// [0, src_rows) give zero rows and are counted; returns the count, or −1 for an unknown type or a
// ragged cols.
int64_t zt_dequantize_gather(float *out, const void *src, int type, int64_t src_rows, int64_t cols,
                             const int32_t *ids, int64_t rows);

// out(cols, rows) in storage dtype out_dtype = src(rows, cols)ᵀ (GPT-2's Conv1D layout from
// GGUF's linear layout). out must not alias src.
void zt_transpose_to(void *out, zt_dtype out_dtype, const float *src, int64_t rows, int64_t cols);

#ifdef __cplusplus
}
#endif
#endif
