// Elementwise f32 ops, bias over rows, strided 2-D copy. Grid-stride loops, four elements per
// thread through float4 when every pointer is 16-byte aligned (scalar tail), scalar otherwise.
//
// Numerics: add, mul, scale, relu, add_rows and copy_2d are one IEEE operation per element
// and bit-identical to the CPU. The transcendental ones (silu, gelu, swiglu, softcap) use CUDA's expf,
// tanhf and erff (≤ 2 ulp, not glibc's), with the surrounding arithmetic spelled with __f*_rn so
// that no extra rounding difference comes from contraction.
#include "kernels.cuh"
#include "numerics.cuh"

#define EW_THREADS 256

enum { EW_ADD, EW_MUL, EW_SCALE, EW_RELU, EW_SILU, EW_GELU_TANH, EW_GELU_ERF, EW_SWIGLU, EW_SOFTCAP };

// x·σ(x) = x / (1 + e^−x): e^−x → inf for x ≪ 0 gives −0, not NaN (as the CPU).
__device__ __forceinline__ float silu1(float x) { return __fdiv_rn(x, __fadd_rn(1.0f, expf(-x))); }

template <int OP>
__device__ __forceinline__ float ew_op(float a, float b, float s) {
    switch (OP) {
    case EW_ADD: return __fadd_rn(a, b);
    case EW_MUL: return __fmul_rn(a, b);
    case EW_SCALE: return __fmul_rn(s, a);
    case EW_RELU: return a <= 0.0f ? 0.0f : a;  // NaN propagates, as torch.relu
    case EW_SILU: return silu1(a);
    case EW_GELU_TANH: {
        const float k = 0.7978845608028654f;  // √(2/π); CPU: 0.5·v·(1 + tanh(k·(v + 0.044715·v·v·v)))
        float cube = __fmul_rn(__fmul_rn(__fmul_rn(0.044715f, a), a), a);
        float t = tanhf(__fmul_rn(k, __fadd_rn(a, cube)));
        return __fmul_rn(__fmul_rn(0.5f, a), __fadd_rn(1.0f, t));
    }
    case EW_GELU_ERF: {
        const float r = 0.7071067811865476f;  // 1/√2
        return __fmul_rn(__fmul_rn(0.5f, a), __fadd_rn(1.0f, erff(__fmul_rn(a, r))));
    }
    case EW_SOFTCAP: return __fmul_rn(s, tanhf(__fdiv_rn(a, s)));  // s·tanh(a / s), s the cap
    default: return __fmul_rn(silu1(a), b);  // EW_SWIGLU
    }
}

// out(n) = op(a, b); b unused by unary ops. out may alias a or b: each element is read before it
// is written, by the same thread.
template <int OP>
__global__ void __launch_bounds__(EW_THREADS) ew_kernel(float *out, const float *a, const float *b, float s,
                                                        int64_t n, int vec) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (vec) {
        const int64_t n4 = n / 4;
        for (int64_t i = t; i < n4; i += stride) {
            float4 x = ((const float4 *)a)[i];
            float4 y = make_float4(0.f, 0.f, 0.f, 0.f);
            if (OP == EW_ADD || OP == EW_MUL || OP == EW_SWIGLU) y = ((const float4 *)b)[i];
            float4 r;
            r.x = ew_op<OP>(x.x, y.x, s);
            r.y = ew_op<OP>(x.y, y.y, s);
            r.z = ew_op<OP>(x.z, y.z, s);
            r.w = ew_op<OP>(x.w, y.w, s);
            ((float4 *)out)[i] = r;
        }
        t += n4 * 4;  // scalar tail: the last n % 4 elements
        if (t >= n) return;
        out[t] = ew_op<OP>(a[t], (OP == EW_ADD || OP == EW_MUL || OP == EW_SWIGLU) ? b[t] : 0.f, s);
        return;
    }
    for (int64_t i = t; i < n; i += stride)
        out[i] = ew_op<OP>(a[i], (OP == EW_ADD || OP == EW_MUL || OP == EW_SWIGLU) ? b[i] : 0.f, s);
}

