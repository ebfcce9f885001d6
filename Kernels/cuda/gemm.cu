// Row-major single-precision GEMM on cuBLAS, loaded at run time with dlopen (nothing links
// cuBLAS at build time, so the library loads on machines without it until a GEMM runs).
//
// Row-major C(M,N) = α·op(A)·op(B) + β·C is, read column-major, Cᵀ(N,M) = α·op(B)ᵀ·op(A)ᵀ + β·Cᵀ:
// cublasSgemm with the operands swapped, m = N, n = M, and the same leading dimensions.
// TF32 tensor cores: set_tf32(1) (the CLI's --precision tf32); cuBLAS's math mode is only changed
// when the setting does. Default: full f32 (CUBLAS_DEFAULT_MATH).
// Mixed precision (gemm_mixed): f32 activations rounded to the weights' bf16/f16 in a workspace,
// then cublasGemmEx with both operands 16-bit and f32 compute and output: the weights are used as
// stored, with no f32 copy.
// Each handle gets a workspace from the library's allocator (cublasSetWorkspace), so the memory
// cuBLAS uses is known and reported (memory_stats) instead of being hidden inside the library.
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <atomic>

#include "kernels.cuh"
#include "numerics.cuh"

// The few cuBLAS declarations we need (values from cublas_api.h; stable across 11–13).
typedef struct cublasContext *cublasHandle_t;
typedef int cublasStatus_t;  // 0 = CUBLAS_STATUS_SUCCESS
enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 };
enum { CUBLAS_STATUS_NOT_INITIALIZED = 1, CUBLAS_STATUS_INVALID_VALUE = 7 };

typedef cublasStatus_t (*cublasCreate_fn)(cublasHandle_t *);
typedef cublasStatus_t (*cublasSetStream_fn)(cublasHandle_t, cudaStream_t);
typedef cublasStatus_t (*cublasSetMathMode_fn)(cublasHandle_t, int);
typedef cublasStatus_t (*cublasSgemm_fn)(cublasHandle_t, int, int, int, int, int, const float *, const float *, int,
                                         const float *, int, const float *, float *, int);
typedef cublasStatus_t (*cublasSgemmStridedBatched_fn)(cublasHandle_t, int, int, int, int, int, const float *,
                                                       const float *, int, long long, const float *, int, long long,
                                                       const float *, float *, int, long long, int);
typedef const char *(*cublasGetStatusString_fn)(cublasStatus_t);
typedef cublasStatus_t (*cublasSetWorkspace_fn)(cublasHandle_t, void *, size_t);
// cublasGemmEx with bf16 operands and f32 output / accumulation (Newton–Schulz on tensor cores).
enum { ZT_CUDA_R_32F = 0, ZT_CUDA_R_16F = 2, ZT_CUDA_R_16BF = 14, ZT_CUBLAS_COMPUTE_32F = 68, ZT_CUBLAS_GEMM_DEFAULT = -1 };
typedef cublasStatus_t (*cublasGemmEx_fn)(cublasHandle_t, int, int, int, int, int, const void *, const void *, int, int,
                                          const void *, int, int, const void *, void *, int, int, int, int);
// cublasGemmStridedBatchedEx likewise (Newton–Schulz over a batch of same-shaped matrices).
typedef cublasStatus_t (*cublasGemmStridedBatchedEx_fn)(cublasHandle_t, int, int, int, int, int, const void *, const void *,
                                                        int, int, long long, const void *, int, int, long long, const void *,
                                                        void *, int, int, long long, int, int, int);

static struct {
    int loaded;  // 0: not tried, 1: ok, −1: failed
    char why[384];
    cublasCreate_fn create;
    cublasSetStream_fn set_stream;
    cublasSetMathMode_fn set_math_mode;
    cublasSgemm_fn sgemm;
    cublasSgemmStridedBatched_fn sgemm_strided_batched;
    cublasGetStatusString_fn status_string;  // may be NULL (old cuBLAS)
    cublasGemmEx_fn gemm_ex;                 // may be NULL: bf16 GEMMs then report an error
    cublasGemmStridedBatchedEx_fn gemm_strided_batched_ex;  // may be NULL: as gemm_ex
    cublasSetWorkspace_fn set_workspace;     // may be NULL (cuBLAS < 11.4): its own workspace then
} cb;

// cuBLAS's recommended workspace on Hopper (32 MiB; 4 MiB suffices before sm_90).
#define ZT_CUBLAS_WORKSPACE ((size_t)32 << 20)
static std::atomic<int> g_tf32{0};

