/* SPDX-License-Identifier: MIT */
/*
 * This file is the exact softmax attention template: online softmax over key tiles (the
 * flash-attention recurrence), so nothing L x L is ever stored. Per query tile (transposed,
 * d x T, lanes over queries):
 *
 *   for each key tile:  s_ji = y_j . x_i               (T x T scores, -inf where masked)
 *                       m' = max(m, max_j s_j);  alpha = e^{m - m'}
 *                       p_ji = e^{s_ji - m'};  l = alpha l + sum_j p_j
 *                       num = alpha num + V^T p;  m = m'
 *   out_i = num_i / l_i
 *
 * with x = q d^{-1/2}, y = k (so s = q.k / sqrt d): unscaled keys let whole key tiles be read
 * in place, and so can values when dv fills its vectors; only a ragged last tile is copied
 * (copying every key tile again for every query tile cost 12% of an execute). Causal skips
 * key tiles past the diagonal and masks j > i + qoff inside it (qoff = 0 for attention; EVA's
 * groups put their pseudo-keys first and shift the diagonal by qoff >= 0); every query keeps
 * at least one key, so m' is finite and alpha = e^{-inf} = 0 on the first tile (the inline
 * exp flushes it).
 */
#include "gen/tmpl/tmpl.h"

#include <math.h>

