// Device check of libzotune_cuda.so against the CPU reference kernels (Kernels/cpu/*.c, built with
// gcc -O2 -ffp-contract=off here; GEMM and Newton–Schulz references are naive loops in double, so
// no BLAS is needed). Run by bench/device/check.sh.
//
//   check LIB              full run on a GPU: every kernel vs the CPU, then timings and the
//                          shadow-vs-in-place experiment; exit 1 on any failed check
//   check --self-test LIB  no GPU needed: the library's table and ABI, clean no-device errors,
//                          CPU-side references (Philox known answers, the CUDA stream kernels'
//                          block code emulated on the CPU vs the CPU kernels, naive GEMM vs
//                          OpenBLAS when present, Newton–Schulz properties), then a dry run of
//                          every device check against a host "device" table (small sizes)
//
// Claims: Philox words, normals, perturb / restore_update / replay_step / perturbed_copy / fill_normal /
// convert, zo_update (ZO-SGD-MMT, ZO-Adam, HiZOO, ZO-Muon's DIRECTION; weights and f32 optimizer
// state, training and replay) / perturb_hessian, jaguar_probe / jaguar_update (3 kinds, both sign
// modes) / add_scaled, lerp (DiZO) / scale_rows / adam_direction (Zoop), add / mul / scale / relu /
// add_rows / copy_2d and embedding are bit-identical to the CPU; sum_squares and squared_distance
// are deterministic run to run, equal to their emulation (reduce.cuh) and within 1e-12 of the CPU's;
// gemm_half on a converted activation is gemm_mixed bit for bit; newton_schulz_batched is
// deterministic run to run and within newton_schulz's tolerances of it; Newton–Schulz (quintic and cubic; f32, TF32, bf16 operands) is
// deterministic run to run; the other kernels pass within the tolerances printed next to them.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zt_backend_api.h"
#include "zt_cpu.h"
#include "zt_philox.h"
#include "zt_quant.h"

// emulate.cpp: the CUDA stream kernels' block code run on the CPU. op as numerics.cuh's ZT_OP_*.
enum { OP_PERTURB = 0, OP_UPDATE = 1, OP_COPY = 2, OP_FILL = 3, OP_CONVERT = 4, OP_REPLAY = 5 };
int64_t zt_emu_dequantize_rows(float *out, const void *src, int type, int64_t src_rows, int64_t cols,
                               const int32_t *ids, int64_t rows);
int zt_emu_stream(int op, void *x, zt_dtype dt, const void *src, zt_dtype sdt, int64_t n, uint64_t first,
                  uint64_t seed, uint32_t tensor_id, uint32_t stream, float a, float step, float decay, float a1,
                  float a2, int vec_mode);
int zt_emu_zo_update(int kind, void *x, zt_dtype dt, float *s1, float *s2, int64_t n, uint64_t first, uint64_t seed,
                     uint32_t tensor_id, uint32_t stream, const zt_zo_update_args *args, int vec_mode);
int zt_emu_perturb_hessian(void *x, zt_dtype dt, const float *h, int64_t n, uint64_t first, uint64_t seed,
                           uint32_t tensor_id, uint32_t stream, float a, int vec_mode);
// The device's multi-block Σa² / Σ(a − b)² (b NULL: Σa²) in its partition and order (reduce.cuh), and
// the longest rounding chain of a term (its error bound in units of 2⁻⁵³).
double zt_emu_sumsq(const void *a, const void *b, zt_dtype dt, int64_t n);
int64_t zt_emu_sumsq_depth(int64_t n);

typedef int (*debug_philox_fn)(uint32_t *d_out, uint64_t nblocks, uint64_t j0, uint64_t seed, uint32_t tensor_id,
                               uint32_t stream);

// ---- Run state -------------------------------------------------------------------------------------

static const zt_backend_api *G;     // table under test (CUDA, or the host table in a dry run)
static debug_philox_fn g_philox;    // raw Philox words on the device
static int g_fails, g_checks;
static int g_dry;                   // dry run on the host table: small sizes, no meaningful timings

// Sizes: full run (GPU) / dry run (host).
static int64_t SZ(int64_t full, int64_t dry) { return g_dry ? dry : full; }

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "check: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(2);
}

static void section(const char *name) { printf("\n== %s\n", name); }

static void result(int ok, const char *name, const char *fmt, ...) {
    char detail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    g_checks++;
    if (!ok) g_fails++;
    printf("  %-44s %-4s %s\n", name, ok ? "ok" : "FAIL", detail);
    fflush(stdout);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// ---- Device helpers (abort on error: a failing allocation or copy is not a numerics result) ------

static void dcheck(int rc, const char *what) {
    if (rc) die("%s failed (code %d): %s", what, rc, G->last_error());
}
static void *dalloc(size_t bytes) {
    void *p = NULL;
    dcheck(G->malloc(&p, bytes), "malloc");
    return p;
}
static void dfree(void *p) { dcheck(G->free(p), "free"); }
static void h2d(void *d, const void *h, size_t bytes) { dcheck(G->memcpy_h2d(d, h, bytes), "memcpy_h2d"); }
static void d2h(void *h, const void *d, size_t bytes) { dcheck(G->memcpy_d2h(h, d, bytes), "memcpy_d2h"); }
static void dsync(const char *what) { dcheck(G->synchronize(), what); }
// Poison: every byte 0xFF (NaN in f32, NaN in f16/bf16), so unwritten outputs never pass.
static void dpoison(void *d, size_t bytes) { dcheck(G->memset(d, 0xFF, bytes), "memset"); }
static void *hmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) die("out of host memory (%zu bytes)", bytes);
    return p;
}

// ---- Random inputs (splitmix64) ---------------------------------------------------------------------

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd64(void) {
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rnd_unit(void) { return (double)((rnd64() >> 11) + 1) * 0x1p-53; }  // (0, 1]
static float rnd_normal(void) { return (float)(sqrt(-2.0 * log(rnd_unit())) * cos(6.283185307179586 * rnd_unit())); }
static void fill_normal_host(float *x, int64_t n, float scale, float offset) {
    for (int64_t i = 0; i < n; i++) x[i] = offset + scale * rnd_normal();
}
// A device buffer of n + off floats whose elements off.. hold n fresh normals (off: a misaligned input).
static float *dnormal(int64_t n, int64_t off, float scale, float offset) {
    float *x = hmalloc(n * 4), *d = dalloc((n + off) * 4);
    fill_normal_host(x, n, scale, offset);
    h2d(d + off, x, n * 4);
    free(x);
    return d;
}
// Storage-dtype buffer of n random values (f32 math values rounded to the dtype).
static void *random_storage(zt_dtype dt, int64_t n, float scale) {
    void *p = hmalloc((size_t)n * (size_t)zt_dtype_size(dt));
    for (int64_t i = 0; i < n; i++) {
        float v = scale * rnd_normal();
        if (dt == ZT_F32) ((float *)p)[i] = v;
        else if (dt == ZT_BF16) ((uint16_t *)p)[i] = zt_f32_to_bf16(v);
        else ((uint16_t *)p)[i] = zt_f32_to_f16(v);
    }
    return p;
}

// Attention inputs, on the host and uploaded: q (B·T·Hq·D), k, v (B·S_cap·Hkv·D) ~ N(0, 1), drawn in
// that order, then the key mask (B·S_cap). mask 0: every key; 1: each key masked with probability 1/10;
// 2: batch 1's keys 0..5 and batch 0's key 0 masked, so that (with S − T = 4) batch 1's query 0 sees none.
typedef struct {
    float *q, *k, *v, *dq, *dk, *dv;
    uint8_t *mask, *dm;
} attn_inputs;
static attn_inputs attn_inputs_new(int64_t B, int64_t T, int64_t S_cap, int64_t Hq, int64_t Hkv, int64_t D, int mask) {
    const int64_t nq = B * T * Hq * D, nkv = B * S_cap * Hkv * D;
    attn_inputs a;
    a.q = hmalloc(nq * 4);
    a.k = hmalloc(nkv * 4);
    a.v = hmalloc(nkv * 4);
    a.mask = hmalloc(B * S_cap);
    fill_normal_host(a.q, nq, 1, 0);
    fill_normal_host(a.k, nkv, 1, 0);
    fill_normal_host(a.v, nkv, 1, 0);
    for (int64_t i = 0; i < B * S_cap; i++) a.mask[i] = mask == 1 ? (rnd64() % 10 != 0) : 1;
    if (mask == 2) {
        for (int64_t s = 0; s <= 5; s++) a.mask[1 * S_cap + s] = 0;
        a.mask[0] = 0;
    }
    a.dq = dalloc(nq * 4);
    a.dk = dalloc(nkv * 4);
    a.dv = dalloc(nkv * 4);
    a.dm = dalloc(B * S_cap);
    h2d(a.dq, a.q, nq * 4);
    h2d(a.dk, a.k, nkv * 4);
    h2d(a.dv, a.v, nkv * 4);
    h2d(a.dm, a.mask, B * S_cap);
    return a;
}
static void attn_inputs_free(attn_inputs *a) {
    dfree(a->dq); dfree(a->dk); dfree(a->dv); dfree(a->dm);
    free(a->q); free(a->k); free(a->v); free(a->mask);
}

static const char *dtname(zt_dtype d) { return d == ZT_F32 ? "f32" : d == ZT_BF16 ? "bf16" : d == ZT_F16 ? "f16" : "?"; }

// ---- Fused ZO optimizer updates: state and scalars -------------------------------------------------

#define N_ZO_KINDS 4
static const int zo_kinds[N_ZO_KINDS] = {ZT_ZO_MOMENTUM, ZT_ZO_ADAM, ZT_ZO_HIZOO, ZT_ZO_DIRECTION};
static const char *zo_name(int kind) {
    return kind == ZT_ZO_MOMENTUM ? "momentum" : kind == ZT_ZO_ADAM ? "adam" : kind == ZT_ZO_HIZOO ? "hizoo" : "direction";
}
// Whether the kind reads a second f32 array (Adam's v, DIRECTION's D).
static int zo_two_arrays(int kind) { return kind == ZT_ZO_ADAM || kind == ZT_ZO_DIRECTION; }

// Non-trivial state of n elements: m ~ 0.01·N(0, 1) (s1 of MMT, Adam, DIRECTION), v in
// [5e-7, 1.5e-6] (Adam's s2), D ~ 0.03·N(0, 1) (DIRECTION's s2), H in [0.5, 1.5] (HiZOO's s1: the
// probes divide by √H).
static void zo_state_init(int kind, float *s1, float *s2, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        s1[i] = kind == ZT_ZO_HIZOO ? (float)(0.5 + rnd_unit()) : 0.01f * rnd_normal();
        if (s2) s2[i] = kind == ZT_ZO_DIRECTION ? 0.03f * rnd_normal() : (float)(1e-6 * (0.5 + rnd_unit()));
    }
}

// The scalars of step t (1-based) as the optimizers set them; replay redoes the step's probes
// (+ε, −2ε) first, training has them already applied (a1 = a2 = 0).
static zt_zo_update_args zo_args(int kind, int t, int replay, float eps) {
    const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f;
    zt_zo_update_args p = {0};
    p.a1 = replay ? eps : 0.0f;
    p.a2 = replay ? -2 * eps : 0.0f;
    p.restore = eps;
    p.g = (t & 1) ? 0.37f : -0.52f;
    p.lr = kind == ZT_ZO_ADAM ? lr / (1.0f - powf(b1, (float)t)) : lr;
    p.decay = lr * 0.01f;
    p.beta1 = b1;
    p.beta2 = b2;
    p.adam_eps = 1e-8f;
    p.bc2_sqrt = sqrtf(1.0f - powf(b2, (float)t));
    p.curvature = 0.05f;  // α·|Δℓ|/(2ε²) with α = 0.1, |Δℓ| = 1e-6, ε = 1e-3
    p.keep = 0.9f;
    return p;
}

// ---- Comparisons ------------------------------------------------------------------------------------

// Bit-identical element arrays (elem bytes each). Returns mismatch count; detail names the first.
static int64_t diff_bits(const void *a, const void *b, int64_t n, int elem, char *detail, size_t len) {
    const unsigned char *x = a, *y = b;
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++)
        if (memcmp(x + i * elem, y + i * elem, (size_t)elem) != 0) {
            if (first < 0) first = i;
            bad++;
        }
    if (bad) {
        uint32_t u = 0, v = 0;
        memcpy(&u, x + first * elem, (size_t)(elem < 4 ? elem : 4));
        memcpy(&v, y + first * elem, (size_t)(elem < 4 ? elem : 4));
        snprintf(detail, len, "%lld of %lld differ; first at %lld: device %08x cpu %08x", (long long)bad,
                 (long long)n, (long long)first, u, v);
    } else {
        snprintf(detail, len, "bit-identical (%lld elements)", (long long)n);
    }
    return bad;
}

static void check_bits(const char *name, const void *dev, const void *cpu, int64_t n, int elem) {
    char d[200];
    result(diff_bits(dev, cpu, n, elem, d, sizeof d) == 0, name, "%s", d);
}

// One device-vs-CPU compare of a multi-array check: reads n elements (elem bytes) of dev into back,
// counts the compare in *compares and a difference in *bad; the check's first difference is kept in
// first_bad as the printf-style label, then diff_bits' detail.
static void tally_bits(void *back, const void *dev, const void *cpu, int64_t n, int elem, int64_t *compares,
                       int64_t *bad, char *first_bad, size_t len, const char *fmt, ...) {
    char detail[200], label[200];
    d2h(back, dev, (size_t)n * (size_t)elem);
    ++*compares;
    if (!diff_bits(back, cpu, n, elem, detail, sizeof detail)) return;
    if (!*bad) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(label, sizeof label, fmt, ap);
        va_end(ap);
        snprintf(first_bad, len, "%s: %s", label, detail);
    }
    ++*bad;
}

// |dev − ref| ≤ atol + rtol·|ref| everywhere, NaN only where ref is NaN.
static void check_close(const char *name, const float *dev, const float *ref, int64_t n, double atol, double rtol) {
    double worst = 0, max_abs = 0;
    int64_t at = -1, nan_bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(ref[i]) || isnan(dev[i])) {
            if (isnan(ref[i]) != isnan(dev[i])) {
                nan_bad++;
                if (at < 0) at = i;
            }
            continue;
        }
        if (isinf(ref[i]) || isinf(dev[i])) {
            if (dev[i] != ref[i]) { nan_bad++; if (at < 0) at = i; }
            continue;
        }
        double e = fabs((double)dev[i] - (double)ref[i]);
        double r = e / (atol + rtol * fabs((double)ref[i]));
        if (e > max_abs) max_abs = e;
        if (r > worst) { worst = r; if (r > 1) at = at < 0 ? i : at; }
    }
    int ok = worst <= 1.0 && nan_bad == 0;
    if (ok)
        result(1, name, "max|err| %.2e (atol %.0e, rtol %.0e, n %lld)", max_abs, atol, rtol, (long long)n);
    else
        result(0, name, "max|err| %.2e (atol %.0e rtol %.0e); %lld NaN/inf mismatches; first bad %lld: dev %.9g ref %.9g",
               max_abs, atol, rtol, (long long)nan_bad, (long long)at, at >= 0 ? dev[at] : 0.0, at >= 0 ? ref[at] : 0.0);
}

// ‖dev − ref‖_F / ‖ref‖_F against a double reference.
static double rel_fro(const float *dev, const double *ref, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = (double)dev[i] - ref[i];
        num += e * e;
        den += ref[i] * ref[i];
        if (isnan(dev[i])) return INFINITY;
    }
    return sqrt(num) / (den > 0 ? sqrt(den) : 1.0);
}

// ---- Naive references: GEMM and Newton–Schulz in double ---------------------------------------------

// Row-major C(M,N) = alpha·op(A)·op(B) + beta·C, as zt_sgemm, accumulated in double.
static void gemm_ref(int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha, const float *A, int64_t lda,
                     const float *B, int64_t ldb, double beta, const float *C0, int64_t ldc, double *C) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) {
                double a = ta ? A[k * lda + i] : A[i * lda + k];
                double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            C[i * ldc + j] = alpha * s + (beta != 0 ? beta * (double)C0[i * ldc + j] : 0.0);
        }
}

// zt_sgemm for Kernels/cpu/newton_schulz.c (linked in as an f32 CPU reference): naive, double
// accumulation, so the harness needs no BLAS.
void zt_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (double)(tb ? B[j * ldb + k] : B[k * ldb + j]);
            C[i * ldc + j] = (float)((double)alpha * s + (beta != 0 ? (double)beta * C[i * ldc + j] : 0.0));
        }
}

// zt_ssyrk_upper for newton_schulz.c, naive as zt_sgemm above: the upper triangle only.
void zt_ssyrk_upper(int64_t N, int64_t K, float alpha, const float *A, int64_t lda, float beta, float *C, int64_t ldc) {
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = i; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += (double)A[i * lda + k] * (double)A[j * lda + k];
            C[i * ldc + j] = (float)((double)alpha * s + (beta != 0 ? (double)beta * C[i * ldc + j] : 0.0));
        }
}

static void dgemm_nn(int64_t M, int64_t N, int64_t K, const double *A, const double *B, double *C) {
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) C[i * N + j] = 0;
        for (int64_t k = 0; k < K; k++) {
            const double a = A[i * K + k];
            for (int64_t j = 0; j < N; j++) C[i * N + j] += a * B[k * N + j];
        }
    }
}

static double bf16_round(double v) { return (double)zt_bf16_to_f32(zt_f32_to_bf16((float)v)); }
static void round_bf16_all(double *a, int64_t n) { for (int64_t i = 0; i < n; i++) a[i] = bf16_round(a[i]); }

// Newton–Schulz in double with polynomial (a, b, c): X ← (aI + bA + cA²)X, A = XXᵀ; out(rows, cols).
// bf16 = 1 rounds the GEMM operands to bf16 where the CUDA kernel does (X before both of its
// products, A before A², B before BX), the rest in double: what tensor cores with f32 accumulation
// compute, up to the accumulation order.
static void ns_ref_poly_mode(const float *x, int64_t rows, int64_t cols, int steps, double pa, double pb, double pc, int bf16,
                             double *out);
static void ns_ref_poly(const float *x, int64_t rows, int64_t cols, int steps, double pa, double pb, double pc, double *out) {
    ns_ref_poly_mode(x, rows, cols, steps, pa, pb, pc, 0, out);
}
static void ns_ref_poly_mode(const float *x, int64_t rows, int64_t cols, int steps, double pa, double pb, double pc, int bf16,
                             double *out) {
    const int tr = rows > cols;
    const int64_t r = tr ? cols : rows, c = tr ? rows : cols;
    double *X = hmalloc(sizeof(double) * (size_t)(r * c)), *BX = hmalloc(sizeof(double) * (size_t)(r * c));
    double *A = hmalloc(sizeof(double) * (size_t)(r * r)), *B = hmalloc(sizeof(double) * (size_t)(r * r));
    double *Xt = hmalloc(sizeof(double) * (size_t)(r * c));
    double ss = 0;
    for (int64_t i = 0; i < rows * cols; i++) ss += (double)x[i] * x[i];
    const double inv = 1.0 / (sqrt(ss) + 1e-7);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            double v = x[i * cols + j] * inv;
            if (tr) X[j * c + i] = v; else X[i * c + j] = v;
        }
    double *Ah = hmalloc(sizeof(double) * (size_t)(r * r));
    for (int s = 0; s < steps; s++) {
        if (bf16) round_bf16_all(X, r * c);
        for (int64_t i = 0; i < r; i++)
            for (int64_t j = 0; j < c; j++) Xt[j * r + i] = X[i * c + j];
        dgemm_nn(r, r, c, X, Xt, A);                                            // A = X Xᵀ
        memcpy(Ah, A, sizeof(double) * (size_t)(r * r));
        if (bf16) round_bf16_all(Ah, r * r);
        dgemm_nn(r, r, r, Ah, Ah, B);                                           // A²
        for (int64_t i = 0; i < r * r; i++) B[i] = pb * A[i] + pc * B[i] + (i / r == i % r ? pa : 0.0);
        if (bf16) round_bf16_all(B, r * r);
        dgemm_nn(r, c, r, B, X, BX);                                            // X ← (aI + bA + cA²) X
        memcpy(X, BX, sizeof(double) * (size_t)(r * c));
    }
    free(Ah);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) out[i * cols + j] = tr ? X[j * c + i] : X[i * c + j];
    free(X); free(BX); free(A); free(B); free(Xt);
}

