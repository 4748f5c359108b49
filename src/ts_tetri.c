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
    free(k->suf);
    memset(k, 0, sizeof *k);
}

int32_t ts_knap_solve(TsKnap *k, const TsKnapItem *items, int n, int32_t cap, int *choice) {
    if (cap < 0) cap = 0;
    int64_t W = (int64_t)cap + 1;
    if ((int64_t)(n + 1) * W > k->cap_suf) {
        k->suf = ts_xrealloc(k->suf, (size_t)((int64_t)(n + 1) * W) * sizeof *k->suf);
        k->cap_suf = (int64_t)(n + 1) * W;
    }
    /* suf[i][c]: best value of items i..n-1 with total width <= c, built
     * from the last item back, so that the choice can be made front to
     * back: each item the widest option that keeps the optimum. */
    int32_t *last = k->suf + (int64_t)n * W;
    memset(last, 0, (size_t)W * sizeof *last);
    for (int i = n - 1; i >= 0; i--) {
        const TsKnapItem *it = &items[i];
        int32_t *cur = k->suf + (int64_t)i * W, *next = cur + W;
        for (int64_t c = 0; c < W; c++) {
            int32_t best = next[c] + it->none_value;
            for (int o = 0; o < it->n_opt; o++) {
                int32_t w = it->width[o];
                if (w <= c && next[c - w] + it->value[o] > best) best = next[c - w] + it->value[o];
            }
            cur[c] = best;
        }
    }
    int64_t c = cap;
    for (int i = 0; i < n; i++) {
        const TsKnapItem *it = &items[i];
        const int32_t *cur = k->suf + (int64_t)i * W, *next = cur + W;
        int bo = -1;
        int32_t bw = 0;
        for (int o = 0; o < it->n_opt; o++) {
            int32_t w = it->width[o];
            if (w <= c && w > bw && next[c - w] + it->value[o] == cur[c]) bo = o, bw = w;
        }
        /* bo < 0: "none" keeps the optimum (it must, if no option does). */
        choice[i] = bo;
        c -= bw;
    }
    return k->suf[cap];
}

/* Narrowest option of an item (its index in *opt); INT32_MAX if none. */
static int32_t ts_unit_narrowest(const TsKnapItem *it, int *opt) {
    int32_t w = INT32_MAX;
    for (int o = 0; o < it->n_opt; o++)
        if (it->width[o] < w) w = it->width[o], *opt = o;
    return w;
}

static int ts_int_cmp(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Most items the counts per distinct width (ascending) fit in cap. */
static int32_t ts_unit_max_count(const int *width, const int *count, int n_width, int64_t cap) {
    int32_t got = 0;
    for (int j = 0; j < n_width; j++) {
        int64_t take = cap / width[j];
        if (take >= count[j]) {
            got += count[j];
            cap -= (int64_t)count[j] * width[j];
            continue;
        }
        got += (int32_t)take; /* what is left is narrower than this width, and the rest are wider */
        break;
    }
    return got;
}

int32_t ts_knap_unit_solve(const TsKnapItem *items, int n, int32_t cap, int *choice, int *scratch) {
    int *width = scratch, *count = scratch + n, *cls = scratch + 2 * n;
    int m = 0;
    for (int i = 0; i < n; i++) {
        int o = 0;
        if (items[i].n_opt) width[m++] = ts_unit_narrowest(&items[i], &o);
    }
    /* Distinct narrowest widths, ascending, with how many items have each. */
    qsort(width, (size_t)m, sizeof *width, ts_int_cmp);
    int nw = 0;
    for (int k = 0; k < m; k++)
        if (nw == 0 || width[nw - 1] != width[k]) width[nw++] = width[k];
    memset(count, 0, (size_t)nw * sizeof *count);
    for (int i = 0; i < n; i++) {
        int o = 0, lo = 0, hi = nw - 1;
        cls[i] = -1;
        if (!items[i].n_opt) continue;
        int32_t w = ts_unit_narrowest(&items[i], &o);
        while (lo < hi) { /* the class of w */
            int mid = (lo + hi) / 2;
            if (width[mid] < w) lo = mid + 1;
            else hi = mid;
        }
        cls[i] = lo;
        count[lo]++;
    }
    int64_t left = cap < 0 ? 0 : cap;
    int32_t best = ts_unit_max_count(width, count, nw, left), got = 0;
    for (int i = 0; i < n; i++) {
        choice[i] = -1;
        if (cls[i] < 0) continue;
        count[cls[i]]--; /* the counts now describe the items after i */
        const TsKnapItem *it = &items[i];
        int bo = -1;
        int32_t bw = 0;
        for (int o = 0; o < it->n_opt; o++) {
            int32_t w = it->width[o];
            if (w <= left && w > bw && got + 1 + ts_unit_max_count(width, count, nw, left - w) >= best) bo = o, bw = w;
        }
        if (bo < 0) continue; /* none: the items after i complete the optimum */
        choice[i] = bo;
        left -= bw;
        got++;
    }
    return got;
}

/* The old tie rule, kept to measure against (--choice ties=narrowest): the
 * same optimum count, with the least total width (the narrowest items
 * first, ties by item order, each its narrowest option). */
static const TsKnapItem *ts_narrow_items;
static int ts_narrow_cmp(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b, oi = 0, oj = 0;
    int32_t wi = ts_unit_narrowest(&ts_narrow_items[i], &oi), wj = ts_unit_narrowest(&ts_narrow_items[j], &oj);
    if (wi != wj) return wi < wj ? -1 : 1;
    return (i > j) - (i < j);
}

int32_t ts_knap_unit_solve_narrow(const TsKnapItem *items, int n, int32_t cap, int *choice, int *scratch) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        choice[i] = -1;
        if (items[i].n_opt) scratch[m++] = i;
    }
    ts_narrow_items = items;
    qsort(scratch, (size_t)m, sizeof *scratch, ts_narrow_cmp);
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
