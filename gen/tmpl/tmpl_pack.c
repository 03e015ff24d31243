/* SPDX-License-Identifier: MIT */
/*
 * This file holds the tile packing and output helpers both templates use. Packing copies a
 * tile of strided rows into contiguous, zero-padded scratch with the d^{-1/4} scale applied
 * once, which is what lets every contraction after it run on constant strides and lets a
 * partial tile run the full-tile code (zero rows contribute nothing once masked). It is
 * also where half-precision tensors become float: packing widens q, k and v as it loads
 * them, and the output store rounds, so no other code sees a dtype.
 */
#include "gen/tmpl/tmpl.h"

/* Row `row` of a caller's tensor of element type dt. */
static rj_v row_ptr(rj_kfn *f, rj_v src, rj_v stride, rj_v row, int dt)
{
    rj_ir *ir = f->ir;
    return rj_ir_at_dt(ir, src, rj_ir_imul(ir, row, stride, ""), dt);
}

rj_v rj_tmpl_rows_left(rj_kfn *f, rj_v len, rj_v row0)
{
    rj_ir *ir = f->ir;
    rj_v left = rj_ir_isub(ir, len, row0, "");
    rj_v T = rj_ir_i(ir, f->kp->T);
    rj_v lt = LLVMBuildICmp(ir->B, LLVMIntSLT, left, T, "");
    return LLVMBuildSelect(ir->B, lt, left, T, rj_ir_name(ir, "n"));
}

rj_v rj_tmpl_whole_tile(rj_kfn *f, rj_v n)
{
    rj_ir *ir = f->ir;
    if (f->kp->dt_in != RFJIT_F32) /* half rows must be widened: always packed */
        return LLVMConstInt(ir->ty_i1, 0, 0);
    return LLVMBuildICmp(ir->B, LLVMIntEQ, n, rj_ir_i(ir, f->kp->T), rj_ir_name(ir, "full"));
}

void rj_tmpl_tile_at(rj_kfn *f, rj_v full, rj_v src, rj_v stride, rj_v row0, rj_v packed,
                     int64_t ps, rj_v *at, rj_v *at_s)
{
    rj_ir *ir = f->ir;
    if (f->kp->dt_in != RFJIT_F32) {
        *at = packed;
        *at_s = rj_ir_i(ir, ps);
        return;
    }
    *at = LLVMBuildSelect(ir->B, full, row_ptr(f, src, stride, row0, RFJIT_F32), packed, "");
    *at_s = LLVMBuildSelect(ir->B, full, stride, rj_ir_i(ir, ps), "");
}

rj_v rj_tmpl_lane_valid(rj_kfn *f, rj_v t0, rj_v n)
{
    rj_ir *ir = f->ir;
    rj_v lane = rj_ir_lanes_from(ir, t0);
    return LLVMBuildICmp(ir->B, LLVMIntSLT, lane, rj_ir_ibcast(ir, n), rj_ir_name(ir, "valid"));
}

rj_v rj_tmpl_key_vis(rj_kfn *f, rj_v kt, rj_v n, rj_v vis, int always)
{
    rj_ir *ir = f->ir;
    if (always) {
        rj_loop tv = rj_ir_loop_begin(ir, "tv", rj_ir_i(ir, 0), rj_ir_i(ir, f->kp->T), ir->vw);
        rj_v in_tile = rj_tmpl_lane_valid(f, tv.i, n);
        rj_ir_stv(ir, LLVMBuildSelect(ir->B, in_tile, rj_ir_vf(ir, 1), rj_ir_vf(ir, 0), "vis"),
                  rj_ir_at(ir, vis, tv.i));
        rj_ir_loop_end(ir, &tv);
    }
    rj_v count = rj_ir_slot(ir, ir->ty_i64, "nvis");
    rj_ir_set(ir, count, n);
    rj_v km = f->arg[RJ_KA_km];
    rj_if masked = rj_ir_if_begin(ir, rj_ir_nonnull(ir, km, "masked"), "key_mask");
    rj_ir_set(ir, count, rj_ir_i(ir, 0));
    rj_loop t = rj_ir_loop_begin(ir, "t", rj_ir_i(ir, 0), n, 1);
    rj_v on = rj_ir_byte_set(ir, km, rj_ir_iadd(ir, kt, t.i, ""), "visible");
    rj_ir_st(ir, LLVMBuildSelect(ir->B, on, rj_ir_f(ir, 1), rj_ir_f(ir, 0), ""),
             rj_ir_at(ir, vis, t.i));
    rj_v one = LLVMBuildSelect(ir->B, on, rj_ir_i(ir, 1), rj_ir_i(ir, 0), "");
    rj_ir_set(ir, count, rj_ir_iadd(ir, rj_ir_get(ir, count, ""), one, ""));
    rj_ir_loop_end(ir, &t);
    if (!always) {
        rj_loop tz = rj_ir_loop_begin(ir, "tz", n, rj_ir_i(ir, f->kp->T), 1);
        rj_ir_st(ir, rj_ir_f(ir, 0), rj_ir_at(ir, vis, tz.i));
        rj_ir_loop_end(ir, &tz);
    }
    rj_ir_if_end(ir, &masked);
    return rj_ir_get(ir, count, "nvis");
}

