/* fake_nccl.c - the NCCL part of src/mpi_nccl.h over MPI on host memory,
 * for tests of the cuda backend's host logic without a GPU (with
 * tests/fake_cuda.c, whose "device memory" is host memory): the executor's
 * latent hand-offs and group steps, the profiler's groups, the GPU tests'
 * own logic.
 *
 * Faithful where the executor's correctness depends on it:
 *  - world hand-offs are serialised per rank in the order they are started,
 *    like NCCL runs the operations of one communicator (only the oldest
 *    unfinished one is in flight), and a send completes only once its
 *    receive is posted (MPI_Issend), like NCCL's: an ordering that would
 *    deadlock on GPUs deadlocks here too (and fails by the timeout);
 *  - every wait calls the world's progress hook between polls, never
 *    re-entrantly, never while a world operation is being started;
 *  - groups: aligned ones created at world init by one split per degree,
 *    others on first use by their members only (MPI_Comm_create_group).
 * Not modelled: device concurrency (the fake device is synchronous: a
 * group all-to-all completes before the call returns, serving the hook
 * while it waits), NCCL errors and aborts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpi_nccl.h"

#define FAKE_P2P_TAG 7702

typedef struct FakeOp {
    struct FakeOp *next;
    void *buf;
    size_t bytes;
    int peer, send, posted, done, queued;
    MPI_Request req;
} FakeOp;

/* the world's FIFO of hand-offs (one world per process) */
static FakeOp *fifo_head, *fifo_tail;

static void poll_sleep(long *ns) {
    struct timespec ts = {0, *ns};
    nanosleep(&ts, NULL);
    if (*ns < 200000) *ns *= 2;
}

static MPI_Comm gcomm(const TsNcclGroup *g) { return *(MPI_Comm *)g->comm; }

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

void ts_nccl_version(char *buf, size_t len) { snprintf(buf, len, "NCCL fake (tests/fake_nccl.c)"); }

TsStatus ts_nccl_local_rank(MPI_Comm comm, int *local_rank, int *local_size, TsErr *err) {
    (void)err;
    int rank = 0;
    MPI_Comm node;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, local_rank);
    MPI_Comm_size(node, local_size);
    MPI_Comm_free(&node);
    return TS_OK;
}

static void group_name(TsNcclGroup *g) {
    size_t n = (size_t)snprintf(g->name, sizeof g->name, "{");
    for (int i = 0; i < g->degree && n < sizeof g->name; i++)
        n += (size_t)snprintf(g->name + n, sizeof g->name - n, "%s%d", i ? "," : "", g->ranks[i]);
    if (n < sizeof g->name) snprintf(g->name + n, sizeof g->name - n, "}");
}

static TsNcclGroup *cache_add(TsNcclWorld *w, const int *ranks, int degree, MPI_Comm c, int aligned) {
    TS_GROW(w->groups, w->cap_groups, w->n_groups + 1);
    TsNcclGroup *g = ts_xcalloc(1, sizeof *g);
    w->groups[w->n_groups++] = g;
    g->world = w;
    g->degree = degree;
    g->ranks = ts_xmalloc(sizeof(int) * (size_t)degree);
    memcpy(g->ranks, ranks, sizeof(int) * (size_t)degree);
    for (int i = 0; i < degree; i++)
        if (ranks[i] == w->rank) g->my_rank = i;
    if (c != MPI_COMM_NULL) {
        MPI_Comm *p = ts_xmalloc(sizeof *p);
        *p = c;
        g->comm = p;
    }
    g->aligned = aligned;
    g->warmed = 1;
    group_name(g);
    return g;
}

