/* frames.c: the client frames of DESIGN §6, parsed with jansson. Bad input is
 * answered with an error frame; the connection stays. */
#include "frames.h"
#include "base.h"
#include "ids.h"
#include "log.h"
#include "registry.h"
#include "event.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* A group subscription reply lists at most --small-group-max members, and
 * never more than this: a larger group's members come with large-group
 * delivery (its own issue). One subscribe per connection is in flight at a
 * time, so one connection holds at most one such list. */
#define GROUP_REPLY_MAX 10000
#define GROUP_PAGE      1000

static void bad_request(recv_conn *c, const char *message) {
  pr_counter_inc(c->app->m.bad_frames);
  recv_conn_send_error(c, "bad_request", message);
}

/* The string member `name` as a valid id, or NULL. */
static const char *id_member(json_t *obj, const char *name) {
  json_t *v = json_object_get(obj, name);
  if (!json_is_string(v)) return NULL;
  const char *s = json_string_value(v);
  return pr_id_is_valid(s, json_string_length(v)) ? s : NULL;
}

/* ---- status ------------------------------------------------------------------ */

static void status_cb(const pr_store_update *res, int err, void *arg) {
  recv_conn *c = arg;
  if (err && !c->app->finished) {
    pr_counter_inc(c->app->m.redis_failures);
    pr_log_warn("receive", "status not stored", "err=\"%s\"", pr_strerror(err));
    /* the write also registers the device: the resync redoes that part */
    if (c->dev) recv_registry_write_failed(c->app->reg, c->dev);
    recv_conn_send_error(c, "unavailable", "status not stored, try again");
  }
  recv_conn_release(c);
}

static void on_status(recv_conn *c, json_t *msg) {
  static const char *const words[] = {"online", "idle", "dnd", "invisible", "none"};
  json_t *v = json_object_get(msg, "status");
  const char *status = NULL;
  for (size_t i = 0; json_is_string(v) && i < PR_ARRAY_LEN(words); i++)
    if (strcmp(json_string_value(v), words[i]) == 0) status = words[i];
  if (!status) {
    bad_request(c, "status must be online, idle, dnd, invisible or none");
    return;
  }
  recv_conn_hold(c);
  int rc = pr_store_conn_set(c->app->store, c->dev->user->id, c->dev->id, c->app->instance, status,
                             status_cb, c);
  if (rc != 0) status_cb(NULL, rc, c);
}

/* ---- subscribe ------------------------------------------------------------- */

typedef struct {
  recv_conn *c;
  char group[PR_ID_MAX + 1];
  char **members;
  size_t n, cap;
} group_req;

/* The most members a reply lists. */
static size_t group_max(const recv_app *app) {
  size_t max = (size_t)app->cfg.small_group_max;
  return max < GROUP_REPLY_MAX ? max : GROUP_REPLY_MAX;
}

static void group_done(group_req *g) {
  for (size_t i = 0; i < g->n; i++)
    pr_free(g->members[i]);
  pr_free(g->members);
  g->c->subscribing = 0;
  recv_conn_release(g->c);
  pr_free(g);
}

static void group_fail(group_req *g, int err) {
  if (recv_conn_is_open(g->c) && !g->c->app->finished) {
    pr_log_warn("receive", "subscribe failed", "group=%s err=\"%s\"", g->group, pr_strerror(err));
    recv_conn_send_error(g->c, "unavailable", "group not readable now, try again");
  }
  group_done(g);
}

static void group_read_cb(const pr_presence *users, size_t n, int err, void *arg) {
  group_req *g = arg;
  if (err) {
    group_fail(g, err);
    return;
  }
  if (recv_conn_is_open(g->c)) {
    pr_presence_entry *e = n ? pr_malloc(n * sizeof(*e)) : NULL;
    uint64_t online = 0;
    for (size_t i = 0; i < n; i++) {
      e[i] = (pr_presence_entry){pr_view_of(users[i].user), users[i].status, users[i].last_seen,
                                 users[i].version};
      if (strcmp(users[i].status, "offline") != 0 && strcmp(users[i].status, "invisible") != 0)
        online++;
    }
    pr_buf *b = recv_scratch();
    pr_json_group(b, pr_view_of(g->group), online, e, n);
    recv_conn_send(g->c, b);
    pr_free(e);
  }
  group_done(g);
}

/* SSCAN's COUNT for `want` more members (a hint: a page may hold more, the
 * extra are not kept). */
static unsigned page_of(size_t want) { return want < GROUP_PAGE ? (unsigned)want : GROUP_PAGE; }

static void members_cb(const char *const *members, size_t n, const char *next, int err, void *arg) {
  group_req *g = arg;
  if (err) {
    group_fail(g, err);
    return;
  }
  if (!recv_conn_is_open(g->c)) {
    group_done(g);
    return;
  }
  recv_app *app = g->c->app;
  size_t max = group_max(app);
  for (size_t i = 0; i < n && g->n < max; i++) {
    if (g->n == g->cap) {
      g->cap = g->cap ? g->cap * 2 : 16;
      if (g->cap > max) g->cap = max;
      g->members = pr_realloc(g->members, g->cap * sizeof(char *));
    }
    g->members[g->n++] = pr_strdup(members[i]);
  }
  int rc;
  if (strcmp(next, "0") != 0 && g->n < max)
    rc = pr_graph_members(app->store, g->group, next, page_of(max - g->n), members_cb, g);
  else if (g->n == 0) {
    group_read_cb(NULL, 0, 0, g);
    return;
  } else
    rc = pr_store_read(app->store, g->c->dev->user->id, (const char **)g->members, g->n,
                       group_read_cb, g);
  if (rc != 0) group_fail(g, rc);
}

