/* SPDX-License-Identifier: MIT */
/*
 * This file is the linear-attention template (spec estimators.md 1.1-1.4; the JIT twin of
 * est/ref_linear.c), for the families of est.h's rj_kfeat. Per (batch, head):
 *
 *   keys, tile by tile:   ell = b + W y + gamma n(y) (exp)  |  u = W y, h = h0 + gamma n(y) (trig)
 *                         c' = max(c, max_t h_t);  (S, z, zabs) *= e^{c - c'};  c = c'
 *                         phi_k = e^{ell - c}  |  e^{h - c} [cos u ; sin u]   (masked lanes 0)
 *                         S += phi_k^T V,  z += sum_t phi_k,  zabs += sum_t |phi_k|
 *   queries, tile by tile: phi_q = e^{ell - h}  |  [cos u ; sin u]
 *                         num = S^T phi_q,  den = z . phi_q,  g = zabs . |phi_q|
 *                         out = num / den' (den' guarded as in ref/linear.c; NaN if subnormal)
 *
 * Everything runs in the feature-major layout: a tile is stored transposed (rows of W or of
 * features by T tokens), so the vector lanes run over tokens and the row maximum h, the norm
 * n and the masks are vertical operations; no horizontal reduction sits in a hot loop.
 *
 * Causal: the tile is the chunk. Queries of chunk C see S, z of chunks < C (the prefix) plus
 * the masked intra-chunk quadratic form A = phi_k^T phi_q (A_ji = 0 for j > i):
 *   num += V^T A,  den += sum_j A_j,  g += sum_j |phi_k|^T |phi_q| (masked),
 * and only then does the chunk's keys enter S, z. Shifts follow the reference's running
 * maximum token by token (emit_causal_key_features), so every weight is <= 1 and output t
 * depends on tokens 0..t only, bit for bit.
 * S, z, zabs and c live in the carried state `st`, so a decode step is a causal call of one
 * token on the state a previous call left (RJ_KFLAG_INIT starts a fresh sequence).
 *
 * A key mask (kabi.h km) treats a hidden key as a lane past the tile's end: it enters no sum
 * and not c, its features are +0 whatever its content (so hidden keys change no bit of the
 * output), and a tile of hidden keys only is skipped (bidirectional). While no key has been
 * absorbed c stays -inf (the empty state runtime/exec_jit.c merges), and a query that sees
 * no key gets exact zeros, not 0/0.
 *
 * bf16 compute (rj_kplan.bf16, bidirectional exponential features, AMX): W x, S += phi_k^T V
 * and num = S^T phi_q take bfloat16 operands, W rounded once per call and S transposed once
 * the keys are in (rj_lin.wb set); h, c, the exps, z and the denominators stay float.
 */
#include "gen/tmpl/lin.h"

#include <float.h>
#include <math.h>

#define DEN_EPS 1e-6 /* as est/ref_linear.c */
#define NO_KEY (-FLT_MAX) /* a causal shift c_t before any visible key (ws_m) */

rj_lin rj_lin_init(rj_kfn *f)
{
    rj_ir *ir = f->ir;
    const rj_kplan *kp = f->kp;
    rj_lin L = {.f = f, .ir = ir, .kp = kp, .ws = f->arg[RJ_KA_ws], .st = f->arg[RJ_KA_st]};
    L.S = rj_ir_atc(ir, L.st, kp->st_S);
    L.z = rj_ir_atc(ir, L.st, kp->st_z);
    L.za = rj_ir_atc(ir, L.st, kp->st_za);
    L.c = rj_ir_atc(ir, L.st, kp->st_c);
    return L;
}

static rj_v ws(rj_lin *L, int64_t off)
{
    return rj_ir_atc(L->ir, L->ws, off);
}

/* The lanes of keys t0 .. t0 + vw - 1 that count: visible ones, or the tile's first n. */
static rj_v key_lanes(rj_lin *L, rj_v t0, rj_v n)
{
    return L->vis ? rj_tmpl_vis_lanes(L->f, L->vis, t0) : rj_tmpl_lane_valid(L->f, t0, n);
}

/* n(x) for the T tokens of xT (d x T) into ws_n, using ws_u as scratch for G x. */
static void emit_norm(rj_lin *L, rj_v par, rj_v xT)
{
    rj_ir *ir = L->ir;
    const rj_kplan *kp = L->kp;
    const int64_t T = kp->T, d = kp->d;
    rj_v g = rj_ir_atc(ir, par, kp->off_g), n = ws(L, kp->ws_n);
    rj_v src = xT;
    int64_t rows = d;
    if (kp->norm == RJ_KN_DENSE) {
        /* G x for every token: (dn x d) (d x T) */
        rj_mm mm = {.A = g, .a_si = d, .a_sk = 1, .B = xT, .b_sk = T, .C = ws(L, kp->ws_u),
                    .c_si = T, .NI = kp->dn, .NJ = T, .K = rj_ir_i(ir, d), .ri = kp->ri,
                    .rj = kp->rj, .name = "Gx"};
        rj_ir_mm(ir, &mm);
        src = ws(L, kp->ws_u);
        rows = kp->dn;
    }
    rj_v acc = rj_ir_slot(ir, ir->ty_vf, "n_acc");
    rj_loop tv = rj_ir_loop_begin(ir, "tv", rj_ir_i(ir, 0), rj_ir_i(ir, T), ir->vw);
    rj_ir_set(ir, acc, rj_ir_vf(ir, 0));
    rj_loop l = rj_ir_loop_begin(ir, "l", rj_ir_i(ir, 0), rj_ir_i(ir, rows), 1);
    rj_v x = rj_ir_ldv(ir, rj_ir_at(ir, src, rj_ir_idx2(ir, l.i, T, tv.i, "")), "x");
    rj_v x2 = rj_ir_mul(ir, x, x, "");
    if (kp->norm == RJ_KN_DIAG)
        x2 = rj_ir_mul(ir, x2, rj_ir_bcast(ir, rj_ir_ld(ir, rj_ir_at(ir, g, l.i), "g"), ""), "");
    rj_ir_acc_add(ir, acc, x2);
    rj_ir_loop_end(ir, &l);
    rj_ir_stv(ir, rj_ir_get(ir, acc, "n"), rj_ir_at(ir, n, tv.i));
    rj_ir_loop_end(ir, &tv);
}

