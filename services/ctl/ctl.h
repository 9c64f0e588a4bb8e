/* ctl.h: presencectl's subcommands share this: the global settings, and a
 * store connection driven to completion on a private loop.
 *
 * Ownership: main.c owns the ctl struct; subcommands borrow it. */
#ifndef PR_CTL_H
#define PR_CTL_H

#include "settings.h"
#include "store.h"

typedef struct {
  pr_common_config common;
  long long small_group_max;
  long long timeout_ms;
} ctl_config;

typedef struct {
  ctl_config cfg;
  uv_loop_t loop;
  pr_redis *redis;
  pr_store *store;
  int pending; /* store calls under way; ctl_wait runs the loop until 0 */
  int failed;  /* set by a callback that saw an error */
} ctl;

/* Connects to Redis and creates the store; returns 0, or prints why and
 * returns non-zero. */
int ctl_connect(ctl *c);
/* Runs the loop until every pending call has answered or the timeout hit.
 * Returns 0 when all succeeded. */
int ctl_wait(ctl *c);
void ctl_close(ctl *c);

/* Subcommands: argv[0] is the subcommand name. Each returns the exit status. */
int ctl_cmd_token(ctl *c, int argc, char **argv);
int ctl_cmd_graph(ctl *c, int argc, char **argv);
int ctl_cmd_presence(ctl *c, int argc, char **argv);
int ctl_cmd_plan(ctl *c, int argc, char **argv);

#endif
