/* sweeper.h: offline detection by deadlines (the default). Every
 * --sweep-interval-ms the sweep script runs for each owned partition, all in
 * one loop turn (pipelined); a partition whose sweep hit --sweep-limit is
 * swept again at once. The script checks own:{pN}, so a partition someone else
 * holds is dropped. With --offline keyspace it runs every 30 s as a backstop
 * for expired events Redis dropped while no subscriber listened.
 *
 * Ownership: the sweeper is the app's (fanout_sweeper_free). */
#ifndef FANOUT_SWEEPER_H
#define FANOUT_SWEEPER_H

#include "fanout.h"

#define FANOUT_KEYSPACE_BACKSTOP_MS 30000

fanout_sweeper *fanout_sweeper_new(fanout_app *app);
/* Stops sweeping (drain). */
void fanout_sweeper_stop(fanout_sweeper *s);
void fanout_sweeper_free(fanout_sweeper *s);

#endif
