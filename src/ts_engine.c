/* ts_engine.c - apply plans to the cluster state, checking every invariant,
 * and record what ran. See ts_engine.h.
 *
 * Segment rule (SPEC.md /segments): one row per maximal run of consecutive
 * steps of one request on one fixed GPU set. A launch that continues a
 * request on exactly the GPU set of its previous segment, starting at the
 * instant that segment ended (no gap: no idle time inside a row), and
 * neither of them batched, extends that row instead of opening a new one;
 * the row keeps the round in which it began. */
#include "ts_engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct TsActive {
    int32_t n_req;
    int64_t req[TS_MAX_BATCH];
    int64_t seg[TS_MAX_BATCH]; /* the log row of each request */
    int32_t n_steps, degree;
    int64_t gpu_offset; /* GPU ids: log->seg_gpus[gpu_offset .. + degree) */
    double start_s, planned_end_s;
    int in_use;
} TsActive;

/* ------------------------------------------------------------------ plan */

void ts_plan_init(TsPlan *p) {
    memset(p, 0, sizeof *p);
    ts_plan_clear(p);
}

void ts_plan_clear(TsPlan *p) {
    p->n_launch = p->n_reqs = p->n_gpus = 0;
    p->wakeup_s = INFINITY;
    p->round = -1;
}

void ts_plan_free(TsPlan *p) {
    free(p->launch);
    free(p->reqs);
    free(p->gpus);
    memset(p, 0, sizeof *p);
}

void ts_plan_add(TsPlan *p, const int64_t *reqs, int32_t n_req, int32_t n_steps, int32_t degree,
                 const int32_t *gpus) {
    TS_GROW(p->launch, p->cap_launch, p->n_launch + 1);
    TS_GROW(p->reqs, p->cap_reqs, p->n_reqs + n_req);
    TS_GROW(p->gpus, p->cap_gpus, p->n_gpus + degree);
    TsLaunch *l = &p->launch[p->n_launch++];
    l->req_off = p->n_reqs;
    l->n_req = n_req;
    l->n_steps = n_steps;
    l->degree = degree;
    l->gpu_off = p->n_gpus;
    memcpy(p->reqs + p->n_reqs, reqs, (size_t)n_req * sizeof *reqs);
    memcpy(p->gpus + p->n_gpus, gpus, (size_t)degree * sizeof *gpus);
    p->n_reqs += n_req;
    p->n_gpus += degree;
}

/* ----------------------------------------------------------------- state */

TsStatus ts_engine_init(TsState *st, const TsTrace *t, const TsCostModel *cm, const int *res_of,
                        const TsEngineConfig *cfg, TsRunLog *log, TsErr *err) {
    memset(st, 0, sizeof *st);
    if (cfg->n_gpus < 1)
        return ts_err(err, TS_ERR_INPUT, "--gpus: must be >= 1 (got %d)", cfg->n_gpus);
    if (!(cfg->slo_scale > 0) || !isfinite(cfg->slo_scale))
        return ts_err(err, TS_ERR_INPUT, "--slo-scale: must be a positive number");
    if (log->n_req != t->n)
        return ts_err(err, TS_ERR_INTERNAL, "run log has %lld rows for %lld requests",
                      (long long)log->n_req, (long long)t->n);
    st->n_gpus = cfg->n_gpus;
    st->gpus_per_node = cfg->gpus_per_node > 0 ? cfg->gpus_per_node : cfg->n_gpus;
    st->slo_scale = cfg->slo_scale;
    st->cost = cm;
    st->exec = cfg->exec ? cfg->exec : cm;
    if (st->exec != cm) { /* resolution indices are shared: built from the same trace */
        int same = st->exec->n_res == cm->n_res;
        for (int r = 0; same && r < cm->n_res; r++)
            same = st->exec->width[r] == cm->width[r] && st->exec->height[r] == cm->height[r];
        if (!same) return ts_err(err, TS_ERR_INTERNAL, "the execution cost model was built for another trace");
    }
    st->log = log;
    st->n_req = t->n;
    st->req = ts_xcalloc((size_t)t->n, sizeof *st->req);
    st->pending = ts_xmalloc((size_t)(t->n ? t->n : 1) * sizeof *st->pending);
    for (int64_t i = 0; i < t->n; i++) {
        const TsRequest *r = &t->req[i];
        TsReq *q = &st->req[i];
        q->id = r->id;
        q->res = res_of[i];
        q->steps = r->steps;
        q->arrival_s = r->arrival_s;
        q->deadline_s = r->arrival_s + r->slo_s * cfg->slo_scale;
        q->state = TS_REQ_FUTURE;
        q->last_seg = -1;
        TsRequestRec *rec = &log->req[i];
        rec->id = r->id;
        rec->width = r->width;
        rec->height = r->height;
        rec->steps = r->steps;
        rec->arrival = r->arrival_s;
        rec->deadline = q->deadline_s;
        rec->start = rec->finish = NAN;
        rec->met = 0;
        rec->status = TS_STATUS_UNFINISHED;
    }
    int64_t words = (st->n_gpus + 63) / 64;
    st->gpu_free = ts_xcalloc((size_t)words, sizeof *st->gpu_free);
    st->gpu_slot = ts_xmalloc((size_t)st->n_gpus * sizeof *st->gpu_slot);
    for (int32_t g = 0; g < st->n_gpus; g++) {
        st->gpu_free[g >> 6] |= 1ull << (g & 63);
        st->gpu_slot[g] = -1;
    }
    st->n_free = st->n_gpus;
    return TS_OK;
}

