/* ts_sweep.c - the grid of `tetriserve sweep` (options, scenarios, rows)
 * and the HDF5 sweep file. No MPI here (see mpi_sweep.c).
 *
 * File layout (README "Sweep file"):
 * - root attributes: schema_version 1, mode "sweep", backend "sim",
 *   tetriserve_version, created, command_line, profile, source_kind ("mix"
 *   or "trace"), the grid lists (policies, sources, rates_per_min,
 *   slo_scales, gpus, seeds), requests, steps, arrival, gpus_per_node,
 *   policy_options, resolutions / res_width / res_height (the columns of
 *   the res_* row arrays), n_scenarios, slice_index, slice_count, n_rows,
 *   index_order, grid_id (hash of everything that defines the scenarios:
 *   parts of one grid have the same), ranks, keep_scenarios, wall_s,
 *   complete (0 until the table is written).
 * - /sweep: compound, one row per scenario of this file's slice, in index
 *   order (fields: ts_sweep_fields).
 * - /scenarios/<index> (--keep-scenarios): the results-file layout of that
 *   scenario inside a group (ts_results_write_group). */
#define _DEFAULT_SOURCE /* getopt_long */
#include "ts_sweep.h"

#include <errno.h>
#include <getopt.h>
#include <hdf5.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ts_results.h"
#include "ts_sim.h"
#include "ts_h5.h"

#define TS_SWEEP_SCHEMA_VERSION 1
#define TS_SWEEP_CHUNK_ROWS 256
#define TS_SWEEP_INDEX_ORDER                                                                   \
    "index = ((((source * n_rates + rate) * n_seeds + seed) * n_gpus + gpus) * n_slo_scales " \
    "+ slo_scale) * n_policies + policy"

#define TS_F(name, kind, count) {#name, offsetof(TsSweepRow, name), kind, count}
const TsSweepField ts_sweep_fields[] = {
    TS_F(index, TS_SF_I64, 1),
    TS_F(policy, TS_SF_STR, TS_SWEEP_POLICY_LEN),
    TS_F(source, TS_SF_STR, TS_SWEEP_SOURCE_LEN),
    TS_F(rate_per_min, TS_SF_F64, 1),
    TS_F(slo_scale, TS_SF_F64, 1),
    TS_F(n_gpus, TS_SF_I32, 1),
    TS_F(seed, TS_SF_I64, 1),
    TS_F(requests, TS_SF_I64, 1),
    TS_F(n_met, TS_SF_I64, 1),
    TS_F(n_finished, TS_SF_I64, 1),
    TS_F(sar, TS_SF_F64, 1),
    TS_F(latency_mean, TS_SF_F64, 1),
    TS_F(latency_p50, TS_SF_F64, 1),
    TS_F(latency_p90, TS_SF_F64, 1),
    TS_F(latency_p99, TS_SF_F64, 1),
    TS_F(gpu_busy_fraction, TS_SF_F64, 1),
    TS_F(makespan, TS_SF_F64, 1),
    TS_F(round_s, TS_SF_F64, 1),
    TS_F(res_width, TS_SF_I32, TS_SWEEP_MAX_RES),
    TS_F(res_height, TS_SF_I32, TS_SWEEP_MAX_RES),
    TS_F(res_n, TS_SF_I64, TS_SWEEP_MAX_RES),
    TS_F(res_met, TS_SF_I64, TS_SWEEP_MAX_RES),
    TS_F(res_sar, TS_SF_F64, TS_SWEEP_MAX_RES),
    TS_F(wall_s, TS_SF_F64, 1),
};
#undef TS_F
const int ts_sweep_n_fields = (int)(sizeof ts_sweep_fields / sizeof ts_sweep_fields[0]);

/* ======================================================================
 * Options
 * ====================================================================== */

enum {
    OPT_PROFILE = 'p', OPT_GPUS = 'g', OPT_GPN = 'N', OPT_POLICIES = 'P', OPT_MIXES = 'm',
    OPT_TRACE = 't', OPT_RATES = 'r', OPT_SCALES = 's', OPT_SEEDS = 'S', OPT_REQUESTS = 'n',
    OPT_STEPS = 'k', OPT_ARRIVAL = 'a', OPT_OUT = 'o', OPT_KEEP = 'K', OPT_SLICE = 'x',
    OPT_MERGE = 'M', OPT_QUIET = 'q', OPT_HELP = 'h',
};

static const struct option ts_sweep_own_options[] = {
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"gpus", required_argument, NULL, OPT_GPUS},
    {"gpus-per-node", required_argument, NULL, OPT_GPN},
    {"policies", required_argument, NULL, OPT_POLICIES},
    {"mixes", required_argument, NULL, OPT_MIXES},
    {"trace", required_argument, NULL, OPT_TRACE},
    {"rates", required_argument, NULL, OPT_RATES},
    {"slo-scales", required_argument, NULL, OPT_SCALES},
    {"seeds", required_argument, NULL, OPT_SEEDS},
    {"requests", required_argument, NULL, OPT_REQUESTS},
    {"steps", required_argument, NULL, OPT_STEPS},
    {"arrival", required_argument, NULL, OPT_ARRIVAL},
    {"out", required_argument, NULL, OPT_OUT},
    {"keep-scenarios", no_argument, NULL, OPT_KEEP},
    {"slice", required_argument, NULL, OPT_SLICE},
    {"merge", required_argument, NULL, OPT_MERGE},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

void ts_sweep_usage(FILE *out) {
    char names[256];
    ts_policy_names(names, sizeof names);
    fprintf(out,
            "usage: tetriserve sweep --profile F.csv --gpus N,... [grid options] [--out F.h5]\n"
            "       tetriserve sweep --merge OUT.h5 PART.h5 ...\n\n"
            "Simulate every scenario of a grid  sources x rates x seeds x GPU counts x SLO scales\n"
            "x policies  and write one HDF5 table (/sweep, one row per scenario). Run it as one\n"
            "process or under mpirun/srun: rank 0 hands scenarios out on request and simulates\n"
            "too; the table is the same whatever the number of ranks.\n\n"
            "Grid (lists are comma-separated unless noted; duplicates are refused):\n"
            "  --profile F.csv        cost model (required)\n"
            "  --gpus N,...           GPU counts of the simulated cluster (required)\n"
            "  --gpus-per-node N      default: the profile's gpus_per_node, else the GPU count\n"
            "  --policies P,...       default: all (%s)\n"
            "  --mixes M;M;...        resolution mixes, separated by ';' because a custom mix has\n"
            "                         commas (quote it: --mixes 'uniform;256:1,1024:3'); repeatable.\n"
            "                         Each: uniform, skewed or W:P,... as in trace-gen (default uniform)\n"
            "  --trace F.csv          a trace file instead of mixes; repeatable. Rates, --requests,\n"
            "                         --steps and --arrival do not apply; the row's rate_per_min is\n"
            "                         the trace's measured rate (60 x requests / last arrival)\n"
            "  --rates R,...          mean arrival rates per minute (default 12)\n"
            "  --slo-scales X,...     deadline = arrival + X x slo_s (default 1.0)\n"
            "  --seeds SPEC           N: seeds 1..N;  A:B: seeds A..B;  A,B,...: those seeds (a single\n"
            "                         seed S: S:S). Default 1. Seed s draws the trace of each (mix, rate)\n"
            "                         cell exactly as `trace-gen --seed s` does, and is recorded\n"
            "  --requests N           requests per generated trace (default 300)\n"
            "  --steps N              denoising steps per request (default 28)\n"
            "  --arrival A            poisson or gamma:CV (default poisson)\n\n"
            "Output:\n"
            "  --out F.h5             default results/sweep.h5\n"
            "  --keep-scenarios       also store every scenario's full results (requests, segments,\n"
            "                         rounds, summary) as group /scenarios/<index>\n"
            "  --slice I/N            run only the scenarios with index %% N == I (a job-array task);\n"
            "                         join the parts with --merge\n"
            "  --merge OUT.h5 PART... join the parts of one grid (every slice once, each complete)\n"
            "                         into OUT.h5: the same /sweep table as one run\n"
            "  --quiet                no table on stdout (errors still go to stderr)\n\n"
            "Every option and input is checked on rank 0 before any work, including each policy\n"
            "with each GPU count (sp8 on 4 GPUs is refused, not skipped): one line on stderr and a\n"
            "non-zero exit on every rank. A progress line goes to stderr when it is a terminal.\n"
            "Scenario index = ((((source x n_rates + rate) x n_seeds + seed) x n_gpus + gpus)\n"
            "x n_slo_scales + slo_scale) x n_policies + policy  (policy fastest).\n\n"
            "/sweep fields: index, policy, source (mix spec or trace path; fixed-length strings),\n"
            "rate_per_min, slo_scale, n_gpus, seed, requests, n_met, n_finished, sar, latency_mean,\n"
            "latency_p50/p90/p99, gpu_busy_fraction, makespan, round_s, res_width/res_height/res_n/\n"
            "res_met/res_sar (arrays of %d: column k is root attribute resolutions[k]; res_sar NaN\n"
            "where a scenario had no request of it), wall_s (simulation time; varies run to run).\n\n"
            "%s",
            names, TS_SWEEP_MAX_RES, ts_policy_options_help);
}

