/* sc_connections.c: the `connections` scenario: N authenticated WebSockets to
 * one receive instance from several processes, held; reports the receive
 * process's RSS growth per connection, the connect rate (a connection counts
 * once its hello and snapshot arrived) and the time until Redis lists them all. */
#include "base.h"
#include "bench.h"
#include "pr_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_WORKERS    64
#define OPEN_IN_FLIGHT 256 /* attempts not yet finished, per process */

typedef struct {
  const bench_config *cfg;
  char **addrs;
  size_t naddrs;
  const char *url;
} conn_job;

/* ---- worker process ------------------------------------------------------- */

typedef struct {
  const conn_job *job;
  int idx, report_fd;
  long long want, made, ok, failed, dropped, errors;
  double last_ok;
  pr_client **clients;
  uint8_t *snap; /* per client: snapshot seen */
  uv_timer_t open_timer, report_timer;
  uv_poll_t ctl;
} conn_worker;

static conn_worker *self; /* the one worker of this process; client args point into self->snap */

static void w_snapshot(pr_client *c, const pr_client_entry *e, size_t n, void *arg) {
  uint8_t *seen = arg;
  (void)e;
  (void)n;
  (void)c;
  if (*seen) return;
  *seen = 1;
  self->ok++;
  self->last_ok = bench_now();
}

static void w_close(pr_client *c, int code, void *arg) {
  uint8_t *seen = arg;
  (void)c;
  (void)code;
  if (*seen)
    self->dropped++; /* closed after it was up */
  else
    self->failed++;
}

static void w_error(pr_client *c, int err, const char *what, void *arg) {
  conn_worker *w = self;
  (void)c;
  (void)arg;
  if (w->errors++ < 3) fprintf(stderr, "worker %d: %s (%s)\n", w->idx, what, pr_strerror(err));
}

static const pr_client_handlers w_handlers = {
    .on_snapshot = w_snapshot, .on_close = w_close, .on_error = w_error};

static void w_open_more(uv_timer_t *t) {
  conn_worker *w = t->data;
  const conn_job *job = w->job;
  while (w->made < w->want && w->made - w->ok - w->failed < OPEN_IN_FLIGHT) {
    char user[64];
    snprintf(user, sizeof(user), "bc-%d-%lld", w->idx, w->made);
    char *tok = bench_token(job->cfg, user);
    pr_client_opts o = {.url = job->url,
                        .token = tok ? tok : "x",
                        .device = "bench",
                        .bind_addr = job->addrs[(size_t)(w->made + w->idx) % job->naddrs],
                        .open_timeout_ms = 30000};
    if (pr_client_new(t->loop, &o, &w_handlers, &w->snap[w->made], &w->clients[w->made]) != 0) {
      w->clients[w->made] = NULL;
      w->failed++;
    }
    pr_free(tok);
    w->made++;
  }
}

static void w_report(uv_timer_t *t) {
  conn_worker *w = t->data;
  bench_report(w->report_fd, "p %lld %lld %lld %.6f", w->ok, w->failed, w->dropped, w->last_ok);
}

static void w_stop(uv_poll_t *p, int status, int events) {
  conn_worker *w = p->data;
  (void)status;
  (void)events;
  for (long long i = 0; i < w->made; i++)
    if (w->clients[i]) pr_client_free(w->clients[i]);
  uv_timer_stop(&w->open_timer);
  uv_timer_stop(&w->report_timer);
  uv_close((uv_handle_t *)&w->open_timer, NULL);
  uv_close((uv_handle_t *)&w->report_timer, NULL);
  uv_close((uv_handle_t *)p, NULL);
}

static int conn_worker_run(int idx, int nw, int report_fd, int control_fd, void *arg) {
  const conn_job *job = arg;
  long long n = job->cfg->connections;
  conn_worker w = {.job = job, .idx = idx, .report_fd = report_fd};
  w.want = n / nw + (idx < n % nw ? 1 : 0);
  w.clients = pr_calloc((size_t)w.want + 1, sizeof(*w.clients));
  w.snap = pr_calloc((size_t)w.want + 1, 1);
  self = &w;
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_timer_init(&loop, &w.open_timer);
  uv_timer_init(&loop, &w.report_timer);
  uv_poll_init(&loop, &w.ctl, control_fd);
  w.open_timer.data = w.report_timer.data = w.ctl.data = &w;
  uv_timer_start(&w.open_timer, w_open_more, 0, 2);
  uv_timer_start(&w.report_timer, w_report, 250, 250);
  uv_poll_start(&w.ctl, UV_READABLE | UV_DISCONNECT, w_stop);
  uv_run(&loop, UV_RUN_DEFAULT);
  w_report(&w.report_timer);
  uv_loop_close(&loop);
  pr_free(w.clients);
  pr_free(w.snap);
  return 0;
}

