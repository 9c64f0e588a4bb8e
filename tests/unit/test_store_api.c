/* The store's C API (store.h) through the real async client on a real
 * redis-server: writes report status/version/changed, reads map the owner's
 * "invisible", sweeps check the owner, connections feed the routing map, and
 * the store's options (ttl, broadcast, keyspace) reach the scripts. */
#include <criterion/criterion.h>
#include <msgpack.h>

#include "partition.h"
#include "test_store_async.h"

/* ---- helpers -------------------------------------------------------------- */

typedef struct {
  int done, err;
  char status[16];
  uint64_t version;
  bool changed;
} upd_res;

static void on_upd(const pr_store_update *res, int err, void *arg) {
  upd_res *u = arg;
  u->err = err;
  if (res) {
    snprintf(u->status, sizeof(u->status), "%s", res->status);
    u->version = res->version;
    u->changed = res->changed;
  }
  u->done = 1;
}

static upd_res wait_upd(int rc, upd_res *u) {
  cr_assert_eq(rc, 0, "call refused: %s", pr_strerror(rc));
  run_until(&u->done);
  cr_assert_eq(u->err, 0, "error: %s", pr_strerror(u->err));
  return *u;
}

static upd_res heartbeat(const char *user, const char *dev, const char *status) {
  upd_res u = {0};
  return wait_upd(pr_store_heartbeat(g_st, user, dev, status, NULL, 0, on_upd, &u), &u);
}

typedef struct {
  char user[72], status[16];
  uint64_t last_seen, version;
} presence;

typedef struct {
  int done, err;
  size_t n;
  presence p[8];
} read_res;

static void on_read(const pr_presence *users, size_t n, int err, void *arg) {
  read_res *r = arg;
  r->err = err;
  r->n = n;
  for (size_t i = 0; i < n && i < 8; i++) {
    snprintf(r->p[i].user, sizeof(r->p[i].user), "%s", users[i].user);
    snprintf(r->p[i].status, sizeof(r->p[i].status), "%s", users[i].status);
    r->p[i].last_seen = users[i].last_seen;
    r->p[i].version = users[i].version;
  }
  r->done = 1;
}

static read_res read_users(const char *caller, const char **users, size_t n) {
  read_res r = {0};
  cr_assert_eq(pr_store_read(g_st, caller, users, n, on_read, &r), 0);
  run_until(&r.done);
  cr_assert_eq(r.err, 0);
  cr_assert_eq(r.n, n);
  return r;
}

static presence read_one(const char *caller, const char *user) {
  const char *users[] = {user};
  return read_users(caller, users, 1).p[0];
}

typedef struct {
  int done, err;
  pr_store_sweep_result res;
} sweep_res;

static void on_sweep(const pr_store_sweep_result *res, int err, void *arg) {
  sweep_res *s = arg;
  s->err = err;
  if (res) s->res = *res;
  s->done = 1;
}

static pr_store_sweep_result sweep(unsigned p, const char *worker) {
  sweep_res s = {0};
  cr_assert_eq(pr_store_sweep(g_st, p, worker, 100, on_sweep, &s), 0);
  run_until(&s.done);
  cr_assert_eq(s.err, 0);
  return s.res;
}

static void wait_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void setup_default(void) {
  pr_store_opts o = {.partitions = 8, .ttl_ms = 100};
  async_setup(&o);
}

TestSuite(store_api, .init = setup_default, .fini = async_teardown, .timeout = 30);

/* ---- tests ---------------------------------------------------------------- */

Test(store_api, options_default_and_check) {
  const pr_store_opts *o = pr_store_get_opts(g_st);
  cr_assert_eq(o->partitions, 8);
  cr_assert_eq(o->ttl_ms, 100);
  cr_assert_eq(o->small_group_max, 100);
  pr_store *st = NULL;
  pr_store_opts bad = {.partitions = PR_PARTITIONS_MAX + 1};
  cr_assert_eq(pr_store_new(g_r, &bad, &st), PR_EINVAL);
  cr_assert_eq(pr_store_new(g_r, NULL, &st), 0);
  cr_assert_eq(pr_store_get_opts(st)->partitions, PR_PARTITIONS_DEFAULT);
  cr_assert_eq(pr_store_get_opts(st)->ttl_ms, 60000);
  cr_assert_eq(pr_store_partition_of(st, "123456789"), 0x31C3 % 1024);
  pr_store_free(st);
  /* refused calls never call back */
  cr_assert_eq(pr_store_read(g_st, NULL, NULL, 0, on_read, NULL), PR_EINVAL);
  cr_assert_eq(pr_store_sweep(g_st, 8, "", 10, on_sweep, NULL), PR_EINVAL);
}

