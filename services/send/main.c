/* main.c: presence-send, the stateless HTTP service: heartbeats, explicit
 * offline, presence queries and graph administration (DESIGN §6). This file
 * only reads the settings and wires the modules together. */
#include "send.h"

#include "base.h"
#include "log.h"
#include "loop.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const pr_setting table[] = {
    PR_SETTINGS_COMMON(send_config, common),
    {"listen", PR_SET_STRING, "0.0.0.0:8080", 0, 0, NULL, NULL, offsetof(send_config, listen),
     "HTTP address host:port to serve the API on"},
    {"heartbeat-ttl-ms", PR_SET_INT, "60000", 1000, 3600000, NULL, NULL,
     offsetof(send_config, heartbeat_ttl_ms),
     "an HTTP device is offline this long after its last heartbeat"},
    {"max-query-users", PR_SET_INT, "1000", 1, 100000, NULL, NULL,
     offsetof(send_config, max_query_users), "most users one GET /v1/presence may name"},
    {"max-body-bytes", PR_SET_INT, "65536", 256, 16777216, NULL, NULL,
     offsetof(send_config, max_body_bytes), "largest request body accepted (else 413)"},
    {"max-connections", PR_SET_INT, "10000", 1, 1000000, NULL, NULL,
     offsetof(send_config, max_connections), "most client connections held at once"},
    {"small-group-max", PR_SET_INT, "100", 2, 100000, NULL, NULL,
     offsetof(send_config, small_group_max),
     "groups up to this size make their members watch each other"},
    {"drain-timeout-ms", PR_SET_INT, "10000", 0, 600000, NULL, NULL,
     offsetof(send_config, drain_timeout_ms),
     "on SIGTERM, how long in-flight requests may take before exit"},
    {"auth-cache-entries", PR_SET_INT, "8192", 0, 1000000, NULL, NULL,
     offsetof(send_config, auth_cache_entries),
     "verified tokens remembered: a repeated token skips the JWT work (0: no cache)"},
    {"redis-timeout-ms", PR_SET_INT, "2000", 10, 60000, NULL, NULL,
     offsetof(send_config, redis_timeout_ms), "timeout of every Redis command"},
    {"graph", PR_SET_ENUM, "server", 0, 0, "server|client", NULL, offsetof(send_config, graph),
     "server: contacts and groups kept in Redis; client: heartbeats name their recipients (to)"},
    {"broadcast", PR_SET_ENUM, "changes", 0, 0, "changes|heartbeats", NULL,
     offsetof(send_config, broadcast),
     "changes: publish only status changes; heartbeats: relay every heartbeat"},
    {"offline", PR_SET_ENUM, "sweeper", 0, 0, "sweeper|keyspace", NULL,
     offsetof(send_config, offline),
     "how fanout detects expired HTTP devices (keyspace: heartbeats also write expiring keys)"},
};

static const pr_settings_info info = {
    .program = "presence-send",
    .description = "Presence HTTP API: heartbeats, offline, presence queries, graph admin",
    .usage = "presence-send [--config FILE] [options]",
    .version = PR_VERSION,
};

static send_ctx ctx;
static pr_service_ops ops;
static pr_http_server *server;
static pr_http_router *router;
static uv_timer_t drain_timer;
static uint64_t drain_deadline;

static void shutdown_now(void) {
  uv_timer_stop(&drain_timer);
  pr_loop_signals_close();
  if (server) pr_http_server_free(server, NULL);
  server = NULL;
  pr_redis_free(ctx.redis); /* fails what is pending, so the store has nothing left */
  uv_close((uv_handle_t *)&drain_timer, NULL);
}

static void on_drain_tick(uv_timer_t *t) {
  pr_http_stats s;
  pr_http_server_stats(server, &s);
  if (pr_http_server_inflight(server) == 0 && s.connections_open == 0) {
    pr_log_info("send", "drained", "%s", "");
    shutdown_now();
  } else if (pr_now_mono_ms() >= drain_deadline) {
    pr_log_warn("send", "drain timeout", "inflight=%zu", pr_http_server_inflight(server));
    shutdown_now();
  }
}

static void on_signal(void *arg) {
  pr_log_info("send", "draining", "%s", "");
  ops.draining = 1;
  pr_http_server_stop_accepting(server);
  drain_deadline = pr_now_mono_ms() + (uint64_t)ctx.cfg.drain_timeout_ms;
  uv_timer_start(&drain_timer, on_drain_tick, 0, 20);
}

static void on_redis_state(pr_redis *r, int ready, void *arg) {
  if (ready)
    pr_log_info("send", "redis ready", "addr=%s", ctx.cfg.common.redis);
  else
    pr_log_warn("send", "redis unavailable", "addr=%s", ctx.cfg.common.redis);
}

