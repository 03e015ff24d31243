/* SPDX-License-Identifier: MIT */
/*
 * This file runs the torch peer, bench/peer_torch.py, as a subprocess of /usr/bin/python3
 * (Debian's python3-torch lives there, not under a pyenv python3 that may come first on
 * PATH). The data goes through a raw float32 file so torch computes on the harness's numbers
 * and its outputs come back for the same agreement check as the OpenBLAS peers.
 *
 * Torch runs in its "tuned" configuration (spec performance.md): OPENBLAS_CORETYPE removed,
 * so the OpenBLAS inside torch picks its AVX-512 kernels, and glibc's malloc told to keep
 * freed memory (trim threshold 16 GiB, mmap threshold 32 MiB, glibc's maximum), so the
 * temporaries torch allocates on every call are not faulted in again each time.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef RFJIT_BENCH_DIR
#error "CMake defines RFJIT_BENCH_DIR, where peer_torch.py is"
#endif

extern char **environ;

#define PYTHON "/usr/bin/python3"

const char bench_torch_tunables[] =
    "GLIBC_TUNABLES=glibc.malloc.trim_threshold=17179869184:glibc.malloc.mmap_threshold=33554432";

/* Run argv with the tuned environment; its stdout into out (NUL-terminated). Returns the
 * exit status, or -1 if it could not run or died. */
/* peer_torch.py: next to an installed rfjit (<prefix>/bin/rfjit reads
 * <prefix>/share/rfjit/peer_torch.py), else in the source tree the binary was built from. */
static void peer_script_named(char *path, size_t n, const char *name)
{
    char exe[4096];
    const ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(path, n, "%s/../share/rfjit/%s", exe, name);
            if (access(path, R_OK) == 0)
                return;
        }
    }
    snprintf(path, n, "%s/%s", RFJIT_BENCH_DIR, name);
}

static void peer_script(char *path, size_t n)
{
    peer_script_named(path, n, "peer_torch.py");
}

static int run_capture(char *const argv[], char *out, size_t len)
{
    size_t n_env = 0;
    while (environ[n_env])
        n_env++;
    char **env = malloc(sizeof(char *) * (n_env + 2));
    if (!env)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++)
        if (strncmp(environ[i], "OPENBLAS_CORETYPE=", 18) &&
            strncmp(environ[i], "GLIBC_TUNABLES=", 15))
            env[k++] = environ[i];
    env[k++] = (char *)bench_torch_tunables;
    env[k] = NULL;
    int fd[2];
    if (pipe(fd) != 0) {
        free(env);
        return -1;
    }
    fflush(NULL);
    const pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        const int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2); /* torch's warnings are not the harness's output */
        execve(argv[0], argv, env);
        _exit(127);
    }
    free(env);
    close(fd[1]);
    if (pid < 0) {
        close(fd[0]);
        return -1;
    }
    size_t used = 0;
    for (;;) {
        const ssize_t r = read(fd[0], out + used, len - 1 - used);
        if (r > 0 && used + (size_t)r < len - 1) {
            used += (size_t)r;
            continue;
        }
        if (r > 0) {
            used += (size_t)r;
            break;
        }
        if (r < 0 && errno == EINTR)
            continue;
        break;
    }
    out[used] = 0;
    close(fd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int bench_torch_probe(char *version, size_t vlen, int *sdpa, char *why, size_t wlen)
{
    char *argv[] = {PYTHON, "-c",
                    "import torch; print(torch.__version__, "
                    "int(hasattr(torch.nn.functional, 'scaled_dot_product_attention')))",
                    NULL};
    char out[256];
    if (access(PYTHON, X_OK) != 0) {
        snprintf(why, wlen, "%s not found", PYTHON);
        return -1;
    }
    if (run_capture(argv, out, sizeof out) != 0) {
        snprintf(why, wlen, "%s -c \"import torch\" failed", PYTHON);
        return -1;
    }
    out[strcspn(out, "\r\n")] = 0;
    char *sp = strrchr(out, ' ');
    *sdpa = sp && sp[1] == '1';
    if (sp)
        *sp = 0;
    snprintf(version, vlen, "%s", out);
    return 0;
}

double bench_json_number(const char *s, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(s, pat);
    if (!p)
        return NAN;
    p += strlen(pat);
    char *end;
    const double v = strtod(p, &end);
    return end == p ? NAN : v;
}

static int write_all(const char *path, const bench_data *p)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    const size_t nq = (size_t)p->L * (size_t)p->d, nv = (size_t)p->L * (size_t)p->dv;
    int ok = fwrite(p->q, sizeof(float), nq, f) == nq && fwrite(p->k, sizeof(float), nq, f) == nq &&
             fwrite(p->v, sizeof(float), nv, f) == nv &&
             fwrite(p->W, sizeof(float), (size_t)p->m * (size_t)p->d, f) ==
                 (size_t)p->m * (size_t)p->d;
    ok = fclose(f) == 0 && ok;
    return ok ? 0 : -1;
}

