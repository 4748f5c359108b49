/* mpi_run.c - the `run` verb: the live executor under mpirun/srun.
 *
 * Rank 0 schedules, ranks 1..W are workers; GPU g is world rank g + 1.
 * Rank 0 replays the trace in real time (trace time = (wall - t0) x
 * speedup) through the same engine and policy code as the simulator
 * (ts_engine_*, ops->decide): it admits arrivals whose time has come,
 * applies completions reported by workers (ts_engine_complete with the
 * measured end), and calls decide after every batch of events or policy
 * wake-up, exactly like ts_sim_run; ts_engine_launch records the segments.
 * Between events it sleeps until the earliest of the next arrival, the next
 * wake-up and the next look for a launch's report (sparse before its
 * planned end, fine just after it, then every --poll-us), probing for
 * completions with MPI_Iprobe in between: never a busy loop.
 *
 * Control plane (message layouts in ts_run.h): per decision, rank 0 sends
 * each worker of each launch one LAUNCH message point-to-point (MPI_Send,
 * only to the workers involved: a collective would wake every worker,
 * including busy ones, at every decision), and before that a MOVE message
 * to the previous leader of every request whose GPU set changes. Workers
 * wait on an MPI_Irecv tested every poll interval with nanosleep in
 * between. The leader of a launch (its lowest rank) reports the completion
 * (measured start and end on rank 0's clock: each worker measures its
 * clock offset to rank 0 at start-up by ping-pong) with one MPI_Send.
 *
 * Latents: the leader of a request's last launch holds its latent (on the
 * cpu backend every member holds the replicated latent). When a launch
 * runs a request on a GPU set other than its previous segment's, the old
 * leader sends the latent (C x H/8 x W/8 float32 of --dit-preset) to the
 * new leader (MPI_Isend/Irecv), which broadcasts it to the new group
 * (MPI_Ibcast). Every wait (latents, broadcasts, sleeps) keeps serving MOVE
 * messages, so two groups swapping requests cannot deadlock. The new leader
 * reports the wait (from receiving the LAUNCH to holding the latent) with
 * the completion; rank 0 prints count, bytes, mean and max. The cuda
 * backend keeps latents on the GPUs and hands them off with NCCL instead
 * (ncclSend/ncclRecv on the world communicator, then ncclBroadcast in the
 * group); its ordering argument is at the cuda backend below. For it, the
 * messages of one launch (its MOVEs, then its LAUNCHes) are always sent as
 * one block by ts_master_apply: keep it so.
 *
 * Group communicators: created at start-up for every aligned block of k
 * GPUs for each profile degree k > 1 (MPI_Comm_create_group: only members
 * take part), and lazily, cached by GPU set, for any other set (cuda: NCCL
 * communicators, see mpi_nccl.h).
 *
 * Event batches: a decision waits (at most TS_FAST_WINDOW_S of wall time)
 * for launches whose planned end has passed but which have not reported
 * yet: in simulation they end at the same instant as the event at hand and
 * the policy sees them together (round-based policies depend on it).
 *
 * Backends (ts_backends[], the first is the safe default): emu sleeps each
 * step's profiled time / speedup (absolute deadlines, so sleeps do not
 * drift) at the leader. Emulation compresses GPU time, not the control
 * plane: the wall time from the decision to the latents being in place
 * counts 1:1 in trace time (the steps start at decision + that / speedup),
 * and the launch ends at its last emulated deadline (a late wake-up of the
 * sleeping process delays the report, not the recorded end). At --speedup
 * 1 both are the plain measurement; cpu runs ts_dit_step over the group's MPI
 * communicator (mpi_dit.c), the requests of a batched launch one after the
 * other; cuda runs ts_dit_cuda_step over the group's NCCL communicator, one
 * GPU per worker (rank 0 needs none). Before anything else, with cuda,
 * every rank passes two collective gates (a GPU on every worker, one device
 * each: mpi_nccl.h), so that a job without GPUs fails within seconds with
 * one line and no results file.
 *
 * Segments of launches that never reported keep their planned end.
 *
 * Results file: ts_results writes F.partial; after each flush (every
 * TS_FLUSH_S) it is copied to F through a temporary and a rename, so F is
 * always a complete HDF5 file even if the job is SIGKILLed mid-write (as
 * mpirun does when it is itself signalled); F.partial is removed at the end.
 *
 * Faults: a launch not reported within 2 x its planned length + 2 s (wall)
 * ends the run: rank 0 writes the results file with complete = 0, prints
 * one line naming the leader rank, and calls MPI_Abort. SIGINT/SIGTERM on
 * rank 0 end the run the same way. The file is also flushed every second,
 * so a job killed from outside (a worker that exits makes Open MPI kill
 * everyone) leaves a readable file with complete = 0. */
#define _DEFAULT_SOURCE /* getopt_long */
#include <mpi.h>

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "mpi_dit.h"
#include "mpi_nccl.h"
#include "ts_cmd.h"
#include "ts_dit.h"
#include "ts_engine.h"
#include "ts_event.h"
#include "ts_results.h"
#include "ts_run.h"
#include "ts_scenario.h"
#ifdef TS_HAVE_CUDA
#include "ts_kernels_cuda.h"
#endif

enum { TAG_CTRL = 1, TAG_DONE = 2, TAG_SYNC = 3, TAG_STATS = 4, TAG_LATENT = 1000 };
#define TS_LATENT_TAG(index) (TAG_LATENT + (int)((index) % 30000))
#define TS_GROUP_TAG 77
#define TS_SYNC_ROUNDS 8
#define TS_FLUSH_S 1.0
#define TS_IDLE_AFTER_S 0.05 /* idle workers slow their polling after this */
#define TS_IDLE_POLL_S 0.001
#define TS_FAST_POLL_S 10e-6 /* rank 0 right after a launch's expected end */
#define TS_FAST_WINDOW_S 0.002
#define TS_MASTER_NAP_S 0.02 /* rank 0's longest sleep: signals and flushes are seen within it */
/* Before a launch's planned end, rank 0 looks for an early report from
 * TS_EARLY_FROM of its planned wall time on, every TS_EARLY_POLL_FRAC of it
 * (at least TS_EARLY_POLL_MIN_S): at most ~50 probes a launch. */
#define TS_EARLY_FROM 0.5
#define TS_EARLY_POLL_FRAC 0.01
#define TS_EARLY_POLL_MIN_S 0.0005

/* ------------------------------------------------------------ options */

typedef enum { TS_BE_EMU = 0, TS_BE_CPU, TS_BE_CUDA } TsBackendId;

typedef struct TsRunOpts {
    const char *trace, *profile, *policy, *out, *dit_preset, *pid_file;
    const char *exec_profile; /* emu: the step times slept (NULL: --profile's) */
    int backend;
    double slo_scale, speedup;
    int gpn;
    int gpus; /* --gpus: 0, or checked against the workers */
    uint64_t seed; /* weights, and (with the request id) noise and conditioning */
    int poll_us;
    int quiet;
    TsPolicyConfig pcfg;
    TsRunFault fault;
} TsRunOpts;

/* The seed of request `id`'s noise and conditioning: the id itself at the
 * default --seed 1 (as `profile` and the tests draw them), another stream
 * of ids for every other seed. */
static uint64_t ts_run_req_seed(const TsRunOpts *o, int64_t id) {
    return (uint64_t)id + (o->seed - 1) * 0x9E3779B97F4A7C15ull;
}

static void ts_sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Set by rank 0's SIGINT/SIGTERM handler (ts_run_on_signal). */
static volatile sig_atomic_t ts_run_signal = 0;

