/* lease.h: this receive instance's lease in Redis (DESIGN §2, §5): the key
 * inst:<id> = its nng address with PX --lease-ttl-ms, refreshed every third
 * of the ttl with SET ... XX, and its id in the set `insts`. One lease
 * vouches for every connection here, so nothing is written per connection
 * per heartbeat. When a refresh finds the lease gone (fanout may then be
 * cleaning this id), the instance takes a new id, "<base>.<n>" (n: the
 * epoch, +1 at each loss), creates its lease with SET NX, adds it to `insts`
 * and registers every device with open connections under it. Registrations
 * that failed are redone after a refresh that found the lease held.
 *
 * Ownership: recv_lease_new's result is closed with recv_lease_close, then
 * freed with recv_lease_free once the loop has run (its timer closed) and no
 * Redis reply can come any more (after pr_redis_free). */
#ifndef RECV_LEASE_H
#define RECV_LEASE_H

#include "app.h"

#include <stdbool.h>

recv_lease *recv_lease_new(recv_app *app);
/* Redis became ready (or was lost): refresh at once / note it. */
void recv_lease_on_redis(recv_lease *l, bool ready);
/* true while the last successful SET is younger than the ttl. */
bool recv_lease_is_held(const recv_lease *l);
/* Stops refreshing (the drain deletes the key). */
void recv_lease_close(recv_lease *l);
void recv_lease_free(recv_lease *l);

#endif
