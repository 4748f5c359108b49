/* mpi_gpu.c - the `--backend cuda` gates of mpi_nccl.h: is there a GPU on
 * every rank that needs one, and which device each worker takes. MPI and
 * the launchers' C headers only (no NCCL, no CUDA header), so that the tests
 * run the same code on the CPU stand-in for the device (tests/fake_cuda.c,
 * which can pretend to have any number of devices). Without the cuda
 * backend both say "cuda backend not built" on every rank. */
#include "mpi_nccl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MPI_CK(call)                                                                               \
    do {                                                                                           \
        if ((call) != MPI_SUCCESS)                                                                 \
            return ts_err(err, TS_ERR_SYSTEM, "%s:%d: %s failed", __FILE__, __LINE__, #call);     \
    } while (0)

#ifdef TS_HAVE_CUDA

#include "ts_kernels_cuda.h"

/* Every rank of comm gets the reason of the lowest rank whose `bad` is set
 * (why: its one-line reason), or TS_OK when none is. Collective. */
static TsStatus agree_first(MPI_Comm comm, int bad, char *why, int why_len, TsErr *err) {
    int rank = 0, first = INT_MAX;
    MPI_CK(MPI_Comm_rank(comm, &rank));
    int key = bad ? rank : INT_MAX;
    MPI_CK(MPI_Allreduce(&key, &first, 1, MPI_INT, MPI_MIN, comm));
    if (first == INT_MAX) return TS_OK;
    MPI_CK(MPI_Bcast(why, why_len, MPI_CHAR, first, comm));
    why[why_len - 1] = '\0';
    return ts_err(err, TS_ERR_SYSTEM, "--backend cuda: rank %d: %s", first, why);
}


/* ------------------------------------------------------------ gates */

TsStatus ts_nccl_backend_check(MPI_Comm comm, int needs_gpu, TsErr *err) {
    char why[TS_ERR_MAX / 2] = "";
    int bad = needs_gpu && ts_cuda_backend_check(why, sizeof why) != 0;
    return agree_first(comm, bad, why, (int)sizeof why, err);
}

/* The launcher's node-local rank, if it gives one. */
static int env_local_rank(MPI_Comm comm, int *lr) {
    int cmp = MPI_UNEQUAL;
    MPI_Comm_compare(comm, MPI_COMM_WORLD, &cmp);
    if (cmp != MPI_IDENT && cmp != MPI_CONGRUENT) return 0; /* they count other ranks */
    const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && ts_parse_int(v, lr) == 0 && *lr >= 0) return 1;
    }
    return 0;
}

#define TS_VIS_MAX 128

TsStatus ts_nccl_device_select(MPI_Comm comm, int needs_gpu, int *device, TsErr *err) {
    char why[TS_ERR_MAX / 2] = "", host[MPI_MAX_PROCESSOR_NAME] = "?";
    int rank = 0, nrank = 0, nsize = 1, hlen = 0, bad = 0, dev = -1;
    *device = -1;
    MPI_CK(MPI_Comm_rank(comm, &rank));
    MPI_Get_processor_name(host, &hlen);
    MPI_Comm node = MPI_COMM_NULL;
    MPI_CK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
    MPI_Comm_rank(node, &nrank);
    MPI_Comm_size(node, &nsize);
    /* per rank of the node: local rank (launcher's or -1), needs a GPU */
    typedef struct {
        int lr, gpu;
        char vis[TS_VIS_MAX];
        unsigned char uuid[16];
        int have_uuid;
    } Slot;
    Slot me;
    memset(&me, 0, sizeof me);
    me.lr = env_local_rank(comm, &me.lr) ? me.lr : -1;
    me.gpu = needs_gpu != 0;
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    snprintf(me.vis, sizeof me.vis, "%s", vis ? vis : "(unset)");
    Slot *all = ts_xcalloc((size_t)nsize, sizeof *all);
    MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, all, (int)sizeof me, MPI_BYTE, node);
    /* the launcher's local ranks, if every rank of the node has a distinct
     * one in range; else the split's order (the same choice on every rank
     * of the node: they all look at the same gathered table) */
    int env_ok = 1;
    for (int i = 0; i < nsize && env_ok; i++) {
        env_ok = all[i].lr >= 0 && all[i].lr < nsize;
        for (int j = 0; j < i && env_ok; j++) env_ok = all[j].lr != all[i].lr;
    }
    int my_lr = env_ok ? me.lr : nrank, workers = 0, index = 0, distinct_vis = 1;
    for (int i = 0; i < nsize; i++) {
        int lr = env_ok ? all[i].lr : i;
        if (!all[i].gpu) continue;
        workers++;
        if (lr < my_lr) index++;
        for (int j = 0; j < i; j++)
            if (all[j].gpu && !strcmp(all[j].vis, all[i].vis)) distinct_vis = 0;
    }
    distinct_vis = distinct_vis && workers > 1 && vis; /* per-rank binding */
    if (needs_gpu) {
        int count = 0;
        if (ts_cuda_backend_check(why, sizeof why) != 0) {
            bad = 1;
        } else if (ts_cuda_device_count(&count) != 0 || count < 1) {
            snprintf(why, sizeof why, "no CUDA device (cudaGetDeviceCount: %s)", ts_cuda_last_error());
            bad = 1;
        } else if (distinct_vis) {
            dev = 0; /* each worker sees its own devices */
        } else if (count < workers) {
            snprintf(why, sizeof why,
                     "node %s has %d workers but %d CUDA device%s (one GPU per worker: start at "
                     "most %d worker%s on this node, or give each its own with CUDA_VISIBLE_DEVICES)",
                     host, workers, count, count == 1 ? "" : "s", count, count == 1 ? "" : "s");
            bad = 1;
        } else {
            dev = index;
        }
        char e2[TS_ERR_MAX / 2];
        if (!bad && ts_cuda_device_init(dev, e2, sizeof e2) != 0) {
            snprintf(why, sizeof why, "node %s, CUDA device %d: %s", host, dev, e2);
            bad = 1;
        }
        TsCudaDeviceInfo info;
        if (!bad && ts_cuda_device_info(&info) == 0) {
            memcpy(me.uuid, info.uuid, sizeof me.uuid);
            me.have_uuid = 1;
        }
    }
    /* two workers on one GPU: the same UUID on the node */
    MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, all, (int)sizeof me, MPI_BYTE, node);
    for (int j = 0; j < nsize && !bad && me.have_uuid; j++)
        if (j != nrank && all[j].have_uuid && !memcmp(all[j].uuid, me.uuid, sizeof me.uuid)) {
            snprintf(why, sizeof why,
                     "node %s: shares its GPU (CUDA device %d) with another worker of the node (one "
                     "GPU per worker: check CUDA_VISIBLE_DEVICES)", host, dev);
            bad = 1;
        }
    free(all);
    MPI_Comm_free(&node);
    TsStatus st = agree_first(comm, bad, why, (int)sizeof why, err);
    if (st == TS_OK) *device = dev;
    return st;
}

#else /* no cuda backend: the gates say so on every rank */

TsStatus ts_nccl_backend_check(MPI_Comm comm, int needs_gpu, TsErr *err) {
    char why[TS_ERR_MAX / 2];
    (void)comm;
    (void)needs_gpu;
    ts_cuda_backend_check(why, sizeof why);
    return ts_err(err, TS_ERR_SYSTEM, "--backend cuda: %s", why);
}

TsStatus ts_nccl_device_select(MPI_Comm comm, int needs_gpu, int *device, TsErr *err) {
    *device = -1;
    return ts_nccl_backend_check(comm, needs_gpu, err);
}

#endif
