// Timing harness shared by the single-kernel CPU benchmarks (bench/gemm_kernel.c,
// bench/attention_kernel.c): clocks, a fixed-seed input generator, the median of a run of timings and
// the largest difference between two kernels' outputs.
#ifndef BENCH_TIMING_H
#define BENCH_TIMING_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static inline double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// CPU seconds of every thread of the process: on a machine shared with other work a variant's
// cost shows here even when the wall clock mostly measures the other processes' time slices.
static inline double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// n uniform floats in [-1, 1) from a 64-bit LCG: the same inputs on every machine and run.
static inline float *randoms(int64_t n, uint64_t *state) {
    float *x = malloc(n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((*state >> 40) * 0x1p-24) * 2.0f - 1.0f;
    }
    return x;
}

// The median of t[0..n) (sorted in place): one slow call, another process's time slice, moves it little.
static inline double median(double *t, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) { double s = t[j]; t[j] = t[j - 1]; t[j - 1] = s; }
    return t[n / 2];
}

static inline float max_abs_diff(const float *a, const float *b, int64_t n) {
    float d = 0;
    for (int64_t i = 0; i < n; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

#endif
