/* store_graph.c: the social graph (contacts, groups) and the user->instance
 * routing map (store.h). Every call is a pipelined batch; the watcher queries
 * take two round trips whatever the batch size: the users' sets first, then
 * their groups. A group's members are fetched with SRANDMEMBER gm:<g> max+1,
 * which returns the whole group when it is small and only max+1 members (enough
 * to know it is large) otherwise, so a large group never costs its size. */
#include "base.h"
#include "partition.h"
#include "store.h"
#include "store_pipe.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* ---- a string -> index map (open addressing; keys are borrowed) ---------- */

typedef struct {
  const char **keys;
  size_t *vals;
  size_t cap, n;
} strmap;

static uint64_t str_hash(const char *s) { return pr_hash64(s, strlen(s)); }

static void strmap_init(strmap *m, size_t expect) {
  m->cap = 16;
  while (m->cap < expect * 2)
    m->cap *= 2;
  m->keys = pr_calloc(m->cap, sizeof(char *));
  m->vals = pr_calloc(m->cap, sizeof(size_t));
  m->n = 0;
}

static void strmap_free(strmap *m) {
  pr_free(m->keys);
  pr_free(m->vals);
  memset(m, 0, sizeof(*m));
}

static size_t strmap_slot(const strmap *m, const char *k) {
  size_t i = (size_t)str_hash(k) & (m->cap - 1);
  while (m->keys[i] && strcmp(m->keys[i], k) != 0)
    i = (i + 1) & (m->cap - 1);
  return i;
}

/* The value of k, or SIZE_MAX. */
static size_t strmap_get(const strmap *m, const char *k) {
  size_t i = strmap_slot(m, k);
  return m->keys[i] ? m->vals[i] : SIZE_MAX;
}

/* Adds k -> v unless present; returns 1 if added. */
static int strmap_put(strmap *m, const char *k, size_t v) {
  if ((m->n + 1) * 2 > m->cap) {
    strmap old = *m;
    m->cap *= 2;
    m->keys = pr_calloc(m->cap, sizeof(char *));
    m->vals = pr_calloc(m->cap, sizeof(size_t));
    for (size_t i = 0; i < old.cap; i++) {
      if (!old.keys[i]) continue;
      size_t j = strmap_slot(m, old.keys[i]);
      m->keys[j] = old.keys[i];
      m->vals[j] = old.vals[i];
    }
    strmap_free(&old);
  }
  size_t i = strmap_slot(m, k);
  if (m->keys[i]) return 0;
  m->keys[i] = k;
  m->vals[i] = v;
  m->n++;
  return 1;
}

/* A growing list of borrowed strings without duplicates, minus `skip`. Most
 * lists are short (a user's routes: one or two instances), so the first
 * IDSET_SCAN ids are checked by a scan and the hash map is built only for a
 * longer list. */
#define IDSET_SCAN 8

typedef struct {
  const char **v;
  size_t n, cap;
  strmap seen; /* cap 0 until the list outgrows IDSET_SCAN */
  const char *skip;
} idset;

static void idset_init(idset *s, const char *skip) {
  memset(s, 0, sizeof(*s));
  s->skip = skip;
}

/* 1 if id was not in the set (and is now). */
static int idset_mark(idset *s, const char *id) {
  if (s->seen.cap) return strmap_put(&s->seen, id, s->n);
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->v[i], id) == 0) return 0;
  if (s->n == IDSET_SCAN) {
    strmap_init(&s->seen, 4 * IDSET_SCAN);
    for (size_t i = 0; i < s->n; i++)
      strmap_put(&s->seen, s->v[i], i);
    strmap_put(&s->seen, id, s->n);
  }
  return 1;
}

/* 1 if id is in the set. */
static int idset_has(const idset *s, const char *id) {
  if (s->seen.cap) return strmap_get(&s->seen, id) != SIZE_MAX;
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->v[i], id) == 0) return 1;
  return 0;
}

static void idset_add(idset *s, const char *id) {
  if (!id || (s->skip && strcmp(id, s->skip) == 0)) return;
  if (!idset_mark(s, id)) return;
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 16;
    s->v = pr_realloc(s->v, s->cap * sizeof(char *));
  }
  s->v[s->n++] = id;
}