static pthread_mutex_t cb_lock = PTHREAD_MUTEX_INITIALIZER;
static cublasHandle_t cb_handle[ZT_MAX_DEVICES];
static int cb_math[ZT_MAX_DEVICES];  // math mode set on the handle

static void load_cublas(void) {
    const char *names[4] = {getenv("ZOTUNE_CUBLAS"), "libcublas.so.13", "libcublas.so.12", "libcublas.so"};
    void *lib = NULL;
    const char *err = "";
    for (int i = 0; i < 4 && !lib; i++) {
        if (!names[i] || !names[i][0]) continue;
        lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!lib) err = dlerror();
    }
    if (!lib) {
        snprintf(cb.why, sizeof cb.why, "cannot load cuBLAS (libcublas.so.13, .12, libcublas.so; ZOTUNE_CUBLAS=path): %s", err);
        cb.loaded = -1;
        return;
    }
    cb.create = (cublasCreate_fn)dlsym(lib, "cublasCreate_v2");
    cb.set_stream = (cublasSetStream_fn)dlsym(lib, "cublasSetStream_v2");
    cb.set_math_mode = (cublasSetMathMode_fn)dlsym(lib, "cublasSetMathMode");
    cb.sgemm = (cublasSgemm_fn)dlsym(lib, "cublasSgemm_v2");
    cb.sgemm_strided_batched = (cublasSgemmStridedBatched_fn)dlsym(lib, "cublasSgemmStridedBatched");
    cb.status_string = (cublasGetStatusString_fn)dlsym(lib, "cublasGetStatusString");
    cb.gemm_ex = (cublasGemmEx_fn)dlsym(lib, "cublasGemmEx");
    cb.gemm_strided_batched_ex = (cublasGemmStridedBatchedEx_fn)dlsym(lib, "cublasGemmStridedBatchedEx");
    cb.set_workspace = (cublasSetWorkspace_fn)dlsym(lib, "cublasSetWorkspace_v2");
    if (!cb.create || !cb.set_stream || !cb.set_math_mode || !cb.sgemm || !cb.sgemm_strided_batched) {
        snprintf(cb.why, sizeof cb.why, "the cuBLAS found lacks cublasCreate_v2/SetStream_v2/SetMathMode/Sgemm_v2/SgemmStridedBatched");
        cb.loaded = -1;
        return;
    }
    cb.loaded = 1;
}

static int cublas_error(cublasStatus_t st, const char *what) {
    return zt_error((int)st, "%s: cuBLAS status %d (%s)", what, (int)st,
                    cb.status_string ? cb.status_string(st) : "see cublas_api.h");
}

// The current device's handle on the context's stream, math mode as set_tf32 asks.
static cublasHandle_t get_handle(zt_ctx *c, int *status) {
    *status = 0;
    pthread_mutex_lock(&cb_lock);
    if (!cb.loaded) load_cublas();
    if (cb.loaded < 0) {
        pthread_mutex_unlock(&cb_lock);
        *status = zt_error(CUBLAS_STATUS_NOT_INITIALIZED, "%s", cb.why);
        return NULL;
    }
    cublasHandle_t h = cb_handle[c->device];
    if (!h) {
        cublasStatus_t st = cb.create(&h);
        if (st == 0) st = cb.set_stream(h, c->stream);
        if (st == 0 && cb.set_workspace) {
            void *ws = NULL;
            if (zt_cu_malloc_library(&ws, ZT_CUBLAS_WORKSPACE) == 0) st = cb.set_workspace(h, ws, ZT_CUBLAS_WORKSPACE);
        }
        if (st != 0) {
            pthread_mutex_unlock(&cb_lock);
            *status = cublas_error(st, "cublasCreate");
            return NULL;
        }
        cb_handle[c->device] = h;
        cb_math[c->device] = CUBLAS_DEFAULT_MATH;
    }
    const int want = g_tf32.load() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
    if (want != cb_math[c->device]) {
        cublasStatus_t st = cb.set_math_mode(h, want);
        if (st != 0) {
            pthread_mutex_unlock(&cb_lock);
            *status = cublas_error(st, "cublasSetMathMode");
            return NULL;
        }
        cb_math[c->device] = want;
    }
    pthread_mutex_unlock(&cb_lock);
    return h;
}

static bool fits_int(int64_t v) { return v >= 0 && v <= 0x7FFFFFFF; }

