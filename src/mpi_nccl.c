/* mpi_nccl.c - NCCL world and group communicators bootstrapped through
 * MPI, latent hand-offs, all with bounded waits (see mpi_nccl.h). The gates
 * (backend check, device choice) are in mpi_gpu.c: they need no NCCL, so
 * the tests run them on the CPU stand-in for the device. Without the cuda
 * backend only ts_nccl_version is compiled; with it, the Makefile adds the
 * CUDA include directory as a system directory for this file only. */
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

#include <cuda_runtime.h>
#include <nccl.h>
#include <time.h>

#include "ts_kernels_cuda.h"

#define SCRATCH_BYTES ((size_t)2 * TS_NCCL_MAX_DEGREE * 16)

static ncclComm_t nc(const TsNcclGroup *g) { return (ncclComm_t)g->comm; }
static cudaStream_t cs(void *s) { return (cudaStream_t)s; }

/* Back-off sleep of the poll loops: 2 us doubling to 200 us (a step is
 * milliseconds, a poll about a microsecond). */
static void poll_sleep(long *ns) {
    struct timespec ts = {0, *ns};
    nanosleep(&ts, NULL);
    if (*ns < 200000) *ns *= 2;
}

static TsStatus call_progress(TsNcclWorld *w, TsErr *err) {
    if (!w->progress || w->in_progress) return TS_OK;
    w->in_progress = 1;
    TsStatus st = w->progress(w->progress_ctx, err);
    w->in_progress = 0;
    return st;
}

void ts_nccl_set_progress(TsNcclWorld *w, TsNcclProgress fn, void *ctx) {
    w->progress = fn;
    w->progress_ctx = ctx;
}

static void group_abort(TsNcclGroup *g) {
    if (g->comm) (void)ncclCommAbort(nc(g));
    g->comm = NULL;
    g->aborted = 1;
}

static TsStatus group_fail(TsNcclGroup *g, const char *what, const char *why, int abort_it,
                           TsErr *err) {
    if (abort_it) group_abort(g);
    return ts_err(err, TS_ERR_SYSTEM, "rank %d: NCCL %s in group %s: %s%s", g->world->rank, what,
                  g->name, why, abort_it ? ": communicator aborted" : "");
}

static int is_world(const TsNcclGroup *g) { return g == &g->world->all; }

/* After an NCCL call returned r on g's non-blocking communicator: poll
 * while it is in progress (enqueueing, connecting, initialising), within
 * the timeout. The progress hook runs between polls except for the world
 * communicator (the hook enqueues on it, which is not allowed while it is
 * in progress). */
static TsStatus settle(TsNcclGroup *g, ncclResult_t r, const char *what, TsErr *err) {
    char why[256];
    if (r != ncclSuccess && r != ncclInProgress) {
        snprintf(why, sizeof why, "%s (%s)", ncclGetErrorString(r), ncclGetLastError(nc(g)));
        return group_fail(g, what, why, 1, err);
    }
    double t0 = ts_wall_s();
    long ns = 2000;
    for (;;) {
        ncclResult_t a = ncclSuccess;
        ncclResult_t q = ncclCommGetAsyncError(nc(g), &a);
        if (q != ncclSuccess) a = q;
        if (a == ncclSuccess) return TS_OK;
        if (a != ncclInProgress) {
            snprintf(why, sizeof why, "%s (%s)", ncclGetErrorString(a), ncclGetLastError(nc(g)));
            return group_fail(g, what, why, 1, err);
        }
        if (ts_wall_s() - t0 > g->world->timeout_s) {
            snprintf(why, sizeof why, "still in progress after %.0f s", g->world->timeout_s);
            return group_fail(g, what, why, 1, err);
        }
        if (!is_world(g)) {
            TsStatus st = call_progress(g->world, err);
            if (st != TS_OK) {
                group_abort(g); /* it stays in progress otherwise: unusable anyway */
                return st;
            }
        }
        poll_sleep(&ns);
    }
}

