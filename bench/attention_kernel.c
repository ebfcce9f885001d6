// CPU attention kernel timing (zt_attention alone, no Swift): ms per call at SmolLM2-135M's shape
// (Hq 9, Hkv 3, D 64) for long prefill, batched prefill, short rows and a T = 1 decode step.
//   bench/attention_kernel.sh            (builds this with the kernel sources, runs it)
// Define ZT_ATTENTION_OTHER=name and link a second kernel under that name to time both in one
// process (same machine state) and print their largest output difference (ZT_ATTENTION_OTHER_NO_SOFTCAP:
// it is a kernel from before the softcap argument, timed through a wrapper). SOFTCAP=c in the
// environment times both with Gemma 2's score soft-capping at c (default 0: none).
#include "zt_cpu.h"
#include "zt_threads.h"
#include "bench_timing.h"

#include <stdio.h>

typedef void (*attn_fn)(float *, const float *, const float *, const float *, const uint8_t *, int64_t, int64_t,
                        int64_t, int64_t, int64_t, int64_t, int64_t, float, int64_t, float);

#ifdef ZT_ATTENTION_OTHER
#ifdef ZT_ATTENTION_OTHER_NO_SOFTCAP
void ZT_ATTENTION_OTHER(float *out, const float *q, const float *k, const float *v, const uint8_t *key_mask,
                        int64_t B, int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv, int64_t D,
                        float scale, int64_t window);
static void other(float *out, const float *q, const float *k, const float *v, const uint8_t *key_mask, int64_t B,
                  int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv, int64_t D, float scale, int64_t window,
                  float softcap) {
    (void)softcap;  // an older kernel: no soft-capping
    ZT_ATTENTION_OTHER(out, q, k, v, key_mask, B, T, S, S_cap, Hq, Hkv, D, scale, window);
}
#else
void ZT_ATTENTION_OTHER(float *out, const float *q, const float *k, const float *v, const uint8_t *key_mask,
                        int64_t B, int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv, int64_t D,
                        float scale, int64_t window, float softcap);
#define other ZT_ATTENTION_OTHER
#endif
#endif

static float g_softcap;

// Median wall and CPU ms (all threads) of `reps` calls of each kernel after a warm-up; calls
// alternate between the kernels so that load from other processes falls on both alike.
static void time_ms(attn_fn f[2], int nf, float *out[2], const float *q, const float *k, const float *v, int64_t B,
                    int64_t T, int64_t S, int reps, double ms[2], double cpu[2]) {
    double t[2][2][256];
    for (int i = 0; i < nf; i++) f[i](out[i], q, k, v, NULL, B, T, S, S, 9, 3, 64, 0.125f, 0, g_softcap);
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < nf; i++) {
            const double t0 = now(), c0 = cpu_now();
            f[i](out[i], q, k, v, NULL, B, T, S, S, 9, 3, 64, 0.125f, 0, g_softcap);
            t[i][0][r] = (now() - t0) * 1e3;
            t[i][1][r] = (cpu_now() - c0) * 1e3;
        }
    for (int i = 0; i < nf; i++) {
        ms[i] = median(t[i][0], reps);
        cpu[i] = median(t[i][1], reps);
    }
}

int main(int argc, char **argv) {
    if (argc > 1) zt_set_num_threads(atoi(argv[1]));
    if (getenv("SOFTCAP")) g_softcap = (float)atof(getenv("SOFTCAP"));
    // REPS=k: k times the calls per shape (at most 250), for ratios on a busy machine.
    const int more = getenv("REPS") && atoi(getenv("REPS")) > 0 ? atoi(getenv("REPS")) : 1;
    const int64_t shapes[][3] = {{1, 2048, 2048}, {4, 512, 512}, {16, 64, 64}, {1, 1, 2048}, {16, 1, 512}};
    printf("threads %d, Hq 9 Hkv 3 D 64, softcap %g, median ms per call\n", zt_num_threads(), g_softcap);
    printf("%-22s%10s%10s%10s", "shape", "ms", "CPU ms", "GFLOP/s");
#ifdef ZT_ATTENTION_OTHER
    printf("%10s%10s%8s%8s%12s", "other ms", "CPU ms", "ratio", "CPU", "max |diff|");
#endif
    printf("\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t B = shapes[s][0], T = shapes[s][1], S = shapes[s][2];
        uint64_t st = 42 + s;
        float *q = randoms(B * T * 9 * 64, &st), *k = randoms(B * S * 3 * 64, &st), *v = randoms(B * S * 3 * 64, &st);
        float *out[2] = {malloc(B * T * 9 * 64 * sizeof(float)), malloc(B * T * 9 * 64 * sizeof(float))};
        int reps = (T == 1 ? 51 : (T * S > 1000000 ? 7 : 21)) * more;
        if (reps > 250) reps = 250;
        // Causal multiply-adds: each query row sees S − T + t + 1 keys, twice D of them per key.
        double pairs = (double)B * 9 * (T * (S - T) + T * (T + 1) / 2.0);
        const double flop = pairs * 64 * 4;
#ifdef ZT_ATTENTION_OTHER
        attn_fn f[2] = {zt_attention, other};
        const int nf = 2;
#else
        attn_fn f[2] = {zt_attention, zt_attention};
        const int nf = 1;
#endif
        double ms[2], cpu[2];
        time_ms(f, nf, out, q, k, v, B, T, S, reps, ms, cpu);
        char name[64];
        snprintf(name, sizeof name, "B%lld T%lld S%lld", (long long)B, (long long)T, (long long)S);
        printf("%-22s%10.3f%10.3f%10.1f", name, ms[0], cpu[0], flop / ms[0] * 1e-6);
#ifdef ZT_ATTENTION_OTHER
        printf("%10.3f%10.3f%8.3f%8.3f%12.2e", ms[1], cpu[1], ms[1] / ms[0], cpu[1] / cpu[0],
               max_abs_diff(out[0], out[1], B * T * 9 * 64));
#endif
        printf("\n");
        free(q); free(k); free(v); free(out[0]); free(out[1]);
    }
    return 0;
}