static struct option *ts_sweep_options(void) {
    int a = 0, b = 0;
    while (ts_sweep_own_options[a].name) a++;
    while (ts_policy_long_options[b].name) b++;
    struct option *all = ts_xcalloc((size_t)(a + b + 1), sizeof *all);
    memcpy(all, ts_sweep_own_options, (size_t)a * sizeof *all);
    memcpy(all + a, ts_policy_long_options, (size_t)b * sizeof *all);
    return all;
}

static int ts_dup_double(const double *v, int n, int *at) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (v[i] == v[j]) return *at = i, 1;
    return 0;
}

static TsStatus ts_parse_positive_list(const char *opt, const char *s, double *out, int *n,
                                       TsErr *err) {
    int k = ts_parse_double_list(s, out, TS_SWEEP_MAX_LIST), at;
    for (int i = 0; i < k; i++)
        if (!(out[i] > 0)) k = -1;
    if (k < 0)
        return ts_err(err, TS_ERR_INPUT, "%s: '%s' is not a list of up to %d positive numbers", opt,
                      s, TS_SWEEP_MAX_LIST);
    if (ts_dup_double(out, k, &at))
        return ts_err(err, TS_ERR_INPUT, "%s: %g is listed twice", opt, out[at]);
    *n = k;
    return TS_OK;
}

static TsStatus ts_parse_seeds(const char *s, TsSweepGrid *g, TsErr *err) {
    int64_t a, b;
    g->n_seeds = 0;
    if (strchr(s, ',')) {
        char buf[4096], *save = NULL;
        if (strlen(s) >= sizeof buf) return ts_err(err, TS_ERR_INPUT, "--seeds: list too long");
        snprintf(buf, sizeof buf, "%s", s);
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (ts_parse_int64(tok, &a) || a < 0)
                return ts_err(err, TS_ERR_INPUT, "--seeds: '%s' is not an integer >= 0", tok);
            for (int i = 0; i < g->n_seeds; i++)
                if (g->seed[i] == a)
                    return ts_err(err, TS_ERR_INPUT, "--seeds: %" PRId64 " is listed twice", a);
            if (g->n_seeds == TS_SWEEP_MAX_SEEDS)
                return ts_err(err, TS_ERR_INPUT, "--seeds: more than %d seeds", TS_SWEEP_MAX_SEEDS);
            g->seed[g->n_seeds++] = a;
        }
        if (!g->n_seeds) return ts_err(err, TS_ERR_INPUT, "--seeds: '%s' lists no seed", s);
        return TS_OK;
    }
    const char *colon = strchr(s, ':');
    if (colon) {
        char lo[64];
        snprintf(lo, sizeof lo, "%.*s", (int)(colon - s), s);
        if (ts_parse_int64(lo, &a) || ts_parse_int64(colon + 1, &b) || a < 0 || b < a)
            return ts_err(err, TS_ERR_INPUT, "--seeds: '%s' is not a range A:B with 0 <= A <= B", s);
    } else {
        if (ts_parse_int64(s, &b) || b < 1)
            return ts_err(err, TS_ERR_INPUT,
                          "--seeds: '%s' is not a count N >= 1, a range A:B or a list A,B,...", s);
        a = 1;
    }
    if (b - a + 1 > TS_SWEEP_MAX_SEEDS)
        return ts_err(err, TS_ERR_INPUT, "--seeds: '%s' is more than %d seeds", s, TS_SWEEP_MAX_SEEDS);
    for (int64_t v = a; v <= b; v++) g->seed[g->n_seeds++] = v;
    return TS_OK;
}

static TsStatus ts_add_source(TsSweepGrid *g, const char *opt, const char *s, TsErr *err) {
    if (g->n_sources == TS_SWEEP_MAX_LIST)
        return ts_err(err, TS_ERR_INPUT, "%s: more than %d in all", opt, TS_SWEEP_MAX_LIST);
    if (strlen(s) >= TS_SWEEP_SOURCE_LEN)
        return ts_err(err, TS_ERR_INPUT, "%s: '%.40s...' is longer than %d characters", opt, s,
                      TS_SWEEP_SOURCE_LEN - 1);
    for (int i = 0; i < g->n_sources; i++)
        if (!strcmp(g->source[i], s))
            return ts_err(err, TS_ERR_INPUT, "%s: '%s' is listed twice", opt, s);
    g->source[g->n_sources++] = ts_xstrdup(s);
    return TS_OK;
}

static TsStatus ts_add_mixes(TsSweepGrid *g, const char *arg, TsErr *err) {
    char *copy = ts_xstrdup(arg);
    TsStatus st = TS_OK;
    for (char *start = copy; start;) {
        char *semi = strchr(start, ';');
        if (semi) *semi = '\0';
        char *item = ts_trim(start);
        start = semi ? semi + 1 : NULL;
        if (!*item) {
            st = ts_err(err, TS_ERR_INPUT, "--mixes: '%s' has an empty entry (mixes are separated by ';')",
                        arg);
            break;
        }
        TsMix m;
        if ((st = ts_mix_parse(item, &m, err))) {
            ts_err_prefix(err, "--mixes");
            break;
        }
        if ((st = ts_add_source(g, "--mixes", item, err))) break;
        g->mix[g->n_sources - 1] = m;
    }
    free(copy);
    return st;
}

void ts_sweep_grid_free(TsSweepGrid *g) {
    for (int i = 0; i < g->n_sources; i++) free(g->source[i]);
    g->n_sources = 0;
}

