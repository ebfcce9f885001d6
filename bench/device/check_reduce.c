// Device checks of the deterministic multi-block reductions (Kernels/cuda/reduce.cu: sum_squares,
// squared_distance, the Newton–Schulz norm) and of Newton–Schulz over a batch
// (newton_schulz_batched). Included by check.c (its helpers and run state); the dry run's host
// table reduces with the emulation (emulate.cpp: reduce.cuh's partition and order on the CPU) and
// runs the CPU's batched Newton–Schulz.

static long double elem_ld(const void *p, zt_dtype dt, int64_t i) {
    if (dt == ZT_F32) return ((const float *)p)[i];
    const uint16_t h = ((const uint16_t *)p)[i];
    return dt == ZT_BF16 ? zt_bf16_to_f32(h) : zt_f16_to_f32(h);
}

// The outside reference: Σ terms in long double (64-bit mantissa) with Neumaier's compensation, so
// its own error is a few 2⁻⁶⁴ relative (the terms are ≥ 0), far below the bounds checked.
static long double sumsq_ref(const void *a, const void *b, zt_dtype dt, int64_t n) {
    long double s = 0, comp = 0;
    for (int64_t i = 0; i < n; i++) {
        const long double v = b ? elem_ld(a, dt, i) - elem_ld(b, dt, i) : elem_ld(a, dt, i), t = v * v, u = s + t;
        comp += s >= t ? (s - u) + t : (t - u) + s;
        s = u;
    }
    return s + comp;
}

// The CPU kernels' chain length (Kernels/cpu/local_grad.c: blocks of 4096 in order, then the block
// sums in order), plus the term's own roundings, as zt_red_depth counts the device's.
static int64_t cpu_sumsq_depth(int64_t n) { return 4096 + (n + 4095) / 4096 + 3; }

static void dev_reductions(void) {
    section("sum_squares / squared_distance: multi-block, fixed order (vs the emulation bit for bit, vs long double)");
    // All terms are ≥ 0, so a sum whose terms each went through at most L double roundings is within
    // γ_L = L·2⁻⁵³/(1 − L·2⁻⁵³) of the exact sum, relative: the device against the long-double
    // reference within γ of its depth (reduce.cuh: ceil(chunk/256) + 8 + 9 + 3, 20–50 here), against
    // the CPU kernel within γ of both depths (≤ 5.5e-13 up to 3·2²⁰ elements: under 1e-12).
    const zt_dtype dts[3] = {ZT_F32, ZT_BF16, ZT_F16};
    const int64_t sizes[] = {1, 31, 4096, 4097, 70001, ((int64_t)1 << 21) + 3, 3 * ((int64_t)1 << 20) + 1};
    const double u = 0x1p-53;
    char name[160];
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int di = 0; di < 3; di++) {
            const zt_dtype dt = dts[di];
            const int64_t n = sizes[si];
            const size_t es = (size_t)zt_dtype_size(dt);
            void *ha = random_storage(dt, n, 0.05f), *hb = random_storage(dt, n, 0.05f);
            float *hx = random_storage(ZT_F32, n, 3.0f);
            void *da = dalloc(n * es), *db = dalloc(n * es), *dx = dalloc(n * 4);
            h2d(da, ha, n * es);
            h2d(db, hb, n * es);
            h2d(dx, hx, n * 4);
            double s1 = -1, s2 = -2, q1 = -1, q2 = -2, z = -1;
            int rc = G->sum_squares(dx, n, &s1) | G->sum_squares(dx, n, &s2);
            rc |= G->squared_distance(da, db, dt, n, &q1) | G->squared_distance(da, db, dt, n, &q2);
            rc |= G->squared_distance(da, da, dt, n, &z);  // exactly 0
            const double es_ = zt_emu_sumsq(hx, NULL, ZT_F32, n), eq = zt_emu_sumsq(ha, hb, dt, n);
            const long double rs = sumsq_ref(hx, NULL, ZT_F32, n), rq = sumsq_ref(ha, hb, dt, n);
            const double cs = zt_sum_squares(hx, n), cq = zt_squared_distance(ha, hb, dt, n);
            const int64_t L = zt_emu_sumsq_depth(n), Lc = cpu_sumsq_depth(n);
            const double tol = L * u / (1 - L * u), tol_cpu = (L + Lc) * u / (1 - (L + Lc) * u);
            const double e_s = (double)(fabsl((long double)s1 - rs) / (rs > 0 ? rs : 1)), e_q = (double)(fabsl((long double)q1 - rq) / (rq > 0 ? rq : 1));
            const double c_s = fabs(s1 - cs) / (cs > 0 ? cs : 1), c_q = fabs(q1 - cq) / (cq > 0 ? cq : 1);
            const int same = s1 == s2 && q1 == q2, emu = s1 == es_ && q1 == eq;
            snprintf(name, sizeof name, "reductions n %lld %s", (long long)n, dtname(dt));
            result(rc == 0 && same && emu && z == 0.0 && e_s <= tol && e_q <= tol && c_s <= tol_cpu && c_q <= tol_cpu, name,
                   "run to run %s, == emulation %s; vs long double %.1e / %.1e (bound %.1e, depth %lld), vs CPU %.1e / %.1e "
                   "(bound %.1e); Σ(a − a)² = %g",
                   same ? "identical" : "DIFFERENT", emu ? "yes" : "NO", e_s, e_q, tol, (long long)L, c_s, c_q, tol_cpu, z);
            dfree(da); dfree(db); dfree(dx);
            free(ha); free(hb); free(hx);
        }
}

