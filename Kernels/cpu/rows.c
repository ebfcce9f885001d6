// Row-wise ops over x(rows, dim): softmax, log-softmax, layernorm, rmsnorm. Each row is
// independent, so results do not depend on how rows are split over threads. out may equal x:
// every pass reads x[j] before (or without) writing out[j] at the same index only.
#include "zt_cpu.h"
#include "cpu_isa.h"
#include "zt_threads.h"
#include "fast_exp.h"

#include <math.h>

// Reductions keep LANES partial sums: clang will not reorder a float reduction on its own, and
// independent lanes both vectorize and shorten the rounding chain. Exponentials are zt_exp
// (fast_exp.h: ≤ 2 ulp from expf), which vectorizes: libm's expf is one call per element, and
// with it the LM loss's log-sum-exp over a 49 152-word vocabulary took ~25% of a pre-training step.
#define LANES 8
#define GRAIN_ELEMS 16384  // elements of work per task at least

typedef struct {
    float *out;           // (rows, dim)
    const float *x;       // (rows, dim)
    const float *gamma;   // (dim) or NULL
    const float *beta;    // (dim) or NULL
    int64_t dim;
    float eps;
} rows_ctx;

static int64_t row_grain(int64_t dim) {
    int64_t g = GRAIN_ELEMS / (dim > 0 ? dim : 1);
    return g < 1 ? 1 : g;
}

static inline __attribute__((always_inline)) float row_max(const float *x, int64_t n) {
    float m[LANES];
    for (int j = 0; j < LANES; j++) m[j] = -INFINITY;
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
    for (; i < n; i++) m[0] = x[i] > m[0] ? x[i] : m[0];
    float r = m[0];
    for (int j = 1; j < LANES; j++) r = m[j] > r ? m[j] : r;
    return r;
}

static float lanes_sum(const float s[LANES]) {
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

ZT_ISA_CLONES static void softmax_range(void *p, int64_t lo, int64_t hi) {
    const rows_ctx *c = p;
    const int64_t n = c->dim;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = c->x + r * n;
        float *out = c->out + r * n;
        const float m = row_max(x, n);
        float s[LANES] = {0};
        int64_t i = 0;
        for (; i + LANES <= n; i += LANES)
            for (int j = 0; j < LANES; j++) {
                float e = zt_exp(x[i + j] - m);
                out[i + j] = e;
                s[j] += e;
            }
        for (; i < n; i++) {
            float e = zt_exp(x[i] - m);
            out[i] = e;
            s[0] += e;
        }
        const float sum = lanes_sum(s);  // ≥ 1: the max element contributes e⁰
        ZT_ELEMENTWISE
        for (int64_t j = 0; j < n; j++) out[j] /= sum;
    }
}

// log Σ exp(x − m) with m = max(x) returned through *max.
static inline __attribute__((always_inline)) float row_log_sum_exp(const float *x, int64_t n, float *max) {
    const float m = row_max(x, n);
    float s[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) s[j] += zt_exp(x[i + j] - m);
    for (; i < n; i++) s[0] += zt_exp(x[i] - m);
    *max = m;
    return logf(lanes_sum(s));
}

ZT_ISA_CLONES static void log_softmax_range(void *p, int64_t lo, int64_t hi) {
    const rows_ctx *c = p;
    const int64_t n = c->dim;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = c->x + r * n;
        float *out = c->out + r * n;
        float m;
        const float lse = row_log_sum_exp(x, n, &m);
        // (x − max) is exact-ish near the max, so subtract log-sum separately.
        ZT_ELEMENTWISE
        for (int64_t j = 0; j < n; j++) out[j] = (x[j] - m) - lse;
    }
}

typedef struct {
    float *out;               // (rows)
    const float *x;           // (rows, dim)
    const int32_t *targets;   // (rows)
    int64_t dim;
} gather_ctx;

ZT_ISA_CLONES static void token_logprobs_range(void *p, int64_t lo, int64_t hi) {
    const gather_ctx *c = p;
    for (int64_t r = lo; r < hi; r++) {
        const int32_t t = c->targets[r];
        if (t < 0 || t >= c->dim) { c->out[r] = 0.0f; continue; }
        const float *x = c->x + r * c->dim;
        float m;
        const float lse = row_log_sum_exp(x, c->dim, &m);
        c->out[r] = (x[t] - m) - lse;
    }
}

void zt_token_logprobs(float *out, const float *x, const int32_t *targets, int64_t rows, int64_t dim) {
    if (dim <= 0) return;
    gather_ctx c = {out, x, targets, dim};
    zt_parallel_for(rows, row_grain(dim), token_logprobs_range, &c);
}

typedef struct {
    float *state;
    const float *x;
    const int32_t *targets;
    int64_t ldx, cols, col0;
} panel_ctx;

