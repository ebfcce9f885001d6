// Run-time loading of libzotune_cuda.so: the only place the host touches the CUDA library.
#include <dlfcn.h>
#include <stdio.h>

#include "zt_backend_api.h"

int zt_cuda_load(const char *path, const zt_backend_api **api, int *devices, char *err, size_t err_len) {
    *api = NULL;
    *devices = 0;
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        snprintf(err, err_len, "cannot load %s: %s", path, why ? why : "unknown error");
        return -1;
    }
    zt_cuda_get_api_fn get = (zt_cuda_get_api_fn)dlsym(lib, ZT_CUDA_ENTRY_POINT);
    if (!get) {
        snprintf(err, err_len, "%s has no %s entry point", path, ZT_CUDA_ENTRY_POINT);
        dlclose(lib);
        return -1;
    }
    const zt_backend_api *table = get();
    if (!table || table->abi_version != ZT_BACKEND_ABI_VERSION || table->struct_size != sizeof(zt_backend_api)) {
        snprintf(err, err_len, "%s has ABI version %u (struct %u bytes); this build needs version %u (%zu bytes): rebuild it with Kernels/build.sh",
                 path, table ? table->abi_version : 0u, table ? table->struct_size : 0u,
                 ZT_BACKEND_ABI_VERSION, sizeof(zt_backend_api));
        dlclose(lib);
        return -1;
    }
    int count = 0;
    int rc = table->device_count(&count);
    if (rc != 0 || count <= 0) {
        // cudaGetDeviceCount returns 35 (insufficient driver) or 100 (no device) on machines without a GPU.
        snprintf(err, err_len, "no CUDA device (%s: %s)", path, rc != 0 ? table->last_error() : "0 devices");
        return -1;  // keep the library loaded: unloading CUDA runtimes at exit is fragile
    }
    *api = table;
    *devices = count;
    return 0;
}