/* Phase 1 of a feature map: U = ell (exp) or u (trig), and h into ws_h. */
void rj_lin_logfeatures(rj_lin *L, rj_v par, rj_v xT)
{
    rj_ir *ir = L->ir;
    const rj_kplan *kp = L->kp;
    const int64_t T = kp->T, d = kp->d;
    emit_norm(L, par, xT);
    rj_v U = ws(L, kp->ws_u), n = ws(L, kp->ws_n), h = ws(L, kp->ws_h);
    if (L->wb) {
        rj_v xb = ws(L, kp->ws_xb);
        rj_ir_pack_bf16_pairs(ir, xT, rj_ir_i(ir, T), rj_ir_i(ir, d), T, xb, kp->pq);
        rj_amx_mm mm = {.A = L->wb,
                        .a_si = kp->bk / 2,
                        .B = xb,
                        .b_sk = T,
                        .C = U,
                        .c_si = T,
                        .NI = kp->Pp,
                        .NJ = T,
                        .K = kp->pq};
        rj_ir_mm_amx(ir, &mm);
    } else {
        rj_mm mm = {.A = rj_ir_atc(ir, par, kp->off_w),
                    .a_si = d,
                    .a_sk = 1,
                    .B = xT,
                    .b_sk = T,
                    .C = U,
                    .c_si = T,
                    .NI = kp->Pp,
                    .NJ = T,
                    .K = rj_ir_i(ir, d),
                    .ri = kp->ri,
                    .rj = kp->rj,
                    .name = "u"};
        rj_ir_mm(ir, &mm);
    }
    rj_v gamma = rj_ir_bcast(ir, rj_ir_ld(ir, rj_ir_atc(ir, par, 1), "gamma"), "");
    rj_loop tv = rj_ir_loop_begin(ir, "tv", rj_ir_i(ir, 0), rj_ir_i(ir, T), ir->vw);
    rj_v gn = rj_ir_mul(ir, gamma, rj_ir_ldv(ir, rj_ir_at(ir, n, tv.i), "n"), "gn");
    if (kp->fam == RJ_KF_TRIG) {
        rj_v h0 = rj_ir_bcast(ir, rj_ir_ld(ir, par, "h0"), "");
        rj_ir_stv(ir, rj_ir_add(ir, h0, gn, "h"), rj_ir_at(ir, h, tv.i));
    } else {
        /* ell_r = b_r + u_r + gamma n over the P real rows; h = max_r ell_r */
        rj_v hmax = rj_ir_slot(ir, ir->ty_vf, "hmax");
        rj_ir_set(ir, hmax, rj_ir_vf(ir, -INFINITY));
        /* hybrid: only the base rows are log-features; the sign rows stay projections */
        const int64_t rows = kp->fam == RJ_KF_HYBRID ? kp->hmb : kp->P;
        rj_loop r = rj_ir_loop_begin(ir, "r", rj_ir_i(ir, 0), rj_ir_i(ir, rows), 1);
        rj_v at = rj_ir_at(ir, U, rj_ir_idx2(ir, r.i, T, tv.i, ""));
        rj_v b = rj_ir_bcast(ir, rj_ir_ld(ir, rj_ir_at(ir, rj_ir_atc(ir, par, kp->off_b), r.i),
                                          "b"), "");
        rj_v ell = rj_ir_add(ir, rj_ir_add(ir, rj_ir_ldv(ir, at, "u"), b, ""), gn, "ell");
        rj_ir_stv(ir, ell, at);
        rj_ir_acc_max(ir, hmax, ell);
        rj_ir_loop_end(ir, &r);
        rj_v hv = rj_ir_get(ir, hmax, "h");
        if (kp->fam == RJ_KF_HYBRID) {
            /* h = max(max_r ell_b,r, ell_t), ell_t = h0 + gamma2 n */
            rj_v h0 = rj_ir_bcast(ir, rj_ir_ld(ir, par, "h0"), "");
            rj_v g2 = rj_ir_bcast(ir, rj_ir_ld(ir, rj_ir_atc(ir, par, 2), "gamma2"), "");
            rj_v nv = rj_ir_ldv(ir, rj_ir_at(ir, n, tv.i), "n");
            hv = rj_ir_max(ir, hv, rj_ir_fma(ir, g2, nv, h0, "ell_t"), "h");
        }
        rj_ir_stv(ir, hv, rj_ir_at(ir, h, tv.i));
    }
    rj_ir_loop_end(ir, &tv);
}

/*
 * Phase 2: features into F (Mp x T). Keys (shift or shifts != NULL): weights e^{. - c} with
 * one c (shift) or one per token (shifts, T floats), lanes >= n zeroed. Queries: exp shifted
 * by their own h, trig unweighted.
 */
static void emit_hybrid_features(rj_lin *L, rj_v F, rj_v shift, rj_v shifts, rj_v n);

void rj_lin_features(rj_lin *L, rj_v F, rj_v shift, rj_v shifts, rj_v n)
{
    if (L->kp->fam == RJ_KF_HYBRID) {
        emit_hybrid_features(L, F, shift, shifts, n);
        return;
    }
    rj_ir *ir = L->ir;
    const rj_kplan *kp = L->kp;
    const int64_t T = kp->T;
    rj_v U = ws(L, kp->ws_u), h = ws(L, kp->ws_h);
    rj_loop tv = rj_ir_loop_begin(ir, "tv", rj_ir_i(ir, 0), rj_ir_i(ir, T), ir->vw);
    rj_v hv = rj_ir_ldv(ir, rj_ir_at(ir, h, tv.i), "h");
    rj_v valid = shift || shifts ? key_lanes(L, tv.i, n) : NULL;
    rj_v sub = shift    ? rj_ir_bcast(ir, shift, "c")
               : shifts ? rj_ir_ldv(ir, rj_ir_at(ir, shifts, tv.i), "c")
                        : hv;
    rj_v wgt = NULL;
    if (kp->fam == RJ_KF_TRIG && valid)
        wgt = rj_ir_exp(ir, rj_ir_sub(ir, hv, sub, ""), "w");
    rj_loop r = rj_ir_loop_begin(ir, "r", rj_ir_i(ir, 0), rj_ir_i(ir, kp->P), 1);
    rj_v off = rj_ir_idx2(ir, r.i, T, tv.i, "");
    rj_v u = rj_ir_ldv(ir, rj_ir_at(ir, U, off), "u");
    rj_v zero = rj_ir_vf(ir, 0);
    if (kp->fam == RJ_KF_TRIG) {
        rj_v s, c;
        rj_ir_sincos(ir, u, &s, &c);
        if (wgt) {
            c = LLVMBuildSelect(ir->B, valid, rj_ir_mul(ir, c, wgt, ""), zero, "phi_cos");
            s = LLVMBuildSelect(ir->B, valid, rj_ir_mul(ir, s, wgt, ""), zero, "phi_sin");
        }
        rj_ir_stv(ir, c, rj_ir_at(ir, F, off));
        rj_v sin_off = rj_ir_iadd(ir, off, rj_ir_i(ir, (int64_t)kp->Pp * T), "");
        rj_ir_stv(ir, s, rj_ir_at(ir, F, sin_off));
    } else {
        rj_v phi = rj_ir_exp(ir, rj_ir_sub(ir, u, sub, ""), "phi");
        if (valid)
            phi = LLVMBuildSelect(ir->B, valid, phi, zero, "phi");
        rj_ir_stv(ir, phi, rj_ir_at(ir, F, off));
    }
    rj_ir_loop_end(ir, &r);
    rj_ir_loop_end(ir, &tv);
    /* Padded rows P .. Pp-1 (each block for trig) are zero on both sides. */
    if (kp->Pp > kp->P) {
        const int64_t pad = (int64_t)(kp->Pp - kp->P) * T;
        rj_tmpl_fill(L->f, rj_ir_atc(ir, F, (int64_t)kp->P * T), pad, 0.0);
        if (kp->fam == RJ_KF_TRIG)
            rj_tmpl_fill(L->f, rj_ir_atc(ir, F, ((int64_t)kp->Pp + kp->P) * T), pad, 0.0);
    }
}

static void emit_features(rj_lin *L, rj_v F, rj_v shift, rj_v n)
{
    rj_lin_features(L, F, shift, NULL, n);
}

/* F[row] (T lanes at token offset t0) = x */
static void put_row(rj_lin *L, rj_v F, rj_v row, rj_v t0, rj_v x)
{
    rj_ir *ir = L->ir;
    rj_ir_stv(ir, x, rj_ir_at(ir, F, rj_ir_idx2(ir, row, L->kp->T, t0, "")));
}

/* One vector of tokens of the hybrid feature map: what each of its rows is built from. */
typedef struct hyb_tok {
    rj_v F;     /* the features (Mp x T) */
    rj_v t0;    /* the first token of the vector */
    rj_v par;   /* the role's parameters */
    rj_v U, nn; /* ws_u (log-features and projections) and ws_n (norms) */
    rj_v sub;   /* c: the key shift(s), or the query's own h */
    rj_v valid; /* lanes of real keys; NULL for queries */
    rj_v wt;    /* e^{ell_t - c} / sqrt2, the trig block's weight */
    rj_v sig;   /* slot of sigma_k, k < n */
    int query;
} hyb_tok;

