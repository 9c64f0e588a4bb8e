/* resolve.c: the batching window and the resolution of a window (a "round"):
 * watchers (one pipelined call for all subjects), routes (one pipelined call
 * for all recipients), leases of instances not yet known, then one batch per
 * receive instance. See resolve.h. */
#include "resolve.h"

#include "base.h"
#include "event.h"
#include "log.h"
#include "partition.h"
#include "peers.h"
#include "strmap.h"

#include <stdio.h>
#include <string.h>

#define MAX_ROUNDS 16 /* rounds waiting for Redis at once; the batcher waits beyond */

typedef struct {
  char user[PR_ID_MAX + 1];
  size_t user_len;
  int kind, status;
  uint64_t last_seen, version, ts_ms;
  char **to;
  size_t nto;
} item;

/* Strings of one round, freed together. */
typedef struct chunk {
  struct chunk *next;
  size_t used, cap;
  char data[];
} chunk;

typedef struct {
  chunk *head;
} arena;

static const char *arena_dup(arena *a, const char *s, size_t len) {
  if (!a->head || a->head->cap - a->head->used < len + 1) {
    size_t cap = len + 1 > 16384 ? len + 1 : 16384;
    chunk *c = pr_malloc(sizeof(*c) + cap);
    c->next = a->head;
    c->used = 0;
    c->cap = cap;
    a->head = c;
  }
  char *p = a->head->data + a->head->used;
  memcpy(p, s, len);
  p[len] = '\0';
  a->head->used += len + 1;
  return p;
}

static void arena_free(arena *a) {
  while (a->head) {
    chunk *c = a->head;
    a->head = c->next;
    pr_free(c);
  }
}

typedef struct {
  const char **v;
  size_t n;
} strlist;

typedef struct {
  size_t *v;
  size_t n;
} idxlist;

typedef struct {
  fanout_resolver *rs;
  uint64_t id; /* rounds are numbered from 1 in the order they start */
  item *items;
  size_t n;
  arena a;
  strlist *cand;    /* per item: who to deliver it to (watchers, or `to`, and the subject) */
  size_t **cidx;    /* per item: the index in users of each cand (set by resolve_routes) */
  strlist users;    /* every candidate once: the route query */
  fo_strmap umap;   /* candidate -> index in users */
  idxlist *insts;   /* per user: its receive instances (indexes into ids) */
  strlist ids;      /* every instance id of the round once */
  unsigned waiting; /* lease reads of unknown instances */
} round;

struct fanout_resolver {
  fanout_app *app;
  item *pending;
  size_t npending, max;
  fo_strmap coalesce; /* user -> index in pending */
  fo_strmap once;     /* scratch of set_candidates: the candidates of one item */
  uv_timer_t timer;
  bool due; /* the window closed while MAX_ROUNDS were out */
  unsigned rounds;
  uint64_t started;            /* rounds started: the id of the last one */
  uint64_t active[MAX_ROUNDS]; /* ids of the rounds out, 0: a free slot */
  void (*failed)(unsigned p, void *arg);
  void *failed_arg;
  /* scratch of build(): the recipients per touched peer */
  struct touched {
    fanout_peer *peer;
    pr_view *r;
    size_t n, cap;
  } * touched;
  size_t ntouched, captouched;
};

static void item_clear(item *it) {
  for (size_t i = 0; i < it->nto; i++)
    pr_free(it->to[i]);
  pr_free(it->to);
  it->to = NULL;
  it->nto = 0;
}

static void item_set(item *it, const fanout_update *u) {
  item_clear(it);
  memcpy(it->user, u->user.p, u->user.len);
  it->user[u->user.len] = '\0';
  it->user_len = u->user.len;
  it->kind = u->kind;
  it->status = u->status;
  it->last_seen = u->last_seen;
  it->version = u->version;
  it->ts_ms = u->ts_ms;
  if (u->nto) {
    it->to = pr_malloc(u->nto * sizeof(char *));
    for (size_t i = 0; i < u->nto; i++)
      it->to[i] = pr_strndup(u->to[i].p, u->to[i].len);
    it->nto = u->nto;
  }
}