Test(store_api, heartbeat_and_read) {
  upd_res u = heartbeat("alice", "phone", NULL);
  cr_assert_str_eq(u.status, "online");
  cr_assert_eq(u.version, 1);
  cr_assert(u.changed);
  u = heartbeat("alice", "phone", NULL);
  cr_assert_eq(u.version, 1);
  cr_assert_not(u.changed);

  const char *users[] = {"alice", "nobody"};
  read_res r = read_users("bob", users, 2);
  cr_assert_str_eq(r.p[0].user, "alice");
  cr_assert_str_eq(r.p[0].status, "online");
  cr_assert_eq(r.p[0].version, 1);
  cr_assert_eq(r.p[0].last_seen, 0);
  cr_assert_str_eq(r.p[1].user, "nobody");
  cr_assert_str_eq(r.p[1].status, "offline");
  cr_assert_eq(r.p[1].version, 0);
  cr_assert_eq(r.p[1].last_seen, 0);
}

Test(store_api, invisible_reads_as_invisible_to_the_owner_only) {
  pr_store_opts o = {.partitions = 8}; /* long ttl */
  pr_store *st = NULL;
  cr_assert_eq(pr_store_new(g_r, &o, &st), 0);
  pr_store *keep = g_st;
  g_st = st;
  heartbeat("alice", "phone", NULL);
  upd_res u = heartbeat("alice", "phone", "invisible");
  cr_assert_str_eq(u.status, "offline");
  cr_assert_eq(u.version, 2);
  presence other = read_one("bob", "alice");
  cr_assert_str_eq(other.status, "offline");
  cr_assert_gt(other.last_seen, 0);
  presence self = read_one("alice", "alice");
  cr_assert_str_eq(self.status, "invisible");
  cr_assert_eq(self.last_seen, 0);
  cr_assert_eq(self.version, 2);
  presence anon = read_one(NULL, "alice");
  cr_assert_str_eq(anon.status, "offline");

  /* once no device is live, the owner reads offline too */
  upd_res off = {0};
  wait_upd(pr_store_offline(g_st, "alice", NULL, on_upd, &off), &off);
  cr_assert_not(off.changed); /* already offline to everyone */
  self = read_one("alice", "alice");
  cr_assert_str_eq(self.status, "offline");
  g_st = keep;
  pr_store_free(st);
}

Test(store_api, dnd_and_idle) {
  heartbeat("carol", "phone", "idle");
  cr_assert_str_eq(read_one(NULL, "carol").status, "idle");
  heartbeat("carol", "phone", "dnd");
  presence p = read_one("carol", "carol");
  cr_assert_str_eq(p.status, "dnd"); /* the owner sees dnd as it is */
  cr_assert_eq(p.version, 2);
}

Test(store_api, two_devices_offline_one_by_one) {
  pr_store_opts o = {.partitions = 8};
  pr_store *st = NULL;
  cr_assert_eq(pr_store_new(g_r, &o, &st), 0);
  pr_store *keep = g_st;
  g_st = st;
  heartbeat("dave", "phone", NULL);
  heartbeat("dave", "laptop", NULL);
  upd_res u = {0};
  wait_upd(pr_store_offline(g_st, "dave", "phone", on_upd, &u), &u);
  cr_assert_str_eq(u.status, "online");
  cr_assert_not(u.changed);
  upd_res v = {0};
  wait_upd(pr_store_offline(g_st, "dave", "laptop", on_upd, &v), &v);
  cr_assert_str_eq(v.status, "offline");
  cr_assert(v.changed);
  cr_assert_eq(v.version, 2);
  presence p = read_one(NULL, "dave");
  cr_assert_str_eq(p.status, "offline");
  cr_assert_gt(p.last_seen, 0);
  g_st = keep;
  pr_store_free(st);
}