#define NS_QUINTIC 3.4445f, -4.7750f, 2.0315f
#define NS_CUBIC 1.5f, -0.5f, 0.0f
static void ns_ref(const float *x, int64_t rows, int64_t cols, int steps, double *out) {
    ns_ref_poly(x, rows, cols, steps, 3.4445f, -4.7750f, 2.0315f, out);  // the f32 coefficients, as the kernels
}

// ‖O Oᵀ − I‖_F / √r with O oriented so that r = min(rows, cols) (the NS fixed point is O Oᵀ = I).
static double orth_error(const float *o, int64_t rows, int64_t cols) {
    const int tr = rows > cols;
    const int64_t r = tr ? cols : rows, c = tr ? rows : cols;
    double e = 0;
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < r; j++) {
            double s = 0;
            for (int64_t k = 0; k < c; k++) {
                double a = tr ? o[k * cols + i] : o[i * cols + k];
                double b = tr ? o[k * cols + j] : o[j * cols + k];
                s += a * b;
            }
            s -= (i == j);
            e += s * s;
        }
    return sqrt(e / (double)r);
}

// ---- The host "device" table (dry run): host memory, the CUDA stream kernels emulated on the CPU,
// the CPU kernels for the rest, naive GEMM. Exercises every device check without a GPU. ------------

static int host_count(int *n) { *n = 1; return 0; }
static int host_set_device(int d) { return d == 0 ? 0 : 1; }
static int host_name(int d, char *name, size_t len) { (void)d; snprintf(name, len, "host (dry run)"); return 0; }
static int host_mem_info(size_t *f, size_t *t) { *f = 0; *t = 0; return 0; }
static int host_malloc(void **p, size_t b) { *p = malloc(b ? b : 1); return *p ? 0 : 2; }
static int host_free(void *p) { free(p); return 0; }
static int host_copy(void *d, const void *s, size_t b) { memmove(d, s, b); return 0; }
static int host_memset(void *p, int v, size_t b) { memset(p, v, b); return 0; }
static int host_sync(void) { return 0; }
static const char *host_last_error(void) { return ""; }
static void emu_perturb(void *x, zt_dtype dt, int64_t n, uint64_t first, uint64_t seed, uint32_t tid, uint32_t st, float a) {
    zt_emu_stream(OP_PERTURB, x, dt, x, dt, n, first, seed, tid, st, a, 0, 0, 0, 0, -1);
}
static void emu_update(void *x, zt_dtype dt, int64_t n, uint64_t first, uint64_t seed, uint32_t tid, uint32_t st,
                       float restore, float step, float decay) {
    zt_emu_stream(OP_UPDATE, x, dt, x, dt, n, first, seed, tid, st, restore, step, decay, 0, 0, -1);
}
static void emu_replay(void *x, zt_dtype dt, int64_t n, uint64_t first, uint64_t seed, uint32_t tid, uint32_t st,
                       float a1, float a2, float restore, float step, float decay) {
    zt_emu_stream(OP_REPLAY, x, dt, x, dt, n, first, seed, tid, st, restore, step, decay, a1, a2, -1);
}
static void emu_copy(void *out, zt_dtype odt, const void *src, zt_dtype sdt, int64_t n, uint64_t first, uint64_t seed,
                     uint32_t tid, uint32_t st, float a) {
    zt_emu_stream(OP_COPY, out, odt, src, sdt, n, first, seed, tid, st, a, 0, 0, 0, 0, -1);
}
static void emu_fill(void *out, zt_dtype dt, int64_t n, uint64_t first, uint64_t seed, uint32_t tid, uint32_t st, float s) {
    zt_emu_stream(OP_FILL, out, dt, out, dt, n, first, seed, tid, st, s, 0, 0, 0, 0, -1);
}
static void emu_convert(void *dst, zt_dtype ddt, const void *src, zt_dtype sdt, int64_t n) {
    zt_emu_stream(OP_CONVERT, dst, ddt, src, sdt, n, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1);
}
static void emu_zo_update(int kind, void *x, zt_dtype dt, float *s1, float *s2, int64_t n, uint64_t first,
                          uint64_t seed, uint32_t tid, uint32_t st, const zt_zo_update_args *args) {
    zt_emu_zo_update(kind, x, dt, s1, s2, n, first, seed, tid, st, args, -1);
}
static void emu_perturb_hessian(void *x, zt_dtype dt, const float *h, int64_t n, uint64_t first, uint64_t seed,
                                uint32_t tid, uint32_t st, float a) {
    zt_emu_perturb_hessian(x, dt, h, n, first, seed, tid, st, a, -1);
}
static int host_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                      const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return 0;
    double *tmp = hmalloc(sizeof(double) * (size_t)(M * ldc));
    gemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, tmp);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) C[i * ldc + j] = (float)tmp[i * ldc + j];
    free(tmp);
    return 0;
}
static int host_sgemm_batched(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                              int64_t sa, const float *B, int64_t ldb, int64_t sb, float beta, float *C, int64_t ldc,
                              int64_t sc, int64_t batch) {
    for (int64_t i = 0; i < batch; i++) host_sgemm(ta, tb, M, N, K, alpha, A + i * sa, lda, B + i * sb, ldb, beta, C + i * sc, ldc);
    return 0;
}
static int host_ns(const float *src, float *dst, int64_t rows, int64_t cols, int steps, float a, float b, float c, int bf16,
                   float *ws) {
    (void)bf16;
    zt_newton_schulz(src, dst, rows, cols, steps, a, b, c, ws);  // the CPU kernel (f32, naive zt_sgemm above)
    return 0;
}
static int host_debug_philox(uint32_t *out, uint64_t nblocks, uint64_t j0, uint64_t seed, uint32_t tid, uint32_t st) {
    for (uint64_t t = 0; t < nblocks; t++) {
        zt_u32x4 w = zt_philox_block(seed, tid, st, j0 + t);
        memcpy(out + 4 * t, w.v, 16);
    }
    return 0;
}

// The reductions as the device sums them (emulate.cpp), not the CPU kernels' order.
static int host_sum_squares(const float *x, int64_t n, double *out) {
    *out = zt_emu_sumsq(x, NULL, ZT_F32, n);
    return 0;
}
static int host_squared_distance(const void *a, const void *b, zt_dtype dt, int64_t n, double *out) {
    *out = zt_emu_sumsq(a, b, dt, n);
    return 0;
}
static int host_ns_batched(const float *src, float *dst, int64_t batch, int64_t rows, int64_t cols, int steps, float a,
                           float b, float c, int bf16, float *ws) {
    (void)bf16;
    zt_newton_schulz_batched(src, dst, batch, rows, cols, steps, a, b, c, ws);  // the CPU table's (f32)
    return 0;
}

static void host_stream_list(int op, const zt_list_item *items, int count, zt_dtype dt, uint64_t seed, uint32_t stream,
                             float a, float step) {
    for (int i = 0; i < count; i++) {
        const zt_list_item *it = &items[i];
        if (op == ZT_LIST_PERTURB) emu_perturb(it->x, dt, it->n, it->first, seed, it->tensor_id, stream, a);
        else emu_update(it->x, dt, it->n, it->first, seed, it->tensor_id, stream, a, step, it->decay);
    }
}
static void host_zo_update_list(int kind, const zt_zo_list_item *items, int count, zt_dtype dt, uint64_t seed,
                                uint32_t stream, const zt_zo_update_args *args) {
    zt_zo_update_args a = *args;
    for (int i = 0; i < count; i++) {
        a.decay = items[i].decay;
        emu_zo_update(kind, items[i].x, dt, items[i].s1, items[i].s2, items[i].n, items[i].first, seed, items[i].tensor_id,
                      stream, &a);
    }
}
static int64_t host_embedding(float *out, const void *table, zt_dtype dt, int64_t vocab, int64_t dim,
                              const int32_t *ids, int64_t n, int count_bad) {
    (void)count_bad;
    return zt_embedding(out, table, dt, vocab, dim, ids, n);
}
static int64_t host_dequantize_rows(void *out, zt_dtype odt, const void *src, int type, int64_t src_rows, int64_t cols,
                                    const int32_t *ids, int64_t rows, int count_bad) {
    (void)count_bad;
    if (odt == ZT_F32) return zt_emu_dequantize_rows(out, src, type, src_rows, cols, ids, rows);
    if (ids) return -1;
    float *tmp = hmalloc(rows * cols * 4);  // the emulated decoder, then the CPU's rounding
    const int64_t rc = zt_emu_dequantize_rows(tmp, src, type, src_rows, cols, NULL, rows);
    for (int64_t i = 0; i < rows * cols; i++)
        ((uint16_t *)out)[i] = odt == ZT_BF16 ? zt_f32_to_bf16(tmp[i]) : zt_f32_to_f16(tmp[i]);
    free(tmp);
    return rc;
}
// A rounded to b_dtype, B widened, the product in double (the CPU table's emulation, naive).
static int host_gemm_mixed(int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                           const void *B, zt_dtype bt, int64_t ldb, float beta, float *C, int64_t ldc, void *ws) {
    if (bt != ZT_BF16 && bt != ZT_F16) return 1;
    if (M <= 0 || N <= 0) return 0;
    float *a = ws, *b = a + M * K;
    for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < K; k++) {
            const float v = A[i * lda + k];
            a[i * K + k] = bt == ZT_BF16 ? zt_bf16_to_f32(zt_f32_to_bf16(v)) : zt_f16_to_f32(zt_f32_to_f16(v));
        }
    const int64_t rows = tb ? N : K, cols = tb ? K : N;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) {
            const uint16_t h = ((const uint16_t *)B)[r * ldb + j];
            b[r * cols + j] = bt == ZT_BF16 ? zt_bf16_to_f32(h) : zt_f16_to_f32(h);
        }
    return host_sgemm(0, tb, M, N, K, alpha, a, K, b, cols, beta, C, ldc);
}
static size_t host_gemm_mixed_workspace(int64_t M, int64_t N, int64_t K) { return (size_t)(M * K + N * K) * 4; }
// A already 16-bit: widened into the workspace and the same product as host_gemm_mixed.
static int host_gemm_half(int tb, int64_t M, int64_t N, int64_t K, float alpha, const void *A, int64_t lda, const void *B,
                          zt_dtype bt, int64_t ldb, float beta, float *C, int64_t ldc, void *ws) {
    if (bt != ZT_BF16 && bt != ZT_F16) return 1;
    if (M <= 0 || N <= 0) return 0;
    float *a = ws, *b = a + M * K;
    for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < K; k++) {
            const uint16_t h = ((const uint16_t *)A)[i * lda + k];
            a[i * K + k] = bt == ZT_BF16 ? zt_bf16_to_f32(h) : zt_f16_to_f32(h);
        }
    const int64_t rows = tb ? N : K, cols = tb ? K : N;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) {
            const uint16_t h = ((const uint16_t *)B)[r * ldb + j];
            b[r * cols + j] = bt == ZT_BF16 ? zt_bf16_to_f32(h) : zt_f16_to_f32(h);
        }
    return host_sgemm(0, tb, M, N, K, alpha, a, K, b, cols, beta, C, ldc);
}
static int host_set_tf32(int on) { (void)on; return 0; }  // the naive reference has no TF32 mode
static int host_memory_stats(size_t *live, size_t *cached, size_t *library) {
    *live = *cached = *library = 0;
    return 0;
}

#include "check_graph.c"
#include "check_half.c"

static const zt_backend_api host_table = {
    .abi_version = ZT_BACKEND_ABI_VERSION, .struct_size = sizeof(zt_backend_api),
    .device_count = host_count, .set_device = host_set_device, .device_name = host_name, .mem_info = host_mem_info,
    .malloc = host_malloc, .free = host_free, .memcpy_h2d = host_copy, .memcpy_d2h = host_copy,
    .memcpy_d2d = host_copy, .memset = host_memset, .synchronize = host_sync, .last_error = host_last_error,
    .perturb = emu_perturb, .restore_update = emu_update, .replay_step = emu_replay, .perturbed_copy = emu_copy, .fill_normal = emu_fill,
    .convert = emu_convert, .zo_update = emu_zo_update, .perturb_hessian = emu_perturb_hessian,
    .stream_list = host_stream_list, .zo_update_list = host_zo_update_list,
    .add = zt_add, .mul = zt_mul, .scale = zt_scale, .add_rows = zt_add_rows,
    .relu = zt_relu, .silu = zt_silu, .gelu_tanh = zt_gelu_tanh, .gelu_erf = zt_gelu_erf, .swiglu = zt_swiglu,
    .softcap = zt_softcap,
    .softmax = zt_softmax, .log_softmax = zt_log_softmax, .token_logprobs = zt_token_logprobs,
    .layernorm = zt_layernorm, .rmsnorm = zt_rmsnorm, .embedding = host_embedding, .rope = zt_rope,
    .attention = zt_attention, .copy_2d = zt_copy_2d, .sgemm = host_sgemm,
    .sgemm_strided_batched = host_sgemm_batched, .gemm_mixed = host_gemm_mixed,
    .gemm_mixed_workspace = host_gemm_mixed_workspace, .set_tf32 = host_set_tf32, .memory_stats = host_memory_stats,
    .newton_schulz = host_ns,
    .add_scaled = zt_add_scaled, .jaguar_probe = zt_jaguar_probe, .jaguar_update = zt_jaguar_update,
    .lerp = zt_lerp, .scale_rows = zt_scale_rows, .sum_squares = host_sum_squares, .adam_direction = zt_adam_direction,
    .squared_distance = host_squared_distance, .dequantize_rows = host_dequantize_rows,
    .logsumexp_panel = zt_logsumexp_panel,
    .stream_sum = zt_stream_sum, .masked_stream = zt_masked_stream,
    .newton_schulz_batched = host_ns_batched, .gemm_half = host_gemm_half,
    .rmsnorm_half = host_rmsnorm_half, .swiglu_half = host_swiglu_half, .graph_begin = host_graph_begin,
    .graph_end = host_graph_end, .graph_launch = host_graph_launch, .graph_destroy = host_graph_destroy,
    .layernorm_half = host_layernorm_half, .activation_half = host_activation_half, .attention_half = host_attention_half,
};

// ---- Table and ABI ----------------------------------------------------------------------------------

#define TABLE_FIELDS(X)                                                                                  \
    X(device_count) X(set_device) X(device_name) X(mem_info) X(malloc) X(free) X(memcpy_h2d) X(memcpy_d2h) \
    X(memcpy_d2d) X(memset) X(synchronize) X(last_error) X(perturb) X(restore_update) X(replay_step)       \
    X(perturbed_copy)                                                                                    \
    X(fill_normal) X(convert) X(zo_update) X(perturb_hessian) X(stream_list) X(zo_update_list)                               \
    X(add) X(mul) X(scale) X(add_rows) X(relu) X(silu) X(gelu_tanh) X(gelu_erf)                            \
    X(swiglu) X(softcap) X(softmax) X(log_softmax) X(token_logprobs) X(layernorm) X(rmsnorm) X(embedding) X(rope)      \
    X(attention) X(copy_2d) X(sgemm) X(sgemm_strided_batched) X(gemm_mixed) X(gemm_mixed_workspace)      \
    X(set_tf32) X(memory_stats) X(newton_schulz) X(add_scaled) X(jaguar_probe)    \
    X(jaguar_update) X(lerp) X(scale_rows) X(sum_squares) X(adam_direction) X(squared_distance)        \
    X(dequantize_rows) X(logsumexp_panel) X(stream_sum) X(masked_stream) X(newton_schulz_batched) X(gemm_half) \
    X(rmsnorm_half) X(swiglu_half) X(graph_begin) X(graph_end) X(graph_launch) X(graph_destroy)              \
    X(layernorm_half) X(activation_half) X(attention_half)

