// Device checks of ABI 11 (included by check.c before the host table, which uses the host_* here):
//  - rmsnorm_half / swiglu_half: an activation rounded once, in the kernel that makes it, is the
//    round-after pair (rmsnorm or swiglu, then convert) bit for bit; the f32 output is the plain
//    kernel's bits. On a GPU the device kernels against the device pair; in the dry run the host
//    table's emulation (the CPU op, then numerics.cuh's store, emulate.cpp) against the host pair,
//    and always the CPU table's kernels (fused_half.c) against the CPU pair.
//  - graph capture: a small Llama-shaped forward (embedding, L × [rmsnorm, q/k/v, rope, attention,
//    o, residual, rmsnorm, gate/up, swiglu, down, residual], final norm, head, token log-probs) run
//    eagerly and replayed from a recorded graph: logits bit-identical, new inputs uploaded into the
//    recorded input buffer read by the replay, allocations made after the recording never handed a
//    block the replay writes, and the waits refused while recording; the enqueue time per forward,
//    eager vs one graph launch. The host table (like the CPU backend) has no graphs: the dry run checks
//    that all four entries say so, and runs the eager forward twice (bit for bit).

#include "zt_half.h"

int zt_emu_round_store(void *half, zt_dtype half_dtype, const float *v, int64_t n);  // emulate.cpp

// ---- host table entries (dry run) -----------------------------------------------------------------
// The device kernel's emulation: the op's f32 values (the CPU kernel, as the other row kernels of the
// host table), rounded by the device's store code.
static int host_rmsnorm_half(float *out, void *half, zt_dtype dt, const float *x, const float *gamma, int64_t rows, int64_t dim,
                             float eps) {
    if (dt != ZT_BF16 && dt != ZT_F16) return 1;
    float *v = out ? out : malloc((size_t)(rows * dim > 0 ? rows * dim : 1) * 4);
    zt_rmsnorm(v, x, gamma, rows, dim, eps);
    zt_emu_round_store(half, dt, v, rows * dim);
    if (!out) free(v);
    return 0;
}
static int host_swiglu_half(float *out, void *half, zt_dtype dt, const float *gate, const float *up, int64_t n) {
    if (dt != ZT_BF16 && dt != ZT_F16) return 1;
    float *v = out ? out : malloc((size_t)(n > 0 ? n : 1) * 4);
    zt_swiglu(v, gate, up, n);
    zt_emu_round_store(half, dt, v, n);
    if (!out) free(v);
    return 0;
}
static char host_graph_error[96];
static int host_graph_no(const char *what) {
    snprintf(host_graph_error, sizeof host_graph_error, "%s: no graphs on the host table", what);
    return 801;
}
static int host_graph_begin(void) { return host_graph_no("graph_begin"); }
static int host_graph_end(uint64_t *g) { *g = 0; return host_graph_no("graph_end"); }
static int host_graph_launch(uint64_t g) { (void)g; return host_graph_no("graph_launch"); }
static int host_graph_destroy(uint64_t g) { return g ? host_graph_no("graph_destroy") : 0; }

