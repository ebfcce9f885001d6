// Single-precision GEMM through OpenBLAS's cblas interface (row-major).
//
// Threading: OpenBLAS runs single-threaded and large products are split over the zt_threads pool
// (column blocks of C, or row blocks when C is narrow), each block one cblas call. With OpenBLAS's
// own threads, its idle workers spin (sched_yield) while our pool runs the other kernels of a
// forward and steal the same cores: splitting ourselves measured ~17% faster forwards on 2 cores.
// Blocks of one product are disjoint parts of C, so results equal a single call's per element.
#include "zt_cpu.h"
#include "zt_threads.h"

#include <cblas.h>
#include <pthread.h>

static void gemm1(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                  float *C, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb,
                beta, C, (blasint)ldc);
}

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single_threaded(void) { openblas_set_num_threads(1); }

typedef struct {
    int ta, tb, by_rows;
    int64_t M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
} gemm_ctx;

static void gemm_block(void *p, int64_t lo, int64_t hi) {
    const gemm_ctx *g = p;
    if (g->by_rows) {  // rows [lo, hi) of C: rows of op(A)
        const float *A = g->ta ? g->A + lo : g->A + lo * g->lda;
        gemm1(g->ta, g->tb, hi - lo, g->N, g->K, g->alpha, A, g->lda, g->B, g->ldb, g->beta, g->C + lo * g->ldc, g->ldc);
    } else {           // columns [lo, hi) of C: columns of op(B)
        const float *B = g->tb ? g->B + lo * g->ldb : g->B + lo;
        gemm1(g->ta, g->tb, g->M, hi - lo, g->K, g->alpha, g->A, g->lda, B, g->ldb, g->beta, g->C + lo, g->ldc);
    }
}

void zt_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    pthread_once(&blas_once, blas_single_threaded);
    // Small products run in one call; large ones split along the longer side of C in blocks of
    // at least 64 (whole register tiles of the micro-kernel).
    if (zt_num_threads() < 2 || M * N * K < (int64_t)1 << 21) {
        gemm1(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    gemm_ctx g = {trans_a, trans_b, N < 2 * 64 && M > N, M, N, K, lda, ldb, ldc, alpha, beta, A, B, C};
    zt_parallel_for(g.by_rows ? M : N, 64, gemm_block, &g);
}

void zt_sgemm_strided_batched(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                              const float *A, int64_t lda, int64_t sa, const float *B, int64_t ldb, int64_t sb,
                              float beta, float *C, int64_t ldc, int64_t sc, int64_t batch) {
    if (M <= 0 || N <= 0) return;
    for (int64_t i = 0; i < batch; i++)
        zt_sgemm(trans_a, trans_b, M, N, K, alpha, A + i * sa, lda, B + i * sb, ldb, beta, C + i * sc, ldc);
}

const char *zt_blas_config(void) { return openblas_get_config(); }

int zt_blas_num_threads(void) { return openblas_get_num_threads(); }

void zt_blas_set_num_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }

// ---- SYRK: the upper triangle of C(N,N) = alpha·A·Aᵀ + beta·C, A (N,K) row-major --------------
// Split over the pool in row blocks of equal work (row i of the upper triangle has N − i
// entries): block [lo, hi) is a SYRK on its diagonal square plus a GEMM for the columns right of
// it. The strictly lower triangle is not written.
typedef struct {
    int64_t N, K, lda, ldc, parts;
    float alpha, beta;
    const float *A;
    float *C;
} syrk_ctx;

// First row of part p of `parts`: the cumulative work i·N − i²/2 reaches p/parts of the total.
static int64_t syrk_split(int64_t N, int64_t p, int64_t parts) {
    if (p >= parts) return N;
    const double f = (double)p / (double)parts, n = (double)N;
    const double i = n - n * __builtin_sqrt(1.0 - f);  // solves i·N − i²/2 = f·N²/2
    const int64_t r = (int64_t)i;
    return r < 0 ? 0 : r > N ? N : r;
}