TsStatus ts_sweep_parse_args(int argc, char **argv, TsSweepGrid *g, TsSweepAction *action,
                             TsErr *err) {
    struct option *opts = ts_sweep_options();
    const char *policies = NULL, *rates = NULL, *scales = NULL, *seeds = "1", *gpus = NULL;
    const char *requests = NULL, *steps = NULL, *arrival = NULL, *slice = NULL, *gpn = NULL;
    int n_grid_opts = 0, n_traces = 0, n_mixes = 0, c;
    TsStatus st = TS_OK;

    ts_policy_config_default(&g->pcfg);
    g->out_path = "results/sweep.h5";
    g->slice_count = 1;
    *action = TS_SWEEP_RUN;
    optind = 0; /* full reset: another verb may have run getopt */
    opterr = 0; /* our own one-line messages, printed by rank 0 only */
    while ((c = getopt_long(argc, argv, ":hq", opts, NULL)) != -1) {
        int pr = ts_policy_option(c, optarg, &g->pcfg, err);
        if (pr < 0) {
            st = TS_ERR_INPUT;
            goto done;
        }
        if (pr) {
            n_grid_opts++;
            continue;
        }
        if (c != OPT_MERGE && c != OPT_HELP && c != ':' && c != '?') n_grid_opts++;
        switch (c) {
        case OPT_PROFILE: g->profile_path = optarg; break;
        case OPT_GPUS: gpus = optarg; break;
        case OPT_GPN: gpn = optarg; break;
        case OPT_POLICIES: policies = optarg; break;
        case OPT_MIXES:
            n_mixes++;
            if ((st = ts_add_mixes(g, optarg, err))) goto done;
            break;
        case OPT_TRACE:
            n_traces++;
            if ((st = ts_add_source(g, "--trace", optarg, err))) goto done;
            break;
        case OPT_RATES: rates = optarg; break;
        case OPT_SCALES: scales = optarg; break;
        case OPT_SEEDS: seeds = optarg; break;
        case OPT_REQUESTS: requests = optarg; break;
        case OPT_STEPS: steps = optarg; break;
        case OPT_ARRIVAL: arrival = optarg; break;
        case OPT_OUT: g->out_path = optarg; break;
        case OPT_KEEP: g->keep_scenarios = 1; break;
        case OPT_SLICE: slice = optarg; break;
        case OPT_QUIET: g->quiet = 1; break;
        case OPT_MERGE:
            g->merge_out = optarg;
            *action = TS_SWEEP_MERGE;
            break;
        case OPT_HELP: *action = TS_SWEEP_HELP; goto done;
        case ':':
            st = ts_err(err, TS_ERR_INPUT, "%s: missing value", argv[optind - 1]);
            goto done;
        default:
            st = ts_err(err, TS_ERR_INPUT, "unknown option '%s' (see tetriserve sweep --help)",
                        argv[optind - 1]);
            goto done;
        }
    }
    if (*action == TS_SWEEP_MERGE) {
        if (n_grid_opts) {
            st = ts_err(err, TS_ERR_INPUT, "--merge takes only the output and the part files "
                                           "(the grid is read from the parts)");
            goto done;
        }
        g->parts = argv + optind;
        g->n_parts = argc - optind;
        if (g->n_parts < 1) st = ts_err(err, TS_ERR_INPUT, "--merge OUT.h5: no part files given");
        goto done;
    }
    if (optind < argc) {
        st = ts_err(err, TS_ERR_INPUT, "unexpected argument '%s'", argv[optind]);
        goto done;
    }
    if (!g->profile_path) {
        st = ts_err(err, TS_ERR_INPUT, "--profile is required");
        goto done;
    }
    if (!gpus) {
        st = ts_err(err, TS_ERR_INPUT, "--gpus is required (a list of GPU counts, e.g. 8 or 4,8)");
        goto done;
    }
    int gl[TS_SWEEP_MAX_LIST];
    g->n_gpus = ts_parse_int_list(gpus, gl, TS_SWEEP_MAX_LIST);
    for (int i = 0; i < g->n_gpus; i++) {
        if (gl[i] < 1) g->n_gpus = -1;
        for (int j = 0; j < i && g->n_gpus > 0; j++)
            if (gl[i] == gl[j]) {
                st = ts_err(err, TS_ERR_INPUT, "--gpus: %d is listed twice", gl[i]);
                goto done;
            }
        if (g->n_gpus < 0) break;
        g->gpus[i] = gl[i];
    }
    if (g->n_gpus < 1) {
        st = ts_err(err, TS_ERR_INPUT, "--gpus: '%s' is not a list of up to %d integers >= 1", gpus,
                    TS_SWEEP_MAX_LIST);
        goto done;
    }
    int gpn_v = 0;
    if (gpn && (ts_parse_int(gpn, &gpn_v) || gpn_v < 1)) {
        st = ts_err(err, TS_ERR_INPUT, "--gpus-per-node: '%s' is not an integer >= 1", gpn);
        goto done;
    }
    g->gpus_per_node = gpn_v;

    if (policies) {
        char buf[1024], *save = NULL;
        snprintf(buf, sizeof buf, "%s", policies);
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            const TsPolicyOps *o = ts_policy_find(ts_trim(tok));
            if (!o) {
                char names[256];
                ts_policy_names(names, sizeof names);
                st = ts_err(err, TS_ERR_INPUT, "--policies: unknown policy '%s' (have: %s)", tok, names);
                goto done;
            }
            for (int i = 0; i < g->n_policies; i++)
                if (g->policy[i] == o) {
                    st = ts_err(err, TS_ERR_INPUT, "--policies: '%s' is listed twice", o->name);
                    goto done;
                }
            if (g->n_policies == TS_SWEEP_MAX_LIST) {
                st = ts_err(err, TS_ERR_INPUT, "--policies: more than %d", TS_SWEEP_MAX_LIST);
                goto done;
            }
            g->policy[g->n_policies++] = o;
        }
        if (!g->n_policies) {
            st = ts_err(err, TS_ERR_INPUT, "--policies: '%s' names no policy", policies);
            goto done;
        }
    } else {
        for (int i = 0; ts_policy_table[i] && i < TS_SWEEP_MAX_LIST; i++)
            g->policy[g->n_policies++] = ts_policy_table[i];
        g->policies_default = 1;
    }

    if (n_traces && n_mixes) {
        st = ts_err(err, TS_ERR_INPUT, "--trace and --mixes exclude each other");
        goto done;
    }
    g->kind = n_traces ? TS_SWEEP_TRACES : TS_SWEEP_MIXES;
    if (g->kind == TS_SWEEP_TRACES) {
        const char *na = rates ? "--rates" : requests ? "--requests" : steps ? "--steps"
                       : arrival ? "--arrival" : NULL;
        if (na) {
            st = ts_err(err, TS_ERR_INPUT, "%s does not apply with --trace (it shapes generated traces)",
                        na);
            goto done;
        }
        g->n_rates = 1;
        g->rate_per_min[0] = NAN;
    } else {
        if (!n_mixes && (st = ts_add_mixes(g, "uniform", err))) goto done;
        if ((st = ts_parse_positive_list("--rates", rates ? rates : "12", g->rate_per_min,
                                         &g->n_rates, err)))
            goto done;
    }
    if ((st = ts_parse_positive_list("--slo-scales", scales ? scales : "1.0", g->slo_scale,
                                     &g->n_scales, err)))
        goto done;
    if ((st = ts_parse_seeds(seeds, g, err))) goto done;
    g->requests = 300;
    if (requests && (ts_parse_int64(requests, &g->requests) || g->requests < 1)) {
        st = ts_err(err, TS_ERR_INPUT, "--requests: '%s' is not an integer >= 1", requests);
        goto done;
    }
    g->steps = 28;
    if (steps && (ts_parse_int(steps, &g->steps) || g->steps < 1)) {
        st = ts_err(err, TS_ERR_INPUT, "--steps: '%s' is not an integer >= 1", steps);
        goto done;
    }
    g->arrival = TS_ARRIVAL_POISSON;
    snprintf(g->arrival_spec, sizeof g->arrival_spec, "%s", arrival ? arrival : "poisson");
    if (arrival && strcmp(arrival, "poisson") != 0) {
        if (strncmp(arrival, "gamma:", 6) != 0 || ts_parse_double(arrival + 6, &g->gamma_cv) ||
            !(g->gamma_cv > 0)) {
            st = ts_err(err, TS_ERR_INPUT, "--arrival: '%s' is not poisson or gamma:CV with CV > 0",
                        arrival);
            goto done;
        }
        g->arrival = TS_ARRIVAL_GAMMA;
    }
    if (slice) {
        int i = -1, n = 0;
        char lo[32];
        const char *slash = strchr(slice, '/');
        if (slash && slash - slice < (long)sizeof lo) {
            snprintf(lo, sizeof lo, "%.*s", (int)(slash - slice), slice);
            if (ts_parse_int(lo, &i) || ts_parse_int(slash + 1, &n)) n = 0;
        }
        if (n < 1 || i < 0 || i >= n) {
            st = ts_err(err, TS_ERR_INPUT, "--slice: '%s' is not I/N with 0 <= I < N", slice);
            goto done;
        }
        g->slice_index = i;
        g->slice_count = n;
    }
    if (!*g->out_path) st = ts_err(err, TS_ERR_INPUT, "--out: empty path");
done:
    free(opts);
    return st;
}

/* ======================================================================
 * The grid
 * ====================================================================== */

int64_t ts_sweep_size(const TsSweepGrid *g) {
    return (int64_t)g->n_sources * g->n_rates * g->n_seeds * g->n_gpus * g->n_scales *
           g->n_policies;
}

void ts_sweep_cell(const TsSweepGrid *g, int64_t index, TsSweepCell *c) {
    c->policy = (int)(index % g->n_policies);
    index /= g->n_policies;
    c->scale = (int)(index % g->n_scales);
    index /= g->n_scales;
    c->gpus = (int)(index % g->n_gpus);
    index /= g->n_gpus;
    c->seed = (int)(index % g->n_seeds);
    index /= g->n_seeds;
    c->rate = (int)(index % g->n_rates);
    c->source = (int)(index / g->n_rates);
}

void ts_sweep_describe(const TsSweepGrid *g, int64_t index, char *buf, size_t len) {
    TsSweepCell c;
    ts_sweep_cell(g, index, &c);
    if (g->kind == TS_SWEEP_MIXES)
        snprintf(buf, len, "policy=%s mix=%s rate_per_min=%g seed=%" PRId64 " n_gpus=%d slo_scale=%g",
                 g->policy[c.policy]->name, g->source[c.source], g->rate_per_min[c.rate],
                 g->seed[c.seed], (int)g->gpus[c.gpus], g->slo_scale[c.scale]);
    else
        snprintf(buf, len, "policy=%s trace=%s seed=%" PRId64 " n_gpus=%d slo_scale=%g",
                 g->policy[c.policy]->name, g->source[c.source], g->seed[c.seed],
                 (int)g->gpus[c.gpus], g->slo_scale[c.scale]);
}

void ts_sweep_policy_config(const TsSweepGrid *g, char *buf, size_t len) {
    const TsPolicyConfig *p = &g->pcfg;
    snprintf(buf, len, "rssp_degrees=%s round_steps=%d round_ms=%g preserve=%d elastic=%d batching=%d%s%s",
             p->rssp_degrees ? p->rssp_degrees : "auto", (int)p->round_steps, p->round_ms,
             p->preserve, p->elastic, p->batching, p->choices ? " choice=" : "", p->choices ? p->choices : "");
}

/* The name of a scenario's trace: its path, or how it was generated. */
static void ts_sweep_trace_name(const TsSweepGrid *g, const TsSweepCell *c, char *buf, size_t len) {
    if (g->kind == TS_SWEEP_TRACES)
        snprintf(buf, len, "%s", g->source[c->source]);
    else
        snprintf(buf, len,
                 "generated: mix=%s rate_per_min=%g seed=%" PRId64 " requests=%" PRId64
                 " steps=%d arrival=%s",
                 g->source[c->source], g->rate_per_min[c->rate], g->seed[c->seed], g->requests,
                 (int)g->steps, g->arrival_spec);
}