static void idset_add_all(idset *s, const pr_pipe_res *r) {
  for (size_t i = 0; i < r->n; i++)
    idset_add(s, r->v[i]);
}

/* Hands the list to the caller (pr_free it; never NULL); frees the rest. */
static const char **idset_take(idset *s, size_t *n) {
  const char **v = s->v ? s->v : pr_malloc(sizeof(char *));
  *n = s->n;
  strmap_free(&s->seen);
  return v;
}

static void key_printf(char *buf, size_t cap, const char *prefix, const char *id) {
  snprintf(buf, cap, "%s%s", prefix, id);
}

/* SRANDMEMBER's count: one more than a small group may hold. */
static void group_probe_count(const pr_store *st, char *buf, size_t cap) {
  unsigned max = pr_store_get_opts(st)->small_group_max;
  snprintf(buf, cap, "%llu", (unsigned long long)max + 1);
}

static int group_is_small(const pr_store *st, const pr_pipe_res *members) {
  return members->n <= pr_store_get_opts(st)->small_group_max;
}

/* Pipelines SRANDMEMBER gm:<g> (small_group_max + 1) for each group: a group
 * answering more than small_group_max members is large, and a large group
 * never costs its full size. Returns 0 (done will be called) or an error. */
static int probe_groups(pr_store *st, const char *const *groups, size_t n, pr_pipe_done done,
                        void *ctx) {
  char cnt[24];
  group_probe_count(st, cnt, sizeof(cnt));
  pr_pipe *p = pr_pipe_new(pr_store_redis(st), done, ctx);
  int rc = 0;
  for (size_t g = 0; g < n && !rc; g++) {
    char key[PR_KEY_MAX];
    key_printf(key, sizeof(key), "gm:", groups[g]);
    const char *argv[] = {"SRANDMEMBER", key, cnt};
    rc = pr_pipe_cmd(p, 3, argv);
  }
  return pr_pipe_seal(p, rc);
}

/* ---- writes: one MULTI each ---------------------------------------------- */

typedef struct {
  pr_store_done_cb cb;
  void *arg;
} done_op;

static void on_multi(pr_pipe *p, int err, void *ctx) {
  done_op *op = ctx;
  if (op->cb) op->cb(err, op->arg);
  pr_free(op);
}

/* MULTI; <cmd1 key1 member1>; <cmd1 key2 member2>; EXEC */
static int pair_multi(pr_store *st, const char *cmd, const char *k1, const char *m1, const char *k2,
                      const char *m2, pr_store_done_cb cb, void *arg) {
  done_op *op = pr_malloc(sizeof(*op));
  op->cb = cb;
  op->arg = arg;
  pr_pipe *p = pr_pipe_new(pr_store_redis(st), on_multi, op);
  const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
  const char *a[] = {cmd, k1, m1}, *b[] = {cmd, k2, m2};
  int rc = pr_pipe_cmd(p, 1, multi);
  if (!rc) rc = pr_pipe_cmd(p, 3, a);
  if (!rc) rc = pr_pipe_cmd(p, 3, b);
  if (!rc) rc = pr_pipe_cmd(p, 1, exec);
  rc = pr_pipe_seal(p, rc);
  if (rc) pr_free(op);
  return rc;
}

static int edge(pr_store *st, const char *cmd, const char *p1, const char *a, const char *p2,
                const char *b, pr_store_done_cb cb, void *arg) {
  if (!a || !*a || !b || !*b) return PR_EINVAL;
  char k1[PR_KEY_MAX], k2[PR_KEY_MAX];
  key_printf(k1, sizeof(k1), p1, a);
  key_printf(k2, sizeof(k2), p2, b);
  return pair_multi(st, cmd, k1, b, k2, a, cb, arg);
}

int pr_graph_contact_add(pr_store *st, const char *u, const char *c, pr_store_done_cb cb,
                         void *arg) {
  return edge(st, "SADD", "ct:", u, "cw:", c, cb, arg);
}

int pr_graph_contact_remove(pr_store *st, const char *u, const char *c, pr_store_done_cb cb,
                            void *arg) {
  return edge(st, "SREM", "ct:", u, "cw:", c, cb, arg);
}

