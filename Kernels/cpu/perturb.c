// Perturbation-stream kernels: perturb, fused restore+update, perturbed copy, fill_normal.
//
// These run once per ZO step over every trainable weight (3 passes per MeZO step), so they are
// written for SIMD: z is produced 128 elements (32 Philox blocks) at a time, with explicit vectors
// for the Philox rounds and the log/sincos polynomials of zt_philox.h on AVX-512 and AVX2+FMA, and
// the scalar formulas on baseline x86-64; each loop is compiled for all three, picked once at run
// time. z is bit-identical on every path (and to the CUDA kernels). Math is f32.
#include <stdbool.h>

#include "convert_inline.h"
#include "zt_cpu.h"
#include "zt_optim.h"
#include "zt_philox.h"
#include "zt_threads.h"

#define ZT_LANES 32                  // Philox blocks per batch (32: four AVX-512 registers per word)
#define ZT_BATCH (4 * ZT_LANES)      // elements per batch

// OP_ZO_* are the fused optimizer updates, one op per zt_zo_kind so the kind is a compile-time constant.
enum { OP_PERTURB, OP_UPDATE, OP_FILL, OP_COPY, OP_REPLAY, OP_ZO_MOMENTUM, OP_ZO_ADAM, OP_ZO_HIZOO, OP_ZO_DIRECTION,
       OP_HPERTURB };

typedef struct {
    void *x;                // (n) destination, elements [first, first + n) of the tensor
    const void *src;        // (n) source of OP_COPY
    zt_dtype dt, src_dt;
    int op;
    uint64_t first, seed;
    uint32_t tensor_id, stream;
    float a, step, decay;   // OP_PERTURB/COPY/FILL: a; OP_UPDATE: restore = a, step, decay
    float a1, a2;           // OP_REPLAY: the two perturbations before the restore (= a)
    float *s1, *s2;         // (n) f32 optimizer state of OP_ZO_* (s1 = H of OP_HPERTURB; s2 = D of DIRECTION), local index
    zt_zo_update_args zo;   // OP_ZO_*
} stream_job;

// What the element functions read, copied out of the job into a local in stream_range: a local
// whose address does not escape cannot alias the state arrays, so the compiler keeps the scalars
// in registers while the loop stores to s1/s2, and vectorises it.
typedef struct {
    float a, step, decay, a1, a2;
    float *s1, *s2;
    zt_zo_update_args zo;
} elem_ctx;

// z[0 .. ZT_BATCH) for global elements [4·j0, 4·j0 + ZT_BATCH): the scalar formulas of zt_philox.h,
// lane by lane (the baseline x86-64 / non-x86 path).
ZT_INLINE void normals_batch_scalar(uint64_t seed, uint32_t tid, uint32_t stream, uint64_t j0, float *restrict z) {
    ZT_NO_CONTRACT
    float z0[ZT_LANES], z1[ZT_LANES], z2[ZT_LANES], z3[ZT_LANES];
    for (int l = 0; l < ZT_LANES; l++) {
        zt_u32x4 w = zt_philox_block(seed, tid, stream, j0 + (uint64_t)l);
        float c0, s0, c1, s1;
        float r0 = zt_box_muller_radius(w.v[0]);
        zt_sincos_2pi(w.v[1], &c0, &s0);
        float r1 = zt_box_muller_radius(w.v[2]);
        zt_sincos_2pi(w.v[3], &c1, &s1);
        z0[l] = ZT_FMUL(r0, c0);
        z1[l] = ZT_FMUL(r0, s0);
        z2[l] = ZT_FMUL(r1, c1);
        z3[l] = ZT_FMUL(r1, s1);
    }
    for (int l = 0; l < ZT_LANES; l++) {
        z[4 * l + 0] = z0[l];
        z[4 * l + 1] = z1[l];
        z[4 * l + 2] = z2[l];
        z[4 * l + 3] = z3[l];
    }
}

#if defined(__x86_64__) && defined(__clang__)
#if __has_builtin(__builtin_elementwise_fma)  // clang ≥ 17
#define ZT_STREAM_SIMD 1
#else
#define ZT_STREAM_SIMD 0
#endif
#else
#define ZT_STREAM_SIMD 0
#endif

