/* registry.c: users -> connections and devices on this instance (a chained
 * hash table), device registration in Redis, and the leave grace (one list
 * ordered by deadline, one timer for all of it). */
#include "registry.h"
#include "base.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

/* A removal Redis refused is tried again after the grace (or this, with a
 * zero grace): every entry of the leave list then has the same delay, so
 * appending keeps it sorted. */
#define LEAVE_RETRY_MS 1000

struct recv_registry {
  recv_app *app;
  recv_user **buckets;
  size_t nbuckets; /* a power of two */
  size_t nusers, ndevs;
  recv_dev *lhead, *ltail; /* pending leaves, earliest first */
  uv_timer_t timer;
  bool need_resync;
  bool closed;
  char ic_key[PR_ID_MAX + 8]; /* "ic:<instance>" */
};

/* ---- hash table ------------------------------------------------------- */

static uint32_t hash_of(const char *s, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++)
    h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

static void table_grow(recv_registry *reg) {
  size_t n = reg->nbuckets * 2;
  recv_user **b = pr_calloc(n, sizeof(*b));
  for (size_t i = 0; i < reg->nbuckets; i++) {
    recv_user *u = reg->buckets[i];
    while (u) {
      recv_user *next = u->hnext;
      u->hnext = b[u->hash & (n - 1)];
      b[u->hash & (n - 1)] = u;
      u = next;
    }
  }
  pr_free(reg->buckets);
  reg->buckets = b;
  reg->nbuckets = n;
}

recv_user *recv_registry_find(recv_registry *reg, const char *user, size_t len) {
  uint32_t h = hash_of(user, len);
  for (recv_user *u = reg->buckets[h & (reg->nbuckets - 1)]; u; u = u->hnext)
    if (u->hash == h && u->len == len && memcmp(u->id, user, len) == 0) return u;
  return NULL;
}

static recv_user *user_get(recv_registry *reg, const char *user) {
  size_t len = strlen(user);
  recv_user *u = recv_registry_find(reg, user, len);
  if (u) return u;
  if (reg->nusers >= reg->nbuckets) table_grow(reg);
  u = pr_calloc(1, sizeof(*u) + len + 1);
  u->hash = hash_of(user, len);
  u->len = (uint8_t)len;
  memcpy(u->id, user, len + 1);
  recv_user **b = &reg->buckets[u->hash & (reg->nbuckets - 1)];
  u->hnext = *b;
  *b = u;
  reg->nusers++;
  return u;
}

/* Frees the user once nothing refers to it any more. */
static void user_maybe_free(recv_registry *reg, recv_user *u) {
  if (u->conns || u->devs) return;
  recv_user **pp = &reg->buckets[u->hash & (reg->nbuckets - 1)];
  while (*pp != u)
    pp = &(*pp)->hnext;
  *pp = u->hnext;
  reg->nusers--;
  pr_free(u);
}

static recv_dev *dev_get(recv_registry *reg, recv_user *u, const char *device) {
  for (recv_dev *d = u->devs; d; d = d->next)
    if (strcmp(d->id, device) == 0) return d;
  size_t len = strlen(device);
  recv_dev *d = pr_calloc(1, sizeof(*d) + len + 1);
  memcpy(d->id, device, len + 1);
  d->user = u;
  d->next = u->devs;
  u->devs = d;
  reg->ndevs++;
  return d;
}

static void dev_free(recv_registry *reg, recv_dev *d) {
  recv_user *u = d->user;
  recv_dev **pp = &u->devs;
  while (*pp != d)
    pp = &(*pp)->next;
  *pp = d->next;
  reg->ndevs--;
  pr_free(d);
  user_maybe_free(reg, u);
}

/* A device with no connection, no pending leave and no removal in flight is gone. */
static void dev_maybe_free(recv_registry *reg, recv_dev *d) {
  if (d->nconns == 0 && !d->in_leave && !d->deleting) dev_free(reg, d);
}

/* ---- Redis registration ------------------------------------------------- */

