/* consume.c: the subscriber connection and event decoding (see consume.h). */
#include "consume.h"

#include "base.h"
#include "changes.h"
#include "event.h"
#include "keyspace.h"
#include "log.h"
#include "owner.h"
#include "partition.h"
#include "resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fanout_consumer {
  fanout_app *app;
  uint8_t *subscribed; /* between the gained and lost hooks of p */
  bool was_ready;      /* the subscriber was ready before (a new ready is a reconnect) */
  pr_view to[PR_EVENT_MAX_TO];
};

static void channel_of(char *buf, size_t cap, unsigned p) { pr_key_events(buf, cap, p); }

/* ---- events --------------------------------------------------------------- */

static void on_event(fanout_consumer *c, unsigned p, const char *data, size_t len) {
  fanout_app *app = c->app;
  if (!fanout_owner_owns(app->owner, p)) {
    /* A lease whose renewal is late: if it is renewed after all, what is
     * dropped here must be read again; a loss cancels that. */
    if (c->subscribed[p]) fanout_changes_failed(p, app->changes);
    return;
  }
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
  fanout_changes_seen(app->changes, p, ev.ts_ms); /* events arrive in the order of Redis */
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
  c->subscribed[p] = 1;
  fanout_changes_catchup(c->app->changes, p);
}

void fanout_consumer_lost(unsigned p, void *arg) {
  fanout_consumer *c = arg;
  char ch[PR_KEY_MAX];
  channel_of(ch, sizeof(ch), p);
  c->subscribed[p] = 0;
  fanout_changes_lost(c->app->changes, p);
  if (!c->app->finished) pr_redis_unsubscribe(c->app->sub, ch);
}

void fanout_consumer_on_sub_state(pr_redis *r, int ready, void *arg) {
  fanout_consumer *c = arg;
  fanout_app *app = c->app;
  if (!ready) {
    /* Nothing to remember: what was published since the last message
     * received is read again from chg:{pN}, which only an owner trims, and
     * only up to what it received. */
    pr_log_warn("consume", "subscriber connection lost", "%s", "");
    return;
  }
  if (c->was_ready) {
    for (unsigned p = 0; p < app->partitions; p++)
      if (c->subscribed[p]) fanout_changes_catchup(app->changes, p);
    pr_log_info("consume", "subscriber back: catching up", "partitions=%u",
                fanout_owner_count(app->owner));
  }
  c->was_ready = true;
  fanout_changes_kick(app->changes);
}

fanout_consumer *fanout_consumer_new(fanout_app *app) {
  fanout_consumer *c = pr_calloc(1, sizeof(*c));
  c->app = app;
  c->subscribed = pr_calloc(app->partitions, 1);
  pr_redis_on_message(app->sub, on_message, c);
  return c;
}

void fanout_consumer_free(fanout_consumer *c) {
  if (!c) return;
  pr_free(c->subscribed);
  pr_free(c);
}
