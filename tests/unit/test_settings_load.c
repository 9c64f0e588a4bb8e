/* Settings: defaults, environment, file, flags, their order and their errors. */
#include "settings.h"
#include "base.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  pr_common_config common;
  long long ttl;
  char *broadcast;
  int verbose;
  char *name;
} tcfg;

static const pr_setting table[] = {
    PR_SETTINGS_COMMON(tcfg, common),
    {"heartbeat-ttl-ms", PR_SET_INT, "60000", 1000, 3600000, NULL, NULL, offsetof(tcfg, ttl),
     "how long an HTTP device lives"},
    {"broadcast", PR_SET_ENUM, "changes", 0, 0, "changes|heartbeats", NULL,
     offsetof(tcfg, broadcast), "what is fanned out"},
    {"verbose", PR_SET_BOOL, "false", 0, 0, NULL, NULL, offsetof(tcfg, verbose), "say more"},
    {"name", PR_SET_STRING, "node-1", 0, 0, NULL, "PR_TEST_NAME", offsetof(tcfg, name),
     "instance name"},
};

static const pr_settings_info info = {"presence-test", "a test program", "presence-test [options]",
                                      "9.9.9", 0};

static tcfg cfg;
static char err[256];
static int argi;
static char cfg_path[64];

static void clean_env(void) {
  unsetenv("PRESENCE_REDIS");
  unsetenv("PRESENCE_LOG_LEVEL");
  unsetenv("PRESENCE_JWT_SECRET");
  unsetenv("PRESENCE_JWT_PUBLIC_KEY");
  unsetenv("PR_TEST_NAME");
  memset(&cfg, 0, sizeof(cfg));
  err[0] = '\0';
  cfg_path[0] = '\0';
}

static void teardown(void) {
  pr_settings_free(table, PR_ARRAY_LEN(table), &cfg);
  if (cfg_path[0]) unlink(cfg_path);
}

TestSuite(settings, .init = clean_env, .fini = teardown);

/* Writes a config file; its path is in cfg_path. */
static const char *write_cfg(const char *text) {
  snprintf(cfg_path, sizeof(cfg_path), "/tmp/pr_settings_XXXXXX");
  int fd = mkstemp(cfg_path);
  cr_assert(fd >= 0);
  cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return cfg_path;
}

/* load("--a", "b", NULL): argv[0] is the program. */
static char *argv_store[32];
static int load_info(const pr_settings_info *inf, const char *first, ...) {
  int argc = 0;
  argv_store[argc++] = "presence-test";
  va_list ap;
  va_start(ap, first);
  for (const char *a = first; a; a = va_arg(ap, const char *))
    argv_store[argc++] = (char *)a;
  va_end(ap);
  argv_store[argc] = NULL;
  pr_settings_free(table, PR_ARRAY_LEN(table), &cfg); /* from the previous load, if any */
  return pr_settings_load(table, PR_ARRAY_LEN(table), &cfg, argc, argv_store, inf, &argi, err,
                          sizeof(err));
}
#define load(...) load_info(&info, __VA_ARGS__)

Test(settings, defaults) {
  cr_assert_eq(load(NULL), 0, "%s", err);
  cr_assert_str_eq(cfg.common.redis, "127.0.0.1:6379");
  cr_assert_str_eq(cfg.common.log_level, "info");
  cr_assert_eq(cfg.common.partitions, 1024);
  cr_assert_null(cfg.common.jwt_secret);
  cr_assert_null(cfg.common.jwt_public_key);
  cr_assert_eq(cfg.ttl, 60000);
  cr_assert_str_eq(cfg.broadcast, "changes");
  cr_assert_eq(cfg.verbose, 0);
  cr_assert_str_eq(cfg.name, "node-1");
  cr_assert_eq(argi, 1);
}

