// Checks of the FZOO / Sparse MeZO / MeZO-SVRG kernels (zt_frontier.h), #included by check.c.
//
// CPU side (self-test): the Rademacher signs against the definition written out here from raw
// Philox words; FZOO's fused replay (probe_eps) against training's separate probe, undo and update
// passes, and Sparse MeZO's replay against its training passes, bit for bit on every dtype; the
// mask is |θ| ≤ h of the clean θ and masked-out elements never change; zt_kth_abs against a sort.
// Device: stream_sum and masked_stream bit-identical to the CPU at every stream_at offset.

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static zt_sum_args sum_args(int dir, int count, uint64_t seed, float scale) {
    zt_sum_args a;
    memset(&a, 0, sizeof a);
    a.dir = dir;
    a.count = count;
    for (int k = 0; k < count; k++) {
        a.seed[k] = dir == ZT_DIR_RADEMACHER ? seed : seed + (uint64_t)k;
        a.stream[k] = dir == ZT_DIR_RADEMACHER ? ZT_STREAM_RADEMACHER + (uint32_t)k : 0;
        a.coef[k] = scale * (float)(k + 1) * (k % 2 ? -1.0f : 1.0f);
    }
    return a;
}

static void check_frontier_cpu(void) {
    const zt_dtype dts[3] = {ZT_F32, ZT_BF16, ZT_F16};
    const uint64_t firsts[4] = {0, 5, 127, (1ull << 33) + 3};
    const int64_t n = 1031;
    // 1. Signs: a one-term sum with coefficient 1 on zeros is the sign vector itself.
    int64_t bad = 0, plus = 0;
    for (int fi = 0; fi < 4; fi++) {
        const uint64_t first = firsts[fi];
        float *x = calloc((size_t)n, 4);
        zt_sum_args a = sum_args(ZT_DIR_RADEMACHER, 1, 77, 1.0f);
        a.coef[0] = 1.0f;
        zt_stream_sum(x, ZT_F32, NULL, ZT_F32, n, first, 9u, &a);
        for (int64_t i = 0; i < n; i++) {
            const uint64_t g = first + (uint64_t)i;
            zt_u32x4 c = {{(uint32_t)(g >> 7), (uint32_t)(g >> 39), 9u, ZT_STREAM_RADEMACHER}};
            zt_u32x4 w = zt_philox4x32_10(c, 77u, 0u);
            const float want = (w.v[(g / 32) % 4] >> (g % 32)) & 1u ? -1.0f : 1.0f;
            bad += x[i] != want;
            plus += x[i] > 0;
        }
        free(x);
    }
    // 4·1031 fair coins: the count of +1 is within 5σ = 5·√(4124/4) ≈ 161 of 2062 unless the bits are broken.
    result(bad == 0 && llabs(plus - 2062) < 161, "Rademacher signs = Philox bits (stream_sum)", "%lld of 4124 differ, %lld are +1",
           (long long)bad, (long long)plus);

    // 2. FZOO replay (probe_eps) == training's passes; 3. Sparse MeZO replay == training's passes.
    int64_t fz_bad = 0, sp_bad = 0, sp_frozen = 0, cases = 0;
    for (int di = 0; di < 3; di++)
        for (int fi = 0; fi < 4; fi++) {
            const zt_dtype dt = dts[di];
            const size_t es = (size_t)zt_dtype_size(dt);
            const uint64_t first = firsts[fi];
            void *x0 = random_storage(dt, n, 0.05f), *ta = hmalloc(n * es), *tb = hmalloc(n * es);
            const float eps = 1e-3f;
            // FZOO, N = 5 probes.
            memcpy(ta, x0, n * es);
            memcpy(tb, x0, n * es);
            zt_sum_args upd = sum_args(ZT_DIR_RADEMACHER, 5, 1234, 3e-4f);
            for (int k = 0; k < 5; k++) {
                zt_sum_args p = sum_args(ZT_DIR_RADEMACHER, 1, 1234, 1.0f);
                p.stream[0] = ZT_STREAM_RADEMACHER + (uint32_t)k;
                p.coef[0] = eps;
                zt_stream_sum(ta, dt, NULL, dt, n, first, 3u, &p);
                p.coef[0] = -eps;
                zt_stream_sum(ta, dt, NULL, dt, n, first, 3u, &p);
            }
            zt_stream_sum(ta, dt, NULL, dt, n, first, 3u, &upd);
            upd.probe_eps = eps;
            zt_stream_sum(tb, dt, NULL, dt, n, first, 3u, &upd);
            fz_bad += memcmp(ta, tb, n * es) != 0;
            // Sparse MeZO: threshold the median |θ|.
            memcpy(ta, x0, n * es);
            memcpy(tb, x0, n * es);
            uint8_t *mask = hmalloc((size_t)n);
            const float h = zt_kth_abs(x0, dt, n, n / 2);
            zt_masked_args m = {.threshold = h, .a = eps, .a1 = eps, .a2 = -2 * eps, .restore = eps, .step = 2e-4f};
            zt_masked_stream(ZT_MASK_SET_PERTURB, ta, dt, mask, n, first, 55, 4u, 0, &m);
            m.a = -2 * eps;
            zt_masked_stream(ZT_MASK_PERTURB, ta, dt, mask, n, first, 55, 4u, 0, &m);
            zt_masked_stream(ZT_MASK_UPDATE, ta, dt, mask, n, first, 55, 4u, 0, &m);
            zt_masked_stream(ZT_MASK_REPLAY, tb, dt, NULL, n, first, 55, 4u, 0, &m);
            sp_bad += memcmp(ta, tb, n * es) != 0;
            for (int64_t i = 0; i < n; i++) {
                const float v = dt == ZT_F32 ? ((float *)x0)[i] : dt == ZT_BF16 ? zt_bf16_to_f32(((uint16_t *)x0)[i]) : zt_f16_to_f32(((uint16_t *)x0)[i]);
                const int want = fabsf(v) <= h;
                if (mask[i] != want || (!want && memcmp((char *)ta + i * es, (char *)x0 + i * es, es) != 0)) sp_frozen++;
            }
            cases++;
            free(x0); free(ta); free(tb); free(mask);
        }
    result(fz_bad == 0, "FZOO replay pass == probe/undo/update passes", "%lld of %lld cases differ (3 dtypes x 4 offsets, N = 5)",
           (long long)fz_bad, (long long)cases);
    result(sp_bad == 0 && sp_frozen == 0, "Sparse MeZO replay pass == training passes; mask |θ| <= h, rest untouched",
           "%lld of %lld cases differ, %lld mask/frozen violations", (long long)sp_bad, (long long)cases, (long long)sp_frozen);

    // 4. k-th smallest |x| against a sort, ties and signs included; 10 distinct values at sparsity 0.8.
    int sel_bad = 0;
    for (int t = 0; t < 20; t++) {
        const int64_t m = 1 + (t * 97) % 700;
        float *v = hmalloc((size_t)m * 4), *s = hmalloc((size_t)m * 4);
        for (int64_t i = 0; i < m; i++) {
            v[i] = t % 3 == 0 ? (float)((i * 7) % 5 - 2) : rnd_normal();  // t % 3 == 0: many ties
            s[i] = fabsf(v[i]);
        }
        qsort(s, (size_t)m, 4, cmp_float);
        for (int64_t k = 1; k <= m; k += 1 + m / 7) sel_bad += zt_kth_abs(v, ZT_F32, m, k) != s[k - 1];
        free(v); free(s);
    }
    const float ten[10] = {0.3f, -0.1f, 0.7f, -0.9f, 0.2f, 0.5f, -0.4f, 0.8f, 0.6f, -1.0f};
    const float h10 = zt_kth_abs(ten, ZT_F32, 10, 2);  // sparsity 0.8: keep (1 − 0.8)·10 = 2
    int kept = 0;
    for (int i = 0; i < 10; i++) kept += fabsf(ten[i]) <= h10;
    result(sel_bad == 0 && kept == 2 && h10 == 0.2f, "zt_kth_abs == sorted |x|; 10 distinct at sparsity 0.8 keep 2",
           "%d selections differ; h = %g keeps %d", sel_bad, h10, kept);
}

