/* consume.c: the subscriber connection, event decoding, and the catch-up
 * read of chg:{pN} after a partition is taken over or the subscriber
 * reconnects (see consume.h). */
#include "consume.h"

#include "base.h"
#include "event.h"
#include "keyspace.h"
#include "log.h"
#include "owner.h"
#include "partition.h"
#include "resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The catch-up waits this long after the last SUBSCRIBE so that the
 * subscription is in place before the read (the two go on two connections). */
#define CATCHUP_DELAY_MS 250
#define CATCHUP_PAGE     1000

/* The users changed in the window and their records: flat 6-tuples
 * user, st, ls, ver, changed_ms, to. The records' names are built from the
 * tag of KEYS[1] (same slot), as sweep.lua does. */
static pr_redis_script catchup_script = {
    .name = "fanout_catchup",
    .body = "local t = redis.call('TIME')\n"
            "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
            "local got = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf',\n"
            "  'WITHSCORES', 'LIMIT', ARGV[2], ARGV[3])\n"
            "local prefix = 'pr:' .. string.match(KEYS[1], '{[^}]*}') .. ':'\n"
            "local out = {}\n"
            "for i = 1, #got, 2 do\n"
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

struct fanout_consumer {
  fanout_app *app;
  uint8_t *catchup; /* partition waits for its catch-up read */
  bool was_ready;   /* the subscriber was ready before (a new ready is a reconnect) */
  uint64_t lost_at; /* when the subscriber was lost (monotonic ms), 0 if it is not */
  uint64_t gap_ms;  /* the last outage of the subscriber, added to the next window */
  char window[24];
  uv_timer_t timer;
  pr_view to[PR_EVENT_MAX_TO];
};

typedef struct {
  fanout_consumer *c;
  unsigned p;
  unsigned offset;
} page;

static void channel_of(char *buf, size_t cap, unsigned p) { pr_key_events(buf, cap, p); }

static uint64_t u64_of(const redisReply *e) {
  return e->type == REDIS_REPLY_STRING ? strtoull(e->str, NULL, 10) : 0;
}

/* ---- catch-up ------------------------------------------------------------- */

static int catchup_send(fanout_consumer *c, unsigned p, unsigned offset);
static void schedule_catchup(fanout_consumer *c);

static void deliver_row(fanout_consumer *c, redisReply **e) {
  fanout_app *app = c->app;
  for (int i = 0; i < 6; i++)
    if (e[i]->type != REDIS_REPLY_STRING) return;
  int st = pr_status_parse(e[1]->str, e[1]->len);
  if (st < 0 || st == PR_STATUS_INVISIBLE || !pr_id_is_valid(e[0]->str, e[0]->len)) return;
  size_t nto = 0;
  if (app->graph_client) {
    const char *s = e[5]->str, *end = s + e[5]->len;
    while (s < end && nto < PR_EVENT_MAX_TO) {
      const char *sp = memchr(s, ' ', (size_t)(end - s));
      size_t len = sp ? (size_t)(sp - s) : (size_t)(end - s);
      if (len) c->to[nto++] = (pr_view){s, len};
      s += len + 1;
    }
  }
  fanout_update u = {.kind = PR_EVENT_TRANSITION,
                     .user = {e[0]->str, e[0]->len},
                     .status = st,
                     .last_seen = st == PR_STATUS_OFFLINE ? u64_of(e[2]) : 0,
                     .version = u64_of(e[3]),
                     .ts_ms = u64_of(e[4]),
                     .to = c->to,
                     .nto = nto};
  pr_counter_inc(app->m.events_in);
  pr_counter_inc(app->m.catchup);
  fanout_resolver_add(app->resolver, &u);
}

static void on_page(pr_redis *r, redisReply *reply, int err, void *arg) {
  page *pg = arg;
  fanout_consumer *c = pg->c;
  unsigned p = pg->p, offset = pg->offset;
  pr_free(pg);
  if (c->app->finished || !fanout_owner_owns(c->app->owner, p)) return;
  if (err || reply->type != REDIS_REPLY_ARRAY) {
    pr_log_warn("consume", "catch-up failed", "partition=%u err=%s", p,
                pr_strerror(err ? err : PR_EPROTO));
    c->catchup[p] = 1; /* retried at the next catch-up turn */
    schedule_catchup(c);
    return;
  }
  size_t rows = reply->elements / 6;
  for (size_t i = 0; i < rows; i++)
    deliver_row(c, &reply->element[i * 6]);
  if (rows == CATCHUP_PAGE) catchup_send(c, p, offset + CATCHUP_PAGE);
}

static int catchup_send(fanout_consumer *c, unsigned p, unsigned offset) {
  char key[PR_KEY_MAX], off[16], lim[16];
  snprintf(key, sizeof(key), "chg:{p%u}", p);
  snprintf(off, sizeof(off), "%u", offset);
  snprintf(lim, sizeof(lim), "%u", CATCHUP_PAGE);
  const char *keys[] = {key}, *args[] = {c->window, off, lim};
  page *pg = pr_malloc(sizeof(*pg));
  *pg = (page){c, p, offset};
  int rc = pr_redis_script(c->app->redis, &catchup_script, on_page, pg, 1, keys, 3, args);
  if (rc) pr_free(pg);
  return rc;
}

static void on_catchup_timer(uv_timer_t *t) {
  fanout_consumer *c = t->data;
  fanout_app *app = c->app;
  if (app->finished || !pr_redis_is_ready(app->sub)) return; /* the next ready restarts it */
  /* since now - (lease + 2 s), and further back by an outage of the subscriber */
  uint64_t window = (uint64_t)app->cfg.owner_lease_ms + 2000 + c->gap_ms;
  snprintf(c->window, sizeof(c->window), "%llu",
           (unsigned long long)(window > 120000 ? 120000 : window));
  c->gap_ms = 0;
  bool retry = false;
  for (unsigned p = 0; p < app->partitions; p++) {
    if (!c->catchup[p]) continue;
    if (!fanout_owner_owns(app->owner, p)) {
      c->catchup[p] = 0;
      continue;
    }
    if (catchup_send(c, p, 0) == 0)
      c->catchup[p] = 0;
    else
      retry = true;
  }
  if (retry) uv_timer_start(&c->timer, on_catchup_timer, CATCHUP_DELAY_MS, 0);
}

static void schedule_catchup(fanout_consumer *c) {
  uv_timer_start(&c->timer, on_catchup_timer, CATCHUP_DELAY_MS, 0);
}

/* ---- events --------------------------------------------------------------- */

static void on_event(fanout_consumer *c, unsigned p, const char *data, size_t len) {
  fanout_app *app = c->app;
  if (!fanout_owner_owns(app->owner, p)) return; /* released, or not yet confirmed */
  pr_event ev;
  if (pr_event_decode(data, len, &ev) != 0) {
    pr_counter_inc(app->m.drops[FANOUT_DROP_BAD_EVENT]);
    return;
  }
  if (ev.kind == PR_EVENT_HEARTBEAT && !app->relay_heartbeats) return;
  size_t nto = 0, pos = 0;
  pr_view id;
  if (app->graph_client)
    while (nto < PR_EVENT_MAX_TO && pr_id_list_next(&ev.to, &pos, &id))
      c->to[nto++] = id;
  fanout_update u = {.kind = ev.kind,
                     .user = ev.user,
                     .status = ev.status,
                     .last_seen = ev.last_seen,
                     .version = ev.version,
                     .ts_ms = ev.ts_ms,
                     .to = c->to,
                     .nto = nto};
  pr_counter_inc(app->m.events_in);
  fanout_resolver_add(app->resolver, &u);
}

static void on_message(pr_redis *r, const char *channel, const char *data, size_t len, void *arg) {
  fanout_consumer *c = arg;
  if (c->app->finished) return;
  unsigned p;
  if (strncmp(channel, "ev:", 3) == 0) {
    if (pr_key_events_parse(channel, strlen(channel), &p) == 0 && p < c->app->partitions)
      on_event(c, p, data, len);
  } else if (c->app->keyspace && strncmp(channel, "__keyevent@", 11) == 0) {
    fanout_keyspace_on_expired(c->app, data, len);
  }
}

/* ---- hooks ---------------------------------------------------------------- */

void fanout_consumer_gained(unsigned p, void *arg) {
  fanout_consumer *c = arg;
  char ch[PR_KEY_MAX];
  channel_of(ch, sizeof(ch), p);
  pr_redis_subscribe(c->app->sub, ch);
  c->catchup[p] = 1;
  schedule_catchup(c);
}

void fanout_consumer_lost(unsigned p, void *arg) {
  fanout_consumer *c = arg;
  char ch[PR_KEY_MAX];
  channel_of(ch, sizeof(ch), p);
  c->catchup[p] = 0;
  if (!c->app->finished) pr_redis_unsubscribe(c->app->sub, ch);
}

void fanout_consumer_on_sub_state(pr_redis *r, int ready, void *arg) {
  fanout_consumer *c = arg;
  fanout_app *app = c->app;
  if (!ready) {
    pr_log_warn("consume", "subscriber connection lost", "%s", "");
    c->lost_at = pr_now_mono_ms();
    return;
  }
  if (c->was_ready) {
    c->gap_ms = c->lost_at ? pr_now_mono_ms() - c->lost_at : 0;
    c->lost_at = 0;
    /* what was published while the subscriber was away */
    for (unsigned p = 0; p < app->partitions; p++)
      if (fanout_owner_owns(app->owner, p)) c->catchup[p] = 1;
    pr_log_info("consume", "subscriber back: catching up", "partitions=%u",
                fanout_owner_count(app->owner));
  }
  c->was_ready = true;
  schedule_catchup(c);
}

fanout_consumer *fanout_consumer_new(fanout_app *app) {
  fanout_consumer *c = pr_calloc(1, sizeof(*c));
  c->app = app;
  c->catchup = pr_calloc(app->partitions, 1);
  uv_timer_init(app->loop, &c->timer);
  c->timer.data = c;
  pr_redis_on_message(app->sub, on_message, c);
  return c;
}

static void on_closed(uv_handle_t *h) {
  fanout_consumer *c = h->data;
  pr_free(c->catchup);
  pr_free(c);
}

void fanout_consumer_free(fanout_consumer *c) {
  if (c) uv_close((uv_handle_t *)&c->timer, on_closed);
}
