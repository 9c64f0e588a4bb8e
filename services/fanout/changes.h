/* changes.h: chg:{pN}, the partition's changed users (docs/data-model.md):
 * user -> ms (Redis time) of its last visible change, one entry per user,
 * written by the store scripts. The partition's owner reads it again from the
 * start (a catch-up) when it gains the partition, after its subscriber
 * reconnects, and after updates of the partition were not resolved (a failed
 * round, an overloaded batcher); and it trims what it has delivered. Nothing
 * trims by time, so a change stays until an owner has delivered it, however
 * long fanout was down; the set is bounded by the partition's users.
 *
 * The trim: per partition the owner keeps `seen`, the Redis time up to which
 * every change has been handed to the resolver (the ts of the last event
 * received on ev:{pN}, which arrive in order, or the upper bound of a
 * finished catch-up). Every FANOUT_CHG_TRIM_MS it takes a snapshot of it;
 * at the next turn, if every round holding updates from before the snapshot
 * has ended, none of the partition's failed and no catch-up of it was asked
 * meanwhile, it removes the entries up to the snapshot minus
 * FANOUT_CHG_TRIM_MARGIN_MS (a margin for steps of Redis's clock).
 *
 * Ownership: the app's (fanout_changes_free); it uses app->redis, app->sub
 * (readiness only), app->owner and app->resolver. */
#ifndef FANOUT_CHANGES_H
#define FANOUT_CHANGES_H

#include "fanout.h"

#define FANOUT_CHG_TRIM_MS        2000
#define FANOUT_CHG_TRIM_MARGIN_MS 3000

fanout_changes *fanout_changes_new(fanout_app *app);
void fanout_changes_free(fanout_changes *ch);

/* Reads chg:{pN} again from the start, shortly (the subscription of p must be
 * in place first: call it after SUBSCRIBE). */
void fanout_changes_catchup(fanout_changes *ch, unsigned p);
/* Updates of p were not resolved (arg: the fanout_changes): catch p up again,
 * after a delay that doubles while it keeps failing (up to 8 s). The
 * resolver's failed hook. */
void fanout_changes_failed(unsigned p, void *arg);
/* An event of p with Redis time ts_ms was handed to the resolver. */
void fanout_changes_seen(fanout_changes *ch, unsigned p, uint64_t ts_ms);
/* p was lost: forget its catch-up and its trim state. */
void fanout_changes_lost(fanout_changes *ch, unsigned p);
/* The subscriber is ready (again): starts the catch-ups that waited for it. */
void fanout_changes_kick(fanout_changes *ch);

#endif