Test(settings, file_values) {
  write_cfg("# a comment\n"
            "redis = \"10.0.0.1:7000\";\n"
            "heartbeat-ttl-ms = 5000;\n"
            "broadcast = \"heartbeats\";\n"
            "verbose = true;\n"
            "partitions = 16;\n");
  cr_assert_eq(load("--config", cfg_path, NULL), 0, "%s", err);
  cr_assert_str_eq(cfg.common.redis, "10.0.0.1:7000");
  cr_assert_eq(cfg.ttl, 5000);
  cr_assert_str_eq(cfg.broadcast, "heartbeats");
  cr_assert_eq(cfg.verbose, 1);
  cr_assert_eq(cfg.common.partitions, 16);
  cr_assert_str_eq(cfg.name, "node-1", "unset keys keep their default");
}

Test(settings, flags_override_file_in_both_forms) {
  write_cfg("partitions = 16;\nheartbeat-ttl-ms = 5000;\nverbose = true;\n");
  cr_assert_eq(load("--partitions=32", "--config", cfg_path, "--heartbeat-ttl-ms", "7000",
                    "--verbose=false", NULL),
               0, "%s", err);
  cr_assert_eq(cfg.common.partitions, 32, "a flag before --config still wins over the file");
  cr_assert_eq(cfg.ttl, 7000);
  cr_assert_eq(cfg.verbose, 0);
}

Test(settings, later_flag_wins) {
  cr_assert_eq(load("--name", "a", "--name=b", NULL), 0, "%s", err);
  cr_assert_str_eq(cfg.name, "b");
}

Test(settings, unknown_key_names_file_and_line) {
  write_cfg("partitions = 16;\n\nbogus-key = 3;\n");
  cr_assert_eq(load("--config", cfg_path, NULL), PR_ECONFIG);
  char want[256];
  snprintf(want, sizeof(want), "%s:3: unknown setting 'bogus-key'", cfg_path);
  cr_assert_str_eq(err, want);
  cr_assert_null(cfg.common.redis, "strings are freed on error");
}

Test(settings, wrong_type_names_file_and_line) {
  write_cfg("redis = \"x:1\";\npartitions = \"many\";\n");
  cr_assert_eq(load("--config", cfg_path, NULL), PR_ECONFIG);
  char want[256];
  snprintf(want, sizeof(want), "%s:2: partitions: expected an integer, got a string", cfg_path);
  cr_assert_str_eq(err, want);
}

Test(settings, bool_in_file_must_be_bool) {
  write_cfg("verbose = 1;\n");
  cr_assert_eq(load("--config", cfg_path, NULL), PR_ECONFIG);
  char want[256];
  snprintf(want, sizeof(want), "%s:1: verbose: expected a boolean, got an integer", cfg_path);
  cr_assert_str_eq(err, want);
}

Test(settings, out_of_range_in_file) {
  write_cfg("\n\nheartbeat-ttl-ms = 999;\n");
  cr_assert_eq(load("--config", cfg_path, NULL), PR_ECONFIG);
  char want[256];
  snprintf(want, sizeof(want), "%s:3: heartbeat-ttl-ms: must be between 1000 and 3600000",
           cfg_path);
  cr_assert_str_eq(err, want);
}

Test(settings, syntax_error_in_file) {
  write_cfg("partitions = 16;\nredis = ;\n");
  cr_assert_eq(load("--config", cfg_path, NULL), PR_ECONFIG);
  char want[256];
  snprintf(want, sizeof(want), "%s:2: ", cfg_path);
  cr_assert(strncmp(err, want, strlen(want)) == 0, "got: %s", err);
}

Test(settings, missing_file) {
  cr_assert_eq(load("--config", "/nonexistent/presence.cfg", NULL), PR_ECONFIG);
  cr_assert_str_eq(err, "/nonexistent/presence.cfg: cannot read the config file: No such file or "
                        "directory");
}

Test(settings, out_of_range_flag) {
  cr_assert_eq(load("--heartbeat-ttl-ms=999", NULL), PR_ECONFIG);
  cr_assert_str_eq(err, "--heartbeat-ttl-ms: must be between 1000 and 3600000");
  cr_assert_eq(load("--partitions", "16385", NULL), PR_ECONFIG);
  cr_assert_str_eq(err, "--partitions: must be between 1 and 16384");
}

