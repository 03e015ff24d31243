/* SPDX-License-Identifier: MIT */
/*
 * This file checks kernels built in parts (gen.h rj_gen_kernel, runtime/jit.c): a context
 * that may compile on two threads builds a kernel as several objects, one per part plus the
 * helpers they share, and its outputs are a one-thread context's (one module) bit for bit,
 * for every template's parts (linear bidirectional and causal, exact with its member
 * passes), ragged tiles, several heads and bf16 compute; the blob of objects survives the
 * disk cache; and the blob reader refuses what does not add up.
 */
#include <criterion/criterion.h>

#include "data_testutil.h"
#include "rfjit.h"
#include "runtime/kbundle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The objects count of the last "compiled" note a context gave. */
typedef struct notes {
    int objects;
} notes;

static void on_note(void *user, int level, const char *msg)
{
    (void)level;
    notes *n = user;
    const char *p = strstr(msg, " compiled (");
    int bytes = 0, objects = 0;
    if (p && sscanf(p, " compiled (%d bytes, %d objects)", &bytes, &objects) == 2)
        n->objects = objects;
}

static rfjit_ctx *context(int threads, const char *cache, notes *n)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.threads = threads;
    cd.cache_dir = cache;
    cd.wisdom_path = "";
    cd.verbose = 2;
    cd.log = on_note;
    cd.log_user = n;
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK, "%s", rfjit_ctx_last_error(NULL));
    return c;
}

typedef struct pcase {
    const char *est;
    int causal, h, l, d, dv, compute;
} pcase;

/* out of a plan of pc on c, from inputs of seed 7 */
static float *run(rfjit_ctx *c, const pcase *pc, int *skipped)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = pc->est;
    a.d = pc->d;
    a.dv = pc->dv;
    a.m = 96;
    a.causal = pc->causal;
    a.backend = RFJIT_BACKEND_JIT;
    a.compute = pc->compute;
    rfjit_plan *p = NULL;
    const rfjit_status s = rfjit_plan_create(c, &a, &p);
    if (pc->compute == RFJIT_BF16 && s == RFJIT_E_ISA) {
        *skipped = 1;
        return NULL;
    }
    cr_assert_eq(s, RFJIT_OK, "%s causal=%d: %s", pc->est, pc->causal, rfjit_ctx_last_error(c));
    const size_t nq = (size_t)pc->h * pc->l * pc->d, nv = (size_t)pc->h * pc->l * pc->dv;
    float *q = malloc(nq * sizeof *q), *k = malloc(nq * sizeof *k), *v = malloc(nv * sizeof *v);
    float *o = calloc(nv, sizeof *o);
    cr_assert(q && k && v && o);
    tu_fill_normal(q, nq, 0.3, 7);
    tu_fill_normal(k, nq, 0.3, 8);
    tu_fill_normal(v, nv, 1.0, 9);
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, pc->h, pc->l, pc->d);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, pc->h, pc->l, pc->d);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, pc->h, pc->l, pc->dv);
    rfjit_tensor to = rfjit_tensor_contiguous(o, 1, pc->h, pc->l, pc->dv);
    cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(c));
    rfjit_plan_destroy(p);
    free(q);
    free(k);
    free(v);
    return o;
}