/* ---- warm-up ------------------------------------------------------------------ */

/* One connection opened and closed before the baseline is read: the first
 * upgrade loads code and one-time state (libcrypto's pages for the first JWT
 * check, about 2 MiB) that no later connection costs again. */
static int warm_done;

static void warm_snapshot(pr_client *c, const pr_client_entry *e, size_t n, void *arg) {
  pr_client_close(c);
}

static void warm_close(pr_client *c, int code, void *arg) {
  warm_done = 1;
  pr_client_free(c);
}

static const pr_client_handlers warm_handlers = {.on_snapshot = warm_snapshot,
                                                 .on_close = warm_close};

static void warm_up(const bench_config *cfg, const char *url) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  char *tok = bench_token(cfg, "bc-warm-up");
  pr_client_opts o = {.url = url, .token = tok ? tok : "x", .device = "warm"};
  pr_client *c;
  warm_done = 0;
  if (pr_client_new(&loop, &o, &warm_handlers, NULL, &c) == 0) {
    double end = bench_now() + 10;
    while (!warm_done && bench_now() < end)
      uv_run(&loop, UV_RUN_ONCE);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  pr_free(tok);
  usleep(500000);
}

/* ---- parent ----------------------------------------------------------------- */

typedef struct {
  long long ok[MAX_WORKERS], failed[MAX_WORKERS], dropped[MAX_WORKERS];
  double last_ok[MAX_WORKERS];
} conn_totals;

static void on_line(int idx, const char *line, void *arg) {
  conn_totals *t = arg;
  sscanf(line, "p %lld %lld %lld %lf", &t->ok[idx], &t->failed[idx], &t->dropped[idx],
         &t->last_ok[idx]);
}

static long long sum(const long long *v, int n) {
  long long s = 0;
  for (int i = 0; i < n; i++)
    s += v[i];
  return s;
}

