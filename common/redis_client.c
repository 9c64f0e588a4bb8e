/* redis_client.c: the connection of a pr_redis: address, connect, readiness,
 * reconnect with backoff, and the one timer that enforces every deadline
 * (commands, connection attempts, stuck connections). See redis.h. */
#include "redis_internal.h"
#include "base.h"

#include <hiredis/adapters/libuv.h>

#include <ctype.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define BACKOFF_MIN_MS 50
#define STUCK_FACTOR   3 /* x cmd_timeout_ms without any reply while commands wait */

/* ---- address --------------------------------------------------------------- */

static int parse_port(const char *s, int *port) {
  size_t n = strlen(s);
  if (n == 0 || n > 5) return PR_EINVAL;
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i])) return PR_EINVAL;
    v = v * 10 + (s[i] - '0');
  }
  if (v < 1 || v > 65535) return PR_EINVAL;
  *port = v;
  return 0;
}

/* "host:port", "[v6]:port", "redis://host[:port]". */
static int parse_addr(const char *addr, char **host, int *port) {
  int url = 0;
  if (!addr) return PR_EINVAL;
  if (strncasecmp(addr, "redis://", 8) == 0) {
    addr += 8;
    url = 1;
  } else if (strstr(addr, "://")) {
    return PR_EINVAL;
  }
  const char *hs = addr, *he, *rest;
  int bracket = addr[0] == '[';
  if (bracket) {
    hs = addr + 1;
    he = strchr(hs, ']');
    if (!he) return PR_EINVAL;
    rest = he + 1;
  } else {
    he = strrchr(addr, ':');
    if (!he) he = addr + strlen(addr);
    rest = he;
  }
  if (he == hs) return PR_EINVAL;
  for (const char *q = hs; q < he; q++) {
    unsigned char ch = (unsigned char)*q;
    if (isspace(ch) || ch == '/' || ch == '@' || ch == '[' || ch == ']' || (ch == ':' && !bracket))
      return PR_EINVAL;
  }
  if (*rest == '\0') {
    if (!url) return PR_EINVAL;
    *port = 6379;
  } else if (*rest != ':' || parse_port(rest + 1, port) != 0) {
    return PR_EINVAL;
  }
  *host = pr_strndup(hs, (size_t)(he - hs));
  return 0;
}

/* ---- event hooks ---------------------------------------------------------- */

/* The stock adapter ignores a poll error, but libuv reports a socket error
 * (POLLERR: connection reset, connect refused) only that way, and stops the
 * handle: the connection would hang. These hooks keep the adapter's handle
 * and bookkeeping and route errors to a reconnect. */
static void ev_poll(uv_poll_t *h, int status, int events) {
  redisLibuvEvents *p = h->data;
  if (status < 0) {
    redisAsyncContext *ac = p->context;
    pr_redis *r = ac ? ac->data : NULL;
    if (r && r->ac == ac) pr_redis__conn_drop(r);
    return;
  }
  redisLibuvPoll(h, status, events);
}

/* hiredis asks for the write event on every command it queues. libuv's
 * uv_poll_start first stops the handle, which removes the fd from epoll at
 * once (a syscall, then another to add it back): so the handle is only
 * touched when the set of events really changes. */
static void ev_update(redisLibuvEvents *p, int events) {
  if (events == p->events) return;
  p->events = events;
  if (events)
    uv_poll_start(&p->handle, events, ev_poll);
  else
    uv_poll_stop(&p->handle);
}

static void ev_add_read(void *d) {
  redisLibuvEvents *p = d;
  ev_update(p, p->events | UV_READABLE);
}

static void ev_del_read(void *d) {
  redisLibuvEvents *p = d;
  ev_update(p, p->events & ~UV_READABLE);
}

static void ev_add_write(void *d) {
  redisLibuvEvents *p = d;
  ev_update(p, p->events | UV_WRITABLE);
}

static void ev_del_write(void *d) {
  redisLibuvEvents *p = d;
  ev_update(p, p->events & ~UV_WRITABLE);
}

/* ---- connection life ------------------------------------------------------ */

/* TCP keepalive (idle 15 s, then 3 probes 5 s apart): a subscriber sends no
 * commands, so without it a dead network path would leave it waiting
 * forever. Set directly, not with hiredis's helper, which records a failure
 * as a context error. Best effort: a failure only loses the early warning. */
