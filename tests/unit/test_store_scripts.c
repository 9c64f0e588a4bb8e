/* The store's Lua scripts (common/store/<name>.lua), run with plain EVAL on a
 * synchronous hiredis connection against a real redis-server: statuses,
 * versions, events (counted on a SUBSCRIBE connection and decoded with
 * msgpack-c), deadlines and the sweep, connections, broadcast and keyspace
 * modes. */
#include <criterion/criterion.h>
#include <msgpack.h>

#include "base.h"
#include "event.h"
#include "partition.h"
#include "store.h"
#include "test_store_server.h"

#define P 16 /* partitions in these tests */

static redisContext *c;   /* commands */
static redisContext *sub; /* SUBSCRIBE ev:{pN} */
static unsigned sub_p;

static void setup(void) {
  cr_assert_eq(test_redis_start(), 0, "redis-server did not start");
  c = test_redis_connect();
  cr_assert_not_null(c);
}

static void teardown(void) {
  if (sub) redisFree(sub);
  if (c) redisFree(c);
  sub = c = NULL;
  test_redis_stop();
}

TestSuite(store_scripts, .init = setup, .fini = teardown, .timeout = 30);

/* ---- helpers -------------------------------------------------------------- */

typedef struct {
  unsigned p;
  char pr[PR_KEY_MAX], dl[PR_KEY_MAX], ev[PR_KEY_MAX], rt[PR_KEY_MAX], own[PR_KEY_MAX];
} ukeys;

static ukeys keys_of(const char *user) {
  ukeys k;
  k.p = pr_partition_of(user, strlen(user), P);
  pr_key_presence(k.pr, sizeof(k.pr), k.p, user);
  pr_key_deadlines(k.dl, sizeof(k.dl), k.p);
  pr_key_events(k.ev, sizeof(k.ev), k.p);
  pr_key_route(k.rt, sizeof(k.rt), k.p, user);
  pr_key_owner(k.own, sizeof(k.own), k.p);
  return k;
}

/* EVAL <full body of `name`> nkeys keys... args... */
static redisReply *eval(const char *name, int nkeys, const char **keys, int nargs,
                        const char **args) {
  char *body = pr_store_script_body(name);
  cr_assert_not_null(body, "no script %s", name);
  const char *argv[32];
  char nk[8];
  snprintf(nk, sizeof(nk), "%d", nkeys);
  int argc = 0;
  argv[argc++] = "EVAL";
  argv[argc++] = body;
  argv[argc++] = nk;
  for (int i = 0; i < nkeys; i++)
    argv[argc++] = keys[i];
  for (int i = 0; i < nargs; i++)
    argv[argc++] = args[i];
  redisReply *r = redisCommandArgv(c, argc, argv, NULL);
  pr_free(body);
  cr_assert_not_null(r);
  cr_assert_neq(r->type, REDIS_REPLY_ERROR, "%s: %s", name, r->str);
  return r;
}

typedef struct {
  char st[16];
  long long ver;
  int changed;
} upd;

static upd upd_of(redisReply *r) {
  upd u;
  cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
  cr_assert_eq(r->elements, 3);
  snprintf(u.st, sizeof(u.st), "%s", r->element[0]->str);
  u.ver = r->element[1]->integer;
  u.changed = (int)r->element[2]->integer;
  freeReplyObject(r);
  return u;
}

static upd hb_full(const char *user, const char *dev, const char *status, long ttl, int broadcast,
                   int keyspace, int nto, const char **to) {
  ukeys k = keys_of(user);
  char hb[PR_KEY_MAX], ttls[24];
  pr_key_hb(hb, sizeof(hb), k.p, user, dev);
  snprintf(ttls, sizeof(ttls), "%ld", ttl);
  const char *keys[] = {k.pr, k.dl, k.ev, hb};
  const char *args[16] = {
      user, dev, ttls, status ? status : "", broadcast ? "1" : "0", keyspace ? "1" : "0"};
  for (int i = 0; i < nto; i++)
    args[6 + i] = to[i];
  return upd_of(eval("heartbeat", 4, keys, 6 + nto, args));
}

static upd hb(const char *user, const char *dev, const char *status) {
  return hb_full(user, dev, status, 60000, 0, 0, 0, NULL);
}