static void check_table(const zt_backend_api *t) {
    result(t->abi_version == ZT_BACKEND_ABI_VERSION && t->struct_size == sizeof(zt_backend_api), "table ABI",
           "version %u (want %u), struct %u bytes (want %zu)", t->abi_version, ZT_BACKEND_ABI_VERSION, t->struct_size,
           sizeof(zt_backend_api));
    int fields = 0, missing = 0;
    char names[512] = "";
#define COUNT(f)                                                                                         \
    fields++;                                                                                            \
    if (!t->f) {                                                                                         \
        missing++;                                                                                       \
        strncat(names, " " #f, sizeof names - strlen(names) - 1);                                        \
    }
    TABLE_FIELDS(COUNT)
#undef COUNT
    // Every pointer of the struct is listed above (the struct is 2 uint32 + pointers).
    const int in_struct = (int)((sizeof(zt_backend_api) - 8) / sizeof(void *));
    result(missing == 0 && fields == in_struct, "table entries non-NULL", "%d of %d set%s%s", fields - missing,
           in_struct, missing ? "; NULL:" : "", names);
}

// ---- CPU-side checks (no device) ---------------------------------------------------------------------

// Random123's published known-answer vectors for philox4x32_10.
static void check_philox_kat(void) {
    static const struct { uint32_t ctr[4], key[2], out[4]; } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
        {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu},
         {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
        {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u},
         {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        zt_u32x4 c;
        memcpy(c.v, kat[i].ctr, 16);
        zt_u32x4 w = zt_philox4x32_10(c, kat[i].key[0], kat[i].key[1]);
        ok &= memcmp(w.v, kat[i].out, 16) == 0;
    }
    result(ok, "Philox4x32-10 known answers (Random123)", "3 vectors");
}

// The CUDA stream kernels' block code (emulated) vs the CPU kernels, every op, dtype, offset and
// vector mode; src/x pointer offsets make head blocks, tails and misaligned vector bases.
static void check_emulated_stream(void) {
    const zt_dtype dts[3] = {ZT_F32, ZT_BF16, ZT_F16};
    const uint64_t firsts[5] = {0, 1, 3, 6, (1ull << 33) + 2};
    const int64_t ns[4] = {1, 3, 70, 1031};
    const uint64_t seed = 0xA5A5F00D12345678ull;
    int64_t cases = 0, bad = 0;
    char first_bad[200] = "";
    for (int op = OP_PERTURB; op <= OP_REPLAY; op++)
        for (int di = 0; di < 3; di++)
            for (int si = 0; si < 3; si++) {
                if (op != OP_COPY && op != OP_CONVERT && si != di) continue;
                const zt_dtype dt = dts[di], sdt = dts[si];
                for (int fi = 0; fi < 5; fi++)
                    for (int ni = 0; ni < 4; ni++)
                        for (int off = 0; off < 4; off++)
                            for (int vm = -1; vm <= 1; vm++) {
                                const int64_t n = ns[ni];
                                const uint64_t first = op == OP_CONVERT ? 0 : firsts[fi];
                                if (op == OP_CONVERT && fi) continue;
                                const size_t ds = (size_t)zt_dtype_size(dt), ss = (size_t)zt_dtype_size(sdt);
                                char *src = random_storage(sdt, n + 4, 1.5f);
                                char *a = hmalloc((n + 4) * ds), *b = hmalloc((n + 4) * ds);
                                char *init = random_storage(dt, n + 4, 0.7f);
                                memcpy(a, init, (n + 4) * ds);
                                memcpy(b, init, (n + 4) * ds);
                                void *xa = a + off * ds, *xb = b + off * ds;
                                const void *s = src + off * ss;
                                const float eps = 1e-3f, step = 3e-4f, decay = 1e-5f;
                                // replay: a2 = 0 (one perturbation, as n-SPSA's last) on odd n
                                const float a1 = 2 * eps, a2 = (n & 1) ? 0.0f : -4 * eps;
                                zt_emu_stream(op, xa, dt, s, sdt, n, first, seed, 77u, 1u, eps, step, decay, a1, a2, vm);
                                switch (op) {
                                case OP_PERTURB: zt_perturb(xb, dt, n, first, seed, 77u, 1u, eps); break;
                                case OP_UPDATE: zt_restore_update(xb, dt, n, first, seed, 77u, 1u, eps, step, decay); break;
                                case OP_COPY: zt_perturbed_copy(xb, dt, s, sdt, n, first, seed, 77u, 1u, eps); break;
                                case OP_FILL: zt_fill_normal(xb, dt, n, first, seed, 77u, 1u, eps); break;
                                case OP_REPLAY: zt_replay_step(xb, dt, n, first, seed, 77u, 1u, a1, a2, eps, step, decay); break;
                                default: zt_convert(xb, dt, s, sdt, n); break;
                                }
                                cases++;
                                // Whole buffers: also catches writes outside [off, off + n).
                                if (memcmp(a, b, (n + 4) * ds) != 0) {
                                    if (!bad)
                                        snprintf(first_bad, sizeof first_bad, "op %d %s<-%s first %llu n %lld off %d vec %d",
                                                 op, dtname(dt), dtname(sdt), (unsigned long long)first, (long long)n, off, vm);
                                    bad++;
                                }
                                free(src); free(a); free(b); free(init);
                            }
            }
    result(bad == 0, "emulated CUDA stream blocks vs CPU kernels", "%lld of %lld cases differ%s%s", (long long)bad,
           (long long)cases, bad ? "; first: " : " (bit-identical)", first_bad);
}

// The stateful ops' block code (emulated) vs the CPU kernels: zo_update of each kind over three
// steps (training, replay, training) and perturb_hessian, on every dtype, offset and vector mode;
// the state arrays sit at their own offset (aligned with x or not), and x and the state are
// compared whole (writes outside [off, off + n) fail too).
static void check_emulated_zo(void) {
    const zt_dtype dts[3] = {ZT_F32, ZT_BF16, ZT_F16};
    const uint64_t firsts[5] = {0, 1, 3, 6, (1ull << 33) + 2};
    const int64_t ns[4] = {1, 3, 70, 1031};
    const uint64_t seed = 0x5EED0F2E0DEC0DE5ull;
    const float eps = 1e-3f;
    int64_t cases = 0, bad = 0;
    char first_bad[200] = "";
    for (int op = 0; op <= N_ZO_KINDS; op++)  // the zo_update kinds, then perturb_hessian
        for (int di = 0; di < 3; di++)
            for (int fi = 0; fi < 5; fi++)
                for (int ni = 0; ni < 4; ni++)
                    for (int off = 0; off < 4; off++)
                        for (int sshift = 0; sshift < 2; sshift++)
                            for (int vm = -1; vm <= 1; vm++) {
                                const int kind = op < N_ZO_KINDS ? zo_kinds[op] : ZT_ZO_HIZOO;
                                const zt_dtype dt = dts[di];
                                const int64_t n = ns[ni], m = n + 4;
                                const uint64_t first = firsts[fi];
                                const int soff = (off + sshift) % 4;
                                const size_t ds = (size_t)zt_dtype_size(dt);
                                char *init = random_storage(dt, m, 0.05f), *a = hmalloc(m * ds), *b = hmalloc(m * ds);
                                float *s1a = hmalloc(m * 4), *s1b = hmalloc(m * 4), *s2a = NULL, *s2b = NULL;
                                memcpy(a, init, m * ds);
                                memcpy(b, init, m * ds);
                                if (op < N_ZO_KINDS && zo_two_arrays(kind)) {
                                    s2a = hmalloc(m * 4);
                                    s2b = hmalloc(m * 4);
                                }
                                zo_state_init(kind, s1a, s2a, m);
                                memcpy(s1b, s1a, m * 4);
                                if (s2a) memcpy(s2b, s2a, m * 4);
                                void *xa = a + off * ds, *xb = b + off * ds;
                                float *t1a = s1a + soff, *t1b = s1b + soff;
                                float *t2a = s2a ? s2a + soff : NULL, *t2b = s2b ? s2b + soff : NULL;
                                if (op == N_ZO_KINDS) {
                                    zt_emu_perturb_hessian(xa, dt, t1a, n, first, seed, 21u, 0, eps, vm);
                                    zt_perturb_hessian(xb, dt, t1b, n, first, seed, 21u, 0, eps);
                                } else {
                                    for (int t = 1; t <= 3; t++) {
                                        const zt_zo_update_args p = zo_args(kind, t, t == 2, eps);
                                        zt_emu_zo_update(kind, xa, dt, t1a, t2a, n, first, seed + (uint64_t)t, 21u, 0, &p, vm);
                                        zt_zo_update(kind, xb, dt, t1b, t2b, n, first, seed + (uint64_t)t, 21u, 0, &p);
                                    }
                                }
                                cases++;
                                if (memcmp(a, b, m * ds) != 0 || memcmp(s1a, s1b, m * 4) != 0 ||
                                    (s2a && memcmp(s2a, s2b, m * 4) != 0)) {
                                    if (!bad)
                                        snprintf(first_bad, sizeof first_bad, "%s %s first %llu n %lld off %d state off %d vec %d",
                                                 op == N_ZO_KINDS ? "perturb_hessian" : zo_name(kind), dtname(dt),
                                                 (unsigned long long)first, (long long)n, off, soff, vm);
                                    bad++;
                                }
                                free(init); free(a); free(b); free(s1a); free(s1b); free(s2a); free(s2b);
                            }
    result(bad == 0, "emulated zo_update / perturb_hessian vs CPU", "%lld of %lld cases differ%s%s", (long long)bad,
           (long long)cases, bad ? "; first: " : " (bit-identical, x and state)", first_bad);
}

// Conversions of the CUDA code (emulated) on every 16-bit pattern and on special/random f32 values.
static void check_emulated_convert(void) {
    uint16_t *h = hmalloc(65536 * 2), *o16a = hmalloc(65536 * 2), *o16b = hmalloc(65536 * 2);
    float *fa = hmalloc(65536 * 4), *fb = hmalloc(65536 * 4);
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    int64_t bad = 0;
    const zt_dtype d16[2] = {ZT_BF16, ZT_F16};
    for (int k = 0; k < 2; k++) {
        zt_emu_stream(OP_CONVERT, fa, ZT_F32, h, d16[k], 65536, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1);
        zt_convert(fb, ZT_F32, h, d16[k], 65536);
        bad += memcmp(fa, fb, 65536 * 4) != 0;
        zt_emu_stream(OP_CONVERT, o16a, d16[1 - k], h, d16[k], 65536, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1);
        zt_convert(o16b, d16[1 - k], h, d16[k], 65536);
        bad += memcmp(o16a, o16b, 65536 * 2) != 0;
    }
    const int64_t n = 1 << 20;
    uint32_t *bits = hmalloc(n * 4);
    uint16_t *ra = hmalloc(n * 2), *rb = hmalloc(n * 2);
    static const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 65504.0f, 65519.99f, 65520.0f, 1e-8f,
                                     2.98e-8f, 5.96e-8f, 6.1e-5f, 1e-40f, 3.4e38f, 1.00390625f, 1.01171875f};
    for (int64_t i = 0; i < n; i++) bits[i] = (uint32_t)rnd64();
    memcpy(bits, specials, sizeof specials);
    for (int k = 0; k < 2; k++) {
        zt_emu_stream(OP_CONVERT, ra, d16[k], bits, ZT_F32, n, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1);
        zt_convert(rb, d16[k], bits, ZT_F32, n);
        bad += memcmp(ra, rb, n * 2) != 0;
    }
    result(bad == 0, "emulated CUDA conversions vs CPU", "all 2^16 f16/bf16 patterns, 2^20 f32 patterns: %s",
           bad ? "DIFFER" : "bit-identical");
    free(h); free(o16a); free(o16b); free(fa); free(fb); free(bits); free(ra); free(rb);
}

// The CPU references agree with themselves: chunked == whole, moments of z, copy == perturb.
static void check_reference_consistency(void) {
    const int64_t n = 1 << 24;  // 16M
    float *whole = hmalloc(n * 4), *chunks = hmalloc(n * 4);
    const uint64_t first = (1ull << 32) + 1, seed = 42;
    zt_fill_normal(whole, ZT_F32, n, first, seed, 5, 0, 1.0f);
    const int64_t cuts[] = {0, 1, 3, 4, 1000003, 5000000, n};
    for (int c = 0; c + 1 < (int)(sizeof cuts / sizeof cuts[0]); c++)
        zt_fill_normal(chunks + cuts[c], ZT_F32, cuts[c + 1] - cuts[c], first + (uint64_t)cuts[c], seed, 5, 0, 1.0f);
    result(memcmp(whole, chunks, n * 4) == 0, "CPU fill_normal: chunks == whole (16M)", "");
    double m = 0, v = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        m += whole[i];
        v += (double)whole[i] * whole[i];
        if (fabs(whole[i]) > mx) mx = fabs(whole[i]);
    }
    m /= (double)n;
    v = v / (double)n - m * m;
    result(fabs(m) < 1.5e-3 && fabs(v - 1) < 3e-3 && mx <= 5.78, "CPU z moments (16M)", "mean %.2e var %.6f max|z| %.3f",
           m, v, mx);
    // perturbed_copy(src) == perturb(copy of src), f32 and bf16
    int ok = 1;
    for (int k = 0; k < 2; k++) {
        const zt_dtype dt = k ? ZT_BF16 : ZT_F32;
        const int64_t m2 = 100003;
        void *src = random_storage(dt, m2, 0.02f);
        void *a = hmalloc(m2 * 4), *b = hmalloc(m2 * 4);
        memcpy(a, src, m2 * (size_t)zt_dtype_size(dt));
        zt_perturb(a, dt, m2, 9, seed, 3, 0, 1e-3f);
        zt_perturbed_copy(b, dt, src, dt, m2, 9, seed, 3, 0, 1e-3f);
        ok &= memcmp(a, b, m2 * (size_t)zt_dtype_size(dt)) == 0;
        free(src); free(a); free(b);
    }
    result(ok, "CPU perturbed_copy == perturb on a copy", "f32, bf16");
    free(whole);
    free(chunks);
}

// Naive GEMM reference vs OpenBLAS (when libopenblas is present): validates the reference's
// row-major / transpose / leading-dimension conventions that the device checks rely on.
typedef void (*cblas_sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float,
                               float *, int);
static void check_gemm_reference(void) {
    void *lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libopenblas.so", RTLD_NOW | RTLD_LOCAL);
    cblas_sgemm_fn sg = lib ? (cblas_sgemm_fn)dlsym(lib, "cblas_sgemm") : NULL;
    if (!sg) {
        printf("  %-44s %-4s %s\n", "naive GEMM vs OpenBLAS", "skip", "libopenblas not found");
        return;
    }
    double worst = 0;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            const int M = 37, N = 29, K = 53, lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
            float *A = hmalloc(4 * (size_t)lda * (ta ? K : M)), *B = hmalloc(4 * (size_t)ldb * (tb ? N : K));
            float *C = hmalloc(4 * (size_t)ldc * M), *C0 = hmalloc(4 * (size_t)ldc * M);
            double *R = hmalloc(8 * (size_t)ldc * M);
            fill_normal_host(A, (int64_t)lda * (ta ? K : M), 1, 0);
            fill_normal_host(B, (int64_t)ldb * (tb ? N : K), 1, 0);
            fill_normal_host(C0, (int64_t)ldc * M, 1, 0);
            memcpy(C, C0, 4 * (size_t)ldc * M);
            // CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112
            sg(101, ta ? 112 : 111, tb ? 112 : 111, M, N, K, 0.7f, A, lda, B, ldb, 0.3f, C, ldc);
            gemm_ref(ta, tb, M, N, K, 0.7, A, lda, B, ldb, 0.3, C0, ldc, R);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double e = fabs(C[i * ldc + j] - R[i * ldc + j]) / (1 + fabs(R[i * ldc + j]));
                    if (e > worst) worst = e;
                }
            free(A); free(B); free(C); free(C0); free(R);
        }
    result(worst < 1e-5, "naive GEMM vs OpenBLAS (4 transposes, ld pad)", "max rel err %.2e", worst);
}

static void check_ns_reference(void) {
    const int64_t r = 64, c = 256;
    float *x = hmalloc(4 * r * c), *xt = hmalloc(4 * r * c), *o = hmalloc(4 * r * c);
    double *a = hmalloc(8 * r * c), *b = hmalloc(8 * r * c);
    fill_normal_host(x, r * c, 1, 0);
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < c; j++) xt[j * r + i] = x[i * c + j];
    ns_ref(x, r, c, 5, a);
    ns_ref(xt, c, r, 5, b);
    double asym = 0;
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < c; j++) asym = fmax(asym, fabs(a[i * c + j] - b[j * r + i]));
    for (int64_t i = 0; i < r * c; i++) o[i] = (float)a[i];
    const double orth = orth_error(o, r, c);
    // ‖x‖² is summed in another order for xᵀ: equal up to double rounding
    result(asym < 1e-12 && orth < 0.6, "naive Newton-Schulz reference",
           "|NS(x^T) - NS(x)^T| %.1e; |OO^T-I|_F/sqrt(r) %.3f (64x256)", asym, orth);
    free(x); free(xt); free(o); free(a); free(b);
}

// ---- Device checks -----------------------------------------------------------------------------------

static void dev_philox(void) {
    section("Philox stream (bit-identical)");
    const uint64_t nb = (uint64_t)SZ(1 << 22, 1 << 14), j0 = (1ull << 33) + 5, seed = 0x0123456789ABCDEFull;
    uint32_t *d = dalloc(nb * 16), *hg = hmalloc(nb * 16), *hc = hmalloc(nb * 16);
    dcheck(g_philox(d, nb, j0, seed, 0xDEADBEEFu, 1), "debug_philox");
    d2h(hg, d, nb * 16);
    for (uint64_t t = 0; t < nb; t++) {
        zt_u32x4 w = zt_philox_block(seed, 0xDEADBEEFu, 1, j0 + t);
        memcpy(hc + 4 * t, w.v, 16);
    }
    char name[96];
    snprintf(name, sizeof name, "Philox words, %llu blocks at j0 = 2^33+5", (unsigned long long)nb);
    check_bits(name, hg, hc, (int64_t)nb * 4, 4);
    dfree(d);
    free(hg);
    free(hc);

    // fill_normal f32 over ≥ 16M elements at first ≡ 1 (mod 4), whole and in misaligned chunks.
    const int64_t n = SZ((1 << 24) + 3, (1 << 16) + 3);
    const uint64_t first = (1ull << 32) + 1;
    float *dz = dalloc(n * 4), *gz = hmalloc(n * 4), *cz = hmalloc(n * 4);
    dpoison(dz, n * 4);
    G->fill_normal(dz, ZT_F32, n, first, seed, 1234u, 0, 1.0f);
    d2h(gz, dz, n * 4);
    zt_fill_normal(cz, ZT_F32, n, first, seed, 1234u, 0, 1.0f);
    snprintf(name, sizeof name, "fill_normal f32 n=%lld first≡1 mod 4", (long long)n);
    check_bits(name, gz, cz, n, 4);
    dpoison(dz, n * 4);
    const int64_t cuts[] = {0, 1, 3, 6, 1001, n / 3, n / 2 + 1, n};
    for (int c = 0; c + 1 < (int)(sizeof cuts / sizeof cuts[0]); c++)
        G->fill_normal(dz + cuts[c], ZT_F32, cuts[c + 1] - cuts[c], first + (uint64_t)cuts[c], seed, 1234u, 0, 1.0f);
    d2h(gz, dz, n * 4);
    check_bits("fill_normal f32 in 7 misaligned chunks", gz, cz, n, 4);
    dfree(dz);
    free(gz);
    free(cz);

    const int64_t m = SZ(1 << 20, 1 << 12) + 1;
    for (int k = 0; k < 2; k++) {
        const zt_dtype dt = k ? ZT_F16 : ZT_BF16;
        uint16_t *d16 = dalloc(m * 2), *g16 = hmalloc(m * 2), *c16 = hmalloc(m * 2);
        dpoison(d16, m * 2);
        G->fill_normal(d16, dt, m, 7, seed, 99u, 1, 0.02f);
        d2h(g16, d16, m * 2);
        zt_fill_normal(c16, dt, m, 7, seed, 99u, 1, 0.02f);
        snprintf(name, sizeof name, "fill_normal %s scale 0.02", dtname(dt));
        check_bits(name, g16, c16, m, 2);
        dfree(d16);
        free(g16);
        free(c16);
    }
}

// Where the stream checks put x: offsets at which the device takes the vector path (pointer offset
// ≡ first mod 4) and where it cannot.
typedef struct { uint64_t first; int off; const char *what; } stream_offset;
static const stream_offset stream_at[] = {
    {0, 0, "first 0"},
    {3, 3, "first 3, vector"},
    {3, 0, "first 3, scalar"},
    {(1ull << 33) + 2, 1, "first 2^33+2, scalar"},
    {(1ull << 40) + 1, 1, "first 2^40+1, vector"},
};
#define N_STREAM_AT ((int)(sizeof stream_at / sizeof stream_at[0]))

// perturb / restore_update / perturbed_copy on device vs CPU, per dtype, at each of stream_at.
static void dev_stream_ops(void) {
    section("perturb / restore_update / replay_step / perturbed_copy (bit-identical)");
    const zt_dtype dts[3] = {ZT_F32, ZT_BF16, ZT_F16};
    const stream_offset *at = stream_at;
    const int64_t n = SZ((1 << 20) + 5, 4099);
    const uint64_t seed = 0xFEEDFACECAFEBEEFull;
    char name[128];
    for (int di = 0; di < 3; di++) {
        const zt_dtype dt = dts[di];
        const size_t es = (size_t)zt_dtype_size(dt);
        for (int ai = 0; ai < N_STREAM_AT; ai++) {
            void *h0 = random_storage(dt, n, 0.05f);
            char *hc = hmalloc(n * es), *hg = hmalloc(n * es);
            char *d = dalloc((n + 4) * es);
            void *dx = d + at[ai].off * es;
            // perturb(+ε), perturb(−2ε), restore_update: one MeZO step
            h2d(dx, h0, n * es);
            memcpy(hc, h0, n * es);
            G->perturb(dx, dt, n, at[ai].first, seed, 11u, 0, 1e-3f);
            zt_perturb(hc, dt, n, at[ai].first, seed, 11u, 0, 1e-3f);
            d2h(hg, dx, n * es);
            snprintf(name, sizeof name, "perturb %s %s", dtname(dt), at[ai].what);
            check_bits(name, hg, hc, n, (int)es);
            G->perturb(dx, dt, n, at[ai].first, seed, 11u, 0, -2e-3f);
            zt_perturb(hc, dt, n, at[ai].first, seed, 11u, 0, -2e-3f);
            G->restore_update(dx, dt, n, at[ai].first, seed, 11u, 0, 1e-3f, 2.5e-4f, 1e-6f);
            zt_restore_update(hc, dt, n, at[ai].first, seed, 11u, 0, 1e-3f, 2.5e-4f, 1e-6f);
            d2h(hg, dx, n * es);
            snprintf(name, sizeof name, "perturb(-2e)+restore_update %s %s", dtname(dt), at[ai].what);
            check_bits(name, hg, hc, n, (int)es);
            // replay_step: the same step fused (and a one-perturbation variant, a2 = 0)
            G->replay_step(dx, dt, n, at[ai].first, seed, 13u, 0, 1e-3f, -2e-3f, 1e-3f, 2.5e-4f, 1e-6f);
            zt_replay_step(hc, dt, n, at[ai].first, seed, 13u, 0, 1e-3f, -2e-3f, 1e-3f, 2.5e-4f, 1e-6f);
            G->replay_step(dx, dt, n, at[ai].first, seed, 14u, 0, 1e-3f, 0.0f, -1e-3f, -2.5e-4f, 0.0f);
            zt_replay_step(hc, dt, n, at[ai].first, seed, 14u, 0, 1e-3f, 0.0f, -1e-3f, -2.5e-4f, 0.0f);
            d2h(hg, dx, n * es);
            snprintf(name, sizeof name, "replay_step x2 %s %s", dtname(dt), at[ai].what);
            check_bits(name, hg, hc, n, (int)es);
            dfree(d);
            free(h0); free(hc); free(hg);
        }
    }
    // perturbed_copy: all 9 (out, src) dtype pairs, at a vector and a scalar offset.
    int64_t bad_pairs = 0, pairs = 0;
    char first_bad[320] = "";
    for (int oi = 0; oi < 3; oi++)
        for (int si = 0; si < 3; si++)
            for (int ai = 1; ai <= 2; ai++) {
                const zt_dtype odt = dts[oi], sdt = dts[si];
                const size_t os = (size_t)zt_dtype_size(odt), ss = (size_t)zt_dtype_size(sdt);
                void *h0 = random_storage(sdt, n, 0.05f);
                char *hc = hmalloc(n * os), *hg = hmalloc(n * os);
                char *ds = dalloc((n + 4) * ss), *dout = dalloc((n + 4) * os);
                h2d(ds + at[ai].off * ss, h0, n * ss);
                dpoison(dout, (n + 4) * os);
                G->perturbed_copy(dout + at[ai].off * os, odt, ds + at[ai].off * ss, sdt, n, at[ai].first, seed, 12u, 0, 1e-3f);
                zt_perturbed_copy(hc, odt, h0, sdt, n, at[ai].first, seed, 12u, 0, 1e-3f);
                d2h(hg, dout + at[ai].off * os, n * os);
                char d[200];
                pairs++;
                if (diff_bits(hg, hc, n, (int)os, d, sizeof d)) {
                    if (!bad_pairs) snprintf(first_bad, sizeof first_bad, "%s<-%s %s: %s", dtname(odt), dtname(sdt), at[ai].what, d);
                    bad_pairs++;
                }
                dfree(ds); dfree(dout);
                free(h0); free(hc); free(hg);
            }
    result(bad_pairs == 0, "perturbed_copy, 9 dtype pairs x 2 offsets", "%lld of %lld differ%s%s", (long long)bad_pairs,
           (long long)pairs, bad_pairs ? "; first: " : " (bit-identical)", first_bad);
}

