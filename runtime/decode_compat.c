/* SPDX-License-Identifier: MIT */
/*
 * This file runs prefills and steps of compat slots (runtime/decode.h): plans on the float32
 * path of the Performer compat modes (runtime/exec_compat.h). Per (slot, key/value head) the
 * state is rj_cm's [A | a | 1] rows (runtime/compat_math.h), the value sum V and the key
 * shift c, the largest u of the slot's keys so far; the key count is the slot's position.
 *
 * A call's tokens first move c to the largest u over the slot's keys including theirs
 * (rescaling A and a by e^{c - c'}), then enter the state in causal blocks
 * (rj_compat_causal_block: each token's queries see the keys up to its own). So token t's row is
 * the mode's causal attention over tokens 0 .. t at row t with the shift over 0 .. t (a prefill's
 * shift spans its whole prompt, as an execute of the prompt has it): rows already returned are not
 * recomputed when a later key raises the shift, which a generator that reruns the whole sequence
 * each step (performer-pytorch's) would do. O(m (d + dv)) per token and head, whatever the
 * position.
 */
#include "runtime/compat_math.h"
#include "runtime/decode.h"
#include "runtime/exec_compat.h"
#include "runtime/plan_fit.h"
#include "runtime/pool.h"

#include <math.h>
#include <string.h>

int64_t rj_decode_compat_floats(const rj_spec *s)
{
    return (int64_t)s->m * rj_cm_width(s->dv) + s->dv + 1;
}

static float *state_of(const rfjit_decode *s, int64_t slot, int64_t g)
{
    return s->st + (size_t)(slot * s->Hkv + g) * (size_t)rj_decode_compat_floats(&s->p->spec);
}

/* One task's buffers, for L tokens of G query heads. */
typedef struct tbufs {
    float *y, *vrow, *e, *umax, *x, *qf, *o;
    double *row;
} tbufs;

static size_t tbufs_floats(const rj_spec *s, int64_t L, int64_t G)
{
    const size_t d = (size_t)s->d, m = (size_t)s->m, w = (size_t)rj_cm_width(s->dv);
    const size_t l = (size_t)L, g = (size_t)G;
    return l * d + l * w + l * m + l * g + l * g * d + l * g * m + g * RJ_COMPAT_BLOCK * w +
           2 * (size_t)s->dv + 64;
}

static tbufs tbufs_at(const rj_spec *s, int64_t L, int64_t G, float *base)
{
    const size_t d = (size_t)s->d, m = (size_t)s->m, w = (size_t)rj_cm_width(s->dv);
    const size_t l = (size_t)L, g = (size_t)G;
    tbufs b;
    b.y = base;
    b.vrow = b.y + l * d;
    b.e = b.vrow + l * w;
    b.umax = b.e + l * m;
    b.x = b.umax + l * g;
    b.qf = b.x + l * g * d;
    b.o = b.qf + l * g * m;
    /* doubles at an 8-byte boundary past the floats */
    b.row = (double *)(void *)((uintptr_t)(b.o + g * RJ_COMPAT_BLOCK * w + 1) / 8 * 8 + 8);
    return b;
}

typedef struct cjob {
    rfjit_decode *s;
    const rj_dcall *c;
    pthread_mutex_t mu;
    float **free; /* buffer sets not in use */
    int64_t nfree;
    uint8_t *bad; /* per task: a non-finite output row */
} cjob;

