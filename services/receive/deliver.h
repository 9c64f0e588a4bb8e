/* deliver.h: batches from fanout (nng PULL) pushed to local connections.
 * nng receives on its own thread into a bounded, mutex-protected queue and
 * wakes the loop (uv_async); the loop decodes each batch (pr_batch_decode)
 * and, for each delivery newer than the last pushed for its user, sends the
 * presence frame to every local connection of every recipient.
 *
 * Ownership: recv_deliver_start creates the deliverer; recv_deliver_close
 * stops nng (waiting for its callback), frees what is queued and frees the
 * deliverer once its uv handle is closed. */
#ifndef RECV_DELIVER_H
#define RECV_DELIVER_H

#include "app.h"

#include <stdint.h>

/* nng messages waiting for the loop at most; their bytes (with those of the
 * messages the loop is handling) are bounded by --deliver-queue-max-bytes
 * (64 MiB by default: a message may be 4 MiB). Beyond either bound a message
 * is dropped and counted (recv_deliver_queue_drops). */
#define RECV_DELIVER_QUEUE_MAX 1024

/* Listens on `url` (tcp://host:port; port 0 picks one). On success *bound is
 * the bound address (tcp://host:port, pr_malloc'd: caller frees). Returns 0,
 * PR_EINVAL (bad url) or PR_EIO (nng failed: the message is in err). */
int recv_deliver_start(recv_app *app, const char *url, char **bound, char *err, size_t errlen);
/* Stops receiving: nothing is pushed after it returns. */
void recv_deliver_close(recv_deliver *d);
/* Messages refused because the queue was full, by count or bytes (any thread). */
uint64_t recv_deliver_queue_drops(const recv_deliver *d);

#endif
