/* SPDX-License-Identifier: MIT */
/* This file implements runtime/fsutil.h. */
/* realpath is XSI; the cross build of tools/npy.c compiles this file alone, -std=c11 */
#define _XOPEN_SOURCE 700
#include "runtime/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int rj_read_full(int fd, void *p, size_t n)
{
    unsigned char *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO;
            return -1;
        }
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

int rj_write_full(int fd, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = ENOSPC;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int rj_mkdir_p(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int r = mkdir(path, 0700);
        *p = '/';
        if (r != 0 && errno != EEXIST)
            return -1;
    }
    return mkdir(path, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

int rj_replace_file(int fd, const char *tmp, const char *path, int sync, int err)
{
    if (!err && sync && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (!err && rename(tmp, path) != 0)
        err = errno;
    if (err)
        unlink(tmp);
    return err;
}

const char *rj_file_kind(unsigned mode)
{
    const mode_t m = (mode_t)mode;
    return S_ISREG(m)    ? "regular file"
           : S_ISDIR(m)  ? "directory"
           : S_ISFIFO(m) ? "FIFO"
           : S_ISCHR(m)  ? "character device"
           : S_ISBLK(m)  ? "block device"
           : S_ISSOCK(m) ? "socket"
           : S_ISLNK(m)  ? "symbolic link"
                         : "special file";
}

static int say(char *why, size_t len, const char *path, const char *what, int e)
{
    if (why && len)
        snprintf(why, len, "%s: %s%s%s", path, what, e ? ": " : "", e ? strerror(e) : "");
    return -1;
}

static int say_kind(char *why, size_t len, const char *path, const char *pre, unsigned mode,
                    const char *post)
{
    char what[160];
    snprintf(what, sizeof what, "%s%s, not a regular file%s", pre, rj_file_kind(mode), post);
    return say(why, len, path, what, 0);
}

int rj_open_regular(const char *path, size_t *size, char *why, size_t len)
{
    struct stat sb;
    /* stat first: opening some devices has effects of its own, and a FIFO must not be
     * opened at all; the fstat below closes the race with a file swapped in meanwhile */
    if (stat(path, &sb) != 0)
        return say(why, len, path, "cannot open for reading", errno);
    if (!S_ISREG(sb.st_mode))
        return say_kind(why, len, path, "is a ", sb.st_mode, "");
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return say(why, len, path, "cannot open for reading", errno);
    int bad = fstat(fd, &sb) != 0 ? say(why, len, path, "cannot stat it", errno) : 0;
    if (!bad && !S_ISREG(sb.st_mode))
        bad = say_kind(why, len, path, "is a ", sb.st_mode, "");
    const int fl = bad ? 0 : fcntl(fd, F_GETFL);
    if (!bad && (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0))
        bad = say(why, len, path, "cannot clear O_NONBLOCK", errno);
    if (!bad && (uintmax_t)sb.st_size > SIZE_MAX - 1)
        bad = say(why, len, path, "is too large to read into memory", 0);
    if (bad) {
        close(fd);
        return -1;
    }
    *size = (size_t)sb.st_size;
    return fd;
}

/* A symlink (lstat'd as ls): replace what it resolves to if that is a regular file (or
 * refuse). */
static int link_target(const char *path, const struct stat *ls, char *real, int *mode,
                       char *why, size_t len)
{
    /* a link planted by someone else (a shared /tmp) must not aim our write at our files */
    if (ls->st_uid != geteuid() && ls->st_uid != 0)
        return say(why, len, path, "is a symbolic link owned by another user: refused, it is "
                                   "left as it is", 0);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return say(why, len, path, errno == ENOENT ? "is a dangling symbolic link, refused"
                                                   : "cannot follow the symbolic link",
                   errno == ENOENT ? 0 : errno);
    if (!S_ISREG(sb.st_mode))
        return say_kind(why, len, path, "is a symbolic link to a ", sb.st_mode,
                        ": refused, it is left as it is");
    /* /dev/stdout, /proc/self/fd/1 and links to them: replacing the file behind a stream
     * would pull it from under whoever holds it open */
    static const char *const stream[3] = {"input", "output", "error"};
    for (int fd = 0; fd < 3; fd++) {
        struct stat fb;
        if (fstat(fd, &fb) == 0 && fb.st_dev == sb.st_dev && fb.st_ino == sb.st_ino) {
            char what[128];
            snprintf(what, sizeof what, "is a symbolic link to this process's standard %s: "
                                        "refused, rfjit does not replace a stream's file",
                     stream[fd]);
            return say(why, len, path, what, 0);
        }
    }
    char *r = realpath(path, NULL);
    if (!r)
        return say(why, len, path, "cannot resolve the symbolic link", errno);
    const size_t n = strlen(r);
    if (n >= RJ_PATH_BYTES) {
        free(r);
        return say(why, len, path, "resolves to a path that is too long", 0);
    }
    memcpy(real, r, n + 1);
    free(r);
    *mode = (int)(sb.st_mode & 07777);
    return 0;
}

int rj_output_target(const char *path, char *real, int *mode, char *why, size_t len)
{
    const size_t n = strlen(path);
    if (n == 0)
        return say(why, len, "(empty path)", "not a file name", 0);
    if (n >= RJ_PATH_BYTES)
        return say(why, len, path, "path too long", 0);
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno != ENOENT)
            return say(why, len, path, "cannot open for writing", errno);
        if (path[n - 1] == '/')
            return say(why, len, path, "names a directory, not a file", 0);
        memcpy(real, path, n + 1);
        *mode = -1;
        return 0;
    }
    if (S_ISLNK(sb.st_mode))
        return link_target(path, &sb, real, mode, why, len);
    if (!S_ISREG(sb.st_mode))
        return say_kind(why, len, path, "is a ", sb.st_mode, ": refused, it is left as it is");
    memcpy(real, path, n + 1);
    *mode = (int)(sb.st_mode & 07777);
    return 0;
}

/* mkstemp's job with the caller's mode, so that a new file gets new_mode under the umask
 * as any program's output would (mkstemp fixes 0600). */
static int create_tmp(rj_outfile *o, unsigned new_mode)
{
    static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)getpid() << 40 ^
                 (uint64_t)(uintptr_t)o;
    char *suffix = o->tmp + strlen(o->tmp) - 6;
    for (int attempt = 0; attempt < 100; attempt++) {
        for (int i = 0; i < 6; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            suffix[i] = abc[(x >> 33) % (sizeof abc - 1)];
        }
        const int fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                            (mode_t)new_mode);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

int rj_out_begin(rj_outfile *o, const char *path, unsigned new_mode, int sync, char *why,
                 size_t len)
{
    o->fd = -1;
    o->err = 0;
    o->sync = sync;
    int mode;
    if (rj_output_target(path, o->path, &mode, why, len) != 0)
        return -1;
    o->existed = mode >= 0;
    if ((size_t)snprintf(o->tmp, sizeof o->tmp, "%s.tmp-XXXXXX", o->path) >= sizeof o->tmp)
        return say(why, len, path, "path too long for a temporary file next to it", 0);
    o->fd = create_tmp(o, new_mode);
    if (o->fd < 0)
        return say(why, len, path, "cannot open for writing (a temporary file next to it)",
                   errno);
    /* the replaced file's owner (best effort: root writing another user's file) and mode,
     * in that order since a chown clears set-id bits */
    struct stat sb;
    if (mode >= 0 && stat(o->path, &sb) == 0 &&
        (sb.st_uid != geteuid() || sb.st_gid != getegid()))
        (void)!fchown(o->fd, sb.st_uid, sb.st_gid);
    if (mode >= 0)
        (void)fchmod(o->fd, (mode_t)mode);
    return 0;
}

void rj_out_write(rj_outfile *o, const void *p, size_t n)
{
    if (o->fd >= 0 && !o->err && rj_write_full(o->fd, p, n) != 0)
        o->err = errno ? errno : EIO;
}

void rj_out_abort(rj_outfile *o)
{
    if (o->fd >= 0) {
        close(o->fd);
        unlink(o->tmp);
        o->fd = -1;
    }
}

/* Make the rename durable. Best effort: some file systems refuse fsync on a directory, and
 * the new file is complete and in place either way. */
static void sync_dir(const char *path)
{
    char dir[RJ_PATH_BYTES];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        memcpy(dir, ".", 2);
    else
        slash[slash == dir] = 0; /* "/f" keeps "/" */
    const int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

int rj_out_commit(rj_outfile *o, char *why, size_t len)
{
    if (o->fd < 0)
        return say(why, len, o->path, "nothing to commit", 0);
    /* the target may have been swapped for a device while we wrote: check it again */
    char again[RJ_PATH_BYTES];
    int mode;
    if (!o->err && rj_output_target(o->path, again, &mode, why, len) != 0) {
        rj_out_abort(o);
        return -1;
    }
    const int err = rj_replace_file(o->fd, o->tmp, o->path, o->sync, o->err);
    o->fd = -1;
    if (err) {
        if (why && len)
            snprintf(why, len, "%s: cannot write it: %s%s", o->path, strerror(err),
                     o->existed ? " (the existing file is left unchanged)" : "");
        return -1;
    }
    if (o->sync)
        sync_dir(o->path);
    return 0;
}

int rj_write_file(const char *path, const void *p, size_t n, unsigned new_mode, int sync,
                  char *why, size_t len)
{
    rj_outfile o;
    if (rj_out_begin(&o, path, new_mode, sync, why, len) != 0)
        return -1;
    rj_out_write(&o, p, n);
    return rj_out_commit(&o, why, len);
}
