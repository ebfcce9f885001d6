// libzotune_cuda.so's function table (zt_cuda_get_api), device and memory entry points, the
// caching allocator, per-device contexts and error state.
//
// Streams: the library uses one stream per device (non-blocking) for every kernel, copy and cuBLAS
// call, so work is ordered by the stream alone and the allocator can hand a freed block to the
// next request at once: any later use of it is queued behind the work that used it before.
#include <cuda_runtime.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <unordered_map>
#include <vector>

#include "kernels.cuh"

// ---- Error state --------------------------------------------------------------------------------
// last_error() is per thread. Kernels return nothing, so a launch error is also kept as a sticky
// code (with its text, which names the kernel) that the next entry waiting for the stream returns,
// whichever thread calls it: synchronize(), both host copies, and every entry that hands a device
// result to the host (zt_read_host). A result read after a failed launch is never reported as good.

static thread_local char tl_error[512];
static std::atomic<int> g_sticky_code{0};
static char g_sticky_text[512];
static pthread_mutex_t g_sticky_lock = PTHREAD_MUTEX_INITIALIZER;

static void keep_sticky(int code) {
    pthread_mutex_lock(&g_sticky_lock);
    if (g_sticky_code.load() == 0) {  // keep the first error: later ones are often its echo
        memcpy(g_sticky_text, tl_error, sizeof g_sticky_text);
        g_sticky_code.store(code);
    }
    pthread_mutex_unlock(&g_sticky_lock);
}

int zt_error(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_error, sizeof tl_error, fmt, ap);
    va_end(ap);
    return code;
}

int zt_async_error(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_error, sizeof tl_error, fmt, ap);
    va_end(ap);
    if (code != 0) keep_sticky(code);
    return code;
}

int zt_cuda_check(cudaError_t err, const char *what) {
    if (err == cudaSuccess) return 0;
    return zt_error((int)err, "%s: %s (%s, CUDA error %d)", what, cudaGetErrorString(err), cudaGetErrorName(err),
                    (int)err);
}

int zt_cuda_check_async(cudaError_t err, const char *what) {
    if (err == cudaSuccess) return 0;
    return zt_async_error((int)err, "%s: %s (%s, CUDA error %d)", what, cudaGetErrorString(err),
                          cudaGetErrorName(err), (int)err);
}

void zt_launch_check(const char *what) { zt_cuda_check_async(cudaGetLastError(), what); }

// Returns the sticky code (clearing it) and makes its text this thread's last error.
static int take_sticky(void) {
    if (g_sticky_code.load() == 0) return 0;
    pthread_mutex_lock(&g_sticky_lock);
    int code = g_sticky_code.exchange(0);
    if (code) memcpy(tl_error, g_sticky_text, sizeof tl_error);
    pthread_mutex_unlock(&g_sticky_lock);
    return code;
}

// ---- Graph recording state (see "Graphs" below) ---------------------------------------------------
// The id of the graph being recorded (0: none) and its device. Set by graph_begin, cleared by
// graph_end; read by the allocator (blocks malloc'ed now belong to that graph) and by every entry
// that would wait for the stream (refused while recording: a wait cannot be recorded).
static std::atomic<uint64_t> g_rec_owner{0};
static int g_rec_device = -1;

static int refuse_while_recording(const char *what) {
    return zt_error((int)cudaErrorStreamCaptureUnsupported,
                    "%s: not allowed while a graph is being recorded (graph_begin … graph_end): it waits for the device",
                    what);
}

// Waits for the stream; returns the first launch error recorded since the last wait (its text names
// the kernel) or else the stream's own error (an asynchronous fault).
static int wait_stream(zt_ctx *c, const char *what) {
    cudaError_t err = cudaStreamSynchronize(c->stream);
    int sticky = take_sticky();
    if (sticky) return sticky;  // a recorded launch error explains more than the fault it caused
    if (err != cudaSuccess) {
        zt_error((int)err, "%s: an earlier kernel failed: %s (%s, CUDA error %d)", what, cudaGetErrorString(err),
                 cudaGetErrorName(err), (int)err);
        return (int)err;
    }
    return 0;
}

