/* cmd_presence.c: `presencectl presence U...` prints each user's presence as
 * the store holds it (an operator's view: no permission filter). */
#include "ctl.h"

#include "base.h"
#include "ids.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct {
  int json;
} presence_opts;

static const pr_setting table[] = {
    {"json", PR_SET_BOOL, "false", 0, 0, NULL, NULL, offsetof(presence_opts, json),
     "print one JSON object per user instead of a table"},
};

static const pr_settings_info info = {
    .program = "presencectl presence",
    .description = "Print the presence of users",
    .usage = "presencectl presence [--json] USER...",
    .version = PR_VERSION,
};

static presence_opts opts;

static void on_read(const pr_presence *u, size_t n, int err, void *arg) {
  ctl *c = arg;
  c->pending--;
  if (err) {
    c->failed = 1;
    fprintf(stderr, "presencectl presence: %s\n", pr_strerror(err));
    return;
  }
  if (!opts.json) printf("%-24s %-9s %-8s %s\n", "USER", "STATUS", "VERSION", "LAST SEEN (UTC)");
  for (size_t i = 0; i < n; i++) {
    char seen[32] = "-";
    if (u[i].last_seen) {
      time_t t = (time_t)(u[i].last_seen / 1000);
      struct tm tm;
      gmtime_r(&t, &tm);
      strftime(seen, sizeof seen, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    if (opts.json) {
      printf("{\"user\":\"%s\",\"status\":\"%s\",\"last_seen\":", u[i].user, u[i].status);
      if (u[i].last_seen)
        printf("%llu", (unsigned long long)u[i].last_seen);
      else
        printf("null");
      printf(",\"version\":%llu}\n", (unsigned long long)u[i].version);
    } else {
      printf("%-24s %-9s %-8llu %s\n", u[i].user, u[i].status, (unsigned long long)u[i].version,
             seen);
    }
  }
}

int ctl_cmd_presence(ctl *c, int argc, char **argv) {
  char err[256];
  int argi;
  int rc = pr_settings_load(table, PR_ARRAY_LEN(table), &opts, argc, argv, &info, &argi, err,
                            sizeof err);
  if (rc == 1) return 0;
  if (rc != 0) {
    fprintf(stderr, "presencectl presence: %s\n", err);
    return 2;
  }
  int n = argc - argi;
  if (n < 1) {
    fprintf(stderr, "usage: %s\n", info.usage);
    return 2;
  }
  for (int i = argi; i < argc; i++) {
    if (!pr_id_is_valid(argv[i], strlen(argv[i]))) {
      fprintf(stderr, "presencectl presence: bad user id '%s'\n", argv[i]);
      return 2;
    }
  }
  if (ctl_connect(c)) return 1;
  c->pending++;
  if (pr_store_read(c->store, NULL, (const char **)(argv + argi), (size_t)n, on_read, c) != 0) {
    fprintf(stderr, "presencectl presence: Redis unavailable\n");
    return 1;
  }
  return ctl_wait(c);
}