#if ZT_STREAM_SIMD
// The same batch with explicit vectors (clang vector extensions), compiled inside the AVX-512 and
// AVX2+FMA range functions below, which split each vector into zmm or ymm registers. (Left to the
// auto-vectorizer, the scalar loop above takes about 1.5× as long on AVX-512.)
//
// Layout. Philox runs on ZT_LANES blocks, one per 64-bit lane (see philox_lanes). Box–Muller then
// runs on chunks of 8 blocks in 16 lanes of 32 bits, word pairs side by side: lanes (2b, 2b + 1)
// hold (w0, w2) of block b for the radii and (w1, w3) for the angles, so lanes (2b, 2b + 1) of
// r·cos and r·sin are (z[4b], z[4b + 2]) and (z[4b + 1], z[4b + 3]): one interleave of the two
// puts z in element order.
//
// Bit-identity with zt_philox.h is by construction (and was checked exhaustively for the
// Box–Muller part, which depends on a word only through its 2^24 uniforms):
//  - Philox is integer arithmetic, exact in any layout.
//  - Every float operation is the scalar one, lane-wise, in the same order: +, *, / and sqrt are
//    correctly rounded IEEE operations in vector form too, fma is __builtin_elementwise_fma (a
//    single rounding, as fmaf), and ZT_NO_CONTRACT keeps * and + from being fused.
//  - Integer steps are rewritten where an exact equivalent is shorter (radius_16, sincos_16), and
//    the scalar ?: selects become lane selects and sign-bit flips (which is what unary minus does).
// The constants repeat zt_philox.h's: a change there must be made here too (the known-answer and
// kernel-vs-zt_normal_at tests fail otherwise). Vectors go to the helpers by pointer: by value they
// would change the calling convention with the target, which clang diagnoses even when inlined.
typedef uint64_t zt_vu64 __attribute__((ext_vector_type(ZT_LANES)));
typedef uint64_t zt_u64x8 __attribute__((ext_vector_type(8)));
typedef uint32_t zt_u32x16 __attribute__((ext_vector_type(16)));
typedef int32_t zt_i32x16 __attribute__((ext_vector_type(16)));
typedef float zt_f32x16 __attribute__((ext_vector_type(16)));

#define ZT_VFMA(a, b, c) __builtin_elementwise_fma((a), (b), (c))
#define ZT_F(c) ((zt_f32x16)(c))

// Philox4x32-10 per lane (zt_philox4x32_10) of the counters in c, in place. Each 32-bit word lives in
// the low half of a 64-bit lane, the layout of the 32×32→64 multiply (vpmuludq reads only the low
// halves): the product's high word is one shift away and its low word already in place, so no
// shuffles are needed. The high halves carry junk (neither XOR nor the multiply moves it down).
ZT_INLINE void philox_lanes(zt_vu64 c[4], uint32_t k0, uint32_t k1) {
    zt_vu64 c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];
#pragma clang loop unroll(full)
    for (int round = 0; round < 10; round++) {
        if (round > 0) {  // Weyl key schedule between rounds
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        zt_vu64 p0 = (c0 & 0xFFFFFFFFu) * 0xD2511F53u;
        zt_vu64 p1 = (c2 & 0xFFFFFFFFu) * 0xCD9E8D57u;
        zt_vu64 n0 = (p1 >> 32) ^ c1 ^ k0;
        zt_vu64 n2 = (p0 >> 32) ^ c3 ^ k1;
        c0 = n0;
        c1 = p1;
        c2 = n2;
        c3 = p0;
    }
    c[0] = c0;
    c[1] = c1;
    c[2] = c2;
    c[3] = c3;
}

