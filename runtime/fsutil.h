/* SPDX-License-Identifier: MIT */
/*
 * This file holds the small POSIX file helpers the library and the CLI share: whole reads and
 * writes that survive EINTR and short transfers, reading a file that must be regular without
 * blocking on a FIFO or device, writing a file the user owns so that it is never torn, replaced
 * when it is not a regular file, or lost on a failed write, and mkdir -p with private modes.
 *
 * Every file rfjit writes for the user (.npy outputs, wisdom, plots, emitted kernels, dumps)
 * goes through rj_out_begin/rj_out_write/rj_out_commit (or rj_write_file), whose rule is:
 *   - a target that does not exist is created; a regular file is replaced;
 *   - a symlink to a regular file replaces the file it resolves to (the link stays a link),
 *     unless that file is this process's standard input, output or error (/dev/stdout or
 *     /proc/self/fd/1 with stdout redirected to a file) or the link belongs to another user
 *     than root or us (one planted in a shared directory);
 *   - anything else (directory, FIFO, character or block device, socket, a symlink to one of
 *     those such as /proc/self/fd/1 on a terminal or pipe, a dangling symlink) is refused
 *     with a message naming the path and what it is, and left as it was. No verb writes to
 *     stdout through a path;
 *   - the data go to "<target>.tmp-XXXXXX" in the target's directory (created 0600, then
 *     given the old file's mode, or the caller's mode for a new file), fsync'd when asked,
 *     and renamed over the target only once complete. On any failure (ENOSPC, EIO, EFBIG...)
 *     only the temporary file is removed: an existing target keeps its bytes.
 * Renaming gives the target a new inode: other hard links to the old file keep the old data.
 *
 * The CLI links the static library and may include this header (scripts/check_includes.sh);
 * nothing here depends on the rest of the library, so tools/npy.c can be built with it alone.
 */
#ifndef RJ_FSUTIL_H
#define RJ_FSUTIL_H

#include <stddef.h>

/* Longest target path the output helpers take, NUL included (Linux's PATH_MAX). */
#define RJ_PATH_BYTES 4096

/* Read exactly n bytes: 0, or -1 with errno (EIO for an early end of file). */
int rj_read_full(int fd, void *p, size_t n);
/* Write exactly n bytes: 0, or -1 with errno (ENOSPC for a write that makes no progress). */
int rj_write_full(int fd, const void *p, size_t n);
/* Put a written temporary file in place: fsync it if sync, close fd (a close error counts:
 * NFS and quotas report deferred write errors there), rename tmp over path; on any failure,
 * err (an errno already met while writing) included, tmp is removed. 0 or the first errno. */
int rj_replace_file(int fd, const char *tmp, const char *path, int sync, int err);
/* mkdir -p path (modified in place and restored), mode 0700 for every level it creates;
 * levels that exist are left as they are. 0, or -1 with errno. */
int rj_mkdir_p(char *path);

/* What a st_mode's file type is, for messages: "regular file", "directory", "FIFO",
 * "character device", "block device", "socket", "symbolic link" or "special file". */
const char *rj_file_kind(unsigned mode);

/* Open path for reading a regular file: symlinks are followed, a FIFO, device, directory or
 * socket is refused before anything can block (O_NONBLOCK, cleared once the type is checked).
 * The descriptor (O_CLOEXEC) with *size its length, or -1 with "<path>: <why>" in why
 * ("cannot open for reading: <strerror>", "is a directory, not a regular file", ...). */
int rj_open_regular(const char *path, size_t *size, char *why, size_t len);

/* Where an output to path goes, by the rule above: 0 with real set to path or a symlink's
 * resolved target (RJ_PATH_BYTES) and *mode to the existing file's permission bits (-1 when
 * it does not exist), or -1 with "<path>: <why>" in why. */
int rj_output_target(const char *path, char *real, int *mode, char *why, size_t len);

typedef struct rj_outfile {
    int fd;     /* the temporary file while open, else -1 */
    int err;    /* first errno of a failed write, 0 if none */
    int sync;   /* fsync the file, and the directory after the rename */
    int existed;
    char path[RJ_PATH_BYTES];     /* the file replaced (a symlink's resolved target) */
    char tmp[RJ_PATH_BYTES + 16]; /* "<path>.tmp-XXXXXX" */
} rj_outfile;

/* Check the target and create its temporary file; new_mode is a new target's mode (0644 for
 * results, 0600 for private files). 0, or -1 with the message in why and nothing created. */
int rj_out_begin(rj_outfile *o, const char *path, unsigned new_mode, int sync, char *why,
                 size_t len);
/* Append n bytes; the first failure is kept for rj_out_commit, later writes do nothing. */
void rj_out_write(rj_outfile *o, const void *p, size_t n);
/* Rename the temporary file over the target if every write succeeded and the target is still
 * replaceable; otherwise remove the temporary file, leave the target as it was and put
 * "<path>: cannot write it: <strerror> (left unchanged)" or the target's refusal in why.
 * 0 or -1; o is closed either way. */
int rj_out_commit(rj_outfile *o, char *why, size_t len);
/* Drop an rj_out_begin'd file without touching the target (a caller that gave up). */
void rj_out_abort(rj_outfile *o);
/* rj_out_begin, one write of n bytes, rj_out_commit. */
int rj_write_file(const char *path, const void *p, size_t n, unsigned new_mode, int sync,
                  char *why, size_t len);

#endif