static upd offline(const char *user, const char *dev, int keyspace) {
  ukeys k = keys_of(user);
  const char *keys[] = {k.pr, k.dl, k.ev};
  const char *args[] = {user, dev ? dev : "", keyspace ? "1" : "0"};
  return upd_of(eval("offline", 3, keys, 3, args));
}

static upd conn(const char *script, const char *user, const char *dev, const char *inst,
                const char *status) {
  ukeys k = keys_of(user);
  const char *keys[] = {k.pr, k.dl, k.ev, k.rt};
  const char *args[] = {user, dev, inst, status ? status : ""};
  return upd_of(eval(script, 4, keys, strcmp(script, "conn_set") == 0 ? 4 : 3, args));
}

static char *hget(const char *key, const char *field) {
  redisReply *r = redisCommand(c, "HGET %s %s", key, field);
  char *v = r->type == REDIS_REPLY_STRING ? pr_strdup(r->str) : NULL;
  freeReplyObject(r);
  return v;
}

static long long hget_ll(const char *key, const char *field) {
  char *v = hget(key, field);
  long long n = v ? atoll(v) : -1;
  pr_free(v);
  return n;
}

static long long redis_now_ms(void) {
  redisReply *r = redisCommand(c, "TIME");
  long long ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
  freeReplyObject(r);
  return ms;
}

static void wait_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- events --------------------------------------------------------------- */

typedef struct {
  long long format, kind;
  char user[80], status[16];
  unsigned long long last_seen, version, ts;
  size_t nto;
  char to[8][80];
} event;

static void sub_open(unsigned p) {
  sub = test_redis_connect();
  cr_assert_not_null(sub);
  sub_p = p;
  char ch[PR_KEY_MAX];
  pr_key_events(ch, sizeof(ch), p);
  redisReply *r = redisCommand(sub, "SUBSCRIBE %s", ch);
  cr_assert_not_null(r);
  freeReplyObject(r);
}

static void copy_str(char *dst, size_t cap, msgpack_object o) {
  cr_assert(o.type == MSGPACK_OBJECT_STR, "expected a str, got type %d", o.type);
  cr_assert_lt(o.via.str.size, cap);
  memcpy(dst, o.via.str.ptr, o.via.str.size);
  dst[o.via.str.size] = '\0';
}

static unsigned long long uint_of(msgpack_object o) {
  cr_assert(o.type == MSGPACK_OBJECT_POSITIVE_INTEGER, "expected a uint, got type %d", o.type);
  return o.via.u64;
}

static event decode(const char *data, size_t len) {
  event e;
  memset(&e, 0, sizeof(e));
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  cr_assert_eq(msgpack_unpack_next(&u, data, len, &off), MSGPACK_UNPACK_SUCCESS);
  cr_assert_eq(off, len, "trailing bytes after the event");
  msgpack_object o = u.data;
  cr_assert_eq(o.type, MSGPACK_OBJECT_ARRAY);
  cr_assert_eq(o.via.array.size, 8);
  msgpack_object *a = o.via.array.ptr;
  e.format = (long long)uint_of(a[0]);
  e.kind = (long long)uint_of(a[1]);
  copy_str(e.user, sizeof(e.user), a[2]);
  copy_str(e.status, sizeof(e.status), a[3]);
  e.last_seen = uint_of(a[4]);
  e.version = uint_of(a[5]);
  e.ts = uint_of(a[6]);
  if (a[7].type == MSGPACK_OBJECT_MAP) {
    cr_assert_eq(a[7].via.map.size, 0);
  } else {
    cr_assert_eq(a[7].type, MSGPACK_OBJECT_ARRAY);
    e.nto = a[7].via.array.size;
    cr_assert_leq(e.nto, 8);
    for (size_t i = 0; i < e.nto; i++)
      copy_str(e.to[i], sizeof(e.to[i]), a[7].via.array.ptr[i]);
  }
  msgpack_unpacked_destroy(&u);
  /* and the decoder fanout uses agrees */
  pr_event pe;
  cr_assert_eq(pr_event_decode(data, len, &pe), 0);
  cr_assert_eq(pe.kind, e.kind);
  cr_assert_eq(pe.version, e.version);
  cr_assert_eq(pe.last_seen, e.last_seen);
  cr_assert_eq(pe.to.n, e.nto);
  return e;
}

/* Reads every event published so far on the subscribed channel: publishes a
 * marker from the command connection and reads up to it (no waiting on time). */