Test(jit_parts, split_kernels_give_the_one_module_bits)
{
    /* h = 2 heads, so that two threads execute whole heads and a causal scan is not cut */
    const pcase cases[] = {
        {"positive", 0, 2, 300, 64, 40, RFJIT_F32}, {"positive", 1, 2, 300, 64, 40, RFJIT_F32},
        {"hybrid", 0, 2, 200, 32, 32, RFJIT_F32},   {"hybrid", 1, 2, 200, 32, 32, RFJIT_F32},
        {"trig", 1, 2, 129, 17, 64, RFJIT_F32},     {"exact", 0, 2, 300, 64, 40, RFJIT_F32},
        {"exact", 1, 2, 300, 64, 64, RFJIT_F32},    {"exact", 1, 2, 257, 128, 24, RFJIT_F32},
        {"exact", 0, 2, 300, 64, 64, RFJIT_BF16},   {"positive", 0, 2, 300, 64, 64, RFJIT_BF16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const pcase *pc = &cases[i];
        notes n1 = {0}, n2 = {0};
        rfjit_ctx *one = context(1, "", &n1), *two = context(2, "", &n2);
        int skipped = 0;
        float *a = run(one, pc, &skipped), *b = skipped ? NULL : run(two, pc, &skipped);
        if (!skipped) {
            cr_expect_eq(n1.objects, 1, "%s causal=%d: one thread made %d objects", pc->est,
                         pc->causal, n1.objects);
            cr_expect_gt(n2.objects, 2, "%s causal=%d: two threads made %d objects", pc->est,
                         pc->causal, n2.objects);
            const size_t n = (size_t)pc->h * pc->l * pc->dv;
            cr_expect(memcmp(a, b, n * sizeof *a) == 0,
                      "%s causal=%d compute=%d: the split kernel's bits differ", pc->est,
                      pc->causal, pc->compute);
        }
        free(a);
        free(b);
        rfjit_ctx_destroy(one);
        rfjit_ctx_destroy(two);
    }
}

Test(jit_parts, a_split_kernel_comes_back_from_the_disk_cache)
{
    char dir[] = "/tmp/rfjit_parts_XXXXXX";
    cr_assert(mkdtemp(dir));
    const pcase pc = {"exact", 1, 2, 300, 64, 40, RFJIT_F32};
    notes n1 = {0}, n2 = {0}, n3 = {0};
    rfjit_ctx *ref = context(1, "", &n3);
    int skipped = 0;
    float *want = run(ref, &pc, &skipped);
    rfjit_ctx *fill = context(2, dir, &n1);
    free(run(fill, &pc, &skipped));
    rfjit_ctx_destroy(fill);
    cr_assert_gt(n1.objects, 2, "the split compile made %d objects", n1.objects);
    /* a one-thread context links the blob two threads compiled */
    rfjit_ctx *load = context(1, dir, &n2);
    float *got = run(load, &pc, &skipped);
    cr_expect_eq(n2.objects, 0, "the second context compiled (%d objects) instead of loading",
                 n2.objects);
    cr_expect(memcmp(want, got, (size_t)2 * 300 * 40 * sizeof *got) == 0,
              "the cached split kernel's bits differ");
    free(want);
    free(got);
    rfjit_ctx_destroy(load);
    rfjit_ctx_destroy(ref);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(jit_parts, blobs_that_do_not_add_up_are_refused)
{
    static char a[] = "\177ELF first object", b[] = "second";
    void *objs[2] = {a, b};
    const size_t sizes[2] = {sizeof a, sizeof b};
    void *blob = NULL;
    size_t len = 0;
    rj_diag dg = {{0}};
    cr_assert_eq(rj_kbundle_pack(objs, sizes, 2, &blob, &len, &dg), RFJIT_OK);
    const void *part[RJ_KBUNDLE_MAX];
    size_t size[RJ_KBUNDLE_MAX];
    int n = 0;
    cr_assert_eq(rj_kbundle_open(blob, len, part, size, &n, &dg), RFJIT_OK, "%s", dg.msg);
    cr_assert(n == 2 && size[0] == sizeof a && size[1] == sizeof b &&
              !memcmp(part[0], a, sizeof a) && !memcmp(part[1], b, sizeof b));
    /* a bare object is one part; a blob cut short, or with bytes past its parts, is not a
     * kernel */
    cr_assert_eq(rj_kbundle_open(a, sizeof a, part, size, &n, &dg), RFJIT_OK);
    cr_assert(n == 1 && part[0] == (const void *)a && size[0] == sizeof a);
    for (size_t cut = 8; cut < len; cut++) {
        dg.msg[0] = 0;
        cr_expect_eq(rj_kbundle_open(blob, cut, part, size, &n, &dg), RFJIT_E_JIT,
                     "a blob cut to %zu of %zu bytes was read", cut, len);
        cr_expect(strstr(dg.msg, "kernel blob"), "cut to %zu: '%s'", cut, dg.msg);
    }
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, blob, len);
    longer[len] = 0;
    cr_expect_eq(rj_kbundle_open(longer, len + 1, part, size, &n, &dg), RFJIT_E_JIT);
    cr_expect(strstr(dg.msg, "1 bytes past its 2 parts"), "%s", dg.msg);
    /* a part count the reader cannot hold */
    longer[4] = RJ_KBUNDLE_MAX + 1;
    cr_expect_eq(rj_kbundle_open(longer, len, part, size, &n, &dg), RFJIT_E_JIT);
    char claim[32];
    snprintf(claim, sizeof claim, "claims %d parts", RJ_KBUNDLE_MAX + 1);
    cr_expect(strstr(dg.msg, claim), "%s", dg.msg);
    free(longer);
    free(blob);
    cr_expect_eq(rj_kbundle_pack(objs, sizes, 0, &blob, &len, &dg), RFJIT_E_INTERNAL);
    cr_expect(strstr(dg.msg, "a kernel of 0 parts"), "%s", dg.msg);
}
