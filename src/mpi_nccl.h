/* mpi_nccl.h - NCCL for the cuda backend, bootstrapped through MPI: device
 * choice, one world communicator over the GPU workers, one communicator per
 * GPU group (Ulysses all-to-alls of a step), latent hand-offs between
 * groups, and every wait bounded.
 *
 * Order on every rank (the executor's rank 0 takes part in the first two
 * with needs_gpu = 0 and no CUDA call): ts_nccl_backend_check ->
 * ts_nccl_device_select -> (GPU ranks only) ts_nccl_world_init. The first
 * two are collective over the whole job and return the same one-line error
 * on every rank within seconds, before any other work.
 *
 * World: created once, collectively over an MPI communicator whose ranks
 * are the GPU workers (the executor's rank 0 has no GPU: pass the workers'
 * communicator; NCCL rank = rank in it). Rank 0 of it calls
 * ncclGetUniqueId, MPI_Bcast hands the id out, every rank calls
 * ncclCommInitRankConfig with blocking = 0 and polls it with the timeout.
 * Then a tiny all-pairs exchange connects every pair of the world, so that
 * a latent hand-off later never waits for NCCL to set up a connection (NCCL
 * connects all of a peer's p2p channels on the first send to it).
 *
 * Groups: the aligned groups of every degree 2, 4, ... up to the GPUs of a
 * node ({0,1}, {2,3} for degree 2; {0..3}, {4..7} for 4; ... within each
 * node) are created at world init by one ncclCommSplit of the world per
 * degree (color = the group, key = the world rank, so a group's NCCL ranks
 * follow its world ranks), because a split is collective over the whole
 * world and NCCL creation costs hundreds of ms: never on a step's critical
 * path. They are "warmed" (a tiny all-to-all, so NCCL connects its peers)
 * the first time ts_nccl_group_get hands them out, and cached by member
 * list. Any other member list (not aligned, or across nodes) is created on
 * first use from a fresh unique id sent over MPI point-to-point among its
 * members only (tag TS_NCCL_TAG on a private duplicate of the MPI
 * communicator), then cached the same way. Degree 1 needs no NCCL (device
 * copies).
 *
 * Streams: hand-offs (world communicator) run on the world's stream; group
 * warm-ups on a second stream; steps and broadcasts on the caller's. No
 * group operation is ever queued behind a hand-off, which may wait for a
 * busy peer.
 *
 * Bounded waits: every NCCL call on these non-blocking communicators is
 * followed by polling ncclCommGetAsyncError while it reports ncclInProgress,
 * and every completion wait polls cudaStreamQuery / cudaEventQuery +
 * ncclCommGetAsyncError, both within timeout_s (TS_CUDA_TIMEOUT_S = 30 s
 * unless set). On expiry or an asynchronous NCCL error the communicator is
 * aborted (ncclCommAbort; later calls on it fail at once) and the call
 * fails with one line naming the rank, the operation and the group, e.g.
 * "rank 3: NCCL all-to-all in group {2,3}: not finished after 30 s:
 * communicator aborted". A hand-off older than the timeout fails the same
 * way when it is tested.
 *
 * Progress: a wait may take as long as a peer's step. So that a worker
 * never stops serving the control plane meanwhile (the executor's latent
 * hand-offs are started from there), every completion wait and every slow
 * group set-up calls the world's progress hook between polls (never while
 * an operation on the world communicator itself is being enqueued, never
 * re-entrantly).
 *
 * Only compiled with the cuda backend (TS_HAVE_CUDA) except the two gates;
 * this header has no CUDA or NCCL include (communicators, streams and
 * events are void *), so the executor includes it like any MPI header. */
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
 * driver version is insufficient for CUDA runtime version)", or "--backend
 * cuda: cuda backend not built (...)" in a CUDA=0 build; rank 0 prints it
 * and all exit. */
TsStatus ts_nccl_backend_check(MPI_Comm comm, int needs_gpu, TsErr *err);

/* One GPU per worker, collective over comm (every build; CUDA=0: "cuda
 * backend not built"). A worker's node-local rank comes from the launcher
 * (OMPI_COMM_WORLD_LOCAL_RANK, else SLURM_LOCALID, when comm spans
 * MPI_COMM_WORLD and the values are distinct on the node; otherwise the
 * rank order of MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)); its device is
 * its index among the GPU-needing ranks of its node (rank 0 of the executor
 * takes no device, so node 0's workers still start at device 0). When each
 * worker sees its own devices (CUDA_VISIBLE_DEVICES differing between the
 * workers of a node, e.g. srun --gpus-per-task=1 or scripts/slurm/
 * run.sbatch's binding) it takes device 0 of what it sees. Fewer devices
 * than workers on a node, or two workers on one GPU (same UUID), fail on
 * every rank: "--backend cuda: rank 5: node gpu-a01 has 8 workers but 4
 * CUDA devices (one GPU per worker: ...)". On success *device is selected
 * (ts_cuda_device_init: context created) on every GPU rank, -1 elsewhere. */
TsStatus ts_nccl_device_select(MPI_Comm comm, int needs_gpu, int *device, TsErr *err);

/* "NCCL 2.28.9" (the library linked, ncclGetVersion), or "NCCL not built". */
void ts_nccl_version(char *buf, size_t len);

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

/* Called between polls of every wait (see "Progress" above): serve the
 * control plane. A failure ends the wait with the hook's error. */
