/* ts_check.c - schedule invariants, see ts_check.h. */
#include "ts_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct TsGpuUse {
    int32_t gpu;
    double start, end;
    int64_t seg, batch_id;
} TsGpuUse;

static int ts_gpu_use_cmp(const void *a, const void *b) {
    const TsGpuUse *x = a, *y = b;
    if (x->gpu != y->gpu) return x->gpu < y->gpu ? -1 : 1;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return (x->seg > y->seg) - (x->seg < y->seg);
}

/* Segments of each request in step order: sort indices by (request row,
 * step_begin). */
typedef struct { int64_t row; int32_t step; int64_t seg; } TsSegKey;
static int ts_segkey_cmp(const void *a, const void *b) {
    const TsSegKey *x = a, *y = b;
    if (x->row != y->row) return x->row < y->row ? -1 : 1;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    return (x->seg > y->seg) - (x->seg < y->seg);
}

static int ts_i64_cmp(const void *a, const void *b) {
    int64_t x = ((const int64_t *)a)[0], y = ((const int64_t *)b)[0];
    return (x > y) - (x < y);
}

/* Rows sharing batch id b (1 for b < 0) in the sorted id array. */
static int ts_batch_size(const int64_t *ids, int64_t n, int64_t b) {
    if (b < 0) return 1;
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (ids[mid] < b) lo = mid + 1; else hi = mid;
    }
    int c = 0;
    while (lo + c < n && ids[lo + c] == b) c++;
    return c;
}

