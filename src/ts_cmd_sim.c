/* ts_cmd_sim.c - the `simulate` and `compare` verbs. */
#define _DEFAULT_SOURCE /* getopt_long */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ts_cmd.h"
#include "ts_scenario.h"

const char *ts_cmd_line(int argc, char **argv, const char *verb) {
    static char buf[4096];
    size_t off = (size_t)snprintf(buf, sizeof buf, "tetriserve %s", verb);
    for (int i = 1; i < argc && off < sizeof buf; i++)
        off += (size_t)snprintf(buf + off, sizeof buf - off, " %s", argv[i]);
    return buf;
}

/* Merge the verb's options with the shared policy options. */
static struct option *ts_merge_options(const struct option *own) {
    int a = 0, b = 0;
    while (own[a].name) a++;
    while (ts_policy_long_options[b].name) b++;
    struct option *all = ts_xcalloc((size_t)(a + b + 1), sizeof *all);
    memcpy(all, own, (size_t)a * sizeof *all);
    memcpy(all + a, ts_policy_long_options, (size_t)b * sizeof *all);
    return all;
}

static const char *ts_basename_noext(const char *path, char *buf, size_t len) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(buf, len, "%s", b);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = '\0';
    return buf;
}

void ts_cmd_print_header(const char *verb, const TsTrace *t, const TsProfile *p) {
    printf("# tetriserve %s %s\n", ts_version_string(), verb);
    double span = t->n ? t->req[t->n - 1].arrival_s : 0;
    printf("# trace: %s (%lld requests over %.1f s)\n", t->path, (long long)t->n, span);
    printf("# profile: %s (model %s, gpu %s)\n", p->path, p->model[0] ? p->model : "?",
           p->gpu[0] ? p->gpu : "?");
    if (p->source[0]) printf("# profile source: %.200s%s\n", p->source, strlen(p->source) > 200 ? " ..." : "");
}

void ts_cmd_print_summary(const TsSummary *s) {
    printf("%9s %6s %7s %9s %9s %9s %9s %6s %10s\n", "requests", "met", "SAR", "lat_mean",
           "lat_p50", "lat_p90", "lat_p99", "busy", "makespan");
    printf("%9lld %6lld %7.4f %9.3f %9.3f %9.3f %9.3f %6.3f %10.3f\n", (long long)s->n_requests,
           (long long)s->n_met, s->sar, s->latency_mean, s->latency_p50, s->latency_p90,
           s->latency_p99, s->gpu_busy_fraction, s->makespan);
    printf("SAR by resolution:");
    for (int r = 0; r < s->n_res; r++)
        printf("  %dx%d %.4f (%lld/%lld)", s->res_width[r], s->res_height[r],
               s->res_n[r] ? (double)s->res_met[r] / (double)s->res_n[r] : 0.0,
               (long long)s->res_met[r], (long long)s->res_n[r]);
    printf("\n");
}

/* Common inputs of simulate and compare. */
static int ts_load_inputs(const char *verb, const char *trace_path, const char *profile_path,
                          TsTrace *t, TsProfile *p) {
    TsErr err;
    if (ts_trace_load(trace_path, t, &err)) {
        fprintf(stderr, "tetriserve %s: %s\n", verb, err.msg);
        return 1;
    }
    if (ts_profile_load(profile_path, p, &err)) {
        fprintf(stderr, "tetriserve %s: %s\n", verb, err.msg);
        ts_trace_free(t);
        return 1;
    }
    return 0;
}

static int ts_check_gpus(const char *verb, int gpus) {
    if (gpus < 1) {
        fprintf(stderr, "tetriserve %s: --gpus: required, an integer >= 1\n", verb);
        return 2;
    }
    return 0;
}

