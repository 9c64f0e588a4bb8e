/* metrics.c: the metric registry and its Prometheus text rendering.
 * Families keep registration order so /metrics output is stable. */
#include "metrics.h"
#include "base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind;

/* One labelled series. pr_counter/pr_gauge/pr_histogram are views of it. */
typedef struct series {
  struct series *next;
  char *labels;          /* "" when none */
  pr_metrics_read_fn fn; /* value read at render time, or NULL */
  void *arg;
  uint64_t count;    /* counter value; histogram count */
  double value;      /* gauge value; histogram sum */
  double *bounds;    /* histogram upper bounds (without +Inf) */
  uint64_t *buckets; /* histogram per-bucket counts, nbounds + 1 (last: +Inf) */
  size_t nbounds;
} series;

struct pr_counter {
  series s;
};
struct pr_gauge {
  series s;
};
struct pr_histogram {
  series s;
};

typedef struct family {
  struct family *next;
  char *name, *help;
  kind kind;
  series *first, *last;
} family;

struct pr_metrics {
  family *first, *last;
};

/* Registration mistakes are bugs in the caller, found at start-up. */
static void misuse(const char *what, const char *name) {
  fprintf(stderr, "level=fatal mod=metrics msg=\"%s\" name=\"%s\"\n", what, name);
  abort();
}

static int name_is_valid(const char *s) {
  if (!s || !*s) return 0;
  for (const char *p = s; *p; p++) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
             (p != s && c >= '0' && c <= '9');
    if (!ok) return 0;
  }
  return 1;
}

pr_metrics *pr_metrics_new(void) { return pr_calloc(1, sizeof(pr_metrics)); }

void pr_metrics_free(pr_metrics *reg) {
  if (!reg) return;
  family *f = reg->first;
  while (f) {
    family *fn = f->next;
    series *s = f->first;
    while (s) {
      series *sn = s->next;
      pr_free(s->labels);
      pr_free(s->bounds);
      pr_free(s->buckets);
      pr_free(s);
      s = sn;
    }
    pr_free(f->name);
    pr_free(f->help);
    pr_free(f);
    f = fn;
  }
  pr_free(reg);
}

/* Finds or creates the series (name, labels); *created tells which. */
static series *get_series(pr_metrics *reg, const char *name, const char *help, const char *labels,
                          kind k, int *created) {
  if (!name_is_valid(name)) misuse("invalid metric name", name ? name : "");
  if (!labels) labels = "";
  family *f = reg->first;
  while (f && strcmp(f->name, name) != 0)
    f = f->next;
  if (!f) {
    f = pr_calloc(1, sizeof(*f));
    f->name = pr_strdup(name);
    f->help = pr_strdup(help ? help : "");
    f->kind = k;
    if (reg->last)
      reg->last->next = f;
    else
      reg->first = f;
    reg->last = f;
  } else if (f->kind != k) {
    misuse("metric registered again with another type", name);
  }
  for (series *s = f->first; s; s = s->next) {
    if (strcmp(s->labels, labels) == 0) {
      *created = 0;
      return s;
    }
  }
  /* Every series of a family is the size of the largest view. */
  series *s = pr_calloc(1, sizeof(struct pr_histogram));
  s->labels = pr_strdup(labels);
  if (f->last)
    f->last->next = s;
  else
    f->first = s;
  f->last = s;
  *created = 1;
  return s;
}

pr_counter *pr_metrics_counter(pr_metrics *reg, const char *name, const char *help,
                               const char *labels) {
  int created;
  return (pr_counter *)get_series(reg, name, help, labels, KIND_COUNTER, &created);
}

pr_gauge *pr_metrics_gauge(pr_metrics *reg, const char *name, const char *help,
                           const char *labels) {
  int created;
  return (pr_gauge *)get_series(reg, name, help, labels, KIND_GAUGE, &created);
}

pr_histogram *pr_metrics_histogram(pr_metrics *reg, const char *name, const char *help,
                                   const char *labels, const double *bounds, size_t nbounds) {
  for (size_t i = 1; i < nbounds; i++)
    if (!(bounds[i] > bounds[i - 1])) misuse("histogram bounds must increase", name);
  int created;
  series *s = get_series(reg, name, help, labels, KIND_HISTOGRAM, &created);
  if (created) {
    s->nbounds = nbounds;
    s->bounds = pr_malloc((nbounds ? nbounds : 1) * sizeof(double));
    if (nbounds) memcpy(s->bounds, bounds, nbounds * sizeof(double));
    s->buckets = pr_calloc(nbounds + 1, sizeof(uint64_t));
  }
  return (pr_histogram *)s;
}

