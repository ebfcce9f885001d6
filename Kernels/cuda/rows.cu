// Row-wise ops over x(rows, dim): softmax, log-softmax, token log-probs, layernorm, rmsnorm.
// One block per row (grid-stride over rows), threads stride the row, warp-shuffle reductions.
// Same formulas and pass structure as Kernels/cpu/rows.c; sums are reduced in a different order
// and expf/logf are CUDA's, so results agree within a few ulp rather than bit for bit.
// out may equal x: every thread reads x[j] before writing out[j] at the same j, and each pass that
// reads the whole row ends in a block barrier (inside the reduction) before the writes.
#include "kernels.cuh"
#include "numerics.cuh"

// Threads per row: enough to keep 4+ elements per thread on long rows, a full warp on short ones.
static int row_threads(int64_t dim) {
    if (dim >= 8192) return 1024;
    if (dim >= 1024) return 256;
    if (dim >= 128) return 128;
    return 32;
}

static unsigned row_grid(int64_t rows) { return (unsigned)(rows < 65535 * 8 ? rows : 65535 * 8); }

__device__ float row_max(const float *x, int64_t n, float *scratch) {
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = x[j] > m ? x[j] : m;
    return zt_block_max(m, scratch);
}

// Σ exp(x − m) over the row.
__device__ float row_sum_exp(const float *x, int64_t n, float m, float *scratch) {
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += expf(x[j] - m);
    return zt_block_sum(s, scratch);
}

__global__ void softmax_kernel(float *out, const float *x, int64_t rows, int64_t dim) {
    __shared__ float scratch[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * dim;
        float *o = out + r * dim;
        const float m = row_max(xr, dim, scratch);
        float s = 0.0f;
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
            const float e = expf(xr[j] - m);
            o[j] = e;
            s += e;
        }
        const float sum = zt_block_sum(s, scratch);  // ≥ 1: the max contributes e⁰
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) o[j] = o[j] / sum;
        __syncthreads();  // next row's reductions reuse scratch
    }
}

__global__ void log_softmax_kernel(float *out, const float *x, int64_t rows, int64_t dim) {
    __shared__ float scratch[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * dim;
        float *o = out + r * dim;
        const float m = row_max(xr, dim, scratch);
        const float lse = logf(row_sum_exp(xr, dim, m, scratch));
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) o[j] = (xr[j] - m) - lse;
        __syncthreads();
    }
}

// out(rows) = log-softmax(x)[r, target[r]]; 0 for a target outside [0, dim).
__global__ void token_logprobs_kernel(float *out, const float *x, const int32_t *targets, int64_t rows, int64_t dim) {
    __shared__ float scratch[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int32_t t = targets[r];
        if (t < 0 || t >= dim) {  // uniform over the block
            if (threadIdx.x == 0) out[r] = 0.0f;
            continue;
        }
        const float *xr = x + r * dim;
        const float m = row_max(xr, dim, scratch);
        const float lse = logf(row_sum_exp(xr, dim, m, scratch));
        if (threadIdx.x == 0) out[r] = (xr[t] - m) - lse;
    }
}

// One panel of a streamed log-sum-exp (zt_cpu.h): state (rows, 3) = max, Σexp, target logit.
__global__ void logsumexp_panel_kernel(float *state, const float *x, int64_t ldx, const int32_t *targets, int64_t rows,
                                       int64_t cols, int64_t col0) {
    __shared__ float scratch[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * ldx;
        float *st = state + 3 * r;
        const float m = fmaxf(st[0], row_max(xr, cols, scratch));
        const float s = row_sum_exp(xr, cols, m, scratch);
        if (threadIdx.x == 0) {
            st[1] = st[1] * expf(st[0] - m) + s;
            st[0] = m;
            const int64_t t = targets[r];
            if (t >= col0 && t < col0 + cols) st[2] = xr[t - col0];
        }
    }
}

// Corrected two-pass statistics as the CPU: mean, then Σd and Σd² of d = x − mean; the Σd term
// removes the rounding error of the mean.
// HD as rmsnorm_kernel's: ZT_BF16 / ZT_F16 also write the rounded copy (layernorm_half).
template <int HD>
__global__ void layernorm_kernel(float *out, void *half, const float *x, const float *gamma, const float *beta,
                                 int64_t rows, int64_t dim, float eps) {
    __shared__ float scratch[32];
    const float inv_n = 1.0f / (float)dim;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * dim;
        float s = 0.0f;
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) s += xr[j];
        float mean = zt_block_sum(s, scratch) * inv_n;
        float sd = 0.0f, sdd = 0.0f;
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
            const float d = xr[j] - mean;
            sd += d;
            sdd += d * d;
        }
        const float corr = zt_block_sum(sd, scratch) * inv_n;
        float var = zt_block_sum(sdd, scratch) * inv_n - corr * corr;
        if (var < 0.0f) var = 0.0f;
        mean += corr;
        const float rstd = 1.0f / sqrtf(var + eps);
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
            // Each step rounded alone (no fused v·γ + β), as the CPU: every instantiation the same bits.
            float v = __fmul_rn(__fsub_rn(xr[j], mean), rstd);
            if (gamma) v = __fmul_rn(v, gamma[j]);
            if (beta) v = __fadd_rn(v, beta[j]);
            if (HD != ZT_F32) zt_st<HD>(half, r * dim + j, v);
            if (HD == ZT_F32 || out) out[r * dim + j] = v;  // after the read of xr[j]: out may alias x
        }
        __syncthreads();
    }
}

