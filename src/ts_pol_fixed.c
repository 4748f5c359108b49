/* ts_pol_fixed.c - the paper's non-preemptive baselines (SPEC.md):
 *
 *   spK   xDiT with fixed degree K: GPUs form n_gpus/K fixed groups
 *         {0..K-1}, {K..2K-1}, ...; FCFS by (arrival, id); the head of the
 *         queue starts on the lowest-numbered free group as soon as one is
 *         free and runs all its steps there.
 *   rssp  a fixed degree per resolution; strict FCFS: the head starts as
 *         soon as K GPUs are free, on the K lowest-numbered free GPUs, and
 *         nobody overtakes it.
 *
 * Both run every request start to finish in one launch, so the engine's
 * timing gives exactly start = max(arrival, free time) and finish = start +
 * steps x T(res, K) + request_overhead, the GPUs busy until finish. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_engine.h"

typedef struct TsFixed {
    int32_t k;       /* spK: the degree; rssp: 0 */
    int32_t *res_k;  /* rssp: degree per resolution of the cost model */
    int n_res;
    int64_t next;    /* first request (trace order) not started yet */
    int64_t n_words;
    uint64_t *free;  /* scratch copy of the free-GPU bitmap */
    int32_t *gpus;   /* scratch GPU list */
    const TsCostModel *cm;
} TsFixed;

static TsFixed *ts_fixed_new(const TsState *st) {
    TsFixed *f = ts_xcalloc(1, sizeof *f);
    f->n_words = (st->n_gpus + 63) / 64;
    f->free = ts_xcalloc((size_t)f->n_words, sizeof *f->free);
    f->gpus = ts_xcalloc((size_t)st->n_gpus, sizeof *f->gpus);
    f->cm = st->cost;
    return f;
}

static void ts_fixed_destroy(void *self) {
    TsFixed *f = self;
    if (!f) return;
    free(f->res_k);
    free(f->free);
    free(f->gpus);
    free(f);
}

/* Every resolution of the run must have a step time at degree k. */
static TsStatus ts_fixed_check_degree(const TsState *st, const char *policy, int32_t k, int res,
                                      TsErr *err) {
    const TsCostModel *cm = st->cost;
    int d = ts_cost_degree_index(cm, k);
    if (d < 0 || !(ts_cost_step_s(cm, res, d, 1) > 0))
        return ts_err(err, TS_ERR_INPUT,
                      "--policy %s: the profile has no degree %d for %dx%d (a resolution of the trace)",
                      policy, k, cm->width[res], cm->height[res]);
    return TS_OK;
}

static TsStatus ts_sp_create(void **self, const TsState *st, int32_t k, const char *name,
                             TsErr *err) {
    if (st->n_gpus % k != 0)
        return ts_err(err, TS_ERR_INPUT, "--gpus %d is not a multiple of %s's degree %d",
                      st->n_gpus, name, k);
    for (int r = 0; r < st->cost->n_res; r++) {
        TsStatus rc = ts_fixed_check_degree(st, name, k, r, err);
        if (rc) return rc;
    }
    TsFixed *f = ts_fixed_new(st);
    f->k = k;
    *self = f;
    return TS_OK;
}

