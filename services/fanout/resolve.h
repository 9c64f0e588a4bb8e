/* resolve.h: the batcher and resolver. Updates of owned partitions are
 * collected for a short window (--batch-flush-ms, or --batch-max updates),
 * coalesced per user (a newer version wins; a relayed heartbeat of the
 * version of a queued transition goes after it instead of replacing it), then resolved for the
 * whole window at once: the watchers of every subject (pr_graph_watchers, or the event's `to` with
 * --graph client), plus the subject itself for its own other devices; the receive instances of all
 * of them (pr_route_instances); and one batch per instance, naming the recipients held there.
 *
 * Ownership: fanout_resolver_add copies what it keeps; the resolver is the
 * app's (fanout_resolver_free, after pr_redis_free so that no round is left). */
#ifndef FANOUT_RESOLVE_H
#define FANOUT_RESOLVE_H

#include "fanout.h"
#include "proto.h"

/* One presence update to deliver: an event, or a catch-up read. */
typedef struct {
  int kind; /* PR_EVENT_TRANSITION or PR_EVENT_HEARTBEAT */
  pr_view user;
  int status; /* PR_STATUS_OFFLINE/ONLINE/IDLE/DND */
  uint64_t last_seen, version, ts_ms;
  const pr_view *to; /* --graph client: the recipients the client named */
  size_t nto;
} fanout_update;

fanout_resolver *fanout_resolver_new(fanout_app *app);
void fanout_resolver_free(fanout_resolver *rs);

/* Called with the partition of every update that was not resolved (a failed
 * round, a full batcher): it must be read again from chg:{pN}. */
void fanout_resolver_on_failed(fanout_resolver *rs, void (*failed)(unsigned p, void *arg),
                               void *arg);

/* Queues u (copied). Counts a drop when the batcher is full while Redis lags. */
void fanout_resolver_add(fanout_resolver *rs, const fanout_update *u);
/* A mark of what is queued now: every update added before the call is in a
 * round with an id <= the mark. */
uint64_t fanout_resolver_mark(const fanout_resolver *rs);
/* 1 once every round with an id <= mark has ended (failed ones included:
 * their partitions went to the failed hook before). */
int fanout_resolver_done_through(const fanout_resolver *rs, uint64_t mark);
/* Starts resolving what is queued now (drain). */
void fanout_resolver_flush(fanout_resolver *rs);
/* 1 when nothing is queued or being resolved. */
int fanout_resolver_idle(const fanout_resolver *rs);

#endif