static void ts_print_list_d(FILE *out, const char *label, const double *v, int n) {
    fprintf(out, "# %s:", label);
    for (int i = 0; i < n; i++) fprintf(out, "%s%g", i ? "," : " ", v[i]);
    fprintf(out, "\n");
}

void ts_sweep_print_header(FILE *out, const TsSweepGrid *g, int ranks) {
    char buf[512];
    int64_t total = ts_sweep_size(g);
    int64_t mine = total / g->slice_count + (g->slice_index < total % g->slice_count);
    fprintf(out, "# tetriserve %s sweep\n", ts_version_string());
    fprintf(out, "# ranks: %d  slice: %d/%d  scenarios: %" PRId64 " of %" PRId64 "\n", ranks,
            g->slice_index, g->slice_count, mine, total);
    fprintf(out, "# profile: %s\n", g->profile_path);
    fprintf(out, "# policies:");
    for (int i = 0; i < g->n_policies; i++) fprintf(out, "%s%s", i ? "," : " ", g->policy[i]->name);
    ts_sweep_policy_config(g, buf, sizeof buf);
    fprintf(out, "  (%s)\n", buf);
    fprintf(out, "# %s:", g->kind == TS_SWEEP_MIXES ? "mixes" : "traces");
    for (int i = 0; i < g->n_sources; i++) fprintf(out, "%s%s", i ? ";" : " ", g->source[i]);
    fprintf(out, "\n");
    if (g->kind == TS_SWEEP_MIXES) ts_print_list_d(out, "rates_per_min", g->rate_per_min, g->n_rates);
    ts_print_list_d(out, "slo_scales", g->slo_scale, g->n_scales);
    fprintf(out, "# gpus:");
    for (int i = 0; i < g->n_gpus; i++) fprintf(out, "%s%d", i ? "," : " ", (int)g->gpus[i]);
    if (g->gpus_per_node)
        fprintf(out, "  gpus_per_node: %d\n", (int)g->gpus_per_node);
    else
        fprintf(out, "  gpus_per_node: profile's\n");
    int contiguous = 1;
    for (int i = 1; i < g->n_seeds; i++) contiguous &= g->seed[i] == g->seed[i - 1] + 1;
    if (contiguous && g->n_seeds > 3)
        fprintf(out, "# seeds: %" PRId64 "..%" PRId64 " (%d)\n", g->seed[0], g->seed[g->n_seeds - 1],
                g->n_seeds);
    else {
        fprintf(out, "# seeds:");
        for (int i = 0; i < g->n_seeds; i++) fprintf(out, "%s%" PRId64, i ? "," : " ", g->seed[i]);
        fprintf(out, "\n");
    }
    if (g->kind == TS_SWEEP_MIXES)
        fprintf(out, "# requests: %" PRId64 "  steps: %d  arrival: %s\n", g->requests, (int)g->steps,
                g->arrival_spec);
    fprintf(out, "# resolutions:");
    for (int i = 0; i < g->n_res; i++)
        fprintf(out, "%s%dx%d", i ? "," : " ", (int)g->res_width[i], (int)g->res_height[i]);
    fprintf(out, "\n# out: %s%s\n", g->out_path, g->keep_scenarios ? "  (with /scenarios)" : "");
}

/* ======================================================================
 * Running scenarios
 * ====================================================================== */

static void ts_add_res(TsSweepGrid *g, int32_t w, int32_t h, int *overflow) {
    for (int i = 0; i < g->n_res; i++)
        if (g->res_width[i] == w && g->res_height[i] == h) return;
    if (g->n_res == TS_SWEEP_MAX_RES) {
        *overflow = 1;
        return;
    }
    int k = g->n_res++;
    int64_t tk = ts_tokens(w, h);
    while (k > 0 && (ts_tokens(g->res_width[k - 1], g->res_height[k - 1]) > tk ||
                     (ts_tokens(g->res_width[k - 1], g->res_height[k - 1]) == tk &&
                      g->res_width[k - 1] > w))) {
        g->res_width[k] = g->res_width[k - 1];
        g->res_height[k] = g->res_height[k - 1];
        k--;
    }
    g->res_width[k] = w;
    g->res_height[k] = h;
}

TsStatus ts_sweep_runner_init(TsSweepRunner *r, TsSweepGrid *g, TsErr *err) {
    memset(r, 0, sizeof *r);
    r->g = g;
    r->cache_key = -1;
    TsStatus st = ts_profile_load(g->profile_path, &r->profile, err);
    if (st) {
        ts_err_prefix(err, "--profile");
        return st;
    }
    int overflow = 0;
    g->n_res = 0;
    if (g->kind == TS_SWEEP_TRACES) {
        r->trace = ts_xcalloc((size_t)g->n_sources, sizeof *r->trace);
        for (; r->n_trace_loaded < g->n_sources; r->n_trace_loaded++) {
            TsTrace *t = &r->trace[r->n_trace_loaded];
            if ((st = ts_trace_load(g->source[r->n_trace_loaded], t, err))) return st;
            for (int64_t i = 0; i < t->n; i++) ts_add_res(g, t->req[i].width, t->req[i].height, &overflow);
        }
    } else {
        for (int s = 0; s < g->n_sources; s++)
            for (int i = 0; i < g->mix[s].n; i++)
                if (g->mix[s].p[i] > 0) ts_add_res(g, g->mix[s].width[i], g->mix[s].height[i], &overflow);
    }
    if (overflow)
        return ts_err(err, TS_ERR_INPUT,
                      "%s: the grid has more than %d distinct resolutions (the /sweep table holds %d)",
                      g->kind == TS_SWEEP_TRACES ? "--trace" : "--mixes", TS_SWEEP_MAX_RES,
                      TS_SWEEP_MAX_RES);
    return TS_OK;
}

void ts_sweep_runner_free(TsSweepRunner *r) {
    for (int i = 0; i < r->n_trace_loaded; i++) ts_trace_free(&r->trace[i]);
    free(r->trace);
    ts_trace_free(&r->cache);
    ts_profile_free(&r->profile);
    memset(r, 0, sizeof *r);
}

/* Does policy `ops` accept this trace's resolutions on n_gpus GPUs? The
 * same checks as ts_scenario_run, without the run. */
static TsStatus ts_sweep_check_one(TsSweepRunner *r, const TsTrace *t, const TsPolicyOps *ops,
                                   int32_t n_gpus, TsErr *err) {
    TsCostModel cm;
    TsSim sim;
    TsRunLog log;
    memset(&sim, 0, sizeof sim);
    ts_log_init(&log, t->n);
    int *res_of = ts_xmalloc((size_t)(t->n ? t->n : 1) * sizeof *res_of);
    TsStatus st = ts_cost_build(&cm, &r->profile, t, n_gpus, res_of, err);
    if (st == TS_OK) {
        TsEngineConfig ecfg = {n_gpus, r->g->gpus_per_node, 1.0, NULL};
        if (ecfg.gpus_per_node <= 0)
            ecfg.gpus_per_node = r->profile.gpus_per_node > 0 ? r->profile.gpus_per_node : n_gpus;
        st = ts_sim_init(&sim, t, &cm, res_of, &ecfg, ops, &r->g->pcfg, &log, err);
        ts_sim_free(&sim);
        ts_cost_free(&cm);
    }
    free(res_of);
    ts_log_free(&log);
    return st;
}

TsStatus ts_sweep_validate(TsSweepRunner *r, TsErr *err) {
    const TsSweepGrid *g = r->g;
    TsStatus st = TS_OK;
    for (int s = 0; s < g->n_sources && st == TS_OK; s++) {
        TsTrace probe = {0};
        const TsTrace *t;
        if (g->kind == TS_SWEEP_TRACES) {
            t = &r->trace[s];
        } else {
            /* One request of each resolution of the mix: what every trace
             * drawn from it can hold. */
            const TsMix *m = &g->mix[s];
            probe.path = (char *)"<mix probe>";
            probe.req = ts_xcalloc((size_t)m->n, sizeof *probe.req);
            for (int i = 0; i < m->n; i++) {
                if (!(m->p[i] > 0)) continue;
                TsRequest *q = &probe.req[probe.n];
                q->id = probe.n++;
                q->width = m->width[i];
                q->height = m->height[i];
                q->steps = g->steps;
                q->slo_s = ts_slo_default_s(q->width, q->height);
            }
            t = &probe;
        }
        for (int k = 0; k < g->n_gpus && st == TS_OK; k++)
            for (int p = 0; p < g->n_policies && st == TS_OK; p++)
                if ((st = ts_sweep_check_one(r, t, g->policy[p], g->gpus[k], err))) {
                    ts_err_prefix(err, "policy %s on %d GPUs with %s %s", g->policy[p]->name,
                                  (int)g->gpus[k], g->kind == TS_SWEEP_MIXES ? "mix" : "trace",
                                  g->source[s]);
                    if (g->policies_default) {
                        size_t l = strlen(err->msg);
                        snprintf(err->msg + l, sizeof err->msg - l,
                                 " (all policies by default: choose with --policies)");
                    }
                }
        free(probe.req);
    }
    return st;
}

