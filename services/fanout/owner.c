/* owner.c: partition leases. One tick (about every second) registers the
 * worker in `wk`, renews every lease it holds, releases extras above
 * ceil(P / live workers) and takes free partitions up to it. Every
 * per-partition command is issued in the same loop turn (pipelined). */
#include "owner.h"

#include "base.h"
#include "log.h"
#include "partition.h"

#include <stdio.h>
#include <string.h>

/* When P is not a multiple of the live workers, some worker stays below
 * ceil(P / workers) for good and each scan finds nothing free. After
 * SCAN_EAGER such scans in a row, scan only every SCAN_BACKOFF ticks, until
 * the set of live workers changes or a partition is lost (then at once). */
#define SCAN_EAGER   3
#define SCAN_BACKOFF 10

/* wk: drop dead workers, register (or leave), count the live ones. */
static pr_redis_script register_script = {
    .name = "fanout_register",
    .body = "local t = redis.call('TIME')\n"
            "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
            "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
            "if ARGV[3] == '1' then redis.call('ZREM', KEYS[1], ARGV[1])\n"
            "else redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) end\n"
            "return redis.call('ZCARD', KEYS[1])\n",
};
/* own:{pN}: extend only if it is still ours. */
static pr_redis_script renew_script = {
    .name = "fanout_renew",
    .body = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
            "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
            "end\n"
            "return 0\n",
};
/* own:{pN}: delete only if it is still ours. */
static pr_redis_script release_script = {
    .name = "fanout_release",
    .body = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
            "return 0\n",
};

typedef struct {
  fanout_owner *o;
  unsigned p;
} slot;

struct fanout_owner {
  fanout_app *app;
  fanout_owner_hooks hooks;
  unsigned P;
  uint8_t *owned;
  uint8_t *busy;      /* a renew, take or release of p is waiting for its reply */
  uint8_t *free_seen; /* scan: own:{pN} was empty */
  uint64_t *sent_at;  /* when the last renew or take of p was sent (monotonic ms) */
  uint64_t *valid_until;
  slot *slots;
  unsigned count;
  unsigned live; /* live workers at the last registration */
  unsigned scan_wait;
  unsigned idle_scans; /* scans in a row that found nothing free */
  unsigned scan_skip;  /* ticks to let pass before the next scan */
  bool scanning, registered, releasing;
  unsigned release_wait;
  void (*done)(void *arg);
  void *done_arg;
  char lease[24];
  uv_timer_t tick;
};

static void set_gauge(fanout_owner *o) { pr_gauge_set(o->app->m.owned, (double)o->count); }

static void scan_soon(fanout_owner *o) { o->idle_scans = o->scan_skip = 0; }

static void drop(fanout_owner *o, unsigned p) {
  if (!o->owned[p]) return;
  o->owned[p] = 0;
  o->count--;
  scan_soon(o);
  set_gauge(o);
  if (o->hooks.lost) o->hooks.lost(p, o->hooks.arg);
}

static void gain(fanout_owner *o, unsigned p) {
  o->owned[p] = 1;
  o->count++;
  o->valid_until[p] = o->sent_at[p] + (uint64_t)o->app->cfg.owner_lease_ms * 9 / 10;
  set_gauge(o);
  if (o->hooks.gained) o->hooks.gained(p, o->hooks.arg);
}

static unsigned target(const fanout_owner *o) {
  if (o->app->draining || o->live == 0) return 0;
  return (o->P + o->live - 1) / o->live;
}

static void release_finished(fanout_owner *o) {
  if (!o->releasing || o->release_wait == 0 || --o->release_wait > 0) return;
  if (o->done) o->done(o->done_arg);
  o->done = NULL;
}

/* ---- per-partition commands ------------------------------------------------ */

static void on_released(pr_redis *r, redisReply *reply, int err, void *arg) {
  slot *s = arg;
  int counted = s->o->busy[s->p] == 2;
  s->o->busy[s->p] = 0;
  if (counted) release_finished(s->o);
}

/* Sends the release of p; returns 1 if it was accepted (a reply will come).
 * mark 2: release_all waits for its reply. */
static int release_send(fanout_owner *o, unsigned p, uint8_t mark) {
  char key[PR_KEY_MAX];
  pr_key_owner(key, sizeof(key), p);
  const char *keys[] = {key}, *args[] = {o->app->worker};
  if (pr_redis_script(o->app->redis, &release_script, on_released, &o->slots[p], 1, keys, 1, args))
    return 0;
  o->busy[p] = mark;
  return 1;
}

