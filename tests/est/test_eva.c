/* SPDX-License-Identifier: MIT */
/*
 * This file checks the EVA estimator (est/eva.c) against the semantics documented at the
 * top of that file: an independent, set-based re-implementation over a grid of windows, chunk
 * counts, causal and cross-attention shapes; the special cases of check C3 (no window and one
 * chunk is single-sample RFA; chunk size 1 or a window covering the sequence is exact
 * softmax, to 1e-12); keys at zero giving the uniform average (every visible key counted
 * once); the causal prefix property (bitwise); no parameters; valid(), shapes and finite
 * outputs at norms ~350.
 */
#include <criterion/criterion.h>

#include "est/est.h"
#include "est/ref.h"
#include "ref_testutil.h"
#include "rfjit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

TestSuite(eva);

enum { D = 5, DV = 3, LMAX = 32 };

/* EVA with window w and C chunks (the seed changes nothing: EVA has no parameters). */
static void eva_init(rt_inst *e, int w, int C, int causal, uint64_t seed)
{
    rj_spec s = rt_spec("eva", D, DV, 1, causal);
    s.eva_window = w;
    s.eva_chunks = C;
    rt_inst_init(e, &s, RFJIT_PROJ_ORTHOGONAL, seed);
}

static double dotd(const double *a, const double *b)
{
    double r = 0;
    for (int i = 0; i < D; i++)
        r += a[i] * b[i];
    return r;
}

/* Summary of chunk [lo, hi) straight from the definitions (no log-domain shift: moderate
 * norms only): kbar, and beta with weights e^{mu.y_j}, mu = (qbar + kbar) / 2 (aligned:
 * bidirectional and lq == lk) or kbar. */
static void summary(const double *x, int aligned, const double *y, const double *v, int lo, int hi,
                    double *kbar, double *beta)
{
    double w[D], Z = 0;
    for (int a = 0; a < D; a++) {
        double sq = 0, sk = 0;
        for (int j = lo; j < hi; j++)
            sk += y[j * D + a], sq += aligned ? x[j * D + a] : 0;
        kbar[a] = sk / (hi - lo);
        w[a] = 0.5 * ((aligned ? sq / (hi - lo) : kbar[a]) + kbar[a]);
    }
    for (int b = 0; b < DV; b++)
        beta[b] = 0;
    for (int j = lo; j < hi; j++) {
        const double xi = exp(dotd(w, y + j * D));
        Z += xi;
        for (int b = 0; b < DV; b++)
            beta[b] += xi * v[j * DV + b];
    }
    for (int b = 0; b < DV; b++)
        beta[b] /= Z;
}

/*
 * The documented semantics, written as sets: key j is visible to i if bidirectional or
 * j <= i; exact if visible and in i's window (w > 0 and j / w == i / w), or, causal without a
 * window, in i's chunk when that chunk has keys after i. Each chunk's visible keys that are
 * not exact form at most two runs (one on either side of the exact ones), each summarised on
 * its own: kbar over the run, beta with mu from the run, logit x_i.kbar + ln |run|. Softmax
 * over exact logits x_i.y_j and summary logits. Returns how many (query, summary) pairs were
 * used.
 */
static int brute_force(int w, int C, int causal, const double *x, int lq, const double *y,
                       const double *v, int lk, double *out)
{
    const int s = (lk + C - 1) / C;
    int used = 0;
    for (int i = 0; i < lq; i++) {
        int exact[LMAX];
        const int c_i = i / s, end_i = (c_i + 1) * s < lk ? (c_i + 1) * s : lk;
        for (int j = 0; j < lk; j++) {
            const int visible = !causal || j <= i;
            exact[j] = visible &&
                       (w > 0 ? j / w == i / w : causal && j / s == c_i && end_i > i + 1);
        }
        double Z = 0, *o = out + i * DV;
        for (int b = 0; b < DV; b++)
            o[b] = 0;
        for (int j = 0; j < lk; j++)
            if (exact[j]) {
                const double a = exp(dotd(x + i * D, y + j * D));
                Z += a;
                for (int b = 0; b < DV; b++)
                    o[b] += a * v[j * DV + b];
            }
        for (int j = 0; j < lk;) { /* maximal runs of summarised keys inside one chunk */
            const int visible = !causal || j <= i;
            if (!visible || exact[j]) {
                j++;
                continue;
            }
            int hi = j + 1;
            while (hi < lk && hi / s == j / s && (!causal || hi <= i) && !exact[hi])
                hi++;
            double kbar[D], beta[DV];
            summary(x, !causal && lq == lk, y, v, j, hi, kbar, beta);
            const double a = exp(dotd(x + i * D, kbar) + log((double)(hi - j)));
            Z += a;
            used++;
            for (int b = 0; b < DV; b++)
                o[b] += a * beta[b];
            j = hi;
        }
        for (int b = 0; b < DV; b++)
            o[b] /= Z;
    }
    return used;
}

