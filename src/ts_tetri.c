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

static void ts_alloc_consider(TsAlloc *best, const TsDegreeSet *ds, const int32_t *x) {
    double time = 0, gpu = 0;
    int n = 0;
    for (int i = 0; i < ds->n; i++) {
        time += (double)x[i] * ds->step_s[i];
        gpu += (double)x[i] * (double)ds->degree[i] * ds->step_s[i];
        n += x[i] > 0;
    }
    /* Strictly less GPU time (beyond rounding), else fewer segments. */
    if (best->n && !(gpu < best->gpu_s - 1e-12 * (1 + gpu) || (gpu <= best->gpu_s + 1e-12 * (1 + gpu) && n < best->n)))
        return;
    best->n = 0; /* highest degree first: progress is front-loaded */
    for (int i = ds->n - 1; i >= 0; i--)
        if (x[i] > 0) {
            best->idx[best->n] = i;
            best->steps[best->n] = x[i];
            best->n++;
        }
    best->time_s = time;
    best->gpu_s = gpu;
}

/* Lower bound: the LP relaxation over degrees d.. (steps may be split
 * fractionally; the optimum uses at most two degrees). INFINITY if even
 * the fastest cannot make it. */
static double ts_alloc_lp_bound(const TsDegreeSet *ds, int d, int32_t R, double B) {
    int n = ds->n;
    if ((double)R * ds->step_s[n - 1] > B + TS_EPS_S) return INFINITY;
    double c0 = (double)ds->degree[d] * ds->step_s[d];
    if ((double)R * ds->step_s[d] <= B + TS_EPS_S) return (double)R * c0;
    double best = INFINITY;
    for (int s = d; s < n; s++)
        for (int f = s + 1; f < n; f++) {
            double Ts = ds->step_s[s], Tf = ds->step_s[f];
            double xf = ((double)R * Ts - B) / (Ts - Tf);
            if (xf < 0) xf = 0;
            if (xf > (double)R) continue;
            double cost = ((double)R - xf) * (double)ds->degree[s] * Ts + xf * (double)ds->degree[f] * Tf;
            if (cost < best) best = cost;
        }
    return best;
}

/* Exhaustive search: counts of degrees d.. (d < n-2) enumerated, the last
 * two (the fastest) split in closed form; a branch is cut when the cost so
 * far plus the LP bound of what is left cannot beat the incumbent. */
static void ts_alloc_search(const TsDegreeSet *ds, int d, int32_t R, double B, double gpu_acc,
                            int32_t *x, TsAlloc *best) {
    int n = ds->n;
    double lb = ts_alloc_lp_bound(ds, d, R, B);
    if (isinf(lb) || (best->n && gpu_acc + lb > best->gpu_s - 1e-12 * (1 + best->gpu_s))) return;
    if (d == n - 1) {
        x[d] = R;
        ts_alloc_consider(best, ds, x);
        x[d] = 0;
        return;
    }
    if (d == n - 2) {
        int32_t f = ts_least_fast(ds->step_s[d], ds->step_s[d + 1], R, B, 0, R);
        if (f < 0) return;
        x[d] = R - f;
        x[d + 1] = f;
        ts_alloc_consider(best, ds, x);
        x[d] = x[d + 1] = 0;
        return;
    }
    double c = (double)ds->degree[d] * ds->step_s[d];
    for (int32_t k = 0; k <= R; k++) {
        x[d] = k;
        ts_alloc_search(ds, d + 1, R - k, B - (double)k * ds->step_s[d], gpu_acc + (double)k * c, x, best);
    }
    x[d] = 0;
}

int ts_tetri_min_alloc(const TsDegreeSet *ds, int32_t R, double B, TsAlloc *a) {
    memset(a, 0, sizeof *a);
    if (R <= 0) return 0;
    int n = ds->n;
    /* Indices ascend in degree, step time descends, cost ascends. */
    if (n == 0 || (double)R * ds->step_s[n - 1] > B + TS_EPS_S) return -1;
    int32_t x[TS_TETRI_MAX_DEG] = {0};
    if ((double)R * ds->step_s[0] <= B + TS_EPS_S) { /* the cheapest degree fits alone */
        x[0] = R;
        ts_alloc_consider(a, ds, x);
        return 0;
    }
    /* A good incumbent first (the paper's pairs of degrees), so that the
     * exhaustive search prunes nearly everything. */
    for (int s = 0; s < n; s++)
        for (int f = s + 1; f < n; f++) {
            int32_t k = ts_least_fast(ds->step_s[s], ds->step_s[f], R, B, 0, R);
            if (k < 0) continue;
            x[s] = R - k;
            x[f] = k;
            ts_alloc_consider(a, ds, x);
            x[s] = x[f] = 0;
        }
    if (n == 1) {
        x[0] = R;
        ts_alloc_consider(a, ds, x);
        x[0] = 0;
    }
    ts_alloc_search(ds, 0, R, B, 0.0, x, a);
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

/* Sort key: (narrowest width, item index) packed for qsort. */
static const TsKnapItem *ts_unit_items;
static int32_t ts_unit_narrowest(const TsKnapItem *it, int *opt) {
    int32_t w = INT32_MAX;
    for (int o = 0; o < it->n_opt; o++)
        if (it->width[o] < w) w = it->width[o], *opt = o;
    return w;
}
static int ts_unit_cmp(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b, oi = 0, oj = 0;
    int32_t wi = ts_unit_narrowest(&ts_unit_items[i], &oi), wj = ts_unit_narrowest(&ts_unit_items[j], &oj);
    if (wi != wj) return wi < wj ? -1 : 1;
    return (i > j) - (i < j);
}

int32_t ts_knap_unit_solve(const TsKnapItem *items, int n, int32_t cap, int *choice, int *scratch) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        choice[i] = -1;
        if (items[i].n_opt) scratch[m++] = i;
    }
    ts_unit_items = items;
    qsort(scratch, (size_t)m, sizeof *scratch, ts_unit_cmp);
    int32_t count = 0;
    for (int k = 0; k < m; k++) {
        int o = 0;
        int32_t w = ts_unit_narrowest(&items[scratch[k]], &o);
        if (w > cap) break; /* sorted: nothing later fits either */
        cap -= w;
        choice[scratch[k]] = o;
        count++;
    }
    return count;
}
