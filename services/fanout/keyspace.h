/* keyspace.h: --offline keyspace. Redis must publish expired-key events
 * (notify-keyspace-events with E and x: fanout adds them with CONFIG SET, so
 * ops must allow CONFIG on its user); fanout PSUBSCRIBEs __keyevent@*__:expired
 * and, for hb:{pN}:<user>/<device> keys of owned partitions, runs
 * pr_store_expire_user. Events expired while no subscriber was connected are
 * lost: the sweeper still runs as a slow backstop (sweeper.h). */
#ifndef FANOUT_KEYSPACE_H
#define FANOUT_KEYSPACE_H

#include "fanout.h"

#include <stddef.h>

#define FANOUT_KEYSPACE_PATTERN "__keyevent@*__:expired"

/* Subscribes to the pattern on app->sub (taking effect when it connects). */
void fanout_keyspace_subscribe(fanout_app *app);
/* Makes sure Redis emits expired events (CONFIG GET, then SET with E and x
 * added when missing). Call when app->redis becomes ready. */
void fanout_keyspace_configure(fanout_app *app);
/* An expired-key event for `key` (channel __keyevent@N__:expired). */
void fanout_keyspace_on_expired(fanout_app *app, const char *key, size_t len);

#endif