static TsStatus usable(TsNcclGroup *g, const char *what, TsErr *err) {
    if (g->aborted) return group_fail(g, what, "the communicator was aborted by an earlier failure", 0, err);
    return TS_OK;
}

/* Poll a stream (ev NULL) or an event until done, watching g's
 * communicator, within timeout_s of t0; the progress hook between polls. */
static TsStatus wait_done(TsNcclGroup *g, void *stream, void *ev, double t0, const char *what,
                          TsErr *err) {
    char why[256];
    long ns = 2000;
    for (;;) {
        cudaError_t e = ev ? cudaEventQuery((cudaEvent_t)ev) : cudaStreamQuery(cs(stream));
        if (e == cudaSuccess) return TS_OK;
        if (e != cudaErrorNotReady) {
            (void)cudaGetLastError();
            snprintf(why, sizeof why, "%s:%d: %s: %s", __FILE__, __LINE__,
                     ev ? "cudaEventQuery" : "cudaStreamQuery", cudaGetErrorString(e));
            return group_fail(g, what, why, g->comm != NULL, err);
        }
        (void)cudaGetLastError(); /* NotReady is not an error: leave nothing sticky */
        if (g->comm) {
            ncclResult_t a = ncclSuccess;
            ncclResult_t q = ncclCommGetAsyncError(nc(g), &a);
            if (q != ncclSuccess) a = q;
            if (a != ncclSuccess && a != ncclInProgress) {
                snprintf(why, sizeof why, "%s (%s)", ncclGetErrorString(a), ncclGetLastError(nc(g)));
                return group_fail(g, what, why, 1, err);
            }
        }
        if (ts_wall_s() - t0 > g->world->timeout_s) {
            snprintf(why, sizeof why, "not finished after %.0f s", g->world->timeout_s);
            return group_fail(g, what, why, g->comm != NULL, err);
        }
        TsStatus st = call_progress(g->world, err);
        if (st != TS_OK) return st;
        poll_sleep(&ns);
    }
}

TsStatus ts_nccl_group_wait(TsNcclGroup *g, void *stream, const char *what, TsErr *err) {
    return wait_done(g, stream, NULL, ts_wall_s(), what, err);
}