static void strlist_push(strlist *l, size_t *cap, const char *s) {
  if (l->n == *cap) {
    *cap = *cap ? *cap * 2 : 8;
    l->v = pr_realloc(l->v, *cap * sizeof(*l->v));
  }
  l->v[l->n++] = s;
}

/* ---- the end of a round ------------------------------------------------- */

static void start_round(fanout_resolver *rs);

static void round_free(round *rd) {
  for (size_t i = 0; i < rd->n; i++) {
    item_clear(&rd->items[i]);
    pr_free(rd->cand ? rd->cand[i].v : NULL);
    pr_free(rd->cidx ? rd->cidx[i] : NULL);
  }
  if (rd->insts)
    for (size_t i = 0; i < rd->users.n; i++)
      pr_free(rd->insts[i].v);
  pr_free(rd->items);
  pr_free(rd->cand);
  pr_free(rd->cidx);
  pr_free(rd->insts);
  pr_free(rd->users.v);
  pr_free(rd->ids.v);
  fo_strmap_free(&rd->umap);
  arena_free(&rd->a);
  pr_free(rd);
}

static void round_end(round *rd, int err) {
  fanout_resolver *rs = rd->rs;
  if (err && !rs->app->finished) {
    pr_log_warn("resolve", "round failed: its partitions are caught up again", "updates=%zu err=%s",
                rd->n, pr_strerror(err));
    pr_counter_add(rs->app->m.drops[FANOUT_DROP_REDIS], rd->n);
    if (rs->failed)
      for (size_t i = 0; i < rd->n; i++)
        rs->failed(pr_partition_of(rd->items[i].user, rd->items[i].user_len, rs->app->partitions),
                   rs->failed_arg);
  }
  for (unsigned k = 0; k < MAX_ROUNDS; k++)
    if (rs->active[k] == rd->id) rs->active[k] = 0;
  round_free(rd);
  rs->rounds--;
  if (rs->due && !rs->app->finished) start_round(rs);
}

/* ---- build: one batch per instance --------------------------------------- */

static struct touched *touch(fanout_resolver *rs, fanout_peer *peer) {
  for (size_t i = 0; i < rs->ntouched; i++)
    if (rs->touched[i].peer == peer) return &rs->touched[i];
  if (rs->ntouched == rs->captouched) {
    size_t old = rs->captouched;
    rs->captouched = old ? old * 2 : 8;
    rs->touched = pr_realloc(rs->touched, rs->captouched * sizeof(*rs->touched));
    memset(rs->touched + old, 0, (rs->captouched - old) * sizeof(*rs->touched));
  }
  struct touched *t = &rs->touched[rs->ntouched++];
  t->peer = peer;
  t->n = 0;
  return t;
}

static void build(round *rd) {
  fanout_resolver *rs = rd->rs;
  fanout_app *app = rs->app;
  fanout_peers *ps = app->peers;
  size_t max = (size_t)app->cfg.batch_max;
  fanout_peer **sent = NULL; /* peers holding a batch of this round */
  size_t nsent = 0, capsent = 0;
  uint64_t now = pr_now_wall_ms();
  /* Each instance of the round is looked up once: the peers table does not
   * change while build runs (it is synchronous). */
  fanout_peer **peers = pr_malloc((rd->ids.n ? rd->ids.n : 1) * sizeof(*peers));
  for (size_t k = 0; k < rd->ids.n; k++)
    peers[k] = fanout_peers_find(ps, rd->ids.v[k], strlen(rd->ids.v[k]));
  for (size_t i = 0; i < rd->n; i++) {
    item *it = &rd->items[i];
    rs->ntouched = 0;
    for (size_t c = 0; c < rd->cand[i].n; c++) {
      const char *who = rd->cand[i].v[c];
      size_t u = rd->cidx[i][c];
      for (size_t k = 0; k < rd->insts[u].n; k++) {
        fanout_peer *peer = peers[rd->insts[u].v[k]];
        if (!peer) {
          pr_counter_inc(app->m.drops[FANOUT_DROP_NO_INSTANCE]);
          continue;
        }
        struct touched *t = touch(rs, peer);
        if (t->n == t->cap) {
          t->cap = t->cap ? t->cap * 2 : 16;
          t->r = pr_realloc(t->r, t->cap * sizeof(*t->r));
        }
        t->r[t->n++] = pr_view_of(who);
      }
    }
    for (size_t k = 0; k < rs->ntouched; k++) {
      struct touched *t = &rs->touched[k];
      pr_batch_builder *b = fanout_peer_builder(t->peer);
      if (pr_batch_count(b) == 0) {
        if (nsent == capsent) {
          capsent = capsent ? capsent * 2 : 8;
          sent = pr_realloc(sent, capsent * sizeof(*sent));
        }
        sent[nsent++] = t->peer;
      }
      if (pr_batch_begin_kind(b, it->kind, (pr_view){it->user, it->user_len}, it->status,
                              it->last_seen, it->version, it->ts_ms) == 0) {
        for (size_t j = 0; j < t->n; j++)
          pr_batch_add_recipient(b, t->r[j]);
        pr_batch_end(b);
      }
      if (pr_batch_count(b) >= max || pr_batch_bytes(b) >= PR_BATCH_MAX_BYTES / 2)
        fanout_peer_flush(ps, t->peer);
    }
    if (rs->ntouched > 0)
      pr_histogram_observe(app->m.lag_ms, now > it->ts_ms ? (double)(now - it->ts_ms) : 0);
  }
  for (size_t k = 0; k < nsent; k++)
    fanout_peer_flush(ps, sent[k]);
  pr_free(sent);
  pr_free(peers);
  round_end(rd, 0);
}

