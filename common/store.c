/* store.c: the presence store: scripts for every write, pipelined reads
 * (store.h). Keys and arguments follow the comment block of each script. */
#include "store.h"
#include "base.h"
#include "event.h"
#include "partition.h"
#include "store_pipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S_HEARTBEAT, S_OFFLINE, S_SWEEP, S_EXPIRE, S_CONN_SET, S_CONN_DEL, S_COUNT };

static const struct {
  const char *name;
  const char *body;
} script_src[S_COUNT] = {
    [S_HEARTBEAT] = {"heartbeat", pr_store_lua_heartbeat},
    [S_OFFLINE] = {"offline", pr_store_lua_offline},
    [S_SWEEP] = {"sweep", pr_store_lua_sweep},
    [S_EXPIRE] = {"expire_user", pr_store_lua_expire_user},
    [S_CONN_SET] = {"conn_set", pr_store_lua_conn_set},
    [S_CONN_DEL] = {"conn_del", pr_store_lua_conn_del},
};

/* A partition's dl and ev key names ("dl:{p16383}" is 11 bytes). */
typedef struct {
  char dl[16], ev[16];
} part_keys;

struct pr_store {
  pr_redis *r;
  pr_store_opts o;
  pr_redis_script scripts[S_COUNT];
  char *bodies[S_COUNT];
  /* Formatted once: every heartbeat sends them (snprintf per call showed in
   * the profile). */
  char ttl[24];
  part_keys *pkeys; /* [o.partitions] */
};

char *pr_store_script_body(const char *name) {
  for (size_t i = 0; i < S_COUNT; i++) {
    if (strcmp(script_src[i].name, name) != 0) continue;
    size_t a = strlen(pr_store_lua_common), b = strlen(script_src[i].body);
    char *s = pr_malloc(a + b + 2);
    memcpy(s, pr_store_lua_common, a);
    s[a] = '\n';
    memcpy(s + a + 1, script_src[i].body, b + 1);
    return s;
  }
  return NULL;
}

int pr_store_new(pr_redis *r, const pr_store_opts *o, pr_store **out) {
  pr_store_opts opts = o ? *o : (pr_store_opts){0};
  if (!r) return PR_EINVAL;
  if (opts.partitions == 0) opts.partitions = PR_PARTITIONS_DEFAULT;
  if (opts.ttl_ms == 0) opts.ttl_ms = 60000;
  if (opts.small_group_max == 0) opts.small_group_max = 100;
  if (opts.partitions > PR_PARTITIONS_MAX || opts.ttl_ms < 0) return PR_EINVAL;
  pr_store *st = pr_calloc(1, sizeof(*st));
  st->r = r;
  st->o = opts;
  for (size_t i = 0; i < S_COUNT; i++) {
    st->bodies[i] = pr_store_script_body(script_src[i].name);
    st->scripts[i].name = script_src[i].name;
    st->scripts[i].body = st->bodies[i];
  }
  snprintf(st->ttl, sizeof(st->ttl), "%lld", (long long)opts.ttl_ms);
  st->pkeys = pr_malloc(opts.partitions * sizeof(*st->pkeys));
  for (unsigned p = 0; p < opts.partitions; p++) {
    pr_key_deadlines(st->pkeys[p].dl, sizeof(st->pkeys[p].dl), p);
    pr_key_events(st->pkeys[p].ev, sizeof(st->pkeys[p].ev), p);
  }
  *out = st;
  return 0;
}

void pr_store_free(pr_store *st) {
  if (!st) return;
  for (size_t i = 0; i < S_COUNT; i++)
    pr_free(st->bodies[i]);
  pr_free(st->pkeys);
  pr_free(st);
}

const pr_store_opts *pr_store_get_opts(const pr_store *st) { return &st->o; }

pr_redis *pr_store_redis(const pr_store *st) { return st->r; }

unsigned pr_store_partition_of(const pr_store *st, const char *user) {
  return pr_partition_of(user, strlen(user), st->o.partitions);
}

