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
  bool need_resync; /* some device is dirty */
  bool closed;
};

/* ---- hash table ------------------------------------------------------- */

static uint32_t hash_of(const char *s, size_t len) {
  uint64_t h = pr_hash64(s, len);
  return (uint32_t)(h ^ (h >> 32));
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
  pr_counter_inc(reg->app->m.redis_failures);
  pr_log_warn("receive", "redis write failed", "op=%s err=\"%s\"", what, pr_strerror(err));
}

/* The instance id (and its ic: key) a device was registered under: the
 * latest epoch, not after the current one, with the device's low 8 bits (a
 * device cannot outlive 256 lost leases while it waits for its removal). */
static void dev_instance(const recv_registry *reg, const recv_dev *d, char *id, size_t idcap,
                         char *ic, size_t iccap) {
  const recv_app *app = reg->app;
  uint32_t epoch = app->epoch - (uint8_t)((uint8_t)app->epoch - d->epoch);
  recv_instance_of(app, epoch, id, idcap);
  if (ic) snprintf(ic, iccap, "ic:%s", id);
}

void recv_registry_write_failed(recv_registry *reg, recv_dev *d) {
  d->dirty = 1;
  reg->need_resync = true;
}

/* One registration in flight (conn_set + SADD ic). It names its device by
 * "user/device", not by pointer: the device may be gone when Redis answers. */
typedef struct {
  recv_registry *reg;
  recv_conn *c; /* held; NULL for a resync */
  uint8_t wait;
  bool failed;
  char pair[]; /* "user/device" */
} reg_op;

static void reg_op_step(reg_op *x, const char *what, int err) {
  recv_registry *reg = x->reg;
  if (err && !reg->closed && !reg->app->finished) {
    note_failure(reg, what, err);
    x->failed = true;
  }
  if (--x->wait > 0) return;
  if (x->failed && !reg->closed && !reg->app->finished) {
    char *slash = strchr(x->pair, '/');
    recv_user *u = recv_registry_find(reg, x->pair, (size_t)(slash - x->pair));
    for (recv_dev *d = u ? u->devs : NULL; d; d = d->next)
      if (strcmp(d->id, slash + 1) == 0 && d->nconns > 0) recv_registry_write_failed(reg, d);
  } else if (x->c && !x->failed && !reg->app->finished) {
    uint32_t ms = (uint32_t)uv_now(reg->app->loop) - x->c->reg_start_ms;
    pr_histogram_observe(reg->app->m.register_seconds, ms / 1000.0);
  }
  if (x->c) recv_conn_release(x->c);
  pr_free(x);
}

static void conn_set_cb(const pr_store_update *res, int err, void *arg) {
  reg_op_step(arg, "conn_set", err);
}
static void ic_add_cb(pr_redis *r, redisReply *reply, int err, void *arg) {
  reg_op_step(arg, "ic", err);
}

/* An SREM ic:<id> that failed leaves a pair whose conn_del is a no-op. */
static void ic_rem_cb(pr_redis *r, redisReply *reply, int err, void *arg) {
  recv_registry *reg = arg;
  if (err && !reg->closed && !reg->app->finished) note_failure(reg, "ic", err);
}

/* Registers d under the current instance id; c (may be NULL) is the
 * connection that caused it, held until both replies came. */