static void dev_frontier(void) {
    section("stream_sum / masked_stream (FZOO, MeZO-SVRG, Sparse MeZO; bit-identical)");
    const zt_dtype dts[3] = {ZT_F32, ZT_BF16, ZT_F16};
    const int64_t n = SZ((1 << 20) + 5, 4099);
    char name[128];
    for (int di = 0; di < 3; di++) {
        const zt_dtype dt = dts[di];
        const size_t es = (size_t)zt_dtype_size(dt);
        int64_t passes = 0, bad = 0;
        char first_bad[320] = "";
        for (int ai = 0; ai < N_STREAM_AT; ai++) {
            const uint64_t first = stream_at[ai].first;
            const int off = stream_at[ai].off;
            void *hx = random_storage(dt, n, 0.05f), *hs = random_storage(dt, n, 0.05f), *back = hmalloc(n * 4);
            uint8_t *hm = hmalloc((size_t)n), *dm = dalloc((size_t)n + 4);
            char *d = dalloc((n + 4) * es), *ds = dalloc((n + 4) * es);
            void *dx = d + off * es, *dsrc = ds + off * es;
            h2d(dx, hx, n * es);
            h2d(dsrc, hs, n * es);
            const float h = zt_kth_abs(hx, dt, n, n / 5);
            for (int op = 0; op < 8; op++) {
                zt_sum_args a = sum_args(op % 2 ? ZT_DIR_NORMAL : ZT_DIR_RADEMACHER, op < 2 ? 1 : 8, 4242 + op, 1e-3f);
                zt_masked_args m = {.threshold = h, .a = 1e-3f, .a1 = 1e-3f, .a2 = -2e-3f, .restore = 1e-3f, .step = 1e-4f};
                switch (op) {
                case 0: case 1: case 2:  // in place (probe, update)
                    G->stream_sum(dx, dt, NULL, dt, n, first, 17u, &a);
                    zt_stream_sum(hx, dt, NULL, dt, n, first, 17u, &a);
                    break;
                case 3:  // copy from another buffer (MeZO-SVRG's rebuild from the anchor)
                    G->stream_sum(dx, dt, dsrc, dt, n, first, 17u, &a);
                    zt_stream_sum(hx, dt, hs, dt, n, first, 17u, &a);
                    break;
                case 4:  // FZOO replay
                    a.probe_eps = 1e-3f;
                    G->stream_sum(dx, dt, NULL, dt, n, first, 17u, &a);
                    zt_stream_sum(hx, dt, NULL, dt, n, first, 17u, &a);
                    break;
                default: {  // masked ops 5..7: SET_PERTURB, PERTURB, UPDATE; then REPLAY in the last
                    const int mop = op == 5 ? ZT_MASK_SET_PERTURB : op == 6 ? ZT_MASK_PERTURB : ZT_MASK_UPDATE;
                    if (op == 6) m.a = -2e-3f;
                    G->masked_stream(mop, dx, dt, dm + off, n, first, 99, 17u, 0, &m);
                    zt_masked_stream(mop, hx, dt, hm, n, first, 99, 17u, 0, &m);
                    if (op == 7) {
                        G->masked_stream(ZT_MASK_REPLAY, dx, dt, NULL, n, first, 100, 17u, 0, &m);
                        zt_masked_stream(ZT_MASK_REPLAY, hx, dt, NULL, n, first, 100, 17u, 0, &m);
                    }
                }
                }
                tally_bits(back, dx, hx, n, (int)es, &passes, &bad, first_bad, sizeof first_bad, "%s, op %d",
                           stream_at[ai].what, op);
            }
            tally_bits(back, dm + off, hm, n, 1, &passes, &bad, first_bad, sizeof first_bad, "%s, mask bytes",
                       stream_at[ai].what);
            dfree(d); dfree(ds); dfree(dm);
            free(hx); free(hs); free(back); free(hm);
        }
        snprintf(name, sizeof name, "stream_sum / masked_stream %s, %d offsets x 8 ops", dtname(dt), N_STREAM_AT);
        result(bad == 0, name, "%lld of %lld array compares differ%s%s", (long long)bad, (long long)passes,
               bad ? "; first: " : " (bit-identical)", first_bad);
    }
}
