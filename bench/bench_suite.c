/* SPDX-License-Identifier: MIT */
/*
 * This file lists the rows of `rfjit bench`'s suites:
 *   headline  d = dv = 64, m = 256, one head and one thread unless stated: positive and
 *             exact at L = 4096 (both directions), the exact/positive crossover at
 *             L = 256..2048, saderf and hybrid at L = 4096 beside positive, positive at
 *             L = 16384 on one and two threads, positive and exact at L = 4096 (both
 *             directions) on two threads; then H = 8 heads in one call on one and two
 *             threads: positive at L = 4096 (both directions), exact bidirectional at
 *             L = 1024; and exact with bf16 compute (RFJIT_BF16) beside float32 exact at
 *             L = 4096 and 1024, both directions, one thread, and L = 4096 bidirectional on
 *             two threads
 *   scaling   bidirectional positive for L = 256..16384 and exact for L = 256..8192 (the
 *             plot's first panel), with the peers
 *   error     every linear estimator with a JIT kernel for m = 16..1024 at L = 1024 (the
 *             plot's second panel), no peers
 *   smoke     the whole pipeline at L = 256, d = 16, m = 32, two runs, exact with bf16
 *             compute bidirectional, and positive on two heads: seconds, for the tests
 *   compile   the quick start's kernels (positive and exact, both directions, L = 4096): the
 *             cold compile and disk load of each kernel over 21 samples, and its execute
 *             time, no peers (docs/performance.md)
 *   serving   no rows: bench/bench_serving.c runs its own ratios
 *   decode, decode-smoke   no rows: bench/bench_decode.c times the decode API itself
 *   real, real-smoke   no rows: bench/bench_real.c runs every estimator on real heads
 * Rows sharing a shape are adjacent, so the harness draws the data and runs the peers once.
 */
#include "bench.h"

#include <string.h>

static int add(bench_row *rows, int n, int cap, bench_row r)
{
    if (n < cap)
        rows[n] = r;
    return n + 1;
}

static bench_row row(const char *est, int causal, int L, int d, int m, int threads, int peers,
                     int compile)
{
    return (bench_row){est, causal, L, d, d, m, threads, peers, compile, 1, RFJIT_F32};
}

static bench_row with_heads(bench_row r, int heads)
{
    r.heads = heads;
    return r;
}

/* r with bf16 compute: exact's peers are SDPA in float32 and bf16, positive's the FAVOR+
 * peers of its float32 row. */
static bench_row bf16(bench_row r)
{
    r.compute = RFJIT_BF16;
    r.peers = 1;
    r.compile = 0;
    return r;
}

int bench_row_heads(const bench_row *r)
{
    return r->heads > 1 ? r->heads : 1;
}