static const TsTrace *ts_sweep_trace(TsSweepRunner *r, const TsSweepCell *c, TsErr *err) {
    const TsSweepGrid *g = r->g;
    if (g->kind == TS_SWEEP_TRACES) return &r->trace[c->source];
    int64_t key = ((int64_t)c->source * g->n_rates + c->rate) * g->n_seeds + c->seed;
    if (key == r->cache_key) return &r->cache;
    ts_trace_free(&r->cache);
    r->cache_key = -1;
    TsTraceGenArgs a = {
        .n = g->requests, .rate_per_min = g->rate_per_min[c->rate], .mix = g->mix[c->source],
        .steps = g->steps, .arrival = g->arrival, .gamma_cv = g->gamma_cv,
        .seed = (uint64_t)g->seed[c->seed],
    };
    if (ts_trace_generate(&a, &r->cache, err)) return NULL;
    char name[512];
    ts_sweep_trace_name(g, c, name, sizeof name);
    free(r->cache.path);
    r->cache.path = ts_xstrdup(name);
    r->cache_key = key;
    return &r->cache;
}

static void ts_copy_str(char *dst, size_t len, const char *src) {
    memset(dst, 0, len);
    strncpy(dst, src, len - 1);
}

TsStatus ts_sweep_run_one(TsSweepRunner *r, int64_t index, TsSweepRow *row,
                          TsScenarioResult *keep, TsErr *err) {
    const TsSweepGrid *g = r->g;
    TsSweepCell c;
    TsScenarioResult own, *res = keep ? keep : &own;
    double t0 = ts_wall_s();
    memset(res, 0, sizeof *res);
    memset(row, 0, sizeof *row);
    if (index < 0 || index >= ts_sweep_size(g))
        return ts_err(err, TS_ERR_INTERNAL, "scenario index %" PRId64 " out of range", index);
    ts_sweep_cell(g, index, &c);
    const TsTrace *t = ts_sweep_trace(r, &c, err);
    if (!t) return TS_ERR_INPUT;
    TsScenario sc = {
        .trace = t, .profile = &r->profile, .ops = g->policy[c.policy], .pcfg = g->pcfg,
        .n_gpus = g->gpus[c.gpus], .gpus_per_node = g->gpus_per_node,
        .slo_scale = g->slo_scale[c.scale], .seed = (uint64_t)g->seed[c.seed],
    };
    TsStatus st = ts_scenario_run(&sc, res, err);
    if (st == TS_OK) {
        const TsSummary *s = &res->sum;
        row->index = index;
        ts_copy_str(row->policy, sizeof row->policy, g->policy[c.policy]->name);
        ts_copy_str(row->source, sizeof row->source, g->source[c.source]);
        if (g->kind == TS_SWEEP_MIXES)
            row->rate_per_min = g->rate_per_min[c.rate];
        else
            row->rate_per_min = t->n && t->req[t->n - 1].arrival_s > 0
                                    ? 60.0 * (double)t->n / t->req[t->n - 1].arrival_s
                                    : NAN;
        row->slo_scale = g->slo_scale[c.scale];
        row->n_gpus = g->gpus[c.gpus];
        row->seed = g->seed[c.seed];
        row->requests = s->n_requests;
        row->n_met = s->n_met;
        row->n_finished = s->n_finished;
        row->sar = s->sar;
        row->latency_mean = s->latency_mean;
        row->latency_p50 = s->latency_p50;
        row->latency_p90 = s->latency_p90;
        row->latency_p99 = s->latency_p99;
        row->gpu_busy_fraction = s->gpu_busy_fraction;
        row->makespan = s->makespan;
        row->round_s = res->round_s;
        for (int k = 0; k < TS_SWEEP_MAX_RES; k++) {
            row->res_width[k] = k < g->n_res ? g->res_width[k] : 0;
            row->res_height[k] = k < g->n_res ? g->res_height[k] : 0;
            row->res_sar[k] = NAN;
        }
        for (int i = 0; i < s->n_res; i++) {
            int k = 0;
            while (k < g->n_res &&
                   (g->res_width[k] != s->res_width[i] || g->res_height[k] != s->res_height[i]))
                k++;
            if (k == g->n_res) {
                st = ts_err(err, TS_ERR_INTERNAL, "resolution %dx%d is not a column of the table",
                            (int)s->res_width[i], (int)s->res_height[i]);
                break;
            }
            row->res_n[k] = s->res_n[i];
            row->res_met[k] = s->res_met[i];
            row->res_sar[k] = s->res_n[i] ? (double)s->res_met[i] / (double)s->res_n[i] : NAN;
        }
    }
    if (!keep) ts_log_free(&own.log);
    row->wall_s = ts_wall_s() - t0;
    return st;
}

/* ---- run logs between ranks ---- */

typedef struct TsLogHead {
    uint32_t magic, options_len;
    int64_t n_req, n_seg, n_seg_gpus, n_rounds;
} TsLogHead;
#define TS_LOG_MAGIC 0x474c5354u /* "TSLG" */
#define TS_ALIGN8(n) (((n) + 7u) & ~(size_t)7u)

void *ts_sweep_log_pack(const TsRunLog *log, const char *policy_options, size_t *len) {
    TsLogHead h = {TS_LOG_MAGIC, (uint32_t)strlen(policy_options), log->n_req, log->n_seg,
                   log->n_seg_gpus, log->n_rounds};
    size_t sizes[5] = {
        TS_ALIGN8((size_t)h.options_len), (size_t)h.n_req * sizeof *log->req,
        (size_t)h.n_seg * sizeof *log->seg, TS_ALIGN8((size_t)h.n_seg_gpus * sizeof *log->seg_gpus),
        (size_t)h.n_rounds * sizeof *log->rounds,
    };
    const void *src[5] = {policy_options, log->req, log->seg, log->seg_gpus, log->rounds};
    size_t raw[5] = {h.options_len, sizes[1], sizes[2], (size_t)h.n_seg_gpus * sizeof *log->seg_gpus,
                     sizes[4]};
    size_t total = sizeof h;
    for (int i = 0; i < 5; i++) total += sizes[i];
    char *buf = ts_xcalloc(1, total), *p = buf;
    memcpy(p, &h, sizeof h);
    p += sizeof h;
    for (int i = 0; i < 5; i++) {
        if (raw[i]) memcpy(p, src[i], raw[i]);
        p += sizes[i];
    }
    *len = total;
    return buf;
}

TsStatus ts_sweep_log_unpack(const void *buf, size_t len, TsRunLog *log, char *policy_options,
                             size_t options_len, TsErr *err) {
    TsLogHead h;
    memset(log, 0, sizeof *log);
    if (len < sizeof h)
        return ts_err(err, TS_ERR_SYSTEM, "scenario log message of %zu bytes is truncated", len);
    memcpy(&h, buf, sizeof h);
    if (h.magic != TS_LOG_MAGIC || h.n_req < 0 || h.n_seg < 0 || h.n_seg_gpus < 0 || h.n_rounds < 0)
        return ts_err(err, TS_ERR_SYSTEM, "scenario log message is corrupt");
    size_t sizes[5] = {
        TS_ALIGN8((size_t)h.options_len), (size_t)h.n_req * sizeof *log->req,
        (size_t)h.n_seg * sizeof *log->seg, TS_ALIGN8((size_t)h.n_seg_gpus * sizeof *log->seg_gpus),
        (size_t)h.n_rounds * sizeof *log->rounds,
    };
    size_t total = sizeof h;
    for (int i = 0; i < 5; i++) total += sizes[i];
    if (total != len)
        return ts_err(err, TS_ERR_SYSTEM, "scenario log message is %zu bytes, its header says %zu",
                      len, total);
    const char *p = (const char *)buf + sizeof h;
    size_t n_opt = h.options_len < options_len ? h.options_len : options_len - 1;
    memcpy(policy_options, p, n_opt);
    policy_options[n_opt] = '\0';
    p += sizes[0];
    log->n_req = h.n_req;
    log->req = ts_xmalloc(sizes[1] ? sizes[1] : 1);
    memcpy(log->req, p, sizes[1]);
    p += sizes[1];
    log->n_seg = log->cap_seg = log->seg_dirty_from = h.n_seg;
    log->seg = ts_xmalloc(sizes[2] ? sizes[2] : 1);
    memcpy(log->seg, p, sizes[2]);
    p += sizes[2];
    log->n_seg_gpus = log->cap_seg_gpus = h.n_seg_gpus;
    log->seg_gpus = ts_xmalloc(sizes[3] ? sizes[3] : 1);
    memcpy(log->seg_gpus, p, (size_t)h.n_seg_gpus * sizeof *log->seg_gpus);
    p += sizes[3];
    log->n_rounds = log->cap_rounds = h.n_rounds;
    log->rounds = ts_xmalloc(sizes[4] ? sizes[4] : 1);
    memcpy(log->rounds, p, sizes[4]);
    return TS_OK;
}

