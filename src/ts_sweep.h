/* ts_sweep.h - the what-if grid of `tetriserve sweep`, without MPI: the
 * grid and its options, one scenario -> one table row, the HDF5 sweep file
 * (the /sweep table, kept scenarios, the merge of --slice parts).
 * mpi_sweep.c hands scenario indices out over MPI ranks and is the only
 * part that sees mpi.h.
 *
 * A scenario is one cell of the grid
 *   sources (mixes or traces) x rates x seeds x GPU counts x SLO scales x policies
 * numbered in that order with the policy fastest:
 *   index = ((((source * n_rates + rate) * n_seeds + seed) * n_gpus + gpus)
 *            * n_scales + scale) * n_policies + policy
 * (with traces n_rates is 1). With mixes, the trace of a scenario is
 * ts_trace_generate(mix, rate, seed, requests, steps, arrival): every policy,
 * SLO scale and GPU count of a (mix, rate, seed) cell sees the same trace,
 * the one `tetriserve trace-gen` writes for the same arguments. */
#ifndef TS_SWEEP_H
#define TS_SWEEP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ts_engine.h"
#include "ts_profile.h"
#include "ts_scenario.h"
#include "ts_trace.h"
#include "ts_util.h"

#define TS_SWEEP_MAX_LIST 64    /* policies, sources, rates, scales, GPU counts */
#define TS_SWEEP_MAX_SEEDS 4096 /* keeps the seeds attribute under HDF5's 64 KiB */
#define TS_SWEEP_MAX_RES 16     /* distinct resolutions over the whole grid */
#define TS_SWEEP_POLICY_LEN 16  /* fixed-length string fields, NUL included */
#define TS_SWEEP_SOURCE_LEN 128

typedef enum TsSweepKind { TS_SWEEP_MIXES = 0, TS_SWEEP_TRACES = 1 } TsSweepKind;
typedef enum TsSweepAction { TS_SWEEP_RUN = 0, TS_SWEEP_HELP, TS_SWEEP_MERGE } TsSweepAction;

typedef struct TsSweepGrid {
    const char *profile_path; /* strings borrowed from argv */
    const char *out_path;
    int n_policies;
    const TsPolicyOps *policy[TS_SWEEP_MAX_LIST];
    int policies_default; /* no --policies: every policy of ts_policy_table */
    TsPolicyConfig pcfg;
    TsSweepKind kind;
    int n_sources;
    char *source[TS_SWEEP_MAX_LIST]; /* mix specs or trace paths (owned) */
    TsMix mix[TS_SWEEP_MAX_LIST];    /* parsed mixes (TS_SWEEP_MIXES) */
    int n_rates;                     /* 1 with traces (rate_per_min[0] = NAN) */
    double rate_per_min[TS_SWEEP_MAX_LIST];
    int n_scales;
    double slo_scale[TS_SWEEP_MAX_LIST];
    int n_gpus;
    int32_t gpus[TS_SWEEP_MAX_LIST];
    int n_seeds;
    int64_t seed[TS_SWEEP_MAX_SEEDS];
    int64_t requests; /* per generated trace */
    int32_t steps;
    TsArrival arrival;
    double gamma_cv;
    char arrival_spec[64];
    int32_t gpus_per_node; /* 0: the profile's, else each scenario's n_gpus */
    int slice_index, slice_count;
    int keep_scenarios;
    int quiet;
    /* Resolution columns of every row's res_* arrays, ascending by tokens
     * (then width): filled by ts_sweep_runner_init. */
    int n_res;
    int32_t res_width[TS_SWEEP_MAX_RES], res_height[TS_SWEEP_MAX_RES];
    /* --merge OUT PART...: */
    const char *merge_out;
    char **parts;
    int n_parts;
} TsSweepGrid;

typedef struct TsSweepCell {
    int source, rate, seed, gpus, scale, policy;
} TsSweepCell;

/* One row of /sweep. Strings are NUL-padded; res_* column k is the grid's
 * resolution k (root attributes res_width/res_height): res_n requests of it,
 * res_met of them met, res_sar = met / n (NAN when n = 0). */
typedef struct TsSweepRow {
    int64_t index;
    char policy[TS_SWEEP_POLICY_LEN];
    char source[TS_SWEEP_SOURCE_LEN];
    double rate_per_min; /* traces: the trace's measured rate, 60 n / last arrival */
    double slo_scale;
    int32_t n_gpus;
    int32_t pad_;
    int64_t seed;
    int64_t requests;
    int64_t n_met, n_finished;
    double sar;
    double latency_mean, latency_p50, latency_p90, latency_p99;
    double gpu_busy_fraction, makespan, round_s;
    int32_t res_width[TS_SWEEP_MAX_RES], res_height[TS_SWEEP_MAX_RES];
    int64_t res_n[TS_SWEEP_MAX_RES], res_met[TS_SWEEP_MAX_RES];
    double res_sar[TS_SWEEP_MAX_RES];
    double wall_s; /* simulation time of this scenario: differs run to run */
} TsSweepRow;

