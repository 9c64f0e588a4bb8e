/* lease.c: the instance lease inst:<id> (SET PX, refreshed with XX), the
 * new instance epoch taken when it was lost, and the re-registration of the
 * devices whose registration failed. */
#include "lease.h"
#include "base.h"
#include "log.h"
#include "registry.h"

#include <stdio.h>

struct recv_lease {
  recv_app *app;
  uv_timer_t timer;
  uint64_t held_until; /* loop time: the lease surely exists until then */
  bool registered;     /* the lease of the current id exists (created and not found lost) */
  bool inflight;       /* a SET is waiting for its reply */
  bool creating;       /* that SET creates the lease (no XX) */
  char key[PR_ID_MAX + 8];
  char ttl[24];
};

static void refresh(recv_lease *l);

/* The lease of the current id is gone: fanout may be cleaning that id right
 * now (SMEMBERS ic:<id>, conn_del each, DEL ic:<id>, SREM insts <id>), and
 * anything registered again under it could be removed or left untracked by
 * that cleanup. So the instance takes a new id, "<base>.<epoch>", and
 * registers every device with open connections under it; the old id's
 * cleanup then only removes what still names the old id (conn_del checks
 * the instance): devices in their leave grace. */
static void new_epoch(recv_lease *l, const char *why) {
  recv_app *app = l->app;
  char old[PR_ID_MAX + 1];
  snprintf(old, sizeof(old), "%s", app->instance);
  app->epoch++;
  recv_instance_of(app, app->epoch, app->instance, sizeof(app->instance));
  snprintf(l->key, sizeof(l->key), "inst:%s", app->instance);
  pr_counter_inc(app->m.lease_losses);
  pr_log_warn("receive", why, "old=%s instance=%s epoch=%u", old, app->instance,
              (unsigned)app->epoch);
  l->registered = false;
  l->held_until = 0;
  recv_registry_renew(app->reg);
}

static void set_cb(pr_redis *r, redisReply *reply, int err, void *arg) {
  recv_lease *l = arg;
  l->inflight = false;
  if (l->app->finished || l->app->draining) return;
  if (err) {
    pr_log_warn("receive", "lease refresh failed", "instance=%s err=\"%s\"", l->app->instance,
                pr_strerror(err));
    return;
  }
  if (reply->type == REDIS_REPLY_NIL) {
    /* SET XX found no key (the lease was lost), or SET NX found one (the new
     * id is taken): either way, a new id */
    new_epoch(l, l->creating ? "instance id taken, registering under a new one"
                             : "lease lost, registering under a new instance id");
    refresh(l);
    return;
  }
  /* Timing from when the reply came is generous by one round trip; the ttl is
   * seconds long and a refresh comes every third of it. */
  l->held_until = uv_now(l->app->loop) + (uint64_t)l->app->cfg.lease_ttl_ms;
  l->registered = true;
  /* failed registrations are redone once the lease is known to be ours: under
   * a lost lease they would race with fanout's cleanup of the id */
  if (recv_registry_needs_resync(l->app->reg)) recv_registry_resync(l->app->reg);
}

static void refresh(recv_lease *l) {
  recv_app *app = l->app;
  if (l->inflight || app->draining || !pr_redis_is_ready(app->redis)) return;
  if (l->registered) {
    const char *set[] = {"SET", l->key, app->advertise, "PX", l->ttl, "XX"};
    if (pr_redis_cmdargv(app->redis, set_cb, l, 6, set, NULL) != 0) return;
    l->inflight = true;
    l->creating = false;
    return;
  }
  /* Create the lease: at start (plain SET: a restart with the same id takes
   * it over) or for a new epoch (NX: never an id whose lease exists). The
   * instance is announced and its devices registered in the same pipeline,
   * after the SET. */
  const char *set[] = {"SET", l->key, app->advertise, "PX", l->ttl, "NX"};
  if (pr_redis_cmdargv(app->redis, set_cb, l, app->epoch ? 6 : 5, set, NULL) != 0) return;
  l->inflight = true;
  l->creating = true;
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
