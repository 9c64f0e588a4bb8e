/* conn.c: a client WebSocket's life: hello, registration, snapshot (holding
 * updates that arrive before it), rate limit, pushes and close. */
#include "conn.h"
#include "base.h"
#include "expiry.h"
#include "frames.h"
#include "log.h"
#include "registry.h"

#include <string.h>
#include <time.h>

#define HELD_MAX 64 /* updates held per connection while its snapshot is pending */

typedef struct {
  uint64_t last_seen, version;
  const char *status; /* static (pr_status_name) */
  uint8_t len;
  char user[PR_ID_MAX];
} held_ev;

struct recv_held {
  uint16_t n, cap;
  held_ev ev[];
};

static pr_buf scratch = PR_BUF_INIT;

pr_buf *recv_scratch(void) {
  pr_buf_clear(&scratch);
  return &scratch;
}

void recv_scratch_free(void) { pr_buf_free(&scratch); }

/* ---- life ------------------------------------------------------------------- */

static void conn_free(recv_conn *c) {
  pr_free(c->held);
  pr_free(c);
}

void recv_conn_hold(recv_conn *c) { c->refs++; }

bool recv_conn_is_busy(const recv_conn *c) { return c->refs >= RECV_CONN_MAX_INFLIGHT; }

void recv_conn_release(recv_conn *c) {
  if (--c->refs == 0 && c->closed) conn_free(c);
}

bool recv_conn_is_open(const recv_conn *c) { return !c->closed && c->ws; }

void recv_conn_close(recv_conn *c, int code, const char *reason) {
  if (recv_conn_is_open(c) && pr_ws_conn_is_open(c->ws)) pr_ws_close(c->ws, code, reason);
}

void recv_conn_send(recv_conn *c, const pr_buf *b) {
  if (!recv_conn_is_open(c)) return;
  pr_ws_send_text(c->ws, b->data, b->len); /* PR_EBUSY: the ws module closes it (4008) */
}

void recv_conn_send_error(recv_conn *c, const char *code, const char *message) {
  pr_buf *b = recv_scratch();
  pr_json_error(b, code, message);
  recv_conn_send(c, b);
}

/* ---- snapshot ---------------------------------------------------------------- */

static void hold_update(recv_conn *c, const pr_presence_entry *e) {
  recv_held *h = c->held;
  if (h && h->n >= HELD_MAX) {
    pr_counter_inc(c->app->m.drops[RECV_DROP_HELD]); /* the snapshot is fresher anyway */
    return;
  }
  if (!h || h->n == h->cap) {
    uint16_t cap = h ? (uint16_t)(h->cap * 2) : 4;
    if (cap > HELD_MAX) cap = HELD_MAX;
    h = pr_realloc(h, sizeof(*h) + cap * sizeof(held_ev));
    if (!c->held) h->n = 0;
    h->cap = cap;
    c->held = h;
  }
  held_ev *ev = &h->ev[h->n++];
  ev->last_seen = e->last_seen;
  ev->version = e->version;
  ev->status = e->status;
  ev->len = (uint8_t)e->user.len;
  memcpy(ev->user, e->user.p, e->user.len);
}

/* Sends the held updates newer than what the snapshot said for their user. */
static void flush_held(recv_conn *c, const pr_presence_entry *snap, size_t n) {
  recv_held *h = c->held;
  c->held = NULL;
  if (!h) return;
  for (uint16_t i = 0; i < h->n; i++) {
    held_ev *ev = &h->ev[i];
    bool stale = false;
    for (size_t j = 0; j < n && !stale; j++)
      if (snap[j].user.len == ev->len && memcmp(snap[j].user.p, ev->user, ev->len) == 0)
        stale = ev->version <= snap[j].version;
    if (stale) continue;
    pr_presence_entry e = {{ev->user, ev->len}, ev->status, ev->last_seen, ev->version};
    pr_buf *b = recv_scratch();
    pr_json_presence(b, &e);
    recv_conn_send(c, b);
    pr_counter_inc(c->app->m.pushes);
  }
  pr_free(h);
}

