/* SPDX-License-Identifier: MIT */
/*
 * This file is the libFuzzer target of descriptor validation: the input is read as a
 * versioned rfjit_attn_desc (rj_desc_read, with a fuzzed size field and tail), its string and
 * tensor fields pointed at fuzzed but in-bounds data, then checked as rfjit_plan_create checks
 * it (rj_plan_check) and, when valid, resolved into a kernel plan for the host ISA
 * (rj_kplan_make: tiling rules, sizes) without compiling. Invariant: failures carry a
 * message; nothing crashes or reads outside the buffers (ASan).
 */
#include "gen/kplan.h"
#include "runtime/plan.h"
#include "runtime/tensor.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

enum { POOL = 4096 };

/* A view over pool whose every reachable element lies inside it, or NULL. */
static const rfjit_tensor *view(rfjit_tensor *t, float *pool, const uint8_t *b)
{
    int64_t extent = 0;
    for (int i = 0; i < 4; i++) {
        t->shape[i] = (int8_t)b[i];
        t->stride[i] = (int8_t)b[4 + i];
        if (t->shape[i] > 0 && t->stride[i] >= 0)
            extent += (t->shape[i] - 1) * t->stride[i];
        else if (t->shape[i] > 0)
            return NULL;
    }
    t->data = pool + b[8];
    return extent + b[8] < POOL ? t : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* layout: [desc bytes (size field first)] [9 bytes calib_q view] [9 bytes calib_k view]
     * [1 byte: estimator name length] [name] [m*d floats' worth of projection taken from a
     * fixed pool] */
    static float pool[POOL];
    static float proj[1 << 16];
    uint8_t raw[sizeof(rfjit_attn_desc) + 64] = {0};
    const size_t nraw = size < sizeof raw ? size : sizeof raw;
    memcpy(raw, data, nraw);
    const uint8_t *rest = data + nraw;
    size_t nrest = size - nraw;

    rfjit_attn_desc src;
    memcpy(&src, raw, sizeof src);
    rfjit_tensor tq, tk;
    src.calib_q = nrest >= 9 ? view(&tq, pool, rest) : NULL;
    src.calib_k = nrest >= 18 ? view(&tk, pool, rest + 9) : NULL;
    rest += nrest >= 18 ? 18 : nrest;
    nrest -= nrest >= 18 ? 18 : nrest;
    char name[64] = "positive";
    if (nrest >= 1) {
        const size_t len = rest[0] < nrest - 1 ? rest[0] : nrest - 1;
        memcpy(name, rest + 1, len < sizeof name - 1 ? len : sizeof name - 1);
        name[len < sizeof name - 1 ? len : sizeof name - 1] = 0;
    }
    src.estimator = (raw[0] & 0x10) ? NULL : name;
    src.projection_matrix = (raw[1] & 1) ? proj : NULL;
    /* compat: NULL, a known mode, or the fuzzed name (an unknown one) */
    const char *const compat[] = {
        NULL, "none", "performer-pytorch", "google-performer", "fast-transformers", name};
    src.compat = compat[(raw[1] >> 1) % (sizeof compat / sizeof *compat)];
    /* eva_variant likewise: NULL, a known variant, or the fuzzed name */
    const char *const variant[] = {NULL, "principled", "official", name};
    src.eva_variant = variant[(raw[1] >> 5) % (sizeof variant / sizeof *variant)];
    /* the projection is read as m x d floats: only offer it when that fits */
    if (src.projection_matrix && (int64_t)src.m * src.d > (int64_t)(sizeof proj / sizeof *proj))
        src.projection_matrix = NULL;

    /* the pointers go back into the image, whose fuzzed tail past our struct is what a newer
     * caller's extra fields would be */
    memcpy(raw, &src, sizeof src);
    rj_diag dg = {{0}};
    rfjit_attn_desc d = RFJIT_ATTN_DESC_INIT;
    const size_t claimed = src.size < sizeof raw ? src.size : sizeof raw;
    if (rj_desc_read(&d, sizeof d, raw, claimed, &dg) != RFJIT_OK) {
        if (!dg.msg[0])
            abort();
        return 0;
    }
    rj_spec spec;
    const rfjit_status st = rj_plan_check(&d, &spec, &dg);
    if (st != RFJIT_OK) {
        if (!dg.msg[0])
            abort();
        return 0;
    }
    rj_kplan kp;
    rj_diag why = {{0}};
    if (rj_kplan_make(&spec, &d.tiling, 16, 1, &kp, &why) != RFJIT_OK && !why.msg[0])
        abort();
    return 0;
}
