/* SPDX-License-Identifier: MIT */
/*
 * This file resolves an operator spec and a tiling into an rj_kplan: padded sizes and the
 * float layouts that the runtime fills and the templates address with constant offsets.
 * Padding rules: feature rows pad to the register tile with rows that are exactly zero on
 * the key side (bias -inf for exp, zero projection plus a zero amplitude for trig), so
 * padded rows never reach S or z, and value columns pad with zeros.
 */
#include "gen/kplan.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int64_t round_up(int64_t x, int64_t to)
{
    return (x + to - 1) / to * to;
}

rfjit_tiling rj_tiling_default(int max_vw)
{
    rfjit_tiling t = {max_vw, 2 * max_vw, 4, 2};
    if (max_vw <= 4)
        t = (rfjit_tiling){4, 16, 4, 2};
    return t;
}

static rfjit_status check_tiling(const rfjit_tiling *t, int max_vw, rj_diag *dg)
{
    RJ_FAIL_IF(dg, t->vw != 4 && t->vw != 8 && t->vw != 16, RFJIT_E_INVALID_ARG,
               "vector width %d is not 4, 8 or 16", t->vw);
    RJ_FAIL_IF(dg, t->vw > max_vw, RFJIT_E_INVALID_ARG,
               "vector width %d exceeds the target's %d lanes", t->vw, max_vw);
    RJ_FAIL_IF(dg, t->T < t->vw || t->T % t->vw || t->T > 256, RFJIT_E_INVALID_ARG,
               "token tile %d is not a multiple of the vector width %d in [%d, 256]", t->T,
               t->vw, t->vw);
    RJ_FAIL_IF(dg, t->ri != 1 && t->ri != 2 && t->ri != 4 && t->ri != 8, RFJIT_E_INVALID_ARG,
               "register tile rows %d is not 1, 2, 4 or 8", t->ri);
    RJ_FAIL_IF(dg, t->rj < 1 || t->rj > 4, RFJIT_E_INVALID_ARG,
               "register tile vectors %d is outside [1, 4]", t->rj);
    return RFJIT_OK;
}

/* Hand out 16-float aligned regions. */
static int64_t take(int64_t *top, int64_t n)
{
    int64_t at = *top;
    *top += round_up(n > 0 ? n : 1, 16);
    return at;
}