/* e^{ell_t - c} / sqrt2, ell_t = h0 + gamma2 n (lanes of no key: 0). */
static rj_v hybrid_trig_weight(rj_lin *L, const hyb_tok *h)
{
    rj_ir *ir = L->ir;
    const double inv_sqrt2 = 1 / sqrt(2.0);
    rj_v h0 = rj_ir_bcast(ir, rj_ir_ld(ir, h->par, "h0"), "");
    rj_v g2 = rj_ir_bcast(ir, rj_ir_ld(ir, rj_ir_atc(ir, h->par, 2), "gamma2"), "");
    rj_v ell_t = rj_ir_fma(ir, g2, rj_ir_ldv(ir, rj_ir_at(ir, h->nn, h->t0), "n"), h0, "ell_t");
    rj_v wt = rj_ir_mul(ir, rj_ir_exp(ir, rj_ir_sub(ir, ell_t, h->sub, ""), ""),
                        rj_ir_vf(ir, inv_sqrt2), "w_t");
    if (h->valid)
        wt = LLVMBuildSelect(ir->B, h->valid, wt, rj_ir_vf(ir, 0), "w_t");
    return wt;
}

/* sigma_k for this vector of tokens, from the sign rows mb .. mb + n - 1 of U, into a slot. */
static rj_v hybrid_signs(rj_lin *L, const hyb_tok *h)
{
    rj_ir *ir = L->ir;
    const rj_kplan *kp = L->kp;
    const double inv_sqrt_n = 1 / sqrt((double)kp->hn);
    rj_v sig = rj_ir_slot(ir, LLVMArrayType(ir->ty_vf, (unsigned)kp->hn), "sigma");
    for (int k = 0; k < kp->hn; k++) {
        rj_v row = rj_ir_i(ir, (kp->hmb + k) * (int64_t)kp->T);
        rj_v p = rj_ir_ldv(ir, rj_ir_at(ir, h->U, rj_ir_iadd(ir, row, h->t0, "")), "p");
        rj_v pos = LLVMBuildFCmp(ir->B, LLVMRealOGE, p, rj_ir_vf(ir, 0), "");
        rj_v sk = LLVMBuildSelect(ir->B, pos, rj_ir_vf(ir, inv_sqrt_n), rj_ir_vf(ir, -inv_sqrt_n),
                                  "sigma_k");
        /* a key that is not there gets +sigma: its zero features stay +0, whatever its
         * projection, so that masked keys leave no trace, not even a zero's sign */
        if (h->valid)
            sk = LLVMBuildSelect(ir->B, h->valid, sk, rj_ir_vf(ir, inv_sqrt_n), "sigma_k");
        rj_ir_set(ir, rj_ir_slot_at(ir, sig, k), sk);
    }
    return sig;
}

/* x, row r of block 0, into row r of blocks 1..n times sigma_k sgn. */
static void hybrid_spread(rj_lin *L, const hyb_tok *h, rj_v x, rj_v r, double sgn)
{
    rj_ir *ir = L->ir;
    const int64_t B = L->kp->hmb + 2 * (int64_t)L->kp->hm;
    for (int k = 1; k <= L->kp->hn; k++) {
        rj_v sk = rj_ir_get(ir, rj_ir_slot_at(ir, h->sig, k - 1), "");
        rj_v row = rj_ir_iadd(ir, r, rj_ir_i(ir, k * B), "");
        rj_v ssgn = rj_ir_mul(ir, sk, rj_ir_vf(ir, sgn), "");
        put_row(L, h->F, row, h->t0, rj_ir_mul(ir, x, ssgn, ""));
    }
}

/* The base rows: e^{ell_b,r - c} / sqrt2, with the sign qsign in blocks k > 0. */
static void hybrid_base_rows(rj_lin *L, const hyb_tok *h)
{
    rj_ir *ir = L->ir;
    const int64_t T = L->kp->T;
    const double inv_sqrt2 = 1 / sqrt(2.0);
    rj_loop rb = rj_ir_loop_begin(ir, "r", rj_ir_i(ir, 0), rj_ir_i(ir, L->kp->hmb), 1);
    rj_v ell = rj_ir_ldv(ir, rj_ir_at(ir, h->U, rj_ir_idx2(ir, rb.i, T, h->t0, "")), "ell_b");
    rj_v base = rj_ir_mul(ir, rj_ir_exp(ir, rj_ir_sub(ir, ell, h->sub, ""), ""),
                          rj_ir_vf(ir, inv_sqrt2), "base");
    if (h->valid)
        base = LLVMBuildSelect(ir->B, h->valid, base, rj_ir_vf(ir, 0), "base");
    put_row(L, h->F, rb.i, h->t0, base);
    hybrid_spread(L, h, base, rb.i, h->query ? -1.0 : 1.0);
    rj_ir_loop_end(ir, &rb);
}

/* The trig rows: wt [cos u ; sin u], u_r recovered from the log-feature row ell_r. */
static void hybrid_trig_rows(rj_lin *L, const hyb_tok *h)
{
    rj_ir *ir = L->ir;
    const rj_kplan *kp = L->kp;
    const int64_t T = kp->T, mb = kp->hmb, m = kp->hm;
    rj_loop rt = rj_ir_loop_begin(ir, "r", rj_ir_i(ir, 0), rj_ir_i(ir, m), 1);
    /* u_r is row r of the projection, before the bias and norm were added to it: undo them */
    rj_v b = rj_ir_bcast(ir, rj_ir_ld(ir, rj_ir_at(ir, rj_ir_atc(ir, h->par, kp->off_b), rt.i),
                                      "b"), "");
    rj_v gam = rj_ir_bcast(ir, rj_ir_ld(ir, rj_ir_atc(ir, h->par, 1), "gamma"), "");
    rj_v gn = rj_ir_mul(ir, gam, rj_ir_ldv(ir, rj_ir_at(ir, h->nn, h->t0), "n"), "");
    rj_v u = rj_ir_ldv(ir, rj_ir_at(ir, h->U, rj_ir_idx2(ir, rt.i, T, h->t0, "")), "ell");
    u = rj_ir_sub(ir, rj_ir_sub(ir, u, b, ""), gn, "u");
    rj_v sn, cs;
    rj_ir_sincos(ir, u, &sn, &cs);
    cs = rj_ir_mul(ir, cs, h->wt, "trig_cos");
    sn = rj_ir_mul(ir, sn, h->wt, "trig_sin");
    if (h->valid) {
        /* w_t = 0 alone would leave -0 or, for a masked key of huge norm, NaN (inf - inf) */
        cs = LLVMBuildSelect(ir->B, h->valid, cs, rj_ir_vf(ir, 0), "trig_cos");
        sn = LLVMBuildSelect(ir->B, h->valid, sn, rj_ir_vf(ir, 0), "trig_sin");
    }
    rj_v rc = rj_ir_iadd(ir, rt.i, rj_ir_i(ir, mb), "");
    rj_v rs = rj_ir_iadd(ir, rt.i, rj_ir_i(ir, mb + m), "");
    put_row(L, h->F, rc, h->t0, cs);
    put_row(L, h->F, rs, h->t0, sn);
    hybrid_spread(L, h, cs, rc, 1.0);
    hybrid_spread(L, h, sn, rs, 1.0);
    rj_ir_loop_end(ir, &rt);
}

