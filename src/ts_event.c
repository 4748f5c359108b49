/* ts_event.c - binary min-heap of events, see ts_event.h. */
#include "ts_event.h"

#include <math.h>
#include <stdlib.h>

#include "ts_util.h"

void ts_eq_init(TsEventQueue *q) {
    q->heap = NULL;
    q->n = q->cap = 0;
    q->next_seq = 0;
    q->now_s = 0.0;
}

void ts_eq_free(TsEventQueue *q) {
    free(q->heap);
    ts_eq_init(q);
}

int ts_event_cmp(const TsEvent *a, const TsEvent *b) {
    if (a->time_s != b->time_s) return a->time_s < b->time_s ? -1 : 1;
    if (a->priority != b->priority) return a->priority < b->priority ? -1 : 1;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

int ts_eq_push(TsEventQueue *q, double time_s, int32_t priority, int32_t kind, int64_t data) {
    if (!isfinite(time_s) || time_s < q->now_s) return -1;
    TS_GROW(q->heap, q->cap, q->n + 1);
    TsEvent ev = {time_s, priority, kind, q->next_seq++, data};
    int64_t i = q->n++;
    while (i > 0) { /* sift up */
        int64_t parent = (i - 1) / 2;
        if (ts_event_cmp(&q->heap[parent], &ev) <= 0) break;
        q->heap[i] = q->heap[parent];
        i = parent;
    }
    q->heap[i] = ev;
    return 0;
}

const TsEvent *ts_eq_peek(const TsEventQueue *q) { return q->n ? &q->heap[0] : NULL; }

int ts_eq_pop(TsEventQueue *q, TsEvent *ev) {
    if (q->n == 0) return 0;
    *ev = q->heap[0];
    q->now_s = ev->time_s;
    TsEvent last = q->heap[--q->n];
    int64_t i = 0;
    for (;;) { /* sift down */
        int64_t c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && ts_event_cmp(&q->heap[c + 1], &q->heap[c]) < 0) c++;
        if (ts_event_cmp(&last, &q->heap[c]) <= 0) break;
        q->heap[i] = q->heap[c];
        i = c;
    }
    if (q->n) q->heap[i] = last;
    return 1;
}
