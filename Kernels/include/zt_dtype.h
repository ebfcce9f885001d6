// Storage dtypes shared by the CPU kernels, the CUDA function table and the Swift backend.
#ifndef ZT_DTYPE_H
#define ZT_DTYPE_H
#include <stdint.h>

typedef int32_t zt_dtype;
enum {
    ZT_F32 = 0,
    ZT_F16 = 1,
    ZT_BF16 = 2,
};

static inline int64_t zt_dtype_size(zt_dtype d) { return d == ZT_F32 ? 4 : 2; }

#endif