// What every GEMM entry point checks first: a context, sizes cuBLAS's ints can hold, a handle (and
// cublasGemmEx when `ex`). Returns the handle, or NULL with *status set.
static cublasHandle_t gemm_handle(const char *what, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                                  int64_t batch, bool ex, zt_ctx **ctx, int *status) {
    *status = 0;
    zt_ctx *c = *ctx = zt_ctx_get();
    if (!c) {
        *status = CUBLAS_STATUS_NOT_INITIALIZED;
        return NULL;
    }
    if (!fits_int(M) || !fits_int(N) || !fits_int(K) || !fits_int(lda) || !fits_int(ldb) || !fits_int(ldc) || !fits_int(batch)) {
        *status = zt_error(CUBLAS_STATUS_INVALID_VALUE, "%s: sizes must fit 32-bit ints (M %lld N %lld K %lld)", what,
                           (long long)M, (long long)N, (long long)K);
        return NULL;
    }
    cublasHandle_t h = get_handle(c, status);
    if (h && ex && !cb.gemm_ex) {
        *status = zt_error(CUBLAS_STATUS_NOT_INITIALIZED, "the cuBLAS found lacks cublasGemmEx");
        return NULL;
    }
    return h;
}

int zt_cu_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float *d_A, int64_t lda, const float *d_B, int64_t ldb, float beta, float *d_C, int64_t ldc) {
    if (M <= 0 || N <= 0) return 0;
    zt_ctx *c;
    int status;
    cublasHandle_t h = gemm_handle("sgemm", M, N, K, lda, ldb, ldc, 1, false, &c, &status);
    if (!h) return status;
    cublasStatus_t st = cb.sgemm(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 (int)N, (int)M, (int)K, &alpha, d_B, (int)ldb, d_A, (int)lda, &beta, d_C, (int)ldc);
    return st ? cublas_error(st, "cublasSgemm") : 0;
}

int zt_cu_sgemm_strided_batched(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                                const float *d_A, int64_t lda, int64_t sa, const float *d_B, int64_t ldb, int64_t sb,
                                float beta, float *d_C, int64_t ldc, int64_t sc, int64_t batch) {
    if (M <= 0 || N <= 0 || batch <= 0) return 0;
    zt_ctx *c;
    int status;
    cublasHandle_t h = gemm_handle("sgemm_strided_batched", M, N, K, lda, ldb, ldc, batch, false, &c, &status);
    if (!h) return status;
    // Stride 0 (a matrix broadcast over the batch) is allowed by cuBLAS for the inputs.
    cublasStatus_t st = cb.sgemm_strided_batched(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                                 trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N, (int)M, (int)K, &alpha,
                                                 d_B, (int)ldb, (long long)sb, d_A, (int)lda, (long long)sa, &beta,
                                                 d_C, (int)ldc, (long long)sc, (int)batch);
    return st ? cublas_error(st, "cublasSgemmStridedBatched") : 0;
}

int zt_cu_gemm_bf16(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *d_A,
                    int64_t lda, const uint16_t *d_B, int64_t ldb, float beta, float *d_C, int64_t ldc) {
    if (M <= 0 || N <= 0) return 0;
    zt_ctx *c;
    int status;
    cublasHandle_t h = gemm_handle("gemm_bf16", M, N, K, lda, ldb, ldc, 1, true, &c, &status);
    if (!h) return status;
    // Row-major as for sgemm: operands swapped, column-major sizes (N, M).
    cublasStatus_t st = cb.gemm_ex(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N, (int)M,
                                   (int)K, &alpha, d_B, ZT_CUDA_R_16BF, (int)ldb, d_A, ZT_CUDA_R_16BF, (int)lda, &beta, d_C,
                                   ZT_CUDA_R_32F, (int)ldc, ZT_CUBLAS_COMPUTE_32F, ZT_CUBLAS_GEMM_DEFAULT);
    return st ? cublas_error(st, "cublasGemmEx (bf16)") : 0;
}

int zt_cu_gemm_bf16_strided_batched(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                                    const uint16_t *d_A, int64_t lda, int64_t sa, const uint16_t *d_B, int64_t ldb,
                                    int64_t sb, float beta, float *d_C, int64_t ldc, int64_t sc, int64_t batch) {
    if (M <= 0 || N <= 0 || batch <= 0) return 0;
    zt_ctx *c;
    int status;
    cublasHandle_t h = gemm_handle("gemm_bf16_strided_batched", M, N, K, lda, ldb, ldc, batch, true, &c, &status);
    if (!h) return status;
    if (!cb.gemm_strided_batched_ex) return zt_error(CUBLAS_STATUS_NOT_INITIALIZED, "the cuBLAS found lacks cublasGemmStridedBatchedEx");
    // Row-major as for sgemm: operands swapped, column-major sizes (N, M).
    cublasStatus_t st = cb.gemm_strided_batched_ex(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                                   (int)N, (int)M, (int)K, &alpha, d_B, ZT_CUDA_R_16BF, (int)ldb, (long long)sb,
                                                   d_A, ZT_CUDA_R_16BF, (int)lda, (long long)sa, &beta, d_C, ZT_CUDA_R_32F,
                                                   (int)ldc, (long long)sc, (int)batch, ZT_CUBLAS_COMPUTE_32F,
                                                   ZT_CUBLAS_GEMM_DEFAULT);
    return st ? cublas_error(st, "cublasGemmStridedBatchedEx (bf16)") : 0;
}