/* ---- leases of instances not known yet ----------------------------------- */

typedef struct {
  round *rd;
  const char *id;
} lease_read;

static void on_lease(pr_redis *r, redisReply *reply, int err, void *arg) {
  lease_read *lr = arg;
  round *rd = lr->rd;
  if (!err && reply->type == REDIS_REPLY_STRING && !rd->rs->app->finished)
    fanout_peers_set(rd->rs->app->peers, lr->id, reply->str);
  pr_free(lr);
  if (--rd->waiting == 0) {
    if (rd->rs->app->finished)
      round_end(rd, PR_ECLOSED);
    else
      build(rd);
  }
}

static void read_unknown_leases(round *rd) {
  fanout_app *app = rd->rs->app;
  rd->waiting = 1; /* held while sending */
  for (size_t k = 0; k < rd->ids.n; k++) {
    const char *inst = rd->ids.v[k];
    size_t len = strlen(inst);
    if (fanout_peers_find(app->peers, inst, len) || !pr_id_is_valid(inst, len)) continue;
    char key[PR_ID_MAX + 8];
    snprintf(key, sizeof(key), "inst:%s", inst);
    const char *argv[] = {"GET", key};
    lease_read *lr = pr_malloc(sizeof(*lr));
    *lr = (lease_read){rd, inst};
    if (pr_redis_cmdargv(app->redis, on_lease, lr, 2, argv, NULL)) {
      pr_free(lr);
      continue;
    }
    rd->waiting++;
  }
  if (--rd->waiting == 0) build(rd);
}

/* ---- routes -------------------------------------------------------------- */

static void on_routes(const pr_store_list *lists, size_t n, int err, void *arg) {
  round *rd = arg;
  if (err || n != rd->users.n || rd->rs->app->finished) {
    round_end(rd, err ? err : PR_EPROTO);
    return;
  }
  rd->insts = pr_calloc(n, sizeof(*rd->insts));
  /* A round names a handful of instances: each id is copied once. */
  fo_strmap interned;
  fo_strmap_init(&interned);
  size_t capids = 0;
  for (size_t u = 0; u < n; u++) {
    if (lists[u].n == 0) continue;
    rd->insts[u].v = pr_malloc(lists[u].n * sizeof(size_t));
    for (size_t k = 0; k < lists[u].n; k++) {
      const char *id = lists[u].ids[k];
      size_t len = strlen(id), at;
      if (!fo_strmap_get(&interned, id, len, &at)) {
        int added;
        at = rd->ids.n;
        strlist_push(&rd->ids, &capids, arena_dup(&rd->a, id, len));
        fo_strmap_put(&interned, rd->ids.v[at], len, at, &added);
      }
      rd->insts[u].v[k] = at;
    }
    rd->insts[u].n = lists[u].n;
  }
  fo_strmap_free(&interned);
  read_unknown_leases(rd);
}

