/* peers.h: one nng PUSH socket per live receive instance, dialled on first
 * use with the address from its lease (inst:<id>), with a bounded send buffer;
 * a batch that does not fit is dropped and counted (the client resyncs from
 * the snapshot when it reconnects). Each peer also holds the batch being built
 * for it.
 *
 * Ownership: the peers table owns every peer, socket and builder. A
 * fanout_peer pointer is valid until the next fanout_peers_set/remove/retain
 * (do not keep one across an asynchronous call). */
#ifndef FANOUT_PEERS_H
#define FANOUT_PEERS_H

#include "batch.h"
#include "fanout.h"

typedef struct fanout_peer fanout_peer;

fanout_peers *fanout_peers_new(fanout_app *app);
/* Closes every socket (after a short grace for queued batches, see main.c). */
void fanout_peers_free(fanout_peers *ps);

/* Adds instance `id` at nng address `addr` ("tcp://127.0.0.1:7001"), or
 * updates its address (a new address closes the old socket). */
void fanout_peers_set(fanout_peers *ps, const char *id, const char *addr);
/* Closes and forgets instance `id` (its lease is gone). */
void fanout_peers_remove(fanout_peers *ps, const char *id);
/* Closes and forgets every instance not among ids[0..n). */
void fanout_peers_retain(fanout_peers *ps, const char *const *ids, size_t n);
/* The peer of instance id[0..len), or NULL when its lease is not known. */
fanout_peer *fanout_peers_find(fanout_peers *ps, const char *id, size_t len);

/* The batch being built for the peer. */
pr_batch_builder *fanout_peer_builder(fanout_peer *p);
/* Sends the peer's batch if it holds deliveries (dialling on first use),
 * then empties it. A full send buffer drops the batch (counted). */
void fanout_peer_flush(fanout_peers *ps, fanout_peer *p);

#endif