/* The static word for a status read from Redis (anything else reads offline). */
static const char *status_word(const char *s, size_t len) {
  static const char *const words[] = {"online", "idle", "dnd", "offline", "invisible"};
  for (size_t i = 0; i < PR_ARRAY_LEN(words); i++)
    if (s && strlen(words[i]) == len && memcmp(words[i], s, len) == 0) return words[i];
  return "offline";
}

static uint64_t u64_of(const char *s) { return s ? strtoull(s, NULL, 10) : 0; }

/* ---- single-user scripts ------------------------------------------------- */

typedef struct {
  pr_store_update_cb cb;
  void *arg;
} update_op;

static int parse_update(const redisReply *reply, pr_store_update *res) {
  if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return PR_EPROTO;
  const redisReply *s = reply->element[0], *v = reply->element[1], *c = reply->element[2];
  if (s->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_INTEGER ||
      c->type != REDIS_REPLY_INTEGER)
    return PR_EPROTO;
  res->status = status_word(s->str, s->len);
  res->version = (uint64_t)v->integer;
  res->changed = c->integer != 0;
  return 0;
}

static void on_update(pr_redis *r, redisReply *reply, int err, void *arg) {
  update_op *op = arg;
  pr_store_update res = {0};
  if (!err) err = parse_update(reply, &res);
  if (op->cb) op->cb(err ? NULL : &res, err, op->arg);
  pr_free(op);
}

static int run_update(pr_store *st, int script, int nkeys, const char **keys, int nargs,
                      const char **args, pr_store_update_cb cb, void *arg) {
  update_op *op = pr_malloc(sizeof(*op));
  op->cb = cb;
  op->arg = arg;
  int rc =
      pr_redis_script_run(st->r, &st->scripts[script], on_update, op, nkeys, keys, nargs, args);
  if (rc) pr_free(op);
  return rc;
}

/* The keys every per-user script starts with: pr, dl, ev (the last two
 * point into st->pkeys). */
typedef struct {
  unsigned p;
  char pr[PR_KEY_MAX], extra[PR_KEY_MAX];
  const char *keys[4];
} user_keys;

static int user_keys_init(pr_store *st, user_keys *k, const char *user) {
  if (!user || !*user) return PR_EINVAL;
  k->p = pr_store_partition_of(st, user);
  if (pr_key_presence(k->pr, sizeof(k->pr), k->p, user) < 0) return PR_EINVAL;
  k->extra[0] = '\0';
  k->keys[0] = k->pr;
  k->keys[1] = st->pkeys[k->p].dl;
  k->keys[2] = st->pkeys[k->p].ev;
  k->keys[3] = k->extra;
  return 0;
}

int pr_store_heartbeat(pr_store *st, const char *user, const char *device,
                       const char *status_or_NULL, const char **to, size_t nto,
                       pr_store_update_cb cb, void *arg) {
  user_keys k;
  if (user_keys_init(st, &k, user) || !device || !*device) return PR_EINVAL;
  if (pr_key_hb(k.extra, sizeof(k.extra), k.p, user, device) < 0) return PR_EINVAL;
  if (nto > PR_EVENT_MAX_TO) return PR_ETOOBIG; /* events must stay decodable */
  const char *args_small[6];
  const char **args = nto ? pr_malloc((6 + nto) * sizeof(char *)) : args_small;
  args[0] = user;
  args[1] = device;
  args[2] = st->ttl;
  args[3] = status_or_NULL ? status_or_NULL : "";
  args[4] = st->o.broadcast_heartbeats ? "1" : "0";
  args[5] = st->o.keyspace_mode ? "1" : "0";
  for (size_t i = 0; i < nto; i++)
    args[6 + i] = to[i];
  int rc = run_update(st, S_HEARTBEAT, 4, k.keys, (int)(6 + nto), args, cb, arg);
  if (args != args_small) pr_free(args);
  return rc;
}

