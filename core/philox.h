/* SPDX-License-Identifier: MIT */
/*
 * This file is rfjit's only source of randomness: Philox-4x32-10 (Salmon et al., SC'11) keyed
 * by the user's seed, with the counter holding (stream, row, block), so every consumer draws
 * from its own stream and adding a consumer never shifts another's numbers. Normals come from
 * Box-Muller with our own double log/cos/sin (no libm), so one seed gives the same bits on
 * every machine (IEEE basic operations only, compiled with -ffp-contract=off).
 */
#ifndef RJ_PHILOX_H
#define RJ_PHILOX_H

#include <stddef.h>
#include <stdint.h>

/* One consumer per stream; never renumber (it would change every user's matrices). */
enum rj_stream {
    RJ_STREAM_PROJ = 1,  /* Gaussian entries of W (iid) or of the QR input blocks */
    RJ_STREAM_NORMS = 2, /* chi_d row norms of orthogonal W */
    RJ_STREAM_HRF = 3,   /* hybrid sign-feature vectors r_t */
    RJ_STREAM_EVA = 4,   /* EVA per-chunk proposal noise */
    RJ_STREAM_DATA = 5,  /* synthetic data (the tuner's problems have the streams below) */
    /* 6 is the tests' own stream, RJ_STREAM_TEST of core/testing.h: never give it out here */
    /* The tuner's synthetic problems: q, k and v of one are the streams base + RJ_PART_Q, _K
     * and _V. The values are the ones the tuner has always drawn from. */
    RJ_STREAM_TUNE_TIMING = 0x74760000, /* rfjit_tune's timing problem at L */
    RJ_STREAM_TUNE_CALIB = 0x74750001,  /* rfjit_tune's synthetic calibration set */
    RJ_STREAM_TUNE_TILING = 0x74690000  /* the tiling search's timing problem */
};

/* The parts of a synthetic attention problem, as offsets from its stream. */
enum rj_stream_part { RJ_PART_Q = 0, RJ_PART_K = 1, RJ_PART_V = 2 };

/* The Philox-4x32-10 bijection: out = philox(ctr, key). */
void rj_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* n uniform doubles in (0, 1) (never 0 or 1), 53-bit resolution, for (seed, stream, row). */
void rj_uniforms(uint64_t seed, uint32_t stream, uint32_t row, double *out, size_t n);

/* n standard normal doubles for (seed, stream, row); the same bits on every machine. */
void rj_normals(uint64_t seed, uint32_t stream, uint32_t row, double *out, size_t n);
/* x[i] = (float)(scale * N(0, 1)), i < n, from (seed, stream): rows of 256 normals, row r
 * holding x[256 r ..]. Synthetic inputs (the tuner's problems). */
void rj_fill_normal(float *x, size_t n, double scale, uint64_t seed, uint32_t stream);

/* Deterministic double math (no libm): natural log for x > 0, cos and sin for |x| <= 1e6.
 * Accurate to a few ulp; used where bit-reproducibility across libcs matters. */
double rj_log(double x);
double rj_cos(double x);
double rj_sin(double x);

#endif