static void on_renewed(pr_redis *r, redisReply *reply, int err, void *arg) {
  slot *s = arg;
  fanout_owner *o = s->o;
  if (o->busy[s->p] == 1) o->busy[s->p] = 0; /* 2: a counted release is still out */
  if (o->app->finished || !o->owned[s->p]) return;
  if (err || reply->type != REDIS_REPLY_INTEGER || reply->integer != 1) {
    pr_log_warn("owner", "lease lost", "partition=%u err=%s", s->p, err ? pr_strerror(err) : "-");
    drop(o, s->p);
    return;
  }
  o->valid_until[s->p] = o->sent_at[s->p] + (uint64_t)o->app->cfg.owner_lease_ms * 9 / 10;
}

static void renew_all(fanout_owner *o, uint64_t now) {
  char key[PR_KEY_MAX];
  const char *keys[] = {key}, *args[] = {o->app->worker, o->lease};
  for (unsigned p = 0; p < o->P; p++) {
    if (!o->owned[p] || o->busy[p]) continue;
    pr_key_owner(key, sizeof(key), p);
    if (pr_redis_script(o->app->redis, &renew_script, on_renewed, &o->slots[p], 1, keys, 2, args))
      return; /* disconnected or full: the local deadline drops what is not renewed */
    o->busy[p] = 1;
    o->sent_at[p] = now;
  }
}

static void on_taken(pr_redis *r, redisReply *reply, int err, void *arg) {
  slot *s = arg;
  fanout_owner *o = s->o;
  if (o->busy[s->p] == 1) o->busy[s->p] = 0; /* 2: a counted release is still out */
  if (o->app->finished || err || reply->type != REDIS_REPLY_STATUS) return; /* nil: taken */
  if (o->app->draining || o->count >= target(o)) {
    release_send(o, s->p, 1);
    return;
  }
  gain(o, s->p);
}

static void take(fanout_owner *o, unsigned p) {
  char key[PR_KEY_MAX];
  pr_key_owner(key, sizeof(key), p);
  const char *argv[] = {"SET", key, o->app->worker, "NX", "PX", o->lease};
  if (pr_redis_cmdargv(o->app->redis, on_taken, &o->slots[p], 6, argv, NULL)) return;
  o->busy[p] = 1;
  o->sent_at[p] = pr_now_mono_ms();
}

/* ---- the scan for free partitions ------------------------------------------ */

static void scan_done(fanout_owner *o) {
  o->scanning = false;
  if (o->app->finished || o->app->draining) return;
  unsigned want = target(o) > o->count ? target(o) - o->count : 0;
  /* start at a place of our own so that workers starting together collide less */
  unsigned start = pr_crc16(o->app->worker, strlen(o->app->worker)) % o->P;
  unsigned taken = 0;
  for (unsigned i = 0; i < o->P && want > 0; i++) {
    unsigned p = (start + i) % o->P;
    if (o->free_seen[p] && !o->owned[p] && !o->busy[p]) {
      take(o, p);
      want--;
      taken++;
    }
  }
  if (taken > 0) {
    o->idle_scans = 0;
  } else if (++o->idle_scans >= SCAN_EAGER) {
    o->scan_skip = SCAN_BACKOFF;
  }
}

static void on_scanned(pr_redis *r, redisReply *reply, int err, void *arg) {
  slot *s = arg;
  fanout_owner *o = s->o;
  if (!err && reply->type == REDIS_REPLY_NIL) o->free_seen[s->p] = 1;
  if (--o->scan_wait == 0) scan_done(o);
}

static void scan(fanout_owner *o) {
  o->scanning = true;
  memset(o->free_seen, 0, o->P);
  char key[PR_KEY_MAX];
  for (unsigned p = 0; p < o->P; p++) {
    if (o->owned[p] || o->busy[p]) continue;
    pr_key_owner(key, sizeof(key), p);
    const char *argv[] = {"GET", key};
    if (pr_redis_cmdargv(o->app->redis, on_scanned, &o->slots[p], 2, argv, NULL)) break;
    o->scan_wait++;
  }
  if (o->scan_wait == 0) o->scanning = false;
}

/* ---- the tick -------------------------------------------------------------- */

static void on_left(pr_redis *r, redisReply *reply, int err, void *arg) { release_finished(arg); }

