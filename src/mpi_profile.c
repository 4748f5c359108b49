/* mpi_profile.c - the `profile` verb: measure T(resolution, degree, batch)
 * under mpirun and write a profile file (SPEC.md "Profile file").
 *
 * The grid is a list of cells (width, height, degree, batch). For each
 * degree d the group is world ranks 0..d-1 (MPI_Comm_split, once per
 * degree); the other ranks wait for the cell to end in an MPI_Ibarrier
 * tested every TS_IDLE_POLL_S with a sleep in between, so they neither
 * spin on the cores the group measures nor take part in its collectives.
 *
 * One sample = one denoising step (batch b: the b requests one after the
 * other, as the live executor's cpu backend runs a batch): the group meets
 * at a barrier, each rank times MPI_Wtime from leaving the barrier to the
 * end of its step, and the sample is the maximum over the group's ranks
 * (reduced once per cell, after the timed steps, so that the reduction is
 * not timed). step_ms is the mean of the samples, step_ms_p99 the 0.99
 * quantile by linear interpolation between order statistics: with fewer
 * than 100 samples it lies between the two largest, close to the maximum.
 * With --passes P the cells are interleaved: P passes over all cells, each
 * visit its warm-up steps then its share of the timed ones, so that a
 * machine whose speed drifts over seconds (a VM: 0.8-1.35x of its mean
 * within 20 s, README "Fidelity") biases no cell more than another.
 *
 * Backends: cpu runs ts_dit_step of a seeded DiT preset over the group's
 * MPI communicator (mpi_dit.h); emu sleeps the step time that
 * --from-profile gives for the cell, which measures the pipeline and the
 * timing accuracy of the emulation (the table shows measured vs expected);
 * cuda runs ts_dit_cuda_step of the seeded preset (weights generated on the
 * device, default flux-dev) over the group's NCCL communicator (mpi_nccl.h:
 * one GPU per rank, chosen by node-local rank), and times each step on the
 * GPU's clock: a CUDA event before the step's first operation and one after
 * its last (batch b: before the first request's, after the last's), after
 * the warm-up steps; the sample is the maximum over the group, as for cpu.
 * Its metadata records the GPU model and the driver, CUDA runtime, cuBLAS
 * and NCCL versions. Before anything else, with cuda, every rank passes the
 * gates of mpi_nccl.h (a GPU on every rank, one each): without a GPU the
 * command fails within seconds with one line.
 *
 * Options are validated on rank 0 (files included) before any work; rank 0
 * broadcasts the outcome and the cells, so that every rank exits with the
 * same status and none waits forever. The profile is written by rank 0 to
 * a temporary next to --out, loaded back with ts_profile_load (what is
 * written must be readable by the simulator) and renamed into place. */
#define _DEFAULT_SOURCE /* getopt_long, nanosleep */
#include <mpi.h>

#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mpi_dit.h"
#include "ts_cmd.h"
#include "ts_dit.h"
#include "ts_profile.h"
#include "mpi_nccl.h"
#ifdef TS_HAVE_CUDA
#include "ts_dit_cuda.h"
#include "ts_kernels_cuda.h"
#endif

#define TS_PROF_MAX_SIZES 64
#define TS_PROF_MAX_DEGREES 16
#define TS_PROF_MAX_CELLS 4096
#define TS_IDLE_POLL_S 200e-6

typedef enum { TS_PB_CPU = 0, TS_PB_EMU, TS_PB_CUDA } TsProfBackend;

typedef struct TsProfOpts {
    int backend;
    const char *preset, *from_profile, *out;
    int n_sizes;
    int32_t width[TS_PROF_MAX_SIZES], height[TS_PROF_MAX_SIZES];
    int n_degrees;
    int degrees[TS_PROF_MAX_DEGREES];
    int n_batches;
    int batches[TS_MAX_BATCH];
    int warmup, reps, passes, gpn;
    uint64_t seed;
} TsProfOpts;

/* One measurement; rank 0 builds the list and broadcasts it. */
typedef struct TsProfCell {
    int32_t width, height, degree, batch;
    double expected_ms; /* emu: the step time to sleep; NAN for cpu */
} TsProfCell;

typedef struct TsProfResult {
    double mean_ms, p99_ms, min_ms, max_ms;
} TsProfResult;

static const char ts_profile_usage[] =
    "usage: mpirun -np K tetriserve profile --backend cpu|emu|cuda --out F.csv [options]\n\n"
    "Measure the step time T(resolution, degree, batch) of the DiT and write a profile file\n"
    "(SPEC.md) that simulate, sweep and run read. Degree d runs on world ranks 0..d-1; the\n"
    "other ranks wait asleep.\n\n"
    "  --backend B          cpu: the seeded DiT of --preset on the CPU, sequence-parallel over\n"
    "                       MPI; emu: sleep the step times of --from-profile (checks the\n"
    "                       pipeline and the emulation's timing: measured vs expected);\n"
    "                       cuda: the same DiT on one GPU per rank (by node-local rank),\n"
    "                       sequence-parallel over NCCL, timed with CUDA events\n"
    "  --out F.csv          the profile to write (atomically: a temporary, then rename)\n"
    "  --preset NAME        DiT preset (cpu default tiny, cuda default flux-dev; also\n"
    "                       sd3-medium); seeded weights\n"
    "  --sizes LIST         square sizes or WxH, comma-separated (default 256,512; cuda:\n"
    "                       256,512,1024,2048; emu: the sizes of --from-profile)\n"
    "  --degrees LIST       sequence-parallel degrees, each <= K (default: powers of two <= K\n"
    "                       that divide the preset's heads; emu: the profile's degrees <= K)\n"
    "  --batch LIST         requests per batched step (default 1); a batch runs its requests\n"
    "                       one after the other, as the live executor's cpu backend does\n"
    "  --steps-warmup W     untimed steps before each cell (default 2)\n"
    "  --reps R             timed steps per cell (default 10); step_ms is their mean and\n"
    "                       step_ms_p99 their 0.99 quantile by linear interpolation (with\n"
    "                       R < 100 it lies between the two largest samples)\n"
    "  --passes P           interleave: visit every cell P times, each visit its warm-up\n"
    "                       steps then its share of the R timed steps (default 1: each\n"
    "                       cell once, all R in a row); on a machine whose speed drifts,\n"
    "                       P > 1 spreads the drift over all cells instead of biasing some\n"
    "  --seed S             weights, conditioning and noise (default 1)\n"
    "  --from-profile F     emu: the profile whose step times to emulate (required for emu)\n"
    "  --gpus-per-node N    written as gpus_per_node (default K; emu: the profile's)\n"
    "  --help               this text\n";

