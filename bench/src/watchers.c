/* watchers.c: the contact graph, the version read-back and the watcher
 * connections shared by the fanout and offline scenarios (watchers.h). */
#include "watchers.h"
#include "base.h"
#include "partition.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int watch_graph(redisContext *rc, const char *up, long long users, const char *wp,
                long long watchers, long long per_user) {
  long long cmds = 0;
  int rc_out = 0;
  if (per_user > watchers) per_user = watchers;
  for (long long i = 0; i < users; i++) {
    char u[64];
    snprintf(u, sizeof(u), "%s%lld", up, i);
    for (long long m = 0; m < per_user; m++) {
      char w[64];
      snprintf(w, sizeof(w), "%s%lld", wp, (i * per_user + m) % watchers);
      redisAppendCommand(rc, "SADD ct:%s %s", u, w);
      redisAppendCommand(rc, "SADD cw:%s %s", w, u);
      cmds += 2;
    }
    /* read replies as we go so the pipe never holds more than ~20k commands */
    while (cmds > 20000 || (i == users - 1 && cmds > 0)) {
      redisReply *r = NULL;
      if (redisGetReply(rc, (void **)&r) != REDIS_OK) return PR_EREDIS;
      if (r->type == REDIS_REPLY_ERROR) rc_out = PR_EREDIS;
      freeReplyObject(r);
      cmds--;
    }
  }
  return rc_out;
}

int watch_versions(redisContext *rc, const bench_config *cfg, const char *up, long long users,
                   uint64_t *ver, uint8_t *online) {
  for (long long i = 0; i < users; i++) {
    char u[64], key[PR_KEY_MAX];
    snprintf(u, sizeof(u), "%s%lld", up, i);
    pr_key_presence(key, sizeof(key),
                    pr_partition_of(u, strlen(u), (unsigned)cfg->common.partitions), u);
    redisAppendCommand(rc, "HMGET %s ver st", key);
  }
  for (long long i = 0; i < users; i++) {
    redisReply *r = NULL;
    if (redisGetReply(rc, (void **)&r) != REDIS_OK) return PR_EREDIS;
    ver[i] = 0;
    online[i] = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
      if (r->element[0]->type == REDIS_REPLY_STRING)
        ver[i] = strtoull(r->element[0]->str, NULL, 10);
      online[i] =
          r->element[1]->type == REDIS_REPLY_STRING && strcmp(r->element[1]->str, "online") == 0;
    }
    freeReplyObject(r);
  }
  return 0;
}

static void stop_loop(uv_timer_t *t) { uv_stop(t->loop); }

void watch_run_for(uv_loop_t *loop, double s) {
  uv_timer_t t;
  uv_timer_init(loop, &t);
  uv_timer_start(&t, stop_loop, (uint64_t)(s * 1000), 0);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
}

long long watch_connect(uv_loop_t *loop, const bench_config *cfg, const char *wp, long long n,
                        const pr_client_handlers *h, void *arg, watch_set *ws, double timeout_s) {
  char **recv = NULL, **addrs = NULL;
  size_t nrecv = bench_split(cfg->receive, &recv);
  size_t naddrs = bench_source_addrs(cfg->source_addrs, &addrs);
  ws->c = pr_calloc((size_t)n + 1, sizeof(*ws->c));
  ws->n = 0;
  ws->ready = 0;
  for (long long j = 0; j < n && nrecv; j++) {
    char user[64];
    snprintf(user, sizeof(user), "%s%lld", wp, j);
    char *tok = bench_token(cfg, user);
    pr_client_opts o = {.url = recv[(size_t)j % nrecv],
                        .token = tok ? tok : "x",
                        .device = "w",
                        .reconnect = 1,
                        .bind_addr = addrs[(size_t)j % naddrs],
                        .open_timeout_ms = 30000};
    if (pr_client_new(loop, &o, h, arg, &ws->c[ws->n]) == 0) ws->n++;
    pr_free(tok);
    if (j % 256 == 255) watch_run_for(loop, 0.002); /* do not flood the accept queue */
  }
  double t0 = bench_now();
  while (bench_now() - t0 < timeout_s) {
    watch_run_for(loop, 0.05);
    ws->ready = 0;
    for (long long j = 0; j < ws->n; j++)
      ws->ready += pr_client_is_open(ws->c[j]);
    if (ws->ready == n) break;
  }
  watch_run_for(loop, 0.2); /* the snapshots follow the hellos */
  bench_free_list(recv, nrecv);
  bench_free_list(addrs, naddrs);
  return ws->ready;
}

void watch_set_free(watch_set *ws) {
  for (long long j = 0; j < ws->n; j++)
    pr_client_free(ws->c[j]);
  pr_free(ws->c);
  ws->c = NULL;
  ws->n = 0;
}
