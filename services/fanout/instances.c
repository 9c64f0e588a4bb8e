/* instances.c: liveness of receive instances and the cleanup of dead ones
 * (see instances.h). */
#include "instances.h"

#include "base.h"
#include "log.h"
#include "peers.h"

#include <stdio.h>
#include <string.h>

#define CLEAN_CHUNK 1000 /* conn_del calls in flight per cleanup */
#define LOCK_PX     "30000"

/* The end of a cleanup. KEYS: inst:<id>, ic:<id>, insts, cl:<id>; ARGV: id,
 * worker. Forgets the instance only if it has not registered again meanwhile
 * (its new devices are in ic:<id>, and insts must keep it), then releases
 * the lock if it is still ours. Replies 1 if the instance was forgotten.
 * (The keys carry no common hash tag: on a Redis Cluster this needs them in
 * one slot, like the graph's MULTI; see docs/data-model.md.) */
static pr_redis_script finish_script = {
    .name = "fanout_clean_finish",
    .body = "local done = 0\n"
            "if redis.call('EXISTS', KEYS[1]) == 0 then\n"
            "  redis.call('DEL', KEYS[2])\n"
            "  redis.call('SREM', KEYS[3], ARGV[1])\n"
            "  done = 1\n"
            "end\n"
            "if redis.call('GET', KEYS[4]) == ARGV[2] then redis.call('DEL', KEYS[4]) end\n"
            "return done\n",
};
/* cl:<id>: delete only if it is still ours. */
static pr_redis_script unlock_script = {
    .name = "fanout_clean_unlock",
    .body = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
            "return 0\n",
};

struct fanout_instances {
  fanout_app *app;
  uv_timer_t timer;
  bool checking;
  /* the check in progress */
  char **ids;
  size_t nids;
  uint8_t *alive;
  unsigned wait;
};

/* One dead instance being cleaned. */
typedef struct {
  fanout_app *app;
  char id[PR_ID_MAX + 1];
  char **pairs; /* "user/device" */
  size_t n, next;
  unsigned wait;
  int err;
} cleanup;

static void cleanup_free(cleanup *cl) {
  for (size_t i = 0; i < cl->n; i++)
    pr_free(cl->pairs[i]);
  pr_free(cl->pairs);
  pr_free(cl);
}

static void on_unlocked(pr_redis *r, redisReply *reply, int err, void *arg) {}

/* A failed cleanup gives the lock back at once, so that the next check
 * (--instance-check-ms) retries it, well within the lease ttl + 2 s bound. */
static void unlock(cleanup *cl) {
  char lock[PR_ID_MAX + 8];
  snprintf(lock, sizeof(lock), "cl:%s", cl->id);
  const char *keys[] = {lock}, *args[] = {cl->app->worker};
  pr_redis_script(cl->app->redis, &unlock_script, on_unlocked, NULL, 1, keys, 1, args);
}

static void on_finished(pr_redis *r, redisReply *reply, int err, void *arg) {
  cleanup *cl = arg;
  if (!cl->app->finished) {
    if (err || reply->type != REDIS_REPLY_INTEGER) {
      pr_log_warn("instances", "cleanup not finished; retried at the next check",
                  "instance=%s err=%s", cl->id, pr_strerror(err ? err : PR_EPROTO));
      unlock(cl);
    } else if (reply->integer == 1) {
      pr_counter_inc(cl->app->m.cleaned);
      pr_log_info("instances", "dead instance cleaned", "instance=%s devices=%zu", cl->id, cl->n);
    } else {
      pr_log_info("instances", "instance registered again during its cleanup: kept",
                  "instance=%s devices=%zu", cl->id, cl->n);
    }
  }
  cleanup_free(cl);
}

