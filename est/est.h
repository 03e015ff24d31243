/* SPDX-License-Identifier: MIT */
/*
 * This file is the contract between rfjit and one estimator: the ops table each
 * est/<name>.c defines as `const rj_est_ops rj_est_<name>`, and the registry that lists
 * them. An estimator owns its math only (feature map, fit, closed-form variance, cost); the
 * attention loops and their stabilisation live in the double references (est/ref_*.c) and in
 * the JIT's kernel templates (gen/tmpl/).
 *
 * Feature representation. A feature map returns, for one row, a log-scale h and a vector f
 * with phi(x) = e^h * f (M entries). Exponential estimators put their largest log-feature in h
 * so that max_r f_r = 1 and nothing overflows for |x| up to 1e3; trig puts |x|^2/2 there.
 * The attention reference uses h to stabilise exactly (spec estimators.md 1.4): a query's h
 * cancels in its own ratio, keys are shifted by the (running) maximum of their h.
 *
 * All vectors an estimator sees are the inputs to its kernel: for attention, the scaled
 * x = q sqrt(scale) and y = k sqrt(scale) (scale = 1/sqrt(d) by default), so x^T y is the
 * logit scale q^T k and nothing here depends on the scale; for the kernel/feature API, the
 * vectors as given.
 */
#ifndef RJ_EST_H
#define RJ_EST_H

#include "core/base.h"
#include "core/spec.h"
#include "core/stats.h"

#include <stdbool.h>

typedef enum rj_tmpl {
    RJ_TMPL_LINEAR = 0,     /* random-feature linear attention over `features` */
    RJ_TMPL_SOFTMAX = 1,    /* exact softmax attention (no features) */
    RJ_TMPL_EVA = 2,        /* EVA: exact window plus chunk control variates (own loop) */
    RJ_TMPL_BLOCKSPARSE = 3 /* exact key blocks plus positive features for the rest (own loop) */
} rj_tmpl;

typedef enum rj_role { RJ_ROLE_Q = 0, RJ_ROLE_K = 1 } rj_role;

#define RJ_EST_FITTED 1u  /* parameters come from data statistics (oprf, *derf) */
#define RJ_EST_SIGNED 2u  /* features can be negative: denominators need the guard */
#define RJ_EST_NOPROJ 4u  /* uses no projection matrix W (exact) */
#define RJ_EST_MOM_DIAG 8u  /* fit reads only the diagonals of mxx, myy (stats.h) */
#define RJ_EST_MOM_NONE 16u /* fit reads no second moments at all */

/* The second moments an estimator's fit needs (core/stats.h rj_moments). */
static inline int rj_est_moments(unsigned flags)
{
    return (flags & RJ_EST_MOM_NONE) ? RJ_MOM_NONE
           : (flags & RJ_EST_MOM_DIAG) ? RJ_MOM_DIAG
                                       : RJ_MOM_FULL;
}

/* Cost of one inline exp, sin or cos in the JIT's math (range reduction plus a degree ~10
 * polynomial, architecture.md 3.2), in flops: the figure every estimator's cost() charges for
 * one, for ranking only. */
#define RJ_EST_TRANSCENDENTAL_FLOPS 20.0

/* Scalar parameters reported by `rfjit fit`: NaN where the estimator has none. */
typedef struct rj_fit_info {
    double A, rho;
} rj_fit_info;

/*
 * How the JIT's linear template computes an estimator's features, decided in plain C before
 * any IR exists (gen/kplan.c lays it out, gen/tmpl/linear.c emits it). Two families cover the
 * exponential and trigonometric maps; n(x) is a norm the estimator chooses:
 *
 *   RJ_KF_EXP:   ell_r = b_r + (W x)_r + gamma n(x),  h = max_r ell_r,  f_r = e^{ell_r - h}
 *   RJ_KF_TRIG:  u = W x,  f = [cos u ; sin u],  h = h0 + gamma n(x)        (M = 2P)
 *   RJ_KF_HYBRID (hybrid.c): W = [base rows (mb) ; sign rows r_t (n)], P = mb + n;
 *                ell_b = b + (W x)_{0..mb} + gamma n(x),  ell_t = h0 + gamma2 n(x),
 *                h = max(max ell_b, ell_t); blocks k = 0..n of (mb + 2m) rows:
 *                sigma_k [e^{ell_b - h} (negated on the query side for k > 0) ;
 *                         e^{ell_t - h} [cos u ; sin u]] / sqrt2, u = rows 0..m of W x,
 *                sigma_0 = 1, sigma_k = sgn(r_k . x) / sqrt n   (M = (mb + 2m)(n + 1))
 *   n(x) = sum_l g_l x_l^2 (RJ_KN_DIAG, g: d) or |G x|^2 (RJ_KN_DENSE, G: d x d row-major)
 *
 * with P rows of W (P x d row-major). This is exactly what `features` computes, so the
 * reference stays the JIT's oracle term by term.
 */