int pr_graph_member_add(pr_store *st, const char *g, const char *u, pr_store_done_cb cb,
                        void *arg) {
  return edge(st, "SADD", "gm:", g, "ug:", u, cb, arg);
}

int pr_graph_member_remove(pr_store *st, const char *g, const char *u, pr_store_done_cb cb,
                           void *arg) {
  return edge(st, "SREM", "gm:", g, "ug:", u, cb, arg);
}

/* ---- members (SSCAN) ------------------------------------------------------ */

typedef struct {
  pr_store_members_cb cb;
  void *arg;
} members_op;

static void on_members(pr_pipe *p, int err, void *ctx) {
  members_op *op = ctx;
  const pr_pipe_res *r = err ? NULL : pr_pipe_result(p, 0);
  if (r && !r->cursor) err = PR_EPROTO;
  if (op->cb) {
    if (err)
      op->cb(NULL, 0, "0", err, op->arg);
    else
      op->cb((const char *const *)r->v, r->n, r->cursor, 0, op->arg);
  }
  pr_free(op);
}

int pr_graph_members(pr_store *st, const char *g, const char *cursor, unsigned count,
                     pr_store_members_cb cb, void *arg) {
  if (!g || !*g) return PR_EINVAL;
  char key[PR_KEY_MAX], cnt[16];
  key_printf(key, sizeof(key), "gm:", g);
  snprintf(cnt, sizeof(cnt), "%u", count ? count : 100);
  members_op *op = pr_malloc(sizeof(*op));
  op->cb = cb;
  op->arg = arg;
  pr_pipe *p = pr_pipe_new(pr_store_redis(st), on_members, op);
  const char *argv[] = {"SSCAN", key, cursor && *cursor ? cursor : "0", "COUNT", cnt};
  int rc = pr_pipe_seal(p, pr_pipe_cmd(p, 5, argv));
  if (rc) pr_free(op);
  return rc;
}

/* ---- watchers: who may watch each user ------------------------------------ */

typedef struct {
  pr_store *st;
  pr_store_lists_cb cb;
  void *arg;
  size_t n;
  char **users;
  pr_pipe_res *ct, *ug; /* per user, taken from the first round */
  strmap gidx;          /* group -> index into groups */
  const char **groups;
  size_t ngroups;
} watchers_op;

static void watchers_free(watchers_op *op) {
  for (size_t i = 0; i < op->n; i++) {
    pr_free(op->users[i]);
    if (op->ct) pr_pipe_res_free(&op->ct[i]);
    if (op->ug) pr_pipe_res_free(&op->ug[i]);
  }
  pr_free(op->users);
  pr_free(op->ct);
  pr_free(op->ug);
  strmap_free(&op->gidx);
  pr_free(op->groups);
  pr_free(op);
}

/* Builds the lists and calls back; p2 holds the groups' members (or NULL). */
static void watchers_finish(watchers_op *op, pr_pipe *p2, int err) {
  pr_store_list *lists = NULL;
  if (!err) {
    lists = pr_calloc(op->n, sizeof(*lists));
    for (size_t i = 0; i < op->n; i++) {
      idset s;
      idset_init(&s, op->users[i]);
      idset_add_all(&s, &op->ct[i]);
      for (size_t j = 0; p2 && j < op->ug[i].n; j++) {
        size_t g = strmap_get(&op->gidx, op->ug[i].v[j]);
        if (g == SIZE_MAX) continue;
        const pr_pipe_res *m = pr_pipe_result(p2, g);
        if (group_is_small(op->st, m)) idset_add_all(&s, m);
      }
      lists[i].user = op->users[i];
      lists[i].ids = idset_take(&s, &lists[i].n);
    }
  }
  if (op->cb) op->cb(lists, err ? 0 : op->n, err, op->arg);
  for (size_t i = 0; lists && i < op->n; i++)
    pr_free((void *)lists[i].ids);
  pr_free(lists);
  watchers_free(op);
}

static void watchers_round2(pr_pipe *p, int err, void *ctx) { watchers_finish(ctx, p, err); }

