/* ts_sim.c - discrete-event simulation of a policy on the cost model. */
#include "ts_sim.h"

#include <math.h>
#include <string.h>

TsStatus ts_sim_init(TsSim *s, const TsTrace *t, const TsCostModel *cm, const int *res_of,
                     const TsEngineConfig *ecfg, const TsPolicyOps *ops,
                     const TsPolicyConfig *pcfg, TsRunLog *log, TsErr *err) {
    memset(s, 0, sizeof *s);
    ts_eq_init(&s->q);
    ts_plan_init(&s->plan);
    s->ops = ops;
    s->wake_s = INFINITY;
    TsStatus rc = ts_engine_init(&s->st, t, cm, res_of, ecfg, log, err);
    if (rc) return rc;
    return ops->create(&s->policy, pcfg, &s->st, err);
}

void ts_sim_free(TsSim *s) {
    if (s->policy) s->ops->destroy(s->policy);
    ts_plan_free(&s->plan);
    ts_eq_free(&s->q);
    ts_engine_free(&s->st);
    memset(s, 0, sizeof *s);
}

/* Apply the plan just decided; record the round if it opened one. */
static TsStatus ts_sim_apply(TsSim *s, double decide_us, TsErr *err) {
    TsState *st = &s->st;
    TsPlan *p = &s->plan;
    int64_t n_pending = 0;
    if (p->round >= 0) ts_engine_pending(st, &n_pending);
    for (int64_t k = 0; k < p->n_launch; k++) {
        int64_t slot;
        double end_s;
        TsStatus rc = ts_engine_launch(st, p, k, p->round, &slot, &end_s, err);
        if (rc) {
            ts_err_prefix(err, "policy %s at t=%.6f s", s->ops->name, st->now_s);
            return rc;
        }
        if (ts_eq_push(&s->q, end_s, TS_EV_END, TS_EV_END, slot))
            return ts_err(err, TS_ERR_INTERNAL, "launch end %.6f s is not after now", end_s);
    }
    if (p->round >= 0) {
        TsRoundRec r = {p->round, st->now_s, (int32_t)n_pending, (int32_t)p->n_reqs,
                        st->n_gpus - st->n_free, decide_us};
        ts_log_add_round(st->log, &r);
    }
    if (p->wakeup_s < s->wake_s) {
        if (p->wakeup_s <= st->now_s)
            return ts_err(err, TS_ERR_INTERNAL, "policy %s asked to wake at %.6f s, not after now",
                          s->ops->name, p->wakeup_s);
        ts_eq_push(&s->q, p->wakeup_s, TS_EV_WAKE, TS_EV_WAKE, 0);
        s->wake_s = p->wakeup_s;
    }
    return TS_OK;
}

TsStatus ts_sim_run(TsSim *s, TsErr *err) {
    TsState *st = &s->st;
    int idle_decisions = 0;
    for (;;) {
        /* The next instant: the earlier of the queue head and the next
         * arrival (arrivals come from the sorted trace, not the heap). */
        const TsEvent *top = ts_eq_peek(&s->q);
        int have_arrival = st->n_arrived < st->n_req;
        double t_arr = have_arrival ? st->req[st->n_arrived].arrival_s : INFINITY;
        if (!top && !have_arrival) break;
        double now = top && top->time_s <= t_arr ? top->time_s : t_arr;
        if (now < st->now_s)
            return ts_err(err, TS_ERR_INTERNAL, "clock would run backwards (%.9f < %.9f)", now,
                          st->now_s);
        st->now_s = now;
        int progressed = 0;
        /* Drain everything at this instant in (priority, insertion) order. */
        for (;;) {
            top = ts_eq_peek(&s->q);
            int arr_now = st->n_arrived < st->n_req && st->req[st->n_arrived].arrival_s == now;
            if (top && top->time_s == now && (top->priority < TS_EV_ARRIVAL || !arr_now)) {
                TsEvent ev;
                ts_eq_pop(&s->q, &ev);
                s->n_events++;
                if (ev.kind == TS_EV_END) {
                    TsStatus rc = ts_engine_complete(st, ev.data, ev.time_s, err);
                    if (rc) return rc;
                    progressed = 1;
                } else if (ev.time_s >= s->wake_s) {
                    s->wake_s = INFINITY; /* the wake-up being served */
                }
            } else if (arr_now) {
                ts_engine_arrive(st);
                s->n_events++;
                progressed = 1;
            } else {
                break;
            }
        }
        ts_plan_clear(&s->plan);
        double t0 = ts_wall_s();
        TsStatus rc = s->ops->decide(s->policy, st, &s->plan, err);
        double decide_s = ts_wall_s() - t0;
        s->decide_s += decide_s;
        s->n_decisions++;
        if (rc) {
            ts_err_prefix(err, "policy %s at t=%.6f s", s->ops->name, st->now_s);
            return rc;
        }
        if ((rc = ts_sim_apply(s, decide_s * 1e6, err))) return rc;
        if (st->n_done == st->n_req) break;
        /* A policy that starts nothing twice in a row while nothing runs
         * and nothing is left to arrive can never finish: end the run, its
         * unfinished requests keep status 2. */
        if (!progressed && s->plan.n_launch == 0 && st->n_free == st->n_gpus &&
            st->n_arrived == st->n_req) {
            if (++idle_decisions >= 2) break;
        } else {
            idle_decisions = 0;
        }
    }
    ts_engine_close(st);
    return TS_OK;
}