#define TS_SP_CREATE(K)                                                                         \
    static TsStatus ts_sp##K##_create(void **self, const TsPolicyConfig *cfg, const TsState *st, \
                                      TsErr *err) {                                             \
        (void)cfg;                                                                              \
        return ts_sp_create(self, st, K, "sp" #K, err);                                         \
    }
TS_SP_CREATE(1)
TS_SP_CREATE(2)
TS_SP_CREATE(4)
TS_SP_CREATE(8)

/* Are GPUs [g, g+k) all free in the bitmap? */
static int ts_range_free(const uint64_t *free_map, int32_t g, int32_t k) {
    for (int32_t a = g; a < g + k; a++)
        if (!((free_map[a >> 6] >> (a & 63)) & 1u)) return 0;
    return 1;
}

static TsStatus ts_sp_decide(void *self, const TsState *st, TsPlan *plan, TsErr *err) {
    (void)err;
    TsFixed *f = self;
    int32_t k = f->k, n_groups = st->n_gpus / k, g = 0;
    while (f->next < st->n_arrived && st->n_free >= k) {
        /* Lowest-numbered free group at or after g (groups taken earlier in
         * this call are below g: the scan only moves forward). Whole 64-GPU
         * words with no free GPU are skipped. */
        while (g < n_groups) {
            int32_t first = g * k;
            if (st->gpu_free[first >> 6] == 0 && k <= 64) {
                g = ((first >> 6) + 1) * 64 / k;
                continue;
            }
            if (ts_range_free(st->gpu_free, first, k)) break;
            g++;
        }
        if (g >= n_groups) break;
        for (int32_t a = 0; a < k; a++) f->gpus[a] = g * k + a;
        int64_t i = f->next++;
        ts_plan_add(plan, &i, 1, st->req[i].steps, k, f->gpus);
        g++;
    }
    return TS_OK;
}

static double ts_fixed_round_s(const void *self) {
    (void)self;
    return 0.0;
}

static void ts_sp_describe(const void *self, char *buf, size_t len) {
    const TsFixed *f = self;
    snprintf(buf, len, "degree=%d groups=contiguous order=fcfs", f->k);
}

#define TS_SP_OPS(K)                                                                         \
    const TsPolicyOps ts_policy_sp##K = {                                                    \
        "sp" #K, "xDiT fixed degree " #K ": FCFS on fixed groups of " #K " GPUs, no preemption", \
        ts_sp##K##_create, ts_sp_decide, ts_fixed_round_s, ts_sp_describe, ts_fixed_destroy, \
    };
TS_SP_OPS(1)
TS_SP_OPS(2)
TS_SP_OPS(4)
TS_SP_OPS(8)

/* ------------------------------------------------------------------ rssp */

/* Parse "RES:K,..." (RES = "512" or "512x768") into per-resolution degrees;
 * resolutions of the list that the trace lacks are ignored. */
static TsStatus ts_rssp_parse(TsFixed *f, const TsState *st, const char *spec, TsErr *err) {
    const TsCostModel *cm = st->cost;
    char buf[1024];
    if (strlen(spec) >= sizeof buf)
        return ts_err(err, TS_ERR_INPUT, "--rssp-degrees: too long");
    strcpy(buf, spec);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        if (!colon)
            return ts_err(err, TS_ERR_INPUT, "--rssp-degrees: '%s' is not RES:K", ts_trim(tok));
        *colon = '\0';
        char *res = ts_trim(tok), *x = strchr(res, 'x');
        int w, h, k;
        if (x) {
            *x = '\0';
            if (ts_parse_int(res, &w) || ts_parse_int(x + 1, &h))
                return ts_err(err, TS_ERR_INPUT, "--rssp-degrees: bad resolution '%s'", res);
        } else {
            if (ts_parse_int(res, &w))
                return ts_err(err, TS_ERR_INPUT, "--rssp-degrees: bad resolution '%s'", res);
            h = w;
        }
        if (ts_parse_int(colon + 1, &k) || k < 1)
            return ts_err(err, TS_ERR_INPUT, "--rssp-degrees: bad degree '%s' for %s",
                          ts_trim(colon + 1), res);
        if (k > st->n_gpus)
            return ts_err(err, TS_ERR_INPUT, "--rssp-degrees: degree %d for %dx%d exceeds --gpus %d",
                          k, w, h, st->n_gpus);
        for (int r = 0; r < cm->n_res; r++) {
            if (cm->width[r] != w || cm->height[r] != h) continue;
            TsStatus rc = ts_fixed_check_degree(st, "rssp", k, r, err);
            if (rc) return rc;
            f->res_k[r] = k;
        }
    }
    return TS_OK;
}

