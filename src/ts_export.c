/* ts_export.c - the `export` verb (placeholder until implemented). */
#include <stdio.h>

#include "ts_cmd.h"

int ts_cmd_export(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "tetriserve export: not implemented yet\n");
    return 1;
}
