/* SPDX-License-Identifier: MIT */
/*
 * This file reads and writes little-endian integers in byte buffers: the on-disk kernel cache
 * and decode snapshots keep one byte order whatever the host's, so their files and bytes mean
 * the same on every machine.
 */
#ifndef RJ_LE_H
#define RJ_LE_H

#include <stdint.h>

static inline void rj_le_put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void rj_le_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t rj_le_get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static inline uint64_t rj_le_get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

#endif
