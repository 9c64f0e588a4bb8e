/* client_internal.h: the pr_client struct shared by the transport (client.c)
 * and the frame dispatcher (client_frames.c). Not part of the public API. */
#ifndef PR_CLIENT_INTERNAL_H
#define PR_CLIENT_INTERNAL_H

#include "buf.h"
#include "pr_client.h"

#include <netinet/in.h>
#include <stdint.h>
#include <uv.h>

typedef union {
  struct sockaddr sa;
  struct sockaddr_in in4;
  struct sockaddr_in6 in6;
} client_addr;

enum { ST_IDLE, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSING, ST_DOWN };

struct pr_client {
  uv_loop_t *loop;
  uv_tcp_t tcp;
  uv_timer_t timer; /* open timeout, then reconnect delay */
  uv_connect_t connect_req;
  const pr_client_handlers *h;
  void *arg;
  client_addr addr, bind;
  char *host;   /* "host:port" for the Host header */
  char *target; /* path?token=...&device=... */
  pr_buf in;    /* a partial handshake answer or frame; empty when idle */
  pr_buf msg;   /* a fragmented message being reassembled */
  char key[25]; /* Sec-WebSocket-Key of the current attempt */
  uint8_t state, msg_op;
  uint8_t has_bind, reconnect, user_closed, freeing, tcp_live, hello;
  int close_code;
  unsigned attempts, pending_closes;
  uint32_t backoff_ms, backoff_max_ms, open_timeout_ms;
};

/* client_frames.c: parses one complete text message and calls the handler.
 * Returns 0, or PR_EPROTO for a message that is not a JSON object with a
 * "type" (reported through on_error; the connection stays). */
int client_dispatch_text(pr_client *c, const char *data, size_t len);
/* client_scan.c: reads a presence frame in the exact shape the server writes
 * it, {"type":"presence","user":S,"status":S,"last_seen":N|null,"version":N}
 * (no whitespace, keys in that order), without allocating: the strings are
 * unescaped into scratch[0..cap) and *e points into it (last_seen null is 0).
 * Returns 0, or PR_EPROTO for anything else (another type or layout, a byte
 * over 0x7f or a \u escape outside 1..0x7f in a string, an integer over
 * INT64_MAX, strings that do not fit), which the dispatcher then parses with
 * jansson; whenever this succeeds, jansson would give the same entry. */
int client_scan_presence(const char *data, size_t len, pr_client_entry *e, char *scratch,
                         size_t cap);
/* client.c: called by the dispatcher when hello arrives (resets the backoff). */
void client_mark_hello(pr_client *c);
void client_report_error(pr_client *c, int err, const char *what);

#endif