ZT_ISA_CLONES static void lse_panel_range(void *p, int64_t lo, int64_t hi) {
    const panel_ctx *c = p;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = c->x + r * c->ldx;
        float *st = c->state + 3 * r;
        const float m = fmaxf(st[0], row_max(x, c->cols));
        float s[LANES] = {0};
        int64_t i = 0;
        for (; i + LANES <= c->cols; i += LANES)
            for (int j = 0; j < LANES; j++) s[j] += zt_exp(x[i + j] - m);
        for (; i < c->cols; i++) s[0] += zt_exp(x[i] - m);
        // The running sum rescaled to the new max (exp(−inf) = 0 before the first panel).
        st[1] = st[1] * expf(st[0] - m) + lanes_sum(s);
        st[0] = m;
        const int64_t t = c->targets[r];
        if (t >= c->col0 && t < c->col0 + c->cols) st[2] = x[t - c->col0];
    }
}

void zt_logsumexp_panel(float *state, const float *x, int64_t ldx, const int32_t *targets, int64_t rows, int64_t cols,
                        int64_t col0) {
    if (cols <= 0) return;
    panel_ctx c = {state, x, targets, ldx, cols, col0};
    zt_parallel_for(rows, row_grain(cols), lse_panel_range, &c);
}

ZT_ISA_CLONES static void layernorm_range(void *p, int64_t lo, int64_t hi) {
    const rows_ctx *c = p;
    const int64_t n = c->dim;
    const float *gamma = c->gamma, *beta = c->beta;
    const float inv_n = 1.0f / (float)n;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = c->x + r * n;
        float *out = c->out + r * n;
        // Pass 1: mean.
        float s[LANES] = {0};
        int64_t i = 0;
        for (; i + LANES <= n; i += LANES)
            for (int j = 0; j < LANES; j++) s[j] += x[i + j];
        for (; i < n; i++) s[0] += x[i];
        float mean = lanes_sum(s) * inv_n;
        // Pass 2: centred sums. Σd corrects the rounding error of the mean (corrected two-pass),
        // so a large common offset does not leak into the variance.
        float sd[LANES] = {0}, sdd[LANES] = {0};
        i = 0;
        for (; i + LANES <= n; i += LANES)
            for (int j = 0; j < LANES; j++) {
                float d = x[i + j] - mean;
                sd[j] += d;
                sdd[j] += d * d;
            }
        for (; i < n; i++) {
            float d = x[i] - mean;
            sd[0] += d;
            sdd[0] += d * d;
        }
        const float corr = lanes_sum(sd) * inv_n;
        float var = lanes_sum(sdd) * inv_n - corr * corr;
        if (var < 0.0f) var = 0.0f;
        mean += corr;
        const float rstd = 1.0f / sqrtf(var + c->eps);
        // Loop-invariant branches: clang unswitches them, each variant vectorizes.
        if (gamma && beta)
            for (int64_t j = 0; j < n; j++) out[j] = (x[j] - mean) * rstd * gamma[j] + beta[j];
        else if (gamma)
            for (int64_t j = 0; j < n; j++) out[j] = (x[j] - mean) * rstd * gamma[j];
        else if (beta)
            for (int64_t j = 0; j < n; j++) out[j] = (x[j] - mean) * rstd + beta[j];
        else
            for (int64_t j = 0; j < n; j++) out[j] = (x[j] - mean) * rstd;
    }
}

ZT_ISA_CLONES static void rmsnorm_range(void *p, int64_t lo, int64_t hi) {
    const rows_ctx *c = p;
    const int64_t n = c->dim;
    const float *gamma = c->gamma;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = c->x + r * n;
        float *out = c->out + r * n;
        float s[LANES] = {0};
        int64_t i = 0;
        for (; i + LANES <= n; i += LANES)
            for (int j = 0; j < LANES; j++) s[j] += x[i + j] * x[i + j];
        for (; i < n; i++) s[0] += x[i] * x[i];
        const float rinv = 1.0f / sqrtf(lanes_sum(s) / (float)n + c->eps);
        // (x·r)·γ in this order, as Hugging Face's RMSNorm rounds it.
        if (gamma)
            for (int64_t j = 0; j < n; j++) out[j] = (x[j] * rinv) * gamma[j];
        else
            for (int64_t j = 0; j < n; j++) out[j] = x[j] * rinv;
    }
}

void zt_softmax(float *out, const float *x, int64_t rows, int64_t dim) {
    if (dim <= 0) return;
    rows_ctx c = {out, x, NULL, NULL, dim, 0.0f};
    zt_parallel_for(rows, row_grain(dim), softmax_range, &c);
}

void zt_log_softmax(float *out, const float *x, int64_t rows, int64_t dim) {
    if (dim <= 0) return;
    rows_ctx c = {out, x, NULL, NULL, dim, 0.0f};
    zt_parallel_for(rows, row_grain(dim), log_softmax_range, &c);
}

void zt_layernorm(float *out, const float *x, const float *gamma, const float *beta,
                  int64_t rows, int64_t dim, float eps) {
    if (dim <= 0) return;
    rows_ctx c = {out, x, gamma, beta, dim, eps};
    zt_parallel_for(rows, row_grain(dim), layernorm_range, &c);
}

void zt_rmsnorm(float *out, const float *x, const float *gamma, int64_t rows, int64_t dim, float eps) {
    if (dim <= 0) return;
    rows_ctx c = {out, x, gamma, NULL, dim, eps};
    zt_parallel_for(rows, row_grain(dim), rmsnorm_range, &c);
}
