/* SPDX-License-Identifier: MIT */
/*
 * Minimal .npy I/O for the examples: float32, little-endian, C order, version 1.0 (what
 * numpy.save writes for such arrays). Header-only so each example is one compile command.
 * Not a general reader: rfjit's own CLI has the strict one.
 */
#ifndef RFJIT_EXAMPLE_NPY_IO_H
#define RFJIT_EXAMPLE_NPY_IO_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read path into a malloc'd buffer; shape[0..*rank) filled (rank <= 4). NULL on error. */
static float *npy_load(const char *path, int64_t shape[4], int *rank)
{
    FILE *f = fopen(path, "rb");
    unsigned char pre[10];
    if (!f || fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY\x01", 7) != 0) {
        if (f)
            fclose(f);
        return NULL;
    }
    const size_t hlen = pre[8] | (size_t)pre[9] << 8;
    char *h = calloc(hlen + 1, 1);
    float *data = NULL;
    if (h && fread(h, 1, hlen, f) == hlen && strstr(h, "'<f4'") &&
        strstr(h, "'fortran_order': False")) {
        const char *p = strchr(strstr(h, "'shape'"), '(');
        size_t count = 1;
        *rank = 0;
        while (p && *rank < 4) {
            char *end;
            const long long v = strtoll(p + 1, &end, 10);
            if (end == p + 1)
                break;
            shape[(*rank)++] = v;
            count *= (size_t)v;
            p = strchr(end, ',');
        }
        data = malloc(count * sizeof(float));
        if (data && fread(data, sizeof(float), count, f) != count) {
            free(data);
            data = NULL;
        }
    }
    free(h);
    fclose(f);
    return data;
}

/* Write data with the given shape; 0 on success. */
static int npy_save(const char *path, const float *data, const int64_t *shape, int rank)
{
    char dims[128] = "", h[256];
    size_t count = 1;
    for (int i = 0; i < rank; i++) {
        char one[32];
        snprintf(one, sizeof one, "%lld%s", (long long)shape[i], rank == 1 ? "," : i + 1 < rank ? ", " : "");
        strcat(dims, one);
        count *= (size_t)shape[i];
    }
    int n = snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims);
    while ((10 + n + 1) % 64)
        h[n++] = ' ';
    h[n++] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)n,
                                   (unsigned char)(n >> 8)};
    const int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(h, 1, (size_t)n, f) == (size_t)n &&
                   fwrite(data, sizeof(float), count, f) == count;
    return fclose(f) == 0 && ok ? 0 : -1;
}
#endif