#define CUDA_CK(call)                                                                              \
    do {                                                                                           \
        cudaError_t ck_ = (call);                                                                  \
        if (ck_ != cudaSuccess) {                                                                  \
            (void)cudaGetLastError();                                                              \
            return ts_err(err, TS_ERR_SYSTEM, "rank %d: %s:%d: %s: %s", w->rank, __FILE__,        \
                          __LINE__, #call, cudaGetErrorString(ck_));                               \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------ version */

void ts_nccl_version(char *buf, size_t len) {
    int v = 0;
    if (ncclGetVersion(&v) != ncclSuccess) v = 0;
    snprintf(buf, len, "NCCL %d.%d.%d", v / 10000, (v % 10000) / 100, v % 100);
}

/* ------------------------------------------------------------ local rank */

TsStatus ts_nccl_local_rank(MPI_Comm comm, int *local_rank, int *local_size, TsErr *err) {
    int rank = 0;
    MPI_Comm node = MPI_COMM_NULL;
    MPI_CK(MPI_Comm_rank(comm, &rank));
    MPI_CK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
    MPI_Comm_rank(node, local_rank);
    MPI_Comm_size(node, local_size);
    MPI_Comm_free(&node);
    return TS_OK;
}

/* ------------------------------------------------------------ groups */

static void group_name(TsNcclGroup *g) {
    size_t n = 0;
    n += (size_t)snprintf(g->name + n, sizeof g->name - n, "{");
    for (int i = 0; i < g->degree && n < sizeof g->name; i++)
        n += (size_t)snprintf(g->name + n, sizeof g->name - n, "%s%d", i ? "," : "", g->ranks[i]);
    if (n < sizeof g->name) snprintf(g->name + n, sizeof g->name - n, "}");
}

/* Append a group to the cache (ranks ascending, this process among them). */
static TsNcclGroup *cache_add(TsNcclWorld *w, const int *ranks, int degree, void *comm, int aligned) {
    TS_GROW(w->groups, w->cap_groups, w->n_groups + 1);
    TsNcclGroup *g = ts_xcalloc(1, sizeof *g);
    w->groups[w->n_groups++] = g;
    g->world = w;
    g->degree = degree;
    g->ranks = ts_xmalloc(sizeof(int) * (size_t)degree);
    memcpy(g->ranks, ranks, sizeof(int) * (size_t)degree);
    for (int i = 0; i < degree; i++)
        if (ranks[i] == w->rank) g->my_rank = i;
    g->comm = comm;
    g->aligned = aligned;
    g->warmed = degree == 1;
    group_name(g);
    return g;
}

static TsNcclGroup *cache_find(TsNcclWorld *w, const int *ranks, int degree) {
    for (int64_t i = 0; i < w->n_groups; i++) {
        TsNcclGroup *g = w->groups[i];
        if (g->degree == degree && memcmp(g->ranks, ranks, sizeof(int) * (size_t)degree) == 0) return g;
    }
    return NULL;
}

/* Every rank's status, so that all leave a collective phase together. */
static TsStatus agree(TsNcclWorld *w, TsStatus st, TsErr *err) {
    int mine = st != TS_OK, any = mine;
    if (MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, w->mpi) != MPI_SUCCESS)
        return ts_err(err, TS_ERR_SYSTEM, "rank %d: MPI_Allreduce failed during NCCL set-up", w->rank);
    if (st != TS_OK) return st;
    if (any) return ts_err(err, TS_ERR_SYSTEM, "rank %d: NCCL set-up failed on another rank", w->rank);
    return TS_OK;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Aligned groups of degree k on this node: one split of the world per k,
 * color = (node, group within the node), key = world rank. Collective over
 * the world: ranks of the node's last, partial group pass
 * NCCL_SPLIT_NOCOLOR and get no communicator. Non-blocking: the parent is
 * polled until the call has settled, then the child until it is ready. */
static TsStatus split_aligned(TsNcclWorld *w, int k, int max_local, int node_leader, int node_lr,
                              int node_size, const int *node_ranks, TsErr *err) {
    int in_group = node_lr / k < node_size / k;
    int color = in_group ? node_leader * (max_local + 1) + node_lr / k : NCCL_SPLIT_NOCOLOR;
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    ncclComm_t sub = NULL;
    char what[64];
    snprintf(what, sizeof what, "split for degree %d", k);
    ncclResult_t r = ncclCommSplit(nc(&w->all), color, w->rank, &sub, &cfg);
    TsStatus st = settle(&w->all, r, what, err);
    if (st != TS_OK) {
        if (sub) (void)ncclCommAbort(sub);
        return st;
    }
    if (!in_group) return TS_OK;
    if (!sub) return group_fail(&w->all, what, "ncclCommSplit gave no communicator", 0, err);
    TsNcclGroup *g = cache_add(w, node_ranks + (node_lr / k) * k, k, sub, 1);
    return settle(g, ncclInProgress, what, err);
}

/* Local set-up of world_init (no collective): its status goes through agree. */
static TsStatus world_local(TsNcclWorld *w, TsErr *err) {
    CUDA_CK(cudaStreamCreateWithFlags((cudaStream_t *)&w->stream, cudaStreamNonBlocking));
    CUDA_CK(cudaStreamCreateWithFlags((cudaStream_t *)&w->group_stream, cudaStreamNonBlocking));
    CUDA_CK(cudaMalloc(&w->scratch, SCRATCH_BYTES));
    CUDA_CK(cudaMemset(w->scratch, 0, SCRATCH_BYTES));
    return TS_OK;
}

/* Every rank reaches every collective (MPI or NCCL) of this function or
 * leaves at the same agree(): a local failure never strands the others in
 * an unbounded MPI call. */
static TsStatus world_init(TsNcclWorld *w, MPI_Comm comm, TsErr *err) {
    MPI_CK(MPI_Comm_dup(comm, &w->mpi));
    MPI_Comm_rank(w->mpi, &w->rank);
    MPI_Comm_size(w->mpi, &w->size);
    if (w->size > TS_NCCL_MAX_DEGREE)
        return ts_err(err, TS_ERR_INPUT, "NCCL world of %d ranks: at most %d", w->size,
                      TS_NCCL_MAX_DEGREE);
    /* world: the group of every rank, initialised from rank 0's id */
    int *all = ts_xmalloc(sizeof(int) * (size_t)w->size);
    for (int i = 0; i < w->size; i++) all[i] = i;
    w->all.world = w;
    w->all.degree = w->size;
    w->all.ranks = all;
    w->all.my_rank = w->rank;
    snprintf(w->all.name, sizeof w->all.name, "world (%d ranks)", w->size);
    TsStatus st = ts_nccl_local_rank(w->mpi, &w->local_rank, &w->local_size, err);
    if (st == TS_OK) st = world_local(w, err);
    st = agree(w, st, err);
    if (st != TS_OK) return st;
    struct {
        int ok;
        ncclUniqueId id;
    } boot;
    memset(&boot, 0, sizeof boot);
    if (w->rank == 0) boot.ok = ncclGetUniqueId(&boot.id) == ncclSuccess;
    MPI_CK(MPI_Bcast(&boot, (int)sizeof boot, MPI_BYTE, 0, w->mpi));
    if (!boot.ok)
        return ts_err(err, TS_ERR_SYSTEM, "rank %d: ncclGetUniqueId failed on rank 0", w->rank);
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0; /* every creation and enqueue can be polled and abandoned */
    ncclComm_t wc = NULL;
    ncclResult_t r = ncclCommInitRankConfig(&wc, w->size, boot.id, w->rank, &cfg);
    w->all.comm = wc;
    if (wc) st = settle(&w->all, r, "communicator init", err);
    else st = group_fail(&w->all, "communicator init", ncclGetErrorString(r), 0, err);
    st = agree(w, st, err);
    if (st != TS_OK) return st;

    /* node layout: which world ranks share this node, in node-rank order
     * (split key = world rank, so node_ranks ascends and an aligned group's
     * NCCL ranks, split with the same key, are its index in the list) */
    MPI_Comm node = MPI_COMM_NULL;
    MPI_CK(MPI_Comm_split_type(w->mpi, MPI_COMM_TYPE_SHARED, w->rank, MPI_INFO_NULL, &node));
    int node_size = 0, node_lr = 0, node_leader = 0, max_local = 0;
    MPI_Comm_size(node, &node_size);
    MPI_Comm_rank(node, &node_lr);
    int *node_ranks = ts_xmalloc(sizeof(int) * (size_t)node_size);
    MPI_Allgather(&w->rank, 1, MPI_INT, node_ranks, 1, MPI_INT, node);
    MPI_Allreduce(&w->rank, &node_leader, 1, MPI_INT, MPI_MIN, node);
    MPI_Comm_free(&node);
    MPI_Allreduce(&node_size, &max_local, 1, MPI_INT, MPI_MAX, w->mpi);
    for (int k = 2; k <= max_local && st == TS_OK; k *= 2)
        st = agree(w, split_aligned(w, k, max_local, node_leader, node_lr, node_size, node_ranks, err),
                   err);
    free(node_ranks);
    if (st != TS_OK) return st;
    /* connect every pair of the world now: a hand-off must never wait for
     * a connection, whose set-up needs the peer's host */
    if (w->size > 1) {
        st = ts_nccl_alltoall(&w->all, w->scratch, (char *)w->scratch + SCRATCH_BYTES / 2, 16,
                              w->stream, err);
        if (st == TS_OK) st = ts_nccl_group_wait(&w->all, w->stream, "world warm-up", err);
        st = agree(w, st, err);
    }
    return st;
}

TsStatus ts_nccl_world_init(TsNcclWorld *w, MPI_Comm comm, double timeout_s, TsErr *err) {
    memset(w, 0, sizeof *w);
    w->timeout_s = timeout_s > 0 ? timeout_s : TS_CUDA_TIMEOUT_S;
    w->mpi = MPI_COMM_NULL;
    TsStatus st = world_init(w, comm, err);
    if (st != TS_OK) ts_nccl_world_free(w);
    return st;
}

/* Finalize every communicator first (a finalize completes only when the
 * peers finalize too, and the peers may close their groups in another
 * order), then poll them all, then destroy or abort. */
void ts_nccl_world_free(TsNcclWorld *w) {
    int64_t n = w->n_groups + 1;
    TsNcclGroup **gs = ts_xmalloc(sizeof *gs * (size_t)n);
    int *pending = ts_xcalloc((size_t)n, sizeof *pending);
    for (int64_t i = 0; i < w->n_groups; i++) gs[i] = w->groups[i];
    gs[n - 1] = &w->all;
    for (int64_t i = 0; i < n; i++) {
        TsNcclGroup *g = gs[i];
        if (!g->comm) continue;
        ncclResult_t r = ncclCommFinalize(nc(g));
        if (r == ncclSuccess || r == ncclInProgress) pending[i] = 1;
        else group_abort(g);
    }
    double t0 = ts_wall_s();
    long ns = 2000;
    for (int left = 1; left;) {
        left = 0;
        for (int64_t i = 0; i < n; i++) {
            if (!pending[i]) continue;
            ncclResult_t a = ncclSuccess;
            ncclResult_t q = ncclCommGetAsyncError(nc(gs[i]), &a);
            if (q != ncclSuccess) a = q;
            if (a == ncclInProgress && ts_wall_s() - t0 <= w->timeout_s) {
                left = 1;
                continue;
            }
            pending[i] = 0;
            if (a == ncclSuccess) {
                (void)ncclCommDestroy(nc(gs[i]));
                gs[i]->comm = NULL;
            } else {
                group_abort(gs[i]);
            }
        }
        if (left) poll_sleep(&ns);
    }
    free(pending);
    free(gs);
    for (int64_t i = 0; i < w->n_groups; i++) {
        free(w->groups[i]->ranks);
        free(w->groups[i]);
    }
    free(w->groups);
    free(w->all.ranks);
    if (w->scratch) (void)cudaFree(w->scratch);
    if (w->stream) (void)cudaStreamDestroy(cs(w->stream));
    if (w->group_stream) (void)cudaStreamDestroy(cs(w->group_stream));
    if (w->mpi != MPI_COMM_NULL) MPI_Comm_free(&w->mpi);
    memset(w, 0, sizeof *w);
    w->mpi = MPI_COMM_NULL;
}

/* A group nobody pre-created: its lowest member makes an id and sends it
 * to the others over MPI; all of them create the communicator. The
 * members may arrive at different times (one finishing a launch): the
 * waits serve the control plane meanwhile. */
static TsStatus group_create(TsNcclWorld *w, const int *ranks, int degree, TsNcclGroup **out,
                             TsErr *err) {
    struct {
        int ok;
        ncclUniqueId id;
    } boot;
    memset(&boot, 0, sizeof boot);
    int me = 0;
    for (int i = 0; i < degree; i++)
        if (ranks[i] == w->rank) me = i;
    if (me == 0) {
        boot.ok = ncclGetUniqueId(&boot.id) == ncclSuccess;
        for (int i = 1; i < degree; i++) /* small and eager: returns at once */
            MPI_CK(MPI_Send(&boot, (int)sizeof boot, MPI_BYTE, ranks[i], TS_NCCL_TAG, w->mpi));
    } else {
        MPI_Request req;
        int done = 0;
        double t0 = ts_wall_s();
        long ns = 2000;
        MPI_CK(MPI_Irecv(&boot, (int)sizeof boot, MPI_BYTE, ranks[0], TS_NCCL_TAG, w->mpi, &req));
        while (!done) {
            MPI_CK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
            if (done) break;
            TsStatus st = ts_wall_s() - t0 > w->timeout_s
                              ? ts_err(err, TS_ERR_SYSTEM,
                                       "rank %d: no NCCL id from rank %d for a group of %d after %.0f s",
                                       w->rank, ranks[0], degree, w->timeout_s)
                              : call_progress(w, err);
            if (st != TS_OK) {
                MPI_Cancel(&req);
                MPI_Request_free(&req);
                return st;
            }
            poll_sleep(&ns);
        }
    }
    TsNcclGroup *g = cache_add(w, ranks, degree, NULL, 0);
    w->n_lazy++;
    if (!boot.ok) {
        g->aborted = 1;
        return group_fail(g, "communicator init", "ncclGetUniqueId failed on the first member", 0, err);
    }
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    ncclComm_t c = NULL;
    ncclResult_t r = ncclCommInitRankConfig(&c, degree, boot.id, me, &cfg);
    g->comm = c;
    if (!c) {
        g->aborted = 1;
        return group_fail(g, "communicator init", ncclGetErrorString(r), 0, err);
    }
    *out = g;
    return settle(g, r, "communicator init", err);
}

TsStatus ts_nccl_group_get(TsNcclWorld *w, const int *ranks_in, int degree, TsNcclGroup **out,
                           TsErr *err) {
    *out = NULL;
    if (degree < 1 || degree > TS_NCCL_MAX_DEGREE || degree > w->size)
        return ts_err(err, TS_ERR_INTERNAL, "rank %d: NCCL group of %d ranks (world of %d)", w->rank,
                      degree, w->size);
    int ranks[TS_NCCL_MAX_DEGREE], mine = 0;
    memcpy(ranks, ranks_in, sizeof(int) * (size_t)degree);
    qsort(ranks, (size_t)degree, sizeof(int), cmp_int);
    for (int i = 0; i < degree; i++) {
        if (ranks[i] < 0 || ranks[i] >= w->size || (i && ranks[i] == ranks[i - 1]))
            return ts_err(err, TS_ERR_INTERNAL, "rank %d: NCCL group with rank %d repeated or outside 0..%d",
                          w->rank, ranks[i], w->size - 1);
        mine |= ranks[i] == w->rank;
    }
    if (!mine)
        return ts_err(err, TS_ERR_INTERNAL, "rank %d: asked for an NCCL group it is not in", w->rank);
    TsNcclGroup *g = cache_find(w, ranks, degree);
    if (!g && degree == 1) g = cache_add(w, ranks, 1, NULL, 0);
    if (!g) {
        TsStatus st = group_create(w, ranks, degree, &g, err);
        if (st != TS_OK) return st;
    }
    TsStatus st = usable(g, "group", err);
    if (st != TS_OK) return st;
    if (!g->warmed) {
        /* first use: let NCCL connect the peers now rather than inside a
         * step; on the group stream, never behind a hand-off */
        size_t blk = 16;
        st = ts_nccl_alltoall(g, w->scratch, (char *)w->scratch + SCRATCH_BYTES / 2, blk,
                              w->group_stream, err);
        if (st == TS_OK) st = ts_nccl_group_wait(g, w->group_stream, "warm-up all-to-all", err);
        if (st != TS_OK) return st;
        g->warmed = 1;
    }
    *out = g;
    return TS_OK;
}

/* ------------------------------------------------------------ operations */

TsStatus ts_nccl_alltoall(TsNcclGroup *g, const void *d_send, void *d_recv, size_t bytes_per_rank,
                          void *stream, TsErr *err) {
    TsStatus st = usable(g, "all-to-all", err);
    if (st != TS_OK) return st;
    if (g->degree == 1) {
        cudaError_t e = cudaMemcpyAsync(d_recv, d_send, bytes_per_rank, cudaMemcpyDeviceToDevice, cs(stream));
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            return ts_err(err, TS_ERR_SYSTEM, "rank %d: %s:%d: cudaMemcpyAsync: %s", g->world->rank,
                          __FILE__, __LINE__, cudaGetErrorString(e));
        }
        return TS_OK;
    }
    /* one group: the k sends and k receives progress together (separately
     * each would wait for its peer's matching call) */
    ncclResult_t r = ncclGroupStart();
    for (int p = 0; p < g->degree && (r == ncclSuccess || r == ncclInProgress); p++) {
        r = ncclSend((const char *)d_send + (size_t)p * bytes_per_rank, bytes_per_rank, ncclChar, p,
                     nc(g), cs(stream));
        if (r == ncclSuccess || r == ncclInProgress)
            r = ncclRecv((char *)d_recv + (size_t)p * bytes_per_rank, bytes_per_rank, ncclChar, p,
                         nc(g), cs(stream));
    }
    ncclResult_t e = ncclGroupEnd(); /* always close the group, even after a failed call */
    if (r == ncclSuccess || r == ncclInProgress) r = e;
    return settle(g, r, "all-to-all", err);
}

TsStatus ts_nccl_bcast(TsNcclGroup *g, void *d_buf, size_t bytes, int root, void *stream, TsErr *err) {
    TsStatus st = usable(g, "broadcast", err);
    if (st != TS_OK || g->degree == 1) return st;
    if (root < 0 || root >= g->degree)
        return ts_err(err, TS_ERR_INTERNAL, "rank %d: broadcast root %d outside group %s",
                      g->world->rank, root, g->name);
    if (!stream) stream = g->world->group_stream;
    ncclResult_t r = ncclBroadcast(d_buf, d_buf, bytes, ncclChar, root, nc(g), cs(stream));
    st = settle(g, r, "broadcast", err);
    if (st != TS_OK) return st;
    return ts_nccl_group_wait(g, stream, "broadcast", err);
}

static void op_what(const TsNcclOp *op, char *buf, size_t len) {
    snprintf(buf, len, "latent %s rank %d (%.1f MB)", op->send ? "send to" : "receive from", op->peer,
             (double)op->bytes / 1e6);
}

static TsStatus p2p_start(TsNcclWorld *w, void *d_buf, size_t bytes, int peer, int send, TsNcclOp *op,
                          TsErr *err) {
    TsNcclGroup *g = &w->all;
    memset(op, 0, sizeof *op);
    op->peer = peer, op->send = send, op->bytes = bytes;
    char what[96];
    op_what(op, what, sizeof what);
    TsStatus st = usable(g, what, err);
    if (st != TS_OK) return st;
    if (peer < 0 || peer >= w->size || peer == w->rank)
        return ts_err(err, TS_ERR_INTERNAL, "rank %d: %s: not a peer in a world of %d", w->rank, what,
                      w->size);
    cudaEvent_t ev = NULL;
    cudaError_t e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return ts_err(err, TS_ERR_SYSTEM, "rank %d: %s:%d: cudaEventCreateWithFlags: %s", w->rank,
                      __FILE__, __LINE__, cudaGetErrorString(e));
    }
    ncclResult_t r = send ? ncclSend(d_buf, bytes, ncclChar, peer, nc(g), cs(w->stream))
                          : ncclRecv(d_buf, bytes, ncclChar, peer, nc(g), cs(w->stream));
    st = settle(g, r, what, err);
    if (st == TS_OK && (e = cudaEventRecord(ev, cs(w->stream))) != cudaSuccess) {
        /* enqueued but not observable: the communicator cannot be trusted */
        (void)cudaGetLastError();
        char why[160];
        snprintf(why, sizeof why, "%s:%d: cudaEventRecord: %s", __FILE__, __LINE__, cudaGetErrorString(e));
        st = group_fail(g, what, why, 1, err);
    }
    if (st != TS_OK) {
        (void)cudaEventDestroy(ev);
        return st;
    }
    op->ev = ev;
    op->t0 = ts_wall_s();
    return TS_OK;
}

TsStatus ts_nccl_send_start(TsNcclWorld *w, const void *d_buf, size_t bytes, int peer, TsNcclOp *op,
                            TsErr *err) {
    return p2p_start(w, (void *)(uintptr_t)d_buf, bytes, peer, 1, op, err);
}

TsStatus ts_nccl_recv_start(TsNcclWorld *w, void *d_buf, size_t bytes, int peer, TsNcclOp *op,
                            TsErr *err) {
    return p2p_start(w, d_buf, bytes, peer, 0, op, err);
}

TsStatus ts_nccl_op_test(TsNcclWorld *w, TsNcclOp *op, int *done, TsErr *err) {
    TsNcclGroup *g = &w->all;
    char what[96], why[160];
    *done = 0;
    op_what(op, what, sizeof what);
    TsStatus st = usable(g, what, err);
    if (st != TS_OK) return st;
    cudaError_t e = cudaEventQuery((cudaEvent_t)op->ev);
    if (e == cudaSuccess) {
        *done = 1;
        return TS_OK;
    }
    (void)cudaGetLastError();
    if (e != cudaErrorNotReady) {
        snprintf(why, sizeof why, "%s:%d: cudaEventQuery: %s", __FILE__, __LINE__, cudaGetErrorString(e));
        return group_fail(g, what, why, 1, err);
    }
    ncclResult_t a = ncclSuccess;
    ncclResult_t q = ncclCommGetAsyncError(nc(g), &a);
    if (q != ncclSuccess) a = q;
    if (a != ncclSuccess && a != ncclInProgress) {
        snprintf(why, sizeof why, "%s (%s)", ncclGetErrorString(a), ncclGetLastError(nc(g)));
        return group_fail(g, what, why, 1, err);
    }
    if (ts_wall_s() - op->t0 > w->timeout_s) {
        snprintf(why, sizeof why, "not finished after %.0f s", w->timeout_s);
        return group_fail(g, what, why, 1, err);
    }
    return TS_OK;
}

TsStatus ts_nccl_op_wait(TsNcclWorld *w, TsNcclOp *op, TsErr *err) {
    long ns = 2000;
    for (;;) {
        int done = 0;
        TsStatus st = ts_nccl_op_test(w, op, &done, err);
        if (st != TS_OK || done) return st;
        if ((st = call_progress(w, err)) != TS_OK) return st;
        poll_sleep(&ns);
    }
}

void ts_nccl_op_free(TsNcclOp *op) {
    if (op->ev) (void)cudaEventDestroy((cudaEvent_t)op->ev);
    op->ev = NULL;
}

TsStatus ts_nccl_send(TsNcclWorld *w, const void *d_buf, size_t bytes, int peer, TsErr *err) {
    TsNcclOp op;
    TsStatus st = ts_nccl_send_start(w, d_buf, bytes, peer, &op, err);
    if (st == TS_OK) st = ts_nccl_op_wait(w, &op, err);
    ts_nccl_op_free(&op);
    return st;
}

TsStatus ts_nccl_recv(TsNcclWorld *w, void *d_buf, size_t bytes, int peer, TsErr *err) {
    TsNcclOp op;
    TsStatus st = ts_nccl_recv_start(w, d_buf, bytes, peer, &op, err);
    if (st == TS_OK) st = ts_nccl_op_wait(w, &op, err);
    ts_nccl_op_free(&op);
    return st;
}

/* ------------------------------------------------------------ TsDitCudaComm */

static int dc_rank(void *ctx) { return ((TsNcclGroup *)ctx)->my_rank; }
static int dc_size(void *ctx) { return ((TsNcclGroup *)ctx)->degree; }

static TsStatus dc_alltoall(const void *d_send, void *d_recv, size_t bytes, void *stream, void *ctx,
                            TsErr *err) {
    return ts_nccl_alltoall(ctx, d_send, d_recv, bytes, stream, err);
}

static TsStatus dc_wait(void *stream, const char *what, void *ctx, TsErr *err) {
    return ts_nccl_group_wait(ctx, stream, what, err);
}

void ts_nccl_dit_comm(TsNcclGroup *g, TsDitCudaComm *comm) {
    comm->rank = dc_rank;
    comm->size = dc_size;
    comm->alltoall = dc_alltoall;
    comm->wait = dc_wait;
    comm->ctx = g;
}

#else /* no cuda backend: the gates (mpi_gpu.c) say so; nothing else exists */

void ts_nccl_version(char *buf, size_t len) { snprintf(buf, len, "NCCL not built"); }

#endif
