/* instances.h: the receive instances. Every --instance-check-ms: SMEMBERS
 * insts, then GET inst:<id> for each (pipelined). A live one is added to (or
 * kept in) the peers table with the address of its lease; a dead one is
 * cleaned by exactly one worker (SET cl:<id> NX PX 30000): conn_del for every
 * user/device in ic:<id> (pipelined, in chunks), then, in one script, DEL
 * ic:<id> and SREM insts <id> unless inst:<id> exists again (the instance
 * registered anew meanwhile). conn_del publishes only on a change, so each
 * user gets one offline event. The lock is released (if still ours) when the
 * cleanup ends, failed or not: a failed cleanup is retried at the next check.
 *
 * Ownership: the checker is the app's (fanout_instances_free). */
#ifndef FANOUT_INSTANCES_H
#define FANOUT_INSTANCES_H

#include "fanout.h"

fanout_instances *fanout_instances_new(fanout_app *app);
void fanout_instances_stop(fanout_instances *in);
void fanout_instances_free(fanout_instances *in);

#endif
