/* SPDX-License-Identifier: MIT */
/*
 * This file reads and writes a slot's snapshot (runtime/decode.h). Layout version 1, every
 * field little-endian whatever the host:
 *
 *   0   magic "rfjitDS\0"                 8 bytes
 *   8   layout version, mode (1 state, 2 history, 3 compat)   u32 each
 *   16  estimator name, NUL-padded       16 bytes
 *   32  d, dv, m, T, Mp, dvp             i32 each
 *   56  st_floats, role_floats           i64 each
 *   72  plan hash: scale, estimator version, projection W, fixed parameters   u64
 *   80  parameter hash of the slot's own fitted parameters (0: none)     u64
 *   88  H, Hkv, position                 i64 each
 *   112 payload floats (u32 bit patterns):
 *       state: the slot's states (Hkv, or H when fitted, x st_floats), then when it has
 *              them its fitted parameters (H x 2 role_floats);
 *       history: position x Hkv x d key floats, then position x Hkv x dv value floats;
 *       compat: the slot's Hkv states (runtime/decode_compat.c), st_floats each.
 *
 * The plan identity is what decides whether the bytes mean the same to another plan: the
 * kernel's state layout (T, Mp, dvp, st_floats) and the numbers that produce features (W,
 * fixed parameters, scale; and a compat plan's mode, whose epsilons read the state). The
 * dtype of the plan does not enter: states are float32.
 */
#include "runtime/decode.h"

#include "core/le.h"
#include "runtime/hash.h"

#include <string.h>

enum { SNAP_VERSION = 1, SNAP_HEADER = 112 };
static const char MAGIC[8] = "rfjitDS";

static void put_floats(unsigned char *b, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        rj_le_put_u32(b + 4 * i, u);
    }
}

static void get_floats(float *x, const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const uint32_t u = rj_le_get_u32(b + 4 * i);
        memcpy(&x[i], &u, 4);
    }
}

static uint64_t hash64(const void *const *parts, const size_t *sizes, int n)
{
    rj_hash h;
    rj_hash_parts(parts, sizes, n, &h);
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x |= (uint64_t)h.b[i] << (8 * i);
    return x;
}

/* The estimator's version enters because a new version may map the same W and parameters to
 * other features (the kernel cache keys on it too). */
static uint64_t plan_hash(const rfjit_plan *p)
{
    const rj_spec *s = &p->spec;
    const size_t nw = p->W ? (size_t)s->m * (size_t)s->d * sizeof(double) : 0;
    const size_t np = p->frozen ? p->nparams * sizeof(double) : 0;
    const int32_t version = p->jit ? p->kp.est_version : 0;
    /* the mode enters only where there is one, so other plans' hashes stay as they were */
    const void *parts[5] = {&s->scale, &version, p->W, p->params, &s->compat};
    const size_t sizes[5] = {sizeof s->scale, sizeof version, nw, np,
                             s->compat != RJ_COMPAT_NONE ? sizeof s->compat : 0};
    return hash64(parts, sizes, 5);
}

/* Floats of one slot's states (constant-state and compat modes). */
static size_t state_floats(const rfjit_decode *s)
{
    const int64_t each = s->mode == RJ_DECODE_COMPAT ? rj_decode_compat_floats(&s->p->spec)
                                                     : s->p->kp.st_floats;
    return (size_t)s->nst * (size_t)each;
}

static const char *mode_name(uint32_t mode)
{
    return mode == RJ_DECODE_STATE     ? "constant-state"
           : mode == RJ_DECODE_COMPAT  ? "compat-state"
           : mode == RJ_DECODE_HISTORY ? "history"
                                       : "unknown";
}

static size_t par_floats(const rfjit_decode *s)
{
    return (size_t)s->H * 2 * (size_t)s->p->kp.role_floats;
}

static uint64_t par_hash(const float *par, size_t n)
{
    const void *parts[1] = {par};
    const size_t sizes[1] = {n * sizeof(float)};
    const uint64_t h = hash64(parts, sizes, 1);
    return h ? h : 1;
}

static bool slot_fitted(const rfjit_decode *s, int64_t slot)
{
    return s->fitted && s->has_par[slot];
}

static size_t payload_floats(const rfjit_decode *s, int64_t pos, bool fitted)
{
    const rj_spec *sp = &s->p->spec;
    if (s->mode == RJ_DECODE_HISTORY)
        return (size_t)pos * (size_t)s->Hkv * (size_t)(sp->d + sp->dv);
    if (s->mode == RJ_DECODE_COMPAT)
        return (size_t)s->Hkv * (size_t)rj_decode_compat_floats(sp);
    return (size_t)s->nst * (size_t)s->p->kp.st_floats + (fitted ? par_floats(s) : 0);
}