int sc_connections(const bench_config *cfg) {
  char **recv = NULL;
  size_t nrecv = bench_split(cfg->receive, &recv);
  conn_job job = {.cfg = cfg};
  job.naddrs = bench_source_addrs(cfg->source_addrs, &job.addrs);
  int rc = PR_EINVAL, nw = (int)cfg->processes;
  redisContext *redis = NULL;
  bench_worker w[MAX_WORKERS];
  int started = 0;
  double *sx = NULL, *sy = NULL;
  size_t ns = 0;
  if (nrecv == 0) goto fail;
  job.url = recv[0];
  if (nw > MAX_WORKERS) nw = MAX_WORKERS;
  pid_t pid = (pid_t)cfg->receive_pid;
  if (!pid) pid = bench_pid_of_port(atoi(strrchr(recv[0], ':') + 1));
  if (pid <= 0) {
    fprintf(stderr, "connections: no process found listening at %s (give --receive-pid)\n",
            recv[0]);
    goto fail;
  }
  if (cfg->registration_check && !(redis = bench_redis(cfg))) goto fail;
  long long reg0 = redis ? bench_registered(redis) : 0;
  long rss_cold = bench_rss_kib(pid);
  warm_up(cfg, job.url);
  long rss0 = bench_rss_kib(pid);
  printf("connections: %lld to %s (pid %d, RSS %.1f MiB) from %d processes, %zu source "
         "addresses\n",
         cfg->connections, job.url, (int)pid, rss0 / 1024.0, nw, job.naddrs);
  conn_totals tot = {0};
  double t0 = bench_now();
  if (bench_workers_start(w, nw, conn_worker_run, &job) != 0) goto fail;
  started = 1;
  double next_print = t0 + 1, deadline = t0 + 60 + (double)cfg->connections / 500;
  long long ok = 0, failed = 0;
  while (bench_now() < deadline) {
    bench_workers_poll(w, nw, 100, on_line, &tot);
    ok = sum(tot.ok, nw);
    failed = sum(tot.failed, nw);
    double now = bench_now();
    if (now >= next_print || ok + failed >= cfg->connections) {
      long rss = bench_rss_kib(pid);
      sx = pr_realloc(sx, (ns + 1) * sizeof(*sx));
      sy = pr_realloc(sy, (ns + 1) * sizeof(*sy));
      sx[ns] = (double)ok;
      sy[ns++] = (rss - rss0) / 1024.0;
      printf("  %5.1fs  ready %lld  failed %lld  RSS +%.1f MiB\n", now - t0, ok, failed,
             (rss - rss0) / 1024.0);
      next_print = now + 1;
    }
    if (ok + failed >= cfg->connections) break;
  }
  double t_ready = 0;
  for (int i = 0; i < nw; i++)
    if (tot.last_ok[i] > t_ready) t_ready = tot.last_ok[i];
  t_ready = t_ready > t0 ? t_ready - t0 : 0;
  double t_reg = -1;
  if (redis) {
    while (bench_now() < deadline + 30) {
      if (bench_registered(redis) - reg0 >= ok) {
        t_reg = bench_now() - t0;
        break;
      }
      usleep(20000);
    }
  }
  usleep(2000000); /* let the allocator and the registrations settle */
  long rss1 = bench_rss_kib(pid);
  bench_workers_poll(w, nw, 100, on_line, &tot);
  long long dropped = sum(tot.dropped, nw);
  double per_conn = ok ? (double)(rss1 - rss0) * 1024.0 / (double)ok : 0;
  double per_conn_cold = ok ? (double)(rss1 - rss_cold) * 1024.0 / (double)ok : 0;
  double rate = t_ready > 0 ? (double)ok / t_ready : 0;
  printf("\n  %-34s %12s\n", "figure", "value");
  printf("  %-34s %12lld\n", "connections ready", ok);
  printf("  %-34s %12lld\n", "failed / dropped", failed + dropped);
  printf("  %-34s %12.1f\n", "RSS before (MiB)", rss0 / 1024.0);
  printf("  %-34s %12.1f\n", "RSS after (MiB)", rss1 / 1024.0);
  printf("  %-34s %12.0f\n", "RSS growth per connection (B)", per_conn);
  printf("  %-34s %12.0f\n", "  the same from a cold process (B)", per_conn_cold);
  printf("  %-34s %12.0f\n", "connect rate (ready/s)", rate);
  printf("  %-34s %12.2f\n", "time until all ready (s)", t_ready);
  if (redis) printf("  %-34s %12.2f\n", "time until all registered (s)", t_reg);
  char stamp[32];
  bench_stamp(stamp);
  pr_buf j = PR_BUF_INIT;
  pr_buf_printf(&j,
                "{\"scenario\":\"connections\",\"target\":\"%s\",\"connections\":%lld,"
                "\"processes\":%d,\"ready\":%lld,\"failed\":%lld,\"dropped\":%lld,"
                "\"rss_cold_kib\":%ld,\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,"
                "\"bytes_per_conn\":%.1f,\"bytes_per_conn_cold\":%.1f,"
                "\"connect_rate\":%.1f,\"t_ready_s\":%.3f,\"t_registered_s\":%.3f,\"samples\":[",
                job.url, cfg->connections, nw, ok, failed, dropped, rss_cold, rss0, rss1, per_conn,
                per_conn_cold, rate, t_ready, t_reg);
  for (size_t i = 0; i < ns; i++)
    pr_buf_printf(&j, "%s[%.0f,%.2f]", i ? "," : "", sx[i], sy[i]);
  pr_buf_puts(&j, "],");
  bench_json_machine(&j);
  pr_buf_puts(&j, "}\n");
  bench_write_result(cfg, "connections", "json", &j, stamp);
  pr_buf_clear(&j);
  bench_series s = {"RSS growth (MiB)", sx, sy, ns};
  bench_svg_chart(&j, "receive RSS growth against connections", "connections ready", "MiB", &s, 1);
  bench_write_result(cfg, "connections", "svg", &j, stamp);
  pr_buf_free(&j);
  rc = ok == cfg->connections ? 0 : PR_EIO;
fail:
  if (started && bench_workers_stop(w, nw)) fprintf(stderr, "connections: a worker failed\n");
  if (redis) redisFree(redis);
  pr_free(sx);
  pr_free(sy);
  bench_free_list(recv, nrecv);
  bench_free_list(job.addrs, job.naddrs);
  return rc;
}
