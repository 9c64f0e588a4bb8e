/* settings.c: one table drives defaults, environment, the libconfig file,
 * long flags (getopt_long), --help and validation. */
#include "settings.h"
#include "base.h"

#include <errno.h>
#include <getopt.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* getopt_long return values: table rows are OPT_ROW + index. */
enum { OPT_CONFIG = 2, OPT_HELP, OPT_VERSION, OPT_ROW = 1000 };

static char **str_field(const pr_setting *s, void *cfg) {
  return (char **)((char *)cfg + s->offset);
}
static long long *int_field(const pr_setting *s, void *cfg) {
  return (long long *)((char *)cfg + s->offset);
}
static int *bool_field(const pr_setting *s, void *cfg) { return (int *)((char *)cfg + s->offset); }

static int has_range(const pr_setting *s) { return !(s->min == 0 && s->max == 0); }

/* Is `v` one of the '|'-separated choices? */
static int is_choice(const char *choices, const char *v) {
  size_t vlen = strlen(v);
  const char *p = choices;
  while (p && *p) {
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (len == vlen && memcmp(p, v, len) == 0) return 1;
    p = bar ? bar + 1 : NULL;
  }
  return 0;
}

/* ---- Storing one value, validated; `who` names its source for errors ---- */

static int store_int(const pr_setting *s, void *cfg, long long v, const char *who, char *err,
                     size_t errlen) {
  if (has_range(s) && (v < s->min || v > s->max)) {
    pr_errf(err, errlen, "%s: must be between %lld and %lld", who, s->min, s->max);
    return PR_ECONFIG;
  }
  *int_field(s, cfg) = v;
  return 0;
}

static int store_string(const pr_setting *s, void *cfg, const char *v, const char *who, char *err,
                        size_t errlen) {
  if (s->type == PR_SET_ENUM && !is_choice(s->choices, v)) {
    pr_errf(err, errlen, "%s: must be one of %s, not '%s'", who, s->choices, v);
    return PR_ECONFIG;
  }
  char **f = str_field(s, cfg);
  pr_free(*f);
  *f = pr_strdup(v);
  return 0;
}

static int parse_bool(const char *v, int *out) {
  static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < PR_ARRAY_LEN(yes); i++) {
    if (strcasecmp(v, yes[i]) == 0) return *out = 1, 0;
    if (strcasecmp(v, no[i]) == 0) return *out = 0, 0;
  }
  return PR_EINVAL;
}

/* Stores a value given as text (default, environment, flag). */
static int store_text(const pr_setting *s, void *cfg, const char *v, const char *who, char *err,
                      size_t errlen) {
  switch (s->type) {
  case PR_SET_STRING:
  case PR_SET_ENUM: return store_string(s, cfg, v, who, err, errlen);
  case PR_SET_INT: {
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno == ERANGE) {
      pr_errf(err, errlen, "%s: not a number: '%s'", who, v);
      return PR_ECONFIG;
    }
    return store_int(s, cfg, n, who, err, errlen);
  }
  case PR_SET_BOOL: {
    int b;
    if (parse_bool(v, &b) < 0) {
      pr_errf(err, errlen, "%s: not a boolean (true or false): '%s'", who, v);
      return PR_ECONFIG;
    }
    *bool_field(s, cfg) = b;
    return 0;
  }
  }
  pr_errf(err, errlen, "%s: unknown setting type", who);
  return PR_ECONFIG;
}

/* ---- The config file ---- */

static const char *config_type_name(int type) {
  switch (type) {
  case CONFIG_TYPE_GROUP: return "a group";
  case CONFIG_TYPE_INT:
  case CONFIG_TYPE_INT64: return "an integer";
  case CONFIG_TYPE_FLOAT: return "a float";
  case CONFIG_TYPE_STRING: return "a string";
  case CONFIG_TYPE_BOOL: return "a boolean";
  case CONFIG_TYPE_ARRAY: return "an array";
  case CONFIG_TYPE_LIST: return "a list";
  default: return "nothing";
  }
}

static const pr_setting *find_row(const pr_setting *table, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(table[i].name, name) == 0) return &table[i];
  return NULL;
}