// ---- rmsnorm_half / swiglu_half -----------------------------------------------------------------
// One device check of a producer (here and in check_half.c), n elements: the round-after pair's f32
// result dr and its half drh, read back into r and rh; the fused kernel's outputs dout and dh (one
// spare element each, for a misaligned pointer) and dy (an output aliasing an input), read back into
// o and h; and the compares so far, with the first difference's label and detail.
typedef struct {
    int64_t n, bad, cmp;
    float *r, *o, *dr, *dout, *dy;
    uint16_t *rh, *h, *drh, *dh;
    char first[200];
} half_case;
static void half_case_init(half_case *c, int64_t n) {
    const int64_t n1 = n + 1;
    *c = (half_case){.n = n};
    c->r = hmalloc(n * 4);
    c->o = hmalloc(n * 4);
    c->rh = hmalloc(n * 2);
    c->h = hmalloc(n * 2);
    c->dr = dalloc(n * 4);
    c->dout = dalloc(n1 * 4);
    c->dy = dalloc(n * 4);
    c->drh = dalloc(n * 2);
    c->dh = dalloc(n1 * 2);
}
// The pair's half from its f32 result (already in dr), both read back; the fused outputs poisoned.
static void half_case_reference(half_case *c, zt_dtype dt) {
    G->convert(c->drh, dt, c->dr, ZT_F32, c->n);
    d2h(c->r, c->dr, c->n * 4);
    d2h(c->rh, c->drh, c->n * 2);
    dpoison(c->dout, (c->n + 1) * 4);
    dpoison(c->dh, (c->n + 1) * 2);
}
// One compare: an f32 output (elem 4) against r or a half one (elem 2) against rh, read back from dev.
// gamma < 0: no γ variant to name in the label.
static void half_case_tally(half_case *c, const void *dev, int elem, const char *what, int gamma) {
    void *back = elem == 4 ? (void *)c->o : (void *)c->h;
    char detail[160];
    d2h(back, dev, (size_t)c->n * (size_t)elem);
    c->cmp++;
    if (!diff_bits(back, elem == 4 ? (void *)c->r : (void *)c->rh, c->n, elem, detail, sizeof detail)) return;
    if (!c->bad) snprintf(c->first, sizeof c->first, "%s%s: %s", what, gamma < 0 ? "" : gamma ? " (γ)" : " (no γ)", detail);
    c->bad++;
}
// A failed call counts as a difference; what (may be NULL) labels it.
static void half_case_status(half_case *c, int rc, const char *what) {
    if (!rc) return;
    c->bad++;
    snprintf(c->first, sizeof c->first, "%s%sstatus %d: %s", what ? what : "", what ? ": " : "", rc, G->last_error());
}
// The check's line (op: the pair it is held to), then the buffers freed.
static void half_case_done(half_case *c, const char *name, const char *op) {
    result(c->bad == 0, name, "%lld of %lld compares differ from %s + convert%s%s", (long long)c->bad, (long long)c->cmp, op,
           c->bad ? "; first: " : "", c->first);
    dfree(c->dr); dfree(c->dout); dfree(c->dy); dfree(c->drh); dfree(c->dh);
    free(c->r); free(c->o); free(c->rh); free(c->h);
}
static void dev_half_producers(void) {
    section("activations rounded in the producing kernel: rmsnorm_half / swiglu_half == op + convert, bit for bit");
    char name[160];
    // The CPU table's kernels (fused_half.c: panels of 2^16 elements) against the CPU pair, across panel
    // boundaries (rows·dim > 2^16, dim > 2^16) and with out NULL.
    {
        const struct { int64_t rows, dim; } sh[] = {{300, 576}, {2, 70001}, {1, 1}};
        int64_t bad = 0, cmp = 0;
        for (int di = 0; di < 2; di++)
            for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
                const zt_dtype dt = di ? ZT_F16 : ZT_BF16;
                const int64_t n = sh[s].rows * sh[s].dim;
                float *x = hmalloc(n * 4), *g = hmalloc(sh[s].dim * 4), *r = hmalloc(n * 4), *o = hmalloc(n * 4), *u = hmalloc(n * 4);
                uint16_t *rh = hmalloc(n * 2), *h1 = hmalloc(n * 2), *h2 = hmalloc(n * 2);
                fill_normal_host(x, n, 3, 0);
                fill_normal_host(u, n, 1, 0);
                fill_normal_host(g, sh[s].dim, 0.5f, 1);
                zt_rmsnorm(r, x, g, sh[s].rows, sh[s].dim, 1e-5f);
                zt_convert(rh, dt, r, ZT_F32, n);
                int rc = zt_rmsnorm_half(o, h1, dt, x, g, sh[s].rows, sh[s].dim, 1e-5f);
                rc |= zt_rmsnorm_half(NULL, h2, dt, x, g, sh[s].rows, sh[s].dim, 1e-5f);
                bad += rc != 0 || memcmp(o, r, n * 4) || memcmp(h1, rh, n * 2) || memcmp(h2, rh, n * 2);
                zt_swiglu(r, x, u, n);
                zt_convert(rh, dt, r, ZT_F32, n);
                rc = zt_swiglu_half(o, h1, dt, x, u, n) | zt_swiglu_half(NULL, h2, dt, x, u, n);
                bad += rc != 0 || memcmp(o, r, n * 4) || memcmp(h1, rh, n * 2) || memcmp(h2, rh, n * 2);
                cmp += 2;
                free(x); free(g); free(r); free(o); free(u); free(rh); free(h1); free(h2);
            }
        const int refused = zt_rmsnorm_half(NULL, NULL, ZT_F32, NULL, NULL, 1, 1, 1e-5f) != 0 &&
                            zt_swiglu_half(NULL, NULL, ZT_F32, NULL, NULL, 1) != 0;
        result(bad == 0 && refused, "CPU rmsnorm_half / swiglu_half == op + zt_convert", "%lld of %lld cases differ; f32 half dtype refused: %s",
               (long long)bad, (long long)cmp, refused ? "yes" : "NO");
    }
    // The table under test: fused kernel against the same table's pair.
    const struct { int64_t rows, dim; } shapes[] = {{1, 1}, {3, 576}, {SZ(256, 64), 576}, {5, 1536}, {2, SZ(8192, 4100)}, {7, 33}};
    for (int di = 0; di < 2; di++) {
        const zt_dtype dt = di ? ZT_F16 : ZT_BF16;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int64_t rows = shapes[s].rows, dim = shapes[s].dim, n = rows * dim;
            float *dx = dnormal(n, 0, 3, 0), *dg = dnormal(dim, 0, 0.5f, 1);
            half_case c;
            half_case_init(&c, n);
            for (int gi = 0; gi < 2; gi++) {  // with γ, without
                const float *gm = gi ? NULL : dg;
                G->rmsnorm(c.dr, dx, gm, rows, dim, 1e-5f);  // the round-after pair
                half_case_reference(&c, dt);
                int rc = G->rmsnorm_half(c.dout, c.dh, dt, dx, gm, rows, dim, 1e-5f);
                half_case_tally(&c, c.dout, 4, "f32 out", !gi);
                half_case_tally(&c, c.dh, 2, "half", !gi);
                dpoison(c.dh, n * 2);
                rc |= G->rmsnorm_half(NULL, c.dh, dt, dx, gm, rows, dim, 1e-5f);
                half_case_tally(&c, c.dh, 2, "half only", !gi);
                G->memcpy_d2d(c.dy, dx, n * 4);  // in place: out = x
                rc |= G->rmsnorm_half(c.dy, c.dh, dt, c.dy, gm, rows, dim, 1e-5f);
                half_case_tally(&c, c.dy, 4, "in place", !gi);
                half_case_tally(&c, c.dh, 2, "in place half", !gi);
                half_case_status(&c, rc, NULL);
            }
            snprintf(name, sizeof name, "rmsnorm_half %s %lldx%lld", dtname(dt), (long long)rows, (long long)dim);
            half_case_done(&c, name, "rmsnorm");
            dfree(dx); dfree(dg);
        }
        const int64_t sizes[] = {1, 7, 4099, SZ(((int64_t)1 << 22) + 3, 70001)};
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            const int64_t n = sizes[s], off = s % 2;  // odd sizes at a misaligned offset too
            float *da = dnormal(n, off, 4, 0), *db = dnormal(n, off, 1, 0);
            half_case c;
            half_case_init(&c, n);
            G->swiglu(c.dr, da + off, db + off, n);
            half_case_reference(&c, dt);
            int rc = G->swiglu_half(c.dout + off, c.dh + off, dt, da + off, db + off, n);
            half_case_tally(&c, c.dout + off, 4, "f32 out", -1);
            half_case_tally(&c, c.dh + off, 2, "half", -1);
            dpoison(c.dh, (n + 1) * 2);
            rc |= G->swiglu_half(NULL, c.dh + off, dt, da + off, db + off, n);
            half_case_tally(&c, c.dh + off, 2, "half only", -1);
            half_case_status(&c, rc, NULL);
            snprintf(name, sizeof name, "swiglu_half %s n %lld%s", dtname(dt), (long long)n, off ? " (offset 1)" : "");
            half_case_done(&c, name, "swiglu");
            dfree(da); dfree(db);
        }
    }
    const int r1 = G->rmsnorm_half(NULL, NULL, ZT_F32, NULL, NULL, 1, 1, 1e-5f), r2 = G->swiglu_half(NULL, NULL, ZT_F32, NULL, NULL, 1);
    result(r1 != 0 && r2 != 0, "rmsnorm_half / swiglu_half refuse f32", "status %d, %d", r1, r2);
}