TsStatus ts_nccl_world_init(TsNcclWorld *w, MPI_Comm comm, double timeout_s, TsErr *err) {
    (void)err;
    memset(w, 0, sizeof *w);
    w->timeout_s = timeout_s > 0 ? timeout_s : TS_CUDA_TIMEOUT_S;
    MPI_Comm_dup(comm, &w->mpi);
    MPI_Comm_rank(w->mpi, &w->rank);
    MPI_Comm_size(w->mpi, &w->size);
    w->all.world = w;
    w->all.degree = w->size;
    w->all.ranks = ts_xmalloc(sizeof(int) * (size_t)w->size);
    for (int i = 0; i < w->size; i++) w->all.ranks[i] = i;
    w->all.my_rank = w->rank;
    snprintf(w->all.name, sizeof w->all.name, "world (%d ranks)", w->size);
    ts_nccl_local_rank(w->mpi, &w->local_rank, &w->local_size, err);
    /* aligned groups per node, as the real one's splits */
    MPI_Comm node;
    MPI_Comm_split_type(w->mpi, MPI_COMM_TYPE_SHARED, w->rank, MPI_INFO_NULL, &node);
    int nsize, nlr, leader, max_local;
    MPI_Comm_size(node, &nsize);
    MPI_Comm_rank(node, &nlr);
    int *nranks = ts_xmalloc(sizeof(int) * (size_t)nsize);
    MPI_Allgather(&w->rank, 1, MPI_INT, nranks, 1, MPI_INT, node);
    MPI_Allreduce(&w->rank, &leader, 1, MPI_INT, MPI_MIN, node);
    MPI_Comm_free(&node);
    MPI_Allreduce(&nsize, &max_local, 1, MPI_INT, MPI_MAX, w->mpi);
    for (int k = 2; k <= max_local; k *= 2) {
        int in = nlr / k < nsize / k;
        MPI_Comm sub;
        MPI_Comm_split(w->mpi, in ? leader * (max_local + 1) + nlr / k : MPI_UNDEFINED, w->rank, &sub);
        if (in) cache_add(w, nranks + (nlr / k) * k, k, sub, 1);
    }
    free(nranks);
    return TS_OK;
}

