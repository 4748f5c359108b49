/* ts_pol_tetri.c - the TetriServe round-based scheduler (PAPER.md), policy
 * `tetriserve`, and `tetriplus`, our variant beyond the paper: the same
 * scheduler with best effort last and within the round (README
 * "tetriplus").
 *
 * Round semantics (both policies; README "Rounds"):
 *  - Decisions are taken at round boundaries t_r, at most tau apart, while
 *    work is pending. An arrival into an idle system (no round scheduled)
 *    opens a round at once; otherwise arrivals wait for the next boundary.
 *  - A request chosen for a round is planned with q = min(steps of its plan
 *    segment, floor(tau / T(k))) steps on k GPUs from t_r (survival and the
 *    knapsack use that q). When the planned segment ends before the boundary
 *    (it had fewer steps than fit), the request keeps its k GPUs and runs
 *    its next steps at the same degree until no further step fits before
 *    t_r+1: floor(tau / T(k)) steps in all, at most what it has left. The
 *    paper does not say what a request does when its segment ends
 *    mid-round; ours (ts_continue) was measured against idling until the
 *    boundary (README "Rounds"). When a request finishes before the
 *    boundary its GPUs stay idle until t_r+1 (refilling them mid-round with
 *    other work was measured and lost SAR, README "Rounds").
 *  - A best-effort step (hopeless request, 1 GPU) runs at least one step
 *    even when T(1) > tau; its GPU then misses the next boundary and is
 *    simply not available to that round.
 *  - tau = round_ms if given, else derived from round_steps (default 5):
 *    about round_steps steps of the average resolution at its fastest
 *    degree, adjusted to the mix (ts_tetri_pick_tau). tau is the longest a
 *    round lasts: a round ends early, and the next decision is taken, as
 *    soon as every launch of the round that was planned to end within tau
 *    has ended (ts_round_work_running). The paper adapts tau to the step
 *    times of the mix "so that work ends near round boundaries" without a
 *    formula; ending the round with its work is ours, measured against
 *    fixed-length rounds (README "Rounds"). The same rule holds when that
 *    work overruns its plan (never in simulation, where it ends on time;
 *    live, a step can take longer than its profile): the round then ends
 *    when the work does, not at the cap, which would open a round whose
 *    GPUs are still busy, launch nothing on them and leave them idle for a
 *    whole tau after the late work ends.
 *  - Every choice of ours where the paper is silent (round end, segment
 *    end, knapsack ties, survival's t_r+1, best effort) can be set back to
 *    the old one with --choice (TsTetriChoices).
 *
 * At each boundary (t = now):
 *  1. per ready request: hopeless if t + R x T_min + overhead > deadline;
 *     otherwise its minimal-GPU-time plan (ts_tetri_min_alloc) for budget
 *     deadline - t - overhead;
 *  2. options: one per plan segment, (k, q = min(steps, floor(tau/T(k)))),
 *     q >= 1;
 *  3. survival: t_r+1 + (R - q) T_min + overhead <= deadline, with t_r+1
 *     the option's own end t + q T(k), the earliest the next round can
 *     begin (ts_survives);
 *  4. group knapsack over the free GPUs maximising survivors, over the
 *     requests that need to run now to survive (those that survive doing
 *     nothing cannot change the count); among optima (the paper is
 *     silent), earliest deadline first, each takes its widest surviving
 *     option that keeps the survivor count optimal (ts_knap_unit_solve);
 *  then the free GPUs left go, earliest deadline first, to the other
 *  non-hopeless requests (their plan's first option that fits); selective
 *  batching merges same-resolution requests on one degree when requests
 *  are still waiting for GPUs and every member still survives; 5. best
 *  effort: 1 GPU each for hopeless requests from what is left; 7. elastic
 *  scale-up: leftover GPUs raise scheduled requests to their next faster
 *  degree, largest relative step-time gain first; 6. placement: a request
 *  on the same degree keeps its GPUs if they are free, the rest take
 *  aligned blocks of k GPUs within a node (largest k first), else the
 *  lowest-numbered free GPUs. tetriplus does 7 before 5: hopeless requests
 *  only get the GPUs elastic scale-up left, each the narrowest degree whose
 *  step fits in the round (more than 1 GPU when T(1) > tau), never
 *  overrunning it. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_engine.h"
#include "ts_tetri.h"

enum { TS_CLS_HOPELESS = 0, TS_CLS_NEEDS_RUN, TS_CLS_SLACK };
#define TS_MAX_CURSOR 64

typedef struct TsOpt {
    int32_t didx; /* index in the resolution's degree set */
    int32_t q;    /* steps this round */
    int32_t survive;
} TsOpt;

typedef struct TsCand {
    int64_t i; /* request index */
    int res;
    int32_t R;
    double deadline_s, laxity_s;
    int cls;
    int n_opt;
    TsOpt opt[TS_TETRI_MAX_DEG];
    /* The decision: */
    int32_t degree, q, didx; /* degree 0: not scheduled */
    int batch_leader;        /* index in cands of its batch leader, -1 */
    int32_t batch_n;         /* members, on the leader */
    int32_t batch_member[TS_MAX_BATCH]; /* on the leader: the others, ascending index */
    int best_effort;
    int built; /* options built (plan computed); lazily for slack requests */
} TsCand;

