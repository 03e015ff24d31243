/* SPDX-License-Identifier: MIT */
/*
 * This file implements tuner/tune_record.h. Numbers go through strtoll, strtoull and strtod
 * with errno and the end pointer checked, into 64-bit values first, so a field that does not
 * fit its destination is refused rather than wrapped (m=4294967360 is not m=64). The meaning
 * of the numbers is not restated here: the plan and kernel-plan checks decide it.
 */
#include "tuner/tune_record.h"

#include "runtime/plan.h"
#include "tuner/tune.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAD(dg, ...) rj_fail((dg), RFJIT_E_WISDOM_FORMAT, __VA_ARGS__)

/* Longest field text quoted in a message. */
#define QUOTE 40

/* Move *p past s if it starts there. */
static int lit(const char **p, const char *s)
{
    const size_t n = strlen(s);
    if (strncmp(*p, s, n) != 0)
        return 0;
    *p += n;
    return 1;
}

static int digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A decimal integer in [lo, hi] at *p: an optional '-', then digits (strtoll alone would also
 * take blanks and '+'); *p moves past it. */
static rfjit_status int_at(const char **p, const char *name, long long lo, long long hi,
                           long long *out, rj_diag *dg)
{
    const char *s = *p;
    if (!digit(s[*s == '-']))
        return BAD(dg, "%s=%.*s is not a decimal integer", name, QUOTE, s);
    char *end;
    errno = 0;
    const long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || v < lo || v > hi)
        return BAD(dg, "%s = %.*s is outside [%lld, %lld]", name, (int)(end - s), s, lo, hi);
    *p = end;
    *out = v;
    return RFJIT_OK;
}

static rfjit_status i32_at(const char **p, const char *name, int32_t *out, rj_diag *dg)
{
    long long v;
    RJ_TRY(int_at(p, name, INT32_MIN, INT32_MAX, &v, dg));
    *out = (int32_t)v;
    return RFJIT_OK;
}

static rfjit_status u64_at(const char **p, const char *name, uint64_t *out, rj_diag *dg)
{
    const char *s = *p;
    if (!digit(*s)) /* strtoull reads "-1" as 2^64 - 1 */
        return BAD(dg, "%s=%.*s is not a non-negative decimal integer", name, QUOTE, s);
    char *end;
    errno = 0;
    const unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return BAD(dg, "%s = %.*s is outside [0, 2^64 - 1]", name, (int)(end - s), s);
    *p = end;
    *out = v;
    return RFJIT_OK;
}

/* A number as printf's %e or %g writes it, NaN and infinities included. */
static rfjit_status f64_at(const char **p, const char *name, double *out, rj_diag *dg)
{
    const char *s = *p;
    char *end = NULL;
    double v = 0;
    errno = 0;
    if (*s && *s != ' ' && *s != '+')
        v = strtod(s, &end);
    if (!end || end == s)
        return BAD(dg, "%s=%.*s is not a number", name, QUOTE, s);
    if (errno == ERANGE && isinf(v))
        return BAD(dg, "%s = %.*s is beyond the double range", name, (int)(end - s), s);
    *p = end;
    *out = v;
    return RFJIT_OK;
}

/* " <name>=" at *p, moved past. */
static rfjit_status field(const char **p, const char *name, rj_diag *dg)
{
    const size_t n = strlen(name);
    if (**p != ' ' || strncmp(*p + 1, name, n) != 0 || (*p)[1 + n] != '=')
        return BAD(dg, "no \" %s=\" where \"%.*s\" is", name, QUOTE, *p);
    *p += n + 2;
    return RFJIT_OK;
}