int zt_cu_set_tf32(int on) {
    g_tf32.store(on ? 1 : 0);
    return 0;
}

// A (M,K) f32 with leading dimension lda → packed (M,K) 16-bit, rounded as zt_convert rounds.
template <int DT>
__global__ void round_rows_kernel(uint16_t *out, const float *a, int64_t M, int64_t K, int64_t lda) {
    const int64_t n = M * K;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const float v = a[(i / K) * lda + i % K];
        out[i] = DT == ZT_BF16 ? zt_f32_bf16(v) : zt_f32_f16(v);
    }
}

size_t zt_cu_gemm_mixed_workspace(int64_t M, int64_t N, int64_t K) {
    (void)N;
    return (size_t)(M * K) * sizeof(uint16_t);
}

// C = α·A16·op(B) + β·C: both operands 16-bit as stored, GemmEx with f32 compute and output.
static int gemm_ex_16(cublasHandle_t h, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void *a16,
                      int64_t lda, const void *d_B, zt_dtype b_dtype, int64_t ldb, float beta, float *d_C, int64_t ldc,
                      const char *what) {
    const int type = b_dtype == ZT_BF16 ? ZT_CUDA_R_16BF : ZT_CUDA_R_16F;
    // Row-major as for sgemm: operands swapped, column-major sizes (N, M).
    cublasStatus_t st = cb.gemm_ex(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, (int)N, (int)M, (int)K, &alpha,
                                   d_B, type, (int)ldb, a16, type, (int)lda, &beta, d_C, ZT_CUDA_R_32F, (int)ldc,
                                   ZT_CUBLAS_COMPUTE_32F, ZT_CUBLAS_GEMM_DEFAULT);
    return st ? cublas_error(st, what) : 0;
}

int zt_cu_gemm_mixed(int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *d_A, int64_t lda,
                     const void *d_B, zt_dtype b_dtype, int64_t ldb, float beta, float *d_C, int64_t ldc, void *d_workspace) {
    if (b_dtype != ZT_BF16 && b_dtype != ZT_F16)
        return zt_error(CUBLAS_STATUS_INVALID_VALUE, "gemm_mixed: weights must be bf16 or f16 (dtype %d)", (int)b_dtype);
    if (M <= 0 || N <= 0) return 0;
    zt_ctx *c;
    int status;
    cublasHandle_t h = gemm_handle("gemm_mixed", M, N, K, lda, ldb, ldc, 1, true, &c, &status);
    if (!h) return status;
    uint16_t *a16 = (uint16_t *)d_workspace;
    const unsigned grid = zt_grid(c, M * K, 256);
    if (b_dtype == ZT_BF16) round_rows_kernel<ZT_BF16><<<grid, 256, 0, c->stream>>>(a16, d_A, M, K, lda);
    else round_rows_kernel<ZT_F16><<<grid, 256, 0, c->stream>>>(a16, d_A, M, K, lda);
    if (int err = zt_cuda_check(cudaGetLastError(), "gemm_mixed (round activations)")) return err;
    return gemm_ex_16(h, trans_b, M, N, K, alpha, a16, K, d_B, b_dtype, ldb, beta, d_C, ldc, "cublasGemmEx (mixed)");  // A packed
}

int zt_cu_gemm_half(int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void *d_A, int64_t lda,
                    const void *d_B, zt_dtype dtype, int64_t ldb, float beta, float *d_C, int64_t ldc, void *d_workspace) {
    (void)d_workspace;
    if (dtype != ZT_BF16 && dtype != ZT_F16)
        return zt_error(CUBLAS_STATUS_INVALID_VALUE, "gemm_half: operands must be bf16 or f16 (dtype %d)", (int)dtype);
    if (M <= 0 || N <= 0) return 0;
    zt_ctx *c;
    int status;
    cublasHandle_t h = gemm_handle("gemm_half", M, N, K, lda, ldb, ldc, 1, true, &c, &status);
    if (!h) return status;
    return gemm_ex_16(h, trans_b, M, N, K, alpha, d_A, lda, d_B, dtype, ldb, beta, d_C, ldc, "cublasGemmEx (half)");
}