/* ------------------------------------------------------------ options */

static int ts_prof_parse_sizes(const char *s, TsProfOpts *o) {
    char *copy = ts_xstrdup(s), *save = NULL;
    int ok = 1;
    o->n_sizes = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && ok; tok = strtok_r(NULL, ",", &save)) {
        int w, h;
        char *x = strpbrk(tok, "xX");
        if (x) {
            *x = '\0';
            ok = !ts_parse_int(tok, &w) && !ts_parse_int(x + 1, &h);
        } else {
            ok = !ts_parse_int(tok, &w);
            h = w;
        }
        ok = ok && w > 0 && h > 0 && o->n_sizes < TS_PROF_MAX_SIZES;
        if (ok) {
            o->width[o->n_sizes] = w;
            o->height[o->n_sizes] = h;
            o->n_sizes++;
        }
    }
    free(copy);
    return ok && o->n_sizes > 0 ? 0 : -1;
}

/* A sorted list without duplicates of integers in [lo, hi]. */
static int ts_prof_parse_ints(const char *s, int *out, int max, int lo, int hi) {
    int n = ts_parse_int_list(s, out, max);
    if (n <= 0) return -1;
    for (int i = 0; i < n; i++)
        if (out[i] < lo || out[i] > hi) return -1;
    for (int i = 1; i < n; i++) /* insertion sort: a handful of items */
        for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
            int t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!m || out[m - 1] != out[i]) out[m++] = out[i];
    return m;
}

/* Parse argv (every rank does, alike). Returns -1 to go on, else the exit
 * status; msg is set on errors (printed by the caller on rank 0). */
static int ts_prof_parse(int argc, char **argv, TsProfOpts *o, int rank, char *msg, size_t len) {
    static const struct option opts[] = {
        {"backend", required_argument, NULL, 'b'},      {"preset", required_argument, NULL, 'p'},
        {"sizes", required_argument, NULL, 's'},        {"degrees", required_argument, NULL, 'd'},
        {"batch", required_argument, NULL, 'B'},        {"steps-warmup", required_argument, NULL, 'w'},
        {"reps", required_argument, NULL, 'r'},         {"seed", required_argument, NULL, 'S'},
        {"from-profile", required_argument, NULL, 'f'}, {"gpus-per-node", required_argument, NULL, 'N'},
        {"out", required_argument, NULL, 'o'},          {"passes", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *backend = NULL;
    int c;
    memset(o, 0, sizeof *o);
    o->warmup = 2;
    o->reps = 10;
    o->passes = 1;
    o->seed = 1;
    o->n_batches = 1;
    o->batches[0] = 1;
    msg[0] = '\0';
    optind = 1;
    opterr = 0; /* our own one-line messages */
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int64_t v;
        switch (c) {
        case 'b': backend = optarg; break;
        case 'p': o->preset = optarg; break;
        case 'f': o->from_profile = optarg; break;
        case 'o': o->out = optarg; break;
        case 's':
            if (ts_prof_parse_sizes(optarg, o))
                snprintf(msg, len, "--sizes: '%s' is not a list of sizes (256,512 or 1024x768, "
                         "at most %d)", optarg, TS_PROF_MAX_SIZES);
            break;
        case 'd':
            if ((o->n_degrees = ts_prof_parse_ints(optarg, o->degrees, TS_PROF_MAX_DEGREES, 1,
                                                   TS_MAX_DEGREES * 64)) < 0)
                snprintf(msg, len, "--degrees: '%s' is not a list of integers >= 1", optarg);
            break;
        case 'B':
            if ((o->n_batches = ts_prof_parse_ints(optarg, o->batches, TS_MAX_BATCH, 1,
                                                   TS_MAX_BATCH)) < 0)
                snprintf(msg, len, "--batch: '%s' is not a list of integers in 1..%d", optarg,
                         TS_MAX_BATCH);
            break;
        case 'w':
            if (ts_parse_int(optarg, &o->warmup) || o->warmup < 0 || o->warmup > 1000)
                snprintf(msg, len, "--steps-warmup: '%s' is not an integer in 0..1000", optarg);
            break;
        case 'r':
            if (ts_parse_int(optarg, &o->reps) || o->reps < 1 || o->reps > 100000)
                snprintf(msg, len, "--reps: '%s' is not an integer in 1..100000", optarg);
            break;
        case 'P':
            if (ts_parse_int(optarg, &o->passes) || o->passes < 1 || o->passes > 100000)
                snprintf(msg, len, "--passes: '%s' is not an integer in 1..100000", optarg);
            break;
        case 'S':
            if (ts_parse_int64(optarg, &v) || v < 0)
                snprintf(msg, len, "--seed: '%s' is not an integer >= 0", optarg);
            else
                o->seed = (uint64_t)v;
            break;
        case 'N':
            if (ts_parse_int(optarg, &o->gpn) || o->gpn < 1)
                snprintf(msg, len, "--gpus-per-node: '%s' is not an integer >= 1", optarg);
            break;
        case 'h':
            if (rank == 0) fputs(ts_profile_usage, stdout);
            return 0;
        case ':': snprintf(msg, len, "option '%s' needs a value", argv[optind - 1]); break;
        default: snprintf(msg, len, "unknown option '%s' (try --help)", argv[optind - 1]); break;
        }
        if (msg[0]) return 2;
    }
    if (optind < argc) {
        snprintf(msg, len, "unexpected argument '%s'", argv[optind]);
        return 2;
    }
    if (!backend) {
        snprintf(msg, len, "--backend is required (cpu, emu or cuda)");
        return 2;
    }
    if (!strcmp(backend, "cpu")) o->backend = TS_PB_CPU;
    else if (!strcmp(backend, "emu")) o->backend = TS_PB_EMU;
    else if (!strcmp(backend, "cuda")) o->backend = TS_PB_CUDA;
    else {
        snprintf(msg, len, "--backend: unknown backend '%s' (have: cpu, emu, cuda)", backend);
        return 2;
    }
    if (!o->out) {
        snprintf(msg, len, "--out is required");
        return 2;
    }
    if (o->passes > o->reps) {
        snprintf(msg, len, "--passes %d: more passes than timed steps (--reps %d); each pass "
                 "times at least one step of every cell", o->passes, o->reps);
        return 2;
    }
    if (o->backend == TS_PB_EMU && !o->from_profile) {
        snprintf(msg, len, "--backend emu needs --from-profile F.csv (the step times to emulate)");
        return 2;
    }
    if (o->backend != TS_PB_EMU && o->from_profile) {
        snprintf(msg, len, "--from-profile: only the emu backend reads a profile");
        return 2;
    }
    if (!o->preset) o->preset = o->backend == TS_PB_CUDA ? "flux-dev" : "tiny";
    return -1;
}

static int ts_prof_dir_writable(const char *path, char *msg, size_t len) {
    char *dir = ts_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, strlen(dir) + 1, ".");
    else if (slash == dir) slash[1] = '\0';
    else *slash = '\0';
    struct stat st;
    int rc = 0;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(msg, len, "--out: '%s' is a directory", path);
        rc = -1;
    } else if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(msg, len, "--out: directory '%s' does not exist", dir);
        rc = -1;
    } else if (access(dir, W_OK) != 0) {
        snprintf(msg, len, "--out: directory '%s' is not writable: %s", dir, strerror(errno));
        rc = -1;
    }
    free(dir);
    return rc;
}