static size_t sub_drain(event *out, size_t max) {
  char ch[PR_KEY_MAX];
  pr_key_events(ch, sizeof(ch), sub_p);
  redisReply *r = redisCommand(c, "PUBLISH %s __end__", ch);
  freeReplyObject(r);
  size_t n = 0;
  for (;;) {
    void *rv = NULL;
    cr_assert_eq(redisGetReply(sub, &rv), REDIS_OK);
    r = rv;
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 3);
    redisReply *data = r->element[2];
    if (data->len == 7 && memcmp(data->str, "__end__", 7) == 0) {
      freeReplyObject(r);
      return n;
    }
    cr_assert_lt(n, max, "more events than expected");
    out[n++] = decode(data->str, data->len);
    freeReplyObject(r);
  }
}

/* ---- tests ---------------------------------------------------------------- */

Test(store_scripts, heartbeat_goes_online_once) {
  ukeys k = keys_of("alice");
  sub_open(k.p);
  long long before = redis_now_ms();
  upd u = hb("alice", "phone", NULL);
  cr_assert_str_eq(u.st, "online");
  cr_assert_eq(u.ver, 1);
  cr_assert_eq(u.changed, 1);
  event ev[4];
  cr_assert_eq(sub_drain(ev, 4), 1);
  cr_assert_eq(ev[0].format, 1);
  cr_assert_eq(ev[0].kind, 1);
  cr_assert_str_eq(ev[0].user, "alice");
  cr_assert_str_eq(ev[0].status, "online");
  cr_assert_eq(ev[0].last_seen, 0);
  cr_assert_eq(ev[0].version, 1);
  cr_assert_geq((long long)ev[0].ts, before);
  cr_assert_eq(ev[0].nto, 0);

  u = hb("alice", "phone", NULL); /* nothing visible changes */
  cr_assert_str_eq(u.st, "online");
  cr_assert_eq(u.ver, 1);
  cr_assert_eq(u.changed, 0);
  cr_assert_eq(sub_drain(ev, 4), 0);

  /* the deadline is in dl:{pN} */
  redisReply *r = redisCommand(c, "ZSCORE %s alice", k.dl);
  cr_assert_eq(r->type, REDIS_REPLY_STRING);
  cr_assert_geq(atoll(r->str), before + 60000);
  freeReplyObject(r);
}

Test(store_scripts, statuses_and_preferences) {
  ukeys k = keys_of("alice");
  sub_open(k.p);
  event ev[4];
  upd u = hb("alice", "phone", "idle");
  cr_assert_str_eq(u.st, "idle");
  cr_assert_eq(u.ver, 1);
  u = hb("alice", "phone", "online");
  cr_assert_str_eq(u.st, "online");
  cr_assert_eq(u.ver, 2);
  u = hb("alice", "phone", "dnd");
  cr_assert_str_eq(u.st, "dnd");
  cr_assert_eq(u.ver, 3);
  u = hb("alice", "phone", "idle"); /* activity changes, visible status stays dnd */
  cr_assert_str_eq(u.st, "dnd");
  cr_assert_eq(u.ver, 3);
  cr_assert_eq(u.changed, 0);
  cr_assert_eq(sub_drain(ev, 4), 3);

  long long before = redis_now_ms();
  u = hb("alice", "phone", "invisible");
  cr_assert_str_eq(u.st, "offline");
  cr_assert_eq(u.ver, 4);
  cr_assert_eq(sub_drain(ev, 4), 1);
  cr_assert_str_eq(ev[0].status, "offline");
  cr_assert_geq((long long)ev[0].last_seen, before);
  cr_assert_eq(ev[0].version, 4);
  char *pref = hget(k.pr, "pref"), *rs = hget(k.pr, "rs");
  cr_assert_str_eq(pref, "invisible");
  cr_assert_str_eq(rs, "idle");
  pr_free(pref);
  pr_free(rs);

  u = hb("alice", "phone", NULL); /* stays invisible: the preference is kept */
  cr_assert_str_eq(u.st, "offline");
  cr_assert_eq(u.changed, 0);
  u = hb("alice", "phone", "none"); /* back: idle activity shows again */
  cr_assert_str_eq(u.st, "idle");
  cr_assert_eq(u.ver, 5);
  cr_assert_null(hget(k.pr, "pref"));
}

