/* SPDX-License-Identifier: MIT */
/*
 * This file implements tools/npy.h. A .npy file is
 *
 *   "\x93NUMPY" major minor  hlen (uint16 LE for 1.x, uint32 LE for 2.x and 3.x)
 *   header: a Python dict literal of hlen bytes, padded with spaces and ending in '\n'
 *   data:   prod(shape) elements of the dtype in 'descr', in C order, or in Fortran order
 *           (first index fastest) when 'fortran_order' is True: np.save writes that for the
 *           transpose of a C-order array. Such data is transposed on load, so every reader
 *           sees C order.
 *
 * The dict is parsed by a small recursive-descent reader of exactly that literal, not by
 * searching for substrings, so a header NumPy would not accept is refused here too. Sizes are
 * checked for overflow before anything is allocated, and values are decoded byte by byte
 * from little-endian, so the reader does not depend on the host's byte order.
 */
#include "npy.h"

#include "runtime/fsutil.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Headers larger than this are not something NumPy writes for a rank <= 4 array; the cap
 * keeps a hostile 4 GiB hlen from being copied around. */
#define NPY_MAX_HEADER ((size_t)1 << 20)

static int fail(char *err, size_t errlen, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, const char *name, const char *fmt, ...)
{
    if (err && errlen) {
        int n = snprintf(err, errlen, "%s: ", name ? name : "(npy)");
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
        free(a->bytes);
        a->data = NULL;
        a->bytes = NULL;
    }
}

/* ---- header dict ------------------------------------------------------------------------ */

typedef struct dict_reader {
    const char *p, *end;
} dict_reader;

typedef struct dict_values {
    char descr[16];
    int fortran;
    int rank;
    int64_t shape[NPY_MAX_RANK];
    int seen_descr, seen_fortran, seen_shape;
} dict_values;

/* Record why the header is refused; returns -1 for the caller to return. */
static int bad(const char **why, const char *msg)
{
    *why = msg;
    return -1;
}

static void skip_ws(dict_reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int peek(const dict_reader *r)
{
    return r->p < r->end ? (unsigned char)*r->p : -1;
}

/* A quoted string without escapes (NumPy's keys and simple descrs never need any). */
static int read_string(dict_reader *r, char *out, size_t outlen, const char **why)
{
    const int q = peek(r);
    if (q != '\'' && q != '"')
        return bad(why, "expected a quoted string");
    r->p++;
    size_t n = 0;
    while (r->p < r->end && *r->p != q) {
        if (*r->p == '\\')
            return bad(why, "escape sequence in a string");
        if (n + 1 >= outlen)
            return bad(why, "string too long");
        out[n++] = *r->p++;
    }
    if (r->p == r->end)
        return bad(why, "unterminated string");
    r->p++;
    out[n] = 0;
    return 0;
}

static int read_word(dict_reader *r, const char *w)
{
    const size_t n = strlen(w);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0)
        return -1;
    r->p += n;
    return 0;
}

/* A decimal dimension, optionally with Python 2's 'L' suffix, as an int64. */
static int read_dim(dict_reader *r, int64_t *out, const char **why)
{
    if (peek(r) < '0' || peek(r) > '9')
        return bad(why, "'shape' holds something other than non-negative integers");
    uint64_t v = 0;
    while (peek(r) >= '0' && peek(r) <= '9') {
        const unsigned digit = (unsigned)(*r->p++ - '0');
        if (v > ((uint64_t)INT64_MAX - digit) / 10)
            return bad(why, "a 'shape' entry does not fit in 64 bits");
        v = v * 10 + digit;
    }
    if (peek(r) == 'L')
        r->p++;
    *out = (int64_t)v;
    return 0;
}

/* '(' [dim (',' dim)* [',']] ')', where a single dim needs its trailing comma (Python). */
static int read_shape(dict_reader *r, dict_values *dv, const char **why)
{
    if (peek(r) != '(')
        return bad(why, "'shape' is not a tuple");
    r->p++;
    skip_ws(r);
    int commas = 0;
    dv->rank = 0;
    while (peek(r) != ')') {
        int64_t v;
        if (read_dim(r, &v, why))
            return -1;
        if (dv->rank == NPY_MAX_RANK)
            return bad(why, "rank above 4 is not supported");
        dv->shape[dv->rank++] = v;
        skip_ws(r);
        if (peek(r) == ',') {
            r->p++;
            commas++;
            skip_ws(r);
        } else if (peek(r) != ')') {
            return bad(why, "'shape' tuple is malformed");
        }
    }
    r->p++;
    if (dv->rank == 1 && commas == 0)
        return bad(why, "'shape' (n) is not a tuple (NumPy writes (n,))");
    return 0;
}