void rj_tmpl_softmax(rj_kfn *f)
{
    rj_ir *ir = f->ir;
    const rj_kplan *kp = f->kp;
    const int64_t T = kp->T, d = kp->d, dvp = kp->dvp;
    rj_v W = f->arg[RJ_KA_ws];
    rj_v xq = rj_ir_atc(ir, W, kp->ws_xq), yk = rj_ir_atc(ir, W, kp->ws_x);
    rj_v V = rj_ir_atc(ir, W, kp->ws_v), S = rj_ir_atc(ir, W, kp->ws_a);
    rj_v num = rj_ir_atc(ir, W, kp->ws_num), m = rj_ir_atc(ir, W, kp->ws_m);
    rj_v l = rj_ir_atc(ir, W, kp->ws_l);
    rj_v lq = f->arg[RJ_KA_lq], lk = f->arg[RJ_KA_lk];

    rj_loop qt = rj_ir_loop_begin(ir, "query_tile", rj_ir_i(ir, 0), lq, T);
    rj_v nq = rj_tmpl_rows_left(f, lq, qt.i);
    const rj_v scale = f->scale;
    f->scale = rj_ir_mul(ir, scale, scale, "");
    rj_tmpl_pack_t(f, f->arg[RJ_KA_q], f->arg[RJ_KA_sq], qt.i, nq, xq);
    f->scale = scale;
    rj_tmpl_fill(f, m, T, -INFINITY);
    rj_tmpl_fill(f, l, T, 0.0);
    rj_tmpl_fill(f, num, dvp * T, 0.0);
    rj_v kend = lk;
    if (kp->causal) {
        rj_v diag = rj_ir_iadd(ir, rj_ir_iadd(ir, qt.i, rj_ir_i(ir, T), ""), f->arg[RJ_KA_qoff],
                               "");
        kend = LLVMBuildSelect(ir->B, LLVMBuildICmp(ir->B, LLVMIntSLT, diag, lk, ""), diag, lk,
                               "kend");
    }
    rj_loop kt = rj_ir_loop_begin(ir, "key_tile", rj_ir_i(ir, 0), kend, T);
    rj_v nk = rj_tmpl_rows_left(f, lk, kt.i);
    rj_v full = LLVMBuildICmp(ir->B, LLVMIntEQ, nk, rj_ir_i(ir, T), "full");
    const int v_in_place = kp->dv == dvp;
    rj_if ragged = rj_ir_if_begin(ir, LLVMBuildNot(ir->B, full, ""), "ragged");
    rj_tmpl_pack_rows(f, f->arg[RJ_KA_k], f->arg[RJ_KA_sk], kt.i, nk, yk, 0);
    if (v_in_place)
        rj_tmpl_pack_v(f, f->arg[RJ_KA_v], f->arg[RJ_KA_sv], kt.i, nk, V);
    rj_ir_if_end(ir, &ragged);
    if (!v_in_place)
        rj_tmpl_pack_v(f, f->arg[RJ_KA_v], f->arg[RJ_KA_sv], kt.i, nk, V);
    rj_v Ak, Ak_si, Av = V, Av_sk = rj_ir_i(ir, dvp);
    rj_tmpl_tile_at(f, full, f->arg[RJ_KA_k], f->arg[RJ_KA_sk], kt.i, yk, d, &Ak, &Ak_si);
    if (v_in_place)
        rj_tmpl_tile_at(f, full, f->arg[RJ_KA_v], f->arg[RJ_KA_sv], kt.i, V, dvp, &Av, &Av_sk);
    rj_mm ms = {.A = Ak, .a_si_v = Ak_si, .a_sk = 1, .B = xq, .b_sk = T, .C = S, .c_si = T,
                .NI = T, .NJ = T, .K = rj_ir_i(ir, d), .ri = kp->ri, .rj = kp->rj, .name = "s"};
    rj_ir_mm(ir, &ms);
    /* key j (global kt + j) reaches query i (global qt + i) iff j < nk and, causal, kt + j <=
     * qt + i; masked scores become -inf */
    rj_v shift = rj_ir_iadd(ir, rj_ir_isub(ir, qt.i, kt.i, ""), f->arg[RJ_KA_qoff], "");
    rj_v mt = rj_ir_slot(ir, ir->ty_vf, "mt");
    for (int64_t t = 0; t < T; t += ir->vw) {
        rj_ir_set(ir, mt, rj_ir_vf(ir, -INFINITY));
        rj_v lane = rj_ir_lanes_from(ir, rj_ir_i(ir, t));
        rj_loop j = rj_ir_loop_begin(ir, "j", rj_ir_i(ir, 0), rj_ir_i(ir, T), 1);
        rj_v p = rj_ir_at(ir, S, rj_ir_idx2(ir, j.i, T, rj_ir_i(ir, t), ""));
        rj_v ok = LLVMBuildICmp(ir->B, LLVMIntSLT, j.i, nk, "");
        rj_v keep = rj_ir_mask_bcast(ir, ok, "");
        if (kp->causal) {
            /* j <= shift + i, shift = qt - kt + qoff */
            rj_v lim = rj_ir_lanes_add(ir, lane, shift);
            rj_v c = LLVMBuildICmp(ir->B, LLVMIntSLE, rj_ir_ibcast(ir, j.i), lim, "");
            keep = LLVMBuildAnd(ir->B, keep, c, "");
        }
        rj_v s = LLVMBuildSelect(ir->B, keep, rj_ir_ldv(ir, p, "s"), rj_ir_vf(ir, -INFINITY),
                                 "s");
        rj_ir_stv(ir, s, p);
        rj_ir_acc_max(ir, mt, s);
        rj_ir_loop_end(ir, &j);
        rj_v m_old = rj_ir_ldv(ir, rj_ir_atc(ir, m, t), "m");
        rj_v m_new = rj_ir_max(ir, m_old, rj_ir_get(ir, mt, ""), "m_new");
        rj_v alpha = rj_ir_exp(ir, rj_ir_sub(ir, m_old, m_new, ""), "alpha");
        rj_ir_stv(ir, m_new, rj_ir_atc(ir, m, t));
        rj_v psum = rj_ir_slot(ir, ir->ty_vf, "psum");
        rj_ir_set(ir, psum, rj_ir_vf(ir, 0));
        rj_loop j2 = rj_ir_loop_begin(ir, "j", rj_ir_i(ir, 0), rj_ir_i(ir, T), 1);
        rj_v p2 = rj_ir_at(ir, S, rj_ir_idx2(ir, j2.i, T, rj_ir_i(ir, t), ""));
        rj_v e = rj_ir_exp(ir, rj_ir_sub(ir, rj_ir_ldv(ir, p2, "s"), m_new, ""), "p");
        rj_ir_stv(ir, e, p2);
        rj_ir_acc_add(ir, psum, e);
        rj_ir_loop_end(ir, &j2);
        rj_v pl = rj_ir_atc(ir, l, t);
        rj_ir_stv(ir, rj_ir_fma(ir, alpha, rj_ir_ldv(ir, pl, "l"), rj_ir_get(ir, psum, ""), "l"),
                  pl);
        rj_loop c = rj_ir_loop_begin(ir, "c", rj_ir_i(ir, 0), rj_ir_i(ir, dvp), 1);
        rj_v pn = rj_ir_at(ir, num, rj_ir_idx2(ir, c.i, T, rj_ir_i(ir, t), ""));
        rj_ir_stv(ir, rj_ir_mul(ir, rj_ir_ldv(ir, pn, ""), alpha, ""), pn);
        rj_ir_loop_end(ir, &c);
    }
    rj_mm mv = {.A = Av, .a_si = 1, .a_sk_v = Av_sk, .B = S, .b_sk = T, .C = num, .c_si = T,
                .NI = dvp, .NJ = T, .K = rj_ir_i(ir, T), .accumulate = 1, .ri = kp->ri,
                .rj = kp->rj, .name = "num"};
    rj_ir_mm(ir, &mv);
    rj_ir_loop_end(ir, &kt);
    rj_loop tv = rj_ir_loop_begin(ir, "tv", rj_ir_i(ir, 0), rj_ir_i(ir, T), ir->vw);
    rj_v pl = rj_ir_at(ir, l, tv.i);
    rj_ir_stv(ir, rj_ir_div(ir, rj_ir_vf(ir, 1), rj_ir_ldv(ir, pl, "l"), "rl"), pl);
    rj_ir_loop_end(ir, &tv);
    rj_tmpl_store_out(f, num, l, qt.i, nq);
    rj_ir_loop_end(ir, &qt);
}