typedef enum rj_kfam { RJ_KF_NONE = 0, RJ_KF_EXP = 1, RJ_KF_TRIG = 2, RJ_KF_HYBRID = 3 } rj_kfam;
typedef enum rj_knorm { RJ_KN_DIAG = 0, RJ_KN_DENSE = 1 } rj_knorm;

typedef struct rj_kfeat {
    int32_t fam;  /* rj_kfam */
    int32_t P;    /* projection rows */
    int32_t norm; /* rj_knorm */
    int32_t mb, m, n; /* RJ_KF_HYBRID: base rows, trig projections, sign features */
} rj_kfeat;

/* One role's lowered parameters, in double, in buffers the caller sized from rj_kfeat. The
 * caller pre-fills the common case, so klower sets only what differs: h0 = 0,
 * gamma = -1/2, gamma2 = 0, b = 0 and g = 1 (DIAG; the identity norm |x|^2). */
typedef struct rj_klowered {
    double h0, gamma, gamma2;
    double *b; /* P (EXP, and the mb base rows of HYBRID) */
    double *g; /* d (DIAG) or d x d (DENSE) */
    double *W; /* P x d */
} rj_klowered;

/*
 * Chunked control-variate estimators (RJ_TMPL_EVA) run on the exact-softmax kernel over an
 * augmented key set (runtime/exec_eva.c): for query i, a contiguous run of exact keys, plus
 * one pseudo-key per summarised chunk c (its mean key kbar_c, a logit offset loff_c, value
 * beta_c). The ops of a spec (rj_eva_ops_for: the principled or the official variant) say
 * which keys and chunks, and compute the summaries.
 */
typedef struct rj_eva_row {
    int64_t elo, ehi; /* exact keys [elo, ehi); causal: ehi = vis, each query up to its own */
    int64_t plo, phi; /* summarised whole chunks: [0, plo) and [phi, count) */
    int64_t lp, rp;   /* summarised pieces of chunks: [lp, elo) and [ehi, rp), each one
                         pseudo-key when not empty (the ops' piece summary) */
} rj_eva_row;

typedef struct rj_eva_ops {
    /* Whether a call of lq queries and lk (visible, compacted) keys with counts nvis is one
     * this variant defines: RFJIT_OK or the status and message of why not. */
    rfjit_status (*check)(const rj_spec *s, int64_t lq, int64_t lk, const int64_t *nvis,
                          rj_diag *dg);
    /* Chunk geometry for lk keys: returns the chunk count, *size their (nominal) size. */
    int64_t (*chunks)(const rj_spec *s, int64_t lk, int64_t *size);
    /* Query i's key sets when it sees keys 0 .. vis - 1 (vis >= 1). */
    void (*row)(const rj_spec *s, int64_t lk, int64_t i, int64_t vis, rj_eva_row *r);
    /* Per chunk: kbar (count x d), loff (count) and beta (count x dv), from the queries x
     * (lq x d) and keys y, values v (lk rows). Arguments as for attend. */
    void (*summaries)(const rj_spec *s, const double *x, int64_t lq, const double *y,
                      const double *v, int64_t lk, const int64_t *nvis, double *kbar, double *loff,
                      double *beta);
    /* The summary of the keys [lo, hi), a piece of a row (one kbar, loff, beta); NULL when
     * rows have no pieces. */
    void (*piece)(const rj_spec *s, const double *x, int64_t lq, const double *y, const double *v,
                  int64_t lk, const int64_t *nvis, int64_t lo, int64_t hi, double *kbar,
                  double *loff, double *beta);
} rj_eva_ops;

