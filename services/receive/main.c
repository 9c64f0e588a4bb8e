/* main.c: presence-receive wiring: settings, Redis, store, nng deliveries,
 * lease, HTTP/WebSocket server; on SIGTERM the drain (close every client
 * with 1012, remove this instance's devices at once, exit 0). */
#include "app.h"
#include "base.h"
#include "conn.h"
#include "deliver.h"
#include "expiry.h"
#include "lease.h"
#include "log.h"
#include "loop.h"
#include "registry.h"
#include "routes.h"
#include "stats.h"
#include "versions.h"

#include <malloc.h>
#include <stdio.h>
#include <string.h>

#define DRAIN_POLL_MS 10

static recv_app app;
static uv_timer_t drain_timer;
static uint64_t drain_deadline;
static bool drain_removed; /* Redis answered the bulk removal (or could not be asked) */

/* ---- drain ---------------------------------------------------------------- */

static void finish(void) {
  app.finished = true;
  uv_timer_stop(&drain_timer);
  uv_close((uv_handle_t *)&drain_timer, NULL);
  pr_http_server_free(app.http, NULL);
  app.http = NULL;
  recv_registry_close(app.reg);
  recv_expiry_close(app.expiry);
  pr_redis_free(app.redis); /* pending commands fail now; their callbacks see `finished` */
  app.redis = NULL;
  app.ops.redis = NULL;
  pr_loop_signals_close();
  uv_stop(app.loop);
}

static void drain_poll(uv_timer_t *t) {
  bool idle = app.conns_open == 0 && pr_http_server_inflight(app.http) == 0;
  if (drain_removed && idle) {
    pr_log_info("receive", "drained", "instance=%s", app.instance);
    finish();
  } else if (uv_now(app.loop) >= drain_deadline) {
    pr_log_warn("receive", "drain timeout", "connections=%zu removed=%d", app.conns_open,
                drain_removed);
    finish();
  }
}

static void drain_done(bool ok, void *arg) {
  drain_removed = true;
  if (!ok) pr_log_warn("receive", "drain: Redis did not take every removal", "%s", "");
}

static void close_restart(recv_conn *c, void *arg) {
  recv_conn_close(c, PR_WS_CLOSE_RESTART, "instance draining");
}

static void on_signal(void *arg) {
  pr_log_info("receive", "draining", "connections=%zu", app.conns_open);
  app.draining = true;
  app.ops.draining = 1;
  pr_http_server_stop_accepting(app.http);
  recv_deliver_close(app.deliver);
  recv_lease_close(app.lease);
  recv_registry_each_conn(app.reg, close_restart, NULL);
  if (recv_registry_drain(app.reg, drain_done, NULL) != 0) {
    pr_log_warn("receive", "drain: Redis unavailable, fanout will clean up after the lease",
                "instance=%s", app.instance);
    drain_removed = true;
  }
  drain_deadline = uv_now(app.loop) + (uint64_t)app.cfg.drain_timeout_ms;
  uv_timer_start(&drain_timer, drain_poll, DRAIN_POLL_MS, DRAIN_POLL_MS);
}

/* ---- setup ------------------------------------------------------------------ */

static void on_redis_state(pr_redis *r, int ready, void *arg) {
  if (ready)
    pr_log_info("receive", "redis ready", "instance=%s", app.instance);
  else
    pr_log_warn("receive", "redis lost", "instance=%s", app.instance);
  if (app.lease && !app.draining) recv_lease_on_redis(app.lease, ready);
}

/* The address fanout dials: --nng-advertise, else the bound one (a wildcard
 * host becomes 127.0.0.1: set --nng-advertise when fanout runs elsewhere). */
static char *advertise_of(const char *bound) {
  if (app.cfg.nng_advertise && *app.cfg.nng_advertise) return pr_strdup(app.cfg.nng_advertise);
  const char *wild[] = {"tcp://0.0.0.0:", "tcp://[::]:"};
  for (size_t i = 0; i < PR_ARRAY_LEN(wild); i++) {
    size_t n = strlen(wild[i]);
    if (strncmp(bound, wild[i], n) == 0) {
      pr_log_warn("receive", "nng address is a wildcard, advertising loopback",
                  "bound=%s hint=\"set --nng-advertise\"", bound);
      size_t len = strlen(bound + n) + 32;
      char *out = pr_malloc(len);
      snprintf(out, len, "tcp://127.0.0.1:%s", bound + n);
      return out;
    }
  }
  return pr_strdup(bound);
}