static int read_dict(const char *hdr, size_t hlen, dict_values *dv, const char **why)
{
    dict_reader r = {hdr, hdr + hlen};
    memset(dv, 0, sizeof *dv);
    skip_ws(&r);
    if (peek(&r) != '{')
        return bad(why, "header is not a dict");
    r.p++;
    for (;;) {
        skip_ws(&r);
        if (peek(&r) == '}')
            break;
        char key[32];
        if (read_string(&r, key, sizeof key, why))
            return -1;
        skip_ws(&r);
        if (peek(&r) != ':')
            return bad(why, "expected ':' after a key");
        r.p++;
        skip_ws(&r);
        if (!strcmp(key, "descr")) {
            if (dv->seen_descr++)
                return bad(why, "duplicate key 'descr'");
            if (peek(&r) == '[')
                return bad(why, "structured dtypes are not supported (need '<f4' or '<f8')");
            if (read_string(&r, dv->descr, sizeof dv->descr, why))
                return -1;
        } else if (!strcmp(key, "fortran_order")) {
            if (dv->seen_fortran++)
                return bad(why, "duplicate key 'fortran_order'");
            if (read_word(&r, "True") == 0)
                dv->fortran = 1;
            else if (read_word(&r, "False") == 0)
                dv->fortran = 0;
            else
                return bad(why, "'fortran_order' is neither True nor False");
        } else if (!strcmp(key, "shape")) {
            if (dv->seen_shape++)
                return bad(why, "duplicate key 'shape'");
            if (read_shape(&r, dv, why))
                return -1;
        } else {
            return bad(why, "unexpected key (only 'descr', 'fortran_order' and 'shape')");
        }
        skip_ws(&r);
        if (peek(&r) == ',')
            r.p++;
        else if (peek(&r) != '}')
            return bad(why, "expected ',' or '}' in header");
    }
    r.p++;
    skip_ws(&r);
    if (r.p != r.end)
        return bad(why, "text after the header dict");
    if (!dv->seen_descr)
        return bad(why, "header has no 'descr'");
    if (!dv->seen_fortran)
        return bad(why, "header has no 'fortran_order'");
    if (!dv->seen_shape)
        return bad(why, "header has no 'shape'");
    return 0;
}

/* ---- reading ---------------------------------------------------------------------------- */

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* Where the file holds the elements in C order: element i of the array (C order) is element
 * `at` of the file. C-order data is read straight through; Fortran-order data steps through
 * a C-order multi-index whose strides are Fortran's (first index fastest). */
typedef struct walk {
    int rank, fortran;
    size_t at;
    size_t idx[NPY_MAX_RANK], dim[NPY_MAX_RANK], stride[NPY_MAX_RANK];
} walk;

/* dv's shape is already checked: every dimension >= 1, the product fits in size_t. */
static void walk_start(walk *w, const dict_values *dv)
{
    memset(w, 0, sizeof *w);
    w->rank = dv->rank;
    w->fortran = dv->fortran;
    size_t s = 1;
    for (int k = 0; k < dv->rank; k++) {
        w->dim[k] = (size_t)dv->shape[k];
        w->stride[k] = s;
        s *= w->dim[k];
    }
}

static void walk_next(walk *w)
{
    if (!w->fortran) {
        w->at++;
        return;
    }
    /* last index fastest, as C order counts; a carry rewinds that index's whole span */
    for (int k = w->rank - 1; k >= 0; k--) {
        w->at += w->stride[k];
        if (++w->idx[k] < w->dim[k] || k == 0)
            return;
        w->at -= w->dim[k] * w->stride[k];
        w->idx[k] = 0;
    }
}

typedef struct npy_descr {
    const char *descr;
    int kind;
    size_t elem, out; /* bytes in the file, bytes in memory */
} npy_descr;

static const npy_descr descrs[] = {{"<f4", NPY_F32, 4, 4}, {"<f8", NPY_F32, 8, 4},
                                   {"<f2", NPY_F16, 2, 2}, {"<i4", NPY_I32, 4, 4},
                                   {"<i8", NPY_I64, 8, 8}, {"|u1", NPY_U8, 1, 1},
                                   {"|b1", NPY_BOOL, 1, 1}};

/* The dtypes kinds accepts, for messages: "'<f4' or '<f8'", ... */
static void kinds_text(unsigned kinds, char *buf, size_t len)
{
    size_t n = 0, count = 0, total = 0;
    for (size_t i = 0; i < sizeof descrs / sizeof *descrs; i++)
        total += kinds >> descrs[i].kind & 1;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof descrs / sizeof *descrs && n < len; i++)
        if (kinds >> descrs[i].kind & 1) {
            count++;
            const int w = snprintf(buf + n, len - n, "%s'%s'",
                                   count == 1       ? ""
                                   : count == total ? " or "
                                                    : ", ",
                                   descrs[i].descr);
            n += w > 0 ? (size_t)w : 0;
        }
}

