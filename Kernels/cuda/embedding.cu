// Embedding lookup: out(n, dim) = table(vocab, dim)[ids(n)] widened to f32 (bit-identical to the
// CPU: a copy or an exact widening). Rows of out-of-range ids are zeroed; with count_bad they are
// also counted on the device and the count comes back to the host, so the call waits for its
// stream. The model checks its ids on the host and passes count_bad = 0: no wait in a forward.
#include "kernels.cuh"
#include "numerics.cuh"

#define EMB_THREADS 256

// Grid-stride over rows: blockIdx.x walks tokens, threads walk the row.
template <int DT>
__global__ void __launch_bounds__(EMB_THREADS) embedding_kernel(float *out, const void *table, int64_t vocab,
                                                                int64_t dim, const int32_t *ids, int64_t n) {
    for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
        const int64_t id = ids[t];
        float *dst = out + t * dim;
        if (id < 0 || id >= vocab) {
            for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) dst[j] = 0.0f;
            continue;
        }
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) dst[j] = zt_ld<DT>(table, id * dim + j);
    }
}

// *count += number of ids outside [0, vocab): one atomic per block.
__global__ void __launch_bounds__(EMB_THREADS) count_bad_ids_kernel(const int32_t *ids, int64_t n, int64_t vocab, int *count) {
    __shared__ int block_bad;
    if (threadIdx.x == 0) block_bad = 0;
    __syncthreads();
    int bad = 0;
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (int64_t)gridDim.x * blockDim.x)
        bad += (ids[t] < 0 || (int64_t)ids[t] >= vocab);
    if (bad) atomicAdd(&block_bad, bad);
    __syncthreads();
    if (threadIdx.x == 0 && block_bad) atomicAdd(count, block_bad);
}

int zt_cu_count_bad_ids_start(zt_ctx *c, const int32_t *d_ids, int64_t n, int64_t vocab, const char *what) {
    if (zt_cuda_check(cudaMemsetAsync(c->d_counter, 0, sizeof(int), c->stream), what)) return -1;
    count_bad_ids_kernel<<<zt_grid(c, n, EMB_THREADS, 2), EMB_THREADS, 0, c->stream>>>(d_ids, n, vocab, c->d_counter);
    zt_launch_check(what);  // returned by the count's read
    return 0;
}

int64_t zt_cu_count_bad_ids_finish(zt_ctx *c, const char *what) {
    int bad = 0;
    if (zt_read_host(c, &bad, c->d_counter, sizeof bad, what)) return -1;  // an earlier launch error too
    return bad;
}

// Returns the bad-id count, or −1 on a device error (last_error says which).
int64_t zt_cu_embedding(float *d_out, const void *d_table, zt_dtype dtype, int64_t vocab, int64_t dim,
                        const int32_t *d_ids, int64_t n, int count_bad) {
    if (n <= 0) return 0;
    zt_ctx *c = zt_ctx_get();
    if (!c) return -1;
    if (dtype != ZT_F32 && dtype != ZT_BF16 && dtype != ZT_F16) {
        zt_error((int)cudaErrorInvalidValue, "embedding: unknown dtype %d", (int)dtype);
        return -1;
    }
    if (count_bad && zt_cu_count_bad_ids_start(c, d_ids, n, vocab, "embedding (counter)")) return -1;
    if (dim > 0) {
        const unsigned grid = (unsigned)(n < 65535 * 16 ? n : 65535 * 16);
        switch (dtype) {
        case ZT_F32: embedding_kernel<ZT_F32><<<grid, EMB_THREADS, 0, c->stream>>>(d_out, d_table, vocab, dim, d_ids, n); break;
        case ZT_BF16: embedding_kernel<ZT_BF16><<<grid, EMB_THREADS, 0, c->stream>>>(d_out, d_table, vocab, dim, d_ids, n); break;
        default: embedding_kernel<ZT_F16><<<grid, EMB_THREADS, 0, c->stream>>>(d_out, d_table, vocab, dim, d_ids, n); break;
        }
    }
    if (zt_cuda_check(cudaGetLastError(), "embedding (launch)")) return -1;
    return count_bad ? zt_cu_count_bad_ids_finish(c, "embedding (count)") : 0;
}
