/* SPDX-License-Identifier: MIT */
/*
 * This file checks tools/npy.[ch]: files written by NumPy (tests/data, made with
 * numpy 2.4 np.save / np.lib.format.write_array) are read, the writer's bytes equal NumPy's,
 * round trips are exact, float64 is converted, Fortran-order files are transposed on load
 * into what their C-order twins hold, and every malformed class is refused with a message
 * naming the file and the problem. Malformed images are built here at run time.
 */
#include <criterion/criterion.h>

#include "npy.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(npy);

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    static unsigned char buf[4096];
    *len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

/* Build an image: magic, version (major, 0), header length field, dict padded to `pad`
 * bytes with spaces and a '\n' (pad 0: dict as is), then n bytes of data. */
static size_t make(unsigned char *buf, int major, const char *dict, size_t pad, const void *data,
                   size_t n)
{
    const size_t hl = strlen(dict), off = major == 1 ? 10 : 12;
    const size_t total = pad > hl ? pad : hl;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    buf[8] = (unsigned char)(total & 0xff);
    buf[9] = (unsigned char)(total >> 8);
    if (major != 1)
        buf[10] = buf[11] = 0;
    memcpy(buf + off, dict, hl);
    if (pad > hl) {
        memset(buf + off + hl, ' ', pad - hl - 1);
        buf[off + pad - 1] = '\n';
    }
    if (n)
        memcpy(buf + off + total, data, n);
    return off + total + n;
}

