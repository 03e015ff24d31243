/* SPDX-License-Identifier: MIT */
/* This file holds the context-free public calls: status strings, version, estimator names,
 * tensor helpers. */
#include "rfjit.h"

#include "est/est.h"

const char *rfjit_status_string(rfjit_status s)
{
    switch (s) {
#define RJ_STATUS_CASE_(name, num, text)                                                         \
    case name:                                                                                   \
        return text;
        RFJIT_STATUS_LIST(RJ_STATUS_CASE_)
#undef RJ_STATUS_CASE_
    }
    return "unknown status";
}

int rfjit_version(void)
{
    return RFJIT_VERSION_NUMBER;
}

int rfjit_version_number(void)
{
    return RFJIT_VERSION_NUMBER;
}

const char *rfjit_version_string(void)
{
    return RFJIT_VERSION_STRING;
}

size_t rfjit_escape(char *dst, size_t len, const char *src)
{
    if (!dst || len == 0)
        return 0;
    return rj_escape(dst, len, src ? src : "");
}

const char *rfjit_estimator_name(int index)
{
    if (index < 0 || index >= rj_est_count)
        return NULL;
    return rj_est_registry[index]->name;
}

rfjit_tensor rfjit_tensor_contiguous(float *data, int64_t b, int64_t h, int64_t l, int64_t dim)
{
    rfjit_tensor t = {data, {b, h, l, dim}, {h * l * dim, l * dim, dim, 1}};
    return t;
}
