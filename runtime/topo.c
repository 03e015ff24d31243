/* SPDX-License-Identifier: MIT */
/*
 * This file implements runtime/topo.h with hwloc 2.x, falling back to sysconf and then to
 * sysfs for cache sizes that hwloc does not report (common in VMs), and to nothing (0,
 * "unknown") last: the numbers only seed tiling estimates, measurement corrects them.
 */
#include "runtime/topo.h"

#include <hwloc.h>
#include <stdio.h>
#include <unistd.h>

static int64_t sysfs_cache(int index)
{
    char path[96];
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", index);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long v = 0;
    char unit = 0;
    int n = fscanf(f, "%ld%c", &v, &unit);
    fclose(f);
    if (n < 1 || v <= 0)
        return 0;
    if (unit == 'K')
        v *= 1024;
    else if (unit == 'M')
        v *= 1024 * 1024;
    return v;
}

static int64_t sysconf_cache(int level)
{
#if defined(_SC_LEVEL1_DCACHE_SIZE)
    long v = level == 1   ? sysconf(_SC_LEVEL1_DCACHE_SIZE)
             : level == 2 ? sysconf(_SC_LEVEL2_CACHE_SIZE)
                          : sysconf(_SC_LEVEL3_CACHE_SIZE);
    return v > 0 ? v : 0;
#else
    (void)level;
    return 0;
#endif
}

/* sysfs index 0 is L1d, 1 L1i, 2 L2, 3 L3 on Linux x86; good enough for a hint. */
static void fill_cache(int64_t *size, const char **src, int level, int64_t from_hwloc)
{
    static const int sysfs_index[4] = {0, 0, 2, 3};
    if (from_hwloc > 0) {
        *size = from_hwloc;
        *src = "hwloc";
    } else if ((*size = sysconf_cache(level)) > 0) {
        *src = "sysconf";
    } else if ((*size = sysfs_cache(sysfs_index[level])) > 0) {
        *src = "sysfs";
    } else {
        *size = 0;
        *src = "unknown";
    }
}

rfjit_status rj_topo_load(rj_topo *t, const char *synthetic, rj_diag *dg)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0)
        return rj_fail(dg, RFJIT_E_INTERNAL, "hwloc_topology_init failed");
    if (synthetic && hwloc_topology_set_synthetic(topo, synthetic) != 0) {
        hwloc_topology_destroy(topo);
        return rj_fail(dg, RFJIT_E_INVALID_ARG, "bad hwloc synthetic topology '%s'", synthetic);
    }
    if (hwloc_topology_load(topo) != 0) {
        hwloc_topology_destroy(topo);
        return rj_fail(dg, RFJIT_E_INTERNAL, "hwloc_topology_load failed");
    }
    t->cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    t->pus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    t->numa_nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    if (t->cores < 1)
        t->cores = t->pus > 0 ? t->pus : 1;

    int64_t c[4] = {0, 0, 0, 0};
    int l3_share = 0;
    hwloc_obj_t core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, 0);
    for (hwloc_obj_t o = core ? core->parent : NULL; o; o = o->parent) {
        if (!hwloc_obj_type_is_dcache(o->type) || !o->attr)
            continue;
        unsigned depth = o->attr->cache.depth;
        if (depth >= 1 && depth <= 3 && c[depth] == 0)
            c[depth] = (int64_t)o->attr->cache.size;
        if (depth == 3)
            l3_share = hwloc_get_nbobjs_inside_cpuset_by_type(topo, o->cpuset, HWLOC_OBJ_CORE);
    }
    /* An L1d may sit below the core object in some topologies: look for one directly. */
    if (c[1] == 0) {
        hwloc_obj_t l1 = hwloc_get_obj_by_type(topo, HWLOC_OBJ_L1CACHE, 0);
        if (l1 && l1->attr)
            c[1] = (int64_t)l1->attr->cache.size;
    }
    hwloc_topology_destroy(topo);
    fill_cache(&t->l1d, &t->l1d_src, 1, c[1]);
    fill_cache(&t->l2, &t->l2_src, 2, c[2]);
    fill_cache(&t->l3, &t->l3_src, 3, c[3]);
    t->l3_sharing_cores = l3_share;
    return RFJIT_OK;
}
