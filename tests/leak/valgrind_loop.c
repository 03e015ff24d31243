/* SPDX-License-Identifier: MIT */
/*
 * This file is the program the valgrind_loop ctest entry runs under valgrind (plain builds
 * only: valgrind and ASan exclude each other): three rounds of context creation, a JIT
 * compile (no disk cache, so every round compiles), an execute and teardown, for a linear and
 * the exact kernel. The entry fails on any byte definitely or indirectly lost.
 */
#include "rfjit.h"

#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    enum { L = 40, D = 16 };
    static float q[L * D], k[L * D], v[L * D], o[L * D];
    for (int i = 0; i < L * D; i++) {
        q[i] = (float)((i * 37 % 101) / 101.0 - 0.5);
        k[i] = (float)((i * 53 % 103) / 103.0 - 0.5);
        v[i] = (float)((i * 71 % 107) / 107.0);
    }
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, L, D), tk = rfjit_tensor_contiguous(k, 1, 1, L, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, L, D), to = rfjit_tensor_contiguous(o, 1, 1, L, D);
    const char *ests[2] = {"positive", "exact"};
    for (int round = 0; round < 3; round++) {
        rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
        cd.cache_dir = "";
        rfjit_ctx *ctx = NULL;
        if (rfjit_ctx_create(&cd, &ctx) != RFJIT_OK)
            return 1;
        for (int e = 0; e < 2; e++) {
            rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
            a.estimator = ests[e];
            a.d = D;
            a.m = 16;
            a.causal = round & 1;
            a.backend = RFJIT_BACKEND_JIT;
            rfjit_plan *p = NULL;
            if (rfjit_plan_create(ctx, &a, &p) != RFJIT_OK ||
                rfjit_plan_execute(p, &tq, &tk, &tv, &to) != RFJIT_OK) {
                fprintf(stderr, "valgrind_loop: %s\n", rfjit_ctx_last_error(ctx));
                return 1;
            }
            rfjit_plan_destroy(p);
        }
        rfjit_ctx_destroy(ctx);
    }
    return 0;
}
