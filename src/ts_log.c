/* ts_log.c - the in-memory run log and the summary metrics computed from it.
 *
 * Definitions used by ts_summary_compute() (also in the README, "Results"):
 * - a request counts as finished when status == TS_STATUS_FINISHED and its
 *   finish time is a number; it is met when it is finished and `met` is set;
 * - latency = finish - arrival over finished requests; percentiles by linear
 *   interpolation between order statistics (position q * (n - 1) in the
 *   sorted latencies, ts_quantile_sorted(); the same definition as GSL's
 *   gsl_stats_quantile_from_sorted_data and numpy's default percentile);
 * - makespan = the latest segment end (0 with no segments);
 * - gpu_busy_fraction = GPU-seconds inside segments / (n_gpus * makespan),
 *   where the segments of one batch (same batch_id >= 0) ran together on
 *   the same GPUs and are counted once (the largest degree x duration among
 *   them, which for a well-formed batch is every member's). */
#include "ts_log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ts_log_init(TsRunLog *log, int64_t n_req) {
    memset(log, 0, sizeof *log);
    log->n_req = n_req > 0 ? n_req : 0;
    log->req = ts_xcalloc((size_t)log->n_req, sizeof *log->req);
    for (int64_t i = 0; i < log->n_req; i++) {
        log->req[i].start = NAN;
        log->req[i].finish = NAN;
        log->req[i].status = TS_STATUS_UNFINISHED;
    }
}

void ts_log_free(TsRunLog *log) {
    if (!log) return;
    free(log->req);
    free(log->seg);
    free(log->seg_gpus);
    free(log->rounds);
    memset(log, 0, sizeof *log);
}

int64_t ts_log_add_segment(TsRunLog *log, const TsSegment *s, const int32_t *gpus) {
    TS_GROW(log->seg, log->cap_seg, log->n_seg + 1);
    int64_t deg = s->degree > 0 ? s->degree : 0;
    TS_GROW(log->seg_gpus, log->cap_seg_gpus, log->n_seg_gpus + deg);
    TsSegment *d = &log->seg[log->n_seg];
    *d = *s;
    d->gpu_offset = log->n_seg_gpus;
    if (deg > 0) memcpy(log->seg_gpus + log->n_seg_gpus, gpus, (size_t)deg * sizeof *gpus);
    log->n_seg_gpus += deg;
    return log->n_seg++;
}

int64_t ts_log_add_segment_shared(TsRunLog *log, const TsSegment *s, int64_t share) {
    /* Read the offset before growing: log->seg may move. */
    int64_t off = (share >= 0 && share < log->n_seg) ? log->seg[share].gpu_offset : 0;
    TS_GROW(log->seg, log->cap_seg, log->n_seg + 1);
    TsSegment *d = &log->seg[log->n_seg];
    *d = *s;
    d->gpu_offset = off;
    return log->n_seg++;
}

void ts_log_add_round(TsRunLog *log, const TsRoundRec *r) {
    TS_GROW(log->rounds, log->cap_rounds, log->n_rounds + 1);
    log->rounds[log->n_rounds++] = *r;
}

void ts_log_mark_dirty(TsRunLog *log, int64_t i) {
    if (i >= 0 && i < log->seg_dirty_from) log->seg_dirty_from = i;
}

typedef struct TsBatchWork {
    int64_t batch_id;
    double gpu_s;
} TsBatchWork;

static int ts_cmp_batch(const void *a, const void *b) {
    int64_t x = ((const TsBatchWork *)a)->batch_id, y = ((const TsBatchWork *)b)->batch_id;
    return (x > y) - (x < y);
}

static double ts_busy_gpu_s(const TsRunLog *log) {
    double total = 0;
    int64_t n_batched = 0;
    for (int64_t i = 0; i < log->n_seg; i++)
        if (log->seg[i].batch_id >= 0) n_batched++;
    TsBatchWork *bw = ts_xmalloc((size_t)(n_batched ? n_batched : 1) * sizeof *bw);
    int64_t k = 0;
    for (int64_t i = 0; i < log->n_seg; i++) {
        const TsSegment *s = &log->seg[i];
        double w = (double)s->degree * (s->end - s->start);
        if (s->batch_id >= 0)
            bw[k++] = (TsBatchWork){s->batch_id, w};
        else
            total += w;
    }
    qsort(bw, (size_t)n_batched, sizeof *bw, ts_cmp_batch);
    for (int64_t i = 0; i < n_batched;) {
        double w = bw[i].gpu_s;
        int64_t j = i + 1;
        for (; j < n_batched && bw[j].batch_id == bw[i].batch_id; j++)
            if (bw[j].gpu_s > w) w = bw[j].gpu_s;
        total += w;
        i = j;
    }
    free(bw);
    return total;
}

void ts_summary_compute(const TsRunLog *log, int32_t n_gpus, TsSummary *s) {
    memset(s, 0, sizeof *s);
    s->n_requests = log->n_req;
    double *lat = ts_xmalloc((size_t)(log->n_req ? log->n_req : 1) * sizeof *lat);
    double lat_sum = 0;
    int warned = 0;
    for (int64_t i = 0; i < log->n_req; i++) {
        const TsRequestRec *r = &log->req[i];
        int fin = r->status == TS_STATUS_FINISHED && !isnan(r->finish);
        int met = fin && r->met;
        if (fin) {
            lat[s->n_finished++] = r->finish - r->arrival;
            lat_sum += r->finish - r->arrival;
        }
        s->n_met += met;
        int k = 0;
        while (k < s->n_res && (s->res_width[k] != r->width || s->res_height[k] != r->height)) k++;
        if (k == s->n_res) {
            if (s->n_res == TS_SUMMARY_MAX_RES) {
                if (!warned)
                    ts_warn("more than %d resolutions: SAR per resolution lists the first %d only",
                            TS_SUMMARY_MAX_RES, TS_SUMMARY_MAX_RES);
                warned = 1;
                continue;
            }
            s->res_width[k] = r->width;
            s->res_height[k] = r->height;
            s->n_res++;
        }
        s->res_n[k]++;
        s->res_met[k] += met;
    }
    s->sar = s->n_requests ? (double)s->n_met / (double)s->n_requests : 0.0;
    if (s->n_finished) {
        qsort(lat, (size_t)s->n_finished, sizeof *lat, ts_cmp_double);
        s->latency_mean = lat_sum / (double)s->n_finished;
        s->latency_p50 = ts_quantile_sorted(lat, (size_t)s->n_finished, 0.50);
        s->latency_p90 = ts_quantile_sorted(lat, (size_t)s->n_finished, 0.90);
        s->latency_p99 = ts_quantile_sorted(lat, (size_t)s->n_finished, 0.99);
    } else {
        s->latency_mean = s->latency_p50 = s->latency_p90 = s->latency_p99 = NAN;
    }
    free(lat);

    for (int64_t i = 0; i < log->n_seg; i++)
        if (log->seg[i].end > s->makespan) s->makespan = log->seg[i].end;
    s->gpu_busy_fraction =
        (s->makespan > 0 && n_gpus > 0) ? ts_busy_gpu_s(log) / ((double)n_gpus * s->makespan) : 0.0;
}
