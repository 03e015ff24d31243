/* SPDX-License-Identifier: MIT */
/*
 * This file draws `rfjit bench --plot` through gnuplot (Debian gnuplot-nox): panel 1, time
 * against L on log-log axes for rfjit exact and positive and the peers (the scaling suite's
 * rows); panel 2, relative error against m for each estimator at the error suite's L. The
 * data, the script and the drawing go to a temporary directory that is removed afterwards;
 * the drawing then replaces the user's file only once complete (runtime/fsutil.h).
 */
#include "bench.h"
#include "runtime/fsutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int bench_plot_available(void)
{
    return system("gnuplot --version >/dev/null 2>&1") == 0 ? 0 : -1;
}

static void put(FILE *f, double x)
{
    if (isfinite(x))
        fprintf(f, " %.6g", x);
    else
        fputs(" NaN", f);
}

/* The scaling rows, one line per L: rfjit exact, rfjit positive, then the peers. */
static int write_scaling(const char *path, const bench_point *pts, int n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs("# L rfjit_exact rfjit_positive openblas_exact openblas_favor torch_sdpa "
          "torch_favor\n",
          f);
    int lines = 0;
    for (int L = 1; L <= (1 << 24); L *= 2) {
        double col[6] = {NAN, NAN, NAN, NAN, NAN, NAN};
        int any = 0;
        for (int i = 0; i < n; i++) {
            const bench_point *p = &pts[i];
            if (strcmp(p->suite, "scaling") || p->L != L)
                continue;
            any = 1;
            if (!strcmp(p->estimator, "exact")) {
                col[0] = p->ms;
                col[2] = p->blas_exact_ms;
                col[4] = p->torch_sdpa_ms;
            } else if (!strcmp(p->estimator, "positive")) {
                col[1] = p->ms;
                col[3] = p->blas_favor_ms;
                col[5] = p->torch_favor_ms;
            }
        }
        if (!any)
            continue;
        fprintf(f, "%d", L);
        for (int c = 0; c < 6; c++)
            put(f, col[c]);
        fputc('\n', f);
        lines++;
    }
    return fclose(f) == 0 && lines ? 0 : -1;
}

/* One gnuplot data block per estimator of the error rows (m, rel_err), separated by two
 * blank lines; names[] gets the estimators in block order. */
static int write_error(const char *path, const bench_point *pts, int n, const char **names,
                       int *n_names, int *L)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    *n_names = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(pts[i].suite, "error"))
            continue;
        int seen = 0;
        for (int j = 0; j < *n_names; j++)
            seen |= !strcmp(names[j], pts[i].estimator);
        if (seen || *n_names >= 32)
            continue;
        names[(*n_names)++] = pts[i].estimator;
        *L = pts[i].L;
        if (*n_names > 1)
            fputs("\n\n", f);
        for (int j = 0; j < n; j++)
            if (!strcmp(pts[j].suite, "error") && !strcmp(pts[j].estimator, pts[i].estimator))
                fprintf(f, "%d %.6g\n", pts[j].m, pts[j].rel_err);
    }
    return fclose(f) == 0 && *n_names ? 0 : -1;
}

int bench_plot_path_ok(const char *path, char *why, size_t len)
{
    const size_t pl = strlen(path);
    const int png = pl > 4 && !strcmp(path + pl - 4, ".png");
    const int svg = pl > 4 && !strcmp(path + pl - 4, ".svg");
    if (!png && !svg) {
        snprintf(why, len, "plot file '%s' must end in .svg or .png", path);
        return 0;
    }
    char real[RJ_PATH_BYTES];
    int mode;
    return rj_output_target(path, real, &mode, why, len) == 0;
}

/* Put gnuplot's finished file in place by the writer every rfjit output uses. */
static int install(const char *drawn, const char *path, char *why, size_t len)
{
    size_t n = 0;
    const int fd = rj_open_regular(drawn, &n, why, len);
    if (fd < 0)
        return -1;
    char *buf = malloc(n ? n : 1);
    int rc = buf && rj_read_full(fd, buf, n) == 0 ? 0 : -1;
    close(fd);
    if (rc != 0)
        snprintf(why, len, "cannot read gnuplot's output %s", drawn);
    else
        rc = rj_write_file(path, buf, n, 0644, 0, why, len);
    free(buf);
    return rc;
}