static int load_file(const pr_setting *table, size_t n, void *cfg, const char *path, char *err,
                     size_t errlen) {
  config_t c;
  config_init(&c);
  int rc = PR_ECONFIG;
  if (config_read_file(&c, path) != CONFIG_TRUE) {
    if (config_error_type(&c) == CONFIG_ERR_FILE_IO)
      pr_errf(err, errlen, "%s: cannot read the config file: %s", path, strerror(errno));
    else
      pr_errf(err, errlen, "%s:%d: %s", config_error_file(&c) ? config_error_file(&c) : path,
              config_error_line(&c), config_error_text(&c));
    goto done;
  }
  config_setting_t *root = config_root_setting(&c);
  int count = config_setting_length(root);
  for (int i = 0; i < count; i++) {
    config_setting_t *e = config_setting_get_elem(root, (unsigned)i);
    const char *name = config_setting_name(e);
    const char *file = config_setting_source_file(e) ? config_setting_source_file(e) : path;
    int line = config_setting_source_line(e);
    const pr_setting *s = find_row(table, n, name ? name : "");
    if (!s) {
      pr_errf(err, errlen, "%s:%d: unknown setting '%s'", file, line, name ? name : "");
      goto done;
    }
    char who[512];
    snprintf(who, sizeof(who), "%s:%d: %s", file, line, s->name);
    int type = config_setting_type(e);
    int want_ok = 0;
    const char *want = "";
    switch (s->type) {
    case PR_SET_STRING:
    case PR_SET_ENUM: want_ok = type == CONFIG_TYPE_STRING, want = "a string"; break;
    case PR_SET_INT:
      want_ok = type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64, want = "an integer";
      break;
    case PR_SET_BOOL: want_ok = type == CONFIG_TYPE_BOOL, want = "a boolean"; break;
    }
    if (!want_ok) {
      pr_errf(err, errlen, "%s: expected %s, got %s", who, want, config_type_name(type));
      goto done;
    }
    int r = 0;
    switch (s->type) {
    case PR_SET_STRING:
    case PR_SET_ENUM:
      r = store_string(s, cfg, config_setting_get_string(e), who, err, errlen);
      break;
    case PR_SET_INT: r = store_int(s, cfg, config_setting_get_int64(e), who, err, errlen); break;
    case PR_SET_BOOL: *bool_field(s, cfg) = config_setting_get_bool(e) ? 1 : 0; break;
    }
    if (r < 0) goto done;
  }
  rc = 0;
done:
  config_destroy(&c);
  return rc;
}

/* ---- --help ---- */

static void left_column(const pr_setting *s, pr_buf *b) {
  switch (s->type) {
  case PR_SET_STRING: pr_buf_printf(b, "  --%s STRING", s->name); break;
  case PR_SET_INT: pr_buf_printf(b, "  --%s N", s->name); break;
  case PR_SET_BOOL: pr_buf_printf(b, "  --%s[=BOOL]", s->name); break;
  case PR_SET_ENUM: pr_buf_printf(b, "  --%s %s", s->name, s->choices); break;
  }
}

static void help_line(pr_buf *out, const char *left, size_t width, const char *text) {
  size_t len = strlen(left);
  pr_buf_puts(out, left);
  if (len + 2 > width) {
    pr_buf_putc(out, '\n');
    len = 0;
  }
  pr_buf_printf(out, "%*s%s\n", (int)(width - len), "", text);
}

void pr_settings_help(const pr_setting *table, size_t n, const pr_settings_info *info,
                      pr_buf *out) {
  static const char *fixed[][2] = {
      {"  --config FILE", "read settings from a libconfig file (flags override it)"},
      {"  --help", "print this help and exit"},
      {"  --version", "print the version and exit"},
  };
  size_t width = 0;
  pr_buf tmp = PR_BUF_INIT;
  for (size_t i = 0; i < n; i++) {
    pr_buf_clear(&tmp);
    left_column(&table[i], &tmp);
    if (tmp.len > width) width = tmp.len;
  }
  for (size_t i = 0; i < PR_ARRAY_LEN(fixed); i++)
    if (strlen(fixed[i][0]) > width) width = strlen(fixed[i][0]);
  width += 2;
  if (width > 30) width = 30; /* longer left columns wrap onto their own line */

  pr_buf_printf(out, "%s %s: %s\n\nUsage: %s\n\nOptions:\n", info->program, info->version,
                info->description, info->usage);
  help_line(out, fixed[0][0], width, fixed[0][1]);
  pr_buf text = PR_BUF_INIT;
  for (size_t i = 0; i < n; i++) {
    const pr_setting *s = &table[i];
    pr_buf_clear(&tmp);
    left_column(s, &tmp);
    pr_buf_clear(&text);
    pr_buf_printf(&text, "%s (default: %s", s->help ? s->help : "", s->def ? s->def : "none");
    if (s->type == PR_SET_INT && has_range(s))
      pr_buf_printf(&text, "; range %lld..%lld", s->min, s->max);
    if (s->env) pr_buf_printf(&text, "; env %s", s->env);
    pr_buf_putc(&text, ')');
    help_line(out, tmp.data, width, text.data);
  }
  pr_buf_free(&text);
  pr_buf_free(&tmp);
  help_line(out, fixed[1][0], width, fixed[1][1]);
  help_line(out, fixed[2][0], width, fixed[2][1]);
  pr_buf_puts(out, "\nFlags override the config file, which overrides the environment.\n");
}

static void print_stdout(const char *s, size_t len) {
  fwrite(s, 1, len, stdout);
  fflush(stdout);
}

/* ---- Loading ---- */

typedef struct {
  int row;           /* table index */
  const char *value; /* NULL: a bool flag without =value */
} flag_value;

