/* mpi_run.c - the `run` verb (placeholder until implemented). */
#include <stdio.h>

#include "ts_cmd.h"

int ts_cmd_run(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "tetriserve run: not implemented yet\n");
    return 1;
}