rfjit_status rj_kplan_make(const rj_spec *s, const rfjit_tiling *t_in, int max_vw, int fma,
                           rj_kplan *kp, rj_diag *dg)
{
    /* each knob left at 0 takes the default: vw the target's, T two vectors, ri 4, rj 2, but
     * for the templates below */
    rfjit_tiling t = t_in ? *t_in : (rfjit_tiling){0, 0, 0, 0};
    /* a vector width check_tiling will refuse must not size the defaults (2 vw overflows) */
    const int vw_ok = t.vw == 4 || t.vw == 8 || t.vw == 16;
    rfjit_tiling def = rj_tiling_default(vw_ok ? t.vw : max_vw);
    /* exact attention on 32 registers: 64-token tiles and a 4 x 4 register tile halve the
     * per-tile traffic of its accumulated numerator (L = 4096: 45.5 -> 43.9 ms); eva's key sets
     * are too short for it, AVX2's 16 registers too few for the 4 x 4. On AVX2, 32-token tiles
     * halve how often a half-precision key and value tile is widened (once per query tile it
     * meets): causal float16 went from 1.15x to 0.90-0.97x of float32, and float32 itself
     * from 1 to 0.97x of 16-token tiles (bench --suite serving, L = 4096) */
    if (s->est->tmpl == RJ_TMPL_SOFTMAX && def.vw == 16)
        def = (rfjit_tiling){16, 64, 4, 4};
    /* linear attention on 32 registers: an 8 x 2 register tile keeps 16 accumulators in
     * flight, where 4 x 2's 8 just cover the FMA units' latency on two ports: 1.10x on
     * positive, trig and saderf and 1.41x on hybrid, both directions, 1 and 2 threads, L = 64
     * to 4096 (Xeon, AVX-512; rfjit_bench_ab with RFJIT_AB_TILING_B=16,32,8,2); 64-token tiles
     * add nothing bidirectional and cost causal 10% */
    else if (s->est->tmpl == RJ_TMPL_LINEAR && def.vw == 16)
        def.ri = 8;
    else if (s->est->tmpl == RJ_TMPL_SOFTMAX && def.vw == 8)
        def = (rfjit_tiling){8, 32, 4, 2};
    t.vw = t.vw ? t.vw : def.vw;
    t.T = t.T ? t.T : def.T;
    t.ri = t.ri ? t.ri : def.ri;
    t.rj = t.rj ? t.rj : def.rj;
    RJ_TRY(check_tiling(&t, max_vw, dg));
    RJ_FAIL_IF(dg, s->compat != RJ_COMPAT_NONE, RFJIT_E_NOT_APPLICABLE,
               "compat mode '%s' has no JIT kernel; it runs on the reference backend",
               rj_compat_name(s->compat));
    const rj_est_ops *est = s->est;
    RJ_FAIL_IF(dg, est->tmpl == RJ_TMPL_BLOCKSPARSE, RFJIT_E_NOT_APPLICABLE,
               "estimator '%s' has no JIT kernel of its own (its executor composes float loops)",
               est->name);
    memset(kp, 0, sizeof *kp);
    kp->tmpl = est->tmpl;
    kp->causal = s->causal;
    kp->sgn = (est->flags & RJ_EST_SIGNED) != 0;
    kp->fma = fma != 0;
    kp->d = s->d;
    kp->dv = s->dv;
    kp->vw = t.vw;
    kp->T = t.T;
    kp->ri = t.ri;
    kp->rj = t.rj;
    kp->est_version = est->version;
    snprintf(kp->est_name, sizeof kp->est_name, "%s", est->name);
    kp->xscale = rj_spec_input_scale(s);
    kp->dvp = (int32_t)round_up(s->dv, t.vw);
    RJ_FAIL_IF(dg, s->dv > RJ_JIT_MAX_DV, RFJIT_E_NOT_APPLICABLE,
               "dv = %d is above the JIT's limit of %d (kernels are specialised on dv)", s->dv,
               RJ_JIT_MAX_DV);
    if (est->tmpl == RJ_TMPL_LINEAR) {
        RJ_FAIL_IF(dg, !est->kfeat, RFJIT_E_NOT_APPLICABLE,
                   "estimator '%s' has no JIT kernel yet", est->name);
        rj_kfeat kf;
        est->kfeat(s, &kf);
        kp->fam = kf.fam;
        kp->norm = kf.norm;
        kp->P = kf.P;
        /* Rows feed both the broadcast side (ri) and, as S rows, nothing vectorised. */
        kp->Pp = (int32_t)round_up(kf.P, t.ri);
        kp->M = kf.fam == RJ_KF_TRIG ? 2 * kf.P : kf.P;
        kp->Mp = kf.fam == RJ_KF_TRIG ? 2 * kp->Pp : kp->Pp;
        if (kf.fam == RJ_KF_HYBRID) {
            kp->hmb = kf.mb;
            kp->hm = kf.m;
            kp->hn = kf.n;
            kp->M = (kf.mb + 2 * kf.m) * (kf.n + 1);
            kp->Mp = (int32_t)round_up(kp->M, t.ri);
        }
        kp->dn = kf.norm == RJ_KN_DENSE ? (int32_t)round_up(s->d, t.ri) : 0;
    } else if (est->tmpl == RJ_TMPL_EVA) {
        /* EVA runs the softmax kernel on keys with one extra coordinate (exec_eva.c) */
        RJ_FAIL_IF(dg, !est->eva, RFJIT_E_NOT_APPLICABLE, "estimator '%s' has no JIT kernel",
                   est->name);
        kp->tmpl = RJ_TMPL_SOFTMAX;
        kp->d = s->d + 1;
        /* the executor hands it rows already scaled by sqrt(scale) and rescaled for d + 1
         * (exec_eva.c), so one kernel serves every softmax scale */
        kp->xscale = pow((double)kp->d, -0.25);
    }
    RJ_FAIL_IF(dg, s->compute != RFJIT_F32 && s->compute != RFJIT_BF16, RFJIT_E_DTYPE,
               "compute = %d is not RFJIT_F32 (0) or RFJIT_BF16 (2)", s->compute);
    /* AMX tiles are 16 floats wide: T and dvp multiples of 16 */
    const int amx_ok = s->amx && t.vw == 16;
    /* fitted estimators are left out: their parameters come from each call's data, where
     * the reference that checks a kernel cannot be handed the same rounded W */
    const bool linear_bf16 = est->tmpl == RJ_TMPL_LINEAR && kp->fam == RJ_KF_EXP && !s->causal &&
                             !(est->flags & RJ_EST_FITTED) && amx_ok;
    RJ_FAIL_IF(dg, s->compute == RFJIT_BF16 && est->tmpl != RJ_TMPL_SOFTMAX && !linear_bf16,
               RFJIT_E_NOT_APPLICABLE,
               "compute = RFJIT_BF16: estimator '%s' has no bfloat16 kernel%s (exact has; "
               "bidirectional positive and hyperbolic have on AMX, 16 lanes)",
               est->name, s->causal ? " for causal attention" : "");
    kp->bf16 = s->compute != RFJIT_BF16 ? 0 : amx_ok ? RJ_BF16_AMX : RJ_BF16_DOT;
    if (linear_bf16 && s->compute == RFJIT_BF16) {
        /* tile products take 16 rows at a time */
        kp->Pp = (int32_t)round_up(kp->P, 16);
        kp->Mp = kp->Pp;
    }
    const int64_t T = t.T, d = kp->d, dvp = kp->dvp, Mp = kp->Mp;
    /* the softmax template's bf16 regions; the linear template's follow below */
    const int64_t bf = kp->bf16 != 0 && kp->tmpl == RJ_TMPL_SOFTMAX;
    const int64_t amx = kp->bf16 == RJ_BF16_AMX;
    if (bf) {
        kp->bk = (int32_t)round_up(d, amx ? 32 : t.vw);
        kp->bv = (int32_t)round_up(T, 32);
        kp->pq = (int32_t)round_up((d + 1) / 2, amx ? 16 : 1);
        kp->pk = (int32_t)round_up(T / 2, amx ? 16 : 1);
    }
    int64_t top = 0;
    take(&top, 16);
    kp->off_b = take(&top, kp->Pp);
    kp->off_g = take(&top, kp->norm == RJ_KN_DENSE ? (int64_t)kp->dn * d : d);
    kp->off_w = take(&top, (int64_t)kp->Pp * d);
    kp->role_floats = top;

    top = 0;
    kp->ws_x = take(&top, d * T);
    /* A query tile's own regions (scaled rows, numerators, running max and sum), gq times:
     * the softmax template runs a pass over the keys for gq query heads at once. */
    kp->gq = est->tmpl == RJ_TMPL_SOFTMAX ? RJ_SOFTMAX_HEADS : 1;
    int64_t mtop = 0;
    const int64_t m_xq = take(&mtop, d * T), m_num = take(&mtop, dvp * T);
    const int64_t m_m = take(&mtop, T), m_l = take(&mtop, T);
    const int64_t m_xqb = take(&mtop, bf * kp->pq * T);
    kp->ws_gs = mtop;
    const int64_t heads = take(&top, mtop * kp->gq);
    kp->ws_xq = heads + m_xq;
    kp->ws_num = heads + m_num;
    kp->ws_m = heads + m_m;
    kp->ws_l = heads + m_l;
    kp->ws_xqb = heads + m_xqb;
    kp->ws_v = take(&top, T * dvp);
    kp->ws_u = take(&top, (kp->Pp > kp->dn ? kp->Pp : kp->dn) * T);
    kp->ws_fk = take(&top, Mp * T);
    kp->ws_fq = take(&top, Mp * T);
    kp->ws_fa = take(&top, Mp * T);
    kp->ws_fka = take(&top, Mp * T);
    kp->ws_n = take(&top, T);
    kp->ws_h = take(&top, T);
    kp->ws_den = take(&top, T);
    kp->ws_g = take(&top, T);
    kp->ws_a = take(&top, T * T);
    kp->ws_aa = take(&top, T * T);
    kp->ws_kv = take(&top, T);
    kp->ws_kb = take(&top, bf * T * kp->bk / 2);
    kp->ws_vb = take(&top, bf * (amx ? dvp * kp->bv / 2 : T / 2 * dvp));
    kp->ws_pb = take(&top, bf * kp->pk * T);
    kp->ws_vt = take(&top, bf * amx * dvp * T);
    const int64_t lin = amx && est->tmpl == RJ_TMPL_LINEAR;
    if (lin) {
        kp->bk = (int32_t)round_up(d, 32);
        kp->pq = (int32_t)round_up((d + 1) / 2, 16);
        kp->bv = (int32_t)round_up(T, 32);
        kp->pk = (int32_t)round_up(T / 2, 16);
        kp->bm = (int32_t)round_up(Mp, 32);
    }
    kp->ws_wb = take(&top, lin * kp->Pp * kp->bk);
    kp->ws_xb = take(&top, lin * kp->pq * T);
    kp->ws_fkb = take(&top, lin * Mp * kp->bv / 2);
    kp->ws_vpb = take(&top, lin * kp->pk * dvp);
    kp->ws_st = take(&top, lin * dvp * Mp);
    kp->ws_sb = take(&top, lin * dvp * kp->bm / 2);
    kp->ws_fqb = take(&top, lin * kp->bm / 2 * T);
    kp->ws_floats = top;

    top = 0;
    kp->st_S = take(&top, Mp * dvp);
    kp->st_z = take(&top, Mp);
    kp->st_za = take(&top, Mp);
    kp->st_c = take(&top, 1);
    kp->st_floats = top;
    return RFJIT_OK;
}

