/* mpi_nccl.h - NCCL for the cuda backend, bootstrapped through MPI: one
 * world communicator over the GPU workers, one communicator per GPU group
 * (Ulysses all-to-alls of a step), latent hand-offs between groups, and
 * every wait bounded.
 *
 * World: created once, collectively over an MPI communicator whose ranks
 * are the GPU workers (the executor's rank 0 has no GPU: pass the workers'
 * communicator; NCCL rank = rank in it). Rank 0 of it calls
 * ncclGetUniqueId, MPI_Bcast hands the id out, every rank calls
 * ncclCommInitRankConfig with blocking = 0 and polls it with the timeout.
 *
 * Groups: the aligned groups of every degree 2, 4, ... up to the GPUs of a
 * node ({0,1}, {2,3} for degree 2; {0..3}, {4..7} for 4; ... within each
 * node) are created at world init by one ncclCommSplit per degree (color =
 * the group), because a split is collective over the whole world and
 * NCCL creation costs hundreds of ms: never on a step's critical path.
 * They are "warmed" (a tiny all-to-all, so NCCL connects its peers) the
 * first time ts_nccl_group_get hands them out, and cached by member list.
 * Any other member list (not aligned, or across nodes) is created on first
 * use from a fresh unique id sent over MPI point-to-point among its members
 * only (tag TS_NCCL_TAG on a private duplicate of the MPI communicator), then
 * cached the same way. Degree 1 needs no NCCL (device copies).
 *
 * Bounded waits: every NCCL call on these non-blocking communicators is
 * followed by polling ncclCommGetAsyncError while it reports ncclInProgress,
 * and every completion wait polls cudaStreamQuery + ncclCommGetAsyncError,
 * both within timeout_s (TS_CUDA_TIMEOUT_S = 30 s unless set). On expiry or
 * an asynchronous NCCL error the communicator is aborted (ncclCommAbort;
 * later calls on it fail at once) and the call fails with one line naming
 * the rank, the operation and the group, e.g. "rank 3: NCCL all-to-all in
 * group {2,3} not finished after 30 s: communicator aborted".
 *
 * Only compiled with the cuda backend (TS_HAVE_CUDA); this header has no
 * CUDA or NCCL include (communicators and streams are void *), so the
 * executor includes it like any MPI header. Order on every worker:
 * ts_cuda_backend_check (+ MPI_Allreduce) -> ts_nccl_local_rank ->
 * ts_cuda_device_init -> ts_nccl_world_init. */
#ifndef MPI_NCCL_H
#define MPI_NCCL_H

#include <mpi.h>

#include "ts_dit_cuda.h"
#include "ts_util.h"

/* `--backend cuda` gate for the executor and the profiler, in every build:
 * collective over comm, every rank returns the same status within seconds
 * (no CUDA context, no NCCL). A rank with needs_gpu = 0 (the executor's
 * scheduler, rank 0) only listens. On failure err is, on every rank, the
 * first failing rank's reason: "--backend cuda: rank 1: no CUDA device (CUDA
 * driver version is insufficient for CUDA runtime version)", or "cuda
 * backend not built" in a CUDA=0 build; rank 0 prints it and all exit. */
TsStatus ts_nccl_backend_check(MPI_Comm comm, int needs_gpu, TsErr *err);

#ifdef TS_HAVE_CUDA

#define TS_NCCL_TAG 7701        /* MPI tag of the unique ids of lazily created groups */
#define TS_NCCL_MAX_DEGREE 256

typedef struct TsNcclWorld TsNcclWorld;

typedef struct TsNcclGroup {
    TsNcclWorld *world;
    int degree;       /* members */
    int *ranks;       /* [degree] world (NCCL) ranks, ascending */
    int my_rank;      /* index of this process in ranks */
    void *comm;       /* ncclComm_t; NULL for degree 1 or once aborted */
    int aligned;      /* created by the split at world init */
    int warmed;       /* the first all-to-all has connected the peers */
    int aborted;
    char name[64];    /* "{2,3}" for messages */
} TsNcclGroup;

struct TsNcclWorld {
    MPI_Comm mpi;       /* private duplicate of the communicator given at init */
    int rank, size;     /* NCCL rank = MPI rank in mpi */
    int local_rank, local_size; /* on this node, among these ranks */
    TsNcclGroup all;    /* the world communicator (hand-offs), as a group of size ranks */
    void *stream;       /* cudaStream_t for hand-offs and warm-ups */
    void *scratch;      /* device bytes for warm-ups */
    double timeout_s;
    int aborted;
    TsNcclGroup **groups; /* the cache (each group allocated once: pointers stay valid) */
    int64_t n_groups, cap_groups;
};

/* This process's rank on its node among the ranks of comm, and how many
 * ranks of comm share the node. When comm spans MPI_COMM_WORLD the launcher's
 * OMPI_COMM_WORLD_LOCAL_RANK, else SLURM_LOCALID, is used (and checked
 * against MPI_Comm_split_type); otherwise (e.g. the workers without rank 0)
 * MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) on comm. Collective over comm. */
TsStatus ts_nccl_local_rank(MPI_Comm comm, int *local_rank, int *local_size, TsErr *err);

/* Collective over comm: NCCL world + the aligned groups of every degree
 * (see above). The device must be selected first (ts_cuda_device_init).
 * timeout_s <= 0: TS_CUDA_TIMEOUT_S. On failure every rank returns an
 * error (a rank whose peer failed times out within timeout_s). */
TsStatus ts_nccl_world_init(TsNcclWorld *w, MPI_Comm comm, double timeout_s, TsErr *err);
/* Destroy every communicator (abort those that failed); local. */
void ts_nccl_world_free(TsNcclWorld *w);

/* The group of these world ranks (any order, this process among them):
 * cached, pre-created or created now. Called by exactly the members, in
 * the same order for the same groups (a lazily created group is a
 * collective of its members). *g stays valid until ts_nccl_world_free. */
TsStatus ts_nccl_group_get(TsNcclWorld *w, const int *ranks, int degree, TsNcclGroup **g,
                           TsErr *err);

/* A TsDitCudaComm over the group (ctx = g) for ts_dit_cuda_step. */
void ts_nccl_dit_comm(TsNcclGroup *g, TsDitCudaComm *comm);

/* Enqueue the Ulysses all-to-all on stream: grouped ncclSend/ncclRecv of
 * bytes_per_rank to/from every member (block p <-> member p). */
TsStatus ts_nccl_alltoall(TsNcclGroup *g, const void *d_send, void *d_recv, size_t bytes_per_rank,
                          void *stream, TsErr *err);
/* Wait (bounded) for everything on stream, watching g's communicator. */
TsStatus ts_nccl_group_wait(TsNcclGroup *g, void *stream, const char *what, TsErr *err);

/* Latent hand-off between groups over the world communicator (world ranks),
 * on the world's stream, finished (or failed within the timeout) when they
 * return. A send blocks until the peer posts the matching receive. */
TsStatus ts_nccl_send(TsNcclWorld *w, const void *d_buf, size_t bytes, int peer, TsErr *err);
TsStatus ts_nccl_recv(TsNcclWorld *w, void *d_buf, size_t bytes, int peer, TsErr *err);
/* Within a group: member `root` (an index into g->ranks) gives d_buf to
 * every member (the new group of a moved request replicates its latent). */
TsStatus ts_nccl_bcast(TsNcclGroup *g, void *d_buf, size_t bytes, int root, TsErr *err);

#endif

#endif