// ---- graph capture of a forward ------------------------------------------------------------------
typedef struct {
    int64_t V, H, L, Hq, Hkv, D, I, B, T;
    int mixed;                 // 1: bf16 weights, activations rounded in their producers, gemm_half
    float *embed, *norms;      // (V, H); (2L + 1, H)
    void *w[7];                // per kind, L matrices one after another: q, k, v, o, gate, up, down
    void *head;                // (V, H)
    float *inv_freq;           // (D / 2)
    int32_t *ids, *pos, *targets;  // (N) inputs, made before any recording
    float *logits, *lp;        // (N, V), (N) outputs, made before any recording
    int launches;              // table calls of one forward
} fwd_model;

// Weight kind → its (n, k): C(N, n) = A(N, k)·Wᵀ.
static void fwd_dims(const fwd_model *m, int kind, int64_t *n, int64_t *k) {
    const int64_t q = m->Hq * m->D, kv = m->Hkv * m->D;
    switch (kind) {
    case 0: *n = q; *k = m->H; break;
    case 1: case 2: *n = kv; *k = m->H; break;
    case 3: *n = m->H; *k = q; break;
    case 4: case 5: *n = m->I; *k = m->H; break;
    default: *n = m->H; *k = m->I; break;
    }
}

// C(N, n) = A(N, k) · W_kindᵀ (W stored (n, k)); A f32 (gemm_mixed / sgemm) or 16-bit (gemm_half).
static void fwd_gemm(fwd_model *m, int kind, int64_t layer, const void *A, int a_half, float *C, int64_t N, void *ws) {
    int64_t n, k;
    fwd_dims(m, kind, &n, &k);
    const size_t es = m->mixed ? 2 : 4;
    const char *W = (const char *)m->w[kind] + (size_t)layer * n * k * es;
    int rc;
    if (!m->mixed) rc = G->sgemm(0, 1, N, n, k, 1.0f, A, k, (const float *)W, k, 0.0f, C, n);
    else if (a_half) rc = G->gemm_half(1, N, n, k, 1.0f, A, k, W, ZT_BF16, k, 0.0f, C, n, ws);
    else rc = G->gemm_mixed(1, N, n, k, 1.0f, A, k, W, ZT_BF16, k, 0.0f, C, n, ws);
    if (rc) die("forward gemm (kind %d): status %d: %s", kind, rc, G->last_error());
    m->launches++;
}

