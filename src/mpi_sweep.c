/* mpi_sweep.c - the `sweep` verb: the grid of ts_sweep.h spread over MPI
 * ranks (one process without mpirun works too: MPI_Init as a singleton).
 *
 * Rank 0 parses and validates everything and creates the file (complete =
 * 0) before any work; every rank parses the same argv, so they agree on the
 * grid without messages, and rank 0 broadcasts whether to go on. Then rank
 * 0 deals scenario indices on request and simulates scenarios itself in
 * between, looking for requests with MPI_Iprobe after each of its own (a
 * scenario takes milliseconds): on 2 cores a rank that only dealt would
 * waste one. Rank 0 only hears a worker between two of its own scenarios,
 * and scenarios differ in cost (a tetriserve run of 10k requests takes ~50
 * ms, an sp1 run ~4 ms), so each worker is kept topped up with a queue of
 * tasks: up to TS_SWEEP_DEPTH_MAX while many remain, shrinking with what is
 * left (guided self-scheduling) to at least TS_SWEEP_DEPTH_MIN, so that the
 * tail of the sweep stays balanced (measured: 94% parallel efficiency on 2
 * ranks, scripts/bench_sweep.sh). When rank 0 has nothing left to simulate
 * it waits in a blocking MPI_Probe, never spinning on MPI_Iprobe itself
 * (Open MPI still polls inside blocking calls, keeping that core busy at the
 * tail of the sweep; acceptable: there is no work left for it). Rows travel
 * as an MPI derived datatype built from ts_sweep_fields and land in an array
 * indexed by scenario, so the table is in grid order whatever the number of
 * ranks or the order of completion. */
#include <mpi.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ts_cmd.h"
#include "ts_sweep.h"

enum { TS_TAG_REQ = 1, TS_TAG_TASK, TS_TAG_ROW, TS_TAG_LOG, TS_TAG_FAIL };
#define TS_SWEEP_DEPTH_MIN 2 /* tasks queued per worker: hides one round trip */
#define TS_SWEEP_DEPTH_MAX 16
#define TS_STOP (-1)

typedef struct TsFailMsg {
    int64_t index;
    char msg[TS_ERR_MAX];
} TsFailMsg;

static MPI_Datatype ts_row_mpi_type(void) {
    int n = ts_sweep_n_fields;
    int len[64];
    MPI_Aint disp[64];
    MPI_Datatype types[64], tmp, row;
    for (int i = 0; i < n; i++) {
        const TsSweepField *f = &ts_sweep_fields[i];
        len[i] = f->count;
        disp[i] = (MPI_Aint)f->offset;
        types[i] = f->kind == TS_SF_I64   ? MPI_INT64_T
                   : f->kind == TS_SF_I32 ? MPI_INT32_T
                   : f->kind == TS_SF_F64 ? MPI_DOUBLE
                                          : MPI_CHAR;
    }
    MPI_Type_create_struct(n, len, disp, types, &tmp);
    MPI_Type_create_resized(tmp, 0, (MPI_Aint)sizeof(TsSweepRow), &row);
    MPI_Type_free(&tmp);
    MPI_Type_commit(&row);
    return row;
}

/* ---- rank 0 ---- */

typedef struct TsMaster {
    TsSweepRunner *r;
    const TsSweepGrid *g;
    const char *cmdline;
    MPI_Datatype row_t;
    int size;
    int64_t n_tasks, next, n_handed, n_done, n_own;
    TsSweepRow *rows; /* [n_tasks], slot = (index - slice_index) / slice_count */
    uint8_t *have;
    int *outstanding; /* tasks sent to each rank and not answered */
    uint8_t *stopped;
    int n_stopped;
    int failed;
    char fail_msg[TS_ERR_MAX + 256];
    double t0, last_progress;
    int progress;
} TsMaster;

static int64_t ts_slot_index(const TsMaster *m, int64_t slot) {
    return m->g->slice_index + slot * m->g->slice_count;
}

