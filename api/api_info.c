/* SPDX-License-Identifier: MIT */
/* This file implements rfjit_info: the machine and library as rfjit sees them, the first
 * thing to paste into a bug report. */
#include "api/facade.h"
#include "runtime/wisdom.h"

#include <stdio.h>
#include <string.h>

/* Append printf output to buf at *pos; past the end only *pos grows (so the size needed is
 * known afterwards). */
static void appendf(char *buf, size_t len, size_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void appendf(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(*pos < len ? buf + *pos : NULL, *pos < len ? len - *pos : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        *pos += (size_t)n;
}

rfjit_status rfjit_info(rfjit_ctx *ctx, int json, char *buf, size_t len)
{
    if (!ctx)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG, "rfjit_info: ctx is NULL");
    if (!buf || len == 0)
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG, "rfjit_info: NULL or empty buffer");
    const rj_host *h = &ctx->host;
    const rj_topo *t = &ctx->topo;
    size_t pos = 0;
    if (json) {
        appendf(buf, len, &pos,
                "{\"rfjit_version\":\"%s\",\"llvm_version\":\"%s\",\"triple\":\"%s\","
                "\"cpu\":\"%s\",\"features\":\"%s\",\"cores\":%d,\"pus\":%d,\"numa_nodes\":%d,"
                "\"l1d_bytes\":%lld,\"l1d_source\":\"%s\",\"l2_bytes\":%lld,"
                "\"l2_source\":\"%s\",\"l3_bytes\":%lld,\"l3_source\":\"%s\","
                "\"l3_sharing_cores\":%d,\"backend\":\"jit\",\"isa\":\"%s\",\"jit_cpu\":\"%s\","
                "\"vector_lanes\":%d,\"estimators\":[",
                RFJIT_VERSION_STRING, h->llvm_version, h->triple, h->cpu, h->features, t->cores,
                t->pus, t->numa_nodes, (long long)t->l1d, t->l1d_src, (long long)t->l2,
                t->l2_src, (long long)t->l3, t->l3_src, t->l3_sharing_cores, ctx->isa.name,
                ctx->isa.cpu, ctx->isa.max_vw);
        for (int i = 0; i < rj_est_count; i++)
            appendf(buf, len, &pos, "%s\"%s\"", i ? "," : "", rj_est_registry[i]->name);
        pthread_mutex_lock(&ctx->lock);
        const size_t nw = rj_wisdom_count(ctx->wisdom);
        pthread_mutex_unlock(&ctx->lock);
        appendf(buf, len, &pos,
                "],\"wisdom_file\":\"%s\",\"wisdom_records\":%zu,"
                "\"wisdom_file_ignored\":%s,\"wisdom_bad_lines\":%d}",
                ctx->wisdom_path ? ctx->wisdom_path : "", nw,
                ctx->wisdom_ignored ? "true" : "false", ctx->wisdom_bad_lines);
    } else {
        appendf(buf, len, &pos,
                "rfjit %s, LLVM %s\n"
                "target:     %s\n"
                "cpu:        %s\n"
                "features:   %s\n"
                "topology:   %d cores, %d PUs, %d NUMA nodes\n"
                "caches:     L1d %lld KiB (%s), L2 %lld KiB (%s), L3 %lld KiB (%s, shared by %d "
                "cores)\n"
                "backend:    jit, ISA %s (LLVM cpu %s, %d float lanes%s), reference as fallback\n"
                "estimators:",
                RFJIT_VERSION_STRING, h->llvm_version, h->triple, h->cpu, h->features, t->cores,
                t->pus, t->numa_nodes, (long long)t->l1d / 1024, t->l1d_src,
                (long long)t->l2 / 1024, t->l2_src, (long long)t->l3 / 1024, t->l3_src,
                t->l3_sharing_cores, ctx->isa.name, ctx->isa.cpu, ctx->isa.max_vw,
                ctx->isa.fma ? ", FMA" : "");
        for (int i = 0; i < rj_est_count; i++)
            appendf(buf, len, &pos, " %s", rj_est_registry[i]->name);
        pthread_mutex_lock(&ctx->lock);
        const size_t nw = rj_wisdom_count(ctx->wisdom);
        pthread_mutex_unlock(&ctx->lock);
        appendf(buf, len, &pos, "\nwisdom:     %s, %zu record(s)%s",
                ctx->wisdom_path && ctx->wisdom_path[0] ? ctx->wisdom_path : "none", nw,
                ctx->wisdom_ignored ? ", file ignored (another machine or build, or damaged)"
                                    : "");
        if (ctx->wisdom_bad_lines)
            appendf(buf, len, &pos, ", %d malformed line(s) dropped", ctx->wisdom_bad_lines);
        appendf(buf, len, &pos, "\n");
    }
    if (pos >= len)
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG,
                            "rfjit_info: buffer of %zu bytes too small, need %zu", len,
                            pos + 1);
    return RFJIT_OK;
}
