/* SPDX-License-Identifier: MIT */
/*
 * This file is the feature-map kernel (kabi.h RJ_KK_FEAT): tile by tile, the linear template's
 * own feature emitters (lin.h) on unscaled rows, written out feature-major with the per-row
 * log-scale h, so the runtime forms e^h f in double at the end and nothing overflows in float
 * on the way. Keys and queries differ only in their parameters, except for hybrid, whose base
 * blocks change sign with the role (spec 5.1): that family gets both bodies.
 */
#include "gen/tmpl/lin.h"

static void emit_role(rj_lin *L, rj_v par, int keys, rj_v n)
{
    const rj_kplan *kp = L->kp;
    rj_v F = rj_ir_atc(L->ir, L->ws, kp->ws_fq), h = rj_ir_atc(L->ir, L->ws, kp->ws_h);
    rj_lin_logfeatures(L, par, rj_ir_atc(L->ir, L->ws, kp->ws_x));
    /* keys shift by their own h too, so both roles come out as e^{-h} phi */
    rj_lin_features(L, F, NULL, keys ? h : NULL, n);
}

void rj_tmpl_features(rj_kfn *f)
{
    rj_ir *ir = f->ir;
    const rj_kplan *kp = f->kp;
    rj_lin L = rj_lin_init(f);
    const int64_t T = kp->T;
    rj_v keys = rj_ir_bits(ir, f->arg[RJ_KA_flags], RJ_KFLAG_KEYS, 1, "keys");
    rj_v lq = f->arg[RJ_KA_lq], so = f->arg[RJ_KA_so];
    rj_loop t = rj_ir_loop_begin(ir, "tile", rj_ir_i(ir, 0), lq, T);
    rj_v n = rj_tmpl_rows_left(f, lq, t.i);
    rj_tmpl_pack_t(f, f->arg[RJ_KA_q], f->arg[RJ_KA_sq], t.i, n, rj_ir_atc(ir, L.ws, kp->ws_x),
                   f->scale);
    if (kp->fam == RJ_KF_HYBRID) {
        rj_if as_k = rj_ir_if_begin(ir, keys, "as_keys");
        emit_role(&L, f->arg[RJ_KA_pk], 1, n);
        rj_ir_if_end(ir, &as_k);
        rj_if as_q = rj_ir_if_begin(ir, LLVMBuildNot(ir->B, keys, ""), "as_queries");
        emit_role(&L, f->arg[RJ_KA_pq], 0, n);
        rj_ir_if_end(ir, &as_q);
    } else {
        rj_v par = LLVMBuildSelect(ir->B, keys, f->arg[RJ_KA_pk], f->arg[RJ_KA_pq],
                                   rj_ir_name(ir, "par"));
        emit_role(&L, par, 0, n);
    }
    /* whole tiles out: the caller pads rows of out and st to a multiple of T */
    rj_v F = rj_ir_atc(ir, L.ws, kp->ws_fq), h = rj_ir_atc(ir, L.ws, kp->ws_h);
    rj_loop r = rj_ir_loop_begin(ir, "r", rj_ir_i(ir, 0), rj_ir_i(ir, kp->Mp), 1);
    rj_v orow = rj_ir_at(ir, f->arg[RJ_KA_out], rj_ir_idx2v(ir, r.i, so, t.i, ""));
    rj_v frow = rj_ir_at(ir, F, rj_ir_imul(ir, r.i, rj_ir_i(ir, T), ""));
    rj_loop tv = rj_ir_loop_begin(ir, "tv", rj_ir_i(ir, 0), rj_ir_i(ir, T), ir->vw);
    rj_ir_stv(ir, rj_ir_ldv(ir, rj_ir_at(ir, frow, tv.i), "phi"), rj_ir_at(ir, orow, tv.i));
    rj_ir_loop_end(ir, &tv);
    rj_ir_loop_end(ir, &r);
    rj_v hout = rj_ir_at(ir, f->arg[RJ_KA_st], t.i);
    rj_loop th = rj_ir_loop_begin(ir, "th", rj_ir_i(ir, 0), rj_ir_i(ir, T), ir->vw);
    rj_ir_stv(ir, rj_ir_ldv(ir, rj_ir_at(ir, h, th.i), "h"), rj_ir_at(ir, hout, th.i));
    rj_ir_loop_end(ir, &th);
    rj_ir_loop_end(ir, &t);
}