void ts_engine_free(TsState *st) {
    free(st->req);
    free(st->pending);
    free(st->gpu_free);
    free(st->gpu_slot);
    free(st->active);
    free(st->free_slots);
    memset(st, 0, sizeof *st);
}

void ts_engine_arrive(TsState *st) {
    int64_t i = st->n_arrived++;
    st->req[i].state = TS_REQ_READY;
    st->pending[st->n_pending++] = i;
}

const int64_t *ts_engine_pending(TsState *st, int64_t *n) {
    int64_t w = 0;
    for (int64_t r = 0; r < st->n_pending; r++)
        if (st->req[st->pending[r]].state != TS_REQ_DONE) st->pending[w++] = st->pending[r];
    st->n_pending = w;
    *n = w;
    return st->pending;
}

const int32_t *ts_state_last_gpus(const TsState *st, int64_t i, int32_t *degree) {
    int64_t s = st->req[i].last_seg;
    if (s < 0) {
        *degree = 0;
        return NULL;
    }
    const TsSegment *seg = &st->log->seg[s];
    *degree = seg->degree;
    return st->log->seg_gpus + seg->gpu_offset;
}

double ts_state_min_remaining_s(const TsState *st, int64_t i) {
    const TsReq *q = &st->req[i];
    const TsCostModel *cm = st->cost;
    double best = INFINITY;
    for (int d = 0; d < cm->n_deg; d++) {
        double t = ts_cost_step_s(cm, q->res, d, 1);
        if (t < best) best = t; /* NAN compares false: skipped */
    }
    return (double)(q->steps - q->steps_done) * best;
}


static int64_t ts_engine_slot_get(TsState *st) {
    if (st->n_free_slots == 0) {
        int64_t old = st->n_active_cap;
        int64_t cap = old;
        TS_GROW(st->active, cap, old + 1);
        st->free_slots = ts_xrealloc(st->free_slots, (size_t)cap * sizeof *st->free_slots);
        for (int64_t s = cap - 1; s >= old; s--) {
            st->active[s].in_use = 0;
            st->free_slots[st->n_free_slots++] = s;
        }
        st->n_active_cap = cap;
    }
    return st->free_slots[--st->n_free_slots];
}

/* Is `gpus` (degree k, distinct) exactly the GPU set of segment s? */
static int ts_same_gpu_set(const TsState *st, const TsSegment *s, const int32_t *gpus, int32_t k) {
    if (s->degree != k) return 0;
    const int32_t *old = st->log->seg_gpus + s->gpu_offset;
    for (int32_t a = 0; a < k; a++) {
        int found = 0;
        for (int32_t b = 0; b < k && !found; b++) found = old[b] == gpus[a];
        if (!found) return 0;
    }
    return 1;
}

