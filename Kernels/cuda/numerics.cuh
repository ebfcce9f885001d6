// Element math of the kernels whose results must be bit-identical to the CPU kernels: f16/bf16
// conversions and the perturbation-stream ops (perturb, restore+update, perturbed copy,
// fill_normal, convert, replay_step, the fused ZO optimizer updates and HiZOO's probe), one Philox
// block (4 elements) at a time.
//
// Host-and-device code with no CUDA runtime dependency: nvcc compiles it into the kernels, and the
// device harness (bench/device/emulate.cpp) compiles the same text with g++ -ffp-contract=off to
// run the kernels' block logic on the CPU, so head/tail/vector handling is tested without a GPU.
// Every float operation is one IEEE operation: __f*_rn intrinsics on the device (never contracted
// into FMAs), plain operators on the host under -ffp-contract=off, fmaf where the CPU uses fmaf.
#ifndef ZT_CUDA_NUMERICS_CUH
#define ZT_CUDA_NUMERICS_CUH

#include <stdint.h>
#include <string.h>

#include "zt_dtype.h"
#include "zt_optim.h"
#include "zt_philox.h"

#if defined(__CUDACC__)
#define ZT_HD __host__ __device__ __forceinline__
#else
#define ZT_HD static inline __attribute__((always_inline))
#endif

// ---- Conversions: the CPU kernels' own (one definition, host+device through ZT_FN) ----
// The CUDA intrinsics (__float2bfloat16_rn, __float2half_rn) are not used: they canonicalise NaN
// payloads differently from the CPU code. f16 decoding needs denormals kept (nvcc's default
// -ftz=false; never build with --use_fast_math).
#include "../cpu/convert_inline.h"

// Element i of a buffer of storage dtype DT, as f32 (DT is a template constant).
template <int DT>
ZT_HD float zt_ld(const void *p, int64_t i) {
    if (DT == ZT_F32) return ((const float *)p)[i];
    if (DT == ZT_BF16) return zt_bf16_f32(((const uint16_t *)p)[i]);
    return zt_f16_f32(((const uint16_t *)p)[i]);
}

template <int DT>
ZT_HD void zt_st(void *p, int64_t i, float v) {
    if (DT == ZT_F32) ((float *)p)[i] = v;
    else if (DT == ZT_BF16) ((uint16_t *)p)[i] = zt_f32_bf16(v);
    else ((uint16_t *)p)[i] = zt_f32_f16(v);
}

// Four consecutive elements at p + i (address aligned to 4 elements: 16 bytes for f32, 8 for
// 16-bit types) in one vector load or store.
template <int DT>
ZT_HD void zt_ld4(const void *p, int64_t i, float v[4]) {
    if (DT == ZT_F32) {
#if defined(__CUDA_ARCH__)
        float4 q = *(const float4 *)((const float *)p + i);
        v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
#else
        memcpy(v, (const float *)p + i, 16);
#endif
    } else {
        uint16_t h[4];
#if defined(__CUDA_ARCH__)
        uint2 q = *(const uint2 *)((const uint16_t *)p + i);
        h[0] = (uint16_t)q.x; h[1] = (uint16_t)(q.x >> 16); h[2] = (uint16_t)q.y; h[3] = (uint16_t)(q.y >> 16);
#else
        memcpy(h, (const uint16_t *)p + i, 8);
#endif
        for (int k = 0; k < 4; k++) v[k] = DT == ZT_BF16 ? zt_bf16_f32(h[k]) : zt_f16_f32(h[k]);
    }
}

template <int DT>
ZT_HD void zt_st4(void *p, int64_t i, const float v[4]) {
    if (DT == ZT_F32) {
#if defined(__CUDA_ARCH__)
        *(float4 *)((float *)p + i) = make_float4(v[0], v[1], v[2], v[3]);
#else
        memcpy((float *)p + i, v, 16);
#endif
    } else {
        uint16_t h[4];
        for (int k = 0; k < 4; k++) h[k] = DT == ZT_BF16 ? zt_f32_bf16(v[k]) : zt_f32_f16(v[k]);
#if defined(__CUDA_ARCH__)
        *(uint2 *)((uint16_t *)p + i) = make_uint2((uint32_t)h[0] | ((uint32_t)h[1] << 16),
                                                   (uint32_t)h[2] | ((uint32_t)h[3] << 16));
#else
        memcpy((uint16_t *)p + i, h, 8);
#endif
    }
}

