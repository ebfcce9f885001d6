// Host launchers of every kernel, with the signatures of the zt_backend_api entries they fill
// (api.cu builds the table from them). Arguments are trusted: the Swift backend validates shapes.
#ifndef ZT_CUDA_KERNELS_CUH
#define ZT_CUDA_KERNELS_CUH

#include "common.cuh"

// perturb.cu
ZT_INTERNAL void zt_cu_perturb(void *d_x, zt_dtype dtype, int64_t n, uint64_t first,
                               uint64_t seed, uint32_t tensor_id, uint32_t stream, float a);
ZT_INTERNAL void zt_cu_restore_update(void *d_x, zt_dtype dtype, int64_t n, uint64_t first, uint64_t seed,
                                      uint32_t tensor_id, uint32_t stream, float restore, float step, float decay);
ZT_INTERNAL void zt_cu_replay_step(void *d_x, zt_dtype dtype, int64_t n, uint64_t first, uint64_t seed,
                                   uint32_t tensor_id, uint32_t stream, float a1, float a2, float restore, float step,
                                   float decay);
ZT_INTERNAL void zt_cu_perturbed_copy(void *d_out, zt_dtype out_dtype, const void *d_src, zt_dtype src_dtype,
                                      int64_t n, uint64_t first, uint64_t seed, uint32_t tensor_id,
                                      uint32_t stream, float a);
ZT_INTERNAL void zt_cu_fill_normal(void *d_out, zt_dtype dtype, int64_t n, uint64_t first,
                                   uint64_t seed, uint32_t tensor_id, uint32_t stream, float scale);
ZT_INTERNAL void zt_cu_zo_update(int kind, void *d_x, zt_dtype dtype, float *d_s1, float *d_s2, int64_t n,
                                 uint64_t first, uint64_t seed, uint32_t tensor_id, uint32_t stream,
                                 const zt_zo_update_args *args);
ZT_INTERNAL void zt_cu_perturb_hessian(void *d_x, zt_dtype dtype, const float *d_h, int64_t n, uint64_t first,
                                       uint64_t seed, uint32_t tensor_id, uint32_t stream, float a);
ZT_INTERNAL void zt_cu_stream_list(int op, const zt_list_item *items, int count, zt_dtype dtype, uint64_t seed,
                                   uint32_t stream, float a, float step);
ZT_INTERNAL void zt_cu_zo_update_list(int kind, const zt_zo_list_item *items, int count, zt_dtype dtype, uint64_t seed,
                                      uint32_t stream, const zt_zo_update_args *args);
ZT_INTERNAL void zt_cu_convert(void *d_dst, zt_dtype dst_dtype, const void *d_src, zt_dtype src_dtype, int64_t n);

// frontier.cu (FZOO, Sparse MeZO, MeZO-SVRG)
ZT_INTERNAL void zt_cu_stream_sum(void *d_out, zt_dtype out_dtype, const void *d_src, zt_dtype src_dtype, int64_t n,
                                  uint64_t first, uint32_t tensor_id, const zt_sum_args *args);
ZT_INTERNAL void zt_cu_masked_stream(int op, void *d_x, zt_dtype dtype, uint8_t *d_mask, int64_t n, uint64_t first,
                                     uint64_t seed, uint32_t tensor_id, uint32_t stream, const zt_masked_args *args);

// elementwise.cu
ZT_INTERNAL void zt_cu_add(float *d_out, const float *d_a, const float *d_b, int64_t n);
ZT_INTERNAL void zt_cu_mul(float *d_out, const float *d_a, const float *d_b, int64_t n);
ZT_INTERNAL void zt_cu_scale(float *d_out, const float *d_a, float s, int64_t n);
ZT_INTERNAL void zt_cu_add_rows(float *d_x, const float *d_bias, int64_t rows, int64_t dim);
ZT_INTERNAL void zt_cu_relu(float *d_out, const float *d_x, int64_t n);
ZT_INTERNAL void zt_cu_silu(float *d_out, const float *d_x, int64_t n);
ZT_INTERNAL void zt_cu_gelu_tanh(float *d_out, const float *d_x, int64_t n);
ZT_INTERNAL void zt_cu_gelu_erf(float *d_out, const float *d_x, int64_t n);
ZT_INTERNAL void zt_cu_swiglu(float *d_out, const float *d_gate, const float *d_up, int64_t n);
ZT_INTERNAL void zt_cu_softcap(float *d_x, int64_t n, float cap);
ZT_INTERNAL int zt_cu_swiglu_half(float *d_out, void *d_half, zt_dtype half_dtype, const float *d_gate, const float *d_up,
                                  int64_t n);
