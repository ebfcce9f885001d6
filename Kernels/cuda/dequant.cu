// GGML block dequantization into f32 rows (zt_quant.h, dequantize_rows of the backend table): a
// quantized frozen base is decoded one matrix at a time before its GEMM, or row by row for an
// embedding lookup. One thread per output element decodes its element straight from its block;
// every value is the CPU decoder's (Kernels/cpu/dequant.c): f16 scales widened exactly, then the
// same f32 products and sums, each rounded on its own (__fmul_rn/__fadd_rn, never an FMA).
#include "kernels.cuh"
#include "dequant.cuh"
#include "numerics.cuh"

#define DEQ_THREADS 256

template <int TYPE, int ELEMS, int BYTES, int ODT>
__global__ void __launch_bounds__(DEQ_THREADS) dequant_kernel(void *out, const uint8_t *src, int64_t src_rows, int64_t cols,
                                                              const int32_t *rows_map, int64_t rows) {
    const int64_t n = rows * cols, bpr = cols / ELEMS;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / cols, c = i % cols;
        const int64_t sr = rows_map ? rows_map[r] : r;
        if (sr < 0 || sr >= src_rows) {
            zt_st<ODT>(out, i, 0.0f);
            continue;
        }
        zt_st<ODT>(out, i, zt_deq_elem<TYPE>(src + (sr * bpr + c / ELEMS) * BYTES, (int)(c % ELEMS)));
    }
}

template <int ODT>
static void launch_dequant(zt_ctx *c, int type, void *d_out, const uint8_t *src, int64_t src_rows, int64_t cols,
                           const int32_t *d_rows, int64_t rows) {
    const unsigned grid = zt_grid(c, rows * cols, DEQ_THREADS);
#define DEQ(T, E, B) dequant_kernel<T, E, B, ODT><<<grid, DEQ_THREADS, 0, c->stream>>>(d_out, src, src_rows, cols, d_rows, rows); break
    switch (type) {
    case ZT_GGML_Q4_0: DEQ(ZT_GGML_Q4_0, 32, 18);
    case ZT_GGML_Q4_1: DEQ(ZT_GGML_Q4_1, 32, 20);
    case ZT_GGML_Q5_0: DEQ(ZT_GGML_Q5_0, 32, 22);
    case ZT_GGML_Q5_1: DEQ(ZT_GGML_Q5_1, 32, 24);
    case ZT_GGML_Q8_0: DEQ(ZT_GGML_Q8_0, 32, 34);
    case ZT_GGML_Q4_K: DEQ(ZT_GGML_Q4_K, 256, 144);
    case ZT_GGML_Q5_K: DEQ(ZT_GGML_Q5_K, 256, 176);
    default: DEQ(ZT_GGML_Q6_K, 256, 210);
    }
#undef DEQ
}

int64_t zt_cu_dequantize_rows(void *d_out, zt_dtype out_dtype, const void *d_src, int type, int64_t src_rows, int64_t cols,
                              const int32_t *d_rows, int64_t rows, int count_bad) {
    int64_t elems;
    switch (type) {
    case ZT_GGML_Q4_0: case ZT_GGML_Q4_1: case ZT_GGML_Q5_0: case ZT_GGML_Q5_1: case ZT_GGML_Q8_0: elems = 32; break;
    case ZT_GGML_Q4_K: case ZT_GGML_Q5_K: case ZT_GGML_Q6_K: elems = 256; break;
    default: elems = 0;
    }
    zt_ctx *c = zt_ctx_get();
    if (!c) return -1;
    if ((out_dtype != ZT_F32 && (d_rows || (out_dtype != ZT_BF16 && out_dtype != ZT_F16)))) {
        zt_error((int)cudaErrorInvalidValue, "dequantize: output dtype %d (16-bit outputs are for whole matrices)", (int)out_dtype);
        return -1;
    }
    if (elems == 0 || cols < 0 || rows < 0 || cols % elems != 0) {
        zt_error((int)cudaErrorInvalidValue, "dequantize: type %d with %lld columns", type, (long long)cols);
        return -1;
    }
    if (rows == 0) return 0;
    if (d_rows && count_bad) {
        if (zt_cu_count_bad_ids_start(c, d_rows, rows, src_rows, "dequantize (counter)")) return -1;
    }
    const uint8_t *src = (const uint8_t *)d_src;
    switch (out_dtype) {
    case ZT_F32: launch_dequant<ZT_F32>(c, type, d_out, src, src_rows, cols, d_rows, rows); break;
    case ZT_BF16: launch_dequant<ZT_BF16>(c, type, d_out, src, src_rows, cols, d_rows, rows); break;
    default: launch_dequant<ZT_F16>(c, type, d_out, src, src_rows, cols, d_rows, rows); break;
    }
    if (zt_cuda_check(cudaGetLastError(), "dequantize (launch)")) return -1;
    return d_rows && count_bad ? zt_cu_count_bad_ids_finish(c, "dequantize (count)") : 0;
}
