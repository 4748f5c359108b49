/* ts_policy.c - the table of policies and their shared configuration. */
#include <stdio.h>
#include <string.h>

#include "ts_engine.h"

extern const TsPolicyOps ts_policy_sp1, ts_policy_sp2, ts_policy_sp4, ts_policy_sp8,
    ts_policy_rssp, ts_policy_tetriserve, ts_policy_tetriplus;

/* The first entry is the safe one: fixed degree 1, no rounds, nothing to
 * tune. Order here is the order of tables and --help. */
const TsPolicyOps *const ts_policy_table[] = {
    &ts_policy_sp1, &ts_policy_sp2, &ts_policy_sp4, &ts_policy_sp8, &ts_policy_rssp,
    &ts_policy_tetriserve, &ts_policy_tetriplus, NULL,
};

const TsPolicyOps *ts_policy_find(const char *name) {
    for (int i = 0; ts_policy_table[i]; i++)
        if (strcmp(ts_policy_table[i]->name, name) == 0) return ts_policy_table[i];
    return NULL;
}

void ts_policy_names(char *buf, size_t len) {
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; ts_policy_table[i] && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", ts_policy_table[i]->name);
}

void ts_policy_config_default(TsPolicyConfig *c) {
    memset(c, 0, sizeof *c);
    c->rssp_degrees = NULL;
    c->round_steps = 5;
    c->round_ms = 0;
    c->preserve = 1;
    c->elastic = 1;
    c->batching = 1;
}