typedef TsStatus (*TsNcclProgress)(void *ctx, TsErr *err);

struct TsNcclWorld {
    MPI_Comm mpi;       /* private duplicate of the communicator given at init */
    int rank, size;     /* NCCL rank = MPI rank in mpi */
    int local_rank, local_size; /* on this node, among these ranks */
    TsNcclGroup all;    /* the world communicator (hand-offs), as a group of size ranks */
    void *stream;       /* cudaStream_t of the hand-offs (world communicator only) */
    void *group_stream; /* cudaStream_t of group warm-ups and stream-less broadcasts */
    void *scratch;      /* device bytes for warm-ups */
    double timeout_s;
    TsNcclProgress progress;
    void *progress_ctx;
    int in_progress;    /* the hook is running: no nested calls */
    TsNcclGroup **groups; /* the cache (each group allocated once: pointers stay valid) */
    int64_t n_groups, cap_groups;
    int64_t n_lazy;     /* groups created on first use (not by the split) */
};

/* This process's rank on its node among the ranks of comm, and how many
 * ranks of comm share the node (MPI_Comm_split_type(MPI_COMM_TYPE_SHARED),
 * ranks ordered as in comm). Collective over comm. */
TsStatus ts_nccl_local_rank(MPI_Comm comm, int *local_rank, int *local_size, TsErr *err);

/* Collective over comm: NCCL world + the aligned groups of every degree +
 * the world's pairs connected (see above). The device must be selected
 * first (ts_nccl_device_select / ts_cuda_device_init). timeout_s <= 0:
 * TS_CUDA_TIMEOUT_S. On failure every rank returns an error (a rank whose
 * peer failed times out within timeout_s). */
TsStatus ts_nccl_world_init(TsNcclWorld *w, MPI_Comm comm, double timeout_s, TsErr *err);
/* Flush and destroy every communicator (ncclCommFinalize on all of them
 * first, then a bounded wait, then ncclCommDestroy; ncclCommAbort for those
 * that failed or did not quiesce in time); local, never blocks longer than
 * the timeout. */
void ts_nccl_world_free(TsNcclWorld *w);
void ts_nccl_set_progress(TsNcclWorld *w, TsNcclProgress fn, void *ctx);

/* The group of these world ranks (any order, this process among them):
 * cached, pre-created or created now. Called by exactly the members, in
 * the same order for the same groups (a lazily created group is a
 * collective of its members). *g stays valid until ts_nccl_world_free. */
TsStatus ts_nccl_group_get(TsNcclWorld *w, const int *ranks, int degree, TsNcclGroup **g,
                           TsErr *err);

/* A TsDitCudaComm over the group (ctx = g) for ts_dit_cuda_step; its wait
 * calls the progress hook. */
void ts_nccl_dit_comm(TsNcclGroup *g, TsDitCudaComm *comm);

/* Enqueue the Ulysses all-to-all on stream: grouped ncclSend/ncclRecv of
 * bytes_per_rank to/from every member (block p <-> member p). */
TsStatus ts_nccl_alltoall(TsNcclGroup *g, const void *d_send, void *d_recv, size_t bytes_per_rank,
                          void *stream, TsErr *err);
/* Wait (bounded, progress hook) for everything on stream, watching g's
 * communicator. */
TsStatus ts_nccl_group_wait(TsNcclGroup *g, void *stream, const char *what, TsErr *err);
/* Within a group: member `root` (an index into g->ranks) gives d_buf to
 * every member, on stream (NULL: the world's group stream); finished (or
 * failed within the timeout) when it returns. */
TsStatus ts_nccl_bcast(TsNcclGroup *g, void *d_buf, size_t bytes, int root, void *stream, TsErr *err);

/* ---- latent hand-offs between groups: point-to-point on the world
 * communicator (world ranks), non-blocking. NCCL runs the operations of one
 * communicator in the order a rank enqueues them, whatever the peer, so the
 * caller must enqueue them on every rank in one global order (the
 * executor's argument is in src/mpi_run.c). */
typedef struct TsNcclOp {
    void *ev;     /* cudaEvent_t recorded after the operation */
    double t0;    /* when it was enqueued (ts_wall_s) */
    int peer, send;
    size_t bytes;
} TsNcclOp;

TsStatus ts_nccl_send_start(TsNcclWorld *w, const void *d_buf, size_t bytes, int peer, TsNcclOp *op,
                            TsErr *err);
TsStatus ts_nccl_recv_start(TsNcclWorld *w, void *d_buf, size_t bytes, int peer, TsNcclOp *op,
                            TsErr *err);
/* *done = 1 once the data moved (the buffer may then be reused or freed);
 * never blocks. An operation pending longer than the timeout, or an
 * asynchronous error, aborts the world communicator and fails. */
TsStatus ts_nccl_op_test(TsNcclWorld *w, TsNcclOp *op, int *done, TsErr *err);
/* Bounded wait (progress hook between polls). */
TsStatus ts_nccl_op_wait(TsNcclWorld *w, TsNcclOp *op, TsErr *err);
void ts_nccl_op_free(TsNcclOp *op);
/* start + wait + free. */
TsStatus ts_nccl_send(TsNcclWorld *w, const void *d_buf, size_t bytes, int peer, TsErr *err);
TsStatus ts_nccl_recv(TsNcclWorld *w, void *d_buf, size_t bytes, int peer, TsErr *err);

#endif

#endif