// zo_update of each kind over three steps (training with its probes, replay, training) and
// perturb_hessian on device vs CPU, per dtype, at each of stream_at; the state arrays sit at the
// offset of x, so they take the vector path with it. x and the state are compared after every pass.
// List-driven passes (stream_list): 150 tensors of one dtype — more than one launch's 64 — with
// sizes 1 … 70k, odd offsets into one buffer (vector and scalar paths), per-tensor ids and decays;
// perturb then restore_update, bit for bit the CPU's single-tensor kernels.
static void dev_stream_list(void) {
    section("stream_list: many small tensors per launch (bit-identical)");
    const zt_dtype dts[3] = {ZT_F32, ZT_BF16, ZT_F16};
    enum { COUNT = 150 };
    for (int k = 0; k < 3; k++) {
        const zt_dtype dt = dts[k];
        const int64_t es = zt_dtype_size(dt);
        int64_t offs[COUNT], ns[COUNT], total = 0;
        for (int i = 0; i < COUNT; i++) {
            ns[i] = i % 10 == 0 ? 1 + (int64_t)(rnd64() % 70000) : 1 + (int64_t)(rnd64() % 3000);
            offs[i] = total + (int64_t)(rnd64() % 4);
            total = offs[i] + ns[i];
        }
        void *h = random_storage(dt, total, 0.5f), *c = hmalloc(total * es), *g = hmalloc(total * es);
        memcpy(c, h, total * es);
        char *d = dalloc(total * es);
        h2d(d, h, total * es);
        zt_list_item items[COUNT], citems[COUNT];
        for (int i = 0; i < COUNT; i++) {
            const uint64_t first = i % 3 == 0 ? (uint64_t)offs[i] : (uint64_t)(rnd64() % 1000);
            items[i] = (zt_list_item){d + offs[i] * es, ns[i], first, (uint32_t)(7 + i), i % 4 == 0 ? 0.0f : 1e-4f * (float)(i % 5)};
            citems[i] = items[i];
            citems[i].x = (char *)c + offs[i] * es;
        }
        G->stream_list(ZT_LIST_PERTURB, items, COUNT, dt, 99, 0, 1e-3f, 0.0f);
        G->stream_list(ZT_LIST_RESTORE_UPDATE, items, COUNT, dt, 99, 0, -1e-3f, 2e-4f);
        d2h(g, d, total * es);
        for (int i = 0; i < COUNT; i++) {
            const zt_list_item *it = &citems[i];
            zt_perturb(it->x, dt, it->n, it->first, 99, it->tensor_id, 0, 1e-3f);
            zt_restore_update(it->x, dt, it->n, it->first, 99, it->tensor_id, 0, -1e-3f, 2e-4f, it->decay);
        }
        char name[96];
        snprintf(name, sizeof name, "perturb + restore_update, 150 %s tensors", dtname(dt));
        check_bits(name, g, c, total, (int)es);
        dfree(d);
        free(h); free(c); free(g);
    }
}

// List-driven fused updates (zo_update_list): 90 tensors with their f32 states, every kind and
// dtype, per-tensor decays, two steps (training, then replay with its probes); x and the states
// bit for bit the CPU's zt_zo_update per tensor.
static void dev_zo_update_list(void) {
    section("zo_update_list: many small tensors with their state per launch (bit-identical)");
    enum { COUNT = 90 };
    const zt_dtype dts[3] = {ZT_F32, ZT_BF16, ZT_F16};
    for (int ki = 0; ki < N_ZO_KINDS; ki++) {
        const int kind = zo_kinds[ki], two = zo_two_arrays(kind);
        for (int k = 0; k < 3; k++) {
            const zt_dtype dt = dts[k];
            const int64_t es = zt_dtype_size(dt);
            int64_t offs[COUNT], ns[COUNT], total = 0;
            for (int i = 0; i < COUNT; i++) {
                ns[i] = i % 9 == 0 ? 1 + (int64_t)(rnd64() % 40000) : 1 + (int64_t)(rnd64() % 2000);
                offs[i] = total + (int64_t)(rnd64() % 4);
                total = offs[i] + ns[i];
            }
            void *hx = random_storage(dt, total, 0.5f);
            float *h1 = hmalloc(total * 4), *h2 = hmalloc(total * 4);
            for (int64_t i = 0; i < total; i++) {  // positive states: HiZOO's H and Adam's v must be
                h1[i] = 0.5f + (float)rnd_unit();
                h2[i] = 0.5f + (float)rnd_unit();
            }
            void *cx = hmalloc(total * es), *gx = hmalloc(total * es);
            float *c1 = hmalloc(total * 4), *c2 = hmalloc(total * 4), *g1 = hmalloc(total * 4), *g2 = hmalloc(total * 4);
            memcpy(cx, hx, total * es); memcpy(c1, h1, total * 4); memcpy(c2, h2, total * 4);
            char *dx = dalloc(total * es);
            float *d1 = dalloc(total * 4), *d2 = dalloc(total * 4);
            h2d(dx, hx, total * es); h2d(d1, h1, total * 4); h2d(d2, h2, total * 4);
            zt_zo_list_item items[COUNT], citems[COUNT];
            for (int i = 0; i < COUNT; i++) {
                const uint64_t first = i % 3 == 0 ? (uint64_t)offs[i] : (uint64_t)(rnd64() % 1000);
                items[i] = (zt_zo_list_item){dx + offs[i] * es, d1 + offs[i], two ? d2 + offs[i] : NULL, ns[i], first,
                                             (uint32_t)(11 + i), i % 4 == 0 ? 0.0f : 1e-5f * (float)(i % 5)};
                citems[i] = items[i];
                citems[i].x = (char *)cx + offs[i] * es;
                citems[i].s1 = c1 + offs[i];
                citems[i].s2 = two ? c2 + offs[i] : NULL;
            }
            for (int t = 0; t < 2; t++) {
                const zt_zo_update_args a = zo_args(kind, 3 + t, t, 1e-3f);
                G->zo_update_list(kind, items, COUNT, dt, 500 + t, 0, &a);
                zt_zo_update_args ca = a;
                for (int i = 0; i < COUNT; i++) {
                    ca.decay = citems[i].decay;
                    zt_zo_update(kind, citems[i].x, dt, citems[i].s1, citems[i].s2, citems[i].n, citems[i].first, 500 + t,
                                 citems[i].tensor_id, 0, &ca);
                }
            }
            d2h(gx, dx, total * es); d2h(g1, d1, total * 4); d2h(g2, d2, total * 4);
            char name[96], d[200];
            const int64_t bx = diff_bits(gx, cx, total, (int)es, d, sizeof d);
            const int64_t b1 = diff_bits(g1, c1, total, 4, d, sizeof d), b2 = diff_bits(g2, c2, total, 4, d, sizeof d);
            snprintf(name, sizeof name, "%s %s, 90 tensors, 2 steps", zo_name(kind), dtname(dt));
            result(bx == 0 && b1 == 0 && b2 == 0, name, "x %lld, state %lld + %lld elements differ", (long long)bx, (long long)b1,
                   (long long)b2);
            dfree(dx); dfree(d1); dfree(d2);
            free(hx); free(h1); free(h2); free(cx); free(gx); free(c1); free(c2); free(g1); free(g2);
        }
    }
}

static void dev_zo_ops(void) {
    section("zo_update / perturb_hessian (bit-identical, x and optimizer state)");
    const zt_dtype dts[3] = {ZT_F32, ZT_BF16, ZT_F16};
    const int64_t n = SZ((1 << 20) + 5, 4099);
    const uint64_t seed = 0x0DDBA11C0FFEE123ull;
    const float eps = 1e-3f;
    char name[128];
    for (int ki = 0; ki <= N_ZO_KINDS; ki++)  // the zo_update kinds, then perturb_hessian alone
        for (int di = 0; di < 3; di++) {
            const int kind = ki < N_ZO_KINDS ? zo_kinds[ki] : ZT_ZO_HIZOO, hessian_only = ki == N_ZO_KINDS;
            const zt_dtype dt = dts[di];
            const size_t es = (size_t)zt_dtype_size(dt);
            int64_t passes = 0, bad = 0;
            char first_bad[320] = "";
            for (int ai = 0; ai < N_STREAM_AT; ai++) {
                const uint64_t first = stream_at[ai].first;
                const int off = stream_at[ai].off;
                void *hx = random_storage(dt, n, 0.05f), *back = hmalloc(n * 4);  // back: a device array read back
                float *h1 = hmalloc(n * 4), *h2 = !hessian_only && zo_two_arrays(kind) ? hmalloc(n * 4) : NULL;
                zo_state_init(kind, h1, h2, n);
                char *d = dalloc((n + 4) * es);
                float *d1 = dalloc((n + 4) * 4), *d2 = h2 ? dalloc((n + 4) * 4) : NULL;
                void *dx = d + off * es;
                float *ds1 = d1 + off, *ds2 = d2 ? d2 + off : NULL;
                h2d(dx, hx, n * es);
                h2d(ds1, h1, n * 4);
                if (h2) h2d(ds2, h2, n * 4);
                // Every pass of the steps, in order: probes (training steps), then the update.
                for (int t = 1; t <= (hessian_only ? 1 : 3); t++) {
                    const uint64_t s = seed + (uint64_t)t;
                    const int replay = t == 2;
                    const float probes[2] = {eps, -2 * eps};
                    for (int pi = 0; pi < (replay ? 0 : hessian_only ? 1 : 2); pi++) {
                        if (kind == ZT_ZO_HIZOO) {
                            G->perturb_hessian(dx, dt, ds1, n, first, s, 31u, 0, probes[pi]);
                            zt_perturb_hessian(hx, dt, h1, n, first, s, 31u, 0, probes[pi]);
                        } else {
                            G->perturb(dx, dt, n, first, s, 31u, 0, probes[pi]);
                            zt_perturb(hx, dt, n, first, s, 31u, 0, probes[pi]);
                        }
                    }
                    if (!hessian_only) {
                        const zt_zo_update_args p = zo_args(kind, t, replay, eps);
                        G->zo_update(kind, dx, dt, ds1, ds2, n, first, s, 31u, 0, &p);
                        zt_zo_update(kind, hx, dt, h1, h2, n, first, s, 31u, 0, &p);
                    }
                    // x, s1 (h: must be unchanged by perturb_hessian) and s2 after the step
                    const struct { const void *dev, *cpu; int elem; const char *what; } arr[3] = {
                        {dx, hx, (int)es, "x"}, {ds1, h1, 4, "s1"}, {ds2, h2, 4, "s2"}};
                    for (int k = 0; k < (h2 ? 3 : 2); k++)
                        tally_bits(back, arr[k].dev, arr[k].cpu, n, arr[k].elem, &passes, &bad, first_bad, sizeof first_bad,
                                   "%s, step %d, %s", stream_at[ai].what, t, arr[k].what);
                }
                dfree(d); dfree(d1);
                if (d2) dfree(d2);
                free(hx); free(back); free(h1); free(h2);
            }
            if (hessian_only)
                snprintf(name, sizeof name, "perturb_hessian %s, %d offsets", dtname(dt), N_STREAM_AT);
            else
                snprintf(name, sizeof name, "zo_update %s %s, %d offsets x 3 steps", zo_name(kind), dtname(dt), N_STREAM_AT);
            result(bad == 0, name, "%lld of %lld array compares differ%s%s", (long long)bad, (long long)passes,
                   bad ? "; first: " : " (bit-identical)", first_bad);
        }
}

#include "check_frontier.c"

static void dev_convert(void) {
    section("convert (bit-identical)");
    const zt_dtype d16[2] = {ZT_BF16, ZT_F16};
    uint16_t *h = hmalloc(65536 * 2);
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    void *ds = dalloc(65536 * 4 + 16), *dd = dalloc(65536 * 4 + 16);
    float *gf = hmalloc(65536 * 4), *cf = hmalloc(65536 * 4);
    uint16_t *g16 = hmalloc(65536 * 2), *c16 = hmalloc(65536 * 2);
    char name[96];
    for (int k = 0; k < 2; k++) {
        h2d(ds, h, 65536 * 2);
        dpoison(dd, 65536 * 4);
        G->convert(dd, ZT_F32, ds, d16[k], 65536);
        d2h(gf, dd, 65536 * 4);
        zt_convert(cf, ZT_F32, h, d16[k], 65536);
        snprintf(name, sizeof name, "convert %s -> f32, all 2^16 patterns", dtname(d16[k]));
        check_bits(name, gf, cf, 65536, 4);
        dpoison(dd, 65536 * 2);
        G->convert(dd, d16[1 - k], ds, d16[k], 65536);
        d2h(g16, dd, 65536 * 2);
        zt_convert(c16, d16[1 - k], h, d16[k], 65536);
        snprintf(name, sizeof name, "convert %s -> %s, all 2^16 patterns", dtname(d16[k]), dtname(d16[1 - k]));
        check_bits(name, g16, c16, 65536, 2);
    }
    const int64_t n = SZ(1 << 22, 1 << 14) + 3;
    uint32_t *bits = hmalloc(n * 4);
    static const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 65504.0f, 65519.99f, 65520.0f, 1e-8f,
                                     2.98e-8f, 5.96e-8f, 6.1e-5f, 1e-40f, 3.4e38f, 1.00390625f, 1.01171875f};
    for (int64_t i = 0; i < n; i++) bits[i] = (uint32_t)rnd64();
    memcpy(bits, specials, sizeof specials);
    uint32_t *dbits = dalloc(n * 4 + 16);
    uint16_t *dout = dalloc(n * 2 + 16), *go = hmalloc(n * 2), *co = hmalloc(n * 2);
    for (int k = 0; k < 2; k++) {
        h2d(dbits + 1, bits, n * 4);  // misaligned: the scalar path
        dpoison(dout, n * 2);
        G->convert(dout + 1, d16[k], dbits + 1, ZT_F32, n);
        d2h(go, dout + 1, n * 2);
        zt_convert(co, d16[k], bits, ZT_F32, n);
        snprintf(name, sizeof name, "convert f32 -> %s, %lld random+special", dtname(d16[k]), (long long)n);
        check_bits(name, go, co, n, 2);
        h2d(dbits, bits, n * 4);  // aligned: the vector path
        G->convert(dout, d16[k], dbits, ZT_F32, n);
        d2h(go, dout, n * 2);
        snprintf(name, sizeof name, "convert f32 -> %s, aligned", dtname(d16[k]));
        check_bits(name, go, co, n, 2);
    }
    dfree(ds); dfree(dd); dfree(dbits); dfree(dout);
    free(h); free(gf); free(cf); free(g16); free(c16); free(bits); free(go); free(co);
}

typedef void (*binary_fn)(float *, const float *, const float *, int64_t);
typedef void (*unary_fn)(float *, const float *, int64_t);

static void dev_elementwise(void) {
    section("elementwise");
    const int64_t n = SZ((1 << 20) + 3, 10007);
    float *a = hmalloc(n * 4), *b = hmalloc(n * 4), *g = hmalloc(n * 4), *c = hmalloc(n * 4);
    fill_normal_host(a, n, 4.0f, 0.0f);
    fill_normal_host(b, n, 2.0f, 0.5f);
    a[0] = NAN; a[1] = -INFINITY; a[2] = 1e-40f; a[3] = -100.0f; a[4] = 100.0f; a[5] = -0.0f;
    float *da = dalloc(n * 4 + 16), *db = dalloc(n * 4 + 16), *dout = dalloc(n * 4 + 16);
    h2d(da, a, n * 4);
    h2d(db, b, n * 4);
    struct { const char *name; binary_fn dev, cpu; } bins[] = {
        {"add (exact)", G->add, zt_add}, {"mul (exact)", G->mul, zt_mul}};
    for (int k = 0; k < 2; k++) {
        dpoison(dout, n * 4);
        bins[k].dev(dout, da, db, n);
        d2h(g, dout, n * 4);
        bins[k].cpu(c, a, b, n);
        check_bits(bins[k].name, g, c, n, 4);
    }
    dpoison(dout, n * 4);
    G->scale(dout, da, -0.37f, n);
    d2h(g, dout, n * 4);
    zt_scale(c, a, -0.37f, n);
    check_bits("scale (exact)", g, c, n, 4);
    // misaligned operands (scalar path) and in place: out = a + b with out == a
    h2d(dout + 1, a, n * 4);
    h2d(db + 1, b, n * 4);
    G->add(dout + 1, dout + 1, db + 1, n);
    d2h(g, dout + 1, n * 4);
    zt_add(c, a, b, n);
    check_bits("add in place, misaligned (exact)", g, c, n, 4);
    struct { const char *name; unary_fn dev, cpu; double atol, rtol; } uns[] = {
        {"relu (exact)", G->relu, zt_relu, 0, 0},
        {"silu", G->silu, zt_silu, 1e-6, 1e-5},
        {"gelu_tanh", G->gelu_tanh, zt_gelu_tanh, 2e-6, 1e-5},
        {"gelu_erf", G->gelu_erf, zt_gelu_erf, 2e-6, 1e-5},
    };
    for (int k = 0; k < 4; k++) {
        dpoison(dout, n * 4);
        uns[k].dev(dout, da, n);
        d2h(g, dout, n * 4);
        uns[k].cpu(c, a, n);
        if (k == 0) check_bits(uns[k].name, g, c, n, 4);
        else check_close(uns[k].name, g, c, n, uns[k].atol, uns[k].rtol);
    }
    h2d(db, b, n * 4);
    dpoison(dout, n * 4);
    G->swiglu(dout, da, db, n);
    d2h(g, dout, n * 4);
    zt_swiglu(c, a, b, n);
    check_close("swiglu", g, c, n, 2e-6, 1e-5);
    // softcap in place, aligned (float4) and misaligned (scalar): 30·tanh(x / 30) (Gemma 2's final
    // logits) on x ~ N(0, 4²) and the specials (NaN, −inf → −30, a subnormal). Each side is within 8u
    // of the exact value (division, tanhf ≤ 2 ulp on CUDA and the CPU's fast_tanh.h ≤ 3.8u, product), so 1e-6
    // relative; x / 30 of a subnormal rounds absolutely: 1e-40.
    for (int off = 0; off < 2; off++) {
        h2d(dout + off, a, n * 4);
        G->softcap(dout + off, n, 30.0f);
        d2h(g, dout + off, n * 4);
        memcpy(c, a, n * 4);
        zt_softcap(c, n, 30.0f);
        check_close(off ? "softcap 30, misaligned" : "softcap 30", g, c, n, 1e-40, 1e-6);
    }

    // add_rows(rows 33, dim 1031), copy_2d with padded leading dimensions (padding must survive)
    const int64_t rows = 33, dim = 1031;
    float *x = hmalloc(rows * dim * 4), *bias = hmalloc(dim * 4);
    fill_normal_host(x, rows * dim, 1, 0);
    fill_normal_host(bias, dim, 1, 0);
    float *dx = dalloc(rows * dim * 4), *dbias = dalloc(dim * 4);
    h2d(dx, x, rows * dim * 4);
    h2d(dbias, bias, dim * 4);
    G->add_rows(dx, dbias, rows, dim);
    float *gx = hmalloc(rows * dim * 4);
    d2h(gx, dx, rows * dim * 4);
    zt_add_rows(x, bias, rows, dim);
    check_bits("add_rows 33x1031 (exact)", gx, x, rows * dim, 4);
    const int64_t r2 = 77, cols = 100, lds = 130, ldd = 111;
    float *src = hmalloc(r2 * lds * 4), *dst = hmalloc(r2 * ldd * 4), *gdst = hmalloc(r2 * ldd * 4);
    fill_normal_host(src, r2 * lds, 1, 0);
    fill_normal_host(dst, r2 * ldd, 1, 0);
    float *dsrc = dalloc(r2 * lds * 4), *ddst = dalloc(r2 * ldd * 4);
    h2d(dsrc, src, r2 * lds * 4);
    h2d(ddst, dst, r2 * ldd * 4);
    G->copy_2d(ddst, ldd, dsrc, lds, r2, cols);
    d2h(gdst, ddst, r2 * ldd * 4);
    zt_copy_2d(dst, ldd, src, lds, r2, cols);
    check_bits("copy_2d 77x100 (ld 130 -> 111)", gdst, dst, r2 * ldd, 4);
    dfree(da); dfree(db); dfree(dout); dfree(dx); dfree(dbias); dfree(dsrc); dfree(ddst);
    free(a); free(b); free(g); free(c); free(x); free(bias); free(gx); free(src); free(dst); free(gdst);
}

