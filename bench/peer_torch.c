/* SPDX-License-Identifier: MIT */
/*
 * This file runs the Python peers, bench/peer_torch.py (torch eager and SDPA, and through
 * bench/peer_compiled.py torch.compile, JAX, ONNX Runtime and performer-pytorch) and
 * bench/peer_torch_decode.py, as subprocesses of the benchmark interpreter: RFJIT_BENCH_PYTHON
 * when set (scripts/bench.sh points it at .venv-bench, torch 2.x from PyPI), else
 * /usr/bin/python3 (Debian's python3-torch lives there, not under a pyenv python3 that may
 * come first on PATH). The data goes through a raw float32 file so the peers compute on the
 * harness's numbers (all H heads: each peer computes them batched the way its framework
 * does, with a leading head dimension), and their outputs come back as files for the same
 * agreement check as the OpenBLAS peers.
 *
 * peer_torch.py serves a whole bench run from one process per thread count (it reads one
 * request line per shape on a socket), because importing torch and JAX and warming
 * torch.compile up take seconds that would otherwise be paid on every shape.
 *
 * The peers run in their "tuned" configuration (spec performance.md): OPENBLAS_CORETYPE
 * removed, so an OpenBLAS inside them picks its best kernels, and glibc's malloc told to keep
 * freed memory (trim threshold 16 GiB, mmap threshold 32 MiB, glibc's maximum), so the
 * temporaries they allocate on every call are not faulted in again each time.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef RFJIT_BENCH_DIR
#error "CMake defines RFJIT_BENCH_DIR, where peer_torch.py is"
#endif

extern char **environ;

const char bench_torch_tunables[] =
    "GLIBC_TUNABLES=glibc.malloc.trim_threshold=17179869184:glibc.malloc.mmap_threshold=33554432";

const char *const bench_py_name[N_PY] = {"torch_favor",    "torch_sdpa", "torch_compile_favor",
                                         "jax_favor",      "ort_favor",  "performer_favor",
                                         "torch_sdpa_bf16"};

const char *bench_py_python(void)
{
    const char *p = getenv("RFJIT_BENCH_PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

/* A peer script: next to an installed rfjit (<prefix>/bin/rfjit reads
 * <prefix>/share/rfjit/NAME), else in the source tree the binary was built from. */
static void peer_script_named(char *path, size_t n, const char *name)
{
    if (!bench_installed_path(path, n, name))
        snprintf(path, n, "%s/%s", RFJIT_BENCH_DIR, name);
}

/* Start argv with the tuned environment plus extra (NULL or one NAME=value), its stdin and
 * stdout on io (stdin too only when io_in), stderr on /dev/null: the frameworks' warnings
 * are not the harness's output. The pid, or -1. */
static pid_t spawn(char *const argv[], const char *extra, int io, int io_in)
{
    size_t n_env = 0;
    while (environ[n_env])
        n_env++;
    char **env = malloc(sizeof(char *) * (n_env + 3));
    if (!env)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++)
        if (strncmp(environ[i], "OPENBLAS_CORETYPE=", 18) &&
            strncmp(environ[i], "GLIBC_TUNABLES=", 15))
            env[k++] = environ[i];
    env[k++] = (char *)bench_torch_tunables;
    if (extra)
        env[k++] = (char *)extra;
    env[k] = NULL;
    fflush(NULL);
    const pid_t pid = fork();
    if (pid == 0) {
        dup2(io, 1);
        if (io_in)
            dup2(io, 0);
        const int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2);
        execve(argv[0], argv, env);
        _exit(127);
    }
    free(env);
    return pid;
}

