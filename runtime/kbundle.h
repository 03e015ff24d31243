/* SPDX-License-Identifier: MIT */
/*
 * This file is the container of a kernel's objects: a kernel compiled in parts
 * (gen.h rj_gen_kernel) is one relocatable object per part, kept together as one blob in the
 * memory and disk caches. A blob is either a bare object (a kernel of one part, and every
 * entry older caches hold) or "RJKB", the part count n (u32, little-endian), n sizes (u64)
 * and the n objects one after another.
 */
#ifndef RJ_KBUNDLE_H
#define RJ_KBUNDLE_H

#include "core/base.h"

#include <stddef.h>

#define RJ_KBUNDLE_MAX 16

/* One blob of the n objects obj[i] (size[i] bytes each), rj_alloc'd into *out (*len bytes);
 * n == 1 gives the object itself. Errors: RFJIT_E_NOMEM, RFJIT_E_INTERNAL (n outside 1 ..
 * RJ_KBUNDLE_MAX). */
rfjit_status rj_kbundle_pack(void *const *obj, const size_t *size, int n, void **out, size_t *len,
                             rj_diag *dg);

/* The objects of a blob, pointing into it: *n of them. A bare object is one. Errors:
 * RFJIT_E_JIT (a header that does not fit the blob's length). */
rfjit_status rj_kbundle_open(const void *blob, size_t len, const void **obj, size_t *size, int *n,
                             rj_diag *dg);

#endif
