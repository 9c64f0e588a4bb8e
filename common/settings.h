/* settings.h: one table of settings per binary drives the libconfig file, the
 * long flags, --help and validation (flags override the file).
 *
 * Ownership: pr_settings_load stores allocated copies of string and enum
 * values in the caller's struct; pr_settings_free(table, n, cfg) frees them
 * (and sets them to NULL). Not thread-safe (getopt_long has global state):
 * call it from main before starting threads. */
#ifndef PR_SETTINGS_H
#define PR_SETTINGS_H

#include "buf.h"

#include <stddef.h>

typedef enum {
  PR_SET_STRING, /* char * in the struct; def may be NULL (unset) */
  PR_SET_INT,    /* long long in the struct; checked against [min, max] */
  PR_SET_BOOL,   /* int in the struct (0/1); def "true" or "false" */
  PR_SET_ENUM,   /* char * in the struct, one of `choices` ("a|b|c") */
} pr_setting_type;

typedef struct {
  const char *name; /* flag and file key, e.g. "heartbeat-ttl-ms" */
  pr_setting_type type;
  const char *def;     /* default as text ("1024", "true", "changes") or NULL */
  long long min, max;  /* PR_SET_INT range, inclusive; min == max == 0: unbounded */
  const char *choices; /* PR_SET_ENUM: "changes|heartbeats" */
  const char *env;     /* optional environment fallback, e.g. "PRESENCE_JWT_SECRET" */
  size_t offset;       /* offsetof(field) in the caller's config struct */
  const char *help;    /* one line for --help */
} pr_setting;

typedef struct {
  const char *program;     /* "presence-send" */
  const char *description; /* one line: what the program does */
  const char *usage;       /* "presence-send [options]" */
  const char *version;     /* PR_VERSION */
  /* 0: options and positionals may be mixed (GNU order; argv is permuted so
   *    that the positionals come last, from *argi on).
   * 1: options end at the first positional. For a command with subcommands
   *    (presencectl): load the global table with stop_at_positional = 1, read
   *    the subcommand at argv[*argi], then call pr_settings_load again with the
   *    subcommand's table on (argc - *argi, argv + *argi): argv[0] is then the
   *    subcommand name and its options may follow it. */
  int stop_at_positional;
} pr_settings_info;

/* Loads cfg (which should start zeroed) in this order: defaults, environment
 * (for rows with `env`; an empty variable counts as unset), --config FILE
 * (libconfig; every key must be a known setting of the right type), then
 * flags. Flags: --name=value or --name value; bools --name, --name=true,
 * --name=false (also yes/no, on/off, 1/0); unambiguous prefixes of a name are
 * accepted (getopt_long). Every value is validated where it is read, so the
 * error names its source:
 *   "config.cfg:3: heartbeat-ttl-ms: must be between 1000 and 3600000"
 *   "--partitions: not a number: 'x'"
 *   "PRESENCE_LOG_LEVEL (environment, for log-level): must be one of ..."
 * Also handles --help (every flag with its type or choices, default, env
 * variable and help) and --version, printed to stdout.
 * Returns 0 (*argi = index of the first positional argument, argc if none),
 * 1 when --help or --version was printed (main then exits 0), or PR_ECONFIG
 * with a message in err. When it returns non-zero the cfg strings are already
 * freed (calling pr_settings_free again is harmless). */
int pr_settings_load(const pr_setting *table, size_t n, void *cfg, int argc, char **argv,
                     const pr_settings_info *info, int *argi, char *err, size_t errlen);

/* Frees the string/enum values in cfg and sets them to NULL. */
void pr_settings_free(const pr_setting *table, size_t n, void *cfg);

/* Appends the --help text that pr_settings_load prints to `out`. */
void pr_settings_help(const pr_setting *table, size_t n, const pr_settings_info *info, pr_buf *out);

/* ---- Settings every service shares ----
 * Put a pr_common_config in your config struct and the rows in your table:
 *
 *   typedef struct { pr_common_config common; long long port; } send_config;
 *   static const pr_setting table[] = {
 *     PR_SETTINGS_COMMON(send_config, common),
 *     {"port", PR_SET_INT, "8080", 1, 65535, NULL, NULL, offsetof(send_config, port), "..."},
 *   };
 */
typedef struct {
  char *redis;          /* "host:port" */
  char *log_level;      /* debug|info|warn|error|off */
  long long partitions; /* P in crc16(user) mod P; the same on every service */
  char *jwt_secret;     /* HS256 secret or NULL */
  char *jwt_public_key; /* path of an RSA/EC public key PEM or NULL */
} pr_common_config;

/* clang-format off */
#define PR_SETTINGS_COMMON(type, member)                                                      \
  {"redis", PR_SET_STRING, "127.0.0.1:6379", 0, 0, NULL, "PRESENCE_REDIS",                   \
   offsetof(type, member.redis), "Redis address host:port"},                                 \
  {"log-level", PR_SET_ENUM, "info", 0, 0, "debug|info|warn|error|off", "PRESENCE_LOG_LEVEL", \
   offsetof(type, member.log_level), "minimum level of log lines"},                          \
  {"partitions", PR_SET_INT, "1024", 1, 16384, NULL, NULL,                                   \
   offsetof(type, member.partitions), "number of partitions, the same on every service"},    \
  {"jwt-secret", PR_SET_STRING, NULL, 0, 0, NULL, "PRESENCE_JWT_SECRET",                     \
   offsetof(type, member.jwt_secret), "HS256 secret for client tokens"},                     \
  {"jwt-public-key", PR_SET_STRING, NULL, 0, 0, NULL, "PRESENCE_JWT_PUBLIC_KEY",             \
   offsetof(type, member.jwt_public_key),                                                    \
   "RSA (RS256) or EC P-256 (ES256) public key PEM file for client tokens"}
/* clang-format on */

#endif
