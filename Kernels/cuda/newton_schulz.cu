// Newton–Schulz orthogonalization (docs/optimizers.md) of src(rows, cols) into dst, the CPU's
// algorithm (Kernels/cpu/newton_schulz.c) on cuBLAS:
//   X = src/(‖src‖_F + 1e-7), transposed so rows ≤ cols; steps × { A = X Xᵀ; B = aI + bA (+ cA²);
//   X ← B X } with X ping-ponging between two buffers (no elementwise pass over X).
// Batched (newton_schulz_batched): `batch` matrices of one shape, stored one after another, go
// through the same launches: strided-batched GEMMs and elementwise kernels over the whole batch, so
// a step costs the launches of one matrix. The single-matrix entry is the batched path with batch 1.
// bf16 = 1 and r, n multiples of 8: the GEMMs take bf16 copies of X, A and B as tensor-core
// operands (cublasGemmStridedBatchedEx, f32 accumulate and output), as the released ZO-Muon runs NS
// in bf16; otherwise f32 sgemm. ‖src‖² is summed in double by the deterministic multi-block
// reduction (reduce.cu), so the result is the same bits every run, and never leaves the device.
// Workspace (batch × zt_newton_schulz_workspace floats): X, Y (batch, r, n), A, B (batch, r, r) in
// f32, then the bf16 copies Xh (batch, r, n) and Bh (batch, r, r) (Bh also holds A's copy while A²
// is formed).
#include "kernels.cuh"
#include "numerics.cuh"

// 1/(‖x‖_F + 1e-7) in f32, rounded as the CPU does.
__device__ __forceinline__ float inv_norm(const double *sum) {
    return __fdiv_rn(1.0f, __fadd_rn((float)sqrt(*sum), 1e-7f));
}

// Matrix blockIdx.y: dst(n) = src(n)·inv_norm(sum[blockIdx.y]) (matrices n apart).
__global__ void normalize_kernel(float *dst, const float *src, int64_t n, const double *sum) {
    const int64_t k = blockIdx.y;
    const float inv = inv_norm(sum + k);
    src += k * n;
    dst += k * n;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __fmul_rn(src[i], inv);
}

// Matrix blockIdx.z: dst(cols, rows) = src(rows, cols)ᵀ · (sum ? inv_norm(sum[z]) : 1), through a
// 32×33 shared tile so both the reads and the writes are coalesced. Block (32, 8); grid
// (ceil(cols/32), ceil(rows/32), matrices).
__global__ void transpose_kernel(float *dst, const float *src, int64_t rows, int64_t cols, const double *sum) {
    __shared__ float tile[32][33];
    const int64_t m = blockIdx.z;
    src += m * rows * cols;
    dst += m * rows * cols;
    const float s = sum ? inv_norm(sum + m) : 1.0f;
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

// B(r, r) = b·A + a·I for each of the matrices in A's `total` elements (the CPU's two roundings:
// b·A, then + a on the diagonal). Ah non-NULL: also Ah = bf16(A), the A² GEMM's operand (one pass
// instead of two).
__global__ void poly_init_kernel(float *B, const float *A, uint16_t *Ah, int64_t total, int64_t r, float a, float b) {
    const int64_t rr = r * r;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const float x = A[i], v = __fmul_rn(b, x);
        const int64_t j = i % rr;
        B[i] = (j / r == j % r) ? __fadd_rn(v, a) : v;
        if (Ah) Ah[i] = zt_f32_bf16(x);
    }
}

// dst(n) = bf16(src(n)), round to nearest even.
__global__ void to_bf16_kernel(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = zt_f32_bf16(src[i]);
}

static void launch_transpose(zt_ctx *c, float *dst, const float *src, int64_t rows, int64_t cols, int64_t count,
                             const double *sum) {
    dim3 grid((unsigned)((cols + 31) / 32), (unsigned)((rows + 31) / 32), (unsigned)count);
    transpose_kernel<<<grid, dim3(32, 8), 0, c->stream>>>(dst, src, rows, cols, sum);
}

static void to_bf16(zt_ctx *c, uint16_t *dst, const float *src, int64_t n) {
    to_bf16_kernel<<<zt_grid(c, n, 256), 256, 0, c->stream>>>(dst, src, n);
}

// C_k = α·op(A_k)·op(B_k) + β·C_k for k < batch, f32 or bf16 operands (row-major, packed).
static int gemm(bool bf16, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const void *A, int64_t lda,
                int64_t sa, const void *B, int64_t ldb, int64_t sb, float beta, float *C, int64_t ldc, int64_t sc, int64_t batch) {
    if (bf16)
        return zt_cu_gemm_bf16_strided_batched(ta, tb, M, N, K, alpha, (const uint16_t *)A, lda, sa, (const uint16_t *)B, ldb, sb,
                                               beta, C, ldc, sc, batch);
    return zt_cu_sgemm_strided_batched(ta, tb, M, N, K, alpha, (const float *)A, lda, sa, (const float *)B, ldb, sb, beta, C,
                                       ldc, sc, batch);
}