Test(store_scripts, two_devices_and_offline) {
  ukeys k = keys_of("bob");
  sub_open(k.p);
  event ev[4];
  cr_assert_eq(hb("bob", "phone", NULL).ver, 1);
  upd u = hb("bob", "laptop", "idle"); /* one online device keeps bob online */
  cr_assert_str_eq(u.st, "online");
  cr_assert_eq(u.ver, 1);
  u = offline("bob", "phone", 0); /* the idle laptop remains */
  cr_assert_str_eq(u.st, "idle");
  cr_assert_eq(u.ver, 2);
  u = offline("bob", "phone", 0); /* again: nothing */
  cr_assert_eq(u.changed, 0);
  cr_assert_eq(u.ver, 2);
  long long before = redis_now_ms();
  u = offline("bob", "laptop", 0);
  cr_assert_str_eq(u.st, "offline");
  cr_assert_eq(u.ver, 3);
  cr_assert_eq(sub_drain(ev, 4), 3);
  cr_assert_str_eq(ev[2].status, "offline");
  cr_assert_geq((long long)ev[2].last_seen, before);
  cr_assert_eq(hget_ll(k.pr, "ls"), (long long)ev[2].last_seen);
  /* no HTTP device left: no deadline */
  redisReply *r = redisCommand(c, "ZSCORE %s bob", k.dl);
  cr_assert_eq(r->type, REDIS_REPLY_NIL);
  freeReplyObject(r);

  /* offline of every device at once */
  hb("bob", "a", NULL);
  hb("bob", "b", NULL);
  u = offline("bob", NULL, 0);
  cr_assert_str_eq(u.st, "offline");
  cr_assert_eq(u.ver, 5);
  cr_assert_null(hget(k.pr, "d:a"));
  cr_assert_null(hget(k.pr, "d:b"));
}

Test(store_scripts, sweep_expires_after_deadline) {
  ukeys k = keys_of("carol");
  sub_open(k.p);
  event ev[4];
  hb_full("carol", "phone", NULL, 100, 0, 0, 0, NULL);
  char *d = hget(k.pr, "d:phone"); /* h|online|<deadline>|<seen> */
  cr_assert_not_null(d);
  long long seen = atoll(strrchr(d, '|') + 1);
  pr_free(d);
  cr_assert_gt(seen, 0);
  cr_assert_eq(sub_drain(ev, 4), 1);

  char lim[] = "100";
  const char *keys[] = {k.dl, k.ev, k.own};
  const char *args[] = {"", lim};
  redisReply *r = eval("sweep", 3, keys, 2, args); /* not due yet */
  cr_assert_eq(r->element[0]->integer, 1);
  cr_assert_eq(r->element[1]->integer, 0);
  freeReplyObject(r);
  cr_assert_eq(sub_drain(ev, 4), 0);

  wait_ms(150); /* past the 100 ms deadline */
  r = eval("sweep", 3, keys, 2, args);
  cr_assert_eq(r->element[0]->integer, 1);
  cr_assert_eq(r->element[1]->integer, 1);
  cr_assert_eq(r->element[2]->integer, 1);
  freeReplyObject(r);
  char *st = hget(k.pr, "st");
  cr_assert_str_eq(st, "offline");
  pr_free(st);
  cr_assert_eq(hget_ll(k.pr, "ver"), 2);
  cr_assert_eq(hget_ll(k.pr, "ls"), seen);
  cr_assert_eq(sub_drain(ev, 4), 1);
  cr_assert_str_eq(ev[0].status, "offline");
  cr_assert_eq((long long)ev[0].last_seen, seen);
  cr_assert_eq(ev[0].version, 2);
  r = redisCommand(c, "ZCARD %s", k.dl);
  cr_assert_eq(r->integer, 0);
  freeReplyObject(r);

  r = eval("sweep", 3, keys, 2, args); /* nothing left */
  cr_assert_eq(r->element[1]->integer, 0);
  freeReplyObject(r);
  cr_assert_eq(hget_ll(k.pr, "ver"), 2);
}