static void dev_rows(void) {
    section("rows (tolerance)");
    const int64_t dims[] = {1, 7, 33, 1000, 4096, 50257};
    const int64_t rows = 37;
    char name[96];
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        const int64_t dim = dims[di];
        if (g_dry && dim > 4096) continue;
        const int64_t n = rows * dim;
        float *x = hmalloc(n * 4), *g = hmalloc(n * 4), *c = hmalloc(n * 4), *gam = hmalloc(dim * 4), *bet = hmalloc(dim * 4);
        fill_normal_host(x, n, 3.0f, 0.0f);
        fill_normal_host(gam, dim, 0.5f, 1.0f);
        fill_normal_host(bet, dim, 0.5f, 0.0f);
        float *dx = dalloc(n * 4), *dout = dalloc(n * 4), *dg = dalloc(dim * 4), *db = dalloc(dim * 4);
        h2d(dx, x, n * 4);
        h2d(dg, gam, dim * 4);
        h2d(db, bet, dim * 4);

        dpoison(dout, n * 4);
        G->softmax(dout, dx, rows, dim);
        d2h(g, dout, n * 4);
        zt_softmax(c, x, rows, dim);
        snprintf(name, sizeof name, "softmax %lldx%lld", (long long)rows, (long long)dim);
        check_close(name, g, c, n, 1e-9, 1e-5);

        dpoison(dout, n * 4);
        G->log_softmax(dout, dx, rows, dim);
        d2h(g, dout, n * 4);
        zt_log_softmax(c, x, rows, dim);
        snprintf(name, sizeof name, "log_softmax %lldx%lld", (long long)rows, (long long)dim);
        check_close(name, g, c, n, 2e-5, 1e-6);

        int32_t *tg = hmalloc(rows * 4);
        for (int64_t r = 0; r < rows; r++) tg[r] = (int32_t)(rnd64() % (uint64_t)dim);
        tg[0] = -1;
        tg[1] = (int32_t)dim;  // out of range: 0
        int32_t *dtg = dalloc(rows * 4);
        float *dlp = dalloc(rows * 4);
        h2d(dtg, tg, rows * 4);
        dpoison(dlp, rows * 4);
        G->token_logprobs(dlp, dx, dtg, rows, dim);
        d2h(g, dlp, rows * 4);
        zt_token_logprobs(c, x, tg, rows, dim);
        snprintf(name, sizeof name, "token_logprobs %lldx%lld", (long long)rows, (long long)dim);
        check_close(name, g, c, rows, 2e-5, 1e-6);

        // The same log-probs streamed over column panels of 1000 (ld = dim): device state vs the
        // CPU's, and the CPU's finished log-probs vs its one-pass token_logprobs.
        float *st = hmalloc(rows * 3 * 4), *gst = hmalloc(rows * 3 * 4);
        for (int64_t r = 0; r < rows; r++) { st[3 * r] = -INFINITY; st[3 * r + 1] = 0; st[3 * r + 2] = 0; }
        float *dst = dalloc(rows * 3 * 4);
        h2d(dst, st, rows * 3 * 4);
        for (int64_t c0 = 0; c0 < dim; c0 += 1000) {
            const int64_t w = dim - c0 < 1000 ? dim - c0 : 1000;
            G->logsumexp_panel(dst, dx + c0, dim, dtg, rows, w, c0);
            zt_logsumexp_panel(st, x + c0, dim, tg, rows, w, c0);
        }
        d2h(gst, dst, rows * 3 * 4);
        snprintf(name, sizeof name, "logsumexp_panel %lldx%lld (panels of 1000)", (long long)rows, (long long)dim);
        check_close(name, gst, st, rows * 3, 2e-5, 2e-6);
        float *streamed = hmalloc(rows * 4);
        for (int64_t r = 0; r < rows; r++)
            streamed[r] = tg[r] < 0 || tg[r] >= dim ? 0.0f : (st[3 * r + 2] - st[3 * r]) - logf(st[3 * r + 1]);
        snprintf(name, sizeof name, "streamed = one-pass token_logprobs %lldx%lld (cpu)", (long long)rows, (long long)dim);
        check_close(name, streamed, c, rows, 2e-5, 2e-6);
        dfree(dst);
        free(st); free(gst); free(streamed);

        // layernorm on rows with a large common offset (the corrected two-pass statistics)
        float *xo = hmalloc(n * 4);
        for (int64_t i = 0; i < n; i++) xo[i] = x[i] + 100.0f;
        h2d(dout, xo, n * 4);
        G->layernorm(dout, dout, dg, db, rows, dim, 1e-5f);  // in place
        d2h(g, dout, n * 4);
        zt_layernorm(c, xo, gam, bet, rows, dim, 1e-5f);
        snprintf(name, sizeof name, "layernorm %lldx%lld (+100 offset, in place)", (long long)rows, (long long)dim);
        check_close(name, g, c, n, 2e-5, 2e-5);
        dpoison(dout, n * 4);
        G->layernorm(dout, dx, NULL, NULL, rows, dim, 1e-5f);
        d2h(g, dout, n * 4);
        zt_layernorm(c, x, NULL, NULL, rows, dim, 1e-5f);
        snprintf(name, sizeof name, "layernorm %lldx%lld (no gamma/beta)", (long long)rows, (long long)dim);
        check_close(name, g, c, n, 2e-5, 2e-5);

        dpoison(dout, n * 4);
        G->rmsnorm(dout, dx, dg, rows, dim, 1e-6f);
        d2h(g, dout, n * 4);
        zt_rmsnorm(c, x, gam, rows, dim, 1e-6f);
        snprintf(name, sizeof name, "rmsnorm %lldx%lld", (long long)rows, (long long)dim);
        check_close(name, g, c, n, 1e-6, 1e-5);

        h2d(dout, x, n * 4);
        G->softmax(dout, dout, rows, dim);  // in place
        d2h(g, dout, n * 4);
        zt_softmax(c, x, rows, dim);
        snprintf(name, sizeof name, "softmax %lldx%lld in place", (long long)rows, (long long)dim);
        check_close(name, g, c, n, 1e-9, 1e-5);

        dfree(dx); dfree(dout); dfree(dg); dfree(db); dfree(dtg); dfree(dlp);
        free(x); free(g); free(c); free(gam); free(bet); free(tg); free(xo);
    }
}

static void dev_embedding(void) {
    section("embedding (bit-identical)");
    const int64_t vocab = 1000, dim = 67, n = 300;
    int32_t *ids = hmalloc(n * 4);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(rnd64() % (uint64_t)vocab);
    ids[3] = -1; ids[10] = (int32_t)vocab; ids[11] = 1 << 30; ids[50] = -7; ids[299] = (int32_t)vocab + 1;
    const int64_t want_bad = 5;
    int32_t *dids = dalloc(n * 4);
    h2d(dids, ids, n * 4);
    const zt_dtype dts[3] = {ZT_F32, ZT_BF16, ZT_F16};
    float *g = hmalloc(n * dim * 4), *c = hmalloc(n * dim * 4);
    float *dout = dalloc(n * dim * 4);
    char name[96];
    for (int k = 0; k < 3; k++) {
        void *table = random_storage(dts[k], vocab * dim, 1.0f);
        void *dtab = dalloc(vocab * dim * (size_t)zt_dtype_size(dts[k]));
        h2d(dtab, table, vocab * dim * (size_t)zt_dtype_size(dts[k]));
        dpoison(dout, n * dim * 4);
        int64_t gb = G->embedding(dout, dtab, dts[k], vocab, dim, dids, n, 1);
        d2h(g, dout, n * dim * 4);
        int64_t cb = zt_embedding(c, table, dts[k], vocab, dim, ids, n);
        char d[200];
        int64_t bad = diff_bits(g, c, n * dim, 4, d, sizeof d);
        snprintf(name, sizeof name, "embedding %s (300 ids, 5 bad)", dtname(dts[k]));
        result(bad == 0 && gb == cb && gb == want_bad, name, "bad ids device %lld cpu %lld; %s", (long long)gb,
               (long long)cb, d);
        // Unchecked (the model checks ids on the host): same rows, no count, no wait.
        dpoison(dout, n * dim * 4);
        const int64_t gu = G->embedding(dout, dtab, dts[k], vocab, dim, dids, n, 0);
        d2h(g, dout, n * dim * 4);
        bad = diff_bits(g, c, n * dim, 4, d, sizeof d);
        snprintf(name, sizeof name, "embedding %s, count_bad = 0", dtname(dts[k]));
        result(bad == 0 && (gu == 0 || g_dry), name, "returns %lld; %s", (long long)gu, d);
        dfree(dtab);
        free(table);
    }
    dfree(dids); dfree(dout);
    free(ids); free(g); free(c);
}

// GGML blocks with random quants and finite f16 scales (random bytes there could be NaN, whose
// payload after a product is not specified): each format's scale fields are overwritten.
static uint8_t *random_blocks(int type, int64_t blocks) {
    const int64_t bytes = zt_quant_block_bytes(type);
    uint8_t *b = hmalloc(blocks * bytes);
    for (int64_t i = 0; i < blocks * bytes; i++) b[i] = (uint8_t)rnd64();
    int at[2] = {0, -1};
    if (type == ZT_GGML_Q4_1 || type == ZT_GGML_Q5_1 || type == ZT_GGML_Q4_K || type == ZT_GGML_Q5_K) at[1] = 2;
    if (type == ZT_GGML_Q6_K) at[0] = 208;
    for (int64_t k = 0; k < blocks; k++) {
        for (int j = 0; j < 2 && at[j] >= 0; j++) {
            // Normals, a few subnormals and signed zeros among them.
            const double u = rnd_unit();
            const float v = (float)((rnd64() & 1 ? -1 : 1) * (k % 17 == 3 ? 3e-6 * u : k % 29 == 5 ? 0.0 : 0.02 * u));
            const uint16_t h = zt_f32_to_f16(v);
            memcpy(b + k * bytes + at[j], &h, 2);
        }
    }
    return b;
}

static void dev_dequant(void) {
    section("dequantize_rows: GGML blocks, whole matrices and row gathers (bit-identical)");
    const int types[8] = {ZT_GGML_Q4_0, ZT_GGML_Q4_1, ZT_GGML_Q5_0, ZT_GGML_Q5_1, ZT_GGML_Q8_0, ZT_GGML_Q4_K, ZT_GGML_Q5_K, ZT_GGML_Q6_K};
    const char *names[8] = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"};
    const int64_t src_rows = SZ(1536, 40), cols = 512, n = 300;
    int32_t *ids = hmalloc(n * 4);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(rnd64() % (uint64_t)src_rows);
    ids[7] = -1; ids[100] = (int32_t)src_rows; ids[299] = 1 << 30;
    int32_t *dids = dalloc(n * 4);
    h2d(dids, ids, n * 4);
    const int64_t out_rows = src_rows > n ? src_rows : n;
    float *g = hmalloc(out_rows * cols * 4), *c = hmalloc(out_rows * cols * 4);
    float *dout = dalloc(out_rows * cols * 4);
    char name[128], d[200];
    for (int k = 0; k < 8; k++) {
        const int64_t blocks = src_rows * cols / zt_quant_block_elems(types[k]), bytes = blocks * zt_quant_block_bytes(types[k]);
        uint8_t *q = random_blocks(types[k], blocks);
        void *dq = dalloc(bytes);
        h2d(dq, q, bytes);
        dpoison(dout, src_rows * cols * 4);
        const int64_t gm = G->dequantize_rows(dout, ZT_F32, dq, types[k], src_rows, cols, NULL, src_rows, 1);
        d2h(g, dout, src_rows * cols * 4);
        const int64_t cm = zt_dequantize_gather(c, q, types[k], src_rows, cols, NULL, src_rows);
        int64_t bad = diff_bits(g, c, src_rows * cols, 4, d, sizeof d);
        snprintf(name, sizeof name, "%s matrix %lldx%lld", names[k], (long long)src_rows, (long long)cols);
        result(bad == 0 && gm == 0 && cm == 0, name, "returns %lld / %lld; %s", (long long)gm, (long long)cm, d);
        dpoison(dout, n * cols * 4);
        const int64_t gb = G->dequantize_rows(dout, ZT_F32, dq, types[k], src_rows, cols, dids, n, 1);
        d2h(g, dout, n * cols * 4);
        const int64_t cb = zt_dequantize_gather(c, q, types[k], src_rows, cols, ids, n);
        bad = diff_bits(g, c, n * cols, 4, d, sizeof d);
        snprintf(name, sizeof name, "%s gather of 300 rows (3 bad ids)", names[k]);
        result(bad == 0 && gb == 3 && cb == 3, name, "bad ids device %lld cpu %lld; %s", (long long)gb, (long long)cb, d);
        // Whole matrix decoded straight to bf16 / f16 (a mixed-precision GEMM's operand).
        for (int o = 0; o < 2; o++) {
            const zt_dtype odt = o ? ZT_F16 : ZT_BF16;
            dpoison(dout, src_rows * cols * 2);
            const int64_t gh = G->dequantize_rows(dout, odt, dq, types[k], src_rows, cols, NULL, src_rows, 1);
            d2h(g, dout, src_rows * cols * 2);
            const int ch = zt_dequantize_rows(c, odt, q, types[k], src_rows, cols, NULL);
            bad = diff_bits(g, c, src_rows * cols, 2, d, sizeof d);
            snprintf(name, sizeof name, "%s matrix into %s", names[k], dtname(odt));
            result(bad == 0 && gh == 0 && ch == 0, name, "returns %lld / %d; %s", (long long)gh, ch, d);
        }
        dfree(dq);
        free(q);
    }
    // A ragged row (cols not a whole number of blocks) is refused.
    result(G->dequantize_rows(dout, ZT_F32, dout, ZT_GGML_Q4_K, 1, 100, NULL, 1, 1) == -1, "ragged columns refused", "");
    dfree(dids); dfree(dout);
    free(ids); free(g); free(c);
}

static void dev_rope(void) {
    section("rope (tolerance)");
    // scale: LongRoPE's attention factor √(1 + ln 32 / ln 4096) ≈ 1.19 on cos and sin.
    const struct { int64_t n, heads, hd, rot; float scale; } cs[] = {
        {50, 6, 64, 32, 1.0f}, {37, 4, 128, 128, 1.0f}, {5, 2, 80, 64, 1.0f}, {37, 4, 96, 96, 1.1902f}};
    char name[112];
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        const int64_t n = cs[k].n, heads = cs[k].heads, hd = cs[k].hd, half = cs[k].rot / 2, total = n * heads * hd;
        float *x = hmalloc(total * 4), *g = hmalloc(total * 4), *inv = hmalloc(half * 4);
        int32_t *pos = hmalloc(n * 4);
        fill_normal_host(x, total, 1, 0);
        for (int64_t i = 0; i < n; i++) pos[i] = (int32_t)(rnd64() % 8192);
        pos[0] = 0;
        for (int64_t i = 0; i < half; i++) inv[i] = (float)pow(10000.0, -2.0 * (double)i / (double)cs[k].rot);
        float *dx = dalloc(total * 4), *dinv = dalloc(half * 4);
        int32_t *dpos = dalloc(n * 4);
        h2d(dx, x, total * 4);
        h2d(dinv, inv, half * 4);
        h2d(dpos, pos, n * 4);
        G->rope(dx, dpos, n, heads, hd, cs[k].rot, dinv, cs[k].scale);
        d2h(g, dx, total * 4);
        zt_rope(x, pos, n, heads, hd, cs[k].rot, inv, cs[k].scale);
        snprintf(name, sizeof name, "rope n %lld heads %lld hd %lld rot %lld scale %g", (long long)n, (long long)heads,
                 (long long)hd, (long long)cs[k].rot, cs[k].scale);
        // The errors scale with the factor (both cos and sin carry it).
        check_close(name, g, x, total, 2e-6 * cs[k].scale, 2e-5);
        dfree(dx); dfree(dinv); dfree(dpos);
        free(x); free(g); free(inv); free(pos);
    }
}

