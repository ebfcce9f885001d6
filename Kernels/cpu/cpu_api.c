// The CPU backend's function table: host memory plus the kernels of zt_cpu.h, so the Swift
// backend drives the CPU and a CUDA device through the same entry points.
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zt_backend_api.h"
#include "zt_cpu.h"
#include "zt_half.h"
#include "zt_quant.h"

static int cpu_device_count(int *count) { *count = 1; return 0; }
static int cpu_set_device(int device) { return device == 0 ? 0 : 1; }
static int cpu_device_name(int device, char *name, size_t len) {
    (void)device;
    if (len) { strncpy(name, "cpu", len - 1); name[len - 1] = 0; }
    return 0;
}
static int cpu_mem_info(size_t *free_bytes, size_t *total_bytes) { *free_bytes = 0; *total_bytes = 0; return 0; }
// Host buffers (host_alloc.c): large ones on huge pages, and kept for the next request of their size.
static int cpu_malloc(void **p, size_t bytes) { return zt_host_malloc(p, bytes); }
static int cpu_free(void *p) { return zt_host_free(p); }
static int cpu_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); return 0; }
// Large device-to-device copies run on the worker pool (a same-dtype convert is a parallel memcpy).
static int cpu_copy_parallel(void *dst, const void *src, size_t bytes) {
    if (bytes % 4 == 0) zt_convert(dst, ZT_F32, src, ZT_F32, (int64_t)(bytes / 4));
    else memcpy(dst, src, bytes);
    return 0;
}
static int cpu_memset(void *p, int value, size_t bytes) { memset(p, value, bytes); return 0; }
static int cpu_synchronize(void) { return 0; }
// Only the CPU's "not supported" answers set it (its kernels cannot fail).
static _Thread_local char cpu_error[160];
static const char *cpu_last_error(void) { return cpu_error; }