static void watchers_round1(pr_pipe *p, int err, void *ctx) {
  watchers_op *op = ctx;
  if (err) return watchers_finish(op, NULL, err);
  op->ct = pr_calloc(op->n, sizeof(*op->ct));
  op->ug = pr_calloc(op->n, sizeof(*op->ug));
  strmap_init(&op->gidx, 16);
  for (size_t i = 0; i < op->n; i++) {
    op->ct[i] = pr_pipe_take(p, 2 * i);
    op->ug[i] = pr_pipe_take(p, 2 * i + 1);
    for (size_t j = 0; j < op->ug[i].n; j++) {
      const char *g = op->ug[i].v[j];
      if (!g || !strmap_put(&op->gidx, g, op->ngroups)) continue;
      op->groups = pr_realloc(op->groups, (op->ngroups + 1) * sizeof(char *));
      op->groups[op->ngroups++] = g;
    }
  }
  if (op->ngroups == 0) return watchers_finish(op, NULL, 0);
  int rc = probe_groups(op->st, (const char *const *)op->groups, op->ngroups, watchers_round2, op);
  if (rc) watchers_finish(op, NULL, rc);
}

int pr_graph_watchers(pr_store *st, const char **users, size_t n, pr_store_lists_cb cb, void *arg) {
  if (n == 0 || !users) return PR_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!users[i] || !*users[i]) return PR_EINVAL;
  watchers_op *op = pr_calloc(1, sizeof(*op));
  op->st = st;
  op->cb = cb;
  op->arg = arg;
  op->n = n;
  op->users = pr_malloc(n * sizeof(char *));
  for (size_t i = 0; i < n; i++)
    op->users[i] = pr_strdup(users[i]);
  pr_pipe *p = pr_pipe_new(pr_store_redis(st), watchers_round1, op);
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    char ct[PR_KEY_MAX], ug[PR_KEY_MAX];
    key_printf(ct, sizeof(ct), "ct:", users[i]);
    key_printf(ug, sizeof(ug), "ug:", users[i]);
    const char *a[] = {"SMEMBERS", ct}, *b[] = {"SMEMBERS", ug};
    rc = pr_pipe_cmd(p, 2, a);
    if (!rc) rc = pr_pipe_cmd(p, 2, b);
  }
  rc = pr_pipe_seal(p, rc);
  if (rc) watchers_free(op);
  return rc;
}

/* ---- watchable: whom one user may watch ----------------------------------- */

typedef struct {
  pr_store *st;
  pr_store_ids_cb cb;
  void *arg;
  char *user;
  pr_pipe_res cw, ug;
} watchable_op;

static void watchable_finish(watchable_op *op, pr_pipe *p2, int err) {
  const char **ids = NULL;
  size_t n = 0;
  if (!err) {
    idset s;
    idset_init(&s, op->user);
    idset_add_all(&s, &op->cw);
    for (size_t g = 0; p2 && g < pr_pipe_count(p2); g++) {
      const pr_pipe_res *m = pr_pipe_result(p2, g);
      if (group_is_small(op->st, m)) idset_add_all(&s, m);
    }
    ids = idset_take(&s, &n);
  }
  if (op->cb) op->cb(ids, n, err, op->arg);
  pr_free(ids);
  pr_pipe_res_free(&op->cw);
  pr_pipe_res_free(&op->ug);
  pr_free(op->user);
  pr_free(op);
}

static void watchable_round2(pr_pipe *p, int err, void *ctx) { watchable_finish(ctx, p, err); }

static void watchable_round1(pr_pipe *p, int err, void *ctx) {
  watchable_op *op = ctx;
  if (err) return watchable_finish(op, NULL, err);
  op->cw = pr_pipe_take(p, 0);
  op->ug = pr_pipe_take(p, 1);
  if (op->ug.n == 0) return watchable_finish(op, NULL, 0);
  char cnt[24];
  group_probe_count(op->st, cnt, sizeof(cnt));
  pr_pipe *p2 = pr_pipe_new(pr_store_redis(op->st), watchable_round2, op);
  int rc = 0;
  for (size_t g = 0; g < op->ug.n && !rc; g++) {
    char key[PR_KEY_MAX];
    key_printf(key, sizeof(key), "gm:", op->ug.v[g]);
    const char *argv[] = {"SRANDMEMBER", key, cnt};
    rc = pr_pipe_cmd(p2, 3, argv);
  }
  rc = pr_pipe_seal(p2, rc);
  if (rc) watchable_finish(op, NULL, rc);
}