static void dev_attention(void) {
    section("attention (tolerance; both kernels where they apply)");
    // window: sliding-window attention (0 = none); windows smaller than a key tile, spanning
    // tiles, with a cache, a decode step, and window ≥ S (then bit-identical to no window, below).
    // softcap: Gemma 2's score soft-capping (0 = none); cap 1 bends scores ~ N(0, 1) hard, 50 is Gemma 2's.
    const struct { int64_t B, T, S, S_cap, Hq, Hkv, D; int mask; int64_t window; const char *what; float softcap; } cs[] = {
        {2, 5, 9, 12, 8, 2, 64, 2, 0, "GQA 4:1, cache, a query with no key"},
        {1, 200, 200, 200, 4, 4, 128, 0, 0, "prefill, no mask"},
        {2, 40, 100, 128, 8, 2, 80, 1, 0, "GQA, cache, random mask, D 80"},
        {1, 33, 70, 70, 2, 1, 256, 1, 0, "D 256, MQA"},
        {1, 17, 17, 17, 3, 1, 30, 1, 0, "D 30 (not /4)"},
        {3, 1, 300, 512, 8, 8, 128, 1, 0, "decode, cache, mask"},
        {1, 9, 20, 24, 2, 2, 320, 0, 0, "D 320 (warp kernel only)"},
        {2, 5, 9, 12, 8, 2, 64, 2, 1, "window 1, cache, a query with no key"},
        {1, 200, 200, 200, 4, 4, 128, 0, 50, "prefill, window 50"},
        {2, 40, 100, 128, 8, 2, 80, 1, 7, "GQA, cache, random mask, window 7"},
        {1, 17, 17, 17, 3, 1, 30, 1, 3, "D 30, window 3"},
        {3, 1, 300, 512, 8, 8, 128, 1, 37, "decode, cache, mask, window 37"},
        {1, 9, 20, 24, 2, 2, 320, 0, 5, "D 320 (warp kernel only), window 5"},
        {2, 40, 100, 128, 8, 2, 64, 1, 100, "window = S"},
        {2, 5, 9, 12, 8, 2, 64, 2, 0, "softcap 1, cache, a query with no key", 1.0f},
        {2, 40, 100, 128, 8, 2, 80, 1, 0, "softcap 1, GQA, cache, random mask, D 80", 1.0f},
        {1, 200, 200, 200, 4, 4, 128, 0, 50, "softcap 2, prefill, window 50", 2.0f},
        {1, 33, 70, 70, 2, 1, 256, 1, 0, "softcap 50, D 256, MQA", 50.0f},
        {3, 1, 300, 512, 8, 8, 128, 1, 37, "softcap 1, decode, cache, mask, window 37", 1.0f},
        {1, 9, 20, 24, 2, 2, 320, 0, 5, "softcap 1, D 320 (warp kernel only), window 5", 1.0f},
        {2, 40, 100, 128, 8, 2, 64, 1, 100, "softcap 1, window = S", 1.0f},
    };
    const char *modes[3] = {NULL, "tile", "warp"};
    char name[128];
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        const int64_t B = cs[k].B, T = cs[k].T, S = cs[k].S, Sc = cs[k].S_cap, Hq = cs[k].Hq, Hkv = cs[k].Hkv, D = cs[k].D;
        const int64_t nq = B * T * Hq * D;
        attn_inputs a = attn_inputs_new(B, T, Sc, Hq, Hkv, D, cs[k].mask);
        float *g = hmalloc(nq * 4), *c = hmalloc(nq * 4), *dout = dalloc(nq * 4);
        const float scale = 1.0f / sqrtf((float)D);
        const int64_t W = cs[k].window;
        const float cap = cs[k].softcap;
        zt_attention(c, a.q, a.k, a.v, cs[k].mask ? a.mask : NULL, B, T, S, Sc, Hq, Hkv, D, scale, W, cap);
        float *g0 = W >= S ? hmalloc(nq * 4) : NULL;
        for (int mi = 0; mi < 3; mi++) {
            if (mi == 1 && D > 256) continue;
            if (modes[mi]) setenv("ZOTUNE_ATTN", modes[mi], 1); else unsetenv("ZOTUNE_ATTN");
            dpoison(dout, nq * 4);
            G->attention(dout, a.dq, a.dk, a.dv, cs[k].mask ? a.dm : NULL, B, T, S, Sc, Hq, Hkv, D, scale, W, cap);
            d2h(g, dout, nq * 4);
            snprintf(name, sizeof name, "%s [%s]", cs[k].what, modes[mi] ? modes[mi] : "auto");
            check_close(name, g, c, nq, 1e-5, 1e-4);
            if (g0) {  // window ≥ S allows every causal key: the same kernel without a window
                dpoison(dout, nq * 4);
                G->attention(dout, a.dq, a.dk, a.dv, cs[k].mask ? a.dm : NULL, B, T, S, Sc, Hq, Hkv, D, scale, 0, cap);
                d2h(g0, dout, nq * 4);
                snprintf(name, sizeof name, "%s == window 0 [%s]", cs[k].what, modes[mi] ? modes[mi] : "auto");
                check_bits(name, g, g0, nq, 4);
            }
        }
        free(g0);
        unsetenv("ZOTUNE_ATTN");
        attn_inputs_free(&a);
        dfree(dout);
        free(g); free(c);
    }
}

static void dev_gemm(int tf32) {
    section(tf32 ? "GEMM, set_tf32(1) (tolerance)" : "GEMM f32 (tolerance)");
    dcheck(G->set_tf32(tf32), "set_tf32");
    const double tol = tf32 ? 2e-3 : 1e-5;
    const struct { int64_t M, N, K; } shapes[] = {{1, 1, 1}, {17, 33, 65}, {128, 96, 200}, {257, 255, 513}};
    char name[128];
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                const int64_t M = shapes[si].M, N = shapes[si].N, K = shapes[si].K;
                if (g_dry && M > 200) continue;
                const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
                const int64_t na = lda * (ta ? K : M), nb = ldb * (tb ? N : K), nc = ldc * M;
                float *A = hmalloc(na * 4), *B = hmalloc(nb * 4), *C = hmalloc(nc * 4), *g = hmalloc(nc * 4);
                double *R = hmalloc(nc * 8);
                fill_normal_host(A, na, 1, 0);
                fill_normal_host(B, nb, 1, 0);
                fill_normal_host(C, nc, 1, 0);
                float *dA = dalloc(na * 4), *dB = dalloc(nb * 4), *dC = dalloc(nc * 4);
                h2d(dA, A, na * 4);
                h2d(dB, B, nb * 4);
                h2d(dC, C, nc * 4);
                int rc = G->sgemm(ta, tb, M, N, K, 0.7f, dA, lda, dB, ldb, 0.3f, dC, ldc);
                d2h(g, dC, nc * 4);
                gemm_ref(ta, tb, M, N, K, 0.7, A, lda, B, ldb, 0.3, C, ldc, R);
                // padding columns of C (j ≥ N) must be untouched
                double e = 0, den = 0;
                int pad_ok = 1;
                for (int64_t i = 0; i < M; i++)
                    for (int64_t j = 0; j < ldc; j++) {
                        if (j >= N) { pad_ok &= memcmp(&g[i * ldc + j], &C[i * ldc + j], 4) == 0; continue; }
                        double d = g[i * ldc + j] - R[i * ldc + j];
                        e += d * d;
                        den += R[i * ldc + j] * R[i * ldc + j];
                    }
                e = sqrt(e) / sqrt(den > 0 ? den : 1);
                snprintf(name, sizeof name, "sgemm %c%c %lldx%lldx%lld", ta ? 'T' : 'N', tb ? 'T' : 'N', (long long)M,
                         (long long)N, (long long)K);
                result(rc == 0 && e <= tol && pad_ok, name, "rel err %.2e (tol %.0e)%s%s", e, tol,
                       pad_ok ? "" : ", padding overwritten", rc ? G->last_error() : "");
                dfree(dA); dfree(dB); dfree(dC);
                free(A); free(B); free(C); free(g); free(R);
            }
    // strided batched, A broadcast (stride 0) and per-batch B, C; then both per batch
    for (int bc = 0; bc < 2; bc++) {
        const int64_t M = 31, N = 45, K = 27, batch = 5;
        const int64_t sa = bc ? M * K : 0, sb = K * N + 7, sc = M * N + 3;
        const int64_t na = bc ? sa * batch : M * K, nb = sb * batch, nc = sc * batch;
        float *A = hmalloc(na * 4), *B = hmalloc(nb * 4), *C = hmalloc(nc * 4), *g = hmalloc(nc * 4);
        double *R = hmalloc(nc * 8);
        fill_normal_host(A, na, 1, 0);
        fill_normal_host(B, nb, 1, 0);
        fill_normal_host(C, nc, 1, 0);
        for (int64_t i = 0; i < nc; i++) R[i] = C[i];
        float *dA = dalloc(na * 4), *dB = dalloc(nb * 4), *dC = dalloc(nc * 4);
        h2d(dA, A, na * 4);
        h2d(dB, B, nb * 4);
        h2d(dC, C, nc * 4);
        int rc = G->sgemm_strided_batched(0, 1, M, N, K, 1.5f, dA, K, sa, dB, K, sb, -0.5f, dC, N, sc, batch);
        d2h(g, dC, nc * 4);
        for (int64_t i = 0; i < batch; i++)  // op(B) = Bᵀ: B stored (N, K), ld K
            gemm_ref(0, 1, M, N, K, 1.5, A + i * sa, K, B + i * sb, K, -0.5, C + i * sc, N, R + i * sc);
        double e = 0, den = 0;
        for (int64_t i = 0; i < nc; i++) {
            double d = g[i] - R[i];
            e += d * d;
            den += R[i] * R[i];
        }
        e = sqrt(e / den);
        snprintf(name, sizeof name, "sgemm_strided_batched NT x5, A stride %s", bc ? "M*K" : "0");
        result(rc == 0 && e <= tol, name, "rel err %.2e (tol %.0e)", e, tol);
        dfree(dA); dfree(dB); dfree(dC);
        free(A); free(B); free(C); free(g); free(R);
    }
    dcheck(G->set_tf32(0), "set_tf32");
}

// Newton–Schulz on the device: quintic against the double reference (f32 GEMMs, or TF32 / bf16
// tensor cores with a looser bound), cubic against its own double reference; src ≠ dst and in
// place; a tall shape (transposed inside); two runs on one input give the same bits (the norm is
// reduced in a fixed order).
// Mixed precision (gemm_mixed): the device's tensor-core product against the CPU emulation's
// contract computed naively in double (A rounded to the weights' type, B widened): only the f32
// accumulation order differs, so 1e-5 relative; and against the unrounded f32 product, the error
// the contract itself costs (bf16 ≈ 2⁻⁹ per operand: 5e-3; f16: 1e-3). Shapes of SmolLM2's
// linears and head at 64 rows, and odd sizes with padded leading dimensions.
static void dev_gemm_mixed(void) {
    section("GEMM mixed precision: bf16/f16 weights, f32 activations rounded, f32 accumulation");
    const struct { int64_t M, N, K; int tb; } shapes[] = {
        {64, 576, 576, 1}, {64, 1536, 576, 1}, {64, 576, 1536, 1}, {16, 49152, 576, 1}, {17, 33, 65, 1}, {17, 33, 65, 0}};
    char name[128];
    for (int di = 0; di < 2; di++) {
        const zt_dtype bt = di ? ZT_F16 : ZT_BF16;
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int64_t M = shapes[si].M, N = g_dry && shapes[si].N > 2000 ? 1000 : shapes[si].N, K = shapes[si].K;
            const int tb = shapes[si].tb;
            const int64_t lda = K + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
            const int64_t na = lda * M, nb = ldb * (tb ? N : K), nc = ldc * M;
            float *A = hmalloc(na * 4), *Bf = hmalloc(nb * 4), *C = hmalloc(nc * 4), *g = hmalloc(nc * 4);
            float *ref = hmalloc(nc * 4), *wide = hmalloc(nc * 4);
            uint16_t *B = hmalloc(nb * 2);
            fill_normal_host(A, na, 1, 0);
            fill_normal_host(Bf, nb, 0.05f, 0);
            fill_normal_host(C, nc, 1, 0);
            for (int64_t i = 0; i < nb; i++) {
                B[i] = bt == ZT_BF16 ? zt_f32_to_bf16(Bf[i]) : zt_f32_to_f16(Bf[i]);
                Bf[i] = bt == ZT_BF16 ? zt_bf16_to_f32(B[i]) : zt_f16_to_f32(B[i]);  // the weights as stored
            }
            memcpy(ref, C, nc * 4);
            memcpy(wide, C, nc * 4);
            float *ws = hmalloc(host_gemm_mixed_workspace(M, N, K));
            host_gemm_mixed(tb, M, N, K, 0.7f, A, lda, B, bt, ldb, 0.3f, ref, ldc, ws);
            host_sgemm(0, tb, M, N, K, 0.7f, A, lda, Bf, ldb, 0.3f, wide, ldc);
            free(ws);
            float *dA = dalloc(na * 4), *dC = dalloc(nc * 4);
            void *dB = dalloc(nb * 2), *dws = dalloc(G->gemm_mixed_workspace(M, N, K));
            h2d(dA, A, na * 4);
            h2d(dB, B, nb * 2);
            h2d(dC, C, nc * 4);
            const int rc = G->gemm_mixed(tb, M, N, K, 0.7f, dA, lda, dB, bt, ldb, 0.3f, dC, ldc, dws);
            d2h(g, dC, nc * 4);
            double e = 0, ew = 0, den = 0;
            int pad_ok = 1;
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < ldc; j++) {
                    const int64_t at = i * ldc + j;
                    if (j >= N) { pad_ok &= memcmp(&g[at], &C[at], 4) == 0; continue; }
                    e += (double)(g[at] - ref[at]) * (g[at] - ref[at]);
                    ew += (double)(g[at] - wide[at]) * (g[at] - wide[at]);
                    den += (double)wide[at] * wide[at];
                }
            e = sqrt(e / (den > 0 ? den : 1));
            ew = sqrt(ew / (den > 0 ? den : 1));
            const double tol_w = bt == ZT_BF16 ? 5e-3 : 1e-3;
            snprintf(name, sizeof name, "%s N%c %lldx%lldx%lld", bt == ZT_BF16 ? "bf16" : "f16", tb ? 'T' : 'N',
                     (long long)M, (long long)N, (long long)K);
            result(rc == 0 && e <= 1e-5 && ew <= tol_w && pad_ok, name, "vs emulation %.1e (tol 1e-5), vs f32 %.1e (tol %.0e)%s%s",
                   e, ew, tol_w, pad_ok ? "" : ", padding overwritten", rc ? G->last_error() : "");
            dfree(dA); dfree(dB); dfree(dC); dfree(dws);
            free(A); free(Bf); free(B); free(C); free(g); free(ref); free(wide);
        }
    }
    result(G->gemm_mixed(1, 1, 1, 1, 1.0f, NULL, 1, NULL, ZT_F32, 1, 0.0f, NULL, 1, NULL) != 0, "f32 weights refused", "");
}

static void dev_newton_schulz(int mode) {  // 0: f32, 1: set_tf32(1), 2: bf16 operands
    section(mode == 1 ? "Newton-Schulz, set_tf32(1)" : mode == 2 ? "Newton-Schulz, bf16 tensor-core operands" : "Newton-Schulz f32");
    dcheck(G->set_tf32(mode == 1), "set_tf32");
    // TF32 (10-bit mantissa) against the f32 reference: 3e-2 relative (Frobenius). bf16 against a
    // reference that rounds the same operands to bf16: only the f32 accumulation order and the
    // rare operand that rounds the other way (then amplified by the early iterations) differ,
    // 1e-2, where bf16 and f32 NS differ by 2–3e-2; its distance to the f32 reference is printed
    // (bf16 NS is what the released ZO-Muon runs). The host table of the dry run is f32.
    const double tol = mode == 1 ? 3e-2 : mode == 2 ? 1e-2 : 1e-4;
    const struct { int64_t r, c; } shapes[] = {{64, 256}, {256, 64}, {96, 96}, {1, 50}, {300, 129}, {192, 576}};
    char name[160];
    for (int poly = 0; poly < 2; poly++)
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            const float pa = poly ? 1.5f : 3.4445f, pb = poly ? -0.5f : -4.7750f, pc = poly ? 0.0f : 2.0315f;
            const int64_t rows = shapes[k].r, cols = shapes[k].c, n = rows * cols;
            const size_t wsb = (size_t)zt_newton_schulz_workspace(rows, cols) * 4;
            float *x = hmalloc(n * 4), *g = hmalloc(n * 4), *g2 = hmalloc(n * 4);
            double *ref = hmalloc(n * 8);
            fill_normal_host(x, n, 0.3f, 0);
            float *dx = dalloc(n * 4), *dy = dalloc(n * 4), *ws = dalloc(wsb);
            h2d(dx, x, n * 4);
            dpoison(ws, wsb);
            dpoison(dy, n * 4);
            int rc = G->newton_schulz(dx, dy, rows, cols, 5, pa, pb, pc, mode == 2, ws);  // src ≠ dst
            d2h(g, dy, n * 4);
            rc |= G->newton_schulz(dx, dx, rows, cols, 5, pa, pb, pc, mode == 2, ws);     // in place
            d2h(g2, dx, n * 4);
            const int same = memcmp(g, g2, n * 4) == 0;
            // bf16 operands only where the kernel can use them (both dimensions multiples of 8)
            const int tc = mode == 2 && !g_dry && rows % 8 == 0 && cols % 8 == 0;
            ns_ref_poly_mode(x, rows, cols, 5, pa, pb, pc, tc, ref);
            const double e = rel_fro(g, ref, n);
            double *ref32 = hmalloc(n * 8);
            ns_ref_poly(x, rows, cols, 5, pa, pb, pc, ref32);
            const double e32 = rel_fro(g, ref32, n);
            free(ref32);
            // the CPU kernel (f32) as well, for information
            float *xc = hmalloc(n * 4), *wc = hmalloc(wsb);
            zt_newton_schulz(x, xc, rows, cols, 5, pa, pb, pc, wc);
            double ec = 0, dc = 0;
            for (int64_t i = 0; i < n; i++) {
                ec += ((double)g[i] - xc[i]) * ((double)g[i] - xc[i]);
                dc += (double)xc[i] * xc[i];
            }
            ec = sqrt(ec / (dc > 0 ? dc : 1));
            free(xc);
            free(wc);
            snprintf(name, sizeof name, "newton_schulz %s %lldx%lld, 5 steps", poly ? "cubic" : "quintic", (long long)rows,
                     (long long)cols);
            result(rc == 0 && e <= tol && same, name, "vs double%s %.1e (tol %.0e), vs f32 double %.1e, vs CPU f32 %.1e; in place == out of place, run to run: %s",
                   tc ? " (bf16 operands)" : "", e, tol, e32, ec, same ? "bit-identical" : "DIFFERENT");
            dfree(dx); dfree(dy); dfree(ws);
            free(x); free(g); free(g2); free(ref);
        }
    dcheck(G->set_tf32(0), "set_tf32");
}

