/* SPDX-License-Identifier: MIT */
/*
 * This file checks the reading of the tuner's wisdom records (tuner/tune_record.h) and
 * what a context does with a file that holds bad ones: numbers that do not fit their field
 * (m=4294967360 was read as 64, m=9999999964 as 1410065372), negative sizes, tilings and
 * plans rfjit_plan_create refuses, and malformed syntax are refused with the field, its text
 * and the accepted range; a loaded file drops such a record with one warning naming the file
 * and the line, a strict import refuses the file, and rfjit_tune never answers from one.
 */
#include <criterion/criterion.h>

#include "runtime/ctx.h"
#include "tuner/tune.h"
#include "tuner/tune_record.h"
#include "runtime/wisdom.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(tune_record, .timeout = 120);

/* What api_tune.c writes for d = dv = 64, bidirectional, L 4096, budget 1e-2, synthetic
 * data, every estimator a candidate. */
static void key_of(char *buf, size_t n, int d)
{
    snprintf(buf, n, "tune.output.bidir.d%d.dv%d.L4096.b1.0000e-02.syn1.cand%x.x1.v5", d, d,
             (1u << rj_est_count) - 1);
}

static const char GOOD[] = "est=positive m=560 vw=8 T=32 ri=4 rj=2 predicted=1.300000e-02 "
                           "measured=7.700000e-03 bound=8.400000e-03 ms=6.300000e+00 seed=0 "
                           "window=0 chunks=0 xform=0 sblock=0 sexact=0 compute=0";
/* The same answer as a version 4 record wrote it, before bf16 was tried: no compute. */
static const char GOOD_V4[] = "est=positive m=560 vw=8 T=32 ri=4 rj=2 predicted=1.300000e-02 "
                              "measured=7.700000e-03 bound=8.400000e-03 ms=6.300000e+00 seed=0 "
                              "window=0 chunks=0 xform=0 sblock=0 sexact=0";
/* The same answer as a version 2 record wrote it, before transforms: no xform. */
static const char GOOD_V2[] = "est=positive m=560 vw=8 T=32 ri=4 rj=2 predicted=1.300000e-02 "
                              "measured=7.700000e-03 bound=8.400000e-03 ms=6.300000e+00 seed=0 "
                              "window=0 chunks=0";
/* The same answer as a version 1 record wrote it, before eva was searched: no window and
 * chunks, and a key without .v2. */
static const char GOOD_V1[] = "est=positive m=560 vw=8 T=32 ri=4 rj=2 predicted=1.300000e-02 "
                              "measured=7.700000e-03 bound=8.400000e-03 ms=6.300000e+00 seed=0";
static const char EVA[] = "est=eva m=0 vw=0 T=0 ri=0 rj=0 predicted=nan measured=6.000000e-02 "
                          "bound=7.000000e-02 ms=1.200000e+00 seed=3 window=32 chunks=16 "
                          "xform=0 sblock=0 sexact=0 compute=0";

/* value is GOOD with `field=old` replaced by `field=new` (field and old given as "m=560"). */
static void with(char *buf, size_t n, const char *old, const char *new)
{
    const char *at = strstr(GOOD, old);
    cr_assert_not_null(at, "%s not in the good value", old);
    snprintf(buf, n, "%.*s%s%s", (int)(at - GOOD), GOOD, new, at + strlen(old));
}

/* Check key/value with max_vw lanes: refused with WISDOM_FORMAT and a message holding each
 * of the NULL-terminated words. */
static void refused(const char *key, const char *value, int max_vw, ...)
{
    rj_tune_row row;
    rj_diag dg = {{0}};
    cr_assert_eq(rj_tune_record_check(key, value, max_vw, &row, &dg), RFJIT_E_WISDOM_FORMAT,
                 "accepted: %s %s", key, value);
    va_list ap;
    va_start(ap, max_vw);
    for (const char *w; (w = va_arg(ap, const char *));)
        cr_expect(strstr(dg.msg, w), "'%s' not in \"%s\" (value %s)", w, dg.msg, value);
    va_end(ap);
}

static void refused_value(const char *old, const char *new, ...)
{
    char key[256], v[512];
    key_of(key, sizeof key, 64);
    with(v, sizeof v, old, new);
    rj_tune_row row;
    rj_diag dg = {{0}};
    cr_assert_eq(rj_tune_record_check(key, v, 16, &row, &dg), RFJIT_E_WISDOM_FORMAT,
                 "accepted: %s", v);
    va_list ap;
    va_start(ap, new);
    for (const char *w; (w = va_arg(ap, const char *));)
        cr_expect(strstr(dg.msg, w), "'%s' not in \"%s\" (value %s)", w, dg.msg, v);
    va_end(ap);
}

