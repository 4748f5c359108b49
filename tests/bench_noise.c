/* bench_noise.c - the machine's noise floor for the cpu backend (`make
 * bench`, scripts/bench_noise.sh).
 *
 * One process, no MPI, nothing else running: the same tiny-DiT step (the
 * fidelity check's 256 px request at degree 1) repeated for a fixed wall
 * time. Steps are grouped in blocks of one request's length (12 steps, as
 * in scripts/fidelity.sh cpu); the figure is the median of |block mean /
 * mean of all blocks - 1|. That is how far a request's compute time strays
 * from the best possible constant estimate of it, on this machine, with
 * no executor, MPI or scheduler involved: a floor under the per-request
 * latency error of any simulator that uses one step time per cell (the
 * fidelity target of issue #5 is a median of 10%). Also printed: the same
 * for thread CPU time (CLOCK_THREAD_CPUTIME_ID), which tells hypervisor
 * steal (wall varies, CPU time does not) from a vCPU whose speed itself
 * varies (both do).
 *
 *   bench_noise [SECONDS (20)] [WIDTH (256)] [BLOCK (12)] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ts_test_dit.h"
#include "ts_util.h"

static double clock_s(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Median of |x / mean(x) - 1| over x[0 .. n); sorts a scratch copy. */
static double median_rel_dev(const double *x, int n, double *scratch) {
    double mean = 0;
    for (int i = 0; i < n; i++) mean += x[i] / n;
    for (int i = 0; i < n; i++) scratch[i] = fabs(x[i] / mean - 1);
    qsort(scratch, (size_t)n, sizeof *scratch, ts_cmp_double);
    return ts_quantile_sorted(scratch, (size_t)n, 0.5);
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 20;
    int width = argc > 2 ? atoi(argv[2]) : 256, block = argc > 3 ? atoi(argv[3]) : 12;
    if (!(seconds > 0) || width < 16 || width % 16 || block < 1) {
        fprintf(stderr, "usage: bench_noise [SECONDS > 0] [WIDTH, a multiple of 16] [BLOCK >= 1]\n");
        return 2;
    }
    Fixture f;
    TsDitWork w;
    TsErr err;
    int rc = 1, have_work = 0, n_blocks = 0, cap = 0;
    float *lat = NULL;
    double *wall = NULL, *cpu = NULL, *scratch = NULL;
    if (fixture_make(&f, "tiny", 1, &err)) { /* nothing to free yet */
        fprintf(stderr, "bench_noise: %s\n", err.msg);
        return 1;
    }
    if (ts_dit_work_init(&w, &f.m, width, width, 1, 0, &err)) goto fail;
    have_work = 1;
    int64_t n = ts_dit_latent_floats(&f.m.cfg, width, width);
    lat = malloc((size_t)n * sizeof *lat);
    ts_dit_noise_from_seed(lat, n, 3);
    for (int i = 0; i < 2; i++) /* warm-up */
        if (ts_dit_step(&f.m, &w, &ts_dit_comm_loopback, &f.cond, 0.5f, 0.45f, lat, &err)) goto fail;
    double t_end = clock_s(CLOCK_MONOTONIC) + seconds;
    while (clock_s(CLOCK_MONOTONIC) < t_end) {
        double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        for (int s = 0; s < block; s++) {
            if (ts_dit_step(&f.m, &w, &ts_dit_comm_loopback, &f.cond, 0.5f, 0.45f, lat, &err)) goto fail;
        }
        if (n_blocks == cap) {
            cap = cap ? 2 * cap : 256;
            wall = realloc(wall, (size_t)cap * sizeof *wall);
            cpu = realloc(cpu, (size_t)cap * sizeof *cpu);
        }
        wall[n_blocks] = clock_s(CLOCK_MONOTONIC) - w0;
        cpu[n_blocks++] = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        ts_dit_noise_from_seed(lat, n, 3); /* every block: the same work */
    }
    if (n_blocks < 3) {
        fprintf(stderr, "bench_noise: only %d blocks in %g s: give it more time\n", n_blocks, seconds);
        goto done;
    }
    scratch = malloc((size_t)n_blocks * sizeof *scratch);
    double mean_ms = 0, lo = INFINITY, hi = 0;
    for (int i = 0; i < n_blocks; i++) {
        double ms = 1e3 * wall[i] / block;
        mean_ms += ms / n_blocks;
        lo = ms < lo ? ms : lo;
        hi = ms > hi ? ms : hi;
    }
    printf("tiny DiT %dx%d step, degree 1, one process, %d blocks of %d steps over %.0f s\n", width, width,
           n_blocks, block, seconds);
    printf("  step: mean %.2f ms, block means %.2f-%.2f ms\n", mean_ms, lo, hi);
    printf("  block mean vs overall mean, median |deviation|: wall %.1f%%  thread CPU time %.1f%%\n",
           100 * median_rel_dev(wall, n_blocks, scratch), 100 * median_rel_dev(cpu, n_blocks, scratch));
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "bench_noise: %s\n", err.msg);
done:
    if (have_work) ts_dit_work_free(&w);
    fixture_free(&f);
    free(lat);
    free(wall);
    free(cpu);
    free(scratch);
    return rc;
}