/* The choices the paper leaves open (--choice NAME=VALUE,...; README
 * "tetriserve"): our choice where the paper is silent by default (all
 * flags 0 for tetriserve), the old one to measure against
 * (scripts/choices.sh: each against the old, held-out seeds). */
typedef struct TsTetriChoices {
    int fixed_rounds;       /* rounds=fixed: every round lasts tau (default adaptive) */
    int idle_segment_end;   /* segment-end=idle: GPUs idle after a short segment (default continue) */
    int narrow_ties;        /* ties=narrowest: least total width among optima (default widest) */
    int survival_round_end; /* survival=round-end: t_r+1 = now + tau (default option-end) */
    int best_effort_in_round; /* best-effort=in-round (tetriplus default) | one-gpu (tetriserve) */
    int best_effort_last;     /* best-effort-order=last (tetriplus) | before-elastic (tetriserve) */
} TsTetriChoices;

typedef struct TsTetri {
    TsPolicyConfig cfg;
    int plus; /* tetriplus: best effort last and within the round (its defaults of the choices) */
    TsTetriChoices ch;
    double tau_s;
    int64_t round;
    double next_round_s; /* the latest the current round ends: its start + tau */
    /* The requests whose launches of the current round were planned to end
     * within tau (leaders of batches): the round ends when they all have. */
    int64_t *round_req;
    int64_t n_round_req, cap_round_req;
    int n_res;
    TsDegreeSet *ds;   /* [n_res], batch 1 */
    int32_t **cm_didx; /* [n_res][ds.n]: degree index in the cost model */
    double *tmin_s;    /* [n_res] */
    const TsCostModel *cm;
    double now_s, window_s; /* the round being decided (lazy option building) */
    TsCand *cand;
    int64_t cap_cand;
    int *order, *knap_of, *choice;
    double *gain; /* [cap_items]: elastic scale-up's heap keys */
    TsKnapItem *items;
    int64_t cap_items;
    TsKnap knap;
    uint64_t *free_map;
    int64_t n_words;
    int32_t cursor[TS_MAX_CURSOR + 1]; /* placement: aligned-block search per size */
    int32_t lowest_free;               /* placement: no free GPU below this */
    int32_t *gpus;
} TsTetri;

static void ts_tetri_destroy(void *self) {
    TsTetri *p = self;
    if (!p) return;
    for (int r = 0; r < p->n_res; r++) free(p->cm_didx ? p->cm_didx[r] : NULL);
    free(p->cm_didx);
    free(p->ds);
    free(p->tmin_s);
    free(p->cand);
    free(p->order);
    free(p->knap_of);
    free(p->choice);
    free(p->gain);
    free(p->items);
    ts_knap_free(&p->knap);
    free(p->free_map);
    free(p->gpus);
    free(p->round_req);
    free(p);
}

/* Quantisation waste of a round of tau seconds: per resolution (weighted
 * by its share of the trace), the mean over its usable degrees (T <= tau)
 * of the fraction of the round left idle after floor(tau / T) steps. */
static double ts_tetri_waste(const TsTetri *p, const double *share, double tau) {
    double w = 0;
    for (int r = 0; r < p->n_res; r++) {
        double sum = 0;
        int cnt = 0;
        for (int d = 0; d < p->ds[r].n; d++) {
            double T = p->ds[r].step_s[d];
            if (T > tau) continue;
            sum += (tau - floor(tau / T + 1e-9) * T) / tau;
            cnt++;
        }
        w += share[r] * (cnt ? sum / cnt : 1.0);
    }
    return w;
}

/* The round length for a step granularity of g steps (the paper adapts tau
 * to the mix "so that work ends near round boundaries" without a formula;
 * this is ours, README "Rounds"): the target is g steps of the average
 * resolution at its fastest degree (the mean of T_min over the trace's
 * resolutions), never shorter than the slowest T_min (so that every
 * resolution can run a step per round); among the multiples of every usable
 * step time within +-10% of it, take the one with the least quantisation
 * waste over the trace's mix (ties: nearest the target). */
static double ts_tetri_pick_tau(const TsTetri *p, const TsState *st, int g, double t_ref) {
    double *share = ts_xcalloc((size_t)p->n_res, sizeof *share);
    for (int64_t i = 0; i < st->n_req; i++) share[st->req[i].res] += 1.0 / (double)st->n_req;
    double mean_fast = 0; /* a step of the average resolution at its fastest degree */
    for (int r = 0; r < p->n_res; r++) mean_fast += p->tmin_s[r] / p->n_res;
    double target = g * mean_fast, lo = fmax(t_ref, 0.9 * target), hi = fmax(lo, 1.1 * target);
    double best = target, best_w = ts_tetri_waste(p, share, target);
    for (int r = 0; r < p->n_res; r++)
        for (int d = 0; d < p->ds[r].n; d++) {
            double T = p->ds[r].step_s[d];
            for (double m = ceil(lo / T); m * T <= hi; m++) {
                double c = m * T, w = ts_tetri_waste(p, share, c);
                if (w < best_w - 1e-12 || (w <= best_w + 1e-12 && fabs(c - target) < fabs(best - target)))
                    best = c, best_w = w;
            }
        }
    free(share);
    return best;
}

