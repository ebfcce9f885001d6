// Shared host and device helpers of the CUDA backend: the per-device context (one stream), error
// recording, launch geometry and block reductions. Internal to libzotune_cuda.so.
#ifndef ZT_CUDA_COMMON_CUH
#define ZT_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "zt_backend_api.h"

// Everything internal has hidden visibility (build.sh also passes a version script); only
// zt_cuda_get_api and the debug entry points are exported.
#define ZT_INTERNAL __attribute__((visibility("hidden")))
#define ZT_EXPORT extern "C" __attribute__((visibility("default")))

#define ZT_MAX_DEVICES 64

// One per device, created on first use after set_device (or on device 0).
struct zt_ctx {
    int device;
    cudaStream_t stream;     // every kernel, copy and cuBLAS call of the library runs here
    int sm_count;
    size_t smem_optin;       // max dynamic shared memory per block (opt-in)
    int *d_counter;          // (1) device scratch counter (embedding's bad-id count)
    double *d_sum;           // (1) device scratch sum (Newton–Schulz's ‖x‖²)
};

// The current device's context; NULL (with the error recorded) if the device cannot be used, and
// then zt_ctx_status() is the CUDA error code that says why (35 or 100 without a GPU).
ZT_INTERNAL zt_ctx *zt_ctx_get(void);
ZT_INTERNAL int zt_ctx_status(void);

// Error recording. zt_error sets this thread's last_error text and returns code (for entry points
// that return a status). The _async forms are for launchers with no return value: they also keep
// a sticky code (the first one) that the next synchronize() returns with its text.
ZT_INTERNAL int zt_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
ZT_INTERNAL int zt_async_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// A CUDA call's result, recorded under `what`; returns the code (0 = success).
ZT_INTERNAL int zt_cuda_check(cudaError_t err, const char *what);
ZT_INTERNAL int zt_cuda_check_async(cudaError_t err, const char *what);
// After a kernel launch: records cudaGetLastError() (launch-configuration errors) as sticky.
ZT_INTERNAL void zt_launch_check(const char *what);
// Every entry that hands a device result to the host (a copy, a reduction's scalar, a count) reads
// it through here: copies `bytes` from d_src, waits for the stream, and returns the first launch
// error recorded since the last wait (its text, naming the kernel, becomes last_error), else the
// copy's or the stream's error, else 0. On a nonzero return *dst must not be used.
ZT_INTERNAL int zt_read_host(zt_ctx *c, void *dst, const void *d_src, size_t bytes, const char *what);

// Grid for a grid-stride loop over `work` items with `threads` per block: enough blocks to fill
// every SM `per_sm` times over, no more than the work needs.
static inline unsigned zt_grid(const zt_ctx *c, int64_t work, int threads, int per_sm = 8) {
    int64_t blocks = (work + threads - 1) / threads;
    int64_t cap = (int64_t)c->sm_count * per_sm;
    if (blocks > cap) blocks = cap;
    return (unsigned)(blocks < 1 ? 1 : blocks);
}

static inline bool zt_aligned(const void *p, size_t a) { return ((uintptr_t)p % a) == 0; }

// ---- Device reductions ---------------------------------------------------------------------------
#if defined(__CUDACC__)
__device__ __forceinline__ float zt_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
    return v;
}
__device__ __forceinline__ float zt_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
    return v;
}

// Block-wide sum / max, result broadcast to every thread. blockDim.x is a multiple of 32, ≤ 1024;
// `scratch` is 32 floats of shared memory. Ends with a barrier, so scratch may be reused and
// writes made before the call are visible to every thread after it.
__device__ __forceinline__ float zt_block_sum(float v, float *scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = zt_warp_sum(v);
    __syncthreads();  // scratch may still be read by a previous reduction
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : 0.0f;
    v = zt_warp_sum(v);  // every warp reduces the partials: no second broadcast needed
    __syncthreads();
    return v;
}
__device__ __forceinline__ float zt_block_max(float v, float *scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = zt_warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : -INFINITY;
    v = zt_warp_max(v);
    __syncthreads();
    return v;
}
#endif

#endif