// zt_box_muller_radius per lane. u = m·2^e is split in one step: with t = bits(u) − bits(m₀),
// m₀ = 0x3F3504F4 (the float after √½), the arithmetic shift t >> 23 is e and (t & 0x7FFFFF) + bits(m₀)
// is m, which is the scalar code's m in [1, 2) when u's mantissa bits are ≤ √2's (0x3504F3) and its
// m/2 with e + 1 otherwise. bits(u) is bits((float)k) − 24·2^23, u = k·2^-24 being normal.
ZT_INLINE void radius_16(const zt_u32x16 *w, zt_f32x16 *r_out) {
    ZT_NO_CONTRACT
    zt_i32x16 k = (zt_i32x16)((*w >> 8) + 1u);                              // zt_u24: 1 .. 2^24
    zt_i32x16 t = (zt_i32x16)__builtin_convertvector(k, zt_f32x16) - (0x3F3504F4 + (24 << 23));
    zt_i32x16 e = t >> 23;
    zt_f32x16 m = (zt_f32x16)((t & 0x007FFFFF) + 0x3F3504F4);
    zt_f32x16 num = m + -1.0f;
    zt_f32x16 den = m + 1.0f;
    zt_f32x16 s = num / den;
    zt_f32x16 s2 = s * s;
    zt_f32x16 p = ZT_VFMA(s2, ZT_F(0.22222222f), ZT_F(0.28571429f));
    p = ZT_VFMA(s2, p, ZT_F(0.4f));
    p = ZT_VFMA(s2, p, ZT_F(0.66666667f));
    p = ZT_VFMA(s2, p, ZT_F(2.0f));
    zt_f32x16 lnm = s * p;
    zt_f32x16 ef = __builtin_convertvector(e, zt_f32x16);
    zt_f32x16 lnu = ZT_VFMA(ef, ZT_F(0.693145752f), ZT_VFMA(ef, ZT_F(1.42860677e-06f), lnm));
    zt_f32x16 r2 = -2.0f * lnu;
    r2 = r2 > 0.0f ? r2 : 0.0f;                                             // u = 1 → ln u may be −0
    *r_out = __builtin_elementwise_sqrt(r2);
}

// zt_sincos_2pi per lane. With t = k + 2^21 = q·2^22 + (k − q·2^22 + 2^21), the quadrant q and the
// remainder are bit fields of t: q & 3 is bits 22–23, k − q·2^22 is the low 22 bits minus 2^21.
ZT_INLINE void sincos_16(const zt_u32x16 *w, zt_f32x16 *c_out, zt_f32x16 *s_out) {
    ZT_NO_CONTRACT
    zt_u32x16 t = (*w >> 8) + (1 + (1 << 21));                               // zt_u24 + 2^21
    zt_i32x16 rem = (zt_i32x16)(t & ((1 << 22) - 1)) - (1 << 21);
    zt_f32x16 r = __builtin_convertvector(rem, zt_f32x16) * 0x1p-24f;       // exact
    zt_f32x16 r2 = r * r;
    zt_f32x16 sp = ZT_VFMA(r2, ZT_F(4.20586939e+01f), ZT_F(-7.67058598e+01f));
    sp = ZT_VFMA(r2, sp, ZT_F(8.16052493e+01f));
    sp = ZT_VFMA(r2, sp, ZT_F(-4.13417022e+01f));
    sp = ZT_VFMA(r2, sp, ZT_F(6.28318531e+00f));
    zt_f32x16 sn = r * sp;
    zt_f32x16 cp = ZT_VFMA(r2, ZT_F(-2.64262568e+01f), ZT_F(6.02446414e+01f));
    cp = ZT_VFMA(r2, cp, ZT_F(-8.54568172e+01f));
    cp = ZT_VFMA(r2, cp, ZT_F(6.49393940e+01f));
    cp = ZT_VFMA(r2, cp, ZT_F(-1.97392088e+01f));
    zt_f32x16 cs = ZT_VFMA(r2, cp, ZT_F(1.0f));
    // Quadrant q & 3: (c, s) = (cs, sn), (−sn, cs), (−cs, −sn), (sn, −cs): swap on odd quadrants,
    // then flip the sign bit of s on quadrants 2, 3 (bit 1 of q) and of c on 1, 2 (bit 1 of q + 1).
    zt_i32x16 odd = (t & (1u << 22)) != 0;
    zt_f32x16 c = odd ? sn : cs;
    zt_f32x16 s = odd ? cs : sn;
    zt_u32x16 sneg = (t << 8) & 0x80000000u;
    zt_u32x16 cneg = ((t + (1u << 22)) << 8) & 0x80000000u;
    *c_out = (zt_f32x16)((zt_u32x16)c ^ cneg);
    *s_out = (zt_f32x16)((zt_u32x16)s ^ sneg);
}

// The 32 normals of 8 blocks from their word pairs: rw = (w0, w2) and aw = (w1, w3) per block.
ZT_INLINE void box_muller_chunk(const zt_u32x16 *rw, const zt_u32x16 *aw, float *restrict z) {
    ZT_NO_CONTRACT
    zt_f32x16 r, c, s;
    radius_16(rw, &r);
    sincos_16(aw, &c, &s);
    zt_f32x16 rc = r * c, rs = r * s;  // (z[4b], z[4b + 2]) and (z[4b + 1], z[4b + 3]) in lanes (2b, 2b + 1)
    zt_f32x16 out[2] = {
        __builtin_shufflevector(rc, rs, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23),
        __builtin_shufflevector(rc, rs, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31),
    };
    __builtin_memcpy(z, out, sizeof out);
}