TsStatus ts_sweep_write_scenario(const TsSweepRunner *r, int64_t index, const TsRunLog *log,
                                 const char *policy_options, double round_s,
                                 const char *command_line, TsErr *err) {
    const TsSweepGrid *g = r->g;
    TsSweepCell c;
    char trace[512], group[64];
    ts_sweep_cell(g, index, &c);
    ts_sweep_trace_name(g, &c, trace, sizeof trace);
    int32_t n_gpus = g->gpus[c.gpus];
    int32_t gpn = g->gpus_per_node > 0 ? g->gpus_per_node
                  : r->profile.gpus_per_node > 0 ? r->profile.gpus_per_node
                                                 : n_gpus;
    TsRunMeta meta = {
        .mode = "simulate", .backend = "sim", .policy = g->policy[c.policy]->name,
        .policy_options = policy_options, .trace = trace, .profile = r->profile.path,
        .exec_profile = r->profile.path,
        .command_line = command_line, .n_gpus = n_gpus, .gpus_per_node = gpn,
        .slo_scale = g->slo_scale[c.scale], .round_s = round_s, .seed = (uint64_t)g->seed[c.seed],
    };
    TsSummary s;
    ts_summary_compute(log, n_gpus, &s);
    snprintf(group, sizeof group, "/scenarios/%" PRId64, index);
    return ts_results_write_group(g->out_path, group, &meta, log, &s, 1, err);
}

/* ======================================================================
 * The HDF5 sweep file
 * ====================================================================== */

/* "<formatted>: <innermost HDF5 error>"; before any other HDF5 call. */
/* The compound type of a row: in memory (the struct) or packed
 * little-endian in the file. */
static hid_t ts_sweep_row_type(int file) {
    size_t size = 0;
    hid_t types[64];
    int n = ts_sweep_n_fields;
    hid_t t = H5I_INVALID_HID;
    for (int i = 0; i < n; i++) types[i] = H5I_INVALID_HID;
    for (int i = 0; i < n; i++) {
        const TsSweepField *f = &ts_sweep_fields[i];
        hid_t base;
        if (f->kind == TS_SF_STR) {
            if ((types[i] = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(types[i], (size_t)f->count) < 0 ||
                H5Tset_strpad(types[i], H5T_STR_NULLPAD) < 0)
                goto done;
        } else {
            base = f->kind == TS_SF_I64   ? (file ? H5T_STD_I64LE : H5T_NATIVE_INT64)
                   : f->kind == TS_SF_I32 ? (file ? H5T_STD_I32LE : H5T_NATIVE_INT32)
                                          : (file ? H5T_IEEE_F64LE : H5T_NATIVE_DOUBLE);
            if (f->count > 1) {
                hsize_t dim = (hsize_t)f->count;
                if ((types[i] = H5Tarray_create2(base, 1, &dim)) < 0) goto done;
            } else if ((types[i] = H5Tcopy(base)) < 0) {
                goto done;
            }
        }
        size += H5Tget_size(types[i]);
    }
    if ((t = H5Tcreate(H5T_COMPOUND, file ? size : sizeof(TsSweepRow))) < 0) goto done;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if (H5Tinsert(t, ts_sweep_fields[i].name, file ? off : ts_sweep_fields[i].offset, types[i]) < 0) {
            H5Tclose(t);
            t = H5I_INVALID_HID;
            goto done;
        }
        off += H5Tget_size(types[i]);
    }
done:
    for (int i = 0; i < n; i++) ts_h5_close(types[i]);
    return t;
}

/* FNV-1a of everything that defines the scenarios and their order. */
static void ts_sweep_grid_id(const TsSweepGrid *g, char *out, size_t len) {
    uint64_t h = 1469598103934665603ull;
    char buf[512];
#define TS_MIX_IN(s)                                                   \
    for (const char *q_ = (s); ; q_++) {                               \
        h = (h ^ (uint8_t)*q_) * 1099511628211ull;                     \
        if (!*q_) break;                                               \
    }
    TS_MIX_IN(g->profile_path);
    for (int i = 0; i < g->n_policies; i++) TS_MIX_IN(g->policy[i]->name);
    ts_sweep_policy_config(g, buf, sizeof buf);
    TS_MIX_IN(buf);
    TS_MIX_IN(g->kind == TS_SWEEP_MIXES ? "mix" : "trace");
    for (int i = 0; i < g->n_sources; i++) TS_MIX_IN(g->source[i]);
    for (int i = 0; i < g->n_rates; i++) {
        snprintf(buf, sizeof buf, "r%.17g", g->rate_per_min[i]);
        TS_MIX_IN(buf);
    }
    for (int i = 0; i < g->n_scales; i++) {
        snprintf(buf, sizeof buf, "x%.17g", g->slo_scale[i]);
        TS_MIX_IN(buf);
    }
    for (int i = 0; i < g->n_gpus; i++) {
        snprintf(buf, sizeof buf, "g%d", (int)g->gpus[i]);
        TS_MIX_IN(buf);
    }
    for (int i = 0; i < g->n_seeds; i++) {
        snprintf(buf, sizeof buf, "s%" PRId64, g->seed[i]);
        TS_MIX_IN(buf);
    }
    snprintf(buf, sizeof buf, "n%" PRId64 " k%d a%s N%d", g->requests, (int)g->steps,
             g->arrival_spec, (int)g->gpus_per_node);
    TS_MIX_IN(buf);
#undef TS_MIX_IN
    snprintf(out, len, "%016" PRIx64, h);
}

static hid_t ts_sweep_dset_create(hid_t file) {
    hid_t d = H5I_INVALID_HID, sp = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, t = H5I_INVALID_HID;
    hsize_t dim = 0, maxdim = H5S_UNLIMITED, chunk = TS_SWEEP_CHUNK_ROWS;
    if ((t = ts_sweep_row_type(1)) < 0) goto done;
    if ((sp = H5Screate_simple(1, &dim, &maxdim)) < 0) goto done;
    if ((dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0) goto done;
    if (H5Pset_chunk(dcpl, 1, &chunk) < 0 || H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, 4) < 0)
        goto done;
    d = H5Dcreate2(file, "sweep", t, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
done:
    ts_h5_close(dcpl);
    ts_h5_close(sp);
    ts_h5_close(t);
    return d;
}

static TsStatus ts_sweep_write_rows(hid_t file, const char *path, const TsSweepRow *rows,
                                    int64_t n, TsErr *err) {
    TsStatus st = TS_OK;
    hid_t d = H5I_INVALID_HID, t = H5I_INVALID_HID;
    hsize_t dim = (hsize_t)n;
    htri_t ex;
    TS_H5_TRY(ex = H5Lexists(file, "sweep", H5P_DEFAULT), "%s: cannot look up /sweep", path);
    if (ex > 0)
        TS_H5_TRY(d = H5Dopen2(file, "sweep", H5P_DEFAULT), "%s: cannot open /sweep", path);
    else
        TS_H5_TRY(d = ts_sweep_dset_create(file), "%s: cannot create /sweep", path);
    TS_H5_TRY(H5Dset_extent(d, &dim), "%s: cannot extend /sweep to %" PRId64 " rows", path, n);
    TS_H5_TRY(t = ts_sweep_row_type(0), "%s: cannot build the type of /sweep", path);
    if (n > 0)
        TS_H5_TRY(H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows), "%s: cannot write /sweep",
                  path);
    TS_H5_TRY(ts_h5_attr_i64(file, "n_rows", n), "%s: cannot write attribute n_rows", path);
done:
    ts_h5_close(t);
    ts_h5_close(d);
    return st;
}

/* Create results/ for a path under it (the default --out); any failure
 * surfaces as H5Fcreate's. */
static void ts_sweep_mkdir_results(const char *path) {
    if (!strncmp(path, "results/", 8)) (void)mkdir("results", 0777);
}

TsStatus ts_sweep_file_create(const TsSweepRunner *r, const char *command_line, int ranks,
                              TsErr *err) {
    const TsSweepGrid *g = r->g;
    const char *path = g->out_path;
    TsStatus st = TS_OK;
    hid_t file = H5I_INVALID_HID, d = H5I_INVALID_HID;
    const char *names[TS_SWEEP_MAX_LIST];
    char created[32], buf[512], res[TS_SWEEP_MAX_RES][32];
    const char *resp[TS_SWEEP_MAX_RES];
    const char *what = NULL;

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    ts_sweep_mkdir_results(path);
    errno = 0;
    file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) {
        int e = errno;
        return ts_err(err, TS_ERR_IO, "--out: %s: cannot create HDF5 file%s%s", path, e ? ": " : "",
                      e ? strerror(e) : "");
    }
    ts_iso8601_now(created, sizeof created);
    int64_t total = ts_sweep_size(g);
    for (int i = 0; i < g->n_policies; i++) names[i] = g->policy[i]->name;
    for (int i = 0; i < g->n_res; i++) {
        snprintf(res[i], sizeof res[i], "%dx%d", (int)g->res_width[i], (int)g->res_height[i]);
        resp[i] = res[i];
    }
    /* 0 when neither the option nor the profile gives it: each scenario's n_gpus. */
    int32_t gpn = g->gpus_per_node ? g->gpus_per_node : r->profile.gpus_per_node;
