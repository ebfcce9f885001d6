// CPU kernels. Plain C over caller-owned memory: no allocation, no policy. Every kernel that
// touches more than a few rows runs on the zt_threads pool; row-major layouts, shapes in comments.
#ifndef ZT_CPU_H
#define ZT_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "zt_dtype.h"
#include "zt_frontier.h"
#include "zt_jaguar.h"
#include "zt_optim.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---- Perturbation stream (ALGORITHMS.md §2–§3) -------------------------------------------------
// x holds elements [first, first + n) of the tensor (`first` is the global element index of x[0],
// so a tensor can be processed whole, in chunks or in shards with the same z). Math is f32 for
// every storage dtype; f16/bf16 results are rounded to nearest even once per write.

// x += a·z
void zt_perturb(void *x, zt_dtype dtype, int64_t n, uint64_t first,
                uint64_t seed, uint32_t tensor_id, uint32_t stream, float a);

// The MeZO restore + update in one pass (ALGORITHMS.md §3 step 4, as MeZO's code orders it):
// θ = x + restore·z (undo the last perturbation), then θ −= step·z + decay·θ, with restore = ε,
// step = η·g and decay = η·λ (0 for biases and norm gains).
// f32: r = fma(restore, z, x); x' = fma(−decay, r, fma(−step, z, r)).
void zt_restore_update(void *x, zt_dtype dtype, int64_t n, uint64_t first, uint64_t seed,
                       uint32_t tensor_id, uint32_t stream, float restore, float step, float decay);

// One whole MeZO step without forwards, for replaying a trajectory bit for bit: the same roundings
// as perturb(a1), perturb(a2), restore_update(restore, step, decay) run one after another
// (each intermediate rounded to the storage dtype), in one pass. a2 = 0 skips the second.
void zt_replay_step(void *x, zt_dtype dtype, int64_t n, uint64_t first, uint64_t seed, uint32_t tensor_id,
                    uint32_t stream, float a1, float a2, float restore, float step, float decay);

// out = src + a·z (src and out may differ in dtype; shadow perturbation writes a scratch copy).
void zt_perturbed_copy(void *out, zt_dtype out_dtype, const void *src, zt_dtype src_dtype, int64_t n,
                       uint64_t first, uint64_t seed, uint32_t tensor_id, uint32_t stream, float a);

// out = scale·z
void zt_fill_normal(void *out, zt_dtype dtype, int64_t n, uint64_t first,
                    uint64_t seed, uint32_t tensor_id, uint32_t stream, float scale);

// The fused update of a stateful ZO optimizer (zt_optim.h: ZO-SGD-MMT, ZO-Adam, HiZOO) in one pass:
// redo the replayed probes (args->a1, a2), undo the last probe (args->restore), advance the f32
// state s1 (and s2 for Adam; NULL otherwise), which holds the same n elements as x, and write θ.
void zt_zo_update(int kind, void *x, zt_dtype dtype, float *s1, float *s2, int64_t n, uint64_t first, uint64_t seed,
                  uint32_t tensor_id, uint32_t stream, const zt_zo_update_args *args);

// HiZOO's probe: x += a·z/√h, h(n) the f32 diagonal Hessian estimate.
void zt_perturb_hessian(void *x, zt_dtype dtype, const float *h, int64_t n, uint64_t first, uint64_t seed,
                        uint32_t tensor_id, uint32_t stream, float a);
// FZOO, Sparse MeZO, MeZO-SVRG (zt_frontier.h, cpu/frontier.c): the sum of regenerated directions,
// the masked stream ops, and the exact k-th smallest |x| (k in [1, n]) of a host buffer.
void zt_stream_sum(void *out, zt_dtype out_dtype, const void *src, zt_dtype src_dtype, int64_t n, uint64_t first,
                   uint32_t tensor_id, const zt_sum_args *args);
void zt_masked_stream(int op, void *x, zt_dtype dtype, uint8_t *mask, int64_t n, uint64_t first, uint64_t seed,
                      uint32_t tensor_id, uint32_t stream, const zt_masked_args *args);
float zt_kth_abs(const void *x, zt_dtype dtype, int64_t n, int64_t k);