// swiglu with its output also (out NULL: only) rounded to HD (bf16/f16) into half at the store: the
// bits convert(swiglu(g, u)) gives, in the producing kernel. Grid-stride, one element per step
// (the down projection's input: one read of gate and up, one 2-byte write).
template <int HD>
__global__ void __launch_bounds__(EW_THREADS) swiglu_half_kernel(float *out, void *half, const float *gate, const float *up,
                                                                 int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float v = ew_op<EW_SWIGLU>(gate[i], up[i], 0.f);
        zt_st<HD>(half, i, v);
        if (out) out[i] = v;
    }
}

int zt_cu_swiglu_half(float *d_out, void *d_half, zt_dtype half_dtype, const float *d_gate, const float *d_up, int64_t n) {
    if (half_dtype != ZT_BF16 && half_dtype != ZT_F16)
        return zt_error((int)cudaErrorInvalidValue, "swiglu_half: half dtype %d is not bf16 or f16", (int)half_dtype);
    if (n <= 0) return 0;
    zt_ctx *c = zt_ctx_get();
    if (!c) return zt_ctx_status();
    const unsigned grid = zt_grid(c, n, EW_THREADS, 16);
    if (half_dtype == ZT_BF16) swiglu_half_kernel<ZT_BF16><<<grid, EW_THREADS, 0, c->stream>>>(d_out, d_half, d_gate, d_up, n);
    else swiglu_half_kernel<ZT_F16><<<grid, EW_THREADS, 0, c->stream>>>(d_out, d_half, d_gate, d_up, n);
    zt_launch_check("swiglu_half");
    return 0;
}

// act(x) (⊙ mul when mul is non-NULL: the bits of the act kernel then mul's) with the result also
// (out NULL: only) rounded to HD into half at the store: activation_half, the MLP's input to down.
template <int OP, int HD>
__global__ void __launch_bounds__(EW_THREADS) act_half_kernel(float *out, void *half, const float *x, const float *mul,
                                                              int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float v = ew_op<OP>(x[i], 0.f, 0.f);
        if (mul) v = ew_op<EW_MUL>(v, mul[i], 0.f);
        zt_st<HD>(half, i, v);
        if (out) out[i] = v;
    }
}

template <int OP>
static void launch_act_half(zt_ctx *c, float *out, void *half, zt_dtype hd, const float *x, const float *mul, int64_t n) {
    const unsigned grid = zt_grid(c, n, EW_THREADS, 16);
    if (hd == ZT_BF16) act_half_kernel<OP, ZT_BF16><<<grid, EW_THREADS, 0, c->stream>>>(out, half, x, mul, n);
    else act_half_kernel<OP, ZT_F16><<<grid, EW_THREADS, 0, c->stream>>>(out, half, x, mul, n);
}

int zt_cu_activation_half(int act, float *d_out, void *d_half, zt_dtype half_dtype, const float *d_x, const float *d_mul,
                          int64_t n) {
    if (half_dtype != ZT_BF16 && half_dtype != ZT_F16)
        return zt_error((int)cudaErrorInvalidValue, "activation_half: half dtype %d is not bf16 or f16", (int)half_dtype);
    if (act < ZT_ACT_RELU || act > ZT_ACT_GELU_ERF)
        return zt_error((int)cudaErrorInvalidValue, "activation_half: unknown activation %d", act);
    if (n <= 0) return 0;
    zt_ctx *c = zt_ctx_get();
    if (!c) return zt_ctx_status();
    switch (act) {
    case ZT_ACT_RELU: launch_act_half<EW_RELU>(c, d_out, d_half, half_dtype, d_x, d_mul, n); break;
    case ZT_ACT_SILU: launch_act_half<EW_SILU>(c, d_out, d_half, half_dtype, d_x, d_mul, n); break;
    case ZT_ACT_GELU_TANH: launch_act_half<EW_GELU_TANH>(c, d_out, d_half, half_dtype, d_x, d_mul, n); break;
    default: launch_act_half<EW_GELU_ERF>(c, d_out, d_half, half_dtype, d_x, d_mul, n); break;
    }
    zt_launch_check("activation_half");
    return 0;
}