static void data(double *x, double *y, double *v, uint64_t seed)
{
    rt_normals(x, LMAX * D, 0.6, seed, 0);
    rt_normals(y, LMAX * D, 0.6, seed, 1);
    rt_normals(v, LMAX * DV, 1.0, seed, 2);
}

Test(eva, matches_set_semantics)
{
    double x[LMAX * D], y[LMAX * D], v[LMAX * DV], o1[LMAX * DV], o2[LMAX * DV];
    data(x, y, v, 1);
    const int shapes[][3] = {{23, 23, 0}, {23, 23, 1}, {9, 23, 0}, {23, 9, 0}, {1, 1, 1}};
    const int windows[] = {0, 1, 4, 6, 40}, chunks[] = {1, 2, 5, 7, 23, 30};
    int used = 0;
    for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++)
        for (size_t wi = 0; wi < sizeof windows / sizeof *windows; wi++)
            for (size_t ci = 0; ci < sizeof chunks / sizeof *chunks; ci++) {
                const int lq = shapes[sh][0], lk = shapes[sh][1], causal = shapes[sh][2];
                const int w = windows[wi], C = chunks[ci];
                rt_inst e;
                eva_init(&e, w, C, causal, 2);
                cr_assert_eq(rj_est_ref_attend(&e.s, e.params, x, lq, y, v, lk, NULL, o1, NULL),
                             RFJIT_OK);
                used += brute_force(w, C, causal, x, lq, y, v, lk, o2);
                const double err = rt_max_rel_err(o1, o2, (size_t)lq * DV);
                cr_assert_leq(err, 1e-12, "lq %d lk %d causal %d w %d C %d: rel err %.3g", lq,
                              lk, causal, w, C, err);
                rt_inst_free(&e);
            }
    cr_assert_gt(used, 1000, "the grid should use many chunk summaries (%d)", used);
}

/* C3: no window, one chunk, bidirectional: every output is beta_1, RFA in the many-sample
 * limit of the proposal N(mu, I), mu = (qbar + kbar) / 2 (self) or kbar (cross): weights
 * E xi(y_j, w) = e^{mu.y_j}. */
Test(eva, no_window_one_chunk_is_rfa)
{
    double x[LMAX * D], y[LMAX * D], v[LMAX * DV], o[LMAX * DV];
    data(x, y, v, 3);
    for (int cross = 0; cross < 2; cross++) {
        const int lk = 23, lq = cross ? 11 : lk;
        rt_inst e;
        eva_init(&e, 0, 1, 0, 4);
        cr_assert_eq(rj_est_ref_attend(&e.s, e.params, x, lq, y, v, lk, NULL, o, NULL), RFJIT_OK);
        double w[D], beta[DV] = {0}, Z = 0;
        for (int a = 0; a < D; a++) {
            double sq = 0, sk = 0;
            for (int j = 0; j < lk; j++)
                sq += x[j * D + a], sk += y[j * D + a];
            w[a] = 0.5 * ((cross ? sk / lk : sq / lk) + sk / lk);
        }
        for (int j = 0; j < lk; j++) {
            const double xi = exp(dotd(w, y + j * D));
            Z += xi;
            for (int b = 0; b < DV; b++)
                beta[b] += xi * v[j * DV + b];
        }
        for (int i = 0; i < lq; i++)
            for (int b = 0; b < DV; b++)
                cr_assert(fabs(o[i * DV + b] - beta[b] / Z) <= 1e-12 * fabs(beta[b] / Z) + 1e-15,
                          "cross %d (%d, %d): %.17g vs %.17g", cross, i, b, o[i * DV + b],
                          beta[b] / Z);
        rt_inst_free(&e);
    }
}