/* Rank 0: validate what needs files or the world size, fill the defaults
 * that depend on them and build the cells. Returns -1 to go on, else the
 * exit status with msg set. */
static int ts_prof_plan(TsProfOpts *o, int world, TsProfCell **cells_out, int *n_out,
                        TsProfile *from, int *have_from, char *msg, size_t len) {
    TsErr err;
    TsDitConfig cfg;
    *cells_out = NULL;
    *n_out = 0;
    if (ts_dit_config_preset(o->preset, &cfg, &err)) {
        snprintf(msg, len, "--preset: %s", err.msg);
        return 2;
    }
    if (ts_prof_dir_writable(o->out, msg, len)) return 1;
    if (o->backend == TS_PB_EMU) {
        if (ts_profile_load(o->from_profile, from, &err)) {
            snprintf(msg, len, "--from-profile: %s", err.msg);
            return 1;
        }
        *have_from = 1;
        if (!o->gpn) o->gpn = from->gpus_per_node;
    }
    if (!o->gpn) o->gpn = world;

    int degrees_given = o->n_degrees > 0;
    if (!o->n_sizes) {
        if (o->backend == TS_PB_EMU) { /* the profile's sizes, in file order */
            for (int i = 0; i < from->n_rows && o->n_sizes < TS_PROF_MAX_SIZES; i++) {
                int seen = 0;
                for (int j = 0; j < o->n_sizes; j++)
                    seen |= o->width[j] == from->rows[i].width && o->height[j] == from->rows[i].height;
                if (!seen) {
                    o->width[o->n_sizes] = from->rows[i].width;
                    o->height[o->n_sizes++] = from->rows[i].height;
                }
            }
        } else {
            o->n_sizes = o->backend == TS_PB_CUDA ? 4 : 2; /* cuda: the paper's four */
            for (int i = 0; i < o->n_sizes; i++) o->width[i] = o->height[i] = 256 << i;
        }
    }
    if (!degrees_given) {
        if (o->backend == TS_PB_EMU) {
            int32_t d[TS_PROF_MAX_DEGREES];
            int n = ts_profile_degrees(from, d, TS_PROF_MAX_DEGREES);
            for (int i = 0; i < n; i++)
                if (d[i] <= world) o->degrees[o->n_degrees++] = d[i];
        } else {
            for (int d = 1; d <= world && o->n_degrees < TS_PROF_MAX_DEGREES; d *= 2)
                if (cfg.heads % d == 0) o->degrees[o->n_degrees++] = d;
        }
        if (!o->n_degrees) {
            snprintf(msg, len, "--degrees: no usable degree <= %d ranks", world);
            return 2;
        }
    }
    for (int i = 0; i < o->n_degrees; i++) {
        int d = o->degrees[i];
        if (d > world) {
            snprintf(msg, len, "--degrees: degree %d needs %d ranks, this run has %d (mpirun -np %d)",
                     d, d, world, d);
            return 2;
        }
        if (o->backend != TS_PB_EMU && cfg.heads % d) {
            snprintf(msg, len, "--degrees: degree %d does not divide the %d heads of preset %s", d,
                     cfg.heads, cfg.name);
            return 2;
        }
    }
    for (int i = 0; i < o->n_sizes; i++)
        if (ts_dit_check_size(&cfg, o->width[i], o->height[i], &err)) {
            snprintf(msg, len, "--sizes: %s", err.msg);
            return 2;
        }
    if (o->backend == TS_PB_CPU) {
        /* Every rank holds the whole model: refuse what cannot fit. */
        TsDit m;
        if (ts_dit_init(&m, &cfg, &err)) {
            snprintf(msg, len, "--preset: %s", err.msg);
            return 2;
        }
        double need = (double)m.n_params * sizeof(float) * world;
        ts_dit_free(&m);
        double ram = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
        if (ram > 0 && need > 0.8 * ram) {
            snprintf(msg, len, "--preset %s: %.1f GB of float32 weights per rank x %d ranks do not "
                     "fit in %.1f GB of RAM", o->preset, need / world / 1e9, world, ram / 1e9);
            return 1;
        }
    }

    int cap = o->n_sizes * o->n_degrees * o->n_batches, n = 0;
    if (cap > TS_PROF_MAX_CELLS) {
        snprintf(msg, len, "%d cells (sizes x degrees x batches) exceed %d", cap, TS_PROF_MAX_CELLS);
        return 2;
    }
    TsProfCell *cells = ts_xcalloc((size_t)cap, sizeof *cells);
    for (int s = 0; s < o->n_sizes; s++)
        for (int d = 0; d < o->n_degrees; d++)
            for (int b = 0; b < o->n_batches; b++) {
                TsProfCell c = {o->width[s], o->height[s], o->degrees[d], o->batches[b], NAN};
                if (o->backend == TS_PB_EMU) {
                    int extra = 0;
                    if (ts_profile_step_ms(from, c.width, c.height, c.degree, c.batch,
                                           &c.expected_ms, &extra, &err)) {
                        if (!degrees_given) continue; /* a hole of the profile: not asked for */
                        snprintf(msg, len, "--from-profile: %s", err.msg);
                        free(cells);
                        return 1;
                    }
                    if (extra)
                        ts_warn("profile: %dx%d is outside %s's sizes at degree %d: emulating an "
                                "extrapolated %.3f ms", c.width, c.height, from->path, c.degree,
                                c.expected_ms);
                }
                cells[n++] = c;
            }
    if (!n) {
        snprintf(msg, len, "--from-profile: %s has no row for the sizes and degrees asked for",
                 o->from_profile);
        free(cells);
        return 1;
    }
    *cells_out = cells;
    *n_out = n;
    return -1;
}

