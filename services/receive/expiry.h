/* expiry.h: closes connections whose token expired (DESIGN §6: close 4001).
 * One min-heap of (exp, connection) for the whole instance and one timer that
 * pops the expired ones every second; a connection keeps only its index in
 * the heap (4 bytes), the heap 12 bytes per connection. Client frames check
 * their connection's exp on arrival too (recv_expiry_passed).
 *
 * Ownership: the heap points to connections but holds no reference: a
 * connection is removed (recv_expiry_remove) before it is freed. */
#ifndef RECV_EXPIRY_H
#define RECV_EXPIRY_H

#include "app.h"
#include "conn.h"

#include <stdbool.h>
#include <stdint.h>

#define RECV_EXPIRY_SWEEP_MS     1000
#define RECV_CLOSE_TOKEN_EXPIRED 4001

recv_expiry *recv_expiry_new(recv_app *app);
/* Adds c with its token's exp (seconds since the epoch). */
void recv_expiry_add(recv_expiry *x, recv_conn *c, int64_t exp);
/* Removes c (no-op when it is not in the heap). */
void recv_expiry_remove(recv_expiry *x, recv_conn *c);
/* true when c's token expired at `now` (seconds since the epoch). */
bool recv_expiry_passed(const recv_expiry *x, const recv_conn *c, int64_t now);
/* Stops the timer (teardown); idempotent. Free after the loop ran. */
void recv_expiry_close(recv_expiry *x);
void recv_expiry_free(recv_expiry *x);

#endif