int zt_read_host(zt_ctx *c, void *dst, const void *d_src, size_t bytes, const char *what) {
    if (g_rec_owner.load()) return refuse_while_recording(what);
    if (bytes) {
        cudaError_t err = cudaMemcpyAsync(dst, d_src, bytes, cudaMemcpyDeviceToHost, c->stream);
        if (err != cudaSuccess) {
            if (int sticky = take_sticky()) return sticky;
            return zt_cuda_check(err, what);
        }
    }
    return wait_stream(c, what);
}

// ---- Devices and contexts ----------------------------------------------------------------------

static std::atomic<int> g_device{0};      // set by set_device
static thread_local int tl_device = -1;   // the device this thread last made current
static zt_ctx *g_ctx[ZT_MAX_DEVICES];
static pthread_mutex_t g_ctx_lock = PTHREAD_MUTEX_INITIALIZER;

static thread_local int tl_ctx_status = 0;

int zt_ctx_status(void) { return tl_ctx_status ? tl_ctx_status : (int)cudaErrorUnknown; }

zt_ctx *zt_ctx_get(void) {
    const int dev = g_device.load();
    if (tl_device != dev) {  // the CUDA current device is per thread
        if ((tl_ctx_status = zt_cuda_check(cudaSetDevice(dev), "cudaSetDevice"))) {
            cudaGetLastError();
            return NULL;
        }
        tl_device = dev;
    }
    zt_ctx *c = __atomic_load_n(&g_ctx[dev], __ATOMIC_ACQUIRE);
    if (c) return c;
    pthread_mutex_lock(&g_ctx_lock);
    c = g_ctx[dev];
    if (!c) {
        c = (zt_ctx *)calloc(1, sizeof *c);
        c->device = dev;
        int sms = 0, optin = 0;
        void *scratch = NULL;
        int err = zt_cuda_check(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "cudaStreamCreate");
        if (!err) err = zt_cuda_check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
        if (!err) err = zt_cuda_check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
                                      "cudaDeviceGetAttribute");
        if (!err) err = zt_cuda_check(cudaMalloc(&scratch, 256), "cudaMalloc (context scratch)");
        if (err) {
            tl_ctx_status = err;
            if (c->stream) cudaStreamDestroy(c->stream);
            free(c);
            c = NULL;
        } else {
            c->sm_count = sms > 0 ? sms : 1;
            c->smem_optin = (size_t)optin;
            c->d_counter = (int *)scratch;
            c->d_sum = (double *)((char *)scratch + 64);
            __atomic_store_n(&g_ctx[dev], c, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&g_ctx_lock);
    return c;
}

static int api_device_count(int *count) {
    *count = 0;
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        cudaGetLastError();  // not sticky for later calls
        return zt_error((int)err, "cudaGetDeviceCount: %s (%s, CUDA error %d)", cudaGetErrorString(err),
                        cudaGetErrorName(err), (int)err);
    }
    *count = n;
    return 0;
}