// Chunk i (blocks 8i .. 8i + 7) of a lane vector, and two words of a chunk paired up: the low
// halves of a's and b's 64-bit lanes, alternating.
#define ZT_CHUNK(v, i) __builtin_shufflevector(v, v, 8 * (i), 8 * (i) + 1, 8 * (i) + 2, 8 * (i) + 3, \
                                               8 * (i) + 4, 8 * (i) + 5, 8 * (i) + 6, 8 * (i) + 7)
#define ZT_PAIR(a, b) __builtin_shufflevector((zt_u32x16)(a), (zt_u32x16)(b), 0, 16, 2, 18, 4, 20, 6, 22, \
                                              8, 24, 10, 26, 12, 28, 14, 30)

_Static_assert(ZT_LANES == 32, "normals_batch_simd is written for 4 chunks of 8 blocks");

ZT_INLINE void normals_batch_simd(uint64_t seed, uint32_t tid, uint32_t stream, uint64_t j0, float *restrict z) {
    // Counters (j lo, j hi, tensorId, stream), j = j0 + l: lane l holds j in 64 bits, whose low half
    // is the low word (all the multiply reads) and whose high half, shifted down, is the high word.
    const zt_vu64 iota = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                          16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
    zt_vu64 j = j0 + iota;
    zt_vu64 c[4] = {j, j >> 32, (zt_vu64)(uint64_t)tid, (zt_vu64)(uint64_t)stream};
    philox_lanes(c, (uint32_t)seed, (uint32_t)(seed >> 32));
#define ZT_BM_CHUNK(i)                                                         \
    do {                                                                       \
        zt_u32x16 rw = ZT_PAIR(ZT_CHUNK(c[0], i), ZT_CHUNK(c[2], i));         \
        zt_u32x16 aw = ZT_PAIR(ZT_CHUNK(c[1], i), ZT_CHUNK(c[3], i));         \
        box_muller_chunk(&rw, &aw, z + 32 * (i));                              \
    } while (0)
    ZT_BM_CHUNK(0);
    ZT_BM_CHUNK(1);
    ZT_BM_CHUNK(2);
    ZT_BM_CHUNK(3);
#undef ZT_BM_CHUNK
}
#endif  // ZT_STREAM_SIMD

// z of one batch: the vector form where the range function was compiled for AVX2 or AVX-512.
ZT_INLINE void normals_batch(bool simd, uint64_t seed, uint32_t tid, uint32_t stream, uint64_t j0, float *restrict z) {
#if ZT_STREAM_SIMD
    if (simd) {
        normals_batch_simd(seed, tid, stream, j0, z);
        return;
    }
#endif
    (void)simd;
    normals_batch_scalar(seed, tid, stream, j0, z);
}

// The per-element operation, in f32, with explicit FMAs so CPU and GPU round alike.
// Rounds v to what storage dtype dt holds (identity for f32).
ZT_INLINE float round_to(zt_dtype dt, float v) {
    if (dt == ZT_F32) return v;
    if (dt == ZT_BF16) return zt_bf16_f32(zt_f32_bf16(v));
    return zt_f16_f32(zt_f32_f16(v));
}

ZT_INLINE float apply_replay(zt_dtype dt, float x, float z, const elem_ctx *c) {
    ZT_NO_CONTRACT
    float x1 = round_to(dt, ZT_FMA(c->a1, z, x));
    float x2 = c->a2 != 0.0f ? round_to(dt, ZT_FMA(c->a2, z, x1)) : x1;
    float restored = ZT_FMA(c->a, z, x2);
    return ZT_FMA(-c->decay, restored, ZT_FMA(-c->step, z, restored));
}

