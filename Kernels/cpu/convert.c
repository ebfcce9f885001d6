// dtype conversions (out-of-line, exported) and the bulk converter.
#include "convert_inline.h"
#include "zt_cpu.h"
#include "zt_threads.h"

float zt_bf16_to_f32(uint16_t h) { return zt_bf16_f32(h); }
uint16_t zt_f32_to_bf16(float f) { return zt_f32_bf16(f); }
float zt_f16_to_f32(uint16_t h) { return zt_f16_f32(h); }
uint16_t zt_f32_to_f16(float f) { return zt_f32_f16(f); }

typedef struct {
    void *dst;
    const void *src;
    zt_dtype dst_dt, src_dt;
} convert_job;

ZT_INLINE void convert_loop(void *dst, zt_dtype ddt, const void *src, zt_dtype sdt, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) zt_store(dst, ddt, i, zt_load(src, sdt, i));
}

static void convert_range(void *ctx, int64_t b, int64_t e) {
    const convert_job *j = ctx;
    // One specialised loop per (dst, src) pair.
#define ZT_PAIR(D, S) if (j->dst_dt == D && j->src_dt == S) { convert_loop(j->dst, D, j->src, S, b, e); return; }
    ZT_PAIR(ZT_F32, ZT_BF16) ZT_PAIR(ZT_F32, ZT_F16) ZT_PAIR(ZT_BF16, ZT_F32)
    ZT_PAIR(ZT_F16, ZT_F32) ZT_PAIR(ZT_BF16, ZT_F16) ZT_PAIR(ZT_F16, ZT_BF16)
#undef ZT_PAIR
    int64_t size = zt_dtype_size(j->dst_dt);  // same dtype: a copy
    __builtin_memcpy((char *)j->dst + b * size, (const char *)j->src + b * size, (size_t)((e - b) * size));
}

void zt_convert(void *dst, zt_dtype dst_dtype, const void *src, zt_dtype src_dtype, int64_t n) {
    convert_job j = {dst, src, dst_dtype, src_dtype};
    zt_parallel_for(n, 1 << 16, convert_range, &j);
}

// Eight bytes at a time through a multiply–xorshift mix; the tail is folded in byte by byte.
uint64_t zt_hash64(const void *data, uint64_t len, uint64_t seed) {
    const unsigned char *p = data;
    uint64_t h = seed ^ (len * 0x9E3779B97F4A7C15ull);
    uint64_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        __builtin_memcpy(&w, p + i, 8);
        h ^= w * 0xBF58476D1CE4E5B9ull;
        h = ((h << 27) | (h >> 37)) * 0x94D049BB133111EBull;
    }
    for (; i < len; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    h ^= h >> 31;
    h *= 0xD6E8FEB86659FD93ull;
    return h ^ (h >> 32);
}