// A 64-bit content hash of bytes (not cryptographic): identifies a base checkpoint in trajectories.
uint64_t zt_hash64(const void *data, uint64_t len, uint64_t seed);

// ---- Conversions -----------------------------------------------------------------------------
// dst = src converted (round to nearest even into f16/bf16; NaN stays NaN, overflow goes to inf).
void zt_convert(void *dst, zt_dtype dst_dtype, const void *src, zt_dtype src_dtype, int64_t n);
float zt_bf16_to_f32(uint16_t h);
uint16_t zt_f32_to_bf16(float f);
float zt_f16_to_f32(uint16_t h);
uint16_t zt_f32_to_f16(float f);

// ---- Elementwise (out may alias an input) ------------------------------------------------------
void zt_add(float *out, const float *a, const float *b, int64_t n);            // out = a + b
void zt_mul(float *out, const float *a, const float *b, int64_t n);            // out = a ⊙ b
void zt_scale(float *out, const float *a, float s, int64_t n);                 // out = s·a
void zt_add_rows(float *x, const float *bias, int64_t rows, int64_t dim);      // x(rows,dim) += bias(dim)
void zt_relu(float *out, const float *x, int64_t n);
void zt_silu(float *out, const float *x, int64_t n);                           // x·σ(x)
void zt_gelu_tanh(float *out, const float *x, int64_t n);                      // GPT-2 "gelu_new"
void zt_gelu_erf(float *out, const float *x, int64_t n);                       // exact GELU
void zt_swiglu(float *out, const float *gate, const float *up, int64_t n);     // silu(gate)·up
// x = cap·tanh(x / cap) in place, f32 (the division, tanh within 1.08 ulp (cpu/fast_tanh.h), the
// product: Gemma 2's final_logit_softcapping). cap > 0 and finite (the Swift backend checks);
// otherwise x is unchanged.
void zt_softcap(float *x, int64_t n, float cap);

// ---- Rows: x(rows, dim); out may be x ------------------------------------------------------------
void zt_softmax(float *out, const float *x, int64_t rows, int64_t dim);
void zt_log_softmax(float *out, const float *x, int64_t rows, int64_t dim);
// out(rows) = log-softmax(x)[row, target[row]] without writing the softmax: what scoring needs.
// A negative target gives 0 (ignored position).
// One column panel of a row-wise log-sum-exp streamed over panels (a head too large to hold as
// one f32 matrix): state (rows, 3) = running max m, running Σexp(x − m), and the target's logit;
// start from (−inf, 0, 0). For each row r: m' = max(m, max x_r), s' = s·exp(m − m') +
// Σ exp(x_r − m'), and the logit of targets[r] when it falls in [col0, col0 + cols). x is
// (rows, cols) with leading dimension ldx. log p(target) = (t − m) − log s after the last panel.
void zt_logsumexp_panel(float *state, const float *x, int64_t ldx, const int32_t *targets, int64_t rows, int64_t cols,
                        int64_t col0);
void zt_token_logprobs(float *out, const float *x, const int32_t *targets, int64_t rows, int64_t dim);
// (x − mean)/sqrt(var + eps)·gamma + beta, biased variance; gamma/beta may be NULL (1 and 0).
void zt_layernorm(float *out, const float *x, const float *gamma, const float *beta,
                  int64_t rows, int64_t dim, float eps);
// x / sqrt(mean(x²) + eps)·gamma; gamma may be NULL.
void zt_rmsnorm(float *out, const float *x, const float *gamma, int64_t rows, int64_t dim, float eps);

// ---- Embedding ---------------------------------------------------------------------------------
// out(n, dim) = table(vocab, dim)[ids(n)], table in any storage dtype. Rows of out-of-range ids are
// zeroed; returns how many there were (0 = all valid).
int64_t zt_embedding(float *out, const void *table, zt_dtype dtype, int64_t vocab, int64_t dim,
                     const int32_t *ids, int64_t n);

