// Elementwise ops over flat f32 arrays. out may be an input (in place), so no restrict; the loops
// are vectorized with ZT_ELEMENTWISE (cpu_isa.h) instead of behind clang's overlap check.
#include "zt_cpu.h"
#include "cpu_isa.h"
#include "zt_threads.h"
#include "fast_exp.h"
#include "fast_tanh.h"
#include "fast_erf.h"

#include <math.h>

// Elements per task: large enough that tiny tensors run serially in the caller and each task
// outweighs the pool's wake-up cost. Transcendental ops cost ~10× more per element.
#define GRAIN_CHEAP 32768
#define GRAIN_TRANSC 4096

typedef struct {
    float *out;        // (n)
    const float *a;    // (n)
    const float *b;    // (n) or NULL
    float s;
} ew_ctx;

ZT_ISA_CLONES static void add_range(void *p, int64_t lo, int64_t hi) {
    const ew_ctx *c = p;
    float *out = c->out;
    const float *a = c->a, *b = c->b;
    ZT_ELEMENTWISE
    for (int64_t i = lo; i < hi; i++) out[i] = a[i] + b[i];
}

ZT_ISA_CLONES static void mul_range(void *p, int64_t lo, int64_t hi) {
    const ew_ctx *c = p;
    float *out = c->out;
    const float *a = c->a, *b = c->b;
    ZT_ELEMENTWISE
    for (int64_t i = lo; i < hi; i++) out[i] = a[i] * b[i];
}

ZT_ISA_CLONES static void scale_range(void *p, int64_t lo, int64_t hi) {
    const ew_ctx *c = p;
    float *out = c->out;
    const float *a = c->a;
    const float s = c->s;
    ZT_ELEMENTWISE
    for (int64_t i = lo; i < hi; i++) out[i] = s * a[i];
}

ZT_ISA_CLONES static void relu_range(void *p, int64_t lo, int64_t hi) {
    const ew_ctx *c = p;
    float *out = c->out;
    const float *x = c->a;
    // x <= 0 is false for NaN, so NaN propagates as in torch.relu (fmaxf would drop it).
    ZT_ELEMENTWISE
    for (int64_t i = lo; i < hi; i++) out[i] = x[i] <= 0.0f ? 0.0f : x[i];
}

// x·σ(x) = x / (1 + e^−x): e^−x overflows to inf for x ≪ 0, giving −0 rather than NaN.
static inline float silu1(float x) { return x / (1.0f + zt_exp(-x)); }

ZT_ISA_CLONES static void silu_range(void *p, int64_t lo, int64_t hi) {
    const ew_ctx *c = p;
    float *out = c->out;
    const float *x = c->a;
    ZT_ELEMENTWISE
    for (int64_t i = lo; i < hi; i++) out[i] = silu1(x[i]);
}

ZT_ISA_CLONES static void gelu_tanh_range(void *p, int64_t lo, int64_t hi) {
    const ew_ctx *c = p;
    float *out = c->out;
    const float *x = c->a;
    ZT_ELEMENTWISE
    for (int64_t i = lo; i < hi; i++) out[i] = zt_gelu_tanh1(x[i]);  // vectorized (fast_tanh.h)
}

ZT_ISA_CLONES static void gelu_erf_range(void *p, int64_t lo, int64_t hi) {
    const ew_ctx *c = p;
    float *out = c->out;
    const float *x = c->a;
    ZT_ELEMENTWISE
    for (int64_t i = lo; i < hi; i++) out[i] = zt_gelu_erf1(x[i]);  // vectorized (fast_erf.h)
}

ZT_ISA_CLONES static void swiglu_range(void *p, int64_t lo, int64_t hi) {
    const ew_ctx *c = p;
    float *out = c->out;
    const float *g = c->a, *u = c->b;
    ZT_ELEMENTWISE
    for (int64_t i = lo; i < hi; i++) out[i] = silu1(g[i]) * u[i];
}