static void check_softmax(int w, int C, int causal, int lq, int lk, uint64_t seed)
{
    double x[LMAX * D], y[LMAX * D], v[LMAX * DV], o1[LMAX * DV], o2[LMAX * DV];
    data(x, y, v, seed);
    rt_inst e;
    eva_init(&e, w, C, causal, seed + 1);
    cr_assert_eq(rj_est_ref_attend(&e.s, e.params, x, lq, y, v, lk, NULL, o1, NULL), RFJIT_OK);
    cr_assert_eq(rj_ref_softmax(&e.s, x, lq, y, v, lk, NULL, o2, NULL), RFJIT_OK);
    const double err = rt_max_rel_err(o1, o2, (size_t)lq * DV);
    cr_assert_leq(err, 1e-12, "w %d C %d causal %d lq %d lk %d: rel err %.3g vs softmax", w, C,
                  causal, lq, lk, err);
    rt_inst_free(&e);
}

/* C3: chunk size 1 (C >= Lk): every summary is one key (kbar = y_j, ln 1 = 0, beta = v_j). */
Test(eva, chunk_size_one_is_softmax)
{
    const int windows[] = {0, 3, 5};
    for (size_t wi = 0; wi < 3; wi++)
        for (int causal = 0; causal < 2; causal++) {
            check_softmax(windows[wi], 23, causal, 23, 23, 5);
            check_softmax(windows[wi], 27, causal, 23, 23, 6);
        }
    check_softmax(4, 23, 0, 9, 23, 7);
}

/* A window of at least Lk keys covers every key: all of them are exact. */
Test(eva, window_covering_sequence_is_softmax)
{
    const int chunks[] = {1, 3, 7};
    for (size_t ci = 0; ci < 3; ci++)
        for (int causal = 0; causal < 2; causal++) {
            check_softmax(23, chunks[ci], causal, 23, 23, 8);
            check_softmax(27, chunks[ci], causal, 23, 23, 9);
        }
}

/* The exact run of a query is its window's visible keys whatever the chunk count, and its
 * summaries (whole chunks and pieces) cover the other visible keys: more chunks only split
 * them finer. Checked on the ops' rows for every chunk count up to one key per chunk. */
Test(eva, exact_set_independent_of_chunks)
{
    enum { L = 23 };
    const int windows[] = {1, 3, 5, 8};
    for (size_t wi = 0; wi < 4; wi++)
        for (int causal = 0; causal < 2; causal++)
            for (int C = 1; C <= L; C++) {
                rj_spec s = rt_spec("eva", D, DV, 1, causal);
                s.eva_window = windows[wi];
                s.eva_chunks = C;
                const rj_eva_ops *E = rj_eva_ops_for(&s);
                int64_t size;
                const int64_t count = E->chunks(&s, L, &size);
                for (int64_t i = 0; i < L; i++) {
                    const int64_t vis = causal ? i + 1 : L, w = windows[wi];
                    rj_eva_row r;
                    E->row(&s, L, i, vis, &r);
                    const int64_t blo = i / w * w, bhi = causal ? i + 1 : blo + w < L ? blo + w : L;
                    cr_assert(r.elo == blo && r.ehi == bhi,
                              "w %lld C %d causal %d i %lld: exact [%lld, %lld)", (long long)w, C,
                              causal, (long long)i, (long long)r.elo, (long long)r.ehi);
                    /* whole chunks below plo (and from phi), pieces [lp, elo), [ehi, rp): the
                     * visible keys outside the window, each once */
                    cr_assert(r.lp == r.plo * size && r.lp <= r.elo && r.elo - r.lp < size);
                    cr_assert(causal ? r.rp == r.ehi
                                     : (r.rp == (r.phi * size < L ? r.phi * size : L) &&
                                        r.rp >= r.ehi && r.rp - r.ehi < size && r.phi <= count),
                              "w %lld C %d i %lld: rp %lld phi %lld", (long long)w, C, (long long)i,
                              (long long)r.rp, (long long)r.phi);
                }
            }
}