static void syrk_part(void *ctx, int64_t lo, int64_t hi) {
    const syrk_ctx *s = ctx;
    for (int64_t p = lo; p < hi; p++) {
        const int64_t r0 = syrk_split(s->N, p, s->parts), r1 = syrk_split(s->N, p + 1, s->parts);
        if (r1 <= r0) continue;
        const float *A0 = s->A + r0 * s->lda;
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (blasint)(r1 - r0), (blasint)s->K, s->alpha, A0,
                    (blasint)s->lda, s->beta, s->C + r0 * s->ldc + r0, (blasint)s->ldc);
        if (r1 < s->N)  // C[r0:r1, r1:N] = alpha·A[r0:r1]·A[r1:N]ᵀ + beta·C
            gemm1(0, 1, r1 - r0, s->N - r1, s->K, s->alpha, A0, s->lda, s->A + r1 * s->lda, s->lda, s->beta,
                  s->C + r0 * s->ldc + r1, s->ldc);
    }
}

void zt_ssyrk_upper(int64_t N, int64_t K, float alpha, const float *A, int64_t lda, float beta, float *C, int64_t ldc) {
    if (N <= 0) return;
    pthread_once(&blas_once, blas_single_threaded);
    const int64_t parts = (zt_num_threads() < 2 || N * N * K < (int64_t)1 << 21) ? 1 : zt_num_threads();
    syrk_ctx s = {N, K, lda, ldc, parts, alpha, beta, A, C};
    zt_parallel_for(parts, 1, syrk_part, &s);
}

// ---- Mixed precision: the CPU reference of the device's tensor-core GEMM (zt_backend_api.h) -----
// Rounding A to the weights' 16-bit type and widening B are exact operations on the CPU, so the
// emulation differs from a tensor-core product only in the order of the f32 accumulation.

size_t zt_gemm_mixed_workspace(int64_t M, int64_t N, int64_t K) {
    return (size_t)(M * K + N * K) * sizeof(float);
}

int zt_gemm_mixed(int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const void *B, zt_dtype b_dtype, int64_t ldb, float beta, float *C, int64_t ldc, void *workspace) {
    if (b_dtype != ZT_BF16 && b_dtype != ZT_F16) return 1;
    if (M <= 0 || N <= 0) return 0;
    float *a = workspace, *b = a + M * K;
    uint16_t *h = (uint16_t *)b;  // A's 16-bit copy borrows b's space before B is widened into it
    for (int64_t i = 0; i < M; i++) {
        zt_convert(h, b_dtype, A + i * lda, ZT_F32, K);
        zt_convert(a + i * K, ZT_F32, h, b_dtype, K);
    }
    const int64_t rows = trans_b ? N : K, cols = trans_b ? K : N;
    for (int64_t r = 0; r < rows; r++)
        zt_convert(b + r * cols, ZT_F32, (const uint16_t *)B + r * ldb, b_dtype, cols);
    zt_sgemm(0, trans_b, M, N, K, alpha, a, K, b, cols, beta, C, ldc);
    return 0;
}

// gemm_mixed without its rounding: A is already 16-bit (an activation rounded once, by convert, and
// shared by the GEMMs that read it). Widened as gemm_mixed widens its rounded copy, and the same
// SGEMM call: gemm_half(round(A)) is gemm_mixed(A) bit for bit.
int zt_gemm_half(int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void *A, int64_t lda, const void *B,
                 zt_dtype dtype, int64_t ldb, float beta, float *C, int64_t ldc, void *workspace) {
    if (dtype != ZT_BF16 && dtype != ZT_F16) return 1;
    if (M <= 0 || N <= 0) return 0;
    float *a = workspace, *b = a + M * K;
    for (int64_t i = 0; i < M; i++) zt_convert(a + i * K, ZT_F32, (const uint16_t *)A + i * lda, dtype, K);
    const int64_t rows = trans_b ? N : K, cols = trans_b ? K : N;
    for (int64_t r = 0; r < rows; r++)
        zt_convert(b + r * cols, ZT_F32, (const uint16_t *)B + r * ldb, dtype, cols);
    zt_sgemm(0, trans_b, M, N, K, alpha, a, K, b, cols, beta, C, ldc);
    return 0;
}
