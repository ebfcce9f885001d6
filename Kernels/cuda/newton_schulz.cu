// Newton–Schulz orthogonalization (docs/optimizers.md) of src(rows, cols) into dst, the CPU's
// algorithm (Kernels/cpu/newton_schulz.c) on cuBLAS:
//   X = src/(‖src‖_F + 1e-7), transposed so rows ≤ cols; steps × { A = X Xᵀ; B = aI + bA (+ cA²);
//   X ← B X } with X ping-ponging between two buffers (no elementwise pass over X).
// bf16 = 1 and r, n multiples of 8: the GEMMs take bf16 copies of X, A and B as tensor-core
// operands (cublasGemmEx, f32 accumulate and output), as the released ZO-Muon runs NS in bf16;
// otherwise f32 sgemm. ‖src‖² is summed in double by one block in a fixed order (no atomics), so
// the result is the same bits every run, and never leaves the device (zt_cu_sum_squares_to,
// local_grad.cu).
// Workspace (zt_newton_schulz_workspace floats): X, Y (r, n), A, B (r, r) in f32, then the bf16
// copies Xh (r, n) and Bh (r, r) (Bh also holds A's copy while A² is formed).
#include "kernels.cuh"
#include "numerics.cuh"

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

// B(r, r) = b·A + a·I (the CPU's two roundings: b·A, then + a on the diagonal).
__global__ void poly_init_kernel(float *B, const float *A, int64_t r, float a, float b) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < r * r; i += (int64_t)gridDim.x * blockDim.x) {
        const float v = __fmul_rn(b, A[i]);
        B[i] = (i / r == i % r) ? __fadd_rn(v, a) : v;
    }
}

// dst(n) = bf16(src(n)), round to nearest even.
__global__ void to_bf16_kernel(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = zt_f32_bf16(src[i]);
}

static void launch_transpose(zt_ctx *c, float *dst, const float *src, int64_t rows, int64_t cols, const double *sum) {
    dim3 grid((unsigned)((cols + 31) / 32), (unsigned)((rows + 31) / 32));
    transpose_kernel<<<grid, dim3(32, 8), 0, c->stream>>>(dst, src, rows, cols, sum);
}

static void to_bf16(zt_ctx *c, uint16_t *dst, const float *src, int64_t n) {
    to_bf16_kernel<<<zt_grid(c, n, 256), 256, 0, c->stream>>>(dst, src, n);
}

int zt_cu_newton_schulz(const float *d_src, float *d_dst, int64_t rows, int64_t cols, int steps, float a, float b,
                        float c, int bf16, float *d_workspace) {
    if (rows <= 0 || cols <= 0) return 0;
    zt_ctx *ctx = zt_ctx_get();
    if (!ctx) return zt_ctx_status();
    // The transposing copies' grids have ceil(rows/32) or ceil(cols/32) blocks in y (≤ 65535).
    if ((rows + 31) / 32 > 65535 || (cols + 31) / 32 > 65535)
        return zt_error((int)cudaErrorInvalidValue, "newton_schulz: a dimension above 2 097 120");
    const bool transposed = rows > cols;
    const int64_t r = transposed ? cols : rows, n = transposed ? rows : cols;
    float *X = d_workspace;                  // (r, n)
    float *Y = X + r * n;                    // (r, n)
    float *A = Y + r * n;                    // (r, r)
    float *B = A + r * r;                    // (r, r)
    uint16_t *Xh = (uint16_t *)(B + r * r);  // (r, n) bf16
    uint16_t *Bh = Xh + r * n;               // (r, r) bf16
    const bool tensor_cores = bf16 && r % 8 == 0 && n % 8 == 0;

    zt_cu_sum_squares_to(d_src, rows * cols, ctx->d_sum, ctx->stream);
    if (transposed) launch_transpose(ctx, X, d_src, rows, cols, ctx->d_sum);  // X(cols, rows) = srcᵀ / ‖src‖
    else normalize_kernel<<<zt_grid(ctx, rows * cols, 256), 256, 0, ctx->stream>>>(X, d_src, rows * cols, ctx->d_sum);
    if (int err = zt_cuda_check(cudaGetLastError(), "newton_schulz (normalize)")) return err;

    for (int s = 0; s < steps; s++) {
        int st;
        if (tensor_cores) {
            to_bf16(ctx, Xh, X, r * n);
            st = zt_cu_gemm_bf16(0, 1, r, r, n, 1.0f, Xh, n, Xh, n, 0.0f, A, r);                 // A = X Xᵀ
        } else {
            st = zt_cu_sgemm(0, 1, r, r, n, 1.0f, X, n, X, n, 0.0f, A, r);
        }
        if (st) return st;
        poly_init_kernel<<<zt_grid(ctx, r * r, 256), 256, 0, ctx->stream>>>(B, A, r, a, b);    // B = aI + bA
        if (c != 0.0f) {                                                                         //   + cA²
            if (tensor_cores) {
                to_bf16(ctx, Bh, A, r * r);
                st = zt_cu_gemm_bf16(0, 0, r, r, r, c, Bh, r, Bh, r, 1.0f, B, r);
            } else {
                st = zt_cu_sgemm(0, 0, r, r, r, c, A, r, A, r, 1.0f, B, r);
            }
            if (st) return st;
        }
        if (tensor_cores) {                                                                      // Y = B X
            to_bf16(ctx, Bh, B, r * r);
            st = zt_cu_gemm_bf16(0, 0, r, n, r, 1.0f, Bh, r, Xh, n, 0.0f, Y, n);
        } else {
            st = zt_cu_sgemm(0, 0, r, n, r, 1.0f, B, r, X, n, 0.0f, Y, n);
        }
        if (st) return st;
        float *t = X; X = Y; Y = t;
    }

    if (transposed) launch_transpose(ctx, d_dst, X, r, n, NULL);  // dst(rows, cols) = X(r = cols, n = rows)ᵀ
    else if (int err = zt_cuda_check(cudaMemcpyAsync(d_dst, X, (size_t)(r * n) * sizeof(float), cudaMemcpyDeviceToDevice,
                                                     ctx->stream), "newton_schulz (copy out)"))
        return err;
    return zt_cuda_check(cudaGetLastError(), "newton_schulz");
}
