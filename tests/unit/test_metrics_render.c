/* Metrics: the exact Prometheus text of counters, gauges, histograms. */
#include "metrics.h"
#include "base.h"

#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <string.h>

static pr_metrics *reg;
static pr_buf out = PR_BUF_INIT;

static void setup(void) { reg = pr_metrics_new(); }
static void teardown(void) {
  pr_metrics_free(reg);
  pr_buf_free(&out);
}
TestSuite(metrics, .init = setup, .fini = teardown);

static const char *render(void) {
  pr_buf_clear(&out);
  pr_metrics_render(reg, &out);
  return out.data ? out.data : "";
}

Test(metrics, empty_registry_renders_nothing) { cr_assert_str_eq(render(), ""); }

Test(metrics, counter) {
  pr_counter *c = pr_metrics_counter(reg, "pr_heartbeats_total", "Heartbeats received.", NULL);
  cr_assert_str_eq(render(), "# HELP pr_heartbeats_total Heartbeats received.\n"
                             "# TYPE pr_heartbeats_total counter\n"
                             "pr_heartbeats_total 0\n");
  pr_counter_inc(c);
  pr_counter_add(c, 41);
  cr_assert_eq(pr_counter_value(c), 42);
  cr_assert_str_eq(render(), "# HELP pr_heartbeats_total Heartbeats received.\n"
                             "# TYPE pr_heartbeats_total counter\n"
                             "pr_heartbeats_total 42\n");
}

Test(metrics, labels_share_one_family) {
  pr_counter *slow =
      pr_metrics_counter(reg, "pr_ws_closed_total", "Closed sockets.", "reason=\"slow_consumer\"");
  pr_counter *proto =
      pr_metrics_counter(reg, "pr_ws_closed_total", "Closed sockets.", "reason=\"protocol\"");
  cr_assert_neq(slow, proto);
  cr_assert_eq(
      pr_metrics_counter(reg, "pr_ws_closed_total", "Closed sockets.", "reason=\"slow_consumer\""),
      slow, "same name and labels return the same counter");
  pr_counter_add(slow, 3);
  pr_counter_inc(proto);
  cr_assert_str_eq(render(), "# HELP pr_ws_closed_total Closed sockets.\n"
                             "# TYPE pr_ws_closed_total counter\n"
                             "pr_ws_closed_total{reason=\"slow_consumer\"} 3\n"
                             "pr_ws_closed_total{reason=\"protocol\"} 1\n");
}

Test(metrics, gauge_set_add_and_fractions) {
  pr_gauge *g = pr_metrics_gauge(reg, "pr_queue_bytes", "Queued bytes.", "kind=\"ws\",dir=\"out\"");
  pr_gauge_set(g, 10);
  pr_gauge_add(g, -2.5);
  cr_assert_float_eq(pr_gauge_value(g), 7.5, 1e-12);
  cr_assert_str_eq(render(), "# HELP pr_queue_bytes Queued bytes.\n"
                             "# TYPE pr_queue_bytes gauge\n"
                             "pr_queue_bytes{kind=\"ws\",dir=\"out\"} 7.5\n");
  pr_gauge_set(g, 0.1);
  cr_assert_str_eq(render(), "# HELP pr_queue_bytes Queued bytes.\n"
                             "# TYPE pr_queue_bytes gauge\n"
                             "pr_queue_bytes{kind=\"ws\",dir=\"out\"} 0.1\n");
  pr_gauge_set(g, 1e21);
  cr_assert(strstr(render(), "} 1e+21\n"), "%s", out.data);
  pr_gauge_set(g, NAN);
  cr_assert(strstr(render(), "} NaN\n"), "%s", out.data);
  pr_gauge_set(g, -INFINITY);
  cr_assert(strstr(render(), "} -Inf\n"), "%s", out.data);
}