/* The row's fields, in table order, for the HDF5 compound type and the MPI
 * derived datatype (count: array length, or string length for STR). */
typedef enum TsSweepFieldKind { TS_SF_I64, TS_SF_I32, TS_SF_F64, TS_SF_STR } TsSweepFieldKind;
typedef struct TsSweepField {
    const char *name;
    size_t offset;
    TsSweepFieldKind kind;
    int count;
} TsSweepField;
extern const TsSweepField ts_sweep_fields[];
extern const int ts_sweep_n_fields;

/* Parse the verb's command line (argv[0] = "sweep") into g, which the
 * caller zeroes first and frees with ts_sweep_grid_free. Prints nothing:
 * on error err holds one line naming the option. */
TsStatus ts_sweep_parse_args(int argc, char **argv, TsSweepGrid *g, TsSweepAction *action,
                             TsErr *err);
void ts_sweep_grid_free(TsSweepGrid *g);
void ts_sweep_usage(FILE *out);

int64_t ts_sweep_size(const TsSweepGrid *g);
void ts_sweep_cell(const TsSweepGrid *g, int64_t index, TsSweepCell *c);
/* "policy=sp1 mix=uniform rate_per_min=12 seed=1 n_gpus=8 slo_scale=1" */
void ts_sweep_describe(const TsSweepGrid *g, int64_t index, char *buf, size_t len);
/* Every policy setting shared by the grid, "key=value ...". */
void ts_sweep_policy_config(const TsSweepGrid *g, char *buf, size_t len);
/* The `#` header (nccl-tests style: the full configuration). */
void ts_sweep_print_header(FILE *out, const TsSweepGrid *g, int ranks);

/* Inputs and a one-trace cache, one per rank. */
typedef struct TsSweepRunner {
    TsSweepGrid *g;
    TsProfile profile;
    TsTrace *trace; /* [n_sources] with traces */
    int n_trace_loaded;
    TsTrace cache; /* the generated trace of cell cache_key */
    int64_t cache_key;
} TsSweepRunner;

/* Load the profile and the traces; fill the grid's resolution columns. */
TsStatus ts_sweep_runner_init(TsSweepRunner *r, TsSweepGrid *g, TsErr *err);
/* Check every policy x GPU count x source before any work (a degree that
 * does not divide the GPU count or is not in the profile, ...). */
TsStatus ts_sweep_validate(TsSweepRunner *r, TsErr *err);
void ts_sweep_runner_free(TsSweepRunner *r);
/* Simulate scenario `index` into row. keep != NULL keeps the run there (the
 * caller frees keep->log with ts_log_free, also on error). */
TsStatus ts_sweep_run_one(TsSweepRunner *r, int64_t index, TsSweepRow *row,
                          TsScenarioResult *keep, TsErr *err);

/* --keep-scenarios: a run log as one flat buffer (to ship between ranks on
 * one kind of machine), and back. */
void *ts_sweep_log_pack(const TsRunLog *log, const char *policy_options, size_t *len);
TsStatus ts_sweep_log_unpack(const void *buf, size_t len, TsRunLog *log, char *policy_options,
                             size_t options_len, TsErr *err);
/* Write scenario `index` as group /scenarios/<index> of the sweep file. */
TsStatus ts_sweep_write_scenario(const TsSweepRunner *r, int64_t index, const TsRunLog *log,
                                 const char *policy_options, double round_s,
                                 const char *command_line, TsErr *err);

/* The sweep file: created with every root attribute and complete = 0
 * before any work; finished with the /sweep rows (index order) and
 * complete = 1. A run that dies leaves complete = 0 and no rows. */
TsStatus ts_sweep_file_create(const TsSweepRunner *r, const char *command_line, int ranks,
                              TsErr *err);
TsStatus ts_sweep_file_finish(const TsSweepGrid *g, const TsSweepRow *rows, int64_t n,
                              double wall_s, TsErr *err);
/* Record why a sweep stopped (attribute `error`; complete stays 0). */
void ts_sweep_file_fail(const char *path, const char *msg);
/* Merge the --slice parts of one grid into out (same table as one run). */
TsStatus ts_sweep_merge(const char *out, char *const *parts, int n_parts, int64_t *n_rows,
                        TsErr *err);

#endif
