// Deterministic multi-block Σx² and Σ(a − b)² in double (sum_squares, squared_distance, the
// Newton–Schulz norm): the partition, each thread's order and the trees, as host-and-device code.
// reduce.cu runs it on the GPU; bench/device/emulate.cpp compiles the same text with g++
// -ffp-contract=off, so the emulation sums in exactly the device's order (the same bits).
//
// The partition depends on n alone, never on the device (SM count) or on which block ran first:
//   P = clamp(ceil(n / ZT_RED_MIN_CHUNK), 1, ZT_RED_BLOCKS) blocks, block b sums the chunk
//   [b·C, min(n, (b + 1)·C)) with C = ceil(n / P) rounded up to 32; thread t of a block adds the
//   elements t, t + T, t + 2T, … of its chunk in that order into one double; the T thread sums
//   are added by a fixed pairwise tree (t += t + w for w = T/2 … 1), and the P block sums
//   (zero-padded to ZT_RED_BLOCKS) by the same tree in a second kernel.
// Every add and multiply is one IEEE double operation (__d*_rn on the device, never contracted
// into an FMA). All terms are ≥ 0, so the result is within γ_L·Σ of the exact sum, L the longest
// chain of adds an element goes through: ceil(C / T) + log2 T + log2 ZT_RED_BLOCKS, plus 3 for the
// term itself (the difference's rounding counts twice once squared, the square once): zt_red_depth(n).
#ifndef ZT_CUDA_REDUCE_CUH
#define ZT_CUDA_REDUCE_CUH

#include "numerics.cuh"

#define ZT_RED_THREADS 256    // threads per block (a power of two: the tree)
#define ZT_RED_BLOCKS 512     // most blocks per reduction (a power of two: the second tree)
#define ZT_RED_MIN_CHUNK 4096 // fewest elements per block: small n takes few blocks
#define ZT_RED_UNROLL 8       // loads a thread issues before adding them (in order)

#if defined(__CUDA_ARCH__)
#define ZT_RED_PRAGMA_UNROLL _Pragma("unroll")
#else
#define ZT_RED_PRAGMA_UNROLL
#endif

// Blocks and chunk length of a reduction over n elements.
ZT_HD void zt_red_partition(int64_t n, int64_t *blocks, int64_t *chunk) {
    int64_t p = (n + ZT_RED_MIN_CHUNK - 1) / ZT_RED_MIN_CHUNK;
    if (p > ZT_RED_BLOCKS) p = ZT_RED_BLOCKS;
    if (p < 1) p = 1;
    const int64_t c = (n + p - 1) / p;
    *blocks = p;
    *chunk = (c + 31) / 32 * 32;
}

// Longest chain of double roundings a term goes through (the error bound above, in units of 2⁻⁵³).
ZT_HD int64_t zt_red_depth(int64_t n) {
    int64_t p, c;
    zt_red_partition(n, &p, &c);
    int64_t l = (c + ZT_RED_THREADS - 1) / ZT_RED_THREADS + 3;
    for (int w = ZT_RED_THREADS; w > 1; w >>= 1) l++;
    for (int w = ZT_RED_BLOCKS; w > 1; w >>= 1) l++;
    return l;
}

ZT_HD double zt_dadd(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __dadd_rn(a, b);
#else
    return a + b;
#endif
}
ZT_HD double zt_dmul(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __dmul_rn(a, b);
#else
    return a * b;
#endif
}
ZT_HD double zt_dsub(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __dsub_rn(a, b);
#else
    return a - b;
#endif
}

// The term of element i: a² or (a − b)², a and b widened exactly to double.
template <int DT, bool DIFF>
ZT_HD double zt_red_term(const void *a, const void *b, int64_t i) {
    const double v = DIFF ? zt_dsub((double)zt_ld<DT>(a, i), (double)zt_ld<DT>(b, i)) : (double)zt_ld<DT>(a, i);
    return zt_dmul(v, v);
}

// Thread t's sum over its elements of [s, e) (a block's chunk), in index order. The loads of
// ZT_RED_UNROLL elements are issued before their adds; the adds stay in the same order.
template <int DT, bool DIFF>
ZT_HD double zt_red_thread(const void *a, const void *b, int64_t s, int64_t e, int t) {
    double acc = 0.0;
    int64_t i = s + t;
    const int64_t T = ZT_RED_THREADS;
    for (; i + (ZT_RED_UNROLL - 1) * T < e; i += ZT_RED_UNROLL * T) {
        double v[ZT_RED_UNROLL];
ZT_RED_PRAGMA_UNROLL
        for (int k = 0; k < ZT_RED_UNROLL; k++) v[k] = zt_red_term<DT, DIFF>(a, b, i + k * T);
ZT_RED_PRAGMA_UNROLL
        for (int k = 0; k < ZT_RED_UNROLL; k++) acc = zt_dadd(acc, v[k]);
    }
    for (; i < e; i += T) acc = zt_dadd(acc, zt_red_term<DT, DIFF>(a, b, i));
    return acc;
}

// One level of the pairwise tree over part[0, 2w): part[t] += part[t + w] for t < w.
ZT_HD void zt_red_tree_level(double *part, int w, int t) {
    if (t < w) part[t] = zt_dadd(part[t], part[t + w]);
}

#endif