// OP_ZO_*: replay's probe perturbations along the kind's direction, then the fused update (zt_optim.h).
ZT_INLINE float apply_zo(zt_dtype dt, int kind, float x, float z, const elem_ctx *c, int64_t i) {
    ZT_NO_CONTRACT
    const float d = zt_zo_direction(kind, z, c->s1[i]);
    float x2 = x;
    if (c->zo.a1 != 0.0f) x2 = round_to(dt, ZT_FMA(c->zo.a1, d, x2));
    if (c->zo.a2 != 0.0f) x2 = round_to(dt, ZT_FMA(c->zo.a2, d, x2));
    return zt_zo_update_elem(kind, &c->zo, x2, z, d, &c->s1[i], kind == ZT_ZO_ADAM || kind == ZT_ZO_DIRECTION ? &c->s2[i] : NULL);
}

ZT_INLINE float apply_op(int op, float x, float z, float a, float step, float decay) {
    ZT_NO_CONTRACT
    switch (op) {
    case OP_PERTURB:
    case OP_COPY: return ZT_FMA(a, z, x);
    case OP_UPDATE: {
        float restored = ZT_FMA(a, z, x);
        return ZT_FMA(-decay, restored, ZT_FMA(-step, z, restored));
    }
    default: return ZT_FMUL(a, z);
    }
}

// The per-element result at local index i (state ops read and write c->s1/s2 at i).
ZT_INLINE float apply_elem(const elem_ctx *c, int op, zt_dtype dt, int64_t i, float xi, float zi) {
    ZT_NO_CONTRACT
    if (op == OP_REPLAY) return apply_replay(dt, xi, zi, c);
    if (op == OP_ZO_MOMENTUM) return apply_zo(dt, ZT_ZO_MOMENTUM, xi, zi, c, i);
    if (op == OP_ZO_ADAM) return apply_zo(dt, ZT_ZO_ADAM, xi, zi, c, i);
    if (op == OP_ZO_HIZOO) return apply_zo(dt, ZT_ZO_HIZOO, xi, zi, c, i);
    if (op == OP_ZO_DIRECTION) return apply_zo(dt, ZT_ZO_DIRECTION, xi, zi, c, i);
    if (op == OP_HPERTURB) return ZT_FMA(c->a, zt_zo_direction(ZT_ZO_HIZOO, zi, c->s1[i]), xi);
    return apply_op(op, xi, zi, c->a, c->step, c->decay);
}

// Local elements [b, e) of job j; op and dtypes are compile-time constants at each call site.
ZT_INLINE void stream_range(const stream_job *j, bool simd, int op, zt_dtype dt, zt_dtype sdt, int64_t b, int64_t e) {
    void *x = j->x;
    const void *src = op == OP_COPY ? j->src : j->x;
    const elem_ctx c = {.a = j->a, .step = j->step, .decay = j->decay, .a1 = j->a1, .a2 = j->a2, .s1 = j->s1, .s2 = j->s2, .zo = j->zo};
    float z[ZT_BATCH];
    int64_t i = b;
    // A head that starts inside a Philox block takes the rest of that block; batches then start on
    // block boundaries of the global index (any block will do).
    if (i < e && ((j->first + (uint64_t)i) & 3) != 0) {
        uint64_t g = j->first + (uint64_t)i;
        zt_normal_block(j->seed, j->tensor_id, j->stream, g >> 2, z);
        for (; i < e && ((j->first + (uint64_t)i) >> 2) == (g >> 2); i++) {
            float zi = z[(j->first + (uint64_t)i) & 3];
            float xi = op == OP_FILL ? 0.0f : zt_load(src, sdt, i);
            zt_store(x, dt, i, apply_elem(&c, op, dt, i, xi, zi));
        }
    }
    for (; i + ZT_BATCH <= e; i += ZT_BATCH) {
        normals_batch(simd, j->seed, j->tensor_id, j->stream, (j->first + (uint64_t)i) >> 2, z);
        for (int k = 0; k < ZT_BATCH; k++) {
            float xi = op == OP_FILL ? 0.0f : zt_load(src, sdt, i + k);
            zt_store(x, dt, i + k, apply_elem(&c, op, dt, i + k, xi, z[k]));
        }
    }
    // The tail (< ZT_BATCH elements): a vector batch of which only the start is used costs less than
    // the scalar blocks it replaces; the baseline path goes block by block.
    if (simd && i < e) {
        normals_batch(simd, j->seed, j->tensor_id, j->stream, (j->first + (uint64_t)i) >> 2, z);
        for (int k = 0; i + k < e; k++) {
            float xi = op == OP_FILL ? 0.0f : zt_load(src, sdt, i + k);
            zt_store(x, dt, i + k, apply_elem(&c, op, dt, i + k, xi, z[k]));
        }
        i = e;
    }
    while (i < e) {
        uint64_t g = j->first + (uint64_t)i;
        zt_normal_block(j->seed, j->tensor_id, j->stream, g >> 2, z);
        for (; i < e && ((j->first + (uint64_t)i) >> 2) == (g >> 2); i++) {
            float zi = z[(j->first + (uint64_t)i) & 3];
            float xi = op == OP_FILL ? 0.0f : zt_load(src, sdt, i);
            zt_store(x, dt, i, apply_elem(&c, op, dt, i, xi, zi));
        }
    }
}

