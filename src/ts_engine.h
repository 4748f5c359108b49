/* ts_engine.h - the cluster state every policy reads, the plan it returns,
 * and the policy interface.
 *
 * One engine, two drivers: the simulator (ts_sim.c) advances a virtual
 * clock through a discrete-event queue; the live executor advances the wall
 * clock and hears completions from worker ranks. Both call the same
 * ts_engine_* functions, which apply a policy's plan to the state, record
 * segments in the run log, and check every invariant (a GPU is never in two
 * launches, a request never runs twice at once, steps run once and in
 * order). This header never includes MPI, CUDA or NCCL. */
#ifndef TS_ENGINE_H
#define TS_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "ts_log.h"
#include "ts_profile.h"
#include "ts_trace.h"
#include "ts_util.h"

typedef enum TsReqState {
    TS_REQ_FUTURE = 0, /* not arrived yet */
    TS_REQ_READY,      /* arrived, unfinished, not running */
    TS_REQ_RUNNING,    /* in a launch */
    TS_REQ_DONE,       /* all steps run (and overhead paid) */
} TsReqState;

typedef struct TsReq {
    int64_t id;
    int32_t res; /* resolution index in the cost model */
    int32_t steps, steps_done;
    double arrival_s, deadline_s; /* deadline = arrival + slo * slo_scale */
    TsReqState state;
    int64_t last_seg; /* index in the log of its latest segment, -1 if none */
} TsReq;

typedef struct TsState {
    double now_s;
    int32_t n_gpus, gpus_per_node;
    double slo_scale;
    const TsCostModel *cost; /* what policies plan with */
    /* What launches take (simulate --exec-profile: a what-if of a cost
     * model that is off); the same as cost unless set. Same resolutions
     * (built from the same trace); policies never look at it. */
    const TsCostModel *exec;
    TsRunLog *log;
    TsReq *req;        /* [n_req], trace order (arrival_s, id) */
    int64_t n_req;
    int64_t n_arrived; /* req[0 .. n_arrived) have arrived */
    int64_t n_done;
    /* Arrived and not done (READY or RUNNING), in trace order. Compacted
     * lazily: entries may be stale (DONE) until ts_engine_pending() */
    int64_t *pending;
    int64_t n_pending;
    uint64_t *gpu_free; /* bitmap [ceil(n_gpus/64)], bit set = GPU idle */
    int64_t *gpu_slot;  /* running launch slot on each GPU, -1 if idle */
    int32_t n_free;
    /* Running launches (slots). */
    struct TsActive *active;
    int64_t n_active_cap;
    int64_t *free_slots;
    int64_t n_free_slots;
    int64_t next_batch_id;
} TsState;

static inline int ts_gpu_is_free(const TsState *st, int32_t g) {
    return (int)((st->gpu_free[g >> 6] >> (g & 63)) & 1u);
}
/* GPU ids of request i's latest segment (NULL, *degree = 0 if it never ran). */
const int32_t *ts_state_last_gpus(const TsState *st, int64_t i, int32_t *degree);
/* Remaining time lower bound: steps left x fastest step time over degrees. */
double ts_state_min_remaining_s(const TsState *st, int64_t i);

/* ---- The plan: what a policy starts now. ---- */
typedef struct TsLaunch {
    int64_t req_off; /* requests plan->reqs[req_off .. req_off + n_req) */
    int32_t n_req;   /* > 1: a batched launch (same resolution) */
    int32_t n_steps; /* steps each request advances */
    int32_t degree;
    int64_t gpu_off; /* GPU ids plan->gpus[gpu_off .. gpu_off + degree) */
} TsLaunch;

typedef struct TsPlan {
    TsLaunch *launch;
    int64_t n_launch, cap_launch;
    int64_t *reqs;
    int64_t n_reqs, cap_reqs;
    int32_t *gpus;
    int64_t n_gpus, cap_gpus;
    double wakeup_s; /* call decide() again at this time (INFINITY: only on events) */
    int64_t round;   /* >= 0 if this decision opens a round (recorded in /rounds) */
} TsPlan;

