// The CPU's vocabulary-wide row kernels alone (Kernels/cpu/rows.c): target log-probs (the LM loss of
// pre-training and of LM-objective fine-tuning), log-softmax, softmax and the streamed log-sum-exp
// over column panels, at SmolLM2's vocabulary (49 152) and the row counts training uses. With a
// second rows.c (bench/rows_kernel.sh OTHER.c) each shape is timed for both, alternating, in one
// process: the ratio other / this and the largest difference of their outputs.
#include "zt_cpu.h"
#include "zt_threads.h"
#include "bench_timing.h"

#include <stdio.h>
#include <string.h>

#ifdef ZT_ROWS_OTHER
void zt_token_logprobs_other(float *out, const float *x, const int32_t *targets, int64_t rows, int64_t dim);
void zt_log_softmax_other(float *out, const float *x, int64_t rows, int64_t dim);
void zt_softmax_other(float *out, const float *x, int64_t rows, int64_t dim);
void zt_logsumexp_panel_other(float *state, const float *x, int64_t ldx, const int32_t *targets, int64_t rows, int64_t cols, int64_t col0);
#endif

enum { TOKEN_LOGPROBS, LOG_SOFTMAX, SOFTMAX, PANELS };
static const char *names[] = {"token_logprobs", "log_softmax", "softmax", "logsumexp_panel x12"};

// One call of op on (rows, dim); out holds rows (token_logprobs), 3·rows (panels) or rows·dim floats.
static void call(int op, int other, float *out, const float *x, const int32_t *tg, int64_t rows, int64_t dim) {
#ifndef ZT_ROWS_OTHER
    (void)other;
#define PICK(f) f
#else
#define PICK(f) (other ? f##_other : f)
#endif
    switch (op) {
    case TOKEN_LOGPROBS: PICK(zt_token_logprobs)(out, x, tg, rows, dim); break;
    case LOG_SOFTMAX: PICK(zt_log_softmax)(out, x, rows, dim); break;
    case SOFTMAX: PICK(zt_softmax)(out, x, rows, dim); break;
    case PANELS: {   // the head's 12 panels of 4 096 columns, as the LM loss streams them
        for (int64_t r = 0; r < rows; r++) { out[3 * r] = -INFINITY; out[3 * r + 1] = 0; out[3 * r + 2] = 0; }
        for (int64_t c0 = 0; c0 < dim; c0 += 4096)
            PICK(zt_logsumexp_panel)(out, x + c0, dim, tg, rows, dim - c0 < 4096 ? dim - c0 : 4096, c0);
        break;
    }
    }
}

int main(int argc, char **argv) {
    if (argc > 1) zt_set_num_threads(atoi(argv[1]));
    const int64_t dim = 49152, shapes[][2] = {{TOKEN_LOGPROBS, 1024}, {PANELS, 1024}, {TOKEN_LOGPROBS, 16}, {LOG_SOFTMAX, 256}, {SOFTMAX, 256}};
    uint64_t seed = 7;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int op = (int)shapes[s][0];
        const int64_t rows = shapes[s][1], n = rows * dim, outs = op == TOKEN_LOGPROBS ? rows : op == PANELS ? 3 * rows : n;
        float *x = randoms(n, &seed);
        for (int64_t i = 0; i < n; i++) x[i] *= 12.0f;   // logits of a trained LM span ~±12
        int32_t *tg = malloc(rows * sizeof(int32_t));
        for (int64_t r = 0; r < rows; r++) tg[r] = (int32_t)((r * 7919) % dim);
        float *a = malloc(outs * sizeof(float)), *b = malloc(outs * sizeof(float));
        const int reps = rows >= 256 ? 5 : 50;
        double t[2][64], c[2][64];
        for (int k = 0; k < reps; k++)
            for (int v = 0; v < 2; v++) {
#ifndef ZT_ROWS_OTHER
                if (v == 1) { t[1][k] = c[1][k] = 0; continue; }
#endif
                double w0 = now(), c0 = cpu_now();
                call(op, v, v ? b : a, x, tg, rows, dim);
                t[v][k] = now() - w0;
                c[v][k] = cpu_now() - c0;
            }
        const double tw = median(t[0], reps) * 1e3, tc = median(c[0], reps) * 1e3;
        printf("%-20s %5lld x %lld: this %8.2f ms wall %8.2f ms CPU", names[op], (long long)rows, (long long)dim, tw, tc);
#ifdef ZT_ROWS_OTHER
        const double ow = median(t[1], reps) * 1e3, oc = median(c[1], reps) * 1e3;
        printf(" | other %8.2f ms wall %8.2f ms CPU | other/this %.2fx wall %.2fx CPU | max |diff| %.3g", ow, oc, ow / tw, oc / tc,
               max_abs_diff(a, b, outs));
#endif
        printf("\n");
        free(x); free(tg); free(a); free(b);
    }
    return 0;
}
