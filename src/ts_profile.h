/* ts_profile.h - the cost model: profile CSV files (SPEC.md) and the per-run
 * table of step times the simulator and schedulers read.
 *
 * A profile row gives T(width, height, degree, batch): the mean time of one
 * denoising step of one request (or of `batch` identical requests together)
 * at sequence-parallel degree `degree`. Resolutions not in the table are
 * interpolated linearly in tokens between the two nearest rows that have the
 * same (degree, batch): piecewise-linear interpolation of monotone data is
 * monotone. Outside the table's token range the time is extrapolated (see
 * ts_profile_step_ms) and a warning goes to stderr. A degree is usable for a
 * resolution only if the rows bracketing it (or the nearest row, outside the
 * range) have that degree. */
#ifndef TS_PROFILE_H
#define TS_PROFILE_H

#include <stdint.h>

#include "ts_util.h"

typedef struct TsProfileRow {
    int32_t width, height;
    int32_t degree;     /* >= 1 */
    int32_t batch;      /* >= 1 */
    double step_ms;     /* > 0 */
    double step_ms_p99; /* NAN when absent */
    int line;           /* source line, for messages */
} TsProfileRow;

typedef struct TsProfile {
    char *path;
    char *model, *gpu, *source; /* metadata ("" when absent) */
    int32_t gpus_per_node;      /* 0 when absent */
    double request_overhead_ms; /* 0 when absent */
    TsProfileRow *rows;
    int n_rows;
} TsProfile;

TsStatus ts_profile_load(const char *path, TsProfile *out, TsErr *err);
void ts_profile_free(TsProfile *p);

/* Step time in ms at (width, height, degree, batch). Returns TS_ERR_INPUT
 * (with a message naming the profile) when the degree/batch is not in the
 * table for that resolution. *extrapolated (may be NULL) is set to 1 when the
 * resolution lies outside the table's token range for that degree. */
TsStatus ts_profile_step_ms(const TsProfile *p, int32_t width, int32_t height, int32_t degree,
                            int32_t batch, double *step_ms, int *extrapolated, TsErr *err);

/* Distinct degrees in the table, ascending; returns the count (<= max). */
int ts_profile_degrees(const TsProfile *p, int32_t *degrees, int max);

/* ---- The cost model of one run: step times for the resolutions of a trace,
 * precomputed so that the hot paths index arrays. ---- */
#define TS_MAX_DEGREES 16
#define TS_MAX_BATCH 8

typedef struct TsCostModel {
    int n_res;            /* distinct resolutions in the trace */
    int32_t *width;       /* [n_res] */
    int32_t *height;      /* [n_res] */
    int64_t *tokens;      /* [n_res] */
    int n_deg;            /* degrees in the profile that are <= n_gpus */
    int32_t degree[TS_MAX_DEGREES]; /* [n_deg], ascending */
    int max_batch;        /* largest batch in the profile (1 = no batching) */
    /* step_s[(r * n_deg + d) * max_batch + (b - 1)]: seconds per step of
     * resolution r at degree index d with batch b; NAN where not allowed. */
    double *step_s;
    double overhead_s;    /* request_overhead_ms / 1000 */
} TsCostModel;

struct TsTrace;
/* Build the cost model for every resolution in the trace, for degrees up to
 * n_gpus. Warns once per extrapolated resolution. Fills res_of[i] (may be
 * NULL) with the resolution index of trace request i. */
TsStatus ts_cost_build(TsCostModel *cm, const TsProfile *p, const struct TsTrace *t, int n_gpus,
                       int *res_of, TsErr *err);
void ts_cost_free(TsCostModel *cm);

static inline double ts_cost_step_s(const TsCostModel *cm, int res, int deg_idx, int batch) {
    return cm->step_s[((int64_t)res * cm->n_deg + deg_idx) * cm->max_batch + (batch - 1)];
}
/* Index of a degree in cm->degree, or -1. */
int ts_cost_degree_index(const TsCostModel *cm, int32_t degree);
/* Seconds per step of resolution res at `degree` (a value, not an index)
 * with `batch` requests; NAN where the model has none. */
double ts_cost_step_at(const TsCostModel *cm, int res, int32_t degree, int batch);
/* The execution cost model of simulate/run --exec-profile: built like
 * ts_cost_build, and it must give a time to every (resolution, degree,
 * batch) the planning model allows: else TS_ERR_INPUT naming the first
 * missing cell and both profiles' paths (nothing to free then). */
TsStatus ts_cost_build_exec(TsCostModel *exec, const TsProfile *xp, const struct TsTrace *t, int n_gpus,
                            const TsCostModel *plan, const char *plan_path, TsErr *err);

#endif