static void ismember_cb(pr_redis *r, redisReply *reply, int err, void *arg) {
  group_req *g = arg;
  if (err) {
    group_fail(g, err);
    return;
  }
  if (!recv_conn_is_open(g->c)) {
    group_done(g);
    return;
  }
  if (reply->type != REDIS_REPLY_INTEGER || reply->integer != 1) {
    recv_conn_send_error(g->c, "forbidden", "not a member of this group");
    group_done(g);
    return;
  }
  int rc = pr_graph_members(g->c->app->store, g->group, "0", page_of(group_max(g->c->app)),
                            members_cb, g);
  if (rc != 0) group_fail(g, rc);
}

static void on_subscribe(recv_conn *c, json_t *msg) {
  const char *group = id_member(msg, "group");
  if (!group) {
    bad_request(c, "group must be 1-64 characters of [A-Za-z0-9_.:@-]");
    return;
  }
  if (c->app->graph_client) {
    recv_conn_send_error(c, "forbidden", "groups are kept by the clients (graph = client)");
    return;
  }
  if (c->subscribing) {
    pr_counter_inc(c->app->m.rate_limited);
    recv_conn_send_error(c, "rate_limited", "a subscribe is in flight, wait for its reply");
    return;
  }
  group_req *g = pr_calloc(1, sizeof(*g));
  g->c = c;
  c->subscribing = 1;
  recv_conn_hold(c);
  snprintf(g->group, sizeof(g->group), "%s", group);
  char key[PR_ID_MAX + 4];
  snprintf(key, sizeof(key), "gm:%s", group);
  const char *argv[] = {"SISMEMBER", key, c->dev->user->id};
  int rc = pr_redis_cmdargv(c->app->redis, ismember_cb, g, 3, argv, NULL);
  if (rc != 0) group_fail(g, rc);
}

/* ---- heartbeat ------------------------------------------------------------ */

/* A heartbeat frame is liveness (already counted). Only in client-graph or
 * heartbeat-relay mode does it reach Redis: it then carries the recipients
 * (`to`) of the user's events and, relaying, is published to them. */
static void on_heartbeat(recv_conn *c, json_t *msg) {
  json_t *to = json_object_get(msg, "to");
  const char *ids[PR_EVENT_MAX_TO];
  size_t n = 0;
  if (to && !c->app->graph_client) {
    bad_request(c, "to is only accepted with graph = client");
    return;
  }
  if (to) {
    if (!json_is_array(to) || json_array_size(to) > PR_EVENT_MAX_TO) {
      bad_request(c, "to must be an array of at most 4096 user ids");
      return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(to, i, v) {
      if (!json_is_string(v) || !pr_id_is_valid(json_string_value(v), json_string_length(v))) {
        bad_request(c, "to must list user ids");
        return;
      }
      ids[n++] = json_string_value(v);
    }
  }
  if (!c->app->graph_client && !pr_store_get_opts(c->app->store)->broadcast_heartbeats) return;
  if (recv_conn_is_busy(c)) {
    pr_counter_inc(c->app->m.rate_limited);
    recv_conn_send_error(c, "rate_limited", "too many requests in flight, slow down");
    return;
  }
  recv_conn_hold(c);
  int rc = pr_store_conn_heartbeat(c->app->store, c->dev->user->id, c->dev->id, c->app->instance,
                                   ids, n, status_cb, c);
  if (rc != 0) status_cb(NULL, rc, c);
}

/* ---- dispatch --------------------------------------------------------------- */

void recv_frames_handle(recv_conn *c, const char *data, size_t len) {
  if (!c->dev) return;
  json_error_t jerr;
  json_t *msg = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!msg || !json_is_object(msg)) {
    bad_request(c, msg ? "a frame is a JSON object" : "invalid JSON");
    json_decref(msg);
    return;
  }
  json_t *t = json_object_get(msg, "type");
  const char *type = json_is_string(t) ? json_string_value(t) : "";
  if (strcmp(type, "ping") == 0) {
    pr_buf *b = recv_scratch();
    pr_json_pong(b);
    recv_conn_send(c, b);
  } else if ((strcmp(type, "status") == 0 || strcmp(type, "subscribe") == 0) &&
             recv_conn_is_busy(c)) {
    pr_counter_inc(c->app->m.rate_limited);
    recv_conn_send_error(c, "rate_limited", "too many requests in flight, slow down");
  } else if (strcmp(type, "status") == 0) {
    on_status(c, msg);
  } else if (strcmp(type, "subscribe") == 0) {
    on_subscribe(c, msg);
  } else if (strcmp(type, "unsubscribe") == 0) {
    /* subscriptions are answered once and not kept yet (large groups' issue) */
    if (!id_member(msg, "group"))
      bad_request(c, "group must be 1-64 characters of [A-Za-z0-9_.:@-]");
  } else if (strcmp(type, "heartbeat") == 0) {
    on_heartbeat(c, msg);
  } else {
    bad_request(c, json_is_string(t) ? "unknown type" : "type must be a string");
  }
  json_decref(msg);
}