void ts_nccl_world_free(TsNcclWorld *w) {
    for (int64_t i = 0; i < w->n_groups; i++) {
        TsNcclGroup *g = w->groups[i];
        if (g->comm) {
            MPI_Comm_free((MPI_Comm *)g->comm);
            free(g->comm);
        }
        free(g->ranks);
        free(g);
    }
    free(w->groups);
    free(w->all.ranks);
    if (w->mpi != MPI_COMM_NULL) MPI_Comm_free(&w->mpi);
    memset(w, 0, sizeof *w);
    w->mpi = MPI_COMM_NULL;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

TsStatus ts_nccl_group_get(TsNcclWorld *w, const int *ranks_in, int degree, TsNcclGroup **out,
                           TsErr *err) {
    int ranks[TS_NCCL_MAX_DEGREE], mine = 0;
    *out = NULL;
    if (degree < 1 || degree > w->size)
        return ts_err(err, TS_ERR_INTERNAL, "rank %d: fake NCCL group of %d ranks", w->rank, degree);
    memcpy(ranks, ranks_in, sizeof(int) * (size_t)degree);
    qsort(ranks, (size_t)degree, sizeof(int), cmp_int);
    for (int i = 0; i < degree; i++) mine |= ranks[i] == w->rank;
    if (!mine) return ts_err(err, TS_ERR_INTERNAL, "rank %d: asked for a group it is not in", w->rank);
    for (int64_t i = 0; i < w->n_groups; i++) {
        TsNcclGroup *g = w->groups[i];
        if (g->degree == degree && !memcmp(g->ranks, ranks, sizeof(int) * (size_t)degree)) {
            *out = g;
            return TS_OK;
        }
    }
    MPI_Comm c = MPI_COMM_NULL;
    if (degree > 1) {
        MPI_Group wg, gg;
        MPI_Comm_group(w->mpi, &wg);
        MPI_Group_incl(wg, degree, ranks, &gg);
        MPI_Comm_create_group(w->mpi, gg, TS_NCCL_TAG, &c);
        MPI_Group_free(&gg);
        MPI_Group_free(&wg);
        w->n_lazy++;
    }
    *out = cache_add(w, ranks, degree, c, 0);
    return TS_OK;
}

/* A non-blocking MPI collective, completed while serving the hook. */
static TsStatus complete(TsNcclGroup *g, MPI_Request *req, const char *what, TsErr *err) {
    double t0 = ts_wall_s();
    long ns = 2000;
    for (;;) {
        int done = 0;
        MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (done) return TS_OK;
        if (ts_wall_s() - t0 > g->world->timeout_s)
            return ts_err(err, TS_ERR_SYSTEM, "rank %d: fake NCCL %s in group %s: not finished after %.0f s",
                          g->world->rank, what, g->name, g->world->timeout_s);
        TsStatus st = call_progress(g->world, err);
        if (st != TS_OK) return st;
        poll_sleep(&ns);
    }
}

TsStatus ts_nccl_alltoall(TsNcclGroup *g, const void *d_send, void *d_recv, size_t bytes_per_rank,
                          void *stream, TsErr *err) {
    (void)stream;
    if (g->degree == 1) {
        memmove(d_recv, d_send, bytes_per_rank);
        return TS_OK;
    }
    MPI_Request req;
    MPI_Ialltoall(d_send, (int)bytes_per_rank, MPI_BYTE, d_recv, (int)bytes_per_rank, MPI_BYTE,
                  gcomm(g), &req);
    return complete(g, &req, "all-to-all", err);
}

TsStatus ts_nccl_group_wait(TsNcclGroup *g, void *stream, const char *what, TsErr *err) {
    (void)stream, (void)what;
    return call_progress(g->world, err); /* the fake device is done already */
}

TsStatus ts_nccl_bcast(TsNcclGroup *g, void *d_buf, size_t bytes, int root, void *stream, TsErr *err) {
    (void)stream;
    if (g->degree == 1) return TS_OK;
    MPI_Request req;
    MPI_Ibcast(d_buf, (int)bytes, MPI_BYTE, root, gcomm(g), &req);
    return complete(g, &req, "broadcast", err);
}

/* ------------------------------------------------------------ hand-offs */

/* Only the oldest unfinished operation is in flight (NCCL's per-communicator order). */
static void fifo_progress(TsNcclWorld *w) {
    while (fifo_head) {
        FakeOp *o = fifo_head;
        if (!o->posted) {
            if (o->send)
                MPI_Issend(o->buf, (int)o->bytes, MPI_BYTE, o->peer, FAKE_P2P_TAG, w->mpi, &o->req);
            else
                MPI_Irecv(o->buf, (int)o->bytes, MPI_BYTE, o->peer, FAKE_P2P_TAG, w->mpi, &o->req);
            o->posted = 1;
        }
        int done = 0;
        MPI_Test(&o->req, &done, MPI_STATUS_IGNORE);
        if (!done) return;
        o->done = 1;
        o->queued = 0;
        fifo_head = o->next;
        if (!fifo_head) fifo_tail = NULL;
    }
}

static TsStatus p2p_start(TsNcclWorld *w, void *buf, size_t bytes, int peer, int send, TsNcclOp *op,
                          TsErr *err) {
    memset(op, 0, sizeof *op);
    if (peer < 0 || peer >= w->size || peer == w->rank)
        return ts_err(err, TS_ERR_INTERNAL, "rank %d: fake hand-off with rank %d", w->rank, peer);
    FakeOp *o = ts_xcalloc(1, sizeof *o);
    o->buf = buf, o->bytes = bytes, o->peer = peer, o->send = send, o->queued = 1;
    if (fifo_tail) fifo_tail->next = o;
    else fifo_head = o;
    fifo_tail = o;
    op->ev = o;
    op->t0 = ts_wall_s();
    op->peer = peer, op->send = send, op->bytes = bytes;
    fifo_progress(w);
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
    fifo_progress(w);
    *done = ((FakeOp *)op->ev)->done;
    if (!*done && ts_wall_s() - op->t0 > w->timeout_s)
        return ts_err(err, TS_ERR_SYSTEM,
                      "rank %d: NCCL latent %s rank %d (%.1f MB) in group %s: not finished after %.0f s",
                      w->rank, op->send ? "send to" : "receive from", op->peer, (double)op->bytes / 1e6,
                      w->all.name, w->timeout_s);
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
    FakeOp *o = op->ev;
    if (o && !o->queued) free(o); /* a queued one stays owned by the FIFO (only after errors) */
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
