/* SPDX-License-Identifier: MIT */
/*
 * This file holds the small POSIX file helpers the disk cache and the wisdom file share:
 * whole reads and writes that survive EINTR and short transfers, the last step of an atomic
 * replace (temporary file renamed over the target), and mkdir -p with private modes for what
 * it creates.
 */
#ifndef RJ_FSUTIL_H
#define RJ_FSUTIL_H

#include <stddef.h>

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

#endif
