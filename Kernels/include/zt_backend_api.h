// The backend function table: memory entry points plus the kernel set, one table per device.
// The CPU table (zt_cpu_api) points at the kernels of zt_cpu.h; the CUDA table comes from
// libzotune_cuda.so (built by Kernels/build.sh), which nothing links at build time: the Swift
// backend dlopens it, calls zt_cuda_get_api() and checks the ABI version and struct size first.
// Pointers named d_* are device pointers; kernels take the same arguments as their CPU twins in
// zt_cpu.h, may be asynchronous (synchronize() waits) and report errors through last_error().
#ifndef ZT_BACKEND_API_H
#define ZT_BACKEND_API_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "zt_dtype.h"
#include "zt_frontier.h"
#include "zt_jaguar.h"
#include "zt_optim.h"

#ifdef __cplusplus
extern "C" {
#endif

// One tensor of a list-driven stream pass (stream_list).
typedef struct zt_list_item {
    void *x;             // element 0 (device pointer)
    int64_t n;           // elements
    uint64_t first;      // global index of element 0 in the tensor's z stream
    uint32_t tensor_id;
    float decay;         // restore_update's ηλ for this tensor (0: no weight decay)
} zt_list_item;

enum { ZT_LIST_PERTURB = 0, ZT_LIST_RESTORE_UPDATE = 1 };

// One tensor of a list-driven fused optimizer update (zo_update_list): x and its f32 state.
typedef struct zt_zo_list_item {
    void *x;
    float *s1;           // m, Adam's m, HiZOO's H, ZO-Muon's buffer
    float *s2;           // Adam's v or DIRECTION's D; NULL for the other kinds
    int64_t n;
    uint64_t first;
    uint32_t tensor_id;
    float decay;         // this tensor's ηλ (replaces args->decay)
} zt_zo_list_item;

#define ZT_BACKEND_ABI_VERSION 12u
#define ZT_CUDA_ENTRY_POINT "zt_cuda_get_api"

typedef struct zt_backend_api {
    uint32_t abi_version;   // ZT_BACKEND_ABI_VERSION the table was built with
    uint32_t struct_size;   // sizeof(zt_backend_api) the library was built with

    // ---- device and memory (return 0 on success, else a device error code) ----
    int (*device_count)(int *count);
    int (*set_device)(int device);
    int (*device_name)(int device, char *name, size_t len);
    int (*mem_info)(size_t *free_bytes, size_t *total_bytes);
    int (*malloc)(void **d_ptr, size_t bytes);
    int (*free)(void *d_ptr);
    int (*memcpy_h2d)(void *d_dst, const void *src, size_t bytes);
    int (*memcpy_d2h)(void *dst, const void *d_src, size_t bytes);
    int (*memcpy_d2d)(void *d_dst, const void *d_src, size_t bytes);
    int (*memset)(void *d_ptr, int value, size_t bytes);
    int (*synchronize)(void);
    // Last error as text (thread-local; empty string when none).
    const char *(*last_error)(void);

    // ---- perturbation stream ----
    void (*perturb)(void *d_x, zt_dtype dtype, int64_t n, uint64_t first,
                    uint64_t seed, uint32_t tensor_id, uint32_t stream, float a);
    void (*restore_update)(void *d_x, zt_dtype dtype, int64_t n, uint64_t first, uint64_t seed,
                           uint32_t tensor_id, uint32_t stream, float restore, float step, float decay);
    void (*replay_step)(void *d_x, zt_dtype dtype, int64_t n, uint64_t first, uint64_t seed, uint32_t tensor_id,
                        uint32_t stream, float a1, float a2, float restore, float step, float decay);
    void (*perturbed_copy)(void *d_out, zt_dtype out_dtype, const void *d_src, zt_dtype src_dtype, int64_t n,
                           uint64_t first, uint64_t seed, uint32_t tensor_id, uint32_t stream, float a);
    void (*fill_normal)(void *d_out, zt_dtype dtype, int64_t n, uint64_t first,
                        uint64_t seed, uint32_t tensor_id, uint32_t stream, float scale);
    void (*convert)(void *d_dst, zt_dtype dst_dtype, const void *d_src, zt_dtype src_dtype, int64_t n);
    // Fused stateful optimizer updates and HiZOO's probe (zt_cpu.h); args is a host pointer.
    void (*zo_update)(int kind, void *d_x, zt_dtype dtype, float *d_s1, float *d_s2, int64_t n, uint64_t first,
                      uint64_t seed, uint32_t tensor_id, uint32_t stream, const zt_zo_update_args *args);
    void (*perturb_hessian)(void *d_x, zt_dtype dtype, const float *d_h, int64_t n, uint64_t first, uint64_t seed,
                            uint32_t tensor_id, uint32_t stream, float a);
    // perturb (op ZT_LIST_PERTURB: x += a·z) or restore_update (op ZT_LIST_RESTORE_UPDATE, restore a,
    // step, each item's decay) of `count` tensors of one dtype, element for element what the
    // single-tensor entry points give; items is a host array. A device runs many small tensors
    // (norms, biases) in one launch instead of one each.
    void (*stream_list)(int op, const zt_list_item *items, int count, zt_dtype dtype, uint64_t seed, uint32_t stream,
                        float a, float step);
    // zo_update of `count` tensors of one dtype with their states, the scalars of args (host) but
    // each item's decay: element for element what zo_update gives, many small tensors per launch.
    void (*zo_update_list)(int kind, const zt_zo_list_item *items, int count, zt_dtype dtype, uint64_t seed,
                           uint32_t stream, const zt_zo_update_args *args);

    // ---- elementwise and rows (f32) ----
    void (*add)(float *d_out, const float *d_a, const float *d_b, int64_t n);
    void (*mul)(float *d_out, const float *d_a, const float *d_b, int64_t n);
    void (*scale)(float *d_out, const float *d_a, float s, int64_t n);
    void (*add_rows)(float *d_x, const float *d_bias, int64_t rows, int64_t dim);
    void (*relu)(float *d_out, const float *d_x, int64_t n);
    void (*silu)(float *d_out, const float *d_x, int64_t n);
    void (*gelu_tanh)(float *d_out, const float *d_x, int64_t n);
    void (*gelu_erf)(float *d_out, const float *d_x, int64_t n);
    void (*swiglu)(float *d_out, const float *d_gate, const float *d_up, int64_t n);
    void (*softcap)(float *d_x, int64_t n, float cap);  // x = cap·tanh(x / cap) in place
    void (*softmax)(float *d_out, const float *d_x, int64_t rows, int64_t dim);
    void (*log_softmax)(float *d_out, const float *d_x, int64_t rows, int64_t dim);
    void (*token_logprobs)(float *d_out, const float *d_x, const int32_t *d_targets, int64_t rows, int64_t dim);
    void (*layernorm)(float *d_out, const float *d_x, const float *d_gamma, const float *d_beta,
                      int64_t rows, int64_t dim, float eps);
    void (*rmsnorm)(float *d_out, const float *d_x, const float *d_gamma, int64_t rows, int64_t dim, float eps);
    // Returns the number of ids outside [0, vocab) (their rows are zeroed), or −1 on a device
    // error. count_bad = 0: the caller has checked the ids on the host; a device then neither
    // counts nor waits for its stream, and returns 0.
    int64_t (*embedding)(float *d_out, const void *d_table, zt_dtype dtype, int64_t vocab, int64_t dim,
                      const int32_t *d_ids, int64_t n, int count_bad);
    void (*rope)(float *d_x, const int32_t *d_pos, int64_t n, int64_t heads, int64_t head_dim,
                 int64_t rot_dim, const float *d_inv_freq, float scale);
    void (*attention)(float *d_out, const float *d_q, const float *d_k, const float *d_v, const uint8_t *d_key_mask,
                      int64_t B, int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                      int64_t window, float softcap);
    void (*copy_2d)(float *d_dst, int64_t ldd, const float *d_src, int64_t lds, int64_t rows, int64_t cols);

    // ---- GEMM (OpenBLAS / cuBLAS, row-major like zt_sgemm; returns 0 or a BLAS status) ----
    int (*sgemm)(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *d_A, int64_t lda, const float *d_B, int64_t ldb, float beta, float *d_C, int64_t ldc);
    int (*sgemm_strided_batched)(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                                 const float *d_A, int64_t lda, int64_t sa, const float *d_B, int64_t ldb, int64_t sb,
                                 float beta, float *d_C, int64_t ldc, int64_t sc, int64_t batch);
    // Mixed precision (docs/cuda.md, "Precision"): C(M,N) f32 = α·A·op(B) + β·C with A (M,K) f32
    // activations and B low-precision weights (b_dtype ZT_BF16 or ZT_F16; (N,K) when trans_b, else
    // (K,N)). A is rounded to b_dtype (round to nearest even, as zt_convert) and the product is
    // accumulated in f32: on CUDA, cublasGemmEx on tensor cores; on the CPU, an emulation (A rounded,
    // B widened exactly, f32 SGEMM) that is the device's reference. d_workspace holds
    // gemm_mixed_workspace(M, N, K) bytes. Returns 0 or an error code.
    int (*gemm_mixed)(int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *d_A, int64_t lda,
                      const void *d_B, zt_dtype b_dtype, int64_t ldb, float beta, float *d_C, int64_t ldc,
                      void *d_workspace);
    size_t (*gemm_mixed_workspace)(int64_t M, int64_t N, int64_t K);
    // f32 GEMMs (sgemm, batched, Newton–Schulz's f32 path) on TF32 tensor cores (1) or in full f32
    // (0, the default). A device without TF32 (the CPU) returns an error for 1.
    int (*set_tf32)(int on);
    // What the device's allocator holds beyond the bytes asked for: live = bytes handed out after
    // rounding, cached = freed blocks kept for reuse, library = the library's own buffers (cuBLAS
    // workspaces, context scratch). All 0 on the CPU.
    int (*memory_stats)(size_t *live, size_t *cached, size_t *library);
    // ---- matrix optimizers (zt_cpu.h) ----
    // Newton–Schulz of d_src (rows, cols) into d_dst (may alias) with polynomial (a, b, c);
    // d_workspace holds zt_newton_schulz_workspace(rows, cols) floats. bf16 = 1 lets a device use
    // bf16 tensor-core GEMM operands with f32 accumulation where the shapes allow (the CPU is always
    // f32). Returns 0 or an error code.
    int (*newton_schulz)(const float *d_src, float *d_dst, int64_t rows, int64_t cols, int steps, float a, float b,
                         float c, int bf16, float *d_workspace);
    void (*add_scaled)(void *d_x, zt_dtype dtype, int64_t n, float alpha, const float *d_dir);
    void (*jaguar_probe)(void *d_x, zt_dtype dtype, uint64_t first, uint64_t seed, uint32_t tensor_id,
                         const zt_jaguar_args *args, float a);
    void (*jaguar_update)(int kind, void *d_x, zt_dtype dtype, float *d_m, uint64_t first, uint64_t seed,
                          uint32_t tensor_id, const zt_jaguar_args *args);
    // ---- DiZO projection and Zoop's local update (zt_cpu.h) ----
    void (*lerp)(void *d_out, zt_dtype dtype, const void *d_a, const void *d_b, int64_t n, float alpha);
    void (*scale_rows)(float *d_x, int64_t rows, int64_t cols, const float *d_scales);
    // Σx² into *result (host); deterministic on each device. Returns 0 or an error code.
    int (*sum_squares)(const float *d_x, int64_t n, double *result);
    void (*adam_direction)(void *d_x, zt_dtype dtype, float *d_m, float *d_v, const float *d_dir, int64_t n,
                           const zt_zo_update_args *args);
    int (*squared_distance)(const void *d_a, const void *d_b, zt_dtype dtype, int64_t n, double *result);
    // ---- quantized frozen weights (zt_quant.h) ----
    // out(rows, cols) f32 = rows of the GGML-quantized matrix d_src (src_rows, cols): row r is
    // source row d_rows[r] (an embedding gather), or r when d_rows is NULL (a whole matrix before
    // its GEMM). Ids outside [0, src_rows) give zero rows and are counted. Returns that count, or
    // −1 for an unknown type, a ragged cols or a device error.
    // count_bad as for embedding. out_dtype: ZT_F32, or ZT_BF16 / ZT_F16 (rounded to nearest even,
    // as zt_convert) for a whole matrix (d_rows NULL): a block-stored weight decoded for a
    // mixed-precision GEMM.
    int64_t (*dequantize_rows)(void *d_out, zt_dtype out_dtype, const void *d_src, int type, int64_t src_rows,
                               int64_t cols, const int32_t *d_rows, int64_t rows, int count_bad);
    // One vocabulary panel of token log-probs streamed over the head (zt_cpu.h).
    void (*logsumexp_panel)(float *d_state, const float *d_x, int64_t ldx, const int32_t *d_targets, int64_t rows,
                            int64_t cols, int64_t col0);
    // ---- FZOO, Sparse MeZO, MeZO-SVRG (zt_frontier.h; args are host pointers) ----
    // d_out = d_src + Σ_k coef_k·d_k (d_src NULL: in place); see zt_sum_args.
    void (*stream_sum)(void *d_out, zt_dtype out_dtype, const void *d_src, zt_dtype src_dtype, int64_t n,
                       uint64_t first, uint32_t tensor_id, const zt_sum_args *args);
    // Sparse MeZO's masked perturb / update / replay (ZT_MASK_*); d_mask: one byte per element.
    void (*masked_stream)(int op, void *d_x, zt_dtype dtype, uint8_t *d_mask, int64_t n, uint64_t first,
                          uint64_t seed, uint32_t tensor_id, uint32_t stream, const zt_masked_args *args);
    // ---- Newton–Schulz over a batch (docs/cuda.md) ----
    // newton_schulz of `batch` matrices of one shape stored one after another (matrix k at
    // k·rows·cols of d_src and d_dst, which may alias): the same bits each matrix gets from
    // newton_schulz on the same device, in the launches of one matrix (strided-batched GEMMs).
    // d_workspace holds batch × zt_newton_schulz_workspace(rows, cols) floats.
    int (*newton_schulz_batched)(const float *d_src, float *d_dst, int64_t batch, int64_t rows, int64_t cols, int steps,
                                 float a, float b, float c, int bf16, float *d_workspace);
    // gemm_mixed with A (M, K) already rounded to the weights' dtype (an activation rounded once, by
    // convert, and read by several GEMMs: gate and up, or q, k and v stored apart): C(M,N) f32 =
    // α·A·op(B) + β·C, f32 accumulation. gemm_half(round(A)) == gemm_mixed(A) bit for bit on each
    // device. d_workspace holds gemm_mixed_workspace(M, N, K) bytes (the CPU widens into it).
    int (*gemm_half)(int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void *d_A, int64_t lda,
                     const void *d_B, zt_dtype dtype, int64_t ldb, float beta, float *d_C, int64_t ldc, void *d_workspace);
    // ---- activations rounded where they are made (docs/cuda.md, "Precision") ----
    // rmsnorm / swiglu that also write their output rounded to half_dtype (ZT_BF16 or ZT_F16, round
    // to nearest even) into d_half, in the same kernel: the bits convert(rmsnorm(x)) and
    // convert(swiglu(g, u)) give, without the second pass; d_out NULL writes the rounded copy only
    // (d_out non-NULL: the bits of rmsnorm / swiglu). The next GEMMs read d_half through gemm_half.
    // Returns 0, or an error code for another half_dtype.
    int (*rmsnorm_half)(float *d_out, void *d_half, zt_dtype half_dtype, const float *d_x, const float *d_gamma, int64_t rows,
                        int64_t dim, float eps);
    int (*swiglu_half)(float *d_out, void *d_half, zt_dtype half_dtype, const float *d_gate, const float *d_up, int64_t n);
    // ---- CUDA graphs (docs/cuda.md, "Graph capture") ----
    // graph_begin starts recording the device's stream: the entries called until graph_end enqueue
    // nothing but are recorded; graph_end returns the recording as a graph (*graph ≠ 0), which
    // graph_launch replays on the stream in one call, on the addresses recorded. While recording,
    // an entry that must wait for the device (host copies, synchronize, results read on the host,
    // bad-id counts) fails without ending the recording. Blocks malloc'ed while recording belong
    // to the graph until graph_destroy: a free of one keeps it for the graph (reused only by
    // allocations of the same recording), so no other allocation can take an address a replay
    // writes. Buffers made before graph_begin (inputs, outputs, weights) must outlive the graph;
    // upload new inputs into them before each graph_launch. Record after one eager run of the same
    // work (cuBLAS handles, library scratch and kernel attributes are set up on first use, not while
    // recording). The CPU table returns an error ("not supported") from all four, *graph = 0.
    int (*graph_begin)(void);
    int (*graph_end)(uint64_t *graph);
    int (*graph_launch)(uint64_t graph);
    int (*graph_destroy)(uint64_t graph);
    // ---- more activations rounded where they are made (ABI 12; docs/cuda.md, "Precision") ----
    // The same contract as rmsnorm_half: the op's f32 output (d_out; NULL: not written) and its bits
    // rounded to half_dtype (d_half), in the producing kernel, == the op then convert bit for bit.
    // layernorm_half: layernorm (GPT-2, OPT, GPT-NeoX's pre-norms, read by q/k/v or MLP-up).
    int (*layernorm_half)(float *d_out, void *d_half, zt_dtype half_dtype, const float *d_x, const float *d_gamma,
                          const float *d_beta, int64_t rows, int64_t dim, float eps);
    // activation_half: out = act(x), or act(x) ⊙ d_mul when d_mul is non-NULL (a gated MLP's GeGLU:
    // the bits of act then mul); act is a zt_activation_kind. d_out may alias d_x or d_mul (each
    // element is read before it is written).
    int (*activation_half)(int act, float *d_out, void *d_half, zt_dtype half_dtype, const float *d_x, const float *d_mul,
                           int64_t n);
    // attention_half: attention (arguments as `attention`) with its output also rounded (o_proj's input).
    int (*attention_half)(float *d_out, void *d_half, zt_dtype half_dtype, const float *d_q, const float *d_k,
                          const float *d_v, const uint8_t *d_key_mask, int64_t B, int64_t T, int64_t S, int64_t S_cap,
                          int64_t Hq, int64_t Hkv, int64_t D, float scale, int64_t window, float softcap);
} zt_backend_api;

// activation_half's act: the elementwise ops relu, silu, gelu_tanh, gelu_erf of the table.
typedef enum zt_activation_kind { ZT_ACT_RELU = 0, ZT_ACT_SILU = 1, ZT_ACT_GELU_TANH = 2, ZT_ACT_GELU_ERF = 3 } zt_activation_kind;

typedef const zt_backend_api *(*zt_cuda_get_api_fn)(void);

// The oldest GPU generation the CUDA library runs on: it holds sm_80 and sm_90 machine code and
// compute_90 PTX, none of which an sm_7x GPU can run or JIT-compile, and its mixed-precision GEMMs
// need bf16 tensor cores (sm_80). set_device refuses an older GPU with the line below, so `auto`
// falls back to the CPU instead of failing every launch.
#define ZT_CUDA_MIN_MAJOR 8
#define ZT_CUDA_MIN_MINOR 0
static inline int zt_cuda_capability_supported(int major, int minor) {
    return major > ZT_CUDA_MIN_MAJOR || (major == ZT_CUDA_MIN_MAJOR && minor >= ZT_CUDA_MIN_MINOR);
}
// Returns 0 for a supported GPU, else 1 with the one-line reason (naming it and its capability) in msg.
static inline int zt_cuda_capability_message(int device, const char *name, int major, int minor, char *msg, size_t len) {
    if (zt_cuda_capability_supported(major, minor)) return 0;
    snprintf(msg, len, "CUDA device %d (%s) has compute capability %d.%d; zotune needs sm_%d%d or newer (Ampere, Hopper and later)",
             device, name, major, minor, ZT_CUDA_MIN_MAJOR, ZT_CUDA_MIN_MINOR);
    return 1;
}

// The CPU table (Kernels/cpu/cpu_api.c).
const zt_backend_api *zt_cpu_api(void);
// Tests only: a copy of the CPU table whose entry `kernel` ("perturb", "stream_list", "rmsnorm",
// "attention" or "token_logprobs") fails as a CUDA launch does (writes nothing, records a sticky
// error naming it that the next host copy or synchronize returns); NULL for another name. One such
// table exists at a time: a second call replaces the first.
const zt_backend_api *zt_cpu_api_with_failing(const char *kernel);

// Host side (Kernels/cpu/cuda_loader.c): dlopen `path`, resolve the entry point, check the ABI
// version and struct size, and query the device count. Returns 0 and sets *api and *devices, or
// returns -1 with a one-line reason in err. The library stays loaded for the process's lifetime.
int zt_cuda_load(const char *path, const zt_backend_api **api, int *devices, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
