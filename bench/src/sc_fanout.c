/* sc_fanout.c: the `fanout` scenario: U users with K watchers each across the
 * receive instances; users change (HTTP heartbeats alternating online/idle)
 * at a swept rate; measures deliveries per second and the latency from a
 * change's send to each watcher's receipt. Send and receive run in this one
 * process, so one clock serves both ends. Presence frames reach fan_presence
 * through the client's allocation-free scanner (clients/c/client_scan.c), so
 * the bench's own CPU per delivery stays small; each step reports it (getrusage
 * over the step and its drain) with the reads it took, since this process
 * shares the cores with the stack it measures. */
#include "base.h"
#include "bench.h"
#include "http_load.h"
#include "loop.h"
#include "watchers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING 16 /* send times kept per user: later versions are matched to them */

typedef struct {
  const bench_config *cfg;
  long long users;
  uint64_t *base;  /* version before this step */
  uint8_t *online; /* current status is online */
  uint32_t *sent;  /* changes sent this step */
  double *ring;    /* users x RING send times */
  uint64_t *cseq;  /* per connection: next user slot */
  char **req_online, **req_idle;
  size_t *len_online, *len_idle;
  double *lat; /* latencies (ms) of this step */
  size_t nlat, caplat;
  double t_start, t_stop;
  uint64_t in_window, stale, delivered;
  int conns;
} fan_state;

static uint64_t fan_make(pr_buf *req, uint64_t seq, int conn, void *arg) {
  fan_state *s = arg;
  (void)seq;
  /* users are pinned to connections so that one user's changes stay in order */
  long long per_conn = (s->users - conn + s->conns - 1) / s->conns;
  long long i = conn + s->conns * (long long)(s->cseq[conn]++ % (uint64_t)per_conn);
  uint32_t k = s->sent[i]++;
  int to_online = !s->online[i];
  s->online[i] = (uint8_t)to_online;
  s->ring[i * RING + k % RING] = bench_now();
  if (to_online)
    pr_buf_append(req, s->req_online[i], s->len_online[i]);
  else
    pr_buf_append(req, s->req_idle[i], s->len_idle[i]);
  return (uint64_t)i;
}

static void fan_presence(pr_client *c, const pr_client_entry *e, void *arg) {
  fan_state *s = arg;
  (void)c;
  double now = bench_now();
  if (strncmp(e->user, "fu", 2) != 0 || !s->base) return;
  long long i = atoll(e->user + 2);
  if (i < 0 || i >= s->users) return;
  if (e->version <= s->base[i]) return; /* from before this step */
  uint64_t k = e->version - s->base[i] - 1;
  if (k >= s->sent[i] || s->sent[i] - k > RING) {
    s->stale++;
    return;
  }
  s->delivered++;
  if (now <= s->t_stop) s->in_window++;
  if (s->nlat == s->caplat) {
    s->caplat = s->caplat ? s->caplat * 2 : 65536;
    s->lat = pr_realloc(s->lat, s->caplat * sizeof(*s->lat));
  }
  s->lat[s->nlat++] = (now - s->ring[i * RING + k % RING]) * 1000.0;
}

static const pr_client_handlers fan_handlers = {.on_presence = fan_presence};

typedef struct {
  double target, changes, deliveries, expected, received, p50, p90, p99, max;
  uint64_t stale, http_errors;
  double cpu_us_per_delivery, reads_per_delivery; /* this process, over the step */
} fan_step;