TsStatus ts_check_log(const TsRunLog *log, int32_t n_gpus, const TsCostModel *cm,
                      const int *res_of, TsErr *err) {
    TsStatus rc = TS_OK;
    int64_t n_seg = log->n_seg, n_use = 0;
    TsSegKey *keys = ts_xmalloc((size_t)(n_seg ? n_seg : 1) * sizeof *keys);
    TsGpuUse *use = NULL;
    int64_t cap_use = 0;
    /* Map request id -> row: ids are unique; sort (id, row) pairs. */
    int64_t *idrow = ts_xmalloc((size_t)(log->n_req ? log->n_req : 1) * 2 * sizeof *idrow);
    for (int64_t i = 0; i < log->n_req; i++) idrow[2 * i] = log->req[i].id, idrow[2 * i + 1] = i;
    qsort(idrow, (size_t)log->n_req, 2 * sizeof *idrow, ts_i64_cmp);
    /* Sorted batch ids: a batch's size is the number of rows sharing it. */
    int64_t *batch_ids = ts_xmalloc((size_t)(n_seg ? n_seg : 1) * sizeof *batch_ids), n_batch = 0;
    for (int64_t s = 0; s < n_seg; s++)
        if (log->seg[s].batch_id >= 0) batch_ids[n_batch++] = log->seg[s].batch_id;
    qsort(batch_ids, (size_t)n_batch, sizeof *batch_ids, ts_i64_cmp);

    for (int64_t s = 0; s < n_seg; s++) {
        const TsSegment *g = &log->seg[s];
        int64_t lo = 0, hi = log->n_req - 1, row = -1;
        while (lo <= hi) {
            int64_t mid = (lo + hi) / 2;
            if (idrow[2 * mid] == g->request_id) { row = idrow[2 * mid + 1]; break; }
            if (idrow[2 * mid] < g->request_id) lo = mid + 1; else hi = mid - 1;
        }
        if (row < 0) { rc = ts_err(err, TS_ERR_INTERNAL, "segment %lld: unknown request %lld", (long long)s, (long long)g->request_id); goto done; }
        if (g->n_steps < 1 || g->degree < 1 || !(g->end >= g->start) || g->gpu_offset < 0 ||
            g->gpu_offset + g->degree > log->n_seg_gpus) {
            rc = ts_err(err, TS_ERR_INTERNAL, "segment %lld (request %lld): malformed row", (long long)s, (long long)g->request_id);
            goto done;
        }
        keys[s] = (TsSegKey){row, g->step_begin, s};
        const int32_t *gp = log->seg_gpus + g->gpu_offset;
        for (int32_t a = 0; a < g->degree; a++) {
            if (gp[a] < 0 || gp[a] >= n_gpus) { rc = ts_err(err, TS_ERR_INTERNAL, "segment %lld: GPU %d out of range", (long long)s, gp[a]); goto done; }
            for (int32_t b = 0; b < a; b++)
                if (gp[b] == gp[a]) { rc = ts_err(err, TS_ERR_INTERNAL, "segment %lld: GPU %d twice", (long long)s, gp[a]); goto done; }
            TS_GROW(use, cap_use, n_use + 1);
            use[n_use++] = (TsGpuUse){gp[a], g->start, g->end, s, g->batch_id};
        }
        if (cm) {
            int batch = ts_batch_size(batch_ids, n_batch, g->batch_id);
            double step = ts_cost_step_at(cm, res_of[row], g->degree, batch);
            if (!(step > 0)) { rc = ts_err(err, TS_ERR_INTERNAL, "segment %lld: no step time for degree %d batch %d", (long long)s, g->degree, batch); goto done; }
            double want = (double)g->n_steps * step;
            double with_oh = want + cm->overhead_s;
            double got = g->end - g->start;
            int last = g->step_begin + g->n_steps == log->req[row].steps;
            /* A batch pays the overhead when any member finishes. */
            if (fabs(got - want) > 1e-9 * (1 + want) && !((last || g->batch_id >= 0) && fabs(got - with_oh) <= 1e-9 * (1 + with_oh))) {
                rc = ts_err(err, TS_ERR_INTERNAL, "segment %lld (request %lld): lasts %.9f s, cost model says %.9f s", (long long)s, (long long)g->request_id, got, want);
                goto done;
            }
        }
    }
    /* Steps once and in order, not before arrival, finish consistent. */
    qsort(keys, (size_t)n_seg, sizeof *keys, ts_segkey_cmp);
    int64_t k = 0;
    for (int64_t i = 0; i < log->n_req; i++) {
        const TsRequestRec *r = &log->req[i];
        int32_t next = 0;
        double prev_end = r->arrival, first = NAN;
        for (; k < n_seg && keys[k].row == i; k++) {
            const TsSegment *g = &log->seg[keys[k].seg];
            if (g->step_begin != next) { rc = ts_err(err, TS_ERR_INTERNAL, "request %lld: segment starts at step %d, expected %d", (long long)r->id, g->step_begin, next); goto done; }
            if (g->start < prev_end - 1e-12) { rc = ts_err(err, TS_ERR_INTERNAL, "request %lld: step %d starts at %.9f before %.9f (arrival or previous end)", (long long)r->id, next, g->start, prev_end); goto done; }
            if (isnan(first)) first = g->start;
            next += g->n_steps;
            prev_end = g->end;
        }
        if (next > r->steps) { rc = ts_err(err, TS_ERR_INTERNAL, "request %lld: %d steps run, it has %d", (long long)r->id, next, r->steps); goto done; }
        int finished = next == r->steps;
        if (finished != (r->status == TS_STATUS_FINISHED) || finished == isnan(r->finish) ||
            (finished && r->finish != prev_end)) {
            rc = ts_err(err, TS_ERR_INTERNAL, "request %lld: status %d / finish %.9f inconsistent with its segments (%d of %d steps, last end %.9f)", (long long)r->id, r->status, r->finish, next, r->steps, prev_end);
            goto done;
        }
        if (r->met != (finished && r->finish <= r->deadline)) { rc = ts_err(err, TS_ERR_INTERNAL, "request %lld: met = %d but finish %.9f, deadline %.9f", (long long)r->id, r->met, r->finish, r->deadline); goto done; }
        if (!(isnan(first) ? isnan(r->start) : r->start == first)) { rc = ts_err(err, TS_ERR_INTERNAL, "request %lld: start %.9f is not its first segment's %.9f", (long long)r->id, r->start, first); goto done; }
    }
    /* No GPU in two overlapping segments (batch members share GPUs). */
    qsort(use, (size_t)n_use, sizeof *use, ts_gpu_use_cmp);
    for (int64_t u = 1; u < n_use; u++) {
        const TsGpuUse *a = &use[u - 1], *b = &use[u];
        if (a->gpu != b->gpu) continue;
        if (a->batch_id >= 0 && a->batch_id == b->batch_id) continue;
        if (b->start < a->end - 1e-12) {
            rc = ts_err(err, TS_ERR_INTERNAL, "GPU %d in two segments at once: %lld [%.9f, %.9f] and %lld [%.9f, %.9f]", a->gpu, (long long)log->seg[a->seg].request_id, a->start, a->end, (long long)log->seg[b->seg].request_id, b->start, b->end);
            goto done;
        }
    }
done:
    free(keys);
    free(use);
    free(idrow);
    free(batch_ids);
    return rc;
}