/*
 * Hybrid features (est.h RJ_KF_HYBRID), block k = 0..n of B = mb + 2m rows each:
 *   base_r = e^{ell_b,r - c} / sqrt2,  trig = e^{ell_t - c} [cos u ; sin u] / sqrt2,
 *   block k > 0 = sigma_k [qsign base ; trig],  sigma_k = sgn(r_k . x) / sqrt n,
 * c the key shift(s) or the query's own h; qsign = -1 for queries (spec 5.1).
 */
static void emit_hybrid_features(rj_lin *L, rj_v F, rj_v shift, rj_v shifts, rj_v n)
{
    rj_ir *ir = L->ir;
    const rj_kplan *kp = L->kp;
    const int64_t T = kp->T;
    hyb_tok h = {.F = F, .query = !shift && !shifts};
    h.par = L->f->arg[h.query ? RJ_KA_pq : RJ_KA_pk];
    h.U = ws(L, kp->ws_u);
    rj_v hs = ws(L, kp->ws_h);
    h.nn = ws(L, kp->ws_n);
    rj_loop tv = rj_ir_loop_begin(ir, "tv", rj_ir_i(ir, 0), rj_ir_i(ir, T), ir->vw);
    h.t0 = tv.i;
    rj_v hv = rj_ir_ldv(ir, rj_ir_at(ir, hs, tv.i), "h");
    h.valid = h.query ? NULL : key_lanes(L, tv.i, n);
    h.sub = shift    ? rj_ir_bcast(ir, shift, "c")
            : shifts ? rj_ir_ldv(ir, rj_ir_at(ir, shifts, tv.i), "c")
                     : hv;
    h.wt = hybrid_trig_weight(L, &h);
    h.sig = hybrid_signs(L, &h);
    hybrid_base_rows(L, &h);
    hybrid_trig_rows(L, &h);
    rj_ir_loop_end(ir, &tv);
    if (kp->Mp > kp->M)
        rj_tmpl_fill(L->f, rj_ir_atc(ir, F, (int64_t)kp->M * T), (int64_t)(kp->Mp - kp->M) * T,
                     0.0);
}

/* |F| into Fa (Mp x T). */
static void emit_abs(rj_lin *L, rj_v F, rj_v Fa)
{
    rj_ir *ir = L->ir;
    rj_loop i = rj_ir_loop_begin(ir, "abs", rj_ir_i(ir, 0),
                                 rj_ir_i(ir, (int64_t)L->kp->Mp * L->kp->T), ir->vw);
    rj_ir_stv(ir, rj_ir_abs(ir, rj_ir_ldv(ir, rj_ir_at(ir, F, i.i), ""), ""),
              rj_ir_at(ir, Fa, i.i));
    rj_ir_loop_end(ir, &i);
}

/* If grows: (S, z, zabs) *= e^{c_old - c_new} and c = c_new. */
static void emit_raise_shift(rj_lin *L, rj_v grows, rj_v c_old, rj_v c_new)
{
    rj_ir *ir = L->ir;
    const rj_kplan *kp = L->kp;
    rj_if up = rj_ir_if_begin(ir, grows, "rescale");
    rj_v factor = rj_ir_bcast(ir, rj_ir_exp(ir, rj_ir_sub(ir, c_old, c_new, ""), "factor"), "");
    const int64_t nS = (int64_t)kp->Mp * kp->dvp;
    rj_loop i = rj_ir_loop_begin(ir, "rS", rj_ir_i(ir, 0), rj_ir_i(ir, nS), ir->vw);
    rj_v p = rj_ir_at(ir, L->S, i.i);
    rj_ir_stv(ir, rj_ir_mul(ir, rj_ir_ldv(ir, p, ""), factor, ""), p);
    rj_ir_loop_end(ir, &i);
    /* z and zabs are adjacent Mp-float regions, each padded to 16 floats */
    const int64_t nz = kp->st_c - kp->st_z;
    rj_loop iz = rj_ir_loop_begin(ir, "rz", rj_ir_i(ir, 0), rj_ir_i(ir, nz), ir->vw);
    rj_v pz = rj_ir_at(ir, L->z, iz.i);
    rj_ir_stv(ir, rj_ir_mul(ir, rj_ir_ldv(ir, pz, ""), factor, ""), pz);
    rj_ir_loop_end(ir, &iz);
    rj_ir_st(ir, c_new, L->c);
    rj_ir_if_end(ir, &up);
}

/*
 * Causal key side of a chunk: c_t = max(c, h_0 .. h_t), the running maximum of the reference,
 * one per token (ws_m), and phi_k,t = e^{ell_t - c_t}. A query t then weighs key j <= t by
 * e^{c_j - c_t} <= 1 and the prefix by e^{c - c_t}, so its output depends on tokens 0..t
 * only, bit for bit, and a large future key cannot flush earlier weights to zero.
 * Masked keys do not enter the maximum. Before the first visible key c_t is -inf, stored as
 * NO_KEY = -FLT_MAX so that the differences c_j - c_i stay numbers (-inf - -inf is NaN) and
 * their exponentials 0 or 1 on zero features; NO_KEY marks a query with nothing to see.
 */
static void emit_causal_key_features(rj_lin *L, rj_v n)
{
    rj_ir *ir = L->ir;
    const rj_kplan *kp = L->kp;
    rj_lin_logfeatures(L, L->f->arg[RJ_KA_pk], ws(L, kp->ws_x));
    rj_v h = ws(L, kp->ws_h), cpre = ws(L, kp->ws_m);
    rj_v run = rj_ir_slot(ir, ir->ty_f32, "c_run");
    rj_ir_st(ir, rj_ir_ld(ir, L->c, "c_prev"), run);
    rj_loop t = rj_ir_loop_begin(ir, "t", rj_ir_i(ir, 0), rj_ir_i(ir, kp->T), 1);
    rj_v valid = LLVMBuildFCmp(ir->B, LLVMRealONE, rj_ir_ld(ir, rj_ir_at(ir, L->vis, t.i), "vis"),
                               rj_ir_f(ir, 0), "");
    rj_v ht = LLVMBuildSelect(ir->B, valid, rj_ir_ld(ir, rj_ir_at(ir, h, t.i), "h"),
                              rj_ir_f(ir, -INFINITY), "");
    rj_v ct = rj_ir_max(ir, rj_ir_ld(ir, run, ""), ht, "c_t");
    rj_ir_st(ir, ct, run);
    rj_ir_st(ir, rj_ir_max(ir, ct, rj_ir_f(ir, NO_KEY), ""), rj_ir_at(ir, cpre, t.i));
    rj_ir_loop_end(ir, &t);
    rj_lin_features(L, ws(L, kp->ws_fk), NULL, cpre, n);
}

/* v[i] *= e^{c - c_i} over the T lanes of rows rows of p (row stride T): the prefix part of
 * a chunk's queries, brought from the carried shift c to each query's own c_i. */
static void emit_to_query_shift(rj_lin *L, rj_v p, int64_t rows, rj_v c)
{
    rj_ir *ir = L->ir;
    const int64_t T = L->kp->T;
    rj_v cpre = ws(L, L->kp->ws_m);
    for (int64_t t = 0; t < T; t += ir->vw) {
        rj_v e = rj_ir_exp(ir, rj_ir_sub(ir, rj_ir_bcast(ir, c, ""),
                                         rj_ir_ldv(ir, rj_ir_atc(ir, cpre, t), "c_i"), ""),
                           "to_query");
        rj_loop r = rj_ir_loop_begin(ir, "r", rj_ir_i(ir, 0), rj_ir_i(ir, rows), 1);
        rj_v at = rj_ir_at(ir, p, rj_ir_idx2(ir, r.i, T, rj_ir_i(ir, t), ""));
        rj_ir_stv(ir, rj_ir_mul(ir, rj_ir_ldv(ir, at, ""), e, ""), at);
        rj_ir_loop_end(ir, &r);
    }
}

