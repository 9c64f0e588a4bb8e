/* The social graph (store_graph.c) on a real redis-server: contacts are
 * directed, small-group co-members watch each other, a group above
 * small_group_max does not make watchers, the permission filter, and paging
 * through a group's members. */
#include <criterion/criterion.h>

#include "test_store_async.h"

#define SMALL_MAX 3

static void setup(void) {
  pr_store_opts o = {.partitions = 8, .small_group_max = SMALL_MAX};
  async_setup(&o);
}

TestSuite(store_graph, .init = setup, .fini = async_teardown, .timeout = 30);

/* ---- helpers -------------------------------------------------------------- */

typedef struct {
  int done, err;
} done_res;

static void on_done(int err, void *arg) {
  done_res *d = arg;
  d->err = err;
  d->done = 1;
}

static void wait_done(int rc, done_res *d) {
  cr_assert_eq(rc, 0);
  run_until(&d->done);
  cr_assert_eq(d->err, 0, "error: %s", pr_strerror(d->err));
}

static void contact(const char *u, const char *c, bool add) {
  done_res d = {0};
  wait_done(add ? pr_graph_contact_add(g_st, u, c, on_done, &d)
                : pr_graph_contact_remove(g_st, u, c, on_done, &d),
            &d);
}

static void member(const char *g, const char *u, bool add) {
  done_res d = {0};
  wait_done(add ? pr_graph_member_add(g_st, g, u, on_done, &d)
                : pr_graph_member_remove(g_st, g, u, on_done, &d),
            &d);
}

/* A sorted, space-joined list of ids, easy to compare. */
typedef struct {
  char s[1024];
} idstr;

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static idstr join(const char *const *ids, size_t n) {
  idstr out = {{0}};
  const char *v[64];
  cr_assert_leq(n, 64);
  memcpy(v, ids, n * sizeof(char *));
  qsort(v, n, sizeof(char *), cmp_str);
  size_t len = 0;
  for (size_t i = 0; i < n; i++)
    len += (size_t)snprintf(out.s + len, sizeof(out.s) - len, "%s%s", i ? " " : "", v[i]);
  return out;
}

typedef struct {
  int done, err;
  size_t n;
  idstr lists[8];
  char users[8][72];
} lists_res;

static void on_lists(const pr_store_list *lists, size_t n, int err, void *arg) {
  lists_res *l = arg;
  l->err = err;
  l->n = n;
  for (size_t i = 0; i < n && i < 8; i++) {
    l->lists[i] = join(lists[i].ids, lists[i].n);
    snprintf(l->users[i], sizeof(l->users[i]), "%s", lists[i].user);
  }
  l->done = 1;
}

static lists_res watchers(const char **users, size_t n) {
  lists_res l = {0};
  cr_assert_eq(pr_graph_watchers(g_st, users, n, on_lists, &l), 0);
  run_until(&l.done);
  cr_assert_eq(l.err, 0);
  cr_assert_eq(l.n, n);
  return l;
}

static idstr watchers_of(const char *user) {
  const char *users[] = {user};
  return watchers(users, 1).lists[0];
}

typedef struct {
  int done, err;
  idstr ids;
} ids_res;

static void on_ids(const char *const *ids, size_t n, int err, void *arg) {
  ids_res *r = arg;
  r->err = err;
  if (!err) r->ids = join(ids, n);
  r->done = 1;
}

static idstr watchable(const char *user) {
  ids_res r = {0};
  cr_assert_eq(pr_graph_watchable(g_st, user, on_ids, &r), 0);
  run_until(&r.done);
  cr_assert_eq(r.err, 0);
  return r.ids;
}

typedef struct {
  int done, err;
  size_t n;
  bool allowed[8];
} filter_res;

static void on_filter(const bool *allowed, size_t n, int err, void *arg) {
  filter_res *f = arg;
  f->err = err;
  f->n = n;
  for (size_t i = 0; i < n && i < 8; i++)
    f->allowed[i] = allowed[i];
  f->done = 1;
}

static filter_res filter(const char *caller, const char **users, size_t n) {
  filter_res f = {0};
  cr_assert_eq(pr_graph_filter_watchable(g_st, caller, users, n, on_filter, &f), 0);
  run_until(&f.done);
  cr_assert_eq(f.err, 0);
  cr_assert_eq(f.n, n);
  return f;
}

/* ---- tests ---------------------------------------------------------------- */

