/* ts_test.h - shared helpers for the cmocka test programs. */
#ifndef TS_TEST_H
#define TS_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* Path of tests/data/<name> (tests run from the repository top). */
#define TS_TEST_DATA(name) ("tests/data/" name)

/* Write `text` to a fresh temporary file and return its path (static
 * buffer: copy it if you need two at once). */
static inline const char *ts_test_tmpfile(const char *suffix, const char *text) {
    static char path[256];
    static int counter;
    snprintf(path, sizeof path, "%s/ts-test-%d-%d%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid(), counter++, suffix);
    FILE *f = fopen(path, "w");
    if (!f) fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

#endif
