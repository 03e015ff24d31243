/* SPDX-License-Identifier: MIT */
/*
 * This file runs a decode step as one causal kernel call per (entry, key/value head) on one
 * token, the group's query heads in that call (kabi.h ng).
 */
#include "runtime/decode_step.h"

#include "core/kabi.h"

#include <math.h>

rfjit_status rj_decode_step_states(const rfjit_plan *p, const rj_step *s, int64_t *bad,
                                   rj_diag *dg)
{
    *bad = -1;
    rj_kernel_fn fn;
    RJ_TRY(rj_plan_kernel_for(p, s->q.dtype, s->out.dtype, &fn, dg));
    float *ws = rj_alloc_aligned((size_t)p->kp.ws_floats, sizeof(float));
    RJ_FAIL_IF(dg, !ws, RFJIT_E_NOMEM, "no memory for a decode step's workspace");
    const int64_t G = s->H / s->Hkv, dv = p->spec.dv;
    for (int64_t i = 0; i < s->n; i++) {
        const float *kpar = s->kpar && s->kpar[i] ? s->kpar[i] : p->kpar;
        for (int64_t g = 0; g < s->Hkv; g++) {
            rj_kargs a = {0};
            a.q = rj_view_row(&s->q, i, g * G, 0);
            a.k = rj_view_row(&s->k, i, g, 0);
            a.v = rj_view_row(&s->v, i, g, 0);
            a.out = rj_view_row(&s->out, i, g * G, 0);
            a.pq = kpar;
            a.pk = kpar + p->kp.role_floats;
            a.ws = ws;
            a.st = s->st[i] + g * p->kp.st_floats;
            a.lq = a.lk = 1;
            a.sq = s->q.stride[2];
            a.sk = s->k.stride[2];
            a.sv = s->v.stride[2];
            a.so = s->out.stride[2];
            a.flags = s->fresh[i] ? RJ_KFLAG_INIT : 0;
            a.ng = G;
            a.sqh = s->q.stride[1];
            a.soh = s->out.stride[1];
            fn(&a);
        }
        for (int64_t h = 0; h < s->H && *bad < 0; h++) {
            const char *row = rj_view_row(&s->out, i, h, 0);
            for (int64_t c = 0; c < dv; c++)
                if (!isfinite(rj_view_get(&s->out, row, c))) {
                    *bad = i * s->H + h;
                    break;
                }
        }
    }
    rj_free(ws);
    return RFJIT_OK;
}