static void note_failure(recv_registry *reg, const char *what, int err) {
  reg->need_resync = true;
  pr_counter_inc(reg->app->m.redis_failures);
  pr_log_warn("receive", "redis write failed", "op=%s err=\"%s\"", what, pr_strerror(err));
}

static void pair_of(const recv_dev *d, char *out, size_t cap) {
  snprintf(out, cap, "%s/%s", d->user->id, d->id);
}

static void ic_cb(pr_redis *r, redisReply *reply, int err, void *arg) {
  recv_registry *reg = arg;
  if (err && !reg->closed) note_failure(reg, "ic", err);
}

/* SADD or SREM ic:<id> "user/device". */
static int ic_update(recv_registry *reg, const char *cmd, const recv_dev *d) {
  char pair[2 * PR_ID_MAX + 2];
  pair_of(d, pair, sizeof(pair));
  const char *argv[] = {cmd, reg->ic_key, pair};
  return pr_redis_cmdargv(reg->app->redis, ic_cb, reg, 3, argv, NULL);
}

static void conn_set_cb(const pr_store_update *res, int err, void *arg) {
  recv_conn *c = arg;
  recv_app *app = c->app;
  if (err) {
    if (!app->finished) note_failure(app->reg, "conn_set", err);
  } else {
    uint32_t ms = (uint32_t)uv_now(app->loop) - c->reg_start_ms;
    pr_histogram_observe(app->m.register_seconds, ms / 1000.0);
  }
  recv_conn_release(c);
}

static void resync_cb(const pr_store_update *res, int err, void *arg) {
  recv_registry *reg = arg;
  if (err && !reg->closed) note_failure(reg, "conn_set", err);
}

static void dev_register(recv_registry *reg, recv_dev *d, recv_conn *c) {
  recv_app *app = reg->app;
  int rc;
  if (c) {
    c->reg_start_ms = (uint32_t)uv_now(app->loop);
    recv_conn_hold(c);
    rc = pr_store_conn_set(app->store, d->user->id, d->id, app->instance, NULL, conn_set_cb, c);
    if (rc != 0) recv_conn_release(c);
  } else {
    rc = pr_store_conn_set(app->store, d->user->id, d->id, app->instance, NULL, resync_cb, reg);
  }
  if (rc != 0) note_failure(reg, "conn_set", rc);
  rc = ic_update(reg, "SADD", d);
  if (rc != 0) note_failure(reg, "ic", rc);
}

/* ---- leaves --------------------------------------------------------------- */

static void leave_timer_cb(uv_timer_t *t);

static void leave_arm(recv_registry *reg) {
  if (reg->closed) return;
  if (!reg->lhead) {
    uv_timer_stop(&reg->timer);
    return;
  }
  uint64_t now = uv_now(reg->app->loop);
  uint64_t due = reg->lhead->leave_at > now ? reg->lhead->leave_at - now : 0;
  uv_timer_start(&reg->timer, leave_timer_cb, due, 0);
}

static void leave_unlink(recv_registry *reg, recv_dev *d) {
  if (d->lprev)
    d->lprev->lnext = d->lnext;
  else
    reg->lhead = d->lnext;
  if (d->lnext)
    d->lnext->lprev = d->lprev;
  else
    reg->ltail = d->lprev;
  d->lprev = d->lnext = NULL;
  d->in_leave = 0;
}

/* Appends d with deadline now + ms (always the same delay: see LEAVE_RETRY_MS). */
static void leave_schedule(recv_registry *reg, recv_dev *d, uint64_t ms) {
  bool was_empty = reg->lhead == NULL;
  d->leave_at = uv_now(reg->app->loop) + ms;
  d->in_leave = 1;
  d->lnext = NULL;
  d->lprev = reg->ltail;
  if (reg->ltail)
    reg->ltail->lnext = d;
  else
    reg->lhead = d;
  reg->ltail = d;
  if (was_empty) leave_arm(reg);
}

static void leave_now(recv_registry *reg, recv_dev *d);