/* The keys of entry i at key/value head g, shifted by the slot's (moved) c, into the state. */
static void take_entry_keys(rfjit_decode *s, const rj_dcall *c, int64_t i, int64_t g, tbufs *b,
                            float *st)
{
    const rj_spec *sp = &s->p->spec;
    const int d = sp->d, m = sp->m, dv = sp->dv, w = rj_cm_width(dv);
    const int64_t len = c->len[i];
    const double scale = rj_plan_input_scale(sp);
    for (int64_t t = 0; t < len; t++) {
        rj_compat_get_row(&c->k, rj_view_row(&c->k, i, g, t), scale, d, b->y + t * d);
        float *vr = b->vrow + t * w;
        rj_compat_get_row(&c->v, rj_view_row(&c->v, i, g, t), 1.0, dv, vr);
        vr[dv] = 1;
        for (int a = dv + 1; a < w; a++)
            vr[a] = 0;
    }
    rj_cm_project(s->p->cwt, d, m, b->y, len, b->e, b->umax);
    float cmax = -INFINITY;
    for (int64_t t = 0; t < len; t++)
        cmax = b->umax[t] > cmax ? b->umax[t] : cmax;
    float *S = st, *V = st + (size_t)m * (size_t)w, *shift = V + dv;
    if (s->pos[c->slot[i]] == 0) {
        rj_compat_state_init(S, V, m, dv);
        *shift = cmax;
    } else if (cmax > *shift) {
        rj_cm_rescale(S, m, w, dv, expf(*shift - cmax));
        *shift = cmax;
    }
    for (int64_t t = 0; t < len; t++)
        rj_cm_exp(b->e + t * m, m, rj_compat_diag(b->y + t * d, d) + *shift, 0);
}

/* A causal block of nb tokens for G query heads (query features head-major, len rows per
 * head): each head's reads into o (RJ_COMPAT_BLOCK rows per head), then the keys into S. */
static void block_reads(const rj_spec *sp, float *S, const float *e, const float *vrow,
                        const float *qf, int64_t len, int64_t nb, int64_t G, float *o)
{
    const int m = sp->m, w = rj_cm_width(sp->dv);
    for (int64_t h = 0; h < G; h++) {
        const float *qh = qf + h * len * m;
        float *oh = o + h * RJ_COMPAT_BLOCK * w;
        rj_cm_read(S, m, w, qh, nb, oh);
        rj_cm_intra(qh, e, vrow, m, w, nb, oh);
    }
    rj_cm_absorb(S, m, w, e, vrow, nb);
}

/* Entry i, key/value head g: its tokens into the state and, with outputs, the rows of the
 * group's G query heads. Returns whether every row written is finite. */
static bool run_entry(rfjit_decode *s, const rj_dcall *c, int64_t i, int64_t g, tbufs *b)
{
    const rj_spec *sp = &s->p->spec;
    const int d = sp->d, m = sp->m, dv = sp->dv, w = rj_cm_width(dv);
    const int64_t G = s->H / s->Hkv, len = c->len[i], n0 = s->pos[c->slot[i]];
    float *st = state_of(s, c->slot[i], g), *S = st, *V = st + (size_t)m * (size_t)w;
    take_entry_keys(s, c, i, g, b, st);
    if (!c->out.data) {
        rj_compat_take_keys(sp, S, V, b->e, b->vrow, len);
        return true;
    }
    const double scale = rj_plan_input_scale(sp);
    for (int64_t h = 0; h < G; h++) /* rows head-major: a head's tokens adjacent */
        for (int64_t t = 0; t < len; t++)
            rj_compat_get_row(&c->q, rj_view_row(&c->q, i, g * G + h, t), scale, d,
                              b->x + (h * len + t) * d);
    rj_compat_query_features(s->p, b->x, len * G, b->qf, b->umax);
    bool finite = true;
    for (int64_t t0 = 0; t0 < len; t0 += RJ_COMPAT_BLOCK) {
        const int64_t nb = len - t0 < RJ_COMPAT_BLOCK ? len - t0 : RJ_COMPAT_BLOCK;
        const float *e = b->e + t0 * m, *vrow = b->vrow + t0 * w;
        if (nb == 1 && G == 1) /* a step: the key in and the read in one pass */
            rj_cm_step(S, m, w, e, vrow, b->qf + t0 * m, b->o);
        else
            block_reads(sp, S, e, vrow, b->qf + t0 * m, len, nb, G, b->o);
        for (int64_t t = 0; t < nb; t++) {
            for (int a = 0; a < dv; a++)
                V[a] += vrow[t * w + a];
            for (int64_t h = 0; h < G; h++) {
                rj_cm_finish(sp, b->o + (h * RJ_COMPAT_BLOCK + t) * w, V, n0 + t0 + t + 1, b->row);
                for (int a = 0; a < dv; a++)
                    finite = finite && isfinite(b->row[a]);
                rj_compat_put_row(&c->out, rj_view_row(&c->out, i, g * G + h, t0 + t), b->row);
            }
        }
    }
    return finite;
}