/* ------------------------------------------------------------ measuring */

static void ts_prof_sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* A barrier that sleeps while it waits (see the header comment). */
static void ts_prof_idle_barrier(MPI_Comm c) {
    MPI_Request req;
    int done = 0;
    MPI_Ibarrier(c, &req);
    for (;;) {
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done) return;
        ts_prof_sleep_s(TS_IDLE_POLL_S);
    }
}

/* The model's state for one cell on one rank of its group. */
typedef struct TsProfCpu {
    const TsDit *m;
    TsDitWork work;
    int have_work;
    TsDitComm comm;
    TsMpiDitCtx ctx;
    float *cond_mem;     /* [batch][txt + pooled] */
    float *latents;      /* [batch][latent floats] */
    int64_t lat_n, cond_n;
} TsProfCpu;

static TsStatus ts_prof_cpu_step(TsProfCpu *p, const TsProfCell *c, int i, int total, TsErr *err) {
    const TsDitConfig *cfg = &p->m->cfg;
    int64_t txt_n = (int64_t)cfg->txt_tokens * cfg->ctx_dim;
    float t = ts_dit_schedule_t(i % total, total), t_next = ts_dit_schedule_t(i % total + 1, total);
    for (int b = 0; b < c->batch; b++) {
        float *cm = p->cond_mem + b * p->cond_n;
        TsDitCond cond = {cm, cm + txt_n, 3.5f};
        TsStatus rc = ts_dit_step(p->m, &p->work, &p->comm, &cond, t, t_next,
                                  p->latents + b * p->lat_n, err);
        if (rc) return rc;
    }
    return TS_OK;
}

/* The GPU side of the cuda backend: one per process, for every cell. */
typedef struct TsProfGpu TsProfGpu;
#ifdef TS_HAVE_CUDA
struct TsProfGpu {
    TsNcclWorld nw;
    int have_nw;
    TsDitCuda dm;
    int have_dm;
    void *ev0, *ev1;
};

static TsStatus ts_prof_gpu_init(TsProfGpu *p, const TsDit *m, uint64_t seed, TsErr *err) {
    /* collective over the world: every rank is a GPU here */
    TsStatus rc = ts_nccl_world_init(&p->nw, MPI_COMM_WORLD, TS_CUDA_TIMEOUT_S, err);
    if (rc) return rc;
    p->have_nw = 1;
    if ((rc = ts_dit_cuda_init_seeded(&p->dm, m, seed, err))) return rc;
    p->have_dm = 1;
    if (ts_cuda_event_create(&p->ev0) || ts_cuda_event_create(&p->ev1))
        return ts_err(err, TS_ERR_SYSTEM, "%s", ts_cuda_last_error());
    return TS_OK;
}

static void ts_prof_gpu_free(TsProfGpu *p) {
    (void)ts_cuda_event_destroy(p->ev0);
    (void)ts_cuda_event_destroy(p->ev1);
    if (p->have_dm) ts_dit_cuda_free(&p->dm);
    if (p->have_nw) ts_nccl_world_free(&p->nw);
}

/* One visit of a cell on a rank of its group: t[i] = the GPU time (ms) of
 * timed step i of n_timed. */