Test(settings, not_a_number) {
  cr_assert_eq(load("--partitions", "x", NULL), PR_ECONFIG);
  cr_assert_str_eq(err, "--partitions: not a number: 'x'");
  cr_assert_eq(load("--partitions=12abc", NULL), PR_ECONFIG);
  cr_assert_str_eq(err, "--partitions: not a number: '12abc'");
  cr_assert_eq(load("--partitions=99999999999999999999999", NULL), PR_ECONFIG);
  cr_assert_str_eq(err, "--partitions: not a number: '99999999999999999999999'");
}

Test(settings, bad_enum) {
  cr_assert_eq(load("--broadcast=all", NULL), PR_ECONFIG);
  cr_assert_str_eq(err, "--broadcast: must be one of changes|heartbeats, not 'all'");
  cr_assert_eq(load("--broadcast=change", NULL), PR_ECONFIG, "a prefix of a choice is not one");
  cr_assert_eq(load("--broadcast=heartbeats", NULL), 0, "%s", err);
  cr_assert_str_eq(cfg.broadcast, "heartbeats");
}

Test(settings, bool_forms) {
  cr_assert_eq(load("--verbose", NULL), 0, "%s", err);
  cr_assert_eq(cfg.verbose, 1);
  cr_assert_eq(load("--verbose=false", NULL), 0, "%s", err);
  cr_assert_eq(cfg.verbose, 0);
  cr_assert_eq(load("--verbose=true", NULL), 0, "%s", err);
  cr_assert_eq(cfg.verbose, 1);
  cr_assert_eq(load("--verbose=no", NULL), 0, "%s", err);
  cr_assert_eq(cfg.verbose, 0);
  cr_assert_eq(load("--verbose=maybe", NULL), PR_ECONFIG);
  cr_assert_str_eq(err, "--verbose: not a boolean (true or false): 'maybe'");
}

Test(settings, bool_value_only_with_equals) {
  /* "--verbose false": false is a positional, as documented. */
  cr_assert_eq(load("--verbose", "false", NULL), 0, "%s", err);
  cr_assert_eq(cfg.verbose, 1);
  cr_assert_eq(argi, 2);
  cr_assert_str_eq(argv_store[argi], "false");
}

Test(settings, env_fallback_and_order) {
  setenv("PRESENCE_REDIS", "envhost:1", 1);
  setenv("PR_TEST_NAME", "from-env", 1);
  cr_assert_eq(load(NULL), 0, "%s", err);
  cr_assert_str_eq(cfg.common.redis, "envhost:1", "env beats the default");
  cr_assert_str_eq(cfg.name, "from-env");

  write_cfg("redis = \"filehost:2\";\n");
  cr_assert_eq(load("--config", cfg_path, NULL), 0, "%s", err);
  cr_assert_str_eq(cfg.common.redis, "filehost:2", "the file beats env");
  cr_assert_str_eq(cfg.name, "from-env");

  cr_assert_eq(load("--config", cfg_path, "--redis=flaghost:3", NULL), 0, "%s", err);
  cr_assert_str_eq(cfg.common.redis, "flaghost:3", "a flag beats both");
}

Test(settings, env_secret) {
  setenv("PRESENCE_JWT_SECRET", "s3cret", 1);
  cr_assert_eq(load(NULL), 0, "%s", err);
  cr_assert_str_eq(cfg.common.jwt_secret, "s3cret");
  setenv("PRESENCE_JWT_SECRET", "", 1);
  cr_assert_eq(load(NULL), 0, "%s", err);
  cr_assert_null(cfg.common.jwt_secret, "an empty variable counts as unset");
}