static uint64_t retry_ms(const recv_registry *reg) {
  uint64_t grace = (uint64_t)reg->app->cfg.leave_grace_ms;
  return grace ? grace : LEAVE_RETRY_MS;
}

/* A removal in flight (allocated only then: idle records carry no registry pointer). */
typedef struct {
  recv_registry *reg;
  recv_dev *dev;
} removal;

static void conn_del_cb(const pr_store_update *res, int err, void *arg) {
  removal *x = arg;
  recv_registry *reg = x->reg;
  recv_dev *d = x->dev;
  pr_free(x);
  d->deleting--;
  if (reg->closed) return; /* teardown frees every device */
  if (err) {
    note_failure(reg, "conn_del", err);
    if (d->nconns == 0 && !d->in_leave && !d->deleting) leave_schedule(reg, d, retry_ms(reg));
    return;
  }
  dev_maybe_free(reg, d);
}

static void leave_now(recv_registry *reg, recv_dev *d) {
  recv_app *app = reg->app;
  removal *x = pr_malloc(sizeof(*x));
  *x = (removal){reg, d};
  int rc = pr_store_conn_del(app->store, d->user->id, d->id, app->instance, conn_del_cb, x);
  if (rc != 0) {
    pr_free(x);
    note_failure(reg, "conn_del", rc);
    leave_schedule(reg, d, retry_ms(reg));
    return;
  }
  d->deleting++;
  rc = ic_update(reg, "SREM", d);
  if (rc != 0) note_failure(reg, "ic", rc);
}

static void leave_timer_cb(uv_timer_t *t) {
  recv_registry *reg = t->data;
  uint64_t now = uv_now(reg->app->loop);
  while (reg->lhead && reg->lhead->leave_at <= now) {
    recv_dev *d = reg->lhead;
    leave_unlink(reg, d);
    leave_now(reg, d);
  }
  leave_arm(reg);
}

/* ---- public ------------------------------------------------------------- */

recv_registry *recv_registry_new(recv_app *app) {
  recv_registry *reg = pr_calloc(1, sizeof(*reg));
  reg->app = app;
  reg->nbuckets = 1024;
  reg->buckets = pr_calloc(reg->nbuckets, sizeof(*reg->buckets));
  snprintf(reg->ic_key, sizeof(reg->ic_key), "ic:%s", app->instance);
  uv_timer_init(app->loop, &reg->timer);
  reg->timer.data = reg;
  return reg;
}

void recv_registry_close(recv_registry *reg) {
  reg->closed = true;
  uv_timer_stop(&reg->timer);
  uv_close((uv_handle_t *)&reg->timer, NULL);
}

void recv_registry_free(recv_registry *reg) {
  if (!reg) return;
  for (size_t i = 0; i < reg->nbuckets; i++) {
    recv_user *u = reg->buckets[i];
    while (u) {
      recv_user *next = u->hnext;
      recv_dev *d = u->devs;
      while (d) {
        recv_dev *dn = d->next;
        pr_free(d);
        d = dn;
      }
      pr_free(u);
      u = next;
    }
  }
  pr_free(reg->buckets);
  pr_free(reg);
}

void recv_registry_attach(recv_registry *reg, recv_conn *c, const char *user, const char *device) {
  recv_user *u = user_get(reg, user);
  recv_dev *d = dev_get(reg, u, device);
  if (d->in_leave) leave_unlink(reg, d); /* came back within the grace: no offline */
  d->nconns++;
  c->dev = d;
  c->uprev = NULL;
  c->unext = u->conns;
  if (u->conns) u->conns->uprev = c;
  u->conns = c;
  dev_register(reg, d, c);
}

