/* ts_check.h - schedule validation: the invariants every run must satisfy,
 * checked on a run log (tests, `simulate --check`, the sweep).
 *
 *  - segments of a request cover steps 0..steps-1 exactly once, in order,
 *    each starting no earlier than the previous one ended and no earlier
 *    than the request's arrival;
 *  - no GPU is in two segments that overlap in time (batched segments,
 *    sharing a batch_id, count as one), GPU ids in range, distinct;
 *  - finish is the end of the last segment; met == (finish <= deadline);
 *    status 0 iff finished;
 *  - with a cost model (simulate mode): end - start == n_steps x T(res,
 *    degree, batch) (+ request overhead for the segment with the last
 *    step) within 1 ns. */
#ifndef TS_CHECK_H
#define TS_CHECK_H

#include "ts_log.h"
#include "ts_profile.h"
#include "ts_util.h"

/* res_of[i]: cost-model resolution of request row i (only with cm). */
TsStatus ts_check_log(const TsRunLog *log, int32_t n_gpus, const TsCostModel *cm,
                      const int *res_of, TsErr *err);

#endif
