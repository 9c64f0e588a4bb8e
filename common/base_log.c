/* base_log.c: logfmt lines on stderr, one write(2) per line. */
#include "log.h"
#include "base.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pr_log_level min_level = PR_LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

void pr_log_set_level(pr_log_level level) { min_level = level; }

int pr_log_parse_level(const char *name, pr_log_level *out) {
  for (int i = 0; i < (int)PR_ARRAY_LEN(level_names); i++) {
    if (strcmp(name, level_names[i]) == 0) {
      *out = (pr_log_level)i;
      return 0;
    }
  }
  return PR_EINVAL;
}

int pr_log_enabled(pr_log_level level) { return level >= min_level && level < PR_LOG_OFF; }

void pr_log(pr_log_level level, const char *mod, const char *msg, const char *kvfmt, ...) {
  if (!pr_log_enabled(level)) return;
  char line[2048];
  uint64_t now = pr_now_wall_ms();
  time_t secs = (time_t)(now / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  int n = snprintf(line, sizeof line,
                   "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s mod=%s msg=\"%s\"",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   (int)(now % 1000), level_names[level], mod, msg);
  if (n < 0 || n >= (int)sizeof line) n = (int)sizeof line - 2;
  if (kvfmt && *kvfmt) {
    va_list ap;
    va_start(ap, kvfmt);
    line[n++] = ' ';
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, kvfmt, ap);
    va_end(ap);
    if (m > 0) n += (m < (int)sizeof line - n - 1) ? m : (int)sizeof line - n - 2;
  }
  line[n++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, (size_t)n);
  (void)w;
}