// One forward as the model runs it: activations malloc'ed and freed inside (the allocator's reuse is
// what a recording must not be exposed to), nothing read back.
static void fwd_run(fwd_model *m) {
    const int64_t N = m->B * m->T, H = m->H, q = m->Hq * m->D, kv = m->Hkv * m->D, I = m->I;
    const float eps = 1e-5f;
    m->launches = 0;
    size_t wsb = G->gemm_mixed_workspace(N, m->V > I ? m->V : I, I > H ? I : H);
    void *ws = m->mixed ? dalloc(wsb) : NULL;
    float *x = dalloc(N * H * 4);
    G->embedding(x, m->embed, ZT_F32, m->V, H, m->ids, N, 0);
    m->launches++;
    for (int64_t l = 0; l < m->L; l++) {
        float *h = dalloc(N * H * 4), *Q = dalloc(N * q * 4), *K = dalloc(N * kv * 4), *Vv = dalloc(N * kv * 4);
        void *hh = m->mixed ? dalloc(N * (I > H ? I : H) * 2) : NULL;
        const float *g1 = m->norms + (2 * l) * H, *g2 = m->norms + (2 * l + 1) * H;
        if (m->mixed) G->rmsnorm_half(NULL, hh, ZT_BF16, x, g1, N, H, eps);
        else G->rmsnorm(h, x, g1, N, H, eps);
        m->launches++;
        fwd_gemm(m, 0, l, m->mixed ? hh : (void *)h, 1, Q, N, ws);
        fwd_gemm(m, 1, l, m->mixed ? hh : (void *)h, 1, K, N, ws);
        fwd_gemm(m, 2, l, m->mixed ? hh : (void *)h, 1, Vv, N, ws);
        G->rope(Q, m->pos, N, m->Hq, m->D, m->D, m->inv_freq, 1.0f);
        G->rope(K, m->pos, N, m->Hkv, m->D, m->D, m->inv_freq, 1.0f);
        float *A = dalloc(N * q * 4);
        G->attention(A, Q, K, Vv, NULL, m->B, m->T, m->T, m->T, m->Hq, m->Hkv, m->D, 1.0f / sqrtf((float)m->D), 0, 0.0f);
        m->launches += 3;
        fwd_gemm(m, 3, l, A, 0, h, N, ws);
        G->add(x, x, h, N * H);
        if (m->mixed) G->rmsnorm_half(NULL, hh, ZT_BF16, x, g2, N, H, eps);
        else G->rmsnorm(h, x, g2, N, H, eps);
        m->launches += 2;
        float *gt = dalloc(N * I * 4), *up = dalloc(N * I * 4);
        fwd_gemm(m, 4, l, m->mixed ? hh : (void *)h, 1, gt, N, ws);
        fwd_gemm(m, 5, l, m->mixed ? hh : (void *)h, 1, up, N, ws);
        if (m->mixed) G->swiglu_half(NULL, hh, ZT_BF16, gt, up, N * I);
        else G->swiglu(gt, gt, up, N * I);
        m->launches++;
        fwd_gemm(m, 6, l, m->mixed ? hh : (void *)gt, 1, h, N, ws);
        G->add(x, x, h, N * H);
        m->launches++;
        dfree(h); dfree(Q); dfree(K); dfree(Vv); dfree(A); dfree(gt); dfree(up);
        if (hh) dfree(hh);
    }
    float *h = dalloc(N * H * 4);
    G->rmsnorm(h, x, m->norms + 2 * m->L * H, N, H, eps);
    m->launches++;
    int rc = m->mixed ? G->gemm_mixed(1, N, m->V, H, 1.0f, h, H, m->head, ZT_BF16, H, 0.0f, m->logits, m->V, ws)
                      : G->sgemm(0, 1, N, m->V, H, 1.0f, h, H, m->head, H, 0.0f, m->logits, m->V);
    if (rc) die("forward head: status %d: %s", rc, G->last_error());
    G->token_logprobs(m->lp, m->logits, m->targets, N, m->V);
    m->launches += 2;
    dfree(h); dfree(x);
    if (ws) dfree(ws);
}