rj_v rj_tmpl_vis_lanes(rj_kfn *f, rj_v vis, rj_v t0)
{
    rj_ir *ir = f->ir;
    return LLVMBuildFCmp(ir->B, LLVMRealONE, rj_ir_ldv(ir, rj_ir_at(ir, vis, t0), "vis"),
                         rj_ir_vf(ir, 0), rj_ir_name(ir, "visible"));
}

void rj_tmpl_fill(rj_kfn *f, rj_v p, int64_t n, double x)
{
    rj_ir *ir = f->ir;
    rj_loop l = rj_ir_loop_begin(ir, "fill", rj_ir_i(ir, 0), rj_ir_i(ir, n), ir->vw);
    rj_ir_stv(ir, rj_ir_vf(ir, x), rj_ir_at(ir, p, l.i));
    rj_ir_loop_end(ir, &l);
}

/*
 * Whole groups of vw rows into a transposed tile (dst[l * T + t]), vw x vw blocks at a time
 * through registers: ncols a multiple of vw; returns the rows done (n rounded down to vw).
 * A scalar transposed copy is a scatter or gather per element, which cost 7% of a FAVOR+
 * execute.
 */
static rj_v pack_t_blocks(rj_kfn *f, rj_v src, rj_v stride, rj_v row0, rj_v n, rj_v dst,
                          int ncols, rj_v scale)
{
    rj_ir *ir = f->ir;
    const int vw = ir->vw;
    const int64_t T = f->kp->T;
    rj_v full = rj_ir_round_down(ir, n, vw, "");
    rj_loop lg = rj_ir_loop_begin(ir, "tg", rj_ir_i(ir, 0), full, vw);
    rj_loop lb = rj_ir_loop_begin(ir, "lb", rj_ir_i(ir, 0), rj_ir_i(ir, ncols), vw);
    const int dt = f->kp->dt_in;
    rj_v from = rj_ir_at_dt(ir, row_ptr(f, src, stride, rj_ir_iadd(ir, row0, lg.i, ""), dt), lb.i,
                            dt);
    rj_v to = rj_ir_at(ir, dst, rj_ir_idx2(ir, lb.i, T, lg.i, ""));
    rj_ir_transpose_block_dt(ir, from, dt, stride, to, RFJIT_F32, rj_ir_i(ir, T), NULL, NULL,
                             scale);
    rj_ir_loop_end(ir, &lb);
    rj_ir_loop_end(ir, &lg);
    return full;
}

/* dst[l * ld + t] (transposed) or dst[t * ld + l] = src row t, element l, times scale (NULL:
 * unscaled); src holds the plan's input dtype. */
static void pack(rj_kfn *f, rj_v src, rj_v stride, rj_v row0, rj_v n, rj_v dst, int ncols,
                 int64_t row_step, int64_t col_step, rj_v scale)
{
    rj_ir *ir = f->ir;
    const int64_t T = f->kp->T;
    const int dt = f->kp->dt_in;
    rj_v first = rj_ir_i(ir, 0);
    if (row_step == 1 && scale && ncols % ir->vw == 0 && ir->vw >= 4)
        first = pack_t_blocks(f, src, stride, row0, n, dst, ncols, scale);
    if (col_step == 1 && ncols % ir->vw == 0) {
        /* row-major copies go a vector at a time */
        rj_loop lv = rj_ir_loop_begin(ir, "t", rj_ir_i(ir, 0), n, 1);
        rj_v row = row_ptr(f, src, stride, rj_ir_iadd(ir, row0, lv.i, ""), dt);
        rj_v drow = rj_ir_at(ir, dst, rj_ir_imul(ir, lv.i, rj_ir_i(ir, row_step), ""));
        for (int l = 0; l < ncols; l += ir->vw) {
            rj_v x = rj_ir_ld_dt(ir, rj_ir_at_dt(ir, row, rj_ir_i(ir, l), dt), dt, 1, "");
            if (scale)
                x = rj_ir_mul(ir, x, rj_ir_bcast(ir, scale, ""), "x");
            rj_ir_stv(ir, x, rj_ir_atc(ir, drow, l));
        }
        rj_ir_loop_end(ir, &lv);
        first = n;
    }
    rj_loop lt = rj_ir_loop_begin(ir, "t", first, n, 1);
    rj_v row = row_ptr(f, src, stride, rj_ir_iadd(ir, row0, lt.i, ""), dt);
    rj_v drow = rj_ir_at(ir, dst, rj_ir_imul(ir, lt.i, rj_ir_i(ir, row_step), ""));
    rj_loop ll = rj_ir_loop_begin(ir, "l", rj_ir_i(ir, 0), rj_ir_i(ir, ncols), 1);
    rj_v x = rj_ir_ld_dt(ir, rj_ir_at_dt(ir, row, ll.i, dt), dt, 0, "");
    if (scale)
        x = rj_ir_mul(ir, x, scale, "x");
    rj_ir_st(ir, x, rj_ir_at(ir, drow, rj_ir_imul(ir, ll.i, rj_ir_i(ir, col_step), "")));
    rj_ir_loop_end(ir, &ll);
    rj_ir_loop_end(ir, &lt);
    /* Rows n .. T-1 are zero. */
    rj_loop lz = rj_ir_loop_begin(ir, "tz", n, rj_ir_i(ir, T), 1);
    rj_v zrow = rj_ir_at(ir, dst, rj_ir_imul(ir, lz.i, rj_ir_i(ir, row_step), ""));
    rj_loop lzl = rj_ir_loop_begin(ir, "lz", rj_ir_i(ir, 0), rj_ir_i(ir, ncols), 1);
    rj_ir_st(ir, rj_ir_f(ir, 0),
             rj_ir_at(ir, zrow, rj_ir_imul(ir, lzl.i, rj_ir_i(ir, col_step), "")));
    rj_ir_loop_end(ir, &lzl);
    rj_ir_loop_end(ir, &lz);
}

