// CPU SGEMM timing (zt_sgemm alone, no Swift) at SmolLM2-135M's forward shapes: x (M, K) · Wᵀ with
// W stored (N, K) as the model stores it, M = 1,024 and 2,048 token rows (16 × 64; 4 × 512 and
// 1 × 2048). Prints ms and GFLOP/s per shape and the forward's GEMM seconds at each M: the
// same-run SGEMM ceiling that bench/forward.sh's figures are read against.
//   bench/gemm_kernel.sh [THREADS] [OTHER.c]
// Define ZT_GEMM_OTHER and link a second gemm.c whose zt_sgemm is renamed zt_sgemm_other to time
// both in one process (calls alternating) and print their largest output difference.
#include "zt_cpu.h"
#include "zt_threads.h"
#include "bench_timing.h"

#include <stdio.h>

typedef void (*gemm_fn)(int, int, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *, int64_t,
                        float, float *, int64_t);
#ifdef ZT_GEMM_OTHER
void zt_sgemm_other(int, int, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *, int64_t, float,
                    float *, int64_t);
#endif

int main(int argc, char **argv) {
    if (argc > 1) zt_set_num_threads(atoi(argv[1]));
    // SmolLM2-135M: hidden 576, q/k/v 960 wide as one GEMM, MLP 1,536, vocabulary 49,152; per
    // layer (×30) q/k/v, o, gate, up, down, then the head once.
    const struct { const char *name; int64_t N, K, count; } shapes[] = {
        {"qkv", 960, 576, 30}, {"o", 576, 576, 30}, {"gate|up", 1536, 576, 60}, {"down", 576, 1536, 30}, {"head", 49152, 576, 1}};
    const int64_t Ms[] = {1024, 2048};
#ifdef ZT_GEMM_OTHER
    gemm_fn f[2] = {zt_sgemm, zt_sgemm_other};
    const int nf = 2;
#else
    gemm_fn f[2] = {zt_sgemm, zt_sgemm};
    const int nf = 1;
#endif
    printf("threads %d, C (M, N) = x (M, K) · Wᵀ, median ms per call (wall; CPU: all threads)\n", zt_num_threads());
    printf("%-16s%10s%10s%10s", "shape", "ms", "CPU ms", "GFLOP/s");
    if (nf == 2) printf("%10s%10s%8s%8s%12s", "other ms", "CPU ms", "ratio", "CPU", "max |diff|");
    printf("\n");
    for (size_t m = 0; m < sizeof Ms / sizeof Ms[0]; m++) {
        const int64_t M = Ms[m];
        double total[2][2] = {{0, 0}, {0, 0}}, flops = 0;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int64_t N = shapes[s].N, K = shapes[s].K;
            uint64_t st = 7 + s;
            float *x = randoms(M * K, &st), *w = randoms(N * K, &st);
            float *c[2] = {malloc(M * N * sizeof(float)), malloc(M * N * sizeof(float))};
            const int reps = N > 10000 ? 5 : 15;
            double t[2][2][16];
            for (int i = 0; i < nf; i++) f[i](0, 1, M, N, K, 1, x, K, w, K, 0, c[i], N);
            for (int r = 0; r < reps; r++)
                for (int i = 0; i < nf; i++) {
                    const double t0 = now(), c0 = cpu_now();
                    f[i](0, 1, M, N, K, 1, x, K, w, K, 0, c[i], N);
                    t[i][0][r] = (now() - t0) * 1e3;
                    t[i][1][r] = (cpu_now() - c0) * 1e3;
                }
            double ms[2][2];
            for (int i = 0; i < nf; i++)
                for (int j = 0; j < 2; j++) {
                    ms[i][j] = median(t[i][j], reps);
                    total[i][j] += ms[i][j] * shapes[s].count;
                }
            const double flop = 2.0 * M * N * K;
            flops += flop * shapes[s].count;
            char name[64];
            snprintf(name, sizeof name, "%s M%lld", shapes[s].name, (long long)M);
            printf("%-16s%10.3f%10.3f%10.1f", name, ms[0][0], ms[0][1], flop / ms[0][0] * 1e-6);
            if (nf == 2) {
                printf("%10.3f%10.3f%8.3f%8.3f%12.2e", ms[1][0], ms[1][1], ms[1][0] / ms[0][0], ms[1][1] / ms[0][1],
                       max_abs_diff(c[0], c[1], M * N));
            }
            printf("\n");
            free(x); free(w); free(c[0]); free(c[1]);
        }
        printf("forward GEMMs at M %lld: %.0f GFLOP, %.3f s (CPU %.3f s), %.1f GFLOP/s", (long long)M, flops * 1e-9,
               total[0][0] * 1e-3, total[0][1] * 1e-3, flops / total[0][0] * 1e-6);
        if (nf == 2) printf("; other %.3f s (CPU %.3f s; ratios %.3f, CPU %.3f)", total[1][0] * 1e-3, total[1][1] * 1e-3,
                            total[1][0] / total[0][0], total[1][1] / total[0][1]);
        printf("\n");
    }
    return 0;
}