// ---- Perturbation-stream ops ------------------------------------------------------------------

enum {
    ZT_OP_PERTURB = 0, ZT_OP_UPDATE = 1, ZT_OP_COPY = 2, ZT_OP_FILL = 3, ZT_OP_CONVERT = 4, ZT_OP_REPLAY = 5,
    ZT_OP_ZO = 6,        // fused optimizer update (zt_optim.h); the zt_zo_kind is the KIND template constant
    ZT_OP_HPERTURB = 7,  // HiZOO probe x += a·z/√h, h = s1
};

// Arguments of one stream launch. x/src hold elements [first, first + n) of the tensor.
typedef struct {
    void *x;            // (n) destination, dtype DT
    const void *src;    // (n) source of COPY / CONVERT, dtype SDT (x itself for PERTURB / UPDATE)
    int64_t n;
    uint64_t first;     // global element index of x[0] (0 for CONVERT)
    uint64_t seed;
    uint32_t tensor_id, stream;
    float a, step, decay;  // PERTURB/COPY/FILL: a; UPDATE: restore = a, step, decay
    float a1, a2;       // REPLAY: the two perturbations before the restore (restore = a)
    float *s1, *s2;     // (n) f32 state at the local index: ZO m / H (s2 = v for Adam, D for DIRECTION), HPERTURB h
    zt_zo_update_args zo;  // ZO's scalars, by value: kernel arguments cannot point to host memory
    int vec;            // 1: x, src (and s1, s2 when set), each moved back by first % 4, are 4-element aligned
} zt_stream_args;

// The fields every stream launch sets (the rest zero; x is also the source, vec 0): shared by the
// launchers, the list kernels and the CPU emulation, so all fill the arguments alike.
ZT_HD zt_stream_args zt_stream_base(void *x, int64_t n, uint64_t first, uint64_t seed, uint32_t tensor_id, uint32_t stream) {
    zt_stream_args g;
    memset(&g, 0, sizeof g);
    g.x = x;
    g.src = x;
    g.n = n;
    g.first = first;
    g.seed = seed;
    g.tensor_id = tensor_id;
    g.stream = stream;
    return g;
}

// v rounded to what storage dtype DT holds (identity for f32).
template <int DT>
ZT_HD float zt_round_to(float v) {
    if (DT == ZT_F32) return v;
    if (DT == ZT_BF16) return zt_bf16_f32(zt_f32_bf16(v));
    return zt_f16_f32(zt_f32_f16(v));
}

// perturb.c's apply_op / apply_replay / apply_zo: the same operations in the same order. s1, s2:
// the element's state (read by ZO and HPERTURB, advanced by ZO).
template <int OP, int DT, int KIND>
ZT_HD float zt_stream_elem(const zt_stream_args &g, float x, float z, float &s1, float &s2) {
    if (OP == ZT_OP_PERTURB || OP == ZT_OP_COPY) return ZT_FMA(g.a, z, x);
    if (OP == ZT_OP_UPDATE) {
        float restored = ZT_FMA(g.a, z, x);
        return ZT_FMA(-g.decay, restored, ZT_FMA(-g.step, z, restored));
    }
    if (OP == ZT_OP_REPLAY) {  // perturb(a1), perturb(a2), restore_update, each rounded to storage
        float x1 = zt_round_to<DT>(ZT_FMA(g.a1, z, x));
        float x2 = g.a2 != 0.0f ? zt_round_to<DT>(ZT_FMA(g.a2, z, x1)) : x1;
        float restored = ZT_FMA(g.a, z, x2);
        return ZT_FMA(-g.decay, restored, ZT_FMA(-g.step, z, restored));
    }
    if (OP == ZT_OP_ZO) {  // the replayed probes along the kind's direction, each rounded to storage
        const float d = zt_zo_direction(KIND, z, s1);
        float x2 = x;
        if (g.zo.a1 != 0.0f) x2 = zt_round_to<DT>(ZT_FMA(g.zo.a1, d, x2));
        if (g.zo.a2 != 0.0f) x2 = zt_round_to<DT>(ZT_FMA(g.zo.a2, d, x2));
        return zt_zo_update_elem(KIND, &g.zo, x2, z, d, &s1, &s2);
    }
    if (OP == ZT_OP_HPERTURB) return ZT_FMA(g.a, zt_zo_direction(ZT_ZO_HIZOO, z, s1), x);
    if (OP == ZT_OP_FILL) return ZT_FMUL(g.a, z);
    return x;  // CONVERT
}