// Dispatch to a specialised loop for each (op, dtype[, source dtype]).
ZT_INLINE void stream_dispatch(const stream_job *j, bool simd, int64_t b, int64_t e) {
#define ZT_DT(OP, DT) if (j->dt == DT) { stream_range(j, simd, OP, DT, DT, b, e); return; }
#define ZT_CP(DT, SDT) if (j->dt == DT && j->src_dt == SDT) { stream_range(j, simd, OP_COPY, DT, SDT, b, e); return; }
    switch (j->op) {
    case OP_PERTURB: ZT_DT(OP_PERTURB, ZT_F32) ZT_DT(OP_PERTURB, ZT_BF16) ZT_DT(OP_PERTURB, ZT_F16) return;
    case OP_UPDATE: ZT_DT(OP_UPDATE, ZT_F32) ZT_DT(OP_UPDATE, ZT_BF16) ZT_DT(OP_UPDATE, ZT_F16) return;
    case OP_FILL: ZT_DT(OP_FILL, ZT_F32) ZT_DT(OP_FILL, ZT_BF16) ZT_DT(OP_FILL, ZT_F16) return;
    case OP_REPLAY: ZT_DT(OP_REPLAY, ZT_F32) ZT_DT(OP_REPLAY, ZT_BF16) ZT_DT(OP_REPLAY, ZT_F16) return;
    case OP_ZO_MOMENTUM: ZT_DT(OP_ZO_MOMENTUM, ZT_F32) ZT_DT(OP_ZO_MOMENTUM, ZT_BF16) ZT_DT(OP_ZO_MOMENTUM, ZT_F16) return;
    case OP_ZO_ADAM: ZT_DT(OP_ZO_ADAM, ZT_F32) ZT_DT(OP_ZO_ADAM, ZT_BF16) ZT_DT(OP_ZO_ADAM, ZT_F16) return;
    case OP_ZO_HIZOO: ZT_DT(OP_ZO_HIZOO, ZT_F32) ZT_DT(OP_ZO_HIZOO, ZT_BF16) ZT_DT(OP_ZO_HIZOO, ZT_F16) return;
    case OP_ZO_DIRECTION: ZT_DT(OP_ZO_DIRECTION, ZT_F32) ZT_DT(OP_ZO_DIRECTION, ZT_BF16) ZT_DT(OP_ZO_DIRECTION, ZT_F16) return;
    case OP_HPERTURB: ZT_DT(OP_HPERTURB, ZT_F32) ZT_DT(OP_HPERTURB, ZT_BF16) ZT_DT(OP_HPERTURB, ZT_F16) return;
    default:
        ZT_CP(ZT_F32, ZT_F32) ZT_CP(ZT_F32, ZT_BF16) ZT_CP(ZT_F32, ZT_F16)
        ZT_CP(ZT_BF16, ZT_BF16) ZT_CP(ZT_BF16, ZT_F32) ZT_CP(ZT_BF16, ZT_F16)
        ZT_CP(ZT_F16, ZT_F16) ZT_CP(ZT_F16, ZT_F32) ZT_CP(ZT_F16, ZT_BF16)
        return;
    }
#undef ZT_DT
#undef ZT_CP
}

#if defined(__x86_64__) && defined(__clang__)
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma,f16c")))
static void stream_avx512(void *ctx, int64_t b, int64_t e) { stream_dispatch(ctx, true, b, e); }
__attribute__((target("avx2,fma,f16c")))
static void stream_avx2(void *ctx, int64_t b, int64_t e) { stream_dispatch(ctx, true, b, e); }
#endif
static void stream_generic(void *ctx, int64_t b, int64_t e) { stream_dispatch(ctx, false, b, e); }

