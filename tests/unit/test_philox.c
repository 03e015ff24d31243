/* SPDX-License-Identifier: MIT */
/* This file checks Philox against Random123's known answers, the libm-free math against
 * libm, and the normals' first two moments and determinism. */
#include <criterion/criterion.h>

#include "philox.h"

#include <math.h>
#include <string.h>

TestSuite(philox);

Test(philox, random123_known_answers)
{
    static const uint32_t ctr[3][4] = {{0, 0, 0, 0},
                                       {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
                                       {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}};
    static const uint32_t key[3][2] = {{0, 0}, {0xffffffff, 0xffffffff},
                                       {0xa4093822, 0x299f31d0}};
    static const uint32_t want[3][4] = {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
                                        {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
                                        {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}};
    for (int t = 0; t < 3; t++) {
        uint32_t out[4];
        rj_philox4x32(ctr[t], key[t], out);
        for (int i = 0; i < 4; i++)
            cr_assert_eq(out[i], want[t][i], "vector %d word %d: %08x vs %08x", t, i, out[i],
                         want[t][i]);
    }
}

static double ulps(double a, double b)
{
    return fabs(a - b) / nextafter(fabs(b) + 1e-300, INFINITY) * 0 +
           fabs(a - b) / (nextafter(fabs(b), INFINITY) - fabs(b) + 1e-320);
}

Test(philox, math_matches_libm)
{
    for (int i = 1; i < 200000; i++) {
        double x = i * 1.3e-5 + pow(2.0, -(i % 60));
        cr_assert_leq(ulps(rj_log(x), log(x)), 4, "log(%.17g): %.17g vs %.17g", x, rj_log(x),
                      log(x));
        double a = (i - 100000) * 7.3e-5;
        /* absolute error against an ulp of 1: the Box-Muller angles are in [0, 2 pi) */
        cr_assert_leq(fabs(rj_cos(a) - cos(a)), 4e-16, "cos(%.17g)", a);
        cr_assert_leq(fabs(rj_sin(a) - sin(a)), 4e-16, "sin(%.17g)", a);
    }
    cr_assert(isinf(rj_log(0)) && rj_log(0) < 0);
    cr_assert(isnan(rj_log(-1)));
    cr_assert_leq(ulps(rj_log(4.9e-320), log(4.9e-320)), 4);
}

Test(philox, normals_moments_and_determinism)
{
    enum { N = 1000000 };
    static double z[N], z2[N];
    rj_normals(42, RJ_STREAM_TEST, 3, z, N);
    double s1 = 0, s2 = 0;
    for (int i = 0; i < N; i++) {
        s1 += z[i];
        s2 += z[i] * z[i];
    }
    double mean = s1 / N, var = s2 / N - mean * mean;
    /* se(mean) = 1/sqrt(N); se(var) = sqrt(2/N) for a normal */
    cr_assert_leq(fabs(mean), 5 / sqrt(N), "mean %g (seed 42)", mean);
    cr_assert_leq(fabs(var - 1), 5 * sqrt(2.0 / N), "var %g (seed 42)", var);
    rj_normals(42, RJ_STREAM_TEST, 3, z2, N);
    cr_assert_eq(memcmp(z, z2, sizeof z), 0);
    rj_normals(42, RJ_STREAM_TEST, 4, z2, 8);
    cr_assert_neq(memcmp(z, z2, 8 * sizeof(double)), 0, "rows must differ");
    rj_normals(42, RJ_STREAM_PROJ, 3, z2, 8);
    cr_assert_neq(memcmp(z, z2, 8 * sizeof(double)), 0, "streams must differ");
    double u[5];
    rj_uniforms(1, 1, 1, u, 5);
    for (int i = 0; i < 5; i++)
        cr_assert(u[i] > 0 && u[i] < 1);
}