Test(store_api, sweep_after_ttl_with_owner_check) {
  heartbeat("erin", "phone", NULL); /* ttl 100 ms */
  unsigned p = pr_store_partition_of(g_st, "erin");
  redisContext *c = test_redis_connect();
  char own[PR_KEY_MAX];
  pr_key_owner(own, sizeof(own), p);
  freeReplyObject(redisCommand(c, "SET %s w1 PX 10000", own));
  char pr[PR_KEY_MAX];
  pr_key_presence(pr, sizeof(pr), p, "erin");
  redisReply *d = redisCommand(c, "HGET %s d:phone", pr);
  uint64_t seen = strtoull(strrchr(d->str, '|') + 1, NULL, 10);
  freeReplyObject(d);
  redisFree(c);

  wait_ms(150);
  pr_store_sweep_result s = sweep(p, "w2");
  cr_assert_not(s.owner);
  cr_assert_eq(s.expired, 0);
  cr_assert_str_eq(read_one(NULL, "erin").status, "online");
  s = sweep(p, "w1");
  cr_assert(s.owner);
  cr_assert_eq(s.expired, 1);
  cr_assert_eq(s.published, 1);
  presence r = read_one(NULL, "erin");
  cr_assert_str_eq(r.status, "offline");
  cr_assert_eq(r.version, 2);
  cr_assert_eq(r.last_seen, seen);
}

Test(store_api, expire_user_after_ttl) {
  heartbeat("fred", "phone", NULL);
  upd_res u = {0};
  wait_upd(pr_store_expire_user(g_st, "fred", on_upd, &u), &u);
  cr_assert_str_eq(u.status, "online"); /* not due yet */
  wait_ms(150);
  upd_res v = {0};
  wait_upd(pr_store_expire_user(g_st, "fred", on_upd, &v), &v);
  cr_assert_str_eq(v.status, "offline");
  cr_assert(v.changed);
}

typedef struct {
  int done, err;
  size_t n;
  char user[4][72];
  size_t nids[4];
  char ids[4][8][72];
} lists_res;

static void on_lists(const pr_store_list *lists, size_t n, int err, void *arg) {
  lists_res *l = arg;
  l->err = err;
  l->n = n;
  for (size_t i = 0; i < n && i < 4; i++) {
    snprintf(l->user[i], sizeof(l->user[i]), "%s", lists[i].user);
    l->nids[i] = lists[i].n;
    for (size_t j = 0; j < lists[i].n && j < 8; j++)
      snprintf(l->ids[i][j], sizeof(l->ids[i][j]), "%s", lists[i].ids[j]);
  }
  l->done = 1;
}

static int has_id(const lists_res *l, size_t i, const char *id) {
  for (size_t j = 0; j < l->nids[i]; j++)
    if (strcmp(l->ids[i][j], id) == 0) return 1;
  return 0;
}