static zt_range_fn pick_stream_fn(void) {
#if defined(__x86_64__) && defined(__clang__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return stream_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return stream_avx2;
#endif
    return stream_generic;
}

static void run_stream(stream_job *j, int64_t n) {
    static zt_range_fn fn = NULL;
    if (!fn) fn = pick_stream_fn();  // benign race: every thread picks the same function
    // Ranges split on batch boundaries of the local index; results do not depend on the split.
    zt_parallel_for(n, 1 << 14, fn, j);
}

void zt_perturb(void *x, zt_dtype dtype, int64_t n, uint64_t first,
                uint64_t seed, uint32_t tensor_id, uint32_t stream, float a) {
    stream_job j = {.x = x, .dt = dtype, .src_dt = dtype, .op = OP_PERTURB, .first = first, .seed = seed,
                    .tensor_id = tensor_id, .stream = stream, .a = a};
    run_stream(&j, n);
}

void zt_restore_update(void *x, zt_dtype dtype, int64_t n, uint64_t first, uint64_t seed,
                       uint32_t tensor_id, uint32_t stream, float restore, float step, float decay) {
    stream_job j = {.x = x, .dt = dtype, .src_dt = dtype, .op = OP_UPDATE, .first = first, .seed = seed,
                    .tensor_id = tensor_id, .stream = stream, .a = restore, .step = step, .decay = decay};
    run_stream(&j, n);
}

void zt_replay_step(void *x, zt_dtype dtype, int64_t n, uint64_t first, uint64_t seed, uint32_t tensor_id,
                    uint32_t stream, float a1, float a2, float restore, float step, float decay) {
    stream_job j = {.x = x, .dt = dtype, .src_dt = dtype, .op = OP_REPLAY, .first = first, .seed = seed,
                    .tensor_id = tensor_id, .stream = stream, .a = restore, .step = step, .decay = decay,
                    .a1 = a1, .a2 = a2};
    run_stream(&j, n);
}

void zt_perturbed_copy(void *out, zt_dtype out_dtype, const void *src, zt_dtype src_dtype, int64_t n,
                       uint64_t first, uint64_t seed, uint32_t tensor_id, uint32_t stream, float a) {
    stream_job j = {.x = out, .src = src, .dt = out_dtype, .src_dt = src_dtype, .op = OP_COPY, .first = first,
                    .seed = seed, .tensor_id = tensor_id, .stream = stream, .a = a};
    run_stream(&j, n);
}

void zt_fill_normal(void *out, zt_dtype dtype, int64_t n, uint64_t first,
                    uint64_t seed, uint32_t tensor_id, uint32_t stream, float scale) {
    stream_job j = {.x = out, .dt = dtype, .src_dt = dtype, .op = OP_FILL, .first = first, .seed = seed,
                    .tensor_id = tensor_id, .stream = stream, .a = scale};
    run_stream(&j, n);
}

void zt_zo_update(int kind, void *x, zt_dtype dtype, float *s1, float *s2, int64_t n, uint64_t first, uint64_t seed,
                  uint32_t tensor_id, uint32_t stream, const zt_zo_update_args *args) {
    const int op = kind == ZT_ZO_MOMENTUM ? OP_ZO_MOMENTUM : kind == ZT_ZO_ADAM ? OP_ZO_ADAM : kind == ZT_ZO_HIZOO ? OP_ZO_HIZOO
                 : kind == ZT_ZO_DIRECTION ? OP_ZO_DIRECTION : -1;
    if (op < 0 || ((kind == ZT_ZO_ADAM || kind == ZT_ZO_DIRECTION) && !s2)) return;  // unknown kind: nothing to do (the Swift layer validates)
    stream_job j = {.x = x, .dt = dtype, .src_dt = dtype, .op = op, .first = first, .seed = seed,
                    .tensor_id = tensor_id, .stream = stream, .s1 = s1, .s2 = s2, .zo = *args};
    run_stream(&j, n);
}

void zt_perturb_hessian(void *x, zt_dtype dtype, const float *h, int64_t n, uint64_t first, uint64_t seed,
                        uint32_t tensor_id, uint32_t stream, float a) {
    stream_job j = {.x = x, .dt = dtype, .src_dt = dtype, .op = OP_HPERTURB, .first = first, .seed = seed,
                    .tensor_id = tensor_id, .stream = stream, .a = a, .s1 = (float *)h};
    run_stream(&j, n);
}
