// A small persistent pthread pool: one job at a time, workers sleep on a condition variable.
// Job ranges are a pure function of (n, grain, thread count), so results never depend on timing.
#include "zt_threads.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define ZT_MAX_THREADS 256

typedef struct {
    pthread_mutex_t lock;         // guards everything below
    pthread_cond_t wake;          // workers wait here for a new generation
    pthread_cond_t done;          // the caller waits here for remaining == 0
    pthread_mutex_t submit;       // one job at a time
    pthread_t workers[ZT_MAX_THREADS];
    int nworkers;                 // started workers (threads - 1)
    int nthreads;                 // threads a job is split over (caller included)
    uint64_t generation;
    int remaining;
    zt_range_fn fn;
    void *ctx;
    int64_t n, chunk;
} zt_pool;

static zt_pool pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
    .submit = PTHREAD_MUTEX_INITIALIZER,
    .nthreads = 0,
};
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static _Thread_local int in_task = 0;

static void run_part(int part, zt_range_fn fn, void *ctx, int64_t n, int64_t chunk) {
    int64_t begin = (int64_t)part * chunk;
    int64_t end = begin + chunk < n ? begin + chunk : n;
    if (begin < end) fn(ctx, begin, end);
}

static void *worker_main(void *arg) {
    int part = (int)(intptr_t)arg;  // worker k runs part k (the caller runs part 0)
    uint64_t seen = 0;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.generation == seen) pthread_cond_wait(&pool.wake, &pool.lock);
        seen = pool.generation;
        if (part >= pool.nthreads) continue;  // pool was shrunk: idle
        zt_range_fn fn = pool.fn;
        void *ctx = pool.ctx;
        int64_t n = pool.n, chunk = pool.chunk;
        pthread_mutex_unlock(&pool.lock);
        in_task = 1;
        run_part(part, fn, ctx, n, chunk);
        in_task = 0;
        pthread_mutex_lock(&pool.lock);
        if (--pool.remaining == 0) pthread_cond_signal(&pool.done);
    }
    return NULL;
}

static int default_threads(void) {
    const char *env = getenv("ZOTUNE_NUM_THREADS");
    if (env && atoi(env) > 0) return atoi(env);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void grow_workers(int nthreads) {
    if (nthreads > ZT_MAX_THREADS) nthreads = ZT_MAX_THREADS;
    while (pool.nworkers < nthreads - 1) {
        int part = pool.nworkers + 1;
        if (pthread_create(&pool.workers[pool.nworkers], NULL, worker_main, (void *)(intptr_t)part) != 0) break;
        pthread_detach(pool.workers[pool.nworkers]);
        pool.nworkers++;
    }
    pool.nthreads = pool.nworkers + 1 < nthreads ? pool.nworkers + 1 : nthreads;
}

static void pool_init(void) {
    pthread_mutex_lock(&pool.lock);
    if (pool.nthreads == 0) grow_workers(default_threads());
    pthread_mutex_unlock(&pool.lock);
}

int zt_num_threads(void) {
    pthread_once(&pool_once, pool_init);
    return pool.nthreads;
}

void zt_set_num_threads(int n) {
    pthread_once(&pool_once, pool_init);
    if (n < 1) n = 1;
    pthread_mutex_lock(&pool.submit);
    pthread_mutex_lock(&pool.lock);
    grow_workers(n);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.submit);
}

void zt_parallel_for(int64_t n, int64_t grain, zt_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int threads = zt_num_threads();
    int64_t units = (n + grain - 1) / grain;
    if (threads > units) threads = (int)units;
    // Serial when there is nothing to split, when nested, or when another thread holds the pool.
    if (threads <= 1 || in_task || pthread_mutex_trylock(&pool.submit) != 0) {
        fn(ctx, 0, n);
        return;
    }
    int64_t chunk = ((units + threads - 1) / threads) * grain;
    int parts = (int)((n + chunk - 1) / chunk);
    pthread_mutex_lock(&pool.lock);
    int saved = pool.nthreads;
    pool.nthreads = parts;
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.chunk = chunk;
    pool.remaining = parts - 1;
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);

    in_task = 1;
    run_part(0, fn, ctx, n, chunk);
    in_task = 0;

    pthread_mutex_lock(&pool.lock);
    while (pool.remaining > 0) pthread_cond_wait(&pool.done, &pool.lock);
    pool.nthreads = saved;
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.submit);
}