static int reap(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Run argv; its stdout into out (NUL-terminated). The exit status, or -1 if it could not
 * run or died. */
static int run_capture(char *const argv[], char *out, size_t len)
{
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    const pid_t pid = spawn(argv, NULL, fd[1], 0);
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
    return reap(pid);
}

int bench_torch_probe(char *version, size_t vlen, char *why, size_t wlen)
{
    const char *py = bench_py_python();
    char *argv[] = {(char *)py, "-c", "import torch; print(torch.__version__)", NULL};
    char out[256];
    if (access(py, X_OK) != 0) {
        snprintf(why, wlen, "%s not found", py);
        return -1;
    }
    if (run_capture(argv, out, sizeof out) != 0) {
        snprintf(why, wlen, "%s -c \"import torch\" failed", py);
        return -1;
    }
    out[strcspn(out, "\r\n")] = 0;
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

int bench_json_string(const char *s, const char *key, char *out, size_t n)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *p = strstr(s, pat);
    if (!p) {
        snprintf(pat, sizeof pat, "\"%s\":\"", key);
        if (!(p = strstr(s, pat)))
            return -1;
    }
    p += strlen(pat);
    size_t k = 0;
    for (; *p && *p != '"' && k + 1 < n; p++)
        out[k++] = *p == '\\' && p[1] ? *++p : *p;
    out[k] = 0;
    return 0;
}

/* ------------------------------------------------------------------ the peer server */

struct bench_py {
    pid_t pid;
    int sock;
    FILE *from;
};

static int read_reply(bench_py *s, char *line, size_t n)
{
    /* a framework that prints to stdout is not the reply: skip to the JSON line */
    while (fgets(line, (int)n, s->from))
        if (line[0] == '{')
            return 0;
    return -1;
}

bench_py *bench_py_open(int threads, const char *cache_dir, char *about, size_t alen, char *why,
                        size_t wlen)
{
    const char *py = bench_py_python();
    if (access(py, X_OK) != 0) {
        snprintf(why, wlen, "%s not found", py);
        return NULL;
    }
    bench_py *s = calloc(1, sizeof *s);
    int sv[2];
    if (!s || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        free(s);
        snprintf(why, wlen, "cannot create a socket: %s", strerror(errno));
        return NULL;
    }
    char script[4200], th[24], cache[600];
    peer_script_named(script, sizeof script, "peer_torch.py");
    snprintf(th, sizeof th, "%d", threads);
    /* torch.compile's kernels go to the run's own cache directory, removed with it: its
     * compile time is a cold one and the user's cache is left alone */
    snprintf(cache, sizeof cache, "TORCHINDUCTOR_CACHE_DIR=%s/inductor", cache_dir);
    char *argv[] = {(char *)py, script, "--serve", th, NULL};
    s->pid = spawn(argv, cache, sv[1], 1);
    close(sv[1]);
    s->sock = sv[0];
    s->from = s->pid > 0 ? fdopen(sv[0], "r") : NULL;
    if (!s->from || read_reply(s, about, alen) != 0) {
        snprintf(why, wlen, "%s %s --serve gave no probe line", py, script);
        bench_py_close(s);
        return NULL;
    }
    about[strcspn(about, "\r\n")] = 0;
    return s;
}

void bench_py_close(bench_py *s)
{
    if (!s)
        return;
    shutdown(s->sock, SHUT_WR); /* end of requests: the server exits */
    if (s->from)
        fclose(s->from);
    else
        close(s->sock);
    if (s->pid > 0)
        reap(s->pid);
    free(s);
}

static int write_all(const char *path, const bench_data *p)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    const size_t nq = (size_t)p->H * (size_t)p->L * (size_t)p->d;
    const size_t nv = (size_t)p->H * (size_t)p->L * (size_t)p->dv;
    int ok = fwrite(p->q, sizeof(float), nq, f) == nq && fwrite(p->k, sizeof(float), nq, f) == nq &&
             fwrite(p->v, sizeof(float), nv, f) == nv &&
             fwrite(p->W, sizeof(float), (size_t)p->m * (size_t)p->d, f) ==
                 (size_t)p->m * (size_t)p->d;
    ok = fclose(f) == 0 && ok;
    return ok ? 0 : -1;
}

/* One peer's output file into a new buffer of n floats; NULL when absent or short. */
static float *read_out(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    float *x = f ? malloc(sizeof(float) * n) : NULL;
    if (x && fread(x, sizeof(float), n, f) != n) {
        free(x);
        x = NULL;
    }
    if (f)
        fclose(f);
    return x;
}