static void build_requests(fan_state *s, const bench_config *cfg) {
  size_t n = (size_t)s->users;
  s->req_online = pr_calloc(n, sizeof(char *));
  s->req_idle = pr_calloc(n, sizeof(char *));
  s->len_online = pr_calloc(n, sizeof(size_t));
  s->len_idle = pr_calloc(n, sizeof(size_t));
  for (size_t i = 0; i < n; i++) {
    char user[64];
    snprintf(user, sizeof(user), "fu%zu", i);
    char *tok = bench_token(cfg, user);
    for (int on = 0; on < 2; on++) {
      const char *body = on ? "{\"device\":\"hb\",\"status\":\"online\"}"
                            : "{\"device\":\"hb\",\"status\":\"idle\"}";
      pr_buf b = PR_BUF_INIT;
      pr_buf_printf(&b,
                    "POST /v1/heartbeat HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                    cfg->send, tok ? tok : "x", strlen(body), body);
      if (on)
        s->req_online[i] = pr_buf_take(&b, &s->len_online[i]);
      else
        s->req_idle[i] = pr_buf_take(&b, &s->len_idle[i]);
    }
    pr_free(tok);
  }
}

static int run_step(uv_loop_t *loop, fan_state *s, redisContext *redis, double rate, char **addrs,
                    size_t naddrs, fan_step *out) {
  const bench_config *cfg = s->cfg;
  if (watch_versions(redis, cfg, "fu", s->users, s->base, s->online) != 0) return PR_EREDIS;
  memset(s->sent, 0, (size_t)s->users * sizeof(*s->sent));
  memset(s->cseq, 0, (size_t)s->conns * sizeof(*s->cseq));
  s->nlat = 0;
  s->stale = s->delivered = s->in_window = 0;
  http_load_opts o = {.url = cfg->send,
                      .addrs = addrs,
                      .naddrs = naddrs,
                      .conns = s->conns,
                      .pipeline = (int)cfg->pipeline,
                      .rate = rate,
                      .make = fan_make,
                      .arg = s};
  http_load *l;
  bench_self_cost c0, c1;
  bench_self_cost_get(&c0);
  int rc = http_load_start(loop, &o, &l);
  if (rc) return rc;
  s->t_start = bench_now();
  s->t_stop = s->t_start + (double)cfg->duration_s;
  uint64_t last = 0;
  for (long long sec = 0; sec < cfg->duration_s; sec++) {
    watch_run_for(loop, 1.0);
    printf("  rate %8.0f  %3llds  deliveries/s %9llu  lat samples %zu\n", rate, sec + 1,
           (unsigned long long)(s->delivered - last), s->nlat);
    last = s->delivered;
  }
  http_load_pause(l);
  double t_end = bench_now();
  watch_run_for(loop, 2.0); /* drain what is in flight */
  http_load_stats st;
  http_load_stats_get(l, &st);
  http_load_free(l);
  watch_run_for(loop, 0.05);
  bench_self_cost_get(&c1);
  double got = s->delivered ? (double)s->delivered : 1.0;
  out->cpu_us_per_delivery = (c1.cpu_s - c0.cpu_s) * 1e6 / got;
  out->reads_per_delivery = c0.reads >= 0 ? (double)(c1.reads - c0.reads) / got : -1;
  out->target = rate;
  out->changes = (double)st.ok / (t_end - s->t_start);
  out->deliveries = (double)s->in_window / (t_end - s->t_start);
  out->expected =
      (double)st.ok * (double)(cfg->per_user < cfg->watchers ? cfg->per_user : cfg->watchers);
  out->stale = s->stale;
  out->received = (double)s->delivered;
  out->http_errors = st.errors;
  out->p50 = bench_quantile(s->lat, s->nlat, 0.50);
  out->p90 = bench_quantile(s->lat, s->nlat, 0.90);
  out->p99 = bench_quantile(s->lat, s->nlat, 0.99);
  out->max = s->nlat ? s->lat[s->nlat - 1] : 0;
  printf("  -> changes/s %.0f, deliveries/s %.0f, received %llu of %.0f expected, p50 %.2f p99 "
         "%.2f ms; bench %.2f us CPU and %.2f reads per delivery\n",
         out->changes, out->deliveries, (unsigned long long)s->delivered, out->expected, out->p50,
         out->p99, out->cpu_us_per_delivery, out->reads_per_delivery);
  return 0;
}

int sc_fanout(const bench_config *cfg) {
  fan_state s = {.cfg = cfg, .users = cfg->users};
  s.conns = (int)(cfg->http_conns < cfg->users ? cfg->http_conns : cfg->users);
  char **rates = NULL, **addrs = NULL;
  size_t nrates = cfg->rate ? 0 : bench_split(cfg->rates, &rates);
  size_t naddrs = bench_source_addrs(cfg->source_addrs, &addrs);
  fan_step *steps = pr_calloc(nrates + 1, sizeof(*steps));
  size_t nsteps = 0, n = (size_t)cfg->users;
  watch_set ws = {0};
  uv_loop_t loop;
  uv_loop_init(&loop);
  int rc = PR_EREDIS;
  redisContext *redis = bench_redis(cfg);
  if (!redis) goto fail;
  printf("fanout: %lld users x %lld watchers each, %lld watcher connections over %s\n", cfg->users,
         cfg->per_user, cfg->watchers, cfg->receive);
  if ((rc = watch_graph(redis, "fu", cfg->users, "fw", cfg->watchers, cfg->per_user)) != 0)
    goto fail;
  s.base = pr_calloc(n, sizeof(*s.base));
  s.online = pr_calloc(n, 1);
  s.sent = pr_calloc(n, sizeof(*s.sent));
  s.ring = pr_calloc(n * RING, sizeof(*s.ring));
  s.cseq = pr_calloc((size_t)s.conns, sizeof(*s.cseq));
  build_requests(&s, cfg);
  double t0 = bench_now();
  long long ready = watch_connect(&loop, cfg, "fw", cfg->watchers, &fan_handlers, &s, &ws, 120);
  printf("  %lld of %lld watchers ready in %.1fs\n", ready, cfg->watchers, bench_now() - t0);
  if (ready < cfg->watchers) {
    rc = PR_EIO;
    goto fail;
  }
  watch_run_for(&loop, 1.0);
  for (size_t r = 0; r < (cfg->rate ? 1 : nrates); r++) {
    double rate = cfg->rate ? (double)cfg->rate : atof(rates[r]);
    if ((rc = run_step(&loop, &s, redis, rate, addrs, naddrs, &steps[nsteps])) != 0) goto fail;
    nsteps++;
  }
  printf("\n  %10s %10s %12s %10s %8s %8s %8s %8s %8s %9s\n", "target/s", "changes/s",
         "deliveries/s", "lost", "stale", "p50 ms", "p90 ms", "p99 ms", "max ms", "bench us");
  for (size_t i = 0; i < nsteps; i++) {
    fan_step *p = &steps[i];
    printf("  %10.0f %10.0f %12.0f %10.0f %8llu %8.2f %8.2f %8.2f %8.1f %9.2f\n", p->target,
           p->changes, p->deliveries, p->expected - p->received, (unsigned long long)p->stale,
           p->p50, p->p90, p->p99, p->max, p->cpu_us_per_delivery);
  }
  char stamp[32];
  bench_stamp(stamp);
  pr_buf j = PR_BUF_INIT;
  pr_buf_printf(&j,
                "{\"scenario\":\"fanout\",\"users\":%lld,\"per_user\":%lld,\"watchers\":%lld,"
                "\"receive\":\"%s\",\"duration_s\":%lld,\"steps\":[",
                cfg->users, cfg->per_user, cfg->watchers, cfg->receive, cfg->duration_s);
  double x[64], y50[64], y90[64], y99[64];
  for (size_t i = 0; i < nsteps; i++) {
    fan_step *p = &steps[i];
    pr_buf_printf(
        &j,
        "%s{\"target_changes_per_s\":%.0f,\"changes_per_s\":%.1f,"
        "\"deliveries_per_s\":%.1f,\"expected_deliveries\":%.0f,\"received\":%.0f,\"stale\":%llu,"
        "\"http_errors\":%llu,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
        "\"max_ms\":%.3f,\"bench_cpu_us_per_delivery\":%.3f,\"bench_reads_per_delivery\":%.3f}",
        i ? "," : "", p->target, p->changes, p->deliveries, p->expected, p->received,
        (unsigned long long)p->stale, (unsigned long long)p->http_errors, p->p50, p->p90, p->p99,
        p->max, p->cpu_us_per_delivery, p->reads_per_delivery);
    if (i < 64) {
      x[i] = p->deliveries;
      y50[i] = p->p50;
      y90[i] = p->p90;
      y99[i] = p->p99;
    }
  }
  pr_buf_puts(&j, "],");
  bench_json_machine(&j);
  pr_buf_puts(&j, "}\n");
  bench_write_result(cfg, "fanout", "json", &j, stamp);
  pr_buf_clear(&j);
  size_t np = nsteps < 64 ? nsteps : 64;
  bench_series ser[3] = {{"p50", x, y50, np}, {"p90", x, y90, np}, {"p99", x, y99, np}};
  bench_svg_chart(&j, "fanout latency against load", "deliveries per second", "latency (ms)", ser,
                  3);
  bench_write_result(cfg, "fanout", "svg", &j, stamp);
  pr_buf_free(&j);
  rc = 0;
fail:
  watch_set_free(&ws);
  watch_run_for(&loop, 0.1);
  pr_loop_close_all(&loop);
  if (redis) redisFree(redis);
  for (size_t i = 0; s.req_online && i < n; i++) {
    pr_free(s.req_online[i]);
    pr_free(s.req_idle[i]);
  }
  pr_free(s.req_online);
  pr_free(s.req_idle);
  pr_free(s.len_online);
  pr_free(s.len_idle);
  pr_free(s.base);
  pr_free(s.online);
  pr_free(s.sent);
  pr_free(s.ring);
  pr_free(s.cseq);
  pr_free(s.lat);
  pr_free(steps);
  bench_free_list(rates, nrates);
  bench_free_list(addrs, naddrs);
  return rc;
}