ZT_ISA_CLONES static void softcap_range(void *p, int64_t lo, int64_t hi) {
    const ew_ctx *c = p;
    float *x = c->out;
    const float cap = c->s;
    ZT_ELEMENTWISE
    for (int64_t i = lo; i < hi; i++) x[i] = cap * zt_tanh(x[i] / cap);  // vectorized (fast_tanh.h)
}

void zt_add(float *out, const float *a, const float *b, int64_t n) {
    ew_ctx c = {out, a, b, 0.0f};
    zt_parallel_for(n, GRAIN_CHEAP, add_range, &c);
}

void zt_mul(float *out, const float *a, const float *b, int64_t n) {
    ew_ctx c = {out, a, b, 0.0f};
    zt_parallel_for(n, GRAIN_CHEAP, mul_range, &c);
}

void zt_scale(float *out, const float *a, float s, int64_t n) {
    ew_ctx c = {out, a, NULL, s};
    zt_parallel_for(n, GRAIN_CHEAP, scale_range, &c);
}

void zt_relu(float *out, const float *x, int64_t n) {
    ew_ctx c = {out, x, NULL, 0.0f};
    zt_parallel_for(n, GRAIN_CHEAP, relu_range, &c);
}

void zt_silu(float *out, const float *x, int64_t n) {
    ew_ctx c = {out, x, NULL, 0.0f};
    zt_parallel_for(n, GRAIN_TRANSC, silu_range, &c);
}

void zt_gelu_tanh(float *out, const float *x, int64_t n) {
    ew_ctx c = {out, x, NULL, 0.0f};
    zt_parallel_for(n, GRAIN_TRANSC, gelu_tanh_range, &c);
}

void zt_gelu_erf(float *out, const float *x, int64_t n) {
    ew_ctx c = {out, x, NULL, 0.0f};
    zt_parallel_for(n, GRAIN_TRANSC, gelu_erf_range, &c);
}

void zt_swiglu(float *out, const float *gate, const float *up, int64_t n) {
    ew_ctx c = {out, gate, up, 0.0f};
    zt_parallel_for(n, GRAIN_TRANSC, swiglu_range, &c);
}

void zt_softcap(float *x, int64_t n, float cap) {
    if (!(cap > 0.0f && cap < INFINITY)) return;
    ew_ctx c = {x, x, NULL, cap};
    zt_parallel_for(n, GRAIN_TRANSC, softcap_range, &c);
}

// ---- Bias over rows ------------------------------------------------------------------------

typedef struct {
    float *x;            // (rows, dim)
    const float *bias;   // (dim)
    int64_t dim;
} add_rows_ctx;

ZT_ISA_CLONES static void add_rows_range(void *p, int64_t lo, int64_t hi) {
    const add_rows_ctx *c = p;
    const int64_t dim = c->dim;
    const float *bias = c->bias;
    for (int64_t r = lo; r < hi; r++) {
        float *row = c->x + r * dim;
        for (int64_t j = 0; j < dim; j++) row[j] += bias[j];
    }
}

void zt_add_rows(float *x, const float *bias, int64_t rows, int64_t dim) {
    if (dim <= 0) return;
    add_rows_ctx c = {x, bias, dim};
    int64_t grain = GRAIN_CHEAP / dim;
    zt_parallel_for(rows, grain < 1 ? 1 : grain, add_rows_range, &c);
}

typedef struct {
    float *dst;
    const float *src;
    int64_t ldd, lds, cols;
} copy2d_ctx;

static void copy2d_range(void *p, int64_t lo, int64_t hi) {
    const copy2d_ctx *c = p;
    for (int64_t r = lo; r < hi; r++)
        __builtin_memcpy(c->dst + r * c->ldd, c->src + r * c->lds, (size_t)c->cols * sizeof(float));
}

void zt_copy_2d(float *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows, int64_t cols) {
    if (rows <= 0 || cols <= 0) return;
    copy2d_ctx c = {dst, src, ldd, lds, cols};
    int64_t grain = (1 << 16) / cols;  // ≥ 64K floats per task
    zt_parallel_for(rows, grain < 1 ? 1 : grain, copy2d_range, &c);
}
