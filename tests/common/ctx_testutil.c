/* SPDX-License-Identifier: MIT */
/* This file makes the contexts the tests share: no disk cache and no wisdom file. */
#include "ctx_testutil.h"

#include <criterion/criterion.h>

rfjit_ctx *tu_ctx_isolated(void)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK, "%s", rfjit_ctx_last_error(NULL));
    return c;
}
