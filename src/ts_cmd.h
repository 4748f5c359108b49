/* ts_cmd.h - the verbs of the tetriserve binary. Each takes (argc, argv)
 * with argv[0] the verb's name, prints its own errors as one line on stderr
 * and returns the exit status (0 ok, 1 failure, 2 usage error). */
#ifndef TS_CMD_H
#define TS_CMD_H

int ts_cmd_simulate(int argc, char **argv);
int ts_cmd_compare(int argc, char **argv);
int ts_cmd_trace_gen(int argc, char **argv);
int ts_cmd_report(int argc, char **argv);
int ts_cmd_sweep(int argc, char **argv);  /* mpi_sweep.c */
int ts_cmd_export(int argc, char **argv); /* ts_export.c */
int ts_cmd_run(int argc, char **argv);    /* mpi_run.c */
int ts_cmd_profile(int argc, char **argv); /* mpi_profile.c */

/* The `#` header (version, trace, profile) and the summary table that
 * simulate prints; shared with run (ts_cmd_sim.c). */
struct TsTrace;
struct TsProfile;
struct TsSummary;
void ts_cmd_print_header(const char *verb, const struct TsTrace *t, const struct TsProfile *p);
void ts_cmd_print_summary(const struct TsSummary *s);

/* The command line as one string (for results files); static buffer. */
const char *ts_cmd_line(int argc, char **argv, const char *verb);

#endif