// newton_schulz_batched against newton_schulz per matrix on the same device (bit for bit in the dry
// run; on a GPU reported, since cuBLAS may choose another kernel for another batch count), against
// the double reference (the tolerances of dev_newton_schulz), in place == out of place, run to run.
// 70 matrices cross the reduction's group of 64.
static void dev_ns_batched(int mode) {  // 0: f32, 1: set_tf32(1), 2: bf16 operands
    section(mode == 1 ? "Newton-Schulz batched, set_tf32(1)" : mode == 2 ? "Newton-Schulz batched, bf16 operands" : "Newton-Schulz batched f32");
    dcheck(G->set_tf32(mode == 1), "set_tf32");
    const double tol = mode == 1 ? 3e-2 : mode == 2 ? 1e-2 : 1e-4;
    // The dry run (host table: the CPU kernel per matrix, f32 whatever the mode) keeps the batch
    // counts and shrinks the largest matrices.
    const struct { int64_t b, r, c; } shapes[] = {{3, 64, 256}, {2, 256, 64}, {70, SZ(96, 16), SZ(96, 16)}, {5, 1, 50},
                                                  {4, SZ(192, 48), SZ(576, 64)}, {66, 40, 24}};
    char name[160];
    for (int poly = 0; poly < 2; poly++)
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            const float pa = poly ? 1.5f : 3.4445f, pb = poly ? -0.5f : -4.7750f, pc = poly ? 0.0f : 2.0315f;
            const int64_t batch = shapes[k].b, rows = shapes[k].r, cols = shapes[k].c, n = rows * cols;
            const size_t wsb = (size_t)zt_newton_schulz_workspace(rows, cols) * 4;
            float *x = hmalloc(batch * n * 4), *g = hmalloc(batch * n * 4), *g2 = hmalloc(batch * n * 4), *g3 = hmalloc(batch * n * 4);
            fill_normal_host(x, batch * n, 0.3f, 0);
            for (int64_t m = 0; m < batch; m++)  // matrices of different norms
                for (int64_t i = 0; i < n; i++) x[m * n + i] *= (float)(1 + m % 7);
            float *dx = dalloc(batch * n * 4), *dy = dalloc(batch * n * 4), *dz = dalloc(batch * n * 4), *ws = dalloc(batch * wsb);
            h2d(dx, x, batch * n * 4);
            dpoison(ws, batch * wsb);
            dpoison(dy, batch * n * 4);
            int rc = G->newton_schulz_batched(dx, dy, batch, rows, cols, 5, pa, pb, pc, mode == 2, ws);
            d2h(g, dy, batch * n * 4);
            for (int64_t m = 0; m < batch; m++)
                rc |= G->newton_schulz(dx + m * n, dz + m * n, rows, cols, 5, pa, pb, pc, mode == 2, ws);
            d2h(g3, dz, batch * n * 4);
            rc |= G->newton_schulz_batched(dx, dx, batch, rows, cols, 5, pa, pb, pc, mode == 2, ws);  // in place
            d2h(g2, dx, batch * n * 4);
            const int same = memcmp(g, g2, batch * n * 4) == 0, per = memcmp(g, g3, batch * n * 4) == 0;
            const int tc = mode == 2 && !g_dry && rows % 8 == 0 && cols % 8 == 0;
            double worst = 0;
            double *ref = hmalloc(n * 8);
            const int64_t probe[2] = {0, batch - 1};  // the first and the last matrix against the reference
            for (int p = 0; p < 2; p++) {
                ns_ref_poly_mode(x + probe[p] * n, rows, cols, 5, pa, pb, pc, tc, ref);
                worst = fmax(worst, rel_fro(g + probe[p] * n, ref, n));
            }
            free(ref);
            double pm = 0;  // batched vs per matrix, relative Frobenius over the batch
            {
                double d = 0, s = 0;
                for (int64_t i = 0; i < batch * n; i++) {
                    d += ((double)g[i] - g3[i]) * ((double)g[i] - g3[i]);
                    s += (double)g3[i] * g3[i];
                }
                pm = sqrt(d / (s > 0 ? s : 1));
            }
            snprintf(name, sizeof name, "newton_schulz_batched %s %lld x %lldx%lld", poly ? "cubic" : "quintic", (long long)batch,
                     (long long)rows, (long long)cols);
            // bit for bit against per-matrix calls is held where the batched path is the same code
            // (the host table); on a GPU within the tolerance, and the bits reported
            const int per_ok = g_dry ? per : pm <= tol;
            result(rc == 0 && same && per_ok && worst <= tol, name,
                   "vs double%s %.1e (tol %.0e); == per-matrix newton_schulz: %s (rel %.1e); in place == out of place, run to run: %s",
                   tc ? " (bf16 operands)" : "", worst, tol, per ? "bit for bit" : "NO", pm, same ? "bit-identical" : "DIFFERENT");
            dfree(dx); dfree(dy); dfree(dz); dfree(ws);
            free(x); free(g); free(g2); free(g3);
        }
    dcheck(G->set_tf32(0), "set_tf32");
}

