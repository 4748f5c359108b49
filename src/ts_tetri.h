/* ts_tetri.h - the building blocks of the TetriServe round scheduler
 * (PAPER.md), exposed for tests and for the policies built on them
 * (ts_pol_tetri.c). No MPI, CUDA or NCCL. */
#ifndef TS_TETRI_H
#define TS_TETRI_H

#include <stdint.h>

#include "ts_util.h"

/* Step times of one resolution on the degrees worth using: ascending
 * degree, strictly decreasing step time (a degree that is not faster than
 * a smaller one costs more GPU time for nothing and is dropped). */
#define TS_TETRI_MAX_DEG 16
typedef struct TsDegreeSet {
    int n;
    int32_t degree[TS_TETRI_MAX_DEG];
    double step_s[TS_TETRI_MAX_DEG];
} TsDegreeSet;

/* Build from parallel arrays (NAN entries skipped). */
void ts_degree_set_build(TsDegreeSet *ds, const int32_t *degree, const double *step_s, int n);

/* A per-request plan: segments (steps, degree index in the set), highest
 * degree first. */
typedef struct TsAlloc {
    int n;
    int32_t idx[TS_TETRI_MAX_DEG];
    int32_t steps[TS_TETRI_MAX_DEG];
    double time_s;  /* sum of steps x T */
    double gpu_s;   /* sum of steps x degree x T: what is minimised */
} TsAlloc;

/* Step 1 of the paper: the plan of least GPU time that runs `steps` steps
 * within budget_s. Exact over every split of the steps across the degrees
 * of the set: the paper's pairs of degrees as the incumbent (the LP optimum
 * uses two), then a pruned exhaustive search (integrality can need more). Returns 0 and fills *a, or -1 if even the fastest degree cannot
 * make it (the request is hopeless). */
int ts_tetri_min_alloc(const TsDegreeSet *ds, int32_t steps, double budget_s, TsAlloc *a);

/* Step 4: group knapsack. n items, each with up to TS_KNAP_MAX_OPT options
 * (width >= 1, value >= 0); "none" (width 0, value none_value[i]) is
 * always allowed. Maximises the total value with total width <= cap. Among
 * the optimal choices (the paper is silent on ties), the lexicographically
 * widest in item order: item 0 takes its widest option that still allows
 * an optimal total, then item 1, and so on (equal widths: the lower option
 * index; "none" counts as width 0). The scheduler lists its items earliest
 * deadline first, so the most urgent requests get the most GPUs the
 * survivor count allows (README "tetriserve": measured against the least
 * total width). Writes choice[i] = option index or -1 (none). Returns the
 * best value. */
#define TS_KNAP_MAX_OPT 4
typedef struct TsKnapItem {
    int n_opt;
    int32_t width[TS_KNAP_MAX_OPT];
    int32_t value[TS_KNAP_MAX_OPT];
    int32_t none_value;
} TsKnapItem;

typedef struct TsKnap {
    int32_t *suf;     /* [(n_items + 1) x (cap + 1)]: best value of items i.. */
    int64_t cap_suf;
} TsKnap;

void ts_knap_init(TsKnap *k);
void ts_knap_free(TsKnap *k);
int32_t ts_knap_solve(TsKnap *k, const TsKnapItem *items, int n, int32_t cap, int *choice);

/* The knapsack the scheduler actually solves has unit values (1 if the
 * option lets the request survive) and none = 0. Maximising the count of
 * chosen items under a width budget: the optimum count c is reached by the
 * items with the c smallest narrowest widths; the same tie rule as
 * ts_knap_solve (lexicographically widest in item order among the
 * optima) is then applied greedily, each item taking its widest option for
 * which the items after it can still complete a count of c (checked in
 * O(D) with counts per distinct narrowest width, D distinct widths: the
 * scheduler's widths are degrees, D <= TS_TETRI_MAX_DEG). The same choice
 * as ts_knap_solve (tested), in O(n log n + n x options x D) instead of
 * O(n x cap). Requires value[o] == 1 and none_value == 0 for every item.
 * scratch: 3 x n ints. */
int32_t ts_knap_unit_solve(const TsKnapItem *items, int n, int32_t cap, int *choice, int *scratch);

/* The same optimum count under the old tie rule (least total width: the
 * narrowest items first, ties by item order, each its narrowest option),
 * kept to measure against (--choice ties=narrowest). scratch: n ints. */
int32_t ts_knap_unit_solve_narrow(const TsKnapItem *items, int n, int32_t cap, int *choice, int *scratch);

#endif