/* One element of the file at src, as `d` stores it in memory at dst. Returns -1 for a
 * float64 that float32 cannot hold. */
static int load_elem(const npy_descr *d, const unsigned char *src, unsigned char *dst)
{
    if (d->elem == 8 && d->kind == NPY_F32) {
        const uint64_t u = le64(src);
        double x;
        memcpy(&x, &u, sizeof x);
        /* Converting a finite double beyond FLT_MAX is undefined behaviour in C, and
         * rounding it to Inf would hide the problem: refuse it. NaN/Inf pass through. */
        if (isfinite(x) && fabs(x) > FLT_MAX)
            return -1;
        const float f = (float)x;
        memcpy(dst, &f, sizeof f);
    } else if (d->elem == 8) {
        const uint64_t u = le64(src);
        memcpy(dst, &u, sizeof u);
    } else if (d->elem == 4) {
        const uint32_t u = le32(src);
        memcpy(dst, &u, sizeof u);
    } else if (d->elem == 2) {
        const uint16_t u = (uint16_t)(src[0] | src[1] << 8);
        memcpy(dst, &u, sizeof u);
    } else {
        *dst = *src;
    }
    return 0;
}

static int parse_kinds(const unsigned char *buf, size_t len, const char *name, unsigned kinds,
                       npy_array *out, char *err, size_t errlen);

int npy_parse(const unsigned char *buf, size_t len, const char *name, npy_array *out,
              char *err, size_t errlen)
{
    return parse_kinds(buf, len, name, 1u << NPY_F32, out, err, errlen);
}

static int parse_kinds(const unsigned char *buf, size_t len, const char *name, unsigned kinds,
                       npy_array *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (len < 6 || memcmp(buf, "\x93NUMPY", 6) != 0)
        return fail(err, errlen, name, "not a .npy file (bad magic)");
    if (len < 8)
        return fail(err, errlen, name, "truncated header (file ends at byte %zu)", len);
    const int major = buf[6], minor = buf[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0)
        return fail(err, errlen, name, "unsupported .npy format version %d.%d (need 1.0, "
                                       "2.0 or 3.0)", major, minor);
    const size_t hstart = major == 1 ? 10 : 12;
    if (len < hstart)
        return fail(err, errlen, name, "truncated header (file ends at byte %zu)", len);
    const size_t hlen = major == 1 ? (size_t)buf[8] | (size_t)buf[9] << 8 : (size_t)le32(buf + 8);
    if (hlen > len - hstart)
        return fail(err, errlen, name, "truncated header (%zu bytes announced, %zu present)",
                    hlen, len - hstart);
    if (hlen > NPY_MAX_HEADER)
        return fail(err, errlen, name, "header of %zu bytes is implausibly large", hlen);
    if (memchr(buf + hstart, 0, hlen))
        return fail(err, errlen, name, "header contains a NUL byte");

    dict_values dv;
    const char *why = NULL;
    if (read_dict((const char *)buf + hstart, hlen, &dv, &why))
        return fail(err, errlen, name, "unparseable header: %s", why);
    const npy_descr *d = NULL;
    for (size_t i = 0; i < sizeof descrs / sizeof *descrs; i++)
        if (kinds >> descrs[i].kind & 1 && !strcmp(dv.descr, descrs[i].descr))
            d = &descrs[i];
    char accepted[96];
    kinds_text(kinds, accepted, sizeof accepted);
    if (!d && dv.descr[0] == '>')
        return fail(err, errlen, name, "big-endian dtype '%s' is not supported (need %s)", dv.descr,
                    accepted);
    if (!d)
        return fail(err, errlen, name, "unsupported dtype '%s' (need %s)", dv.descr, accepted);
    const size_t elem = d->elem;
    if (dv.rank == 0)
        return fail(err, errlen, name, "scalar arrays (shape ()) are not supported");
    size_t count = 1;
    for (int i = 0; i < dv.rank; i++) {
        if (dv.shape[i] == 0)
            return fail(err, errlen, name, "empty arrays (a 0 in 'shape') are not supported");
        if ((uint64_t)dv.shape[i] > SIZE_MAX / elem / count)
            return fail(err, errlen, name, "shape too large: its byte count overflows");
        count *= (size_t)dv.shape[i];
    }
    const size_t off = hstart + hlen, have = len - off, need = count * elem;
    if (have < need)
        return fail(err, errlen, name, "truncated data: %zu bytes, the shape needs %zu", have,
                    need);
    if (have > need)
        return fail(err, errlen, name, "trailing data after the array (%zu extra byte%s)",
                    have - need, have - need == 1 ? "" : "s");

    unsigned char *data = malloc(count ? count * d->out : 1);
    if (!data)
        return fail(err, errlen, name, "out of memory for %zu elements", count);
    const unsigned char *src = buf + off;
    walk w;
    walk_start(&w, &dv);
    for (size_t i = 0; i < count; i++, walk_next(&w)) {
        if (load_elem(d, src + elem * w.at, data + d->out * i) != 0) {
            double x;
            const uint64_t u = le64(src + elem * w.at);
            memcpy(&x, &u, sizeof x);
            free(data);
            return fail(err, errlen, name,
                        "float64 value %g at index %zu is outside the "
                        "float32 range",
                        x, w.at);
        }
    }
    out->kind = d->kind;
    if (d->kind == NPY_F32)
        out->data = (float *)(void *)data;
    else
        out->bytes = data;
    out->count = count;
    out->rank = dv.rank;
    memcpy(out->shape, dv.shape, sizeof dv.shape);
    out->version = major;
    out->from_f8 = elem == 8 && d->kind == NPY_F32;
    return 0;
}