/* End of a causal chunk: shift everything to c_end = c_{T-1}, then S, z, zabs += keys. */
static void emit_causal_key_update(rj_lin *L)
{
    rj_ir *ir = L->ir;
    const rj_kplan *kp = L->kp;
    const int64_t T = kp->T;
    rj_v cpre = ws(L, kp->ws_m), Fk = ws(L, kp->ws_fk);
    rj_v c_old = rj_ir_ld(ir, L->c, "c_old");
    rj_v c_end = rj_ir_ld(ir, rj_ir_atc(ir, cpre, T - 1), "c_end");
    emit_raise_shift(L, LLVMBuildFCmp(ir->B, LLVMRealOGT, c_end, c_old, ""), c_old, c_end);
    for (int64_t t = 0; t < T; t += ir->vw) {
        rj_v e = rj_ir_exp(ir, rj_ir_sub(ir, rj_ir_ldv(ir, rj_ir_atc(ir, cpre, t), "c_t"),
                                         rj_ir_bcast(ir, c_end, ""), ""), "to_end");
        rj_loop r = rj_ir_loop_begin(ir, "r", rj_ir_i(ir, 0), rj_ir_i(ir, kp->Mp), 1);
        rj_v at = rj_ir_at(ir, Fk, rj_ir_idx2(ir, r.i, T, rj_ir_i(ir, t), ""));
        rj_ir_stv(ir, rj_ir_mul(ir, rj_ir_ldv(ir, at, ""), e, ""), at);
        rj_ir_loop_end(ir, &r);
    }
}

/* Key side of a tile: c update with rescaling, then phi_k into ws_fk. */
static void emit_key_features(rj_lin *L, rj_v n)
{
    rj_ir *ir = L->ir;
    const rj_kplan *kp = L->kp;
    if (L->wb)
        L->wb = ws(L, kp->ws_wb);
    rj_lin_logfeatures(L, L->f->arg[RJ_KA_pk], ws(L, kp->ws_x));
    rj_v h = ws(L, kp->ws_h);
    rj_v cmax = rj_ir_slot(ir, ir->ty_vf, "cmax");
    rj_ir_set(ir, cmax, rj_ir_vf(ir, -INFINITY));
    rj_loop tv = rj_ir_loop_begin(ir, "tv", rj_ir_i(ir, 0), rj_ir_i(ir, kp->T), ir->vw);
    rj_v hv = LLVMBuildSelect(ir->B, key_lanes(L, tv.i, n),
                              rj_ir_ldv(ir, rj_ir_at(ir, h, tv.i), "h"), rj_ir_vf(ir, -INFINITY),
                              "");
    rj_ir_acc_max(ir, cmax, hv);
    rj_ir_loop_end(ir, &tv);
    rj_v ctile = rj_ir_hmax(ir, rj_ir_get(ir, cmax, ""), "c_tile");
    rj_v c_old = rj_ir_ld(ir, L->c, "c_old");
    rj_v grows = LLVMBuildFCmp(ir->B, LLVMRealOGT, ctile, c_old, "");
    emit_raise_shift(L, grows, c_old, ctile);
    rj_v c = rj_ir_ld(ir, L->c, "c");
    emit_features(L, ws(L, kp->ws_fk), c, n);
}

/* The value tile of rows row0 .. row0 + n - 1: read in place when the tile is whole and dv
 * fills its vectors (one copy less per token), else copied and zero-padded into ws_v. */
static void value_tile(rj_lin *L, rj_v row0, rj_v n)
{
    rj_ir *ir = L->ir;
    rj_kfn *f = L->f;
    const rj_kplan *kp = L->kp;
    rj_v packed = ws(L, kp->ws_v);
    if (kp->dv != kp->dvp) {
        rj_tmpl_pack_v(f, f->arg[RJ_KA_v], f->arg[RJ_KA_sv], row0, n, packed);
        L->V = packed;
        L->V_s = rj_ir_i(ir, kp->dvp);
        return;
    }
    rj_v full = rj_tmpl_whole_tile(f, n);
    rj_if ragged = rj_ir_if_begin(ir, LLVMBuildNot(ir->B, full, ""), "ragged_v");
    rj_tmpl_pack_v(f, f->arg[RJ_KA_v], f->arg[RJ_KA_sv], row0, n, packed);
    rj_ir_if_end(ir, &ragged);
    rj_tmpl_tile_at(f, full, f->arg[RJ_KA_v], f->arg[RJ_KA_sv], row0, packed, kp->dvp, &L->V,
                    &L->V_s);
}

/* S += phi_k^T V; z += sum_t phi_k; zabs += sum_t |phi_k| (signed). */
static void emit_key_update(rj_lin *L)
{
    rj_ir *ir = L->ir;
    const rj_kplan *kp = L->kp;
    const int64_t T = kp->T;
    rj_v Fk = ws(L, kp->ws_fk);
    if (L->wb) {
        rj_v fkb = ws(L, kp->ws_fkb), vpb = ws(L, kp->ws_vpb);
        rj_ir_pack_bf16_rows(ir, Fk, rj_ir_i(ir, T), rj_ir_i(ir, kp->Mp), T, kp->bv, fkb, kp->bv);
        rj_ir_pack_bf16_pairs(ir, L->V, L->V_s, rj_ir_i(ir, T), kp->dvp, vpb, kp->pk);
        rj_amx_mm mm = {.A = fkb,
                        .a_si = kp->bv / 2,
                        .B = vpb,
                        .b_sk = kp->dvp,
                        .C = L->S,
                        .c_si = kp->dvp,
                        .NI = kp->Mp,
                        .NJ = kp->dvp,
                        .K = kp->pk,
                        .accumulate = 1};
        rj_ir_mm_amx(ir, &mm);
    } else {
        rj_mm mm = {.A = Fk,
                    .a_si = T,
                    .a_sk = 1,
                    .B = L->V,
                    .b_sk_v = L->V_s,
                    .C = L->S,
                    .c_si = kp->dvp,
                    .NI = kp->Mp,
                    .NJ = kp->dvp,
                    .K = rj_ir_i(ir, T),
                    .accumulate = 1,
                    .ri = kp->ri,
                    .rj = kp->rj,
                    .name = "S"};
        rj_ir_mm(ir, &mm);
    }
    rj_v acc = rj_ir_slot(ir, ir->ty_vf, "zsum"), acca = rj_ir_slot(ir, ir->ty_vf, "zasum");
    rj_loop r = rj_ir_loop_begin(ir, "r", rj_ir_i(ir, 0), rj_ir_i(ir, kp->Mp), 1);
    rj_ir_set(ir, acc, rj_ir_vf(ir, 0));
    rj_ir_set(ir, acca, rj_ir_vf(ir, 0));
    rj_v row = rj_ir_at(ir, Fk, rj_ir_imul(ir, r.i, rj_ir_i(ir, T), ""));
    for (int64_t t = 0; t < T; t += ir->vw) {
        rj_v phi = rj_ir_ldv(ir, rj_ir_atc(ir, row, t), "phi");
        rj_ir_acc_add(ir, acc, phi);
        if (kp->sgn)
            rj_ir_acc_add(ir, acca, rj_ir_abs(ir, phi, ""));
    }
    rj_v pz = rj_ir_at(ir, L->z, r.i);
    rj_ir_st(ir, rj_ir_add(ir, rj_ir_ld(ir, pz, ""),
                           rj_ir_hsum(ir, rj_ir_get(ir, acc, ""), ""), "z"), pz);
    if (kp->sgn) {
        rj_v pa = rj_ir_at(ir, L->za, r.i);
        rj_ir_st(ir, rj_ir_add(ir, rj_ir_ld(ir, pa, ""),
                               rj_ir_hsum(ir, rj_ir_get(ir, acca, ""), ""), "zabs"), pa);
    }
    rj_ir_loop_end(ir, &r);
}

