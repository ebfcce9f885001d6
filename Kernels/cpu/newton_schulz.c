// Newton–Schulz orthogonalization on the CPU, on top of the BLAS GEMMs (zt_cpu.h).
//
// Each iteration is X ← p(X Xᵀ)·X with p(A) = aI + bA + cA²: the quintic of Muon and ZO-Muon
// (3.4445, −4.7750, 2.0315) or the cubic of Jaguar-Muon (1.5, −0.5, 0). Both act on the singular
// values only, σ ← aσ + bσ³ + cσ⁵, after a Frobenius normalisation that puts every σ in [0, 1].
// The polynomial matrix B = aI + bA + cA² is formed first (c = 0 skips A²), so each iteration is
// two or three products and no elementwise pass over X: the new X is written to the other half of
// a ping-pong pair. A = XXᵀ and A² = AAᵀ are symmetric: SYRK computes their upper triangles (half
// the FLOPs of a GEMM) and a mirror copy fills the rest; only B·X is a full GEMM.
#include <math.h>

#include "zt_cpu.h"

// M(r, r): the strictly lower triangle from the upper one.
static void mirror_upper(float *M, int64_t r) {
    for (int64_t i = 1; i < r; i++)
        for (int64_t j = 0; j < i; j++) M[i * r + j] = M[j * r + i];
}

int64_t zt_newton_schulz_workspace(int64_t rows, int64_t cols) {
    int64_t r = rows < cols ? rows : cols, c = rows < cols ? cols : rows;
    // X ping-pong (r, c) ×2 and A, B (r, r) in f32; then room for a device's bf16 copies of X and
    // B (r·c + r·r halves), unused here, so one size serves every backend.
    return 2 * r * c + 2 * r * r + (r * c + r * r + 1) / 2 + 64;
}

void zt_newton_schulz(const float *src, float *dst, int64_t rows, int64_t cols, int steps, float a, float b, float c,
                      float *workspace) {
    if (rows <= 0 || cols <= 0) return;
    const int transposed = rows > cols;
    const int64_t r = transposed ? cols : rows, n = transposed ? rows : cols;
    float *X = workspace;       // (r, n)
    float *Y = X + r * n;       // (r, n)
    float *A = Y + r * n;       // (r, r)
    float *B = A + r * r;       // (r, r)

    double ss = 0;              // ‖src‖²_F in double, in a fixed order: the same bits every run
    for (int64_t i = 0; i < rows * cols; i++) ss += (double)src[i] * src[i];
    const float inv = 1.0f / ((float)sqrt(ss) + 1e-7f);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            const float v = src[i * cols + j] * inv;
            if (transposed) X[j * n + i] = v; else X[i * n + j] = v;
        }

    for (int s = 0; s < steps; s++) {
        zt_ssyrk_upper(r, n, 1.0f, X, n, 0.0f, A, r);                       // A = X Xᵀ (upper)
        mirror_upper(A, r);
        for (int64_t i = 0; i < r * r; i++) B[i] = b * A[i];
        for (int64_t i = 0; i < r; i++) B[i * r + i] += a;                  // B = aI + bA
        if (c != 0.0f) {                                                    //   + cA² (A = Aᵀ)
            zt_ssyrk_upper(r, r, c, A, r, 1.0f, B, r);
            mirror_upper(B, r);
        }
        zt_sgemm(0, 0, r, n, r, 1.0f, B, r, X, n, 0.0f, Y, n);              // Y = B X
        float *t = X; X = Y; Y = t;
    }

    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) dst[i * cols + j] = transposed ? X[j * n + i] : X[i * n + j];
}

// Matrix by matrix: on the CPU each GEMM already spreads over every core (OpenBLAS), and each
// matrix takes its own workspace slice, so the bits are the single-matrix kernel's.
void zt_newton_schulz_batched(const float *src, float *dst, int64_t batch, int64_t rows, int64_t cols, int steps, float a,
                              float b, float c, float *workspace) {
    const int64_t n = rows * cols, ws = zt_newton_schulz_workspace(rows, cols);
    for (int64_t k = 0; k < batch; k++)
        zt_newton_schulz(src + k * n, dst + k * n, rows, cols, steps, a, b, c, workspace + k * ws);
}
