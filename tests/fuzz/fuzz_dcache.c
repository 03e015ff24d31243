/* SPDX-License-Identifier: MIT */
/*
 * This file is the libFuzzer target of the disk cache's entry reader (runtime/dcache.c,
 * rj_dcache_load): the input becomes the entry file of one key in a private cache directory
 * on tmpfs, then is loaded. Invariants: a load either misses or returns exactly the object a
 * store of that key would have written, i.e. an accepted entry is the input minus its 96-byte
 * header, whose stored hash it matches; after a bad entry the file is gone. Inputs whose
 * first byte is odd also go through store-then-load, which must return the bytes stored.
 */
#include "runtime/dcache.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static rj_dcache *cache;
static rj_hash key = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                       22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}};
static char entry[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char dir[] = "/dev/shm/rfjit_fuzz_dcache_XXXXXX";
    char warn[256];
    if (!mkdtemp(dir) || rj_dcache_open(dir, &cache, warn, sizeof warn) != RFJIT_OK || !cache)
        abort();
    /* the entry's file name is the store's business: learn it from one store */
    rj_diag dg = {{0}};
    if (rj_dcache_store(cache, &key, "seed", 4, &dg) != RFJIT_OK)
        abort();
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strlen(e->d_name) > 2 && !strcmp(e->d_name + strlen(e->d_name) - 2, ".o"))
            snprintf(entry, sizeof entry, "%s/%s", dir, e->d_name);
    if (d)
        closedir(d);
    if (!entry[0])
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = open(entry, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || close(fd) != 0)
        abort();
    void *obj = NULL;
    size_t n = 0;
    char note[256];
    if (rj_dcache_load(cache, &key, &obj, &n, note, sizeof note)) {
        if (size < 96 || n != size - 96 || memcmp(obj, data + 96, n) != 0)
            abort();
    } else if (obj || access(entry, F_OK) == 0) {
        abort(); /* a miss hands out nothing and a bad entry is removed */
    }
    rj_free(obj);
    if (size && (data[0] & 1)) {
        rj_diag dg = {{0}};
        if (rj_dcache_store(cache, &key, data, size, &dg) != RFJIT_OK)
            abort();
        obj = NULL;
        if (!rj_dcache_load(cache, &key, &obj, &n, note, sizeof note) || n != size ||
            memcmp(obj, data, size) != 0)
            abort();
        rj_free(obj);
    }
    return 0;
}
