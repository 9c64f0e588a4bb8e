/* stats.c: registers the metrics of presence-receive; the ws module's
 * counters are read at render time (http and redis ones: common/service.h). */
#include "stats.h"
#include "deliver.h"
#include "registry.h"
#include "ws.h"

#include <stdio.h>

static double conns_open(void *arg) { return (double)((recv_app *)arg)->conns_open; }
static double users_here(void *arg) {
  recv_app *app = arg;
  return app->reg ? (double)recv_registry_users(app->reg) : 0;
}
static double devices_here(void *arg) {
  recv_app *app = arg;
  return app->reg ? (double)recv_registry_devices(app->reg) : 0;
}
static double one(void *arg) { return 1; }
static double instance_epoch(void *arg) { return (double)((recv_app *)arg)->epoch; }
static double queue_drops(void *arg) {
  recv_app *app = arg;
  return app->deliver ? (double)recv_deliver_queue_drops(app->deliver) : 0;
}

#define WS_STAT(fn, field)                                                                         \
  static double fn(void *arg) {                                                                    \
    pr_ws_stats s;                                                                                 \
    pr_ws_get_stats(&s);                                                                           \
    return (double)s.field;                                                                        \
  }
WS_STAT(ws_frames_in, frames_in)
WS_STAT(ws_frames_out, frames_out)
WS_STAT(ws_bytes_in, bytes_in)
WS_STAT(ws_bytes_out, bytes_out)
WS_STAT(ws_slow, slow_consumers_closed)
WS_STAT(ws_protocol_errors, protocol_errors)

void recv_stats_register(recv_app *app) {
  static const char *const refuse_labels[RECV_REFUSE_COUNT] = {
      [RECV_REFUSE_BAD_REQUEST] = "reason=\"bad_request\"",
      [RECV_REFUSE_VERSION] = "reason=\"version\"",
      [RECV_REFUSE_ORIGIN] = "reason=\"origin\"",
      [RECV_REFUSE_UNAUTHORIZED] = "reason=\"unauthorized\"",
      [RECV_REFUSE_OVERLOADED] = "reason=\"overloaded\"",
      [RECV_REFUSE_UNAVAILABLE] = "reason=\"unavailable\"",
  };
  static const char *const drop_labels[RECV_DROP_COUNT] = {
      [RECV_DROP_STALE] = "reason=\"stale\"",
      [RECV_DROP_HELD] = "reason=\"held_overflow\"",
      [RECV_DROP_BAD_BATCH] = "reason=\"bad_batch\"",
      [RECV_DROP_QUEUE_FULL] = "reason=\"queue_full\"",
  };
  static const double reg_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                      0.1,   0.25,   0.5,   1,    2.5};
  pr_metrics *r = pr_metrics_new();
  recv_metrics *m = &app->m;
  app->metrics = r;

  pr_metrics_gauge_fn(r, "recv_connections_open", "WebSocket connections open", NULL, conns_open,
                      app);
  pr_metrics_gauge_fn(r, "recv_users_local", "users with a connection or a pending leave here",
                      NULL, users_here, app);
  pr_metrics_gauge_fn(r, "recv_devices_local", "devices held or leaving here", NULL, devices_here,
                      app);
  m->upgrades = pr_metrics_counter(r, "recv_upgrades_total", "WebSocket upgrades accepted", NULL);
  for (int i = 0; i < RECV_REFUSE_COUNT; i++)
    m->refused[i] = pr_metrics_counter(r, "recv_upgrades_refused_total",
                                       "WebSocket upgrades refused, by reason", refuse_labels[i]);
  pr_metrics_counter_fn(r, "recv_frames_in_total", "WebSocket frames received", NULL, ws_frames_in,
                        app);
  pr_metrics_counter_fn(r, "recv_frames_out_total", "WebSocket frames sent", NULL, ws_frames_out,
                        app);
  pr_metrics_counter_fn(r, "recv_bytes_in_total", "WebSocket bytes received", NULL, ws_bytes_in,
                        app);
  pr_metrics_counter_fn(r, "recv_bytes_out_total", "WebSocket bytes sent", NULL, ws_bytes_out, app);
  pr_metrics_counter_fn(r, "recv_slow_consumers_closed_total",
                        "connections closed because their outbound queue was full (4008)", NULL,
                        ws_slow, app);
  pr_metrics_counter_fn(r, "recv_protocol_errors_total",
                        "connections failed for bad WebSocket input (1002, 1007, 1009)", NULL,
                        ws_protocol_errors, app);
  m->deliveries = pr_metrics_counter(r, "recv_deliveries_total",
                                     "deliveries from fanout accepted (newer versions)", NULL);
  m->pushes = pr_metrics_counter(r, "recv_pushes_total", "presence frames sent to clients", NULL);
  for (int i = 0; i < RECV_DROP_COUNT - 1; i++)
    m->drops[i] = pr_metrics_counter(
        r, "recv_drops_total", "presence updates or batches not pushed, by reason", drop_labels[i]);
  pr_metrics_counter_fn(r, "recv_drops_total", "presence updates or batches not pushed, by reason",
                        drop_labels[RECV_DROP_QUEUE_FULL], queue_drops, app);
  m->bad_frames = pr_metrics_counter(r, "recv_bad_frames_total",
                                     "client frames answered with bad_request", NULL);
  m->rate_limited = pr_metrics_counter(r, "recv_rate_limited_total",
                                       "client frames refused by the rate limit", NULL);
  m->rate_closed =
      pr_metrics_counter(r, "recv_rate_limit_closed_total",
                         "connections closed for exceeding the rate limit (4008)", NULL);
  m->redis_failures =
      pr_metrics_counter(r, "recv_redis_write_failures_total",
                         "registrations, removals and status writes Redis did not take", NULL);
  m->lease_losses = pr_metrics_counter(
      r, "recv_lease_losses_total",
      "instance leases found lost; each gives the instance a new id <base>.<epoch>", NULL);
  pr_metrics_gauge_fn(r, "recv_instance_epoch",
                      "the epoch of the current instance id (0: the base id, n: <base>.<n>)", NULL,
                      instance_epoch, app);
  char base[PR_ID_MAX + 16];
  snprintf(base, sizeof(base), "base=\"%s\"", app->instance_base);
  pr_metrics_gauge_fn(r, "recv_instance_info",
                      "1; the current instance id is base (epoch 0) or base.<recv_instance_epoch>",
                      base, one, app);
  m->tokens_expired =
      pr_metrics_counter(r, "recv_tokens_expired_total",
                         "connections closed because their token expired (4001)", NULL);
  m->register_seconds = pr_metrics_histogram(r, "recv_registration_seconds",
                                             "time from upgrade to the device registered in Redis",
                                             NULL, reg_bounds, PR_ARRAY_LEN(reg_bounds));
}