int bench_suite_rows(const char *suite, bench_row *rows, int cap)
{
    int n = 0;
    if (!strcmp(suite, "headline")) {
        for (int causal = 0; causal < 2; causal++) {
            n = add(rows, n, cap, row("positive", causal, 4096, 64, 256, 1, 1, 1));
            if (!causal)
                n = add(rows, n, cap, bf16(row("positive", 0, 4096, 64, 256, 1, 1, 0)));
            n = add(rows, n, cap, row("exact", causal, 4096, 64, 256, 1, 1, 1));
            n = add(rows, n, cap, bf16(row("exact", causal, 4096, 64, 256, 1, 1, 0)));
            if (!causal) {
                n = add(rows, n, cap, row("saderf", 0, 4096, 64, 256, 1, 1, 1));
                n = add(rows, n, cap, row("hybrid", 0, 4096, 64, 256, 1, 1, 1));
            }
        }
        for (int L = 256; L <= 2048; L *= 2) {
            n = add(rows, n, cap, row("exact", 0, L, 64, 256, 1, 1, 0));
            if (L == 1024)
                n = add(rows, n, cap, bf16(row("exact", 0, L, 64, 256, 1, 1, 0)));
            n = add(rows, n, cap, row("positive", 0, L, 64, 256, 1, 1, 0));
        }
        n = add(rows, n, cap, bf16(row("exact", 1, 1024, 64, 256, 1, 1, 0)));
        n = add(rows, n, cap, row("positive", 0, 16384, 64, 256, 1, 1, 0));
        n = add(rows, n, cap, row("positive", 0, 16384, 64, 256, 2, 1, 0));
        /* one head on both cores: exact splits its queries across the pool */
        for (int causal = 0; causal < 2; causal++) {
            n = add(rows, n, cap, row("positive", causal, 4096, 64, 256, 2, 1, 0));
            if (!causal)
                n = add(rows, n, cap, bf16(row("positive", 0, 4096, 64, 256, 2, 1, 0)));
            n = add(rows, n, cap, row("exact", causal, 4096, 64, 256, 2, 1, 0));
            if (!causal)
                n = add(rows, n, cap, bf16(row("exact", 0, 4096, 64, 256, 2, 1, 0)));
        }
        /* the B x H = 8: every head in one call, which spreads heads over the pool */
        for (int causal = 0; causal < 2; causal++)
            for (int threads = 1; threads <= 2; threads++) {
                const bench_row p =
                    with_heads(row("positive", causal, 4096, 64, 256, threads, 1, 0), 8);
                n = add(rows, n, cap, p);
                if (!causal)
                    n = add(rows, n, cap, bf16(p));
            }
        for (int threads = 1; threads <= 2; threads++)
            n = add(rows, n, cap, with_heads(row("exact", 0, 1024, 64, 256, threads, 1, 0), 8));
    } else if (!strcmp(suite, "scaling")) {
        for (int L = 256; L <= 16384; L *= 2) {
            n = add(rows, n, cap, row("positive", 0, L, 64, 256, 1, 1, 0));
            if (L <= 8192)
                n = add(rows, n, cap, row("exact", 0, L, 64, 256, 1, 1, 0));
        }
    } else if (!strcmp(suite, "error")) {
        for (int m = 16; m <= 1024; m *= 2)
            for (int e = 0; rfjit_estimator_name(e); e++) {
                const char *name = rfjit_estimator_name(e);
                /* exact has no m; eva's error is set by its window and chunks */
                if (strcmp(name, "exact") && strcmp(name, "eva"))
                    n = add(rows, n, cap, row(name, 0, 1024, 64, m, 1, 0, 0));
            }
    } else if (!strcmp(suite, "serving") || !strcmp(suite, "decode") ||
               !strcmp(suite, "decode-smoke") || !strcmp(suite, "real") ||
               !strcmp(suite, "real-smoke") || !strcmp(suite, "eva")) {
        return 0;
    } else if (!strcmp(suite, "compile")) {
        for (int causal = 0; causal < 2; causal++) {
            n = add(rows, n, cap, row("positive", causal, 4096, 64, 256, 1, 0, 1));
            n = add(rows, n, cap, row("exact", causal, 4096, 64, 256, 1, 0, 1));
        }
    } else if (!strcmp(suite, "smoke")) {
        for (int causal = 0; causal < 2; causal++) {
            n = add(rows, n, cap, row("positive", causal, 256, 16, 32, 1, 1, 1));
            if (!causal)
                n = add(rows, n, cap, bf16(row("positive", 0, 256, 16, 32, 1, 1, 0)));
            n = add(rows, n, cap, row("exact", causal, 256, 16, 32, 1, 1, 1));
            if (!causal)
                n = add(rows, n, cap, bf16(row("exact", 0, 256, 16, 32, 1, 1, 0)));
        }
        for (int causal = 0; causal < 2; causal++)
            n = add(rows, n, cap, with_heads(row("positive", causal, 256, 16, 32, 1, 1, 0), 2));
    } else {
        return -1;
    }
    return n;
}

int bench_suite_compile_samples(const char *suite)
{
    /* a compile takes tens of ms on a shared machine: a median needs many */
    return !strcmp(suite, "smoke") ? 1 : !strcmp(suite, "compile") ? 21 : 3;
}

int bench_suite_runs(const char *suite)
{
    if (!strcmp(suite, "real")) /* executes of a few hundred microseconds: more, for a median */
        return 20;
    return !strcmp(suite, "smoke") || !strcmp(suite, "decode-smoke") || !strcmp(suite, "real-smoke")
               ? 2
               : 5;
}