int zt_cu_newton_schulz_batched(const float *d_src, float *d_dst, int64_t batch, int64_t rows, int64_t cols, int steps,
                                float a, float b, float c, int bf16, float *d_workspace) {
    if (rows <= 0 || cols <= 0 || batch <= 0) return 0;
    zt_ctx *ctx = zt_ctx_get();
    if (!ctx) return zt_ctx_status();
    // The transposing copies' grids have ceil(rows/32) or ceil(cols/32) blocks in y and the
    // matrices in z (≤ 65535 each).
    if ((rows + 31) / 32 > 65535 || (cols + 31) / 32 > 65535)
        return zt_error((int)cudaErrorInvalidValue, "newton_schulz: a dimension above 2 097 120");
    if (batch > 65535) return zt_error((int)cudaErrorInvalidValue, "newton_schulz: %lld matrices in one batch (at most 65535)", (long long)batch);
    const bool transposed = rows > cols;
    const int64_t r = transposed ? cols : rows, n = transposed ? rows : cols, rn = r * n, rr = r * r;
    float *X = d_workspace;                        // (batch, r, n)
    float *Y = X + batch * rn;                     // (batch, r, n)
    float *A = Y + batch * rn;                     // (batch, r, r)
    float *B = A + batch * rr;                     // (batch, r, r)
    uint16_t *Xh = (uint16_t *)(B + batch * rr);   // (batch, r, n) bf16
    uint16_t *Bh = Xh + batch * rn;                // (batch, r, r) bf16
    const bool tc = bf16 && r % 8 == 0 && n % 8 == 0;

    // X_k = src_k / ‖src_k‖ (transposed when rows > cols), ZT_RED_GROUP matrices per reduction.
    double *sums = NULL;
    if (int err = zt_cu_red_sums(ctx, &sums)) return err;
    for (int64_t g = 0; g < batch; g += ZT_RED_GROUP) {
        const int64_t count = batch - g < ZT_RED_GROUP ? batch - g : ZT_RED_GROUP;
        if (int err = zt_cu_sumsq_enqueue(ctx, d_src + g * rn, nullptr, ZT_F32, rn, count, rn, sums, "newton_schulz (norm)"))
            return err;
        if (transposed) launch_transpose(ctx, X + g * rn, d_src + g * rn, rows, cols, count, sums);
        else normalize_kernel<<<dim3(zt_grid(ctx, rn, 256), (unsigned)count), 256, 0, ctx->stream>>>(X + g * rn, d_src + g * rn, rn, sums);
        if (int err = zt_cuda_check(cudaGetLastError(), "newton_schulz (normalize)")) return err;
    }

    for (int s = 0; s < steps; s++) {
        if (tc) to_bf16(ctx, Xh, X, batch * rn);
        const void *Xo = tc ? (const void *)Xh : (const void *)X;
        if (int st = gemm(tc, 0, 1, r, r, n, 1.0f, Xo, n, rn, Xo, n, rn, 0.0f, A, r, rr, batch)) return st;  // A = X Xᵀ
        // B = aI + bA (and A's bf16 copy for A²)
        poly_init_kernel<<<zt_grid(ctx, batch * rr, 256), 256, 0, ctx->stream>>>(B, A, tc && c != 0.0f ? Bh : NULL, batch * rr, r, a, b);
        if (c != 0.0f) {                                                                                      //   + cA²
            const void *Ao = tc ? (const void *)Bh : (const void *)A;
            if (int st = gemm(tc, 0, 0, r, r, r, c, Ao, r, rr, Ao, r, rr, 1.0f, B, r, rr, batch)) return st;
        }
        if (tc) to_bf16(ctx, Bh, B, batch * rr);                                                             // Y = B X
        const void *Bo = tc ? (const void *)Bh : (const void *)B;
        if (int st = gemm(tc, 0, 0, r, n, r, 1.0f, Bo, r, rr, Xo, n, rn, 0.0f, Y, n, rn, batch)) return st;
        float *t = X; X = Y; Y = t;
    }

    if (transposed) launch_transpose(ctx, d_dst, X, r, n, batch, NULL);  // dst_k(rows, cols) = X_k(r = cols, n = rows)ᵀ
    else if (int err = zt_cuda_check(cudaMemcpyAsync(d_dst, X, (size_t)(batch * rn) * sizeof(float), cudaMemcpyDeviceToDevice,
                                                     ctx->stream), "newton_schulz (copy out)"))
        return err;
    return zt_cuda_check(cudaGetLastError(), "newton_schulz");
}

int zt_cu_newton_schulz(const float *d_src, float *d_dst, int64_t rows, int64_t cols, int steps, float a, float b,
                        float c, int bf16, float *d_workspace) {
    return zt_cu_newton_schulz_batched(d_src, d_dst, 1, rows, cols, steps, a, b, c, bf16, d_workspace);
}