void pr_metrics_gauge_fn(pr_metrics *reg, const char *name, const char *help, const char *labels,
                         pr_metrics_read_fn fn, void *arg) {
  int created;
  series *s = get_series(reg, name, help, labels, KIND_GAUGE, &created);
  s->fn = fn;
  s->arg = arg;
}

void pr_metrics_counter_fn(pr_metrics *reg, const char *name, const char *help, const char *labels,
                           pr_metrics_read_fn fn, void *arg) {
  int created;
  series *s = get_series(reg, name, help, labels, KIND_COUNTER, &created);
  s->fn = fn;
  s->arg = arg;
}

void pr_counter_inc(pr_counter *c) { c->s.count++; }
void pr_counter_add(pr_counter *c, uint64_t n) { c->s.count += n; }
uint64_t pr_counter_value(const pr_counter *c) { return c->s.count; }

void pr_gauge_set(pr_gauge *g, double v) { g->s.value = v; }
void pr_gauge_add(pr_gauge *g, double delta) { g->s.value += delta; }
double pr_gauge_value(const pr_gauge *g) { return g->s.value; }

void pr_histogram_observe(pr_histogram *h, double v) {
  series *s = &h->s;
  size_t i = 0;
  while (i < s->nbounds && v > s->bounds[i])
    i++;
  s->buckets[i]++;
  s->count++;
  s->value += v;
}

/* ---- Rendering ---- */

/* The shortest of %.15g / %.17g that reads back as the same double. */
static void put_double(pr_buf *b, double v) {
  char tmp[40];
  if (isnan(v)) {
    snprintf(tmp, sizeof(tmp), "NaN");
  } else if (isinf(v)) {
    snprintf(tmp, sizeof(tmp), "%s", v > 0 ? "+Inf" : "-Inf");
  } else {
    snprintf(tmp, sizeof(tmp), "%.15g", v);
    if (strtod(tmp, NULL) != v) snprintf(tmp, sizeof(tmp), "%.17g", v);
  }
  pr_buf_puts(b, tmp);
}

static void put_escaped_help(pr_buf *b, const char *s) {
  for (; *s; s++) {
    if (*s == '\\')
      pr_buf_puts(b, "\\\\");
    else if (*s == '\n')
      pr_buf_puts(b, "\\n");
    else
      pr_buf_putc(b, *s);
  }
}

/* name[suffix]{labels[,extra]} */
static void put_series_name(pr_buf *b, const char *name, const char *suffix, const char *labels,
                            const char *extra) {
  pr_buf_puts(b, name);
  pr_buf_puts(b, suffix);
  int has_labels = labels[0] != '\0', has_extra = extra && extra[0];
  if (!has_labels && !has_extra) return;
  pr_buf_putc(b, '{');
  pr_buf_puts(b, labels);
  if (has_labels && has_extra) pr_buf_putc(b, ',');
  if (has_extra) pr_buf_puts(b, extra);
  pr_buf_putc(b, '}');
}

static void render_histogram(pr_buf *b, const char *name, const series *s) {
  uint64_t cum = 0;
  pr_buf le = PR_BUF_INIT;
  for (size_t i = 0; i <= s->nbounds; i++) {
    cum += s->buckets[i];
    pr_buf_clear(&le);
    pr_buf_puts(&le, "le=\"");
    put_double(&le, i < s->nbounds ? s->bounds[i] : INFINITY);
    pr_buf_putc(&le, '"');
    put_series_name(b, name, "_bucket", s->labels, le.data);
    pr_buf_printf(b, " %llu\n", (unsigned long long)cum);
  }
  pr_buf_free(&le);
  put_series_name(b, name, "_sum", s->labels, NULL);
  pr_buf_putc(b, ' ');
  put_double(b, s->value);
  pr_buf_putc(b, '\n');
  put_series_name(b, name, "_count", s->labels, NULL);
  pr_buf_printf(b, " %llu\n", (unsigned long long)s->count);
}

void pr_metrics_render(pr_metrics *reg, pr_buf *out) {
  static const char *type_names[] = {"counter", "gauge", "histogram"};
  for (family *f = reg->first; f; f = f->next) {
    pr_buf_printf(out, "# HELP %s ", f->name);
    put_escaped_help(out, f->help);
    pr_buf_printf(out, "\n# TYPE %s %s\n", f->name, type_names[f->kind]);
    for (series *s = f->first; s; s = s->next) {
      if (f->kind == KIND_HISTOGRAM) {
        render_histogram(out, f->name, s);
        continue;
      }
      put_series_name(out, f->name, "", s->labels, NULL);
      pr_buf_putc(out, ' ');
      if (s->fn)
        put_double(out, s->fn(s->arg));
      else if (f->kind == KIND_COUNTER)
        pr_buf_printf(out, "%llu", (unsigned long long)s->count);
      else
        put_double(out, s->value);
      pr_buf_putc(out, '\n');
    }
  }
}