Test(store_graph, contacts_are_directed) {
  contact("alice", "bob", true); /* alice shares with bob: bob may watch alice */
  cr_assert_str_eq(watchers_of("alice").s, "bob");
  cr_assert_str_eq(watchers_of("bob").s, "");
  cr_assert_str_eq(watchable("bob").s, "alice");
  cr_assert_str_eq(watchable("alice").s, "");

  const char *users[] = {"alice", "carol", "bob"};
  filter_res f = filter("bob", users, 3);
  cr_assert(f.allowed[0]);
  cr_assert_not(f.allowed[1]);
  cr_assert(f.allowed[2]); /* itself */
  const char *b[] = {"bob"};
  cr_assert_not(filter("alice", b, 1).allowed[0]);

  contact("alice", "carol", true);
  cr_assert_str_eq(watchers_of("alice").s, "bob carol");
  contact("alice", "bob", false);
  cr_assert_str_eq(watchers_of("alice").s, "carol");
  cr_assert_str_eq(watchable("bob").s, "");
  cr_assert_not(filter("bob", users, 3).allowed[0]);
}

Test(store_graph, small_groups_make_watchers) {
  member("team", "ann", true);
  member("team", "ben", true);
  member("team", "cat", true);
  cr_assert_str_eq(watchers_of("ann").s, "ben cat");
  cr_assert_str_eq(watchable("cat").s, "ann ben");
  const char *users[] = {"ann", "ben", "zed"};
  filter_res f = filter("cat", users, 3);
  cr_assert(f.allowed[0]);
  cr_assert(f.allowed[1]);
  cr_assert_not(f.allowed[2]);

  /* a contact who is also a co-member appears once */
  contact("ann", "ben", true);
  contact("ann", "dan", true);
  cr_assert_str_eq(watchers_of("ann").s, "ben cat dan");

  member("team", "cat", false);
  cr_assert_str_eq(watchers_of("ann").s, "ben dan");
  cr_assert_str_eq(watchable("cat").s, "");
}

Test(store_graph, large_groups_do_not) {
  const char *big[] = {"m1", "m2", "m3", "m4"}; /* SMALL_MAX + 1 members */
  for (int i = 0; i < 4; i++)
    member("big", big[i], true);
  cr_assert_str_eq(watchers_of("m1").s, "");
  cr_assert_str_eq(watchable("m1").s, "");
  const char *users[] = {"m2"};
  cr_assert_not(filter("m1", users, 1).allowed[0]);

  /* a small group shared as well still counts */
  member("pair", "m1", true);
  member("pair", "m2", true);
  cr_assert_str_eq(watchers_of("m1").s, "m2");
  cr_assert_str_eq(watchable("m1").s, "m2");
  cr_assert(filter("m1", users, 1).allowed[0]);

  /* shrinking the big group to the limit makes it small */
  member("big", "m4", false);
  cr_assert_str_eq(watchers_of("m1").s, "m2 m3");
}

Test(store_graph, watchers_of_a_batch) {
  contact("u1", "w1", true);
  contact("u2", "w2", true);
  member("g", "u1", true);
  member("g", "u3", true);
  const char *users[] = {"u1", "u2", "u3", "u4"};
  lists_res l = watchers(users, 4);
  cr_assert_str_eq(l.users[0], "u1");
  cr_assert_str_eq(l.lists[0].s, "u3 w1");
  cr_assert_str_eq(l.lists[1].s, "w2");
  cr_assert_str_eq(l.lists[2].s, "u1");
  cr_assert_str_eq(l.lists[3].s, "");
}

typedef struct {
  int done, err;
  size_t n;
  char next[32];
  char members[64][16];
} page_res;

static void on_page(const char *const *members, size_t n, const char *next, int err, void *arg) {
  page_res *p = arg;
  p->err = err;
  for (size_t i = 0; i < n && p->n < 64; i++)
    snprintf(p->members[p->n++], sizeof(p->members[0]), "%s", members[i]);
  snprintf(p->next, sizeof(p->next), "%s", next);
  p->done = 1;
}

Test(store_graph, members_pages) {
  for (int i = 0; i < 25; i++) {
    char u[16];
    snprintf(u, sizeof(u), "p%02d", i);
    member("crowd", u, true);
  }
  page_res all = {0};
  char cursor[32] = "0";
  int pages = 0;
  do {
    all.done = 0;
    cr_assert_eq(pr_graph_members(g_st, "crowd", cursor, 10, on_page, &all), 0);
    run_until(&all.done);
    cr_assert_eq(all.err, 0);
    snprintf(cursor, sizeof(cursor), "%s", all.next);
    pages++;
  } while (strcmp(cursor, "0") != 0 && pages < 50);
  cr_assert_str_eq(cursor, "0");
  /* SSCAN may repeat an element across pages: count distinct */
  const char *v[64];
  for (size_t i = 0; i < all.n; i++)
    v[i] = all.members[i];
  qsort(v, all.n, sizeof(char *), cmp_str);
  size_t distinct = 0;
  for (size_t i = 0; i < all.n; i++)
    if (i == 0 || strcmp(v[i], v[i - 1]) != 0) distinct++;
  cr_assert_eq(distinct, 25);

  page_res none = {0};
  cr_assert_eq(pr_graph_members(g_st, "empty", NULL, 10, on_page, &none), 0);
  run_until(&none.done);
  cr_assert_eq(none.n, 0);
  cr_assert_str_eq(none.next, "0");
}