/* Keys at 0: all xi are 1 (beta_c = chunk mean of v) and every logit is 0 or ln n_c, so
 * the output is the plain mean of the visible values iff every visible key is counted
 * exactly once (the public code's double counting would fail this). */
Test(eva, zero_keys_give_uniform_average)
{
    double x[LMAX * D], y[LMAX * D] = {0}, v[LMAX * DV], o[LMAX * DV];
    rt_normals(x, LMAX * D, 0.6, 10, 0);
    rt_normals(v, LMAX * DV, 1.0, 10, 2);
    const int windows[] = {0, 2, 5}, chunks[] = {1, 3, 4, 10};
    for (size_t wi = 0; wi < 3; wi++)
        for (size_t ci = 0; ci < 4; ci++)
            for (int causal = 0; causal < 2; causal++) {
                const int L = 21;
                rt_inst e;
                eva_init(&e, windows[wi], chunks[ci], causal, 11);
                cr_assert_eq(rj_est_ref_attend(&e.s, e.params, x, L, y, v, L, NULL, o, NULL),
                             RFJIT_OK);
                for (int i = 0; i < L; i++) {
                    const int nv = causal ? i + 1 : L;
                    for (int b = 0; b < DV; b++) {
                        double mean = 0;
                        for (int j = 0; j < nv; j++)
                            mean += v[j * DV + b];
                        mean /= nv;
                        cr_assert(fabs(o[i * DV + b] - mean) <= 1e-13,
                                  "w %d C %d causal %d (%d, %d): %.17g vs mean %.17g",
                                  windows[wi], chunks[ci], causal, i, b, o[i * DV + b], mean);
                    }
                }
                rt_inst_free(&e);
            }
}

/* Changing every query, key and value after position T leaves outputs 0..T bitwise equal. */
Test(eva, causal_prefix_property)
{
    enum { L = 26, T = 12 };
    double x[LMAX * D], y[LMAX * D], v[LMAX * DV], x2[LMAX * D], y2[LMAX * D], v2[LMAX * DV];
    double o1[LMAX * DV], o2[LMAX * DV];
    data(x, y, v, 12);
    memcpy(x2, x, sizeof x), memcpy(y2, y, sizeof y), memcpy(v2, v, sizeof v);
    rt_normals(x2 + (T + 1) * D, (L - T - 1) * D, 2.0, 13, 0);
    rt_normals(y2 + (T + 1) * D, (L - T - 1) * D, 2.0, 13, 1);
    rt_normals(v2 + (T + 1) * DV, (L - T - 1) * DV, 1.0, 13, 2);
    const int windows[] = {0, 3, 4}, chunks[] = {1, 4, 6, 13, 26};
    for (size_t wi = 0; wi < 3; wi++)
        for (size_t ci = 0; ci < 5; ci++) {
            rt_inst e;
            eva_init(&e, windows[wi], chunks[ci], 1, 14);
            cr_assert_eq(rj_est_ref_attend(&e.s, e.params, x, L, y, v, L, NULL, o1, NULL),
                         RFJIT_OK);
            cr_assert_eq(rj_est_ref_attend(&e.s, e.params, x2, L, y2, v2, L, NULL, o2, NULL),
                         RFJIT_OK);
            cr_assert(memcmp(o1, o2, sizeof(double) * (T + 1) * DV) == 0,
                      "w %d C %d: outputs 0..%d changed with the future", windows[wi],
                      chunks[ci], T);
            cr_assert(memcmp(o1 + (T + 1) * DV, o2 + (T + 1) * DV,
                             sizeof(double) * (L - T - 1) * DV) != 0);
            rt_inst_free(&e);
        }
}