static const char f4_23[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";

static void tmpname(char *path)
{
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
}

Test(npy, reads_numpy_fixtures)
{
    char err[512];
    npy_array a;
    cr_assert_eq(npy_read(RFJIT_SOURCE_DIR "/tests/data/f4_v1_2x3.npy", &a, err, sizeof err), 0,
                 "%s", err);
    cr_assert_eq(a.rank, 2);
    cr_assert_eq(a.shape[0], 2);
    cr_assert_eq(a.shape[1], 3);
    cr_assert_eq(a.version, 1);
    for (int i = 0; i < 6; i++) /* np.arange(6) * 0.5 - 1 */
        cr_assert_eq(a.data[i], (float)i * 0.5f - 1.0f, "element %d: %g", i, a.data[i]);
    npy_free(&a);

    cr_assert_eq(npy_read(RFJIT_SOURCE_DIR "/tests/data/f8_v2_1x2x3x4.npy", &a, err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(a.rank, 4);
    cr_assert_eq(a.version, 2);
    cr_assert_eq(a.from_f8, 1);
    const int64_t want[4] = {1, 2, 3, 4};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(a.shape[i], want[i]);
    for (int i = 0; i < 24; i++) /* np.arange(24) / 8 - 1.25, exact in float32 */
        cr_assert_eq(a.data[i], (float)i / 8.0f - 1.25f, "element %d: %g", i, a.data[i]);
    npy_free(&a);

    cr_assert_eq(npy_read(RFJIT_SOURCE_DIR "/tests/data/f4_v3_3.npy", &a, err, sizeof err), 0,
                 "%s", err);
    cr_assert_eq(a.rank, 1);
    cr_assert_eq(a.version, 3);
    cr_assert_eq(a.shape[0], 3);
    cr_assert_eq(a.data[0], 1.5f);
    cr_assert_eq(a.data[1], -2.0f);
    cr_assert_eq(a.data[2], 3.25f);
    npy_free(&a);
}

/* Pairs made by numpy 1.24 (np.save writes 'fortran_order': True for a transposed array):
 *   a = (np.arange(6, dtype='<f4') * 0.5 - 1).reshape(2, 3)
 *   np.save('f4_v1_3x2_fortran.npy', a.T); np.save('f4_v1_3x2.npy', np.ascontiguousarray(a.T))
 *   b = (np.arange(24, dtype='<f8') * 0.25 - 3).reshape(2, 3, 4)
 *   np.save('f8_v1_4x3x2_fortran.npy', b.T); np.save('f8_v1_4x3x2.npy', np.ascontiguousarray(b.T))
 *   c = (np.arange(24, dtype='<f4') + 1).reshape(2, 1, 3, 4)
 *   np.save('f4_v1_2x1x3x4_fortran.npy', np.asfortranarray(c)); np.save('f4_v1_2x1x3x4.npy', c)
 * Each Fortran-order file reads as its C-order twin: same rank, shape and values. */
Test(npy, fortran_order_is_transposed_on_load)
{
    static const char *const pairs[][2] = {
        {"f4_v1_3x2_fortran.npy", "f4_v1_3x2.npy"},
        {"f8_v1_4x3x2_fortran.npy", "f8_v1_4x3x2.npy"},
        {"f4_v1_2x1x3x4_fortran.npy", "f4_v1_2x1x3x4.npy"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        char pf[512], pc[512], err[512];
        snprintf(pf, sizeof pf, RFJIT_SOURCE_DIR "/tests/data/%s", pairs[i][0]);
        snprintf(pc, sizeof pc, RFJIT_SOURCE_DIR "/tests/data/%s", pairs[i][1]);
        npy_array f, c;
        cr_assert_eq(npy_read(pf, &f, err, sizeof err), 0, "%s", err);
        cr_assert_eq(npy_read(pc, &c, err, sizeof err), 0, "%s", err);
        cr_assert_eq(f.rank, c.rank, "%s", pf);
        cr_assert_eq(f.count, c.count, "%s", pf);
        cr_assert_eq(f.from_f8, c.from_f8, "%s", pf);
        for (int k = 0; k < f.rank; k++)
            cr_assert_eq(f.shape[k], c.shape[k], "%s dim %d", pf, k);
        for (size_t k = 0; k < f.count; k++)
            cr_assert_eq(f.data[k], c.data[k], "%s element %zu: %g, C twin %g", pf, k,
                         f.data[k], c.data[k]);
        npy_free(&f);
        npy_free(&c);
    }
    /* explicit values: a.T is [[-1, 0.5], [-0.5, 1], [0, 1.5]]; the file holds them in the
     * order -1, -0.5, 0, 0.5, 1, 1.5, which a reader ignoring the order would return */
    char err[512];
    npy_array f;
    cr_assert_eq(npy_read(RFJIT_SOURCE_DIR "/tests/data/f4_v1_3x2_fortran.npy", &f, err,
                          sizeof err),
                 0, "%s", err);
    const float want[6] = {-1, 0.5f, -0.5f, 1, 0, 1.5f};
    for (int k = 0; k < 6; k++)
        cr_assert_eq(f.data[k], want[k], "element %d: %g, want %g", k, f.data[k], want[k]);
    npy_free(&f);
}

Test(npy, writer_matches_numpy_bytes)
{
    const float x[6] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f};
    const int64_t shape[2] = {2, 3};
    char path[] = "/tmp/rfjit_npy_XXXXXX", err[512];
    tmpname(path);
    cr_assert_eq(npy_write(path, x, 2, shape, err, sizeof err), 0, "%s", err);
    size_t n1, n2;
    unsigned char mine[4096];
    const unsigned char *img = slurp(path, &n1);
    memcpy(mine, img, n1);
    const unsigned char *theirs = slurp(RFJIT_SOURCE_DIR "/tests/data/f4_v1_2x3.npy", &n2);
    cr_assert_eq(n1, n2, "size %zu, NumPy's %zu", n1, n2);
    cr_assert_eq(memcmp(mine, theirs, n1), 0, "bytes differ from NumPy's np.save output");
    remove(path);
}

Test(npy, round_trip_ranks_1_to_4)
{
    float x[120];
    for (int i = 0; i < 120; i++)
        x[i] = (float)i * 0.37f - 11.0f;
    x[7] = FLT_MAX, x[8] = -FLT_MIN, x[9] = 1e-45f; /* extremes and a subnormal survive */
    const int64_t shapes[4][4] = {{120}, {8, 15}, {2, 3, 20}, {1, 2, 5, 12}};
    char path[] = "/tmp/rfjit_npy_XXXXXX", err[512];
    tmpname(path);
    for (int r = 1; r <= 4; r++) {
        cr_assert_eq(npy_write(path, x, r, shapes[r - 1], err, sizeof err), 0, "%s", err);
        size_t len;
        const unsigned char *img = slurp(path, &len);
        cr_assert_eq(len % 64, (size_t)(120 * 4) % 64, "rank %d: header not 64-aligned", r);
        npy_array a;
        cr_assert_eq(npy_read(path, &a, err, sizeof err), 0, "rank %d: %s", r, err);
        cr_assert_eq(a.rank, r);
        cr_assert_eq(a.count, 120u);
        for (int i = 0; i < r; i++)
            cr_assert_eq(a.shape[i], shapes[r - 1][i]);
        cr_assert_eq(memcmp(a.data, x, sizeof x), 0, "rank %d: data differ", r);
        cr_assert_eq(img[6], 1);
        npy_free(&a);
    }
    remove(path);
    npy_array a;
    cr_assert_neq(npy_read("/nonexistent/x.npy", &a, err, sizeof err), 0);
    cr_assert(strstr(err, "/nonexistent/x.npy") && strstr(err, "cannot open"), "%s", err);
    cr_assert_null(a.data);
    cr_assert_neq(npy_write("/nonexistent/dir/o.npy", x, 1, shapes[0], err, sizeof err), 0);
    cr_assert(strstr(err, "/nonexistent/dir/o.npy"), "%s", err);
    const int64_t bad[2] = {0, 3};
    cr_assert_neq(npy_write(path, x, 2, bad, err, sizeof err), 0);
    cr_assert_neq(npy_write(path, x, 5, shapes[3], err, sizeof err), 0);
    cr_assert_neq(access(path, F_OK), 0, "a refused write left %s behind", path);
}

Test(npy, version2_and_float64_conversion)
{
    unsigned char buf[512];
    const double d[6] = {1, -2, 3.5, 0.1, -1e-300, 3.4028234663852886e38};
    size_t n = make(buf, 2, "{'shape': (6,), 'fortran_order': False, 'descr': '<f8'}", 64, d,
                    sizeof d);
    npy_array a;
    char err[256];
    cr_assert_eq(npy_parse(buf, n, "v2.npy", &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(a.rank, 1);
    cr_assert_eq(a.version, 2);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(a.data[i], (float)d[i], "element %d", i);
    npy_free(&a);
    /* NaN and Inf are the library's to refuse, with its own message. */
    const double nf[2] = {NAN, -INFINITY};
    n = make(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2)}", 0, nf,
             sizeof nf);
    cr_assert_eq(npy_parse(buf, n, "nf.npy", &a, err, sizeof err), 0, "%s", err);
    cr_assert(isnan(a.data[0]) && isinf(a.data[1]) && a.data[1] < 0);
    npy_free(&a);
    /* Python 2 long suffixes and double-quoted keys are still the literal NumPy evaluates. */
    n = make(buf, 1, "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2L, 3L), }",
             64, d, 24);
    cr_assert_eq(npy_parse(buf, n, "py2.npy", &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(a.shape[0], 2);
    npy_free(&a);
}

static void expect_refused(const unsigned char *buf, size_t n, const char *needle)
{
    npy_array a;
    char err[256] = "";
    cr_assert_neq(npy_parse(buf, n, "bad.npy", &a, err, sizeof err), 0,
                  "accepted an image that should fail with '%s'", needle);
    cr_assert(strncmp(err, "bad.npy: ", 9) == 0 && strstr(err, needle),
              "message '%s' lacks 'bad.npy: ' or '%s'", err, needle);
    cr_assert_null(a.data);
    cr_assert_null(strchr(err, '\n'), "message is not one line: %s", err);
}

static void expect_dict_refused(const char *dict, const char *needle)
{
    unsigned char buf[512];
    const float f[6] = {0};
    const size_t n = make(buf, 1, dict, 0, f, sizeof f);
    expect_refused(buf, n, needle);
}

Test(npy, bad_magic_version_and_truncation)
{
    unsigned char buf[512], tmp[512];
    const float f[6] = {0};
    const size_t n = make(buf, 1, f4_23, 64, f, sizeof f);
    expect_refused((const unsigned char *)"NUMPY", 5, "bad magic");
    expect_refused((const unsigned char *)"", 0, "bad magic");
    memcpy(tmp, buf, n);
    tmp[1] = 'X';
    expect_refused(tmp, n, "bad magic");
    memcpy(tmp, buf, n);
    tmp[6] = 4;
    expect_refused(tmp, n, "version 4.0");
    tmp[6] = 1, tmp[7] = 1;
    expect_refused(tmp, n, "version 1.1");
    expect_refused(buf, 7, "truncated header");
    expect_refused(buf, 9, "truncated header");
    expect_refused(buf, 40, "truncated header");
    expect_refused(buf, n - 20, "truncated data");
    expect_refused(buf, n - 1, "truncated data");
    memcpy(tmp, buf, n);
    tmp[n] = 0;
    expect_refused(tmp, n + 1, "trailing data after the array (1 extra byte");
    /* Version 2 with a 4 GiB header length in a 100-byte file. */
    memcpy(tmp, buf, 10);
    tmp[6] = 2;
    memset(tmp + 8, 0xff, 4);
    expect_refused(tmp, 100, "truncated header");
    memcpy(tmp, buf, n);
    tmp[20] = 0;
    expect_refused(tmp, n, "NUL");
}

/* A Fortran-order image is checked like any other: its length, and float64 beyond float32
 * (reported at its index in the file). */
Test(npy, fortran_order_keeps_the_checks)
{
    unsigned char buf[512];
    const double d[6] = {0, 1, 2, 3, 1e300, 5};
    size_t n = make(buf, 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", 0, d,
                    sizeof d);
    expect_refused(buf, n, "float64 value 1e+300 at index 4");
    const float f[6] = {0};
    n = make(buf, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 0, f,
             sizeof f);
    expect_refused(buf, n - 1, "truncated data");
    /* rank 1 is the same in both orders */
    const float r1[3] = {1, 2, 3};
    n = make(buf, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }", 0, r1,
             sizeof r1);
    npy_array a;
    char err[256];
    cr_assert_eq(npy_parse(buf, n, "r1.npy", &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(memcmp(a.data, r1, sizeof r1), 0);
    npy_free(&a);
}

Test(npy, bad_dtypes_and_order)
{
    expect_dict_refused("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }",
                        "big-endian dtype '>f4'");
    expect_dict_refused("{'descr': '>f8', 'fortran_order': False, 'shape': (3,), }",
                        "big-endian");
    expect_dict_refused("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }",
                        "unsupported dtype '<i4'");
    expect_dict_refused("{'descr': '<f2', 'fortran_order': False, 'shape': (12,), }",
                        "unsupported dtype '<f2'");
    expect_dict_refused("{'descr': '|u1', 'fortran_order': False, 'shape': (24,), }",
                        "unsupported dtype '|u1'");
    expect_dict_refused("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }",
                        "unsupported dtype");
    expect_dict_refused("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }",
                        "structured");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }",
                        "neither True nor False");
}

Test(npy, unparseable_headers)
{
    expect_dict_refused("", "header is not a dict");
    expect_dict_refused("descr: <f4", "header is not a dict");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ",
                        "expected a quoted string");
    expect_dict_refused("{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3)}",
                        "expected ',' or '}'");
    expect_dict_refused("{'descr' '<f4', 'fortran_order': False, 'shape': (2, 3)}",
                        "expected ':'");
    expect_dict_refused("{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3)}",
                        "unparseable header");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} x",
                        "text after the header dict");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}",
                        "unexpected key");
    expect_dict_refused("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
                        "'shape': (2, 3)}",
                        "duplicate key 'descr'");
    expect_dict_refused("{'fortran_order': False, 'shape': (2, 3), }", "no 'descr'");
    expect_dict_refused("{'descr': '<f4', 'shape': (2, 3), }", "no 'fortran_order'");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False}", "no 'shape'");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3]}",
                        "not a tuple");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (6)}",
                        "not a tuple");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }",
                        "non-negative integers");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }",
                        "non-negative integers");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }",
                        "malformed");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3}",
                        "malformed");
}

Test(npy, bad_shapes_and_sizes)
{
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", "scalar");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }",
                        "empty arrays");
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 6), }",
                        "rank above 4");
    /* 2^32 * 2^32 elements: the element count overflows 64 bits. */
    expect_dict_refused(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
        "byte count overflows");
    /* 2^62 elements of 4 bytes: the count fits, the byte count does not. */
    expect_dict_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,)}",
                        "byte count overflows");
    expect_dict_refused(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}",
        "does not fit in 64 bits");
    /* Large but representable: refused as truncated, without allocating the claimed size. */
    expect_dict_refused("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,)}",
                        "truncated data");
}

Test(npy, float64_beyond_float32_is_refused)
{
    unsigned char buf[512];
    const double big[3] = {1, 2, -1e300};
    size_t n = make(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", 0, big,
                    sizeof big);
    expect_refused(buf, n, "value -1e+300 at index 2 is outside the float32 range");
    const double edge[1] = {3.4028236e38}; /* just above FLT_MAX */
    n = make(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", 0, edge,
             sizeof edge);
    expect_refused(buf, n, "outside the float32 range");
}