/* A_ji = 0 for j > i, A_ji *= e^{c_j - c_i} otherwise (the key's weight at the query's
 * shift); then acc (T) += sum_j A_j. */
static void emit_mask_and_colsum(rj_lin *L, rj_v A, rj_v acc)
{
    rj_ir *ir = L->ir;
    const int64_t T = L->kp->T;
    rj_v cpre = ws(L, L->kp->ws_m);
    rj_loop j = rj_ir_loop_begin(ir, "j", rj_ir_i(ir, 0), rj_ir_i(ir, T), 1);
    rj_v cj = rj_ir_bcast(ir, rj_ir_ld(ir, rj_ir_at(ir, cpre, j.i), "c_j"), "");
    for (int64_t t = 0; t < T; t += ir->vw) {
        rj_v p = rj_ir_at(ir, A, rj_ir_idx2(ir, j.i, T, rj_ir_i(ir, t), ""));
        /* keep A_ji for i >= j: lane index t + l >= j */
        rj_v lane = rj_ir_lanes_from(ir, rj_ir_i(ir, t));
        rj_v keep = LLVMBuildICmp(ir->B, LLVMIntSGE, lane, rj_ir_ibcast(ir, j.i), "");
        rj_v w = rj_ir_exp(ir, rj_ir_sub(ir, cj, rj_ir_ldv(ir, rj_ir_atc(ir, cpre, t), "c_i"), ""),
                           "w");
        rj_v a = LLVMBuildSelect(ir->B, keep, rj_ir_mul(ir, rj_ir_ldv(ir, p, "a"), w, ""),
                                 rj_ir_vf(ir, 0), "a");
        rj_ir_stv(ir, a, p);
        rj_v pa = rj_ir_atc(ir, acc, t);
        rj_ir_stv(ir, rj_ir_add(ir, rj_ir_ldv(ir, pa, ""), a, ""), pa);
    }
    rj_ir_loop_end(ir, &j);
}

/* The prefix part of a tile's queries: num = S^T phi_q, den = z . phi_q, g = zabs . |phi_q|
 * (|phi_q| into Fa). */
static void emit_prefix(rj_lin *L, rj_v Fq, rj_v Fa, rj_v num, rj_v den, rj_v g)
{
    rj_ir *ir = L->ir;
    const rj_kplan *kp = L->kp;
    const int64_t T = kp->T;
    if (L->wb) {
        rj_v fqb = ws(L, kp->ws_fqb);
        rj_ir_pack_bf16_pairs(ir, Fq, rj_ir_i(ir, T), rj_ir_i(ir, kp->Mp), T, fqb, kp->bm / 2);
        rj_amx_mm mnum = {.A = ws(L, kp->ws_sb),
                          .a_si = kp->bm / 2,
                          .B = fqb,
                          .b_sk = T,
                          .C = num,
                          .c_si = T,
                          .NI = kp->dvp,
                          .NJ = T,
                          .K = kp->bm / 2};
        rj_ir_mm_amx(ir, &mnum);
    } else {
        rj_mm mnum = {.A = L->S,
                      .a_si = 1,
                      .a_sk = kp->dvp,
                      .B = Fq,
                      .b_sk = T,
                      .C = num,
                      .c_si = T,
                      .NI = kp->dvp,
                      .NJ = T,
                      .K = rj_ir_i(ir, kp->Mp),
                      .ri = kp->ri,
                      .rj = kp->rj,
                      .name = "num"};
        rj_ir_mm(ir, &mnum);
    }
    rj_mm mden = {.A = L->z, .a_si = 0, .a_sk = 1, .B = Fq, .b_sk = T, .C = den, .c_si = T,
                  .NI = 1, .NJ = T, .K = rj_ir_i(ir, kp->Mp), .ri = 1, .rj = kp->rj,
                  .name = "den"};
    rj_ir_mm(ir, &mden);
    if (kp->sgn) {
        emit_abs(L, Fq, Fa);
        rj_mm mg = mden;
        mg.A = L->za;
        mg.B = Fa;
        mg.C = g;
        mg.name = "g";
        rj_ir_mm(ir, &mg);
    }
}

/* Causal: the prefix brought to each query's shift, then the chunk's own keys through the
 * masked A = phi_k^T phi_q: num += V^T A, den += sum_j A_j, g += sum_j |A|_j. */
static void emit_intra_chunk(rj_lin *L, rj_v Fq, rj_v Fa, rj_v num, rj_v den, rj_v g)
{
    rj_ir *ir = L->ir;
    const rj_kplan *kp = L->kp;
    const int64_t T = kp->T;
    rj_v c = rj_ir_ld(ir, L->c, "c");
    emit_to_query_shift(L, num, kp->dvp, c);
    emit_to_query_shift(L, den, 1, c);
    if (kp->sgn)
        emit_to_query_shift(L, g, 1, c);
    rj_v A = ws(L, kp->ws_a), Fk = ws(L, kp->ws_fk);
    rj_mm ma = {.A = Fk, .a_si = 1, .a_sk = T, .B = Fq, .b_sk = T, .C = A, .c_si = T,
                .NI = T, .NJ = T, .K = rj_ir_i(ir, kp->Mp), .ri = kp->ri, .rj = kp->rj,
                .name = "A"};
    rj_ir_mm(ir, &ma);
    emit_mask_and_colsum(L, A, den);
    rj_mm mv = {.A = L->V, .a_si = 1, .a_sk_v = L->V_s, .B = A, .b_sk = T,
                .C = num, .c_si = T, .NI = kp->dvp, .NJ = T, .K = rj_ir_i(ir, T),
                .accumulate = 1, .ri = kp->ri, .rj = kp->rj, .name = "numA"};
    rj_ir_mm(ir, &mv);
    if (kp->sgn) {
        rj_v Fka = ws(L, kp->ws_fka), Aa = ws(L, kp->ws_aa);
        emit_abs(L, Fk, Fka);
        ma.A = Fka;
        ma.B = Fa;
        ma.C = Aa;
        ma.name = "Aabs";
        rj_ir_mm(ir, &ma);
        emit_mask_and_colsum(L, Aa, g);
    }
}

/*
 * den = 1/den' in place. Every query reaches a key (emit_empty_rows set the others to 0 / 1),
 * so den' is > 0 in exact arithmetic
 * (signed: |den'| >= DEN_EPS g > 0); |den'| < FLT_MIN means float underflow (features of
 * widely spread logits), where the reciprocal is imprecise or infinite. NaN marks such a row
 * and the execute path recomputes its slice with the double reference.
 */
