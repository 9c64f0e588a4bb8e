/* main.c: presence-fanout, the task runner: owns a share of the partitions,
 * consumes their events, sweeps their deadlines, resolves recipients and
 * sends one batch per receive instance over nng (DESIGN §2, §5). This file
 * only reads the settings and wires the modules together. */
#include "fanout.h"

#include "base.h"
#include "changes.h"
#include "consume.h"
#include "http.h"
#include "instances.h"
#include "keyspace.h"
#include "log.h"
#include "loop.h"
#include "owner.h"
#include "peers.h"
#include "resolve.h"
#include "service.h"
#include "sweeper.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define F(field) offsetof(fanout_config, field)
static const pr_setting table[] = {
    PR_SETTINGS_COMMON(fanout_config, common),
    {"admin-listen", PR_SET_STRING, "0.0.0.0:8082", 0, 0, NULL, NULL, F(admin_listen),
     "HTTP address host:port of /healthz, /readyz and /metrics"},
    {"worker-id", PR_SET_STRING, NULL, 0, 0, NULL, NULL, F(worker_id),
     "this worker's id in wk and own:{pN}; unset: generated from host and pid"},
    {"owner-lease-ms", PR_SET_INT, "5000", 300, 600000, NULL, NULL, F(owner_lease_ms),
     "partition lease ttl: a dead worker's partitions are taken over within it"},
    {"sweep-interval-ms", PR_SET_INT, "250", 10, 60000, NULL, NULL, F(sweep_interval_ms),
     "how often each owned partition's expired HTTP devices are swept"},
    {"sweep-limit", PR_SET_INT, "1000", 1, 1000000, NULL, NULL, F(sweep_limit),
     "users expired per sweep call (a full call is followed by another)"},
    {"batch-max", PR_SET_INT, "512", 1, 4096, NULL, NULL, F(batch_max),
     "deliveries per batch; a window closes early when it holds this many updates"},
    {"batch-flush-ms", PR_SET_INT, "5", 0, 10000, NULL, NULL, F(batch_flush_ms),
     "how long updates are collected before they are resolved and sent"},
    {"send-buffer", PR_SET_INT, "1024", 1, 8192, NULL, NULL, F(send_buffer),
     "batches queued per receive instance; beyond it batches are dropped (counted)"},
    {"instance-check-ms", PR_SET_INT, "500", 50, 60000, NULL, NULL, F(instance_check_ms),
     "how often receive instance leases are checked (dead ones are cleaned up)"},
    {"offline", PR_SET_ENUM, "sweeper", 0, 0, "sweeper|keyspace", NULL, F(offline),
     "sweeper: deadlines swept by the owner; keyspace: Redis expired-key events (needs CONFIG)"},
    {"graph", PR_SET_ENUM, "server", 0, 0, "server|client", NULL, F(graph),
     "server: recipients from contacts and groups in Redis; client: the event's to list"},
    {"broadcast", PR_SET_ENUM, "changes", 0, 0, "changes|heartbeats", NULL, F(broadcast),
     "changes: deliver status changes; heartbeats: relay heartbeat events (kind 2) too"},
    {"small-group-max", PR_SET_INT, "100", 2, 100000, NULL, NULL, F(small_group_max),
     "groups up to this size make their members watch each other"},
    {"heartbeat-ttl-ms", PR_SET_INT, "60000", 1000, 3600000, NULL, NULL, F(heartbeat_ttl_ms),
     "an HTTP device is offline this long after its last heartbeat (as on presence-send)"},
    {"redis-timeout-ms", PR_SET_INT, "2000", 10, 60000, NULL, NULL, F(redis_timeout_ms),
     "timeout of every Redis command"},
};

static const pr_settings_info info = {
    .program = "presence-fanout",
    .description = "Presence task runner: partition owner, sweeper, resolver and sender",
    .usage = "presence-fanout [--config FILE] [options]",
    .version = PR_VERSION,
};

static fanout_app app;
static pr_service_ops ops;
static pr_http_server *server;
static pr_http_router *router;
static uv_timer_t drain_timer;
static uint64_t drain_deadline;

/* ---- metrics --------------------------------------------------------------- */

