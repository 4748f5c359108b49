/* ts_scenario.c - one dry run from inputs to results file. */
#define _DEFAULT_SOURCE /* getopt_long */
#include "ts_scenario.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "ts_results.h"
#include "ts_sim.h"

enum { OPT_RSSP = 1000, OPT_ROUND_STEPS, OPT_ROUND_MS, OPT_NO_PRESERVE, OPT_NO_ELASTIC, OPT_NO_BATCH, OPT_CHOICE };

const struct option ts_policy_long_options[] = {
    {"rssp-degrees", required_argument, NULL, OPT_RSSP},
    {"round-steps", required_argument, NULL, OPT_ROUND_STEPS},
    {"round-ms", required_argument, NULL, OPT_ROUND_MS},
    {"no-preserve", no_argument, NULL, OPT_NO_PRESERVE},
    {"no-elastic", no_argument, NULL, OPT_NO_ELASTIC},
    {"no-batch", no_argument, NULL, OPT_NO_BATCH},
    {"choice", required_argument, NULL, OPT_CHOICE},
    {NULL, 0, NULL, 0},
};

const char ts_policy_options_help[] =
    "Policy options:\n"
    "  --rssp-degrees RES:K,...  rssp: degree per resolution (RES = 512 or 512x768);\n"
    "                            default: smallest degree meeting the base SLO, else fastest\n"
    "  --round-steps N           round-based policies: round length in steps (default 5)\n"
    "  --round-ms MS             round-based policies: round length in ms (overrides steps)\n"
    "  --no-preserve             tetriserve: no placement preservation (ablation)\n"
    "  --no-elastic              tetriserve: no elastic scale-up (ablation)\n"
    "  --no-batch                tetriserve: no selective batching (ablation)\n"
    "  --choice NAME=VALUE,...   tetriserve/tetriplus: the choices the paper leaves open\n"
    "                            (first value: the default; README \"tetriserve\"):\n"
    "                            rounds=adaptive|fixed, segment-end=continue|idle,\n"
    "                            ties=widest|narrowest, survival=option-end|round-end,\n"
    "                            best-effort=one-gpu|in-round (tetriplus: in-round),\n"
    "                            best-effort-order=before-elastic|last (tetriplus: last)\n";

int ts_policy_option(int opt, const char *arg, TsPolicyConfig *cfg, TsErr *err) {
    switch (opt) {
    case OPT_RSSP: cfg->rssp_degrees = arg; return 1;
    case OPT_ROUND_STEPS:
        if (ts_parse_int(arg, &cfg->round_steps) || cfg->round_steps < 1) {
            ts_err(err, TS_ERR_INPUT, "--round-steps: '%s' is not an integer >= 1", arg);
            return -1;
        }
        return 1;
    case OPT_ROUND_MS:
        if (ts_parse_double(arg, &cfg->round_ms) || !(cfg->round_ms > 0)) {
            ts_err(err, TS_ERR_INPUT, "--round-ms: '%s' is not a positive number", arg);
            return -1;
        }
        return 1;
    case OPT_NO_PRESERVE: cfg->preserve = 0; return 1;
    case OPT_NO_ELASTIC: cfg->elastic = 0; return 1;
    case OPT_NO_BATCH: cfg->batching = 0; return 1;
    case OPT_CHOICE: cfg->choices = arg; return 1;
    }
    return 0;
}

TsStatus ts_scenario_run(const TsScenario *sc, TsScenarioResult *res, TsErr *err) {
    TsCostModel cm, ecm;
    TsSim sim;
    TsResultsFile *rf = NULL;
    int *res_of = NULL;
    int have_cm = 0, have_ecm = 0;
    TsStatus rc;
    double t0 = ts_wall_s();

    memset(res, 0, sizeof *res);
    memset(&sim, 0, sizeof sim);
    ts_log_init(&res->log, sc->trace->n);
    res_of = ts_xmalloc((size_t)(sc->trace->n ? sc->trace->n : 1) * sizeof *res_of);
    if ((rc = ts_cost_build(&cm, sc->profile, sc->trace, sc->n_gpus, res_of, err))) goto done;
    have_cm = 1;
    if (sc->exec_profile) {
        /* every launch the policy may plan must have a time to take */
        if ((rc = ts_cost_build_exec(&ecm, sc->exec_profile, sc->trace, sc->n_gpus, &cm, sc->profile->path, err)))
            goto done;
        have_ecm = 1;
    }
    TsEngineConfig ecfg = {sc->n_gpus, sc->gpus_per_node, sc->slo_scale, have_ecm ? &ecm : NULL};
    if (ecfg.gpus_per_node <= 0)
        ecfg.gpus_per_node = sc->profile->gpus_per_node > 0 ? sc->profile->gpus_per_node : sc->n_gpus;
    if ((rc = ts_sim_init(&sim, sc->trace, &cm, res_of, &ecfg, sc->ops, &sc->pcfg, &res->log, err)))
        goto done;
    res->round_s = sc->ops->round_s(sim.policy);
    sc->ops->describe(sim.policy, res->policy_options, sizeof res->policy_options);

    if (sc->out_path) {
        TsRunMeta meta = {
            .mode = "simulate", .backend = "sim", .policy = sc->ops->name,
            .policy_options = res->policy_options, .trace = sc->trace->path,
            .profile = sc->profile->path,
            .exec_profile = (sc->exec_profile ? sc->exec_profile : sc->profile)->path,
            .command_line = sc->command_line ? sc->command_line : "",
            .n_gpus = sc->n_gpus, .gpus_per_node = sim.st.gpus_per_node,
            .slo_scale = sc->slo_scale, .round_s = res->round_s, .seed = sc->seed,
        };
        if ((rc = ts_results_create(sc->out_path, &meta, &rf, err))) goto done;
    }

    TsStatus run_rc = ts_sim_run(&sim, err);
    res->n_decisions = sim.n_decisions;
    res->decide_s = sim.decide_s;
    ts_summary_compute(&res->log, sc->n_gpus, &res->sum);
    if (rf) {
        TsErr werr;
        rc = ts_results_finish(rf, &res->log, &res->sum, run_rc == TS_OK, &werr);
        if (run_rc == TS_OK && rc) *err = werr;
    }
    if (run_rc) rc = run_rc;

done:
    if (rf) ts_results_close(rf);
    ts_sim_free(&sim);
    if (have_cm) ts_cost_free(&cm);
    if (have_ecm) ts_cost_free(&ecm);
    free(res_of);
    res->wall_s = ts_wall_s() - t0;
    return rc;
}