static void snapshot_send(recv_conn *c, const pr_presence *users, size_t n) {
  pr_presence_entry *e = n ? pr_malloc(n * sizeof(*e)) : NULL;
  for (size_t i = 0; i < n; i++) {
    e[i] = (pr_presence_entry){pr_view_of(users[i].user), users[i].status, users[i].last_seen,
                               users[i].version};
  }
  pr_buf *b = recv_scratch();
  pr_json_snapshot(b, e, n);
  recv_conn_send(c, b);
  c->snapshot_pending = 0;
  flush_held(c, e, n);
  pr_free(e);
}

static void snapshot_fail(recv_conn *c, int err) {
  pr_log_warn("receive", "snapshot failed", "user=%s err=\"%s\"", c->dev ? c->dev->user->id : "-",
              pr_strerror(err));
  recv_conn_close(c, 1011, "snapshot unavailable, reconnect");
}

static void read_cb(const pr_presence *users, size_t n, int err, void *arg) {
  recv_conn *c = arg;
  if (recv_conn_is_open(c)) {
    if (err)
      snapshot_fail(c, err);
    else
      snapshot_send(c, users, n);
  }
  recv_conn_release(c);
}

static void watchable_cb(const char *const *ids, size_t n, int err, void *arg) {
  recv_conn *c = arg;
  if (!recv_conn_is_open(c) || !c->dev) goto done;
  if (err) {
    snapshot_fail(c, err);
    goto done;
  }
  if (n == 0) {
    snapshot_send(c, NULL, 0);
    goto done;
  }
  /* the caller reads itself as invisible; here it is never among the ids */
  int rc = pr_store_read(c->app->store, c->dev->user->id, (const char **)ids, n, read_cb, c);
  if (rc == 0) return; /* read_cb releases */
  snapshot_fail(c, rc);
done:
  recv_conn_release(c);
}

static void snapshot_start(recv_conn *c) {
  if (c->app->graph_client) { /* no graph on the server: nothing to show yet */
    snapshot_send(c, NULL, 0);
    return;
  }
  c->snapshot_pending = 1;
  recv_conn_hold(c);
  int rc = pr_graph_watchable(c->app->store, c->dev->user->id, watchable_cb, c);
  if (rc != 0) {
    recv_conn_release(c);
    snapshot_fail(c, rc);
  }
}

/* ---- pushes, coalesced per loop callback ------------------------------------ */

static void cork(recv_conn *c, recv_corks *k) {
  if (!k || !pr_ws_cork(c->ws)) return;
  if (k->n == k->cap) {
    k->cap = k->cap ? 2 * k->cap : 256;
    k->v = pr_realloc(k->v, k->cap * sizeof(*k->v));
  }
  k->v[k->n++] = c->ws;
}

void recv_conn_send_corked(recv_conn *c, const pr_buf *b, recv_corks *corks) {
  if (!recv_conn_is_open(c)) return;
  cork(c, corks);
  pr_ws_send_text(c->ws, b->data, b->len);
}

void recv_conn_push(recv_conn *c, const pr_presence_entry *e, const pr_buf *frame,
                    recv_corks *corks) {
  if (!recv_conn_is_open(c)) return;
  if (c->snapshot_pending) {
    hold_update(c, e);
    return;
  }
  cork(c, corks);
  pr_ws_send_text(c->ws, frame->data, frame->len); /* PR_EBUSY: closed with 4008 */
  pr_counter_inc(c->app->m.pushes);
}

/* The ws conns stay valid until the loop runs their close callbacks, which
 * cannot happen inside the callback that corked them. */
void recv_corks_flush(recv_corks *k) {
  for (size_t i = 0; i < k->n; i++)
    pr_ws_uncork(k->v[i]);
  k->n = 0;
}

void recv_corks_free(recv_corks *k) {
  pr_free(k->v);
  *k = (recv_corks){0};
}

/* ---- rate limit -------------------------------------------------------------- */

/* Token bucket in thousandths of a frame: --rate-limit per second, at most
 * --rate-burst. Returns true when the frame may be handled. */