// The Jaguar passes and add_scaled on device vs CPU, bit for bit: for a matrix and a vector
// (non-zero `first`), each dtype and both sign modes, the probes (+τ, −2τ) of a training step, its
// pass, then a replayed step's pass (a1, a2 ≠ 0); the probe changes exactly k_rows·k_cols entries.
static void dev_jaguar(void) {
    section("jaguar_probe / jaguar_update / add_scaled (bit-identical, x and state)");
    const zt_dtype dts[3] = {ZT_F32, ZT_BF16, ZT_F16};
    const struct { int64_t rows, cols, kr, kc; uint64_t first; } shapes[] = {{37, 53, 5, 7, 0}, {1, 300, 1, 30, 1001},
                                                                           {SZ(1024, 96), SZ(1536, 200), SZ(102, 9), SZ(153, 20), 7}};
    const int kinds[3] = {ZT_JAGUAR_SIGN, ZT_JAGUAR_SGD, ZT_JAGUAR_MEMORY};
    const char *kname[3] = {"sign", "sgd", "memory"};
    char name[160];
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int di = 0; di < 3; di++)
            for (int signs = 0; signs < 2; signs++) {
                const zt_dtype dt = dts[di];
                const size_t es = (size_t)zt_dtype_size(dt);
                const int64_t n = shapes[si].rows * shapes[si].cols;
                const uint64_t first = shapes[si].first;
                int64_t compares = 0, bad = 0, wrong_count = 0;
                char first_bad[240] = "";
                void *hx = random_storage(dt, n, 0.05f), *back = hmalloc(n * 4), *before = hmalloc(n * es);
                float *hm = hmalloc(n * 4);
                fill_normal_host(hm, n, 0.01f, 0);
                void *dx = dalloc(n * es);
                float *dm = dalloc(n * 4);
                h2d(dx, hx, n * es);
                h2d(dm, hm, n * 4);
                for (int ki = 0; ki < 3; ki++)
                    for (int replay = 0; replay < 2; replay++) {
                        const uint64_t seed = 0xA6A6ull + (uint64_t)(ki * 2 + replay);
                        zt_jaguar_args p = {.rows = shapes[si].rows, .cols = shapes[si].cols, .k_rows = shapes[si].kr,
                                            .k_cols = shapes[si].kc, .signs = signs, .restore = 1e-3f, .g = ki == 1 ? 1e-3f : 0.37f,
                                            .beta = 0.2f, .momentum = 0.9f, .lr = 1e-3f};
                        if (replay) {
                            p.a1 = 1e-3f;
                            p.a2 = -2e-3f;
                        } else {
                            memcpy(before, hx, n * es);
                            G->jaguar_probe(dx, dt, first, seed, 41u, &p, 1e-3f);
                            zt_jaguar_probe(hx, dt, first, seed, 41u, &p, 1e-3f);
                            int64_t changed = 0;
                            for (int64_t i = 0; i < n; i++) changed += memcmp((char *)hx + i * es, (char *)before + i * es, es) != 0;
                            // a probe can leave an entry unchanged only where τ is below its ulp (none here)
                            wrong_count += changed != p.k_rows * p.k_cols;
                            G->jaguar_probe(dx, dt, first, seed, 41u, &p, -2e-3f);
                            zt_jaguar_probe(hx, dt, first, seed, 41u, &p, -2e-3f);
                        }
                        G->jaguar_update(kinds[ki], dx, dt, dm, first, seed, 41u, &p);
                        zt_jaguar_update(kinds[ki], hx, dt, hm, first, seed, 41u, &p);
                        const struct { const void *dev, *cpu; size_t elem; const char *what; } arr[2] = {{dx, hx, es, "x"}, {dm, hm, 4, "m"}};
                        for (int k = 0; k < 2; k++) {
                            char detail[200];
                            d2h(back, arr[k].dev, n * arr[k].elem);
                            compares++;
                            if (diff_bits(back, arr[k].cpu, n, (int)arr[k].elem, detail, sizeof detail)) {
                                if (!bad) snprintf(first_bad, sizeof first_bad, "%s%s, %s: %s", kname[ki], replay ? " (replay)" : "", arr[k].what, detail);
                                bad++;
                            }
                        }
                    }
                // add_scaled of a direction held in the state array
                G->add_scaled(dx, dt, n, -0.3f, dm);
                zt_add_scaled(hx, dt, n, -0.3f, hm);
                d2h(back, dx, n * es);
                compares++;
                char detail[200];
                if (diff_bits(back, hx, n, (int)es, detail, sizeof detail)) {
                    if (!bad) snprintf(first_bad, sizeof first_bad, "add_scaled: %s", detail);
                    bad++;
                }
                snprintf(name, sizeof name, "jaguar %lldx%lld k %lldx%lld %s signs %d", (long long)shapes[si].rows,
                         (long long)shapes[si].cols, (long long)shapes[si].kr, (long long)shapes[si].kc, dtname(dt), signs);
                result(bad == 0 && wrong_count == 0, name, "%lld of %lld compares differ; %lld probes changed a count other than k_rows*k_cols%s%s",
                       (long long)bad, (long long)compares, (long long)wrong_count, bad ? "; first: " : " (bit-identical)", first_bad);
                dfree(dx); dfree(dm);
                free(hx); free(back); free(before); free(hm);
            }
}

// DiZO's lerp and Zoop's scale_rows / adam_direction on device vs CPU, bit for bit (x and both
// moments over three successive Adam steps, with and without decay; lerp also into its own b), and
// the two double reductions: the same bits on two calls, within 1e-12 of the CPU's sums. Sizes: 1,
// a non-multiple of every block size, and a large one.
static void dev_dizo_zoop(void) {
    section("lerp / scale_rows / adam_direction (bit-identical), sum_squares / squared_distance (1e-12)");
    const zt_dtype dts[3] = {ZT_F32, ZT_BF16, ZT_F16};
    const int64_t sizes[3] = {1, 4099, SZ(3 << 20, 70001)};
    char name[160];
    for (int si = 0; si < 3; si++)
        for (int di = 0; di < 3; di++) {
            const zt_dtype dt = dts[di];
            const int64_t n = sizes[si];
            const size_t es = (size_t)zt_dtype_size(dt);
            int64_t bad = 0;
            char first_bad[240] = "", detail[200];
            void *ha = random_storage(dt, n, 0.05f), *hb = random_storage(dt, n, 0.05f), *hout = hmalloc(n * es);
            void *back = hmalloc(n * 4);
            void *da = dalloc(n * es), *db = dalloc(n * es), *dout = dalloc(n * es);
            h2d(da, ha, n * es);
            h2d(db, hb, n * es);
            const float alphas[4] = {0.83f, 1.2f, 1.0f / 3.0f, 1.0f};
            for (int k = 0; k < 4; k++) {
                dpoison(dout, n * es);
                G->lerp(dout, dt, da, db, n, alphas[k]);
                zt_lerp(hout, dt, ha, hb, n, alphas[k]);
                d2h(back, dout, n * es);
                if (diff_bits(back, hout, n, (int)es, detail, sizeof detail)) {
                    if (!bad) snprintf(first_bad, sizeof first_bad, "lerp α %g: %s", alphas[k], detail);
                    bad++;
                }
            }
            // into its own b (how replay applies a ratio)
            G->lerp(db, dt, da, db, n, 0.9f);
            zt_lerp(hb, dt, ha, hb, n, 0.9f);
            d2h(back, db, n * es);
            if (diff_bits(back, hb, n, (int)es, detail, sizeof detail)) {
                if (!bad) snprintf(first_bad, sizeof first_bad, "lerp in place: %s", detail);
                bad++;
            }
            // Adam on a direction: x in dt, m, v, d f32
            float *hm = hmalloc(n * 4), *hv = hmalloc(n * 4), *hd = hmalloc(n * 4);
            for (int64_t i = 0; i < n; i++) { hm[i] = 0; hv[i] = 0; }
            float *dm = dalloc(n * 4), *dv = dalloc(n * 4), *dd = dalloc(n * 4);
            h2d(dm, hm, n * 4);
            h2d(dv, hv, n * 4);
            for (int t = 1; t <= 3; t++) {
                fill_normal_host(hd, n, 1.0f / sqrtf((float)n), 0);
                h2d(dd, hd, n * 4);
                zt_zo_update_args p = {0};
                p.beta1 = 0.9f;
                p.beta2 = 0.999f;
                p.adam_eps = 1e-8f;
                p.lr = 1e-3f / (1.0f - powf(0.9f, (float)t));
                p.bc2_sqrt = sqrtf(1.0f - powf(0.999f, (float)t));
                p.decay = t == 2 ? 1e-4f : 0.0f;
                G->adam_direction(da, dt, dm, dv, dd, n, &p);
                zt_adam_direction(ha, dt, hm, hv, hd, n, &p);
                const struct { const void *dev, *cpu; size_t elem; const char *what; } arr[3] = {{da, ha, es, "x"}, {dm, hm, 4, "m"}, {dv, hv, 4, "v"}};
                for (int k = 0; k < 3; k++) {
                    d2h(back, arr[k].dev, n * arr[k].elem);
                    if (diff_bits(back, arr[k].cpu, n, (int)arr[k].elem, detail, sizeof detail)) {
                        if (!bad) snprintf(first_bad, sizeof first_bad, "adam_direction step %d, %s: %s", t, arr[k].what, detail);
                        bad++;
                    }
                }
            }
            // Reductions: Σd² (f32) and Σ(a − b)² (dt).
            double s1 = 0, s2 = 0, q1 = 0, q2 = 0;
            dcheck(G->sum_squares(dd, n, &s1), "sum_squares");
            dcheck(G->sum_squares(dd, n, &s2), "sum_squares");
            dcheck(G->squared_distance(da, db, dt, n, &q1), "squared_distance");
            dcheck(G->squared_distance(da, db, dt, n, &q2), "squared_distance");
            const double cs = zt_sum_squares(hd, n), cq = zt_squared_distance(ha, hb, dt, n);
            const double es1 = fabs(s1 - cs) / (cs > 0 ? cs : 1), eq = fabs(q1 - cq) / (cq > 0 ? cq : 1);
            const int same = s1 == s2 && q1 == q2;
            // scale_rows over (rows, cols) with the f32 direction as data
            const int64_t cols = n >= 7 ? 7 : 1, rows = n / cols;
            float *hs = hmalloc((size_t)rows * 4), *hx = hmalloc((size_t)(rows * cols) * 4);
            fill_normal_host(hs, rows, 1.0f, 0);
            memcpy(hx, hd, (size_t)(rows * cols) * 4);
            float *ds = dalloc((size_t)rows * 4);
            h2d(ds, hs, (size_t)rows * 4);
            G->scale_rows(dd, rows, cols, ds);
            zt_scale_rows(hx, rows, cols, hs);
            d2h(back, dd, (size_t)(rows * cols) * 4);
            if (diff_bits(back, hx, rows * cols, 4, detail, sizeof detail)) {
                if (!bad) snprintf(first_bad, sizeof first_bad, "scale_rows: %s", detail);
                bad++;
            }
            snprintf(name, sizeof name, "dizo/zoop ops n %lld %s", (long long)n, dtname(dt));
            result(bad == 0 && es1 <= 1e-12 && eq <= 1e-12 && same, name,
                   "%lld differ%s%s; sum_squares rel %.1e, squared_distance rel %.1e (tol 1e-12), run to run %s",
                   (long long)bad, bad ? "; first: " : " (bit-identical)", first_bad, es1, eq, same ? "identical" : "DIFFERENT");
            dfree(da); dfree(db); dfree(dout); dfree(dm); dfree(dv); dfree(dd); dfree(ds);
            free(ha); free(hb); free(hout); free(back); free(hm); free(hv); free(hd); free(hs); free(hx);
        }
}

// Host: the selection permutation is a bijection of [0, n) with its inverse (zt_jaguar.h); NS
// closed forms (ZO-FAMILY.md §4.7–§4.8) through the CPU kernel.
static void check_jaguar_and_ns_closed_forms(void) {
    const uint32_t sizes[] = {1, 2, 3, 5, 16, 17, 1000, 65537};
    int64_t bad = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const uint32_t n = sizes[k];
        const zt_perm p = zt_perm_make(n, 42, 7, ZT_STREAM_SELECT_ROWS);
        unsigned char *seen = calloc(n, 1);
        for (uint32_t i = 0; i < n; i++) {
            const uint32_t x = zt_perm_at(&p, i);
            if (x >= n || seen[x] || zt_perm_rank(&p, x) != i) bad++;
            else seen[x] = 1;
        }
        free(seen);
    }
    result(bad == 0, "selection permutation: bijection and inverse", "n in {1, 2, 3, 5, 16, 17, 1000, 65537}: %lld bad", (long long)bad);
    float m[54] = {0}, o[54], w[4096];
    m[2 * 9 + 7] = -0.37f;
    zt_newton_schulz(m, o, 6, 9, 10, NS_CUBIC, w);
    double worst = 0;
    for (int i = 0; i < 54; i++) worst = fmax(worst, fabs(o[i] - (i == 2 * 9 + 7 ? -1.0 : 0.0)));
    result(worst < 1e-6, "cubic NS: one non-zero entry is a fixed point", "max |NS - sign(m) e_i e_j^T| %.1e", worst);
    float d[4] = {3, 0, 0, 4}, q[4];
    zt_newton_schulz(d, q, 2, 2, 5, NS_QUINTIC, w);
    result(fabs(q[0] - 0.72288) < 1e-4 && fabs(q[3] - 1.11920) < 1e-4 && q[1] == 0 && q[2] == 0, "quintic NS on diag(3,4), 5 steps",
           "(%.5f, %.5f), want (0.72288, 1.11920)", q[0], q[3]);
}

// ---- Timings -------------------------------------------------------------------------------------------

// Seconds per call of `body` (median of 5 timed batches of `iters` calls, after one warm-up batch).
#define TIME_IT(out, iters, ...)                                                                     \
    do {                                                                                             \
        double ts_[5];                                                                               \
        for (int w_ = 0; w_ < 6; w_++) {                                                             \
            dsync("timing");                                                                         \
            double t0_ = now();                                                                      \
            for (int i_ = 0; i_ < (iters); i_++) { __VA_ARGS__; }                                         \
            dsync("timing");                                                                         \
            if (w_) ts_[w_ - 1] = (now() - t0_) / (iters);                                           \
        }                                                                                            \
        for (int a_ = 0; a_ < 5; a_++)                                                               \
            for (int b_ = a_ + 1; b_ < 5; b_++)                                                      \
                if (ts_[b_] < ts_[a_]) { double t_ = ts_[a_]; ts_[a_] = ts_[b_]; ts_[b_] = t_; }     \
        (out) = ts_[2];                                                                              \
    } while (0)

// One timing row: `bytes` read and written per call, as GB/s and as a share of the device copy's
// (returned).
static double time_row(const char *label, double t, double bytes, int64_t n, double copy_bw) {
    printf("  %-34s %10.3f %10.1f %7.0f%% %9.2f\n", label, t * 1e3, bytes / t / 1e9, 100 * bytes / t / 1e9 / copy_bw,
           (double)n / t / 1e9);
    return bytes / t / 1e9 / copy_bw;
}

// Speed floors (a full run fails below them; a dry run's host timings mean nothing): the f32
// perturbation passes are pure streams and must move ≥ 70% of the bytes a device copy moves in the
// same run, bf16 ≥ 85% of its instruction limit (check_floor.c); GEMMs at large-model shapes must
// reach ≥ 50% of the bf16 peak measured in the same run.
#define FLOOR_STREAM 0.70
#define FLOOR_GEMM 0.50
#include "check_floor.c"
static struct { double stream_worst, gemm_worst, peak_tflops, copy_gbs; } g_speed = {1e9, 1e9, 0, 0};
static void speed_floor(const char *what, double share, double floor, double *worst) {
    char name[96];
    snprintf(name, sizeof name, "speed: %s", what);
    if (share < *worst) *worst = share;
    result(g_dry || share >= floor, name, "%.0f%% (floor %.0f%%)%s", 100 * share, 100 * floor, g_dry ? ", dry run: not enforced" : "");
}

// gemm_mixed (bf16 weights) at model shapes against the bf16 peak of a large square product.
// Rows = 2048 tokens (a batch of 16 × 128). Llama-7B's linears and head must reach the floor;
// SmolLM2's are reported (576-wide products cannot fill a Hopper's SMs).
static void dev_gemm_speed(void) {
    const int64_t pk = SZ(8192, 128);
    char *A = dalloc(pk * pk * 4), *B = dalloc(pk * pk * 2), *C = dalloc(pk * pk * 4);
    char *ws = dalloc(G->gemm_mixed_workspace(pk, pk, pk));
    G->fill_normal(A, ZT_F32, pk * pk, 0, 5, 1, 0, 1.0f);
    G->fill_normal(B, ZT_BF16, pk * pk, 0, 6, 1, 0, 0.02f);
    double t;
    TIME_IT(t, g_dry ? 1 : 5, dcheck(G->gemm_mixed(1, pk, pk, pk, 1.0f, (float *)A, pk, B, ZT_BF16, pk, 0.0f, (float *)C, pk, ws), "gemm_mixed"));
    const double peak = 2.0 * pk * pk * pk / t / 1e12;
    g_speed.peak_tflops = peak;
    printf("  %-34s %10s %10s %8s\n", "GEMM mixed (bf16 weights)", "ms", "TFLOP/s", "of peak");
    char plabel[64];
    snprintf(plabel, sizeof plabel, "peak: %lld^3 (NT)", (long long)pk);
    printf("  %-34s %10.3f %10.1f %7.0f%%\n", plabel, t * 1e3, peak, 100.0);
    const struct { const char *model; int64_t N, K; int floor; } shapes[] = {
        {"llama-7b qkvo", 4096, 4096, 1}, {"llama-7b gate/up", 11008, 4096, 1}, {"llama-7b down", 4096, 11008, 1},
        {"llama-7b head", 32000, 4096, 1}, {"smollm2 qo", 576, 576, 0}, {"smollm2 gate/up", 1536, 576, 0},
        {"smollm2 down", 576, 1536, 0}, {"smollm2 head", 49152, 576, 0}};
    const int64_t M = SZ(2048, 64);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int64_t N = SZ(shapes[k].N, 96), K = SZ(shapes[k].K, 64);
        if ((size_t)(N * K * 2) > (size_t)(pk * pk * 2) || M * K * 4 > pk * pk * 4 || M * N * 4 > pk * pk * 4) continue;
        TIME_IT(t, g_dry ? 1 : 10, dcheck(G->gemm_mixed(1, M, N, K, 1.0f, (float *)A, K, B, ZT_BF16, K, 0.0f, (float *)C, N, ws), "gemm_mixed"));
        const double tf = 2.0 * M * N * K / t / 1e12;
        char label[96];
        snprintf(label, sizeof label, "%s %lldx%lldx%lld", shapes[k].model, (long long)M, (long long)N, (long long)K);
        printf("  %-34s %10.3f %10.1f %7.0f%%\n", label, t * 1e3, tf, 100 * tf / peak);
        if (shapes[k].floor) speed_floor(label, tf / peak, FLOOR_GEMM, &g_speed.gemm_worst);
    }
    dfree(A); dfree(B); dfree(C); dfree(ws);
}

// NS on the matrix shapes of SmolLM2-135M (10 iterations), f32 and bf16 operands, in GFLOP/s.
static void dev_ns_timings(void) {
    const struct { int64_t r, c; } shapes[] = {{576, 576}, {576, 1536}, {192, 576}, {2048, 8192}};
    printf("  %-34s %10s %10s\n", "Newton-Schulz x10 (quintic)", "ms", "TFLOP/s");
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int64_t rows = SZ(shapes[k].r, 48), cols = SZ(shapes[k].c, 64), r = rows < cols ? rows : cols, m = rows < cols ? cols : rows;
        const size_t wsb = (size_t)zt_newton_schulz_workspace(rows, cols) * 4;
        float *x = dalloc(rows * cols * 4), *y = dalloc(rows * cols * 4), *ws = dalloc(wsb);
        G->fill_normal(x, ZT_F32, rows * cols, 0, 9, 9, 0, 1.0f);
        for (int bf = 0; bf < 2; bf++) {
            double t;
            TIME_IT(t, g_dry ? 1 : 5, dcheck(G->newton_schulz(x, y, rows, cols, 10, NS_QUINTIC, bf, ws), "newton_schulz"));
            char label[64];
            snprintf(label, sizeof label, "NS %lldx%lld %s", (long long)rows, (long long)cols, bf ? "bf16" : "f32");
            printf("  %-34s %10.3f %10.2f\n", label, t * 1e3, 10.0 * (4.0 * r * r * m + 2.0 * r * r * r) / t / 1e12);
        }
        dfree(x); dfree(y); dfree(ws);
    }
}

#include "check_reduce.c"