Test(settings, bad_env_value_names_variable) {
  setenv("PRESENCE_LOG_LEVEL", "loud", 1);
  cr_assert_eq(load(NULL), PR_ECONFIG);
  cr_assert_str_eq(err, "PRESENCE_LOG_LEVEL (environment, for log-level): must be one of "
                        "debug|info|warn|error|off, not 'loud'");
}

Test(settings, unknown_flag_and_missing_value) {
  cr_assert_eq(load("--nope", NULL), PR_ECONFIG);
  cr_assert_str_eq(err, "unknown option '--nope' (see --help)");
  cr_assert_eq(load("--partitions", NULL), PR_ECONFIG);
  cr_assert_str_eq(err, "--partitions: missing value");
  cr_assert_eq(load("--config", NULL), PR_ECONFIG);
  cr_assert_str_eq(err, "--config: missing value");
  cr_assert_eq(load("--help=yes", NULL), PR_ECONFIG);
  cr_assert_str_eq(err, "--help: takes no value");
}

Test(settings, positionals_mixed_with_options) {
  cr_assert_eq(load("a", "--partitions", "8", "b", NULL), 0, "%s", err);
  cr_assert_eq(cfg.common.partitions, 8);
  cr_assert_eq(argi, 3, "argv is permuted: positionals come last");
  cr_assert_str_eq(argv_store[3], "a");
  cr_assert_str_eq(argv_store[4], "b");
}

Test(settings, double_dash_ends_options) {
  cr_assert_eq(load("--partitions=8", "--", "--name", NULL), 0, "%s", err);
  cr_assert_eq(argi, 3);
  cr_assert_str_eq(argv_store[argi], "--name");
  cr_assert_str_eq(cfg.name, "node-1");
}

/* presencectl: global options, a subcommand, then the subcommand's options. */
typedef struct {
  char *user;
  int admin;
} token_cfg;
static const pr_setting token_table[] = {
    {"user", PR_SET_STRING, NULL, 0, 0, NULL, NULL, offsetof(token_cfg, user), "user id"},
    {"admin", PR_SET_BOOL, "false", 0, 0, NULL, NULL, offsetof(token_cfg, admin), "admin role"},
};

Test(settings, subcommand_stops_at_first_positional) {
  pr_settings_info ctl = info;
  ctl.stop_at_positional = 1;
  cr_assert_eq(load_info(&ctl, "--log-level", "debug", "token", "--user", "alice", "--admin", NULL),
               0, "%s", err);
  cr_assert_str_eq(cfg.common.log_level, "debug");
  cr_assert_eq(argi, 3);
  cr_assert_str_eq(argv_store[argi], "token");

  token_cfg t = {0};
  int argc = 7, sub_argi = -1;
  pr_settings_info sub = {"presence-test token", "mint a token", "presence-test token --user U",
                          "9.9.9", 0};
  cr_assert_eq(pr_settings_load(token_table, PR_ARRAY_LEN(token_table), &t, argc - argi,
                                argv_store + argi, &sub, &sub_argi, err, sizeof(err)),
               0, "%s", err);
  cr_assert_str_eq(t.user, "alice");
  cr_assert_eq(t.admin, 1);
  cr_assert_eq(sub_argi, argc - argi, "no positional after the subcommand's options");
  pr_settings_free(token_table, PR_ARRAY_LEN(token_table), &t);
  cr_assert_null(t.user);
}

Test(settings, empty_table_only_positionals) {
  /* A subcommand without options of its own (presencectl graph import FILE). */
  char *argv[] = {"import", "graph.txt", NULL};
  int ai = -1;
  cr_assert_eq(pr_settings_load(NULL, 0, NULL, 2, argv, &info, &ai, err, sizeof(err)), 0, "%s",
               err);
  cr_assert_eq(ai, 1);
  char *bad[] = {"import", "--user=x", NULL};
  cr_assert_eq(pr_settings_load(NULL, 0, NULL, 2, bad, &info, &ai, err, sizeof(err)), PR_ECONFIG);
  cr_assert_str_eq(err, "unknown option '--user=x' (see --help)");
}