/* This process's CPU time, all threads (seconds). */
static double ts_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Sleep until the monotonic clock reads `wall` (ts_wall_s's clock), or
 * until SIGINT/SIGTERM reaches rank 0. */
static void ts_sleep_until(double wall) {
    if (wall <= ts_wall_s()) return;
    struct timespec ts = {(time_t)wall, (long)((wall - floor(wall)) * 1e9)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !ts_run_signal) {
    }
}

/* ------------------------------------------------------------ workers */

typedef struct TsGroup {
    int32_t degree;
    int32_t *ranks; /* sorted world ranks */
    MPI_Comm comm;
} TsGroup;

typedef struct TsSend {
    MPI_Request req;
    float *buf;
} TsSend;

typedef struct TsWorker TsWorker;

/* One entry per backend: the table's first entry is the safe one. The
 * optional hooks replace the MPI latent handling of emu and cpu (cuda). */
typedef struct TsBackend {
    const char *name;
    /* NULL: not available in this build. */
    TsStatus (*init)(TsWorker *w, TsErr *err);
    /* Run the steps of launch m (after the latents are in place). */
    TsStatus (*steps)(TsWorker *w, const TsRunMsg *m, MPI_Comm comm, int grank, TsErr *err);
    /* Optional: the whole launch (latents in, steps, latents out, report). */
    TsStatus (*launch)(TsWorker *w, const TsRunMsg *m, TsErr *err);
    /* Optional: serve a MOVE (default: MPI_Isend of the host latent). */
    TsStatus (*serve_move)(TsWorker *w, const TsRunMsg *m, TsErr *err);
    /* Optional: a LAUNCH has just arrived (before it is queued). */
    TsStatus (*arrive)(TsWorker *w, const TsRunMsg *m, TsErr *err);
    /* Optional: every poll (default: test the MPI latent sends). */
    TsStatus (*poll)(TsWorker *w, TsErr *err);
    /* Optional: after STOP, before the worker exits (default: wait for the
     * MPI latent sends). */
    TsStatus (*drain)(TsWorker *w, TsErr *err);
    void (*release)(TsWorker *w);
} TsBackend;

#ifdef TS_HAVE_CUDA
typedef struct TsCudaWorker TsCudaWorker;
#endif

struct TsWorker {
    int rank, size;
    const TsRunOpts *o;
    const TsBackend *be;
    TsDitConfig cfg; /* latent shape (and the cpu model) */
    TsDit dit;
    int have_dit;
    double offset; /* rank 0's clock - ours */
    double t_start;
    int64_t n_req;
    float **lat; /* [n_req] latents this rank holds */
    int64_t ctrl[TS_RUN_MAX_WORDS];
    MPI_Request ctrl_req;
    int ctrl_posted;
    TsRunMsg *queue; /* launches/stop received while busy */
    int64_t q_head, q_n, q_cap;
    TsSend *sends;
    int64_t n_sends, cap_sends;
    TsGroup *groups;
    int64_t n_groups, cap_groups;
    int64_t n_pre, n_lazy;
    double checksum; /* cpu: of the latents finished by the current launch */
    double idle_since;
    double emu_end; /* emu leader: the emulated end of the current launch's steps */
    double emu_start; /* emu: the emulated start of the current launch's steps */
    MPI_Comm workers; /* cuda: MPI_COMM_WORLD without rank 0 (the NCCL world) */
#ifdef TS_HAVE_CUDA
    TsCudaWorker *cu;
#endif
};

static void ts_worker_fault(TsWorker *w) {
    const TsRunFault *f = &w->o->fault;
    if (f->rank != w->rank || w->t_start <= 0 || ts_wall_s() - w->t_start < f->after_s) return;
    if (f->exit) _exit(3); /* a crash: no MPI_Finalize */
    for (;;) pause();      /* a hang: until the job is killed */
}

static int64_t ts_latent_floats(const TsWorker *w, int width, int height) {
    return ts_dit_latent_floats(&w->cfg, width, height);
}

static TsStatus ts_worker_serve_move(TsWorker *w, const TsRunMsg *m, TsErr *err) {
    if (m->index < 0 || m->index >= w->n_req || !w->lat[m->index])
        return ts_err(err, TS_ERR_INTERNAL, "MOVE of request index %lld: this rank does not hold it",
                      (long long)m->index);
    /* The size is implied by the request's resolution; the receiver knows
     * it, so only the buffer travels. The sender keeps the floats count in
     * the allocation's first slot. */
    float *buf = w->lat[m->index];
    int64_t floats;
    memcpy(&floats, buf - 2, sizeof floats);
    TS_GROW(w->sends, w->cap_sends, w->n_sends + 1);
    TsSend *s = &w->sends[w->n_sends++];
    s->buf = buf;
    w->lat[m->index] = NULL;
    MPI_Isend(buf, (int)(floats * 4), MPI_BYTE, m->dest, TS_LATENT_TAG(m->index), MPI_COMM_WORLD,
              &s->req);
    return TS_OK;
}

/* Latents carry their length in 8 bytes in front of the data. */
static float *ts_latent_alloc(int64_t floats) {
    float *p = ts_xmalloc((size_t)(floats + 2) * sizeof(float));
    memcpy(p, &floats, sizeof floats);
    return p + 2;
}

static void ts_latent_free(float *p) {
    if (p) free(p - 2);
}

/* Take what rank 0 sent: MOVEs are served at once, LAUNCH/STOP queued. */
static TsStatus ts_worker_poll(TsWorker *w, TsErr *err) {
    ts_worker_fault(w);
    if (w->be->poll) {
        TsStatus rc = w->be->poll(w, err);
        if (rc) return rc;
    }
    for (int64_t i = 0; i < w->n_sends;) {
        int done = 0;
        MPI_Test(&w->sends[i].req, &done, MPI_STATUS_IGNORE);
        if (done) {
            ts_latent_free(w->sends[i].buf);
            w->sends[i] = w->sends[--w->n_sends];
        } else {
            i++;
        }
    }
    while (w->ctrl_posted) {
        int done = 0;
        MPI_Status stat;
        MPI_Test(&w->ctrl_req, &done, &stat);
        if (!done) break;
        w->ctrl_posted = 0;
        int n = 0;
        MPI_Get_count(&stat, MPI_INT64_T, &n);
        TsRunMsg m;
        TsStatus rc = ts_run_msg_decode(w->ctrl, n, &m, err);
        if (rc) return rc;
        if (m.kind == TS_RUN_MSG_MOVE) {
            rc = w->be->serve_move ? w->be->serve_move(w, &m, err) : ts_worker_serve_move(w, &m, err);
            if (rc) return rc;
        } else {
            if (m.kind == TS_RUN_MSG_LAUNCH && w->be->arrive && (rc = w->be->arrive(w, &m, err)))
                return rc;
            if (w->q_n == w->q_cap) { /* ring buffer: grow and unwrap */
                int64_t cap = w->q_cap ? 2 * w->q_cap : 4;
                TsRunMsg *q = ts_xmalloc((size_t)cap * sizeof *q);
                for (int64_t k = 0; k < w->q_n; k++) q[k] = w->queue[(w->q_head + k) % w->q_cap];
                free(w->queue);
                w->queue = q;
                w->q_cap = cap;
                w->q_head = 0;
            }
            w->queue[(w->q_head + w->q_n++) % w->q_cap] = m;
        }
        if (m.kind != TS_RUN_MSG_STOP) {
            MPI_Irecv(w->ctrl, TS_RUN_MAX_WORDS, MPI_INT64_T, 0, TAG_CTRL, MPI_COMM_WORLD,
                      &w->ctrl_req);
            w->ctrl_posted = 1;
        }
    }
    return TS_OK;
}

/* Wait for r to complete, serving MOVEs meanwhile. */
static TsStatus ts_worker_wait(TsWorker *w, MPI_Request *r, TsErr *err) {
    double sleep_s = w->o->poll_us * 1e-6;
    for (;;) {
        int done = 0;
        MPI_Test(r, &done, MPI_STATUS_IGNORE);
        if (done) return TS_OK;
        TsStatus rc = ts_worker_poll(w, err);
        if (rc) return rc;
        ts_sleep_s(sleep_s);
    }
}

/* Sleep until `wall`, serving MOVEs every poll interval. */
static TsStatus ts_worker_sleep_until(TsWorker *w, double wall, TsErr *err) {
    double poll = w->o->poll_us * 1e-6;
    for (;;) {
        double now = ts_wall_s();
        if (now >= wall) return TS_OK;
        ts_sleep_until(now + poll < wall ? now + poll : wall);
        TsStatus rc = ts_worker_poll(w, err);
        if (rc) return rc;
    }
}

static int ts_cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static MPI_Comm ts_group_create(TsWorker *w, const int32_t *ranks, int32_t degree) {
    MPI_Group world, grp;
    MPI_Comm comm;
    int *r = ts_xmalloc((size_t)degree * sizeof *r);
    for (int32_t a = 0; a < degree; a++) r[a] = ranks[a];
    MPI_Comm_group(MPI_COMM_WORLD, &world);
    MPI_Group_incl(world, degree, r, &grp);
    MPI_Comm_create_group(MPI_COMM_WORLD, grp, TS_GROUP_TAG, &comm);
    MPI_Group_free(&grp);
    MPI_Group_free(&world);
    free(r);
    TS_GROW(w->groups, w->cap_groups, w->n_groups + 1);
    TsGroup *g = &w->groups[w->n_groups++];
    g->degree = degree;
    g->ranks = ts_xmalloc((size_t)degree * sizeof *g->ranks);
    memcpy(g->ranks, ranks, (size_t)degree * sizeof *ranks);
    g->comm = comm;
    return comm;
}

/* The communicator of a sorted rank set: cached, else created now (every
 * member gets the same LAUNCH, so all of them call this). */
static MPI_Comm ts_group_get(TsWorker *w, const int32_t *ranks, int32_t degree) {
    for (int64_t i = 0; i < w->n_groups; i++) {
        const TsGroup *g = &w->groups[i];
        if (g->degree == degree && !memcmp(g->ranks, ranks, (size_t)degree * sizeof *ranks))
            return g->comm;
    }
    w->n_lazy++;
    return ts_group_create(w, ranks, degree);
}

static void ts_groups_precreate(TsWorker *w, const int32_t *degrees, int n_deg, int n_gpus) {
    int32_t ranks[TS_RUN_MAX_DEGREE];
    int g = w->rank - 1;
    for (int d = 0; d < n_deg; d++) {
        int k = degrees[d];
        if (k < 2 || k > n_gpus || k > TS_RUN_MAX_DEGREE) continue;
        int b = g / k;
        if ((b + 1) * k > n_gpus) continue; /* a partial block at the end */
        for (int a = 0; a < k; a++) ranks[a] = b * k + a + 1;
        ts_group_create(w, ranks, k);
        w->n_pre++;
    }
}

/* The leader's completion report (times on this rank's clock). */
static void ts_worker_report(TsWorker *w, const TsRunMsg *m, double start, double end, double move_s,
                             double move_bytes) {
    double d[TS_RUN_DONE_WORDS] = {(double)m->seq, (double)m->slot, start + w->offset,
                                   end + w->offset, move_s, move_bytes, w->checksum};
    MPI_Send(d, TS_RUN_DONE_WORDS, MPI_DOUBLE, 0, TAG_DONE, MPI_COMM_WORLD);
}

static TsStatus ts_worker_launch(TsWorker *w, const TsRunMsg *m, TsErr *err) {
    if (w->be->launch) return w->be->launch(w, m, err);
    double t_recv = ts_wall_s();
    int grank = -1;
    for (int32_t a = 0; a < m->degree; a++)
        if (m->ranks[a] == w->rank) grank = a;
    if (grank < 0)
        return ts_err(err, TS_ERR_INTERNAL, "LAUNCH %lld does not include this rank", (long long)m->seq);
    int leader = grank == 0, cpu = !strcmp(w->be->name, "cpu");
    MPI_Comm comm = m->degree == 1 ? MPI_COMM_SELF : ts_group_get(w, m->ranks, m->degree);
    int64_t floats = ts_latent_floats(w, m->width, m->height);
    int moved = 0;
    double move_bytes = 0;
    TsStatus rc = TS_OK;
    for (int32_t j = 0; j < m->n_req && !rc; j++) {
        const TsRunReq *r = &m->req[j];
        if (r->index < 0 || r->index >= w->n_req)
            return ts_err(err, TS_ERR_INTERNAL, "LAUNCH %lld: request index %lld out of range",
                          (long long)m->seq, (long long)r->index);
        float **lat = &w->lat[r->index];
        if (r->src == TS_RUN_SRC_FRESH) {
            if (cpu || leader) {
                ts_latent_free(*lat);
                *lat = ts_latent_alloc(floats);
                if (cpu)
                    ts_dit_noise_from_seed(*lat, floats, ts_run_req_seed(w->o, r->id));
                else
                    memset(*lat, 0, (size_t)floats * sizeof **lat);
            }
            continue;
        }
        if (r->src == TS_RUN_SRC_HELD) {
            if ((cpu || leader) && !*lat)
                return ts_err(err, TS_ERR_INTERNAL, "LAUNCH %lld: request %lld should be held here",
                              (long long)m->seq, (long long)r->id);
            continue;
        }
        /* The GPU set changed: the old leader's copy comes to us. */
        moved = 1;
        if (leader && r->src != w->rank) {
            ts_latent_free(*lat);
            *lat = ts_latent_alloc(floats);
            MPI_Request q;
            MPI_Irecv(*lat, (int)(floats * 4), MPI_BYTE, r->src, TS_LATENT_TAG(r->index),
                      MPI_COMM_WORLD, &q);
            if ((rc = ts_worker_wait(w, &q, err))) return rc;
            move_bytes += (double)floats * 4;
        }
        if (m->degree > 1) {
            if (!leader) {
                ts_latent_free(*lat);
                *lat = ts_latent_alloc(floats);
            }
            MPI_Request q;
            MPI_Ibcast(*lat, (int)(floats * 4), MPI_BYTE, 0, comm, &q);
            if ((rc = ts_worker_wait(w, &q, err))) return rc;
            if (!cpu && !leader) { /* emu: only the leader keeps it */
                ts_latent_free(*lat);
                *lat = NULL;
            }
        }
    }
    double t_start = ts_wall_s();
    w->checksum = 0;
    w->emu_start = t_start;
    w->emu_end = 0;
    if ((rc = w->be->steps(w, m, comm, grank, err))) return rc;
    double t_end = w->emu_end > 0 ? w->emu_end : ts_wall_s();
    if (leader && m->overhead_s > 0) {
        t_end += m->overhead_s / w->o->speedup;
        if ((rc = ts_worker_sleep_until(w, t_end, err))) return rc;
    }
    if (w->emu_end <= 0) t_end = ts_wall_s();
    for (int32_t j = 0; j < m->n_req; j++) { /* finished: nothing will need it */
        const TsRunReq *r = &m->req[j];
        if (r->step_begin + m->n_steps == r->steps) {
            float **lat = &w->lat[r->index];
            if (*lat && cpu && leader)
                for (int64_t e = 0; e < floats; e++) w->checksum += (*lat)[e];
            ts_latent_free(*lat);
            *lat = NULL;
        }
    }
    if (leader) ts_worker_report(w, m, w->emu_start, t_end, moved ? t_start - t_recv : 0.0, move_bytes);
    return TS_OK;
}

/* ---- backends ---- */

static TsStatus ts_emu_init(TsWorker *w, TsErr *err) {
    (void)w;
    (void)err;
    return TS_OK;
}

/* Emulation compresses GPU time by the speedup, not the control plane:
 * the wall time from issue (rank 0) to latents in place counts 1:1 in
 * trace time, so the emulated steps start at issue + that time / speedup
 * (at --speedup 1: when the latents are in place). */
static double ts_emu_start(const TsWorker *w, const TsRunMsg *m) {
    double issue = m->issue_wall - w->offset, now = ts_wall_s();
    if (issue > now) issue = now; /* offset estimate error */
    return issue + (now - issue) / w->o->speedup;
}

static TsStatus ts_emu_steps(TsWorker *w, const TsRunMsg *m, MPI_Comm comm, int grank, TsErr *err) {
    (void)comm;
    if (grank != 0) return TS_OK; /* the leader keeps the time for its group */
    double t0 = ts_emu_start(w, m), step = m->step_s / w->o->speedup;
    w->emu_start = t0;
    for (int32_t s = 1; s <= m->n_steps; s++) {
        TsStatus rc = ts_worker_sleep_until(w, t0 + s * step, err);
        if (rc) return rc;
    }
    /* The emulated GPU is done at the deadline; waking up late is the
     * emulator's, so the report says the deadline (the late wake-up still
     * delays the report, and so the next decision). */
    w->emu_end = t0 + m->n_steps * step;
    return TS_OK;
}

static TsStatus ts_cpu_init(TsWorker *w, TsErr *err) {
    TsStatus rc = ts_dit_init(&w->dit, &w->cfg, err);
    if (rc) return rc;
    w->have_dit = 1;
    return ts_dit_weights_from_seed(&w->dit, w->o->seed, err);
}

static TsStatus ts_cpu_steps(TsWorker *w, const TsRunMsg *m, MPI_Comm comm, int grank, TsErr *err) {
    TsDitWork work;
    TsMpiDitCtx ctx;
    TsDitComm dc;
    const TsDitConfig *c = &w->cfg;
    TsStatus rc = ts_dit_work_init(&work, &w->dit, m->width, m->height, m->degree, grank, err);
    if (rc) return rc;
    ts_mpi_dit_comm(comm, &ctx, &dc);
    size_t txt_n = (size_t)c->txt_tokens * (size_t)c->ctx_dim;
    float *txt = ts_xmalloc((txt_n + (size_t)c->pooled_dim) * sizeof *txt);
    for (int32_t s = 0; s < m->n_steps && !rc; s++) {
        for (int32_t j = 0; j < m->n_req && !rc; j++) { /* a batch: one after the other */
            const TsRunReq *r = &m->req[j];
            TsDitCond cond = {txt, txt + txt_n, 3.5f};
            ts_dit_cond_from_seed(c, ts_run_req_seed(w->o, r->id), txt, txt + txt_n);
            int i = r->step_begin + s;
            rc = ts_dit_step(&w->dit, &work, &dc, &cond, ts_dit_schedule_t(i, r->steps),
                             ts_dit_schedule_t(i + 1, r->steps), w->lat[r->index], err);
        }
        if (!rc) rc = ts_worker_poll(w, err); /* serve MOVEs between steps */
    }
    free(txt);
    ts_dit_work_free(&work);
    return rc;
}

/* ---- cuda ----
 *
 * Device choice, the NCCL world and its groups: mpi_nccl.h. Weights are
 * generated on the device from the seed (ts_dit_cuda_init_seeded: the same
 * values as the cpu backend's, in bf16), conditioning likewise per request
 * id, the starting noise on the host (ts_dit_noise_from_seed, as cpu) and
 * uploaded once.
 *
 * Latents live on the device. Between launches only the leader of a
 * request's last launch holds its latent (cu->dlat); a launch of degree k
 * > 1 broadcasts it from the leader to the members (ncclBroadcast over the
 * group, on the model's stream), who drop their copies when the launch
 * ends: a 1024 px latent is 1 MB, tens of microseconds over NVLink, and no
 * stale copy is ever left on a GPU that will not see the request again.
 *
 * A MOVE (the request runs next on another GPU set, whose leader is
 * `dest`) is served at once, even in the middle of this rank's own launch:
 * ncclSend of the latent to dest on the world communicator and stream, an
 * event after it, and the buffer kept until the poll loop sees the event
 * complete (like MPI_Test), then freed (stream-ordered). The new leader
 * posts the matching ncclRecv as soon as the LAUNCH arrives (in the poll
 * loop too, not when it gets to the launch), into a fresh buffer; when it
 * processes the launch it waits for that receive (serving the control
 * plane meanwhile), then broadcasts to its group.
 *
 * Why two groups swapping requests cannot deadlock. NCCL executes the
 * operations of one communicator on a rank in the order they were
 * enqueued, whatever the peer (a send blocks the rank's later operations on
 * the world communicator until its peer receives), so the hand-offs of all
 * ranks must be enqueued in one global order. They are: (1) rank 0 sends,
 * for each launch in turn, the MOVEs of its moved requests (in request
 * order) and then its LAUNCH messages, so the messages of two launches
 * never interleave; (2) messages from rank 0 to one worker arrive in the
 * order sent (MPI non-overtaking), and a worker enqueues the send of a MOVE
 * and the receives of a LAUNCH when the message arrives, in arrival order.
 * Number every hand-off by its launch's position in rank 0's sequence (and
 * its request's position in the launch). Take the unfinished hand-off m
 * with the smallest number. At its receiver, every world operation
 * enqueued before m's receive was triggered by an earlier message: a
 * receive of an earlier launch (finished, m is the smallest), or a send
 * whose MOVE came before m's LAUNCH, i.e. a move of an earlier launch (the
 * blocks do not interleave; a move of m's own launch cannot leave the new
 * leader, rank 0 sends no MOVE to it) - finished too. At its sender,
 * everything before m's send came from messages sent before m's MOVE:
 * hand-offs of earlier launches, or of the same launch and earlier
 * requests - finished. So m's send and receive are both first in line and
 * m completes; by induction every hand-off does. A worker's host never
 * stops enqueueing (every wait serves the control plane through the NCCL
 * world's progress hook), and the steps and broadcasts of a group, on the
 * model's stream, never wait for a hand-off (the leader's host waits for
 * its receive before it enqueues the broadcast). What the argument assumes
 * of the device: kernels of different communicators on different streams
 * progress concurrently (NCCL's kernels take a few SMs; nothing in the
 * loop synchronises the device: stream-ordered allocations, no default
 * stream, no cudaMemcpy/cudaFree). NCCL_LAUNCH_ORDER_IMPLICIT=1, which
 * orders kernels of different communicators by host order, would break
 * it: the README says so. */
#ifdef TS_HAVE_CUDA

#define TS_CU_CONDS (2 * TS_MAX_BATCH) /* conditioning kept on the device, LRU evicted */

typedef struct TsCuXfer {
    TsNcclOp op;
    float *buf;
    int64_t index;
} TsCuXfer;

typedef struct TsCuCond {
    int64_t id;
    uint64_t used; /* 0: empty */
    TsDitCudaCond c;
} TsCuCond;

struct TsCudaWorker {
    TsNcclWorld nw;
    int have_nw;
    TsDitCuda dm;
    int have_dm;
    TsDitCudaWorkCache cache;
    float **dlat;        /* [n_req] device latents held here */
    int64_t *dlat_n;     /* [n_req] their floats */
    TsCuXfer *sends, *recvs;
    int64_t n_sends, cap_sends, n_recvs, cap_recvs;
    TsCuCond conds[TS_CU_CONDS];
    uint64_t tick;
};

static TsStatus ts_cuda_progress(void *ctx, TsErr *err) { return ts_worker_poll(ctx, err); }

static TsStatus ts_cuda_cond(TsCudaWorker *cu, int64_t id, uint64_t seed, const TsDitCudaCond **c,
                             TsErr *err);

static TsStatus ts_cuda_init_model(TsWorker *w, TsErr *err) {
    TsCudaWorker *cu = ts_xcalloc(1, sizeof *cu);
    w->cu = cu;
    cu->dlat = ts_xcalloc((size_t)(w->n_req ? w->n_req : 1), sizeof *cu->dlat);
    cu->dlat_n = ts_xcalloc((size_t)(w->n_req ? w->n_req : 1), sizeof *cu->dlat_n);
    ts_dit_cuda_cache_init(&cu->cache, TS_DIT_CUDA_CACHE_MAX);
    /* collective over the workers: every worker gets here (rank 0 waits in
     * the MPI_Allreduce of ts_cmd_run) */
    TsStatus rc = ts_nccl_world_init(&cu->nw, w->workers, TS_CUDA_TIMEOUT_S, err);
    if (rc) return rc;
    cu->have_nw = 1;
    if ((rc = ts_dit_init(&w->dit, &w->cfg, err))) return rc; /* the table only: no host weights */
    w->have_dit = 1;
    if ((rc = ts_dit_cuda_init_seeded(&cu->dm, &w->dit, w->o->seed, err))) return rc; /* as cpu */
    cu->have_dm = 1;
    TsCudaDeviceInfo info;
    if (ts_cuda_device_info(&info) != 0)
        return ts_err(err, TS_ERR_SYSTEM, "%s", ts_cuda_last_error());
    /* workspaces may take half of what the weights left: the rest is for
     * latents, conditioning, NCCL's buffers and cuBLAS */
    ts_dit_cuda_cache_set_budget(&cu->cache, (size_t)(0.5 * info.free_bytes));
    /* one step at 256 px (the smallest size if the model cannot take it):
     * CUDA loads kernels and cuBLAS picks algorithms on first use; that
     * belongs here, not in the first launch */
    int px = ts_dit_check_size(&w->cfg, 256, 256, NULL) == TS_OK ? 256 : w->cfg.vae_factor * w->cfg.patch;
    const TsDitCudaCond *cond = NULL;
    TsDitCudaWork *work = NULL;
    TsNcclGroup *solo = NULL;
    TsDitCudaComm comm;
    float *lat = NULL;
    int me = w->rank - 1;
    int64_t n = ts_latent_floats(w, px, px);
    if ((rc = ts_nccl_group_get(&cu->nw, &me, 1, &solo, err))) return rc;
    ts_nccl_dit_comm(solo, &comm);
    if (ts_cuda_malloc_async((void **)&lat, sizeof(float) * (size_t)n, cu->dm.stream) ||
        ts_cuda_memset(lat, 0, sizeof(float) * (size_t)n, cu->dm.stream))
        return ts_err(err, TS_ERR_SYSTEM, "warm-up: %s", ts_cuda_last_error());
    if (!(rc = ts_cuda_cond(cu, -1, (uint64_t)-1, &cond, err)) &&
        !(rc = ts_dit_cuda_cache_get(&cu->cache, &cu->dm, px, px, 1, 0, &work, err)))
        rc = ts_dit_cuda_step(&cu->dm, work, &comm, cond, 1.0f, 0.5f, lat, err);
    (void)ts_cuda_free_async(lat, cu->dm.stream);
    if (rc) ts_err_prefix(err, "warm-up step (%dx%d px)", px, px);
    return rc;
}

static TsStatus ts_cuda_init(TsWorker *w, TsErr *err) {
    TsStatus rc = ts_cuda_init_model(w, err);
    if (rc || !w->cu->have_nw) return rc;
    /* from now on every NCCL wait serves the control plane (not during
     * set-up: nothing is posted yet, and rank 0 waits for all of us) */
    ts_nccl_set_progress(&w->cu->nw, ts_cuda_progress, w);
    w->n_pre = 0;
    for (int64_t i = 0; i < w->cu->nw.n_groups; i++) w->n_pre += w->cu->nw.groups[i]->aligned;
    return TS_OK;
}

/* MOVE: hand the latent to the new leader without waiting. */
static TsStatus ts_cuda_serve_move(TsWorker *w, const TsRunMsg *m, TsErr *err) {
    TsCudaWorker *cu = w->cu;
    if (m->index < 0 || m->index >= w->n_req || !cu->dlat[m->index])
        return ts_err(err, TS_ERR_INTERNAL, "MOVE of request index %lld: this rank does not hold it",
                      (long long)m->index);
    if (m->dest < 1 || m->dest >= w->size || m->dest == w->rank)
        return ts_err(err, TS_ERR_INTERNAL, "MOVE of request index %lld to rank %d", (long long)m->index,
                      m->dest);
    TsCuXfer x = {.buf = cu->dlat[m->index], .index = m->index};
    /* the latent is final: its last launch here ended with a bounded wait
     * on the model's stream before the completion report */
    TsStatus rc = ts_nccl_send_start(&cu->nw, x.buf, sizeof(float) * (size_t)cu->dlat_n[m->index],
                                     m->dest - 1, &x.op, err);
    if (rc) return rc;
    cu->dlat[m->index] = NULL;
    TS_GROW(cu->sends, cu->cap_sends, cu->n_sends + 1);
    cu->sends[cu->n_sends++] = x;
    return TS_OK;
}

/* LAUNCH arrived: the new leader posts the receives of its moved latents now. */
static TsStatus ts_cuda_arrive(TsWorker *w, const TsRunMsg *m, TsErr *err) {
    TsCudaWorker *cu = w->cu;
    if (m->degree < 1 || m->ranks[0] != w->rank) return TS_OK;
    int64_t floats = ts_latent_floats(w, m->width, m->height);
    for (int32_t j = 0; j < m->n_req; j++) {
        const TsRunReq *r = &m->req[j];
        if (r->src < 1 || r->src == w->rank) continue;
        if (r->index < 0 || r->index >= w->n_req)
            return ts_err(err, TS_ERR_INTERNAL, "LAUNCH %lld: request index %lld out of range",
                          (long long)m->seq, (long long)r->index);
        for (int64_t i = 0; i < cu->n_recvs; i++)
            if (cu->recvs[i].index == r->index)
                return ts_err(err, TS_ERR_INTERNAL, "LAUNCH %lld: request %lld already on its way here",
                              (long long)m->seq, (long long)r->id);
        TsCuXfer x = {.index = r->index};
        if (ts_cuda_malloc_async((void **)&x.buf, sizeof(float) * (size_t)floats, cu->nw.stream))
            return ts_err(err, TS_ERR_SYSTEM, "latent of request %lld: %s", (long long)r->id,
                          ts_cuda_last_error());
        TsStatus rc = ts_nccl_recv_start(&cu->nw, x.buf, sizeof(float) * (size_t)floats, r->src - 1,
                                         &x.op, err);
        if (rc) {
            (void)ts_cuda_free_async(x.buf, cu->nw.stream);
            return rc;
        }
        TS_GROW(cu->recvs, cu->cap_recvs, cu->n_recvs + 1);
        cu->recvs[cu->n_recvs++] = x;
    }
    return TS_OK;
}

/* Every poll: free what finished sending. */
static TsStatus ts_cuda_poll(TsWorker *w, TsErr *err) {
    TsCudaWorker *cu = w->cu;
    if (!cu) return TS_OK;
    for (int64_t i = 0; i < cu->n_sends;) {
        int done = 0;
        TsStatus rc = ts_nccl_op_test(&cu->nw, &cu->sends[i].op, &done, err);
        if (rc) return rc;
        if (!done) {
            i++;
            continue;
        }
        (void)ts_cuda_free_async(cu->sends[i].buf, cu->nw.stream);
        ts_nccl_op_free(&cu->sends[i].op);
        cu->sends[i] = cu->sends[--cu->n_sends];
    }
    return TS_OK;
}

static TsStatus ts_cuda_drain(TsWorker *w, TsErr *err) {
    TsCudaWorker *cu = w->cu;
    while (cu->n_sends) {
        TsCuXfer x = cu->sends[--cu->n_sends];
        TsStatus rc = ts_nccl_op_wait(&cu->nw, &x.op, err);
        ts_nccl_op_free(&x.op);
        if (rc) return rc;
        (void)ts_cuda_free_async(x.buf, cu->nw.stream);
    }
    return TS_OK;
}

/* The conditioning of request `id` on the device, drawn from `seed` like
 * the cpu backend's (cached by id). */
static TsStatus ts_cuda_cond(TsCudaWorker *cu, int64_t id, uint64_t seed, const TsDitCudaCond **c,
                             TsErr *err) {
    int v = 0;
    cu->tick++;
    for (int i = 0; i < TS_CU_CONDS; i++) {
        if (cu->conds[i].used && cu->conds[i].id == id) {
            cu->conds[i].used = cu->tick;
            *c = &cu->conds[i].c;
            return TS_OK;
        }
        if (cu->conds[i].used < cu->conds[v].used) v = i;
    }
    if (cu->conds[v].used) ts_dit_cuda_cond_free(&cu->conds[v].c);
    cu->conds[v].used = 0;
    TsStatus rc = ts_dit_cuda_cond_seeded(&cu->conds[v].c, &cu->dm, seed, 3.5f, err);
    if (rc) return rc;
    cu->conds[v].id = id;
    cu->conds[v].used = cu->tick;
    *c = &cu->conds[v].c;
    return TS_OK;
}

static TsStatus ts_cuda_launch(TsWorker *w, const TsRunMsg *m, TsErr *err) {
    TsCudaWorker *cu = w->cu;
    double t_recv = ts_wall_s(), move_bytes = 0;
    int grank = -1, moved = 0, nranks[TS_RUN_MAX_DEGREE];
    float *lat[TS_MAX_BATCH] = {NULL}, *temp[TS_MAX_BATCH] = {NULL};
    float *host = NULL;
    TsStatus rc = TS_OK;
    for (int32_t a = 0; a < m->degree; a++) {
        if (m->ranks[a] == w->rank) grank = a;
        nranks[a] = m->ranks[a] - 1; /* NCCL rank = world rank - 1 */
    }
    if (grank < 0 || m->n_req < 1 || m->n_req > TS_MAX_BATCH) {
        rc = ts_err(err, TS_ERR_INTERNAL, "LAUNCH %lld: rank not in it, or %d requests", (long long)m->seq,
                    m->n_req);
        goto cleanup;
    }
    int leader = grank == 0;
    void *stream = cu->dm.stream;
    int64_t floats = ts_latent_floats(w, m->width, m->height);
    size_t bytes = sizeof(float) * (size_t)floats;
    TsNcclGroup *g = NULL;
    if ((rc = ts_nccl_group_get(&cu->nw, nranks, m->degree, &g, err))) goto cleanup;
    TsDitCudaComm comm;
    ts_nccl_dit_comm(g, &comm);
    /* latents in: the leader's (fresh, held or received), then the group's copies */
    for (int32_t j = 0; j < m->n_req; j++) {
        const TsRunReq *r = &m->req[j];
        if (r->index < 0 || r->index >= w->n_req) {
            rc = ts_err(err, TS_ERR_INTERNAL, "LAUNCH %lld: request index %lld out of range",
                        (long long)m->seq, (long long)r->index);
            goto cleanup;
        }
        moved |= r->src >= 1;
        float **held = &cu->dlat[r->index];
        if (leader && r->src == TS_RUN_SRC_FRESH) {
            if (*held) (void)ts_cuda_free_async(*held, stream);
            *held = NULL;
            if (ts_cuda_malloc_async((void **)held, bytes, stream)) {
                rc = ts_err(err, TS_ERR_SYSTEM, "latent of request %lld: %s", (long long)r->id,
                            ts_cuda_last_error());
                goto cleanup;
            }
            cu->dlat_n[r->index] = floats;
            host = ts_xmalloc(bytes);
            ts_dit_noise_from_seed(host, floats, ts_run_req_seed(w->o, r->id)); /* as cpu */
            if ((rc = ts_dit_cuda_upload(&cu->dm, *held, host, floats, err))) goto cleanup;
            free(host);
            host = NULL;
        } else if (leader && r->src >= 1 && r->src != w->rank) {
            int64_t k = 0;
            while (k < cu->n_recvs && cu->recvs[k].index != r->index) k++;
            if (k == cu->n_recvs) {
                rc = ts_err(err, TS_ERR_INTERNAL, "LAUNCH %lld: no receive posted for request %lld",
                            (long long)m->seq, (long long)r->id);
                goto cleanup;
            }
            /* out of the array first: the waits below poll, which may grow it */
            TsCuXfer x = cu->recvs[k];
            cu->recvs[k] = cu->recvs[--cu->n_recvs];
            if (*held) (void)ts_cuda_free_async(*held, stream);
            *held = x.buf;
            cu->dlat_n[r->index] = floats;
            rc = ts_nccl_op_wait(&cu->nw, &x.op, err);
            ts_nccl_op_free(&x.op);
            if (rc) goto cleanup;
            move_bytes += (double)bytes;
        } else if (leader && (!*held || cu->dlat_n[r->index] != floats)) {
            rc = ts_err(err, TS_ERR_INTERNAL, "LAUNCH %lld: request %lld should be held here",
                        (long long)m->seq, (long long)r->id);
            goto cleanup;
        }
        if (leader) {
            lat[j] = *held;
        } else {
            if (ts_cuda_malloc_async((void **)&temp[j], bytes, stream)) {
                rc = ts_err(err, TS_ERR_SYSTEM, "latent copy of request %lld: %s", (long long)r->id,
                            ts_cuda_last_error());
                goto cleanup;
            }
            lat[j] = temp[j];
        }
        if (m->degree > 1 && (rc = ts_nccl_bcast(g, lat[j], bytes, 0, stream, err))) goto cleanup;
    }
    double t_start = ts_wall_s();
    w->checksum = 0;
    for (int32_t s = 0; s < m->n_steps && !rc; s++) {
        for (int32_t j = 0; j < m->n_req && !rc; j++) { /* a batch: one after the other, as cpu */
            const TsRunReq *r = &m->req[j];
            const TsDitCudaCond *cond = NULL;
            TsDitCudaWork *work = NULL;
            int i = r->step_begin + s;
            if (!(rc = ts_cuda_cond(cu, r->id, ts_run_req_seed(w->o, r->id), &cond, err)) &&
                !(rc = ts_dit_cuda_cache_get(&cu->cache, &cu->dm, m->width, m->height, m->degree, grank,
                                             &work, err)))
                rc = ts_dit_cuda_step(&cu->dm, work, &comm, cond, ts_dit_schedule_t(i, r->steps),
                                      ts_dit_schedule_t(i + 1, r->steps), lat[j], err);
        }
        if (!rc) rc = ts_worker_poll(w, err); /* serve MOVEs between steps */
    }
    if (rc) goto cleanup;
    double t_end = ts_wall_s();
    if (leader && m->overhead_s > 0) { /* e.g. the VAE decode, as cpu: slept */
        t_end += m->overhead_s / w->o->speedup;
        if ((rc = ts_worker_sleep_until(w, t_end, err))) goto cleanup;
    }
    /* finished requests: nothing will need their latents */
    for (int32_t j = 0; j < m->n_req; j++) {
        const TsRunReq *r = &m->req[j];
        if (!leader || r->step_begin + m->n_steps != r->steps) continue;
        host = ts_xmalloc(bytes);
        if ((rc = ts_dit_cuda_download(&cu->dm, host, lat[j], floats, err))) goto cleanup;
        for (int64_t e = 0; e < floats; e++) w->checksum += host[e];
        free(host);
        host = NULL;
        (void)ts_cuda_free_async(cu->dlat[r->index], stream);
        cu->dlat[r->index] = NULL;
    }
    if (leader) ts_worker_report(w, m, t_start, t_end, moved ? t_start - t_recv : 0.0, move_bytes);
cleanup:
    free(host);
    for (int32_t j = 0; j < TS_MAX_BATCH; j++)
        if (temp[j]) (void)ts_cuda_free_async(temp[j], cu->dm.stream); /* after the steps, in stream order */
    if (rc) ts_err_prefix(err, "launch %lld (%dx%d px, degree %d)", (long long)m->seq, m->width,
                          m->height, m->degree);
    return rc;
}

static void ts_cuda_release(TsWorker *w) {
    TsCudaWorker *cu = w->cu;
    if (!cu) return;
    for (int64_t i = 0; i < w->n_req; i++)
        if (cu->dlat[i]) (void)ts_cuda_free_async(cu->dlat[i], cu->dm.stream);
    for (int64_t i = 0; i < cu->n_recvs; i++) {
        ts_nccl_op_free(&cu->recvs[i].op);
        (void)ts_cuda_free_async(cu->recvs[i].buf, cu->nw.stream);
    }
    for (int64_t i = 0; i < cu->n_sends; i++) {
        ts_nccl_op_free(&cu->sends[i].op);
        (void)ts_cuda_free_async(cu->sends[i].buf, cu->nw.stream);
    }
    for (int i = 0; i < TS_CU_CONDS; i++)
        if (cu->conds[i].used) ts_dit_cuda_cond_free(&cu->conds[i].c);
    ts_dit_cuda_cache_free(&cu->cache);
    if (cu->have_dm) ts_dit_cuda_free(&cu->dm);
    if (cu->have_nw) ts_nccl_world_free(&cu->nw);
    free(cu->dlat);
    free(cu->dlat_n);
    free(cu->sends);
    free(cu->recvs);
    free(cu);
    w->cu = NULL;
}

#endif /* TS_HAVE_CUDA */

static const TsBackend ts_backends[] = {
    {"emu", ts_emu_init, ts_emu_steps, NULL, NULL, NULL, NULL, NULL, NULL},
    {"cpu", ts_cpu_init, ts_cpu_steps, NULL, NULL, NULL, NULL, NULL, NULL},
#ifdef TS_HAVE_CUDA
    {"cuda", ts_cuda_init, NULL, ts_cuda_launch, ts_cuda_serve_move, ts_cuda_arrive, ts_cuda_poll,
     ts_cuda_drain, ts_cuda_release},
#else
    {"cuda", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL}, /* the gate says "not built" */
#endif
};

static TsStatus ts_worker_loop(TsWorker *w, TsErr *err) {
    double sleep_s = w->o->poll_us * 1e-6;
    MPI_Irecv(w->ctrl, TS_RUN_MAX_WORDS, MPI_INT64_T, 0, TAG_CTRL, MPI_COMM_WORLD, &w->ctrl_req);
    w->ctrl_posted = 1;
    w->idle_since = ts_wall_s();
    for (;;) {
        TsStatus rc = ts_worker_poll(w, err);
        if (rc) return rc;
        if (!w->q_n) {
            /* Idle for long: poll at most every TS_IDLE_POLL_S (a launch
             * to a cold worker waits that much longer; it counts 1:1 in
             * trace time, see ts_emu_start). */
            double idle = ts_wall_s() - w->idle_since;
            ts_sleep_s(idle > TS_IDLE_AFTER_S && sleep_s < TS_IDLE_POLL_S ? TS_IDLE_POLL_S : sleep_s);
            continue;
        }
        TsRunMsg m = w->queue[w->q_head];
        w->q_head = (w->q_head + 1) % w->q_cap;
        w->q_n--;
        if (m.kind == TS_RUN_MSG_STOP) break;
        if ((rc = ts_worker_launch(w, &m, err))) return rc;
        w->idle_since = ts_wall_s();
    }
    /* Latents still on their way to a new leader must arrive. */
    for (int64_t i = 0; i < w->n_sends; i++) {
        MPI_Wait(&w->sends[i].req, MPI_STATUS_IGNORE);
        ts_latent_free(w->sends[i].buf);
    }
    w->n_sends = 0;
    return w->be->drain ? w->be->drain(w, err) : TS_OK;
}

static void ts_worker_free(TsWorker *w) {
    if (w->be && w->be->release) w->be->release(w);
    for (int64_t i = 0; i < w->n_req; i++) ts_latent_free(w->lat[i]);
    free(w->lat);
    for (int64_t i = 0; i < w->n_groups; i++) {
        MPI_Comm_free(&w->groups[i].comm);
        free(w->groups[i].ranks);
    }
    free(w->groups);
    free(w->queue);
    free(w->sends);
    if (w->have_dit) ts_dit_free(&w->dit);
}

/* ------------------------------------------------------------ rank 0 */

/* The results file is written at F.partial and copied to F (a temporary
 * and rename) after every flush: a kill in the middle of a write (Open MPI
 * SIGKILLs the job when mpirun is signalled or a rank dies) leaves F at
 * its last consistent state instead of a half-written HDF5 file. */
static TsStatus ts_snapshot(const char *from, const char *to, TsErr *err) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", to);
    FILE *in = fopen(from, "rb"), *out = in ? fopen(tmp, "wb") : NULL;
    TsStatus rc = TS_OK;
    if (!in || !out) {
        rc = ts_err(err, TS_ERR_IO, "%s: %s", in ? tmp : from, strerror(errno));
        goto done;
    }
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) break;
    if (ferror(in) || ferror(out)) rc = ts_err(err, TS_ERR_IO, "copying %s to %s failed", from, tmp);