/* Parse --choice NAME=VALUE,... over the policy's defaults. */
static TsStatus ts_tetri_choices_parse(const char *spec, TsTetriChoices *ch, TsErr *err) {
    static const struct {
        const char *name, *v0, *v1; /* value v1 sets the flag, v0 clears it */
        size_t off;
    } tab[] = {
        {"rounds", "adaptive", "fixed", offsetof(TsTetriChoices, fixed_rounds)},
        {"segment-end", "continue", "idle", offsetof(TsTetriChoices, idle_segment_end)},
        {"ties", "widest", "narrowest", offsetof(TsTetriChoices, narrow_ties)},
        {"survival", "option-end", "round-end", offsetof(TsTetriChoices, survival_round_end)},
        {"best-effort", "one-gpu", "in-round", offsetof(TsTetriChoices, best_effort_in_round)},
        {"best-effort-order", "before-elastic", "last", offsetof(TsTetriChoices, best_effort_last)},
    };
    if (!spec) return TS_OK;
    const char *s = spec;
    while (*s) {
        const char *e = strchr(s, ','), *eq = strchr(s, '=');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (!eq || (size_t)(eq - s) >= n)
            return ts_err(err, TS_ERR_INPUT, "--choice: '%.*s' is not NAME=VALUE", (int)n, s);
        size_t nn = (size_t)(eq - s), vn = n - nn - 1;
        int found = 0;
        for (size_t k = 0; k < sizeof tab / sizeof *tab && !found; k++) {
            if (strlen(tab[k].name) != nn || strncmp(s, tab[k].name, nn)) continue;
            int *flag = (int *)((char *)ch + tab[k].off);
            if (strlen(tab[k].v0) == vn && !strncmp(eq + 1, tab[k].v0, vn)) *flag = 0;
            else if (strlen(tab[k].v1) == vn && !strncmp(eq + 1, tab[k].v1, vn)) *flag = 1;
            else
                return ts_err(err, TS_ERR_INPUT, "--choice: %s is %s or %s, not '%.*s'", tab[k].name, tab[k].v0,
                              tab[k].v1, (int)vn, eq + 1);
            found = 1;
        }
        if (!found)
            return ts_err(err, TS_ERR_INPUT,
                          "--choice: unknown '%.*s' (rounds, segment-end, ties, survival, best-effort, "
                          "best-effort-order)",
                          (int)nn, s);
        s += n;
        if (*s == ',') s++;
    }
    return TS_OK;
}

static TsStatus ts_tetri_create_common(void **self, const TsPolicyConfig *cfg, const TsState *st,
                                       int plus, TsErr *err) {
    const TsCostModel *cm = st->cost;
    TsTetriChoices ch = {.best_effort_in_round = plus, .best_effort_last = plus};
    TsStatus crc = ts_tetri_choices_parse(cfg->choices, &ch, err);
    if (crc) return crc;
    TsTetri *p = ts_xcalloc(1, sizeof *p);
    p->cfg = *cfg;
    p->plus = plus;
    p->ch = ch;
    p->cm = cm;
    p->n_res = cm->n_res;
    p->ds = ts_xcalloc((size_t)cm->n_res, sizeof *p->ds);
    p->cm_didx = ts_xcalloc((size_t)cm->n_res, sizeof *p->cm_didx);
    p->tmin_s = ts_xcalloc((size_t)cm->n_res, sizeof *p->tmin_s);
    double slowest_fast = 0;
    for (int r = 0; r < cm->n_res; r++) {
        double t[TS_MAX_DEGREES];
        for (int d = 0; d < cm->n_deg; d++) t[d] = ts_cost_step_s(cm, r, d, 1);
        ts_degree_set_build(&p->ds[r], cm->degree, t, cm->n_deg);
        if (p->ds[r].n == 0) {
            ts_tetri_destroy(p);
            return ts_err(err, TS_ERR_INPUT, "--policy %s: the profile has no degree <= --gpus %d for %dx%d",
                          plus ? "tetriplus" : "tetriserve", st->n_gpus, cm->width[r], cm->height[r]);
        }
        p->cm_didx[r] = ts_xcalloc((size_t)p->ds[r].n, sizeof **p->cm_didx);
        for (int j = 0; j < p->ds[r].n; j++) p->cm_didx[r][j] = ts_cost_degree_index(cm, p->ds[r].degree[j]);
        p->tmin_s[r] = p->ds[r].step_s[p->ds[r].n - 1];
        if (p->tmin_s[r] > slowest_fast) slowest_fast = p->tmin_s[r];
    }
    p->tau_s = cfg->round_ms > 0 ? cfg->round_ms / 1000.0 : ts_tetri_pick_tau(p, st, cfg->round_steps, slowest_fast);
    if (!(p->tau_s > 0)) p->tau_s = 1.0; /* empty trace */
    p->next_round_s = INFINITY;
    p->n_words = (st->n_gpus + 63) / 64;
    p->free_map = ts_xcalloc((size_t)p->n_words, sizeof *p->free_map);
    p->gpus = ts_xcalloc((size_t)st->n_gpus, sizeof *p->gpus);
    ts_knap_init(&p->knap);
    *self = p;
    return TS_OK;
}

static TsStatus ts_tetriserve_create(void **self, const TsPolicyConfig *cfg, const TsState *st, TsErr *err) {
    return ts_tetri_create_common(self, cfg, st, 0, err);
}

