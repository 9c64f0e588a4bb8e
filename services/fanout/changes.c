/* changes.c: the catch-up read and the trim of chg:{pN} (see changes.h). */
#include "changes.h"

#include "base.h"
#include "event.h"
#include "log.h"
#include "owner.h"
#include "partition.h"
#include "resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A catch-up waits this long after it is asked for, so that the SUBSCRIBE
 * sent just before it (on the other connection) is in place first. */
#define CATCHUP_DELAY_MS     250
#define CATCHUP_MAX_DELAY_MS 8000 /* the backoff of a partition that keeps failing */
#define CATCHUP_PAGE         1000

/* One page of the users changed in [lower, upper] and their records.
 * KEYS[1] chg:{pN}; ARGV[1] lower bound ('-inf', 'N' or '(N'); ARGV[2] upper
 * bound ('' on the first page: Redis's now, returned so that the next pages
 * use the same); ARGV[3] page size.
 * Reply: {upper, next lower bound ('' when done), then flat 6-tuples user, st,
 * ls, ver, changed_ms, to}. Pages move by score, not by offset (the set
 * changes between pages): a page ends before its last millisecond, which
 * starts the next page, unless that millisecond fills the page alone, which
 * is then taken whole. The records' names are built from the tag of KEYS[1]
 * (same slot), as sweep.lua does. */
static pr_redis_script catchup_script = {
    .name = "fanout_catchup",
    .body =
        "local hi = ARGV[2]\n"
        "if hi == '' then\n"
        "  local t = redis.call('TIME')\n"
        "  hi = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))\n"
        "end\n"
        "local n = tonumber(ARGV[3])\n"
        "local got = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], hi, 'WITHSCORES', 'LIMIT', 0, "
        "n)\n"
        "local upto, nxt = #got, ''\n"
        "if #got == 2 * n then\n"
        "  local last = got[#got]\n"
        "  if got[2] == last then\n"
        "    got = redis.call('ZRANGEBYSCORE', KEYS[1], last, last, 'WITHSCORES')\n"
        "    upto = #got\n"
        "    nxt = '(' .. last\n"
        "  else\n"
        "    while got[upto] == last do upto = upto - 2 end\n"
        "    nxt = last\n"
        "  end\n"
        "end\n"
        "local prefix = 'pr:' .. string.match(KEYS[1], '{[^}]*}') .. ':'\n"
        "local out = {hi, nxt}\n"
        "for i = 1, upto, 2 do\n"
        "  local r = redis.call('HMGET', prefix .. got[i], 'st', 'ls', 'ver', 'to')\n"
        "  out[#out + 1] = got[i]\n"
        "  out[#out + 1] = r[1] or 'offline'\n"
        "  out[#out + 1] = r[2] or '0'\n"
        "  out[#out + 1] = r[3] or '0'\n"
        "  out[#out + 1] = got[i + 1]\n"
        "  out[#out + 1] = r[4] or ''\n"
        "end\n"
        "return out\n",
};

struct fanout_changes {
  fanout_app *app;
  /* the catch-up, per partition */
  uint8_t *want;    /* asked for, not sent yet */
  uint64_t *due;    /* when a wanted catch-up may start (monotonic ms) */
  uint8_t *fails;   /* failures in a row: the backoff */
  uint32_t *gen;    /* a page of an older catch-up is dropped */
  uint8_t *reading; /* a page is out */
  /* the trim, per partition */
  uint64_t *seen;    /* Redis ms up to which every change was handed to the resolver */
  uint64_t *snap;    /* seen at the last trim turn, 0: none */
  uint64_t *trimmed; /* the bound of the last trim sent */
  uint8_t *spoiled;  /* since the last turn: a failure, a catch-up asked, a loss */
  uint64_t mark;     /* the resolver's mark at the last turn */
  uv_timer_t catchup_timer, trim_timer;
  unsigned closing;
  pr_view to[PR_EVENT_MAX_TO];
};

typedef struct {
  fanout_changes *ch;
  unsigned p;
  uint32_t gen;
  char lower[24], upper[24];
} page;

static uint64_t u64_of(const redisReply *e) {
  return e->type == REDIS_REPLY_STRING ? strtoull(e->str, NULL, 10) : 0;
}

/* ---- catch-up ------------------------------------------------------------- */

static int page_send(fanout_changes *ch, unsigned p, const char *lower, const char *upper);
static void arm(fanout_changes *ch, uint64_t delay_ms);

static void ask(fanout_changes *ch, unsigned p, uint64_t delay_ms) {
  ch->want[p] = 1;
  ch->reading[p] = 0;
  ch->gen[p]++; /* a read in flight is superseded: this one starts from the start */
  ch->spoiled[p] = 1;
  ch->snap[p] = 0;
  ch->due[p] = pr_now_mono_ms() + delay_ms;
  arm(ch, delay_ms);
}

