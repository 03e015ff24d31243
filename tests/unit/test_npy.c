/* SPDX-License-Identifier: MIT */
/* This file checks the .npy reader and writer: round trip, version 2 headers, float64
 * conversion, and a refusal with a message naming the file for each malformed class. */
#include <criterion/criterion.h>

#include "npy.h"

#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

TestSuite(npy);

/* Build an in-memory .npy with the given version, dict and payload. */
static size_t make(unsigned char *buf, int major, const char *dict, const void *data,
                   size_t n)
{
    size_t hl = strlen(dict), off = major == 1 ? 10 : 12;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    buf[8] = (unsigned char)(hl & 0xff);
    buf[9] = (unsigned char)(hl >> 8);
    if (major != 1)
        buf[10] = buf[11] = 0;
    memcpy(buf + off, dict, hl);
    memcpy(buf + off + hl, data, n);
    return off + hl + n;
}

static const char f4_23[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n";

Test(npy, round_trip_file)
{
    float x[24];
    for (int i = 0; i < 24; i++)
        x[i] = (float)i * 0.5f - 3;
    int64_t shape[4] = {1, 2, 3, 4};
    char path[] = "/tmp/rfjit_npy_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    char err[256];
    cr_assert_eq(npy_write(path, x, 4, shape, err, sizeof err), 0, "%s", err);
    npy_array a;
    cr_assert_eq(npy_read(path, &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(a.rank, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(a.shape[i], shape[i]);
    cr_assert_eq(memcmp(a.data, x, sizeof x), 0);
    npy_free(&a);
    remove(path);
    cr_assert_neq(npy_read("/nonexistent/x.npy", &a, err, sizeof err), 0);
    cr_assert(strstr(err, "/nonexistent/x.npy") && strstr(err, "cannot open"), "%s", err);
}

Test(npy, version2_and_float64)
{
    unsigned char buf[512];
    double d[6] = {1, -2, 3.5, 4, 5, 1e30};
    size_t n = make(buf, 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), }\n", d,
                    sizeof d);
    npy_array a;
    char err[256];
    cr_assert_eq(npy_parse(buf, n, "v2.npy", &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(a.rank, 1);
    cr_assert_eq(a.data[2], 3.5f);
    cr_assert_eq(a.data[5], 1e30f);
    npy_free(&a);
}

static void expect_refused(const unsigned char *buf, size_t n, const char *needle)
{
    npy_array a;
    char err[256] = "";
    cr_assert_neq(npy_parse(buf, n, "bad.npy", &a, err, sizeof err), 0, "accepted: %s", needle);
    cr_assert(strstr(err, "bad.npy") && strstr(err, needle), "message '%s' lacks '%s'", err,
              needle);
    cr_assert_null(a.data);
}

Test(npy, malformed_files_are_refused)
{
    unsigned char buf[512];
    float f[6] = {0};
    double big[1] = {1e300};
    size_t n = make(buf, 1, f4_23, f, sizeof f);
    expect_refused((const unsigned char *)"NUMPY", 5, "magic");
    unsigned char tmp[512];
    memcpy(tmp, buf, n);
    tmp[1] = 'X';
    expect_refused(tmp, n, "magic");
    memcpy(tmp, buf, n);
    tmp[6] = 7;
    expect_refused(tmp, n, "version");
    expect_refused(buf, 20, "truncated header");
    expect_refused(buf, n - 1, "truncated data");
    memcpy(tmp, buf, n);
    tmp[n] = 0;
    expect_refused(tmp, n + 1, "trailing");
    n = make(buf, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", f, sizeof f);
    expect_refused(buf, n, "big-endian");
    n = make(buf, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", f, sizeof f);
    expect_refused(buf, n, "dtype");
    n = make(buf, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f, sizeof f);
    expect_refused(buf, n, "Fortran");
    n = make(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", f, sizeof f);
    expect_refused(buf, n, "shape");
    n = make(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", f, sizeof f);
    expect_refused(buf, n, "scalar");
    n = make(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 6), }",
             f, sizeof f);
    expect_refused(buf, n, "rank");
    n = make(buf, 1,
             "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
             f, sizeof f);
    expect_refused(buf, n, "too large");
    n = make(buf, 1, "{'fortran_order': False, 'shape': (2, 3), }", f, sizeof f);
    expect_refused(buf, n, "descr");
    n = make(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", big,
             sizeof big);
    expect_refused(buf, n, "overflows float32");
}
