/* consume.h: the pub/sub consumer. A dedicated subscriber connection holds
 * SUBSCRIBE ev:{pN} for every owned partition (and, with --offline keyspace,
 * the expired-key pattern); events are decoded and handed to the resolver.
 * Nothing is lost across a takeover or a reconnect of the subscriber: after
 * subscribing, the partition's chg:{pN} is read again (changes.h) and its
 * users delivered as transitions (receivers drop what is not newer).
 *
 * Ownership: the consumer is the app's; it uses app->sub and app->changes. */
#ifndef FANOUT_CONSUME_H
#define FANOUT_CONSUME_H

#include "fanout.h"

fanout_consumer *fanout_consumer_new(fanout_app *app);
void fanout_consumer_free(fanout_consumer *c);

/* The owner's hooks (arg: the consumer). */
void fanout_consumer_gained(unsigned p, void *arg);
void fanout_consumer_lost(unsigned p, void *arg);

/* The subscriber connection's state callback (arg: the consumer). */
void fanout_consumer_on_sub_state(pr_redis *r, int ready, void *arg);

#endif
