/* SPDX-License-Identifier: MIT */
/*
 * This file implements core/half.h with integer arithmetic only, so the result does not
 * depend on the compiler's _Float16 support, the FPU's rounding mode or flush-to-zero.
 */
#include "core/half.h"

#include <string.h>

static uint32_t bits_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

size_t rj_dtype_size(int dtype)
{
    switch (dtype) {
    case RFJIT_F32:
        return 4;
    case RFJIT_F16:
    case RFJIT_BF16:
        return 2;
    default:
        return 0;
    }
}

const char *rj_dtype_name(int dtype)
{
    switch (dtype) {
    case RFJIT_F32:
        return "float32";
    case RFJIT_F16:
        return "float16";
    case RFJIT_BF16:
        return "bfloat16";
    default:
        return "unknown";
    }
}

float rj_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) /* inf, or NaN with its payload */
        return float_of(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        if (m == 0)
            return float_of(sign);
        /* subnormal m 2^-24: normalise so the leading one lands on bit 10 */
        e = 1;
        while (!(m & 0x400u)) {
            m <<= 1;
            e--;
        }
        m &= 0x3ffu;
    }
    return float_of(sign | ((e + 112u) << 23) | (m << 13));
}

uint16_t rj_f32_to_f16(float x)
{
    const uint32_t u = bits_of(x);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: keep the top payload bits, force quiet */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) /* 65520 and above round to infinity */
        return (uint16_t)(sign | 0x7c00u);
    const int e = (int)(a >> 23) - 127;
    if (e >= -14) { /* normal half: drop 13 bits, ties to even */
        const uint32_t r = a - (112u << 23);
        const uint32_t rounded = r + 0xfffu + ((r >> 13) & 1u);
        return (uint16_t)(sign | (rounded >> 13));
    }
    if (e < -25) /* below half the smallest subnormal: zero */
        return sign;
    /* subnormal half: the 24-bit significand shifted down to units of 2^-24 */
    const uint32_t sig = (a & 0x7fffffu) | 0x800000u;
    const int shift = -e - 1; /* 14 .. 24: value = sig 2^(e-23) = (sig >> shift) 2^-24 */
    const uint32_t q = sig >> shift, rem = sig & ((1u << shift) - 1u), half = 1u << (shift - 1);
    const uint32_t up = rem > half || (rem == half && (q & 1u));
    return (uint16_t)(sign | (q + up));
}

float rj_bf16_to_f32(uint16_t h)
{
    return float_of((uint32_t)h << 16);
}

uint16_t rj_f32_to_bf16(float x)
{
    const uint32_t u = bits_of(x);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

bool rj_half_finite(uint16_t h, int dtype)
{
    if (dtype == RFJIT_BF16)
        return (h & 0x7f80u) != 0x7f80u;
    return (h & 0x7c00u) != 0x7c00u;
}

float rj_dtype_load(const void *p, int64_t i, int dtype)
{
    if (dtype == RFJIT_F32)
        return ((const float *)p)[i];
    const uint16_t h = ((const uint16_t *)p)[i];
    return dtype == RFJIT_BF16 ? rj_bf16_to_f32(h) : rj_f16_to_f32(h);
}