/* Collects every candidate once and asks for their routes. */
static void resolve_routes(round *rd) {
  size_t cap = 0;
  rd->cidx = pr_calloc(rd->n, sizeof(*rd->cidx));
  for (size_t i = 0; i < rd->n; i++) {
    rd->cidx[i] = pr_malloc((rd->cand[i].n ? rd->cand[i].n : 1) * sizeof(size_t));
    for (size_t c = 0; c < rd->cand[i].n; c++) {
      const char *who = rd->cand[i].v[c];
      int added;
      rd->cidx[i][c] = fo_strmap_put(&rd->umap, who, strlen(who), rd->users.n, &added);
      if (added) strlist_push(&rd->users, &cap, who);
    }
  }
  int rc = pr_route_instances(rd->rs->app->store, rd->users.v, rd->users.n, on_routes, rd);
  if (rc) round_end(rd, rc);
}

/* cand[i] = who[0..n) and the subject, each once. */
static void set_candidates(round *rd, size_t i, const char *const *who, size_t n) {
  item *it = &rd->items[i];
  size_t cap = 0;
  fo_strmap *once = &rd->rs->once;
  fo_strmap_clear(once);
  int added;
  const char *self = arena_dup(&rd->a, it->user, it->user_len);
  fo_strmap_put(once, self, it->user_len, 0, &added);
  strlist_push(&rd->cand[i], &cap, self);
  for (size_t k = 0; k < n; k++) {
    size_t len = strlen(who[k]);
    if (!pr_id_is_valid(who[k], len)) continue;
    const char *s = arena_dup(&rd->a, who[k], len);
    fo_strmap_put(once, s, len, 0, &added);
    if (added) strlist_push(&rd->cand[i], &cap, s);
  }
  if (once->cap > 4096) fo_strmap_free(once); /* do not clear a huge table per item */
}

static void on_watchers(const pr_store_list *lists, size_t n, int err, void *arg) {
  round *rd = arg;
  if (err || n != rd->n || rd->rs->app->finished) {
    round_end(rd, err ? err : PR_EPROTO);
    return;
  }
  for (size_t i = 0; i < n; i++)
    set_candidates(rd, i, (const char *const *)lists[i].ids, lists[i].n);
  resolve_routes(rd);
}

/* ---- the window ---------------------------------------------------------- */

static void start_round(fanout_resolver *rs) {
  if (rs->npending == 0) {
    rs->due = false;
    return;
  }
  if (rs->rounds >= MAX_ROUNDS) {
    rs->due = true; /* the next round_end starts it */
    return;
  }
  rs->due = false;
  uv_timer_stop(&rs->timer);
  round *rd = pr_calloc(1, sizeof(*rd));
  rd->rs = rs;
  /* The round takes a copy of the used part of pending; pending (allocated
   * once, batch_max items) stays with the batcher, its `to` lists now the
   * round's. */
  rd->n = rs->npending;
  rd->items = pr_malloc(rd->n * sizeof(item));
  memcpy(rd->items, rs->pending, rd->n * sizeof(item));
  for (size_t i = 0; i < rd->n; i++) {
    rs->pending[i].to = NULL;
    rs->pending[i].nto = 0;
  }
  rd->cand = pr_calloc(rd->n, sizeof(*rd->cand));
  fo_strmap_init(&rd->umap);
  rs->npending = 0;
  fo_strmap_clear(&rs->coalesce);
  rs->rounds++;
  rd->id = ++rs->started;
  for (unsigned k = 0; k < MAX_ROUNDS; k++)
    if (rs->active[k] == 0) {
      rs->active[k] = rd->id;
      break;
    }

  if (rs->app->graph_client) {
    for (size_t i = 0; i < rd->n; i++)
      set_candidates(rd, i, (const char *const *)rd->items[i].to, rd->items[i].nto);
    resolve_routes(rd);
    return;
  }
  const char **users = pr_malloc(rd->n * sizeof(char *));
  for (size_t i = 0; i < rd->n; i++)
    users[i] = rd->items[i].user;
  int rc = pr_graph_watchers(rs->app->store, users, rd->n, on_watchers, rd);
  pr_free(users);
  if (rc) round_end(rd, rc);
}