Test(store_scripts, sweep_needs_the_owner) {
  ukeys k = keys_of("dave");
  hb_full("dave", "phone", NULL, 50, 0, 0, 0, NULL);
  redisReply *r = redisCommand(c, "SET %s worker-1 PX 10000", k.own);
  freeReplyObject(r);
  wait_ms(100);
  const char *keys[] = {k.dl, k.ev, k.own};
  const char *wrong[] = {"worker-2", "100"};
  r = eval("sweep", 3, keys, 2, wrong);
  cr_assert_eq(r->element[0]->integer, 0);
  cr_assert_eq(r->element[1]->integer, 0);
  freeReplyObject(r);
  char *st = hget(k.pr, "st");
  cr_assert_str_eq(st, "online"); /* untouched */
  pr_free(st);
  const char *right[] = {"worker-1", "100"};
  r = eval("sweep", 3, keys, 2, right);
  cr_assert_eq(r->element[0]->integer, 1);
  cr_assert_eq(r->element[1]->integer, 1);
  freeReplyObject(r);
  st = hget(k.pr, "st");
  cr_assert_str_eq(st, "offline");
  pr_free(st);
}

Test(store_scripts, sweep_limit_and_live_devices) {
  /* three users due in the same partition; a limit of 2 leaves one; a user
   * with another live device is swept but stays online */
  const char *users[3];
  char names[3][16];
  int found = 0;
  unsigned p = pr_partition_of("u0", 2, P);
  for (int i = 0; found < 3 && i < 1000; i++) {
    char name[16];
    snprintf(name, sizeof(name), "u%d", i);
    if (pr_partition_of(name, strlen(name), P) != p) continue;
    snprintf(names[found], sizeof(names[found]), "%s", name);
    users[found] = names[found];
    found++;
  }
  cr_assert_eq(found, 3);
  for (int i = 0; i < 3; i++)
    hb_full(users[i], "short", NULL, 50, 0, 0, 0, NULL);
  hb(users[0], "long", NULL);
  wait_ms(100);
  ukeys k = keys_of(users[0]);
  const char *keys[] = {k.dl, k.ev, k.own};
  const char *args[] = {"", "2"};
  redisReply *r = eval("sweep", 3, keys, 2, args);
  cr_assert_eq(r->element[1]->integer, 2);
  freeReplyObject(r);
  r = eval("sweep", 3, keys, 2, args);
  cr_assert_eq(r->element[1]->integer, 1);
  freeReplyObject(r);
  char *st = hget(k.pr, "st");
  cr_assert_str_eq(st, "online");
  pr_free(st);
  cr_assert_null(hget(k.pr, "d:short"));
  for (int i = 1; i < 3; i++) {
    ukeys ki = keys_of(users[i]);
    st = hget(ki.pr, "st");
    cr_assert_str_eq(st, "offline");
    pr_free(st);
  }
  /* the user with a live device keeps a deadline in dl */
  r = redisCommand(c, "ZCARD %s", k.dl);
  cr_assert_eq(r->integer, 1);
  freeReplyObject(r);
}

Test(store_scripts, connections_check_their_instance) {
  ukeys k = keys_of("erin");
  sub_open(k.p);
  event ev[4];
  upd u = conn("conn_set", "erin", "tab", "recv-a", NULL);
  cr_assert_str_eq(u.st, "online");
  cr_assert_eq(u.ver, 1);
  char *inst = hget(k.rt, "tab");
  cr_assert_str_eq(inst, "recv-a");
  pr_free(inst);

  u = conn("conn_set", "erin", "tab", "recv-b", NULL); /* reconnected elsewhere */
  cr_assert_eq(u.changed, 0);
  inst = hget(k.rt, "tab");
  cr_assert_str_eq(inst, "recv-b");
  pr_free(inst);

  u = conn("conn_del", "erin", "tab", "recv-a", NULL); /* the old instance lets go: no effect */
  cr_assert_str_eq(u.st, "online");
  cr_assert_eq(u.changed, 0);
  inst = hget(k.rt, "tab");
  cr_assert_str_eq(inst, "recv-b");
  pr_free(inst);

  u = conn("conn_set", "erin", "tab", "recv-b", "idle");
  cr_assert_str_eq(u.st, "idle");
  cr_assert_eq(u.ver, 2);

  u = conn("conn_del", "erin", "tab", "recv-b", NULL);
  cr_assert_str_eq(u.st, "offline");
  cr_assert_eq(u.ver, 3);
  cr_assert_null(hget(k.rt, "tab"));
  cr_assert_null(hget(k.pr, "d:tab"));
  cr_assert_eq(sub_drain(ev, 4), 3);
  cr_assert_str_eq(ev[2].status, "offline");
  cr_assert_gt(ev[2].last_seen, 0);
}