#define TS_PUT(name, expr)      \
    do {                        \
        what = name;            \
        if ((expr) < 0) goto attr_fail; \
    } while (0)
    TS_PUT("schema_version", ts_h5_attr_i32(file, "schema_version", TS_SWEEP_SCHEMA_VERSION));
    TS_PUT("tetriserve_version", ts_h5_attr_str(file, "tetriserve_version", ts_version_string()));
    TS_PUT("created", ts_h5_attr_str(file, "created", created));
    TS_PUT("mode", ts_h5_attr_str(file, "mode", "sweep"));
    TS_PUT("backend", ts_h5_attr_str(file, "backend", "sim"));
    TS_PUT("command_line", ts_h5_attr_str(file, "command_line", command_line));
    TS_PUT("profile", ts_h5_attr_str(file, "profile", g->profile_path));
    TS_PUT("profile_model", ts_h5_attr_str(file, "profile_model", r->profile.model));
    TS_PUT("profile_gpu", ts_h5_attr_str(file, "profile_gpu", r->profile.gpu));
    TS_PUT("policies", ts_h5_attr_strs(file, "policies", names, g->n_policies));
    ts_sweep_policy_config(g, buf, sizeof buf);
    TS_PUT("policy_options", ts_h5_attr_str(file, "policy_options", buf));
    TS_PUT("source_kind", ts_h5_attr_str(file, "source_kind", g->kind == TS_SWEEP_MIXES ? "mix" : "trace"));
    TS_PUT("sources", ts_h5_attr_strs(file, "sources", (const char *const *)g->source, g->n_sources));
    TS_PUT("rates_per_min", ts_h5_attr_put(file, "rates_per_min", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                        g->kind == TS_SWEEP_MIXES ? g->n_rates : 0, g->rate_per_min));
    TS_PUT("slo_scales", ts_h5_attr_put(file, "slo_scales", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                     g->n_scales, g->slo_scale));
    TS_PUT("gpus", ts_h5_attr_put(file, "gpus", H5T_STD_I32LE, H5T_NATIVE_INT32, g->n_gpus, g->gpus));
    TS_PUT("seeds", ts_h5_attr_put(file, "seeds", H5T_STD_I64LE, H5T_NATIVE_INT64, g->n_seeds, g->seed));
    TS_PUT("requests", ts_h5_attr_i64(file, "requests", g->kind == TS_SWEEP_MIXES ? g->requests : 0));
    TS_PUT("steps", ts_h5_attr_i32(file, "steps", g->kind == TS_SWEEP_MIXES ? g->steps : 0));
    TS_PUT("arrival", ts_h5_attr_str(file, "arrival", g->kind == TS_SWEEP_MIXES ? g->arrival_spec : ""));
    TS_PUT("gpus_per_node", ts_h5_attr_i32(file, "gpus_per_node", gpn));
    TS_PUT("resolutions", ts_h5_attr_strs(file, "resolutions", resp, g->n_res));
    TS_PUT("res_width", ts_h5_attr_put(file, "res_width", H5T_STD_I32LE, H5T_NATIVE_INT32, g->n_res,
                                    g->res_width));
    TS_PUT("res_height", ts_h5_attr_put(file, "res_height", H5T_STD_I32LE, H5T_NATIVE_INT32, g->n_res,
                                     g->res_height));
    TS_PUT("n_scenarios", ts_h5_attr_i64(file, "n_scenarios", total));
    TS_PUT("slice_index", ts_h5_attr_i32(file, "slice_index", g->slice_index));
    TS_PUT("slice_count", ts_h5_attr_i32(file, "slice_count", g->slice_count));
    TS_PUT("index_order", ts_h5_attr_str(file, "index_order", TS_SWEEP_INDEX_ORDER));
    ts_sweep_grid_id(g, buf, sizeof buf);
    TS_PUT("grid_id", ts_h5_attr_str(file, "grid_id", buf));
    TS_PUT("ranks", ts_h5_attr_i32(file, "ranks", ranks));
    TS_PUT("keep_scenarios", ts_h5_attr_u8(file, "keep_scenarios", (uint8_t)g->keep_scenarios));
    TS_PUT("complete", ts_h5_attr_u8(file, "complete", 0));
#undef TS_PUT
    TS_H5_TRY(d = ts_sweep_dset_create(file), "%s: cannot create /sweep", path);
    TS_H5_TRY(ts_h5_attr_i64(file, "n_rows", 0), "%s: cannot write attribute n_rows", path);
    goto done;
attr_fail:
    st = ts_h5_fail(err, "%s: cannot write attribute %s", path, what);
done:
    ts_h5_close(d);
    return ts_h5_close_file(file, st, path, err);
}

TsStatus ts_sweep_file_finish(const TsSweepGrid *g, const TsSweepRow *rows, int64_t n,
                              double wall_s, TsErr *err) {
    const char *path = g->out_path;
    TsStatus st = TS_OK;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (file < 0) return ts_h5_fail(err, "%s: cannot reopen the sweep file", path);
    if ((st = ts_sweep_write_rows(file, path, rows, n, err))) goto done;
    TS_H5_TRY(ts_h5_attr_f64(file, "wall_s", wall_s), "%s: cannot write attribute wall_s", path);
    TS_H5_TRY(ts_h5_attr_u8(file, "complete", 1), "%s: cannot write attribute complete", path);
done:
    return ts_h5_close_file(file, st, path, err);
}

void ts_sweep_file_fail(const char *path, const char *msg) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (file < 0) return;
    ts_h5_attr_str(file, "error", msg);
    H5Fclose(file);
}

/* ---- merge ---- */

static herr_t ts_copy_attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    hid_t dst = *(hid_t *)data;
    herr_t rc = -1;
    hid_t a = H5I_INVALID_HID, t = H5I_INVALID_HID, mt = H5I_INVALID_HID, sp = H5I_INVALID_HID,
          b = H5I_INVALID_HID;
    void *buf = NULL;
    hssize_t n = 0;
    if ((a = H5Aopen(loc, name, H5P_DEFAULT)) < 0 || (t = H5Aget_type(a)) < 0 ||
        (sp = H5Aget_space(a)) < 0 || (mt = H5Tget_native_type(t, H5T_DIR_DEFAULT)) < 0)
        goto done;
    n = H5Sget_simple_extent_npoints(sp);
    size_t sz = H5Tget_size(mt);
    if (n < 0 || sz == 0) goto done;
    buf = ts_xcalloc((size_t)(n ? n : 1), sz);
    if (n > 0 && H5Aread(a, mt, buf) < 0) goto done;
    if ((b = H5Acreate2(dst, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto done;
    if (n > 0 && H5Awrite(b, mt, buf) < 0) goto done;
    rc = 0;
done:
    if (buf && mt >= 0 && sp >= 0 && (H5Tdetect_class(mt, H5T_VLEN) > 0 || H5Tis_variable_str(mt) > 0))
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, buf);
    free(buf);
    ts_h5_close(b);
    ts_h5_close(mt);
    ts_h5_close(sp);
    ts_h5_close(t);
    ts_h5_close(a);
    return rc;
}

typedef struct TsNames {
    char **name;
    int64_t n, cap;
} TsNames;

static herr_t ts_link_name_cb(hid_t loc, const char *name, const H5L_info_t *info, void *data) {
    (void)loc;
    (void)info;
    TsNames *l = data;
    TS_GROW(l->name, l->cap, l->n + 1);
    l->name[l->n++] = ts_xstrdup(name);
    return 0;
}

typedef struct TsPart {
    hid_t file;
    char grid_id[64];
    int64_t n_scenarios;
    int32_t slice_index, slice_count;
    double wall_s;
} TsPart;

/* Open a part and read what identifies its grid and slice. */
static TsStatus ts_part_open(const char *path, TsPart *p, TsErr *err) {
    char mode[32];
    uint8_t complete = 0;
    p->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (p->file < 0) {
        FILE *f = fopen(path, "rb");
        if (!f) return ts_err(err, TS_ERR_IO, "%s: %s", path, strerror(errno));
        fclose(f);
        return ts_h5_fail(err, "%s: cannot open HDF5 file", path);
    }
    if (ts_h5_attr_get_str(p->file, "mode", mode, sizeof mode) < 0 || strcmp(mode, "sweep") != 0)
        return ts_err(err, TS_ERR_INPUT, "%s: not a tetriserve sweep file (mode is not 'sweep')", path);
    if (ts_h5_attr_get_str(p->file, "grid_id", p->grid_id, sizeof p->grid_id) < 0 ||
        ts_h5_attr_get(p->file, "n_scenarios", H5T_NATIVE_INT64, &p->n_scenarios) < 0 ||
        ts_h5_attr_get(p->file, "slice_index", H5T_NATIVE_INT32, &p->slice_index) < 0 ||
        ts_h5_attr_get(p->file, "slice_count", H5T_NATIVE_INT32, &p->slice_count) < 0)
        return ts_err(err, TS_ERR_INPUT, "%s: lacks the grid attributes of a sweep file", path);
    if (ts_h5_attr_get(p->file, "complete", H5T_NATIVE_UINT8, &complete) < 0 || !complete)
        return ts_err(err, TS_ERR_INPUT, "%s: incomplete (complete = 0): rerun slice %d/%d", path,
                      (int)p->slice_index, (int)p->slice_count);
    p->wall_s = NAN;
    ts_h5_attr_get(p->file, "wall_s", H5T_NATIVE_DOUBLE, &p->wall_s);
    return TS_OK;
}

static TsStatus ts_part_read_rows(const char *path, hid_t file, TsSweepRow **rows, int64_t *n,
                                  TsErr *err) {
    TsStatus st = TS_OK;
    hid_t d = H5I_INVALID_HID, sp = H5I_INVALID_HID, t = H5I_INVALID_HID;
    hssize_t np = 0;
    *rows = NULL;
    TS_H5_TRY(d = H5Dopen2(file, "sweep", H5P_DEFAULT), "%s: cannot open /sweep", path);
    TS_H5_TRY(sp = H5Dget_space(d), "%s: cannot get the dataspace of /sweep", path);
    TS_H5_TRY(np = H5Sget_simple_extent_npoints(sp), "%s: bad dataspace of /sweep", path);
    TS_H5_TRY(t = ts_sweep_row_type(0), "%s: cannot build the type of /sweep", path);
    *rows = ts_xcalloc((size_t)(np ? np : 1), sizeof **rows);
    if (np > 0)
        TS_H5_TRY(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, *rows),
                  "%s: cannot read /sweep (fields differ from this tetriserve's?)", path);
done:
    ts_h5_close(t);
    ts_h5_close(sp);
    ts_h5_close(d);
    *n = (int64_t)np;
    return st;
}

