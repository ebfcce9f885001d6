// The CPU's elementwise kernels alone (Kernels/cpu/elementwise.c) at a SmolLM2 1 × 2048 forward's
// sizes, called in place as the forward calls them (SwiGLU into up, the residual add into x, the
// activation into its input) and out of place: median ms of each, and whether the in-place result
// has the out-of-place bits. With a second elementwise.c (bench/elementwise_kernel.sh OTHER.c) its
// in-place calls are timed alternately in the same process and their bits compared too.
#include "zt_cpu.h"
#include "zt_threads.h"
#include "bench_timing.h"

#include <stdio.h>
#include <string.h>

#ifdef ZT_EW_OTHER
void zt_swiglu_other(float *out, const float *gate, const float *up, int64_t n);
void zt_add_other(float *out, const float *a, const float *b, int64_t n);
void zt_silu_other(float *out, const float *x, int64_t n);
void zt_gelu_erf_other(float *out, const float *x, int64_t n);
#define VARIANTS 2
#else
#define VARIANTS 1
#endif

typedef void (*binary_fn)(float *, const float *, const float *, int64_t);
typedef void (*unary_fn)(float *, const float *, int64_t);

int main(int argc, char **argv) {
    if (argc > 1) zt_set_num_threads(atoi(argv[1]));
    struct { const char *name; binary_fn bin[2]; unary_fn un[2]; int64_t n; } ops[] = {
#ifdef ZT_EW_OTHER
        {"swiglu (out = up)", {zt_swiglu, zt_swiglu_other}, {0, 0}, 2048 * 1536},
        {"add (out = x)", {zt_add, zt_add_other}, {0, 0}, 2048 * 576},
        {"silu (out = x)", {0, 0}, {zt_silu, zt_silu_other}, 2048 * 1536},
        {"gelu_erf (out = x)", {0, 0}, {zt_gelu_erf, zt_gelu_erf_other}, 2048 * 3072},
#else
        {"swiglu (out = up)", {zt_swiglu, 0}, {0, 0}, 2048 * 1536},
        {"add (out = x)", {zt_add, 0}, {0, 0}, 2048 * 576},
        {"silu (out = x)", {0, 0}, {zt_silu, 0}, 2048 * 1536},
        {"gelu_erf (out = x)", {0, 0}, {zt_gelu_erf, 0}, 2048 * 3072},
#endif
    };
    printf("threads %d, median ms of 9 calls (wall; CPU: all threads)\n", zt_num_threads());
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        const int64_t n = ops[k].n;
        uint64_t st = 5 + k;
        float *a = randoms(n, &st), *b = randoms(n, &st), *y = malloc(n * 4), *ref = malloc(n * 4);
        for (int64_t i = 0; i < n; i++) a[i] *= 6.0f;
        // The out-of-place result of this tree, then each variant in place on a copy of its input.
        if (ops[k].bin[0]) ops[k].bin[0](ref, b, a, n); else ops[k].un[0](ref, a, n);
        double t[3][9], c[3][9];
        int same[2] = {1, 1};
        for (int r = 0; r < 9; r++)
            for (int v = 0; v <= VARIANTS; v++) {   // v = VARIANTS: this tree out of place
                const int inplace = v < VARIANTS, f = inplace ? v : 0;
                memcpy(y, a, n * 4);
                const double w0 = now(), c0 = cpu_now();
                if (ops[k].bin[f]) ops[k].bin[f](inplace ? y : ref, b, inplace ? y : a, n);
                else ops[k].un[f](inplace ? y : ref, inplace ? y : a, n);
                t[v][r] = (now() - w0) * 1e3;
                c[v][r] = (cpu_now() - c0) * 1e3;
                if (inplace && memcmp(y, ref, n * 4)) same[v] = 0;
            }
        printf("%-20s %8lld: in place %7.2f ms (CPU %7.2f)  out of place %7.2f ms (CPU %7.2f)  in-place bits %s", ops[k].name, (long long)n,
               median(t[0], 9), median(c[0], 9), median(t[VARIANTS], 9), median(c[VARIANTS], 9), same[0] ? "= out of place" : "DIFFER");
#ifdef ZT_EW_OTHER
        printf(" | other in place %7.2f ms (CPU %7.2f), other/this %.2fx CPU, bits %s", median(t[1], 9), median(c[1], 9),
               median(c[1], 9) / median(c[0], 9), same[1] ? "same" : "DIFFER");
#endif
        printf("\n");
        free(a); free(b); free(y); free(ref);
    }
    return 0;
}
