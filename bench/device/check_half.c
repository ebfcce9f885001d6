// Device checks of ABI 12 (included by check.c after check_graph.c, before the host table):
// layernorm_half, activation_half (relu, silu, gelu_tanh, gelu_erf, each alone and ⊙ a second
// input) and attention_half write their output rounded to bf16/f16 in the kernel that makes it:
// the bits of the table's op followed by its convert, and the f32 output the op's bits. On a GPU
// the device kernels against the device pair (attention under each of its kernels: auto, tile,
// warp); in the dry run the host table's emulation (the CPU op, then numerics.cuh's store through
// emulate.cpp) against the host pair; and always the CPU table's kernels (fused_half.c) against the
// CPU pair, across its 2^16-element panels and with out aliasing an input.

// ---- host table entries (dry run): the CPU op, then the device's store code ---------------------
static int host_layernorm_half(float *out, void *half, zt_dtype dt, const float *x, const float *gamma, const float *beta,
                               int64_t rows, int64_t dim, float eps) {
    if (dt != ZT_BF16 && dt != ZT_F16) return 1;
    float *v = out ? out : malloc((size_t)(rows * dim > 0 ? rows * dim : 1) * 4);
    zt_layernorm(v, x, gamma, beta, rows, dim, eps);
    zt_emu_round_store(half, dt, v, rows * dim);
    if (!out) free(v);
    return 0;
}
typedef void (*act_fn)(float *, const float *, int64_t);
static act_fn cpu_act(int act) {
    return act == ZT_ACT_RELU ? zt_relu : act == ZT_ACT_SILU ? zt_silu : act == ZT_ACT_GELU_TANH ? zt_gelu_tanh
         : act == ZT_ACT_GELU_ERF ? zt_gelu_erf : NULL;
}
static int host_activation_half(int act, float *out, void *half, zt_dtype dt, const float *x, const float *mul, int64_t n) {
    if (dt != ZT_BF16 && dt != ZT_F16) return 1;
    if (!cpu_act(act)) return 3;
    float *v = malloc((size_t)(n > 0 ? n : 1) * 4);
    cpu_act(act)(v, x, n);
    if (mul) zt_mul(v, v, mul, n);
    zt_emu_round_store(half, dt, v, n);
    if (out) memcpy(out, v, (size_t)(n > 0 ? n : 0) * 4);
    free(v);
    return 0;
}
static int host_attention_half(float *out, void *half, zt_dtype dt, const float *q, const float *k, const float *v,
                               const uint8_t *m, int64_t B, int64_t T, int64_t S, int64_t S_cap, int64_t Hq, int64_t Hkv,
                               int64_t D, float scale, int64_t window, float softcap) {
    if (dt != ZT_BF16 && dt != ZT_F16) return 1;
    const int64_t n = B * T * Hq * D;
    float *o = out ? out : malloc((size_t)(n > 0 ? n : 1) * 4);
    zt_attention(o, q, k, v, m, B, T, S, S_cap, Hq, Hkv, D, scale, window, softcap);
    zt_emu_round_store(half, dt, o, n);
    if (!out) free(o);
    return 0;
}

// ---- checks ------------------------------------------------------------------------------------
static const char *act_name(int act) {
    return act == ZT_ACT_RELU ? "relu" : act == ZT_ACT_SILU ? "silu" : act == ZT_ACT_GELU_TANH ? "gelu_tanh" : "gelu_erf";
}
// The table's own unfused activation: out = act(x).
static void dev_act(int act, float *out, const float *x, int64_t n) {
    if (act == ZT_ACT_RELU) G->relu(out, x, n);
    else if (act == ZT_ACT_SILU) G->silu(out, x, n);
    else if (act == ZT_ACT_GELU_TANH) G->gelu_tanh(out, x, n);
    else G->gelu_erf(out, x, n);
}

