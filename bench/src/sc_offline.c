/* sc_offline.c: the `offline` scenario: U HTTP devices heartbeat once (to a
 * presence-send running with a short --heartbeat-ttl-ms) and then stop; the
 * lag is the time from each device's deadline (send time + ttl) to its
 * watcher's offline frame. Bounded by ttl + the fanout sweep interval. */
#include "base.h"
#include "bench.h"
#include "http_load.h"
#include "loop.h"
#include "watchers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  long long users;
  double *sent_at, *lag; /* lag < 0: no offline frame yet */
  char **reqs;
  size_t *lens;
  long long offline;
  int armed;
} off_state;

static uint64_t off_make(pr_buf *req, uint64_t seq, int conn, void *arg) {
  off_state *s = arg;
  (void)conn;
  size_t i = (size_t)(seq % (uint64_t)s->users);
  s->sent_at[i] = bench_now();
  pr_buf_append(req, s->reqs[i], s->lens[i]);
  return i;
}

static void off_presence(pr_client *c, const pr_client_entry *e, void *arg) {
  off_state *s = arg;
  (void)c;
  if (!s->armed || strncmp(e->user, "ou", 2) != 0 || strcmp(e->status, "offline") != 0) return;
  long long i = atoll(e->user + 2);
  if (i < 0 || i >= s->users || s->sent_at[i] <= 0 || s->lag[i] >= 0) return;
  s->lag[i] = bench_now() - s->sent_at[i]; /* minus ttl below */
  s->offline++;
}

static const pr_client_handlers off_handlers = {.on_presence = off_presence};

int sc_offline(const bench_config *cfg) {
  off_state s = {.users = cfg->users};
  size_t n = (size_t)cfg->users;
  long long nw = cfg->watchers < cfg->users ? cfg->watchers : cfg->users;
  s.sent_at = pr_calloc(n, sizeof(double));
  s.lag = pr_malloc(n * sizeof(double));
  s.reqs = pr_calloc(n, sizeof(char *));
  s.lens = pr_calloc(n, sizeof(size_t));
  for (size_t i = 0; i < n; i++) {
    s.lag[i] = -1;
    char user[64];
    snprintf(user, sizeof(user), "ou%zu", i);
    char *tok = bench_token(cfg, user);
    static const char body[] = "{\"device\":\"phone\",\"status\":\"online\"}";
    pr_buf b = PR_BUF_INIT;
    pr_buf_printf(&b,
                  "POST /v1/heartbeat HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                  "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                  cfg->send, tok ? tok : "x", sizeof(body) - 1, body);
    pr_free(tok);
    s.reqs[i] = pr_buf_take(&b, &s.lens[i]);
  }
  char **addrs = NULL;
  size_t naddrs = bench_source_addrs(cfg->source_addrs, &addrs);
  watch_set ws = {0};
  uv_loop_t loop;
  uv_loop_init(&loop);
  double ttl = (double)cfg->ttl_ms / 1000.0;
  int rc = PR_EREDIS;
  redisContext *redis = bench_redis(cfg);
  if (!redis) goto fail;
  if ((rc = watch_graph(redis, "ou", cfg->users, "ow", nw, 1)) != 0) goto fail;
  printf("offline: %lld HTTP devices, ttl %.1fs, %lld watchers, send %s\n", cfg->users, ttl, nw,
         cfg->send);
  if (watch_connect(&loop, cfg, "ow", nw, &off_handlers, &s, &ws, 60) < nw) {
    fprintf(stderr, "offline: watchers not ready\n");
    rc = PR_EIO;
    goto fail;
  }
  s.armed = 1;
  /* one heartbeat per device, spread over one second, then silence */
  http_load_opts o = {.url = cfg->send,
                      .addrs = addrs,
                      .naddrs = naddrs,
                      .conns = (int)(cfg->http_conns < 8 ? cfg->http_conns : 8),
                      .pipeline = (int)cfg->pipeline,
                      .rate = (double)cfg->users,
                      .limit = (uint64_t)cfg->users,
                      .make = off_make,
                      .arg = &s};
  http_load *l;
  if ((rc = http_load_start(&loop, &o, &l)) != 0) goto fail;
  double t0 = bench_now(), deadline = t0 + 1 + ttl + 15;
  while (s.offline < s.users && bench_now() < deadline) {
    watch_run_for(&loop, 0.5);
    printf("  %5.1fs  offline seen %lld of %lld\n", bench_now() - t0, s.offline, s.users);
  }
  http_load_stats st;
  http_load_stats_get(l, &st);
  http_load_free(l);
  double *lags = pr_malloc(n * sizeof(double));
  size_t nl = 0;
  for (size_t i = 0; i < n; i++)
    if (s.lag[i] >= 0) lags[nl++] = (s.lag[i] - ttl) * 1000.0;
  double p50 = bench_quantile(lags, nl, 0.5), p90 = bench_quantile(lags, nl, 0.9),
         p99 = bench_quantile(lags, nl, 0.99), mx = nl ? lags[nl - 1] : 0, mn = nl ? lags[0] : 0;
  printf("\n  %-36s %12s\n", "figure", "value");
  printf("  %-36s %12llu\n", "heartbeats answered 2xx", (unsigned long long)st.ok);
  printf("  %-36s %12zu\n", "offline frames seen", nl);
  printf("  %-36s %12.0f\n", "lag after deadline min (ms)", mn);
  printf("  %-36s %12.0f\n", "lag p50 (ms)", p50);
  printf("  %-36s %12.0f\n", "lag p90 (ms)", p90);
  printf("  %-36s %12.0f\n", "lag p99 (ms)", p99);
  printf("  %-36s %12.0f\n", "lag max (ms)", mx);
  char stamp[32];
  bench_stamp(stamp);
  pr_buf j = PR_BUF_INIT;
  pr_buf_printf(&j,
                "{\"scenario\":\"offline\",\"users\":%lld,\"ttl_ms\":%lld,\"answered\":%llu,"
                "\"offline_seen\":%zu,\"lag_ms\":{\"min\":%.1f,\"p50\":%.1f,\"p90\":%.1f,"
                "\"p99\":%.1f,\"max\":%.1f},",
                cfg->users, cfg->ttl_ms, (unsigned long long)st.ok, nl, mn, p50, p90, p99, mx);
  bench_json_machine(&j);
  pr_buf_puts(&j, "}\n");
  bench_write_result(cfg, "offline", "json", &j, stamp);
  pr_buf_free(&j);
  pr_free(lags);
  rc = nl == n ? 0 : PR_EIO;
fail:
  watch_set_free(&ws);
  watch_run_for(&loop, 0.1);
  pr_loop_close_all(&loop);
  if (redis) redisFree(redis);
  for (size_t i = 0; i < n; i++)
    pr_free(s.reqs[i]);
  pr_free(s.reqs);
  pr_free(s.lens);
  pr_free(s.sent_at);
  pr_free(s.lag);
  bench_free_list(addrs, naddrs);
  return rc;
}
