/* mpi_profile.c - the `profile` verb (placeholder until implemented). */
#include <stdio.h>

#include "ts_cmd.h"

int ts_cmd_profile(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "tetriserve profile: not implemented yet\n");
    return 1;
}
