/* ts_scenario.h - one complete dry run: trace + profile + policy + cluster
 * -> run log, summary and (optionally) a results file. The unit of work of
 * `simulate`, `compare` and `sweep`. No MPI. */
#ifndef TS_SCENARIO_H
#define TS_SCENARIO_H

#include <getopt.h>

#include "ts_engine.h"
#include "ts_log.h"
#include "ts_profile.h"
#include "ts_trace.h"

typedef struct TsScenario {
    const TsTrace *trace;
    const TsProfile *profile;      /* what the policy plans with */
    const TsProfile *exec_profile; /* what launches take (NULL: profile) */
    const TsPolicyOps *ops;
    TsPolicyConfig pcfg;
    int32_t n_gpus;
    int32_t gpus_per_node; /* 0: the profile's, else n_gpus */
    double slo_scale;
    uint64_t seed;
    const char *out_path;     /* results file, or NULL for none */
    const char *command_line; /* recorded in the file */
} TsScenario;

typedef struct TsScenarioResult {
    TsSummary sum;
    TsRunLog log;          /* kept: the caller frees it with ts_log_free */
    double round_s;
    char policy_options[512];
    int64_t n_decisions;
    double decide_s, wall_s;
} TsScenarioResult;

/* Validate everything, create the results file, simulate, write it. On an
 * error after the file exists, the file keeps what was recorded with
 * complete = 0. */
TsStatus ts_scenario_run(const TsScenario *sc, TsScenarioResult *res, TsErr *err);

/* Policy options shared by simulate, compare and sweep (getopt_long ids
 * from 1000 up; see ts_scenario.c). */
extern const struct option ts_policy_long_options[];
/* Returns 1 if `opt` was a policy option (handled), 0 if not, -1 on error. */
int ts_policy_option(int opt, const char *arg, TsPolicyConfig *cfg, TsErr *err);
extern const char ts_policy_options_help[];

#endif
