/* SPDX-License-Identifier: MIT */
/*
 * This file is the AArch64 side of the NEON test (tests/jit/test_neon.c): a libc-only
 * program linked with a kernel object that `rfjit emit` built on x86 for aarch64 + NEON. It
 * shows the whole calling convention of an AOT kernel: rj_kargs (core/kabi.h), the lowered
 * parameters [pq | pk], a 64-byte aligned workspace and state, RJ_KFLAG_INIT.
 *
 * usage: neon_driver PARAMS.npy Q.npy K.npy V.npy OUT.npy ROLE_FLOATS WS_FLOATS ST_FLOATS
 * Q, K, V: (L, d), (L, d), (L, dv) float32; OUT gets (L, dv).
 */
#define _POSIX_C_SOURCE 200809L /* posix_memalign */

#include "core/kabi.h"
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>

void rfjit_neon_kernel(const rj_kargs *a);

static float *aligned(long n)
{
    void *p = NULL;
    return posix_memalign(&p, 64, (size_t)(n > 0 ? n : 1) * sizeof(float)) == 0 ? p : NULL;
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: neon_driver PARAMS Q K V OUT ROLE_FLOATS WS_FLOATS ST_FLOATS\n");
        return 2;
    }
    npy_array par, q, k, v;
    char err[512];
    if (npy_read(argv[1], &par, err, sizeof err) || npy_read(argv[2], &q, err, sizeof err) ||
        npy_read(argv[3], &k, err, sizeof err) || npy_read(argv[4], &v, err, sizeof err)) {
        fprintf(stderr, "neon_driver: %s\n", err);
        return 1;
    }
    const long role = atol(argv[6]), nws = atol(argv[7]), nst = atol(argv[8]);
    float *ws = aligned(nws), *st = aligned(nst);
    float *out = calloc((size_t)(q.shape[0] * v.shape[1]), sizeof(float));
    if (!ws || !st || !out)
        return 1;
    rj_kargs a = {0};
    a.q = q.data;
    a.k = k.data;
    a.v = v.data;
    a.out = out;
    a.pq = par.data;
    a.pk = par.data + role;
    a.ws = ws;
    a.st = st;
    a.lq = q.shape[0];
    a.lk = k.shape[0];
    a.sq = q.shape[1];
    a.sk = k.shape[1];
    a.sv = v.shape[1];
    a.so = v.shape[1];
    a.flags = RJ_KFLAG_INIT;
    rfjit_neon_kernel(&a);
    const int64_t shape[2] = {q.shape[0], v.shape[1]};
    if (npy_write(argv[5], out, 2, shape, err, sizeof err)) {
        fprintf(stderr, "neon_driver: %s\n", err);
        return 1;
    }
    npy_free(&par);
    npy_free(&q);
    npy_free(&k);
    npy_free(&v);
    free(ws);
    free(st);
    free(out);
    return 0;
}