// Bandwidth of the reductions (GB/s of the arrays read) and NS over SmolLM2's 30 q projections
// (576 × 576) batched vs one call per matrix.
static void dev_reduce_timings(void) {
    const int64_t n = SZ((int64_t)256 << 20, 1 << 20);
    void *a = dalloc(n * 4), *b = dalloc(n * 4);
    G->fill_normal(a, ZT_F32, n, 0, 11, 1, 0, 1.0f);
    G->fill_normal(b, ZT_F32, n, 0, 12, 1, 0, 1.0f);
    double t, s;
    printf("  %-34s %10s %10s\n", "reduction (256M elements)", "ms", "GB/s");
    TIME_IT(t, g_dry ? 1 : 5, dcheck(G->sum_squares(a, n, &s), "sum_squares"));
    printf("  %-34s %10.3f %10.1f\n", "sum_squares f32", t * 1e3, 4.0 * n / t / 1e9);
    TIME_IT(t, g_dry ? 1 : 5, dcheck(G->squared_distance(a, b, ZT_F32, n, &s), "squared_distance"));
    printf("  %-34s %10.3f %10.1f\n", "squared_distance f32", t * 1e3, 8.0 * n / t / 1e9);
    TIME_IT(t, g_dry ? 1 : 5, dcheck(G->squared_distance(a, b, ZT_BF16, n, &s), "squared_distance"));
    printf("  %-34s %10.3f %10.1f\n", "squared_distance bf16", t * 1e3, 4.0 * n / t / 1e9);
    dfree(a);
    dfree(b);

    const int64_t batch = 30, rows = SZ(576, 48), cols = SZ(576, 48), m = rows * cols;
    const size_t wsb = (size_t)zt_newton_schulz_workspace(rows, cols) * 4;
    float *x = dalloc(batch * m * 4), *y = dalloc(batch * m * 4), *ws = dalloc(batch * wsb);
    G->fill_normal(x, ZT_F32, batch * m, 0, 13, 1, 0, 1.0f);
    printf("  %-34s %10s %10s\n", "NS x10, 30 matrices", "ms", "TFLOP/s");
    for (int bf = 0; bf < 2; bf++) {
        const double flops = batch * 10.0 * (4.0 * rows * rows * cols + 2.0 * rows * rows * rows);
        double t1, tb;
        TIME_IT(t1, g_dry ? 1 : 3, for (int64_t k = 0; k < batch; k++)
            dcheck(G->newton_schulz(x + k * m, y + k * m, rows, cols, 10, NS_QUINTIC, bf, ws), "newton_schulz"));
        TIME_IT(tb, g_dry ? 1 : 3, dcheck(G->newton_schulz_batched(x, y, batch, rows, cols, 10, NS_QUINTIC, bf, ws), "newton_schulz_batched"));
        char label[64];
        snprintf(label, sizeof label, "NS %lldx%lld %s, one call each", (long long)rows, (long long)cols, bf ? "bf16" : "f32");
        printf("  %-34s %10.3f %10.2f\n", label, t1 * 1e3, flops / t1 / 1e12);
        snprintf(label, sizeof label, "NS %lldx%lld %s, batched", (long long)rows, (long long)cols, bf ? "bf16" : "f32");
        printf("  %-34s %10.3f %10.2f\n", label, tb * 1e3, flops / tb / 1e12);
    }
    dfree(x); dfree(y); dfree(ws);
}