// The CPU table's kernels against the CPU pair (op, then zt_convert), bit for bit.
static void cpu_half_producers_12(void) {
    int64_t bad = 0, cmp = 0;
    char first[160] = "";
#define CPU_BAD(cond, what)                                                                  \
    do {                                                                                     \
        cmp++;                                                                               \
        if (cond) {                                                                          \
            if (!bad) snprintf(first, sizeof first, "%s", what);                             \
            bad++;                                                                           \
        }                                                                                    \
    } while (0)
    const struct { int64_t rows, dim; } sh[] = {{300, 576}, {2, 70001}, {1, 1}};
    for (int di = 0; di < 2; di++)
        for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
            const zt_dtype dt = di ? ZT_F16 : ZT_BF16;
            const int64_t rows = sh[s].rows, dim = sh[s].dim, n = rows * dim;
            float *x = hmalloc(n * 4), *g = hmalloc(dim * 4), *b = hmalloc(dim * 4), *u = hmalloc(n * 4), *r = hmalloc(n * 4),
                  *o = hmalloc(n * 4), *y = hmalloc(n * 4);
            uint16_t *rh = hmalloc(n * 2), *h1 = hmalloc(n * 2), *h2 = hmalloc(n * 2);
            fill_normal_host(x, n, 3, 0.5f);
            fill_normal_host(u, n, 1, 0);
            fill_normal_host(g, dim, 0.5f, 1);
            fill_normal_host(b, dim, 0.2f, 0);
            zt_layernorm(r, x, g, b, rows, dim, 1e-5f);
            zt_convert(rh, dt, r, ZT_F32, n);
            int rc = zt_layernorm_half(o, h1, dt, x, g, b, rows, dim, 1e-5f) | zt_layernorm_half(NULL, h2, dt, x, g, b, rows, dim, 1e-5f);
            CPU_BAD(rc || memcmp(o, r, n * 4) || memcmp(h1, rh, n * 2) || memcmp(h2, rh, n * 2), "layernorm_half");
            for (int act = ZT_ACT_RELU; act <= ZT_ACT_GELU_ERF; act++)
                for (int gated = 0; gated < 2; gated++) {
                    cpu_act(act)(r, x, n);
                    if (gated) zt_mul(r, r, u, n);
                    zt_convert(rh, dt, r, ZT_F32, n);
                    memcpy(y, u, n * 4);  // out aliasing mul, as CausalLM's up = act(gate) ⊙ up
                    rc = zt_activation_half(act, gated ? y : o, h1, dt, x, gated ? y : NULL, n);
                    rc |= zt_activation_half(act, NULL, h2, dt, x, gated ? u : NULL, n);
                    CPU_BAD(rc || memcmp(gated ? y : o, r, n * 4) || memcmp(h1, rh, n * 2) || memcmp(h2, rh, n * 2), act_name(act));
                }
            free(x); free(g); free(b); free(u); free(r); free(o); free(y); free(rh); free(h1); free(h2);
        }
    {  // attention: GQA, a cache and a mask
        const int64_t B = 2, T = 5, S = 9, Sc = 12, Hq = 4, Hkv = 2, D = 16, nq = B * T * Hq * D, nkv = B * Sc * Hkv * D;
        float *q = hmalloc(nq * 4), *k = hmalloc(nkv * 4), *v = hmalloc(nkv * 4), *r = hmalloc(nq * 4), *o = hmalloc(nq * 4);
        uint16_t *rh = hmalloc(nq * 2), *h1 = hmalloc(nq * 2), *h2 = hmalloc(nq * 2);
        uint8_t m[B * Sc];
        for (int64_t i = 0; i < B * Sc; i++) m[i] = i % 5 != 3;
        fill_normal_host(q, nq, 1, 0);
        fill_normal_host(k, nkv, 1, 0);
        fill_normal_host(v, nkv, 1, 0);
        for (int di = 0; di < 2; di++) {
            const zt_dtype dt = di ? ZT_F16 : ZT_BF16;
            zt_attention(r, q, k, v, m, B, T, S, Sc, Hq, Hkv, D, 0.25f, 3, 0.0f);
            zt_convert(rh, dt, r, ZT_F32, nq);
            int rc = zt_attention_half(o, h1, dt, q, k, v, m, B, T, S, Sc, Hq, Hkv, D, 0.25f, 3, 0.0f);
            rc |= zt_attention_half(NULL, h2, dt, q, k, v, m, B, T, S, Sc, Hq, Hkv, D, 0.25f, 3, 0.0f);
            CPU_BAD(rc || memcmp(o, r, nq * 4) || memcmp(h1, rh, nq * 2) || memcmp(h2, rh, nq * 2), "attention_half");
        }
        free(q); free(k); free(v); free(r); free(o); free(rh); free(h1); free(h2);
    }
