/* pr_client.h: a small Presence WebSocket client on libuv (client role of the
 * common ws codec: its frames are masked). One pr_client is one device of one
 * user; thousands run on one loop (no thread, no buffer while idle).
 *
 * Ownership: pr_client_new copies every string of `opts`; `handlers` must
 * outlive the client (a static table is the usual case). Entries and strings
 * passed to callbacks live only during the callback. pr_client_free may be
 * called at any time, from a callback too: no callback follows it and the
 * memory is released from a libuv close callback (the loop must run).
 * Not thread-safe: use a client only from its loop's thread. */
#ifndef PR_CLIENT_H
#define PR_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct pr_client pr_client;

typedef struct {
  const char *url;          /* "host:port" of a presence-receive (IP literal), required */
  const char *path;         /* default "/v1/ws" */
  const char *token;        /* JWT, sent as ?token= (required) */
  const char *device;       /* device id, or NULL (the server makes one) */
  int reconnect;            /* 1: reconnect with backoff after any close but pr_client_close */
  const char *bind_addr;    /* source IP to bind before connecting (127.0.0.2), or NULL */
  uint32_t backoff_max_ms;  /* reconnect backoff cap; 0: 5000 (starts at 100, doubles, jittered) */
  uint32_t open_timeout_ms; /* connect + upgrade must finish within it; 0: 10000 */
} pr_client_opts;

/* One user's presence as received. last_seen 0 means null. */
typedef struct {
  const char *user;
  const char *status;
  uint64_t last_seen;
  uint64_t version;
} pr_client_entry;

typedef struct {
  /* {"type":"hello"}: the connection is authenticated and registered. */
  void (*on_hello)(pr_client *c, const char *user, const char *device, uint64_t heartbeat_ms,
                   void *arg);
  /* {"type":"snapshot"}: everyone this user may watch. */
  void (*on_snapshot)(pr_client *c, const pr_client_entry *e, size_t n, void *arg);
  /* {"type":"presence"}: one change. */
  void (*on_presence)(pr_client *c, const pr_client_entry *e, void *arg);
  /* Any other text frame (pong, error, group, presence_batch), raw JSON with
   * its "type". Optional. */
  void (*on_frame)(pr_client *c, const char *type, const char *json, size_t len, void *arg);
  /* Once per connection attempt that ended: the close code the server sent
   * (1005 without one), 1006 when the socket dropped or could not connect,
   * or the HTTP status (< 1000: 401, 503, ...) of a refused upgrade. A
   * reconnect (if enabled and not closed by pr_client_close) follows. */
  void (*on_close)(pr_client *c, int code, void *arg);
  /* A failure with a short description (connect refused, bad handshake,
   * protocol error, unparsable frame); on_close follows if the connection
   * ends. Optional. */
  void (*on_error)(pr_client *c, int err, const char *what, void *arg);
} pr_client_handlers;

/* Creates the client and starts connecting. Returns 0 and *out, or PR_EINVAL
 * (bad url or bind address, no token). */
int pr_client_new(uv_loop_t *loop, const pr_client_opts *opts, const pr_client_handlers *handlers,
                  void *arg, pr_client **out);

/* Frames to the server. Each returns 0, or PR_ECLOSED when not open (between
 * reconnects too), PR_EINVAL for a bad argument. */
int pr_client_set_status(pr_client *c, const char *status); /* online|idle|dnd|invisible|none */
int pr_client_subscribe(pr_client *c, const char *group);
int pr_client_ping(pr_client *c);
/* Sends any text message (already JSON). */
int pr_client_send_text(pr_client *c, const char *data, size_t len);

/* Starts the close handshake with 1000 and disables reconnect; on_close
 * follows. Returns 0 or PR_ECLOSED when nothing is open (then a pending
 * reconnect is cancelled and no callback follows). */
int pr_client_close(pr_client *c);
/* Drops everything now; no callback follows. */
void pr_client_free(pr_client *c);

/* 1 once hello arrived on the current connection, until it ends. */
int pr_client_is_open(const pr_client *c);
void *pr_client_arg(const pr_client *c);
/* Connection attempts made so far (1 for the first). */
unsigned pr_client_attempts(const pr_client *c);

#endif