static bool known_dtype(int dt)
{
    return dt == RFJIT_F32 || dt == RFJIT_F16 || dt == RFJIT_BF16;
}

rfjit_status rj_kplan_set_dtypes(rj_kplan *kp, int dt_in, int dt_out, rj_diag *dg)
{
    RJ_FAIL_IF(dg, !known_dtype(dt_in) || !known_dtype(dt_out), RFJIT_E_DTYPE,
               "element type %d is not RFJIT_F32 (0), RFJIT_F16 (1) or RFJIT_BF16 (2)",
               known_dtype(dt_in) ? dt_out : dt_in);
    RJ_FAIL_IF(dg, kp->kind != RJ_KK_ATTN && (dt_in != RFJIT_F32 || dt_out != RFJIT_F32),
               RFJIT_E_INTERNAL, "helper kernels take float32 only");
    kp->dt_in = dt_in;
    kp->dt_out = dt_out;
    return RFJIT_OK;
}

rfjit_status rj_kplan_feat(const rj_spec *s, const rj_kplan *attn, rj_kplan *kp, rj_diag *dg)
{
    RJ_FAIL_IF(dg, attn->tmpl != RJ_TMPL_LINEAR || attn->kind != RJ_KK_ATTN,
               RFJIT_E_NOT_APPLICABLE, "estimator '%s' has no feature map", attn->est_name);
    /* Features ignore values and causality: one kernel serves every dv and both directions. */
    rj_spec fs = *s;
    fs.causal = 0;
    fs.dv = 1;
    const rfjit_tiling t = {attn->vw, attn->T, attn->ri, attn->rj};
    RJ_TRY(rj_kplan_make(&fs, &t, attn->vw, attn->fma, kp, dg));
    kp->kind = RJ_KK_FEAT;
    /* the layout of a bf16 plan (its rows padded for tiles), with float projections: the
     * estimate API's features are float32 */
    kp->bf16 = 0;
    kp->xscale = 1; /* the estimate API takes vectors as given, at any softmax scale */
    return RFJIT_OK;
}

