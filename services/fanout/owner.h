/* owner.h: which partitions this worker owns. Workers register in the zset
 * `wk` (worker id -> lease deadline); each takes leases own:{pN} (SET NX PX),
 * renews them only while they are still its own, and balances to about
 * ceil(P / live workers) by releasing extras and taking free ones. A worker
 * left below that (P not a multiple of the workers) looks for free
 * partitions only every few ticks once scans keep finding none, and at once
 * again when the live workers change or it loses a partition.
 *
 * Ownership: the owner is the app's (fanout_owner_free). The hooks are called
 * on the loop thread when a partition is gained or lost; a lost partition is
 * never processed again until gained anew. */
#ifndef FANOUT_OWNER_H
#define FANOUT_OWNER_H

#include "fanout.h"

typedef struct {
  void (*gained)(unsigned p, void *arg);
  void (*lost)(unsigned p, void *arg);
  void *arg;
} fanout_owner_hooks;

/* Creates the owner and starts its tick (every min(1000, lease/3) ms). */
fanout_owner *fanout_owner_new(fanout_app *app, const fanout_owner_hooks *hooks);
void fanout_owner_free(fanout_owner *o);

/* 1 if this worker holds partition p and its last renewal is still valid
 * (checked against the local clock with a margin). */
int fanout_owner_owns(const fanout_owner *o, unsigned p);
/* Partitions held now. */
unsigned fanout_owner_count(const fanout_owner *o);
/* Drops p at once (the sweep script found someone else in own:{pN}). */
void fanout_owner_lose(fanout_owner *o, unsigned p);
/* 1 once the worker has registered in `wk` at least once. */
int fanout_owner_registered(const fanout_owner *o);

/* SIGTERM: stops the tick, drops every partition, releases the leases still
 * ours (DEL only if still ours) and deregisters from `wk`, then calls
 * done(arg) once, possibly before returning when Redis is unavailable. */
void fanout_owner_release_all(fanout_owner *o, void (*done)(void *arg), void *arg);

#endif
