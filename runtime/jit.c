/* SPDX-License-Identifier: MIT */
/*
 * This file is the runtime's only door to LLVM. In 0.1 it reports the host as LLVM sees it
 * (the CPU name and feature string that code generation will use, which also reflect OS
 * support for AVX-512 state); the ORC LLJIT pipeline joins it in the next release.
 */
#include "host.h"

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

#include <stdio.h>
#include <string.h>

static void copy_message(char *dst, size_t n, char *msg)
{
    snprintf(dst, n, "%s", msg ? msg : "");
    if (msg)
        LLVMDisposeMessage(msg);
}

rfjit_status rj_jit_host_query(rj_host *h, rj_diag *dg)
{
    (void)dg;
    memset(h, 0, sizeof *h);
    copy_message(h->cpu, sizeof h->cpu, LLVMGetHostCPUName());
    copy_message(h->features, sizeof h->features, LLVMGetHostCPUFeatures());
    copy_message(h->triple, sizeof h->triple, LLVMGetDefaultTargetTriple());
    unsigned major = 0, minor = 0, patch = 0;
    LLVMGetVersion(&major, &minor, &patch);
    snprintf(h->llvm_version, sizeof h->llvm_version, "%u.%u.%u", major, minor, patch);
    return RFJIT_OK;
}