static int cpu_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    zt_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return 0;
}
static int cpu_sgemm_batched(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                             const float *A, int64_t lda, int64_t sa, const float *B, int64_t ldb, int64_t sb,
                             float beta, float *C, int64_t ldc, int64_t sc, int64_t batch) {
    zt_sgemm_strided_batched(ta, tb, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
    return 0;
}
static int cpu_newton_schulz(const float *src, float *dst, int64_t rows, int64_t cols, int steps, float a, float b,
                             float c, int bf16, float *workspace) {
    (void)bf16;  // OpenBLAS f32
    zt_newton_schulz(src, dst, rows, cols, steps, a, b, c, workspace);
    return 0;
}
static int cpu_newton_schulz_batched(const float *src, float *dst, int64_t batch, int64_t rows, int64_t cols, int steps,
                                     float a, float b, float c, int bf16, float *workspace) {
    (void)bf16;
    zt_newton_schulz_batched(src, dst, batch, rows, cols, steps, a, b, c, workspace);
    return 0;
}

// Counting bad ids costs nothing on the CPU (no stream to wait for): always counted.
static int64_t cpu_embedding(float *out, const void *table, zt_dtype dtype, int64_t vocab, int64_t dim,
                             const int32_t *ids, int64_t n, int count_bad) {
    (void)count_bad;
    return zt_embedding(out, table, dtype, vocab, dim, ids, n);
}
static int64_t cpu_dequantize_rows(void *out, zt_dtype out_dtype, const void *src, int type, int64_t src_rows,
                                   int64_t cols, const int32_t *ids, int64_t rows, int count_bad) {
    (void)count_bad;
    if (out_dtype != ZT_F32) return ids ? -1 : zt_dequantize_rows(out, out_dtype, src, type, rows, cols, NULL);
    return zt_dequantize_gather(out, src, type, src_rows, cols, ids, rows);
}
// The CPU's kernels are already one call per tensor on the pool: a plain loop.
static void cpu_stream_list(int op, const zt_list_item *items, int count, zt_dtype dtype, uint64_t seed, uint32_t stream,
                            float a, float step) {
    for (int i = 0; i < count; i++) {
        const zt_list_item *it = &items[i];
        if (op == ZT_LIST_PERTURB) zt_perturb(it->x, dtype, it->n, it->first, seed, it->tensor_id, stream, a);
        else zt_restore_update(it->x, dtype, it->n, it->first, seed, it->tensor_id, stream, a, step, it->decay);
    }
}
static void cpu_zo_update_list(int kind, const zt_zo_list_item *items, int count, zt_dtype dtype, uint64_t seed,
                               uint32_t stream, const zt_zo_update_args *args) {
    zt_zo_update_args a = *args;
    for (int i = 0; i < count; i++) {
        const zt_zo_list_item *it = &items[i];
        a.decay = it->decay;
        zt_zo_update(kind, it->x, dtype, it->s1, it->s2, it->n, it->first, seed, it->tensor_id, stream, &a);
    }
}
static int cpu_set_tf32(int on) { return on ? 1 : 0; }
static int cpu_memory_stats(size_t *live, size_t *cached, size_t *library) {
    *live = *cached = *library = 0;
    return 0;
}

static int cpu_sum_squares(const float *x, int64_t n, double *result) {
    *result = zt_sum_squares(x, n);
    return 0;
}

static int cpu_squared_distance(const void *a, const void *b, zt_dtype dtype, int64_t n, double *result) {
    *result = zt_squared_distance(a, b, dtype, n);
    return 0;
}

// CUDA graphs replay recorded launches; the CPU has no launches to save: every entry says so (the
// same contract: a nonzero code, *graph = 0, last_error naming the cause).
enum { CPU_NOT_SUPPORTED = 801 };  // cudaErrorNotSupported's code, as a device without the feature
static int cpu_graph_unsupported(const char *what) {
    snprintf(cpu_error, sizeof cpu_error, "%s: CUDA graphs are not supported on the CPU backend", what);
    return CPU_NOT_SUPPORTED;
}
static int cpu_graph_begin(void) { return cpu_graph_unsupported("graph_begin"); }
static int cpu_graph_end(uint64_t *graph) {
    *graph = 0;
    return cpu_graph_unsupported("graph_end");
}
static int cpu_graph_launch(uint64_t graph) { (void)graph; return cpu_graph_unsupported("graph_launch"); }
static int cpu_graph_destroy(uint64_t graph) { return graph ? cpu_graph_unsupported("graph_destroy") : 0; }

static const zt_backend_api cpu_table = {
    .abi_version = ZT_BACKEND_ABI_VERSION,
    .struct_size = sizeof(zt_backend_api),
    .device_count = cpu_device_count,
    .set_device = cpu_set_device,
    .device_name = cpu_device_name,
    .mem_info = cpu_mem_info,
    .malloc = cpu_malloc,
    .free = cpu_free,
    .memcpy_h2d = cpu_copy,
    .memcpy_d2h = cpu_copy,
    .memcpy_d2d = cpu_copy_parallel,
    .memset = cpu_memset,
    .synchronize = cpu_synchronize,
    .last_error = cpu_last_error,
    .perturb = zt_perturb,
    .restore_update = zt_restore_update,
    .replay_step = zt_replay_step,
    .perturbed_copy = zt_perturbed_copy,
    .fill_normal = zt_fill_normal,
    .convert = zt_convert,
    .zo_update = zt_zo_update,
    .perturb_hessian = zt_perturb_hessian,
    .stream_list = cpu_stream_list,
    .zo_update_list = cpu_zo_update_list,
    .add = zt_add,
    .mul = zt_mul,
    .scale = zt_scale,
    .add_rows = zt_add_rows,
    .relu = zt_relu,
    .silu = zt_silu,
    .gelu_tanh = zt_gelu_tanh,
    .gelu_erf = zt_gelu_erf,
    .swiglu = zt_swiglu,
    .softcap = zt_softcap,
    .softmax = zt_softmax,
    .log_softmax = zt_log_softmax,
    .token_logprobs = zt_token_logprobs,
    .layernorm = zt_layernorm,
    .rmsnorm = zt_rmsnorm,
    .embedding = cpu_embedding,
    .rope = zt_rope,
    .attention = zt_attention,
    .copy_2d = zt_copy_2d,
    .sgemm = cpu_sgemm,
    .sgemm_strided_batched = cpu_sgemm_batched,
    .gemm_mixed = zt_gemm_mixed,
    .gemm_mixed_workspace = zt_gemm_mixed_workspace,
    .set_tf32 = cpu_set_tf32,
    .memory_stats = cpu_memory_stats,
    .newton_schulz = cpu_newton_schulz,
    .add_scaled = zt_add_scaled,
    .jaguar_probe = zt_jaguar_probe,
    .jaguar_update = zt_jaguar_update,
    .lerp = zt_lerp,
    .scale_rows = zt_scale_rows,
    .sum_squares = cpu_sum_squares,
    .adam_direction = zt_adam_direction,
    .squared_distance = cpu_squared_distance,
    .dequantize_rows = cpu_dequantize_rows,
    .logsumexp_panel = zt_logsumexp_panel,
    .stream_sum = zt_stream_sum,
    .masked_stream = zt_masked_stream,
    .newton_schulz_batched = cpu_newton_schulz_batched,
    .gemm_half = zt_gemm_half,
    .rmsnorm_half = zt_rmsnorm_half,
    .swiglu_half = zt_swiglu_half,
    .graph_begin = cpu_graph_begin,
    .graph_end = cpu_graph_end,
    .graph_launch = cpu_graph_launch,
    .graph_destroy = cpu_graph_destroy,
    .layernorm_half = zt_layernorm_half,
    .activation_half = zt_activation_half,
    .attention_half = zt_attention_half,
};

// ---- Fault injection (tests) ---------------------------------------------------------------------
// CPU kernels cannot fail, yet the path a device's failed launch takes to the trainer must be tested
// without a GPU. zt_cpu_api_with_failing returns a copy of the table whose entry `kernel` does what
// a CUDA launcher does when its launch fails: writes nothing and records a sticky error naming the
// kernel, which the copy's host copies and synchronize return (with its text from last_error) as the
// CUDA table's do. The ordinary table above is untouched: no check on any kernel's or copy's path.

static int inj_code;  // sticky code of the failing table (tests drive it from one thread)
static char inj_text[256];
static char inj_error[256];
static char inj_kernel[64];

static void inj_fail(void) {
    if (inj_code) return;  // the first failure is kept, as the CUDA table keeps its first
    inj_code = 9;          // cudaErrorInvalidConfiguration, what a bad launch reports
    snprintf(inj_text, sizeof inj_text,
             "%s: invalid configuration argument (cudaErrorInvalidConfiguration, CUDA error 9; injected)", inj_kernel);
}
static int inj_take(void) {
    int code = inj_code;
    if (code) { memcpy(inj_error, inj_text, sizeof inj_error); inj_code = 0; }
    return code;
}
// As on CUDA, the copy itself is done; its status is the sticky error.
static int inj_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); return inj_take(); }
static int inj_synchronize(void) { return inj_take(); }
static const char *inj_last_error(void) { return inj_error; }