int npy_read(const char *path, npy_array *out, char *err, size_t errlen)
{
    return npy_read_kinds(path, 1u << NPY_F32, out, err, errlen);
}

int npy_read_kinds(const char *path, unsigned kinds, npy_array *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t size = 0;
    /* a FIFO, device or directory is refused by type, before a read could block */
    const int fd = rj_open_regular(path, &size, err, errlen);
    if (fd < 0)
        return -1;
    unsigned char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return fail(err, errlen, path, "out of memory for %zu bytes", size);
    }
    const int bad = rj_read_full(fd, buf, size) != 0 ? errno : 0;
    close(fd);
    int rc = bad ? fail(err, errlen, path, "read error: %s", strerror(bad))
                 : parse_kinds(buf, size, path, kinds, out, err, errlen);
    free(buf);
    return rc;
}

/* ---- writing ---------------------------------------------------------------------------- */

static int write_elems(const char *path, const void *data, const char *descr, size_t elem, int rank,
                       const int64_t *shape, char *err, size_t errlen);

int npy_write(const char *path, const float *data, int rank, const int64_t *shape, char *err,
              size_t errlen)
{
    return write_elems(path, data, "<f4", sizeof *data, rank, shape, err, errlen);
}

int npy_write_f16(const char *path, const uint16_t *data, int rank, const int64_t *shape, char *err,
                  size_t errlen)
{
    return write_elems(path, data, "<f2", sizeof *data, rank, shape, err, errlen);
}

/* count = prod(shape) elements of elem (2 or 4) bytes in host order, written little-endian. */
static int write_elems(const char *path, const void *data, const char *descr, size_t elem, int rank,
                       const int64_t *shape, char *err, size_t errlen)
{
    if (!data || !shape || rank < 1 || rank > NPY_MAX_RANK)
        return fail(err, errlen, path, "npy_write needs data, a shape and rank 1..4");
    /* Header as NumPy writes it: "(n,)" for rank 1, "(a, b)" otherwise. */
    char dict[160];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     descr);
    size_t count = 1;
    for (int i = 0; i < rank; i++) {
        if (shape[i] < 1 || (uint64_t)shape[i] > SIZE_MAX / elem / count)
            return fail(err, errlen, path, "cannot write shape entry %lld",
                        (long long)shape[i]);
        count *= (size_t)shape[i];
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld", i ? ", " : "",
                      (long long)shape[i]);
    }
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", rank == 1 ? "," : "");
    /* 10 bytes of preamble + dict + padding + '\n' is a multiple of 64 (NumPy's alignment). */
    const size_t pad = (64 - (10 + (size_t)n + 1) % 64) % 64, hlen = (size_t)n + pad + 1;
    unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                              (unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
    rj_outfile f;
    if (rj_out_begin(&f, path, 0644, 0, err, errlen) != 0)
        return -1;
    rj_out_write(&f, head, sizeof head);
    rj_out_write(&f, dict, (size_t)n);
    char spaces[64];
    memset(spaces, ' ', sizeof spaces);
    rj_out_write(&f, spaces, pad);
    rj_out_write(&f, "\n", 1);
    unsigned char chunk[4096];
    const unsigned char *src = data;
    for (size_t i = 0; i < count;) {
        size_t c = 0;
        for (; c < sizeof chunk / elem && i < count; c++, i++) {
            uint32_t u = 0;
            if (elem == 4) {
                memcpy(&u, src + 4 * i, 4);
            } else {
                uint16_t h;
                memcpy(&h, src + 2 * i, 2);
                u = h;
            }
            for (size_t b = 0; b < elem; b++)
                chunk[elem * c + b] = (unsigned char)(u >> (8 * b));
        }
        rj_out_write(&f, chunk, elem * c);
    }
    return rj_out_commit(&f, err, errlen);
}