static void ts_master_fail(TsMaster *m, int64_t index, const char *msg) {
    if (m->failed) return;
    m->failed = 1;
    if (index >= 0) {
        char cell[256];
        ts_sweep_describe(m->g, index, cell, sizeof cell);
        snprintf(m->fail_msg, sizeof m->fail_msg, "scenario %" PRId64 " (%s): %s", index, cell, msg);
    } else {
        snprintf(m->fail_msg, sizeof m->fail_msg, "%s", msg);
    }
}

static void ts_master_progress(TsMaster *m, int final) {
    if (!m->progress) return;
    double now = ts_wall_s();
    if (!final && now - m->last_progress < 0.2) return;
    m->last_progress = now;
    double el = now - m->t0, rate = el > 0 ? (double)m->n_done / el : 0;
    double eta = rate > 0 ? (double)(m->n_tasks - m->n_done) / rate : 0;
    fprintf(stderr, "\rsweep: %" PRId64 "/%" PRId64 " scenarios  %.1f/s  ETA %.1f s   %s", m->n_done,
            m->n_tasks, rate, eta, final ? "\n" : "");
    fflush(stderr);
}

static void ts_master_store(TsMaster *m, const TsSweepRow *row) {
    int64_t x = row->index, slot = (x - m->g->slice_index) / m->g->slice_count;
    if (x < 0 || (x - m->g->slice_index) % m->g->slice_count != 0 || slot < 0 ||
        slot >= m->n_tasks || m->have[slot]) {
        char msg[128];
        snprintf(msg, sizeof msg, "a worker returned scenario %" PRId64 ", not one handed out", x);
        ts_master_fail(m, -1, msg);
        return;
    }
    m->rows[slot] = *row;
    m->have[slot] = 1;
}

/* Top rank w's queue up, or send its stop message once it holds nothing. */
static void ts_master_hand_out(TsMaster *m, int w) {
    int64_t depth = (m->n_tasks - m->next) / m->size;
    depth = depth < TS_SWEEP_DEPTH_MIN ? TS_SWEEP_DEPTH_MIN
            : depth > TS_SWEEP_DEPTH_MAX ? TS_SWEEP_DEPTH_MAX
                                         : depth;
    while (!m->failed && m->next < m->n_tasks && m->outstanding[w] < depth) {
        int64_t x = ts_slot_index(m, m->next++);
        m->n_handed++;
        m->outstanding[w]++;
        MPI_Send(&x, 1, MPI_INT64_T, w, TS_TAG_TASK, MPI_COMM_WORLD);
    }
    if ((m->failed || m->next == m->n_tasks) && m->outstanding[w] == 0 && !m->stopped[w]) {
        int64_t stop = TS_STOP;
        m->stopped[w] = 1;
        m->n_stopped++;
        MPI_Send(&stop, 1, MPI_INT64_T, w, TS_TAG_TASK, MPI_COMM_WORLD);
    }
}