int pr_graph_watchable(pr_store *st, const char *user, pr_store_ids_cb cb, void *arg) {
  if (!user || !*user) return PR_EINVAL;
  watchable_op *op = pr_calloc(1, sizeof(*op));
  op->st = st;
  op->cb = cb;
  op->arg = arg;
  op->user = pr_strdup(user);
  char cw[PR_KEY_MAX], ug[PR_KEY_MAX];
  key_printf(cw, sizeof(cw), "cw:", user);
  key_printf(ug, sizeof(ug), "ug:", user);
  pr_pipe *p = pr_pipe_new(pr_store_redis(st), watchable_round1, op);
  const char *a[] = {"SMEMBERS", cw}, *b[] = {"SMEMBERS", ug};
  int rc = pr_pipe_cmd(p, 2, a);
  if (!rc) rc = pr_pipe_cmd(p, 2, b);
  rc = pr_pipe_seal(p, rc);
  if (rc) {
    pr_free(op->user);
    pr_free(op);
  }
  return rc;
}

/* ---- filter_watchable: may the caller watch each of these users? ---------- */

typedef struct {
  pr_store *st;
  pr_store_filter_cb cb;
  void *arg;
  char *caller;
  char **users;
  size_t n;
  bool *allowed;
} filter_op;

static void filter_finish(filter_op *op, pr_pipe *p2, int err) {
  if (!err && p2) {
    /* the co-members of the caller's small groups */
    idset s;
    idset_init(&s, NULL);
    for (size_t g = 0; g < pr_pipe_count(p2); g++) {
      const pr_pipe_res *m = pr_pipe_result(p2, g);
      if (group_is_small(op->st, m)) idset_add_all(&s, m);
    }
    for (size_t i = 0; i < op->n; i++)
      if (!op->allowed[i] && idset_has(&s, op->users[i])) op->allowed[i] = true;
    size_t k;
    pr_free(idset_take(&s, &k));
  }
  if (op->cb) op->cb(err ? NULL : op->allowed, err ? 0 : op->n, err, op->arg);
  for (size_t i = 0; i < op->n; i++)
    pr_free(op->users[i]);
  pr_free(op->users);
  pr_free(op->allowed);
  pr_free(op->caller);
  pr_free(op);
}

static void filter_round2(pr_pipe *p, int err, void *ctx) { filter_finish(ctx, p, err); }

static void filter_round1(pr_pipe *p, int err, void *ctx) {
  filter_op *op = ctx;
  if (err) return filter_finish(op, NULL, err);
  /* slot 0: SMEMBERS ug:<caller>; then one SISMEMBER per user other than the caller */
  size_t slot = 1, pending = 0;
  for (size_t i = 0; i < op->n; i++) {
    if (op->allowed[i]) continue;
    if (pr_pipe_result(p, slot++)->num == 1)
      op->allowed[i] = true;
    else
      pending++;
  }
  const pr_pipe_res *groups = pr_pipe_result(p, 0);
  if (pending == 0 || groups->n == 0) return filter_finish(op, NULL, 0);
  int rc = probe_groups(op->st, (const char *const *)groups->v, groups->n, filter_round2, op);
  if (rc) filter_finish(op, NULL, rc);
}

