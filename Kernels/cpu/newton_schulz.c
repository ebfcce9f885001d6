// Newton–Schulz quintic orthogonalization on the CPU, on top of the BLAS GEMMs.
#include <math.h>

#include "zt_cpu.h"

#define NS_A 3.4445f
#define NS_B (-4.7750f)
#define NS_C 2.0315f

int64_t zt_newton_schulz_workspace(int64_t rows, int64_t cols) {
    int64_t r = rows < cols ? rows : cols, c = rows < cols ? cols : rows;
    return 2 * r * c + 2 * r * r;  // X and BX (r, c); A and B (r, r)
}

void zt_newton_schulz(float *x, int64_t rows, int64_t cols, int steps, float *workspace) {
    const int transposed = rows > cols;
    const int64_t r = transposed ? cols : rows, c = transposed ? rows : cols;
    float *X = workspace;            // (r, c)
    float *BX = X + r * c;           // (r, c)
    float *A = BX + r * c;           // (r, r)
    float *Bm = A + r * r;           // (r, r)

    double ss = 0;                   // ‖x‖_F in double: the sum of squares of a large matrix
    for (int64_t i = 0; i < rows * cols; i++) ss += (double)x[i] * x[i];
    const float inv = 1.0f / ((float)sqrt(ss) + 1e-7f);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            float v = x[i * cols + j] * inv;
            if (transposed) X[j * c + i] = v; else X[i * c + j] = v;
        }

    for (int s = 0; s < steps; s++) {
        zt_sgemm(0, 1, r, r, c, 1.0f, X, c, X, c, 0.0f, A, r);              // A = X Xᵀ
        for (int64_t i = 0; i < r * r; i++) Bm[i] = NS_B * A[i];
        zt_sgemm(0, 0, r, r, r, NS_C, A, r, A, r, 1.0f, Bm, r);             // B = bA + cA²
        zt_sgemm(0, 0, r, c, r, 1.0f, Bm, r, X, c, 0.0f, BX, c);            // BX = B X
        for (int64_t i = 0; i < r * c; i++) X[i] = NS_A * X[i] + BX[i];     // X = aX + BX
    }

    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) x[i * cols + j] = transposed ? X[j * c + i] : X[i * c + j];
}