TsStatus ts_engine_launch(TsState *st, const TsPlan *plan, int64_t k, int64_t round,
                          int64_t *slot_out, double *end_s, TsErr *err) {
    const TsLaunch *l = &plan->launch[k];
    const int64_t *reqs = plan->reqs + l->req_off;
    const int32_t *gpus = plan->gpus + l->gpu_off;
    const TsCostModel *cm = st->cost;
    double now = st->now_s;

    if (l->n_req < 1 || l->n_req > cm->max_batch || l->n_req > TS_MAX_BATCH)
        return ts_err(err, TS_ERR_INTERNAL, "launch %lld: batch of %d requests (profile allows %d)",
                      (long long)k, l->n_req, cm->max_batch);
    int d = ts_cost_degree_index(cm, l->degree);
    if (d < 0 || l->degree > st->n_gpus)
        return ts_err(err, TS_ERR_INTERNAL, "launch %lld: degree %d not in the cost model",
                      (long long)k, l->degree);
    if (l->n_steps < 1)
        return ts_err(err, TS_ERR_INTERNAL, "launch %lld: %d steps", (long long)k, l->n_steps);
    int res = -1, finishes = 0;
    for (int32_t j = 0; j < l->n_req; j++) {
        int64_t i = reqs[j];
        if (i < 0 || i >= st->n_arrived)
            return ts_err(err, TS_ERR_INTERNAL, "launch %lld: request index %lld has not arrived",
                          (long long)k, (long long)i);
        const TsReq *q = &st->req[i];
        if (q->state != TS_REQ_READY)
            return ts_err(err, TS_ERR_INTERNAL, "launch %lld: request %lld is %s, not ready",
                          (long long)k, (long long)q->id,
                          q->state == TS_REQ_RUNNING ? "already running" : "done");
        if (q->steps_done + l->n_steps > q->steps)
            return ts_err(err, TS_ERR_INTERNAL, "launch %lld: request %lld has %d steps left, not %d",
                          (long long)k, (long long)q->id, q->steps - q->steps_done, l->n_steps);
        if (j == 0) res = q->res;
        if (q->res != res)
            return ts_err(err, TS_ERR_INTERNAL, "launch %lld: batch mixes resolutions", (long long)k);
        for (int32_t j2 = 0; j2 < j; j2++)
            if (reqs[j2] == i)
                return ts_err(err, TS_ERR_INTERNAL, "launch %lld: request %lld twice in a batch",
                              (long long)k, (long long)q->id);
        if (q->steps_done + l->n_steps == q->steps) finishes = 1;
    }
    double step_s = ts_cost_step_s(cm, res, d, l->n_req);
    if (!(step_s > 0))
        return ts_err(err, TS_ERR_INTERNAL, "launch %lld: no step time for %dx%d at degree %d batch %d",
                      (long long)k, cm->width[res], cm->height[res], l->degree, l->n_req);
    for (int32_t a = 0; a < l->degree; a++) {
        int32_t g = gpus[a];
        if (g < 0 || g >= st->n_gpus)
            return ts_err(err, TS_ERR_INTERNAL, "launch %lld: GPU %d out of range", (long long)k, g);
        if (!ts_gpu_is_free(st, g))
            return ts_err(err, TS_ERR_INTERNAL, "launch %lld: GPU %d is busy at t=%.6f s",
                          (long long)k, g, now);
        for (int32_t b = 0; b < a; b++)
            if (gpus[b] == g)
                return ts_err(err, TS_ERR_INTERNAL, "launch %lld: GPU %d listed twice",
                              (long long)k, g);
    }

    const TsCostModel *ex = st->exec;
    if (ex != cm) { /* what the launch takes, as opposed to what was planned */
        step_s = ts_cost_step_at(ex, res, l->degree, l->n_req);
        if (!(step_s > 0))
            return ts_err(err, TS_ERR_INPUT, "execution profile: no step time for %dx%d at degree %d batch %d",
                          cm->width[res], cm->height[res], l->degree, l->n_req);
    }
    /* Checked: occupy the GPUs and record. */
    double end = now + (double)l->n_steps * step_s + (finishes ? ex->overhead_s : 0.0);
    int64_t slot = ts_engine_slot_get(st);
    TsActive *act = &st->active[slot];
    act->in_use = 1;
    act->n_req = l->n_req;
    act->n_steps = l->n_steps;
    act->degree = l->degree;
    act->start_s = now;
    act->planned_end_s = end;
    for (int32_t a = 0; a < l->degree; a++) {
        int32_t g = gpus[a];
        st->gpu_free[g >> 6] &= ~(1ull << (g & 63));
        st->gpu_slot[g] = slot;
    }
    st->n_free -= l->degree;

    TsRunLog *log = st->log;
    int64_t batch_id = l->n_req > 1 ? st->next_batch_id++ : -1;
    for (int32_t j = 0; j < l->n_req; j++) {
        int64_t i = reqs[j];
        TsReq *q = &st->req[i];
        TsSegment *prev = q->last_seg >= 0 ? &log->seg[q->last_seg] : NULL;
        int64_t s;
        if (batch_id < 0 && prev && prev->batch_id < 0 && prev->end == now &&
            prev->step_begin + prev->n_steps == q->steps_done &&
            ts_same_gpu_set(st, prev, gpus, l->degree)) {
            s = q->last_seg; /* continue the row: see the segment rule above */
            prev->n_steps += l->n_steps;
            prev->end = end;
            if (s < log->seg_dirty_from) log->seg_dirty_from = s;
        } else {
            TsSegment seg;
            memset(&seg, 0, sizeof seg); /* padding too: logs compare bytewise */
            seg.request_id = q->id;
            seg.step_begin = q->steps_done;
            seg.n_steps = l->n_steps;
            seg.degree = l->degree;
            seg.start = now;
            seg.end = end;
            seg.round = round;
            seg.batch_id = batch_id;
            s = j == 0 ? ts_log_add_segment(log, &seg, gpus)
                       : ts_log_add_segment_shared(log, &seg, act->seg[0]);
        }
        act->req[j] = i;
        act->seg[j] = s;
        q->last_seg = s;
        q->state = TS_REQ_RUNNING;
        if (isnan(log->req[i].start)) log->req[i].start = now;
    }
    act->gpu_offset = log->seg[act->seg[0]].gpu_offset;
    *slot_out = slot;
    *end_s = end;
    return TS_OK;
}