/* The request line and the reply; 0, or -1 when the server is gone. */
static int ask(bench_py *s, const char *req, char *line, size_t n)
{
    size_t off = 0, len = strlen(req);
    while (off < len) {
        const ssize_t w = send(s->sock, req + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return read_reply(s, line, n);
}

static void read_results(const char *line, const char *dir, size_t nv, const int want[N_PY],
                         bench_py_out res[N_PY])
{
    for (int i = 0; i < N_PY; i++) {
        bench_py_out *r = &res[i];
        if (!want[i])
            continue;
        char key[64], path[128];
        snprintf(key, sizeof key, "%s_ms", bench_py_name[i]);
        r->ms = bench_json_number(line, key);
        snprintf(key, sizeof key, "%s_compile_ms", bench_py_name[i]);
        r->compile_ms = bench_json_number(line, key);
        snprintf(path, sizeof path, "%s/%s.f32", dir, bench_py_name[i]);
        r->out = isfinite(r->ms) ? read_out(path, nv) : NULL;
        unlink(path);
        snprintf(key, sizeof key, "%s_error", bench_py_name[i]);
        if (!r->out && bench_json_string(line, key, r->why, sizeof r->why) != 0 &&
            bench_json_string(line, "compiled_error", r->why, sizeof r->why) != 0)
            snprintf(r->why, sizeof r->why, "no usable result");
    }
}

int bench_py_run(bench_py *s, const bench_data *p, int causal, int runs, const int want[N_PY],
                 bench_py_out res[N_PY], char *why, size_t len)
{
    memset(res, 0, sizeof(bench_py_out) * N_PY);
    for (int i = 0; i < N_PY; i++)
        res[i].ms = res[i].compile_ms = NAN;
    char dir[] = "/tmp/rfjit_bench_peers_XXXXXX";
    if (!mkdtemp(dir)) {
        snprintf(why, len, "cannot create a temporary directory: %s", strerror(errno));
        return -1;
    }
    char in[64], names[256] = "", req[512], line[8192];
    snprintf(in, sizeof in, "%s/in.f32", dir);
    for (int i = 0; i < N_PY; i++)
        if (want[i])
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                     names[0] ? "," : "", bench_py_name[i]);
    snprintf(req, sizeof req, "%d %d %d %d %d %d %d %s %s %s\n", p->H, p->L, p->d, p->dv, p->m,
             causal, runs, in, dir, names);
    int rc = -1;
    if (write_all(in, p) != 0)
        snprintf(why, len, "cannot write %s", in);
    else if (ask(s, req, line, sizeof line) != 0)
        snprintf(why, len, "peer_torch.py stopped answering");
    else {
        read_results(line, dir, (size_t)p->H * (size_t)p->L * (size_t)p->dv, want, res);
        rc = 0;
    }
    unlink(in);
    rmdir(dir);
    return rc;
}

void bench_py_free(bench_py_out res[N_PY])
{
    for (int i = 0; i < N_PY; i++) {
        free(res[i].out);
        res[i].out = NULL;
    }
}

/* One Python peer's line of the header from the probe's keys: its version, what it runs on,
 * or why it is missing. */
static void py_line(const char *probe, const char *title, const char *ver_key,
                    const char *about_key, const char *err_key, const char *what)
{
    char ver[128], about[512];
    if (bench_json_string(probe, ver_key, ver, sizeof ver) != 0) {
        if (bench_json_string(probe, err_key, about, sizeof about) != 0)
            snprintf(about, sizeof about, "not importable");
        printf("  %-14s skipped: %s\n", title, about);
        return;
    }
    if (bench_json_string(probe, about_key, about, sizeof about) != 0)
        about[0] = 0;
    printf("  %-14s %s: %s; %s\n", title, ver, about, what);
}

void bench_py_print_header(const char *probe, int runs)
{
    char pools[512] = "";
    bench_json_string(probe, "pools", pools, sizeof pools);
    printf("Python peers: %s bench/peer_torch.py (RFJIT_BENCH_PYTHON; one process per thread "
           "count, imports and compiles not timed), tuned: OPENBLAS_CORETYPE removed, %s; "
           "threads = rfjit's (torch.set_num_threads, OMP/MKL/OpenBLAS_NUM_THREADS, ORT "
           "intra_op_num_threads; JAX: one thread by XLA_FLAGS "
           "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1, more threads "
           "not pinnable: XLA's pool has one thread per schedulable CPU); all H heads in one "
           "call, (H, L, d) tensors, (1, H, L, d) for SDPA and performer; median of %d runs "
           "after 2 warm-ups; thread pools loaded: %s\n",
           bench_py_python(), bench_torch_tunables, runs, pools[0] ? pools : "unknown");
    py_line(probe, "torch", "torch", "torch_about", "torch_error",
            "FAVOR+ in eager torch ops (causal in chunks of 128), exact by "
            "scaled_dot_product_attention; for the bf16 rows also SDPA on bfloat16 tensors "
            "(torch's CPU bf16 path; inputs converted and output read back outside the "
            "timed calls)");
    py_line(probe, "torch.compile", "torch", "torch_about", "compiled_error",
            "torch.compile (inductor, C++/OpenMP codegen) of the bidirectional FAVOR+ math, "
            "compile time printed, not in the ratio");
    py_line(probe, "JAX", "jax", "jax_about", "jax_error",
            "jax.jit of the bidirectional FAVOR+ math");
    py_line(probe, "ONNX Runtime", "onnxruntime", "ort_about", "ort_error",
            "session of the bidirectional FAVOR+ graph, ORT_ENABLE_ALL");
    py_line(probe, "performer", "performer", "performer_about", "performer_error",
            "bidirectional FastAttention, eps 0 instead of its 1e-4 for the check");
}

/* ------------------------------------------------------------------ the decode peer */

int bench_torch_decode(int bh, int m, int d, int dv, int threads, int steps, int runs, double *us,
                       char *why, size_t len)
{
    *us = NAN;
    char a[7][24], script[4200], line[1024];
    const int nums[7] = {bh, m, d, dv, threads, steps, runs};
    for (int i = 0; i < 7; i++)
        snprintf(a[i], sizeof a[i], "%d", nums[i]);
    peer_script_named(script, sizeof script, "peer_torch_decode.py");
    const char *py = bench_py_python();
    char *argv[] = {(char *)py, script, a[0], a[1], a[2], a[3], a[4], a[5], a[6], NULL};
    if (run_capture(argv, line, sizeof line) != 0) {
        snprintf(why, len, "%s peer_torch_decode.py failed", py);
        return -1;
    }
    *us = bench_json_number(line, "us_per_step");
    if (!isfinite(*us)) {
        snprintf(why, len, "peer_torch_decode.py gave no usable result");
        return -1;
    }
    return 0;
}