static void fwd_inputs(fwd_model *m, uint64_t salt) {
    const int64_t N = m->B * m->T;
    int32_t *ids = hmalloc(N * 4), *pos = hmalloc(N * 4), *tg = hmalloc(N * 4);
    for (int64_t i = 0; i < N; i++) {
        ids[i] = (int32_t)((rnd64() ^ salt) % (uint64_t)m->V);
        pos[i] = (int32_t)(i % m->T);
        tg[i] = (int32_t)(rnd64() % (uint64_t)m->V);
    }
    h2d(m->ids, ids, N * 4);
    h2d(m->pos, pos, N * 4);
    h2d(m->targets, tg, N * 4);
    free(ids); free(pos); free(tg);
}

static void dev_graph_forward(int mixed) {
    section(mixed ? "graph capture: forward, mixed (bf16 weights, activations rounded in their producers)"
                  : "graph capture: forward, f32");
    // Full: SmolLM2-135M's layer shapes (30 layers, 576 wide, 9/3 heads of 64, MLP 1536, vocab
    // 49152) at 4 × 64 tokens, the launch-bound regime; dry run: a few small layers.
    fwd_model m = {.V = SZ(49152, 300), .H = SZ(576, 64), .L = SZ(30, 2), .Hq = SZ(9, 4), .Hkv = SZ(3, 2), .D = SZ(64, 16),
                   .I = SZ(1536, 96), .B = SZ(4, 2), .T = SZ(64, 12), .mixed = mixed};
    const int64_t N = m.B * m.T, H = m.H, q = m.Hq * m.D, kv = m.Hkv * m.D, I = m.I, V = m.V;
    const zt_dtype wdt = mixed ? ZT_BF16 : ZT_F32;
    const size_t es = (size_t)zt_dtype_size(wdt);
    const int64_t per[7] = {q * H, kv * H, kv * H, H * q, I * H, I * H, H * I};
    m.embed = dalloc(V * H * 4);
    G->fill_normal(m.embed, ZT_F32, V * H, 0, 21, 1, 0, 1.0f);
    m.norms = dalloc((2 * m.L + 1) * H * 4);
    {
        float *g = hmalloc((2 * m.L + 1) * H * 4);
        fill_normal_host(g, (2 * m.L + 1) * H, 0.1f, 1.0f);
        h2d(m.norms, g, (2 * m.L + 1) * H * 4);
        free(g);
    }
    for (int k = 0; k < 7; k++) {
        m.w[k] = dalloc(m.L * per[k] * es);
        G->fill_normal(m.w[k], wdt, m.L * per[k], 0, 30 + k, 1, 0, 0.04f);
    }
    m.head = dalloc(V * H * es);
    G->fill_normal(m.head, wdt, V * H, 0, 40, 1, 0, 0.04f);
    {
        float *f = hmalloc(m.D / 2 * 4);
        for (int64_t i = 0; i < m.D / 2; i++) f[i] = powf(10000.0f, -2.0f * (float)i / (float)m.D);
        m.inv_freq = dalloc(m.D / 2 * 4);
        h2d(m.inv_freq, f, m.D / 2 * 4);
        free(f);
    }
    m.ids = dalloc(N * 4);
    m.pos = dalloc(N * 4);
    m.targets = dalloc(N * 4);
    m.logits = dalloc(N * V * 4);
    m.lp = dalloc(N * 4);
    float *e1 = hmalloc(N * V * 4), *e2 = hmalloc(N * V * 4), *r = hmalloc(N * V * 4);
    char name[96];
    const char *tag = mixed ? "mixed" : "f32";

    // eager, twice: the forward itself is deterministic (else no replay could match it)
    fwd_inputs(&m, 1);
    fwd_run(&m);
    d2h(e1, m.logits, N * V * 4);
    dpoison(m.logits, N * V * 4);
    fwd_run(&m);
    d2h(e2, m.logits, N * V * 4);
    snprintf(name, sizeof name, "forward %s: eager run to run", tag);
    result(memcmp(e1, e2, N * V * 4) == 0, name, "%lld x %lld tokens, %lld layers, %d table calls per forward: logits %s",
           (long long)m.B, (long long)m.T, (long long)m.L, m.launches, memcmp(e1, e2, N * V * 4) == 0 ? "bit-identical" : "DIFFERENT");

    int rc = G->graph_begin();
    if (rc != 0) {
        uint64_t g = 7;
        const int e = G->graph_end(&g), l = G->graph_launch(1), d = G->graph_destroy(0);
        snprintf(name, sizeof name, "graph %s: not supported here", tag);
        // Only a table without graphs may say so; a GPU must record.
        result(g_dry && e != 0 && g == 0 && l != 0 && d == 0, name, "graph_begin %d (%s), graph_end %d (graph %llu), graph_launch %d, "
               "graph_destroy(0) %d", rc, G->last_error(), e, (unsigned long long)g, l, d);
    } else {
        fwd_run(&m);  // recorded, not run
        float probe = 0;
        const int w1 = G->memcpy_d2h(&probe, m.lp, 4), w2 = G->synchronize();  // refused, the recording goes on
        uint64_t graph = 0;
        rc = G->graph_end(&graph);
        snprintf(name, sizeof name, "graph %s: recorded", tag);
        result(rc == 0 && graph != 0 && w1 != 0 && w2 != 0, name, "status %d%s%s; waits while recording refused: memcpy_d2h %d, synchronize %d",
               rc, rc ? ": " : "", rc ? G->last_error() : "", w1, w2);
        if (rc == 0 && graph) {
            dpoison(m.logits, N * V * 4);
            dcheck(G->graph_launch(graph), "graph_launch");
            d2h(r, m.logits, N * V * 4);
            snprintf(name, sizeof name, "graph %s: replay == eager", tag);
            check_bits(name, r, e1, N * V, 4);
            // Blocks allocated now, of every size the forward freed, must not be ones a replay writes.
            const size_t sz[6] = {(size_t)N * H * 4, (size_t)N * q * 4, (size_t)N * kv * 4, (size_t)N * I * 4,
                                  (size_t)N * (I > H ? I : H) * 2, G->gemm_mixed_workspace(N, V > I ? V : I, I > H ? I : H)};
            void *intr[12];
            uint8_t *back = hmalloc(sz[3] > sz[5] ? sz[3] : sz[5]);
            for (int k = 0; k < 12; k++) {
                intr[k] = dalloc(sz[k % 6]);
                dcheck(G->memset(intr[k], 0x5A, sz[k % 6]), "memset");
            }
            dpoison(m.logits, N * V * 4);
            dcheck(G->graph_launch(graph), "graph_launch");
            d2h(r, m.logits, N * V * 4);
            int untouched = 1;
            for (int k = 0; k < 12; k++) {
                d2h(back, intr[k], sz[k % 6]);
                for (size_t i = 0; i < sz[k % 6]; i++) untouched &= back[i] == 0x5A;
            }
            snprintf(name, sizeof name, "graph %s: replay after new allocations", tag);
            result(untouched && memcmp(r, e1, N * V * 4) == 0, name, "12 blocks of the forward's sizes %s; logits %s",
                   untouched ? "untouched by the replay" : "OVERWRITTEN by the replay", memcmp(r, e1, N * V * 4) == 0 ? "== eager" : "DIFFERENT");
            for (int k = 0; k < 12; k++) dfree(intr[k]);
            free(back);
            // New inputs in the recorded buffers: the replay reads them.
            fwd_inputs(&m, 2);
            dcheck(G->graph_launch(graph), "graph_launch");
            d2h(r, m.logits, N * V * 4);
            fwd_run(&m);
            d2h(e2, m.logits, N * V * 4);
            snprintf(name, sizeof name, "graph %s: new inputs, replay == eager", tag);
            result(memcmp(r, e2, N * V * 4) == 0 && memcmp(r, e1, N * V * 4) != 0, name, "logits %s the eager forward of the new ids (%s the old ones)",
                   memcmp(r, e2, N * V * 4) == 0 ? "==" : "DIFFER from", memcmp(r, e1, N * V * 4) != 0 ? "differ from" : "SAME as");
            // Enqueue time of one forward (host time to issue it, from an idle stream: a few forwards
            // queued back to back would fill the launch queue and time the GPU instead) and its wall
            // time to the end of the work; the best of `reps` each.
            const int reps = SZ(20, 2);
            double en_e = 1e9, en_g = 1e9, wall_e = 1e9, wall_g = 1e9;
            for (int i = 0; i < reps; i++) {
                dsync("timing");
                double t0 = now();
                fwd_run(&m);
                const double t1 = now();
                dsync("timing");
                const double t2 = now();
                dcheck(G->graph_launch(graph), "graph_launch");
                const double t3 = now();
                dsync("timing");
                const double t4 = now();
                en_e = fmin(en_e, t1 - t0);
                wall_e = fmin(wall_e, t2 - t0);
                en_g = fmin(en_g, t3 - t2);
                wall_g = fmin(wall_g, t4 - t2);
            }
            printf("graph: forward %s %lldx%lld, %d calls: enqueue eager %.3f ms, graph %.3f ms (saved %.3f ms); wall eager %.3f ms, "
                   "graph %.3f ms (%.2fx)\n", tag, (long long)m.B, (long long)m.T, m.launches, en_e * 1e3, en_g * 1e3,
                   (en_e - en_g) * 1e3, wall_e * 1e3, wall_g * 1e3, wall_e / wall_g);
            snprintf(name, sizeof name, "graph %s: destroyed", tag);
            rc = G->graph_destroy(graph);
            const int again = G->graph_launch(graph);
            result(rc == 0 && again != 0, name, "graph_destroy %d; a launch of it afterwards refused (%d)", rc, again);
        }
    }
    dfree(m.embed); dfree(m.norms); dfree(m.head); dfree(m.inv_freq);
    for (int k = 0; k < 7; k++) dfree(m.w[k]);
    dfree(m.ids); dfree(m.pos); dfree(m.targets); dfree(m.logits); dfree(m.lp);
    free(e1); free(e2); free(r);
}
