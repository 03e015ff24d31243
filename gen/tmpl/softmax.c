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
 * key tiles past the diagonal and masks j > i + qoff inside it (bottom-right: qoff = lk - lq
 * for attention; EVA's groups put their pseudo-keys first and shift the diagonal by qoff >= 0).
 * A key mask (kabi.h km) gives hidden keys -inf scores, and a tile of hidden keys only is
 * skipped. A query whose keys are all hidden (or lk = 0) keeps m = -inf and l = 0 and gets
 * exact zeros; the others have a finite m' from their first visible key on, where
 * alpha = e^{-inf} = 0 (the inline exp flushes it).
 *
 * A pass over the keys serves up to gq query tiles (rj_kplan.gq), each with its own x, m, l
 * and num: the query heads that share these keys (kabi.h ng > 1; grouped-query attention,
 * head g at q + g sqh and out + g soh), or else gq consecutive tiles of the one head. A pass
 * reads (and for half inputs widens) each key and value tile once for all of them, and every
 * tile's rows come out as a pass of its own would give them, bit for bit.
 *
 * With bf16 compute (rj_kplan.bf16) both products take bfloat16 operands: each query tile is
 * rounded once as it starts, each key and value tile once per pass, and the weights p as the
 * online step computes them, which it does in float as before (so m and l are float, and
 * only the products' operands are rounded).
 */
#include "gen/tmpl/tmpl.h"

#include <math.h>

/* The template's workspace regions (kplan.h ws_*): the key tile's, shared by the heads of a
 * pass, and one query head's (head_ws). */
typedef struct sm_ws {
    rj_v xq;  /* the query tile x = q d^{-1/2}, transposed (d x T) */
    rj_v yk;  /* a ragged key tile, packed (T x d) */
    rj_v V;   /* a value tile, packed (T x dvp) */
    rj_v S;   /* scores, then weights p (T keys x T queries) */
    rj_v num; /* numerators (dvp x T) */
    rj_v m;   /* running maxima (T) */
    rj_v l;   /* running denominators (T), reciprocals at the end */
    rj_v vis; /* the key tile's visibility (T; rj_tmpl_key_vis), read when there is a mask */
    /* bf16 compute: keys as rows, values and weights as pairs of rows, queries as pairs */
    rj_v kb, vb, pb, xqb;
} sm_ws;

/* Where a key tile's keys and values are read, and their row strides (i64). */
typedef struct sm_kv {
    rj_v nk, K, K_s, V, V_s;
} sm_kv;

static sm_ws workspace(rj_kfn *f)
{
    rj_ir *ir = f->ir;
    const rj_kplan *kp = f->kp;
    rj_v base = f->arg[RJ_KA_ws];
    sm_ws ws = {0};
    ws.yk = rj_ir_atc(ir, base, kp->ws_x);
    ws.V = rj_ir_atc(ir, base, kp->ws_v);
    ws.S = rj_ir_atc(ir, base, kp->ws_a);
    ws.vis = rj_ir_atc(ir, base, kp->ws_kv);
    ws.kb = rj_ir_atc(ir, base, kp->ws_kb);
    ws.vb = rj_ir_atc(ir, base, kp->ws_vb);
    ws.pb = rj_ir_atc(ir, base, kp->ws_pb);
    return ws;
}

/* ws with the query regions of head g (i64) of the pass. */
static sm_ws head_ws(rj_kfn *f, const sm_ws *shared, rj_v g)
{
    rj_ir *ir = f->ir;
    const rj_kplan *kp = f->kp;
    rj_v base = rj_ir_at(ir, f->arg[RJ_KA_ws], rj_ir_imul(ir, g, rj_ir_i(ir, kp->ws_gs), ""));
    sm_ws ws = *shared;
    ws.xq = rj_ir_atc(ir, base, kp->ws_xq);
    ws.num = rj_ir_atc(ir, base, kp->ws_num);
    ws.m = rj_ir_atc(ir, base, kp->ws_m);
    ws.l = rj_ir_atc(ir, base, kp->ws_l);
    ws.xqb = rj_ir_atc(ir, base, kp->ws_xqb);
    return ws;
}

/* The query tile at qt (nq rows) of the head at q packed as x = q d^{-1/2}, and m, l, num reset. */
static void start_queries(rj_kfn *f, const sm_ws *ws, rj_v q, rj_v qt, rj_v nq)
{
    rj_ir *ir = f->ir;
    const int64_t T = f->kp->T;
    rj_v x_scale = rj_ir_mul(ir, f->scale, f->scale, "x_scale"); /* sqrt(scale)^2 */
    rj_tmpl_pack_t(f, q, f->arg[RJ_KA_sq], qt, nq, ws->xq, x_scale);
    if (f->kp->bf16)
        rj_ir_pack_bf16_pairs(ir, ws->xq, rj_ir_i(ir, T), rj_ir_i(ir, f->kp->d), T, ws->xqb,
                              f->kp->pq);
    rj_tmpl_fill(f, ws->m, T, -INFINITY);
    rj_tmpl_fill(f, ws->l, T, 0.0);
    rj_tmpl_fill(f, ws->num, f->kp->dvp * T, 0.0);
}

/* The end of the keys query tile qt sees: lk, or, causal, the diagonal when it comes first. */
static rj_v key_end(rj_kfn *f, rj_v qt)
{
    rj_ir *ir = f->ir;
    rj_v lk = f->arg[RJ_KA_lk];
    if (!f->kp->causal)
        return lk;
    rj_v diag = rj_ir_iadd(ir, rj_ir_iadd(ir, qt, rj_ir_i(ir, f->kp->T), ""), f->arg[RJ_KA_qoff],
                           "");
    return LLVMBuildSelect(ir->B, LLVMBuildICmp(ir->B, LLVMIntSLT, diag, lk, ""), diag, lk,
                           "kend");
}

/* The bf16 operands of a key and value tile (kplan.h ws_kb, ws_vb): keys as rows; values as
 * pairs of rows, or for AMX as the rows of their transpose, which is the layout of its A
 * operand. */
static void pack_key_value_bf16(rj_kfn *f, const sm_ws *ws, const sm_kv *kv)
{
    rj_ir *ir = f->ir;
    const rj_kplan *kp = f->kp;
    rj_v T = rj_ir_i(ir, kp->T);
    rj_ir_pack_bf16_rows(ir, kv->K, kv->K_s, T, kp->d, kp->bk, ws->kb, kp->bk);
    if (kp->bf16 != RJ_BF16_AMX) {
        rj_ir_pack_bf16_pairs(ir, kv->V, kv->V_s, T, kp->dvp, ws->vb, 0);
        return;
    }
    rj_v vt = rj_ir_atc(ir, f->arg[RJ_KA_ws], kp->ws_vt);
    const int vw = ir->vw;
    rj_loop c = rj_ir_loop_begin(ir, "vt_c", rj_ir_i(ir, 0), rj_ir_i(ir, kp->dvp), vw);
    rj_loop j = rj_ir_loop_begin(ir, "vt_j", rj_ir_i(ir, 0), T, vw);
    rj_ir_transpose_block(ir, rj_ir_at(ir, kv->V, rj_ir_idx2v(ir, j.i, kv->V_s, c.i, "")), kv->V_s,
                          rj_ir_at(ir, vt, rj_ir_idx2(ir, c.i, kp->T, j.i, "")), T, NULL, NULL,
                          rj_ir_f(ir, 1));
    rj_ir_loop_end(ir, &j);
    rj_ir_loop_end(ir, &c);
    rj_ir_pack_bf16_rows(ir, vt, T, rj_ir_i(ir, kp->dvp), kp->T, kp->bv, ws->vb, kp->bv);
}

/* Where the key tile at kt is read: keys in place when the tile is whole, values too when dv
 * fills its vectors; otherwise the copies kv_pack makes in the workspace. */
static sm_kv kv_at(rj_kfn *f, const sm_ws *ws, rj_v kt)
{
    rj_ir *ir = f->ir;
    const rj_kplan *kp = f->kp;
    sm_kv kv = {.nk = rj_tmpl_rows_left(f, f->arg[RJ_KA_lk], kt)};
    rj_v full = rj_tmpl_whole_tile(f, kv.nk);
    kv.V = ws->V;
    kv.V_s = rj_ir_i(ir, kp->dvp);
    rj_tmpl_tile_at(f, full, f->arg[RJ_KA_k], f->arg[RJ_KA_sk], kt, ws->yk, kp->d, &kv.K, &kv.K_s);
    if (kp->dv == kp->dvp)
        rj_tmpl_tile_at(f, full, f->arg[RJ_KA_v], f->arg[RJ_KA_sv], kt, ws->V, kp->dvp, &kv.V,
                        &kv.V_s);
    return kv;
}

/* The copies of the key tile at kt that kv_at reads: a ragged tile's keys and values, values
 * that do not fill their vectors, and for bf16 compute the rounded operands. */
static void kv_pack(rj_kfn *f, const sm_ws *ws, rj_v kt)
{
    rj_ir *ir = f->ir;
    const rj_kplan *kp = f->kp;
    const sm_kv kv = kv_at(f, ws, kt);
    rj_v full = rj_tmpl_whole_tile(f, kv.nk);
    const int v_in_place = kp->dv == kp->dvp;
    rj_if ragged = rj_ir_if_begin(ir, LLVMBuildNot(ir->B, full, ""), "ragged");
    rj_tmpl_pack_rows(f, f->arg[RJ_KA_k], f->arg[RJ_KA_sk], kt, kv.nk, ws->yk, NULL);
    if (v_in_place)
        rj_tmpl_pack_v(f, f->arg[RJ_KA_v], f->arg[RJ_KA_sv], kt, kv.nk, ws->V);
    rj_ir_if_end(ir, &ragged);
    if (!v_in_place)
        rj_tmpl_pack_v(f, f->arg[RJ_KA_v], f->arg[RJ_KA_sv], kt, kv.nk, ws->V);
    if (kp->bf16)
        pack_key_value_bf16(f, ws, &kv);
}

/* Scores of the queries t .. t + vw - 1: key j (global kt + j) reaches query i (global
 * qt + i) iff j < nk and, causal, j <= shift + i (shift = qt - kt + qoff); masked scores
 * become -inf. Their maximum over the keys into the slot mt. */
static void mask_scores(rj_kfn *f, rj_v S, int64_t t, rj_v nk, rj_v shift, rj_v mt)
{
    rj_ir *ir = f->ir;
    const int64_t T = f->kp->T;
    rj_ir_set(ir, mt, rj_ir_vf(ir, -INFINITY));
    rj_v lane = rj_ir_lanes_from(ir, rj_ir_i(ir, t));
    rj_loop j = rj_ir_loop_begin(ir, "j", rj_ir_i(ir, 0), rj_ir_i(ir, T), 1);
    rj_v p = rj_ir_at(ir, S, rj_ir_idx2(ir, j.i, T, rj_ir_i(ir, t), ""));
    rj_v ok = LLVMBuildICmp(ir->B, LLVMIntSLT, j.i, nk, "");
    rj_v keep = rj_ir_mask_bcast(ir, ok, "");
    if (f->kp->causal) {
        rj_v lim = rj_ir_lanes_add(ir, lane, shift);
        rj_v c = LLVMBuildICmp(ir->B, LLVMIntSLE, rj_ir_ibcast(ir, j.i), lim, "");
        keep = LLVMBuildAnd(ir->B, keep, c, "");
    }
    rj_v s = LLVMBuildSelect(ir->B, keep, rj_ir_ldv(ir, p, "s"), rj_ir_vf(ir, -INFINITY), "s");
    rj_ir_stv(ir, s, p);
    rj_ir_acc_max(ir, mt, s);
    rj_ir_loop_end(ir, &j);
}

/* The maximum over the keys of the scores of queries t .. t + vw - 1 into the slot mt. */
static void tile_max(rj_kfn *f, rj_v S, int64_t t, rj_v mt)
{
    rj_ir *ir = f->ir;
    const int64_t T = f->kp->T;
    rj_ir_set(ir, mt, rj_ir_vf(ir, -INFINITY));
    rj_loop j = rj_ir_loop_begin(ir, "j", rj_ir_i(ir, 0), rj_ir_i(ir, T), 1);
    rj_ir_acc_max(ir, mt,
                  rj_ir_ldv(ir, rj_ir_at(ir, S, rj_ir_idx2(ir, j.i, T, rj_ir_i(ir, t), "")), "s"));
    rj_ir_loop_end(ir, &j);
}

/* The online-softmax step of the queries t .. t + vw - 1, whose tile maximum is in mt:
 * m' = max(m, mt), p = e^{s - m'}, l = alpha l + sum_j p_j, num *= alpha. */
static void rescale(rj_kfn *f, const sm_ws *ws, int64_t t, rj_v mt)
{
    rj_ir *ir = f->ir;
    const int64_t T = f->kp->T;
    rj_v m_old = rj_ir_ldv(ir, rj_ir_atc(ir, ws->m, t), "m");
    rj_v m_new = rj_ir_max(ir, m_old, rj_ir_get(ir, mt, ""), "m_new");
    rj_ir_stv(ir, m_new, rj_ir_atc(ir, ws->m, t));
    /* once the running maxima settle, most key tiles leave every lane's m as it was: then
     * alpha = e^0 = 1 and the numerators stay as they are, so their pass is skipped (a lane
     * still at -inf has num = +0, which alpha = 0 would leave too) */
    rj_v moved = rj_ir_any(ir, LLVMBuildFCmp(ir->B, LLVMRealUNE, m_old, m_new, ""), "moved");
    /* a query that has seen only masked keys keeps m = -inf: subtracting 0 instead leaves
     * its p = e^{-inf} = 0 (and alpha 0) where -inf - -inf would make NaN */
    rj_v none = LLVMBuildFCmp(ir->B, LLVMRealOEQ, m_new, rj_ir_vf(ir, -INFINITY), "");
    m_new = LLVMBuildSelect(ir->B, none, rj_ir_vf(ir, 0), m_new, "m_sub");
    rj_v alpha = rj_ir_exp(ir, rj_ir_sub(ir, m_old, m_new, ""), "alpha");
    rj_v psum = rj_ir_slot(ir, ir->ty_vf, "psum");
    rj_ir_set(ir, psum, rj_ir_vf(ir, 0));
    /* bf16: keys j and j + 1 at once, their weights stored straight into the pairs operand
     * of num += V^T p (the same sum, in the same order) */
    const int64_t step = f->kp->bf16 ? 2 : 1;
    rj_loop j = rj_ir_loop_begin(ir, "j", rj_ir_i(ir, 0), rj_ir_i(ir, T / step), 1);
    rj_v e[2];
    for (int64_t k = 0; k < step; k++) {
        rj_v key = rj_ir_iadd(ir, rj_ir_imul(ir, j.i, rj_ir_i(ir, step), ""), rj_ir_i(ir, k), "");
        rj_v p = rj_ir_at(ir, ws->S, rj_ir_idx2(ir, key, T, rj_ir_i(ir, t), ""));
        e[k] = rj_ir_exp(ir, rj_ir_sub(ir, rj_ir_ldv(ir, p, "s"), m_new, ""), "p");
        if (step == 1)
            rj_ir_stv(ir, e[k], p);
        rj_ir_acc_add(ir, psum, e[k]);
    }
    if (step == 2) {
        rj_ir_store_bf16_pairs(ir, e[0], e[1],
                               rj_ir_at(ir, ws->pb, rj_ir_idx2(ir, j.i, T, rj_ir_i(ir, t), "")));
    }
    rj_ir_loop_end(ir, &j);
    rj_v pl = rj_ir_atc(ir, ws->l, t);
    rj_ir_stv(ir, rj_ir_fma(ir, alpha, rj_ir_ldv(ir, pl, "l"), rj_ir_get(ir, psum, ""), "l"), pl);
    rj_if scale = rj_ir_if_begin(ir, moved, "rescale_num");
    rj_loop c = rj_ir_loop_begin(ir, "c", rj_ir_i(ir, 0), rj_ir_i(ir, f->kp->dvp), 1);
    rj_v pn = rj_ir_at(ir, ws->num, rj_ir_idx2(ir, c.i, T, rj_ir_i(ir, t), ""));
    rj_ir_stv(ir, rj_ir_mul(ir, rj_ir_ldv(ir, pn, ""), alpha, ""), pn);
    rj_ir_loop_end(ir, &c);
    rj_ir_if_end(ir, &scale);
}

/* Scores of the hidden keys of the tile (vis[j] == 0) become -inf, a row at a time: only
 * tiles with a hidden key come here, so a tile without (and every tile of a call without a
 * mask) pays nothing for the mask, and the kernel holds one copy of mask_scores. */
static void hide_keys(rj_kfn *f, const sm_ws *ws)
{
    rj_ir *ir = f->ir;
    const int64_t T = f->kp->T;
    rj_loop j = rj_ir_loop_begin(ir, "j", rj_ir_i(ir, 0), rj_ir_i(ir, T), 1);
    rj_v hidden = LLVMBuildFCmp(ir->B, LLVMRealOEQ, rj_ir_ld(ir, rj_ir_at(ir, ws->vis, j.i), "vis"),
                                rj_ir_f(ir, 0), "hidden");
    rj_v hide = rj_ir_mask_bcast(ir, hidden, "");
    for (int64_t t = 0; t < T; t += ir->vw) {
        rj_v p = rj_ir_at(ir, ws->S, rj_ir_idx2(ir, j.i, T, rj_ir_i(ir, t), ""));
        rj_ir_stv(ir,
                  LLVMBuildSelect(ir->B, hide, rj_ir_vf(ir, -INFINITY), rj_ir_ldv(ir, p, "s"), "s"),
                  p);
    }
    rj_ir_loop_end(ir, &j);
}

/* The key tile kv (at kt) against one head's query tile: scores, masking and the online
 * update, up to the weights p. partial (i1): some keys of the tile are masked, so the scores
 * read the visibility. */
static void key_scores(rj_kfn *f, const sm_ws *ws, const sm_kv *kvp, rj_v qt, rj_v kt, rj_v partial)
{
    rj_ir *ir = f->ir;
    const rj_kplan *kp = f->kp;
    const int64_t T = kp->T;
    const sm_kv kv = *kvp;
    rj_mm ms = {.A = kv.K, .a_si_v = kv.K_s, .a_sk = 1, .B = ws->xq, .b_sk = T, .C = ws->S,
                .c_si = T, .NI = T, .NJ = T, .K = rj_ir_i(ir, kp->d), .ri = kp->ri, .rj = kp->rj,
                .name = "s"};
    if (kp->bf16 == RJ_BF16_AMX) {
        rj_amx_mm a = {.A = ws->kb,
                       .a_si = kp->bk / 2,
                       .B = ws->xqb,
                       .b_sk = T,
                       .C = ws->S,
                       .c_si = T,
                       .NI = T,
                       .NJ = T,
                       .K = kp->pq};
        rj_ir_mm_amx(ir, &a);
    } else if (kp->bf16) {
        ms.A = ws->kb;
        ms.a_si_v = NULL;
        ms.a_si = kp->bk / 2;
        ms.B = ws->xqb;
        ms.K = rj_ir_i(ir, kp->pq);
        ms.bf16 = 1;
        rj_ir_mm(ir, &ms);
    } else {
        rj_ir_mm(ir, &ms);
    }
    rj_v shift = rj_ir_iadd(ir, rj_ir_isub(ir, qt, kt, ""), f->arg[RJ_KA_qoff], "");
    rj_v mt = rj_ir_slot(ir, ir->ty_vf, "mt");
    rj_if part = rj_ir_if_begin(ir, partial, "key_mask");
    hide_keys(f, ws);
    rj_ir_if_end(ir, &part);
    /* a whole tile that every query sees in full (bidirectional, or causal below the
     * diagonal: key T - 1 <= shift + query 0) has nothing to mask, so its pass only takes the
     * maxima and stores nothing (hidden keys' scores are -inf already) */
    rj_v whole = LLVMBuildICmp(ir->B, LLVMIntEQ, kv.nk, rj_ir_i(ir, T), "whole");
    if (kp->causal)
        whole = LLVMBuildAnd(ir->B, whole,
                             LLVMBuildICmp(ir->B, LLVMIntSGE, shift, rj_ir_i(ir, T - 1), ""),
                             "unmasked");
    for (int64_t t = 0; t < T; t += ir->vw) {
        rj_if all = rj_ir_if_begin(ir, whole, "whole_tile");
        tile_max(f, ws->S, t, mt);
        rj_ir_if_end(ir, &all);
        rj_if some = rj_ir_if_begin(ir, LLVMBuildNot(ir->B, whole, ""), "masked_tile");
        mask_scores(f, ws->S, t, kv.nk, shift, mt);
        rj_ir_if_end(ir, &some);
        rescale(f, ws, t, mt);
    }
}

/* num += V^T p for the value tile kv and the weights key_scores left. */
static void key_values(rj_kfn *f, const sm_ws *ws, const sm_kv *kvp)
{
    rj_ir *ir = f->ir;
    const rj_kplan *kp = f->kp;
    const int64_t T = kp->T;
    const sm_kv kv = *kvp;
    rj_mm mv = {.A = kv.V,
                .a_si = 1,
                .a_sk_v = kv.V_s,
                .B = ws->S,
                .b_sk = T,
                .C = ws->num,
                .c_si = T,
                .NI = kp->dvp,
                .NJ = T,
                .K = rj_ir_i(ir, T),
                .accumulate = 1,
                .ri = kp->ri,
                .rj = kp->rj,
                .name = "num"};
    if (kp->bf16 == RJ_BF16_AMX) {
        rj_amx_mm a = {.A = ws->vb,
                       .a_si = kp->bv / 2,
                       .B = ws->pb,
                       .b_sk = T,
                       .C = ws->num,
                       .c_si = T,
                       .NI = kp->dvp,
                       .NJ = T,
                       .K = kp->pk,
                       .accumulate = 1};
        rj_ir_mm_amx(ir, &a);
        return;
    }
    if (kp->bf16) {
        mv.A = ws->vb;
        mv.a_sk_v = NULL;
        mv.a_sk = kp->dvp;
        mv.B = ws->pb;
        mv.K = rj_ir_i(ir, kp->pk);
        mv.bf16 = 1;
    }
    rj_ir_mm(ir, &mv);
}

/* out = num / l for the nq queries of the tile at qt of the head whose rows are at out; a
 * query that saw no visible key has l = 0 and num = +0, and gets exact zeros. */
static void finish_queries(rj_kfn *f, const sm_ws *ws, rj_v out, rj_v qt, rj_v nq)
{
    rj_ir *ir = f->ir;
    rj_loop tv = rj_ir_loop_begin(ir, "tv", rj_ir_i(ir, 0), rj_ir_i(ir, f->kp->T), ir->vw);
    rj_v pl = rj_ir_at(ir, ws->l, tv.i);
    rj_v l = rj_ir_ldv(ir, pl, "l");
    rj_v none = LLVMBuildFCmp(ir->B, LLVMRealOEQ, l, rj_ir_vf(ir, 0), "no_key");
    rj_ir_stv(ir,
              LLVMBuildSelect(ir->B, none, rj_ir_vf(ir, 0), rj_ir_div(ir, rj_ir_vf(ir, 1), l, ""),
                              "rl"),
              pl);
    rj_ir_loop_end(ir, &tv);
    rj_v out0 = f->arg[RJ_KA_out];
    f->arg[RJ_KA_out] = out;
    rj_tmpl_store_out(f, ws->num, ws->l, qt, nq);
    f->arg[RJ_KA_out] = out0;
}

/* The q and out rows of head g (i64) of the call. */
static void head_rows(rj_kfn *f, rj_v g, rj_v *q, rj_v *out)
{
    rj_ir *ir = f->ir;
    *q = rj_ir_at_dt(ir, f->arg[RJ_KA_q], rj_ir_imul(ir, g, f->arg[RJ_KA_sqh], ""), f->kp->dt_in);
    *out = rj_ir_at_dt(ir, f->arg[RJ_KA_out], rj_ir_imul(ir, g, f->arg[RJ_KA_soh], ""),
                       f->kp->dt_out);
}

static rj_v imin(rj_ir *ir, rj_v a, rj_v b, const char *name)
{
    return LLVMBuildSelect(ir->B, LLVMBuildICmp(ir->B, LLVMIntSLT, a, b, ""), a, b, name);
}

/* A pass over the keys serves nm query tiles at once: the tiles at qt0 of heads h0 .. h0 +
 * nm - 1 (several heads, kabi.h ng > 1), or the nm tiles qt0, qt0 + T, ... of the call's one
 * head (tile_mode). Either way each key and value tile is read, and widened from half
 * precision, once per pass rather than once per query tile. */
typedef struct sm_pass {
    rj_v tile_mode, h0, qt0, nm;
} sm_pass;

/* Member g's head and query tile. */
static void member(rj_kfn *f, const sm_pass *ps, rj_v g, rj_v *head, rj_v *qt)
{
    rj_ir *ir = f->ir;
    rj_v zero = rj_ir_i(ir, 0);
    *head = rj_ir_iadd(ir, ps->h0, LLVMBuildSelect(ir->B, ps->tile_mode, zero, g, ""), "head");
    rj_v tile = rj_ir_imul(ir, g, rj_ir_i(ir, f->kp->T), "");
    *qt = rj_ir_iadd(ir, ps->qt0, LLVMBuildSelect(ir->B, ps->tile_mode, tile, zero, ""), "qt");
}

/* Every member's query tile started (rows packed; m, l, num reset) or finished (out). */
static void each_member(rj_kfn *f, const sm_ws *ws, const sm_pass *ps, bool finish)
{
    rj_ir *ir = f->ir;
    rj_loop g = rj_ir_loop_begin(ir, "member", rj_ir_i(ir, 0), ps->nm, 1);
    rj_v head, qt, q, out;
    member(f, ps, g.i, &head, &qt);
    head_rows(f, head, &q, &out);
    const sm_ws hw = head_ws(f, ws, g.i);
    rj_v nq = rj_tmpl_rows_left(f, f->arg[RJ_KA_lq], qt);
    if (finish)
        finish_queries(f, &hw, out, qt, nq);
    else
        start_queries(f, &hw, q, qt, nq);
    rj_ir_loop_end(ir, &g);
}

/*
 * The kernel's parts (tmpl.h rj_tmpl_part): a key tile against one member's query tile, its
 * scores and online step, then its values. They take the member g and the key tile's
 * pointers and strides, from which they find the workspace as the entry does.
 */
enum { PART_SCORES = 1, PART_START, PART_PACK, PART_FINISH, PART_VALUES };

static void part_scores(rj_kfn *f, const rj_v *p)
{
    const sm_ws ws = workspace(f);
    const sm_ws hw = head_ws(f, &ws, p[0]);
    const sm_kv kv = {.nk = p[4], .K = p[5], .K_s = p[6]};
    key_scores(f, &hw, &kv, p[1], p[2], p[3]);
}

static void part_values(rj_kfn *f, const rj_v *p)
{
    const sm_ws ws = workspace(f);
    const sm_ws hw = head_ws(f, &ws, p[0]);
    const sm_kv kv = {.V = p[1], .V_s = p[2]};
    key_values(f, &hw, &kv);
}

static sm_pass pass_of(const rj_v *p)
{
    return (sm_pass){.tile_mode = p[0], .h0 = p[1], .qt0 = p[2], .nm = p[3]};
}

static void part_start(rj_kfn *f, const rj_v *p)
{
    const sm_ws ws = workspace(f);
    const sm_pass ps = pass_of(p);
    each_member(f, &ws, &ps, false);
}

static void part_finish(rj_kfn *f, const rj_v *p)
{
    const sm_ws ws = workspace(f);
    const sm_pass ps = pass_of(p);
    each_member(f, &ws, &ps, true);
}

static void part_pack(rj_kfn *f, const rj_v *p)
{
    const sm_ws ws = workspace(f);
    kv_pack(f, &ws, p[0]);
}

/* The key tile at kt for every member that sees some of it. */
static void pass_key_tile(rj_kfn *f, const sm_ws *ws, const sm_pass *ps, rj_v kt)
{
    rj_ir *ir = f->ir;
    /* a tile of masked keys only is skipped: no scores, no update */
    rj_v nk = rj_tmpl_rows_left(f, f->arg[RJ_KA_lk], kt);
    rj_v nvis = rj_tmpl_key_vis(f, kt, nk, ws->vis, 0);
    rj_if any = rj_ir_if_begin(ir, LLVMBuildICmp(ir->B, LLVMIntSGT, nvis, rj_ir_i(ir, 0), ""),
                               "visible_keys");
    rj_v partial = LLVMBuildICmp(ir->B, LLVMIntSLT, nvis, nk, "partial");
    rj_tmpl_part(f, PART_PACK, part_pack, 1, &kt);
    const sm_kv kv = kv_at(f, ws, kt);
    rj_loop g = rj_ir_loop_begin(ir, "member", rj_ir_i(ir, 0), ps->nm, 1);
    rj_v head, qt;
    member(f, ps, g.i, &head, &qt);
    /* causal: an earlier tile of the pass ends its keys sooner */
    rj_if sees = rj_ir_if_begin(ir, LLVMBuildICmp(ir->B, LLVMIntSLT, kt, key_end(f, qt), ""),
                                "sees_tile");
    rj_tmpl_part(f, PART_SCORES, part_scores, 7,
                 (rj_v[]){g.i, qt, kt, partial, kv.nk, kv.K, kv.K_s});
    rj_tmpl_part(f, PART_VALUES, part_values, 3, (rj_v[]){g.i, kv.V, kv.V_s});
    rj_ir_if_end(ir, &sees);
    rj_ir_loop_end(ir, &g);
    rj_ir_if_end(ir, &any);
}

void rj_tmpl_softmax(rj_kfn *f)
{
    rj_ir *ir = f->ir;
    const int64_t T = f->kp->T;
    const sm_ws ws = workspace(f);
    /* the weights' pair rows past T / 2 (a one-vector tile's, padded to AMX's depth) are
     * never written by a key tile: zero once */
    if (f->kp->bf16 && f->kp->pk > T / 2)
        rj_tmpl_fill(f, rj_ir_atc(ir, ws.pb, T / 2 * T), (f->kp->pk - T / 2) * T, 0.0);
    rj_v lq = f->arg[RJ_KA_lq], ng = f->arg[RJ_KA_ng];
    rj_v one = rj_ir_i(ir, 1), gq = rj_ir_i(ir, f->kp->gq);
    rj_v several = LLVMBuildICmp(ir->B, LLVMIntSGT, ng, one, "several");
    sm_pass ps = {.tile_mode = LLVMBuildNot(ir->B, several, "tile_mode")};
    rj_v heads = LLVMBuildSelect(ir->B, several, ng, one, "heads");
    rj_v hstep = LLVMBuildSelect(ir->B, several, gq, one, "hstep");
    rj_v span = rj_ir_imul(ir, rj_ir_i(ir, T), LLVMBuildSelect(ir->B, several, one, gq, ""),
                           "span");
    rj_loop hp = rj_ir_loop_begin(ir, "head_pass", rj_ir_i(ir, 0),
                                  rj_ir_ceil_div(ir, heads, hstep, "passes"), 1);
    ps.h0 = rj_ir_imul(ir, hp.i, hstep, "h0");
    rj_v nh = imin(ir, gq, rj_ir_isub(ir, heads, ps.h0, ""), "nh");
    rj_loop u = rj_ir_loop_begin(ir, "query_pass", rj_ir_i(ir, 0),
                                 rj_ir_ceil_div(ir, lq, span, "units"), 1);
    ps.qt0 = rj_ir_imul(ir, u.i, span, "qt0");
    rj_v tiles = rj_ir_ceil_div(ir, rj_ir_isub(ir, lq, ps.qt0, ""), rj_ir_i(ir, T), "tiles");
    ps.nm = LLVMBuildSelect(ir->B, ps.tile_mode, imin(ir, gq, tiles, ""), nh, "nm");
    rj_v pass[4] = {ps.tile_mode, ps.h0, ps.qt0, ps.nm};
    rj_tmpl_part(f, PART_START, part_start, 4, pass);
    rj_v last = rj_ir_isub(ir, ps.nm, one, "");
    rj_v last_head, last_qt;
    member(f, &ps, last, &last_head, &last_qt);
    rj_loop kt = rj_ir_loop_begin(ir, "key_tile", rj_ir_i(ir, 0), key_end(f, last_qt), T);
    pass_key_tile(f, &ws, &ps, kt.i);
    rj_ir_loop_end(ir, &kt);
    rj_tmpl_part(f, PART_FINISH, part_finish, 4, pass);
    rj_ir_loop_end(ir, &u);
    rj_ir_loop_end(ir, &hp);
}