static rfjit_status value_parse(const char *v, int version, rj_tune_row *row, rj_diag *dg)
{
    memset(row, 0, sizeof *row);
    const char *p = v;
    if (!lit(&p, "est="))
        return BAD(dg, "the value does not start with \"est=\"");
    const size_t n = strcspn(p, " ");
    char name[32];
    if (n == 0 || n >= sizeof name)
        return BAD(dg, "est=%.*s is not an estimator name (1 to %zu characters)", QUOTE, p,
                   sizeof name - 1);
    memcpy(name, p, n);
    name[n] = 0;
    p += n;
    if (!(row->est = rj_est_find(name)))
        return BAD(dg, "est=%s is not a known estimator", name);
    static const char *const ints[] = {"m", "vw", "T", "ri", "rj"};
    int32_t *const idst[] = {&row->m, &row->tiling.vw, &row->tiling.T, &row->tiling.ri,
                             &row->tiling.rj};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        RJ_TRY(field(&p, ints[i], dg));
        RJ_TRY(i32_at(&p, ints[i], idst[i], dg));
    }
    static const char *const reals[] = {"predicted", "measured", "bound", "ms"};
    double *const rdst[] = {&row->predicted, &row->measured, &row->bound, &row->time_ms};
    for (size_t i = 0; i < sizeof reals / sizeof *reals; i++) {
        RJ_TRY(field(&p, reals[i], dg));
        RJ_TRY(f64_at(&p, reals[i], rdst[i], dg));
    }
    RJ_TRY(field(&p, "seed", dg));
    RJ_TRY(u64_at(&p, "seed", &row->seed, dg));
    if (version >= 2) {
        RJ_TRY(field(&p, "window", dg));
        RJ_TRY(i32_at(&p, "window", &row->eva_window, dg));
        RJ_TRY(field(&p, "chunks", dg));
        RJ_TRY(i32_at(&p, "chunks", &row->eva_chunks, dg));
    }
    if (version >= 3) {
        RJ_TRY(field(&p, "xform", dg));
        RJ_TRY(i32_at(&p, "xform", &row->transform, dg));
    }
    if (version >= 4) {
        RJ_TRY(field(&p, "sblock", dg));
        RJ_TRY(i32_at(&p, "sblock", &row->sparse_block, dg));
        RJ_TRY(field(&p, "sexact", dg));
        RJ_TRY(i32_at(&p, "sexact", &row->sparse_exact, dg));
    }
    if (version >= 5) {
        RJ_TRY(field(&p, "compute", dg));
        RJ_TRY(i32_at(&p, "compute", &row->compute, dg));
    }
    static const char *const last[] = {"seed", "seed", "chunks", "xform", "sexact", "compute"};
    if (*p)
        return BAD(dg, "text after the %s: \"%.*s\"", last[version], QUOTE, p);
    return RFJIT_OK;
}

typedef struct tune_key {
    int version;    /* 1: no suffix, before eva was searched; 2: .v2; 3 to 5: .x<0|1>.v<n> */
    int transforms; /* version 3 on: whether the tune considered transforms */
    int causal;
    long long d, dv, L;
    double scale; /* 0: none in the key, the default */
    unsigned long cand;
} tune_key;

/* The calibration part of a key: "syn<scale>" (Gaussian profile) or "real<scale>" (real-like
 * profile) with a scale in (0, 100] (rfjit_tune's synthetic_scale range) or "cal<16 lowercase
 * hex digits>". */
static rfjit_status calib_parse(const char *s, size_t n, rj_diag *dg)
{
    char buf[64];
    if (n < 4 || n >= sizeof buf)
        return BAD(dg, "calibration \"%.*s\" is not syn<scale> or cal<hash>", QUOTE, s);
    memcpy(buf, s, n);
    buf[n] = 0;
    if (!strncmp(buf, "cal", 3)) {
        if (n != 3 + 16 || strspn(buf + 3, "0123456789abcdef") != 16)
            return BAD(dg, "calibration hash \"%s\" is not 16 lowercase hex digits", buf + 3);
        return RFJIT_OK;
    }
    const char *const num = buf + (strncmp(buf, "real", 4) ? 3 : 4), *p = num;
    double scale;
    if ((strncmp(buf, "syn", 3) && strncmp(buf, "real", 4)) ||
        f64_at(&p, "syn", &scale, dg) != RFJIT_OK || *p)
        return BAD(dg, "calibration \"%s\" is not syn<scale>, real<scale> or cal<hash>", buf);
    if (!(scale > 0 && scale <= 100))
        return BAD(dg, "synthetic scale %s is outside (0, 100]", num);
    return RFJIT_OK;
}

