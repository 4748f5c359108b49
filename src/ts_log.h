/* ts_log.h - what a run records: the rows of the results file (SPEC.md) in
 * memory, the run's metadata and its summary. Shared by the simulator, the
 * live executor and the results writer; no MPI, CUDA or HDF5 here. */
#ifndef TS_LOG_H
#define TS_LOG_H

#include <stdint.h>

#include "ts_util.h"

/* Request status codes of /requests.status. */
enum { TS_STATUS_FINISHED = 0, TS_STATUS_REJECTED = 1, TS_STATUS_UNFINISHED = 2 };

typedef struct TsRequestRec { /* one row of /requests */
    int64_t id;
    int32_t width, height, steps;
    double arrival, deadline;
    double start;  /* first step start, NAN if never started */
    double finish; /* NAN if not finished */
    uint8_t met;   /* finish <= deadline */
    int8_t status; /* TS_STATUS_* */
} TsRequestRec;

typedef struct TsSegment { /* one row of /segments */
    int64_t request_id;
    int32_t step_begin; /* 0-based */
    int32_t n_steps;
    int32_t degree;
    int64_t gpu_offset; /* into TsRunLog.seg_gpus */
    double start, end;
    int64_t round;      /* -1 without rounds */
    int64_t batch_id;   /* -1 if not batched */
} TsSegment;

typedef struct TsRoundRec { /* one row of /rounds */
    int64_t round;
    double start;
    int32_t n_pending, n_scheduled, gpus_busy;
    double decide_us;
} TsRoundRec;

typedef struct TsRunLog {
    TsRequestRec *req; /* [n_req], in trace order (arrival_s, id) */
    int64_t n_req;
    TsSegment *seg;
    int64_t n_seg, cap_seg;
    int64_t seg_dirty_from; /* rows >= this changed since the last flush */
    int32_t *seg_gpus;
    int64_t n_seg_gpus, cap_seg_gpus;
    TsRoundRec *rounds;
    int64_t n_rounds, cap_rounds;
} TsRunLog;

void ts_log_init(TsRunLog *log, int64_t n_req);
void ts_log_free(TsRunLog *log);
/* Append a segment whose GPUs are gpus[0..degree); returns its index. */
int64_t ts_log_add_segment(TsRunLog *log, const TsSegment *s, const int32_t *gpus);
/* Append a segment sharing the GPU list of segment `share` (batched). */
int64_t ts_log_add_segment_shared(TsRunLog *log, const TsSegment *s, int64_t share);
void ts_log_add_round(TsRunLog *log, const TsRoundRec *r);
/* Note that segment i was modified in place (e.g. extended by more steps), so
 * that the next ts_results_flush() rewrites it: lowers seg_dirty_from. */
void ts_log_mark_dirty(TsRunLog *log, int64_t i);

/* The run's settings: root attributes of the results file. Strings are
 * borrowed, not owned. */
typedef struct TsRunMeta {
    const char *mode;    /* "simulate" | "run" */
    const char *backend; /* "sim" | "emu" | "cpu" | "cuda" */
    const char *policy;
    const char *policy_options; /* every policy setting, "key=value ..." */
    const char *trace;
    const char *profile;
    const char *exec_profile; /* the step times segments took: simulate --exec-profile,
                                 default the profile; "" live (measured) */
    const char *command_line;
    int32_t n_gpus, gpus_per_node;
    double slo_scale;
    double round_s; /* 0 for policies without rounds */
    uint64_t seed;
} TsRunMeta;

#define TS_SUMMARY_MAX_RES 32
typedef struct TsSummary { /* /summary attributes */
    int64_t n_requests, n_met, n_finished;
    double sar;
    double latency_mean, latency_p50, latency_p90, latency_p99; /* finished only; NAN if none */
    double gpu_busy_fraction; /* GPU-seconds in segments / (n_gpus * makespan) */
    double makespan;          /* last segment end (trace start = 0) */
    /* SAR per resolution, in order of first appearance in the trace. */
    int n_res;
    int32_t res_width[TS_SUMMARY_MAX_RES], res_height[TS_SUMMARY_MAX_RES];
    int64_t res_n[TS_SUMMARY_MAX_RES], res_met[TS_SUMMARY_MAX_RES];
} TsSummary;

void ts_summary_compute(const TsRunLog *log, int32_t n_gpus, TsSummary *s);

#endif