static TsStatus ts_tetriplus_create(void **self, const TsPolicyConfig *cfg, const TsState *st, TsErr *err) {
    return ts_tetri_create_common(self, cfg, st, 1, err);
}

/* Order: earliest deadline, then trace order. */
static const TsCand *ts_sort_base;
static int ts_cand_cmp(const void *a, const void *b) {
    const TsCand *x = &ts_sort_base[*(const int *)a], *y = &ts_sort_base[*(const int *)b];
    if (x->deadline_s != y->deadline_s) return x->deadline_s < y->deadline_s ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static int ts_free_test(const uint64_t *m, int32_t g) { return (int)((m[g >> 6] >> (g & 63)) & 1u); }
static void ts_free_clear(uint64_t *m, int32_t g) { m[g >> 6] &= ~(1ull << (g & 63)); }

/* Survival bound of running q steps at step time T from now: the paper's
 * t_r+1 + (R - q) T_min <= deadline. A round ends when its work has ended
 * (ts_round_work_running), so the earliest t_r+1 after this option is the
 * option's own end, now + q T: with it the test stays what the paper
 * makes it, a lower bound on the time still needed (now + tau, the latest
 * boundary, declared requests doomed that could still make it, e.g. an
 * SD3 2048 px request with 0.5 s of slack; README "Rounds": measured). */
static int ts_survives(const TsTetri *p, const TsCand *c, double now, int32_t q, double T) {
    double oh = p->cm->overhead_s;
    if (q >= c->R) return now + (double)c->R * T + oh <= c->deadline_s + 1e-9;
    double next_s = p->ch.survival_round_end ? p->tau_s : (double)q * T;
    return now + next_s + (double)(c->R - q) * p->tmin_s[c->res] + oh <= c->deadline_s + 1e-9;
}

/* Steps of one segment this round: as many as fit in what is left of it. */
static int32_t ts_round_steps(double window_s, double T, int32_t cap) {
    double f = floor(window_s / T + 1e-9);
    int32_t q = f > (double)cap ? cap : (int32_t)f;
    return q < 0 ? 0 : q;
}

/* A candidate's plan (ts_tetri_min_alloc) and its options for the round
 * being decided. Only the requests that must run now need them up front
 * (the knapsack); a slack request's are built when the free GPUs reach it
 * (ts_fill) or batching asks, which is most of the decision time saved
 * when many requests wait: the same options either way. */
static void ts_cand_options(TsTetri *p, TsCand *c) {
    double now = p->now_s, window_s = p->window_s, oh = p->cm->overhead_s;
    c->built = 1;
    TsAlloc a;
    const TsDegreeSet *ds = &p->ds[c->res];
    if (ts_tetri_min_alloc(ds, c->R, c->deadline_s - now - oh, &a)) {
        c->cls = TS_CLS_HOPELESS; /* only rounding separates it from the laxity test */
        return;
    }
    for (int m = 0; m < a.n; m++) {
        int32_t d = a.idx[m];
        double T = ds->step_s[d];
        int32_t steps = ts_round_steps(window_s, T, a.steps[m]);
        if (steps < 1) continue;
        int dup = 0;
        for (int o = 0; o < c->n_opt; o++) dup |= c->opt[o].didx == d;
        if (dup) continue;
        c->opt[c->n_opt++] = (TsOpt){d, steps, ts_survives(p, c, now, steps, T)};
    }
}

/* Classify a ready request for the round being decided (p->now_s); the
 * options of the requests that must run now are built at once. */
static void ts_cand_build(TsTetri *p, const TsState *st, int64_t i, TsCand *c) {
    const TsReq *q = &st->req[i];
    double now = p->now_s;
    memset(c, 0, sizeof *c);
    c->i = i;
    c->res = q->res;
    c->R = q->steps - q->steps_done;
    c->deadline_s = q->deadline_s;
    c->batch_leader = -1;
    double tmin = p->tmin_s[c->res], oh = p->cm->overhead_s;
    c->laxity_s = q->deadline_s - now - (double)c->R * tmin - oh;
    if (c->laxity_s < -1e-9) {
        c->cls = TS_CLS_HOPELESS;
        c->built = 1;
        return;
    }
    int none_survives = now + p->tau_s + (double)c->R * tmin + oh <= c->deadline_s + 1e-9;
    c->cls = none_survives ? TS_CLS_SLACK : TS_CLS_NEEDS_RUN;
    if (c->cls == TS_CLS_NEEDS_RUN) ts_cand_options(p, c);
}

static void ts_cand_set(TsTetri *p, TsCand *c, int32_t didx, int32_t q) {
    c->didx = didx;
    c->degree = p->ds[c->res].degree[didx];
    c->q = q;
}

/* Free GPUs left after the decisions so far. */
static int32_t ts_left(const TsState *st, const TsCand *cands, int n) {
    int32_t used = 0;
    for (int k = 0; k < n; k++)
        if (cands[k].degree && cands[k].batch_leader < 0) used += cands[k].degree;
    return st->n_free - used;
}

/* Give free GPUs, in `order`, to unscheduled non-hopeless candidates. */
static int32_t ts_fill(TsTetri *p, const int *order, int n, int32_t left) {
    for (int k = 0; k < n && left > 0; k++) {
        TsCand *c = &p->cand[order[k]];
        if (c->degree || c->cls == TS_CLS_HOPELESS || c->batch_leader >= 0) continue;
        if (!c->built) ts_cand_options(p, c);
        for (int o = 0; o < c->n_opt; o++) {
            int32_t w = p->ds[c->res].degree[c->opt[o].didx];
            if (w > left) continue;
            ts_cand_set(p, c, c->opt[o].didx, c->opt[o].q);
            left -= w;
            break;
        }
    }
    return left;
}

/* Selective batching: same resolution, same degree, the profile has the
 * batched step time, and every member still survives at the batched
 * speed. Frees (b - 1) x k GPUs per batch of b. */
static int32_t ts_batch(TsTetri *p, const int *order, int n, double now, double window_s, int32_t left) {
    const TsCostModel *cm = p->cm;
    if (cm->max_batch < 2) return left;
    /* Only scheduled requests batch: scan those (in order), not all pending. */
    int *sched = p->knap_of, ns = 0;
    for (int a = 0; a < n; a++)
        if (p->cand[order[a]].degree && !p->cand[order[a]].best_effort) sched[ns++] = order[a];
    for (int a = 0; a < ns; a++) {
        TsCand *lead = &p->cand[sched[a]];
        if (!lead->degree || lead->best_effort || lead->batch_leader >= 0 || lead->batch_n) continue;
        int cd = p->cm_didx[lead->res][lead->didx];
        int members[TS_MAX_BATCH] = {sched[a]}, nm = 1;
        for (int b = a + 1; b < ns && nm < cm->max_batch; b++) {
            TsCand *c = &p->cand[sched[b]];
            if (!c->degree || c->best_effort || c->batch_leader >= 0 || c->batch_n || c->res != lead->res ||
                c->degree != lead->degree)
                continue;
            double Tb = ts_cost_step_s(cm, lead->res, cd, nm + 1);
            if (!(Tb > 0)) break;
            int32_t qmin = ts_round_steps(window_s, Tb, INT32_MAX);
            for (int m = 0; m < nm; m++) qmin = qmin < p->cand[members[m]].R ? qmin : p->cand[members[m]].R;
            qmin = qmin < c->R ? qmin : c->R;
            int ok = qmin >= 1 && ts_survives(p, c, now, qmin, Tb);
            for (int m = 0; m < nm && ok; m++) ok = ts_survives(p, &p->cand[members[m]], now, qmin, Tb);
            if (!ok) continue;
            members[nm++] = sched[b];
        }
        if (nm < 2) continue;
        double Tb = ts_cost_step_s(cm, lead->res, cd, nm);
        int32_t q = ts_round_steps(window_s, Tb, INT32_MAX);
        for (int m = 0; m < nm; m++) q = q < p->cand[members[m]].R ? q : p->cand[members[m]].R;
        lead->batch_n = nm;
        lead->q = q;
        for (int m = 1; m < nm; m++) {
            TsCand *c = &p->cand[members[m]];
            c->batch_leader = members[0];
            c->q = q;
            left += c->degree;
            int32_t j = m - 1; /* insertion: launches list members in index order */
            while (j > 0 && lead->batch_member[j - 1] > members[m]) lead->batch_member[j] = lead->batch_member[j - 1], j--;
            lead->batch_member[j] = members[m];
        }
    }
    return left;
}

/* Elastic scale-up: idle GPUs raise scheduled requests to their next
 * faster degree, the largest relative step-time gain first (ties: the lower
 * candidate index). A heap on (gain, index): a request whose next degree
 * does not fit in what is left never will (left only shrinks), so it is
 * dropped; one raised goes back with its next gain. */
static double ts_elastic_gain(const TsTetri *p, const TsCand *c) {
    const TsDegreeSet *ds = &p->ds[c->res];
    return (ds->step_s[c->didx] - ds->step_s[c->didx + 1]) / ds->step_s[c->didx];
}

static int ts_elastic_before(const TsTetri *p, const double *gain, int x, int y) {
    (void)p;
    return gain[x] > gain[y] || (gain[x] == gain[y] && x < y);
}

static void ts_heap_push(const TsTetri *p, int *h, int *nh, const double *gain, int k) {
    int i = (*nh)++;
    h[i] = k;
    while (i > 0 && ts_elastic_before(p, gain, h[i], h[(i - 1) / 2])) {
        int t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static int ts_heap_pop(const TsTetri *p, int *h, int *nh, const double *gain) {
    int top = h[0], i = 0;
    h[0] = h[--(*nh)];
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < *nh && ts_elastic_before(p, gain, h[l], h[m])) m = l;
        if (r < *nh && ts_elastic_before(p, gain, h[r], h[m])) m = r;
        if (m == i) break;
        int t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
    return top;
}

static int32_t ts_elastic(TsTetri *p, int n, double window_s, int32_t left) {
    int *heap = p->knap_of, nh = 0; /* scratch */
    double *gain = p->gain;
    for (int k = 0; k < n; k++) {
        TsCand *c = &p->cand[k];
        if (!c->degree || c->best_effort || c->batch_n || c->batch_leader >= 0) continue;
        if (c->didx + 1 >= p->ds[c->res].n) continue;
        gain[k] = ts_elastic_gain(p, c);
        if (gain[k] > 0) ts_heap_push(p, heap, &nh, gain, k);
    }
    while (left > 0 && nh > 0) {
        int k = ts_heap_pop(p, heap, &nh, gain);
        TsCand *c = &p->cand[k];
        const TsDegreeSet *ds = &p->ds[c->res];
        int32_t extra = ds->degree[c->didx + 1] - c->degree;
        if (extra > left) continue;
        left -= extra;
        int32_t q = ts_round_steps(window_s, ds->step_s[c->didx + 1], c->R);
        ts_cand_set(p, c, c->didx + 1, q > c->q ? q : c->q);
        if (c->didx + 1 < ds->n && (gain[k] = ts_elastic_gain(p, c)) > 0) ts_heap_push(p, heap, &nh, gain, k);
    }
    return left;
}

/* Best effort: at most one GPU each for hopeless requests, at least one
 * step (it may overrun the round). */
static int32_t ts_best_effort(TsTetri *p, const int *order, int n, double window_s, int32_t left) {
    for (int k = 0; k < n && left > 0; k++) {
        TsCand *c = &p->cand[order[k]];
        if (c->cls != TS_CLS_HOPELESS || c->degree) continue;
        const TsDegreeSet *ds = &p->ds[c->res];
        if (p->ch.best_effort_in_round) {
            /* tetriplus: the narrowest degree whose step fits in the round,
             * or nothing, so that best-effort work never holds a GPU past
             * the boundary, where a request that can still make it may
             * need it (README "tetriplus": measured against 1 GPU that may
             * overrun). A derived tau fits every T_min; only a --round-ms
             * below one falls back to the 1-GPU step below. */
            int d = 0;
            while (d + 1 < ds->n && ds->step_s[d] > window_s + 1e-9) d++;
            int32_t q = ts_round_steps(window_s, ds->step_s[d], c->R);
            if (q >= 1) {
                if (ds->degree[d] > left) continue;
                ts_cand_set(p, c, d, q);
                c->best_effort = 1;
                left -= ds->degree[d];
                continue;
            }
        }
        /* One GPU; or, where one GPU is dominated (slower and costlier
         * than a wider degree: the cpu profile at 512 px), the narrowest
         * degree the request runs at. Skipping it instead left hopeless
         * requests unserved on idle GPUs until the run ended. */
        if (ds->degree[0] > left) continue;
        int32_t q = ts_round_steps(window_s, ds->step_s[0], c->R);
        ts_cand_set(p, c, 0, q < 1 ? 1 : q);
        c->best_effort = 1;
        left -= ds->degree[0];
    }
    return left;
}

/* Claim k GPUs for a launch: its previous GPUs when preserved, else an
 * aligned block within a node, else the lowest-numbered free ones. */
static int ts_place(TsTetri *p, const TsState *st, const TsCand *c, int preserve_pass, int32_t *out) {
    int32_t k = c->degree;
    if (preserve_pass) {
        int32_t last_k;
        const int32_t *last = ts_state_last_gpus(st, c->i, &last_k);
        if (!last || last_k != k) return 0;
        for (int32_t a = 0; a < k; a++)
            if (!ts_free_test(p->free_map, last[a])) return 0;
        for (int32_t a = 0; a < k; a++) {
            out[a] = last[a];
            ts_free_clear(p->free_map, last[a]);
        }
        return 1;
    }
    int32_t gpn = st->gpus_per_node;
    /* Blocks below the cursor of size k were found taken, and GPUs are only
     * ever claimed here, so the search for size k resumes there. */
    int32_t *cursor = k <= TS_MAX_CURSOR ? &p->cursor[k] : NULL;
    for (int32_t base = cursor ? *cursor : 0; base + k <= st->n_gpus; base += k) {
        if (cursor) *cursor = base;
        if (base / gpn != (base + k - 1) / gpn) continue;
        int ok = 1;
        for (int32_t a = 0; a < k && ok; a++) ok = ts_free_test(p->free_map, base + a);
        if (!ok) continue;
        for (int32_t a = 0; a < k; a++) {
            out[a] = base + a;
            ts_free_clear(p->free_map, base + a);
        }
        return 1;
    }
    if (cursor) *cursor = st->n_gpus;
    while (p->lowest_free < st->n_gpus && !ts_free_test(p->free_map, p->lowest_free)) p->lowest_free++;
    int32_t got = 0;
    for (int32_t g = p->lowest_free; g < st->n_gpus && got < k; g++)
        if (ts_free_test(p->free_map, g)) out[got++] = g;
    if (got < k) return -1;
    for (int32_t a = 0; a < k; a++) ts_free_clear(p->free_map, out[a]);
    return 1;
}

/* A planned segment that ends mid-round (fewer steps left in it than fit
 * in the round) continues at the same degree on the same GPUs until the
 * boundary: the GPUs are the request's for the whole round anyway, so the
 * extra steps cost nobody anything, and idling them turned a plan that
 * "just meets the deadline" into a miss whenever its fast segment had one
 * step left (README "Rounds": measured against idling). Batched and
 * best-effort launches already run as many steps as fit. */
static void ts_continue(TsTetri *p, int n, double window_s) {
    if (p->ch.idle_segment_end) return;
    for (int k = 0; k < n; k++) {
        TsCand *c = &p->cand[k];
        if (!c->degree || c->batch_n || c->batch_leader >= 0 || c->best_effort) continue;
        int32_t q = ts_round_steps(window_s, p->ds[c->res].step_s[c->didx], c->R);
        if (q > c->q) c->q = q;
    }
}

static int ts_deg_desc_cmp(const void *a, const void *b) {
    const TsCand *x = &ts_sort_base[*(const int *)a], *y = &ts_sort_base[*(const int *)b];
    if (x->degree != y->degree) return x->degree > y->degree ? -1 : 1;
    return ts_cand_cmp(a, b);
}

/* One round decision over the ready requests; a round lasts window_s. */
static TsStatus ts_tetri_schedule(TsTetri *p, const TsState *st, TsPlan *plan, double window_s, TsErr *err) {
    double now = st->now_s;
    int n = 0;
    p->now_s = now;
    p->window_s = window_s;
    for (int64_t r = 0; r < st->n_pending; r++) {
        int64_t i = st->pending[r];
        if (st->req[i].state != TS_REQ_READY) continue;
        TS_GROW(p->cand, p->cap_cand, n + 1);
        ts_cand_build(p, st, i, &p->cand[n]);
        n++;
    }
    if (n == 0 || st->n_free == 0) return TS_OK;
    if (n > p->cap_items) {
        int64_t cap = p->cap_items;
        TS_GROW(p->items, cap, n);
        p->order = ts_xrealloc(p->order, (size_t)(4 * cap) * sizeof *p->order); /* + knapsack scratch */
        p->knap_of = ts_xrealloc(p->knap_of, (size_t)cap * sizeof *p->knap_of);
        p->choice = ts_xrealloc(p->choice, (size_t)cap * sizeof *p->choice);
        p->gain = ts_xrealloc(p->gain, (size_t)cap * sizeof *p->gain);
        p->cap_items = cap;
    }
    for (int k = 0; k < n; k++) p->order[k] = k;
    ts_sort_base = p->cand;
    qsort(p->order, (size_t)n, sizeof *p->order, ts_cand_cmp);

    int32_t left = st->n_free;
    /* 4. Knapsack over the requests that must run now to survive. */
    int m = 0;
    for (int k = 0; k < n; k++) {
        TsCand *c = &p->cand[p->order[k]];
        if (c->cls != TS_CLS_NEEDS_RUN) continue;
        TsKnapItem *it = &p->items[m];
        it->n_opt = 0;
        it->none_value = 0;
        for (int o = 0; o < c->n_opt; o++) {
            if (!c->opt[o].survive) continue;
            it->width[it->n_opt] = p->ds[c->res].degree[c->opt[o].didx];
            it->value[it->n_opt] = 1;
            it->n_opt++;
        }
        if (!it->n_opt) continue;
        p->knap_of[m] = p->order[k];
        m++;
    }
    if (m) {
        /* Unit values: exactly the knapsack optimum, with its tie rule
         * (ts_tetri.h); items are in deadline order. */
        if (p->ch.narrow_ties) ts_knap_unit_solve_narrow(p->items, m, left, p->choice, p->order + n);
        else ts_knap_unit_solve(p->items, m, left, p->choice, p->order + n);
        for (int j = 0; j < m; j++) {
            if (p->choice[j] < 0) continue;
            TsCand *c = &p->cand[p->knap_of[j]];
            int seen = -1;
            for (int o = 0; o < c->n_opt; o++) /* the choice-th surviving option */
                if (c->opt[o].survive && ++seen == p->choice[j]) {
                    ts_cand_set(p, c, c->opt[o].didx, c->opt[o].q);
                    left -= c->degree;
                    break;
                }
        }
    }
    /* The other non-hopeless requests take what is left, in order. */
    left = ts_fill(p, p->order, n, left);
    if (p->cfg.batching) {
        int waiting = 0;
        for (int k = 0; k < n && !waiting; k++) {
            TsCand *c = &p->cand[k];
            if (c->degree || c->cls == TS_CLS_HOPELESS) continue;
            if (!c->built) ts_cand_options(p, c);
            waiting = c->cls != TS_CLS_HOPELESS && c->n_opt;
        }
        if (waiting) {
            left = ts_batch(p, p->order, n, now, window_s, left);
            left = ts_fill(p, p->order, n, left);
        }
    }
    if (p->ch.best_effort_last) { /* tetriplus: hopeless work only on GPUs nothing else can use */
        if (p->cfg.elastic) left = ts_elastic(p, n, window_s, left);
        left = ts_best_effort(p, p->order, n, window_s, left);
    } else {
        left = ts_best_effort(p, p->order, n, window_s, left);
        if (p->cfg.elastic) left = ts_elastic(p, n, window_s, left);
    }
    if (left < 0 || left != ts_left(st, p->cand, n))
        return ts_err(err, TS_ERR_INTERNAL, "GPU accounting: %d left, recount %d", left, ts_left(st, p->cand, n));

    ts_continue(p, n, window_s);

    /* 6. Placement. */
    memcpy(p->free_map, st->gpu_free, (size_t)p->n_words * sizeof *p->free_map);
    memset(p->cursor, 0, sizeof p->cursor);
    p->lowest_free = 0;
    int nl = 0;
    for (int k = 0; k < n; k++)
        if (p->cand[p->order[k]].degree && p->cand[p->order[k]].batch_leader < 0) p->order[nl++] = p->order[k];
    int *placed = p->knap_of; /* scratch */
    for (int k = 0; k < nl; k++) placed[k] = 0;
    int32_t *gpu_of = p->gpus;
    /* GPU lists per launch are written into the plan as placed; preserved
     * ones first so that nobody else takes their GPUs. */
    qsort(p->order, (size_t)nl, sizeof *p->order, ts_deg_desc_cmp);
    for (int pass = (p->cfg.preserve ? 1 : 0); pass >= 0; pass--) {
        for (int k = 0; k < nl; k++) {
            if (placed[k]) continue;
            TsCand *c = &p->cand[p->order[k]];
            int rc = ts_place(p, st, c, pass, gpu_of);
            if (rc < 0) return ts_err(err, TS_ERR_INTERNAL, "placement: no %d free GPUs", c->degree);
            if (rc == 0) continue;
            placed[k] = 1;
            int64_t reqs[TS_MAX_BATCH];
            int32_t nr = 0;
            reqs[nr++] = c->i;
            int finishes = c->q >= c->R;
            for (int32_t j = 0; j + 1 < c->batch_n; j++) {
                const TsCand *mb = &p->cand[c->batch_member[j]];
                reqs[nr++] = mb->i;
                finishes |= c->q >= mb->R;
            }
            ts_plan_add(plan, reqs, nr, c->q, c->degree, gpu_of);
            /* Launches that end within the round decide when it ends; an
             * overrunning best-effort step does not hold the round back. */
            const TsCostModel *cm = p->cm;
            double T = c->batch_n > 1 ? ts_cost_step_s(cm, c->res, p->cm_didx[c->res][c->didx], c->batch_n)
                                      : p->ds[c->res].step_s[c->didx];
            if ((double)c->q * T + (finishes ? cm->overhead_s : 0.0) <= window_s + 1e-9) {
                TS_GROW(p->round_req, p->cap_round_req, p->n_round_req + 1);
                p->round_req[p->n_round_req++] = c->i;
            }
        }
    }
    return TS_OK;
}

/* Is a launch of the current round that was to end within tau still
 * running? */
static int ts_round_work_running(const TsTetri *p, const TsState *st) {
    for (int64_t k = 0; k < p->n_round_req; k++)
        if (st->req[p->round_req[k]].state == TS_REQ_RUNNING) return 1;
    return 0;
}

static TsStatus ts_tetri_decide(void *self, const TsState *st, TsPlan *plan, TsErr *err) {
    TsTetri *p = self;
    double now = st->now_s;
    int boundary, overrun = 0;
    if (p->ch.fixed_rounds) {
        boundary = now >= p->next_round_s;
    } else {
        /* The round ends with its work (none: at the cap), whether that is
         * before the cap or, live, after it. */
        int running = ts_round_work_running(p, st);
        boundary = p->n_round_req > 0 ? !running : now >= p->next_round_s;
        overrun = running && now >= p->next_round_s;
    }
    int any_ready = 0, any_pending = 0;
    for (int64_t r = 0; r < st->n_pending; r++) {
        TsReqState s = st->req[st->pending[r]].state;
        any_ready |= s == TS_REQ_READY;
        any_pending |= s != TS_REQ_DONE;
    }
    if (!boundary && p->next_round_s == INFINITY && any_ready) boundary = 1; /* idle system: open a round */
    if (!boundary) { /* mid-round: arrivals and freed GPUs wait for the boundary */
        plan->wakeup_s = overrun ? INFINITY : p->next_round_s; /* overrun: its end wakes us */
        return TS_OK;
    }
    plan->round = p->round++;
    p->n_round_req = 0;
    TsStatus rc = any_ready ? ts_tetri_schedule(p, st, plan, p->tau_s, err) : TS_OK;
    p->next_round_s = any_pending ? now + p->tau_s : INFINITY;
    plan->wakeup_s = p->next_round_s;
    return rc;
}

static double ts_tetri_round_s(const void *self) { return ((const TsTetri *)self)->tau_s; }

static void ts_tetri_describe(const void *self, char *buf, size_t len) {
    const TsTetri *p = self;
    const TsTetriChoices *ch = &p->ch;
    snprintf(buf, len,
             "round_s=%.6f round_steps=%d round_ms=%g preserve=%d elastic=%d batching=%d rounds=%s "
             "segment_end=%s ties=%s survival=%s best_effort=%s best_effort_order=%s",
             p->tau_s, p->cfg.round_steps, p->cfg.round_ms, p->cfg.preserve, p->cfg.elastic, p->cfg.batching,
             ch->fixed_rounds ? "fixed" : "adaptive", ch->idle_segment_end ? "idle" : "continue",
             ch->narrow_ties ? "narrowest" : "widest", ch->survival_round_end ? "round_end" : "option_end",
             ch->best_effort_in_round ? "in_round" : "one_gpu", ch->best_effort_last ? "last" : "before_elastic");
}

const TsPolicyOps ts_policy_tetriserve = {
    "tetriserve", "the paper's round-based scheduler: min-GPU-time plans, survival knapsack, elastic scale-up",
    ts_tetriserve_create, ts_tetri_decide, ts_tetri_round_s, ts_tetri_describe, ts_tetri_destroy,
};

const TsPolicyOps ts_policy_tetriplus = {
    "tetriplus", "tetriserve with best effort last and within the round (hopeless requests only on what elastic scale-up left)",
    ts_tetriplus_create, ts_tetri_decide, ts_tetri_round_s, ts_tetri_describe, ts_tetri_destroy,
};
