/* SPDX-License-Identifier: MIT */
/*
 * This file implements tools/npy.h. The header dict is parsed strictly for the three keys
 * NumPy writes ('descr', 'fortran_order', 'shape'); sizes are checked for overflow before any
 * allocation, and the data must be exactly as long as the shape says (trailing bytes refused,
 * since they mean the file is not what its header claims).
 */
#include "npy.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAX_FILE ((size_t)1 << 36) /* 64 GiB: refuse absurd sizes before reading */

static int fail(char *err, size_t errlen, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, const char *name, const char *fmt, ...)
{
    if (err && errlen) {
        int n = snprintf(err, errlen, "%s: ", name);
        if (n >= 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

void npy_free(npy_array *a)
{
    if (a) {
        free(a->data);
        a->data = NULL;
    }
}

/* Find 'key': in the dict text and return a pointer just after the colon and spaces. */
static const char *dict_value(const char *dict, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(dict, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

int npy_parse(const unsigned char *buf, size_t len, const char *name, npy_array *out,
              char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
        return fail(err, errlen, name, "not a .npy file (bad magic)");
    const int major = buf[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12)
            return fail(err, errlen, name, "truncated header");
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 |
               (size_t)buf[11] << 24;
        hstart = 12;
    } else {
        return fail(err, errlen, name, "unsupported .npy version %d.%d", major, buf[7]);
    }
    if (hlen > len - hstart || hlen > 65536 * 16)
        return fail(err, errlen, name, "truncated header (%zu bytes announced)", hlen);
    char *dict = malloc(hlen + 1);
    if (!dict)
        return fail(err, errlen, name, "out of memory");
    memcpy(dict, buf + hstart, hlen);
    dict[hlen] = 0;
    if (strlen(dict) != hlen) {
        free(dict);
        return fail(err, errlen, name, "header contains a NUL byte");
    }
    int rc = 0;
    size_t elem = 0;
    const char *p = dict_value(dict, "descr");
    if (!p)
        rc = fail(err, errlen, name, "header has no 'descr'");
    else if (!strncmp(p, "'<f4'", 5))
        elem = 4;
    else if (!strncmp(p, "'<f8'", 5))
        elem = 8;
    else if (!strncmp(p, "'>f", 3))
        rc = fail(err, errlen, name, "big-endian data is not supported (need '<f4' or '<f8')");
    else
        rc = fail(err, errlen, name, "unsupported dtype %.12s (need '<f4' or '<f8')", p);
    if (rc == 0) {
        p = dict_value(dict, "fortran_order");
        if (!p)
            rc = fail(err, errlen, name, "header has no 'fortran_order'");
        else if (!strncmp(p, "True", 4))
            rc = fail(err, errlen, name, "Fortran-order arrays are not supported (use C order)");
        else if (strncmp(p, "False", 5))
            rc = fail(err, errlen, name, "bad 'fortran_order' value");
    }
    size_t count = 1;
    if (rc == 0) {
        p = dict_value(dict, "shape");
        if (!p || *p != '(')
            rc = fail(err, errlen, name, "header has no 'shape' tuple");
        else {
            p++;
            while (rc == 0) {
                while (*p == ' ' || *p == ',')
                    p++;
                if (*p == ')')
                    break;
                if (*p < '0' || *p > '9') {
                    rc = fail(err, errlen, name, "bad character in 'shape'");
                    break;
                }
                char *end;
                unsigned long long v = strtoull(p, &end, 10);
                if (out->rank == 4) {
                    rc = fail(err, errlen, name, "rank above 4 is not supported");
                    break;
                }
                if (v == 0 || v > (1ull << 40) || count > SIZE_MAX / v) {
                    rc = fail(err, errlen, name, "shape entry %llu is zero or too large", v);
                    break;
                }
                count *= (size_t)v;
                out->shape[out->rank++] = (int64_t)v;
                p = end;
            }
            if (rc == 0 && out->rank == 0)
                rc = fail(err, errlen, name, "scalar arrays are not supported");
        }
    }
    free(dict);
    if (rc)
        return rc;
    const size_t data_off = hstart + hlen;
    if (count > (NPY_MAX_FILE / elem))
        return fail(err, errlen, name, "array of %zu elements is too large", count);
    if (len - data_off < count * elem)
        return fail(err, errlen, name, "truncated data: %zu bytes, need %zu", len - data_off,
                    count * elem);
    if (len - data_off > count * elem)
        return fail(err, errlen, name, "%zu bytes of trailing data after the array",
                    len - data_off - count * elem);
    out->data = malloc(count * sizeof(float));
    if (!out->data)
        return fail(err, errlen, name, "out of memory for %zu elements", count);
    const unsigned char *src = buf + data_off;
    for (size_t i = 0; i < count; i++) {
        if (elem == 4) {
            memcpy(&out->data[i], src + 4 * i, 4);
        } else {
            double dv;
            memcpy(&dv, src + 8 * i, 8);
            if (isfinite(dv) && fabs(dv) > 3.4028234663852886e38) {
                npy_free(out);
                return fail(err, errlen, name, "float64 value %g at index %zu overflows float32",
                            dv, i);
            }
            out->data[i] = (float)dv;
        }
    }
    return 0;
}

int npy_read(const char *path, npy_array *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(err, errlen, path, "cannot open");
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return fail(err, errlen, path, "cannot seek");
    }
    long size = ftell(f);
    if (size < 0 || (unsigned long)size > NPY_MAX_FILE) {
        fclose(f);
        return fail(err, errlen, path, "file size not usable");
    }
    rewind(f);
    unsigned char *buf = malloc((size_t)size + 1);
    if (!buf) {
        fclose(f);
        return fail(err, errlen, path, "out of memory");
    }
    size_t got = fread(buf, 1, (size_t)size, f);
    fclose(f);
    int rc = got == (size_t)size ? npy_parse(buf, got, path, out, err, errlen)
                                 : fail(err, errlen, path, "read error");
    free(buf);
    return rc;
}

int npy_write(const char *path, const float *data, int rank, const int64_t *shape, char *err,
              size_t errlen)
{
    char dict[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t count = 1;
    for (int i = 0; i < rank; i++) {
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld,%s", (long long)shape[i],
                      i + 1 < rank ? " " : "");
        count *= (size_t)shape[i];
    }
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    /* pad with spaces so that magic + len + dict + '\n' is a multiple of 64 */
    size_t total = 10 + (size_t)n + 1, pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    if (!f)
        return fail(err, errlen, path, "cannot open for writing");
    unsigned hl = (unsigned)((size_t)n + pad + 1);
    unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff),
                              (unsigned char)(hl >> 8)};
    int ok = fwrite(head, 1, 10, f) == 10 && fwrite(dict, 1, (size_t)n, f) == (size_t)n;
    for (size_t i = 0; ok && i < pad; i++)
        ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF && fwrite(data, sizeof(float), count, f) == count;
    ok = (fclose(f) == 0) && ok;
    return ok ? 0 : fail(err, errlen, path, "write error");
}
