/* SPDX-License-Identifier: MIT */
/*
 * This file checks core/philox.c: the bijection against Random123's published known answers,
 * the counter and key layout, the uniforms' range and moments, the normals' first two moments
 * (5 standard errors), Box-Muller's fixed output order, prefix and determinism properties, and
 * the libm-free log/cos/sin against libm in ulps.
 */
#include <criterion/criterion.h>

#include "core/philox.h"
#include "core/testing.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

TestSuite(philox);

#define TWO_PI 6.283185307179586 /* M_PI is not in strict C11 + POSIX */

/* Random123 1.14, tests/kat_vectors, the three "philox4x32 10" lines: counter (4 words), key
 * (2 words), output (4 words). */
Test(philox, random123_known_answers)
{
    static const uint32_t ctr[3][4] = {{0, 0, 0, 0},
                                       {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
                                       {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}};
    static const uint32_t key[3][2] = {
        {0, 0}, {0xffffffff, 0xffffffff}, {0xa4093822, 0x299f31d0}};
    static const uint32_t want[3][4] = {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
                                        {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
                                        {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}};
    for (int t = 0; t < 3; t++) {
        uint32_t out[4];
        rj_philox4x32(ctr[t], key[t], out);
        for (int i = 0; i < 4; i++)
            cr_assert_eq(out[i], want[t][i], "vector %d word %d: %08x, want %08x", t, i,
                         (unsigned)out[i], (unsigned)want[t][i]);
    }
}

/* Element 2b + i of a row comes from block b: ctr = (b, row, stream, 0), key = (seed low,
 * seed high), words (2i, 2i + 1) -> top 53 bits of the 64-bit pair, times 2^-53. */
Test(philox, counter_and_key_layout)
{
    const uint64_t seed = 0x0123456789abcdefull;
    const uint32_t stream = 5, row = 77;
    double u[6];
    rj_uniforms(seed, stream, row, u, 6);
    const uint32_t key[2] = {0x89abcdefu, 0x01234567u};
    for (uint32_t b = 0; b < 3; b++) {
        const uint32_t ctr[4] = {b, row, stream, 0};
        uint32_t o[4];
        rj_philox4x32(ctr, key, o);
        for (int i = 0; i < 2; i++) {
            const uint64_t k = ((uint64_t)o[2 * i] << 32 | o[2 * i + 1]) >> 11;
            cr_assert_eq(u[2 * b + i], (double)k * 0x1.0p-53, "block %u element %d", b, i);
        }
    }
}

Test(philox, uniforms_range_and_moments)
{
    enum { N = 1000000 };
    double *u = malloc(sizeof(double) * N);
    cr_assert(u);
    rj_uniforms(9, RJ_STREAM_TEST, 0, u, N);
    double s1 = 0, s2 = 0;
    for (int i = 0; i < N; i++) {
        cr_assert(u[i] > 0 && u[i] < 1, "u[%d] = %.17g (seed 9)", i, u[i]);
        s1 += u[i];
        s2 += (u[i] - 0.5) * (u[i] - 0.5);
    }
    /* U(0,1): mean 1/2, var 1/12; se(mean) = sqrt(1/12 / N), se(var) = sqrt((1/80 - 1/144) / N)
     * (fourth central moment 1/80). */
    const double mean = s1 / N, var = s2 / N;
    cr_assert_leq(fabs(mean - 0.5), 5 * sqrt(1.0 / 12 / N), "mean %.6f (seed 9)", mean);
    cr_assert_leq(fabs(var - 1.0 / 12), 5 * sqrt((1.0 / 80 - 1.0 / 144) / N),
                  "var %.6f (seed 9)", var);
    free(u);
}

Test(philox, normals_moments)
{
    enum { N = 1000000 };
    double *z = malloc(sizeof(double) * N);
    cr_assert(z);
    rj_normals(42, RJ_STREAM_TEST, 3, z, N);
    double s1 = 0, s2 = 0;
    for (int i = 0; i < N; i++) {
        s1 += z[i];
        s2 += z[i] * z[i];
    }
    const double mean = s1 / N, var = s2 / N - mean * mean;
    /* N(0, 1): se(mean) = 1/sqrt(N); se(sample variance) = sqrt(2/N) (E z^4 - 1 = 2) */
    cr_log_info("normals: mean %.5f (5 se %.5f), var %.5f (5 se %.5f)", mean, 5 / sqrt(N), var,
                5 * sqrt(2.0 / N));
    cr_assert_leq(fabs(mean), 5 / sqrt(N), "mean %g (seed 42, row 3)", mean);
    cr_assert_leq(fabs(var - 1), 5 * sqrt(2.0 / N), "var %g (seed 42, row 3)", var);
    free(z);
}

/* Box-Muller with both outputs in a fixed order: z_2i = rho cos(2 pi u_(2i+1)), z_(2i+1) = rho
 * sin(2 pi u_(2i+1)), rho = sqrt(-2 ln u_2i), over the same row's uniforms. */
Test(philox, box_muller_order)
{
    enum { N = 1001 };
    static double u[N + 1], z[N];
    rj_uniforms(11, RJ_STREAM_DATA, 2, u, N + 1);
    rj_normals(11, RJ_STREAM_DATA, 2, z, N);
    for (int i = 0; i < N; i += 2) {
        const double rho = sqrt(-2 * log(u[i])), th = TWO_PI * u[i + 1];
        cr_assert_leq(fabs(z[i] - rho * cos(th)), 1e-14 * (1 + rho), "z[%d]", i);
        if (i + 1 < N)
            cr_assert_leq(fabs(z[i + 1] - rho * sin(th)), 1e-14 * (1 + rho), "z[%d]", i + 1);
    }
}

Test(philox, determinism_prefix_and_independence)
{
    double a[64], b[64], c[64];
    rj_normals(42, RJ_STREAM_TEST, 3, a, 64);
    rj_normals(42, RJ_STREAM_TEST, 3, b, 64);
    cr_assert_eq(memcmp(a, b, sizeof a), 0, "same (seed, stream, row) must give the same bits");
    rj_normals(42, RJ_STREAM_TEST, 3, c, 5); /* odd n: a prefix of the longer draw */
    cr_assert_eq(memcmp(a, c, 5 * sizeof(double)), 0);
    const struct {
        uint64_t seed;
        uint32_t stream, row;
    } other[] = {{42, RJ_STREAM_TEST, 4}, {42, RJ_STREAM_PROJ, 3}, {43, RJ_STREAM_TEST, 3},
                 {42 + (1ull << 32), RJ_STREAM_TEST, 3}};
    for (size_t t = 0; t < sizeof other / sizeof *other; t++) {
        rj_normals(other[t].seed, other[t].stream, other[t].row, b, 64);
        int same = 0;
        for (int i = 0; i < 64; i++)
            same += a[i] == b[i];
        cr_assert_eq(same, 0, "case %zu: %d of 64 normals equal the reference draw", t, same);
    }
}

static double ulp_err(double got, double want)
{
    if (got == want)
        return 0;
    if (isnan(got) || isnan(want))
        return INFINITY;
    const double aw = fabs(want);
    const double ulp = aw < DBL_MIN ? 0x1.0p-1074 : nextafter(aw, INFINITY) - aw;
    return fabs(got - want) / ulp;
}

/* xorshift64 for test points only (independent of the code under test) */
static uint64_t next_u64(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

Test(philox, log_matches_libm)
{
    uint64_t st = 0x9e3779b97f4a7c15ull;
    double worst = 0, at = 0;
    for (int i = 0; i < 300000; i++) {
        const uint64_t r = next_u64(&st);
        double x;
        switch (i % 3) {
        case 0: /* any positive finite double, subnormals included */
            x = 0;
            while (!(x > 0) || isinf(x)) {
                const uint64_t b = next_u64(&st) & 0x7fffffffffffffffull;
                memcpy(&x, &b, sizeof x);
            }
            break;
        case 1: /* near 1, where ln x ~ x - 1 is small and cancellation-prone */
            x = 1 + ((double)(r >> 11) * 0x1.0p-53 - 0.5) * 0x1.0p-10;
            break;
        default: /* the Box-Muller range (0, 1) */
            x = ((double)(r >> 11) + 1) * 0x1.0p-53;
        }
        const double e = ulp_err(rj_log(x), log(x));
        if (e > worst) {
            worst = e;
            at = x;
        }
    }
    cr_log_info("rj_log: worst %.2f ulp at %.17g", worst, at);
    cr_assert_leq(worst, 4, "rj_log(%.17g) = %.17g, libm %.17g", at, rj_log(at), log(at));
    const double special[] = {1, 2, 0.5, DBL_MAX, DBL_MIN, 0x1.0p-1074, 2.718281828459045, 0x1.6a09e667f3bccp+0,
                              0x1.6a09e667f3bcdp+0};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++)
        cr_assert_leq(ulp_err(rj_log(special[i]), log(special[i])), 4, "rj_log(%.17g)",
                      special[i]);
    cr_assert_eq(rj_log(1), 0);
    cr_assert(isinf(rj_log(0)) && rj_log(0) < 0);
    cr_assert(isinf(rj_log(INFINITY)) && rj_log(INFINITY) > 0);
    cr_assert(isnan(rj_log(-1)));
    cr_assert(isnan(rj_log(NAN)));
}

static void check_trig(double x, double *worst, double *at)
{
    const double ec = ulp_err(rj_cos(x), cos(x)), es = ulp_err(rj_sin(x), sin(x));
    const double e = ec > es ? ec : es;
    if (e > *worst) {
        *worst = e;
        *at = x;
    }
}

Test(philox, cos_sin_match_libm)
{
    uint64_t st = 0x2545f4914f6cdd1dull;
    double worst = 0, at = 0;
    for (int i = 0; i < 300000; i++) {
        const double u = (double)(next_u64(&st) >> 11) * 0x1.0p-53;
        switch (i % 3) {
        case 0:
            check_trig(TWO_PI * u, &worst, &at); /* Box-Muller angles */
            break;
        case 1:
            check_trig((u - 0.5) * 2e6, &worst, &at); /* the documented range |x| <= 1e6 */
            break;
        default:
            check_trig((u - 0.5) * pow(2, -(double)(i % 60)), &worst, &at); /* small |x| */
        }
    }
    /* Next to multiples of pi/2, where reduction cancels most bits: k pi/2 rounded and its
     * neighbours, for every k up to 1e6 / (pi/2), in steps of 7. */
    for (int k = 1; k < 636620; k += 7) {
        double x = k * (TWO_PI / 4);
        for (int j = 0; j < 3; j++) {
            check_trig(x, &worst, &at);
            check_trig(-x, &worst, &at);
            x = nextafter(x, INFINITY);
        }
    }
    cr_log_info("rj_cos/rj_sin: worst %.2f ulp at %.17g", worst, at);
    cr_assert_leq(worst, 4, "at %.17g: cos %.17g vs %.17g, sin %.17g vs %.17g", at, rj_cos(at),
                  cos(at), rj_sin(at), sin(at));
    cr_assert_eq(rj_cos(0), 1);
    cr_assert(rj_sin(-0.0) == 0 && signbit(rj_sin(-0.0)));
    cr_assert_eq(rj_sin(1e-300), 1e-300);
    cr_assert(isnan(rj_cos(NAN)) && isnan(rj_sin(INFINITY)) && isnan(rj_cos(-INFINITY)));
    /* Documented range |x| <= 1e6; far outside it the answer is NaN, never a wrong number. */
    cr_assert(isnan(rj_cos(1e7)) && isnan(rj_sin(-1e300)));
}
