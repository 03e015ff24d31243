/* SPDX-License-Identifier: MIT */
/*
 * This file converts the half-precision element types of rfjit_dtype to and from float in
 * plain C, for the reference executor, the NaN/Inf screen and tests; JIT kernels convert in
 * their own code. Float to half rounds to nearest even, overflows to infinity and keeps NaN
 * a NaN (quiet).
 */
#ifndef RJ_HALF_H
#define RJ_HALF_H

#include <stdbool.h>
#include <stdint.h>

float rj_f16_to_f32(uint16_t h);
uint16_t rj_f32_to_f16(float f);
float rj_bf16_to_f32(uint16_t h);
uint16_t rj_f32_to_bf16(float f);
/* Whether a half of the given rfjit_dtype (RFJIT_F16 or RFJIT_BF16) is finite. */
bool rj_half_finite(uint16_t h, int dtype);
/* Bytes per element of a valid rfjit_dtype. */
int rj_dtype_size(int dtype);
/* "f32", "f16", "bf16" (or "unknown"). */
const char *rj_dtype_name(int dtype);

#endif