static void emit_reciprocal_den(rj_lin *L, rj_v den, rj_v g)
{
    rj_ir *ir = L->ir;
    const rj_kplan *kp = L->kp;
    rj_loop tv = rj_ir_loop_begin(ir, "tv", rj_ir_i(ir, 0), rj_ir_i(ir, kp->T), ir->vw);
    rj_v dv = rj_ir_ldv(ir, rj_ir_at(ir, den, tv.i), "den");
    if (kp->sgn) {
        rj_v gv = rj_ir_ldv(ir, rj_ir_at(ir, g, tv.i), "g");
        rj_v floor_ = rj_ir_mul(ir, gv, rj_ir_vf(ir, DEN_EPS), "floor");
        rj_v small = LLVMBuildFCmp(ir->B, LLVMRealOLT, rj_ir_abs(ir, dv, ""), floor_, "");
        rj_v neg = LLVMBuildFCmp(ir->B, LLVMRealOLT, dv, rj_ir_vf(ir, 0), "");
        rj_v guarded = LLVMBuildSelect(ir->B, neg, rj_ir_neg(ir, floor_, ""), floor_, "");
        dv = LLVMBuildSelect(ir->B, small, guarded, dv, "den_guarded");
    }
    rj_v normal = LLVMBuildFCmp(ir->B, LLVMRealOGE, rj_ir_abs(ir, dv, ""),
                                rj_ir_vf(ir, FLT_MIN), "normal");
    rj_v rden = LLVMBuildSelect(ir->B, normal, rj_ir_div(ir, rj_ir_vf(ir, 1), dv, ""),
                                rj_ir_vf(ir, NAN), "rden");
    rj_ir_stv(ir, rden, rj_ir_at(ir, den, tv.i));
    rj_ir_loop_end(ir, &tv);
}

/*
 * Queries that see no key (none visible, or none at all) get exact zeros: num = +0 and
 * den = 1, where the sums would give 0/0. Such a query is recognised by its shift: the
 * carried c still -inf (bidirectional: the whole tile), or c_i = NO_KEY (causal; as c_i only
 * grows, query 0 of the chunk is empty whenever any is, which is the one test per tile).
 */
static void emit_empty_rows(rj_lin *L, rj_v num, rj_v den)
{
    rj_ir *ir = L->ir;
    const rj_kplan *kp = L->kp;
    const int64_t T = kp->T;
    if (!kp->causal) {
        rj_v none = LLVMBuildFCmp(ir->B, LLVMRealOEQ, rj_ir_ld(ir, L->c, "c"),
                                  rj_ir_f(ir, -INFINITY), "no_key");
        rj_if e = rj_ir_if_begin(ir, none, "empty");
        rj_tmpl_fill(L->f, num, (int64_t)kp->dvp * T, 0.0);
        rj_tmpl_fill(L->f, den, T, 1.0);
        rj_ir_if_end(ir, &e);
        return;
    }
    rj_v cpre = ws(L, kp->ws_m);
    rj_v first = LLVMBuildFCmp(ir->B, LLVMRealOEQ, rj_ir_ld(ir, cpre, "c_0"), rj_ir_f(ir, NO_KEY),
                               "no_key");
    rj_if e = rj_ir_if_begin(ir, first, "empty");
    for (int64_t t = 0; t < T; t += ir->vw) {
        rj_v none = LLVMBuildFCmp(ir->B, LLVMRealOEQ, rj_ir_ldv(ir, rj_ir_atc(ir, cpre, t), "c_i"),
                                  rj_ir_vf(ir, NO_KEY), "no_key");
        rj_v pd = rj_ir_atc(ir, den, t);
        rj_ir_stv(ir, LLVMBuildSelect(ir->B, none, rj_ir_vf(ir, 1), rj_ir_ldv(ir, pd, ""), "den"),
                  pd);
        rj_loop r = rj_ir_loop_begin(ir, "r", rj_ir_i(ir, 0), rj_ir_i(ir, kp->dvp), 1);
        rj_v pn = rj_ir_at(ir, num, rj_ir_idx2(ir, r.i, T, rj_ir_i(ir, t), ""));
        rj_ir_stv(ir, LLVMBuildSelect(ir->B, none, rj_ir_vf(ir, 0), rj_ir_ldv(ir, pn, ""), "num"),
                  pn);
        rj_ir_loop_end(ir, &r);
    }
    rj_ir_if_end(ir, &e);
}

/* bf16 attention: both roles' W rounded into bfloat16 rows (ws_wb), once per call. */
static void pack_projections(rj_lin *L)
{
    rj_ir *ir = L->ir;
    const rj_kplan *kp = L->kp;
    for (int role = 0; role < 2; role++) {
        rj_v par = L->f->arg[role ? RJ_KA_pq : RJ_KA_pk];
        rj_ir_pack_bf16_rows(ir, rj_ir_atc(ir, par, kp->off_w), rj_ir_i(ir, kp->d),
                             rj_ir_i(ir, kp->Pp), kp->d, kp->bk,
                             ws(L, kp->ws_wb + (int64_t)role * kp->Pp * kp->bk / 2), kp->bk);
    }
}

/* bf16 attention: S (Mp x dvp) as the A operand of num = S^T phi_q, its transpose in bfloat16
 * rows (ws_sb), once the keys are all in. */
static void pack_state(rj_lin *L)
{
    rj_ir *ir = L->ir;
    const rj_kplan *kp = L->kp;
    const int vw = ir->vw;
    rj_v st = ws(L, kp->ws_st), Mp = rj_ir_i(ir, kp->Mp), dvp = rj_ir_i(ir, kp->dvp);
    rj_loop r = rj_ir_loop_begin(ir, "st_r", rj_ir_i(ir, 0), Mp, vw);
    rj_loop c = rj_ir_loop_begin(ir, "st_c", rj_ir_i(ir, 0), dvp, vw);
    rj_ir_transpose_block(ir, rj_ir_at(ir, L->S, rj_ir_idx2(ir, r.i, kp->dvp, c.i, "")), dvp,
                          rj_ir_at(ir, st, rj_ir_idx2(ir, c.i, kp->Mp, r.i, "")), Mp, NULL, NULL,
                          rj_ir_f(ir, 1));
    rj_ir_loop_end(ir, &c);
    rj_ir_loop_end(ir, &r);
    rj_ir_pack_bf16_rows(ir, st, Mp, dvp, kp->Mp, kp->bm, ws(L, kp->ws_sb), kp->bm);
}

/* Query side of a tile, first half: the features of the queries packed at xq. */
static void query_features(rj_lin *L)
{
    const rj_kplan *kp = L->kp;
    rj_v xq = kp->causal ? ws(L, kp->ws_xq) : ws(L, kp->ws_x);
    if (L->wb)
        L->wb = ws(L, kp->ws_wb + (int64_t)kp->Pp * kp->bk / 2);
    rj_lin_logfeatures(L, L->f->arg[RJ_KA_pq], xq);
    emit_features(L, ws(L, kp->ws_fq), NULL, NULL);
}

/* Second half: num/den/g (prefix and, causal, intra-chunk), output. */
static void query_products(rj_lin *L, rj_v row0, rj_v n)
{
    const rj_kplan *kp = L->kp;
    rj_v Fq = ws(L, kp->ws_fq), Fa = ws(L, kp->ws_fa);
    rj_v num = ws(L, kp->ws_num), den = ws(L, kp->ws_den), g = ws(L, kp->ws_g);
    emit_prefix(L, Fq, Fa, num, den, g);
    if (kp->causal)
        emit_intra_chunk(L, Fq, Fa, num, den, g);
    emit_empty_rows(L, num, den);
    emit_reciprocal_den(L, den, g);
    rj_tmpl_store_out(L->f, num, den, row0, n);
}

/*
 * Causal: the query rows of head g (i64) of the ng query heads that share these keys
 * (kabi.h ng; grouped-query attention), head g at q + g sqh and out + g soh. Every head reads
 * the chunk's key features, values and the state before the chunk and writes only its own
 * scratch, so the keys' work is done once for the group and each head's rows are computed
 * exactly as a call of its own would compute them.
 */
