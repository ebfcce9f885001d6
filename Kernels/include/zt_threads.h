// CPU worker pool used by every multithreaded CPU kernel.
// The kernels own no policy: the backend decides the thread count (zt_set_num_threads).
#ifndef ZT_THREADS_H
#define ZT_THREADS_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// A task runs fn(ctx, begin, end) over a sub-range of [0, n).
typedef void (*zt_range_fn)(void *ctx, int64_t begin, int64_t end);

// Splits [0, n) into at most zt_num_threads() contiguous ranges whose boundaries are multiples of
// `grain` (except the end) and runs them in parallel; returns when all are done. Ranges never
// depend on timing, so a kernel's result is the same for any thread count. Calls from inside a
// task, or concurrent calls from other threads while the pool is busy, run serially in the caller.
void zt_parallel_for(int64_t n, int64_t grain, zt_range_fn fn, void *ctx);

// Number of threads zt_parallel_for uses (default: online CPUs, or ZOTUNE_NUM_THREADS).
int zt_num_threads(void);
// Sets the thread count (1 disables the pool). Not to be called concurrently with zt_parallel_for.
void zt_set_num_threads(int n);

#ifdef __cplusplus
}
#endif
#endif
