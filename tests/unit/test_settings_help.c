/* Settings: --help lists every flag with its default; --version. */
#include "settings.h"
#include "base.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  pr_common_config common;
  long long ttl;
  char *broadcast;
  int verbose;
} tcfg;

static const pr_setting table[] = {
    PR_SETTINGS_COMMON(tcfg, common),
    {"heartbeat-ttl-ms", PR_SET_INT, "60000", 1000, 3600000, NULL, NULL, offsetof(tcfg, ttl),
     "how long an HTTP device lives"},
    {"broadcast", PR_SET_ENUM, "changes", 0, 0, "changes|heartbeats", NULL,
     offsetof(tcfg, broadcast), "what is fanned out"},
    {"verbose", PR_SET_BOOL, "false", 0, 0, NULL, NULL, offsetof(tcfg, verbose), "say more"},
};

static const pr_settings_info info = {"presence-test", "a test program", "presence-test [options]",
                                      "9.9.9", 0};

/* Runs pr_settings_load with stdout sent to a temp file; returns what it printed. */
static char *run_capturing(char *flag, int *rc) {
  char path[] = "/tmp/pr_help_XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  fflush(stdout);
  int saved = dup(1);
  dup2(fd, 1);
  tcfg cfg = {0};
  char err[256] = "";
  int argi = 0;
  char *argv[] = {"presence-test", flag, NULL};
  *rc = pr_settings_load(table, PR_ARRAY_LEN(table), &cfg, 2, argv, &info, &argi, err, sizeof(err));
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  off_t size = lseek(fd, 0, SEEK_END);
  char *out = pr_calloc(1, (size_t)size + 1);
  cr_assert_eq(pread(fd, out, (size_t)size, 0), size);
  close(fd);
  unlink(path);
  cr_assert_null(cfg.common.redis, "cfg is freed after --help");
  return out;
}

Test(help, lists_every_flag_with_default) {
  int rc;
  char *out = run_capturing("--help", &rc);
  cr_assert_eq(rc, 1);
  static const char *expect[] = {
      "presence-test 9.9.9: a test program",
      "Usage: presence-test [options]",
      "--config FILE",
      "--redis STRING",
      "(default: 127.0.0.1:6379; env PRESENCE_REDIS)",
      "--log-level debug|info|warn|error|off",
      "(default: info; env PRESENCE_LOG_LEVEL)",
      "--partitions N",
      "(default: 1024; range 1..16384)",
      "--jwt-secret STRING",
      "(default: none; env PRESENCE_JWT_SECRET)",
      "--jwt-public-key STRING",
      "--heartbeat-ttl-ms N",
      "how long an HTTP device lives (default: 60000; range 1000..3600000)",
      "--broadcast changes|heartbeats",
      "what is fanned out (default: changes)",
      "--verbose[=BOOL]",
      "say more (default: false)",
      "--help",
      "--version",
  };
  for (size_t i = 0; i < PR_ARRAY_LEN(expect); i++)
    cr_expect_not_null(strstr(out, expect[i]), "missing '%s' in:\n%s", expect[i], out);
  /* Every row of the table is listed. */
  for (size_t i = 0; i < PR_ARRAY_LEN(table); i++) {
    char flag[80];
    snprintf(flag, sizeof(flag), "  --%s", table[i].name);
    cr_expect_not_null(strstr(out, flag), "flag %s missing", table[i].name);
  }
  pr_free(out);
}

Test(help, same_text_as_pr_settings_help) {
  int rc;
  char *out = run_capturing("--help", &rc);
  pr_buf b = PR_BUF_INIT;
  pr_settings_help(table, PR_ARRAY_LEN(table), &info, &b);
  cr_assert_str_eq(out, b.data);
  pr_buf_free(&b);
  pr_free(out);
}

Test(help, version) {
  int rc;
  char *out = run_capturing("--version", &rc);
  cr_assert_eq(rc, 1);
  cr_assert_str_eq(out, "presence-test 9.9.9\n");
  pr_free(out);
}
