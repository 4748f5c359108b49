/* bench_decide.c - decision time of the round policies per round (median
 * and p99) for 8..1024 GPUs and 10..10,000 pending requests (`make bench`).
 *
 * Each sample is one full round decision on a fresh policy: P requests
 * pending (uniform mix on the FLUX.1-dev/H100 profile, random progress and
 * deadlines, so every class occurs: slack, must-run, hopeless), all G GPUs
 * free. Timed with CLOCK_MONOTONIC around decide() only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ts_engine.h"
#include "ts_profile.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *policy = argc > 1 ? argv[1] : "tetriserve";
    const TsPolicyOps *ops = ts_policy_find(policy);
    TsProfile prof;
    TsErr err;
    if (!ops || ts_profile_load("profiles/flux1-dev_h100x8.csv", &prof, &err)) {
        fprintf(stderr, "bench_decide: %s\n", ops ? err.msg : "unknown policy");
        return 1;
    }
    const int gpus[4] = {8, 64, 512, 1024};
    const int pend[5] = {10, 100, 300, 1000, 10000};
    printf("## decision time per round, policy %s (full round decision, all GPUs free)\n", policy);
    printf("%6s %8s %8s %12s %12s\n", "gpus", "pending", "samples", "median_us", "p99_us");
    for (int gi = 0; gi < 4; gi++)
        for (int pi = 0; pi < 5; pi++) {
            int G = gpus[gi], P = pend[pi];
            TsTrace t = {"<bench>", calloc((size_t)P, sizeof(TsRequest)), P};
            srand(1234);
            for (int i = 0; i < P; i++) {
                int s = 256 << (rand() % 4);
                t.req[i] = (TsRequest){i, 0.0, s, s, 28, s == 256 ? 1.5 : s == 512 ? 2.0 : s == 1024 ? 3.0 : 5.0};
            }
            int *res_of = calloc((size_t)P, sizeof *res_of);
            TsCostModel cm;
            if (ts_cost_build(&cm, &prof, &t, G, res_of, &err)) {
                fprintf(stderr, "bench_decide: %s\n", err.msg);
                return 1;
            }
            TsRunLog log;
            ts_log_init(&log, P);
            TsState st;
            TsEngineConfig ec = {G, 8, 1.0, NULL};
            if (ts_engine_init(&st, &t, &cm, res_of, &ec, &log, &err)) {
                fprintf(stderr, "bench_decide: %s\n", err.msg);
                return 1;
            }
            for (int i = 0; i < P; i++) {
                ts_engine_arrive(&st);
                st.req[i].steps_done = rand() % 28;
                st.req[i].deadline_s = (double)(rand() % 4000) / 1000.0; /* 0..4 s from now */
            }
            TsPolicyConfig pc;
            ts_policy_config_default(&pc);
            int samples = P >= 10000 ? 30 : P >= 1000 ? 100 : 400;
            double *us = calloc((size_t)samples, sizeof *us);
            TsPlan plan;
            ts_plan_init(&plan);
            for (int s = 0; s < samples; s++) {
                void *self;
                if (ops->create(&self, &pc, &st, &err)) {
                    fprintf(stderr, "bench_decide: %s\n", err.msg);
                    return 1;
                }
                ts_plan_clear(&plan);
                double t0 = ts_wall_s();
                if (ops->decide(self, &st, &plan, &err)) {
                    fprintf(stderr, "bench_decide: %s\n", err.msg);
                    return 1;
                }
                us[s] = (ts_wall_s() - t0) * 1e6;
                ops->destroy(self);
            }
            qsort(us, (size_t)samples, sizeof *us, cmp_d);
            printf("%6d %8d %8d %12.1f %12.1f\n", G, P, samples, ts_quantile_sorted(us, (size_t)samples, 0.5),
                   ts_quantile_sorted(us, (size_t)samples, 0.99));
            fflush(stdout);
            free(us);
            ts_plan_free(&plan);
            ts_engine_free(&st);
            ts_log_free(&log);
            ts_cost_free(&cm);
            free(res_of);
            free(t.req);
        }
    ts_profile_free(&prof);
    return 0;
}