int main(int argc, char **argv) {
  char err[512];
  int argi = 0, status = 1;
  int rc = pr_settings_load(table, PR_ARRAY_LEN(table), &ctx.cfg, argc, argv, &info, &argi, err,
                            sizeof err);
  if (rc == 1) return 0;
  if (rc != 0) {
    fprintf(stderr, "presence-send: %s\n", err);
    return 2;
  }
  if (argi < argc) {
    fprintf(stderr, "presence-send: unexpected argument '%s' (see --help)\n", argv[argi]);
    goto done;
  }
  pr_log_level level;
  pr_log_parse_level(ctx.cfg.common.log_level, &level);
  pr_log_set_level(level);
  pr_loop_ignore_sigpipe();
  uv_loop_t *loop = uv_default_loop();

  pr_auth_opts ao = {.hs256_secret = ctx.cfg.common.jwt_secret,
                     .public_key_path = ctx.cfg.common.jwt_public_key,
                     .cache_entries = (unsigned)ctx.cfg.auth_cache_entries};
  if (pr_auth_new(&ao, &ctx.auth, err, sizeof err) != 0) {
    fprintf(stderr, "presence-send: %s (give --jwt-secret or --jwt-public-key)\n", err);
    goto done;
  }
  ctx.client_graph = strcmp(ctx.cfg.graph, "client") == 0;

  pr_redis_opts ro = {.addr = ctx.cfg.common.redis,
                      .cmd_timeout_ms = (int)ctx.cfg.redis_timeout_ms,
                      .name = "presence-send"};
  if (pr_redis_new(loop, &ro, &ctx.redis) != 0) {
    fprintf(stderr, "presence-send: --redis: bad address '%s'\n", ctx.cfg.common.redis);
    goto done;
  }
  pr_redis_on_state(ctx.redis, on_redis_state, NULL);
  pr_store_opts so = {.partitions = (unsigned)ctx.cfg.common.partitions,
                      .ttl_ms = ctx.cfg.heartbeat_ttl_ms,
                      .broadcast_heartbeats = strcmp(ctx.cfg.broadcast, "heartbeats") == 0,
                      .keyspace_mode = strcmp(ctx.cfg.offline, "keyspace") == 0,
                      .small_group_max = (unsigned)ctx.cfg.small_group_max};
  if (pr_store_new(ctx.redis, &so, &ctx.store) != 0) {
    fprintf(stderr, "presence-send: bad store options\n");
    goto done;
  }

  ctx.metrics = pr_metrics_new();
  ctx.heartbeats =
      pr_metrics_counter(ctx.metrics, "presence_heartbeats_total", "heartbeats accepted", NULL);
  ctx.offlines = pr_metrics_counter(ctx.metrics, "presence_offline_total",
                                    "explicit offline calls accepted", NULL);
  ctx.queries =
      pr_metrics_counter(ctx.metrics, "presence_queries_total", "presence queries answered", NULL);
  ctx.not_modified = pr_metrics_counter(ctx.metrics, "presence_queries_not_modified_total",
                                        "presence queries answered 304", NULL);
  ctx.graph_writes =
      pr_metrics_counter(ctx.metrics, "presence_graph_writes_total", "graph edits applied", NULL);
  ctx.transitions =
      pr_metrics_counter(ctx.metrics, "presence_transitions_total",
                         "heartbeats or offlines that changed a visible status", NULL);
  static const double ms[] = {0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000};
  ctx.store_latency =
      pr_metrics_histogram(ctx.metrics, "presence_store_latency_ms",
                           "time from request to store reply (ms)", NULL, ms, PR_ARRAY_LEN(ms));

  router = pr_http_router_new();
  ops = (pr_service_ops){.metrics = ctx.metrics, .server = &server, .redis = ctx.redis};
  if (pr_service_add_ops_routes(router, &ops) || send_add_presence_routes(router, &ctx) ||
      send_add_graph_routes(router, &ctx)) {
    fprintf(stderr, "presence-send: route setup failed\n");
    goto done;
  }
  pr_http_opts ho = {.max_body_bytes = (size_t)ctx.cfg.max_body_bytes,
                     .max_connections = (unsigned)ctx.cfg.max_connections};
  if (pr_http_server_new(loop, &ho, pr_http_router_handle, router, &server) != 0 ||
      (rc = pr_http_server_listen(server, ctx.cfg.listen)) != 0) {
    fprintf(stderr, "presence-send: --listen %s: %s\n", ctx.cfg.listen,
            server ? pr_http_server_error(server) : "cannot create server");
    goto done;
  }
  uv_timer_init(loop, &drain_timer);
  pr_loop_on_signals(loop, on_signal, NULL);
  pr_log_info("send", "listening", "addr=%s port=%d redis=%s graph=%s broadcast=%s offline=%s",
              ctx.cfg.listen, pr_http_server_port(server), ctx.cfg.common.redis, ctx.cfg.graph,
              ctx.cfg.broadcast, ctx.cfg.offline);
  uv_run(loop, UV_RUN_DEFAULT);
  status = 0;
  pr_loop_close_all(loop);

done:
  if (ctx.store) pr_store_free(ctx.store);
  if (router) pr_http_router_free(router);
  if (ctx.metrics) pr_metrics_free(ctx.metrics);
  if (ctx.auth) pr_auth_free(ctx.auth);
  pr_settings_free(table, PR_ARRAY_LEN(table), &ctx.cfg);
  return status;
}