static void deliver_row(fanout_changes *ch, redisReply **e) {
  fanout_app *app = ch->app;
  for (int i = 0; i < 6; i++)
    if (e[i]->type != REDIS_REPLY_STRING) return;
  int st = pr_status_parse(e[1]->str, e[1]->len);
  if (st < 0 || !pr_id_is_valid(e[0]->str, e[0]->len)) return;
  size_t nto = 0;
  if (app->graph_client) {
    const char *s = e[5]->str, *end = s + e[5]->len;
    while (s < end && nto < PR_EVENT_MAX_TO) {
      const char *sp = memchr(s, ' ', (size_t)(end - s));
      size_t len = sp ? (size_t)(sp - s) : (size_t)(end - s);
      if (len) ch->to[nto++] = (pr_view){s, len};
      s += len + 1;
    }
  }
  fanout_update u = {.kind = PR_EVENT_TRANSITION,
                     .user = {e[0]->str, e[0]->len},
                     .status = st,
                     .last_seen = st == PR_STATUS_OFFLINE ? u64_of(e[2]) : 0,
                     .version = u64_of(e[3]),
                     .ts_ms = u64_of(e[4]),
                     .to = ch->to,
                     .nto = nto};
  pr_counter_inc(app->m.events_in);
  pr_counter_inc(app->m.catchup);
  fanout_resolver_add(app->resolver, &u);
}

static void on_page(pr_redis *r, redisReply *reply, int err, void *arg) {
  page *pg = arg;
  fanout_changes *ch = pg->ch;
  unsigned p = pg->p;
  if (ch->app->finished || pg->gen != ch->gen[p] || !ch->reading[p]) goto out;
  if (err || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
      reply->element[0]->type != REDIS_REPLY_STRING ||
      reply->element[1]->type != REDIS_REPLY_STRING) {
    pr_log_warn("changes", "catch-up failed", "partition=%u err=%s", p,
                pr_strerror(err ? err : PR_EPROTO));
    fanout_changes_failed(p, ch);
    goto out;
  }
  size_t rows = (reply->elements - 2) / 6;
  for (size_t i = 0; i < rows; i++)
    deliver_row(ch, &reply->element[2 + i * 6]);
  const redisReply *next = reply->element[1];
  if (next->len > 0) {
    char lower[24];
    snprintf(lower, sizeof(lower), "%.*s", (int)next->len, next->str);
    if (page_send(ch, p, lower, reply->element[0]->str) != 0) fanout_changes_failed(p, ch);
    goto out;
  }
  /* done: every change up to the upper bound is with the resolver now, and
   * the later ones come on the channel (subscribed before the first page) */
  ch->reading[p] = 0;
  uint64_t upper = u64_of(reply->element[0]);
  if (upper > ch->seen[p]) ch->seen[p] = upper;
out:
  pr_free(pg);
}

static int page_send(fanout_changes *ch, unsigned p, const char *lower, const char *upper) {
  char key[PR_KEY_MAX], lim[16];
  snprintf(key, sizeof(key), "chg:{p%u}", p);
  snprintf(lim, sizeof(lim), "%u", CATCHUP_PAGE);
  page *pg = pr_malloc(sizeof(*pg));
  *pg = (page){.ch = ch, .p = p, .gen = ch->gen[p]};
  snprintf(pg->lower, sizeof(pg->lower), "%s", lower);
  snprintf(pg->upper, sizeof(pg->upper), "%s", upper);
  const char *keys[] = {key}, *args[] = {pg->lower, pg->upper, lim};
  int rc = pr_redis_script(ch->app->redis, &catchup_script, on_page, pg, 1, keys, 3, args);
  if (rc) pr_free(pg);
  return rc;
}

static void on_catchup_timer(uv_timer_t *t) {
  fanout_changes *ch = t->data;
  fanout_app *app = ch->app;
  if (app->finished || !pr_redis_is_ready(app->sub)) return; /* fanout_changes_kick restarts it */
  uint64_t now = pr_now_mono_ms(), next = UINT64_MAX;
  for (unsigned p = 0; p < app->partitions; p++) {
    if (!ch->want[p]) continue;
    /* not owned: a lapsed lease (a loss clears want) that may yet be renewed */
    if (ch->due[p] <= now && fanout_owner_owns(app->owner, p) &&
        page_send(ch, p, "-inf", "") == 0) {
      ch->want[p] = 0;
      ch->reading[p] = 1;
      continue;
    }
    uint64_t at = ch->due[p] > now ? ch->due[p] : now + CATCHUP_DELAY_MS;
    if (at < next) next = at;
  }
  if (next != UINT64_MAX) uv_timer_start(&ch->catchup_timer, on_catchup_timer, next - now, 0);
}

/* The timer fires at the earliest due catch-up. */
static void arm(fanout_changes *ch, uint64_t delay_ms) {
  uint64_t left = uv_timer_get_due_in(&ch->catchup_timer);
  if (uv_is_active((uv_handle_t *)&ch->catchup_timer) && left <= delay_ms) return;
  uv_timer_start(&ch->catchup_timer, on_catchup_timer, delay_ms, 0);
}

/* ---- trim ----------------------------------------------------------------- */