void recv_registry_detach(recv_registry *reg, recv_conn *c) {
  recv_dev *d = c->dev;
  if (!d) return;
  recv_user *u = d->user;
  if (c->uprev)
    c->uprev->unext = c->unext;
  else
    u->conns = c->unext;
  if (c->unext) c->unext->uprev = c->uprev;
  c->dev = NULL;
  c->uprev = c->unext = NULL;
  if (--d->nconns == 0 && !reg->app->draining && !reg->closed) {
    uint64_t grace = (uint64_t)reg->app->cfg.leave_grace_ms;
    if (grace == 0)
      leave_now(reg, d);
    else
      leave_schedule(reg, d, grace);
  }
  if (d->nconns == 0 && !d->in_leave && !d->deleting && !reg->app->draining)
    dev_free(reg, d);
  else
    user_maybe_free(reg, u);
}

bool recv_registry_needs_resync(const recv_registry *reg) { return reg->need_resync; }

void recv_registry_resync(recv_registry *reg) {
  reg->need_resync = false;
  size_t n = 0;
  for (size_t i = 0; i < reg->nbuckets; i++)
    for (recv_user *u = reg->buckets[i]; u; u = u->hnext)
      for (recv_dev *d = u->devs; d; d = d->next)
        if (d->nconns > 0 || d->in_leave) {
          dev_register(reg, d, NULL);
          n++;
        }
  if (n) pr_log_info("receive", "devices registered again", "devices=%zu", n);
}

size_t recv_registry_users(const recv_registry *reg) { return reg->nusers; }
size_t recv_registry_devices(const recv_registry *reg) { return reg->ndevs; }

void recv_registry_each_conn(recv_registry *reg, void (*fn)(recv_conn *c, void *arg), void *arg) {
  for (size_t i = 0; i < reg->nbuckets; i++) {
    recv_user *u = reg->buckets[i];
    while (u) {
      recv_user *unext = u->hnext; /* fn may detach the last conn and free u */
      recv_conn *c = u->conns;
      while (c) {
        recv_conn *cnext = c->unext;
        fn(c, arg);
        c = cnext;
      }
      u = unext;
    }
  }
}

/* ---- drain ---------------------------------------------------------------- */

typedef struct {
  size_t pending;
  bool ok;
  void (*done)(bool ok, void *arg);
  void *arg;
} drain_ctx;

static void drain_step(drain_ctx *x, int err) {
  if (err) x->ok = false;
  if (--x->pending > 0) return;
  x->done(x->ok, x->arg);
  pr_free(x);
}

static void drain_del_cb(const pr_store_update *res, int err, void *arg) { drain_step(arg, err); }
static void drain_cmd_cb(pr_redis *r, redisReply *reply, int err, void *arg) {
  drain_step(arg, err);
}

int recv_registry_drain(recv_registry *reg, void (*done)(bool ok, void *arg), void *arg) {
  recv_app *app = reg->app;
  if (!pr_redis_is_ready(app->redis)) return PR_EUNAVAIL;
  drain_ctx *x = pr_calloc(1, sizeof(*x));
  x->ok = true;
  x->done = done;
  x->arg = arg;
  x->pending = 1; /* held until every command is issued */
  while (reg->lhead)
    leave_unlink(reg, reg->lhead);
  uv_timer_stop(&reg->timer);
  for (size_t i = 0; i < reg->nbuckets; i++)
    for (recv_user *u = reg->buckets[i]; u; u = u->hnext)
      for (recv_dev *d = u->devs; d; d = d->next) {
        if (pr_store_conn_del(app->store, u->id, d->id, app->instance, drain_del_cb, x) == 0)
          x->pending++;
        else
          x->ok = false;
      }
  char inst_key[PR_ID_MAX + 8];
  snprintf(inst_key, sizeof(inst_key), "inst:%s", app->instance);
  const char *cmds[3][3] = {
      {"DEL", reg->ic_key, NULL}, {"SREM", "insts", app->instance}, {"DEL", inst_key, NULL}};
  for (size_t i = 0; i < 3; i++) {
    int argc = cmds[i][2] ? 3 : 2;
    if (pr_redis_cmdargv(app->redis, drain_cmd_cb, x, argc, cmds[i], NULL) == 0)
      x->pending++;
    else
      x->ok = false;
  }
  drain_step(x, 0);
  return 0;
}