static void metrics_init(void) {
  pr_metrics *reg = app.metrics = pr_metrics_new();
  fanout_metrics *m = &app.m;
  m->events_in = pr_metrics_counter(reg, "presence_fanout_events_total",
                                    "updates taken from owned partitions", NULL);
  m->catchup =
      pr_metrics_counter(reg, "presence_fanout_catchup_total",
                         "updates re-read from chg:{pN} after a takeover or reconnect", NULL);
  m->deliveries = pr_metrics_counter(reg, "presence_fanout_deliveries_total",
                                     "deliveries sent to receive instances", NULL);
  m->batches = pr_metrics_counter(reg, "presence_fanout_batches_total",
                                  "batches sent to receive instances", NULL);
  static const double sizes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
  m->batch_size = pr_metrics_histogram(reg, "presence_fanout_batch_deliveries",
                                       "deliveries per batch", NULL, sizes, PR_ARRAY_LEN(sizes));
  static const double ms[] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
  m->lag_ms = pr_metrics_histogram(reg, "presence_fanout_lag_ms",
                                   "time from the event (Redis clock) to its send (ms)", NULL, ms,
                                   PR_ARRAY_LEN(ms));
  m->owned = pr_metrics_gauge(reg, "presence_fanout_partitions_owned", "partitions held now", NULL);
  m->sweeps = pr_metrics_counter(reg, "presence_fanout_sweeps_total", "sweep script calls", NULL);
  m->expired = pr_metrics_counter(reg, "presence_fanout_expired_total",
                                  "users made offline by expired HTTP devices", NULL);
  m->cleaned = pr_metrics_counter(reg, "presence_fanout_instances_cleaned_total",
                                  "dead receive instances cleaned up", NULL);
  static const char *why[FANOUT_DROP_COUNT] = {
      [FANOUT_DROP_SEND_FULL] = "reason=\"send_full\"",
      [FANOUT_DROP_DIAL_FAILED] = "reason=\"dial_failed\"",
      [FANOUT_DROP_NO_INSTANCE] = "reason=\"no_instance\"",
      [FANOUT_DROP_OVERLOAD] = "reason=\"overload\"",
      [FANOUT_DROP_REDIS] = "reason=\"redis\"",
      [FANOUT_DROP_BAD_EVENT] = "reason=\"bad_event\"",
  };
  for (int i = 0; i < FANOUT_DROP_COUNT; i++)
    m->drops[i] = pr_metrics_counter(reg, "presence_fanout_drops_total",
                                     "updates or deliveries not sent, by reason", why[i]);
}

/* ---- lifecycle ------------------------------------------------------------- */

static int worker_id_init(char *err, size_t errlen) {
  if (app.cfg.worker_id) {
    if (!pr_id_is_valid(app.cfg.worker_id, strlen(app.cfg.worker_id))) {
      snprintf(err, errlen, "--worker-id: 1-64 bytes of [A-Za-z0-9_.:@-]");
      return PR_ECONFIG;
    }
    snprintf(app.worker, sizeof(app.worker), "%s", app.cfg.worker_id);
    return 0;
  }
  char host[40] = "host";
  gethostname(host, sizeof(host) - 1);
  host[sizeof(host) - 1] = '\0';
  for (char *c = host; *c; c++)
    if (!pr_id_is_valid(c, 1)) *c = '-';
  snprintf(app.worker, sizeof(app.worker), "fanout-%s-%ld-%04x", host, (long)getpid(),
           (unsigned)(pr_now_wall_ms() & 0xffff));
  return 0;
}

static int is_ready(void *arg) {
  return pr_redis_is_ready(app.sub) && fanout_owner_registered(app.owner);
}

static void shutdown_now(void) {
  uv_timer_stop(&drain_timer);
  uv_close((uv_handle_t *)&drain_timer, NULL);
  app.finished = true;
  pr_loop_signals_close();
  if (server) pr_http_server_free(server, NULL);
  server = NULL;
  /* fails what is pending: the modules' callbacks only free memory now */
  pr_redis_free(app.sub);
  pr_redis_free(app.redis);
  fanout_owner_free(app.owner);
  fanout_consumer_free(app.consumer);
  fanout_changes_free(app.changes);
  fanout_resolver_free(app.resolver);
  fanout_sweeper_free(app.sweeper);
  fanout_instances_free(app.instances);
}

/* After the last sends, a moment for nng to write what it queued. */
static void on_linger(uv_timer_t *t) {
  pr_log_info("fanout", "stopped", "worker=%s", app.worker);
  shutdown_now();
}

static void on_released(void *arg) {
  uv_timer_stop(&drain_timer);
  uv_timer_start(&drain_timer, on_linger, 100, 0);
}

static void on_drain_tick(uv_timer_t *t) {
  if (!fanout_resolver_idle(app.resolver) && pr_now_mono_ms() < drain_deadline) return;
  uv_timer_stop(&drain_timer);
  /* a deadline in case Redis never answers the releases */
  uv_timer_start(&drain_timer, on_linger, (uint64_t)app.cfg.redis_timeout_ms + 100, 0);
  fanout_owner_release_all(app.owner, on_released, NULL);
}

static void on_signal(void *arg) {
  pr_log_info("fanout", "draining", "worker=%s", app.worker);
  app.draining = true;
  ops.draining = 1;
  fanout_sweeper_stop(app.sweeper);
  fanout_instances_stop(app.instances);
  fanout_resolver_flush(app.resolver);
  drain_deadline = pr_now_mono_ms() + 2 * (uint64_t)app.cfg.redis_timeout_ms;
  uv_timer_start(&drain_timer, on_drain_tick, 0, 10);
}

static void on_redis_state(pr_redis *r, int ready, void *arg) {
  if (!ready) {
    pr_log_warn("fanout", "redis unavailable", "addr=%s", app.cfg.common.redis);
    return;
  }
  pr_log_info("fanout", "redis ready", "addr=%s", app.cfg.common.redis);
  if (app.keyspace) fanout_keyspace_configure(&app);
}