Test(tune_record, accepts_what_the_tuner_writes)
{
    char key[256];
    key_of(key, sizeof key, 64);
    rj_tune_row row;
    rj_diag dg = {{0}};
    cr_assert_eq(rj_tune_record_check(key, GOOD, 8, &row, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect_str_eq(row.est->name, "positive");
    cr_expect_eq(row.m, 560);
    cr_expect_eq(row.tiling.vw, 8);
    cr_expect_eq(row.tiling.T, 32);
    cr_expect_eq(row.tiling.ri, 4);
    cr_expect_eq(row.tiling.rj, 2);
    cr_expect_eq(row.time_ms, 6.3);
    cr_expect_eq(row.seed, 0);
    /* exact has no features: m = 0 and the default tiling, as the tuner writes it */
    const char *exact =
        "est=exact m=0 vw=0 T=0 ri=0 rj=0 predicted=nan measured=nan bound=nan "
        "ms=4.100000e+01 seed=18446744073709551615 window=0 chunks=0 xform=0 sblock=0 sexact=0 "
        "compute=0";
    cr_assert_eq(rj_tune_record_check(key, exact, 8, &row, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect_eq(row.seed, UINT64_MAX);
    /* calibration hashes and causal keys */
    char k2[256];
    snprintf(k2, sizeof k2, "tune.kernel.causal.d16.dv32.L1.b5.0000e-03.cal0123456789abcdef.cand%x",
             (1u << rj_est_count) - 1);
    cr_assert_eq(rj_tune_record_check(k2, "est=positive m=16 vw=0 T=0 ri=0 rj=0 predicted=1e-3 "
                                          "measured=1e-3 bound=1e-3 ms=1 seed=7",
                                      4, &row, &dg),
                 RFJIT_OK, "%s", dg.msg);
}

/* The reported cases: numbers beyond 32 bits used to wrap (sscanf %d). */
Test(tune_record, numbers_beyond_their_field_are_refused)
{
    refused_value("m=560", "m=4294967360", "m = 4294967360", "outside", NULL);
    refused_value("m=560", "m=9999999964", "m = 9999999964", "outside", NULL);
    refused_value("m=560", "m=99999999999999999999999", "m = 99999999999999999999999", NULL);
    refused_value("T=32", "T=4294967328", "T = 4294967328", NULL);
    refused_value("seed=0", "seed=18446744073709551616", "seed = 18446744073709551616",
                  "2^64", NULL);
    refused_value("seed=0", "seed=-1", "seed=-1", "non-negative", NULL);
    refused_value("ms=6.300000e+00", "ms=1e999", "ms = 1e999", "double range", NULL);
    char key[256];
    snprintf(key, sizeof key, "tune.output.bidir.d4294967360.dv64.L4096.b1.0000e-02.syn1.cand%x",
             (1u << rj_est_count) - 1);
    refused(key, GOOD, 16, "d = 4294967360", "outside", NULL);
    snprintf(key, sizeof key, "tune.output.bidir.d64.dv64.L99999999999.b1.0000e-02.syn1.cand%x",
             (1u << rj_est_count) - 1);
    refused(key, GOOD, 16, "L = 99999999999", "[1, 16777216]", NULL);
}

/* Negative and zero sizes, and the plan rules rfjit_plan_create applies. */
Test(tune_record, sizes_plan_create_refuses_are_refused)
{
    refused_value("m=560", "m=-5", "m = -5 is outside [1, 1048576]", NULL);
    refused_value("m=560", "m=0", "m = 0 is outside [1, 1048576]", NULL);
    refused_value("m=560", "m=2000000", "m = 2000000", NULL);
    char key[256];
    key_of(key, sizeof key, -64);
    refused(key, GOOD, 16, "d = -64 is outside", NULL);
    key_of(key, sizeof key, 0);
    refused(key, GOOD, 16, "d = 0 is outside", NULL);
    snprintf(key, sizeof key, "tune.output.bidir.d64.dv64.L3.b1.0000e-02.syn1.cand%x",
             (1u << rj_est_count) - 1);
    refused(key, GOOD, 16, "L = 3 is not a power of two", NULL);
    snprintf(key, sizeof key, "tune.output.bidir.d64.dv64.L4096.b-1.0000e-02.syn1.cand%x",
             (1u << rj_est_count) - 1);
    refused(key, GOOD, 16, "budget", NULL);
    snprintf(key, sizeof key, "tune.output.bidir.d64.dv64.L4096.b1.0000e-02.syn101.cand%x",
             (1u << rj_est_count) - 1);
    refused(key, GOOD, 16, "synthetic scale 101 is outside (0, 100]", NULL);
    key_of(key, sizeof key, 64);
    refused(key,
            "est=exact m=5 vw=0 T=0 ri=0 rj=0 predicted=nan measured=nan bound=nan ms=1 seed=0 "
            "window=0 chunks=0 xform=0 sblock=0 sexact=0 compute=0",
            16, "m = 5", "exact", NULL);
}

/* The calibration part names the synthetic profile: syn (Gaussian, what every record had
 * before profiles) and real (real-like) parse with the same scale range; others do not. */
Test(tune_record, profiles_in_the_key)
{
    static const struct {
        const char *cal;
        rfjit_status want;
    } cases[] = {{"syn1", RFJIT_OK},
                 {"real1", RFJIT_OK},
                 {"real0.5", RFJIT_OK},
                 {"real101", RFJIT_E_WISDOM_FORMAT},
                 {"real", RFJIT_E_WISDOM_FORMAT},
                 {"realx", RFJIT_E_WISDOM_FORMAT},
                 {"gauss1", RFJIT_E_WISDOM_FORMAT}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char key[256];
        snprintf(key, sizeof key, "tune.output.bidir.d64.dv64.L4096.b1.0000e-02.%s.cand%x.x1.v5",
                 cases[i].cal, (1u << rj_est_count) - 1);
        rj_tune_row row;
        rj_diag dg = {{0}};
        cr_expect_eq(rj_tune_record_check(key, GOOD, 16, &row, &dg), cases[i].want, "%s: %s", key,
                     dg.msg);
    }
}

/* Exact always competes, so a record choosing it is valid whatever candidates the key lists
 * (a tune of "positive" alone under a budget positive misses answers exact). */
Test(tune_record, exact_answers_any_candidate_list)
{
    int positive = 0;
    while (rj_est_registry[positive] != rj_est_find("positive"))
        positive++;
    char key[256];
    snprintf(key, sizeof key, "tune.output.bidir.d64.dv64.L4096.b1.0000e-02.real1.cand%x",
             1u << positive);
    rj_tune_row row;
    rj_diag dg = {{0}};
    cr_expect_eq(rj_tune_record_check(key,
                                      "est=exact m=0 vw=0 T=0 ri=0 rj=0 predicted=0 measured=0 "
                                      "bound=0 ms=1 seed=0",
                                      16, &row, &dg),
                 RFJIT_OK, "%s: %s", key, dg.msg);
}

Test(tune_record, tilings_kplan_refuses_are_refused)
{
    refused_value("vw=8 T=32", "vw=70 T=3", "vector width 70 is not 4, 8 or 16", NULL);
    refused_value("T=32", "T=3", "token tile 3", NULL);
    refused_value("T=32", "T=-32", "token tile -32", NULL);
    refused_value("ri=4", "ri=3", "register tile rows 3", NULL);
    refused_value("rj=2", "rj=9", "register tile vectors 9", NULL);
    /* a tiling wider than the target: acceptable in a file (ANY_VW), not for an AVX2 plan */
    char key[256], v[512];
    key_of(key, sizeof key, 64);
    with(v, sizeof v, "vw=8 T=32", "vw=16 T=32");
    rj_tune_row row;
    rj_diag dg = {{0}};
    cr_expect_eq(rj_tune_record_check(key, v, RJ_TUNE_RECORD_ANY_VW, &row, &dg), RFJIT_OK, "%s",
                 dg.msg);
    refused(key, v, 8, "vector width 16 exceeds the target's 8 lanes", NULL);
}

Test(tune_record, malformed_syntax_is_refused)
{
    refused_value("m=560", "m= 560", "m= 560", "not a decimal integer", NULL);
    refused_value("m=560", "m=+560", "not a decimal integer", NULL);
    refused_value("m=560", "m=560x", NULL);
    refused_value("m=560", "m=0x230", NULL);
    refused_value("m=560", "m=", "not a decimal integer", NULL);
    refused_value(" ri=4", "", "ri=", NULL);
    refused_value("compute=0", "compute=0 extra", "text after the compute", NULL);
    refused_value(" compute=0", "", "compute=", NULL);
    refused_value(" xform=0", "", "xform=", NULL);
    refused_value(" sblock=0 sexact=0", "", "sblock=", NULL);
    refused_value(" window=0 chunks=0", "", "window=", NULL);
    refused_value("predicted=1.300000e-02", "predicted=", "predicted", "not a number", NULL);
    refused_value("est=positive", "est=nosuch", "est=nosuch is not a known estimator", NULL);
    refused_value("est=positive", "est=", "not an estimator name", NULL);
    char key[256];
    refused("tiling.positive.d64.dv64.m256.bidir.L4096", GOOD, 16, "not a tuning record", NULL);
    refused("tune.output.bidir.d64.dv64.L4096.b1.0000e-02.syn1.cand0", GOOD, 16,
            "candidate mask", NULL);
    refused("tune.output.bidir.d64.dv64.L4096.b1.0000e-02.syn1.candfffffffff", GOOD, 16,
            "candidate mask", NULL);
    refused("tune.output.bidir.d64.dv64.L4096.b1.0000e-02.calXYZ.cand1", GOOD, 16,
            "calibration", NULL);
    refused("tune.output.sideways.d64.dv64.L4096.b1.0000e-02.syn1.cand1", GOOD, 16,
            "direction", NULL);
    /* the estimator must be one the key's candidate set allowed */
    snprintf(key, sizeof key, "tune.output.bidir.d64.dv64.L4096.b1.0000e-02.syn1.cand%x.x1.v5",
             1u << (rj_est_find("positive") == rj_est_registry[0] ? 1 : 0));
    refused(key, GOOD, 16, "not among the key's candidates", NULL);
}

/* Version 1 records (before eva was searched) still parse, without eva's fields; a version
 * 2 record must have them, and they must be 0 for any estimator but eva. */
Test(tune_record, both_versions_parse_and_eva_keeps_its_parameters)
{
    char key[256];
    snprintf(key, sizeof key, "tune.output.bidir.d64.dv64.L4096.b1.0000e-02.syn1.cand%x",
             (1u << rj_est_count) - 1);
    rj_tune_row row;
    rj_diag dg = {{0}};
    cr_expect_eq(rj_tune_record_check(key, GOOD_V1, 8, &row, &dg), RFJIT_OK, "%s", dg.msg);
    refused(key, GOOD, 16, "text after the seed", NULL);
    key_of(key, sizeof key, 64);
    refused(key, GOOD_V1, 16, "window=", NULL);
    cr_assert_eq(rj_tune_record_check(key, EVA, 8, &row, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect_str_eq(row.est->name, "eva");
    cr_expect_eq(row.eva_window, 32);
    cr_expect_eq(row.eva_chunks, 16);
    cr_expect_eq(row.seed, 3);
    refused_value("window=0", "window=16", "window = 16, chunks = 0", "not eva", NULL);
    char v[512];
    snprintf(v, sizeof v, "%.*schunks=0 xform=0 sblock=0 sexact=0 compute=0",
             (int)(strstr(EVA, "chunks=") - EVA), EVA);
    refused(key, v, 16, "chunk count 0", NULL);
    snprintf(v, sizeof v, "%.*swindow=-1 chunks=16 xform=0 sblock=0 sexact=0 compute=0",
             (int)(strstr(EVA, "window=") - EVA), EVA);
    refused(key, v, 16, "window -1", NULL);
    refused(key,
            "est=eva m=16 vw=0 T=0 ri=0 rj=0 predicted=nan measured=0 bound=0 ms=1 seed=3 "
            "window=32 chunks=16 xform=0 sblock=0 sexact=0 compute=0",
            16, "m = 16", "eva", NULL);
}

/* Version 2 records (before transforms) parse as transform 0; a version 3 record must have
 * its xform, one rfjit_plan_create accepts for the estimator, and 0 under a key of a tune
 * without transforms (.x0). */
Test(tune_record, version_2_reads_as_no_transform_and_xform_is_checked)
{
    char key[256];
    snprintf(key, sizeof key, "tune.output.bidir.d64.dv64.L4096.b1.0000e-02.syn1.cand%x.v2",
             (1u << rj_est_count) - 1);
    rj_tune_row row;
    rj_diag dg = {{0}};
    cr_expect_eq(rj_tune_record_check(key, GOOD_V2, 8, &row, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect_eq(row.transform, 0);
    cr_expect_eq(row.m, 560);
    refused(key, GOOD, 16, "text after the chunks", NULL);
    key_of(key, sizeof key, 64);
    refused(key, GOOD_V2, 16, "xform=", NULL);
    char v[512];
    with(v, sizeof v, "xform=0", "xform=7"); /* center_k + center_q + balance */
    cr_expect_eq(rj_tune_record_check(key, v, 8, &row, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect_eq(row.transform, 7);
    refused_value("xform=0", "xform=16", "transform = 16 has unknown bits", NULL);
    refused_value("xform=0", "xform=-1", "unknown bits", NULL);
    with(v, sizeof v, "est=positive", "est=trig");
    char w[512];
    snprintf(w, sizeof w, "%.*sxform=2 sblock=0 sexact=0 compute=0", (int)(strstr(v, "xform=") - v),
             v);
    refused(key, w, 16, "CENTER_Q", "trig", NULL);
    snprintf(key, sizeof key, "tune.output.bidir.d64.dv64.L4096.b1.0000e-02.syn1.cand%x.x0.v5",
             (1u << rj_est_count) - 1);
    cr_expect_eq(rj_tune_record_check(key, GOOD, 8, &row, &dg), RFJIT_OK, "%s", dg.msg);
    with(v, sizeof v, "xform=0", "xform=5");
    refused(key, v, 16, "xform = 5", "without transforms", NULL);
    snprintf(key, sizeof key, "tune.output.bidir.d64.dv64.L4096.b1.0000e-02.syn1.cand%x.x2.v5",
             (1u << rj_est_count) - 1);
    refused(key, GOOD, 16, "candidate mask", NULL);
}

/* ---- through a wisdom file ------------------------------------------------------------------ */

static char logged[8][1024];
static int nlogged;

static void log_fn(void *user, int level, const char *msg)
{
    (void)user;
    if (level <= 1 && nlogged < 8)
        snprintf(logged[nlogged++], sizeof logged[0], "%s", msg);
}

static rfjit_ctx *ctx_for(const char *wisdom)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = wisdom;
    cd.log = log_fn;
    nlogged = 0;
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    return c;
}

/* A wisdom file with this machine's header and the given record lines. */
/* A fresh empty file at path (a mkstemp template), for a wisdom file a test writes. */
static void temp_file(char *path)
{
    const int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
}

/* The wisdom file at path and the lock file beside it. */
static void remove_wisdom(const char *path)
{
    unlink(path);
    char lock[64];
    snprintf(lock, sizeof lock, "%s.lock", path);
    unlink(lock);
}

static void write_wisdom(const char *path, const char *lines)
{
    rfjit_ctx *c = ctx_for("");
    char *head = NULL;
    cr_assert_eq(rfjit_wisdom_to_string(c, &head), RFJIT_OK);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s%s", head, lines);
    cr_assert_eq(fclose(f), 0);
    rfjit_free(head);
    rfjit_ctx_destroy(c);
}

static rfjit_status tune_wisdom_only(rfjit_ctx *c, rfjit_tune_result **r)
{
    rfjit_tune_desc t = RFJIT_TUNE_DESC_INIT;
    t.d = 64;
    t.L = 4096;
    t.patience = RFJIT_PATIENCE_WISDOM_ONLY;
    t.synthetic_profile = RFJIT_PROFILE_GAUSSIAN; /* key_of's syn1: a record without profile */
    return rfjit_tune(c, &t, r);
}

Test(tune_record, a_file_drops_bad_records_with_one_warning_naming_file_and_line)
{
    char path[] = "/tmp/rfjit_tune_record_XXXXXX";
    temp_file(path);
    char key[256], lines[2048], bad[512];
    key_of(key, sizeof key, 64);

    /* the good record first: proves the key is the one rfjit_tune looks up */
    snprintf(lines, sizeof lines, "%s patience=1 %s\n", key, GOOD);
    write_wisdom(path, lines);
    rfjit_ctx *c = ctx_for(path);
    cr_expect_eq(nlogged, 0, "%s", logged[0]);
    rfjit_tune_result *r = NULL;
    cr_assert_eq(tune_wisdom_only(c, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    rfjit_tune_row row;
    cr_assert_eq(rfjit_tune_result_row(r, 0, &row), RFJIT_OK);
    cr_expect_eq(row.m, 560);
    rfjit_tune_result_destroy(r);
    rfjit_ctx_destroy(c);

    /* the same problem with m beyond 32 bits (line 3), and a tiling no plan has (line 4) */
    with(bad, sizeof bad, "m=560", "m=4294967360");
    snprintf(lines, sizeof lines, "%s patience=1 %s\n", key, bad);
    with(bad, sizeof bad, "vw=8 T=32", "vw=70 T=3");
    snprintf(lines + strlen(lines), sizeof lines - strlen(lines),
             "tune.output.bidir.d32.dv32.L4096.b1.0000e-02.syn1.cand%x.x1.v5 patience=1 %s\n",
             (1u << rj_est_count) - 1, bad);
    write_wisdom(path, lines);
    c = ctx_for(path);
    cr_assert_eq(nlogged, 1, "%d warnings", nlogged);
    cr_expect(strstr(logged[0], path), "%s", logged[0]);
    cr_expect(strstr(logged[0], "line 3"), "%s", logged[0]);
    cr_expect(strstr(logged[0], "m = 4294967360"), "%s", logged[0]);
    cr_expect(strstr(logged[0], "2 malformed line(s)"), "%s", logged[0]);
    char *text = NULL;
    cr_assert_eq(rfjit_wisdom_to_string(c, &text), RFJIT_OK);
    cr_expect(!strstr(text, "patience="), "kept a bad record:\n%s", text);
    rfjit_free(text);
    r = NULL;
    cr_expect_eq(tune_wisdom_only(c, &r), RFJIT_E_NO_WISDOM, "answered from a bad record");
    rfjit_tune_result_destroy(r);
    /* an explicit import is strict: the file is refused, naming the line and the value */
    cr_expect_eq(rfjit_wisdom_import(c, path), RFJIT_E_WISDOM_FORMAT);
    cr_expect(strstr(rfjit_ctx_last_error(c), "line 3"), "%s", rfjit_ctx_last_error(c));
    cr_expect(strstr(rfjit_ctx_last_error(c), "4294967360"), "%s", rfjit_ctx_last_error(c));
    /* and a save does not carry the bad records over from the file */
    cr_assert_eq(rfjit_wisdom_export(c, path), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    rfjit_ctx_destroy(c);
    c = ctx_for(path);
    cr_expect_eq(nlogged, 0, "%s", logged[0]);
    rfjit_ctx_destroy(c);
    remove_wisdom(path);
}

/* The plan and row of a WISDOM_ONLY answer are eva's, with the record's window and chunks. */
static void expect_eva_answer(rfjit_ctx *c)
{
    rfjit_tune_result *r = NULL;
    cr_assert_eq(tune_wisdom_only(c, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    cr_assert_eq(rfjit_tune_result_plan(r, &a), RFJIT_OK);
    cr_expect_str_eq(a.estimator, "eva");
    cr_expect(a.eva_window == 32 && a.eva_chunks == 16 && a.seed == 3, "%d %d %llu", a.eva_window,
              a.eva_chunks, (unsigned long long)a.seed);
    rfjit_tune_row row;
    cr_assert_eq(rfjit_tune_result_row(r, 0, &row), RFJIT_OK);
    cr_expect(row.eva_window == 32 && row.eva_chunks == 16, "%d %d", row.eva_window,
              row.eva_chunks);
    char json[4096];
    cr_assert_eq(rfjit_tune_result_json(r, json, sizeof json), RFJIT_OK);
    cr_expect(strstr(json, "\"eva_window\": 32, \"eva_chunks\": 16"), "%s", json);
    rfjit_plan *p = NULL;
    cr_expect_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    rfjit_plan_destroy(p);
    rfjit_tune_result_destroy(r);
}

/* An eva answer goes through a wisdom file and back with its window and chunk count: read,
 * answered, exported and read again. A version 1 record of the same problem (written before
 * eva was searched) loads without a warning and is kept, but never answers. */
Test(tune_record, eva_parameters_round_trip_through_wisdom)
{
    char path[] = "/tmp/rfjit_tune_record_XXXXXX";
    temp_file(path);
    char key[256], lines[2048];
    key_of(key, sizeof key, 64);
    snprintf(lines, sizeof lines, "%.*s patience=1 %s\n", (int)(strlen(key) - 6), key, GOOD_V1);
    write_wisdom(path, lines);
    rfjit_ctx *c = ctx_for(path);
    cr_expect_eq(nlogged, 0, "%s", logged[0]);
    rfjit_tune_result *r = NULL;
    cr_expect_eq(tune_wisdom_only(c, &r), RFJIT_E_NO_WISDOM, "answered from a version 1 record");
    rfjit_tune_result_destroy(r);
    rfjit_ctx_destroy(c);

    snprintf(lines + strlen(lines), sizeof lines - strlen(lines), "%s patience=1 %s\n", key, EVA);
    write_wisdom(path, lines);
    c = ctx_for(path);
    cr_expect_eq(nlogged, 0, "%s", logged[0]);
    expect_eva_answer(c);
    cr_assert_eq(rfjit_wisdom_export(c, path), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    rfjit_ctx_destroy(c);
    c = ctx_for(path);
    cr_expect_eq(nlogged, 0, "%s", logged[0]);
    expect_eva_answer(c);
    char *text = NULL;
    cr_assert_eq(rfjit_wisdom_to_string(c, &text), RFJIT_OK);
    cr_expect(strstr(text, "window=32 chunks=16") && strstr(text, GOOD_V1), "%s", text);
    rfjit_free(text);
    rfjit_ctx_destroy(c);
    remove_wisdom(path);
}

/* The store with the check installed, as a context has it, on text alone. */
Test(tune_record, from_text_counts_refused_records_as_malformed)
{
    rj_wisdom *w = NULL;
    cr_assert_eq(rj_wisdom_create("sig", &w), RFJIT_OK);
    rj_wisdom_set_check(w, rj_tune_record_ok, NULL);
    char key[256], bad[512], text[4096];
    key_of(key, sizeof key, 64);
    with(bad, sizeof bad, "m=560", "m=-5");
    snprintf(text, sizeof text, "rfjit-wisdom 1\nsignature sig\n%s patience=1 %s\n"
             "%s patience=2 %s\n", key, GOOD, key, bad);
    rj_wisdom_report rep;
    rj_diag dg = {{0}};
    cr_assert_eq(rj_wisdom_from_text(w, text, strlen(text), 0, &rep, &dg), RFJIT_OK);
    cr_expect_eq(rep.bad_lines, 1);
    cr_expect(strstr(rep.why, "line 4") && strstr(rep.why, "m = -5"), "%s", rep.why);
    cr_assert_eq(rj_wisdom_count(w), 1);
    int pat = -1;
    cr_expect_str_eq(rj_wisdom_get(w, key, 0, &pat), GOOD);
    cr_expect_eq(pat, 1);
    rj_wisdom_forget(w);
    cr_expect_eq(rj_wisdom_from_text(w, text, strlen(text), 1, &rep, &dg),
                 RFJIT_E_WISDOM_FORMAT);
    cr_expect(strstr(dg.msg, "line 4") && strstr(dg.msg, "m = -5"), "%s", dg.msg);
    cr_expect_eq(rj_wisdom_count(w), 0);
    rj_wisdom_destroy(w);
}

/* The fuzz target's seed corpus (tests/fuzz/corpus/wisdom) holds these cases too: its valid
 * file keeps every record, the others drop every one. */
Test(tune_record, fuzz_corpus_cases)
{
    static const struct {
        const char *file;
        size_t kept;
        int bad;
    } cases[] = {{"valid", 4, 0}, {"overflow", 0, 6}, {"negative", 0, 5}, {"bad_tiling", 0, 6}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rj_wisdom *w = NULL;
        cr_assert_eq(rj_wisdom_create("rfjit=0.1.0 est=0 cpu=fuzz llvm=19 features=", &w),
                     RFJIT_OK);
        rj_wisdom_set_check(w, rj_tune_record_ok, NULL);
        char path[512];
        snprintf(path, sizeof path, RFJIT_SOURCE_DIR "/tests/fuzz/corpus/wisdom/%s",
                 cases[i].file);
        rj_wisdom_report rep;
        rj_diag dg = {{0}};
        cr_assert_eq(rj_wisdom_load(w, path, 0, &rep, &dg), RFJIT_OK, "%s", dg.msg);
        cr_expect_eq(rep.ignored_file + rep.foreign, 0, "%s: %s", path, rep.why);
        cr_expect_eq(rj_wisdom_count(w), cases[i].kept, "%s: %s", path, rep.why);
        cr_expect_eq(rep.bad_lines, cases[i].bad, "%s: %s", path, rep.why);
        rj_wisdom_destroy(w);
    }
}

/* A transformed answer goes through a wisdom file and back: the row, the plan and the JSON
 * hold its transform, before and after an export; a tune without transforms does not get
 * it (its key is another). */
Test(tune_record, a_transform_round_trips_through_wisdom)
{
    char path[] = "/tmp/rfjit_tune_record_XXXXXX";
    temp_file(path);
    char key[256], v[512], lines[1024];
    key_of(key, sizeof key, 64);
    with(v, sizeof v, "xform=0", "xform=5"); /* center_k + balance */
    snprintf(lines, sizeof lines, "%s patience=1 %s\n", key, v);
    write_wisdom(path, lines);
    for (int pass = 0; pass < 2; pass++) {
        rfjit_ctx *c = ctx_for(path);
        cr_expect_eq(nlogged, 0, "%s", logged[0]);
        rfjit_tune_result *r = NULL;
        cr_assert_eq(tune_wisdom_only(c, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
        rfjit_tune_row row;
        cr_assert_eq(rfjit_tune_result_row(r, 0, &row), RFJIT_OK);
        cr_expect_eq(row.transform, 5);
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        cr_assert_eq(rfjit_tune_result_plan(r, &a), RFJIT_OK);
        cr_expect_eq(a.transform, 5);
        char json[4096];
        cr_assert_eq(rfjit_tune_result_json(r, json, sizeof json), RFJIT_OK);
        cr_expect(strstr(json, "\"transform\": 5, \"transform_name\": \"center_k+balance\""), "%s",
                  json);
        rfjit_tune_result_destroy(r);
        rfjit_tune_desc t = RFJIT_TUNE_DESC_INIT;
        t.d = 64;
        t.L = 4096;
        t.patience = RFJIT_PATIENCE_WISDOM_ONLY;
        t.synthetic_profile = RFJIT_PROFILE_GAUSSIAN;
        t.transforms = 0;
        r = NULL;
        cr_expect_eq(rfjit_tune(c, &t, &r), RFJIT_E_NO_WISDOM,
                     "a tune without transforms "
                     "took a transformed answer");
        rfjit_tune_result_destroy(r);
        cr_assert_eq(rfjit_wisdom_export(c, path), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
        rfjit_ctx_destroy(c);
    }
    remove_wisdom(path);
}

static const char BLOCKSPARSE[] = "est=blocksparse m=64 vw=0 T=0 ri=0 rj=0 predicted=nan "
                                  "measured=4.000000e-02 bound=5.000000e-02 ms=2.000000e+00 "
                                  "seed=3 window=0 chunks=0 xform=5 sblock=64 sexact=2 compute=0";

/* Version 3 records (before blocksparse was searched) parse with no block fields, and one
 * naming blocksparse is refused, since it cannot say which blocks; a version 4 record must
 * have them, 0 for any estimator but blocksparse and valid for it. */
Test(tune_record, version_3_reads_as_no_blocks_and_blocks_are_checked)
{
    char key[256], v[512];
    snprintf(key, sizeof key, "tune.output.bidir.d64.dv64.L4096.b1.0000e-02.syn1.cand%x.x1.v3",
             (1u << rj_est_count) - 1);
    snprintf(v, sizeof v, "%.*s", (int)(strstr(GOOD, " sblock=") - GOOD), GOOD);
    rj_tune_row row;
    rj_diag dg = {{0}};
    cr_expect_eq(rj_tune_record_check(key, v, 8, &row, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect(row.m == 560 && row.sparse_block == 0 && row.sparse_exact == 0, "%d %d %d", row.m,
              row.sparse_block, row.sparse_exact);
    refused(key, GOOD, 16, "text after the xform", NULL);
    snprintf(v, sizeof v, "%.*s", (int)(strstr(BLOCKSPARSE, " sblock=") - BLOCKSPARSE),
             BLOCKSPARSE);
    refused(key, v, 16, "blocksparse", "sblock", "version 3", NULL);
    key_of(key, sizeof key, 64);
    refused(key, v, 16, "sblock=", NULL);
    cr_assert_eq(rj_tune_record_check(key, BLOCKSPARSE, 8, &row, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect(row.sparse_block == 64 && row.sparse_exact == 2 && row.m == 64, "%d %d %d",
              row.sparse_block, row.sparse_exact, row.m);
    refused_value("sblock=0 sexact=0", "sblock=64 sexact=4", "sblock = 64, sexact = 4",
                  "not blocksparse", NULL);
    snprintf(v, sizeof v, "%.*ssblock=0 sexact=2 compute=0",
             (int)(strstr(BLOCKSPARSE, "sblock=") - BLOCKSPARSE), BLOCKSPARSE);
    refused(key, v, 16, "sblock >= 1", NULL);
    snprintf(v, sizeof v, "%.*ssblock=64 sexact=-1 compute=0",
             (int)(strstr(BLOCKSPARSE, "sblock=") - BLOCKSPARSE), BLOCKSPARSE);
    refused(key, v, 16, "sparse_exact = -1", NULL);
}

/* A blocksparse answer goes through a wisdom file and back with its block size and exact
 * block count: the row, the plan and the JSON hold them, before and after an export. */
Test(tune_record, blocksparse_parameters_round_trip_through_wisdom)
{
    char path[] = "/tmp/rfjit_tune_record_XXXXXX";
    temp_file(path);
    char key[256], lines[1024];
    key_of(key, sizeof key, 64);
    snprintf(lines, sizeof lines, "%s patience=1 %s\n", key, BLOCKSPARSE);
    write_wisdom(path, lines);
    for (int pass = 0; pass < 2; pass++) {
        rfjit_ctx *c = ctx_for(path);
        cr_expect_eq(nlogged, 0, "%s", logged[0]);
        rfjit_tune_result *r = NULL;
        cr_assert_eq(tune_wisdom_only(c, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
        rfjit_tune_row row;
        cr_assert_eq(rfjit_tune_result_row(r, 0, &row), RFJIT_OK);
        cr_expect_str_eq(row.estimator, "blocksparse");
        cr_expect(row.sparse_block == 64 && row.sparse_exact == 2 && row.m == 64 &&
                      row.transform == 5,
                  "%d %d %d %d", row.sparse_block, row.sparse_exact, row.m, row.transform);
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        cr_assert_eq(rfjit_tune_result_plan(r, &a), RFJIT_OK);
        cr_expect(a.sparse_block == 64 && a.sparse_exact == 2 && a.m == 64 && a.seed == 3,
                  "%d %d %d %llu", a.sparse_block, a.sparse_exact, a.m, (unsigned long long)a.seed);
        char json[4096];
        cr_assert_eq(rfjit_tune_result_json(r, json, sizeof json), RFJIT_OK);
        cr_expect(strstr(json, "\"sparse_block\": 64, \"sparse_exact\": 2"), "%s", json);
        rfjit_plan *p = NULL;
        cr_expect_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
        rfjit_plan_destroy(p);
        rfjit_tune_result_destroy(r);
        cr_assert_eq(rfjit_wisdom_export(c, path), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
        rfjit_ctx_destroy(c);
    }
    remove_wisdom(path);
}

static const char EXACT_BF16[] = "est=exact m=0 vw=0 T=0 ri=0 rj=0 predicted=nan "
                                 "measured=2.000000e-05 bound=2.500000e-05 ms=1.400000e+01 "
                                 "seed=0 window=0 chunks=0 xform=0 sblock=0 sexact=0 compute=2";

/* A random-feature row's bf16 twin (bidirectional positive, AMX's 16 lanes). */
static const char POSITIVE_BF16[] = "est=positive m=256 vw=0 T=0 ri=0 rj=0 predicted=1e-3 "
                                    "measured=1e-3 bound=1.2e-3 ms=2 seed=7 window=0 chunks=0 "
                                    "xform=0 sblock=0 sexact=0 compute=2";

/* Version 4 records (before bf16 was tried) parse as float32; a version 5 record must have
 * its compute, RFJIT_F32 or RFJIT_BF16, and bf16 only where a bf16 kernel exists: exact, and
 * positive and hyperbolic bidirectional at 16 lanes. */
Test(tune_record, version_4_reads_as_float32_and_compute_is_checked)
{
    char key[256];
    snprintf(key, sizeof key, "tune.output.bidir.d64.dv64.L4096.b1.0000e-02.syn1.cand%x.x1.v4",
             (1u << rj_est_count) - 1);
    rj_tune_row row;
    rj_diag dg = {{0}};
    cr_expect_eq(rj_tune_record_check(key, GOOD_V4, 8, &row, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect(row.compute == RFJIT_F32 && row.m == 560, "%d %d", row.compute, row.m);
    refused(key, GOOD, 16, "text after the sexact", NULL);
    key_of(key, sizeof key, 64);
    refused(key, GOOD_V4, 16, "compute=", NULL);
    cr_assert_eq(rj_tune_record_check(key, EXACT_BF16, 16, &row, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect(row.compute == RFJIT_BF16 && !strcmp(row.est->name, "exact"), "%d %s", row.compute,
              row.est->name);
    /* GOOD is positive at 8 lanes, where no bf16 kernel is */
    refused_value("compute=0", "compute=2", "compute = 2", "no bfloat16 kernel", NULL);
    cr_assert_eq(rj_tune_record_check(key, POSITIVE_BF16, 16, &row, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect(row.compute == RFJIT_BF16 && !strcmp(row.est->name, "positive"));
    refused(key, POSITIVE_BF16, 8, "no bfloat16 kernel", NULL);
    /* a target without AMX has exact's bf16 kernel (AVX512-BF16) but not positive's */
    cr_expect_eq(rj_tune_record_check_for(key, EXACT_BF16, 16, 0, &row, &dg), RFJIT_OK, "%s",
                 dg.msg);
    cr_expect_eq(rj_tune_record_check_for(key, POSITIVE_BF16, 16, 0, &row, &dg),
                 RFJIT_E_WISDOM_FORMAT, "a positive bf16 record accepted without AMX");
    cr_expect(strstr(dg.msg, "no bfloat16 kernel"), "%s", dg.msg);
    char causal[256];
    snprintf(causal, sizeof causal,
             "tune.output.causal.d64.dv64.L4096.b1.0000e-02.syn1.cand%x.x1.v5",
             (1u << rj_est_count) - 1);
    refused(causal, POSITIVE_BF16, 16, "for causal attention", NULL);
    refused_value("compute=0", "compute=1", "compute = 1 is not", NULL);
    refused_value("compute=0", "compute=-1", "compute = -1 is not", NULL);
}

/* A bf16 answer goes through a wisdom file and back as bf16: the row, the plan and the JSON
 * say so, before and after an export, and the plan runs. A context without AVX512-BF16 (an
 * avx2 one, and this machine's own where it lacks the instruction) never answers from it. */
Test(tune_record, a_bf16_answer_round_trips_through_wisdom)
{
    char path[] = "/tmp/rfjit_tune_record_XXXXXX";
    temp_file(path);
    char key[256], lines[1024];
    key_of(key, sizeof key, 64);
    snprintf(lines, sizeof lines, "%s patience=1 %s\n", key, EXACT_BF16);
    write_wisdom(path, lines);
    for (int pass = 0; pass < 2; pass++) {
        rfjit_ctx *c = ctx_for(path);
        cr_expect_eq(nlogged, 0, "%s", logged[0]);
        rfjit_attn_desc probe = RFJIT_ATTN_DESC_INIT;
        probe.d = probe.dv = 64;
        probe.estimator = "exact";
        probe.compute = RFJIT_BF16;
        rfjit_plan *p = NULL;
        const rfjit_status can = rfjit_plan_create(c, &probe, &p);
        rfjit_plan_destroy(p);
        p = NULL;
        rfjit_tune_result *r = NULL;
        if (can != RFJIT_OK) {
            cr_expect_eq(can, RFJIT_E_ISA, "%s", rfjit_ctx_last_error(c));
            cr_expect_eq(tune_wisdom_only(c, &r), RFJIT_E_NO_WISDOM, "a bf16 answer without bf16");
            rfjit_tune_result_destroy(r);
            rfjit_ctx_destroy(c);
            break;
        }
        cr_assert_eq(tune_wisdom_only(c, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
        rfjit_tune_row row;
        cr_assert_eq(rfjit_tune_result_row(r, 0, &row), RFJIT_OK);
        cr_expect_str_eq(row.estimator, "exact");
        cr_expect_eq(row.compute, RFJIT_BF16);
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        cr_assert_eq(rfjit_tune_result_plan(r, &a), RFJIT_OK);
        cr_expect_eq(a.compute, RFJIT_BF16);
        char json[4096];
        cr_assert_eq(rfjit_tune_result_json(r, json, sizeof json), RFJIT_OK);
        cr_expect(strstr(json, "\"compute\": \"bf16\""), "%s", json);
        cr_expect_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
        char desc[512];
        cr_expect_eq(rfjit_plan_describe(p, desc, sizeof desc), RFJIT_OK);
        cr_expect(strstr(desc, "compute=bf16"), "%s", desc);
        rfjit_plan_destroy(p);
        rfjit_tune_result_destroy(r);
        cr_assert_eq(rfjit_wisdom_export(c, path), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
        rfjit_ctx_destroy(c);
    }
    /* an avx2 context of the same machine loads the record but does not answer from it */
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = path;
    cd.isa = "avx2";
    cd.log = log_fn;
    nlogged = 0;
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    cr_expect_eq(nlogged, 0, "%s", logged[0]);
    rfjit_tune_result *r = NULL;
    cr_expect_eq(tune_wisdom_only(c, &r), RFJIT_E_NO_WISDOM, "an avx2 context answered bf16");
    rfjit_tune_result_destroy(r);
    rfjit_ctx_destroy(c);
    remove_wisdom(path);
}
