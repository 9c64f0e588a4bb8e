/* main.c: presencectl, the operator's tool: tokens, graph edits and imports,
 * presence queries. Global options come before the subcommand, the
 * subcommand's own after it. */
#include "ctl.h"

#include "base.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

static const pr_setting table[] = {
    PR_SETTINGS_COMMON(ctl_config, common),
    {"small-group-max", PR_SET_INT, "100", 2, 100000, NULL, NULL,
     offsetof(ctl_config, small_group_max), "as on the services (who watches whom)"},
    {"timeout-ms", PR_SET_INT, "10000", 100, 600000, NULL, NULL, offsetof(ctl_config, timeout_ms),
     "give up when Redis has not answered within this time"},
};

static const pr_settings_info info = {
    .program = "presencectl",
    .description = "Presence operator tool: tokens, graph, presence queries",
    .usage = "presencectl [global options] COMMAND [command options]\n"
             "\n"
             "Commands:\n"
             "  token --user U [--admin] [--ttl S]      mint an HS256 token (needs --jwt-secret)\n"
             "  graph contact add|remove U C            U shares presence with C (C may watch U)\n"
             "  graph member add|remove G U             add or remove U in group G\n"
             "  graph members G                         list the members of G\n"
             "  graph import FILE                       apply lines 'contact U C' / 'member G U'\n"
             "                                          ('-' reads stdin; '#' starts a comment)\n"
             "  presence U...                           print the presence of users (as an admin)\n"
             "  plan --users U [...]                    capacity plan from bench/results\n"
             "Run 'presencectl COMMAND --help' for a command's options.",
    .version = PR_VERSION,
    .stop_at_positional = 1,
};

static void on_redis_state(pr_redis *r, int ready, void *arg) {}

int ctl_connect(ctl *c) {
  uv_loop_init(&c->loop);
  pr_redis_opts ro = {.addr = c->cfg.common.redis,
                      .cmd_timeout_ms = (int)c->cfg.timeout_ms,
                      .connect_timeout_ms = 2000,
                      .name = "presencectl"};
  if (pr_redis_new(&c->loop, &ro, &c->redis) != 0) {
    fprintf(stderr, "presencectl: --redis: bad address '%s'\n", c->cfg.common.redis);
    return 1;
  }
  pr_redis_on_state(c->redis, on_redis_state, c);
  uint64_t deadline = pr_now_mono_ms() + (uint64_t)c->cfg.timeout_ms;
  while (!pr_redis_is_ready(c->redis) && pr_now_mono_ms() < deadline)
    uv_run(&c->loop, UV_RUN_ONCE);
  if (!pr_redis_is_ready(c->redis)) {
    fprintf(stderr, "presencectl: cannot reach Redis at %s\n", c->cfg.common.redis);
    return 1;
  }
  pr_store_opts so = {.partitions = (unsigned)c->cfg.common.partitions,
                      .small_group_max = (unsigned)c->cfg.small_group_max};
  return pr_store_new(c->redis, &so, &c->store) == 0 ? 0 : 1;
}

int ctl_wait(ctl *c) {
  while (c->pending > 0)
    uv_run(&c->loop, UV_RUN_ONCE);
  return c->failed ? 1 : 0;
}

void ctl_close(ctl *c) {
  if (!c->redis) return;
  pr_redis_free(c->redis);
  uv_run(&c->loop, UV_RUN_DEFAULT);
  if (c->store) pr_store_free(c->store);
  uv_loop_close(&c->loop);
}

int main(int argc, char **argv) {
  static ctl c;
  char err[512];
  int argi = 0, status = 2;
  int rc = pr_settings_load(table, PR_ARRAY_LEN(table), &c.cfg, argc, argv, &info, &argi, err,
                            sizeof err);
  if (rc == 1) return 0;
  if (rc != 0) {
    fprintf(stderr, "presencectl: %s\n", err);
    return 2;
  }
  pr_log_set_level(PR_LOG_WARN);
  if (argi >= argc) {
    fprintf(stderr, "presencectl: no command given (see presencectl --help)\n");
    goto done;
  }
  const char *cmd = argv[argi];
  int sub_argc = argc - argi;
  char **sub_argv = argv + argi;
  if (strcmp(cmd, "token") == 0)
    status = ctl_cmd_token(&c, sub_argc, sub_argv);
  else if (strcmp(cmd, "graph") == 0)
    status = ctl_cmd_graph(&c, sub_argc, sub_argv);
  else if (strcmp(cmd, "presence") == 0)
    status = ctl_cmd_presence(&c, sub_argc, sub_argv);
  else if (strcmp(cmd, "plan") == 0)
    status = ctl_cmd_plan(&c, sub_argc, sub_argv);
  else
    fprintf(stderr, "presencectl: unknown command '%s' (see presencectl --help)\n", cmd);
done:
  ctl_close(&c);
  pr_settings_free(table, PR_ARRAY_LEN(table), &c.cfg);
  return status;
}