static int connect_redis(char *err, size_t errlen) {
  pr_redis_opts ro = {.addr = app.cfg.common.redis,
                      .cmd_timeout_ms = (int)app.cfg.redis_timeout_ms,
                      .name = "presence-fanout"};
  if (pr_redis_new(app.loop, &ro, &app.redis) != 0) goto bad;
  ro.name = "presence-fanout-sub";
  if (pr_redis_new(app.loop, &ro, &app.sub) != 0) goto bad;
  pr_redis_on_state(app.redis, on_redis_state, NULL);
  pr_store_opts so = {.partitions = app.partitions,
                      .ttl_ms = app.cfg.heartbeat_ttl_ms,
                      .broadcast_heartbeats = app.relay_heartbeats,
                      .keyspace_mode = app.keyspace,
                      .small_group_max = (unsigned)app.cfg.small_group_max};
  if (pr_store_new(app.redis, &so, &app.store) != 0) {
    snprintf(err, errlen, "bad store options");
    return PR_ECONFIG;
  }
  return 0;
bad:
  snprintf(err, errlen, "--redis: bad address '%s'", app.cfg.common.redis);
  return PR_ECONFIG;
}

static int start_admin(char *err, size_t errlen) {
  router = pr_http_router_new();
  ops = (pr_service_ops){
      .metrics = app.metrics, .server = &server, .redis = app.redis, .is_ready = is_ready};
  if (pr_service_add_ops_routes(router, &ops) != 0) {
    snprintf(err, errlen, "route setup failed");
    return PR_EINVAL;
  }
  if (pr_http_server_new(app.loop, NULL, pr_http_router_handle, router, &server) != 0 ||
      pr_http_server_listen(server, app.cfg.admin_listen) != 0) {
    snprintf(err, errlen, "--admin-listen %s: %s", app.cfg.admin_listen,
             server ? pr_http_server_error(server) : "cannot create server");
    return PR_EIO;
  }
  return 0;
}

int main(int argc, char **argv) {
  char err[512];
  int argi = 0, status = 1;
  int rc = pr_settings_load(table, PR_ARRAY_LEN(table), &app.cfg, argc, argv, &info, &argi, err,
                            sizeof err);
  if (rc == 1) return 0;
  if (rc != 0) {
    fprintf(stderr, "presence-fanout: %s\n", err);
    return 2;
  }
  if (argi < argc) {
    fprintf(stderr, "presence-fanout: unexpected argument '%s' (see --help)\n", argv[argi]);
    goto done;
  }
  pr_log_level level;
  pr_log_parse_level(app.cfg.common.log_level, &level);
  pr_log_set_level(level);
  pr_loop_ignore_sigpipe();
  app.loop = uv_default_loop();
  app.partitions = (unsigned)app.cfg.common.partitions;
  app.graph_client = strcmp(app.cfg.graph, "client") == 0;
  app.relay_heartbeats = strcmp(app.cfg.broadcast, "heartbeats") == 0;
  app.keyspace = strcmp(app.cfg.offline, "keyspace") == 0;
  uv_timer_init(app.loop, &drain_timer);
  if (worker_id_init(err, sizeof err) || connect_redis(err, sizeof err)) goto fail;

  metrics_init();
  app.peers = fanout_peers_new(&app);
  app.resolver = fanout_resolver_new(&app);
  app.changes = fanout_changes_new(&app);
  fanout_resolver_on_failed(app.resolver, fanout_changes_failed, app.changes);
  app.consumer = fanout_consumer_new(&app);
  pr_redis_on_state(app.sub, fanout_consumer_on_sub_state, app.consumer);
  if (app.keyspace) fanout_keyspace_subscribe(&app);
  fanout_owner_hooks hooks = {fanout_consumer_gained, fanout_consumer_lost, app.consumer};
  app.owner = fanout_owner_new(&app, &hooks);
  app.sweeper = fanout_sweeper_new(&app);
  app.instances = fanout_instances_new(&app);
  if (start_admin(err, sizeof err)) goto fail;

  pr_loop_on_signals(app.loop, on_signal, NULL);
  pr_log_info("fanout", "started",
              "worker=%s admin=%s port=%d redis=%s partitions=%u graph=%s broadcast=%s offline=%s",
              app.worker, app.cfg.admin_listen, pr_http_server_port(server), app.cfg.common.redis,
              app.partitions, app.cfg.graph, app.cfg.broadcast, app.cfg.offline);
  uv_run(app.loop, UV_RUN_DEFAULT);
  status = 0;
  goto close;

fail:
  fprintf(stderr, "presence-fanout: %s\n", err);
  shutdown_now();
close:
  pr_loop_close_all(app.loop);
done:
  if (app.store) pr_store_free(app.store);
  fanout_peers_free(app.peers);
  if (router) pr_http_router_free(router);
  if (app.metrics) pr_metrics_free(app.metrics);
  pr_settings_free(table, PR_ARRAY_LEN(table), &app.cfg);
  return status;
}
