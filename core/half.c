/* SPDX-License-Identifier: MIT */
/* This file implements core/half.h with integer code, so it is exact on any compiler and
 * target, and independent of the JIT's conversions that the tests check against it. */
#include "core/half.h"
#include "rfjit.h"

#include <math.h>
#include <string.h>

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float rj_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f)
        return float_of(sign | 0x7f800000u | (m << 13));
    if (e != 0)
        return float_of(sign | ((e + 112) << 23) | (m << 13));
    const float sub = ldexpf((float)m, -24); /* exact: m < 2^10 */
    return sign ? -sub : sub;
}

uint16_t rj_f32_to_f16(float f)
{
    const uint32_t x = bits_of(f), sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN: keep the top payload bits, force quiet */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) /* >= 65520 rounds to infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) /* below 2^-14: a subnormal half, 2^-24 steps; rintf ties to even */
        return (uint16_t)(sign | (uint32_t)rintf(float_of(ax) * 0x1p24f));
    /* normal: round the 13 dropped bits to nearest even, then rebias 127 -> 15 */
    const uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u);
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

float rj_bf16_to_f32(uint16_t h)
{
    return float_of((uint32_t)h << 16);
}

uint16_t rj_f32_to_bf16(float f)
{
    const uint32_t x = bits_of(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

bool rj_half_finite(uint16_t h, int dtype)
{
    return dtype == RFJIT_BF16 ? (h & 0x7f80u) != 0x7f80u : (h & 0x7c00u) != 0x7c00u;
}

int rj_dtype_size(int dtype)
{
    return dtype == RFJIT_F32 ? 4 : 2;
}

const char *rj_dtype_name(int dtype)
{
    return dtype == RFJIT_F32 ? "f32" : dtype == RFJIT_F16 ? "f16" : dtype == RFJIT_BF16 ? "bf16" : "unknown";
}