static TsStatus ts_prof_gpu_cell(const TsProfOpts *o, TsProfGpu *p, const TsProfCell *c, MPI_Comm mg,
                                 int grank, int n_timed, double *t, TsErr *err) {
    const TsDitConfig *cfg = &p->dm.m->cfg;
    int64_t n = ts_dit_latent_floats(cfg, c->width, c->height);
    float *lat[TS_MAX_BATCH] = {NULL}, *host = ts_xmalloc(sizeof(float) * (size_t)n);
    TsDitCudaCond cond[TS_MAX_BATCH];
    TsDitCudaWork work;
    TsNcclGroup *g = NULL;
    TsDitCudaComm comm;
    int ranks[TS_NCCL_MAX_DEGREE], n_cond = 0, have_work = 0;
    TsStatus rc = TS_OK;
    memset(cond, 0, sizeof cond);
    for (int a = 0; a < c->degree; a++) ranks[a] = a;
    if ((rc = ts_nccl_group_get(&p->nw, ranks, c->degree, &g, err))) goto cleanup;
    ts_nccl_dit_comm(g, &comm);
    if ((rc = ts_dit_cuda_work_init(&work, &p->dm, c->width, c->height, c->degree, grank, err)))
        goto cleanup;
    have_work = 1;
    for (int b = 0; b < c->batch; b++) {
        uint64_t s = o->seed * 1000003u + (uint64_t)b; /* as the cpu backend's cells */
        if (ts_cuda_malloc((void **)&lat[b], sizeof(float) * (size_t)n)) {
            rc = ts_err(err, TS_ERR_SYSTEM, "%s", ts_cuda_last_error());
            goto cleanup;
        }
        ts_dit_noise_from_seed(host, n, s);
        if ((rc = ts_dit_cuda_upload(&p->dm, lat[b], host, n, err))) goto cleanup;
        if ((rc = ts_dit_cuda_cond_seeded(&cond[b], &p->dm, s, 3.5f, err))) goto cleanup;
        n_cond++;
    }
    int total = o->warmup + n_timed;
    for (int i = 0; i < total; i++) {
        MPI_Barrier(mg); /* the group starts each step together, as for cpu */
        float t_s = ts_dit_schedule_t(i % total, total), t_n = ts_dit_schedule_t(i % total + 1, total);
        for (int b = 0; b < c->batch; b++) {
            rc = ts_dit_cuda_step_timed(&p->dm, &work, &comm, &cond[b], t_s, t_n, lat[b],
                                        b == 0 ? p->ev0 : NULL, b == c->batch - 1 ? p->ev1 : NULL, err);
            if (rc) goto cleanup;
        }
        float ms = 0;
        if (ts_cuda_event_elapsed_ms(p->ev0, p->ev1, &ms)) {
            rc = ts_err(err, TS_ERR_SYSTEM, "%s", ts_cuda_last_error());
            goto cleanup;
        }
        if (i >= o->warmup) t[i - o->warmup] = ms;
    }
cleanup:
    for (int b = 0; b < n_cond; b++) ts_dit_cuda_cond_free(&cond[b]);
    for (int b = 0; b < TS_MAX_BATCH; b++)
        if (lat[b]) (void)ts_cuda_free(lat[b]);
    if (have_work) ts_dit_cuda_work_free(&work);
    free(host);
    return rc;
}
#endif

/* One visit of a cell on a rank of its group: o->warmup untimed steps,
 * then n timed ones; on the group's rank 0, out[0..n) gets the per-step
 * maxima over the group (reduced after the timed steps, so that the
 * reduction is not timed). */
static TsStatus ts_prof_cell(const TsProfOpts *o, const TsDit *m, TsProfGpu *gpu, const TsProfCell *c,
                             MPI_Comm g, int n, double *out, TsErr *err) {
    TsProfCpu p = {0};
    int grank;
    MPI_Comm_rank(g, &grank);
    double *t = ts_xcalloc((size_t)n, sizeof *t);
    TsStatus rc = TS_OK;
#ifdef TS_HAVE_CUDA
    if (o->backend == TS_PB_CUDA) {
        if ((rc = ts_prof_gpu_cell(o, gpu, c, g, grank, n, t, err))) goto done;
        goto reduce;
    }
#else
    (void)gpu;
#endif
    if (o->backend == TS_PB_CPU) {
        const TsDitConfig *cfg = &m->cfg;
        p.m = m;
        if ((rc = ts_dit_work_init(&p.work, m, c->width, c->height, c->degree, grank, err)))
            goto done;
        p.have_work = 1;
        ts_mpi_dit_comm(g, &p.ctx, &p.comm);
        p.lat_n = ts_dit_latent_floats(cfg, c->width, c->height);
        p.cond_n = (int64_t)cfg->txt_tokens * cfg->ctx_dim + cfg->pooled_dim;
        p.latents = ts_xmalloc((size_t)(p.lat_n * c->batch) * sizeof(float));
        p.cond_mem = ts_xmalloc((size_t)(p.cond_n * c->batch) * sizeof(float));
        for (int b = 0; b < c->batch; b++) {
            uint64_t s = o->seed * 1000003u + (uint64_t)b;
            ts_dit_noise_from_seed(p.latents + b * p.lat_n, p.lat_n, s);
            ts_dit_cond_from_seed(cfg, s, p.cond_mem + b * p.cond_n,
                                  p.cond_mem + b * p.cond_n + (int64_t)cfg->txt_tokens * cfg->ctx_dim);
        }
    }
    int total = o->warmup + n;
    for (int i = 0; i < total; i++) {
        MPI_Barrier(g);
        double t0 = MPI_Wtime();
        if (o->backend == TS_PB_CPU) {
            if ((rc = ts_prof_cpu_step(&p, c, i, total, err))) goto done;
        } else {
            ts_prof_sleep_s(c->expected_ms * 1e-3);
        }
        if (i >= o->warmup) t[i - o->warmup] = 1e3 * (MPI_Wtime() - t0);
    }
#ifdef TS_HAVE_CUDA
reduce:
#endif
    MPI_Reduce(t, out, n, MPI_DOUBLE, MPI_MAX, 0, g);
done:
    if (p.have_work) ts_dit_work_free(&p.work);
    free(p.latents);
    free(p.cond_mem);
    free(t);
    return rc;
}

/* The statistics of a cell's n samples (ms; sorted in place). */
static void ts_prof_stats(double *ms, int n, TsProfResult *res) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += ms[i];
    qsort(ms, (size_t)n, sizeof *ms, ts_cmp_double);
    res->mean_ms = sum / n;
    res->p99_ms = ts_quantile_sorted(ms, (size_t)n, 0.99);
    res->min_ms = ms[0];
    res->max_ms = ms[n - 1];
}

/* ------------------------------------------------------------ output */

static void ts_prof_cpu_name(char *buf, size_t len) {
    snprintf(buf, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *v = strchr(line, ':');
            if (v) {
                v = ts_trim(v + 1);
                snprintf(buf, len, "%s", v);
            }
            break;
        }
    fclose(f);
}

static void ts_prof_mpi_version(char *buf, size_t len) {
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int n = 0;
    MPI_Get_library_version(v, &n);
    v[strcspn(v, ",\n")] = '\0'; /* "Open MPI v4.1.4, package: ..." */
    snprintf(buf, len, "%s", ts_trim(v));
}