done:
    if (in) fclose(in);
    if (out && fclose(out) && !rc) rc = ts_err(err, TS_ERR_IO, "%s: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, to)) rc = ts_err(err, TS_ERR_IO, "rename %s: %s", to, strerror(errno));
    return rc;
}

static void ts_run_on_signal(int sig) { ts_run_signal = sig; }

typedef struct TsSlot {
    int64_t seq;
    int32_t leader;
    double start_trace, planned_s, start_wall, end_wall, timeout_wall;
    int in_use;
} TsSlot;

typedef struct TsMaster {
    const TsRunOpts *o;
    const TsCostModel *exec; /* what emu workers sleep (--exec-profile), else the plan's */
    const TsPolicyOps *ops;
    void *policy;
    TsState st;
    TsPlan plan;
    TsEventQueue wakes;
    double wake_s;
    TsRunLog log;
    TsResultsFile *rf;
    TsSlot *slots;
    int64_t cap_slots;
    double t0;
    int64_t seq;
    /* stats */
    int64_t n_decisions, n_launches, n_msgs, msg_bytes, n_moves, n_rounds, n_done_msgs;
    int64_t n_probes;
    double probe_s;
    double decide_s, send_s, recv_s, move_s_sum, move_s_max, move_bytes, delay_s_sum;
    double start_s_sum; /* wall, decision to the steps starting (LAUNCH, latents) */
    double cpu_s;       /* rank 0's CPU time over the run (all its threads) */
    double last_flush;
    char partial[1100]; /* the file ts_results writes; copied to --out */
    double checksum_sum; /* cpu: sum over finished requests of their final latent's elements */
} TsMaster;