#undef CPU_BAD
    const int refused = zt_layernorm_half(NULL, NULL, ZT_F32, NULL, NULL, NULL, 1, 1, 1e-5f) != 0 &&
                        zt_activation_half(ZT_ACT_RELU, NULL, NULL, ZT_F32, NULL, NULL, 1) != 0 &&
                        zt_activation_half(7, NULL, NULL, ZT_BF16, NULL, NULL, 1) != 0 &&
                        zt_attention_half(NULL, NULL, ZT_F32, NULL, NULL, NULL, NULL, 1, 1, 1, 1, 1, 1, 1, 1.0f, 0, 0.0f) != 0;
    result(bad == 0 && refused, "CPU layernorm_half / activation_half / attention_half == op + zt_convert",
           "%lld of %lld cases differ%s%s; f32 half dtype and unknown act refused: %s", (long long)bad, (long long)cmp,
           bad ? "; first: " : "", first, refused ? "yes" : "NO");
}

static void dev_half_producers_12(void) {
    section("ABI 12 producers: layernorm_half / activation_half / attention_half == op + convert, bit for bit");
    cpu_half_producers_12();
    char name[160];
    for (int di = 0; di < 2; di++) {
        const zt_dtype dt = di ? ZT_F16 : ZT_BF16;
        // layernorm: GPT-2's 768 at a full batch, a long row, ragged rows; with γ and β, without.
        const struct { int64_t rows, dim; } shapes[] = {{1, 1}, {SZ(256, 64), 768}, {5, 2048}, {2, SZ(8192, 4100)}, {7, 33}};
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int64_t rows = shapes[s].rows, dim = shapes[s].dim, n = rows * dim;
            float *dx = dnormal(n, 0, 3, 0.5f), *dg = dnormal(dim, 0, 0.5f, 1), *db = dnormal(dim, 0, 0.2f, 0);
            half_case c;
            half_case_init(&c, n);
            for (int gi = 0; gi < 2; gi++) {  // with γ and β, without
                const float *gm = gi ? NULL : dg, *bt = gi ? NULL : db;
                G->layernorm(c.dr, dx, gm, bt, rows, dim, 1e-5f);
                half_case_reference(&c, dt);
                int rc = G->layernorm_half(c.dout, c.dh, dt, dx, gm, bt, rows, dim, 1e-5f);
                half_case_tally(&c, c.dout, 4, "f32 out", !gi);
                half_case_tally(&c, c.dh, 2, "half", !gi);
                dpoison(c.dh, n * 2);
                rc |= G->layernorm_half(NULL, c.dh, dt, dx, gm, bt, rows, dim, 1e-5f);
                half_case_tally(&c, c.dh, 2, "half only", !gi);
                G->memcpy_d2d(c.dy, dx, n * 4);  // in place: out = x
                rc |= G->layernorm_half(c.dy, c.dh, dt, c.dy, gm, bt, rows, dim, 1e-5f);
                half_case_tally(&c, c.dy, 4, "in place", !gi);
                half_case_tally(&c, c.dh, 2, "in place half", !gi);
                half_case_status(&c, rc, NULL);
            }
            snprintf(name, sizeof name, "layernorm_half %s %lldx%lld", dtname(dt), (long long)rows, (long long)dim);
            half_case_done(&c, name, "layernorm");
            dfree(dx); dfree(dg); dfree(db);
        }
        // activations: each alone (GPT-2/NeoX GELU, OPT ReLU) and ⊙ up (Gemma's GeGLU, out = up in place).
        const int64_t sizes[] = {1, 7, 4099, SZ(((int64_t)1 << 22) + 3, 70001)};
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            const int64_t n = sizes[s];
            float *da = dnormal(n, 0, 4, 0), *du = dnormal(n, 0, 1, 0);
            half_case c;
            half_case_init(&c, n);
            for (int act = ZT_ACT_RELU; act <= ZT_ACT_GELU_ERF; act++)
                for (int gated = 0; gated < 2; gated++) {
                    char what[48];
                    snprintf(what, sizeof what, "%s%s", act_name(act), gated ? " ⊙ up" : "");
                    dev_act(act, c.dr, da, n);  // the pair: act, (mul), convert
                    if (gated) G->mul(c.dr, c.dr, du, n);
                    half_case_reference(&c, dt);
                    // out aliasing the input it overwrites: mul when gated, else x
                    G->memcpy_d2d(c.dy, gated ? du : da, n * 4);
                    int rc = G->activation_half(act, c.dy, c.dh, dt, gated ? da : c.dy, gated ? c.dy : NULL, n);
                    half_case_tally(&c, c.dy, 4, what, -1);
                    half_case_tally(&c, c.dh, 2, what, -1);
                    dpoison(c.dh, n * 2);
                    rc |= G->activation_half(act, NULL, c.dh, dt, da, gated ? du : NULL, n);
                    half_case_tally(&c, c.dh, 2, what, -1);
                    half_case_status(&c, rc, what);
                }
            snprintf(name, sizeof name, "activation_half %s n %lld (4 acts, alone and gated)", dtname(dt), (long long)n);
            half_case_done(&c, name, "act (+ mul)");
            dfree(da); dfree(du);
        }
        // attention: prefill (tile kernel), decode with a cache (warp), GQA + mask + window, softcap, D 320.
        const struct { int64_t B, T, S, S_cap, Hq, Hkv, D, window; float softcap; const char *what; } cs[] = {
            {2, 40, 40, 40, 9, 3, 64, 0, 0.0f, "SmolLM2 heads, prefill"},
            {3, 1, 300, 512, 8, 8, 128, 37, 0.0f, "decode, cache, window 37"},
            {2, 40, 100, 128, 8, 2, 80, 7, 1.0f, "GQA, cache, mask, window 7, softcap 1"},
            {1, 9, 20, 24, 2, 2, 320, 0, 0.0f, "D 320"},
        };
        const char *modes[3] = {NULL, "tile", "warp"};
        for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
            const int64_t B = cs[k].B, T = cs[k].T, S = cs[k].S, Sc = cs[k].S_cap, Hq = cs[k].Hq, Hkv = cs[k].Hkv, D = cs[k].D;
            const int64_t nq = B * T * Hq * D;
            attn_inputs a = attn_inputs_new(B, T, Sc, Hq, Hkv, D, 1);
            half_case c;
            half_case_init(&c, nq);
            const float scale = 1.0f / sqrtf((float)D);
            for (int mi = 0; mi < 3; mi++) {
                if (mi == 1 && D > 256) continue;
                if (modes[mi]) setenv("ZOTUNE_ATTN", modes[mi], 1); else unsetenv("ZOTUNE_ATTN");
                G->attention(c.dr, a.dq, a.dk, a.dv, a.dm, B, T, S, Sc, Hq, Hkv, D, scale, cs[k].window, cs[k].softcap);
                half_case_reference(&c, dt);
                int rc = G->attention_half(c.dout, c.dh, dt, a.dq, a.dk, a.dv, a.dm, B, T, S, Sc, Hq, Hkv, D, scale, cs[k].window,
                                           cs[k].softcap);
                half_case_tally(&c, c.dout, 4, modes[mi] ? modes[mi] : "auto", -1);
                half_case_tally(&c, c.dh, 2, modes[mi] ? modes[mi] : "auto", -1);
                dpoison(c.dh, nq * 2);
                rc |= G->attention_half(NULL, c.dh, dt, a.dq, a.dk, a.dv, a.dm, B, T, S, Sc, Hq, Hkv, D, scale, cs[k].window,
                                        cs[k].softcap);
                half_case_tally(&c, c.dh, 2, "half only", -1);
                half_case_status(&c, rc, NULL);
            }
            unsetenv("ZOTUNE_ATTN");
            snprintf(name, sizeof name, "attention_half %s %s", dtname(dt), cs[k].what);
            half_case_done(&c, name, "attention");
            attn_inputs_free(&a);
        }
    }
    const int r1 = G->layernorm_half(NULL, NULL, ZT_F32, NULL, NULL, NULL, 2, 8, 1e-5f);
    const int r2 = G->activation_half(ZT_ACT_RELU, NULL, NULL, ZT_F32, NULL, NULL, 8);
    const int r3 = G->attention_half(NULL, NULL, ZT_F32, NULL, NULL, NULL, NULL, 1, 1, 1, 1, 1, 1, 8, 1.0f, 0, 0.0f);
    result(r1 && r2 && r3, "ABI 12 producers refuse an f32 half dtype", "layernorm_half %d, activation_half %d, attention_half %d",
           r1, r2, r3);
}
