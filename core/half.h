/* SPDX-License-Identifier: MIT */
/*
 * This file converts the 16-bit element types of rfjit_dtype to and from float in plain C,
 * bit for bit as the JIT kernels do (round to nearest even, overflow to infinity, NaN kept a
 * NaN of the same sign), for the reference backend, the NaN/Inf screen and the tests.
 */
#ifndef RJ_HALF_H
#define RJ_HALF_H

#include "core/base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of one element of dtype (an rfjit_dtype), 0 for an unknown one. */
size_t rj_dtype_size(int dtype);
/* "float32", "float16", "bfloat16", or "unknown". */
const char *rj_dtype_name(int dtype);

/* IEEE binary16. To float is exact; from float rounds to nearest even. */
float rj_f16_to_f32(uint16_t h);
uint16_t rj_f32_to_f16(float x);
/* bfloat16, the high half of a binary32. To float is exact; from float rounds to nearest
 * even (a NaN stays a quiet NaN). */
float rj_bf16_to_f32(uint16_t h);
uint16_t rj_f32_to_bf16(float x);
/* Whether a 16-bit element of dtype RFJIT_F16 or RFJIT_BF16 is finite. */
bool rj_half_finite(uint16_t h, int dtype);
/* Element i of a buffer of dtype as float. */
float rj_dtype_load(const void *p, int64_t i, int dtype);

#endif
