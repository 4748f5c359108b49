/* ts_tetri.c - minimal-GPU-time allocation and the group knapsack. */
#include "ts_tetri.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Feasibility slack: times are sums of a few dozen step times. */
#define TS_EPS_S 1e-9

void ts_degree_set_build(TsDegreeSet *ds, const int32_t *degree, const double *step_s, int n) {
    ds->n = 0;
    for (int i = 0; i < n && ds->n < TS_TETRI_MAX_DEG; i++) {
        double t = step_s[i];
        if (!(t > 0)) continue;
        double c = (double)degree[i] * t;
        int dominated = 0;
        for (int j = 0; j < ds->n && !dominated; j++)
            dominated = ds->step_s[j] <= t && (double)ds->degree[j] * ds->step_s[j] <= c;
        if (dominated) continue;
        /* Drop the kept degrees the new one dominates (not faster, not cheaper). */
        int w = 0;
        for (int j = 0; j < ds->n; j++) {
            if (ds->step_s[j] >= t && (double)ds->degree[j] * ds->step_s[j] >= c) continue;
            ds->degree[w] = ds->degree[j];
            ds->step_s[w] = ds->step_s[j];
            w++;
        }
        ds->n = w;
        ds->degree[ds->n] = degree[i];
        ds->step_s[ds->n] = t;
        ds->n++;
    }
    /* Keep ascending degree order (insertion order was ascending input). */
}

/* Least x in [lo, hi] with x*Tf + (R-x)*Ts <= B for fast Tf < slow Ts;
 * -1 if none. */
static int32_t ts_least_fast(double Ts, double Tf, int32_t R, double B, int32_t lo, int32_t hi) {
    if (lo > hi) return -1;
    double v = ((double)R * Ts - B) / (Ts - Tf);
    int32_t x = v <= (double)lo ? lo : (int32_t)ceil(v - 1e-12);
    if (x < lo) x = lo;
    while (x <= hi && (double)x * Tf + (double)(R - x) * Ts > B + TS_EPS_S) x++;
    while (x > lo && (double)(x - 1) * Tf + (double)(R - x + 1) * Ts <= B + TS_EPS_S) x--;
    return x <= hi ? x : -1;
}

static void ts_alloc_consider(TsAlloc *best, const TsDegreeSet *ds, int n, const int *idx,
                              const int32_t *steps) {
    double time = 0, gpu = 0;
    for (int i = 0; i < n; i++) {
        time += (double)steps[i] * ds->step_s[idx[i]];
        gpu += (double)steps[i] * (double)ds->degree[idx[i]] * ds->step_s[idx[i]];
    }
    /* Strictly better GPU time (beyond rounding), else fewer segments. */
    if (best->n && !(gpu < best->gpu_s - 1e-12 * (1 + gpu) || (gpu <= best->gpu_s + 1e-12 * (1 + gpu) && n < best->n)))
        return;
    /* Highest degree first: progress is front-loaded. */
    best->n = 0;
    for (int i = n - 1; i >= 0; i--) {
        best->idx[best->n] = idx[i];
        best->steps[best->n] = steps[i];
        best->n++;
    }
    best->time_s = time;
    best->gpu_s = gpu;
}

int ts_tetri_min_alloc(const TsDegreeSet *ds, int32_t R, double B, TsAlloc *a) {
    memset(a, 0, sizeof *a);
    if (R <= 0) return 0;
    int n = ds->n;
    /* Indices ascend in degree, so step time descends: i < j => T_i > T_j. */
    if (n == 0 || (double)R * ds->step_s[n - 1] > B + TS_EPS_S) return -1;
    for (int i = 0; i < n; i++) {
        if ((double)R * ds->step_s[i] > B + TS_EPS_S) continue;
        int idx[1] = {i};
        int32_t st[1] = {R};
        ts_alloc_consider(a, ds, 1, idx, st);
        break; /* cost ascends with degree on the set: the first feasible is best */
    }
    for (int s = 0; s < n; s++)
        for (int f = s + 1; f < n; f++) {
            int32_t x = ts_least_fast(ds->step_s[s], ds->step_s[f], R, B, 1, R - 1);
            if (x < 0) continue;
            int idx[2] = {s, f};
            int32_t st[2] = {R - x, x};
            ts_alloc_consider(a, ds, 2, idx, st);
        }
    for (int s = 0; s < n; s++)
        for (int m = s + 1; m < n; m++)
            for (int f = m + 1; f < n; f++)
                for (int32_t xm = 1; xm <= R - 2; xm++) {
                    int32_t R2 = R - xm;
                    double B2 = B - (double)xm * ds->step_s[m];
                    int32_t x = ts_least_fast(ds->step_s[s], ds->step_s[f], R2, B2, 1, R2 - 1);
                    if (x < 0) continue;
                    int idx[3] = {s, m, f};
                    int32_t st[3] = {R2 - x, xm, x};
                    ts_alloc_consider(a, ds, 3, idx, st);
                }
    return a->n ? 0 : -1;
}

/* ---------------------------------------------------------------- knapsack */

void ts_knap_init(TsKnap *k) { memset(k, 0, sizeof *k); }

void ts_knap_free(TsKnap *k) {
    free(k->dp);
    free(k->tmp);
    free(k->choice);
    memset(k, 0, sizeof *k);
}

int32_t ts_knap_solve(TsKnap *k, const TsKnapItem *items, int n, int32_t cap, int *choice) {
    if (cap < 0) cap = 0;
    int64_t W = (int64_t)cap + 1;
    if (W > k->cap_dp) {
        k->dp = ts_xrealloc(k->dp, (size_t)W * sizeof *k->dp);
        k->tmp = ts_xrealloc(k->tmp, (size_t)W * sizeof *k->tmp);
        k->cap_dp = W;
    }
    if ((int64_t)n * W > k->cap_choice) {
        k->choice = ts_xrealloc(k->choice, (size_t)((int64_t)n * W));
        k->cap_choice = (int64_t)n * W;
    }
    /* dp[c]: best value with total width <= c over the items so far. */
    memset(k->dp, 0, (size_t)W * sizeof *k->dp);
    for (int i = 0; i < n; i++) {
        const TsKnapItem *it = &items[i];
        int8_t *ch = k->choice + (int64_t)i * W;
        for (int64_t c = 0; c < W; c++) {
            int32_t best = k->dp[c] + it->none_value;
            int8_t bo = -1;
            for (int o = 0; o < it->n_opt; o++) {
                int32_t w = it->width[o];
                if (w > c) continue;
                int32_t v = k->dp[c - w] + it->value[o];
                if (v > best) best = v, bo = (int8_t)o;
            }
            k->tmp[c] = best;
            ch[c] = bo;
        }
        int32_t *t = k->dp;
        k->dp = k->tmp;
        k->tmp = t;
    }
    /* The smallest width reaching the optimum, then walk back. */
    int32_t best = k->dp[cap];
    int64_t c = cap;
    while (c > 0 && k->dp[c - 1] == best) c--;
    for (int i = n - 1; i >= 0; i--) {
        int8_t o = k->choice[(int64_t)i * W + c];
        choice[i] = o;
        if (o >= 0) c -= items[i].width[o];
    }
    return best;
}
