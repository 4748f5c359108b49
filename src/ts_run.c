/* ts_run.c - control messages and options of the live executor. */
#include "ts_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t ts_dbits(double d) {
    int64_t w;
    memcpy(&w, &d, sizeof w);
    return w;
}

static double ts_bitsd(int64_t w) {
    double d;
    memcpy(&d, &w, sizeof d);
    return d;
}

int ts_run_msg_encode(const TsRunMsg *m, int64_t *buf) {
    int n = 0;
    buf[n++] = m->kind;
    if (m->kind == TS_RUN_MSG_MOVE) {
        buf[n++] = m->index;
        buf[n++] = m->dest;
    } else if (m->kind == TS_RUN_MSG_LAUNCH) {
        buf[n++] = m->seq;
        buf[n++] = m->slot;
        buf[n++] = m->n_steps;
        buf[n++] = m->degree;
        buf[n++] = m->n_req;
        buf[n++] = m->width;
        buf[n++] = m->height;
        buf[n++] = ts_dbits(m->step_s);
        buf[n++] = ts_dbits(m->overhead_s);
        buf[n++] = ts_dbits(m->issue_wall);
        for (int32_t a = 0; a < m->degree; a++) buf[n++] = m->ranks[a];
        for (int32_t j = 0; j < m->n_req; j++) {
            const TsRunReq *r = &m->req[j];
            buf[n++] = r->index;
            buf[n++] = r->id;
            buf[n++] = r->step_begin;
            buf[n++] = r->steps;
            buf[n++] = r->src;
        }
    }
    return n;
}

TsStatus ts_run_msg_decode(const int64_t *buf, int n, TsRunMsg *m, TsErr *err) {
    if (n < 1) return ts_err(err, TS_ERR_INTERNAL, "control message: empty");
    m->kind = (int32_t)buf[0];
    switch (m->kind) {
    case TS_RUN_MSG_STOP: return n == 1 ? TS_OK : ts_err(err, TS_ERR_INTERNAL, "STOP: %d words", n);
    case TS_RUN_MSG_MOVE:
        if (n != 3) return ts_err(err, TS_ERR_INTERNAL, "MOVE: %d words, want 3", n);
        m->index = buf[1];
        m->dest = (int32_t)buf[2];
        return TS_OK;
    case TS_RUN_MSG_LAUNCH: break;
    default: return ts_err(err, TS_ERR_INTERNAL, "control message: unknown kind %lld", (long long)buf[0]);
    }
    if (n < TS_RUN_HDR_WORDS) return ts_err(err, TS_ERR_INTERNAL, "LAUNCH: %d words", n);
    m->seq = buf[1];
    m->slot = buf[2];
    m->n_steps = (int32_t)buf[3];
    m->degree = (int32_t)buf[4];
    m->n_req = (int32_t)buf[5];
    m->width = (int32_t)buf[6];
    m->height = (int32_t)buf[7];
    m->step_s = ts_bitsd(buf[8]);
    m->overhead_s = ts_bitsd(buf[9]);
    m->issue_wall = ts_bitsd(buf[10]);
    if (m->degree < 1 || m->degree > TS_RUN_MAX_DEGREE || m->n_req < 1 || m->n_req > TS_MAX_BATCH ||
        m->n_steps < 1)
        return ts_err(err, TS_ERR_INTERNAL, "LAUNCH %lld: degree %d, %d requests, %d steps",
                      (long long)m->seq, m->degree, m->n_req, m->n_steps);
    if (n != TS_RUN_HDR_WORDS + m->degree + m->n_req * TS_RUN_REQ_WORDS)
        return ts_err(err, TS_ERR_INTERNAL, "LAUNCH %lld: %d words for degree %d and %d requests",
                      (long long)m->seq, n, m->degree, m->n_req);
    const int64_t *p = buf + TS_RUN_HDR_WORDS;
    for (int32_t a = 0; a < m->degree; a++) m->ranks[a] = (int32_t)*p++;
    for (int32_t j = 0; j < m->n_req; j++) {
        TsRunReq *r = &m->req[j];
        r->index = *p++;
        r->id = *p++;
        r->step_begin = (int32_t)*p++;
        r->steps = (int32_t)*p++;
        r->src = (int32_t)*p++;
    }
    return TS_OK;
}

TsStatus ts_run_parse_fault(const char *arg, TsRunFault *f, TsErr *err) {
    char buf[128], *save = NULL;
    snprintf(buf, sizeof buf, "%s", arg);
    char *r = strtok_r(buf, ":", &save), *what = strtok_r(NULL, ":", &save),
         *after = strtok_r(NULL, ":", &save);
    f->rank = -1;
    if (!r || !what || !after || strtok_r(NULL, ":", &save) || ts_parse_int(r, &f->rank) ||
        f->rank < 1 || (strcmp(what, "hang") && strcmp(what, "exit")) ||
        ts_parse_double(after, &f->after_s) || f->after_s < 0) {
        f->rank = -1;
        return ts_err(err, TS_ERR_INPUT,
                      "--fault-inject: '%s' is not RANK:hang|exit:AFTER_S (RANK >= 1)", arg);
    }
    f->exit = !strcmp(what, "exit");
    return TS_OK;
}
