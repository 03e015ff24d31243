/* SPDX-License-Identifier: MIT */
/*
 * This file keeps the test binary, and every CLI or bench it starts, off the user's kernel
 * cache and wisdom: contexts created without an explicit cache_dir or wisdom_path read
 * RFJIT_CACHE_DIR and RFJIT_WISDOM, which are set empty (none) before any test runs. A test
 * about the default locations (unit/test_xdg.c) unsets them itself.
 */
#include <stdlib.h>

__attribute__((constructor)) static void keep_off_user_files(void)
{
    setenv("RFJIT_CACHE_DIR", "", 1);
    setenv("RFJIT_WISDOM", "", 1);
}
