// Newton–Schulz quintic orthogonalization (ZO-Muon, ALGORITHMS.md §4) of x(rows, cols) in place,
// the CPU's algorithm (Kernels/cpu/newton_schulz.c) on cuBLAS GEMMs:
//   X = x/(‖x‖_F + 1e-7), transposed so rows ≤ cols; steps × { A = X Xᵀ; B = bA + cA²; X = aX + B X }
//   with (a, b, c) = (3.4445, −4.7750, 2.0315).
// Workspace (zt_newton_schulz_workspace floats): X and BX (r, c), A and B (r, r), r = min, c = max.
// ‖x‖² is summed in double on the device (as the CPU) and never leaves it: no host round trip.
#include "kernels.cuh"

#define NS_A 3.4445f
#define NS_B (-4.7750f)
#define NS_C 2.0315f

#define SUM_THREADS 256

// *sum += Σ x², double accumulation, one atomic per block.
__global__ void __launch_bounds__(SUM_THREADS) sum_squares_kernel(const float *x, int64_t n, double *sum) {
    __shared__ double part[SUM_THREADS / 32];
    double s = 0.0;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        s += (double)x[i] * (double)x[i];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xFFFFFFFFu, s, o);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int w = 0; w < SUM_THREADS / 32; w++) t += part[w];
        atomicAdd(sum, t);
    }
}

// 1/(‖x‖_F + 1e-7) in f32, rounded as the CPU does.
__device__ __forceinline__ float inv_norm(const double *sum) {
    return __fdiv_rn(1.0f, __fadd_rn((float)sqrt(*sum), 1e-7f));
}

// dst(n) = src(n)·inv_norm
__global__ void normalize_kernel(float *dst, const float *src, int64_t n, const double *sum) {
    const float inv = inv_norm(sum);
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __fmul_rn(src[i], inv);
}

// dst(cols, rows) = src(rows, cols)ᵀ · (sum ? inv_norm : 1), through a 32×33 shared tile so both
// the reads and the writes are coalesced. Block (32, 8); grid (ceil(cols/32), ceil(rows/32)).
__global__ void transpose_kernel(float *dst, const float *src, int64_t rows, int64_t cols, const double *sum) {
    __shared__ float tile[32][33];
    const float s = sum ? inv_norm(sum) : 1.0f;
    const int64_t c0 = (int64_t)blockIdx.x * 32, r0 = (int64_t)blockIdx.y * 32;
    for (int k = threadIdx.y; k < 32; k += 8) {
        const int64_t r = r0 + k, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[k][threadIdx.x] = src[r * cols + c];
    }
    __syncthreads();
    for (int k = threadIdx.y; k < 32; k += 8) {
        const int64_t c = c0 + k, r = r0 + threadIdx.x;  // dst row c, column r
        if (r < rows && c < cols) dst[c * rows + r] = sum ? __fmul_rn(tile[threadIdx.x][k], s) : tile[threadIdx.x][k];
    }
}

static void launch_transpose(zt_ctx *c, float *dst, const float *src, int64_t rows, int64_t cols, const double *sum) {
    dim3 grid((unsigned)((cols + 31) / 32), (unsigned)((rows + 31) / 32));
    transpose_kernel<<<grid, dim3(32, 8), 0, c->stream>>>(dst, src, rows, cols, sum);
}

int zt_cu_newton_schulz(float *d_x, int64_t rows, int64_t cols, int steps, float *d_workspace) {
    if (rows <= 0 || cols <= 0) return 0;
    zt_ctx *ctx = zt_ctx_get();
    if (!ctx) return zt_ctx_status();
    // The transposing copy's grid has ceil(rows/32) blocks in y (≤ 65535).
    if (rows > cols && (rows + 31) / 32 > 65535) return zt_error((int)cudaErrorInvalidValue, "newton_schulz: too many rows");
    const bool transposed = rows > cols;
    const int64_t r = transposed ? cols : rows, c = transposed ? rows : cols;
    float *X = d_workspace;   // (r, c)
    float *BX = X + r * c;    // (r, c)
    float *A = BX + r * c;    // (r, r)
    float *Bm = A + r * r;    // (r, r)
    const int64_t n = rows * cols;

    if (int err = zt_cuda_check(cudaMemsetAsync(ctx->d_sum, 0, sizeof(double), ctx->stream), "newton_schulz (norm)"))
        return err;
    sum_squares_kernel<<<zt_grid(ctx, n, SUM_THREADS, 4), SUM_THREADS, 0, ctx->stream>>>(d_x, n, ctx->d_sum);
    if (transposed) launch_transpose(ctx, X, d_x, rows, cols, ctx->d_sum);  // X(cols, rows) = xᵀ / ‖x‖
    else normalize_kernel<<<zt_grid(ctx, n, 256), 256, 0, ctx->stream>>>(X, d_x, n, ctx->d_sum);
    if (int err = zt_cuda_check(cudaGetLastError(), "newton_schulz (normalize)")) return err;

    for (int s = 0; s < steps; s++) {
        int st = zt_cu_sgemm(0, 1, r, r, c, 1.0f, X, c, X, c, 0.0f, A, r);          // A = X Xᵀ
        if (st) return st;
        zt_cu_scale(Bm, A, NS_B, r * r);                                             // B = bA
        st = zt_cu_sgemm(0, 0, r, r, r, NS_C, A, r, A, r, 1.0f, Bm, r);              //   + cA²
        if (st) return st;
        st = zt_cu_sgemm(0, 0, r, c, r, 1.0f, Bm, r, X, c, 0.0f, BX, c);             // BX = B X
        if (st) return st;
        zt_cu_axpby(X, NS_A, X, BX, r * c);                                          // X = aX + BX
    }

    if (transposed) launch_transpose(ctx, d_x, X, r, c, NULL);  // x(rows, cols) = X(r = cols, c = rows)ᵀ
    else if (int err = zt_cuda_check(cudaMemcpyAsync(d_x, X, (size_t)n * sizeof(float), cudaMemcpyDeviceToDevice,
                                                     ctx->stream), "newton_schulz (copy out)"))
        return err;
    return zt_cuda_check(cudaGetLastError(), "newton_schulz");
}
