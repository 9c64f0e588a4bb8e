/* log.h: leveled logfmt lines on stderr.
 *
 *   pr_log_info("http", "listening", "addr=%s port=%d", host, port);
 *   -> ts=2026-11-29T17:00:00.123Z level=info mod=http msg="listening" addr=... port=...
 *
 * The key=value part is a printf format; values with spaces must be quoted by
 * the caller (%s inside "..."), or passed through pr_log_quote(). */
#ifndef PR_LOG_H
#define PR_LOG_H

#include <stdarg.h>

typedef enum { PR_LOG_DEBUG = 0, PR_LOG_INFO, PR_LOG_WARN, PR_LOG_ERROR, PR_LOG_OFF } pr_log_level;

/* Sets the minimum level printed (default info). */
void pr_log_set_level(pr_log_level level);
/* Parses "debug|info|warn|error|off"; returns 0 or PR_EINVAL. */
int pr_log_parse_level(const char *name, pr_log_level *out);
int pr_log_enabled(pr_log_level level);

void pr_log(pr_log_level level, const char *mod, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 4, 5)));

#define pr_log_debug(mod, msg, ...) pr_log(PR_LOG_DEBUG, mod, msg, __VA_ARGS__)
#define pr_log_info(mod, msg, ...)  pr_log(PR_LOG_INFO, mod, msg, __VA_ARGS__)
#define pr_log_warn(mod, msg, ...)  pr_log(PR_LOG_WARN, mod, msg, __VA_ARGS__)
#define pr_log_error(mod, msg, ...) pr_log(PR_LOG_ERROR, mod, msg, __VA_ARGS__)

#endif
