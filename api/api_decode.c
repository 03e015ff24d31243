/* SPDX-License-Identifier: MIT */
/*
 * This file is the public face of incremental decoding (rfjit_decode_*): argument checks that
 * need no state, and the last error. The slots, their states and histories live in
 * runtime/decode.[ch]; the calls of 0.3 are the 0.4 ones with every slot in order.
 */
#include "api/facade.h"
#include "runtime/decode.h"

rfjit_status rfjit_decode_create_ex(const rfjit_plan *p, const rfjit_decode_desc *desc,
                                    rfjit_decode **out)
{
    if (out)
        *out = NULL;
    RJ_TRY(RJ_API_ARGS(p ? p->ctx : NULL, "rfjit_decode_create_ex", {p, "plan"}, {desc, "desc"},
                       {out, "out"}));
    rfjit_decode_desc d = RFJIT_DECODE_DESC_INIT;
    RJ_TRY(RJ_API_DESC_READ(p->ctx, &d, desc));
    const int64_t kv = d.kv_heads ? d.kv_heads : d.heads;
    if (d.slots < 1 || d.slots > (1 << 20) || d.heads < 1 || d.heads > (1 << 20) || kv < 1 ||
        d.heads % kv != 0)
        return rj_ctx_failf(p->ctx, RFJIT_E_INVALID_ARG,
                            "rfjit_decode_create_ex: slots = %lld and heads = %lld must be in "
                            "[1, 2^20], kv_heads = %lld must divide heads (0: heads)",
                            (long long)d.slots, (long long)d.heads, (long long)d.kv_heads);
    rj_diag dg = {{0}};
    return rj_ctx_fail(p->ctx, rj_decode_create(p, d.slots, d.heads, kv, out, &dg), &dg);
}

rfjit_status rfjit_decode_create(const rfjit_plan *p, int64_t batch, int64_t heads,
                                 rfjit_decode **out)
{
    rfjit_decode_desc d = RFJIT_DECODE_DESC_INIT;
    d.slots = batch;
    d.heads = heads;
    d.kv_heads = heads;
    return rfjit_decode_create_ex(p, &d, out);
}

void rfjit_decode_destroy(rfjit_decode *s)
{
    rj_decode_free(s);
}

rfjit_status rfjit_decode_prefill(rfjit_decode *s, const rfjit_decode_args *args)
{
    RJ_TRY(RJ_API_ARGS(NULL, "rfjit_decode_prefill", {s, "state"}));
    rj_diag dg = {{0}};
    return rj_ctx_fail(s->p->ctx, rj_decode_prefill(s, args, &dg), &dg);
}

rfjit_status rfjit_decode_step_ex(rfjit_decode *s, const rfjit_decode_args *args)
{
    RJ_TRY(RJ_API_ARGS(NULL, "rfjit_decode_step_ex", {s, "state"}));
    rj_diag dg = {{0}};
    return rj_ctx_fail(s->p->ctx, rj_decode_step(s, args, &dg), &dg);
}

rfjit_status rfjit_decode_step(rfjit_decode *s, const rfjit_tensor *q, const rfjit_tensor *k,
                               const rfjit_tensor *v, rfjit_tensor *out)
{
    RJ_TRY(RJ_API_ARGS(NULL, "rfjit_decode_step", {s, "state"}));
    RJ_TRY(RJ_API_ARGS(s->p->ctx, "rfjit_decode_step", {q, "q"}, {k, "k"}, {v, "v"},
                       {out, "out"}));
    rfjit_tensor_ex tq = rfjit_tensor_ex_of(q), tk = rfjit_tensor_ex_of(k),
                    tv = rfjit_tensor_ex_of(v), to = rfjit_tensor_ex_of(out);
    rfjit_decode_args a = RFJIT_DECODE_ARGS_INIT;
    a.q = &tq;
    a.k = &tk;
    a.v = &tv;
    a.out = &to;
    if (q->shape[0] != s->slots)
        return rj_ctx_failf(s->p->ctx, RFJIT_E_SHAPE,
                            "rfjit_decode_step: q has %lld sequences, the state %lld (every "
                            "slot steps)",
                            (long long)q->shape[0], (long long)s->slots);
    return rfjit_decode_step_ex(s, &a);
}

rfjit_status rfjit_decode_reset_slots(rfjit_decode *s, const int64_t *index, int64_t n)
{
    RJ_TRY(RJ_API_ARGS(NULL, "rfjit_decode_reset_slots", {s, "state"}));
    if (index && n < 0)
        return rj_ctx_failf(s->p->ctx, RFJIT_E_INVALID_ARG,
                            "rfjit_decode_reset_slots: n = %lld is negative", (long long)n);
    for (int64_t i = 0; index && i < n; i++)
        if (index[i] < 0 || index[i] >= s->slots)
            return rj_ctx_failf(s->p->ctx, RFJIT_E_INVALID_ARG,
                                "rfjit_decode_reset_slots: index[%lld] = %lld is outside [0, "
                                "%lld); no slot was reset",
                                (long long)i, (long long)index[i], (long long)s->slots);
    for (int64_t i = 0; i < (index ? n : s->slots); i++)
        rj_decode_reset_slot(s, index ? index[i] : i);
    return RFJIT_OK;
}

void rfjit_decode_reset(rfjit_decode *s)
{
    if (s)
        (void)rfjit_decode_reset_slots(s, NULL, 0);
}

int64_t rfjit_decode_slot_position(const rfjit_decode *s, int64_t slot)
{
    return s && slot >= 0 && slot < s->slots ? s->pos[slot] : -1;
}

int64_t rfjit_decode_position(const rfjit_decode *s)
{
    return s ? s->pos[0] : 0;
}

static rfjit_status check_slot(const rfjit_decode *s, int64_t slot, const char *fn)
{
    if (slot < 0 || slot >= s->slots)
        return rj_ctx_failf(s->p->ctx, RFJIT_E_INVALID_ARG, "%s: slot %lld is outside [0, %lld)",
                            fn, (long long)slot, (long long)s->slots);
    return RFJIT_OK;
}

rfjit_status rfjit_decode_snapshot(const rfjit_decode *s, int64_t slot, void *buf, size_t cap,
                                   size_t *size)
{
    RJ_TRY(RJ_API_ARGS(NULL, "rfjit_decode_snapshot", {s, "state"}));
    RJ_TRY(RJ_API_ARGS(s->p->ctx, "rfjit_decode_snapshot", {size, "size"}));
    RJ_TRY(check_slot(s, slot, "rfjit_decode_snapshot"));
    *size = rj_decode_snap_size(s, slot);
    if (!buf)
        return RFJIT_OK;
    if (cap < *size)
        return rj_ctx_failf(s->p->ctx, RFJIT_E_INVALID_ARG,
                            "rfjit_decode_snapshot: the buffer holds %zu bytes, the snapshot "
                            "needs %zu; nothing was written",
                            cap, *size);
    rj_decode_snap_write(s, slot, buf);
    return RFJIT_OK;
}

rfjit_status rfjit_decode_restore(rfjit_decode *s, int64_t slot, const void *buf, size_t size)
{
    RJ_TRY(RJ_API_ARGS(NULL, "rfjit_decode_restore", {s, "state"}));
    RJ_TRY(RJ_API_ARGS(s->p->ctx, "rfjit_decode_restore", {buf, "buf"}));
    RJ_TRY(check_slot(s, slot, "rfjit_decode_restore"));
    rj_diag dg = {{0}};
    return rj_ctx_fail(s->p->ctx, rj_decode_snap_restore(s, slot, buf, size, &dg), &dg);
}