static void clean_finish(cleanup *cl) {
  fanout_app *app = cl->app;
  if (cl->err) {
    pr_log_warn("instances", "cleanup incomplete; retried at the next check", "instance=%s err=%s",
                cl->id, pr_strerror(cl->err));
    if (!app->finished) unlock(cl);
    cleanup_free(cl);
    return;
  }
  char inst[PR_ID_MAX + 8], ic[PR_ID_MAX + 8], lock[PR_ID_MAX + 8];
  snprintf(inst, sizeof(inst), "inst:%s", cl->id);
  snprintf(ic, sizeof(ic), "ic:%s", cl->id);
  snprintf(lock, sizeof(lock), "cl:%s", cl->id);
  const char *keys[] = {inst, ic, "insts", lock}, *args[] = {cl->id, app->worker};
  if (pr_redis_script(app->redis, &finish_script, on_finished, cl, 4, keys, 2, args) != 0) {
    unlock(cl); /* most likely refused too (disconnected): the lock then expires */
    cleanup_free(cl);
  }
}

static void clean_chunk(cleanup *cl);

static void on_conn_del(const pr_store_update *res, int err, void *arg) {
  cleanup *cl = arg;
  if (err && !cl->err) cl->err = err;
  if (--cl->wait > 0) return;
  if (cl->app->finished) {
    cleanup_free(cl);
    return;
  }
  clean_chunk(cl);
}

static void clean_chunk(cleanup *cl) {
  fanout_app *app = cl->app;
  cl->wait = 1; /* held while sending */
  size_t sent = 0;
  while (cl->next < cl->n && sent < CLEAN_CHUNK && !cl->err) {
    char *pair = cl->pairs[cl->next++];
    char *slash = strchr(pair, '/');
    if (!slash) continue;
    *slash = '\0';
    const char *user = pair, *device = slash + 1;
    int ok = pr_id_is_valid(user, strlen(user)) && pr_id_is_valid(device, strlen(device));
    int rc = ok ? pr_store_conn_del(app->store, user, device, cl->id, on_conn_del, cl) : 0;
    *slash = '/';
    if (!ok) continue;
    if (rc) {
      cl->err = rc;
      break;
    }
    cl->wait++;
    sent++;
  }
  if (--cl->wait > 0) return;
  if (cl->next < cl->n && !cl->err)
    clean_chunk(cl); /* only invalid pairs in this chunk */
  else
    clean_finish(cl);
}

static void on_members(pr_redis *r, redisReply *reply, int err, void *arg) {
  cleanup *cl = arg;
  if (err || reply->type != REDIS_REPLY_ARRAY || cl->app->finished) {
    cl->err = err ? err : PR_EPROTO;
    clean_finish(cl);
    return;
  }
  cl->pairs = pr_calloc(reply->elements ? reply->elements : 1, sizeof(char *));
  for (size_t i = 0; i < reply->elements; i++)
    if (reply->element[i]->type == REDIS_REPLY_STRING)
      cl->pairs[cl->n++] = pr_strndup(reply->element[i]->str, reply->element[i]->len);
  pr_log_info("instances", "cleaning dead instance", "instance=%s devices=%zu", cl->id, cl->n);
  clean_chunk(cl);
}

static void on_locked(pr_redis *r, redisReply *reply, int err, void *arg) {
  cleanup *cl = arg;
  if (err || reply->type != REDIS_REPLY_STATUS || cl->app->finished) {
    cleanup_free(cl); /* another worker cleans it */
    return;
  }
  char ic[PR_ID_MAX + 8];
  snprintf(ic, sizeof(ic), "ic:%s", cl->id);
  const char *argv[] = {"SMEMBERS", ic};
  if (pr_redis_cmdargv(cl->app->redis, on_members, cl, 2, argv, NULL)) {
    unlock(cl);
    cleanup_free(cl);
  }
}

static void clean(fanout_app *app, const char *id) {
  cleanup *cl = pr_calloc(1, sizeof(*cl));
  cl->app = app;
  snprintf(cl->id, sizeof(cl->id), "%s", id);
  char lock[PR_ID_MAX + 8];
  snprintf(lock, sizeof(lock), "cl:%s", id);
  /* The PX only frees the lock of a worker that died while cleaning. */
  const char *argv[] = {"SET", lock, app->worker, "NX", "PX", LOCK_PX};
  if (pr_redis_cmdargv(app->redis, on_locked, cl, 6, argv, NULL)) cleanup_free(cl);
}

/* ---- the check ------------------------------------------------------------ */

static void check_reset(fanout_instances *in) {
  for (size_t i = 0; i < in->nids; i++)
    pr_free(in->ids[i]);
  pr_free(in->ids);
  pr_free(in->alive);
  in->ids = NULL;
  in->alive = NULL;
  in->nids = 0;
  in->checking = false;
}

static void check_done(fanout_instances *in) {
  fanout_app *app = in->app;
  if (!app->finished) {
    size_t nlive = 0;
    for (size_t i = 0; i < in->nids; i++) {
      if (in->alive[i]) {
        in->ids[nlive++] = in->ids[i];
        continue;
      }
      fanout_peers_remove(app->peers, in->ids[i]);
      if (!app->draining) clean(app, in->ids[i]);
      pr_free(in->ids[i]);
    }
    in->nids = nlive;
    fanout_peers_retain(app->peers, (const char *const *)in->ids, nlive);
  }
  check_reset(in);
}

typedef struct {
  fanout_instances *in;
  size_t i;
} lease_get;

static void on_lease(pr_redis *r, redisReply *reply, int err, void *arg) {
  lease_get *g = arg;
  fanout_instances *in = g->in;
  if (err) {
    in->alive[g->i] = 1; /* unknown: never clean on an error */
  } else if (reply->type == REDIS_REPLY_STRING) {
    in->alive[g->i] = 1;
    if (!in->app->finished) fanout_peers_set(in->app->peers, in->ids[g->i], reply->str);
  }
  pr_free(g);
  if (--in->wait == 0) check_done(in);
}

static void on_insts(pr_redis *r, redisReply *reply, int err, void *arg) {
  fanout_instances *in = arg;
  if (err || reply->type != REDIS_REPLY_ARRAY || in->app->finished) {
    check_reset(in);
    return;
  }
  in->ids = pr_calloc(reply->elements ? reply->elements : 1, sizeof(char *));
  in->alive = pr_calloc(reply->elements ? reply->elements : 1, 1);
  for (size_t i = 0; i < reply->elements; i++) {
    redisReply *e = reply->element[i];
    if (e->type == REDIS_REPLY_STRING && pr_id_is_valid(e->str, e->len))
      in->ids[in->nids++] = pr_strndup(e->str, e->len);
  }
  in->wait = 1; /* held while sending */
  for (size_t i = 0; i < in->nids; i++) {
    char key[PR_ID_MAX + 8];
    snprintf(key, sizeof(key), "inst:%s", in->ids[i]);
    const char *argv[] = {"GET", key};
    lease_get *g = pr_malloc(sizeof(*g));
    *g = (lease_get){in, i};
    if (pr_redis_cmdargv(in->app->redis, on_lease, g, 2, argv, NULL)) {
      pr_free(g);
      in->alive[i] = 1; /* not asked: not judged */
      continue;
    }
    in->wait++;
  }
  if (--in->wait == 0) check_done(in);
}

static void on_tick(uv_timer_t *t) {
  fanout_instances *in = t->data;
  if (in->checking || !pr_redis_is_ready(in->app->redis)) return;
  const char *argv[] = {"SMEMBERS", "insts"};
  if (pr_redis_cmdargv(in->app->redis, on_insts, in, 2, argv, NULL) == 0) in->checking = true;
}

fanout_instances *fanout_instances_new(fanout_app *app) {
  fanout_instances *in = pr_calloc(1, sizeof(*in));
  in->app = app;
  uv_timer_init(app->loop, &in->timer);
  in->timer.data = in;
  uint64_t every = (uint64_t)app->cfg.instance_check_ms;
  uv_timer_start(&in->timer, on_tick, 0, every);
  return in;
}

void fanout_instances_stop(fanout_instances *in) { uv_timer_stop(&in->timer); }

static void on_closed(uv_handle_t *h) {
  fanout_instances *in = h->data;
  check_reset(in);
  pr_free(in);
}

void fanout_instances_free(fanout_instances *in) {
  if (in) uv_close((uv_handle_t *)&in->timer, on_closed);
}