ZT_INTERNAL int zt_cu_activation_half(int act, float *d_out, void *d_half, zt_dtype half_dtype, const float *d_x,
                                      const float *d_mul, int64_t n);
ZT_INTERNAL void zt_cu_copy_2d(float *d_dst, int64_t ldd, const float *d_src, int64_t lds, int64_t rows, int64_t cols);

// rows.cu
ZT_INTERNAL void zt_cu_softmax(float *d_out, const float *d_x, int64_t rows, int64_t dim);
ZT_INTERNAL void zt_cu_log_softmax(float *d_out, const float *d_x, int64_t rows, int64_t dim);
ZT_INTERNAL void zt_cu_token_logprobs(float *d_out, const float *d_x, const int32_t *d_targets, int64_t rows, int64_t dim);
ZT_INTERNAL void zt_cu_layernorm(float *d_out, const float *d_x, const float *d_gamma, const float *d_beta,
                                 int64_t rows, int64_t dim, float eps);
ZT_INTERNAL void zt_cu_rmsnorm(float *d_out, const float *d_x, const float *d_gamma, int64_t rows, int64_t dim, float eps);
ZT_INTERNAL int zt_cu_rmsnorm_half(float *d_out, void *d_half, zt_dtype half_dtype, const float *d_x, const float *d_gamma,
                                   int64_t rows, int64_t dim, float eps);
ZT_INTERNAL int zt_cu_layernorm_half(float *d_out, void *d_half, zt_dtype half_dtype, const float *d_x, const float *d_gamma,
                                     const float *d_beta, int64_t rows, int64_t dim, float eps);

// rows.cu (streamed head)
ZT_INTERNAL void zt_cu_logsumexp_panel(float *d_state, const float *d_x, int64_t ldx, const int32_t *d_targets, int64_t rows,
                                       int64_t cols, int64_t col0);

// dequant.cu
ZT_INTERNAL int64_t zt_cu_dequantize_rows(void *d_out, zt_dtype out_dtype, const void *d_src, int type, int64_t src_rows,
                                          int64_t cols, const int32_t *d_rows, int64_t rows, int count_bad);

// embedding.cu. The bad-id count of a gather (embedding, dequantize_rows): start zeroes the
// device counter and counts ids outside [0, vocab) on the stream; finish waits and returns it (−1
// on a device error).
ZT_INTERNAL int zt_cu_count_bad_ids_start(zt_ctx *c, const int32_t *d_ids, int64_t n, int64_t vocab, const char *what);
ZT_INTERNAL int64_t zt_cu_count_bad_ids_finish(zt_ctx *c, const char *what);
ZT_INTERNAL int64_t zt_cu_embedding(float *d_out, const void *d_table, zt_dtype dtype, int64_t vocab, int64_t dim,
                                    const int32_t *d_ids, int64_t n, int count_bad);
// rope.cu
ZT_INTERNAL void zt_cu_rope(float *d_x, const int32_t *d_pos, int64_t n, int64_t heads, int64_t head_dim,
                            int64_t rot_dim, const float *d_inv_freq, float scale);
// attention.cu
ZT_INTERNAL void zt_cu_attention(float *d_out, const float *d_q, const float *d_k, const float *d_v,
                                 const uint8_t *d_key_mask, int64_t B, int64_t T, int64_t S, int64_t S_cap,
                                 int64_t Hq, int64_t Hkv, int64_t D, float scale, int64_t window, float softcap);
ZT_INTERNAL int zt_cu_attention_half(float *d_out, void *d_half, zt_dtype half_dtype, const float *d_q, const float *d_k,
                                     const float *d_v, const uint8_t *d_key_mask, int64_t B, int64_t T, int64_t S,
                                     int64_t S_cap, int64_t Hq, int64_t Hkv, int64_t D, float scale, int64_t window,
                                     float softcap);
// gemm.cu
ZT_INTERNAL int zt_cu_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                            const float *d_A, int64_t lda, const float *d_B, int64_t ldb, float beta,
                            float *d_C, int64_t ldc);
ZT_INTERNAL int zt_cu_sgemm_strided_batched(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                                            const float *d_A, int64_t lda, int64_t sa, const float *d_B, int64_t ldb,
                                            int64_t sb, float beta, float *d_C, int64_t ldc, int64_t sc, int64_t batch);
