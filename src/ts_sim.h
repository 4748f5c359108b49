/* ts_sim.h - the dry run: a policy driven by the discrete-event core on the
 * profiled cost model. No MPI, CUDA or NCCL.
 *
 * Event order at one instant (the tie-break after time): launch ends first
 * (they free GPUs), then arrivals (in trace order), then policy wake-ups;
 * then the policy decides once, seeing the state after all of them. */
#ifndef TS_SIM_H
#define TS_SIM_H

#include "ts_engine.h"
#include "ts_event.h"

enum { TS_EV_END = 0, TS_EV_ARRIVAL = 1, TS_EV_WAKE = 2 }; /* also the priorities */

typedef struct TsSim {
    TsState st;
    TsEventQueue q;
    const TsPolicyOps *ops;
    void *policy;
    TsPlan plan;
    double wake_s;       /* earliest pending wake-up (INFINITY: none) */
    int64_t n_decisions;
    int64_t n_events;
    double decide_s;     /* wall time spent in decide() */
} TsSim;

/* Validate and set up (policy checks included): all input errors surface
 * here, before any work. */
TsStatus ts_sim_init(TsSim *s, const TsTrace *t, const TsCostModel *cm, const int *res_of,
                     const TsEngineConfig *ecfg, const TsPolicyOps *ops,
                     const TsPolicyConfig *pcfg, TsRunLog *log, TsErr *err);
/* Run to the end of the trace. On error the log holds everything up to it. */
TsStatus ts_sim_run(TsSim *s, TsErr *err);
void ts_sim_free(TsSim *s);

#endif