// ---- Rotary position embedding (GPT-NeoX / Hugging Face layout) ------------------------------
// x(n, heads, head_dim) in place. For token t at position pos[t], the first rot_dim dims of each
// head are rotated in pairs (i, i + rot_dim/2), i < rot_dim/2, by angle pos[t]·inv_freq[i]
// (f32 product, as transformers computes it). inv_freq(rot_dim/2) carries theta and rope scaling.
// rot_dim must be even. scale multiplies cos and sin (f32 products, before the rotation), as
// transformers applies a LongRoPE/YaRN attention factor (cos·attention_scaling): the rotated dims
// are x·(cos·scale) − y·(sin·scale); scale = 1 is exact (the unscaled rotation).
void zt_rope(float *x, const int32_t *pos, int64_t n, int64_t heads, int64_t head_dim,
             int64_t rot_dim, const float *inv_freq, float scale);

// ---- Attention ---------------------------------------------------------------------------------
// Causal attention with a key padding mask, grouped-query aware, reading a KV cache in place.
//   q(B, T, Hq, D); k and v (B, S_cap, Hkv, D) of which the first S ≥ T positions are used (S_cap
//   is the cache capacity, the batch stride; S_cap = S without a cache). The T queries are the
//   last T positions: query t sits at key index S − T + t, so S − T is the cached length.
//   Hq % Hkv == 0 and query head h reads kv head h / (Hq / Hkv). key_mask(B, S_cap): 1 = attend,
//   0 = padding (NULL: all). window > 0: sliding window (transformers' sliding_window_overlay),
//   query t at key index i = S − T + t sees only keys i − window < j ≤ i (window keys including
//   itself); 0 = no window. out(B, T, Hq, D) = softmax(cap(scale·q kᵀ) over allowed keys) v; a query
//   with no allowed key gets 0. out must not alias q, k or v (it is the running accumulator).
//   softcap > 0 (Gemma 2's attn_logit_softcapping): cap(s) = softcap·tanh(s / softcap) in f32 on
//   each score after the scale and before the mask and softmax, as transformers applies it;
//   softcap = 0: cap(s) = s, the step skipped (bit for bit the kernel without it).
// Online (flash-style) softmax: no score matrix is stored; a window is a key range (O(window) per
// query). A row's bits do not depend on how many padded keys precede the sequence (key tiles start
// at the row's first unmasked key); window ≥ S gives exactly the unwindowed result. CPU: a negative
// window counts as 0, a negative or NaN softcap as 0 (the CUDA twin reports both as errors); an
// infinite softcap is none on both (the limit).
void zt_attention(float *out, const float *q, const float *k, const float *v, const uint8_t *key_mask,
                  int64_t B, int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                  int64_t window, float softcap);

// dst(rows, cols) with leading dimension ldd = src(rows, cols) with leading dimension lds (f32).
void zt_copy_2d(float *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows, int64_t cols);

// Host buffers of the CPU backend (host_alloc.c): 64-byte aligned, not zeroed; ≥ 4 MiB on huge
// pages and kept after free for the next request of their size. 0, or 2 when out of memory.
int zt_host_malloc(void **p, size_t bytes);
int zt_host_free(void *p);

// ---- GEMM through OpenBLAS cblas (row-major) ---------------------------------------------------
// C(M,N) = alpha·op(A)·op(B) + beta·C; op(A) is (M,K), op(B) is (K,N); trans = 1 transposes.
// Sizes and leading dimensions must fit OpenBLAS's 32-bit blasint (< 2^31).
void zt_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
// The same for `batch` independent products at strides (in elements) sa, sb, sc.
void zt_sgemm_strided_batched(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                              const float *A, int64_t lda, int64_t sa, const float *B, int64_t ldb, int64_t sb,
                              float beta, float *C, int64_t ldc, int64_t sc, int64_t batch);
// Mixed precision as the device table's gemm_mixed (zt_backend_api.h): A rounded to b_dtype (bf16
// or f16), B (b_dtype) widened, f32 accumulation; workspace of zt_gemm_mixed_workspace bytes.
// Returns 0, or 1 for an unsupported b_dtype.
size_t zt_gemm_mixed_workspace(int64_t M, int64_t N, int64_t K);
int zt_gemm_mixed(int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const void *B, zt_dtype b_dtype, int64_t ldb, float beta, float *C, int64_t ldc, void *workspace);
// The same with A (M, K) already in `dtype` (bf16 or f16, as B): zt_gemm_half(round(A)) ==
// zt_gemm_mixed(A) bit for bit; workspace of zt_gemm_mixed_workspace bytes.
int zt_gemm_half(int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void *A, int64_t lda, const void *B,
                 zt_dtype dtype, int64_t ldb, float beta, float *C, int64_t ldc, void *workspace);
