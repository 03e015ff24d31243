/* SPDX-License-Identifier: MIT */
/*
 * This file is the interface between the generator (rj_gen_kernel) and the kernel templates:
 * each template emits the body of `void fn(const rj_kargs *a)` for one rj_kplan into a
 * function whose entry the caller prepared, using the unpacked arguments.
 */
#ifndef RJ_TMPL_H
#define RJ_TMPL_H

#include "gen/ir.h"
#include "core/kabi.h"
#include "gen/kplan.h"

typedef struct rj_parts rj_parts; /* gen.c: which parts the module being built holds */

typedef struct rj_kfn {
    rj_ir *ir;
    const rj_kplan *kp;
    rj_v a;                /* the rj_kargs pointer */
    rj_v arg[RJ_KA_COUNT]; /* the rj_kargs fields, loaded once */
    rj_v scale;            /* d^{-1/4} as a float constant */
    rj_parts *parts;
} rj_kfn;

/*
 * A part of the kernel: body(f, p) emitted as a function of its own, `void sym_p<id>(const
 * rj_kargs *, p...)`, called here. Each part can be built into a module of its own and
 * compiled on its own thread (runtime/jit.c), which is what the split is for: a cold compile
 * costs per instruction, and parts compile side by side. The body sees the kernel's arguments
 * reloaded and the n values p (integers, pointers, i1) as parameters, so it must derive all
 * else from them: it runs in another function, possibly of another module. ids are small and
 * fixed per template; a part inside a part is emitted inline.
 */
#define RJ_PART_MAX_PARAMS 12
typedef void (*rj_part_body)(rj_kfn *f, const rj_v *p);
void rj_tmpl_part(rj_kfn *f, int id, rj_part_body body, int n, const rj_v *p);

/* Row-tile helpers shared by the templates (tmpl_pack.c). Rows row0 .. row0 + n - 1 of src
 * (stride in floats) scaled by `scale` (NULL: unscaled); rows n .. T-1 are zero. */
void rj_tmpl_pack_t(rj_kfn *f, rj_v src, rj_v stride, rj_v row0, rj_v n, rj_v dst,
                    rj_v scale);                                                    /* d x T */
void rj_tmpl_pack_rows(rj_kfn *f, rj_v src, rj_v stride, rj_v row0, rj_v n, rj_v dst,
                       rj_v scale);                                                 /* T x d */
void rj_tmpl_pack_v(rj_kfn *f, rj_v src, rj_v stride, rj_v row0, rj_v n, rj_v dst);   /* T x dvp */
/* Whether a tile of n rows may be read in place: n == T, and the inputs are float32 (half
 * rows are always packed, which widens them). */
rj_v rj_tmpl_whole_tile(rj_kfn *f, rj_v n);
/* Where a tile's rows are read: in place, rows row0 .. of src (row stride `stride`), when
 * `full`; else the packed copy (row stride ps). *at, *at_s: the pointer and its row stride. */
void rj_tmpl_tile_at(rj_kfn *f, rj_v full, rj_v src, rj_v stride, rj_v row0, rj_v packed,
                     int64_t ps, rj_v *at, rj_v *at_s);
/* min(T, len - row0) as i64. */
rj_v rj_tmpl_rows_left(rj_kfn *f, rj_v len, rj_v row0);
/* Lane mask of the vector of tokens t0 .. t0 + vw - 1: lane l is valid iff t0 + l < n. */
rj_v rj_tmpl_lane_valid(rj_kfn *f, rj_v t0, rj_v n);
/*
 * The visibility of the key tile at kt (n rows) into vis (T floats, 1 or 0): key t is visible
 * iff t < n and, when the call brings a key mask (kabi.h km), km[kt + t] != 0. Returns the
 * number of visible keys (i64). The mask pointer is tested once per tile, never per key, and
 * without a mask no byte is read; vis is then written only when `always` (a template that
 * reads vis on every tile), else left as it was (one that reads it only for a count < n).
 */
rj_v rj_tmpl_key_vis(rj_kfn *f, rj_v kt, rj_v n, rj_v vis, int always);
/* The lanes of the vector of keys t0 .. t0 + vw - 1 that vis (rj_tmpl_key_vis) marks visible. */
rj_v rj_tmpl_vis_lanes(rj_kfn *f, rj_v vis, rj_v t0);
/* Fill n floats at p with the constant x (n a multiple of vw). */
void rj_tmpl_fill(rj_kfn *f, rj_v p, int64_t n, double x);
/* Store out rows row0 .. row0 + n - 1: out[t, c] = num[c, t] * rden[t] (num dvp x T). */
void rj_tmpl_store_out(rj_kfn *f, rj_v num, rj_v rden, rj_v row0, rj_v n);

void rj_tmpl_linear(rj_kfn *f);
void rj_tmpl_softmax(rj_kfn *f);
void rj_tmpl_features(rj_kfn *f); /* kabi.h RJ_KK_FEAT */
void rj_tmpl_gram(rj_kfn *f);     /* kabi.h RJ_KK_GRAM */
void rj_tmpl_peak(rj_kfn *f);     /* kabi.h RJ_KK_PEAK */

#endif
