/* SPDX-License-Identifier: MIT */
/* This file holds the public calls that need nothing but the foundation: status strings,
 * versions and escaping. */
#include "rfjit.h"

#include "core/base.h"

const char *rj_status_text(rfjit_status s)
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

const char *rfjit_status_string(rfjit_status s)
{
    return rj_status_text(s);
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
