/* main.c - `tetriserve VERB [options]`: dispatch to the verbs. */
#include <stdio.h>
#include <string.h>

#include "ts_cmd.h"
#include "ts_util.h"

typedef struct TsVerb {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} TsVerb;

static const TsVerb ts_verbs[] = {
    {"simulate", ts_cmd_simulate, "dry-run one policy on a trace and a profiled cost model"},
    {"compare", ts_cmd_compare, "SAR tables: every policy x SLO scale on one or more traces"},
    {"sweep", ts_cmd_sweep, "a grid of simulations spread over MPI ranks, one HDF5 table"},
    {"run", ts_cmd_run, "the live executor under mpirun/srun: rank 0 schedules, ranks 1.. run steps"},
    {"profile", ts_cmd_profile, "measure step times T(resolution, degree) and write a profile file"},
    {"export", ts_cmd_export, "convert a results file (--chrome: Perfetto / chrome://tracing JSON)"},
    {"trace-gen", ts_cmd_trace_gen, "draw a request trace (Poisson or gamma arrivals, a mix)"},
    {"report", ts_cmd_report, "print the summary of a results file"},
    {NULL, NULL, NULL},
};

static void ts_usage(FILE *out) {
    fprintf(out, "usage: tetriserve VERB [options]   (tetriserve VERB --help for its options)\n\n"
                 "tetriserve %s: deadline-aware step-level sequence parallelism for DiT serving\n\n"
                 "verbs:\n",
            ts_version_string());
    for (const TsVerb *v = ts_verbs; v->name; v++) fprintf(out, "  %-10s %s\n", v->name, v->help);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        ts_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        ts_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("tetriserve %s\n", ts_version_string());
        return 0;
    }
    for (const TsVerb *v = ts_verbs; v->name; v++)
        if (!strcmp(argv[1], v->name)) return v->run(argc - 1, argv + 1);
    fprintf(stderr, "tetriserve: unknown verb '%s' (try tetriserve --help)\n", argv[1]);
    return 2;
}