static void ts_prof_blas_version(char *buf, size_t len) {
#ifdef OPENBLAS_VERSION
    char v[256];
    snprintf(v, sizeof v, "%s", openblas_get_config());
    int th = openblas_get_num_threads();
    snprintf(buf, len, "%s (%d thread%s per rank)", ts_trim(v), th, th == 1 ? "" : "s");
#else
    snprintf(buf, len, "BLAS of unknown version");
#endif
}

typedef struct TsProfMeta {
    char cpu[256], mpi[128], blas[320], date[32];
    long cores;
    char gpu[512], cuda[256], nccl[64]; /* cuda */
} TsProfMeta;

#ifdef TS_HAVE_CUDA
/* Collective: the GPU of every rank (the same model everywhere, or each
 * rank's), the driver, CUDA, cuBLAS and NCCL versions. */
static void ts_prof_gpu_meta(TsProfMeta *mt, int world) {
    TsCudaDeviceInfo info;
    char mine[256] = "unknown GPU", *all = ts_xcalloc((size_t)world, sizeof mine);
    if (ts_cuda_device_info(&info) == 0)
        snprintf(mine, sizeof mine, "%s (sm_%d%d, %d SMs, %.1f GiB)", info.name, info.sm_major,
                 info.sm_minor, info.sms, info.total_bytes / (1024.0 * 1024.0 * 1024.0));
    MPI_Allgather(mine, (int)sizeof mine, MPI_CHAR, all, (int)sizeof mine, MPI_CHAR, MPI_COMM_WORLD);
    int same = 1;
    for (int r = 1; r < world; r++) same &= !strcmp(all, all + (size_t)r * sizeof mine);
    if (same) {
        snprintf(mt->gpu, sizeof mt->gpu, "%s x %d", mine, world);
    } else { /* a mixed machine: say so, rank by rank, as far as it fits */
        size_t n = (size_t)snprintf(mt->gpu, sizeof mt->gpu, "mixed:");
        for (int r = 0; r < world && n < sizeof mt->gpu; r++)
            n += (size_t)snprintf(mt->gpu + n, sizeof mt->gpu - n, " rank %d %s;", r,
                                  all + (size_t)r * sizeof mine);
    }
    free(all);
    ts_cuda_versions(mt->cuda, sizeof mt->cuda);
    ts_nccl_version(mt->nccl, sizeof mt->nccl);
}
#endif

