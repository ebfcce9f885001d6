// DiZO's layer-wise projection (docs/optimizers.md): θ = θ⁰ + α(θ_b − θ⁰) written into the
// weights from two shadows, one f32 rounding per element into the storage dtype.
#include "convert_inline.h"
#include "cpu_isa.h"
#include "zt_cpu.h"
#include "zt_optim.h"
#include "zt_threads.h"

typedef struct {
    void *out;
    const void *a, *b;
    zt_dtype dt;
    float alpha;
} lerp_job;

ZT_INLINE void lerp_typed(const lerp_job *j, zt_dtype dt, int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++)
        zt_store(j->out, dt, i, zt_lerp_elem(zt_load(j->a, dt, i), zt_load(j->b, dt, i), j->alpha));
}

ZT_ISA_CLONES static void lerp_range(void *ctx, int64_t s, int64_t e) {
    const lerp_job *j = ctx;
    if (j->dt == ZT_F32) lerp_typed(j, ZT_F32, s, e);
    else if (j->dt == ZT_BF16) lerp_typed(j, ZT_BF16, s, e);
    else lerp_typed(j, ZT_F16, s, e);
}

void zt_lerp(void *out, zt_dtype dtype, const void *a, const void *b, int64_t n, float alpha) {
    lerp_job j = {.out = out, .a = a, .b = b, .dt = dtype, .alpha = alpha};
    zt_parallel_for(n, 32768, lerp_range, &j);
}