size_t rj_decode_snap_size(const rfjit_decode *s, int64_t slot)
{
    return SNAP_HEADER + 4 * payload_floats(s, s->pos[slot], slot_fitted(s, slot));
}

/* The header of slot `slot` (or of a snapshot to compare with: the same fields). */
static void header(const rfjit_decode *s, int64_t pos, uint64_t slot_hash, unsigned char *b)
{
    const rfjit_plan *p = s->p;
    const bool state = s->mode == RJ_DECODE_STATE;
    const int64_t st_floats = s->mode == RJ_DECODE_COMPAT ? rj_decode_compat_floats(&p->spec)
                              : state                     ? p->kp.st_floats
                                                          : 0;
    memset(b, 0, SNAP_HEADER);
    memcpy(b, MAGIC, 8);
    rj_le_put_u32(b + 8, SNAP_VERSION);
    rj_le_put_u32(b + 12, (uint32_t)s->mode);
    strncpy((char *)b + 16, p->spec.est->name, 15);
    const int32_t i32[6] = {p->spec.d,           p->spec.dv,           p->spec.m,
                            state ? p->kp.T : 0, state ? p->kp.Mp : 0, state ? p->kp.dvp : 0};
    for (int i = 0; i < 6; i++)
        rj_le_put_u32(b + 32 + 4 * i, (uint32_t)i32[i]);
    rj_le_put_u64(b + 56, (uint64_t)st_floats);
    rj_le_put_u64(b + 64, state ? (uint64_t)p->kp.role_floats : 0);
    rj_le_put_u64(b + 72, plan_hash(p));
    rj_le_put_u64(b + 80, slot_hash);
    rj_le_put_u64(b + 88, (uint64_t)s->H);
    rj_le_put_u64(b + 96, (uint64_t)s->Hkv);
    rj_le_put_u64(b + 104, (uint64_t)pos);
}

void rj_decode_snap_write(const rfjit_decode *s, int64_t slot, unsigned char *buf)
{
    const int64_t pos = s->pos[slot];
    const bool fitted = slot_fitted(s, slot);
    const float *par = fitted ? s->par + (size_t)slot * par_floats(s) : NULL;
    header(s, pos, fitted ? par_hash(par, par_floats(s)) : 0, buf);
    unsigned char *b = buf + SNAP_HEADER;
    if (s->mode == RJ_DECODE_HISTORY) {
        const rj_spec *sp = &s->p->spec;
        const size_t nk = (size_t)pos * (size_t)(s->Hkv * sp->d);
        const size_t nv = (size_t)pos * (size_t)(s->Hkv * sp->dv);
        if (pos > 0) {
            put_floats(b, s->hist[slot].k, nk);
            put_floats(b + 4 * nk, s->hist[slot].v, nv);
        }
        return;
    }
    const size_t ns = state_floats(s);
    if (pos > 0)
        put_floats(b, s->st + (size_t)slot * ns, ns);
    else /* the state is not started: its floats mean nothing, so they are fixed zeros */
        memset(b, 0, 4 * ns);
    if (fitted)
        put_floats(b + 4 * ns, par, par_floats(s));
}

/* The first field where the snapshot's header differs from this state's, as a message. */
static rfjit_status compare(const rfjit_decode *s, const unsigned char *b, rj_diag *dg)
{
    unsigned char own[SNAP_HEADER];
    header(s, 0, 0, own);
    RJ_FAIL_IF(dg, memcmp(b, MAGIC, 8) != 0, RFJIT_E_STATE,
               "the bytes are not a decode snapshot (no rfjit magic)");
    RJ_FAIL_IF(dg, rj_le_get_u32(b + 8) != SNAP_VERSION, RFJIT_E_STATE,
               "snapshot layout version %u, this library reads version %d", rj_le_get_u32(b + 8),
               SNAP_VERSION);
    char est[17] = {0};
    memcpy(est, b + 16, 16);
    RJ_FAIL_IF(dg, memcmp(b + 16, own + 16, 16) != 0, RFJIT_E_STATE,
               "snapshot is of estimator '%s', this state's plan is '%s'", est,
               s->p->spec.est->name);
    RJ_FAIL_IF(dg, rj_le_get_u32(b + 12) != rj_le_get_u32(own + 12), RFJIT_E_STATE,
               "snapshot is of a %s slot, this state keeps %s slots",
               mode_name(rj_le_get_u32(b + 12)), mode_name((uint32_t)s->mode));
    static const char *const DIM[6] = {"d",        "dv", "m", "kernel tile T", "padded features",
                                       "padded dv"};
    for (int i = 0; i < 6; i++)
        RJ_FAIL_IF(dg, rj_le_get_u32(b + 32 + 4 * i) != rj_le_get_u32(own + 32 + 4 * i),
                   RFJIT_E_STATE, "snapshot has %s %d, this state's plan %d", DIM[i],
                   (int)rj_le_get_u32(b + 32 + 4 * i), (int)rj_le_get_u32(own + 32 + 4 * i));
    RJ_FAIL_IF(dg, memcmp(b + 56, own + 56, 16) != 0, RFJIT_E_STATE,
               "snapshot's kernel state layout differs from this state's plan (kernel tiling)");
    RJ_FAIL_IF(dg, rj_le_get_u64(b + 72) != rj_le_get_u64(own + 72), RFJIT_E_STATE,
               "projection differs: the snapshot's plan has another projection, parameters, "
               "scale or compat mode (another seed or calibration)");
    RJ_FAIL_IF(dg,
               rj_le_get_u64(b + 88) != (uint64_t)s->H || rj_le_get_u64(b + 96) != (uint64_t)s->Hkv,
               RFJIT_E_STATE,
               "snapshot has %lld heads and %lld key/value heads, this state %lld "
               "and %lld",
               (long long)rj_le_get_u64(b + 88), (long long)rj_le_get_u64(b + 96), (long long)s->H,
               (long long)s->Hkv);
    return RFJIT_OK;
}