// gemm_half: an activation rounded once (convert, f32 → the weights' dtype) and multiplied as
// stored is gemm_mixed of the f32 activation bit for bit (packed A: the same GemmEx call on a
// device, the same widening and SGEMM on the CPU); with a padded A16 (lda > K) within gemm_mixed's
// 1e-5 of the emulation, C's padding untouched.
static void dev_gemm_half(void) {
    section("GEMM half: activations rounded once (convert), then gemm_half == gemm_mixed bit for bit");
    const struct { int64_t M, N, K; int tb; } shapes[] = {{64, 1536, 576, 1}, {64, 576, 1536, 1}, {17, 33, 65, 1}, {17, 33, 65, 0}};
    char name[128];
    for (int di = 0; di < 2; di++) {
        const zt_dtype bt = di ? ZT_F16 : ZT_BF16;
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int64_t M = shapes[si].M, N = shapes[si].N, K = shapes[si].K, ldp = K + 5;
            const int tb = shapes[si].tb;
            const int64_t ldb = tb ? K : N, ldc = N + 2, nb = ldb * (tb ? N : K), nc = ldc * M;
            float *A = hmalloc(M * K * 4), *C = hmalloc(nc * 4), *g1 = hmalloc(nc * 4), *g2 = hmalloc(nc * 4), *g3 = hmalloc(nc * 4);
            float *ref = hmalloc(nc * 4);
            uint16_t *B = hmalloc(nb * 2), *Ah = hmalloc(M * K * 2), *Ap = hmalloc(M * ldp * 2);
            fill_normal_host(A, M * K, 1, 0);
            fill_normal_host(C, nc, 1, 0);
            for (int64_t i = 0; i < nb; i++) B[i] = bt == ZT_BF16 ? zt_f32_to_bf16(0.05f * rnd_normal()) : zt_f32_to_f16(0.05f * rnd_normal());
            memcpy(ref, C, nc * 4);
            float *ws = hmalloc(host_gemm_mixed_workspace(M, N, K));
            host_gemm_mixed(tb, M, N, K, 0.7f, A, K, B, bt, ldb, 0.3f, ref, ldc, ws);
            free(ws);
            float *dA = dalloc(M * K * 4), *dC = dalloc(nc * 4);
            void *dB = dalloc(nb * 2), *dAh = dalloc(M * K * 2), *dAp = dalloc(M * ldp * 2), *dws = dalloc(G->gemm_mixed_workspace(M, N, K));
            h2d(dA, A, M * K * 4);
            h2d(dB, B, nb * 2);
            h2d(dC, C, nc * 4);
            int rc = G->gemm_mixed(tb, M, N, K, 0.7f, dA, K, dB, bt, ldb, 0.3f, dC, ldc, dws);
            d2h(g1, dC, nc * 4);
            G->convert(dAh, bt, dA, ZT_F32, M * K);  // the one rounding
            h2d(dC, C, nc * 4);
            rc |= G->gemm_half(tb, M, N, K, 0.7f, dAh, K, dB, bt, ldb, 0.3f, dC, ldc, dws);
            d2h(g2, dC, nc * 4);
            d2h(Ah, dAh, M * K * 2);
            for (int64_t i = 0; i < M; i++) {  // the same rounded rows at a padded leading dimension
                memcpy(Ap + i * ldp, Ah + i * K, K * 2);
                for (int64_t k = K; k < ldp; k++) Ap[i * ldp + k] = 0x7FC0;  // NaN padding: must not be read
            }
            h2d(dAp, Ap, M * ldp * 2);
            h2d(dC, C, nc * 4);
            rc |= G->gemm_half(tb, M, N, K, 0.7f, dAp, ldp, dB, bt, ldb, 0.3f, dC, ldc, dws);
            d2h(g3, dC, nc * 4);
            double e = 0, den = 0;
            int pad_ok = 1;
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < ldc; j++) {
                    const int64_t at = i * ldc + j;
                    if (j >= N) { pad_ok &= memcmp(&g3[at], &C[at], 4) == 0 && memcmp(&g2[at], &C[at], 4) == 0; continue; }
                    e += ((double)g3[at] - ref[at]) * ((double)g3[at] - ref[at]);
                    den += (double)ref[at] * ref[at];
                }
            e = sqrt(e / (den > 0 ? den : 1));
            const int same = memcmp(g1, g2, nc * 4) == 0;
            snprintf(name, sizeof name, "gemm_half %s N%c %lldx%lldx%lld", dtname(bt), tb ? 'T' : 'N', (long long)M, (long long)N, (long long)K);
            result(rc == 0 && same && e <= 1e-5 && pad_ok, name, "== gemm_mixed: %s; padded A (lda %lld) vs emulation %.1e (tol 1e-5)%s%s",
                   same ? "bit for bit" : "DIFFERENT", (long long)ldp, e, pad_ok ? "" : ", padding overwritten", rc ? G->last_error() : "");
            dfree(dA); dfree(dB); dfree(dC); dfree(dAh); dfree(dAp); dfree(dws);
            free(A); free(C); free(g1); free(g2); free(g3); free(ref); free(B); free(Ah); free(Ap);
        }
    }
    result(G->gemm_half(1, 1, 1, 1, 1.0f, NULL, 1, NULL, ZT_F32, 1, 0.0f, NULL, 1, NULL) != 0, "gemm_half: f32 operands refused", "");
}
