/* SPDX-License-Identifier: MIT */
/*
 * This file implements core/philox.h: the Philox-4x32-10 bijection, 53-bit uniforms, Box-Muller
 * normals, and the libm-free double log/cos/sin the normals need. Reproducibility argument:
 * every step is an integer operation or an IEEE basic operation (+ - * / sqrt) in a fixed
 * order, and the library is built with -ffp-contract=off, so one (seed, stream, row) gives the
 * same bits on every conforming machine and libc.
 *
 * Counter layout: ctr = (block, row, stream, 0), key = (seed low 32 bits, seed high 32 bits);
 * block counts the 4-word outputs along a row, so element i of a row comes from block i / 2
 * and a shorter draw is always a prefix of a longer one.
 */
#include "core/philox.h"

#include <string.h>

/* Salmon et al. (SC'11) / Random123 philox.h: round multipliers and Weyl key increments
 * (golden ratio and sqrt(3) - 1 in 0.32 fixed point). */
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define PHILOX_ROUNDS 10

void rj_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < PHILOX_ROUNDS; round++) {
        /* Random123's round: (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1, lo(M0 c0)),
         * the key bumped by the Weyl constants between rounds. */
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        const uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        const uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c0 = n0;
        c1 = (uint32_t)p1;
        c2 = n2;
        c3 = (uint32_t)p0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/*
 * Two uniforms per Philox block, u[i] from the word pair (o[2i], o[2i+1]): k = the top 53 bits
 * of o[2i] * 2^32 + o[2i+1], u = k 2^-53, exact for every k. k = 0 (probability 2^-53) maps to
 * 2^-54, the midpoint of its cell, so u is never 0; the largest u is 1 - 2^-53, never 1.
 * (Adding 1/2 to every k would not be exact: k + 1/2 needs 54 bits once k >= 2^52.)
 */
static void block_uniforms(uint64_t seed, uint32_t stream, uint32_t row, uint32_t block,
                           double u[2])
{
    const uint32_t ctr[4] = {block, row, stream, 0};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t o[4];
    rj_philox4x32(ctr, key, o);
    for (int i = 0; i < 2; i++) {
        const uint64_t k = ((uint64_t)o[2 * i] << 32 | o[2 * i + 1]) >> 11;
        u[i] = k ? (double)k * 0x1.0p-53 : 0x1.0p-54;
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
    const double two_pi = 0x1.921fb54442d18p+2; /* 2 pi rounded to double */
    for (size_t i = 0; i < n; i += 2) {
        double u[2];
        block_uniforms(seed, stream, row, (uint32_t)(i / 2), u);
        /* Box-Muller on (u1, u2) = (u[0], u[1]): z_i = rho cos(2 pi u2), z_{i+1} = rho sin(2 pi
         * u2), rho = sqrt(-2 ln u1); an odd n drops the last sine. */
        const double rho = __builtin_sqrt(-2.0 * rj_log(u[0]));
        const double theta = two_pi * u[1];
        out[i] = rho * rj_cos(theta);
        if (i + 1 < n)
            out[i + 1] = rho * rj_sin(theta);
    }
}

void rj_fill_normal(float *x, size_t n, double scale, uint64_t seed, uint32_t stream)
{
    double buf[256];
    for (size_t i = 0; i < n; i += 256) {
        const size_t len = n - i < 256 ? n - i : 256;
        rj_normals(seed, stream, (uint32_t)(i / 256), buf, len);
        for (size_t j = 0; j < len; j++)
            x[i + j] = (float)(scale * buf[j]);
    }
}

static uint64_t bits_of(double x)
{
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}

static double double_of(uint64_t b)
{
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
}

/*
 * ln x = e ln2 + ln(1 + f) for x = 2^e (1 + f), 1 + f in [sqrt(1/2), sqrt(2)) (frexp done on
 * the bits). With s = f / (2 + f), |s| <= 0.1716:
 *   ln(1 + f) = 2 atanh(s) = 2s + s R,   R = sum_{k>=1} 2 s^(2k) / (2k + 1),
 * and since 2s = f - s f, ln(1 + f) = f - (hf2 - s (hf2 + R)) with hf2 = f^2 / 2: f is exact
 * (Sterbenz) and the correction is a small fraction of it, so the error stays below one ulp
 * (fdlibm's arrangement). R is the series to k = 11; the first omitted term is
 * 2 s^24 / 25 < 4e-20, far below 2^-53. ln2 = ln2_hi + ln2_lo, ln2_hi with 32 significant
 * bits so that e ln2_hi is exact for every double's exponent.
 */
double rj_log(double x)
{
    if (!(x > 0))
        return x == 0 ? -__builtin_inf() : __builtin_nan("");
    if (x == __builtin_inf())
        return x;
    uint64_t b = bits_of(x);
    int e = 0;
    if ((b >> 52) == 0) { /* subnormal: scale into the normal range first (exact) */
        b = bits_of(x * 0x1.0p54);
        e = -54;
    }
    e += (int)(b >> 52) - 1023;
    double mant = double_of((b & 0x000fffffffffffffull) | 0x3ff0000000000000ull); /* [1, 2) */
    if (mant >= 0x1.6a09e667f3bcdp+0) { /* sqrt(2) rounded: mant / 2 in [0.7071, 1) */
        mant *= 0.5;
        e += 1;
    }
    const double f = mant - 1.0;
    const double s = f / (2.0 + f), z = s * s;
    /* Horner in z for R / z = sum_{k=1..11} (2 / (2k + 1)) z^(k-1) */
    double r = 2.0 / 23.0;
    for (int k = 10; k >= 1; k--)
        r = r * z + 2.0 / (double)(2 * k + 1);
    r *= z;
    const double hf2 = 0.5 * f * f;
    const double ln2_hi = 0x1.62e42feep-1, ln2_lo = 0x1.a39ef35793c76p-33;
    const double de = (double)e;
    return de * ln2_hi - ((hf2 - (s * (hf2 + r) + de * ln2_lo)) - f);
}

/*
 * sin(x + y) and cos(x + y) for |x| <= pi/4 + tiny, |y| <= ulp(x) / 2 (the reduced argument
 * as a double-double). Taylor series: with z = x^2,
 *   sin x = x + x z (-1/3! + z (1/5! - ... + z^7 / 17!)),   first omitted |x|^19/19! < 1e-19 |x|
 *   cos x = 1 - z/2 + z^2 (1/4! - z / 6! + ... - z^7 / 18!), first omitted x^20/20! < 4e-21
 * and the tail y enters to first order: sin(x + y) ~ sin x + y (1 - z/2), cos(x + y) ~ cos x
 * - x y (the next terms are below y^2 < 2^-108). The big term (x, or 1) is added last.
 * Coefficients are exact quotients of small integers, correctly rounded at compile time.
 */
static double sin_kernel(double x, double y)
{
    const double z = x * x;
    double p = 1.0 / 355687428096000.0; /* 1/17! */
    p = p * z - 1.0 / 1307674368000.0;  /* 1/15! */
    p = p * z + 1.0 / 6227020800.0;     /* 1/13! */
    p = p * z - 1.0 / 39916800.0;       /* 1/11! */
    p = p * z + 1.0 / 362880.0;         /* 1/9! */
    p = p * z - 1.0 / 5040.0;           /* 1/7! */
    p = p * z + 1.0 / 120.0;            /* 1/5! */
    p = p * z - 1.0 / 6.0;              /* 1/3! */
    return x + (x * z * p + y * (1.0 - 0.5 * z));
}

static double cos_kernel(double x, double y)
{
    const double z = x * x;
    double p = -1.0 / 6402373705728000.0; /* -1/18! */
    p = p * z + 1.0 / 20922789888000.0;   /* 1/16! */
    p = p * z - 1.0 / 87178291200.0;      /* 1/14! */
    p = p * z + 1.0 / 479001600.0;        /* 1/12! */
    p = p * z - 1.0 / 3628800.0;          /* 1/10! */
    p = p * z + 1.0 / 40320.0;            /* 1/8! */
    p = p * z - 1.0 / 720.0;              /* 1/6! */
    p = p * z + 1.0 / 24.0;               /* 1/4! */
    const double hz = 0.5 * z;
    /* w = 1 - hz rounds; ((1 - w) - hz) is exactly that rounding error (Sterbenz), so the
     * sum keeps 1 - z/2 to about 2^-106 before the small terms join it. */
    const double w = 1.0 - hz;
    return w + (((1.0 - w) - hz) + (z * z * p - x * y));
}

/* Largest multiple count handled: k pi/2 with k < 2^20, so k * pio2_i (33-bit pieces) is exact.
 * That covers the header's |x| <= 1e6 (k <= 636620). */
#define REDUCE_KMAX 1048576.0

static int exponent_of(double x)
{
    return (int)((bits_of(x) >> 52) & 0x7ff);
}

/*
 * x >= 0 = k pi/2 + (y0 + y1), |y0 + y1| <= pi/4 + tiny. Cody-Waite with pi/2 cut into 33-bit
 * pieces pio2_1 + pio2_2 + pio2_3 (+ the double tails pio2_it of what remains after piece i),
 * i.e. pi/2 to 118 bits: a first step with pio2_1 + pio2_1t, and further steps only when the
 * result lost more than 16 (then 49) bits to cancellation, x being close to a multiple of
 * pi/2 (fdlibm's __ieee754_rem_pio2 medium case). Returns k mod 4, or -1 outside the range.
 */
static int reduce(double x, double *y0, double *y1)
{
    const double inv_pio2 = 0x1.45f306dc9c883p-1;
    const double pio2_1 = 0x1.921fb544p+0, pio2_1t = 0x1.0b4611a626331p-34;
    const double pio2_2 = 0x1.0b4611a6p-34, pio2_2t = 0x1.3198a2e037073p-69;
    const double pio2_3 = 0x1.3198a2ep-69, pio2_3t = 0x1.b839a252049c1p-104;
    const double t = x * inv_pio2 + 0.5;
    if (!(t < REDUCE_KMAX))
        return -1;
    const int32_t k = (int32_t)t; /* t >= 0.5: truncation is floor, k = round(x 2/pi) */
    const double fk = (double)k;
    double r = x - fk * pio2_1, w = fk * pio2_1t;
    double y = r - w;
    const int ex = exponent_of(x);
    if (ex - exponent_of(y) > 16) {
        double r0 = r;
        w = fk * pio2_2;
        r = r0 - w;
        w = fk * pio2_2t - ((r0 - r) - w);
        y = r - w;
        if (ex - exponent_of(y) > 49) {
            r0 = r;
            w = fk * pio2_3;
            r = r0 - w;
            w = fk * pio2_3t - ((r0 - r) - w);
            y = r - w;
        }
    }
    *y0 = y;
    *y1 = (r - y) - w;
    return k & 3;
}

/* cos is even, sin odd: reduce |x|, then pick the kernel and sign by the quadrant. */
double rj_cos(double x)
{
    double y0, y1;
    const int q = reduce(x < 0 ? -x : x, &y0, &y1);
    switch (q) {
    case 0:
        return cos_kernel(y0, y1);
    case 1:
        return -sin_kernel(y0, y1);
    case 2:
        return -cos_kernel(y0, y1);
    case 3:
        return sin_kernel(y0, y1);
    default: /* NaN, infinity or beyond the reduction's range */
        return __builtin_nan("");
    }
}

double rj_sin(double x)
{
    /* |x| < 2^-27: sin x = x (1 - x^2/6 ...) rounds to x; also keeps the sign of -0 */
    if (x > -0x1.0p-27 && x < 0x1.0p-27)
        return x;
    double y0, y1;
    const int q = reduce(x < 0 ? -x : x, &y0, &y1);
    double s;
    switch (q) {
    case 0:
        s = sin_kernel(y0, y1);
        break;
    case 1:
        s = cos_kernel(y0, y1);
        break;
    case 2:
        s = -sin_kernel(y0, y1);
        break;
    case 3:
        s = -cos_kernel(y0, y1);
        break;
    default:
        return __builtin_nan("");
    }
    return x < 0 ? -s : s;
}