Test(metrics, histogram) {
  static const double bounds[] = {1, 5, 25.5};
  pr_histogram *h =
      pr_metrics_histogram(reg, "pr_redis_latency_ms", "Redis latency.", NULL, bounds, 3);
  pr_histogram_observe(h, 0.5);
  pr_histogram_observe(h, 1); /* le is inclusive */
  pr_histogram_observe(h, 3);
  pr_histogram_observe(h, 100);
  cr_assert_str_eq(render(), "# HELP pr_redis_latency_ms Redis latency.\n"
                             "# TYPE pr_redis_latency_ms histogram\n"
                             "pr_redis_latency_ms_bucket{le=\"1\"} 2\n"
                             "pr_redis_latency_ms_bucket{le=\"5\"} 3\n"
                             "pr_redis_latency_ms_bucket{le=\"25.5\"} 3\n"
                             "pr_redis_latency_ms_bucket{le=\"+Inf\"} 4\n"
                             "pr_redis_latency_ms_sum 104.5\n"
                             "pr_redis_latency_ms_count 4\n");
}

Test(metrics, histogram_with_labels) {
  static const double bounds[] = {0.25};
  pr_histogram *h =
      pr_metrics_histogram(reg, "pr_batch_size", "Batch size.", "svc=\"fanout\"", bounds, 1);
  pr_histogram_observe(h, 2);
  cr_assert_str_eq(render(), "# HELP pr_batch_size Batch size.\n"
                             "# TYPE pr_batch_size histogram\n"
                             "pr_batch_size_bucket{svc=\"fanout\",le=\"0.25\"} 0\n"
                             "pr_batch_size_bucket{svc=\"fanout\",le=\"+Inf\"} 1\n"
                             "pr_batch_size_sum{svc=\"fanout\"} 2\n"
                             "pr_batch_size_count{svc=\"fanout\"} 1\n");
}

static double read_conns(void *arg) { return (double)*(int *)arg; }

Test(metrics, callback_gauge_read_at_render) {
  int conns = 3;
  pr_metrics_gauge_fn(reg, "pr_ws_connections", "Open WebSocket connections.", NULL, read_conns,
                      &conns);
  cr_assert_str_eq(render(), "# HELP pr_ws_connections Open WebSocket connections.\n"
                             "# TYPE pr_ws_connections gauge\n"
                             "pr_ws_connections 3\n");
  conns = 12345;
  cr_assert_str_eq(render(), "# HELP pr_ws_connections Open WebSocket connections.\n"
                             "# TYPE pr_ws_connections gauge\n"
                             "pr_ws_connections 12345\n");
}

Test(metrics, callback_counter) {
  int n = 7;
  pr_metrics_counter_fn(reg, "pr_redis_commands_total", "Redis commands.", "conn=\"main\"",
                        read_conns, &n);
  cr_assert_str_eq(render(), "# HELP pr_redis_commands_total Redis commands.\n"
                             "# TYPE pr_redis_commands_total counter\n"
                             "pr_redis_commands_total{conn=\"main\"} 7\n");
}

Test(metrics, families_in_registration_order_and_help_escaped) {
  pr_gauge *g = pr_metrics_gauge(reg, "b_gauge", "Line one\nback\\slash", NULL);
  pr_counter *c = pr_metrics_counter(reg, "a_total", "", NULL);
  pr_gauge_set(g, -1);
  pr_counter_inc(c);
  cr_assert_str_eq(render(), "# HELP b_gauge Line one\\nback\\\\slash\n"
                             "# TYPE b_gauge gauge\n"
                             "b_gauge -1\n"
                             "# HELP a_total \n"
                             "# TYPE a_total counter\n"
                             "a_total 1\n");
}

Test(metrics, render_appends) {
  pr_counter_inc(pr_metrics_counter(reg, "x_total", "X.", NULL));
  pr_buf_puts(&out, "prefix\n");
  pr_metrics_render(reg, &out);
  cr_assert_str_eq(out.data, "prefix\n# HELP x_total X.\n# TYPE x_total counter\nx_total 1\n");
}

Test(metrics, bad_name_aborts, .signal = SIGABRT) {
  pr_metrics_counter(reg, "9bad name", "", NULL);
}

Test(metrics, type_conflict_aborts, .signal = SIGABRT) {
  pr_metrics_counter(reg, "dup", "", NULL);
  pr_metrics_gauge(reg, "dup", "", NULL);
}
