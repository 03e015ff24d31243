/* SPDX-License-Identifier: MIT */
/*
 * This file is the Gram kernel of the estimate API (kabi.h RJ_KK_GRAM):
 *
 *     out[i, j] = e^{a_i + b_j} G_ij  (features)  or  e^{a_i + b_j + G_ij}  (exact),
 *     G_ij = sum_{r < K} X[r, i] Y[r, j]
 *
 * with X, Y feature-major (features, or the raw rows for exact) and a, b per-row log-scales
 * (h, minus |x|^2 / 2 for the Gaussian kernel). It is the tile product every template uses,
 * on T x T output tiles; the scales stay in the exponent until the end, so e^{h_i} and e^{h_j}
 * never overflow alone when their product would not.
 */
#include "gen/tmpl/tmpl.h"

/* dst (K x T) = columns c0 .. c0 + T - 1 of src (K rows of stride ld); the caller pads the
 * columns, so whole vectors are read. */
static void copy_cols(rj_kfn *f, rj_v src, rj_v ld, rj_v c0, rj_v dst)
{
    rj_ir *ir = f->ir;
    const int64_t T = f->kp->T;
    rj_loop r = rj_ir_loop_begin(ir, "r", rj_ir_i(ir, 0), rj_ir_i(ir, f->kp->d), 1);
    rj_v srow = rj_ir_at(ir, src, rj_ir_idx2v(ir, r.i, ld, c0, ""));
    rj_v drow = rj_ir_at(ir, dst, rj_ir_imul(ir, r.i, rj_ir_i(ir, T), ""));
    rj_loop tv = rj_ir_loop_begin(ir, "tv", rj_ir_i(ir, 0), rj_ir_i(ir, T), ir->vw);
    rj_ir_stv(ir, rj_ir_ldv(ir, rj_ir_at(ir, srow, tv.i), ""), rj_ir_at(ir, drow, tv.i));
    rj_ir_loop_end(ir, &tv);
    rj_ir_loop_end(ir, &r);
}

void rj_tmpl_gram(rj_kfn *f)
{
    rj_ir *ir = f->ir;
    const rj_kplan *kp = f->kp;
    const int64_t T = kp->T;
    rj_v ws = f->arg[RJ_KA_ws];
    rj_v X = rj_ir_atc(ir, ws, kp->ws_x), Y = rj_ir_atc(ir, ws, kp->ws_u);
    rj_v G = rj_ir_atc(ir, ws, kp->ws_a), E = rj_ir_atc(ir, ws, kp->ws_num);
    rj_v lq = f->arg[RJ_KA_lq], lk = f->arg[RJ_KA_lk];
    rj_loop it = rj_ir_loop_begin(ir, "i_tile", rj_ir_i(ir, 0), lq, T);
    rj_v ni = rj_tmpl_rows_left(f, lq, it.i);
    copy_cols(f, f->arg[RJ_KA_q], f->arg[RJ_KA_sq], it.i, X);
    rj_loop jt = rj_ir_loop_begin(ir, "j_tile", rj_ir_i(ir, 0), lk, T);
    rj_v nj = rj_tmpl_rows_left(f, lk, jt.i);
    copy_cols(f, f->arg[RJ_KA_k], f->arg[RJ_KA_sk], jt.i, Y);
    rj_mm mm = {.A = X, .a_si = 1, .a_sk = T, .B = Y, .b_sk = T, .C = G, .c_si = T, .NI = T,
                .NJ = T, .K = rj_ir_i(ir, kp->d), .ri = kp->ri, .rj = kp->rj, .name = "G"};
    rj_ir_mm(ir, &mm);
    rj_v b = rj_ir_at(ir, f->arg[RJ_KA_pk], jt.i);
    rj_loop i = rj_ir_loop_begin(ir, "i", rj_ir_i(ir, 0), ni, 1);
    rj_v row = rj_ir_iadd(ir, it.i, i.i, "");
    rj_v a = rj_ir_bcast(ir, rj_ir_ld(ir, rj_ir_at(ir, f->arg[RJ_KA_pq], row), "a"), "");
    rj_v grow = rj_ir_at(ir, G, rj_ir_imul(ir, i.i, rj_ir_i(ir, T), ""));
    rj_loop tv = rj_ir_loop_begin(ir, "tv", rj_ir_i(ir, 0), rj_ir_i(ir, T), ir->vw);
    rj_v ab = rj_ir_add(ir, a, rj_ir_ldv(ir, rj_ir_at(ir, b, tv.i), "b"), "");
    rj_v g = rj_ir_ldv(ir, rj_ir_at(ir, grow, tv.i), "g");
    rj_v k = kp->tmpl == RJ_TMPL_SOFTMAX ? rj_ir_exp(ir, rj_ir_add(ir, ab, g, ""), "k")
                                         : rj_ir_mul(ir, g, rj_ir_exp(ir, ab, ""), "k");
    rj_ir_stv(ir, k, rj_ir_at(ir, E, tv.i));
    rj_ir_loop_end(ir, &tv);
    /* the last tile's columns stop at lk: copy only those */
    rj_v orow = rj_ir_at(ir, f->arg[RJ_KA_out], rj_ir_idx2v(ir, row, f->arg[RJ_KA_so], jt.i, ""));
    rj_loop j = rj_ir_loop_begin(ir, "j", rj_ir_i(ir, 0), nj, 1);
    rj_ir_st(ir, rj_ir_ld(ir, rj_ir_at(ir, E, j.i), ""), rj_ir_at(ir, orow, j.i));
    rj_ir_loop_end(ir, &j);
    rj_ir_loop_end(ir, &i);
    rj_ir_loop_end(ir, &jt);
    rj_ir_loop_end(ir, &it);
}
