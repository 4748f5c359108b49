/* ts_event.h - the discrete-event core: a priority queue of events ordered by
 * (time, priority, insertion order), so that events at the same instant are
 * handled in a fixed, documented order whatever the heap's shape, and a
 * clock that only moves forward (as in the cimba simulation library). */
#ifndef TS_EVENT_H
#define TS_EVENT_H

#include <stdint.h>

typedef struct TsEvent {
    double time_s;
    int32_t priority; /* lower runs first among events at the same time */
    int32_t kind;     /* caller-defined */
    uint64_t seq;     /* insertion order: the final tie-break */
    int64_t data;     /* caller-defined payload */
} TsEvent;

typedef struct TsEventQueue {
    TsEvent *heap;
    int64_t n, cap;
    uint64_t next_seq;
    double now_s; /* time of the last popped event: never decreases */
} TsEventQueue;

void ts_eq_init(TsEventQueue *q);
void ts_eq_free(TsEventQueue *q);
/* Schedule an event; returns -1 (and schedules nothing) if time_s is before
 * the clock or not finite: the clock never runs backwards. */
int ts_eq_push(TsEventQueue *q, double time_s, int32_t priority, int32_t kind, int64_t data);
/* The next event without removing it (NULL if empty). */
const TsEvent *ts_eq_peek(const TsEventQueue *q);
/* Remove the next event into *ev and advance the clock; 0 if empty. */
int ts_eq_pop(TsEventQueue *q, TsEvent *ev);
/* Strict order used by the queue: <0 if a runs before b. */
int ts_event_cmp(const TsEvent *a, const TsEvent *b);

#endif