rfjit_status rj_decode_snap_restore(rfjit_decode *s, int64_t slot, const unsigned char *b,
                                    size_t size, rj_diag *dg)
{
    RJ_FAIL_IF(dg, size < SNAP_HEADER, RFJIT_E_STATE,
               "%zu bytes are too few for a decode snapshot (its header is %d)", size,
               (int)SNAP_HEADER);
    RJ_TRY(compare(s, b, dg));
    const uint64_t upos = rj_le_get_u64(b + 104), slot_hash = rj_le_get_u64(b + 80);
    RJ_FAIL_IF(dg, upos > (uint64_t)INT32_MAX * 64, RFJIT_E_STATE,
               "snapshot position %llu is impossible", (unsigned long long)upos);
    const int64_t pos = (int64_t)upos;
    const bool fitted = slot_hash != 0;
    RJ_FAIL_IF(dg, fitted && !s->fitted, RFJIT_E_STATE,
               "snapshot carries fitted parameters, but this state's plan has fixed ones");
    RJ_FAIL_IF(dg, s->fitted && pos > 0 && !fitted, RFJIT_E_STATE,
               "snapshot at position %lld has no fitted parameters, which this plan needs",
               (long long)pos);
    const size_t want = SNAP_HEADER + 4 * payload_floats(s, pos, fitted);
    RJ_FAIL_IF(dg, size != want, RFJIT_E_STATE, "snapshot is %zu bytes, its header describes %zu",
               size, want);
    const unsigned char *pl = b + SNAP_HEADER;
    if (s->mode == RJ_DECODE_HISTORY) {
        const rj_spec *sp = &s->p->spec;
        const size_t nk = (size_t)pos * (size_t)(s->Hkv * sp->d);
        const size_t nv = (size_t)pos * (size_t)(s->Hkv * sp->dv);
        rj_hist *h = &s->hist[slot];
        if (pos > h->cap) { /* new rows first, so that no memory leaves the slot as it was */
            float *k = rj_alloc_array(nk, sizeof(float)), *v = rj_alloc_array(nv, sizeof(float));
            if (!k || !v) {
                rj_free(k);
                rj_free(v);
                return rj_fail(dg, RFJIT_E_NOMEM, "no memory to restore %lld tokens",
                               (long long)pos);
            }
            rj_free(h->k);
            rj_free(h->v);
            *h = (rj_hist){k, v, pos};
        }
        if (pos > 0) {
            get_floats(h->k, pl, nk);
            get_floats(h->v, pl + 4 * nk, nv);
        }
        s->pos[slot] = pos;
        return RFJIT_OK;
    }
    const size_t ns = state_floats(s);
    if (fitted) {
        float *tmp = rj_decode_scratch(s, RJ_DSCR_PAR, par_floats(s) * sizeof(float));
        RJ_FAIL_IF(dg, !tmp, RFJIT_E_NOMEM, "no memory to restore a snapshot");
        get_floats(tmp, pl + 4 * ns, par_floats(s));
        RJ_FAIL_IF(dg, par_hash(tmp, par_floats(s)) != slot_hash, RFJIT_E_STATE,
                   "snapshot's fitted parameters do not match their hash (corrupt bytes)");
        memcpy(s->par + (size_t)slot * par_floats(s), tmp, par_floats(s) * sizeof(float));
    }
    get_floats(s->st + (size_t)slot * ns, pl, ns);
    s->pos[slot] = pos;
    if (s->fitted)
        s->has_par[slot] = fitted;
    return RFJIT_OK;
}
