/* SPDX-License-Identifier: MIT */
/*
 * This file is the FMA peak probe (kabi.h RJ_KK_PEAK): `lk` rounds of RJ_PEAK_CHAINS
 * independent chains acc = acc * b + c on full vectors, unrolled RJ_PEAK_UNROLL times, then
 * the chains summed into out[0..vw-1] so that nothing is dead. Enough chains to cover FMA
 * latency times issue width on every x86 core we know (4 cycles x 2 pipes = 8; 12 for
 * safety and to stay inside 16 registers on AVX2), and nothing else in the loop but its
 * counter, so time / flops is the core's throughput at this vector width: the denominator of
 * every "percent of peak" the benchmarks print. b = q[0] and c = q[1] arrive as data (a
 * constant could be folded); b < 1 keeps the chains bounded.
 */
#include "gen/tmpl/tmpl.h"

void rj_tmpl_peak(rj_kfn *f)
{
    rj_ir *ir = f->ir;
    rj_v b = rj_ir_bcast(ir, rj_ir_ld(ir, rj_ir_atc(ir, f->arg[RJ_KA_q], 0), "b"), "b");
    rj_v c = rj_ir_bcast(ir, rj_ir_ld(ir, rj_ir_atc(ir, f->arg[RJ_KA_q], 1), "c"), "c");
    rj_v acc[RJ_PEAK_CHAINS];
    for (int i = 0; i < RJ_PEAK_CHAINS; i++) {
        acc[i] = rj_ir_slot(ir, ir->ty_vf, "acc");
        rj_ir_set(ir, acc[i], rj_ir_vf(ir, (double)i));
    }
    rj_loop r = rj_ir_loop_begin(ir, "round", rj_ir_i(ir, 0), f->arg[RJ_KA_lk], 1);
    rj_v x[RJ_PEAK_CHAINS];
    for (int i = 0; i < RJ_PEAK_CHAINS; i++)
        x[i] = rj_ir_get(ir, acc[i], "");
    for (int u = 0; u < RJ_PEAK_UNROLL; u++)
        for (int i = 0; i < RJ_PEAK_CHAINS; i++)
            x[i] = rj_ir_fma(ir, x[i], b, c, "acc");
    for (int i = 0; i < RJ_PEAK_CHAINS; i++)
        rj_ir_set(ir, acc[i], x[i]);
    rj_ir_loop_end(ir, &r);
    rj_v s = rj_ir_get(ir, acc[0], "");
    for (int i = 1; i < RJ_PEAK_CHAINS; i++)
        s = rj_ir_add(ir, s, rj_ir_get(ir, acc[i], ""), "sum");
    rj_ir_stv(ir, s, f->arg[RJ_KA_out]);
}