/* The EVA ops of an eva spec, by its variant. */
const rj_eva_ops *rj_eva_ops_for(const rj_spec *s);
extern const rj_eva_ops rj_eva_official_ops;
/* One chunk's summary over its keys [lo, hi) (est/eva.c): kbar = sum y_j / n and beta =
 * sum_j e^{l_j} v_j / sum_j e^{l_j} (0 for no key), l_j = mu.y_j - norm |y_j|^2/2 with
 * mu = half (qbar + kbar), qbar = sum xs_j / n, or kbar when xs is NULL. */
void rj_eva_summary(const rj_spec *s, const double *xs, const double *y, const double *v,
                    int64_t lo, int64_t hi, double n, double half, double norm, double *kbar,
                    double *beta);

/*
 * Block-sparse + low-rank (est/blocksparse.c): the block geometry and the choice of exact
 * blocks, shared by its double reference and its float32 executor
 * (runtime/exec_blocksparse.c) so that both take the same blocks. Keys are the visible ones,
 * compacted; key block b holds keys [b B, min((b + 1) B, lk)), B = sparse_block.
 */
/* Number of key blocks of lk keys. */
int64_t rj_bs_key_blocks(const rj_spec *s, int64_t lk);
/* Per key block: centroid cen (d) and radius rad = max_j |y_j - cen|. */
void rj_bs_key_bounds(const rj_spec *s, const double *y, int64_t lk, double *cen, double *rad);
/* The query block starting at i0 (a query that sees at least one key): its end, and in *nvb
 * the number of key blocks it sees (causal: up to and including its diagonal block, the one
 * holding its queries' last visible key, which every query of the block shares). */
int64_t rj_bs_query_block(const rj_spec *s, int64_t lq, int64_t lk, const int64_t *nvis, int64_t i0,
                          int64_t *nvb);
/* The exact key blocks of queries [i0, i1) (x: their rows start at x + i0 d) among the first
 * nvb key blocks: the sparse_exact largest logit bounds, ties to the lower index, ascending
 * into sel; returns their count. bound: scratch of nvb doubles. */
int64_t rj_bs_select(const rj_spec *s, const double *x, int64_t i0, int64_t i1, const double *cen,
                     const double *rad, int64_t nvb, double *bound, int64_t *sel);