void rj_kplan_gram(const rj_kplan *attn, int32_t K, rj_kplan *kp)
{
    memset(kp, 0, sizeof *kp);
    kp->kind = RJ_KK_GRAM;
    kp->xscale = 1;
    kp->tmpl = attn->tmpl == RJ_TMPL_LINEAR ? RJ_TMPL_LINEAR : RJ_TMPL_SOFTMAX; /* e^G or G */
    kp->fma = attn->fma;
    kp->d = K;
    kp->vw = attn->vw;
    kp->T = attn->T;
    kp->ri = attn->ri;
    kp->rj = attn->rj;
    snprintf(kp->est_name, sizeof kp->est_name, "gram");
    const int64_t T = kp->T;
    int64_t top = 0;
    kp->ws_x = take(&top, (int64_t)K * T);
    kp->ws_u = take(&top, (int64_t)K * T);
    kp->ws_a = take(&top, T * T);
    kp->ws_num = take(&top, T);
    kp->ws_floats = top;
}

void rj_kplan_peak(int vw, int fma, rj_kplan *kp)
{
    memset(kp, 0, sizeof *kp);
    kp->kind = RJ_KK_PEAK;
    kp->xscale = 1;
    kp->fma = fma != 0;
    kp->vw = vw;
    kp->T = vw;
    kp->ri = RJ_PEAK_CHAINS;
    kp->rj = RJ_PEAK_UNROLL;
    snprintf(kp->est_name, sizeof kp->est_name, "peak");
}