template <int OP>
static void launch_ew(float *out, const float *a, const float *b, float s, int64_t n, const char *what) {
    if (n <= 0) return;
    zt_ctx *c = zt_ctx_get();
    if (!c) return;
    const int vec = zt_aligned(out, 16) && zt_aligned(a, 16) && (!b || zt_aligned(b, 16));
    const int64_t work = vec ? (n + 3) / 4 : n;
    ew_kernel<OP><<<zt_grid(c, work, EW_THREADS, 16), EW_THREADS, 0, c->stream>>>(out, a, b, s, n, vec);
    zt_launch_check(what);
}

void zt_cu_add(float *d_out, const float *d_a, const float *d_b, int64_t n) { launch_ew<EW_ADD>(d_out, d_a, d_b, 0.f, n, "add"); }
void zt_cu_mul(float *d_out, const float *d_a, const float *d_b, int64_t n) { launch_ew<EW_MUL>(d_out, d_a, d_b, 0.f, n, "mul"); }
void zt_cu_scale(float *d_out, const float *d_a, float s, int64_t n) { launch_ew<EW_SCALE>(d_out, d_a, NULL, s, n, "scale"); }
void zt_cu_relu(float *d_out, const float *d_x, int64_t n) { launch_ew<EW_RELU>(d_out, d_x, NULL, 0.f, n, "relu"); }
void zt_cu_silu(float *d_out, const float *d_x, int64_t n) { launch_ew<EW_SILU>(d_out, d_x, NULL, 0.f, n, "silu"); }
void zt_cu_gelu_tanh(float *d_out, const float *d_x, int64_t n) { launch_ew<EW_GELU_TANH>(d_out, d_x, NULL, 0.f, n, "gelu_tanh"); }
void zt_cu_gelu_erf(float *d_out, const float *d_x, int64_t n) { launch_ew<EW_GELU_ERF>(d_out, d_x, NULL, 0.f, n, "gelu_erf"); }
void zt_cu_swiglu(float *d_out, const float *d_gate, const float *d_up, int64_t n) {
    launch_ew<EW_SWIGLU>(d_out, d_gate, d_up, 0.f, n, "swiglu");
}
// In place (out = a, each element read before it is written). A cap that is not positive and finite
// leaves x as it is, as on the CPU.
void zt_cu_softcap(float *d_x, int64_t n, float cap) {
    if (!(cap > 0.0f && cap < INFINITY)) return;
    launch_ew<EW_SOFTCAP>(d_x, d_x, NULL, cap, n, "softcap");
}

// ---- x(rows, dim) += bias(dim) -------------------------------------------------------------------
// 2-D grid: blockIdx.y walks rows (grid-stride), threads walk the row; the bias is read once per
// block row and stays in L1/L2.
__global__ void __launch_bounds__(EW_THREADS) add_rows_kernel(float *x, const float *bias, int64_t rows, int64_t dim) {
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        float *row = x + r * dim;
        for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < dim; j += (int64_t)gridDim.x * blockDim.x)
            row[j] = __fadd_rn(row[j], bias[j]);
    }
}

void zt_cu_add_rows(float *d_x, const float *d_bias, int64_t rows, int64_t dim) {
    if (rows <= 0 || dim <= 0) return;
    zt_ctx *c = zt_ctx_get();
    if (!c) return;
    int64_t bx = (dim + EW_THREADS - 1) / EW_THREADS;
    if (bx > 64) bx = 64;
    int64_t by = rows < 65535 ? rows : 65535;
    add_rows_kernel<<<dim3((unsigned)bx, (unsigned)by), EW_THREADS, 0, c->stream>>>(d_x, d_bias, rows, dim);
    zt_launch_check("add_rows");
}

// ---- dst(rows, cols; ldd) = src(rows, cols; lds) ---------------------------------------------------
void zt_cu_copy_2d(float *d_dst, int64_t ldd, const float *d_src, int64_t lds, int64_t rows, int64_t cols) {
    if (rows <= 0 || cols <= 0) return;
    zt_ctx *c = zt_ctx_get();
    if (!c) return;
    zt_cuda_check_async(cudaMemcpy2DAsync(d_dst, (size_t)ldd * sizeof(float), d_src, (size_t)lds * sizeof(float),
                                          (size_t)cols * sizeof(float), (size_t)rows, cudaMemcpyDeviceToDevice,
                                          c->stream),
                        "copy_2d");
}