// The upper triangle (i ≤ j) of C(N,N) = alpha·A·Aᵀ + beta·C, A (N,K); the lower is not written.
void zt_ssyrk_upper(int64_t N, int64_t K, float alpha, const float *A, int64_t lda, float beta, float *C, int64_t ldc);
// Newton–Schulz orthogonalization (ZO-Muon, Jaguar-Muon; docs/optimizers.md) of src(rows, cols)
// into dst (dst may be src): X = src/(‖src‖_F + 1e-7), transposed so rows ≤ cols, then `steps` ×
// { A = X Xᵀ; X = (aI + bA + cA²) X }. Quintic (a, b, c) = (3.4445, −4.7750, 2.0315); cubic
// (1.5, −0.5, 0) skips A². workspace: zt_newton_schulz_workspace(rows, cols) floats.
int64_t zt_newton_schulz_workspace(int64_t rows, int64_t cols);
void zt_newton_schulz(const float *src, float *dst, int64_t rows, int64_t cols, int steps, float a, float b, float c,
                      float *workspace);
// The same for `batch` matrices of one shape stored one after another (matrix k at k·rows·cols of
// src and dst), each exactly what zt_newton_schulz gives it; workspace: batch ×
// zt_newton_schulz_workspace(rows, cols) floats (one slice per matrix).
void zt_newton_schulz_batched(const float *src, float *dst, int64_t batch, int64_t rows, int64_t cols, int steps, float a,
                              float b, float c, float *workspace);

// ---- Matrix-optimizer passes (Kernels/cpu/jaguar.c) -----------------------------------------------
// x += alpha·d (x in any storage dtype, d f32; one rounding per element): applies an update
// direction such as NS(M).
void zt_add_scaled(void *x, zt_dtype dtype, int64_t n, float alpha, const float *d);
// Jaguar's probe: x += a·s on the selected entries of args' selection (zt_jaguar.h); `first` is
// the tensor's global index of x[0], as for the perturbation stream.
void zt_jaguar_probe(void *x, zt_dtype dtype, uint64_t first, uint64_t seed, uint32_t tensor_id,
                     const zt_jaguar_args *args, float a);
// One Jaguar pass of kind zt_jaguar_kind over x and its f32 state m (same n elements, in order).
void zt_jaguar_update(int kind, void *x, zt_dtype dtype, float *m, uint64_t first, uint64_t seed, uint32_t tensor_id,
                      const zt_jaguar_args *args);

// ---- DiZO projection and Zoop's local update (Kernels/cpu/projection.c, local_grad.c) -----------
// out = a + alpha·(b − a) in f32, one rounding into dtype (out, a, b all of dtype; out may be b).
void zt_lerp(void *out, zt_dtype dtype, const void *a, const void *b, int64_t n, float alpha);
// x(rows, cols)[r, :] *= scales[r].
void zt_scale_rows(float *x, int64_t rows, int64_t cols, const float *scales);
// Σ x[i]² in double, independent of the thread count.
double zt_sum_squares(const float *x, int64_t n);
// Σ (a[i] − b[i])² in double (a, b of one float dtype; DiZO's ‖θ − θ⁰‖²), likewise.
double zt_squared_distance(const void *a, const void *b, zt_dtype dtype, int64_t n);
// Adam on the f32 direction d (zt_adam_direction_elem): m, v f32 state of x's n elements.
void zt_adam_direction(void *x, zt_dtype dtype, float *m, float *v, const float *d, int64_t n,
                       const zt_zo_update_args *args);

// OpenBLAS's build configuration string and thread count.
const char *zt_blas_config(void);
int zt_blas_num_threads(void);
void zt_blas_set_num_threads(int n);

#ifdef __cplusplus
}
#endif
#endif
