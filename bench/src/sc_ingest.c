/* sc_ingest.c: the `ingest` scenario: HTTP heartbeats per second over
 * keep-alive pipelined connections to presence-send (closed loop, K
 * connections over several processes), then status frames per second over
 * WebSockets (counted where they land: the Redis script calls). */
#include "base.h"
#include "bench.h"
#include "http_load.h"
#include "pr_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_WORKERS 64
#define TOKENS      1000 /* distinct users per process */
#define WARMUP_S    1.0

typedef struct {
  const bench_config *cfg;
  char **addrs;
  size_t naddrs;
  char **recv;
  size_t nrecv;
} ingest_job;

/* ---- HTTP worker --------------------------------------------------------- */

typedef struct {
  char **reqs;
  size_t *lens;
  http_load *load;
  int report_fd;
  double t_start, t_measure, t_end;
  uint64_t ok_at_measure, err_at_measure;
  uv_timer_t tick;
  int measuring;
} hb_worker;

static uint64_t hb_make(pr_buf *req, uint64_t seq, int conn, void *arg) {
  (void)conn;
  hb_worker *w = arg;
  size_t i = (size_t)(seq % TOKENS);
  pr_buf_append(req, w->reqs[i], w->lens[i]);
  return i;
}

static void hb_tick(uv_timer_t *t) {
  hb_worker *w = t->data;
  http_load_stats st;
  http_load_stats_get(w->load, &st);
  double now = bench_now();
  if (!w->measuring && now - w->t_start >= WARMUP_S) {
    w->measuring = 1;
    w->t_measure = now;
    w->ok_at_measure = st.ok;
    w->err_at_measure = st.errors;
  }
  bench_report(w->report_fd, "p %llu", (unsigned long long)st.ok);
  if (w->measuring && now >= w->t_end) {
    bench_report(w->report_fd, "r %llu %llu %.6f", (unsigned long long)(st.ok - w->ok_at_measure),
                 (unsigned long long)(st.errors - w->err_at_measure), now - w->t_measure);
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    http_load_free(w->load);
  }
}