static void dev_register(recv_registry *reg, recv_dev *d, recv_conn *c) {
  recv_app *app = reg->app;
  size_t ulen = d->user->len, dlen = strlen(d->id);
  reg_op *x = pr_malloc(sizeof(*x) + ulen + dlen + 2);
  *x = (reg_op){.reg = reg, .c = c, .wait = 1};
  memcpy(x->pair, d->user->id, ulen);
  x->pair[ulen] = '/';
  memcpy(x->pair + ulen + 1, d->id, dlen + 1);
  d->epoch = (uint8_t)app->epoch;
  d->dirty = 0;
  if (c) {
    c->reg_start_ms = (uint32_t)uv_now(app->loop);
    recv_conn_hold(c);
  }
  int rc = pr_store_conn_set(app->store, d->user->id, d->id, app->instance, NULL, conn_set_cb, x);
  if (rc == 0) x->wait++;
  int rc2 = PR_EUNAVAIL;
  if (rc == 0) { /* an ic pair without its device would only cost a no-op conn_del */
    char ic[PR_ID_MAX + 8];
    snprintf(ic, sizeof(ic), "ic:%s", app->instance);
    const char *argv[] = {"SADD", ic, x->pair};
    rc2 = pr_redis_cmdargv(app->redis, ic_add_cb, x, 3, argv, NULL);
    if (rc2 == 0) x->wait++;
  }
  reg_op_step(x, rc ? "conn_set" : "ic", rc ? rc : rc2); /* drops the hold taken while sending */
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
  char inst[PR_ID_MAX + 1], ic[PR_ID_MAX + 8];
  dev_instance(reg, d, inst, sizeof(inst), ic, sizeof(ic));
  int rc = pr_store_conn_del(app->store, d->user->id, d->id, inst, conn_del_cb, x);
  if (rc != 0) {
    pr_free(x);
    note_failure(reg, "conn_del", rc);
    leave_schedule(reg, d, retry_ms(reg));
    return;
  }
  d->deleting++;
  char pair[2 * PR_ID_MAX + 2];
  snprintf(pair, sizeof(pair), "%s/%s", d->user->id, d->id);
  const char *argv[] = {"SREM", ic, pair};
  rc = pr_redis_cmdargv(app->redis, ic_rem_cb, reg, 3, argv, NULL);
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
      for (recv_dev *d = u->devs; d; d = d->next) {
        if (!d->dirty) continue;
        d->dirty = 0;
        if (d->nconns == 0) continue; /* leaving: never registered again */
        dev_register(reg, d, NULL);
        n++;
      }
  if (n)
    pr_log_info("receive", "devices registered again", "devices=%zu instance=%s", n,
                reg->app->instance);
}

void recv_registry_renew(recv_registry *reg) {
  for (size_t i = 0; i < reg->nbuckets; i++)
    for (recv_user *u = reg->buckets[i]; u; u = u->hnext)
      for (recv_dev *d = u->devs; d; d = d->next)
        if (d->nconns > 0) recv_registry_write_failed(reg, d);
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
  recv_registry *reg;
  size_t pending;
  bool ok;       /* every command so far succeeded */
  bool removing; /* second phase: the instance's own keys */
  void (*done)(bool ok, void *arg);
  void *arg;
} drain_ctx;

static void drain_cmd_cb(pr_redis *r, redisReply *reply, int err, void *arg);

/* Once every device is removed, the instance's keys go; if any removal
 * failed, only the lease does: ic:<id> and insts still name the instance, so
 * fanout's cleanup of a dead instance removes the devices left. */
static void drain_keys(drain_ctx *x) {
  recv_app *app = x->reg->app;
  char inst_key[PR_ID_MAX + 8], ic_key[PR_ID_MAX + 8];
  snprintf(inst_key, sizeof(inst_key), "inst:%s", app->instance);
  snprintf(ic_key, sizeof(ic_key), "ic:%s", app->instance);
  const char *cmds[3][3] = {
      {"DEL", ic_key, NULL}, {"SREM", "insts", app->instance}, {"DEL", inst_key, NULL}};
  if (!x->ok)
    pr_log_warn("receive", "drain: some devices not removed, leaving them to fanout's cleanup",
                "instance=%s", app->instance);
  x->removing = true;
  x->pending = 1; /* held until every command is issued */
  for (size_t i = x->ok ? 0 : 2; i < 3; i++) {
    int argc = cmds[i][2] ? 3 : 2;
    if (pr_redis_cmdargv(app->redis, drain_cmd_cb, x, argc, cmds[i], NULL) == 0)
      x->pending++;
    else
      x->ok = false;
  }
}

static void drain_step(drain_ctx *x, int err) {
  if (err) x->ok = false;
  if (--x->pending > 0) return;
  if (!x->removing && !x->reg->closed && !x->reg->app->finished) {
    drain_keys(x);
    drain_step(x, 0);
    return;
  }
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
  x->reg = reg;
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
        char inst[PR_ID_MAX + 1];
        dev_instance(reg, d, inst, sizeof(inst), NULL, 0);
        if (pr_store_conn_del(app->store, u->id, d->id, inst, drain_del_cb, x) == 0)
          x->pending++;
        else
          x->ok = false;
      }
  drain_step(x, 0);
  return 0;
}