static TsStatus ts_rssp_create(void **self, const TsPolicyConfig *cfg, const TsState *st,
                               TsErr *err) {
    const TsCostModel *cm = st->cost;
    TsFixed *f = ts_fixed_new(st);
    f->n_res = cm->n_res;
    f->res_k = ts_xcalloc((size_t)cm->n_res, sizeof *f->res_k);
    TsStatus rc = TS_OK;
    if (cfg->rssp_degrees && (rc = ts_rssp_parse(f, st, cfg->rssp_degrees, err))) goto fail;
    /* The profile rule for the rest: the smallest degree whose steps x T
     * meets the resolution's base SLO (scale 1.0), else the fastest. Steps
     * and base SLO are those of the resolution's first request in the
     * trace (all requests of a resolution share them in generated traces). */
    for (int r = 0; r < cm->n_res; r++) {
        if (f->res_k[r]) continue;
        const TsReq *q = NULL;
        for (int64_t i = 0; i < st->n_req && !q; i++)
            if (st->req[i].res == r) q = &st->req[i];
        double base_slo = (q->deadline_s - q->arrival_s) / st->slo_scale;
        int32_t best_k = 0, fast_k = 0;
        double fast = INFINITY;
        for (int d = 0; d < cm->n_deg; d++) {
            double t = ts_cost_step_s(cm, r, d, 1);
            if (!(t > 0)) continue;
            double total = (double)q->steps * t;
            if (total < fast) fast = total, fast_k = cm->degree[d];
            if (!best_k && total <= base_slo) best_k = cm->degree[d];
        }
        f->res_k[r] = best_k ? best_k : fast_k;
        if (!f->res_k[r]) {
            rc = ts_err(err, TS_ERR_INPUT, "--policy rssp: the profile has no usable degree for %dx%d",
                        cm->width[r], cm->height[r]);
            goto fail;
        }
    }
    *self = f;
    return TS_OK;
fail:
    ts_fixed_destroy(f);
    return rc;
}

static TsStatus ts_rssp_decide(void *self, const TsState *st, TsPlan *plan, TsErr *err) {
    (void)err;
    TsFixed *f = self;
    int32_t n_free = st->n_free;
    if (f->next >= st->n_arrived || n_free < f->res_k[st->req[f->next].res]) return TS_OK;
    memcpy(f->free, st->gpu_free, (size_t)f->n_words * sizeof *f->free);
    while (f->next < st->n_arrived) {
        int64_t i = f->next;
        int32_t k = f->res_k[st->req[i].res];
        if (n_free < k) break; /* strict FCFS: nobody overtakes the head */
        int32_t taken = 0;
        for (int64_t w = 0; w < f->n_words && taken < k; w++) {
            while (f->free[w] && taken < k) { /* lowest set bits first */
                int b = __builtin_ctzll(f->free[w]);
                f->free[w] &= f->free[w] - 1;
                f->gpus[taken++] = (int32_t)(w * 64 + b);
            }
        }
        n_free -= k;
        ts_plan_add(plan, &i, 1, st->req[i].steps, k, f->gpus);
        f->next++;
    }
    return TS_OK;
}

static void ts_rssp_describe(const void *self, char *buf, size_t len) {
    const TsFixed *f = self;
    size_t off = (size_t)snprintf(buf, len, "degrees=");
    for (int r = 0; r < f->n_res && off < len; r++)
        off += (size_t)snprintf(buf + off, len - off, "%s%dx%d:%d", r ? "," : "", f->cm->width[r],
                                f->cm->height[r], f->res_k[r]);
    if (off < len) snprintf(buf + off, len - off, " order=strict-fcfs");
}

const TsPolicyOps ts_policy_rssp = {
    "rssp", "fixed degree per resolution (profile rule or --rssp-degrees), strict FCFS",
    ts_rssp_create, ts_rssp_decide, ts_fixed_round_s, ts_rssp_describe, ts_fixed_destroy,
};