// C(M,N) = alpha·op(A)·op(B) + beta·C with bf16 A, B (row-major) and f32 C, f32 accumulation.
ZT_INTERNAL int zt_cu_gemm_bf16(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                                const uint16_t *d_A, int64_t lda, const uint16_t *d_B, int64_t ldb, float beta,
                                float *d_C, int64_t ldc);
// The same for `batch` products, matrix k of A, B, C at k·sa, k·sb, k·sc (cublasGemmStridedBatchedEx).
ZT_INTERNAL int zt_cu_gemm_bf16_strided_batched(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                                                const uint16_t *d_A, int64_t lda, int64_t sa, const uint16_t *d_B,
                                                int64_t ldb, int64_t sb, float beta, float *d_C, int64_t ldc, int64_t sc,
                                                int64_t batch);
// Mixed precision (zt_backend_api.h, gemm_mixed): A rounded to b_dtype in the workspace, GemmEx.
ZT_INTERNAL int zt_cu_gemm_mixed(int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *d_A,
                                 int64_t lda, const void *d_B, zt_dtype b_dtype, int64_t ldb, float beta, float *d_C,
                                 int64_t ldc, void *d_workspace);
ZT_INTERNAL size_t zt_cu_gemm_mixed_workspace(int64_t M, int64_t N, int64_t K);
// gemm_mixed with A already 16-bit (zt_backend_api.h, gemm_half): the same cublasGemmEx call.
ZT_INTERNAL int zt_cu_gemm_half(int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void *d_A, int64_t lda,
                                const void *d_B, zt_dtype dtype, int64_t ldb, float beta, float *d_C, int64_t ldc,
                                void *d_workspace);
ZT_INTERNAL int zt_cu_set_tf32(int on);
// api.cu: an allocation owned by the library itself (counted as `library` in memory_stats).
ZT_INTERNAL int zt_cu_malloc_library(void **d_ptr, size_t bytes);
// reduce.cu: Σa² (d_b NULL) or Σ(a − b)² in double of `count` ≤ ZT_RED_GROUP arrays of n elements
// (array k at element k·stride) into d_out[k], enqueued on c's stream; deterministic (reduce.cuh).
#define ZT_RED_GROUP 64
ZT_INTERNAL int zt_cu_sumsq_enqueue(zt_ctx *c, const void *d_a, const void *d_b, zt_dtype dtype, int64_t n, int64_t count,
                                    int64_t stride, double *d_out, const char *what);
// Device room for ZT_RED_GROUP results (the library's reduction scratch, allocated on first use).
ZT_INTERNAL int zt_cu_red_sums(zt_ctx *c, double **d_sums);
// newton_schulz.cu
ZT_INTERNAL int zt_cu_newton_schulz(const float *d_src, float *d_dst, int64_t rows, int64_t cols, int steps, float a,
                                    float b, float c, int bf16, float *d_workspace);
ZT_INTERNAL int zt_cu_newton_schulz_batched(const float *d_src, float *d_dst, int64_t batch, int64_t rows, int64_t cols,
                                            int steps, float a, float b, float c, int bf16, float *d_workspace);
// jaguar.cu
ZT_INTERNAL void zt_cu_jaguar_probe(void *d_x, zt_dtype dtype, uint64_t first, uint64_t seed, uint32_t tensor_id,
                                    const zt_jaguar_args *args, float a);
ZT_INTERNAL void zt_cu_jaguar_update(int kind, void *d_x, zt_dtype dtype, float *d_m, uint64_t first, uint64_t seed,
                                     uint32_t tensor_id, const zt_jaguar_args *args);
ZT_INTERNAL void zt_cu_add_scaled(void *d_x, zt_dtype dtype, int64_t n, float alpha, const float *d_dir);
// projection.cu
ZT_INTERNAL void zt_cu_lerp(void *d_out, zt_dtype dtype, const void *d_a, const void *d_b, int64_t n, float alpha);
// local_grad.cu
ZT_INTERNAL void zt_cu_scale_rows(float *d_x, int64_t rows, int64_t cols, const float *d_scales);
ZT_INTERNAL int zt_cu_sum_squares(const float *d_x, int64_t n, double *result);
ZT_INTERNAL int zt_cu_squared_distance(const void *d_a, const void *d_b, zt_dtype dtype, int64_t n, double *result);
ZT_INTERNAL void zt_cu_adam_direction(void *d_x, zt_dtype dtype, float *d_m, float *d_v, const float *d_dir, int64_t n,
                                      const zt_zo_update_args *args);

#endif