typedef struct rj_est_ops {
    const char *name;
    int version;       /* bumped when the math or the parameter layout changes */
    rj_tmpl tmpl;
    unsigned flags;    /* RJ_EST_* */
    unsigned proj_kinds; /* bit (1u << RFJIT_PROJ_*) for each accepted projection kind */

    /* Feature dimension M for this spec (0 for exact and eva). */
    int64_t (*feature_dim)(const rj_spec *s);

    /* Whether the spec is usable; if not, write a one-line reason to why (n bytes). */
    bool (*valid)(const rj_spec *s, char *why, size_t n);

    /* Number of doubles of the parameter block `fit` fills. */
    size_t (*params_size)(const rj_spec *s);

    /*
     * Fill params from W (m x d row-major double; NULL for RJ_EST_NOPROJ), the seed (for
     * estimator-owned draws on its own Philox stream) and, for RJ_EST_FITTED, the statistics
     * of one (batch, head) or of a calibration sample (st is NULL otherwise). info may be NULL.
     * Errors: RFJIT_E_FIT (degenerate statistics), RFJIT_E_NOMEM.
     */
    rfjit_status (*fit)(const rj_spec *s, const double *W, uint64_t seed, const rj_stats *st,
                        double *params, rj_fit_info *info, rj_diag *dg);

    /* Feature map of one row x (d entries): phi(x) = e^{*h} f, f has feature_dim entries.
     * NULL when tmpl != RJ_TMPL_LINEAR. Pure; safe to call concurrently. */
    void (*features)(const rj_spec *s, const double *params, rj_role role, const double *x,
                     double *h, double *f);

    /* Own attention for one (batch, head) when tmpl != RJ_TMPL_LINEAR (NULL otherwise):
     * x: lq x d, y: lk x d (scaled), v: lk x dv, out: lq x dv, all row-major double. nvis
     * (lq entries, or NULL): query i sees keys 0 .. nvis[i] - 1, non-decreasing in i and at
     * most lk; NULL is every key, or keys j <= i when causal (then lq == lk). The keys are
     * the visible ones of the call, compacted (masked keys removed), so nvis describes any
     * mix of key mask, padding and bottom-right causal offset. */
    rfjit_status (*attend)(const rj_spec *s, const double *params, const double *x, int64_t lq,
                           const double *y, const double *v, int64_t lk, const int64_t *nvis,
                           double *out, rj_diag *dg);

    /* Var[phi_q(x)^T phi_k(y)] in closed form for this spec's m with i.i.d. projections,
     * for the fitted params; NaN if the estimator has no closed form (eva); 0 for exact. */
    double (*variance)(const rj_spec *s, const double *params, const double *x,
                       const double *y);

    /* Closed-form objectives of spec 4.1 for one projection (m = 1) over all lq x lk pairs:
     * *obj = mean ln E[(f1 f2)^2], *var_obj = mean ln Var[f1 f2]. NULL if not fitted. */
    rfjit_status (*objective)(const rj_spec *s, const double *params, const double *x,
                              int64_t lq, const double *y, int64_t lk, double *obj,
                              double *var_obj, rj_diag *dg);

    /* Work per token (one query and one key): flops and bytes touched, for ranking. */
    void (*cost)(const rj_spec *s, double *flops, double *bytes);

    /* The JIT feature family for this spec; NULL iff tmpl != RJ_TMPL_LINEAR (blocksparse
     * uses positive's, est/positive.c). */
    void (*kfeat)(const rj_spec *s, rj_kfeat *kf);
    /* Lower fitted params to one role's kernel parameters (rj_klowered); NULL iff kfeat is. */
    void (*klower)(const rj_spec *s, const double *params, rj_role role, rj_klowered *out);

    /* RJ_TMPL_EVA only: what the runtime composes the softmax kernel with (NULL otherwise). */
    const rj_eva_ops *eva;

    /* |JIT - reference| <= ref_tol * max|reference| over an attention output or a feature
     * block: the float32 accumulation error the kernels promise against the double
     * reference. tests/jit/test_jit_equiv.c and test_jit_estimate.c check every estimator
     * against this field. */
    double ref_tol;
} rj_est_ops;

/* The registry: fixed order (also the tie-break order for "auto"). */
extern const rj_est_ops *const rj_est_registry[];
extern const int rj_est_count;

/* Look an estimator up by name; NULL if unknown. */
const rj_est_ops *rj_est_find(const char *name);

/* Reference attention for one (batch, head), whatever the template: rj_ref_linear over the
 * estimator's features for RJ_TMPL_LINEAR, the estimator's own attend otherwise. Arguments as
 * for `attend`. This is how code outside gen/ reaches the reference loops. */
rfjit_status rj_est_ref_attend(const rj_spec *s, const double *params, const double *x, int64_t lq,
                               const double *y, const double *v, int64_t lk, const int64_t *nvis,
                               double *out, rj_diag *dg);

/* Check a visible-key count array of `attend` (NULL passes, as the rule it stands for when
 * lq == lk or bidirectional): nvis[i] in [0, lk], non-decreasing. */
rfjit_status rj_est_check_nvis(const rj_spec *s, int64_t lq, int64_t lk, const int64_t *nvis,
                               rj_diag *dg);

/* The visible-key counts of `attend` for a call whose nk visible keys sit at positions pos
 * (ascending) among lk: query i sees those at positions <= i + qoff when causal (qoff =
 * lk - lq, bottom-right), all of them when bidirectional. Returns NULL when that is the
 * rule `attend` follows without counts (every key visible and no offset), nvis otherwise
 * (filled, lq entries). */
const int64_t *rj_est_nvis(const rj_spec *s, int64_t lq, int64_t lk, int64_t qoff,
                           const int64_t *pos, int64_t nk, int64_t *nvis);

/* The estimator of a descriptor that names none (include/rfjit.h: NULL = "positive"). */
const rj_est_ops *rj_est_default(void);

#endif