int bench_torch_run(const bench_data *p, int causal, int threads, int runs, int with_exact,
                    bench_torch *r, char *why, size_t len)
{
    memset(r, 0, sizeof *r);
    r->exact_ms = r->favor_ms = r->favor_vs_exact = NAN;
    char dir[] = "/tmp/rfjit_bench_torch_XXXXXX";
    if (!mkdtemp(dir)) {
        snprintf(why, len, "cannot create a temporary directory: %s", strerror(errno));
        return -1;
    }
    char in[64], outp[64];
    snprintf(in, sizeof in, "%s/in.f32", dir);
    snprintf(outp, sizeof outp, "%s/out.f32", dir);
    int rc = -1;
    const size_t nv = (size_t)p->L * (size_t)p->dv;
    if (write_all(in, p) != 0) {
        snprintf(why, len, "cannot write %s", in);
        goto done;
    }
    char a[7][24], ex[4];
    const int nums[7] = {p->L, p->d, p->dv, p->m, causal, threads, runs};
    for (int i = 0; i < 7; i++)
        snprintf(a[i], sizeof a[i], "%d", nums[i]);
    snprintf(ex, sizeof ex, "%d", with_exact ? 1 : 0);
    char script[4200];
    peer_script(script, sizeof script);
    char *argv[] = {PYTHON, script, a[0], a[1], a[2], a[3], a[4], a[5], a[6], in, outp, ex, NULL};
    char line[1024];
    if (run_capture(argv, line, sizeof line) != 0) {
        snprintf(why, len, "%s peer_torch.py failed", PYTHON);
        goto done;
    }
    r->exact_ms = bench_json_number(line, "exact_ms");
    r->favor_ms = bench_json_number(line, "favor_ms");
    r->favor_vs_exact = bench_json_number(line, "favor_vs_exact");
    r->favor_out = malloc(sizeof(float) * nv);
    r->exact_out = with_exact ? malloc(sizeof(float) * nv) : NULL;
    FILE *f = fopen(outp, "rb");
    int ok = f && r->favor_out && (!with_exact || r->exact_out) && isfinite(r->favor_ms) &&
             (!with_exact || isfinite(r->exact_ms));
    if (ok && with_exact)
        ok = fread(r->exact_out, sizeof(float), nv, f) == nv;
    if (ok)
        ok = fread(r->favor_out, sizeof(float), nv, f) == nv;
    if (f)
        fclose(f);
    if (!ok) {
        snprintf(why, len, "peer_torch.py gave no usable result");
        bench_torch_free(r);
        goto done;
    }
    rc = 0;
done:
    unlink(in);
    unlink(outp);
    rmdir(dir);
    return rc;
}

int bench_torch_decode(int bh, int m, int d, int dv, int threads, int steps, int runs, double *us,
                       char *why, size_t len)
{
    *us = NAN;
    char a[7][24], script[4200], line[1024];
    const int nums[7] = {bh, m, d, dv, threads, steps, runs};
    for (int i = 0; i < 7; i++)
        snprintf(a[i], sizeof a[i], "%d", nums[i]);
    peer_script_named(script, sizeof script, "peer_torch_decode.py");
    char *argv[] = {PYTHON, script, a[0], a[1], a[2], a[3], a[4], a[5], a[6], NULL};
    if (run_capture(argv, line, sizeof line) != 0) {
        snprintf(why, len, "%s peer_torch_decode.py failed", PYTHON);
        return -1;
    }
    *us = bench_json_number(line, "us_per_step");
    if (!isfinite(*us)) {
        snprintf(why, len, "peer_torch_decode.py gave no usable result");
        return -1;
    }
    return 0;
}

void bench_torch_free(bench_torch *r)
{
    free(r->exact_out);
    free(r->favor_out);
    r->exact_out = r->favor_out = NULL;
}