static int setup(char *err, size_t errlen) {
  recv_config *cfg = &app.cfg;
  int rc;
  if (recv_config_instance_id(cfg, app.instance_base, sizeof(app.instance_base)) != 0) {
    snprintf(err, errlen, "--instance-id: must be 1-%d characters of [A-Za-z0-9_.:@-]",
             (int)sizeof(app.instance_base) - 1);
    return PR_ECONFIG;
  }
  recv_instance_of(&app, 0, app.instance, sizeof(app.instance));
  app.graph_client = strcmp(cfg->graph, "client") == 0;
  pr_auth_opts ao = {.hs256_secret = cfg->common.jwt_secret,
                     .public_key_path = cfg->common.jwt_public_key};
  if ((rc = pr_auth_new(&ao, &app.auth, err, errlen)) != 0) return rc;

  recv_stats_register(&app);
  long long pending = 2 * cfg->max_connections + 10000;
  pr_redis_opts ro = {.addr = cfg->common.redis,
                      .name = "receive",
                      .max_pending = pending > 2000000000 ? 2000000000 : (int)pending};
  if ((rc = pr_redis_new(app.loop, &ro, &app.redis)) != 0) {
    snprintf(err, errlen, "--redis: bad address '%s'", cfg->common.redis);
    return rc;
  }
  pr_redis_on_state(app.redis, on_redis_state, NULL);
  pr_store_opts so = {.partitions = (unsigned)cfg->common.partitions,
                      .broadcast_heartbeats = strcmp(cfg->broadcast, "heartbeats") == 0,
                      .small_group_max = (unsigned)cfg->small_group_max};
  if ((rc = pr_store_new(app.redis, &so, &app.store)) != 0) {
    snprintf(err, errlen, "store options refused");
    return rc;
  }
  app.versions = recv_versions_new();
  app.reg = recv_registry_new(&app);
  app.expiry = recv_expiry_new(&app);

  char *bound = NULL;
  if ((rc = recv_deliver_start(&app, cfg->nng_listen, &bound, err, errlen)) != 0) return rc;
  app.advertise = advertise_of(bound);
  pr_free(bound);
  app.lease = recv_lease_new(&app);

  if ((rc = recv_routes_new(&app)) != 0) {
    snprintf(err, errlen, "router setup failed");
    return rc;
  }
  pr_http_opts ho = {.listen_backlog = (int)cfg->listen_backlog};
  if ((rc = pr_http_server_new(app.loop, &ho, pr_http_router_handle, app.router, &app.http)) != 0) {
    snprintf(err, errlen, "http server setup failed");
    return rc;
  }
  if ((rc = pr_http_server_listen(app.http, cfg->listen)) != 0) {
    snprintf(err, errlen, "--listen %s: %s", cfg->listen,
             rc == PR_EINVAL ? "bad address" : pr_http_server_error(app.http));
    return rc;
  }
  uv_timer_init(app.loop, &drain_timer);
  if ((rc = pr_loop_on_signals(app.loop, on_signal, NULL)) != 0) {
    snprintf(err, errlen, "signal handlers: %s", pr_strerror(rc));
    return rc;
  }
  pr_log_info("receive", "listening", "addr=%s port=%d nng=%s instance=%s graph=%s partitions=%lld",
              cfg->listen, pr_http_server_port(app.http), app.advertise, app.instance, cfg->graph,
              cfg->common.partitions);
  return 0;
}

static void teardown(void) {
  if (app.http) pr_http_server_free(app.http, NULL);
  if (app.deliver) recv_deliver_close(app.deliver);
  if (app.lease && !app.draining) recv_lease_close(app.lease);
  if (app.reg && !app.finished) recv_registry_close(app.reg);
  recv_expiry_close(app.expiry);
  if (app.redis) pr_redis_free(app.redis);
  app.http = NULL;
  app.redis = NULL;
  app.finished = true;
  pr_loop_close_all(app.loop); /* runs the close callbacks, frees the ws connections */
  recv_lease_free(app.lease);
  recv_registry_free(app.reg);
  recv_expiry_free(app.expiry);
  pr_store_free(app.store);
  recv_versions_free(app.versions);
  if (app.router) pr_http_router_free(app.router);
  if (app.metrics) pr_metrics_free(app.metrics);
  pr_auth_free(app.auth);
  pr_free(app.advertise);
  recv_scratch_free();
  recv_config_free(&app.cfg);
}

/* glibc raises its mmap threshold to the size of the largest block freed
 * (up to 32 MiB) and its trim threshold to twice that. A connect burst grows
 * hiredis's output buffer to megabytes; once it was freed, later buffers of
 * that size came from the heap, between the connections' small blocks, and
 * the heap kept the holes (measured: ~1/4 of the heap free after a burst of
 * 15,000 connections). Fixed thresholds keep big buffers in mmap (returned
 * when freed) and let the top of the heap shrink. */
static void malloc_tune(void) {
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  mallopt(M_TRIM_THRESHOLD, 256 * 1024);
}

int main(int argc, char **argv) {
  char err[512] = "";
  int rc = recv_config_load(&app.cfg, argc, argv, err, sizeof(err));
  if (rc == 1) return 0;
  if (rc != 0) {
    fprintf(stderr, "presence-receive: %s\n", err);
    return 2;
  }
  pr_log_level level;
  if (pr_log_parse_level(app.cfg.common.log_level, &level) == 0) pr_log_set_level(level);
  pr_loop_ignore_sigpipe();
  malloc_tune();
  app.loop = uv_default_loop();
  rc = setup(err, sizeof(err));
  if (rc != 0) {
    pr_log_error("receive", "cannot start", "err=\"%s\"", err);
    teardown();
    return 1;
  }
  uv_run(app.loop, UV_RUN_DEFAULT);
  teardown();
  return 0;
}