static void set_keepalive(int fd) {
  int on = 1, idle = 15, intvl = 5, cnt = 3;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static void conn_start(pr_redis *r);

static void on_retry(uv_timer_t *t) {
  pr_redis *r = t->data;
  if (!r->closing && !r->ac) conn_start(r);
}

static uint64_t rng_next(pr_redis *r) {
  r->rng ^= r->rng << 13;
  r->rng ^= r->rng >> 7;
  r->rng ^= r->rng << 17;
  return r->rng;
}

static void schedule_retry(pr_redis *r) {
  int d = r->backoff_ms;
  uint64_t delay = (uint64_t)(d / 2) + rng_next(r) % (uint64_t)(d - d / 2 + 1);
  r->backoff_ms = d * 2 > r->backoff_max_ms ? r->backoff_max_ms : d * 2;
  uv_timer_start(&r->retry, on_retry, delay, 0);
}

/* Shared by both ways of losing a connection: `to_free` is the context we
 * drop ourselves, NULL when hiredis is already freeing it. */
static void conn_down(pr_redis *r, redisAsyncContext *to_free) {
  int was_ready = r->ready;
  r->ac = NULL;
  r->ready = 0;
  r->ping_ok = 0;
  /* Runs the callbacks of the commands it holds now, or when the hiredis
   * callback we are in returns. */
  if (to_free) redisAsyncFree(to_free);
  if (r->closing) return;
  schedule_retry(r);
  if (was_ready && r->state_cb) r->state_cb(r, 0, r->state_arg);
}

void pr_redis__conn_lost(pr_redis *r, redisAsyncContext *ac) {
  if (ac == r->ac) conn_down(r, NULL);
}

void pr_redis__conn_drop(pr_redis *r) {
  if (r->ac) conn_down(r, r->ac);
}

void pr_redis__maybe_ready(pr_redis *r) {
  if (r->ready || r->closing || !r->ac || !r->ping_ok || r->sub_unconfirmed > 0) return;
  r->ready = 1;
  r->backoff_ms = BACKOFF_MIN_MS;
  if (r->ever_ready) r->stats.reconnects++;
  r->ever_ready = 1;
  if (r->state_cb) r->state_cb(r, 1, r->state_arg);
}

static void on_connect(const redisAsyncContext *cac, int status) {
  pr_redis *r = cac->data;
  /* On failure hiredis frees the context right after this returns. */
  if (status != REDIS_OK && r) pr_redis__conn_lost(r, (redisAsyncContext *)cac);
}

static void on_disconnect(const redisAsyncContext *cac, int status) {
  pr_redis *r = cac->data;
  if (r) pr_redis__conn_lost(r, (redisAsyncContext *)cac);
}

static void on_setname(redisAsyncContext *ac, void *reply, void *privdata) {
  /* A refused name (old server, odd characters) does not matter. */
  if (!reply) pr_redis__conn_lost(privdata, ac);
}

static void on_ping(redisAsyncContext *ac, void *reply_, void *privdata) {
  pr_redis *r = privdata;
  redisReply *reply = reply_;
  if (!reply) {
    pr_redis__conn_lost(r, ac);
    return;
  }
  if (ac != r->ac || r->ping_ok) return;
  r->last_progress_ms = pr_now_mono_ms();
  if (reply->type == REDIS_REPLY_ERROR) { /* -LOADING, -NOAUTH...: try again later */
    pr_redis__conn_drop(r);
    return;
  }
  r->ping_ok = 1;
  pr_redis__maybe_ready(r);
}

static void conn_start(pr_redis *r) {
  /* Resolves the host synchronously: addresses are loopback or local names. */
  redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
  if (!ac) goto retry; /* out of memory inside hiredis */
  if (ac->err) goto fail;
  set_keepalive(ac->c.fd);
  ac->data = r;
  if (redisLibuvAttach(ac, r->loop) != REDIS_OK) goto fail;
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  r->ac = ac;
  r->ping_ok = 0;
  r->sub_unconfirmed = 0;
  r->connect_deadline_ms = pr_now_mono_ms() + (uint64_t)r->connect_timeout_ms;
  /* Queued now, written once the socket connects, answered in this order. */
  if (r->name) redisAsyncCommand(ac, on_setname, r, "CLIENT SETNAME %s", r->name);
  redisAsyncCommand(ac, on_ping, r, "PING");
  pr_redis__sub_resubscribe(r);
  pr_redis__tick_ensure(r);
  return;
fail:
  redisAsyncFree(ac);
retry:
  schedule_retry(r);
}

/* ---- the deadline timer ---------------------------------------------------- */

static int tick_needed(const pr_redis *r) {
  return !r->closing && (r->head || (r->ac && (!r->ready || r->inflight)));
}

static void on_tick(uv_timer_t *t) {
  pr_redis *r = t->data;
  uint64_t now = pr_now_mono_ms();
  pr_redis__calls_expire(r, now);
  if (r->closing) return;
  if (r->ac && !r->ready && now >= r->connect_deadline_ms) {
    pr_redis__conn_drop(r);
  } else if (r->ac && r->ready && r->inflight &&
             now - r->last_progress_ms >= (uint64_t)r->cmd_timeout_ms * STUCK_FACTOR) {
    pr_redis__conn_drop(r);
  }
  if (!r->closing && !tick_needed(r)) uv_timer_stop(t);
}

void pr_redis__tick_ensure(pr_redis *r) {
  if (!r->closing && !uv_is_active((uv_handle_t *)&r->tick))
    uv_timer_start(&r->tick, on_tick, (uint64_t)r->tick_ms, (uint64_t)r->tick_ms);
}

/* ---- public ---------------------------------------------------------------- */

static int setting(int v, int def, int *out) {
  if (v < 0) return PR_EINVAL;
  *out = v ? v : def;
  return 0;
}

int pr_redis_new(uv_loop_t *loop, const pr_redis_opts *opts, pr_redis **out) {
  char *host = NULL;
  int port = 0, cmd_to, conn_to, backoff, max_pending;
  if (!loop || !opts || !out) return PR_EINVAL;
  if (setting(opts->cmd_timeout_ms, 2000, &cmd_to) ||
      setting(opts->connect_timeout_ms, 2000, &conn_to) ||
      setting(opts->backoff_max_ms, 2000, &backoff) ||
      setting(opts->max_pending, 100000, &max_pending))
    return PR_EINVAL;
  int rc = parse_addr(opts->addr, &host, &port);
  if (rc) return rc;

  pr_redis *r = pr_calloc(1, sizeof(*r));
  r->loop = loop;
  r->host = host;
  r->port = port;
  r->name = opts->name && *opts->name ? pr_strdup(opts->name) : NULL;
  r->cmd_timeout_ms = cmd_to;
  r->connect_timeout_ms = conn_to;
  r->backoff_max_ms = backoff < BACKOFF_MIN_MS ? BACKOFF_MIN_MS : backoff;
  r->backoff_ms = BACKOFF_MIN_MS;
  r->max_pending = max_pending;
  /* A tenth of the shortest timeout, within 10..50 ms: deadlines fire a
   * little late, never early, and an idle client has no timer at all. */
  int shortest = cmd_to < conn_to ? cmd_to : conn_to;
  r->tick_ms = shortest / 10 < 10 ? 10 : shortest / 10 > 50 ? 50 : shortest / 10;
  r->rng = (uint64_t)(uintptr_t)r ^ (pr_now_wall_ms() << 20) ^ 0x9e3779b97f4a7c15ULL;
  if (!r->rng) r->rng = 1;
  uv_timer_init(loop, &r->tick);
  uv_timer_init(loop, &r->retry);
  r->tick.data = r;
  r->retry.data = r;
  r->handles_open = 2;
  conn_start(r);
  *out = r;
  return 0;
}

void pr_redis_on_state(pr_redis *r, pr_redis_state_cb cb, void *arg) {
  r->state_cb = cb;
  r->state_arg = arg;
}

int pr_redis_is_ready(const pr_redis *r) { return r && r->ready; }

void pr_redis_get_stats(const pr_redis *r, pr_redis_stats *out) { *out = r->stats; }

static void on_handle_closed(uv_handle_t *h) {
  pr_redis *r = h->data;
  if (--r->handles_open > 0) return;
  pr_redis__sub_free(r);
  pr_free(r->host);
  pr_free(r->name);
  pr_free(r);
}

void pr_redis_free(pr_redis *r) {
  if (!r || r->closing) return;
  r->closing = 1;
  pr_redis__calls_fail_all(r, PR_ECLOSED);
  redisAsyncContext *ac = r->ac;
  r->ac = NULL;
  r->ready = 0;
  /* Late replies and the timed-out records are released by hiredis here (or
   * when the hiredis callback we are in returns); `r` lives until the close
   * callbacks below, which run on a later loop iteration. */
  if (ac) redisAsyncFree(ac);
  uv_close((uv_handle_t *)&r->tick, on_handle_closed);
  uv_close((uv_handle_t *)&r->retry, on_handle_closed);
}
