/* frames.h: what presence-receive does with each client frame (DESIGN §6):
 * status, ping, subscribe, unsubscribe, heartbeat; anything else is answered
 * with an error frame and the connection stays. */
#ifndef RECV_FRAMES_H
#define RECV_FRAMES_H

#include "conn.h"

#include <stddef.h>

/* Handles one complete text message from c (already rate limited). */
void recv_frames_handle(recv_conn *c, const char *data, size_t len);

#endif