int pr_settings_load(const pr_setting *table, size_t n, void *cfg, int argc, char **argv,
                     const pr_settings_info *info, int *argi, char *err, size_t errlen) {
  int rc = PR_ECONFIG;
  char who[512];
  struct option *opts = pr_calloc(n + 4, sizeof(*opts));
  flag_value *flags = pr_calloc((size_t)argc + 1, sizeof(*flags));
  size_t nflags = 0;
  const char *config_path = NULL;
  int want_help = 0, want_version = 0;
  if (err && errlen) err[0] = '\0';

  /* 1. Defaults. */
  for (size_t i = 0; i < n; i++) {
    const pr_setting *s = &table[i];
    if (s->type == PR_SET_STRING || s->type == PR_SET_ENUM)
      *str_field(s, cfg) = NULL;
    else if (s->type == PR_SET_INT)
      *int_field(s, cfg) = 0;
    else
      *bool_field(s, cfg) = 0;
    if (!s->def) continue;
    snprintf(who, sizeof(who), "default of %s", s->name);
    if (store_text(s, cfg, s->def, who, err, errlen) < 0) goto fail;
  }

  /* 2. Environment. */
  for (size_t i = 0; i < n; i++) {
    const pr_setting *s = &table[i];
    const char *v = s->env ? getenv(s->env) : NULL;
    if (!v || !*v) continue;
    snprintf(who, sizeof(who), "%s (environment, for %s)", s->env, s->name);
    if (store_text(s, cfg, v, who, err, errlen) < 0) goto fail;
  }

  /* 3. Parse the flags (applied after the file). */
  for (size_t i = 0; i < n; i++) {
    opts[i].name = table[i].name;
    opts[i].has_arg = table[i].type == PR_SET_BOOL ? optional_argument : required_argument;
    opts[i].val = OPT_ROW + (int)i;
  }
  opts[n] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
  opts[n + 1] = (struct option){"help", no_argument, NULL, OPT_HELP};
  opts[n + 2] = (struct option){"version", no_argument, NULL, OPT_VERSION};
  opterr = 0;
  optind = 0; /* full re-initialisation: this may be called more than once */
  const char *optstring = info->stop_at_positional ? "+:" : ":";
  for (;;) {
    int c = getopt_long(argc, argv, optstring, opts, NULL);
    if (c == -1) break;
    /* On an error getopt has stepped past the offending argument. */
    const char *bad = optind >= 1 && optind - 1 < argc ? argv[optind - 1] : "";
    if (c == OPT_CONFIG) {
      config_path = optarg;
    } else if (c == OPT_HELP) {
      want_help = 1;
    } else if (c == OPT_VERSION) {
      want_version = 1;
    } else if (c >= OPT_ROW) {
      flags[nflags++] = (flag_value){c - OPT_ROW, optarg};
    } else if (c == ':') {
      const char *name = optopt >= OPT_ROW ? table[optopt - OPT_ROW].name : "config";
      pr_errf(err, errlen, "--%s: missing value", name);
      goto fail;
    } else if (optopt == OPT_HELP || optopt == OPT_VERSION) {
      pr_errf(err, errlen, "--%s: takes no value", optopt == OPT_HELP ? "help" : "version");
      goto fail;
    } else if (optopt > 0 && optopt < OPT_ROW) {
      pr_errf(err, errlen, "unknown option '-%c' (see --help)", optopt);
      goto fail;
    } else {
      pr_errf(err, errlen, "unknown option '%s' (see --help)", bad);
      goto fail;
    }
  }
  if (argi) *argi = optind;

  if (want_help) {
    pr_buf b = PR_BUF_INIT;
    pr_settings_help(table, n, info, &b);
    print_stdout(b.data, b.len);
    pr_buf_free(&b);
    rc = 1;
    goto fail;
  }
  if (want_version) {
    pr_buf b = PR_BUF_INIT;
    pr_buf_printf(&b, "%s %s\n", info->program, info->version);
    print_stdout(b.data, b.len);
    pr_buf_free(&b);
    rc = 1;
    goto fail;
  }

  /* 4. The file, then 5. the flags over it. */
  if (config_path && load_file(table, n, cfg, config_path, err, errlen) < 0) goto fail;
  for (size_t i = 0; i < nflags; i++) {
    const pr_setting *s = &table[flags[i].row];
    snprintf(who, sizeof(who), "--%s", s->name);
    const char *v = flags[i].value;
    if (!v) {
      /* Only bools have an optional value; a bare --name means true. */
      *bool_field(s, cfg) = 1;
      continue;
    }
    if (store_text(s, cfg, v, who, err, errlen) < 0) goto fail;
  }
  pr_free(opts);
  pr_free(flags);
  return 0;

fail:
  pr_free(opts);
  pr_free(flags);
  pr_settings_free(table, n, cfg);
  return rc;
}

void pr_settings_free(const pr_setting *table, size_t n, void *cfg) {
  for (size_t i = 0; i < n; i++) {
    const pr_setting *s = &table[i];
    if (s->type != PR_SET_STRING && s->type != PR_SET_ENUM) continue;
    char **f = str_field(s, cfg);
    pr_free(*f);
    *f = NULL;
  }
}
