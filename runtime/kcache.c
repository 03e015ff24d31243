/* SPDX-License-Identifier: MIT */
/*
 * This file implements the kernel cache. The key is the BLAKE3 of the kernel plan's bytes
 * (zero-filled, so padding is deterministic), the target (triple, CPU name and the whole
 * feature string), the LLVM version and rfjit's version plus a hash of the generator's
 * sources, so an edited generator or another CPU never reuses an object.
 *
 * Single flight: lookups take the table lock only; a miss takes the compile lock, looks again
 * (another thread may have finished meanwhile), then loads from disk or compiles, links and
 * publishes. LLVM's target machine is used under the compile lock only.
 */
#include "runtime/kcache.h"

#include "runtime/kbundle.h"

#include "runtime/dcache.h"
#include "runtime/hash.h"
#include "gen_hash.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct entry {
    rj_hash key;
    rj_kernel_fn fn;
} entry;

struct rj_kcache {
    rj_jit *jit;
    rj_isa isa;
    char llvm_version[32];
    char *dump_dir;
    rj_dcache *disk;
    rj_note_fn note;
    void *note_user;
    pthread_mutex_t mu;  /* the table */
    pthread_mutex_t cmu; /* compiles and links */
    entry *tab;
    size_t n, cap;
};

static void notef(rj_kcache *kc, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void notef(rj_kcache *kc, int level, const char *fmt, ...)
{
    if (!kc->note)
        return;
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    kc->note(kc->note_user, level, msg);
}

rfjit_status rj_kcache_create(rj_jit *jit, const rj_isa *isa, const char *llvm_version,
                              const char *cache_dir, const char *dump_dir, rj_note_fn note,
                              void *note_user, rj_kcache **out, rj_diag *dg)
{
    *out = NULL;
    rj_kcache *kc = rj_alloc_zero(sizeof *kc);
    RJ_FAIL_IF(dg, !kc, RFJIT_E_NOMEM, "no memory for the kernel cache");
    kc->jit = jit;
    kc->isa = *isa;
    snprintf(kc->llvm_version, sizeof kc->llvm_version, "%s", llvm_version);
    kc->note = note;
    kc->note_user = note_user;
    pthread_mutex_init(&kc->mu, NULL);
    pthread_mutex_init(&kc->cmu, NULL);
    if (dump_dir && *dump_dir) {
        kc->dump_dir = rj_strdup(dump_dir);
        if (!kc->dump_dir) {
            rj_kcache_destroy(kc);
            return rj_fail(dg, RFJIT_E_NOMEM, "no memory");
        }
    }
    char warn[512] = "";
    rfjit_status s = rj_dcache_open(cache_dir, &kc->disk, warn, sizeof warn);
    if (s != RFJIT_OK) {
        rj_kcache_destroy(kc);
        return rj_fail(dg, s, "cannot open the kernel cache directory");
    }
    if (warn[0])
        notef(kc, 1, "disk cache not used: %s", warn);
    else if (kc->disk)
        notef(kc, 2, "disk cache: %s", rj_dcache_dir(kc->disk));
    *out = kc;
    return RFJIT_OK;
}

void rj_kcache_destroy(rj_kcache *kc)
{
    if (!kc)
        return;
    rj_dcache_close(kc->disk);
    rj_free(kc->dump_dir);
    rj_free(kc->tab);
    pthread_mutex_destroy(&kc->mu);
    pthread_mutex_destroy(&kc->cmu);
    rj_free(kc);
}

static void key_of(const rj_kcache *kc, const rj_kplan *kp, rj_hash *key)
{
    const char *ver = RFJIT_VERSION_STRING "+" RJ_GEN_HASH;
    const void *parts[6] = {kp, kc->isa.triple, kc->isa.cpu, kc->isa.features,
                            kc->llvm_version, ver};
    size_t sizes[6] = {sizeof *kp, strlen(kc->isa.triple) + 1, strlen(kc->isa.cpu) + 1,
                       strlen(kc->isa.features) + 1, strlen(kc->llvm_version) + 1,
                       strlen(ver) + 1};
    rj_hash_parts(parts, sizes, 6, key);
}

static void symbol_of(const rj_kplan *kp, const rj_hash *key, char *sym, size_t n)
{
    char hex[65];
    rj_hash_hex(key, hex);
    snprintf(sym, n, "rfjit_k_%s_%.16s", kp->est_name, hex);
}

void rj_kcache_symbol(rj_kcache *kc, const rj_kplan *kp, char *sym, size_t n)
{
    rj_hash key;
    key_of(kc, kp, &key);
    symbol_of(kp, &key, sym, n);
}

static rj_kernel_fn find(rj_kcache *kc, const rj_hash *key)
{
    for (size_t i = 0; i < kc->n; i++)
        if (memcmp(kc->tab[i].key.b, key->b, sizeof key->b) == 0)
            return kc->tab[i].fn;
    return NULL;
}

static rfjit_status publish(rj_kcache *kc, const rj_hash *key, rj_kernel_fn fn, rj_diag *dg)
{
    void *tab = kc->tab;
    RJ_FAIL_IF(dg, !rj_grow(&tab, kc->n, &kc->cap, sizeof *kc->tab), RFJIT_E_NOMEM,
               "no memory for the kernel table");
    kc->tab = tab;
    kc->tab[kc->n++] = (entry){*key, fn};
    return RFJIT_OK;
}

static void dropped(rj_kcache *kc, const char *sym, const char *why)
{
    notef(kc, 1, "kernel cache entry for %s dropped: %s", sym, why);
}

/* Compile kp, dumping it if asked. RFJIT_DUMP is a debugging aid: a dump that cannot be
 * written (a missing or unwritable directory, a full disk) is the only RFJIT_E_IO a compile
 * has, and it is reported once, ends dumping for this cache (its context) and compiles again
 * without it, rather than failing the plan. Called under cmu, which guards dump_dir. */
static rfjit_status compile(rj_kcache *kc, const rj_kplan *kp, const char *sym, void **obj,
                            size_t *n, rj_diag *dg)
{
    if (!kc->dump_dir)
        return rj_jit_compile(kc->jit, kp, sym, NULL, obj, n, dg);
    rj_diag why = {{0}};
    const rfjit_status s = rj_jit_compile(kc->jit, kp, sym, kc->dump_dir, obj, n, &why);
    if (s != RFJIT_E_IO)
        return s == RFJIT_OK ? s : rj_fail(dg, s, "%s", why.msg);
    notef(kc, 1, "%s; no more kernels are dumped by this context", why.msg);
    rj_free(kc->dump_dir);
    kc->dump_dir = NULL;
    return rj_jit_compile(kc->jit, kp, sym, NULL, obj, n, dg);
}

/* Compile kp into *obj (rj_free it) and store it on disk, if there is a disk cache. */
static rfjit_status compile_and_store(rj_kcache *kc, const rj_kplan *kp, const rj_hash *key,
                                      const char *sym, void **obj, size_t *n, rj_diag *dg)
{
    RJ_TRY(compile(kc, kp, sym, obj, n, dg));
    char desc[512];
    rj_kplan_describe(kp, desc, sizeof desc);
    const void *part[RJ_KBUNDLE_MAX];
    size_t size[RJ_KBUNDLE_MAX];
    int objects = 0;
    rj_diag ignore = {{0}};
    if (rj_kbundle_open(*obj, *n, part, size, &objects, &ignore) != RFJIT_OK)
        objects = 0;
    notef(kc, 2, "kernel %s compiled (%zu bytes, %d objects): %s", sym, *n, objects, desc);
    if (kc->disk) {
        rj_diag wdg = {{0}};
        if (rj_dcache_store(kc->disk, key, *obj, *n, &wdg) != RFJIT_OK)
            notef(kc, 1, "kernel cache write failed: %s", wdg.msg);
    }
    return RFJIT_OK;
}

/* Disk, else compile (and store); then link. Called under cmu. */
static rfjit_status produce(rj_kcache *kc, const rj_kplan *kp, const rj_hash *key,
                            const char *sym, rj_kernel_fn *fn, rj_diag *dg)
{
    void *obj = NULL;
    size_t n = 0;
    int hit = 0;
    if (kc->disk && !kc->dump_dir) {
        char why[512] = "";
        hit = rj_dcache_load(kc->disk, key, &obj, &n, why, sizeof why);
        if (why[0])
            dropped(kc, sym, why);
    }
    if (hit)
        notef(kc, 2, "kernel %s loaded from the disk cache (%zu bytes)", sym, n);
    else
        RJ_TRY(compile_and_store(kc, kp, key, sym, &obj, &n, dg));
    rfjit_status s = rj_jit_link(kc->jit, obj, n, sym, fn, dg);
    rj_free(obj);
    if (s == RFJIT_E_JIT && hit) {
        /* a whole entry (its hash checked) holding an object this process must not link,
         * e.g. planted from another architecture: recompile, and the store replaces it */
        dropped(kc, sym, dg ? dg->msg : "");
        RJ_TRY(compile_and_store(kc, kp, key, sym, &obj, &n, dg));
        s = rj_jit_link(kc->jit, obj, n, sym, fn, dg);
        rj_free(obj);
    }
    return s;
}

rfjit_status rj_kcache_get(rj_kcache *kc, const rj_kplan *kp, rj_kernel_fn *fn, rj_diag *dg)
{
    rj_hash key;
    key_of(kc, kp, &key);
    pthread_mutex_lock(&kc->mu);
    *fn = find(kc, &key);
    pthread_mutex_unlock(&kc->mu);
    if (*fn)
        return RFJIT_OK;

    pthread_mutex_lock(&kc->cmu);
    pthread_mutex_lock(&kc->mu);
    *fn = find(kc, &key);
    pthread_mutex_unlock(&kc->mu);
    rfjit_status s = RFJIT_OK;
    if (!*fn) {
        char sym[96];
        symbol_of(kp, &key, sym, sizeof sym);
        s = produce(kc, kp, &key, sym, fn, dg);
        if (s == RFJIT_OK) {
            pthread_mutex_lock(&kc->mu);
            s = publish(kc, &key, *fn, dg);
            pthread_mutex_unlock(&kc->mu);
        }
    }
    pthread_mutex_unlock(&kc->cmu);
    return s;
}

void rj_kcache_set_disk_limit(rj_kcache *kc, uint64_t max_bytes)
{
    rj_dcache_set_limit(kc->disk, max_bytes);
}