int64_t rj_kplan_feature_row(const rj_kplan *kp, int64_t c)
{
    if (kp->fam == RJ_KF_TRIG) /* [cos u ; sin u], each half padded to Pp */
        return c < kp->P ? c : kp->Pp + (c - kp->P);
    if (kp->fam != RJ_KF_HYBRID)
        return c;
    /* est: the n + 1 base blocks (mb each), then the n + 1 trig blocks (2m each);
     * kernel: n + 1 blocks of [base ; cos ; sin] */
    const int64_t mb = kp->hmb, m2 = 2 * (int64_t)kp->hm, B = mb + m2;
    const int64_t nb = mb * (kp->hn + 1);
    if (c < nb)
        return (c / mb) * B + c % mb;
    return ((c - nb) / m2) * B + mb + (c - nb) % m2;
}

void rj_kplan_describe(const rj_kplan *kp, char *buf, size_t n)
{
    snprintf(
        buf, n,
        "kind=%d estimator=%s v%d tmpl=%d fam=%d norm=%d causal=%d signed=%d d=%d dv=%d P=%d "
        "M=%d vw=%d T=%d ri=%d rj=%d fma=%d hybrid=%d/%d/%d dtype=%d/%d bf16=%d xscale=%.17g gq=%d",
        kp->kind, kp->est_name, kp->est_version, kp->tmpl, kp->fam, kp->norm, kp->causal, kp->sgn,
        kp->d, kp->dv, kp->P, kp->M, kp->vw, kp->T, kp->ri, kp->rj, kp->fma, kp->hmb, kp->hm,
        kp->hn, kp->dt_in, kp->dt_out, kp->bf16, kp->xscale, kp->gq);
}