int pr_store_offline(pr_store *st, const char *user, const char *device_or_NULL,
                     pr_store_update_cb cb, void *arg) {
  user_keys k;
  if (user_keys_init(st, &k, user)) return PR_EINVAL;
  const char *args[] = {user, device_or_NULL ? device_or_NULL : "",
                        st->o.keyspace_mode ? "1" : "0"};
  return run_update(st, S_OFFLINE, 3, k.keys, 3, args, cb, arg);
}

int pr_store_expire_user(pr_store *st, const char *user, pr_store_update_cb cb, void *arg) {
  user_keys k;
  if (user_keys_init(st, &k, user)) return PR_EINVAL;
  const char *args[] = {user};
  return run_update(st, S_EXPIRE, 3, k.keys, 1, args, cb, arg);
}

/* conn_set with ARGV[5] relay and ARGV[6..] to: shared by conn_set and conn_heartbeat. */
static int conn_update(pr_store *st, const char *user, const char *device, const char *instance,
                       const char *status_or_NULL, int relay, const char **to, size_t nto,
                       pr_store_update_cb cb, void *arg) {
  user_keys k;
  if (user_keys_init(st, &k, user) || !device || !*device || !instance || !*instance)
    return PR_EINVAL;
  if (nto > PR_EVENT_MAX_TO) return PR_ETOOBIG;
  pr_key_route(k.extra, sizeof(k.extra), k.p, user);
  const char **args = pr_malloc((5 + nto) * sizeof(char *));
  args[0] = user;
  args[1] = device;
  args[2] = instance;
  args[3] = status_or_NULL ? status_or_NULL : "";
  args[4] = relay ? "1" : "0";
  for (size_t i = 0; i < nto; i++)
    args[5 + i] = to[i];
  int rc = run_update(st, S_CONN_SET, 4, k.keys, (int)(5 + nto), args, cb, arg);
  pr_free(args);
  return rc;
}

int pr_store_conn_set(pr_store *st, const char *user, const char *device, const char *instance,
                      const char *status_or_NULL, pr_store_update_cb cb, void *arg) {
  return conn_update(st, user, device, instance, status_or_NULL, 0, NULL, 0, cb, arg);
}

int pr_store_conn_heartbeat(pr_store *st, const char *user, const char *device,
                            const char *instance, const char **to, size_t nto,
                            pr_store_update_cb cb, void *arg) {
  return conn_update(st, user, device, instance, NULL, st->o.broadcast_heartbeats, to, nto, cb,
                     arg);
}

int pr_store_conn_del(pr_store *st, const char *user, const char *device, const char *instance,
                      pr_store_update_cb cb, void *arg) {
  user_keys k;
  if (user_keys_init(st, &k, user) || !device || !*device || !instance || !*instance)
    return PR_EINVAL;
  pr_key_route(k.extra, sizeof(k.extra), k.p, user);
  const char *args[] = {user, device, instance};
  return run_update(st, S_CONN_DEL, 4, k.keys, 3, args, cb, arg);
}

/* ---- sweep --------------------------------------------------------------- */

typedef struct {
  pr_store_sweep_cb cb;
  void *arg;
} sweep_op;

static void on_sweep(pr_redis *r, redisReply *reply, int err, void *arg) {
  sweep_op *op = arg;
  pr_store_sweep_result res = {0};
  if (!err) {
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_INTEGER ||
        reply->element[2]->type != REDIS_REPLY_INTEGER) {
      err = PR_EPROTO;
    } else {
      res.owner = reply->element[0]->integer != 0;
      res.expired = (unsigned)reply->element[1]->integer;
      res.published = (unsigned)reply->element[2]->integer;
    }
  }
  if (op->cb) op->cb(err ? NULL : &res, err, op->arg);
  pr_free(op);
}