static void head_args(rj_kfn *f, rj_v g)
{
    rj_ir *ir = f->ir;
    f->arg[RJ_KA_q] = rj_ir_at_dt(ir, f->arg[RJ_KA_q], rj_ir_imul(ir, g, f->arg[RJ_KA_sqh], ""),
                                  f->kp->dt_in);
    f->arg[RJ_KA_out] = rj_ir_at_dt(ir, f->arg[RJ_KA_out], rj_ir_imul(ir, g, f->arg[RJ_KA_soh], ""),
                                    f->kp->dt_out);
}

/* The template's state for a function of the kernel: the entry or one of its parts. */
static rj_lin setup(rj_kfn *f)
{
    rj_lin L = rj_lin_init(f);
    L.vis = ws(&L, f->kp->ws_kv);
    if (f->kp->bf16 == RJ_BF16_AMX)
        L.wb = ws(&L, f->kp->ws_wb);
    return L;
}

/*
 * The kernel's parts (tmpl.h rj_tmpl_part): the key tile's and the query tile's work
 * bidirectional; causal, the chunk's queries, its key features and its state update. Each
 * takes its tile and row count, the causal ones also the value tile (which the entry reads in
 * place or packs, once for all of them).
 */
enum { PART_KEYS = 1, PART_QUERIES = 2 };
enum { PART_CAUSAL_FEATURES = 1, PART_QUERY_FEATURES, PART_QUERY_PRODUCTS, PART_CAUSAL_UPDATE };

static void part_keys(rj_kfn *f, const rj_v *p)
{
    rj_lin L = setup(f);
    value_tile(&L, p[0], p[1]);
    emit_key_features(&L, p[1]);
    emit_key_update(&L);
}

static void part_queries(rj_kfn *f, const rj_v *p)
{
    rj_lin L = setup(f);
    query_features(&L);
    query_products(&L, p[0], p[1]);
}

/* The chunk's queries (at p[0], p[1] rows) of head p[2], packed, and their features. */
static void part_query_features(rj_kfn *f, const rj_v *p)
{
    rj_lin L = setup(f);
    head_args(f, p[2]);
    rj_tmpl_pack_t(f, f->arg[RJ_KA_q], f->arg[RJ_KA_sq], p[0], p[1], ws(&L, f->kp->ws_xq),
                   f->scale);
    query_features(&L);
}

/* Their outputs, with the value tile p[3] (row stride p[4]). */
static void part_query_products(rj_kfn *f, const rj_v *p)
{
    rj_lin L = setup(f);
    head_args(f, p[2]);
    L.V = p[3];
    L.V_s = p[4];
    query_products(&L, p[0], p[1]);
}

static void part_causal_features(rj_kfn *f, const rj_v *p)
{
    rj_lin L = setup(f);
    emit_causal_key_features(&L, p[0]);
}

static void part_causal_update(rj_kfn *f, const rj_v *p)
{
    rj_lin L = setup(f);
    L.V = p[0];
    L.V_s = p[1];
    emit_causal_key_update(&L);
    emit_key_update(&L);
}

void rj_tmpl_linear(rj_kfn *f)
{
    rj_ir *ir = f->ir;
    const rj_kplan *kp = f->kp;
    rj_lin L = setup(f);
    const int64_t T = kp->T;

    rj_v init = rj_ir_bits(ir, f->arg[RJ_KA_flags], RJ_KFLAG_INIT, 1, "");
    rj_if fresh = rj_ir_if_begin(ir, init, "init");
    rj_tmpl_fill(f, L.S, kp->st_c, 0.0); /* S, z, zabs are contiguous before c */
    rj_ir_st(ir, rj_ir_f(ir, -INFINITY), L.c);
    rj_ir_if_end(ir, &fresh);

    rj_v lk = f->arg[RJ_KA_lk], lq = f->arg[RJ_KA_lq];
    if (L.wb)
        pack_projections(&L);
    if (!kp->causal) {
        rj_loop kt = rj_ir_loop_begin(ir, "key_tile", rj_ir_i(ir, 0), lk, T);
        rj_v n = rj_tmpl_rows_left(f, lk, kt.i);
        /* a tile of masked keys only is skipped, not computed as zeros */
        rj_v nvis = rj_tmpl_key_vis(f, kt.i, n, L.vis, 1);
        rj_if any = rj_ir_if_begin(ir, LLVMBuildICmp(ir->B, LLVMIntSGT, nvis, rj_ir_i(ir, 0), ""),
                                   "visible_keys");
        rj_tmpl_pack_t(f, f->arg[RJ_KA_k], f->arg[RJ_KA_sk], kt.i, n, ws(&L, kp->ws_x),
                       f->scale);
        rj_tmpl_part(f, PART_KEYS, part_keys, 2, (rj_v[]){kt.i, n});
        rj_ir_if_end(ir, &any);
        rj_ir_loop_end(ir, &kt);
        if (L.wb)
            pack_state(&L);
        rj_loop qt = rj_ir_loop_begin(ir, "query_tile", rj_ir_i(ir, 0), lq, T);
        rj_v nq = rj_tmpl_rows_left(f, lq, qt.i);
        rj_tmpl_pack_t(f, f->arg[RJ_KA_q], f->arg[RJ_KA_sq], qt.i, nq, ws(&L, kp->ws_x),
                       f->scale);
        rj_tmpl_part(f, PART_QUERIES, part_queries, 2, (rj_v[]){qt.i, nq});
        rj_ir_loop_end(ir, &qt);
        return;
    }
    rj_loop ct = rj_ir_loop_begin(ir, "chunk", rj_ir_i(ir, 0), lk, T);
    rj_v n = rj_tmpl_rows_left(f, lk, ct.i);
    rj_tmpl_key_vis(f, ct.i, n, L.vis, 1);
    rj_tmpl_pack_t(f, f->arg[RJ_KA_k], f->arg[RJ_KA_sk], ct.i, n, ws(&L, kp->ws_x), f->scale);
    value_tile(&L, ct.i, n);
    rj_tmpl_part(f, PART_CAUSAL_FEATURES, part_causal_features, 1, (rj_v[]){n});
    rj_v want_q = rj_ir_bits(ir, f->arg[RJ_KA_flags], RJ_KFLAG_NO_QUERIES, 0, "");
    rj_if qs = rj_ir_if_begin(ir, want_q, "queries");
    rj_v several = LLVMBuildICmp(ir->B, LLVMIntSGT, f->arg[RJ_KA_ng], rj_ir_i(ir, 1), "");
    rj_v heads = LLVMBuildSelect(ir->B, several, f->arg[RJ_KA_ng], rj_ir_i(ir, 1), "heads");
    rj_loop g = rj_ir_loop_begin(ir, "query_head", rj_ir_i(ir, 0), heads, 1);
    rj_tmpl_part(f, PART_QUERY_FEATURES, part_query_features, 3, (rj_v[]){ct.i, n, g.i});
    rj_tmpl_part(f, PART_QUERY_PRODUCTS, part_query_products, 5,
                 (rj_v[]){ct.i, n, g.i, L.V, L.V_s});
    rj_ir_loop_end(ir, &g);
    rj_ir_if_end(ir, &qs);
    /* nothing visible yet (c_end = NO_KEY): the state stays empty, c = -inf */
    rj_v c_end = rj_ir_ld(ir, ws(&L, kp->ws_m + T - 1), "c_end");
    rj_if live = rj_ir_if_begin(ir,
                                LLVMBuildFCmp(ir->B, LLVMRealOGT, c_end, rj_ir_f(ir, NO_KEY), ""),
                                "keys_seen");
    rj_tmpl_part(f, PART_CAUSAL_UPDATE, part_causal_update, 2, (rj_v[]){L.V, L.V_s});
    rj_ir_if_end(ir, &live);
    rj_ir_loop_end(ir, &ct);
}