TsStatus ts_sweep_merge(const char *out, char *const *parts, int n_parts, int64_t *n_rows,
                        TsErr *err) {
    TsStatus st = TS_OK;
    TsPart *p = ts_xcalloc((size_t)n_parts, sizeof *p);
    TsSweepRow *all = NULL, *rows = NULL;
    uint8_t *have = NULL;
    hid_t file = H5I_INVALID_HID, lcpl = H5I_INVALID_HID, g = H5I_INVALID_HID;
    int64_t total = 0;
    double wall_max = 0;
    TsNames names = {0};

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    for (int i = 0; i < n_parts; i++) p[i].file = H5I_INVALID_HID;
    for (int i = 0; i < n_parts; i++) {
        if ((st = ts_part_open(parts[i], &p[i], err))) goto done;
        if (i == 0) {
            total = p[0].n_scenarios;
            all = ts_xcalloc((size_t)(total ? total : 1), sizeof *all);
            have = ts_xcalloc((size_t)(total ? total : 1), 1);
        } else if (strcmp(p[i].grid_id, p[0].grid_id) != 0 || p[i].n_scenarios != total) {
            st = ts_err(err, TS_ERR_INPUT, "%s: from another grid than %s (grid_id %s vs %s)",
                        parts[i], parts[0], p[i].grid_id, p[0].grid_id);
            goto done;
        } else if (p[i].slice_count != p[0].slice_count) {
            st = ts_err(err, TS_ERR_INPUT, "%s is slice %d/%d but %s is slice %d/%d", parts[i],
                        (int)p[i].slice_index, (int)p[i].slice_count, parts[0],
                        (int)p[0].slice_index, (int)p[0].slice_count);
            goto done;
        }
        for (int j = 0; j < i; j++)
            if (p[j].slice_index == p[i].slice_index) {
                st = ts_err(err, TS_ERR_INPUT, "%s and %s are both slice %d/%d", parts[j], parts[i],
                            (int)p[i].slice_index, (int)p[i].slice_count);
                goto done;
            }
        if (!(p[i].wall_s <= wall_max)) wall_max = isnan(p[i].wall_s) ? wall_max : p[i].wall_s;
        int64_t n;
        if ((st = ts_part_read_rows(parts[i], p[i].file, &rows, &n, err))) goto done;
        for (int64_t k = 0; k < n; k++) {
            int64_t x = rows[k].index;
            if (x < 0 || x >= total || x % p[i].slice_count != p[i].slice_index || have[x]) {
                st = ts_err(err, TS_ERR_INPUT, "%s: row %" PRId64 " has index %" PRId64
                            ", not one of slice %d/%d or seen twice", parts[i], k, x,
                            (int)p[i].slice_index, (int)p[i].slice_count);
                goto done;
            }
            have[x] = 1;
            all[x] = rows[k];
        }
        free(rows);
        rows = NULL;
    }
    if (n_parts != p[0].slice_count) {
        int missing = 0;
        for (int s = 0; s < p[0].slice_count; s++) {
            int found = 0;
            for (int i = 0; i < n_parts; i++) found |= p[i].slice_index == s;
            if (!found) {
                missing = s;
                break;
            }
        }
        st = ts_err(err, TS_ERR_INPUT, "have %d of %d slices: slice %d/%d is missing", n_parts,
                    (int)p[0].slice_count, missing, (int)p[0].slice_count);
        goto done;
    }
    for (int64_t x = 0; x < total; x++)
        if (!have[x]) {
            st = ts_err(err, TS_ERR_INPUT, "scenario %" PRId64 " is in no part", x);
            goto done;
        }

    errno = 0;
    file = H5Fcreate(out, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) {
        int e = errno;
        st = ts_err(err, TS_ERR_IO, "%s: cannot create HDF5 file%s%s", out, e ? ": " : "",
                    e ? strerror(e) : "");
        goto done;
    }
    hsize_t idx = 0;
    TS_H5_TRY(H5Aiterate2(p[0].file, H5_INDEX_NAME, H5_ITER_INC, &idx, ts_copy_attr_cb, &file),
              "%s: cannot copy the attributes of %s", out, parts[0]);
    char created[32];
    ts_iso8601_now(created, sizeof created);
    TS_H5_TRY(ts_h5_attr_u8(file, "complete", 0), "%s: cannot write attribute complete", out);
    TS_H5_TRY(ts_h5_attr_str(file, "created", created), "%s: cannot write attribute created", out);
    TS_H5_TRY(ts_h5_attr_i32(file, "slice_index", 0), "%s: cannot write attribute slice_index", out);
    TS_H5_TRY(ts_h5_attr_i32(file, "slice_count", 1), "%s: cannot write attribute slice_count", out);
    TS_H5_TRY(ts_h5_attr_f64(file, "wall_s", wall_max), "%s: cannot write attribute wall_s", out);
    TS_H5_TRY(ts_h5_attr_strs(file, "merged_from", (const char *const *)parts, n_parts),
              "%s: cannot write attribute merged_from", out);
    if ((st = ts_sweep_write_rows(file, out, all, total, err))) goto done;

    TS_H5_TRY(lcpl = H5Pcreate(H5P_LINK_CREATE), "%s: cannot create a property list", out);
    TS_H5_TRY(H5Pset_create_intermediate_group(lcpl, 1), "%s: cannot set a property", out);
    for (int i = 0; i < n_parts; i++) {
        htri_t ex = H5Lexists(p[i].file, "scenarios", H5P_DEFAULT);
        if (ex <= 0) continue;
        TS_H5_TRY(g = H5Gopen2(p[i].file, "scenarios", H5P_DEFAULT), "%s: cannot open /scenarios",
                  parts[i]);
        idx = 0;
        TS_H5_TRY(H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, ts_link_name_cb, &names),
                  "%s: cannot list /scenarios", parts[i]);
        for (int64_t k = 0; k < names.n; k++) {
            char path[256];
            snprintf(path, sizeof path, "/scenarios/%s", names.name[k]);
            TS_H5_TRY(H5Ocopy(p[i].file, path, file, path, H5P_DEFAULT, lcpl),
                      "%s: cannot copy %s from %s", out, path, parts[i]);
        }
        for (int64_t k = 0; k < names.n; k++) free(names.name[k]);
        names.n = 0;
        ts_h5_close(g);
        g = H5I_INVALID_HID;
    }
    TS_H5_TRY(ts_h5_attr_u8(file, "complete", 1), "%s: cannot write attribute complete", out);
    *n_rows = total;
done:
    for (int64_t k = 0; k < names.n; k++) free(names.name[k]);
    free(names.name);
    ts_h5_close(g);
    ts_h5_close(lcpl);
    st = ts_h5_close_file(file, st, out, err);
    for (int i = 0; i < n_parts; i++) ts_h5_close(p[i].file);
    free(p);
    free(rows);
    free(all);
    free(have);
    return st;
}
