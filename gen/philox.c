/* SPDX-License-Identifier: MIT */
/*
 * This file implements gen/philox.h: Philox-4x32-10, uniforms and Box-Muller normals, and the
 * libm-free double log/cos/sin they use. Reproducibility argument: every step is an IEEE basic
 * operation (+ - * / sqrt) in a fixed order, and the library is built with -ffp-contract=off,
 * so the same (seed, stream, row) gives the same bits on every conforming machine.
 */
#include "philox.h"

#include <string.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void rj_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

/* Two 53-bit uniforms in (0, 1) per Philox block: (top 53 bits + 1/2) * 2^-53. */
static void block_uniforms(uint64_t seed, uint32_t stream, uint32_t row, uint32_t block,
                           double u[2])
{
    const uint32_t ctr[4] = {block, row, stream, 0};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t o[4];
    rj_philox4x32(ctr, key, o);
    for (int i = 0; i < 2; i++) {
        uint64_t bits = ((uint64_t)o[2 * i] << 32 | o[2 * i + 1]) >> 11;
        u[i] = ((double)bits + 0.5) * 0x1.0p-53;
    }
}

void rj_uniforms(uint64_t seed, uint32_t stream, uint32_t row, double *out, size_t n)
{
    for (size_t i = 0; i < n; i += 2) {
        double u[2];
        block_uniforms(seed, stream, row, (uint32_t)(i / 2), u);
        out[i] = u[0];
        if (i + 1 < n)
            out[i + 1] = u[1];
    }
}

void rj_normals(uint64_t seed, uint32_t stream, uint32_t row, double *out, size_t n)
{
    const double two_pi = 6.283185307179586476925;
    for (size_t i = 0; i < n; i += 2) {
        double u[2];
        block_uniforms(seed, stream, row, (uint32_t)(i / 2), u);
        /* Box-Muller: r = sqrt(-2 ln u1), (r cos 2 pi u2, r sin 2 pi u2) */
        double r = __builtin_sqrt(-2.0 * rj_log(u[0]));
        out[i] = r * rj_cos(two_pi * u[1]);
        if (i + 1 < n)
            out[i + 1] = r * rj_sin(two_pi * u[1]);
    }
}

/*
 * log x = e ln 2 + log mant with mant in [sqrt(1/2), sqrt(2)): log mant = 2 atanh(s),
 * s = (mant - 1) / (mant + 1), |s| <= 0.1716, series sum_k s^(2k+1) / (2k+1) to k = 11
 * (truncation < 0.0295^12 / 25 ~ 2e-20, below half an ulp). ln 2 split hi + lo (fdlibm's).
 */
double rj_log(double x)
{
    if (!(x > 0))
        return x == 0 ? -__builtin_inf() : __builtin_nan("");
    if (x == __builtin_inf())
        return x;
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int e = 0;
    if ((bits >> 52) == 0) { /* subnormal: scale into the normal range first */
        x *= 0x1.0p54;
        memcpy(&bits, &x, sizeof bits);
        e = -54;
    }
    e += (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull; /* mant in [1, 2) */
    double mant;
    memcpy(&mant, &bits, sizeof mant);
    if (mant > 1.4142135623730951) {
        mant *= 0.5;
        e += 1;
    }
    const double s = (mant - 1.0) / (mant + 1.0), s2 = s * s;
    double p = 1.0 / 23.0;
    for (int k = 10; k >= 0; k--)
        p = p * s2 + 1.0 / (double)(2 * k + 1);
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    return (double)e * ln2_hi + ((double)e * ln2_lo + 2.0 * s * p);
}

/* sin and cos of r, |r| <= pi/4, by Taylor series to r^17 / r^18 (error < 1e-19). */
static double sin_kernel(double r)
{
    const double r2 = r * r;
    double p = 0, term = 1;
    double coef[9];
    for (int k = 0; k < 9; k++) { /* coef[k] = (-1)^k / (2k+1)! */
        coef[k] = term;
        term = -term / (double)((2 * k + 2) * (2 * k + 3));
    }
    for (int k = 8; k >= 0; k--)
        p = p * r2 + coef[k];
    return r * p;
}

static double cos_kernel(double r)
{
    const double r2 = r * r;
    double p = 0, term = 1;
    double coef[10];
    for (int k = 0; k < 10; k++) { /* coef[k] = (-1)^k / (2k)! */
        coef[k] = term;
        term = -term / (double)((2 * k + 1) * (2 * k + 2));
    }
    for (int k = 9; k >= 0; k--)
        p = p * r2 + coef[k];
    return p;
}

/* x = k pi/2 + r by Cody-Waite with fdlibm's 33-bit pio2_1 (k * pio2_1 exact for |k| < 2^20)
 * and its tail; quadrant k mod 4 selects the kernel and sign. */
static double reduce(double x, int *quadrant)
{
    const double two_over_pi = 6.36619772367581382433e-01;
    const double pio2_1 = 1.57079632673412561417e+00, pio2_1t = 6.07710050650619224932e-11;
    double t = x * two_over_pi;
    int64_t k = (int64_t)(t >= 0 ? t + 0.5 : t - 0.5);
    double kd = (double)k;
    *quadrant = (int)(k & 3);
    return (x - kd * pio2_1) - kd * pio2_1t;
}

double rj_cos(double x)
{
    int q;
    double r = reduce(x, &q);
    switch (q) {
    case 0:
        return cos_kernel(r);
    case 1:
        return -sin_kernel(r);
    case 2:
        return -cos_kernel(r);
    default:
        return sin_kernel(r);
    }
}

double rj_sin(double x)
{
    int q;
    double r = reduce(x, &q);
    switch (q) {
    case 0:
        return sin_kernel(r);
    case 1:
        return cos_kernel(r);
    case 2:
        return -sin_kernel(r);
    default:
        return -cos_kernel(r);
    }
}
