/* SPDX-License-Identifier: MIT */
/*
 * This file loads the committed real attention heads (data/real/, described in its
 * README.md) for `rfjit bench --suite real` and the tests, and holds the measures both use:
 * the output error against exact attention and each head's scaled norms. The files are
 * checked against one another (same heads, same shape) so a stale or partial set is refused
 * by name rather than read out of bounds.
 */
#include "bench.h"

#include "npy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef RFJIT_REAL_DIR
#error "CMake defines RFJIT_REAL_DIR, where data/real is"
#endif

static const char *const split_name[2] = {"calib", "heldout"};

const char *real_set_dir(void)
{
    static char path[4200];
    if (bench_installed_path(path, sizeof path, "real/heads.npy")) {
        path[strlen(path) - strlen("/heads.npy")] = 0;
        return path;
    }
    return RFJIT_REAL_DIR;
}

/* One (H, L, d) float32 array; L and d must match *L, *d once the first file has set them. */
static int load_qkv(const char *dir, const char *name, int64_t H, int64_t *L, int64_t *d,
                    float **out, char *err, size_t len)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    npy_array a;
    if (npy_read(path, &a, err, len) != 0)
        return -1;
    const int64_t *s = a.shape;
    if (a.rank != 3 || s[0] != H || (*L && (s[1] != *L || s[2] != *d))) {
        snprintf(err, len, "%s: not a (%lld, L, d) array of the other files' L and d", path,
                 (long long)H);
        npy_free(&a);
        return -1;
    }
    *L = s[1], *d = s[2];
    *out = a.data; /* the set owns it now: npy_array holds nothing else for float32 */
    return 0;
}

static int load_heads(const char *dir, real_set *s, char *err, size_t len)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/heads.npy", dir);
    if (access(path, R_OK) != 0) {
        snprintf(err, len,
                 "%s: no real-head data set here (bash scripts/real_heads.sh makes it; "
                 "an installed rfjit reads <prefix>/share/rfjit/real)",
                 dir);
        return -1;
    }
    npy_array a;
    if (npy_read_kinds(path, 1u << NPY_I32, &a, err, len) != 0)
        return -1;
    if (a.rank != 2 || a.shape[1] != 2 || a.kind != NPY_I32) {
        snprintf(err, len, "%s: not an int32 (heads, 2) array of (layer, head)", path);
        npy_free(&a);
        return -1;
    }
    s->H = a.shape[0];
    s->layer_head = a.bytes;
    a.bytes = NULL;
    npy_free(&a);
    return 0;
}

int real_set_load(const char *dir, real_set *s, char *err, size_t len)
{
    memset(s, 0, sizeof *s);
    if (load_heads(dir, s, err, len) != 0)
        return -1;
    int64_t L = 0, d = 0;
    for (int sp = 0; sp < 2; sp++)
        for (int t = 0; t < 3; t++) {
            char name[32];
            snprintf(name, sizeof name, "%s_%c", split_name[sp], "qkv"[t]);
            if (load_qkv(dir, name, s->H, &L, &d, &s->x[sp][t], err, len) != 0) {
                real_set_free(s);
                return -1;
            }
        }
    s->L = L, s->d = d;
    return 0;
}

void real_set_free(real_set *s)
{
    for (int sp = 0; sp < 2; sp++)
        for (int t = 0; t < 3; t++)
            free(s->x[sp][t]);
    free(s->layer_head);
    memset(s, 0, sizeof *s);
}

rfjit_tensor real_set_view(const real_set *s, int split, int which, int64_t head)
{
    const size_t n = (size_t)s->L * (size_t)s->d;
    return rfjit_tensor_contiguous(s->x[split][which] + (size_t)head * n, 1, 1, s->L, s->d);
}

void real_norms(const real_set *s, int split, int which, int64_t head, double *mean_norm,
                double *mean_component)
{
    const double sc = pow((double)s->d, -0.25);
    const float *x = s->x[split][which] + (size_t)head * (size_t)s->L * (size_t)s->d;
    double sum = 0, mu[1024] = {0};
    for (int64_t i = 0; i < s->L; i++) {
        double sq = 0;
        for (int64_t c = 0; c < s->d && c < 1024; c++) {
            const double v = sc * x[i * s->d + c];
            sq += v * v;
            mu[c] += v / (double)s->L;
        }
        sum += sqrt(sq);
    }
    double m2 = 0;
    for (int64_t c = 0; c < s->d && c < 1024; c++)
        m2 += mu[c] * mu[c];
    *mean_norm = sum / (double)s->L;
    *mean_component = sqrt(m2);
}