/* The last ".cand" of s: the calibration before it may hold dots of its own. */
static const char *last_cand(const char *s)
{
    const char *last = NULL;
    for (const char *q = s; (q = strstr(q, ".cand")); q++)
        last = q;
    return last;
}

static rfjit_status key_parse(const char *k, tune_key *t, rj_diag *dg)
{
    const char *p = k;
    if (!lit(&p, "tune."))
        return BAD(dg, "key \"%.*s\" is not a tuning record (tune.)", QUOTE, k);
    if (!lit(&p, "output.") && !lit(&p, "kernel."))
        return BAD(dg, "the key's budget kind is not output or kernel");
    t->causal = lit(&p, "causal.");
    if (!t->causal && !lit(&p, "bidir."))
        return BAD(dg, "the key's direction is not bidir or causal");
    if (!lit(&p, "d"))
        return BAD(dg, "no d<d> in the key");
    RJ_TRY(int_at(&p, "d", INT32_MIN, INT32_MAX, &t->d, dg));
    if (!lit(&p, ".dv"))
        return BAD(dg, "no .dv<dv> after d in the key");
    RJ_TRY(int_at(&p, "dv", INT32_MIN, INT32_MAX, &t->dv, dg));
    t->scale = 0;
    if (lit(&p, ".scale")) {
        RJ_TRY(f64_at(&p, "scale", &t->scale, dg));
        if (!(t->scale > 0) || !isfinite(t->scale))
            return BAD(dg, "softmax scale %g is not a positive finite number", t->scale);
    }
    if (!lit(&p, ".L"))
        return BAD(dg, "no .L<length> after dv in the key");
    RJ_TRY(int_at(&p, "L", 1, 1 << 24, &t->L, dg));
    if (t->L & (t->L - 1))
        return BAD(dg, "L = %lld is not a power of two (keys hold the length's bucket)", t->L);
    double budget;
    if (!lit(&p, ".b"))
        return BAD(dg, "no .b<budget> after L in the key");
    RJ_TRY(f64_at(&p, "b", &budget, dg));
    if (!(budget > 0) || !isfinite(budget))
        return BAD(dg, "budget b = %g is not a positive finite number", budget);
    const char *cand = last_cand(p);
    if (*p != '.' || !cand || cand == p)
        return BAD(dg, "no .<calibration>.cand<mask> after the budget in the key");
    RJ_TRY(calib_parse(p + 1, (size_t)(cand - p - 1), dg));
    p = cand + 5;
    char *end = (char *)p;
    errno = 0;
    t->cand = strspn(p, "0123456789abcdef") ? strtoul(p, &end, 16) : 0;
    t->version = 1;
    t->transforms = 0;
    if (t->cand && !strcmp(end, ".v2")) {
        t->version = 2;
        end += 3;
    } else if (t->cand && strlen(end) == 6 && !strncmp(end, ".x", 2) &&
               (end[2] == '0' || end[2] == '1') &&
               (!strcmp(end + 3, ".v3") || !strcmp(end + 3, ".v4") || !strcmp(end + 3, ".v5"))) {
        t->version = end[5] - '0';
        t->transforms = end[2] == '1';
        end += 6;
    }
    if (!t->cand || errno == ERANGE || *end || t->cand >> rj_est_count)
        return BAD(dg, "candidate mask cand%.*s is not a non-zero hex mask of the %d estimators",
                   QUOTE, p, rj_est_count);
    return RFJIT_OK;
}

static int registry_index(const rj_est_ops *est)
{
    for (int i = 0; i < rj_est_count; i++)
        if (rj_est_registry[i] == est)
            return i;
    return -1;
}

/* The plan rfjit_tune_result_plan would build from the record passes rfjit_plan_create's
 * descriptor checks and its tiling the kernel plan's for max_vw lanes. */
