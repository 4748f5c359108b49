/* ts_results.h - the HDF5 results file (SPEC.md, schema_version 1).
 *
 * The file is created with all root attributes and `complete` = 0 before
 * the run starts, then brought up to date by ts_results_flush() (and
 * finally ts_results_finish()). Each call opens, writes and closes the file,
 * so between calls the file on disk is always a consistent, readable HDF5
 * file: a run that dies leaves everything up to its last flush. */
#ifndef TS_RESULTS_H
#define TS_RESULTS_H

#include "ts_log.h"
#include "ts_util.h"

typedef struct TsResultsFile TsResultsFile;

/* Fails (TS_ERR_IO, naming the path) if the file cannot be created. */
TsStatus ts_results_create(const char *path, const TsRunMeta *meta, TsResultsFile **out,
                           TsErr *err);
/* Write /requests (whole), segment rows from log->seg_dirty_from on, new
 * /segment_gpus and /rounds rows; resets log->seg_dirty_from. */
TsStatus ts_results_flush(TsResultsFile *f, TsRunLog *log, TsErr *err);
/* Flush, write /summary and set `complete`. */
TsStatus ts_results_finish(TsResultsFile *f, TsRunLog *log, const TsSummary *s, int complete,
                           TsErr *err);
void ts_results_close(TsResultsFile *f);

/* A named number for ts_results_put_stats. */
typedef struct TsStat {
    const char *name;
    double value;
} TsStat;
/* Write n float64 attributes into group `group` ("run", created if absent,
 * attributes replaced): what a run measured besides its requests and
 * segments (the live executor: latent moves, control-plane cost). */
TsStatus ts_results_put_stats(TsResultsFile *f, const char *group, const TsStat *v, int n,
                              TsErr *err);

/* Write a whole finished run into a new group `group` (e.g. "/scenarios/17",
 * parents created) of the existing HDF5 file `path`: the results-file
 * layout (attributes, requests, segments, segment_gpus, rounds, summary)
 * inside a group. Used by `sweep --keep-scenarios`. */
TsStatus ts_results_write_group(const char *path, const char *group, const TsRunMeta *meta,
                                const TsRunLog *log, const TsSummary *s, int complete,
                                TsErr *err);

/* The `tetriserve report F.h5` verb. */
int ts_cmd_report(int argc, char **argv);

#endif