static void on_registered(pr_redis *r, redisReply *reply, int err, void *arg) {
  fanout_owner *o = arg;
  if (o->app->finished || o->releasing) return;
  if (err || reply->type != REDIS_REPLY_INTEGER) {
    pr_log_warn("owner", "registration failed", "err=%s", pr_strerror(err ? err : PR_EPROTO));
    return;
  }
  if (!o->registered) pr_log_info("owner", "registered", "worker=%s", o->app->worker);
  o->registered = true;
  unsigned live = reply->integer > 0 ? (unsigned)reply->integer : 1;
  if (live != o->live) scan_soon(o);
  o->live = live;
  unsigned t = target(o);
  for (unsigned p = o->P; p-- > 0 && o->count > t;) {
    if (!o->owned[p]) continue;
    drop(o, p); /* stop processing first, then give it back */
    release_send(o, p, 1);
  }
  if (o->count >= t || o->scanning) return;
  if (o->scan_skip > 0)
    o->scan_skip--;
  else
    scan(o);
}

static void on_tick(uv_timer_t *t) {
  fanout_owner *o = t->data;
  uint64_t now = pr_now_mono_ms();
  for (unsigned p = 0; p < o->P; p++)
    if (o->owned[p] && now >= o->valid_until[p]) {
      pr_log_warn("owner", "lease not renewed in time", "partition=%u", p);
      drop(o, p);
    }
  if (!pr_redis_is_ready(o->app->redis)) return;
  renew_all(o, now);
  const char *keys[] = {"wk"}, *args[] = {o->app->worker, o->lease, "0"};
  pr_redis_script(o->app->redis, &register_script, on_registered, o, 1, keys, 3, args);
}

/* ---- public ---------------------------------------------------------------- */

fanout_owner *fanout_owner_new(fanout_app *app, const fanout_owner_hooks *hooks) {
  fanout_owner *o = pr_calloc(1, sizeof(*o));
  o->app = app;
  o->hooks = *hooks;
  o->P = app->partitions;
  o->owned = pr_calloc(o->P, 1);
  o->busy = pr_calloc(o->P, 1);
  o->free_seen = pr_calloc(o->P, 1);
  o->sent_at = pr_calloc(o->P, sizeof(uint64_t));
  o->valid_until = pr_calloc(o->P, sizeof(uint64_t));
  o->slots = pr_calloc(o->P, sizeof(slot));
  for (unsigned p = 0; p < o->P; p++)
    o->slots[p] = (slot){o, p};
  snprintf(o->lease, sizeof(o->lease), "%lld", app->cfg.owner_lease_ms);
  uint64_t every = (uint64_t)app->cfg.owner_lease_ms / 3;
  if (every > 1000) every = 1000;
  if (every < 50) every = 50;
  uv_timer_init(app->loop, &o->tick);
  o->tick.data = o;
  uv_timer_start(&o->tick, on_tick, 0, every);
  return o;
}

static void on_closed(uv_handle_t *h) {
  fanout_owner *o = h->data;
  pr_free(o->owned);
  pr_free(o->busy);
  pr_free(o->free_seen);
  pr_free(o->sent_at);
  pr_free(o->valid_until);
  pr_free(o->slots);
  pr_free(o);
}

void fanout_owner_free(fanout_owner *o) {
  if (o) uv_close((uv_handle_t *)&o->tick, on_closed);
}

int fanout_owner_owns(const fanout_owner *o, unsigned p) {
  return p < o->P && o->owned[p] && pr_now_mono_ms() < o->valid_until[p];
}

unsigned fanout_owner_count(const fanout_owner *o) { return o->count; }

void fanout_owner_lose(fanout_owner *o, unsigned p) {
  if (p < o->P) drop(o, p);
}

int fanout_owner_registered(const fanout_owner *o) { return o->registered; }

void fanout_owner_release_all(fanout_owner *o, void (*done)(void *arg), void *arg) {
  uv_timer_stop(&o->tick);
  o->releasing = true;
  o->done = done;
  o->done_arg = arg;
  o->release_wait = 1; /* held until every command is sent */
  unsigned released = 0;
  for (unsigned p = 0; p < o->P; p++) {
    if (!o->owned[p]) continue;
    drop(o, p);
    if (release_send(o, p, 2)) {
      o->release_wait++;
      released++;
    }
  }
  const char *keys[] = {"wk"}, *args[] = {o->app->worker, o->lease, "1"};
  if (pr_redis_script(o->app->redis, &register_script, on_left, o, 1, keys, 3, args) == 0)
    o->release_wait++;
  pr_log_info("owner", "releasing", "partitions=%u", released);
  release_finished(o); /* the initial hold */
}