int pr_store_sweep(pr_store *st, unsigned partition, const char *worker_id, unsigned limit,
                   pr_store_sweep_cb cb, void *arg) {
  if (partition >= st->o.partitions || limit == 0) return PR_EINVAL;
  char dl[PR_KEY_MAX], ev[PR_KEY_MAX], own[PR_KEY_MAX], lim[16];
  pr_key_deadlines(dl, sizeof(dl), partition);
  pr_key_events(ev, sizeof(ev), partition);
  pr_key_owner(own, sizeof(own), partition);
  snprintf(lim, sizeof(lim), "%u", limit);
  const char *keys[] = {dl, ev, own};
  const char *args[] = {worker_id ? worker_id : "", lim};
  sweep_op *op = pr_malloc(sizeof(*op));
  op->cb = cb;
  op->arg = arg;
  int rc = pr_redis_script_run(st->r, &st->scripts[S_SWEEP], on_sweep, op, 3, keys, 2, args);
  if (rc) pr_free(op);
  return rc;
}

/* ---- read ---------------------------------------------------------------- */

typedef struct {
  pr_store_read_cb cb;
  void *arg;
  char *caller;
  char **users;
  size_t n;
} read_op;

static void read_done(pr_pipe *p, int err, void *ctx) {
  read_op *op = ctx;
  pr_presence *out = NULL;
  if (!err && pr_pipe_count(p) != op->n) err = PR_EPROTO;
  if (!err) {
    out = pr_calloc(op->n, sizeof(*out));
    for (size_t i = 0; i < op->n; i++) {
      const pr_pipe_res *res = pr_pipe_result(p, i);
      /* HMGET st ver ls pref rs */
      const char *f[5] = {0};
      for (size_t j = 0; j < 5 && j < res->n; j++)
        f[j] = res->v[j];
      pr_presence *u = &out[i];
      u->user = op->users[i];
      u->status = f[0] ? status_word(f[0], strlen(f[0])) : "offline";
      u->version = u64_of(f[1]);
      u->last_seen = strcmp(u->status, "offline") == 0 ? u64_of(f[2]) : 0;
      if (op->caller && strcmp(op->caller, op->users[i]) == 0 && f[3] &&
          strcmp(f[3], "invisible") == 0 && f[4] && strcmp(f[4], "offline") != 0) {
        u->status = "invisible";
        u->last_seen = 0;
      }
    }
  }
  if (op->cb) op->cb(out, err ? 0 : op->n, err, op->arg);
  pr_free(out);
  for (size_t i = 0; i < op->n; i++)
    pr_free(op->users[i]);
  pr_free(op->users);
  pr_free(op->caller);
  pr_free(op);
}

int pr_store_read(pr_store *st, const char *caller_or_NULL, const char **users, size_t n,
                  pr_store_read_cb cb, void *arg) {
  if (n == 0 || !users) return PR_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!users[i] || !*users[i]) return PR_EINVAL;
  read_op *op = pr_calloc(1, sizeof(*op));
  op->cb = cb;
  op->arg = arg;
  op->caller = caller_or_NULL ? pr_strdup(caller_or_NULL) : NULL;
  op->users = pr_malloc(n * sizeof(char *));
  op->n = n;
  for (size_t i = 0; i < n; i++)
    op->users[i] = pr_strdup(users[i]);
  pr_pipe *p = pr_pipe_new(st->r, read_done, op);
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    char key[PR_KEY_MAX];
    rc = pr_key_presence(key, sizeof(key), pr_store_partition_of(st, users[i]), users[i]);
    if (rc < 0) break;
    const char *argv[] = {"HMGET", key, "st", "ver", "ls", "pref", "rs"};
    rc = pr_pipe_cmd(p, 7, argv);
  }
  if (rc > 0) rc = 0;
  rc = pr_pipe_seal(p, rc);
  if (rc) {
    for (size_t i = 0; i < n; i++)
      pr_free(op->users[i]);
    pr_free(op->users);
    pr_free(op->caller);
    pr_free(op);
  }
  return rc;
}