static void task(void *arg, int64_t k)
{
    cjob *j = arg;
    rfjit_decode *s = j->s;
    const int64_t i = k / s->Hkv, g = k % s->Hkv;
    if (j->c->len[i] == 0)
        return;
    pthread_mutex_lock(&j->mu);
    float *base = j->free[--j->nfree];
    pthread_mutex_unlock(&j->mu);
    tbufs b = tbufs_at(&s->p->spec, j->c->L, s->H / s->Hkv, base);
    j->bad[k] = !run_entry(s, j->c, i, g, &b);
    pthread_mutex_lock(&j->mu);
    j->free[j->nfree++] = base;
    pthread_mutex_unlock(&j->mu);
}

rfjit_status rj_decode_compat_run(rfjit_decode *s, const rj_dcall *c, rj_diag *dg)
{
    const rfjit_plan *p = s->p;
    const int64_t tasks = c->n * s->Hkv, G = s->H / s->Hkv;
    int64_t tokens = 0;
    for (int64_t i = 0; i < c->n; i++)
        tokens += c->len[i];
    /* a step's few thousand multiply-adds per head cost less than waking the pool */
    const int64_t threads = rj_pool_threads(p->ctx->pool);
    const int64_t sets = tokens * s->Hkv < 64 ? 1 : tasks < threads ? tasks : threads;
    const size_t per = tbufs_floats(&p->spec, c->L, G);
    size_t bytes = 0;
    RJ_FAIL_IF(dg,
               !rj_mul_size(per, (size_t)sets, &bytes) ||
                   !rj_mul_size(bytes, sizeof(float), &bytes),
               RFJIT_E_TOO_LARGE, "a decode call of %lld tokens is too large", (long long)c->L);
    float *buf = rj_decode_scratch(s, RJ_DSCR_X, bytes);
    float **free = rj_decode_scratch(s, RJ_DSCR_Y, (size_t)sets * sizeof(float *) + (size_t)tasks);
    RJ_FAIL_IF(dg, !buf || !free, RFJIT_E_NOMEM, "no memory for a decode call of %lld tokens",
               (long long)c->L);
    /* nothing below fails: the slots change from here on */
    cjob j = {.s = s, .c = c, .free = free, .nfree = sets};
    j.bad = (uint8_t *)(free + sets);
    memset(j.bad, 0, (size_t)tasks);
    for (int64_t k = 0; k < sets; k++)
        free[k] = buf + (size_t)k * per;
    pthread_mutex_init(&j.mu, NULL);
    if (sets == 1)
        for (int64_t k = 0; k < tasks; k++)
            task(&j, k);
    else
        rj_pool_run(p->ctx->pool, tasks, task, &j);
    pthread_mutex_destroy(&j.mu);
    for (int64_t i = 0; i < c->n; i++)
        s->pos[c->slot[i]] += c->len[i];
    for (int64_t k = 0; k < tasks; k++)
        RJ_FAIL_IF(dg, j.bad[k], RFJIT_E_RANGE,
                   "entry %lld (slot %lld), key/value head %lld: an output row is outside float "
                   "range; the tokens were taken",
                   (long long)(k / s->Hkv), (long long)c->slot[k / s->Hkv],
                   (long long)(k % s->Hkv));
    return RFJIT_OK;
}