static void dev_timings(void) {
    section(g_dry ? "timings (dry run: host numbers, small sizes)" : "timings");
    const int64_t n = SZ((int64_t)1 << 28, 1 << 20);  // 256M elements
    const int it = g_dry ? 1 : 5;
    char *a = dalloc(n * 4), *b = dalloc(n * 4);
    dcheck(G->memset(a, 0, n * 4), "memset");
    dcheck(G->memset(b, 0, n * 4), "memset");
    G->fill_normal(a, ZT_F32, n, 0, 1, 1, 0, 0.02f);
    double t;
    TIME_IT(t, it, dcheck(G->memcpy_d2d(b, a, n * 4), "memcpy_d2d"));
    const double copy_bw = 2.0 * n * 4 / t / 1e9;
    g_speed.copy_gbs = copy_bw;
    printf("  %-34s %10s %10s %8s %9s\n", "kernel (elements)", "ms", "GB/s", "of copy", "Gelem/s");
    time_row("cudaMemcpy d2d (f32, read+write)", t, 2.0 * n * 4, n, copy_bw);
    bf16_stream_floor(copy_bw);
    // Optimizer state (f32): 0x3F3F3F3F ≈ 0.75 everywhere, positive as HiZOO's H and Adam's v must be.
    float *s1 = dalloc(n * 4), *s2 = dalloc(n * 4);
    dcheck(G->memset(s1, 0x3F, n * 4), "memset");
    dcheck(G->memset(s2, 0x3F, n * 4), "memset");
    const zt_dtype dts[2] = {ZT_F32, ZT_BF16};
    for (int k = 0; k < 2; k++) {
        const zt_dtype dt = dts[k];
        const double es = (double)zt_dtype_size(dt);
        if (dt == ZT_BF16) G->convert(b, ZT_BF16, a, ZT_F32, n);
        void *x = dt == ZT_F32 ? (void *)a : (void *)b;
        char label[64];
        uint64_t s = 100;
        TIME_IT(t, it, G->perturb(x, dt, n, 0, s++, 3, 0, 1e-3f));
        snprintf(label, sizeof label, "perturb %s", dtname(dt));
        const double sp = time_row(label, t, 2 * es * n, n, copy_bw);
        TIME_IT(t, it, G->restore_update(x, dt, n, 0, s++, 3, 0, 1e-3f, 1e-4f, 1e-6f));
        char label2[64];
        snprintf(label2, sizeof label2, "restore_update %s", dtname(dt));
        const double su = time_row(label2, t, 2 * es * n, n, copy_bw);
        const double fl = dt == ZT_BF16 ? g_bf16_floor : FLOOR_STREAM;
        speed_floor(label, sp, fl, &g_speed.stream_worst);
        speed_floor(label2, su, fl, &g_speed.stream_worst);
        // Fused optimizer updates (training: a1 = a2 = 0): x and the state each read and written.
        for (int ki = 0; ki < N_ZO_KINDS; ki++) {
            const int kind = zo_kinds[ki];
            const zt_zo_update_args p = zo_args(kind, 10, 0, 1e-3f);
            float *v = zo_two_arrays(kind) ? s2 : NULL;
            TIME_IT(t, it, G->zo_update(kind, x, dt, s1, v, n, 0, s++, 3, 0, &p));
            snprintf(label, sizeof label, "zo_update %s %s (+%s state)", zo_name(kind), dtname(dt), v ? "2" : "1");
            time_row(label, t, (2 * es + (v ? (kind == ZT_ZO_ADAM ? 16 : 12) : 8)) * n, n, copy_bw);
        }
        {  // Jaguar's dense sign pass on a 4096-column view (10 % of rows and columns probed), add_scaled
            zt_jaguar_args ja = {.rows = n / 4096, .cols = 4096, .k_rows = n / 40960, .k_cols = 409, .signs = 1,
                                 .restore = 1e-3f, .g = 0.5f, .beta = 0.01f, .lr = 1e-4f};
            TIME_IT(t, it, G->jaguar_update(ZT_JAGUAR_SIGN, x, dt, s1, 0, s++, 3, &ja));
            snprintf(label, sizeof label, "jaguar sign pass %s (+1 state)", dtname(dt));
            time_row(label, t, (2 * es + 8) * n, n, copy_bw);
            TIME_IT(t, it, G->add_scaled(x, dt, n, -1e-6f, s2));
            snprintf(label, sizeof label, "add_scaled %s (+ read D)", dtname(dt));
            time_row(label, t, (2 * es + 4) * n, n, copy_bw);
        }
        TIME_IT(t, it, G->perturb_hessian(x, dt, s1, n, 0, s++, 3, 0, 1e-3f));
        snprintf(label, sizeof label, "perturb_hessian %s (+ read H)", dtname(dt));
        time_row(label, t, (2 * es + 4) * n, n, copy_bw);
        TIME_IT(t, it, G->fill_normal(x, dt, n, 0, s++, 3, 0, 1.0f));
        snprintf(label, sizeof label, "fill_normal %s (write only)", dtname(dt));
        time_row(label, t, es * n, n, copy_bw);
    }
    dfree(a);
    dfree(b);
    dfree(s1);
    dfree(s2);

    const int64_t gn = SZ(4096, 128);
    float *A = dalloc(gn * gn * 4), *B = dalloc(gn * gn * 4), *C = dalloc(gn * gn * 4);
    G->fill_normal(A, ZT_F32, gn * gn, 0, 5, 1, 0, 1.0f);
    G->fill_normal(B, ZT_F32, gn * gn, 0, 6, 1, 0, 1.0f);
    printf("  %-34s %10s %10s\n", "GEMM", "ms", "TFLOP/s");
    for (int tf = 0; tf < 2; tf++) {
        dcheck(G->set_tf32(tf), "set_tf32");
        TIME_IT(t, g_dry ? 1 : 10, dcheck(G->sgemm(0, 0, gn, gn, gn, 1.0f, A, gn, B, gn, 0.0f, C, gn), "sgemm"));
        char label[64];
        snprintf(label, sizeof label, "sgemm %lld^3 %s", (long long)gn, tf ? "TF32" : "f32");
        printf("  %-34s %10.3f %10.1f\n", label, t * 1e3, 2.0 * gn * gn * gn / t / 1e12);
    }
    dcheck(G->set_tf32(0), "set_tf32");
    dfree(A); dfree(B); dfree(C);
    dev_gemm_speed();
    dev_ns_timings();
    dev_reduce_timings();
}

// Shadow vs in-place perturbation of bf16 weights (ALGORITHMS.md §3): bytes and time per step, and
// the drift of W after 1000 perturb(+ε)/perturb(−2ε)/perturb(+ε) cycles.
static void dev_shadow(void) {
    section("shadow vs in-place perturbation (bf16)");
    const int64_t n = SZ((int64_t)64 << 20, 1 << 16);
    uint16_t *W = dalloc(n * 2), *Sc = dalloc(n * 2);
    G->fill_normal(W, ZT_BF16, n, 0, 7, 1, 0, 0.02f);
    const float eps = 1e-3f;
    double t_in, t_sh;
    uint64_t s = 1;
    const int it = g_dry ? 1 : 10;
    // in place: θ+εz, θ−2εz, restore+update: 3 read+write passes over W
    TIME_IT(t_in, it, {
        G->perturb(W, ZT_BF16, n, 0, s, 1, 0, eps);
        G->perturb(W, ZT_BF16, n, 0, s, 1, 0, -2 * eps);
        G->restore_update(W, ZT_BF16, n, 0, s, 1, 0, eps, 1e-6f, 0.0f);
        s++;
    });
    // shadow: scratch = W ± εz (read W, write scratch) twice, then the update alone (read+write W)
    TIME_IT(t_sh, it, {
        G->perturbed_copy(Sc, ZT_BF16, W, ZT_BF16, n, 0, s, 1, 0, eps);
        G->perturbed_copy(Sc, ZT_BF16, W, ZT_BF16, n, 0, s, 1, 0, -eps);
        G->restore_update(W, ZT_BF16, n, 0, s, 1, 0, 0.0f, 1e-6f, 0.0f);
        s++;
    });
    const double bytes = 3.0 * 4.0 * (double)n;  // each pass reads 2 and writes 2 bytes per element
    printf("  %-22s %12s %12s %10s   (W: %lld bf16 elements; scratch: one matrix)\n", "mode", "MB/step", "ms/step",
           "GB/s", (long long)n);
    printf("  %-22s %12.1f %12.3f %10.1f\n", "in-place (3 passes)", bytes / 1e6, t_in * 1e3, bytes / t_in / 1e9);
    printf("  %-22s %12.1f %12.3f %10.1f\n", "shadow (2 copies+upd)", bytes / 1e6, t_sh * 1e3, bytes / t_sh / 1e9);

    // drift after 1000 cycles without update
    const int64_t m = SZ(16 << 20, 1 << 14);
    const int cycles = 1000;
    uint16_t *W0 = hmalloc(m * 2), *W1 = hmalloc(m * 2);
    G->fill_normal(W, ZT_BF16, m, 0, 8, 1, 0, 0.02f);
    d2h(W0, W, m * 2);
    double t0 = now();
    for (int c = 0; c < cycles; c++) {
        G->perturb(W, ZT_BF16, m, 0, 1000 + c, 1, 0, eps);
        G->perturb(W, ZT_BF16, m, 0, 1000 + c, 1, 0, -2 * eps);
        G->perturb(W, ZT_BF16, m, 0, 1000 + c, 1, 0, eps);
    }
    dsync("drift");
    const double t_drift = now() - t0;
    d2h(W1, W, m * 2);
    int64_t changed = 0;
    double max_d = 0, ss_d = 0, ss_w = 0;
    for (int64_t i = 0; i < m; i++) {
        const double w0 = zt_bf16_to_f32(W0[i]), w1 = zt_bf16_to_f32(W1[i]);
        changed += W0[i] != W1[i];
        max_d = fmax(max_d, fabs(w1 - w0));
        ss_d += (w1 - w0) * (w1 - w0);
        ss_w += w0 * w0;
    }
    printf("  in-place drift after %d cycles (+e,-2e,+e; e=%.0e) over %lld weights (%.2fs):\n", cycles, eps, (long long)m, t_drift);
    printf("    %.1f%% of weights changed, max |dW| %.3e, rms(dW)/rms(W) %.3e\n", 100.0 * changed / m, max_d, sqrt(ss_d / ss_w));
    result(changed > 0, "in-place bf16 drift is nonzero", "%lld of %lld weights moved", (long long)changed, (long long)m);

    // same cycles in shadow mode: W is only read
    d2h(W0, W, m * 2);
    for (int c = 0; c < cycles; c++) {
        G->perturbed_copy(Sc, ZT_BF16, W, ZT_BF16, m, 0, 2000 + c, 1, 0, eps);
        G->perturbed_copy(Sc, ZT_BF16, W, ZT_BF16, m, 0, 2000 + c, 1, 0, -eps);
    }
    dsync("shadow drift");
    d2h(W1, W, m * 2);
    result(memcmp(W0, W1, m * 2) == 0, "shadow: W unchanged after 1000 cycles", "drift exactly 0");

    // the in-place cycles on the device reproduce the CPU bit for bit (end-to-end determinism)
    const int64_t k = 1 << 16;
    uint16_t *hc = hmalloc(k * 2), *hg = hmalloc(k * 2);
    G->fill_normal(W, ZT_BF16, k, 0, 9, 1, 0, 0.02f);
    d2h(hc, W, k * 2);
    for (int c = 0; c < (g_dry ? 20 : cycles); c++) {
        const float sg[3] = {eps, -2 * eps, eps};
        for (int p = 0; p < 3; p++) {
            G->perturb(W, ZT_BF16, k, 0, 3000 + c, 1, 0, sg[p]);
            zt_perturb(hc, ZT_BF16, k, 0, 3000 + c, 1, 0, sg[p]);
        }
    }
    d2h(hg, W, k * 2);
    check_bits("in-place cycles: device == CPU (65536 bf16)", hg, hc, k, 2);
    dfree(W); dfree(Sc);
    free(W0); free(W1); free(hc); free(hg);
}

static void run_device_checks(void) {
    dev_philox();
    dev_stream_ops();
    dev_stream_list();
    dev_zo_update_list();
    dev_zo_ops();
    dev_frontier();
    dev_convert();
    dev_elementwise();
    dev_rows();
    dev_embedding();
    dev_rope();
    dev_attention();
    dev_gemm(0);
    dev_gemm(1);
    dev_gemm_mixed();
    dev_gemm_half();
    dev_half_producers();
    dev_half_producers_12();
    dev_graph_forward(0);
    dev_graph_forward(1);
    dev_newton_schulz(0);
    dev_newton_schulz(1);
    dev_newton_schulz(2);
    dev_ns_batched(0);
    dev_ns_batched(1);
    dev_ns_batched(2);
    dev_jaguar();
    dev_dizo_zoop();
    dev_reductions();
    dev_dequant();
    dev_timings();
    dev_shadow();
}

// ---- main ------------------------------------------------------------------------------------------

static void cpu_checks(void) {
    section("CPU-side references");
    check_philox_kat();
    check_emulated_stream();
    check_emulated_zo();
    check_emulated_convert();
    check_reference_consistency();
    check_gemm_reference();
    check_ns_reference();
    check_jaguar_and_ns_closed_forms();
    check_frontier_cpu();
}

static int finish(double t0) {
    if (g_speed.copy_gbs > 0)  // one line for the summary table of bench/device/run.sh
        printf("\nspeed: copy %.0f GB/s; perturb/update worst %.0f%% of copy (floor %.0f%%, bf16 %.0f%%: its instruction "
               "limit); bf16 GEMM peak %.0f TFLOP/s, large-model shapes worst %.0f%% of it (floor %.0f%%)\n", g_speed.copy_gbs,
               100 * g_speed.stream_worst, 100 * FLOOR_STREAM, 100 * g_bf16_floor, g_speed.peak_tflops,
               100 * g_speed.gemm_worst, 100 * FLOOR_GEMM);
    printf("\n%d checks, %d failed (%.1f s)\n", g_checks, g_fails, now() - t0);
    return g_fails ? 1 : 0;
}

int main(int argc, char **argv) {
    const double t0 = now();
    setvbuf(stdout, NULL, _IOLBF, 0);
    int self_test = argc == 3 && strcmp(argv[1], "--self-test") == 0;
    if (!(argc == 2 || self_test)) {
        fprintf(stderr, "usage: %s [--self-test] path/to/libzotune_cuda.so\n", argv[0]);
        return 2;
    }
    const char *lib_path = argv[argc - 1];

    section("library");
    void *lib = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) die("cannot load %s: %s", lib_path, dlerror());
    zt_cuda_get_api_fn get = (zt_cuda_get_api_fn)dlsym(lib, ZT_CUDA_ENTRY_POINT);
    result(get != NULL, "exports " ZT_CUDA_ENTRY_POINT, "%s", lib_path);
    if (!get) return finish(t0);
    const zt_backend_api *cuda = get();
    check_table(cuda);
    g_philox = (debug_philox_fn)dlsym(lib, "zt_cuda_debug_philox");
    result(g_philox != NULL, "exports zt_cuda_debug_philox", "");

    int count = -1;
    const int rc = cuda->device_count(&count);
    const char *why = cuda->last_error();
    if (self_test) {
        if (rc != 0) {
            result(rc == 35 || rc == 100, "device_count: no-device error", "code %d, count %d: %s", rc, count, why);
            result(why && why[0] != 0 && count == 0, "last_error text", "\"%s\"", why);
            const zt_backend_api *api = NULL;
            int devices = -1;
            char err[512];
            int lr = zt_cuda_load(lib_path, &api, &devices, err, sizeof err);
            result(lr == -1 && api == NULL && strncmp(err, "no CUDA device", 14) == 0, "zt_cuda_load refuses cleanly", "%s", err);
            // Entry points fail cleanly (no crash) without a device.
            void *p = (void *)1;
            size_t f = 1, t = 1;
            char nm[64];
            int m1 = cuda->malloc(&p, 1024), m2 = cuda->mem_info(&f, &t), m3 = cuda->synchronize();
            int m4 = cuda->device_name(0, nm, sizeof nm), m5 = cuda->memset((void *)0, 0, 16);
            int m6 = cuda->sgemm(0, 0, 4, 4, 4, 1.0f, NULL, 4, NULL, 4, 0.0f, NULL, 4);
            int m7 = cuda->newton_schulz(NULL, NULL, 4, 4, 5, NS_QUINTIC, 1, NULL);
            int m8 = cuda->newton_schulz_batched(NULL, NULL, 3, 4, 4, 5, NS_QUINTIC, 1, NULL);
            double red = -1;
            int m9 = cuda->sum_squares(NULL, 16, &red), m10 = cuda->gemm_half(1, 4, 4, 4, 1.0f, NULL, 4, NULL, ZT_BF16, 4, 0.0f, NULL, 4, NULL);
            const zt_jaguar_args ja = {.rows = 4, .cols = 4, .k_rows = 1, .k_cols = 1};
            cuda->jaguar_probe(NULL, ZT_F32, 0, 1, 1, &ja, 1.0f);
            cuda->jaguar_update(ZT_JAGUAR_SIGN, NULL, ZT_F32, NULL, 0, 1, 1, &ja);
            cuda->add_scaled(NULL, ZT_F32, 16, 1.0f, NULL);
            cuda->perturb(NULL, ZT_F32, 16, 0, 1, 1, 0, 1.0f);
            const zt_zo_update_args za = zo_args(ZT_ZO_ADAM, 1, 1, 1e-3f);
            cuda->zo_update(ZT_ZO_ADAM, NULL, ZT_F32, NULL, NULL, 16, 0, 1, 1, 0, &za);
            cuda->perturb_hessian(NULL, ZT_F32, NULL, 16, 0, 1, 1, 0, 1.0f);
            cuda->attention(NULL, NULL, NULL, NULL, NULL, 1, 1, 1, 1, 1, 1, 8, 1.0f, 0, 0.0f);
            cuda->attention(NULL, NULL, NULL, NULL, NULL, 1, 1, 1, 1, 1, 1, 8, 1.0f, 0, 50.0f);
            cuda->softcap(NULL, 16, 30.0f);
            int64_t e1 = cuda->embedding(NULL, NULL, ZT_F32, 10, 4, NULL, 3, 1);
            int64_t e2 = cuda->dequantize_rows(NULL, ZT_F32, NULL, ZT_GGML_Q4_1, 4, 32, NULL, 4, 1);
            result(m1 && p == NULL && m2 && m3 && m4 && m5 && m6 && m7 && m8 && m9 && red == 0 && m10 && e1 == -1 && e2 == -1,
                   "entry points fail cleanly without a GPU",
                   "malloc %d, mem_info %d, synchronize %d, device_name %d, memset %d, sgemm %d, NS %d, NS batched %d, "
                   "sum_squares %d, gemm_half %d, embedding %lld, dequantize %lld",
                   m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, (long long)e1, (long long)e2);
            uint64_t gr = 5;
            const int g1 = cuda->graph_begin(), g2 = cuda->graph_end(&gr), g3 = cuda->graph_launch(1);
            const int g4 = cuda->rmsnorm_half(NULL, NULL, ZT_BF16, NULL, NULL, 2, 8, 1e-5f), g5 = cuda->swiglu_half(NULL, NULL, ZT_BF16, NULL, NULL, 8);
            result(g1 && g2 && gr == 0 && g3 && g4 && g5, "ABI 11 entries fail cleanly without a GPU",
                   "graph_begin %d, graph_end %d (graph %llu), graph_launch %d, rmsnorm_half %d, swiglu_half %d", g1, g2,
                   (unsigned long long)gr, g3, g4, g5);
            const int a1 = cuda->layernorm_half(NULL, NULL, ZT_BF16, NULL, NULL, NULL, 2, 8, 1e-5f);
            const int a2 = cuda->activation_half(ZT_ACT_GELU_TANH, NULL, NULL, ZT_BF16, NULL, NULL, 8);
            const int a3 = cuda->attention_half(NULL, NULL, ZT_BF16, NULL, NULL, NULL, NULL, 1, 1, 1, 1, 1, 1, 8, 1.0f, 0, 0.0f);
            result(a1 && a2 && a3, "ABI 12 entries fail cleanly without a GPU", "layernorm_half %d, activation_half %d, attention_half %d",
                   a1, a2, a3);
        } else {
            printf("  a CUDA device is present (%d): run check.sh without --self-test for the device checks\n", count);
        }
        cpu_checks();
        // Dry run of every device check on the host table.
        printf("\n-- dry run of the device checks on the host table (emulated stream kernels, CPU kernels)\n");
        G = &host_table;
        g_philox = host_debug_philox;
        g_dry = 1;
        run_device_checks();
        return finish(t0);
    }

    // Full run: through the Swift backend's loader.
    const zt_backend_api *api = NULL;
    int devices = 0;
    char err[512];
    if (zt_cuda_load(lib_path, &api, &devices, err, sizeof err) != 0) {
        result(0, "zt_cuda_load", "%s", err);
        return finish(t0);
    }
    G = api;
    dcheck(G->set_device(0), "set_device");
    char name[256];
    size_t f = 0, t = 0;
    dcheck(G->device_name(0, name, sizeof name), "device_name");
    dcheck(G->mem_info(&f, &t), "mem_info");
    printf("  device 0 of %d: %s, %.1f / %.1f GiB free\n", devices, name, f / 1073741824.0, t / 1073741824.0);
    if (!g_philox) return finish(t0);
    cpu_checks();
    run_device_checks();
    // the library reports kernel errors at synchronize; none may be pending
    result(G->synchronize() == 0, "no pending device error", "%s", G->last_error());
    return finish(t0);
}