TsStatus ts_engine_complete(TsState *st, int64_t slot, double end_s, TsErr *err) {
    if (slot < 0 || slot >= st->n_active_cap || !st->active[slot].in_use)
        return ts_err(err, TS_ERR_INTERNAL, "completion of unknown launch slot %lld",
                      (long long)slot);
    TsActive *act = &st->active[slot];
    if (end_s < act->start_s)
        return ts_err(err, TS_ERR_INTERNAL, "launch ends at %.6f s before it started at %.6f s",
                      end_s, act->start_s);
    TsRunLog *log = st->log;
    for (int32_t j = 0; j < act->n_req; j++) {
        int64_t i = act->req[j];
        TsReq *q = &st->req[i];
        TsSegment *seg = &log->seg[act->seg[j]];
        if (seg->end != end_s) { /* live: the measured end replaces the plan */
            seg->end = end_s;
            if (act->seg[j] < log->seg_dirty_from) log->seg_dirty_from = act->seg[j];
        }
        q->steps_done += act->n_steps;
        if (q->steps_done == q->steps) {
            q->state = TS_REQ_DONE;
            st->n_done++;
            TsRequestRec *rec = &log->req[i];
            rec->finish = end_s;
            rec->met = end_s <= q->deadline_s;
            rec->status = TS_STATUS_FINISHED;
        } else {
            q->state = TS_REQ_READY;
        }
    }
    const int32_t *gpus = log->seg_gpus + act->gpu_offset;
    for (int32_t a = 0; a < act->degree; a++) {
        int32_t g = gpus[a];
        st->gpu_free[g >> 6] |= 1ull << (g & 63);
        st->gpu_slot[g] = -1;
    }
    st->n_free += act->degree;
    act->in_use = 0;
    st->free_slots[st->n_free_slots++] = slot;
    return TS_OK;
}

void ts_engine_close(TsState *st) {
    /* Unfinished rows already carry status 2 and NAN finish from init. */
    (void)st;
}
