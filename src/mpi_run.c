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
 * wake-up and a poll interval (--poll-us), probing for completions with
 * MPI_Iprobe in between: never a busy loop.
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
 * the completion; rank 0 prints count, bytes, mean and max.
 *
 * Group communicators: created at start-up for every aligned block of k
 * GPUs for each profile degree k > 1 (MPI_Comm_create_group: only members
 * take part), and lazily, cached by GPU set, for any other set.
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
 * other; cuda is not built into this executor yet and fails at once.
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
#include "ts_cmd.h"
#include "ts_dit.h"
#include "ts_engine.h"
#include "ts_event.h"
#include "ts_results.h"
#include "ts_run.h"
#include "ts_scenario.h"

enum { TAG_CTRL = 1, TAG_DONE = 2, TAG_SYNC = 3, TAG_STATS = 4, TAG_LATENT = 1000 };
#define TS_LATENT_TAG(index) (TAG_LATENT + (int)((index) % 30000))
#define TS_GROUP_TAG 77
#define TS_SYNC_ROUNDS 8
#define TS_FLUSH_S 1.0
#define TS_IDLE_AFTER_S 0.05 /* idle workers slow their polling after this */
#define TS_IDLE_POLL_S 0.001
#define TS_FAST_POLL_S 10e-6 /* rank 0 right after a launch's expected end */
#define TS_FAST_WINDOW_S 0.002

/* ------------------------------------------------------------ options */

typedef enum { TS_BE_EMU = 0, TS_BE_CPU, TS_BE_CUDA } TsBackendId;

typedef struct TsRunOpts {
    const char *trace, *profile, *policy, *out, *dit_preset, *pid_file;
    int backend;
    double slo_scale, speedup;
    int gpn;
    int poll_us;
    int quiet;
    TsPolicyConfig pcfg;
    TsRunFault fault;
} TsRunOpts;