static int hb_worker_run(int idx, int nw, int report_fd, int control_fd, void *arg) {
  const ingest_job *job = arg;
  const bench_config *cfg = job->cfg;
  (void)control_fd;
  hb_worker w = {.report_fd = report_fd};
  w.reqs = pr_calloc(TOKENS, sizeof(char *));
  w.lens = pr_calloc(TOKENS, sizeof(size_t));
  static const char body[] = "{\"device\":\"hb\",\"status\":\"online\"}";
  for (int i = 0; i < TOKENS; i++) {
    char user[64];
    snprintf(user, sizeof(user), "bi-%d-%d", idx, i);
    char *tok = bench_token(cfg, user);
    pr_buf b = PR_BUF_INIT;
    pr_buf_printf(&b,
                  "POST /v1/heartbeat HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                  "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                  cfg->send, tok ? tok : "x", sizeof(body) - 1, body);
    pr_free(tok);
    w.reqs[i] = pr_buf_take(&b, &w.lens[i]);
  }
  int conns = (int)(cfg->http_conns / nw + (idx < cfg->http_conns % nw ? 1 : 0));
  if (conns < 1) conns = 1;
  uv_loop_t loop;
  uv_loop_init(&loop);
  http_load_opts o = {.url = cfg->send,
                      .addrs = job->addrs + (size_t)idx % job->naddrs,
                      .naddrs = 1,
                      .conns = conns,
                      .pipeline = (int)cfg->pipeline,
                      .make = hb_make,
                      .arg = &w};
  int rc = http_load_start(&loop, &o, &w.load);
  if (rc == 0) {
    w.t_start = bench_now();
    w.t_end = w.t_start + WARMUP_S + (double)cfg->duration_s;
    uv_timer_init(&loop, &w.tick);
    w.tick.data = &w;
    uv_timer_start(&w.tick, hb_tick, 250, 250);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(&loop);
  for (int i = 0; i < TOKENS; i++)
    pr_free(w.reqs[i]);
  pr_free(w.reqs);
  pr_free(w.lens);
  return rc;
}

/* ---- WebSocket worker ------------------------------------------------------ */

typedef struct {
  pr_client **c;
  long long n, ready, frames;
  int report_fd, go;
  uv_timer_t tick, send;
  uv_poll_t ctl;
  long long round;
  double rate;
} ws_worker;

static ws_worker *ws_self;

static void ws_snapshot(pr_client *c, const pr_client_entry *e, size_t n, void *arg) {
  (void)c;
  (void)e;
  (void)n;
  (void)arg;
  ws_self->ready++;
}

static const pr_client_handlers ws_handlers = {.on_snapshot = ws_snapshot};

/* Every 10 ms each client sends its share of rate frames/s, alternating. */
static void ws_send(uv_timer_t *t) {
  ws_worker *w = t->data;
  w->round++;
  long long per_round = (long long)(w->rate / 100.0 * (double)w->n + 0.5);
  for (long long k = 0; k < per_round; k++) {
    long long i = (w->round * per_round + k) % w->n;
    if (pr_client_set_status(w->c[i], (w->round + k / w->n) % 2 ? "idle" : "online") == 0)
      w->frames++;
  }
}

static void ws_tick(uv_timer_t *t) {
  ws_worker *w = t->data;
  bench_report(w->report_fd, "p %lld %lld", w->ready, w->frames);
}

static void ws_control(uv_poll_t *p, int status, int events) {
  ws_worker *w = p->data;
  char ch = 0;
  (void)status;
  (void)events;
  if (read(p->io_watcher.fd, &ch, 1) == 1 && ch == 'g') {
    uv_timer_start(&w->send, ws_send, 10, 10);
    return;
  }
  for (long long i = 0; i < w->n; i++)
    pr_client_free(w->c[i]);
  uv_close((uv_handle_t *)&w->tick, NULL);
  uv_close((uv_handle_t *)&w->send, NULL);
  uv_close((uv_handle_t *)p, NULL);
}

static int ws_worker_run(int idx, int nw, int report_fd, int control_fd, void *arg) {
  const ingest_job *job = arg;
  const bench_config *cfg = job->cfg;
  ws_worker w = {.report_fd = report_fd, .rate = (double)cfg->ws_rate};
  ws_self = &w;
  w.n = cfg->connections / nw + (idx < cfg->connections % nw ? 1 : 0);
  w.c = pr_calloc((size_t)w.n + 1, sizeof(*w.c));
  uv_loop_t loop;
  uv_loop_init(&loop);
  for (long long i = 0; i < w.n; i++) {
    char user[64];
    snprintf(user, sizeof(user), "bw-%d-%lld", idx, i);
    char *tok = bench_token(cfg, user);
    pr_client_opts o = {.url = job->recv[(size_t)i % job->nrecv],
                        .token = tok ? tok : "x",
                        .device = "ws",
                        .reconnect = 1,
                        .bind_addr = job->addrs[(size_t)(i + idx) % job->naddrs]};
    if (pr_client_new(&loop, &o, &ws_handlers, &w, &w.c[i]) != 0) {
      pr_free(tok);
      return PR_EINVAL;
    }
    pr_free(tok);
  }
  uv_timer_init(&loop, &w.tick);
  uv_timer_init(&loop, &w.send);
  uv_poll_init(&loop, &w.ctl, control_fd);
  w.tick.data = w.send.data = w.ctl.data = &w;
  uv_timer_start(&w.tick, ws_tick, 250, 250);
  uv_poll_start(&w.ctl, UV_READABLE | UV_DISCONNECT, ws_control);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  pr_free(w.c);
  return 0;
}

/* ---- parent ------------------------------------------------------------------ */

typedef struct {
  unsigned long long progress[MAX_WORKERS], ok[MAX_WORKERS], err[MAX_WORKERS];
  long long ready[MAX_WORKERS], frames[MAX_WORKERS];
  double secs[MAX_WORKERS];
  int done;
} ingest_totals;

static void hb_line(int idx, const char *line, void *arg) {
  ingest_totals *t = arg;
  if (line[0] == 'p') sscanf(line, "p %llu", &t->progress[idx]);
  if (line[0] == 'r' &&
      sscanf(line, "r %llu %llu %lf", &t->ok[idx], &t->err[idx], &t->secs[idx]) == 3)
    t->done++;
}

static void ws_line(int idx, const char *line, void *arg) {
  ingest_totals *t = arg;
  sscanf(line, "p %lld %lld", &t->ready[idx], &t->frames[idx]);
}

static double http_part(const ingest_job *job, redisContext *redis, double *err_out,
                        double *script_rate) {
  const bench_config *cfg = job->cfg;
  int nw = (int)(cfg->processes > MAX_WORKERS ? MAX_WORKERS : cfg->processes);
  bench_worker w[MAX_WORKERS];
  ingest_totals t = {0};
  printf("ingest/http: %lld connections x %lld pipelined to %s, %d processes, %llds\n",
         cfg->http_conns, cfg->pipeline, cfg->send, nw, cfg->duration_s);
  if (bench_workers_start(w, nw, hb_worker_run, (void *)job) != 0) return -1;
  double t0 = bench_now(), next = t0 + 1, s0 = 0;
  long long calls0 = 0;
  unsigned long long last = 0;
  while (t.done < nw && bench_workers_poll(w, nw, 100, hb_line, &t) > 0) {
    double now = bench_now();
    if (!calls0 && now - t0 >= WARMUP_S) {
      calls0 = bench_redis_script_calls(redis);
      s0 = now;
    }
    if (now >= next) {
      unsigned long long sum = 0;
      for (int i = 0; i < nw; i++)
        sum += t.progress[i];
      printf("  %5.1fs  %8.0f heartbeats/s\n", now - t0, (double)(sum - last) / (now - next + 1));
      last = sum;
      next = now + 1;
    }
  }
  long long calls1 = bench_redis_script_calls(redis);
  double s1 = bench_now();
  bench_workers_stop(w, nw);
  double rate = 0, errs = 0;
  for (int i = 0; i < nw; i++) {
    if (t.secs[i] > 0) rate += (double)t.ok[i] / t.secs[i];
    errs += (double)t.err[i];
  }
  *err_out = errs;
  *script_rate = s1 > s0 && calls0 ? (double)(calls1 - calls0) / (s1 - s0) : 0;
  return rate;
}

static double ws_part(const ingest_job *job, redisContext *redis, double *sent_rate) {
  const bench_config *cfg = job->cfg;
  int nw = (int)(cfg->processes > MAX_WORKERS ? MAX_WORKERS : cfg->processes);
  bench_worker w[MAX_WORKERS];
  ingest_totals t = {0};
  printf("ingest/ws: %lld WebSockets over %zu receive instances, %lld status frames/s each\n",
         cfg->connections, job->nrecv, cfg->ws_rate);
  if (bench_workers_start(w, nw, ws_worker_run, (void *)job) != 0) return -1;
  double t0 = bench_now();
  long long ready = 0;
  while (bench_now() - t0 < 60) {
    bench_workers_poll(w, nw, 200, ws_line, &t);
    ready = 0;
    for (int i = 0; i < nw; i++)
      ready += t.ready[i];
    if (ready >= cfg->connections) break;
  }
  printf("  %lld connections ready in %.1fs\n", ready, bench_now() - t0);
  for (int i = 0; i < nw; i++) {
    ssize_t r = write(w[i].control_fd, "g", 1);
    (void)r;
  }
  double s0 = bench_now() + 1, next = bench_now() + 1;
  long long calls0 = 0, f0 = 0, flast = 0;
  while (bench_now() < s0 + (double)cfg->duration_s) {
    bench_workers_poll(w, nw, 100, ws_line, &t);
    long long f = 0;
    for (int i = 0; i < nw; i++)
      f += t.frames[i];
    if (!calls0 && bench_now() >= s0) {
      calls0 = bench_redis_script_calls(redis);
      f0 = f;
    }
    if (bench_now() >= next) {
      printf("  %5.1fs  %8lld frames sent\n", bench_now() - t0, f - flast);
      flast = f;
      next += 1;
    }
  }
  long long calls1 = bench_redis_script_calls(redis), f1 = 0;
  double s1 = bench_now();
  bench_workers_poll(w, nw, 300, ws_line, &t);
  for (int i = 0; i < nw; i++)
    f1 += t.frames[i];
  bench_workers_stop(w, nw);
  *sent_rate = (double)(f1 - f0) / (s1 - s0);
  return (double)(calls1 - calls0) / (s1 - s0);
}

int sc_ingest(const bench_config *cfg) {
  ingest_job job = {.cfg = cfg};
  job.naddrs = bench_source_addrs(cfg->source_addrs, &job.addrs);
  job.nrecv = bench_split(cfg->receive, &job.recv);
  redisContext *redis = bench_redis(cfg);
  int rc = PR_EUNAVAIL;
  if (!redis) goto fail;
  double errs = 0, script_rate = 0;
  double hb = http_part(&job, redis, &errs, &script_rate);
  double ws_sent = 0, ws = 0;
  if (cfg->ws_rate > 0 && job.nrecv) ws = ws_part(&job, redis, &ws_sent);
  printf("\n  %-36s %12s\n", "figure", "value");
  printf("  %-36s %12.0f\n", "HTTP heartbeats/s (204)", hb);
  printf("  %-36s %12.0f\n", "HTTP errors", errs);
  printf("  %-36s %12.0f\n", "Redis script calls/s (HTTP part)", script_rate);
  if (cfg->ws_rate > 0) {
    printf("  %-36s %12.0f\n", "WS status frames sent/s", ws_sent);
    printf("  %-36s %12.0f\n", "WS status frames stored/s (Redis)", ws);
  }
  char stamp[32];
  bench_stamp(stamp);
  pr_buf j = PR_BUF_INIT;
  pr_buf_printf(&j,
                "{\"scenario\":\"ingest\",\"send\":\"%s\",\"http_conns\":%lld,\"pipeline\":%lld,"
                "\"processes\":%lld,\"duration_s\":%lld,\"heartbeats_per_s\":%.1f,"
                "\"http_errors\":%.0f,\"redis_scripts_per_s\":%.1f,\"ws_connections\":%lld,"
                "\"ws_rate_each\":%lld,\"ws_frames_sent_per_s\":%.1f,"
                "\"ws_frames_stored_per_s\":%.1f,",
                cfg->send, cfg->http_conns, cfg->pipeline, cfg->processes, cfg->duration_s, hb,
                errs, script_rate, cfg->ws_rate > 0 ? cfg->connections : 0, cfg->ws_rate, ws_sent,
                ws);
  bench_json_machine(&j);
  pr_buf_puts(&j, "}\n");
  bench_write_result(cfg, "ingest", "json", &j, stamp);
  pr_buf_free(&j);
  rc = hb > 0 ? 0 : PR_EIO;
fail:
  if (redis) redisFree(redis);
  bench_free_list(job.addrs, job.naddrs);
  bench_free_list(job.recv, job.nrecv);
  return rc;
}