int ts_cmd_simulate(int argc, char **argv) {
    static const struct option own[] = {
        {"trace", required_argument, NULL, 't'},   {"profile", required_argument, NULL, 'p'},
        {"gpus", required_argument, NULL, 'g'},    {"policy", required_argument, NULL, 'P'},
        {"slo-scale", required_argument, NULL, 's'}, {"seed", required_argument, NULL, 'S'},
        {"out", required_argument, NULL, 'o'},     {"no-out", no_argument, NULL, 'n'},
        {"gpus-per-node", required_argument, NULL, 'N'}, {"quiet", no_argument, NULL, 'q'},
        {"exec-profile", required_argument, NULL, 'x'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    struct option *opts = ts_merge_options(own);
    const char *trace = NULL, *profile = NULL, *policy = NULL, *out = NULL, *exec_profile = NULL;
    int gpus = 0, gpn = 0, no_out = 0, quiet = 0, c, rc = 2;
    double scale = 1.0;
    int64_t seed = 0;
    TsPolicyConfig pcfg;
    TsErr err;
    ts_policy_config_default(&pcfg);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int pr = ts_policy_option(c, optarg, &pcfg, &err);
        if (pr < 0) {
            fprintf(stderr, "tetriserve simulate: %s\n", err.msg);
            goto done;
        }
        if (pr) continue;
        switch (c) {
        case 't': trace = optarg; break;
        case 'p': profile = optarg; break;
        case 'x': exec_profile = optarg; break;
        case 'P': policy = optarg; break;
        case 'o': out = optarg; break;
        case 'n': no_out = 1; break;
        case 'q': quiet = 1; break;
        case 'g':
            if (ts_parse_int(optarg, &gpus) || gpus < 1) {
                fprintf(stderr, "tetriserve simulate: --gpus: '%s' is not an integer >= 1\n", optarg);
                goto done;
            }
            break;
        case 'N':
            if (ts_parse_int(optarg, &gpn) || gpn < 1) {
                fprintf(stderr, "tetriserve simulate: --gpus-per-node: '%s' is not an integer >= 1\n", optarg);
                goto done;
            }
            break;
        case 's':
            if (ts_parse_double(optarg, &scale) || !(scale > 0)) {
                fprintf(stderr, "tetriserve simulate: --slo-scale: '%s' is not a positive number\n", optarg);
                goto done;
            }
            break;
        case 'S':
            if (ts_parse_int64(optarg, &seed) || seed < 0) {
                fprintf(stderr, "tetriserve simulate: --seed: '%s' is not an integer >= 0\n", optarg);
                goto done;
            }
            break;
        case 'h': {
            char names[256];
            ts_policy_names(names, sizeof names);
            printf("usage: tetriserve simulate --trace F.csv --profile F.csv --gpus N --policy P\n"
                   "                           [--slo-scale X] [--seed S] [--out F.h5 | --no-out]\n"
                   "                           [--exec-profile F.csv]\n\n"
                   "Dry-run policy P on the trace with the profile's step times and write the\n"
                   "results file (default results/<trace>_<policy>_x<scale>.h5).\n\n"
                   "  --trace F.csv          request trace (SPEC.md format)\n"
                   "  --profile F.csv        cost model (SPEC.md format) the policy plans with\n"
                   "  --exec-profile F.csv   the step times launches take (default: --profile):\n"
                   "                         what if the cost model is off (same resolutions and\n"
                   "                         degrees needed; recorded as exec_profile)\n"
                   "  --gpus N               GPUs in the simulated cluster\n"
                   "  --gpus-per-node N      default: the profile's gpus_per_node, else N\n"
                   "  --policy P             one of: %s\n"
                   "  --slo-scale X          deadline = arrival + X * slo_s (default 1.0)\n"
                   "  --seed S               recorded in the results (default 0)\n"
                   "  --out F.h5             results file;  --no-out: none\n"
                   "  --quiet                no table on stdout\n\n%s",
                   names, ts_policy_options_help);
            rc = 0;
            goto done;
        }
        default: goto done; /* getopt printed the reason */
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tetriserve simulate: unexpected argument '%s'\n", argv[optind]);
        goto done;
    }
    if (!trace || !profile || !policy) {
        fprintf(stderr, "tetriserve simulate: --%s is required\n",
                !trace ? "trace" : !profile ? "profile" : "policy");
        goto done;
    }
    if (ts_check_gpus("simulate", gpus)) goto done;
    const TsPolicyOps *ops = ts_policy_find(policy);
    if (!ops) {
        char names[256];
        ts_policy_names(names, sizeof names);
        fprintf(stderr, "tetriserve simulate: --policy: unknown policy '%s' (have: %s)\n", policy, names);
        goto done;
    }

    TsTrace t;
    TsProfile p;
    rc = 1;
    TsProfile xp;
    int have_xp = 0;
    if (ts_load_inputs("simulate", trace, profile, &t, &p)) goto done;
    if (exec_profile) {
        if (ts_profile_load(exec_profile, &xp, &err)) {
            fprintf(stderr, "tetriserve simulate: --exec-profile: %s\n", err.msg);
            goto free_inputs;
        }
        have_xp = 1;
    }
    char outbuf[1024], stem[256];
    if (!out && !no_out) {
        if (mkdir("results", 0777) && errno != EEXIST) {
            fprintf(stderr, "tetriserve simulate: cannot create results/: %s\n", strerror(errno));
            goto free_inputs;
        }
        snprintf(outbuf, sizeof outbuf, "results/%s_%s_x%.2f.h5",
                 ts_basename_noext(trace, stem, sizeof stem), policy, scale);
        out = outbuf;
    }
    TsScenario sc = {
        .trace = &t, .profile = &p, .exec_profile = have_xp ? &xp : NULL, .ops = ops, .pcfg = pcfg,
        .n_gpus = gpus, .gpus_per_node = gpn, .slo_scale = scale, .seed = (uint64_t)seed,
        .out_path = no_out ? NULL : out, .command_line = ts_cmd_line(argc, argv, "simulate"),
    };
    TsScenarioResult res;
    TsStatus st = ts_scenario_run(&sc, &res, &err);
    if (st) {
        fprintf(stderr, "tetriserve simulate: %s\n", err.msg);
        if (res.log.n_seg && sc.out_path)
            fprintf(stderr, "tetriserve simulate: %s holds the run up to the error (complete = 0)\n", out);
    } else {
        rc = 0;
        if (!quiet) {
            ts_cmd_print_header("simulate", &t, &p);
            if (have_xp) printf("# exec profile: %s (the step times launches take)\n", xp.path);
            printf("# gpus: %d  policy: %s (%s)  slo_scale: %.3f  seed: %lld  round_s: %.6f\n", gpus,
                   policy, res.policy_options, scale, (long long)seed, res.round_s);
            printf("# out: %s\n", sc.out_path ? sc.out_path : "(none)");
            ts_cmd_print_summary(&res.sum);
            printf("# simulated in %.6f s (%lld decisions, %.6f s deciding)\n", res.wall_s,
                   (long long)res.n_decisions, res.decide_s);
        }
    }
    ts_log_free(&res.log);
free_inputs:
    if (have_xp) ts_profile_free(&xp);
    ts_trace_free(&t);
    ts_profile_free(&p);
done:
    free(opts);
    return rc;
}

#define TS_MAX_LIST 64

int ts_cmd_compare(int argc, char **argv) {
    static const struct option own[] = {
        {"trace", required_argument, NULL, 't'},    {"profile", required_argument, NULL, 'p'},
        {"gpus", required_argument, NULL, 'g'},     {"policies", required_argument, NULL, 'P'},
        {"slo-scales", required_argument, NULL, 's'}, {"out-dir", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    struct option *opts = ts_merge_options(own);
    const char *traces[TS_MAX_LIST], *profile = NULL, *policies = NULL, *out_dir = NULL;
    int n_traces = 0, gpus = 0, c, rc = 2, n_scales = 6;
    double scales[TS_MAX_LIST] = {1.0, 1.1, 1.2, 1.3, 1.4, 1.5};
    TsPolicyConfig pcfg;
    TsErr err;
    ts_policy_config_default(&pcfg);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int pr = ts_policy_option(c, optarg, &pcfg, &err);
        if (pr < 0) {
            fprintf(stderr, "tetriserve compare: %s\n", err.msg);
            goto done;
        }
        if (pr) continue;
        switch (c) {
        case 't':
            if (n_traces == TS_MAX_LIST) {
                fprintf(stderr, "tetriserve compare: --trace: at most %d\n", TS_MAX_LIST);
                goto done;
            }
            traces[n_traces++] = optarg;
            break;
        case 'p': profile = optarg; break;
        case 'P': policies = optarg; break;
        case 'o': out_dir = optarg; break;
        case 'g':
            if (ts_parse_int(optarg, &gpus) || gpus < 1) {
                fprintf(stderr, "tetriserve compare: --gpus: '%s' is not an integer >= 1\n", optarg);
                goto done;
            }
            break;
        case 's':
            n_scales = ts_parse_double_list(optarg, scales, TS_MAX_LIST);
            for (int i = 0; i < n_scales; i++)
                if (!(scales[i] > 0)) n_scales = -1;
            if (n_scales < 0) {
                fprintf(stderr, "tetriserve compare: --slo-scales: '%s' is not a list of positive numbers\n", optarg);
                goto done;
            }
            break;
        case 'h': {
            char names[256];
            ts_policy_names(names, sizeof names);
            printf("usage: tetriserve compare --trace F.csv [--trace G.csv ...] --profile F.csv --gpus N\n"
                   "                          [--policies P,...] [--slo-scales X,...] [--out-dir DIR]\n\n"
                   "Simulate every policy at every SLO scale on each trace and print one SAR table\n"
                   "per trace (policies in rows, SLO scales in columns).\n\n"
                   "  --policies P,...    default: all (%s)\n"
                   "  --slo-scales X,...  default: 1.0,1.1,1.2,1.3,1.4,1.5\n"
                   "  --out-dir DIR       also write every results file into DIR\n\n%s",
                   names, ts_policy_options_help);
            rc = 0;
            goto done;
        }
        default: goto done;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tetriserve compare: unexpected argument '%s'\n", argv[optind]);
        goto done;
    }
    if (!n_traces || !profile) {
        fprintf(stderr, "tetriserve compare: --%s is required\n", !n_traces ? "trace" : "profile");
        goto done;
    }
    if (ts_check_gpus("compare", gpus)) goto done;
    const TsPolicyOps *ops[TS_MAX_LIST];
    int n_ops = 0;
    if (policies) {
        char buf[1024], *save = NULL;
        snprintf(buf, sizeof buf, "%s", policies);
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            const TsPolicyOps *o = ts_policy_find(ts_trim(tok));
            if (!o || n_ops == TS_MAX_LIST) {
                char names[256];
                ts_policy_names(names, sizeof names);
                fprintf(stderr, "tetriserve compare: --policies: unknown policy '%s' (have: %s)\n", tok, names);
                goto done;
            }
            ops[n_ops++] = o;
        }
    } else {
        for (int i = 0; ts_policy_table[i]; i++) ops[n_ops++] = ts_policy_table[i];
    }
    if (out_dir && mkdir(out_dir, 0777) && errno != EEXIST) {
        fprintf(stderr, "tetriserve compare: --out-dir: cannot create %s: %s\n", out_dir, strerror(errno));
        rc = 1;
        goto done;
    }

    /* Load every input first: a bad file stops us before any work. */
    TsTrace t[TS_MAX_LIST];
    TsProfile p;
    rc = 1;
    if (ts_profile_load(profile, &p, &err)) {
        fprintf(stderr, "tetriserve compare: %s\n", err.msg);
        goto done;
    }
    int loaded = 0;
    for (; loaded < n_traces; loaded++)
        if (ts_trace_load(traces[loaded], &t[loaded], &err)) {
            fprintf(stderr, "tetriserve compare: %s\n", err.msg);
            goto free_inputs;
        }

    double t0 = ts_wall_s();
    printf("# tetriserve %s compare\n# profile: %s (model %s, gpu %s)\n# gpus: %d\n",
           ts_version_string(), p.path, p.model, p.gpu, gpus);
    const char *cmdline = ts_cmd_line(argc, argv, "compare");
    for (int ti = 0; ti < n_traces; ti++) {
        printf("\nSAR  %s (%lld requests)\n%-12s", t[ti].path, (long long)t[ti].n, "policy");
        for (int s = 0; s < n_scales; s++) printf(" %6.2fx", scales[s]);
        printf("\n");
        for (int oi = 0; oi < n_ops; oi++) {
            printf("%-12s", ops[oi]->name);
            for (int s = 0; s < n_scales; s++) {
                char path[1024], stem[256];
                if (out_dir)
                    snprintf(path, sizeof path, "%s/%s_%s_x%.2f.h5", out_dir,
                             ts_basename_noext(t[ti].path, stem, sizeof stem), ops[oi]->name, scales[s]);
                TsScenario sc = {
                    .trace = &t[ti], .profile = &p, .ops = ops[oi], .pcfg = pcfg, .n_gpus = gpus,
                    .slo_scale = scales[s], .out_path = out_dir ? path : NULL, .command_line = cmdline,
                };
                TsScenarioResult res;
                if (ts_scenario_run(&sc, &res, &err)) {
                    printf("\n");
                    fflush(stdout);
                    fprintf(stderr, "tetriserve compare: %s\n", err.msg);
                    ts_log_free(&res.log);
                    goto free_inputs;
                }
                printf(" %7.3f", res.sum.sar);
                ts_log_free(&res.log);
            }
            printf("\n");
        }
    }
    printf("\n# %d simulations in %.3f s\n", n_traces * n_ops * n_scales, ts_wall_s() - t0);
    rc = 0;
free_inputs:
    for (int i = 0; i < loaded; i++) ts_trace_free(&t[i]);
    ts_profile_free(&p);
done:
    free(opts);
    return rc;
}