int pr_graph_filter_watchable(pr_store *st, const char *caller, const char **users, size_t n,
                              pr_store_filter_cb cb, void *arg) {
  if (!caller || !*caller || n == 0 || !users) return PR_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!users[i] || !*users[i]) return PR_EINVAL;
  filter_op *op = pr_calloc(1, sizeof(*op));
  op->st = st;
  op->cb = cb;
  op->arg = arg;
  op->caller = pr_strdup(caller);
  op->n = n;
  op->users = pr_malloc(n * sizeof(char *));
  op->allowed = pr_calloc(n, sizeof(bool));
  for (size_t i = 0; i < n; i++) {
    op->users[i] = pr_strdup(users[i]);
    op->allowed[i] = strcmp(users[i], caller) == 0;
  }
  pr_pipe *p = pr_pipe_new(pr_store_redis(st), filter_round1, op);
  char key[PR_KEY_MAX];
  key_printf(key, sizeof(key), "ug:", caller);
  const char *a[] = {"SMEMBERS", key};
  int rc = pr_pipe_cmd(p, 2, a);
  for (size_t i = 0; i < n && !rc; i++) {
    if (op->allowed[i]) continue;
    key_printf(key, sizeof(key), "ct:", users[i]);
    const char *b[] = {"SISMEMBER", key, caller};
    rc = pr_pipe_cmd(p, 3, b);
  }
  rc = pr_pipe_seal(p, rc);
  if (rc) {
    for (size_t i = 0; i < n; i++)
      pr_free(op->users[i]);
    pr_free(op->users);
    pr_free(op->allowed);
    pr_free(op->caller);
    pr_free(op);
  }
  return rc;
}

/* ---- routing: receive instances of each user ------------------------------ */

typedef struct {
  pr_store_lists_cb cb;
  void *arg;
  char **users; /* the pointer array and the copies in one allocation */
  size_t n;
} route_op;

/* rt:{p<p>}:<user>, as pr_key_route writes it, without printf: one key per
 * recipient per window makes this the hottest formatting of fanout. Returns
 * the length, or -1 if it does not fit. */
static int route_key(char *buf, size_t cap, unsigned p, const char *user) {
  char digits[16];
  size_t nd = 0;
  do
    digits[nd++] = (char)('0' + p % 10);
  while ((p /= 10) != 0);
  size_t ulen = strlen(user), len = 5 + nd + 2 + ulen;
  if (len + 1 > cap) return -1;
  char *o = buf;
  memcpy(o, "rt:{p", 5);
  o += 5;
  while (nd)
    *o++ = digits[--nd];
  memcpy(o, "}:", 2);
  memcpy(o + 2, user, ulen + 1);
  return (int)len;
}

static void on_route(pr_pipe *p, int err, void *ctx) {
  route_op *op = ctx;
  pr_store_list *lists = NULL;
  if (!err && pr_pipe_count(p) != op->n) err = PR_EPROTO;
  if (!err) {
    lists = pr_calloc(op->n, sizeof(*lists));
    for (size_t i = 0; i < op->n; i++) {
      idset s;
      idset_init(&s, NULL);
      idset_add_all(&s, pr_pipe_result(p, i));
      lists[i].user = op->users[i];
      lists[i].ids = idset_take(&s, &lists[i].n);
    }
  }
  if (op->cb) op->cb(lists, err ? 0 : op->n, err, op->arg);
  for (size_t i = 0; lists && i < op->n; i++)
    pr_free((void *)lists[i].ids);
  pr_free(lists);
  pr_free(op->users);
  pr_free(op);
}

int pr_route_instances(pr_store *st, const char **users, size_t n, pr_store_lists_cb cb,
                       void *arg) {
  if (n == 0 || !users) return PR_EINVAL;
  size_t bytes = n * sizeof(char *);
  for (size_t i = 0; i < n; i++) {
    if (!users[i] || !*users[i]) return PR_EINVAL;
    bytes += strlen(users[i]) + 1;
  }
  route_op *op = pr_calloc(1, sizeof(*op));
  op->cb = cb;
  op->arg = arg;
  op->n = n;
  op->users = pr_malloc(bytes);
  char *copy = (char *)(op->users + n);
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(users[i]) + 1;
    memcpy(copy, users[i], len);
    op->users[i] = copy;
    copy += len;
  }
  pr_pipe *p = pr_pipe_new(pr_store_redis(st), on_route, op);
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    char key[PR_KEY_MAX];
    unsigned part = pr_store_partition_of(st, users[i]);
    if (route_key(key, sizeof(key), part, users[i]) < 0)
      pr_key_route(key, sizeof(key), part, users[i]); /* too long for an id: as before */
    const char *argv[] = {"HVALS", key};
    rc = pr_pipe_cmd(p, 2, argv);
  }
  rc = pr_pipe_seal(p, rc);
  if (rc) {
    pr_free(op->users);
    pr_free(op);
  }
  return rc;
}