/* Beyond twice its planned length, how long a launch may take before rank
 * 0 calls its leader lost. cuda: a first launch on a GPU set may create and
 * connect an NCCL communicator (hundreds of ms on a node, seconds across
 * nodes) and allocate its workspace; every NCCL wait of the workers is
 * bounded by TS_CUDA_TIMEOUT_S anyway. */
static double ts_launch_slack_s(const TsRunOpts *o) { return o->backend == TS_BE_CUDA ? 10.0 : 2.0; }

static double ts_master_now(const TsMaster *m) { return (ts_wall_s() - m->t0) * m->o->speedup; }

static TsStatus ts_master_recv_done(TsMaster *m, int src, TsErr *err) {
    double d[TS_RUN_DONE_WORDS];
    double t = ts_wall_s();
    MPI_Recv(d, TS_RUN_DONE_WORDS, MPI_DOUBLE, src, TAG_DONE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    m->recv_s += ts_wall_s() - t;
    m->n_done_msgs++;
    int64_t slot = (int64_t)d[1];
    if (slot < 0 || slot >= m->cap_slots || !m->slots[slot].in_use ||
        m->slots[slot].seq != (int64_t)d[0])
        return ts_err(err, TS_ERR_INTERNAL, "worker rank %d reported launch %lld (slot %lld), not running",
                      src, (long long)d[0], (long long)slot);
    TsSlot *s = &m->slots[slot];
    double now = ts_master_now(m);
    double end = (d[3] - m->t0) * m->o->speedup;
    /* Clock offsets are estimates: keep end within [start, now]. */
    if (end > now) end = now;
    if (end < s->start_trace) end = s->start_trace;
    if (now > m->st.now_s) m->st.now_s = now;
    if (d[4] > 0) {
        m->n_moves++;
        m->move_s_sum += d[4];
        if (d[4] > m->move_s_max) m->move_s_max = d[4];
        m->move_bytes += d[5];
    }
    m->delay_s_sum += (end - s->start_trace - s->planned_s) / m->o->speedup;
    double started = d[2] - s->start_wall; /* clock offsets are estimates: not below 0 */
    m->start_s_sum += started > 0 ? started : 0;
    m->checksum_sum += d[6];
    s->in_use = 0;
    TsStatus rc = ts_engine_complete(&m->st, slot, end, err);
    if (rc) ts_err_prefix(err, "launch %lld", (long long)s->seq);
    return rc;
}

static int ts_same_set(const int32_t *a, int32_t na, const int32_t *b, int32_t nb) {
    if (na != nb) return 0;
    for (int32_t i = 0; i < na; i++) {
        int found = 0;
        for (int32_t k = 0; k < nb && !found; k++) found = a[i] == b[k];
        if (!found) return 0;
    }
    return 1;
}

static void ts_master_send(TsMaster *m, const TsRunMsg *msg, int dest) {
    int64_t buf[TS_RUN_MAX_WORDS];
    int n = ts_run_msg_encode(msg, buf);
    double t = ts_wall_s();
    MPI_Send(buf, n, MPI_INT64_T, dest, TAG_CTRL, MPI_COMM_WORLD);
    m->send_s += ts_wall_s() - t;
    m->n_msgs++;
    m->msg_bytes += n * 8;
}

/* ts_sim_apply, live: launch, tell the workers, record the round. */
static TsStatus ts_master_apply(TsMaster *m, double decide_us, TsErr *err) {
    TsState *st = &m->st;
    TsPlan *p = &m->plan;
    const TsCostModel *cm = st->cost;
    int64_t n_pending = 0;
    if (p->round >= 0) ts_engine_pending(st, &n_pending);
    for (int64_t k = 0; k < p->n_launch; k++) {
        const TsLaunch *l = &p->launch[k];
        const int64_t *reqs = p->reqs + l->req_off;
        const int32_t *gpus = p->gpus + l->gpu_off;
        TsRunMsg msg;
        memset(&msg, 0, sizeof msg);
        msg.kind = TS_RUN_MSG_LAUNCH;
        msg.degree = l->degree;
        msg.n_req = l->n_req;
        msg.n_steps = l->n_steps;
        if (l->degree > TS_RUN_MAX_DEGREE)
            return ts_err(err, TS_ERR_INTERNAL, "launch of degree %d (max %d)", l->degree,
                          TS_RUN_MAX_DEGREE);
        for (int32_t a = 0; a < l->degree; a++) msg.ranks[a] = gpus[a] + 1;
        qsort(msg.ranks, (size_t)l->degree, sizeof *msg.ranks, ts_cmp_i32);
        int finishes = 0;
        for (int32_t j = 0 ; j < l->n_req && j < TS_MAX_BATCH; j++) {
            int64_t i = reqs[j];
            if (i < 0 || i >= st->n_arrived) break; /* ts_engine_launch reports it */
            const TsReq *q = &st->req[i];
            int32_t pd = 0;
            const int32_t *prev = ts_state_last_gpus(st, i, &pd);
            TsRunReq *r = &msg.req[j];
            r->index = i;
            r->id = q->id;
            r->step_begin = q->steps_done;
            r->steps = q->steps;
            if (!pd) {
                r->src = TS_RUN_SRC_FRESH;
            } else if (ts_same_set(prev, pd, gpus, l->degree)) {
                r->src = TS_RUN_SRC_HELD;
            } else {
                int32_t lo = prev[0];
                for (int32_t a = 1; a < pd; a++)
                    if (prev[a] < lo) lo = prev[a];
                r->src = lo + 1;
            }
            if (q->steps_done + l->n_steps == q->steps) finishes = 1;
            if (j == 0) {
                msg.width = cm->width[q->res];
                msg.height = cm->height[q->res];
                double step = ts_cost_step_at(m->exec, q->res, l->degree, l->n_req);
                msg.step_s = step > 0 ? step : 0;
            }
        }
        msg.overhead_s = finishes ? m->exec->overhead_s : 0;
        /* The decision instant on rank 0's wall clock: what happens after
         * it (deciding, sending, moving) counts 1:1 in trace time (emu). */
        msg.issue_wall = m->t0 + st->now_s / m->o->speedup;
        int64_t slot;
        double end_s;
        TsStatus rc = ts_engine_launch(st, p, k, p->round, &slot, &end_s, err);
        if (rc) {
            ts_err_prefix(err, "policy %s at t=%.6f s", m->ops->name, st->now_s);
            return rc;
        }
        msg.seq = m->seq++;
        msg.slot = slot;
        for (int32_t j = 0; j < l->n_req; j++) { /* latents first, so they travel early */
            const TsRunReq *r = &msg.req[j];
            if (r->src >= 1 && r->src != msg.ranks[0]) {
                TsRunMsg mv = {.kind = TS_RUN_MSG_MOVE, .index = r->index, .dest = msg.ranks[0]};
                ts_master_send(m, &mv, r->src);
            }
        }
        for (int32_t a = 0; a < l->degree; a++) ts_master_send(m, &msg, msg.ranks[a]);
        if (slot >= m->cap_slots) {
            int64_t old = m->cap_slots;
            TS_GROW(m->slots, m->cap_slots, slot + 1);
            memset(m->slots + old, 0, (size_t)(m->cap_slots - old) * sizeof *m->slots);
        }
        TsSlot *s = &m->slots[slot];
        s->in_use = 1;
        s->seq = msg.seq;
        s->leader = msg.ranks[0];
        s->start_trace = st->now_s;
        s->planned_s = end_s - st->now_s;
        s->end_wall = m->t0 + end_s / m->o->speedup;
        s->start_wall = m->t0 + st->now_s / m->o->speedup;
        s->timeout_wall = ts_wall_s() + 2 * s->planned_s / m->o->speedup + ts_launch_slack_s(m->o);
        m->n_launches++;
    }
    if (p->round >= 0) {
        TsRoundRec r = {p->round, st->now_s, (int32_t)n_pending, (int32_t)p->n_reqs,
                        st->n_gpus - st->n_free, decide_us};
        ts_log_add_round(st->log, &r);
        m->n_rounds++;
    }
    if (p->wakeup_s < m->wake_s) {
        /* Live, a wake-up at or before now means "as soon as possible". */
        double wk = p->wakeup_s > st->now_s ? p->wakeup_s : st->now_s + 1e-9;
        ts_eq_push(&m->wakes, wk, TS_RUN_MSG_LAUNCH, 0, 0);
        m->wake_s = wk;
    }
    return TS_OK;
}

/* The run; TS_ERR_SYSTEM naming the leader rank for a silent launch, or
 * the signal. */
static TsStatus ts_master_loop(TsMaster *m, TsErr *err) {
    TsState *st = &m->st;
    double poll = m->o->poll_us * 1e-6;
    int idle_decisions = 0, pend_progress = 0, pend_woke = 0;
    m->last_flush = ts_wall_s();
    for (;;) {
        if (ts_run_signal)
            return ts_err(err, TS_ERR_SYSTEM, "interrupted by %s",
                          ts_run_signal == SIGINT ? "SIGINT" : "SIGTERM");
        int progressed = 0, woke = 0;
        for (;;) { /* completions */
            int flag = 0;
            MPI_Status stat;
            double t = ts_wall_s();
            MPI_Iprobe(MPI_ANY_SOURCE, TAG_DONE, MPI_COMM_WORLD, &flag, &stat);
            double dt = ts_wall_s() - t;
            m->probe_s += dt; /* every poll pays this, message or not */
            m->n_probes++;
            if (!flag) break;
            m->recv_s += dt;
            TsStatus rc = ts_master_recv_done(m, stat.MPI_SOURCE, err);
            if (rc) return rc;
            progressed = 1;
        }
        double now = ts_master_now(m);
        if (now < st->now_s) now = st->now_s;
        while (st->n_arrived < st->n_req && st->req[st->n_arrived].arrival_s <= now) {
            ts_engine_arrive(st);
            progressed = 1;
        }
        const TsEvent *top;
        while ((top = ts_eq_peek(&m->wakes)) && top->time_s <= now) {
            TsEvent ev;
            ts_eq_pop(&m->wakes, &ev);
            if (ev.time_s >= m->wake_s) m->wake_s = INFINITY;
            woke = 1;
        }
        /* Launches that should have ended by now but have not reported yet
         * (within a short grace) end at "the same instant" as this batch in
         * simulation: decide once they are in, as ts_sim_run would. */
        pend_progress |= progressed;
        pend_woke |= woke;
        int overdue = 0, decided = 0;
        double wall_now = ts_wall_s();
        for (int64_t s = 0; s < m->cap_slots && !overdue; s++) {
            const TsSlot *sl = &m->slots[s];
            overdue = sl->in_use && sl->end_wall <= wall_now && wall_now - sl->end_wall < TS_FAST_WINDOW_S;
        }
        if ((pend_progress || pend_woke) && !overdue) {
            progressed = pend_progress;
            pend_progress = pend_woke = 0;
            decided = 1;
            st->now_s = now;
            ts_plan_clear(&m->plan);
            double t0 = ts_wall_s();
            TsStatus rc = m->ops->decide(m->policy, st, &m->plan, err);
            double decide_s = ts_wall_s() - t0;
            m->decide_s += decide_s;
            m->n_decisions++;
            if (rc) {
                ts_err_prefix(err, "policy %s at t=%.6f s", m->ops->name, st->now_s);
                return rc;
            }
            if ((rc = ts_master_apply(m, decide_s * 1e6, err))) return rc;
            if (st->n_done == st->n_req) break;
            if (!progressed && m->plan.n_launch == 0 && st->n_free == st->n_gpus &&
                st->n_arrived == st->n_req) {
                if (++idle_decisions >= 2) break;
            } else {
                idle_decisions = 0;
            }
        }
        if (st->n_free == st->n_gpus && st->n_arrived == st->n_req && !ts_eq_peek(&m->wakes)) break;
        double wall = ts_wall_s();
        for (int64_t s = 0; s < m->cap_slots; s++) {
            const TsSlot *sl = &m->slots[s];
            if (sl->in_use && wall > sl->timeout_wall) {
                double lim = 2 * sl->planned_s / m->o->speedup + ts_launch_slack_s(m->o);
                return ts_err(err, TS_ERR_SYSTEM, "worker rank %d (GPU %d) did not report launch %lld within %.1f s",
                              sl->leader, sl->leader - 1, (long long)sl->seq, lim);
            }
        }
        if (m->rf && wall - m->last_flush >= TS_FLUSH_S) {
            TsStatus rc = ts_results_flush(m->rf, &m->log, err);
            if (!rc) rc = ts_snapshot(m->partial, m->o->out, err);
            if (rc) return rc;
            m->last_flush = ts_wall_s();
        }
        if (decided) continue; /* look again before sleeping */
        /* Sleep until the next thing that can happen: an arrival, a policy
         * wake-up, a launch's report. Before a launch's planned end rank 0
         * looks sparsely (TS_EARLY_*): a launch that ends early (the
         * machine faster than its profile) must free its GPUs when it ends,
         * as in the simulator, not at its planned end (rank 0 that slept
         * until then recorded the true end but left the GPUs idle: emu
         * sleeping 0.8x the profile tetriserve planned with, SAR 0.775
         * against 0.925 simulated; tests/test_run.sh). Past a planned end it
         * polls finely for TS_FAST_WINDOW_S, then every --poll-us. Never
         * more often: with the workers on every core (cpu backend,
         * oversubscribed), a rank 0 that woke every 100 us preempted a
         * worker in the middle of a sequence-parallel step and stalled
         * its whole group. */
        double until = wall + TS_MASTER_NAP_S;
        if (st->n_arrived < st->n_req) {
            double a = m->t0 + st->req[st->n_arrived].arrival_s / m->o->speedup;
            if (a < until) until = a;
        }
        if ((top = ts_eq_peek(&m->wakes))) {
            double a = m->t0 + top->time_s / m->o->speedup;
            if (a < until) until = a;
        }
        for (int64_t s = 0; s < m->cap_slots; s++) {
            const TsSlot *sl = &m->slots[s];
            if (!sl->in_use) continue;
            double a;
            if (sl->end_wall > wall) {
                double len = sl->end_wall - sl->start_wall;
                double from = sl->start_wall + TS_EARLY_FROM * len;
                double every = TS_EARLY_POLL_FRAC * len > TS_EARLY_POLL_MIN_S ? TS_EARLY_POLL_FRAC * len
                                                                               : TS_EARLY_POLL_MIN_S;
                a = wall < from ? from : wall + every < sl->end_wall ? wall + every : sl->end_wall;
            } else {
                a = wall - sl->end_wall < TS_FAST_WINDOW_S ? wall + TS_FAST_POLL_S : wall + poll;
            }
            if (a < until) until = a;
        }
        ts_sleep_until(until);
    }
    ts_engine_close(st);
    return TS_OK;
}

/* ------------------------------------------------------------ the verb */

static const char ts_run_usage[] =
    "usage: mpirun -np 1+W tetriserve run --backend emu|cpu|cuda --trace F.csv --profile F.csv\n"
    "                                     --policy P [--slo-scale X] [--speedup F] [--out F.h5]\n"
    "                                     [--dit-preset NAME] [--gpus N] [--gpus-per-node N]\n"
    "                                     [--seed S] [--poll-us US] [--exec-profile F.csv]\n\n"
    "The live executor: rank 0 replays the trace in real time with policy P (the\n"
    "simulator's engine and policy code), ranks 1..W are the W GPUs (GPU g = rank g+1).\n\n"
    "  --backend B            emu: each step sleeps its profiled time / speedup and real\n"
    "                         latent bytes move between groups; cpu: the DiT of\n"
    "                         --dit-preset (default tiny) runs on the CPU, sequence-parallel\n"
    "                         over MPI; cuda: the same DiT (default flux-dev, seeded weights)\n"
    "                         on one GPU per worker (by node-local rank), sequence-parallel\n"
    "                         over NCCL%s\n"
    "  --trace F.csv          request trace (SPEC.md format)\n"
    "  --profile F.csv        cost model (SPEC.md format): the step times the policy plans\n"
    "                         with, and (emu) sleeps\n"
    "  --exec-profile F.csv   emu only: sleep F's step times instead; rank 0 still expects\n"
    "                         --profile's (a machine faster or slower than its profile, live;\n"
    "                         F needs every cell the policy may use; recorded as exec_profile)\n"
    "  --policy P             one of: %s\n"
    "  --slo-scale X          deadline = arrival + X * slo_s (default 1.0)\n"
    "  --speedup F            emu only: trace time = wall time x F (default 1)\n"
    "  --out F.h5             results file (default results/<trace>_<policy>_<backend>.h5)\n"
    "  --dit-preset NAME      model whose latent moves (emu default flux-dev, C=16) or runs\n"
    "                         (cpu default tiny, cuda default flux-dev)\n"
    "  --gpus N               optional check: the GPUs the job was started for (must be W)\n"
    "  --gpus-per-node N      default: the profile's gpus_per_node, else W\n"
    "  --seed S               cpu, cuda: the DiT's weights, and with each request's id its\n"
    "                         noise and conditioning (default 1; recorded as the run's seed)\n"
    "  --poll-us US           polling interval of rank 0 and idle workers (default 100)\n"
    "  --quiet                no table on stdout\n\n%s";

static int ts_run_parse(int argc, char **argv, TsRunOpts *o, int rank, int *exit_code) {
    static const struct option own[] = {
        {"trace", required_argument, NULL, 't'},      {"profile", required_argument, NULL, 'p'},
        {"policy", required_argument, NULL, 'P'},     {"backend", required_argument, NULL, 'b'},
        {"slo-scale", required_argument, NULL, 's'},  {"speedup", required_argument, NULL, 'x'},
        {"out", required_argument, NULL, 'o'},        {"dit-preset", required_argument, NULL, 'd'},
        {"gpus-per-node", required_argument, NULL, 'N'}, {"poll-us", required_argument, NULL, 'u'},
        {"fault-inject", required_argument, NULL, 'F'}, {"quiet", no_argument, NULL, 'q'},
        {"pid-file", required_argument, NULL, 'I'}, {"gpus", required_argument, NULL, 'G'},
        {"seed", required_argument, NULL, 'S'},       {"exec-profile", required_argument, NULL, 'X'},
        {"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0},
    };
    int a = 0, b = 0, c;
    while (own[a].name) a++;
    while (ts_policy_long_options[b].name) b++;
    struct option *opts = ts_xcalloc((size_t)(a + b + 1), sizeof *opts);
    memcpy(opts, own, (size_t)a * sizeof *opts);
    memcpy(opts + a, ts_policy_long_options, (size_t)b * sizeof *opts);
    char msg[TS_ERR_MAX + 64] = "";
    TsErr err;
    const char *backend = NULL;
    memset(o, 0, sizeof *o);
    o->slo_scale = 1.0;
    o->speedup = 1.0;
    o->poll_us = 100;
    o->seed = 1;
    o->fault.rank = -1;
    ts_policy_config_default(&o->pcfg);
    *exit_code = 2;
    optind = 1;
    opterr = rank == 0; /* one message, from rank 0 */
    while (!msg[0] && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int pr = ts_policy_option(c, optarg, &o->pcfg, &err);
        if (pr < 0) {
            snprintf(msg, sizeof msg, "%s", err.msg);
            break;
        }
        if (pr) continue;
        switch (c) {
        case 't': o->trace = optarg; break;
        case 'p': o->profile = optarg; break;
        case 'X': o->exec_profile = optarg; break;
        case 'P': o->policy = optarg; break;
        case 'b': backend = optarg; break;
        case 'o': o->out = optarg; break;
        case 'd': o->dit_preset = optarg; break;
        case 'q': o->quiet = 1; break;
        case 's':
            if (ts_parse_double(optarg, &o->slo_scale) || !(o->slo_scale > 0))
                snprintf(msg, sizeof msg, "--slo-scale: '%s' is not a positive number", optarg);
            break;
        case 'x':
            if (ts_parse_double(optarg, &o->speedup) || !(o->speedup > 0))
                snprintf(msg, sizeof msg, "--speedup: '%s' is not a positive number", optarg);
            break;
        case 'N':
            if (ts_parse_int(optarg, &o->gpn) || o->gpn < 1)
                snprintf(msg, sizeof msg, "--gpus-per-node: '%s' is not an integer >= 1", optarg);
            break;
        case 'u':
            if (ts_parse_int(optarg, &o->poll_us) || o->poll_us < 1 || o->poll_us > 100000)
                snprintf(msg, sizeof msg, "--poll-us: '%s' is not an integer in 1..100000", optarg);
            break;
        case 'I': o->pid_file = optarg; break;
        case 'G':
            if (ts_parse_int(optarg, &o->gpus) || o->gpus < 1)
                snprintf(msg, sizeof msg, "--gpus: '%s' is not an integer >= 1", optarg);
            break;
        case 'S': {
            int64_t v;
            if (ts_parse_int64(optarg, &v) || v < 0)
                snprintf(msg, sizeof msg, "--seed: '%s' is not an integer >= 0", optarg);
            else
                o->seed = (uint64_t)v;
            break;
        }
        case 'F':
            if (ts_run_parse_fault(optarg, &o->fault, &err)) snprintf(msg, sizeof msg, "%s", err.msg);
            break;
        case 'h': {
            char names[256];
            ts_policy_names(names, sizeof names);
#ifdef TS_HAVE_CUDA
            const char *cuda_state = "";
#else
            const char *cuda_state = " (not in this build: make without CUDA=0, with nvcc)";
#endif
            if (rank == 0) printf(ts_run_usage, cuda_state, names, ts_policy_options_help);
            *exit_code = 0;
            free(opts);
            return 1;
        }
        default: free(opts); return 1; /* getopt printed the reason */
        }
    }
    free(opts);
    if (!msg[0] && optind < argc) snprintf(msg, sizeof msg, "unexpected argument '%s'", argv[optind]);
    if (!msg[0] && (!backend || !o->trace || !o->profile || !o->policy))
        snprintf(msg, sizeof msg, "--%s is required",
                 !backend ? "backend" : !o->trace ? "trace" : !o->profile ? "profile" : "policy");
    if (!msg[0]) {
        o->backend = -1;
        for (int i = 0; i < (int)(sizeof ts_backends / sizeof *ts_backends); i++)
            if (!strcmp(backend, ts_backends[i].name)) o->backend = i;
        if (o->backend < 0)
            snprintf(msg, sizeof msg, "--backend: unknown backend '%s' (have: emu, cpu, cuda)", backend);
        /* cuda: its gate (ts_nccl_backend_check) runs next, on every rank */
    }
    if (!msg[0] && !ts_policy_find(o->policy)) {
        char names[256];
        ts_policy_names(names, sizeof names);
        snprintf(msg, sizeof msg, "--policy: unknown policy '%s' (have: %s)", o->policy, names);
    }
    if (!msg[0] && o->backend != TS_BE_EMU && o->speedup != 1.0)
        snprintf(msg, sizeof msg, "--speedup: only the emu backend can run faster than real time");
    if (!msg[0] && o->backend != TS_BE_EMU && o->exec_profile)
        snprintf(msg, sizeof msg, "--exec-profile: only the emu backend sleeps step times (cpu and "
                 "cuda take what the machine takes)");
    if (!msg[0] && !o->dit_preset) o->dit_preset = o->backend == TS_BE_CPU ? "tiny" : "flux-dev";
    if (msg[0]) {
        if (rank == 0) fprintf(stderr, "tetriserve run: %s\n", msg);
        return 1;
    }
    return 0;
}

static const char *ts_basename_noext(const char *path, char *buf, size_t len) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(buf, len, "%s", b);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = '\0';
    return buf;
}

/* Start-up words rank 0 broadcasts: ok, n_req, gpus_per_node, n_deg, degrees. */
#define TS_SETUP_WORDS (4 + TS_MAX_DEGREES)

/* Clock offset of each worker to rank 0: the sample with the shortest
 * round trip, assuming symmetric delays. */
static double ts_clock_sync(int rank, int size) {
    double best_rtt = INFINITY, offset = 0, t;
    if (rank == 0) {
        for (int w = 1; w < size; w++)
            for (int i = 0; i < TS_SYNC_ROUNDS; i++) {
                MPI_Recv(&t, 1, MPI_DOUBLE, w, TAG_SYNC, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                t = ts_wall_s();
                MPI_Send(&t, 1, MPI_DOUBLE, w, TAG_SYNC, MPI_COMM_WORLD);
            }
        return 0;
    }
    for (int i = 0; i < TS_SYNC_ROUNDS; i++) {
        double t1 = ts_wall_s();
        MPI_Send(&t1, 1, MPI_DOUBLE, 0, TAG_SYNC, MPI_COMM_WORLD);
        MPI_Recv(&t, 1, MPI_DOUBLE, 0, TAG_SYNC, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        double t2 = ts_wall_s();
        if (t2 - t1 < best_rtt) {
            best_rtt = t2 - t1;
            offset = t - 0.5 * (t1 + t2);
        }
    }
    return offset;
}

/* What the run measured besides requests and segments, into the results
 * file's /run group (README "Results file"): the figures the table prints.
 * wstats (group communicators) is NULL when the run ended early. */
static TsStatus ts_master_put_stats(const TsMaster *m, double wall_s, double round_s,
                                    const int64_t *wstats, TsErr *err) {
    const TsRunOpts *o = m->o;
    double nd = m->n_decisions ? (double)m->n_decisions : 1;
    double nl = m->n_launches ? (double)m->n_launches : 1;
    double round_wall = round_s / o->speedup;
    double ctl = m->send_s + m->recv_s;
    TsStat v[] = {
        {"wall_s", wall_s},
        {"speedup", o->speedup},
        {"poll_us", o->poll_us},
        {"n_decisions", (double)m->n_decisions},
        {"decide_s", m->decide_s},
        {"n_launches", (double)m->n_launches},
        {"n_rounds", (double)m->n_rounds},
        {"n_plan_messages", (double)m->n_msgs},
        {"plan_message_bytes_mean", m->n_msgs ? (double)m->msg_bytes / (double)m->n_msgs : 0.0},
        {"send_s_per_decision", m->send_s / nd},
        {"completion_s_per_launch", m->recv_s / nl},
        {"control_fraction_of_round",
         m->n_rounds && round_wall > 0 ? ctl / (double)m->n_rounds / round_wall : 0.0},
        {"launch_delay_s_mean", m->delay_s_sum / nl},
        {"launch_start_s_mean", m->start_s_sum / nl},
        {"n_probes", (double)m->n_probes},
        {"rank0_cpu_s", m->cpu_s},
        {"probe_s_mean", m->n_probes ? m->probe_s / (double)m->n_probes : 0.0},
        {"n_latent_moves", (double)m->n_moves},
        {"latent_move_bytes", m->move_bytes},
        {"latent_move_wait_s_mean", m->n_moves ? m->move_s_sum / (double)m->n_moves : 0.0},
        {"latent_move_wait_s_max", m->move_s_max},
        {"latent_checksum", o->backend == TS_BE_EMU ? NAN : m->checksum_sum},
        {"groups_created_at_start", wstats ? (double)wstats[0] : NAN},
        {"groups_created_lazily", wstats ? (double)wstats[1] : NAN},
    };
    return ts_results_put_stats(m->rf, "run", v, (int)(sizeof v / sizeof v[0]), err);
}

static void ts_master_print(const TsMaster *m, const TsTrace *t, const TsProfile *p,
                            const TsSummary *sum, const char *out, double wall_s,
                            const int64_t *wstats, char *popts, double round_s) {
    const TsRunOpts *o = m->o;
    ts_cmd_print_header("run", t, p);
    printf("# gpus: %d (ranks 1..%d, %d per node)  backend: %s  speedup: %g  policy: %s (%s)  "
           "slo_scale: %.3f  round_s: %.6f\n",
           m->st.n_gpus, m->st.n_gpus, m->st.gpus_per_node, ts_backends[o->backend].name,
           o->speedup, o->policy, popts, o->slo_scale, round_s);
    if (m->exec != m->st.cost)
        printf("# exec profile: %s (the step times emu sleeps; rank 0 expects the profile's)\n",
               o->exec_profile);
    printf("# out: %s\n", out);
    ts_cmd_print_summary(sum);
    double nl = m->n_launches ? (double)m->n_launches : 1;
    printf("# run: wall %.3f s (trace %.3f s), %lld decisions (%.6f s deciding), %lld launches, "
           "%lld rounds, poll %d us\n",
           wall_s, wall_s * o->speedup, (long long)m->n_decisions, m->decide_s,
           (long long)m->n_launches, (long long)m->n_rounds, o->poll_us);
    double nd = m->n_decisions ? (double)m->n_decisions : 1;
    double ctl = m->send_s + m->recv_s;
    double round_wall = round_s / o->speedup;
    printf("# control: %lld plan messages (%.0f B mean), send %.2f us/decision, completions "
           "%.2f us/launch (probe + receive), launch delay %.3f ms/launch (wall: measured - "
           "planned length), of which %.3f ms before the steps start (plan, latents)",
           (long long)m->n_msgs, m->n_msgs ? (double)m->msg_bytes / (double)m->n_msgs : 0.0,
           1e6 * m->send_s / nd, 1e6 * m->recv_s / nl, 1e3 * m->delay_s_sum / nl,
           1e3 * m->start_s_sum / nl);
    if (m->n_rounds && round_wall > 0)
        printf(", control %.2f us/round = %.4f%% of the round (%.3f ms wall)",
               1e6 * ctl / (double)m->n_rounds, 100 * ctl / (double)m->n_rounds / round_wall,
               1e3 * round_wall);
    printf("\n# polling: %lld probes, %.2f us each (wall); rank 0 used %.3f s of CPU in %.3f s (%.2f%% "
           "of a core)\n", (long long)m->n_probes, m->n_probes ? 1e6 * m->probe_s / (double)m->n_probes : 0.0,
           m->cpu_s, wall_s, wall_s > 0 ? 100 * m->cpu_s / wall_s : 0.0);
    printf("# latent moves: %lld (%.3f MB), wait mean %.3f ms, max %.3f ms (wall, at the new "
           "leader: receive + group broadcast)\n",
           (long long)m->n_moves, m->move_bytes / 1e6,
           m->n_moves ? 1e3 * m->move_s_sum / (double)m->n_moves : 0.0, 1e3 * m->move_s_max);
    if (o->backend != TS_BE_EMU)
        printf("# %s: sum of the finished requests' final latents %.9e (same for every policy "
               "and degree, up to rounding)\n", ts_backends[o->backend].name, m->checksum_sum);
    printf("# group communicators: %lld created at start, %lld created lazily (sum over workers)\n",
           (long long)wstats[0], (long long)wstats[1]);
    fflush(stdout);
}

int ts_cmd_run(int argc, char **argv) {
    int inited = 0, rank = 0, size = 1, code = 1;
    MPI_Initialized(&inited);
    if (!inited) MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
#ifdef __linux__
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); /* sleeps end on time, not 50 us late */
#endif
    TsRunOpts o;
    if (ts_run_parse(argc, argv, &o, rank, &code)) goto finalize;
    code = 1;
    if (size < 2) {
        if (rank == 0)
            fprintf(stderr, "tetriserve run: needs at least 2 MPI ranks (rank 0 schedules, ranks 1.. "
                            "are the GPUs); run it under mpirun -np 1+W or srun -n 1+W\n");
        goto finalize;
    }
    if (o.gpus && o.gpus != size - 1) {
        if (rank == 0)
            fprintf(stderr, "tetriserve run: --gpus %d, but %d MPI ranks give %d GPU workers (start "
                            "it with mpirun -np %d or srun -n %d)\n",
                    o.gpus, size, size - 1, o.gpus + 1, o.gpus + 1);
        goto finalize;
    }

    TsErr err;
    if (o.backend == TS_BE_CUDA) {
        /* Before any work (no file is read or written yet), on every rank:
         * is there a GPU on every worker, which one each takes. Both are
         * collective and end with the same error everywhere, printed once. */
        int device = -1;
        TsStatus g = ts_nccl_backend_check(MPI_COMM_WORLD, rank != 0, &err);
        if (!g) g = ts_nccl_device_select(MPI_COMM_WORLD, rank != 0, &device, &err);
        if (g) {
            if (rank == 0) fprintf(stderr, "tetriserve run: %s\n", err.msg);
            goto finalize;
        }
    }
    TsDitConfig dcfg;
    if (ts_dit_config_preset(o.dit_preset, &dcfg, &err)) {
        if (rank == 0) fprintf(stderr, "tetriserve run: --dit-preset: %s\n", err.msg);
        goto finalize;
    }
    int n_gpus = size - 1;
    int64_t setup[TS_SETUP_WORDS] = {0};
    TsMaster m;
    TsTrace t;
    TsProfile p, xp;
    TsCostModel cm, xcm;
    int have_t = 0, have_p = 0, have_cm = 0, have_xp = 0, have_xcm = 0, *res_of = NULL;
    char outbuf[1024], popts[512] = "";
    double round_s = 0;
    memset(&m, 0, sizeof m);
    m.o = &o;
    if (rank == 0) {
        TsStatus rc = TS_OK;
        if ((rc = ts_trace_load(o.trace, &t, &err))) goto setup_done;
        have_t = 1;
        if ((rc = ts_profile_load(o.profile, &p, &err))) goto setup_done;
        have_p = 1;
        res_of = ts_xmalloc((size_t)(t.n ? t.n : 1) * sizeof *res_of);
        if ((rc = ts_cost_build(&cm, &p, &t, n_gpus, res_of, &err))) goto setup_done;
        have_cm = 1;
        m.exec = &cm;
        if (o.exec_profile) {
            if ((rc = ts_profile_load(o.exec_profile, &xp, &err))) goto setup_done;
            have_xp = 1;
            if ((rc = ts_cost_build_exec(&xcm, &xp, &t, n_gpus, &cm, p.path, &err))) goto setup_done;
            have_xcm = 1;
            m.exec = &xcm;
        }
        if (cm.degree[cm.n_deg - 1] > TS_RUN_MAX_DEGREE) {
            rc = ts_err(&err, TS_ERR_INPUT, "%s: degree %d is above the executor's limit %d",
                        p.path, cm.degree[cm.n_deg - 1], TS_RUN_MAX_DEGREE);
            goto setup_done;
        }
        for (int64_t i = 0; i < t.n && o.backend != TS_BE_EMU; i++)
            if ((rc = ts_dit_check_size(&dcfg, t.req[i].width, t.req[i].height, &err))) {
                ts_err_prefix(&err, "%s: request %lld", t.path, (long long)t.req[i].id);
                goto setup_done;
            }
        TsEngineConfig ecfg = {n_gpus, o.gpn, o.slo_scale, NULL};
        if (ecfg.gpus_per_node <= 0) ecfg.gpus_per_node = p.gpus_per_node > 0 ? p.gpus_per_node : n_gpus;
        ts_log_init(&m.log, t.n);
        m.ops = ts_policy_find(o.policy);
        if ((rc = ts_engine_init(&m.st, &t, &cm, res_of, &ecfg, &m.log, &err))) goto setup_done;
        if ((rc = m.ops->create(&m.policy, &o.pcfg, &m.st, &err))) goto setup_done;
        round_s = m.ops->round_s(m.policy);
        m.ops->describe(m.policy, popts, sizeof popts);
        if (!o.out) {
            char stem[256];
            if (mkdir("results", 0777) && errno != EEXIST) {
                rc = ts_err(&err, TS_ERR_IO, "cannot create results/: %s", strerror(errno));
                goto setup_done;
            }
            snprintf(outbuf, sizeof outbuf, "results/%s_%s_%s.h5",
                     ts_basename_noext(o.trace, stem, sizeof stem), o.policy,
                     ts_backends[o.backend].name);
            o.out = outbuf;
        }
        TsRunMeta meta = {
            .mode = "run", .backend = ts_backends[o.backend].name, .policy = m.ops->name,
            .policy_options = popts, .trace = t.path, .profile = p.path,
            .exec_profile = have_xp ? xp.path : "",
            .command_line = ts_cmd_line(argc, argv, "run"), .n_gpus = n_gpus,
            .gpus_per_node = m.st.gpus_per_node, .slo_scale = o.slo_scale, .round_s = round_s,
            .seed = o.seed,
        };
        snprintf(m.partial, sizeof m.partial, "%s.partial", o.out);
        rc = ts_results_create(m.partial, &meta, &m.rf, &err);
        if (!rc) rc = ts_snapshot(m.partial, o.out, &err);
        if (!rc && o.pid_file) {
            FILE *pf = fopen(o.pid_file, "w");
            if (!pf) {
                rc = ts_err(&err, TS_ERR_IO, "--pid-file %s: %s", o.pid_file, strerror(errno));
            } else {
                fprintf(pf, "%ld\n", (long)getpid());
                fclose(pf);
            }
        }
    setup_done:
        if (rc) {
            fprintf(stderr, "tetriserve run: %s\n", err.msg);
        } else {
            setup[0] = 1;
            setup[1] = t.n;
            setup[2] = m.st.gpus_per_node;
            setup[3] = cm.n_deg;
            for (int d = 0; d < cm.n_deg; d++) setup[4 + d] = cm.degree[d];
        }
    }
    MPI_Bcast(setup, TS_SETUP_WORDS, MPI_INT64_T, 0, MPI_COMM_WORLD);
    int64_t wstats[2] = {0, 0};
    if (!setup[0]) goto cleanup;

    TsWorker w;
    memset(&w, 0, sizeof w);
    w.workers = MPI_COMM_NULL;
    int ok = 1, all_ok = 0;
    if (o.backend == TS_BE_CUDA) /* collective over the world: rank 0 takes part, gets NULL */
        MPI_Comm_split(MPI_COMM_WORLD, rank > 0 ? 0 : MPI_UNDEFINED, rank, &w.workers);
    if (rank > 0) {
        w.rank = rank;
        w.size = size;
        w.o = &o;
        w.be = &ts_backends[o.backend];
        w.cfg = dcfg;
        w.n_req = setup[1];
        w.lat = ts_xcalloc((size_t)(w.n_req ? w.n_req : 1), sizeof *w.lat);
        if (!w.be->init) {
            ts_err(&err, TS_ERR_INTERNAL, "backend %s is not in this build", w.be->name);
            ok = 0;
        } else if (w.be->init(&w, &err)) {
            ok = 0;
        }
        if (!ok) fprintf(stderr, "tetriserve run: worker rank %d: %s\n", rank, err.msg);
    }
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok) goto worker_done; /* the file stays with complete = 0 */
    if (rank > 0 && o.backend != TS_BE_CUDA) { /* cuda: NCCL groups, made by its init */
        int32_t degs[TS_MAX_DEGREES];
        for (int d = 0; d < setup[3]; d++) degs[d] = (int32_t)setup[4 + d];
        ts_groups_precreate(&w, degs, (int)setup[3], n_gpus);
    }
    w.offset = ts_clock_sync(rank, size);
    MPI_Barrier(MPI_COMM_WORLD);

    if (rank > 0) {
        w.t_start = ts_wall_s();
        if (ts_worker_loop(&w, &err)) {
            fprintf(stderr, "tetriserve run: worker rank %d: %s\n", rank, err.msg);
            fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
#ifdef TS_HAVE_CUDA
        if (w.cu) w.n_lazy = w.cu->nw.n_lazy;
#endif
        int64_t mine[2] = {w.n_pre, w.n_lazy};
        MPI_Reduce(mine, wstats, 2, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
        code = 0;
        goto worker_done;
    }

    /* Rank 0: the run. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ts_run_on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    ts_plan_init(&m.plan);
    ts_eq_init(&m.wakes);
    m.wake_s = INFINITY;
    m.t0 = ts_wall_s();
    double cpu0 = ts_cpu_s();
    TsStatus run_rc = ts_master_loop(&m, &err);
    double wall_s = ts_wall_s() - m.t0;
    m.cpu_s = ts_cpu_s() - cpu0;
    if (!run_rc) { /* the workers' group counts, for the file and the table */
        TsRunMsg stop = {.kind = TS_RUN_MSG_STOP};
        for (int r = 1; r < size; r++) ts_master_send(&m, &stop, r);
        int64_t zero[2] = {0, 0};
        MPI_Reduce(zero, wstats, 2, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    }
    TsSummary sum;
    ts_summary_compute(&m.log, n_gpus, &sum);
    TsErr werr;
    TsStatus wrc = ts_results_finish(m.rf, &m.log, &sum, run_rc == TS_OK, &werr);
    if (!wrc) wrc = ts_master_put_stats(&m, wall_s, round_s, run_rc ? NULL : wstats, &werr);
    if (!wrc && !(wrc = ts_snapshot(m.partial, o.out, &werr))) unlink(m.partial);
    if (run_rc) {
        fprintf(stderr, "tetriserve run: %s; results so far in %s (complete = 0)\n", err.msg, o.out);
        fflush(stderr);
        fflush(stdout);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    if (wrc) {
        fprintf(stderr, "tetriserve run: %s\n", werr.msg);
    } else {
        code = 0;
        if (!o.quiet) ts_master_print(&m, &t, &p, &sum, o.out, wall_s, wstats, popts, round_s);
    }
    ts_eq_free(&m.wakes);
    ts_plan_free(&m.plan);

worker_done:
    if (rank > 0) ts_worker_free(&w);
    if (w.workers != MPI_COMM_NULL) MPI_Comm_free(&w.workers);
cleanup:
    if (rank == 0) {
        if (m.rf) ts_results_close(m.rf);
        if (m.policy) m.ops->destroy(m.policy);
        if (m.st.req) ts_engine_free(&m.st);
        if (m.log.req) ts_log_free(&m.log);
        if (have_cm) ts_cost_free(&cm);
        if (have_p) ts_profile_free(&p);
        if (have_xcm) ts_cost_free(&xcm);
        if (have_xp) ts_profile_free(&xp);
        if (have_t) ts_trace_free(&t);
        free(res_of);
        free(m.slots);
    }
finalize:
    MPI_Finalize();
    return code;
}
