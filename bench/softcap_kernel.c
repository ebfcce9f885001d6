// Gemma 2 soft-capping on the CPU, timed alone (no Swift): zt_attention with softcap 50 at Gemma 2
// 2B's attention shape (Hq 8, Hkv 4, D 256, scale 1/16), zt_softcap on final logits (cap 30,
// vocab 256 000) and zt_gelu_tanh on a Gemma 2B MLP's gate (1024 x 16 384), this tree's kernels
// against the same sources built with libm's tanhf (ZT_TANH_LIBM, symbols renamed *_libm by
// bench/softcap_kernel.sh), calls alternating so that
// load from other processes falls on both alike; and each kernel's uncapped attention time, for the
// cost of the cap. Median ms per call and the largest output difference between the two builds.
//   bench/softcap_kernel.sh [THREADS] [gelu]   (gelu: the GELU rows only)
#include "zt_cpu.h"
#include "zt_threads.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void zt_attention_libm(float *out, const float *q, const float *k, const float *v, const uint8_t *key_mask,
                       int64_t B, int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv, int64_t D,
                       float scale, int64_t window, float softcap);
void zt_softcap_libm(float *x, int64_t n, float cap);
void zt_gelu_tanh_libm(float *out, const float *x, int64_t n);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *randoms(int64_t n, uint64_t *state, float range) {
    float *x = malloc(n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = ((float)((*state >> 40) * 0x1p-24) * 2.0f - 1.0f) * range;
    }
    return x;
}

static int cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float maxdiff(const float *a, const float *b, int64_t n) {
    float d = 0;
    for (int64_t i = 0; i < n; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

#define HQ 8
#define HKV 4
#define D 256

int main(int argc, char **argv) {
    if (argc > 1) zt_set_num_threads(atoi(argv[1]));
    const int gelu_only = argc > 2 && strcmp(argv[2], "gelu") == 0;
    printf("threads %d; attention Hq %d Hkv %d D %d scale 1/16 softcap 50; median ms per call\n", zt_num_threads(), HQ,
           HKV, D);
    printf("%-20s%11s%11s%9s%11s%11s%13s\n", "shape", "libm ms", "fast ms", "speedup", "no cap ms", "cap cost",
           "max |diff|");
    // Prefill of 2048 (4096 is Gemma 2's window: every key in it), a 4 × 512 batch, 16 × 64 rows, a decode step.
    const int64_t shapes[][3] = {{1, 2048, 2048}, {4, 512, 512}, {16, 64, 64}, {1, 1, 2048}};
    for (size_t s = 0; !gelu_only && s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t B = shapes[s][0], T = shapes[s][1], S = shapes[s][2], nq = B * T * HQ * D, nkv = B * S * HKV * D;
        uint64_t st = 7 + s;
        // q in [−2, 2), k in [−1, 1): scores up to ±32, spread around Gemma 2's cap.
        float *q = randoms(nq, &st, 2), *k = randoms(nkv, &st, 1), *v = randoms(nkv, &st, 1);
        float *out[3] = {malloc(nq * 4), malloc(nq * 4), malloc(nq * 4)};
        const int reps = T == 1 ? 41 : (T * S > 1000000 ? 7 : 15);
        double t[3][64];
        for (int r = -1; r < reps; r++)  // r = −1: warm-up
            for (int i = 0; i < 3; i++) {
                const double t0 = now();
                if (i == 0) zt_attention_libm(out[0], q, k, v, NULL, B, T, S, S, HQ, HKV, D, 0.0625f, 0, 50.0f);
                else zt_attention(out[i], q, k, v, NULL, B, T, S, S, HQ, HKV, D, 0.0625f, 0, i == 1 ? 50.0f : 0.0f);
                if (r >= 0) t[i][r] = (now() - t0) * 1e3;
            }
        double ms[3];
        for (int i = 0; i < 3; i++) {
            qsort(t[i], reps, sizeof(double), cmp);
            ms[i] = t[i][reps / 2];
        }
        char name[64];
        snprintf(name, sizeof name, "B%lld T%lld S%lld", (long long)B, (long long)T, (long long)S);
        printf("%-20s%11.3f%11.3f%8.2fx%11.3f%10.2fx%13.2e\n", name, ms[0], ms[1], ms[0] / ms[1], ms[2], ms[1] / ms[2],
               maxdiff(out[0], out[1], nq));
        free(q); free(k); free(v);
        for (int i = 0; i < 3; i++) free(out[i]);
    }
    // Final logits: 64 positions × Gemma 2's 256 000 vocab, logits in [−60, 60), cap 30.
    const int64_t n = 64 * 256000;
    uint64_t st = 99;
    float *x0 = randoms(n, &st, 60), *x[2] = {malloc(n * 4), malloc(n * 4)};
    const int reps = 15;
    double t[2][64];
    for (int r = -1; !gelu_only && r < reps; r++)
        for (int i = 0; i < 2; i++) {
            memcpy(x[i], x0, n * 4);
            const double t0 = now();
            if (i == 0) zt_softcap_libm(x[0], n, 30.0f);
            else zt_softcap(x[1], n, 30.0f);
            if (r >= 0) t[i][r] = (now() - t0) * 1e3;
        }
    for (int i = 0; !gelu_only && i < 2; i++) qsort(t[i], reps, sizeof(double), cmp);
    if (!gelu_only) printf("\nzt_softcap, 64 x 256000 logits, cap 30: libm %.3f ms, fast %.3f ms, %.2fx; max |diff| %.2e\n",
           t[0][reps / 2], t[1][reps / 2], t[0][reps / 2] / t[1][reps / 2], maxdiff(x[0], x[1], n));
    free(x0); free(x[0]); free(x[1]);
    // The GeGLU gate of a Gemma 2B MLP (intermediate 16 384) over a 16 × 64 batch: 1024 rows, inputs in
    // [−6, 6) (gate pre-activations; below −5.16 the result is −0 in both builds).
    const int64_t ng = 1024 * 16384;
    st = 123;
    float *g0 = randoms(ng, &st, 6), *g[2] = {malloc(ng * 4), malloc(ng * 4)};
    double tg[2][64];
    for (int r = -1; r < reps; r++)
        for (int i = 0; i < 2; i++) {
            const double t0 = now();
            if (i == 0) zt_gelu_tanh_libm(g[0], g0, ng);
            else zt_gelu_tanh(g[1], g0, ng);
            if (r >= 0) tg[i][r] = (now() - t0) * 1e3;
        }
    for (int i = 0; i < 2; i++) qsort(tg[i], reps, sizeof(double), cmp);
    printf("zt_gelu_tanh, 1024 x 16384 (Gemma 2B MLP gate, 16 x 64 tokens): libm %.3f ms, fast %.3f ms, %.2fx; max |diff| %.2e\n",
           tg[0][reps / 2], tg[1][reps / 2], tg[0][reps / 2] / tg[1][reps / 2], maxdiff(g[0], g[1], ng));
    free(g0); free(g[0]); free(g[1]);
    return 0;
}
