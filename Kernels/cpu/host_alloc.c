// Host buffers of the CPU backend (its malloc/free entries).
//
// Small buffers: posix_memalign, 64-byte aligned (cache lines, aligned SIMD loads).
// Large ones (≥ 4 MiB: weights, a forward's activations, its logits) are mapped 2 MiB-aligned and
// advised onto transparent huge pages, and a freed one is kept for the next request of its size
// (up to HOLD_BLOCKS blocks, HOLD_BYTES in all; else unmapped), as the CUDA library's caching
// allocator does. glibc maps such a buffer afresh for every forward, and first touch of fresh
// memory is the kernel zeroing it page by page: a 400 MB logits buffer (1 × 2048 tokens, SmolLM2's
// vocabulary) cost 476 ms of CPU on 4 KiB pages and 335 ms on huge pages here, 18 ms to write once
// held. A forward repeated at one shape (scoring, training, the bench) gets its buffers back
// without a fault: `zotune bench forward` at 1 × 2048 (load and 4 forwards) took 558k page faults
// before, 115k after.
// Not zeroed (as cudaMalloc): the backend memsets the buffers that are not fully written before
// they are read. ZOTUNE_HUGE_PAGES=0: plain posix_memalign for every size, nothing held (to measure this).
#include "zt_cpu.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HEADER 64                      // before every buffer: its kind and mapping (keeps 64-byte alignment)
#define LARGE_MIN ((size_t)4 << 20)
#define HUGE_PAGE ((size_t)2 << 20)
#define HOLD_BLOCKS 16
#define HOLD_BYTES ((size_t)512 << 20)  // a 1 × 2048 forward of SmolLM2 holds ~450 MiB (384 of logits)
#define MAGIC_SMALL 0x7a74736d616c6cULL
#define MAGIC_LARGE 0x7a746c61726765ULL

typedef struct {
    uint64_t magic;
    void *base;      // start of the mapping (large) or of the posix_memalign block (small)
    size_t mapped;   // bytes mapped (large)
} header;

static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static struct { void *base; size_t mapped; } held[HOLD_BLOCKS];
static int nheld;
static size_t held_bytes;

static int large_wanted(void) {
    static int wanted = -1;  // read once; a benign race (every thread reads the same value)
    if (wanted < 0) {
        const char *e = getenv("ZOTUNE_HUGE_PAGES");
        wanted = !(e && !strcmp(e, "0"));
    }
    return wanted;
}

// A mapping of `mapped` bytes whose data (at base + HUGE_PAGE) is 2 MiB-aligned; the header sits
// in the normal page just below it.
static void *map_large(size_t mapped) {
    pthread_mutex_lock(&hold_lock);
    for (int i = nheld - 1; i >= 0; i--)
        if (held[i].mapped == mapped) {
            void *base = held[i].base;
            held[i] = held[--nheld];
            held_bytes -= mapped;
            pthread_mutex_unlock(&hold_lock);
            return base;
        }
    pthread_mutex_unlock(&hold_lock);
    // Over-map by one huge page and cut the unaligned head and tail.
    const size_t span = mapped + HUGE_PAGE;
    char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        // Out of memory (or address space): give back every held block and try once more.
        pthread_mutex_lock(&hold_lock);
        const int released = nheld;
        while (nheld > 0) { nheld--; munmap(held[nheld].base, held[nheld].mapped); }
        held_bytes = 0;
        pthread_mutex_unlock(&hold_lock);
        if (!released) return NULL;
        raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED) return NULL;
    }
    char *base = (char *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (base > raw) munmap(raw, (size_t)(base - raw));
    if (raw + span > base + mapped) munmap(base + mapped, (size_t)(raw + span - (base + mapped)));
    (void)madvise(base + HUGE_PAGE, mapped - HUGE_PAGE, MADV_HUGEPAGE);  // advice: without THP, 4 KiB pages
    return base;
}

int zt_host_malloc(void **p, size_t bytes) {
    if (bytes >= LARGE_MIN && large_wanted()) {
        // Data rounded up to whole huge pages, one page in front for the header.
        const size_t mapped = HUGE_PAGE + ((bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1));
        char *base = map_large(mapped);
        if (!base) { *p = NULL; return 2; }
        char *data = base + HUGE_PAGE;
        *(header *)(data - HEADER) = (header){MAGIC_LARGE, base, mapped};
        *p = data;
        return 0;
    }
    void *raw;
    if (posix_memalign(&raw, 64, bytes + HEADER) != 0) { *p = NULL; return 2; }
    *(header *)raw = (header){MAGIC_SMALL, raw, 0};
    *p = (char *)raw + HEADER;
    return 0;
}

int zt_host_free(void *p) {
    if (!p) return 0;
    const header h = *(const header *)((char *)p - HEADER);
    if (h.magic == MAGIC_SMALL) {
        free(h.base);
        return 0;
    }
    if (h.magic != MAGIC_LARGE) return 1;  // not ours: leak rather than corrupt
    pthread_mutex_lock(&hold_lock);
    if (nheld < HOLD_BLOCKS && held_bytes + h.mapped <= HOLD_BYTES) {
        held[nheld].base = h.base;
        held[nheld].mapped = h.mapped;
        nheld++;
        held_bytes += h.mapped;
        pthread_mutex_unlock(&hold_lock);
        return 0;
    }
    pthread_mutex_unlock(&hold_lock);
    munmap(h.base, h.mapped);
    return 0;
}
