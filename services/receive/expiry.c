/* expiry.c: token expiry of connections: a binary min-heap keyed by exp,
 * kept in two parallel arrays (no per-connection links), and one timer. */
#include "expiry.h"
#include "base.h"

#include <time.h>

#define HEAP_MIN_CAP 1024

struct recv_expiry {
  recv_app *app;
  uv_timer_t timer;
  uint32_t *exp; /* seconds since the epoch (clamped to 32 bits: year 2106) */
  recv_conn **conn;
  uint32_t n, cap;
  bool closed;
};

static void put(recv_expiry *x, uint32_t i, uint32_t exp, recv_conn *c) {
  x->exp[i] = exp;
  x->conn[i] = c;
  c->exp_slot = i + 1;
}

static void sift_up(recv_expiry *x, uint32_t i) {
  uint32_t exp = x->exp[i];
  recv_conn *c = x->conn[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (x->exp[parent] <= exp) break;
    put(x, i, x->exp[parent], x->conn[parent]);
    i = parent;
  }
  put(x, i, exp, c);
}

static void sift_down(recv_expiry *x, uint32_t i) {
  uint32_t exp = x->exp[i];
  recv_conn *c = x->conn[i];
  for (;;) {
    uint32_t child = 2 * i + 1;
    if (child >= x->n) break;
    if (child + 1 < x->n && x->exp[child + 1] < x->exp[child]) child++;
    if (x->exp[child] >= exp) break;
    put(x, i, x->exp[child], x->conn[child]);
    i = child;
  }
  put(x, i, exp, c);
}

static void resize(recv_expiry *x, uint32_t cap) {
  x->exp = pr_realloc(x->exp, (size_t)cap * sizeof(*x->exp));
  x->conn = pr_realloc(x->conn, (size_t)cap * sizeof(*x->conn));
  x->cap = cap;
}

void recv_expiry_add(recv_expiry *x, recv_conn *c, int64_t exp) {
  if (c->exp_slot) return;
  if (x->n == x->cap) resize(x, x->cap * 2);
  uint32_t e = exp <= 0 ? 0 : exp > UINT32_MAX ? UINT32_MAX : (uint32_t)exp;
  put(x, x->n++, e, c);
  sift_up(x, x->n - 1);
}

void recv_expiry_remove(recv_expiry *x, recv_conn *c) {
  if (!x || !c->exp_slot) return;
  uint32_t i = c->exp_slot - 1;
  c->exp_slot = 0;
  x->n--;
  if (i != x->n) {
    put(x, i, x->exp[x->n], x->conn[x->n]);
    if (i > 0 && x->exp[(i - 1) / 2] > x->exp[i])
      sift_up(x, i);
    else
      sift_down(x, i);
  }
  /* give memory back after a wave of disconnections */
  if (x->cap > HEAP_MIN_CAP && x->n < x->cap / 4) resize(x, x->cap / 2);
}

bool recv_expiry_passed(const recv_expiry *x, const recv_conn *c, int64_t now) {
  return x && c->exp_slot && (int64_t)x->exp[c->exp_slot - 1] <= now;
}

static void on_sweep(uv_timer_t *t) {
  recv_expiry *x = t->data;
  int64_t now = (int64_t)time(NULL);
  while (x->n > 0 && (int64_t)x->exp[0] <= now) {
    recv_conn *c = x->conn[0];
    recv_expiry_remove(x, c);
    pr_counter_inc(x->app->m.tokens_expired);
    recv_conn_close(c, RECV_CLOSE_TOKEN_EXPIRED, "token expired");
  }
}

recv_expiry *recv_expiry_new(recv_app *app) {
  recv_expiry *x = pr_calloc(1, sizeof(*x));
  x->app = app;
  resize(x, HEAP_MIN_CAP);
  uv_timer_init(app->loop, &x->timer);
  x->timer.data = x;
  uv_timer_start(&x->timer, on_sweep, RECV_EXPIRY_SWEEP_MS, RECV_EXPIRY_SWEEP_MS);
  return x;
}

void recv_expiry_close(recv_expiry *x) {
  if (!x || x->closed) return;
  x->closed = true;
  uv_timer_stop(&x->timer);
  uv_close((uv_handle_t *)&x->timer, NULL);
}

void recv_expiry_free(recv_expiry *x) {
  if (!x) return;
  pr_free(x->exp);
  pr_free(x->conn);
  pr_free(x);
}
