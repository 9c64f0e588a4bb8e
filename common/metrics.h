/* metrics.h: counters, gauges and histograms in a per-process registry,
 * rendered in the Prometheus text exposition format for GET /metrics.
 *
 * Single-threaded: register, update and render from the loop thread only.
 * Ownership: the registry owns every metric it returns; the pointers stay
 * valid until pr_metrics_free(reg). Name, help and labels are copied.
 * Registering a name again with the same labels returns the existing metric;
 * the same name with other labels adds a series to the same family (one
 * # HELP / # TYPE). A bad name or a name reused with another type is a
 * programming error and aborts. */
#ifndef PR_METRICS_H
#define PR_METRICS_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct pr_metrics pr_metrics;
typedef struct pr_counter pr_counter;
typedef struct pr_gauge pr_gauge;
typedef struct pr_histogram pr_histogram;

/* A value owned by another module, read at render time. */
typedef double (*pr_metrics_read_fn)(void *arg);

pr_metrics *pr_metrics_new(void);
void pr_metrics_free(pr_metrics *reg);

/* `labels` is NULL or constant labels in exposition syntax without braces,
 * e.g. "reason=\"slow_consumer\"" or "a=\"1\",b=\"2\"". */
pr_counter *pr_metrics_counter(pr_metrics *reg, const char *name, const char *help,
                               const char *labels);
pr_gauge *pr_metrics_gauge(pr_metrics *reg, const char *name, const char *help, const char *labels);
/* Upper bounds in increasing order (le="..."); +Inf is added automatically. */
pr_histogram *pr_metrics_histogram(pr_metrics *reg, const char *name, const char *help,
                                   const char *labels, const double *bounds, size_t nbounds);
/* Gauge / counter whose value is fn(arg), called by pr_metrics_render. */
void pr_metrics_gauge_fn(pr_metrics *reg, const char *name, const char *help, const char *labels,
                         pr_metrics_read_fn fn, void *arg);
void pr_metrics_counter_fn(pr_metrics *reg, const char *name, const char *help, const char *labels,
                           pr_metrics_read_fn fn, void *arg);

void pr_counter_inc(pr_counter *c);
void pr_counter_add(pr_counter *c, uint64_t n);
uint64_t pr_counter_value(const pr_counter *c);

void pr_gauge_set(pr_gauge *g, double v);
void pr_gauge_add(pr_gauge *g, double delta); /* negative to decrease */
double pr_gauge_value(const pr_gauge *g);

void pr_histogram_observe(pr_histogram *h, double v);

/* Appends every family in registration order to `out`:
 *   # HELP name help\n# TYPE name counter\nname{labels} 3\n
 * histograms as name_bucket{labels,le="..."} (cumulative), name_sum, name_count. */
void pr_metrics_render(pr_metrics *reg, pr_buf *out);

#endif