void ts_plan_init(TsPlan *p);
void ts_plan_clear(TsPlan *p); /* empty, wakeup INFINITY, round -1 */
void ts_plan_free(TsPlan *p);
void ts_plan_add(TsPlan *p, const int64_t *reqs, int32_t n_req, int32_t n_steps, int32_t degree,
                 const int32_t *gpus);

/* ---- Policies: a table of operations, looked up by name. ---- */
typedef struct TsPolicyConfig {
    const char *rssp_degrees; /* "RES:K,..." or NULL for the profile rule */
    int32_t round_steps;      /* tetriserve: round length in steps (default 5) */
    double round_ms;          /* tetriserve: round length in ms (0: from round_steps) */
    int preserve;             /* placement preservation (default 1) */
    int elastic;              /* work-conserving elastic scale-up (default 1) */
    int batching;             /* selective batching (default 1) */
    const char *choices;      /* tetriserve/tetriplus: NAME=VALUE,... for the choices the paper
                                 leaves open (NULL: the defaults; README "tetriserve") */
} TsPolicyConfig;

void ts_policy_config_default(TsPolicyConfig *c);

typedef struct TsPolicyOps {
    const char *name;
    const char *help; /* one line for --help */
    /* Check the configuration against the cost model (a degree the profile
     * lacks, a degree that does not divide n_gpus, ...) and allocate. */
    TsStatus (*create)(void **self, const TsPolicyConfig *cfg, const TsState *st, TsErr *err);
    /* Called after every batch of same-time events (arrivals, completions,
     * wakeups) with st->now_s set; fills plan with what starts now. */
    TsStatus (*decide)(void *self, const TsState *st, TsPlan *plan, TsErr *err);
    /* Round length in seconds (0 for policies without rounds). */
    double (*round_s)(const void *self);
    /* Every setting as "key=value key=value", for the results file. */
    void (*describe)(const void *self, char *buf, size_t len);
    void (*destroy)(void *self);
} TsPolicyOps;

/* NULL-terminated; the first entry is the safe default (sp1). */
extern const TsPolicyOps *const ts_policy_table[];
const TsPolicyOps *ts_policy_find(const char *name);
/* "sp1, sp2, ..." for messages. */
void ts_policy_names(char *buf, size_t len);

/* ---- Engine operations (shared by simulator and executor). ---- */
typedef struct TsEngineConfig {
    int32_t n_gpus, gpus_per_node;
    double slo_scale;
    const TsCostModel *exec; /* NULL: launches take the planning cost model's times */
} TsEngineConfig;

TsStatus ts_engine_init(TsState *st, const TsTrace *t, const TsCostModel *cm, const int *res_of,
                        const TsEngineConfig *cfg, TsRunLog *log, TsErr *err);
void ts_engine_free(TsState *st);
/* Admit req[n_arrived] (its arrival time must be <= now). */
void ts_engine_arrive(TsState *st);
/* Compact and return the pending list (arrived, not done, trace order). */
const int64_t *ts_engine_pending(TsState *st, int64_t *n);

/* Start launch k of the plan at st->now_s after checking it (GPUs idle and
 * distinct, requests READY, degree in the cost model, steps left, batch
 * allowed). Records segments (merging with a request's previous segment
 * when it continues on the same GPUs without a gap). Sets *slot and the
 * end *end_s = now + n_steps x T (+ overhead if a request finishes), T and
 * the overhead from st->exec (in simulation the end, live the planned end). */
TsStatus ts_engine_launch(TsState *st, const TsPlan *plan, int64_t k, int64_t round,
                          int64_t *slot, double *end_s, TsErr *err);
/* The launch in `slot` ended at end_s (its planned end in simulation, the
 * measured one live): advance steps, finish requests, free GPUs. */
TsStatus ts_engine_complete(TsState *st, int64_t slot, double end_s, TsErr *err);
/* Finalise /requests rows of requests that never finished (status 2). */
void ts_engine_close(TsState *st);

#endif