Test(eva, ops_fit_and_valid)
{
    rj_spec s = rt_spec("eva", D, DV, 1, 0);
    s.eva_window = 4;
    s.eva_chunks = 6;
    const rj_est_ops *e = s.est;
    char why[128];
    cr_assert_eq(e->tmpl, RJ_TMPL_EVA);
    cr_assert(e->flags & RJ_EST_NOPROJ);
    cr_assert_eq(e->feature_dim(&s), 0);
    cr_assert(e->valid(&s, why, sizeof why), "%s", why);
    cr_assert_eq(e->params_size(&s), 0);
    double p[1] = {0}, x[D] = {1, 0, 0, 0, 0};
    cr_assert_eq(e->fit(&s, NULL, 77, NULL, p, NULL, NULL), RFJIT_OK);
    cr_assert(isnan(e->variance(&s, p, x, x)));
    rj_spec off = s;
    off.eva_variant = RJ_EVA_OFFICIAL;
    cr_assert(e->valid(&off, why, sizeof why), "%s", why);
    off.eva_window = 0;
    why[0] = 0;
    cr_assert(!e->valid(&off, why, sizeof why) && strstr(why, "official"), "%s", why);
    const int bad[][2] = {{0, -1}, {1, 0}, {1, (1 << 20) + 1}, {2, 0}, {3, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rj_spec b = s;
        int *f[] = {&b.eva_window, &b.eva_chunks, &b.d, &b.dv};
        *f[bad[i][0]] = bad[i][1];
        why[0] = 0;
        cr_assert(!e->valid(&b, why, sizeof why) && why[0], "case %zu accepted", i);
    }
}

Test(eva, shapes_and_empty_keys)
{
    double x[LMAX * D], y[LMAX * D], v[LMAX * DV], o[LMAX * DV];
    data(x, y, v, 15);
    rt_inst e;
    eva_init(&e, 2, 3, 1, 16);
    rj_diag dg = {{0}};
    cr_assert_eq(rj_est_ref_attend(&e.s, e.params, x, 5, y, v, 6, NULL, o, &dg), RFJIT_E_SHAPE);
    cr_assert(dg.msg[0]);
    rt_inst_free(&e);
    eva_init(&e, 2, 3, 0, 16);
    for (int i = 0; i < 4 * DV; i++)
        o[i] = 7;
    cr_assert_eq(rj_est_ref_attend(&e.s, e.params, x, 4, y, v, 0, NULL, o, NULL), RFJIT_OK);
    for (int i = 0; i < 4 * DV; i++)
        cr_assert_eq(o[i], 0, "no key: zero rows");
    rt_inst_free(&e);
}

/* Norms ~350 (1e3 raw at d = 64 scale): logits ~1e5 and log xi ~ -6e4: all outputs finite
 * and each a convex combination of the values (inside their column range). */
Test(eva, huge_norms_finite)
{
    enum { L = 24 };
    double x[LMAX * D], y[LMAX * D], v[LMAX * DV], o[LMAX * DV];
    data(x, y, v, 17);
    for (int i = 0; i < L * D; i++)
        x[i] *= 350 / 1.35, y[i] *= 350 / 1.35;
    for (int causal = 0; causal < 2; causal++)
        for (int C = 1; C <= 8; C += 7) {
            rt_inst e;
            eva_init(&e, 3, C, causal, 18);
            cr_assert_eq(rj_est_ref_attend(&e.s, e.params, x, L, y, v, L, NULL, o, NULL), RFJIT_OK);
            for (int b = 0; b < DV; b++) {
                double lo = INFINITY, hi = -INFINITY;
                for (int j = 0; j < L; j++)
                    lo = fmin(lo, v[j * DV + b]), hi = fmax(hi, v[j * DV + b]);
                for (int i = 0; i < L; i++)
                    cr_assert(isfinite(o[i * DV + b]) && o[i * DV + b] >= lo - 1e-12 &&
                                  o[i * DV + b] <= hi + 1e-12,
                              "causal %d C %d (%d, %d): %g", causal, C, i, b, o[i * DV + b]);
            }
            rt_inst_free(&e);
        }
}