Test(store_api, connections_and_routes) {
  upd_res a = {0}, b = {0}, c = {0}, d = {0}, e = {0};
  wait_upd(pr_store_conn_set(g_st, "gina", "tab1", "recv-a", NULL, on_upd, &a), &a);
  cr_assert_str_eq(a.status, "online");
  cr_assert_eq(a.version, 1);
  wait_upd(pr_store_conn_set(g_st, "gina", "tab2", "recv-a", "idle", on_upd, &b), &b);
  cr_assert_str_eq(b.status, "online"); /* tab1 is still online */
  wait_upd(pr_store_conn_set(g_st, "gina", "tab3", "recv-b", NULL, on_upd, &c), &c);

  const char *users[] = {"gina", "nobody"};
  lists_res l = {0};
  cr_assert_eq(pr_route_instances(g_st, users, 2, on_lists, &l), 0);
  run_until(&l.done);
  cr_assert_eq(l.err, 0);
  cr_assert_eq(l.n, 2);
  cr_assert_str_eq(l.user[0], "gina");
  cr_assert_eq(l.nids[0], 2); /* recv-a once, recv-b */
  cr_assert(has_id(&l, 0, "recv-a"));
  cr_assert(has_id(&l, 0, "recv-b"));
  cr_assert_eq(l.nids[1], 0);

  /* a stale instance cannot remove a device another instance holds now */
  wait_upd(pr_store_conn_set(g_st, "gina", "tab1", "recv-b", NULL, on_upd, &d), &d);
  upd_res stale = {0};
  wait_upd(pr_store_conn_del(g_st, "gina", "tab1", "recv-a", on_upd, &stale), &stale);
  cr_assert_not(stale.changed);
  upd_res x = {0}, y = {0};
  wait_upd(pr_store_conn_del(g_st, "gina", "tab1", "recv-b", on_upd, &x), &x);
  cr_assert_str_eq(x.status, "online"); /* tab3 */
  wait_upd(pr_store_conn_del(g_st, "gina", "tab3", "recv-b", on_upd, &y), &y);
  cr_assert_str_eq(y.status, "idle"); /* tab2 is idle */
  cr_assert_eq(y.version, 2);
  wait_upd(pr_store_conn_del(g_st, "gina", "tab2", "recv-a", on_upd, &e), &e);
  cr_assert_str_eq(e.status, "offline");
  cr_assert_eq(e.version, 3);

  lists_res l2 = {0};
  cr_assert_eq(pr_route_instances(g_st, users, 1, on_lists, &l2), 0);
  run_until(&l2.done);
  cr_assert_eq(l2.nids[0], 0);
}

/* ---- options that reach the scripts --------------------------------------- */

static void setup_broadcast(void) {
  pr_store_opts o = {.partitions = 8, .broadcast_heartbeats = true, .keyspace_mode = true};
  async_setup(&o);
}

/* Counts the events on `channel` published so far (a marker ends the read). */
static size_t drain(redisContext *sub, redisContext *c, const char *channel, long long *kinds,
                    size_t *ntos, size_t max) {
  freeReplyObject(redisCommand(c, "PUBLISH %s __end__", channel));
  size_t n = 0;
  for (;;) {
    void *rv = NULL;
    cr_assert_eq(redisGetReply(sub, &rv), REDIS_OK);
    redisReply *r = rv;
    redisReply *data = r->element[2];
    if (data->len == 7 && memcmp(data->str, "__end__", 7) == 0) {
      freeReplyObject(r);
      return n;
    }
    cr_assert_lt(n, max);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    cr_assert_eq(msgpack_unpack_next(&u, data->str, data->len, NULL), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(u.data.via.array.size, 8);
    kinds[n] = (long long)u.data.via.array.ptr[1].via.u64;
    ntos[n] = u.data.via.array.ptr[7].via.array.size;
    msgpack_unpacked_destroy(&u);
    freeReplyObject(r);
    n++;
  }
}

Test(store_api_modes, broadcast_and_keyspace, .init = setup_broadcast, .fini = async_teardown,
     .timeout = 30) {
  unsigned p = pr_store_partition_of(g_st, "hana");
  char ev[PR_KEY_MAX], hb[PR_KEY_MAX];
  pr_key_events(ev, sizeof(ev), p);
  pr_key_hb(hb, sizeof(hb), p, "hana", "phone");
  redisContext *c = test_redis_connect(), *sub = test_redis_connect();
  freeReplyObject(redisCommand(sub, "SUBSCRIBE %s", ev));

  const char *to[] = {"bob", "carol", "dave"};
  for (int i = 0; i < 3; i++) {
    upd_res u = {0};
    wait_upd(pr_store_heartbeat(g_st, "hana", "phone", NULL, to, 3, on_upd, &u), &u);
  }
  long long kinds[8];
  size_t ntos[8];
  cr_assert_eq(drain(sub, c, ev, kinds, ntos, 8), 3);
  cr_assert_eq(kinds[0], 1);
  cr_assert_eq(kinds[1], 2);
  cr_assert_eq(kinds[2], 2);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(ntos[i], 3);

  redisReply *r = redisCommand(c, "PTTL %s", hb);
  cr_assert_gt(r->integer, 0);
  cr_assert_leq(r->integer, 60000);
  freeReplyObject(r);
  redisFree(sub);
  redisFree(c);
}