static rfjit_status plan_ok(const tune_key *k, const rj_tune_row *row, int max_vw, int amx,
                            rj_diag *dg)
{
    if (row->est->flags & RJ_EST_NOPROJ) {
        if (row->m != 0)
            return BAD(dg, "m = %d for estimator '%s', which has no features (0 expected)",
                       row->m, row->est->name);
    }
    const rj_tune_req r = {.d = (int32_t)k->d,
                           .dv = (int32_t)k->dv,
                           .causal = k->causal,
                           .attn_scale = k->scale};
    if (row->transform && !k->transforms)
        return BAD(dg, "xform = %d in a record of a tune without transforms (.x0)", row->transform);
    if (row->est->tmpl != RJ_TMPL_EVA && (row->eva_window || row->eva_chunks))
        return BAD(dg, "window = %d, chunks = %d for estimator '%s', which is not eva (0 expected)",
                   row->eva_window, row->eva_chunks, row->est->name);
    const int bs = row->est->tmpl == RJ_TMPL_BLOCKSPARSE;
    if (!bs && (row->sparse_block || row->sparse_exact))
        return BAD(dg,
                   "sblock = %d, sexact = %d for estimator '%s', which is not blocksparse (0 "
                   "expected)",
                   row->sparse_block, row->sparse_exact, row->est->name);
    /* before version 4 the tuner never chose blocksparse, so no record holds its blocks */
    if (bs && row->sparse_block < 1)
        return BAD(dg, "est=blocksparse without sblock >= 1 (a record of version %d has none)",
                   k->version);
    if (row->compute != RFJIT_F32 && row->compute != RFJIT_BF16)
        return BAD(dg, "compute = %d is not %d (float32) or %d (bfloat16)", row->compute, RFJIT_F32,
                   RFJIT_BF16);
    rfjit_attn_desc a = rj_tune_row_desc(&r, row, row->seed);
    if (!(row->est->flags & RJ_EST_NOPROJ))
        a.m = row->m; /* rj_tune_desc_of would replace an m <= 0 by its search step */
    a.backend = RFJIT_BACKEND_AUTO;
    a.tiling = row->tiling;
    rj_spec s;
    rj_diag why = {{0}};
    if (rj_plan_check(&a, &s, &why) != RFJIT_OK)
        return BAD(dg, "%s", why.msg);
    rj_kplan kp;
    /* a bf16 record needs a bf16 kernel on the target's units; a refusal of it is not "runs
     * on the reference", which bf16 never does */
    s.amx = row->compute == RFJIT_BF16 && amx;
    const rfjit_status st = rj_kplan_make(&s, &row->tiling, max_vw, 1, &kp, &why);
    if (st != RFJIT_OK && row->compute == RFJIT_BF16)
        return BAD(dg, "compute = %d (bfloat16) for estimator '%s': %s", row->compute,
                   row->est->name, why.msg);
    /* no kernel for this estimator: rfjit_plan_create (AUTO) runs it on the reference */
    if (st != RFJIT_OK && st != RFJIT_E_NOT_APPLICABLE)
        return BAD(dg, "%s", why.msg);
    return RFJIT_OK;
}

rfjit_status rj_tune_record_check(const char *key, const char *value, int max_vw,
                                  rj_tune_row *row, rj_diag *dg)
{
    return rj_tune_record_check_for(key, value, max_vw, 1, row, dg);
}

rfjit_status rj_tune_record_check_for(const char *key, const char *value, int max_vw, int amx,
                                      rj_tune_row *row, rj_diag *dg)
{
    tune_key k;
    RJ_TRY(key_parse(key, &k, dg));
    RJ_TRY(value_parse(value, k.version, row, dg));
    /* exact always competes (rfjit_tune), so it answers whatever the candidate list was */
    if (row->est != rj_est_find("exact") && !((k.cand >> registry_index(row->est)) & 1))
        return BAD(dg, "est=%s is not among the key's candidates (cand%lx)", row->est->name,
                   k.cand);
    return plan_ok(&k, row, max_vw, amx, dg);
}

int rj_tune_record_ok(void *user, const char *key, const char *value, char *why, size_t n)
{
    (void)user;
    rj_tune_row row;
    rj_diag dg = {{0}};
    if (rj_tune_record_check(key, value, RJ_TUNE_RECORD_ANY_VW, &row, &dg) == RFJIT_OK)
        return 1;
    snprintf(why, n, "%s", dg.msg);
    return 0;
}