int bench_plot_write(const char *path, const bench_point *pts, int n, char *why, size_t len)
{
    if (!bench_plot_path_ok(path, why, len))
        return -1;
    const size_t pl = strlen(path);
    const int png = !strcmp(path + pl - 4, ".png");
    char dir[] = "/tmp/rfjit_bench_plot_XXXXXX";
    if (!mkdtemp(dir)) {
        snprintf(why, len, "cannot create a temporary directory");
        return -1;
    }
    char scal[64], err[64], gp[64], drawn[64];
    snprintf(drawn, sizeof drawn, "%s/plot.%s", dir, png ? "png" : "svg");
    snprintf(scal, sizeof scal, "%s/scaling.dat", dir);
    snprintf(err, sizeof err, "%s/error.dat", dir);
    snprintf(gp, sizeof gp, "%s/plot.gp", dir);
    const char *names[32];
    int n_names = 0, L = 0, rc = -1;
    FILE *f = NULL;
    if (write_scaling(scal, pts, n) != 0 || write_error(err, pts, n, names, &n_names, &L) != 0) {
        snprintf(why, len, "no scaling or error rows to plot");
        goto done;
    }
    f = fopen(gp, "w");
    if (!f) {
        snprintf(why, len, "cannot write %s", gp);
        goto done;
    }
    fprintf(f, "set terminal %s size 1400,560 font \"sans,11\"\n", png ? "pngcairo" : "svg");
    fprintf(f, "set output \"%s\"\nset datafile missing \"NaN\"\n", drawn);
    fputs("set multiplot layout 1,2\nset logscale xy\nset logscale x 2\nset grid\nset key left top\n"
          "set xlabel \"L (d = dv = 64, m = 256, bidirectional, 1 thread)\"\n"
          "set ylabel \"median ms\"\nset title \"time against sequence length\"\n",
          f);
    fprintf(f,
            "plot \"%s\" using 1:2 with linespoints title \"rfjit exact\", \\\n"
            "     \"\" using 1:3 with linespoints title \"rfjit positive\", \\\n"
            "     \"\" using 1:4 with linespoints dt 2 title \"OpenBLAS exact\", \\\n"
            "     \"\" using 1:5 with linespoints dt 2 title \"OpenBLAS FAVOR+\", \\\n"
            "     \"\" using 1:6 with linespoints dt 3 title \"torch SDPA\", \\\n"
            "     \"\" using 1:7 with linespoints dt 3 title \"torch FAVOR+\"\n",
            scal);
    fprintf(f,
            "set key right top\nset logscale x 2\n"
            "set xlabel \"m (L = %d, d = dv = 64, one projection draw)\"\n"
            "set ylabel \"|O - O_{exact}|_F / |O_{exact}|_F\"\n"
            "set title \"relative error against m\"\nplot ",
            L);
    for (int i = 0; i < n_names; i++)
        fprintf(f, "%s\"%s\" index %d using 1:2 with linespoints title \"%s\"",
                i ? ", \\\n     " : "", err, i, names[i]);
    fputs("\nunset multiplot\n", f);
    if (fclose(f) != 0) {
        snprintf(why, len, "cannot write %s", gp);
        goto done;
    }
    char cmd[160];
    snprintf(cmd, sizeof cmd, "gnuplot %s 2>%s/gnuplot.err", gp, dir);
    if (system(cmd) != 0) {
        char ep[96], msg[256] = "";
        snprintf(ep, sizeof ep, "%s/gnuplot.err", dir);
        FILE *e = fopen(ep, "r");
        if (e) {
            if (!fgets(msg, sizeof msg, e))
                msg[0] = 0;
            fclose(e);
            unlink(ep);
        }
        snprintf(why, len, "gnuplot failed: %s", msg[0] ? msg : "(no message)");
        goto done;
    }
    rc = install(drawn, path, why, len);
done:
    {
        char ep[96];
        snprintf(ep, sizeof ep, "%s/gnuplot.err", dir);
        unlink(ep);
    }
    unlink(scal);
    unlink(err);
    unlink(gp);
    unlink(drawn);
    rmdir(dir);
    return rc;
}