static void ts_sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Sleep until the monotonic clock reads `wall` (ts_wall_s's clock). */
static void ts_sleep_until(double wall) {
    if (wall <= ts_wall_s()) return;
    struct timespec ts = {(time_t)wall, (long)((wall - floor(wall)) * 1e9)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
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

/* One entry per backend: the table's first entry is the safe one. */
typedef struct TsBackend {
    const char *name;
    /* NULL: not available in this build (the reason is `missing`). */
    TsStatus (*init)(TsWorker *w, TsErr *err);
    /* Run the steps of launch m (after the latents are in place). */
    TsStatus (*steps)(TsWorker *w, const TsRunMsg *m, MPI_Comm comm, int grank, TsErr *err);
    const char *missing;
} TsBackend;

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
};

static void ts_worker_fault(TsWorker *w) {
    const TsRunFault *f = &w->o->fault;
    if (f->rank != w->rank || ts_wall_s() - w->t_start < f->after_s) return;
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
            if ((rc = ts_worker_serve_move(w, &m, err))) return rc;
        } else {
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

static TsStatus ts_worker_launch(TsWorker *w, const TsRunMsg *m, TsErr *err) {
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
                    ts_dit_noise_from_seed(*lat, floats, (uint64_t)r->id);
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
    if (leader) {
        double d[TS_RUN_DONE_WORDS] = {(double)m->seq, (double)m->slot, w->emu_start + w->offset,
                                       t_end + w->offset, moved ? t_start - t_recv : 0.0,
                                       move_bytes, w->checksum};
        MPI_Send(d, TS_RUN_DONE_WORDS, MPI_DOUBLE, 0, TAG_DONE, MPI_COMM_WORLD);
    }
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
    return ts_dit_weights_from_seed(&w->dit, 1, err);
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
            ts_dit_cond_from_seed(c, (uint64_t)r->id, txt, txt + txt_n);
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

static const TsBackend ts_backends[] = {
    {"emu", ts_emu_init, ts_emu_steps, NULL},
    {"cpu", ts_cpu_init, ts_cpu_steps, NULL},
    {"cuda", NULL, NULL, "cuda backend: not built / no CUDA device"},
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
    return TS_OK;
}

static void ts_worker_free(TsWorker *w) {
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

static volatile sig_atomic_t ts_run_signal = 0;
static void ts_run_on_signal(int sig) { ts_run_signal = sig; }

typedef struct TsSlot {
    int64_t seq;
    int32_t leader;
    double start_trace, planned_s, end_wall, timeout_wall;
    int in_use;
} TsSlot;

typedef struct TsMaster {
    const TsRunOpts *o;
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
    double last_flush;
    char partial[1100]; /* the file ts_results writes; copied to --out */
    double checksum_sum; /* cpu: sum over finished requests of their final latent's elements */
} TsMaster;

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
                int d = ts_cost_degree_index(cm, l->degree);
                msg.step_s = d >= 0 && l->n_req <= cm->max_batch
                                 ? ts_cost_step_s(cm, q->res, d, l->n_req) : 0;
            }
        }
        msg.overhead_s = finishes ? cm->overhead_s : 0;
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
        s->timeout_wall = ts_wall_s() + 2 * s->planned_s / m->o->speedup + 2.0;
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
                double lim = 2 * sl->planned_s / m->o->speedup + 2.0;
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
        double until = wall + poll;
        if (st->n_arrived < st->n_req) {
            double a = m->t0 + st->req[st->n_arrived].arrival_s / m->o->speedup;
            if (a < until) until = a;
        }
        if ((top = ts_eq_peek(&m->wakes))) {
            double a = m->t0 + top->time_s / m->o->speedup;
            if (a < until) until = a;
        }
        /* Wake at a launch's expected end, then poll finely for a moment:
         * the next decision waits for that report. */
        for (int64_t s = 0; s < m->cap_slots; s++) {
            const TsSlot *sl = &m->slots[s];
            if (!sl->in_use) continue;
            double a = sl->end_wall > wall                    ? sl->end_wall
                       : wall - sl->end_wall < TS_FAST_WINDOW_S ? wall + TS_FAST_POLL_S
                                                                : until;
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
    "                                     [--dit-preset NAME] [--gpus-per-node N] [--poll-us US]\n\n"
    "The live executor: rank 0 replays the trace in real time with policy P (the\n"
    "simulator's engine and policy code), ranks 1..W are the W GPUs (GPU g = rank g+1).\n\n"
    "  --backend B            emu: each step sleeps its profiled time / speedup and real\n"
    "                         latent bytes move between groups; cpu: the DiT of\n"
    "                         --dit-preset (default tiny) runs on the CPU, sequence-parallel\n"
    "                         over MPI; cuda: not in this build\n"
    "  --trace F.csv          request trace (SPEC.md format)\n"
    "  --profile F.csv        cost model (SPEC.md format): the step times the policy plans\n"
    "                         with, and (emu) sleeps\n"
    "  --policy P             one of: %s\n"
    "  --slo-scale X          deadline = arrival + X * slo_s (default 1.0)\n"
    "  --speedup F            emu only: trace time = wall time x F (default 1)\n"
    "  --out F.h5             results file (default results/<trace>_<policy>_<backend>.h5)\n"
    "  --dit-preset NAME      model whose latent moves (emu default flux-dev, C=16) or runs\n"
    "                         (cpu default tiny)\n"
    "  --gpus-per-node N      default: the profile's gpus_per_node, else W\n"
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
        {"pid-file", required_argument, NULL, 'I'},
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
        case 'F':
            if (ts_run_parse_fault(optarg, &o->fault, &err)) snprintf(msg, sizeof msg, "%s", err.msg);
            break;
        case 'h': {
            char names[256];
            ts_policy_names(names, sizeof names);
            if (rank == 0) printf(ts_run_usage, names, ts_policy_options_help);
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
        if (o->backend < 0) {
            snprintf(msg, sizeof msg, "--backend: unknown backend '%s' (have: emu, cpu, cuda)", backend);
        } else if (!ts_backends[o->backend].init) {
            snprintf(msg, sizeof msg, "%s", ts_backends[o->backend].missing);
            *exit_code = 1;
        }
    }
    if (!msg[0] && !ts_policy_find(o->policy)) {
        char names[256];
        ts_policy_names(names, sizeof names);
        snprintf(msg, sizeof msg, "--policy: unknown policy '%s' (have: %s)", o->policy, names);
    }
    if (!msg[0] && o->backend == TS_BE_CPU && o->speedup != 1.0)
        snprintf(msg, sizeof msg, "--speedup: only the emu backend can run faster than real time");
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

static void ts_master_print(const TsMaster *m, const TsTrace *t, const TsProfile *p,
                            const TsSummary *sum, const char *out, double wall_s,
                            const int64_t *wstats, char *popts, double round_s) {
    const TsRunOpts *o = m->o;
    ts_cmd_print_header("run", t, p);
    printf("# gpus: %d (ranks 1..%d, %d per node)  backend: %s  speedup: %g  policy: %s (%s)  "
           "slo_scale: %.3f  round_s: %.6f\n",
           m->st.n_gpus, m->st.n_gpus, m->st.gpus_per_node, ts_backends[o->backend].name,
           o->speedup, o->policy, popts, o->slo_scale, round_s);
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
           "planned length)",
           (long long)m->n_msgs, m->n_msgs ? (double)m->msg_bytes / (double)m->n_msgs : 0.0,
           1e6 * m->send_s / nd, 1e6 * m->recv_s / nl, 1e3 * m->delay_s_sum / nl);
    if (m->n_rounds && round_wall > 0)
        printf(", control %.2f us/round = %.4f%% of the round (%.3f ms wall)",
               1e6 * ctl / (double)m->n_rounds, 100 * ctl / (double)m->n_rounds / round_wall,
               1e3 * round_wall);
    printf("\n# polling: %lld probes, %.2f us each (rank 0's cost of waiting without blocking)\n",
           (long long)m->n_probes, m->n_probes ? 1e6 * m->probe_s / (double)m->n_probes : 0.0);
    printf("# latent moves: %lld (%.3f MB), wait mean %.3f ms, max %.3f ms (wall, at the new "
           "leader: receive + group broadcast)\n",
           (long long)m->n_moves, m->move_bytes / 1e6,
           m->n_moves ? 1e3 * m->move_s_sum / (double)m->n_moves : 0.0, 1e3 * m->move_s_max);
    if (o->backend == TS_BE_CPU)
        printf("# cpu: sum of the finished requests' final latents %.9e (same for every policy "
               "and degree, up to rounding)\n", m->checksum_sum);
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

    TsErr err;
    TsDitConfig dcfg;
    if (ts_dit_config_preset(o.dit_preset, &dcfg, &err)) {
        if (rank == 0) fprintf(stderr, "tetriserve run: --dit-preset: %s\n", err.msg);
        goto finalize;
    }
    int n_gpus = size - 1;
    int64_t setup[TS_SETUP_WORDS] = {0};
    TsMaster m;
    TsTrace t;
    TsProfile p;
    TsCostModel cm;
    int have_t = 0, have_p = 0, have_cm = 0, *res_of = NULL;
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
        if (cm.degree[cm.n_deg - 1] > TS_RUN_MAX_DEGREE) {
            rc = ts_err(&err, TS_ERR_INPUT, "%s: degree %d is above the executor's limit %d",
                        p.path, cm.degree[cm.n_deg - 1], TS_RUN_MAX_DEGREE);
            goto setup_done;
        }
        for (int64_t i = 0; i < t.n && o.backend == TS_BE_CPU; i++)
            if ((rc = ts_dit_check_size(&dcfg, t.req[i].width, t.req[i].height, &err))) {
                ts_err_prefix(&err, "%s: request %lld", t.path, (long long)t.req[i].id);
                goto setup_done;
            }
        TsEngineConfig ecfg = {n_gpus, o.gpn, o.slo_scale};
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
            .command_line = ts_cmd_line(argc, argv, "run"), .n_gpus = n_gpus,
            .gpus_per_node = m.st.gpus_per_node, .slo_scale = o.slo_scale, .round_s = round_s,
            .seed = 0,
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
    int ok = 1, all_ok = 0;
    if (rank > 0) {
        w.rank = rank;
        w.size = size;
        w.o = &o;
        w.be = &ts_backends[o.backend];
        w.cfg = dcfg;
        w.n_req = setup[1];
        w.lat = ts_xcalloc((size_t)(w.n_req ? w.n_req : 1), sizeof *w.lat);
        if (w.be->init(&w, &err)) {
            fprintf(stderr, "tetriserve run: worker rank %d: %s\n", rank, err.msg);
            ok = 0;
        }
    }
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok) goto worker_done; /* the file stays with complete = 0 */
    if (rank > 0) {
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
    TsStatus run_rc = ts_master_loop(&m, &err);
    double wall_s = ts_wall_s() - m.t0;
    TsSummary sum;
    ts_summary_compute(&m.log, n_gpus, &sum);
    TsErr werr;
    TsStatus wrc = ts_results_finish(m.rf, &m.log, &sum, run_rc == TS_OK, &werr);
    if (!wrc && !(wrc = ts_snapshot(m.partial, o.out, &werr))) unlink(m.partial);
    if (run_rc) {
        fprintf(stderr, "tetriserve run: %s; results so far in %s (complete = 0)\n", err.msg, o.out);
        fflush(stderr);
        fflush(stdout);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    TsRunMsg stop = {.kind = TS_RUN_MSG_STOP};
    for (int r = 1; r < size; r++) ts_master_send(&m, &stop, r);
    int64_t zero[2] = {0, 0};
    MPI_Reduce(zero, wstats, 2, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
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
cleanup:
    if (rank == 0) {
        if (m.rf) ts_results_close(m.rf);
        if (m.policy) m.ops->destroy(m.policy);
        if (m.st.req) ts_engine_free(&m.st);
        if (m.log.req) ts_log_free(&m.log);
        if (have_cm) ts_cost_free(&cm);
        if (have_p) ts_profile_free(&p);
        if (have_t) ts_trace_free(&t);
        free(res_of);
        free(m.slots);
    }
finalize:
    MPI_Finalize();
    return code;
}