void rj_tmpl_pack_t(rj_kfn *f, rj_v src, rj_v stride, rj_v row0, rj_v n, rj_v dst,
                    rj_v scale)
{
    pack(f, src, stride, row0, n, dst, f->kp->d, 1, f->kp->T, scale);
}

void rj_tmpl_pack_rows(rj_kfn *f, rj_v src, rj_v stride, rj_v row0, rj_v n, rj_v dst,
                       rj_v scale)
{
    pack(f, src, stride, row0, n, dst, f->kp->d, f->kp->d, 1, scale);
}

void rj_tmpl_pack_v(rj_kfn *f, rj_v src, rj_v stride, rj_v row0, rj_v n, rj_v dst)
{
    const rj_kplan *kp = f->kp;
    if (kp->dvp > kp->dv)
        rj_tmpl_fill(f, dst, (int64_t)kp->T * kp->dvp, 0.0);
    pack(f, src, stride, row0, n, dst, kp->dv, kp->dvp, 1, NULL);
}

void rj_tmpl_store_out(rj_kfn *f, rj_v num, rj_v rden, rj_v row0, rj_v n)
{
    rj_ir *ir = f->ir;
    const rj_kplan *kp = f->kp;
    const int vw = ir->vw, dt = kp->dt_out;
    rj_v first = rj_ir_i(ir, 0);
    if (kp->dv % vw == 0) {
        /* vw tokens x vw columns through registers, as pack_t_blocks the other way round */
        first = rj_ir_round_down(ir, n, vw, "");
        rj_loop lg = rj_ir_loop_begin(ir, "tg", rj_ir_i(ir, 0), first, vw);
        rj_loop lb = rj_ir_loop_begin(ir, "cb", rj_ir_i(ir, 0), rj_ir_i(ir, kp->dv), vw);
        rj_v from = rj_ir_at(ir, num, rj_ir_idx2(ir, lb.i, kp->T, lg.i, ""));
        rj_v orow = row_ptr(f, f->arg[RJ_KA_out], f->arg[RJ_KA_so], rj_ir_iadd(ir, row0, lg.i, ""),
                            dt);
        rj_ir_transpose_block_dt(ir, from, RFJIT_F32, rj_ir_i(ir, kp->T),
                                 rj_ir_at_dt(ir, orow, lb.i, dt), dt, f->arg[RJ_KA_so],
                                 rj_ir_at(ir, rden, lg.i), rj_ir_i(ir, 1), rj_ir_f(ir, 1.0));
        rj_ir_loop_end(ir, &lb);
        rj_ir_loop_end(ir, &lg);
    }
    rj_loop lt = rj_ir_loop_begin(ir, "t", first, n, 1);
    rj_v r = rj_ir_ld(ir, rj_ir_at(ir, rden, lt.i), "rden");
    rj_v orow = row_ptr(f, f->arg[RJ_KA_out], f->arg[RJ_KA_so], rj_ir_iadd(ir, row0, lt.i, ""), dt);
    rj_loop lc = rj_ir_loop_begin(ir, "c", rj_ir_i(ir, 0), rj_ir_i(ir, kp->dv), 1);
    rj_v idx = rj_ir_idx2(ir, lc.i, kp->T, lt.i, "");
    rj_v o = rj_ir_mul(ir, rj_ir_ld(ir, rj_ir_at(ir, num, idx), "num"), r, "o");
    rj_ir_st_dt(ir, o, rj_ir_at_dt(ir, orow, lc.i, dt), dt);
    rj_ir_loop_end(ir, &lc);
    rj_ir_loop_end(ir, &lt);
}
