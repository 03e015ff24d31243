/* SPDX-License-Identifier: MIT */
/*
 * This file is the libFuzzer target of the wisdom parser (runtime/wisdom.c,
 * rj_wisdom_from_text: everything rj_wisdom_load does after reading the file), in both modes,
 * with the record check a context installs (tuner/tune_record.c: every number of a tuning
 * record parsed with overflow detection and checked as rfjit_plan_create would).
 * Invariants: what a lenient parse keeps serialises to text that parses strictly to the same
 * text again (the store's output is always canonical); a strict parse that succeeds keeps
 * every record a lenient one keeps.
 */
#include "tuner/tune_record.h"
#include "runtime/wisdom.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fuzzer's inputs must be able to name this signature to get past the header. */
static const char signature[] = "rfjit=0.1.0 est=0 cpu=fuzz llvm=19 features=";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rj_wisdom *lenient = NULL, *strict = NULL, *again = NULL;
    if (rj_wisdom_create(signature, &lenient) != RFJIT_OK ||
        rj_wisdom_create(signature, &strict) != RFJIT_OK ||
        rj_wisdom_create(signature, &again) != RFJIT_OK)
        abort();
    rj_wisdom_set_check(lenient, rj_tune_record_ok, NULL);
    rj_wisdom_set_check(strict, rj_tune_record_ok, NULL);
    rj_wisdom_set_check(again, rj_tune_record_ok, NULL);
    rj_diag dg = {{0}};
    if (rj_wisdom_from_text(lenient, (const char *)data, size, 0, NULL, &dg) != RFJIT_OK)
        abort(); /* lenient mode drops what it cannot read, it never fails (but for NOMEM) */
    const rfjit_status st = rj_wisdom_from_text(strict, (const char *)data, size, 1, NULL, &dg);
    if (st == RFJIT_OK && rj_wisdom_count(strict) != rj_wisdom_count(lenient))
        abort();
    char *text = NULL, *text2 = NULL;
    size_t len = 0, len2 = 0;
    if (rj_wisdom_to_text(lenient, &text, &len, &dg) != RFJIT_OK)
        abort();
    if (rj_wisdom_from_text(again, text, len, 1, NULL, &dg) != RFJIT_OK)
        abort();
    if (rj_wisdom_to_text(again, &text2, &len2, &dg) != RFJIT_OK || len != len2 ||
        memcmp(text, text2, len) != 0)
        abort();
    rj_free(text);
    rj_free(text2);
    rj_wisdom_destroy(lenient);
    rj_wisdom_destroy(strict);
    rj_wisdom_destroy(again);
    return 0;
}