static void on_trim_timer(uv_timer_t *t) {
  fanout_changes *ch = t->data;
  fanout_app *app = ch->app;
  if (app->finished) return;
  /* every round holding updates from before the last turn has ended */
  bool rounds_done = fanout_resolver_done_through(app->resolver, ch->mark);
  bool ready = pr_redis_is_ready(app->redis);
  for (unsigned p = 0; p < app->partitions; p++) {
    if (!fanout_owner_owns(app->owner, p)) {
      ch->snap[p] = 0;
      continue;
    }
    uint64_t snap = ch->snap[p];
    if (ready && rounds_done && snap > FANOUT_CHG_TRIM_MARGIN_MS && !ch->spoiled[p] &&
        snap - FANOUT_CHG_TRIM_MARGIN_MS > ch->trimmed[p]) {
      char key[PR_KEY_MAX], upto[24];
      snprintf(key, sizeof(key), "chg:{p%u}", p);
      snprintf(upto, sizeof(upto), "%llu", (unsigned long long)(snap - FANOUT_CHG_TRIM_MARGIN_MS));
      const char *argv[] = {"ZREMRANGEBYSCORE", key, "-inf", upto};
      if (pr_redis_cmdargv(app->redis, NULL, NULL, 4, argv, NULL) == 0)
        ch->trimmed[p] = snap - FANOUT_CHG_TRIM_MARGIN_MS;
    }
    if (!ch->spoiled[p]) ch->fails[p] = 0; /* a quiet turn ends the backoff */
    ch->spoiled[p] = 0;
    ch->snap[p] = ch->want[p] || ch->reading[p] ? 0 : ch->seen[p];
  }
  ch->mark = fanout_resolver_mark(app->resolver);
}

/* ---- public --------------------------------------------------------------- */

void fanout_changes_catchup(fanout_changes *ch, unsigned p) {
  if (p < ch->app->partitions) ask(ch, p, CATCHUP_DELAY_MS);
}

void fanout_changes_failed(unsigned p, void *arg) {
  fanout_changes *ch = arg;
  if (p >= ch->app->partitions || ch->app->finished) return;
  if (ch->want[p]) { /* one already waits, and reads from the start */
    ch->spoiled[p] = 1;
    return;
  }
  if (ch->fails[p] < 16) ch->fails[p]++;
  uint64_t delay = (uint64_t)CATCHUP_DELAY_MS << (ch->fails[p] - 1);
  ask(ch, p, delay > CATCHUP_MAX_DELAY_MS ? CATCHUP_MAX_DELAY_MS : delay);
}

void fanout_changes_seen(fanout_changes *ch, unsigned p, uint64_t ts_ms) {
  if (p < ch->app->partitions && ts_ms > ch->seen[p]) ch->seen[p] = ts_ms;
}

void fanout_changes_lost(fanout_changes *ch, unsigned p) {
  if (p >= ch->app->partitions) return;
  ch->want[p] = ch->reading[p] = 0;
  ch->gen[p]++;
  ch->fails[p] = 0;
  ch->seen[p] = ch->snap[p] = ch->trimmed[p] = 0;
  ch->spoiled[p] = 1;
}

void fanout_changes_kick(fanout_changes *ch) { arm(ch, CATCHUP_DELAY_MS); }

fanout_changes *fanout_changes_new(fanout_app *app) {
  fanout_changes *ch = pr_calloc(1, sizeof(*ch));
  unsigned P = app->partitions;
  ch->app = app;
  ch->want = pr_calloc(P, 1);
  ch->due = pr_calloc(P, sizeof(uint64_t));
  ch->fails = pr_calloc(P, 1);
  ch->gen = pr_calloc(P, sizeof(uint32_t));
  ch->reading = pr_calloc(P, 1);
  ch->seen = pr_calloc(P, sizeof(uint64_t));
  ch->snap = pr_calloc(P, sizeof(uint64_t));
  ch->trimmed = pr_calloc(P, sizeof(uint64_t));
  ch->spoiled = pr_calloc(P, 1);
  uv_timer_init(app->loop, &ch->catchup_timer);
  uv_timer_init(app->loop, &ch->trim_timer);
  ch->catchup_timer.data = ch->trim_timer.data = ch;
  uv_timer_start(&ch->trim_timer, on_trim_timer, FANOUT_CHG_TRIM_MS, FANOUT_CHG_TRIM_MS);
  return ch;
}

static void on_closed(uv_handle_t *h) {
  fanout_changes *ch = h->data;
  if (--ch->closing > 0) return;
  pr_free(ch->want);
  pr_free(ch->due);
  pr_free(ch->fails);
  pr_free(ch->gen);
  pr_free(ch->reading);
  pr_free(ch->seen);
  pr_free(ch->snap);
  pr_free(ch->trimmed);
  pr_free(ch->spoiled);
  pr_free(ch);
}

void fanout_changes_free(fanout_changes *ch) {
  if (!ch) return;
  ch->closing = 2;
  uv_close((uv_handle_t *)&ch->catchup_timer, on_closed);
  uv_close((uv_handle_t *)&ch->trim_timer, on_closed);
}
