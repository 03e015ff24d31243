/* SPDX-License-Identifier: MIT */
/*
 * A host application: tune once, remember the answer (wisdom), then run multi-head
 * attention on .npy files with the tuned plan. Run it twice: the second run answers from
 * wisdom without searching.
 *
 *     host_app Q.npy K.npy V.npy OUT.npy [WISDOM_FILE]
 *
 * Q, K: (B, H, L, d), V: (B, H, L, dv), float32 C order. Without arguments it writes a
 * random problem (B = 1, H = 4, L = 1024, d = dv = 64) to /tmp/rfjit_host_app and uses that.
 */
#include "../common/npy_io.h"

#include <rfjit.h>

#include <sys/stat.h>

static int fail(rfjit_ctx *ctx, const char *what, rfjit_status s)
{
    fprintf(stderr, "host_app: %s: %s (%s)\n", what, rfjit_status_string(s),
            rfjit_ctx_last_error(ctx));
    return 1;
}

static void make_problem(const char *dir)
{
    const int64_t shape[4] = {1, 4, 1024, 64};
    const size_t n = 4 * 1024 * 64;
    float *x = malloc(n * sizeof *x);
    uint64_t s = 42;
    const char *names[3] = {"q", "k", "v"};
    mkdir(dir, 0700);
    for (int t = 0; t < 3; t++) {
        for (size_t i = 0; i < n; i++) { /* uniform in [-0.5, 0.5) */
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = (float)((double)(s >> 11) * 0x1.0p-53 - 0.5);
        }
        char path[256];
        snprintf(path, sizeof path, "%s/%s.npy", dir, names[t]);
        npy_save(path, x, shape, 4);
    }
    free(x);
}

int main(int argc, char **argv)
{
    if (rfjit_version_number() != RFJIT_VERSION) { /* the library we loaded is the one we built for */
        fprintf(stderr, "host_app: built for rfjit %s, running with %s\n", RFJIT_VERSION_STRING,
                rfjit_version_string());
        return 1;
    }
    const char *dir = "/tmp/rfjit_host_app";
    char qp[256], kp[256], vp[256], op[256], wp[256];
    if (argc >= 5) {
        snprintf(qp, sizeof qp, "%s", argv[1]);
        snprintf(kp, sizeof kp, "%s", argv[2]);
        snprintf(vp, sizeof vp, "%s", argv[3]);
        snprintf(op, sizeof op, "%s", argv[4]);
    } else {
        make_problem(dir);
        snprintf(qp, sizeof qp, "%s/q.npy", dir);
        snprintf(kp, sizeof kp, "%s/k.npy", dir);
        snprintf(vp, sizeof vp, "%s/v.npy", dir);
        snprintf(op, sizeof op, "%s/out.npy", dir);
    }
    snprintf(wp, sizeof wp, "%s", argc >= 6 ? argv[5] : "/tmp/rfjit_host_app/wisdom");

    int64_t qs[4], ks[4], vs[4];
    int qr = 0, kr = 0, vr = 0;
    float *q = npy_load(qp, qs, &qr), *k = npy_load(kp, ks, &kr), *v = npy_load(vp, vs, &vr);
    if (!q || !k || !v || qr != 4 || kr != 4 || vr != 4) {
        fprintf(stderr, "host_app: need three rank-4 float32 .npy files\n");
        return 1;
    }
    float *out = malloc((size_t)(qs[0] * qs[1] * qs[2] * vs[3]) * sizeof *out);

    /* One context per process: it owns the JIT, the kernel caches and the wisdom. */
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.wisdom_path = wp;
    rfjit_ctx *ctx = NULL;
    rfjit_status s = rfjit_ctx_create(&cd, &ctx);
    if (s != RFJIT_OK)
        return fail(NULL, "context", s);

    /* Tune on the data itself: the calibration sample is what the plan will see. */
    rfjit_tensor tq = rfjit_tensor_contiguous(q, qs[0], qs[1], qs[2], qs[3]);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, ks[0], ks[1], ks[2], ks[3]);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, vs[0], vs[1], vs[2], vs[3]);
    rfjit_tensor to = rfjit_tensor_contiguous(out, qs[0], qs[1], qs[2], vs[3]);
    rfjit_tune_desc td = RFJIT_TUNE_DESC_INIT;
    td.d = (int32_t)qs[3];
    td.dv = (int32_t)vs[3];
    td.L = qs[2];
    td.budget = 1e-2; /* E|O_hat - O|^2 / |O|^2 over the sample */
    td.calib_q = &tq;
    td.calib_k = &tk;
    td.calib_v = &tv;
    td.estimators = "positive,hyperbolic,trig,saderf"; /* a short search for the example */
    rfjit_tune_result *r = NULL;
    if ((s = rfjit_tune(ctx, &td, &r)) != RFJIT_OK)
        return fail(ctx, "tune", s);
    printf("%s\n", rfjit_tune_result_info(r));
    if ((s = rfjit_wisdom_export(ctx, NULL)) != RFJIT_OK) /* remember it for the next run */
        return fail(ctx, "wisdom", s);

    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    rfjit_plan *plan = NULL;
    if ((s = rfjit_tune_result_plan(r, &a)) != RFJIT_OK ||
        (s = rfjit_plan_create(ctx, &a, &plan)) != RFJIT_OK)
        return fail(ctx, "plan", s);
    char describe[512];
    rfjit_plan_describe(plan, describe, sizeof describe);
    printf("plan: %s\n", describe);
    if ((s = rfjit_plan_execute(plan, &tq, &tk, &tv, &to)) != RFJIT_OK)
        return fail(ctx, "execute", s);
    if (npy_save(op, out, (int64_t[4]){qs[0], qs[1], qs[2], vs[3]}, 4) != 0) {
        fprintf(stderr, "host_app: cannot write %s\n", op);
        return 1;
    }
    printf("wrote %s (%lld heads of %lld tokens)\n", op, (long long)(qs[0] * qs[1]),
           (long long)qs[2]);
    rfjit_plan_destroy(plan);
    rfjit_tune_result_destroy(r);
    rfjit_ctx_destroy(ctx);
    free(q);
    free(k);
    free(v);
    free(out);
    return 0;
}