static bool rate_take(recv_conn *c) {
  const recv_config *cfg = &c->app->cfg;
  uint32_t now = (uint32_t)uv_now(c->app->loop);
  uint64_t cap = (uint64_t)cfg->rate_burst * 1000;
  uint64_t t =
      c->tokens_milli + (uint64_t)(uint32_t)(now - c->refill_ms) * (uint64_t)cfg->rate_limit;
  c->refill_ms = now;
  if (t > cap) t = cap;
  bool ok = t >= 1000;
  if (ok) t -= 1000;
  c->tokens_milli = (uint32_t)t;
  if (ok && t >= cap / 2) c->refused = 0; /* the client slowed down */
  return ok;
}

/* ---- ws callbacks --------------------------------------------------------- */

static void on_message(pr_ws_conn *ws, int is_text, const char *data, size_t len, void *user) {
  recv_conn *c = user;
  if (!recv_conn_is_open(c)) return;
  if (recv_expiry_passed(c->app->expiry, c, (int64_t)time(NULL))) {
    recv_expiry_remove(c->app->expiry, c);
    pr_counter_inc(c->app->m.tokens_expired);
    recv_conn_close(c, RECV_CLOSE_TOKEN_EXPIRED, "token expired");
    return;
  }
  if (!rate_take(c)) {
    pr_counter_inc(c->app->m.rate_limited);
    if (++c->refused >= 2 * (uint64_t)c->app->cfg.rate_burst) {
      pr_counter_inc(c->app->m.rate_closed);
      recv_conn_close(c, PR_WS_CLOSE_SLOW, "rate limit");
      return;
    }
    recv_conn_send_error(c, "rate_limited", "too many frames, slow down");
    return;
  }
  if (!is_text) {
    pr_counter_inc(c->app->m.bad_frames);
    recv_conn_send_error(c, "bad_request", "binary frames are not accepted");
    return;
  }
  recv_frames_handle(c, data, len);
}

static void on_close(pr_ws_conn *ws, int code, void *user) {
  recv_conn *c = user;
  recv_app *app = c->app;
  c->ws = NULL;
  c->closed = 1;
  recv_expiry_remove(app->expiry, c);
  if (c->counted) app->conns_open--;
  if (c->dev && !app->finished) recv_registry_detach(app->reg, c);
  pr_free(c->held);
  c->held = NULL;
  if (c->refs == 0) conn_free(c);
}

static const pr_ws_handlers handlers = {.on_message = on_message, .on_close = on_close};

int recv_conn_open(recv_app *app, uv_tcp_t *tcp, const char *accept_key, const char *leftover,
                   size_t leftover_len, const char *user, const char *device, int64_t exp) {
  recv_conn *c = pr_calloc(1, sizeof(*c));
  c->app = app;
  c->tokens_milli = (uint32_t)(app->cfg.rate_burst * 1000);
  c->refill_ms = (uint32_t)uv_now(app->loop);
  pr_ws_opts opts = {
      .max_message_bytes = (size_t)app->cfg.max_message_bytes,
      .max_outbound_bytes = (size_t)app->cfg.max_outbound_bytes,
      .idle_timeout_ms = (uint32_t)(2 * app->cfg.heartbeat_ms),
  };
  pr_ws_conn *ws = NULL;
  int rc = pr_ws_conn_start(app->loop, tcp, accept_key, NULL, leftover, leftover_len, &opts,
                            &handlers, c, &ws);
  if (rc == PR_EINVAL) {
    pr_free(c);
    return rc;
  }
  if (rc != 0) return 0; /* the socket failed: on_close frees c */
  c->ws = ws;
  c->counted = 1;
  recv_expiry_add(app->expiry, c, exp);
  app->conns_open++;
  pr_counter_inc(app->m.upgrades);

  pr_buf *b = recv_scratch();
  pr_json_hello(b, pr_view_of(user), pr_view_of(device), (uint64_t)app->cfg.heartbeat_ms);
  recv_conn_send(c, b);
  recv_registry_attach(app->reg, c, user, device);
  snapshot_start(c);
  return 0;
}