static void on_window(uv_timer_t *t) { start_round(t->data); }

void fanout_resolver_add(fanout_resolver *rs, const fanout_update *u) {
  if (u->user.len == 0 || u->user.len > PR_ID_MAX) return;
  size_t i;
  bool queued = fo_strmap_get(&rs->coalesce, u->user.p, u->user.len, &i);
  if (queued) {
    item *it = &rs->pending[i];
    if (u->version > it->version ||
        (u->version == it->version && it->kind != PR_EVENT_TRANSITION)) {
      item_set(it, u);
      return;
    }
    /* A relayed heartbeat repeats the version of the transition queued
     * before it: it must not take that transition's place (watchers would
     * miss the change), nor be lost (with --graph client its recipients may
     * be others). Both go, the change first; the user's later updates
     * coalesce into the heartbeat. Anything else is not newer: dropped. */
    if (u->kind != PR_EVENT_HEARTBEAT || u->version != it->version) return;
  }
  if (rs->npending == rs->max) {
    start_round(rs);
    if (rs->npending == rs->max) {
      pr_counter_inc(rs->app->m.drops[FANOUT_DROP_OVERLOAD]);
      if (rs->failed)
        rs->failed(pr_partition_of(u->user.p, u->user.len, rs->app->partitions), rs->failed_arg);
      return;
    }
  }
  if (queued && !fo_strmap_get(&rs->coalesce, u->user.p, u->user.len, &i))
    queued = false; /* the window closed just above: a fresh start */
  item *it = &rs->pending[rs->npending];
  item_set(it, u);
  if (queued) {
    fo_strmap_set(&rs->coalesce, it->user, it->user_len, rs->npending);
  } else {
    int added;
    fo_strmap_put(&rs->coalesce, it->user, it->user_len, rs->npending, &added);
  }
  rs->npending++;
  if (rs->npending == rs->max)
    start_round(rs);
  else if (rs->npending == 1)
    uv_timer_start(&rs->timer, on_window, (uint64_t)rs->app->cfg.batch_flush_ms, 0);
}

void fanout_resolver_flush(fanout_resolver *rs) { start_round(rs); }

void fanout_resolver_on_failed(fanout_resolver *rs, void (*failed)(unsigned p, void *arg),
                               void *arg) {
  rs->failed = failed;
  rs->failed_arg = arg;
}

uint64_t fanout_resolver_mark(const fanout_resolver *rs) {
  return rs->started + (rs->npending > 0); /* what is pending goes into the next round */
}

int fanout_resolver_done_through(const fanout_resolver *rs, uint64_t mark) {
  if (rs->started < mark) return 0;
  for (unsigned k = 0; k < MAX_ROUNDS; k++)
    if (rs->active[k] != 0 && rs->active[k] <= mark) return 0;
  return 1;
}

int fanout_resolver_idle(const fanout_resolver *rs) { return rs->npending == 0 && rs->rounds == 0; }

fanout_resolver *fanout_resolver_new(fanout_app *app) {
  fanout_resolver *rs = pr_calloc(1, sizeof(*rs));
  rs->app = app;
  rs->max = (size_t)app->cfg.batch_max;
  rs->pending = pr_calloc(rs->max, sizeof(item));
  fo_strmap_init(&rs->coalesce);
  fo_strmap_init(&rs->once);
  uv_timer_init(app->loop, &rs->timer);
  rs->timer.data = rs;
  return rs;
}

static void on_closed(uv_handle_t *h) {
  fanout_resolver *rs = h->data;
  for (size_t i = 0; i < rs->npending; i++)
    item_clear(&rs->pending[i]);
  pr_free(rs->pending);
  fo_strmap_free(&rs->coalesce);
  fo_strmap_free(&rs->once);
  for (size_t i = 0; i < rs->captouched; i++)
    pr_free(rs->touched[i].r);
  pr_free(rs->touched);
  pr_free(rs);
}

void fanout_resolver_free(fanout_resolver *rs) {
  if (rs) uv_close((uv_handle_t *)&rs->timer, on_closed);
}