static void inj_perturb(void *x, zt_dtype d, int64_t n, uint64_t f, uint64_t s, uint32_t t, uint32_t st, float a) {
    (void)x; (void)d; (void)n; (void)f; (void)s; (void)t; (void)st; (void)a;
    inj_fail();
}
static void inj_stream_list(int op, const zt_list_item *items, int count, zt_dtype d, uint64_t s, uint32_t st, float a,
                            float step) {
    (void)op; (void)items; (void)count; (void)d; (void)s; (void)st; (void)a; (void)step;
    inj_fail();
}
static void inj_rmsnorm(float *out, const float *x, const float *g, int64_t rows, int64_t dim, float eps) {
    (void)out; (void)x; (void)g; (void)rows; (void)dim; (void)eps;
    inj_fail();
}
static void inj_attention(float *out, const float *q, const float *k, const float *v, const uint8_t *m, int64_t B,
                          int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                          int64_t window, float softcap) {
    (void)out; (void)q; (void)k; (void)v; (void)m; (void)B; (void)T; (void)S; (void)S_cap; (void)Hq; (void)Hkv;
    (void)D; (void)scale; (void)window; (void)softcap;
    inj_fail();
}
// attention's rounding twin fails with it (a mixed-precision forward calls that one instead).
static int inj_attention_half(float *out, void *half, zt_dtype hd, const float *q, const float *k, const float *v,
                              const uint8_t *m, int64_t B, int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv,
                              int64_t D, float scale, int64_t window, float softcap) {
    (void)half; (void)hd;
    inj_attention(out, q, k, v, m, B, T, S, S_cap, Hq, Hkv, D, scale, window, softcap);
    return 0;
}
static void inj_token_logprobs(float *out, const float *x, const int32_t *t, int64_t rows, int64_t dim) {
    (void)out; (void)x; (void)t; (void)rows; (void)dim;
    inj_fail();
}

const zt_backend_api *zt_cpu_api_with_failing(const char *kernel) {
    static zt_backend_api table;
    table = cpu_table;
    if (!strcmp(kernel, "perturb")) table.perturb = inj_perturb;
    else if (!strcmp(kernel, "stream_list")) table.stream_list = inj_stream_list;
    else if (!strcmp(kernel, "rmsnorm")) table.rmsnorm = inj_rmsnorm;
    else if (!strcmp(kernel, "attention")) {
        table.attention = inj_attention;
        table.attention_half = inj_attention_half;
    }
    else if (!strcmp(kernel, "token_logprobs")) table.token_logprobs = inj_token_logprobs;
    else return NULL;
    snprintf(inj_kernel, sizeof inj_kernel, "%s", kernel);
    inj_code = 0;
    inj_error[0] = 0;
    table.memcpy_h2d = inj_copy;
    table.memcpy_d2h = inj_copy;
    table.synchronize = inj_synchronize;
    table.last_error = inj_last_error;
    return &table;
}

const zt_backend_api *zt_cpu_api(void) {
    // Activation buffers come and go every forward: keep blocks up to 32 MiB in the heap rather
    // than fresh mmaps (each page-faulted and zeroed by the kernel again), and keep freed heap.
#ifdef M_MMAP_THRESHOLD
    static int tuned = 0;
    if (!tuned) {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
        tuned = 1;
    }
#endif
    return &cpu_table;
}