/* Receive the run log that follows a row from `src` and store it. */
static void ts_master_recv_log(TsMaster *m, int src, const TsSweepRow *row) {
    MPI_Status st;
    int len;
    MPI_Probe(src, TS_TAG_LOG, MPI_COMM_WORLD, &st);
    MPI_Get_count(&st, MPI_BYTE, &len);
    char *buf = ts_xmalloc(len > 0 ? (size_t)len : 1);
    MPI_Recv(buf, len, MPI_BYTE, src, TS_TAG_LOG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    TsRunLog log;
    char opts[512];
    TsErr err;
    if (!m->failed) {
        if (ts_sweep_log_unpack(buf, (size_t)len, &log, opts, sizeof opts, &err) ||
            ts_sweep_write_scenario(m->r, row->index, &log, opts, row->round_s, m->cmdline, &err))
            ts_master_fail(m, row->index, err.msg);
        ts_log_free(&log);
    }
    free(buf);
}

/* Handle one message whose envelope is st. */
static void ts_master_serve(TsMaster *m, const MPI_Status *st) {
    int src = st->MPI_SOURCE;
    switch (st->MPI_TAG) {
    case TS_TAG_REQ: {
        int dummy;
        MPI_Recv(&dummy, 1, MPI_INT, src, TS_TAG_REQ, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        ts_master_hand_out(m, src);
        break;
    }
    case TS_TAG_ROW: {
        TsSweepRow row;
        MPI_Recv(&row, 1, m->row_t, src, TS_TAG_ROW, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        m->outstanding[src]--;
        m->n_done++;
        ts_master_store(m, &row);
        if (m->g->keep_scenarios) ts_master_recv_log(m, src, &row);
        ts_master_hand_out(m, src);
        ts_master_progress(m, 0);
        break;
    }
    case TS_TAG_FAIL: {
        TsFailMsg f;
        MPI_Recv(&f, (int)sizeof f, MPI_BYTE, src, TS_TAG_FAIL, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        f.msg[sizeof f.msg - 1] = '\0';
        m->outstanding[src]--;
        m->n_done++;
        ts_master_fail(m, f.index, f.msg);
        ts_master_hand_out(m, src);
        break;
    }
    default: {
        /* Nothing else is sent to rank 0: drain it and stop. */
        int len;
        MPI_Get_count(st, MPI_BYTE, &len);
        char *buf = ts_xmalloc(len > 0 ? (size_t)len : 1);
        MPI_Recv(buf, len, MPI_BYTE, src, st->MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        free(buf);
        ts_master_fail(m, -1, "unexpected MPI message");
    }
    }
}

static void ts_master_run_own(TsMaster *m) {
    int64_t x = ts_slot_index(m, m->next++);
    m->n_own++;
    TsSweepRow row;
    TsScenarioResult res;
    TsErr err;
    int keep = m->g->keep_scenarios;
    m->n_handed++;
    TsStatus st = ts_sweep_run_one(m->r, x, &row, keep ? &res : NULL, &err);
    m->n_done++;
    if (st == TS_OK) {
        ts_master_store(m, &row);
        if (keep && ts_sweep_write_scenario(m->r, x, &res.log, res.policy_options, res.round_s,
                                            m->cmdline, &err))
            ts_master_fail(m, x, err.msg);
    } else {
        ts_master_fail(m, x, err.msg);
    }
    if (keep) ts_log_free(&res.log);
    ts_master_progress(m, 0);
}

static void ts_master_loop(TsMaster *m) {
    int workers = m->size - 1;
    for (;;) {
        int work_left = !m->failed && m->next < m->n_tasks;
        if (!work_left && m->n_done == m->n_handed && m->n_stopped == workers) break;
        MPI_Status st;
        int flag = 0;
        if (workers > 0) MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
        if (flag) {
            ts_master_serve(m, &st);
        } else if (work_left) {
            ts_master_run_own(m);
        } else {
            MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
            ts_master_serve(m, &st);
        }
    }
    ts_master_progress(m, 1);
}

/* ---- ranks 1.. ---- */

/* Results in flight. A blocking MPI_Send of a row would wait for rank 0:
 * Open MPI's shared-memory transport completes a send of more than a few
 * hundred bytes only when the receiver hands the fragment back, and rank 0
 * only calls MPI between two of its own scenarios (measured: ~20 ms per row,
 * half the worker's time). So rows and logs go out with MPI_Isend from a
 * ring of buffers that outlives the task queue; a slot is waited for only
 * when it comes round again, long after rank 0 took it. */
#define TS_RING (2 * TS_SWEEP_DEPTH_MAX)
typedef struct TsOutbox {
    TsSweepRow row[TS_RING];
    void *log[TS_RING];
    MPI_Request req[TS_RING][2];
    int next;
} TsOutbox;

static int ts_outbox_slot(TsOutbox *o) {
    int k = o->next;
    o->next = (o->next + 1) % TS_RING;
    MPI_Waitall(2, o->req[k], MPI_STATUSES_IGNORE);
    free(o->log[k]);
    o->log[k] = NULL;
    return k;
}

static void ts_worker_loop(TsSweepRunner *r, MPI_Datatype row_t) {
    int dummy = 0, keep = r->g->keep_scenarios;
    TsOutbox *o = ts_xcalloc(1, sizeof *o);
    for (int k = 0; k < TS_RING; k++) o->req[k][0] = o->req[k][1] = MPI_REQUEST_NULL;
    MPI_Send(&dummy, 1, MPI_INT, 0, TS_TAG_REQ, MPI_COMM_WORLD);
    for (;;) {
        int64_t x;
        MPI_Recv(&x, 1, MPI_INT64_T, 0, TS_TAG_TASK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (x == TS_STOP) break;
        int k = ts_outbox_slot(o);
        TsScenarioResult res;
        TsErr err;
        if (ts_sweep_run_one(r, x, &o->row[k], keep ? &res : NULL, &err) == TS_OK) {
            MPI_Isend(&o->row[k], 1, row_t, 0, TS_TAG_ROW, MPI_COMM_WORLD, &o->req[k][0]);
            if (keep) {
                size_t len;
                o->log[k] = ts_sweep_log_pack(&res.log, res.policy_options, &len);
                MPI_Isend(o->log[k], (int)len, MPI_BYTE, 0, TS_TAG_LOG, MPI_COMM_WORLD,
                          &o->req[k][1]);
            }
        } else {
            /* Rare and final (rank 0 stops the sweep): a blocking send. */
            TsFailMsg f;
            memset(&f, 0, sizeof f);
            f.index = x;
            snprintf(f.msg, sizeof f.msg, "%s", err.msg);
            MPI_Send(&f, (int)sizeof f, MPI_BYTE, 0, TS_TAG_FAIL, MPI_COMM_WORLD);
        }
        if (keep) ts_log_free(&res.log);
    }
    for (int k = 0; k < TS_RING; k++) {
        MPI_Waitall(2, o->req[k], MPI_STATUSES_IGNORE);
        free(o->log[k]);
    }
    free(o);
}

/* ---- the verb ---- */

static void ts_print_results(const TsMaster *m, int ranks, double wall_s) {
    const TsSweepGrid *g = m->g;
    printf("#\n# %-14s %9s %9s %9s %9s\n", "policy", "scenarios", "sar_mean", "sar_min", "sar_max");
    for (int p = 0; p < g->n_policies; p++) {
        int64_t n = 0;
        double sum = 0, lo = INFINITY, hi = -INFINITY;
        for (int64_t k = 0; k < m->n_tasks; k++) {
            const TsSweepRow *row = &m->rows[k];
            if (strcmp(row->policy, g->policy[p]->name) != 0) continue;
            n++;
            sum += row->sar;
            lo = row->sar < lo ? row->sar : lo;
            hi = row->sar > hi ? row->sar : hi;
        }
        if (n)
            printf("  %-14s %9" PRId64 " %9.4f %9.4f %9.4f\n", g->policy[p]->name, n,
                   sum / (double)n, lo, hi);
    }
    printf("# %" PRId64 " scenarios in %.3f s (%.1f scenarios/s) on %d rank%s (rank 0 simulated %"
           PRId64 ") -> %s\n",
           m->n_tasks, wall_s, wall_s > 0 ? (double)m->n_tasks / wall_s : 0.0, ranks,
           ranks == 1 ? "" : "s", m->n_own, g->out_path);
}

/* The sweep proper, on every rank; returns the exit status (the same on
 * every rank). */
static int ts_sweep_mpi_run(TsSweepGrid *g, const char *cmdline, int rank, int size) {
    TsSweepRunner r;
    TsErr err;
    int status = 0, have_runner = 0;
    MPI_Datatype row_t = MPI_DATATYPE_NULL;

    if (rank == 0) {
        TsStatus st = ts_sweep_runner_init(&r, g, &err);
        have_runner = 1;
        if (st == TS_OK) st = ts_sweep_validate(&r, &err);
        if (st == TS_OK) st = ts_sweep_file_create(&r, cmdline, size, &err);
        if (st) {
            fprintf(stderr, "tetriserve sweep: %s\n", err.msg);
            status = 1;
        }
    }
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (status) goto done;
    if (rank != 0) {
        have_runner = 1;
        if (ts_sweep_runner_init(&r, g, &err)) {
            fprintf(stderr, "tetriserve sweep: rank %d: %s\n", rank, err.msg);
            status = 1;
        }
    }
    MPI_Allreduce(MPI_IN_PLACE, &status, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (status) {
        if (rank == 0) ts_sweep_file_fail(g->out_path, "a rank could not load the inputs");
        goto done;
    }

    row_t = ts_row_mpi_type();
    if (rank != 0) {
        ts_worker_loop(&r, row_t);
    } else {
        int64_t total = ts_sweep_size(g);
        TsMaster m = {
            .r = &r, .g = g, .cmdline = cmdline, .row_t = row_t, .size = size,
            .progress = isatty(STDERR_FILENO),
        };
        m.n_tasks = total > g->slice_index
                        ? (total - g->slice_index + g->slice_count - 1) / g->slice_count
                        : 0;
        m.rows = ts_xcalloc((size_t)(m.n_tasks ? m.n_tasks : 1), sizeof *m.rows);
        m.have = ts_xcalloc((size_t)(m.n_tasks ? m.n_tasks : 1), 1);
        m.outstanding = ts_xcalloc((size_t)size, sizeof *m.outstanding);
        m.stopped = ts_xcalloc((size_t)size, 1);
        if (!g->quiet) {
            ts_sweep_print_header(stdout, g, size);
            fflush(stdout);
        }
        m.t0 = m.last_progress = ts_wall_s();
        ts_master_loop(&m);
        double wall_s = ts_wall_s() - m.t0;
        if (!m.failed) {
            for (int64_t k = 0; k < m.n_tasks && !m.failed; k++)
                if (!m.have[k]) ts_master_fail(&m, ts_slot_index(&m, k), "no result came back");
        }
        if (!m.failed && ts_sweep_file_finish(g, m.rows, m.n_tasks, wall_s, &err))
            ts_master_fail(&m, -1, err.msg);
        if (m.failed) {
            ts_sweep_file_fail(g->out_path, m.fail_msg);
            fprintf(stderr, "tetriserve sweep: %s (%s keeps complete = 0)\n", m.fail_msg, g->out_path);
            status = 1;
        } else if (!g->quiet) {
            ts_print_results(&m, size, wall_s);
        }
        fflush(stdout);
        free(m.rows);
        free(m.have);
        free(m.outstanding);
        free(m.stopped);
    }
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
done:
    if (row_t != MPI_DATATYPE_NULL) MPI_Type_free(&row_t);
    if (have_runner) ts_sweep_runner_free(&r);
    return status;
}

int ts_cmd_sweep(int argc, char **argv) {
    int inited = 0, rank = 0, size = 1, rc = 0;
    MPI_Initialized(&inited);
    if (!inited) MPI_Init(NULL, NULL);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    /* Before getopt permutes argv. */
    char *cmdline = ts_xstrdup(ts_cmd_line(argc, argv, "sweep"));
    TsSweepGrid *g = ts_xcalloc(1, sizeof *g);
    TsSweepAction action;
    TsErr err;
    if (ts_sweep_parse_args(argc, argv, g, &action, &err)) {
        /* Every rank parsed the same argv and failed alike. */
        if (rank == 0) fprintf(stderr, "tetriserve sweep: %s\n", err.msg);
        rc = 2;
    } else if (action == TS_SWEEP_HELP) {
        if (rank == 0) ts_sweep_usage(stdout);
    } else if (action == TS_SWEEP_MERGE) {
        /* A serial step: rank 0 merges, the others wait for its status. */
        if (rank == 0) {
            int64_t n = 0;
            if (ts_sweep_merge(g->merge_out, g->parts, g->n_parts, &n, &err)) {
                fprintf(stderr, "tetriserve sweep: --merge: %s\n", err.msg);
                rc = 1;
            } else {
                printf("sweep: merged %d parts into %s (%" PRId64 " scenarios)\n", g->n_parts,
                       g->merge_out, n);
            }
        }
        MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    } else {
        rc = ts_sweep_mpi_run(g, cmdline, rank, size);
    }
    ts_sweep_grid_free(g);
    free(g);
    free(cmdline);
    if (!inited) MPI_Finalize();
    return rc;
}
