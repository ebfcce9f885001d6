// Single-precision GEMM through OpenBLAS's cblas interface (row-major). OpenBLAS threads each
// call itself, so nothing here uses the zt_threads pool.
#include "zt_cpu.h"

#include <cblas.h>

static void gemm1(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                  float *C, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb,
                beta, C, (blasint)ldc);
}

void zt_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    gemm1(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void zt_sgemm_strided_batched(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                              const float *A, int64_t lda, int64_t sa, const float *B, int64_t ldb, int64_t sb,
                              float beta, float *C, int64_t ldc, int64_t sc, int64_t batch) {
    if (M <= 0 || N <= 0) return;
    for (int64_t i = 0; i < batch; i++)
        gemm1(trans_a, trans_b, M, N, K, alpha, A + i * sa, lda, B + i * sb, ldb, beta, C + i * sc, ldc);
}

const char *zt_blas_config(void) { return openblas_get_config(); }

int zt_blas_num_threads(void) { return openblas_get_num_threads(); }

void zt_blas_set_num_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }
