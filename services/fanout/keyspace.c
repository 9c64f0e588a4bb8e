/* keyspace.c: offline detection from Redis keyspace notifications
 * (--offline keyspace), kept to compare with the sweeper
 * (docs/offline-detection.md). */
#include "keyspace.h"

#include "base.h"
#include "log.h"
#include "owner.h"
#include "partition.h"

#include <stdio.h>
#include <string.h>

void fanout_keyspace_subscribe(fanout_app *app) {
  pr_redis_psubscribe(app->sub, FANOUT_KEYSPACE_PATTERN);
}

static void on_config_set(pr_redis *r, redisReply *reply, int err, void *arg) {
  if (err)
    pr_log_error("keyspace", "CONFIG SET notify-keyspace-events refused: no expired events",
                 "err=%s detail=\"%s\"", pr_strerror(err),
                 reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "-");
}

static void on_config_get(pr_redis *r, redisReply *reply, int err, void *arg) {
  fanout_app *app = arg;
  if (app->finished) return;
  if (err || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
      reply->element[1]->type != REDIS_REPLY_STRING) {
    pr_log_error("keyspace", "CONFIG GET notify-keyspace-events failed", "err=%s",
                 pr_strerror(err ? err : PR_EPROTO));
    return;
  }
  const char *cur = reply->element[1]->str;
  char want[64];
  snprintf(want, sizeof(want), "%s%s%s", cur, strchr(cur, 'E') ? "" : "E",
           strchr(cur, 'x') || strchr(cur, 'A') ? "" : "x");
  if (strcmp(want, cur) == 0) return;
  const char *argv[] = {"CONFIG", "SET", "notify-keyspace-events", want};
  if (pr_redis_cmdargv(app->redis, on_config_set, app, 4, argv, NULL) == 0)
    pr_log_info("keyspace", "enabling expired events", "notify-keyspace-events=%s", want);
}

void fanout_keyspace_configure(fanout_app *app) {
  const char *argv[] = {"CONFIG", "GET", "notify-keyspace-events"};
  pr_redis_cmdargv(app->redis, on_config_get, app, 3, argv, NULL);
}

static void on_expired(const pr_store_update *res, int err, void *arg) {
  fanout_app *app = arg;
  if (!err && res->changed) pr_counter_inc(app->m.expired);
}

void fanout_keyspace_on_expired(fanout_app *app, const char *key, size_t len) {
  unsigned p;
  const char *user;
  size_t ulen;
  if (pr_key_hb_parse(key, len, &p, &user, &ulen) != 0 || !pr_id_is_valid(user, ulen)) return;
  if (p >= app->partitions || !fanout_owner_owns(app->owner, p)) return;
  char u[PR_ID_MAX + 1];
  memcpy(u, user, ulen);
  u[ulen] = '\0';
  int rc = pr_store_expire_user(app->store, u, on_expired, app);
  if (rc) pr_log_warn("keyspace", "expire_user not sent", "user=%s err=%s", u, pr_strerror(rc));
}
