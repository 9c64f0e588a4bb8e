/* lease.c: the instance lease inst:<id> (SET PX, refreshed with XX) and the
 * re-registration of every held device when it was lost. */
#include "lease.h"
#include "base.h"
#include "log.h"
#include "registry.h"

#include <stdio.h>

struct recv_lease {
  recv_app *app;
  uv_timer_t timer;
  uint64_t held_until; /* loop time: the lease surely exists until then */
  bool registered;     /* the lease was created at least once and not found lost since */
  bool inflight;       /* a refresh is waiting for its reply */
  char key[PR_ID_MAX + 8];
  char ttl[24];
};

static void refresh(recv_lease *l);

static void set_cb(pr_redis *r, redisReply *reply, int err, void *arg) {
  recv_lease *l = arg;
  l->inflight = false;
  if (l->app->finished) return;
  if (err) {
    pr_log_warn("receive", "lease refresh failed", "err=\"%s\"", pr_strerror(err));
    return;
  }
  if (reply->type == REDIS_REPLY_NIL) { /* SET XX found no key: the lease was lost */
    pr_log_warn("receive", "lease lost, registering again", "instance=%s", l->app->instance);
    l->registered = false;
    refresh(l);
    return;
  }
  /* Timing from when the reply came is generous by one round trip; the ttl is
   * seconds long and a refresh comes every third of it. */
  l->held_until = uv_now(l->app->loop) + (uint64_t)l->app->cfg.lease_ttl_ms;
  l->registered = true;
}

static void refresh(recv_lease *l) {
  recv_app *app = l->app;
  if (l->inflight || app->draining || !pr_redis_is_ready(app->redis)) return;
  bool full = !l->registered || recv_registry_needs_resync(app->reg);
  const char *set[] = {"SET", l->key, app->advertise, "PX", l->ttl, "XX"};
  int rc = pr_redis_cmdargv(app->redis, set_cb, l, full ? 5 : 6, set, NULL);
  if (rc != 0) return;
  l->inflight = true;
  if (!full) return;
  /* Created again: announce the instance and register every device held;
   * these commands follow the SET in the same pipeline. */
  const char *sadd[] = {"SADD", "insts", app->instance};
  pr_redis_cmdargv(app->redis, NULL, NULL, 3, sadd, NULL);
  recv_registry_resync(app->reg);
}

static void on_timer(uv_timer_t *t) { refresh(t->data); }

recv_lease *recv_lease_new(recv_app *app) {
  recv_lease *l = pr_calloc(1, sizeof(*l));
  l->app = app;
  snprintf(l->key, sizeof(l->key), "inst:%s", app->instance);
  snprintf(l->ttl, sizeof(l->ttl), "%lld", app->cfg.lease_ttl_ms);
  uv_timer_init(app->loop, &l->timer);
  l->timer.data = l;
  uint64_t every = (uint64_t)app->cfg.lease_ttl_ms / 3;
  uv_timer_start(&l->timer, on_timer, every, every);
  return l;
}

void recv_lease_on_redis(recv_lease *l, bool ready) {
  if (ready) refresh(l);
}

bool recv_lease_is_held(const recv_lease *l) {
  return l->registered && uv_now(l->app->loop) < l->held_until;
}

void recv_lease_close(recv_lease *l) {
  uv_timer_stop(&l->timer);
  uv_close((uv_handle_t *)&l->timer, NULL);
}

void recv_lease_free(recv_lease *l) { pr_free(l); }