static int api_set_device(int device) {
    if (device < 0 || device >= ZT_MAX_DEVICES)
        return zt_error((int)cudaErrorInvalidDevice, "set_device: device %d out of range", device);
    // Before any kernel: on an older GPU every launch would fail (no image it can run).
    cudaDeviceProp prop;
    if (int err = zt_cuda_check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties")) return err;
    if (zt_cuda_capability_message(device, prop.name, prop.major, prop.minor, tl_error, sizeof tl_error))
        return (int)cudaErrorNoKernelImageForDevice;
    if (int err = zt_cuda_check(cudaSetDevice(device), "cudaSetDevice")) return err;
    g_device.store(device);
    tl_device = device;
    return zt_ctx_get() ? 0 : zt_ctx_status();
}

static int api_device_name(int device, char *name, size_t len) {
    cudaDeviceProp prop;
    if (int err = zt_cuda_check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties")) return err;
    if (len) {
        strncpy(name, prop.name, len - 1);
        name[len - 1] = 0;
    }
    return 0;
}

// ---- Caching allocator ---------------------------------------------------------------------------
// cudaMalloc/cudaFree synchronize and cost tens of microseconds, and a ZO step allocates the same
// activation and scratch sizes every step. Freed blocks go to per-device free lists keyed by a
// rounded size and are handed out again without calling CUDA:
//   < 1 MiB: size classes of a quarter octave (512, 640, 768, 896, 1024, 1280, ...): ≤ 25% slack.
//   ≥ 1 MiB: rounded up to 2 MiB (the driver's own granularity), matched exactly, so large weight
//            buffers waste at most 2 MiB.
// When cudaMalloc runs out, every cached block of the device is released and the call retried.
// ZOTUNE_CUDA_NO_CACHE=1 bypasses the cache (for compute-sanitizer runs).

struct alloc_info {
    size_t size;     // rounded size
    int device;
    uint64_t graph;  // the graph whose recording malloc'ed it (0: none): freed, it stays that graph's
};

struct device_pool {
    std::unordered_map<size_t, std::vector<void *>> free_lists;  // rounded size → free blocks
    size_t cached_bytes = 0;                                      // bytes in free lists
    size_t live_bytes = 0;                                        // bytes handed out (rounded)
    size_t library_bytes = 0;                                     // the library's own (cuBLAS workspace)
    // Freed blocks a graph's replays still write: graph id → rounded size → blocks. Reused only by
    // allocations of the same recording; returned to free_lists by graph_destroy. Counted as live.
    std::unordered_map<uint64_t, std::unordered_map<size_t, std::vector<void *>>> graph_free;
};
// Ids of the graphs recorded and not destroyed (a block's owner may be gone: then it is ordinary).
static std::unordered_map<uint64_t, int> *g_graph_ids;

static pthread_mutex_t g_alloc_lock = PTHREAD_MUTEX_INITIALIZER;
// Heap-allocated and never destroyed: no static destructors racing the CUDA runtime's teardown.
static std::unordered_map<void *, alloc_info> *g_live;
static device_pool *g_pools[ZT_MAX_DEVICES];
static int g_no_cache = -1;

static size_t round_size(size_t bytes) {
    const size_t MiB = (size_t)1 << 20;
    if (bytes <= 512) return 512;
    if (bytes >= MiB) return (bytes + 2 * MiB - 1) / (2 * MiB) * (2 * MiB);
    int k = 63 - __builtin_clzll((unsigned long long)(bytes - 1));  // 2^k < bytes ≤ 2^(k+1)
    size_t step = (size_t)1 << (k - 1);                                // quarter of 2^(k+1)
    return (bytes + step - 1) / step * step;
}

static device_pool *pool_for(int dev) {
    if (!g_pools[dev]) g_pools[dev] = new device_pool();
    return g_pools[dev];
}

// Frees every cached block of a device (caller holds g_alloc_lock).
static void release_cached(int dev) {
    device_pool *p = pool_for(dev);
    for (auto &kv : p->free_lists)
        for (void *ptr : kv.second) cudaFree(ptr);
    p->free_lists.clear();
    p->cached_bytes = 0;
}

static int api_malloc(void **d_ptr, size_t bytes) {
    *d_ptr = NULL;
    zt_ctx *c = zt_ctx_get();
    if (!c) return zt_ctx_status();
    if (g_no_cache < 0) {
        const char *e = getenv("ZOTUNE_CUDA_NO_CACHE");
        g_no_cache = e && e[0] == '1';
    }
    if (g_no_cache) {
        void *p = NULL;
        if (int err = zt_cuda_check(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc")) {
            cudaGetLastError();
            return err;
        }
        *d_ptr = p;
        return 0;
    }
    const size_t size = round_size(bytes);
    pthread_mutex_lock(&g_alloc_lock);
    if (!g_live) g_live = new std::unordered_map<void *, alloc_info>();
    device_pool *pool = pool_for(c->device);
    void *p = NULL;
    const uint64_t rec = c->device == g_rec_device ? g_rec_owner.load() : 0;
    auto it = pool->free_lists.find(size);
    std::vector<void *> *own = NULL;  // the recording's own freed blocks of this size, reused first
    if (rec) {
        auto g = pool->graph_free.find(rec);
        if (g != pool->graph_free.end()) {
            auto f = g->second.find(size);
            if (f != g->second.end() && !f->second.empty()) own = &f->second;
        }
    }
    if (own) {
        p = own->back();
        own->pop_back();
        pool->live_bytes -= size;  // counted again below
    } else if (it != pool->free_lists.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        pool->cached_bytes -= size;
    } else {
        cudaError_t err = cudaMalloc(&p, size);
        // (not while recording: cudaFree would end the recording)
        if (err == cudaErrorMemoryAllocation && pool->cached_bytes > 0 && !rec) {
            cudaGetLastError();
            release_cached(c->device);
            err = cudaMalloc(&p, size);
        }
        if (err != cudaSuccess) {
            cudaGetLastError();  // an allocation failure is reported here, not by the next synchronize
            pthread_mutex_unlock(&g_alloc_lock);
            zt_error(0, "cudaMalloc of %zu bytes: %s (CUDA error %d)", size, cudaGetErrorString(err), (int)err);
            return (int)err;
        }
    }
    (*g_live)[p] = alloc_info{size, c->device, rec};
    pool->live_bytes += size;
    pthread_mutex_unlock(&g_alloc_lock);
    *d_ptr = p;
    return 0;
}

// The library's own long-lived buffers: outside the cache, counted apart from the caller's.
int zt_cu_malloc_library(void **d_ptr, size_t bytes) {
    *d_ptr = NULL;
    zt_ctx *c = zt_ctx_get();
    if (!c) return zt_ctx_status();
    if (int err = zt_cuda_check(cudaMalloc(d_ptr, bytes), "cudaMalloc (library)")) {
        cudaGetLastError();
        return err;
    }
    pthread_mutex_lock(&g_alloc_lock);
    pool_for(c->device)->library_bytes += bytes;
    pthread_mutex_unlock(&g_alloc_lock);
    return 0;
}

static int api_memory_stats(size_t *live, size_t *cached, size_t *library) {
    *live = *cached = *library = 0;
    zt_ctx *c = zt_ctx_get();
    if (!c) return zt_ctx_status();
    pthread_mutex_lock(&g_alloc_lock);
    device_pool *p = pool_for(c->device);
    *live = p->live_bytes;
    *cached = p->cached_bytes;
    *library = p->library_bytes + 256;  // + the context's scratch (counter and sums)
    pthread_mutex_unlock(&g_alloc_lock);
    return 0;
}

static int api_free(void *d_ptr) {
    if (!d_ptr) return 0;
    if (g_no_cache == 1) return zt_cuda_check(cudaFree(d_ptr), "cudaFree");
    pthread_mutex_lock(&g_alloc_lock);
    auto it = g_live ? g_live->find(d_ptr) : std::unordered_map<void *, alloc_info>::iterator();
    if (!g_live || it == g_live->end()) {
        pthread_mutex_unlock(&g_alloc_lock);
        zt_error(0, "free: %p was not allocated by this library (or was freed twice)", d_ptr);
        return (int)cudaErrorInvalidValue;
    }
    alloc_info info = it->second;
    g_live->erase(it);
    device_pool *pool = pool_for(info.device);
    // A block the recording freed (made before it or during it) is one its replays may write: it
    // stays that graph's, as does every block the recording malloc'ed.
    const uint64_t owner = info.graph ? info.graph : info.device == g_rec_device ? g_rec_owner.load() : 0;
    if (owner && g_graph_ids && g_graph_ids->count(owner)) {
        pool->graph_free[owner][info.size].push_back(d_ptr);
        pthread_mutex_unlock(&g_alloc_lock);
        return 0;
    }
    pool->free_lists[info.size].push_back(d_ptr);
    pool->cached_bytes += info.size;
    pool->live_bytes -= info.size;
    pthread_mutex_unlock(&g_alloc_lock);
    return 0;
}

// free counts the cached blocks too: they are available to the next allocations.
static int api_mem_info(size_t *free_bytes, size_t *total_bytes) {
    *free_bytes = 0;
    *total_bytes = 0;
    zt_ctx *c = zt_ctx_get();
    if (!c) return zt_ctx_status();
    size_t f = 0, t = 0;
    if (int err = zt_cuda_check(cudaMemGetInfo(&f, &t), "cudaMemGetInfo")) return err;
    pthread_mutex_lock(&g_alloc_lock);
    f += pool_for(c->device)->cached_bytes;
    pthread_mutex_unlock(&g_alloc_lock);
    *free_bytes = f;
    *total_bytes = t;
    return 0;
}

// ---- Copies and synchronization ------------------------------------------------------------------
// Host copies wait for their stream: the caller may reuse or read its host buffer on return
// (also when it is pinned, where cudaMemcpyAsync alone would not wait).

static int api_memcpy_h2d(void *d_dst, const void *src, size_t bytes) {
    if (g_rec_owner.load()) return refuse_while_recording("memcpy_h2d");
    zt_ctx *c = zt_ctx_get();
    if (!c) return zt_ctx_status();
    if (bytes) {
        cudaError_t err = cudaMemcpyAsync(d_dst, src, bytes, cudaMemcpyHostToDevice, c->stream);
        if (err != cudaSuccess) {
            if (int sticky = take_sticky()) return sticky;
            return zt_cuda_check(err, "memcpy_h2d");
        }
    }
    return wait_stream(c, "memcpy_h2d");
}

// How losses and log-probs come back: the sticky launch error, if any, is the result.
static int api_memcpy_d2h(void *dst, const void *d_src, size_t bytes) {
    zt_ctx *c = zt_ctx_get();
    if (!c) return zt_ctx_status();
    return zt_read_host(c, dst, d_src, bytes, "memcpy_d2h");
}

static int api_memcpy_d2d(void *d_dst, const void *d_src, size_t bytes) {
    zt_ctx *c = zt_ctx_get();
    if (!c) return zt_ctx_status();
    if (!bytes) return 0;
    return zt_cuda_check(cudaMemcpyAsync(d_dst, d_src, bytes, cudaMemcpyDeviceToDevice, c->stream), "memcpy_d2d");
}

static int api_memset(void *d_ptr, int value, size_t bytes) {
    zt_ctx *c = zt_ctx_get();
    if (!c) return zt_ctx_status();
    if (!bytes) return 0;
    return zt_cuda_check(cudaMemsetAsync(d_ptr, value, bytes, c->stream), "memset");
}

static int api_synchronize(void) {
    if (g_rec_owner.load()) return refuse_while_recording("synchronize");
    zt_ctx *c = zt_ctx_get();
    if (!c) {
        take_sticky();
        return zt_ctx_status();
    }
    return wait_stream(c, "synchronize");
}

static const char *api_last_error(void) { return tl_error; }

// ---- Graphs ------------------------------------------------------------------------------------
// A small model's forward is launch-bound (SmolLM2: ~700 launches, ~2–3 ms of enqueue per ~4–6 ms
// of GPU work); a recorded forward is replayed with one cudaGraphLaunch. Recording is stream
// capture of the library's one stream in thread-local mode: the library's waits are refused above
// instead of ending the capture. A replay writes the addresses recorded, so the blocks the recording
// malloc'ed stay the graph's until graph_destroy (api_free keeps them apart), and nothing else can
// be handed an address a replay writes: the "pointers are stable" of a replay is enforced, not
// assumed from the cache's reuse order.

struct graph_entry {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    int device;
};
static std::unordered_map<uint64_t, graph_entry> *g_graphs;  // under g_alloc_lock
static uint64_t g_next_graph = 1;

// Gives a graph's blocks back to the cache (its freed ones) or makes them ordinary (live ones).
static void release_graph_blocks(uint64_t id, int dev) {
    device_pool *pool = pool_for(dev);
    auto g = pool->graph_free.find(id);
    if (g != pool->graph_free.end()) {
        for (auto &kv : g->second)
            for (void *ptr : kv.second) {
                pool->free_lists[kv.first].push_back(ptr);
                pool->cached_bytes += kv.first;
                pool->live_bytes -= kv.first;
            }
        pool->graph_free.erase(g);
    }
    if (g_live)
        for (auto &kv : *g_live)
            if (kv.second.graph == id) kv.second.graph = 0;
    if (g_graph_ids) g_graph_ids->erase(id);
}

static int api_graph_begin(void) {
    if (g_rec_owner.load()) return zt_error((int)cudaErrorIllegalState, "graph_begin: a graph is already being recorded");
    zt_ctx *c = zt_ctx_get();
    if (!c) return zt_ctx_status();
    if (g_no_cache == 1)
        return zt_error((int)cudaErrorNotSupported, "graph_begin: not with ZOTUNE_CUDA_NO_CACHE=1 (the graph's blocks live in the cache)");
    if (int err = wait_stream(c, "graph_begin")) return err;  // start from an idle stream with no pending error
    pthread_mutex_lock(&g_alloc_lock);
    if (!g_graph_ids) g_graph_ids = new std::unordered_map<uint64_t, int>();
    const uint64_t id = g_next_graph++;
    (*g_graph_ids)[id] = c->device;
    pthread_mutex_unlock(&g_alloc_lock);
    if (int err = zt_cuda_check(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal), "graph_begin")) {
        pthread_mutex_lock(&g_alloc_lock);
        g_graph_ids->erase(id);
        pthread_mutex_unlock(&g_alloc_lock);
        return err;
    }
    g_rec_device = c->device;
    g_rec_owner.store(id);
    return 0;
}

static int api_graph_end(uint64_t *out) {
    *out = 0;
    const uint64_t id = g_rec_owner.load();
    if (!id) return zt_error((int)cudaErrorIllegalState, "graph_end: no graph is being recorded");
    zt_ctx *c = zt_ctx_get();
    if (!c) return zt_ctx_status();
    cudaGraph_t graph = NULL;
    cudaError_t end = cudaStreamEndCapture(c->stream, &graph);
    g_rec_owner.store(0);
    g_rec_device = -1;
    // A launch that failed while recording (sticky) or an invalidated capture: no graph.
    int err = take_sticky();
    if (!err) err = zt_cuda_check(end, "graph_end (cudaStreamEndCapture)");
    cudaGraphExec_t exec = NULL;
    if (!err) err = zt_cuda_check(cudaGraphInstantiate(&exec, graph, 0), "graph_end (cudaGraphInstantiate)");
    if (err) {
        cudaGetLastError();
        if (graph) cudaGraphDestroy(graph);
        pthread_mutex_lock(&g_alloc_lock);
        release_graph_blocks(id, c->device);
        pthread_mutex_unlock(&g_alloc_lock);
        return err;
    }
    pthread_mutex_lock(&g_alloc_lock);
    if (!g_graphs) g_graphs = new std::unordered_map<uint64_t, graph_entry>();
    (*g_graphs)[id] = graph_entry{graph, exec, c->device};
    pthread_mutex_unlock(&g_alloc_lock);
    *out = id;
    return 0;
}

static int api_graph_launch(uint64_t id) {
    if (g_rec_owner.load()) return refuse_while_recording("graph_launch");
    zt_ctx *c = zt_ctx_get();
    if (!c) return zt_ctx_status();
    pthread_mutex_lock(&g_alloc_lock);
    auto it = g_graphs ? g_graphs->find(id) : std::unordered_map<uint64_t, graph_entry>::iterator();
    const bool found = g_graphs && it != g_graphs->end() && it->second.device == c->device;
    cudaGraphExec_t exec = found ? it->second.exec : NULL;
    pthread_mutex_unlock(&g_alloc_lock);
    if (!found) return zt_error((int)cudaErrorInvalidValue, "graph_launch: no graph %llu on this device", (unsigned long long)id);
    return zt_cuda_check_async(cudaGraphLaunch(exec, c->stream), "graph_launch");
}

static int api_graph_destroy(uint64_t id) {
    if (!id) return 0;
    zt_ctx *c = zt_ctx_get();
    if (!c) return zt_ctx_status();
    pthread_mutex_lock(&g_alloc_lock);
    auto it = g_graphs ? g_graphs->find(id) : std::unordered_map<uint64_t, graph_entry>::iterator();
    if (!g_graphs || it == g_graphs->end()) {
        pthread_mutex_unlock(&g_alloc_lock);
        return zt_error((int)cudaErrorInvalidValue, "graph_destroy: no graph %llu", (unsigned long long)id);
    }
    graph_entry e = it->second;
    g_graphs->erase(it);
    pthread_mutex_unlock(&g_alloc_lock);
    // A replay still queued may write the blocks: wait before they can be handed out again.
    int err = wait_stream(c, "graph_destroy");
    cudaGraphExecDestroy(e.exec);
    cudaGraphDestroy(e.graph);
    pthread_mutex_lock(&g_alloc_lock);
    release_graph_blocks(id, e.device);
    pthread_mutex_unlock(&g_alloc_lock);
    return err;
}

// ---- The table ---------------------------------------------------------------------------------

// Designated initialisers (C++20): a field out of the header's order fails to compile, and a
// field missing here stays NULL, which the harness's table check reports.
static const zt_backend_api cuda_table = {
    .abi_version = ZT_BACKEND_ABI_VERSION,
    .struct_size = (uint32_t)sizeof(zt_backend_api),
    .device_count = api_device_count,
    .set_device = api_set_device,
    .device_name = api_device_name,
    .mem_info = api_mem_info,
    .malloc = api_malloc,
    .free = api_free,
    .memcpy_h2d = api_memcpy_h2d,
    .memcpy_d2h = api_memcpy_d2h,
    .memcpy_d2d = api_memcpy_d2d,
    .memset = api_memset,
    .synchronize = api_synchronize,
    .last_error = api_last_error,
    .perturb = zt_cu_perturb,
    .restore_update = zt_cu_restore_update,
    .replay_step = zt_cu_replay_step,
    .perturbed_copy = zt_cu_perturbed_copy,
    .fill_normal = zt_cu_fill_normal,
    .convert = zt_cu_convert,
    .zo_update = zt_cu_zo_update,
    .perturb_hessian = zt_cu_perturb_hessian,
    .stream_list = zt_cu_stream_list,
    .zo_update_list = zt_cu_zo_update_list,
    .add = zt_cu_add,
    .mul = zt_cu_mul,
    .scale = zt_cu_scale,
    .add_rows = zt_cu_add_rows,
    .relu = zt_cu_relu,
    .silu = zt_cu_silu,
    .gelu_tanh = zt_cu_gelu_tanh,
    .gelu_erf = zt_cu_gelu_erf,
    .swiglu = zt_cu_swiglu,
    .softcap = zt_cu_softcap,
    .softmax = zt_cu_softmax,
    .log_softmax = zt_cu_log_softmax,
    .token_logprobs = zt_cu_token_logprobs,
    .layernorm = zt_cu_layernorm,
    .rmsnorm = zt_cu_rmsnorm,
    .embedding = zt_cu_embedding,
    .rope = zt_cu_rope,
    .attention = zt_cu_attention,
    .copy_2d = zt_cu_copy_2d,
    .sgemm = zt_cu_sgemm,
    .sgemm_strided_batched = zt_cu_sgemm_strided_batched,
    .gemm_mixed = zt_cu_gemm_mixed,
    .gemm_mixed_workspace = zt_cu_gemm_mixed_workspace,
    .set_tf32 = zt_cu_set_tf32,
    .memory_stats = api_memory_stats,
    .newton_schulz = zt_cu_newton_schulz,
    .add_scaled = zt_cu_add_scaled,
    .jaguar_probe = zt_cu_jaguar_probe,
    .jaguar_update = zt_cu_jaguar_update,
    .lerp = zt_cu_lerp,
    .scale_rows = zt_cu_scale_rows,
    .sum_squares = zt_cu_sum_squares,
    .adam_direction = zt_cu_adam_direction,
    .squared_distance = zt_cu_squared_distance,
    .dequantize_rows = zt_cu_dequantize_rows,
    .logsumexp_panel = zt_cu_logsumexp_panel,
    .stream_sum = zt_cu_stream_sum,
    .masked_stream = zt_cu_masked_stream,
    .newton_schulz_batched = zt_cu_newton_schulz_batched,
    .gemm_half = zt_cu_gemm_half,
    .rmsnorm_half = zt_cu_rmsnorm_half,
    .swiglu_half = zt_cu_swiglu_half,
    .graph_begin = api_graph_begin,
    .graph_end = api_graph_end,
    .graph_launch = api_graph_launch,
    .graph_destroy = api_graph_destroy,
    .layernorm_half = zt_cu_layernorm_half,
    .activation_half = zt_cu_activation_half,
    .attention_half = zt_cu_attention_half,
};

ZT_EXPORT const zt_backend_api *zt_cuda_get_api(void) { return &cuda_table; }