// Philox block j of the launch: global elements [4j, 4j + 4) ∩ [first, first + n). Whole
// blocks inside the range go through one vector load/store when args.vec; the partial head and
// tail blocks element by element. Blocks are independent, so any thread order gives the same bits.
// State (f32, same local index as x) goes with x: one vector load/store per array, or per element.
template <int OP, int DT, int SDT, int KIND = 0>
ZT_HD void zt_stream_block(const zt_stream_args &g, uint64_t j) {
    const bool reads_s1 = OP == ZT_OP_ZO || OP == ZT_OP_HPERTURB, writes_s1 = OP == ZT_OP_ZO;
    // s2: Adam's v (read and written) or DIRECTION's D (read only).
    const bool uses_s2 = OP == ZT_OP_ZO && (KIND == ZT_ZO_ADAM || KIND == ZT_ZO_DIRECTION);
    const bool writes_s2 = OP == ZT_OP_ZO && KIND == ZT_ZO_ADAM;
    float z[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (OP != ZT_OP_CONVERT) zt_normal_block(g.seed, g.tensor_id, g.stream, j, z);
    const void *src = (OP == ZT_OP_COPY || OP == ZT_OP_CONVERT) ? g.src : (const void *)g.x;
    const int64_t i0 = (int64_t)(4 * j - g.first);  // local index of element 4j (< 0 in a head block)
    float s1[4] = {0.0f, 0.0f, 0.0f, 0.0f}, s2[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (g.vec && i0 >= 0 && i0 + 4 <= g.n) {
        float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (OP != ZT_OP_FILL) zt_ld4<SDT>(src, i0, v);
        if (reads_s1) zt_ld4<ZT_F32>(g.s1, i0, s1);
        if (uses_s2) zt_ld4<ZT_F32>(g.s2, i0, s2);
        for (int k = 0; k < 4; k++) v[k] = zt_stream_elem<OP, DT, KIND>(g, v[k], z[k], s1[k], s2[k]);
        zt_st4<DT>(g.x, i0, v);
        if (writes_s1) zt_st4<ZT_F32>(g.s1, i0, s1);
        if (writes_s2) zt_st4<ZT_F32>(g.s2, i0, s2);
        return;
    }
    for (int k = 0; k < 4; k++) {
        const int64_t i = i0 + k;
        if (i < 0 || i >= g.n) continue;
        const float xi = OP == ZT_OP_FILL ? 0.0f : zt_ld<SDT>(src, i);
        if (reads_s1) s1[k] = g.s1[i];
        if (uses_s2) s2[k] = g.s2[i];
        zt_st<DT>(g.x, i, zt_stream_elem<OP, DT, KIND>(g, xi, z[k], s1[k], s2[k]));
        if (writes_s1) g.s1[i] = s1[k];
        if (writes_s2) g.s2[i] = s2[k];
    }
}

// Philox blocks touched by [first, first + n): j = first/4 + t for t < zt_stream_blocks(...).
ZT_HD uint64_t zt_stream_blocks(uint64_t first, int64_t n) {
    return n <= 0 ? 0 : (first + (uint64_t)n - 1) / 4 - first / 4 + 1;
}

// Whether the vector path is safe: both pointers, moved back by first % 4 elements, sit on a
// 4-element boundary (then every whole block of the range is aligned as well).
ZT_HD int zt_stream_vec_ok(const void *x, int64_t xsize, const void *src, int64_t ssize, uint64_t first) {
    const uint64_t r = first % 4;
    const uintptr_t bx = (uintptr_t)x - (uintptr_t)(r * (uint64_t)xsize);
    const uintptr_t bs = (uintptr_t)src - (uintptr_t)(r * (uint64_t)ssize);
    return bx % (uintptr_t)(4 * xsize) == 0 && bs % (uintptr_t)(4 * ssize) == 0;
}

// The same for the f32 state arrays of ZO / HPERTURB (s2 may be NULL).
ZT_HD int zt_stream_state_vec_ok(const float *s1, const float *s2, uint64_t first) {
    return zt_stream_vec_ok(s1, 4, s2 ? s2 : s1, 4, first);
}

#endif