// HD: ZT_F32 writes out only; ZT_BF16 / ZT_F16 also (out NULL: only) the value rounded to HD into
// half, at the store, with the integer rounding convert uses: one kernel makes the f32 value and its
// 16-bit copy for the next GEMMs (gemm_half), where rmsnorm + convert took two passes.
template <int HD>
__global__ void rmsnorm_kernel(float *out, void *half, const float *x, const float *gamma, int64_t rows, int64_t dim,
                               float eps) {
    __shared__ float scratch[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * dim;
        float s = 0.0f;
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) s += xr[j] * xr[j];
        const float rinv = 1.0f / sqrtf(zt_block_sum(s, scratch) / (float)dim + eps);
        // (x·r)·γ in this order, as Hugging Face's RMSNorm (and the CPU) rounds it.
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
            const float v = gamma ? __fmul_rn(__fmul_rn(xr[j], rinv), gamma[j]) : __fmul_rn(xr[j], rinv);
            if (HD != ZT_F32) zt_st<HD>(half, r * dim + j, v);
            if (HD == ZT_F32 || out) out[r * dim + j] = v;  // after the read of xr[j]: out may alias x
        }
        __syncthreads();
    }
}

#define ROW_LAUNCH(kernel, what, ...)                                                              \
    do {                                                                                           \
        if (rows <= 0 || dim <= 0) return;                                                         \
        zt_ctx *c = zt_ctx_get();                                                                  \
        if (!c) return;                                                                            \
        kernel<<<row_grid(rows), row_threads(dim), 0, c->stream>>>(__VA_ARGS__);                   \
        zt_launch_check(what);                                                                     \
    } while (0)

// ROW_LAUNCH for a kernel templated on the half dtype it also writes, in an int entry (0, or the error
// for a half dtype that is not bf16 or f16).
#define HALF_ROW_LAUNCH(kernel, what, ...)                                                                          \
    do {                                                                                                            \
        if (half_dtype != ZT_BF16 && half_dtype != ZT_F16)                                                          \
            return zt_error((int)cudaErrorInvalidValue, what ": half dtype %d is not bf16 or f16", (int)half_dtype); \
        if (rows <= 0 || dim <= 0) return 0;                                                                        \
        zt_ctx *c = zt_ctx_get();                                                                                   \
        if (!c) return zt_ctx_status();                                                                             \
        if (half_dtype == ZT_BF16)                                                                                  \
            kernel<ZT_BF16><<<row_grid(rows), row_threads(dim), 0, c->stream>>>(__VA_ARGS__);                       \
        else                                                                                                        \
            kernel<ZT_F16><<<row_grid(rows), row_threads(dim), 0, c->stream>>>(__VA_ARGS__);                        \
        zt_launch_check(what);                                                                                      \
        return 0;                                                                                                   \
    } while (0)

void zt_cu_softmax(float *d_out, const float *d_x, int64_t rows, int64_t dim) {
    ROW_LAUNCH(softmax_kernel, "softmax", d_out, d_x, rows, dim);
}
void zt_cu_log_softmax(float *d_out, const float *d_x, int64_t rows, int64_t dim) {
    ROW_LAUNCH(log_softmax_kernel, "log_softmax", d_out, d_x, rows, dim);
}
void zt_cu_token_logprobs(float *d_out, const float *d_x, const int32_t *d_targets, int64_t rows, int64_t dim) {
    ROW_LAUNCH(token_logprobs_kernel, "token_logprobs", d_out, d_x, d_targets, rows, dim);
}
void zt_cu_logsumexp_panel(float *d_state, const float *d_x, int64_t ldx, const int32_t *d_targets, int64_t rows,
                           int64_t cols, int64_t col0) {
    const int64_t dim = cols;
    ROW_LAUNCH(logsumexp_panel_kernel, "logsumexp_panel", d_state, d_x, ldx, d_targets, rows, cols, col0);
}
void zt_cu_layernorm(float *d_out, const float *d_x, const float *d_gamma, const float *d_beta,
                     int64_t rows, int64_t dim, float eps) {
    ROW_LAUNCH(layernorm_kernel<ZT_F32>, "layernorm", d_out, NULL, d_x, d_gamma, d_beta, rows, dim, eps);
}
void zt_cu_rmsnorm(float *d_out, const float *d_x, const float *d_gamma, int64_t rows, int64_t dim, float eps) {
    ROW_LAUNCH(rmsnorm_kernel<ZT_F32>, "rmsnorm", d_out, NULL, d_x, d_gamma, rows, dim, eps);
}
int zt_cu_rmsnorm_half(float *d_out, void *d_half, zt_dtype half_dtype, const float *d_x, const float *d_gamma,
                       int64_t rows, int64_t dim, float eps) {
    HALF_ROW_LAUNCH(rmsnorm_kernel, "rmsnorm_half", d_out, d_half, d_x, d_gamma, rows, dim, eps);
}
int zt_cu_layernorm_half(float *d_out, void *d_half, zt_dtype half_dtype, const float *d_x, const float *d_gamma,
                         const float *d_beta, int64_t rows, int64_t dim, float eps) {
    HALF_ROW_LAUNCH(layernorm_kernel, "layernorm_half", d_out, d_half, d_x, d_gamma, d_beta, rows, dim, eps);
}