static TsStatus ts_prof_write(const TsProfOpts *o, const TsProfMeta *mt, const char *cmdline,
                              int world, const TsProfile *from, const TsProfCell *cells,
                              const TsProfResult *res, int n, TsErr *err) {
    size_t tlen = strlen(o->out) + 32;
    char *tmp = ts_xmalloc(tlen);
    snprintf(tmp, tlen, "%s.tmp.%ld", o->out, (long)getpid());
    TsStatus st = TS_OK;
    FILE *f = fopen(tmp, "w");
    if (!f) {
        st = ts_err(err, TS_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    if (o->backend == TS_PB_CPU) {
        fprintf(f, "# model: tetriserve-dit-%s (seeded weights)\n", o->preset);
        fprintf(f, "# gpu: cpu (%s, %d ranks on %ld cores)\n", mt->cpu, world, mt->cores);
    } else if (o->backend == TS_PB_CUDA) {
        fprintf(f, "# model: tetriserve-dit-%s (seeded weights, bf16 GEMMs)\n", o->preset);
        fprintf(f, "# gpu: %s\n", mt->gpu);
    } else {
        fprintf(f, "# model: %s (emulated)\n", from->model[0] ? from->model : "?");
        fprintf(f, "# gpu: emu of %s (sleeps on %s, %d ranks on %ld cores)\n",
                from->gpu[0] ? from->gpu : "?", mt->cpu, world, mt->cores);
    }
    fprintf(f, "# gpus_per_node: %d\n", o->gpn);
    fprintf(f, "# request_overhead_ms: %g\n", o->backend == TS_PB_EMU ? from->request_overhead_ms : 0.0);
    if (o->backend == TS_PB_CUDA)
        fprintf(f, "# source: measured with \"%s\" on %s, tetriserve %s, %s, %s, %s, host %s, "
                "warm-up %d, reps %d, passes %d\n", cmdline, mt->date, ts_version_string(), mt->cuda,
                mt->nccl, mt->mpi, mt->cpu, o->warmup, o->reps, o->passes);
    else
        fprintf(f, "# source: measured with \"%s\" on %s, tetriserve %s, %s, %s, warm-up %d, reps %d, "
                "passes %d\n", cmdline, mt->date, ts_version_string(), mt->mpi, mt->blas, o->warmup,
                o->reps, o->passes);
    if (o->passes > 1)
        fprintf(f, "# source: cells interleaved: %d passes over all cells, each visit %d warm-up "
                "steps then about %d timed\n", o->passes, o->warmup, o->reps / o->passes);
    if (o->backend == TS_PB_EMU)
        fprintf(f, "# source: emu: each step sleeps the step time of %s (request_overhead_ms "
                "copied from it)\n", o->from_profile);
    if (o->backend == TS_PB_CUDA)
        fprintf(f, "# timing: one sample = max over the group's ranks of the GPU time between a CUDA "
                "event before the step's first operation and one after its last, after a barrier "
                "(batch b: its b requests one after the other); step_ms = mean of the samples, "
                "step_ms_p99 = their 0.99 quantile by linear interpolation (with fewer than 100 "
                "samples: between the two largest)\n");
    else
        fprintf(f, "# timing: one sample = max over the group's ranks of MPI_Wtime from a barrier to "
                "the end of the step (batch b: its b requests one after the other); step_ms = mean "
                "of the samples, step_ms_p99 = their 0.99 quantile by linear interpolation (with "
                "fewer than 100 samples: between the two largest)\n");
    fprintf(f, "width,height,degree,batch,step_ms,step_ms_p99\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "%d,%d,%d,%d,%.3f,%.3f\n", cells[i].width, cells[i].height, cells[i].degree,
                cells[i].batch, res[i].mean_ms, res[i].p99_ms);
    if (fflush(f) || ferror(f) || fsync(fileno(f))) {
        st = ts_err(err, TS_ERR_IO, "%s: write error: %s", tmp, strerror(errno));
        fclose(f);
        goto done;
    }
    if (fclose(f)) {
        st = ts_err(err, TS_ERR_IO, "%s: write error: %s", tmp, strerror(errno));
        goto done;
    }
    /* What we write must be what the simulator reads. */
    TsProfile back;
    if ((st = ts_profile_load(tmp, &back, err))) {
        ts_err_prefix(err, "the profile written does not load back (a bug)");
        goto done;
    }
    if (back.n_rows != n)
        st = ts_err(err, TS_ERR_INTERNAL, "%s: %d rows written, %d read back", tmp, n, back.n_rows);
    ts_profile_free(&back);
    if (st) goto done;
    if (rename(tmp, o->out))
        st = ts_err(err, TS_ERR_IO, "%s: cannot rename to %s: %s", tmp, o->out, strerror(errno));
done:
    if (st) remove(tmp);
    free(tmp);
    return st;
}

static void ts_prof_print_header(const TsProfOpts *o, const TsProfMeta *mt, const TsDit *m,
                                 int world, int n_cells) {
    printf("# tetriserve %s profile\n", ts_version_string());
    if (o->backend == TS_PB_CPU)
        printf("# backend: cpu  model: %s (seeded weights, seed %llu, %lld parameters)\n", o->preset,
               (unsigned long long)o->seed, (long long)m->n_params);
    else if (o->backend == TS_PB_CUDA)
        printf("# backend: cuda  model: %s (seeded weights, seed %llu, %lld parameters, bf16)\n"
               "# gpu: %s; %s, %s\n", o->preset, (unsigned long long)o->seed, (long long)m->n_params,
               mt->gpu, mt->cuda, mt->nccl);
    else
        printf("# backend: emu  from-profile: %s\n", o->from_profile);
    printf("# machine: %s, %d ranks on %ld cores; %s; %s\n", mt->cpu, world, mt->cores, mt->mpi,
           mt->blas);
    printf("# grid: sizes");
    for (int i = 0; i < o->n_sizes; i++) printf("%s%dx%d", i ? "," : " ", o->width[i], o->height[i]);
    printf("  degrees");
    for (int i = 0; i < o->n_degrees; i++) printf("%s%d", i ? "," : " ", o->degrees[i]);
    printf("  batch");
    for (int i = 0; i < o->n_batches; i++) printf("%s%d", i ? "," : " ", o->batches[i]);
    printf("  (%d cells)  warm-up %d  reps %d  passes %d%s\n", n_cells, o->warmup, o->reps, o->passes,
           o->passes > 1 ? " (cells interleaved)" : "");
    printf("# timing: sample = max over the group of one step (%s); p99 = "
           "linear-interpolation quantile of %d samples%s\n",
           o->backend == TS_PB_CUDA ? "CUDA events around it, after a barrier" : "MPI_Wtime after a barrier",
           o->reps, o->reps < 100 ? " (between the two largest)" : "");
    printf("# out: %s\n", o->out);
    printf("%6s %6s %6s %5s %10s %10s %10s %10s %8s", "width", "height", "degree", "batch",
           "step_ms", "p99_ms", "min_ms", "max_ms", "speedup");
    if (o->backend == TS_PB_EMU) printf(" %11s %7s", "expected_ms", "err_%");
    printf("\n");
    fflush(stdout);
}

static void ts_prof_print_row(const TsProfOpts *o, const TsProfCell *cells, const TsProfResult *res,
                              int i) {
    const TsProfCell *c = &cells[i];
    double base = NAN;
    for (int j = 0; j <= i; j++)
        if (cells[j].width == c->width && cells[j].height == c->height && cells[j].batch == c->batch &&
            cells[j].degree == 1)
            base = res[j].mean_ms;
    printf("%6d %6d %6d %5d %10.3f %10.3f %10.3f %10.3f", c->width, c->height, c->degree, c->batch,
           res[i].mean_ms, res[i].p99_ms, res[i].min_ms, res[i].max_ms);
    if (isnan(base)) printf(" %8s", "-");
    else printf(" %8.2f", base / res[i].mean_ms);
    if (o->backend == TS_PB_EMU)
        printf(" %11.3f %+7.2f", c->expected_ms, 100 * (res[i].mean_ms - c->expected_ms) / c->expected_ms);
    printf("\n");
    fflush(stdout);
}

/* ------------------------------------------------------------ the verb */

static int ts_prof_main(int argc, char **argv, int rank, int world) {
    char msg[TS_ERR_MAX + 128] = "";
    char *cmdline = ts_xstrdup(ts_cmd_line(argc, argv, "profile")); /* before getopt permutes */
    TsProfOpts o;
    TsProfile from = {0};
    int have_from = 0, n_cells = 0, status;
    TsProfCell *cells = NULL;
    TsProfResult *res = NULL;
    double *samples = NULL; /* [cell][reps] ms, rank 0 */
    int *n_done = NULL;     /* [cell] samples so far */
    TsDit m = {0};
    int have_m = 0, failed = 0;
    MPI_Comm *groups = NULL;
    TsProfGpu *gpu = NULL;
    TsErr err;

    status = ts_prof_parse(argc, argv, &o, rank, msg, sizeof msg);
    if (status < 0 && o.backend == TS_PB_CUDA) {
        /* before any work, on every rank: a GPU each (mpi_nccl.h); the
         * same line everywhere, printed once */
        int device = -1;
        TsStatus g = ts_nccl_backend_check(MPI_COMM_WORLD, 1, &err);
        if (!g) g = ts_nccl_device_select(MPI_COMM_WORLD, 1, &device, &err);
        if (g) {
            snprintf(msg, sizeof msg, "%s", err.msg);
            status = 1;
        }
    }
    if (status < 0 && rank == 0)
        status = ts_prof_plan(&o, world, &cells, &n_cells, &from, &have_from, msg, sizeof msg);
    if (status >= 0 && msg[0] && rank == 0) fprintf(stderr, "tetriserve profile: %s\n", msg);
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (status >= 0) goto done;
    status = 0;

    /* Rank 0 filled defaults (from files and the world size): share them. */
    int32_t shared[4] = {o.gpn, o.n_sizes, o.n_degrees, n_cells};
    MPI_Bcast(shared, 4, MPI_INT32_T, 0, MPI_COMM_WORLD);
    o.gpn = shared[0], o.n_sizes = shared[1], o.n_degrees = shared[2], n_cells = shared[3];
    MPI_Bcast(o.width, TS_PROF_MAX_SIZES, MPI_INT32_T, 0, MPI_COMM_WORLD);
    MPI_Bcast(o.height, TS_PROF_MAX_SIZES, MPI_INT32_T, 0, MPI_COMM_WORLD);
    MPI_Bcast(o.degrees, TS_PROF_MAX_DEGREES, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank) cells = ts_xcalloc((size_t)n_cells, sizeof *cells);
    MPI_Bcast(cells, (int)((size_t)n_cells * sizeof *cells), MPI_BYTE, 0, MPI_COMM_WORLD);
    res = ts_xcalloc((size_t)n_cells, sizeof *res);

    if (o.backend != TS_PB_EMU) {
        TsDitConfig cfg;
        failed = ts_dit_config_preset(o.preset, &cfg, &err) || ts_dit_init(&m, &cfg, &err);
        have_m = !failed;
        /* cuda: the table only, the weights are generated on the device */
        if (!failed && o.backend == TS_PB_CPU) failed = ts_dit_weights_from_seed(&m, o.seed, &err) != TS_OK;
        if (failed) goto done;
    }
    TsProfMeta mt = {0};
    ts_prof_cpu_name(mt.cpu, sizeof mt.cpu);
    ts_prof_mpi_version(mt.mpi, sizeof mt.mpi);
    ts_prof_blas_version(mt.blas, sizeof mt.blas);
    mt.cores = sysconf(_SC_NPROCESSORS_ONLN);
#ifdef TS_HAVE_CUDA
    if (o.backend == TS_PB_CUDA) {
        gpu = ts_xcalloc(1, sizeof *gpu);
        if ((failed = ts_prof_gpu_init(gpu, &m, o.seed, &err) != TS_OK)) goto done;
        ts_prof_gpu_meta(&mt, world);
    }
#endif
    if (rank == 0) ts_prof_print_header(&o, &mt, &m, world, n_cells);

    /* One communicator per degree: ranks 0..d-1. */
    groups = ts_xcalloc((size_t)o.n_degrees, sizeof *groups);
    for (int i = 0; i < o.n_degrees; i++)
        MPI_Comm_split(MPI_COMM_WORLD, rank < o.degrees[i] ? 0 : MPI_UNDEFINED, rank, &groups[i]);
    /* Pass k visits every cell in order and times reps/passes of its steps
     * (the first reps % passes passes one more); world rank 0 is rank 0 of
     * every group and keeps the samples. */
    double t_start = MPI_Wtime();
    if (rank == 0) samples = ts_xcalloc((size_t)n_cells * (size_t)o.reps, sizeof *samples);
    n_done = ts_xcalloc((size_t)n_cells, sizeof *n_done);
    for (int k = 0; k < o.passes; k++) {
        int n = o.reps / o.passes + (k < o.reps % o.passes);
        for (int i = 0; i < n_cells; i++) {
            int di = 0;
            while (o.degrees[di] != cells[i].degree) di++;
            if (groups[di] != MPI_COMM_NULL) {
                double *out = rank ? NULL : samples + (size_t)i * (size_t)o.reps + n_done[i];
                if (ts_prof_cell(&o, &m, gpu, &cells[i], groups[di], n, out, &err)) {
                    failed = 1;
                    goto done;
                }
                n_done[i] += n;
                if (rank == 0 && k == o.passes - 1) {
                    ts_prof_stats(samples + (size_t)i * (size_t)o.reps, o.reps, &res[i]);
                    ts_prof_print_row(&o, cells, res, i);
                }
            }
            ts_prof_idle_barrier(MPI_COMM_WORLD);
        }
    }
    if (rank == 0) {
        double wall = MPI_Wtime() - t_start;
        if (o.backend == TS_PB_EMU) {
            double sum = 0, worst = 0;
            for (int i = 0; i < n_cells; i++) {
                double e = fabs(res[i].mean_ms - cells[i].expected_ms) / cells[i].expected_ms;
                sum += e;
                if (e > worst) worst = e;
            }
            printf("# emu: |measured - expected| / expected: mean %.3f%%, max %.3f%% (sleep "
                   "wake-up and barrier overhead)\n", 100 * sum / n_cells, 100 * worst);
        }
        ts_iso8601_now(mt.date, sizeof mt.date);
        if (ts_prof_write(&o, &mt, cmdline, world, have_from ? &from : NULL, cells, res, n_cells,
                          &err)) {
            fprintf(stderr, "tetriserve profile: %s\n", err.msg);
            status = 1;
        } else {
            printf("# wrote %s (%d rows) in %.1f s\n", o.out, n_cells, wall);
        }
    }
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);

done:
    if (failed) {
        /* A failure inside a cell may leave the group's other ranks in a
         * collective: only an abort ends them all. */
        fprintf(stderr, "tetriserve profile: rank %d: %s\n", rank, err.msg);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 1);
        status = 1;
    }
    if (groups)
        for (int i = 0; i < o.n_degrees; i++)
            if (groups[i] != MPI_COMM_NULL) MPI_Comm_free(&groups[i]);
    free(groups);
#ifdef TS_HAVE_CUDA
    if (gpu) ts_prof_gpu_free(gpu);
#endif
    free(gpu);
    if (have_m) ts_dit_free(&m);
    if (have_from) ts_profile_free(&from);
    free(cells);
    free(res);
    free(samples);
    free(n_done);
    free(cmdline);
    return status;
}

int ts_cmd_profile(int argc, char **argv) {
    int inited = 0, rank = 0, world = 1;
    MPI_Initialized(&inited);
    if (!inited) MPI_Init(NULL, NULL);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    int status = ts_prof_main(argc, argv, rank, world);
    if (!inited) MPI_Finalize();
    return status;
}