Test(store_scripts, connection_and_http_device_together) {
  ukeys k = keys_of("fred");
  conn("conn_set", "fred", "tab", "recv-a", NULL);
  hb_full("fred", "phone", NULL, 50, 0, 0, 0, NULL);
  wait_ms(100);
  const char *keys[] = {k.dl, k.ev, k.own};
  const char *args[] = {"", "10"};
  redisReply *r = eval("sweep", 3, keys, 2, args);
  cr_assert_eq(r->element[1]->integer, 1);
  cr_assert_eq(r->element[2]->integer, 0); /* the connection keeps fred online */
  freeReplyObject(r);
  char *st = hget(k.pr, "st");
  cr_assert_str_eq(st, "online");
  pr_free(st);
  /* offline of all HTTP devices does not touch the connection */
  hb("fred", "phone", NULL);
  upd u = offline("fred", NULL, 0);
  cr_assert_str_eq(u.st, "online");
  cr_assert_eq(u.ver, 1);
}

Test(store_scripts, broadcast_heartbeats_relay_every_heartbeat) {
  ukeys k = keys_of("gina");
  sub_open(k.p);
  event ev[4];
  const char *to[] = {"bob", "carol"};
  hb_full("gina", "phone", NULL, 60000, 1, 0, 2, to);
  hb_full("gina", "phone", NULL, 60000, 1, 0, 2, to);
  cr_assert_eq(sub_drain(ev, 4), 2);
  cr_assert_eq(ev[0].kind, 1); /* the change */
  cr_assert_eq(ev[1].kind, 2); /* a relayed heartbeat */
  for (int i = 0; i < 2; i++) {
    cr_assert_str_eq(ev[i].status, "online");
    cr_assert_eq(ev[i].version, 1);
    cr_assert_eq(ev[i].nto, 2);
    cr_assert_str_eq(ev[i].to[0], "bob");
    cr_assert_str_eq(ev[i].to[1], "carol");
  }
  /* the recipients are kept for later events (explicit offline) */
  offline("gina", NULL, 0);
  cr_assert_eq(sub_drain(ev, 4), 1);
  cr_assert_eq(ev[0].kind, 1);
  cr_assert_str_eq(ev[0].status, "offline");
  cr_assert_eq(ev[0].nto, 2);
}

Test(store_scripts, keyspace_mode_marks_devices) {
  ukeys k = keys_of("hana");
  char hbkey[PR_KEY_MAX];
  pr_key_hb(hbkey, sizeof(hbkey), k.p, "hana", "phone");
  hb_full("hana", "phone", NULL, 5000, 0, 1, 0, NULL);
  redisReply *r = redisCommand(c, "PTTL %s", hbkey);
  cr_assert_gt(r->integer, 0);
  cr_assert_leq(r->integer, 5000);
  freeReplyObject(r);
  offline("hana", "phone", 1);
  r = redisCommand(c, "EXISTS %s", hbkey);
  cr_assert_eq(r->integer, 0);
  freeReplyObject(r);

  /* without keyspace mode no marker is written */
  hb("hana", "laptop", NULL);
  pr_key_hb(hbkey, sizeof(hbkey), k.p, "hana", "laptop");
  r = redisCommand(c, "EXISTS %s", hbkey);
  cr_assert_eq(r->integer, 0);
  freeReplyObject(r);
}

Test(store_scripts, expire_user_uses_last_heartbeat) {
  ukeys k = keys_of("ivan");
  sub_open(k.p);
  event ev[4];
  hb_full("ivan", "phone", NULL, 50, 0, 1, 0, NULL);
  char *d = hget(k.pr, "d:phone");
  long long seen = atoll(strrchr(d, '|') + 1);
  pr_free(d);
  const char *keys[] = {k.pr, k.dl, k.ev};
  const char *args[] = {"ivan"};
  upd u = upd_of(eval("expire_user", 3, keys, 1, args)); /* too early: nothing */
  cr_assert_str_eq(u.st, "online");
  cr_assert_eq(u.changed, 0);
  wait_ms(100);
  u = upd_of(eval("expire_user", 3, keys, 1, args));
  cr_assert_str_eq(u.st, "offline");
  cr_assert_eq(u.ver, 2);
  cr_assert_eq(u.changed, 1);
  cr_assert_eq(sub_drain(ev, 4), 2);
  cr_assert_eq((long long)ev[1].last_seen, seen);
}
