/* sweeper.c: the periodic sweep of owned partitions (see sweeper.h). */
#include "sweeper.h"

#include "base.h"
#include "log.h"
#include "owner.h"

typedef struct {
  fanout_sweeper *s;
  unsigned p;
} slot;

struct fanout_sweeper {
  fanout_app *app;
  uint8_t *busy; /* a sweep of p is waiting for its reply */
  slot *slots;
  uv_timer_t timer;
};

static void sweep(fanout_sweeper *s, unsigned p);

static void on_swept(const pr_store_sweep_result *res, int err, void *arg) {
  slot *sl = arg;
  fanout_sweeper *s = sl->s;
  fanout_app *app = s->app;
  s->busy[sl->p] = 0;
  if (app->finished) return;
  if (err) {
    pr_log_warn("sweeper", "sweep failed", "partition=%u err=%s", sl->p, pr_strerror(err));
    return;
  }
  pr_counter_inc(app->m.sweeps);
  if (!res->owner) {
    pr_log_warn("sweeper", "partition owned by another worker", "partition=%u", sl->p);
    fanout_owner_lose(app->owner, sl->p);
    return;
  }
  pr_counter_add(app->m.expired, res->published);
  if (res->expired >= (unsigned)app->cfg.sweep_limit && !app->draining) sweep(s, sl->p);
}

static void sweep(fanout_sweeper *s, unsigned p) {
  fanout_app *app = s->app;
  if (s->busy[p] || !fanout_owner_owns(app->owner, p)) return;
  if (pr_store_sweep(app->store, p, app->worker, (unsigned)app->cfg.sweep_limit, on_swept,
                     &s->slots[p]) == 0)
    s->busy[p] = 1;
}

static void on_tick(uv_timer_t *t) {
  fanout_sweeper *s = t->data;
  if (!pr_redis_is_ready(s->app->redis)) return;
  for (unsigned p = 0; p < s->app->partitions; p++)
    sweep(s, p);
}

fanout_sweeper *fanout_sweeper_new(fanout_app *app) {
  fanout_sweeper *s = pr_calloc(1, sizeof(*s));
  s->app = app;
  s->busy = pr_calloc(app->partitions, 1);
  s->slots = pr_calloc(app->partitions, sizeof(slot));
  for (unsigned p = 0; p < app->partitions; p++)
    s->slots[p] = (slot){s, p};
  uint64_t every =
      app->keyspace ? FANOUT_KEYSPACE_BACKSTOP_MS : (uint64_t)app->cfg.sweep_interval_ms;
  uv_timer_init(app->loop, &s->timer);
  s->timer.data = s;
  uv_timer_start(&s->timer, on_tick, every, every);
  return s;
}

void fanout_sweeper_stop(fanout_sweeper *s) { uv_timer_stop(&s->timer); }

static void on_closed(uv_handle_t *h) {
  fanout_sweeper *s = h->data;
  pr_free(s->busy);
  pr_free(s->slots);
  pr_free(s);
}

void fanout_sweeper_free(fanout_sweeper *s) {
  if (s) uv_close((uv_handle_t *)&s->timer, on_closed);
}
