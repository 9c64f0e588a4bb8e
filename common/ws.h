/* ws.h: our RFC 6455 WebSocket (no extensions, no compression), in two layers.
 *
 * The codec is pure functions for both roles (the server here and the C client
 * library): handshake key, frame header parse/encode, masking, an incremental
 * UTF-8 validator and the close payload. The connection layer runs a server-side
 * WebSocket on libuv, starting from the uv_tcp_t that pr_http_detach() hands
 * over after an upgrade request (this module does not depend on http.h).
 *
 * Ownership: on success pr_ws_conn_start() owns the uv_tcp_t (it closes it and
 * pr_free()s it); on error the tcp is still the caller's. The module frees the
 * connection itself, after on_close has returned; the user must not touch the
 * conn after on_close. `handlers` must outlive the connection (a static table
 * is the usual case); `opts` is copied. Message data passed to on_message lives
 * only for the duration of the callback (it is in a buffer shared by the loop). */
#ifndef PR_WS_H
#define PR_WS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base.h"

/* ---- codec ------------------------------------------------------------ */

enum {
  PR_WS_OP_CONT = 0x0,
  PR_WS_OP_TEXT = 0x1,
  PR_WS_OP_BINARY = 0x2,
  PR_WS_OP_CLOSE = 0x8,
  PR_WS_OP_PING = 0x9,
  PR_WS_OP_PONG = 0xA,
};

/* Close codes this project sends or reports. */
enum {
  PR_WS_CLOSE_NORMAL = 1000,
  PR_WS_CLOSE_GOING_AWAY = 1001, /* also: idle timeout */
  PR_WS_CLOSE_PROTOCOL = 1002,
  PR_WS_CLOSE_NO_STATUS = 1005, /* reported when a close frame had no code */
  PR_WS_CLOSE_ABNORMAL = 1006,  /* reported when the socket dropped without a close */
  PR_WS_CLOSE_BAD_DATA = 1007,  /* invalid UTF-8 in a text message */
  PR_WS_CLOSE_TOO_BIG = 1009,
  PR_WS_CLOSE_RESTART = 1012, /* instance draining */
  PR_WS_CLOSE_UNAUTHORIZED = 4001,
  PR_WS_CLOSE_FORBIDDEN = 4003,
  PR_WS_CLOSE_SLOW = 4008, /* slow consumer or rate limit */
};

#define PR_WS_MAX_HEADER  14  /* 2 + 8 (64-bit length) + 4 (mask key) */
#define PR_WS_MAX_CONTROL 125 /* control frame payload limit */
#define PR_WS_ACCEPT_LEN  28  /* base64 of a SHA-1 */

/* Computes Sec-WebSocket-Accept for a client's Sec-WebSocket-Key. `client_key`
 * must be base64 of exactly 16 bytes (24 characters). Writes 28 characters and
 * a NUL to `out`. Returns 0 or PR_EINVAL. */
int pr_ws_accept_key(const char *client_key, char out[PR_WS_ACCEPT_LEN + 1]);

/* A parsed frame header. The whole frame is header_len + payload_len bytes;
 * the payload starts at offset header_len. */
typedef struct {
  int fin;
  int opcode;
  int masked;
  uint8_t mask[4]; /* valid when masked */
  size_t header_len;
  uint64_t payload_len;
} pr_ws_frame;

/* Flags for pr_ws_frame_parse. */
enum {
  PR_WS_REQUIRE_MASK = 1, /* server side: an unmasked frame is a protocol error */
  PR_WS_FORBID_MASK = 2,  /* client side: a masked frame is a protocol error */
};

/* Parses the frame header at the start of p[0..n). Only the header has to be
 * there: 0 means the header is complete (the payload may not be yet; compare n
 * with header_len + payload_len). PR_ETRUNC: the header needs more bytes.
 * PR_EPROTO: RSV bits set, unknown opcode, a control frame over 125 bytes or
 * not final, a 64-bit length with its top bit set, or a mask that `flags`
 * require or forbid. */
int pr_ws_frame_parse(const uint8_t *p, size_t n, int flags, pr_ws_frame *f);

/* Bytes the header starting p[0..n) needs in total, or 2 if n < 2 (so the
 * caller can wait for exactly the header). */
size_t pr_ws_header_len(const uint8_t *p, size_t n);

/* Writes a frame header to `out` (room for PR_WS_MAX_HEADER bytes) and returns
 * its length. `mask` is NULL (server frames) or the 4-byte key (client frames;
 * the caller then masks the payload with pr_ws_mask). */
size_t pr_ws_frame_header(uint8_t *out, int opcode, int fin, uint64_t payload_len,
                          const uint8_t *mask);

/* XORs data[0..len) in place with the mask key; `pos` is the offset of data[0]
 * within the payload (so a payload can be (un)masked in pieces). Masking and
 * unmasking are the same operation. */
void pr_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t pos);

/* Incremental UTF-8 validator: the state carries a sequence split across
 * fragments. Rejects overlong forms, surrogates and code points over U+10FFFF. */
typedef struct {
  uint8_t need;   /* continuation bytes still expected */
  uint8_t lo, hi; /* allowed range of the next continuation byte */
} pr_ws_utf8;

void pr_ws_utf8_init(pr_ws_utf8 *v);
/* Feeds bytes; 0 or PR_EUTF8 (the state is then unusable). */
int pr_ws_utf8_feed(pr_ws_utf8 *v, const uint8_t *p, size_t n);
/* 0 when the input so far ends on a character boundary, else PR_EUTF8. */
int pr_ws_utf8_finish(const pr_ws_utf8 *v);
/* Whole-buffer check: 0 or PR_EUTF8. */
int pr_ws_utf8_check(const uint8_t *p, size_t n);

/* 1 if a close code received from a peer is acceptable: 1000-1003, 1007-1014,
 * 3000-4999. 1004-1006, 1015, other 1xxx/2xxx and anything < 1000 are not
 * (the receiver then closes with 1002). */
int pr_ws_close_code_is_valid(int code);

/* Parses a received close payload. An empty payload gives *code = 1005.
 * PR_EPROTO for a 1-byte payload or an invalid code (answer 1002); PR_EUTF8 for
 * a reason that is not UTF-8 (answer 1007). `reason` points into p. */
int pr_ws_close_parse(const uint8_t *p, size_t n, int *code, const char **reason,
                      size_t *reason_len);

/* Builds a close payload (code, then `reason` cut to at most 123 bytes on a
 * character boundary) into out (room for 125 bytes); returns its length.
 * `reason` may be NULL. */
size_t pr_ws_close_payload(uint8_t *out, int code, const char *reason);

/* ---- connection (server side) -------------------------------------------- */

typedef struct pr_ws_conn pr_ws_conn;

typedef struct {
  size_t max_message_bytes;  /* 0: 65536. Larger message -> close 1009 */
  size_t max_outbound_bytes; /* 0: 262144. Queue over it -> close 4008 "slow consumer" */
  uint32_t idle_timeout_ms;  /* no frame from the client this long -> close 1001; 0 = never */
  uint32_t close_timeout_ms; /* 0: 2000. After our close frame, wait this long for the peer */
} pr_ws_opts;

typedef struct {
  /* A complete message (reassembled; text already UTF-8 validated). `data`
   * lives until the callback returns. Required. */
  void (*on_message)(pr_ws_conn *c, int is_text, const char *data, size_t len, void *user);
  /* Any frame received, control frames included (liveness). Optional. */
  void (*on_activity)(pr_ws_conn *c, void *user);
  /* Exactly once, when the connection is finished: the code the peer sent
   * (1005 if its close had none), the code we closed with, or 1006 if the
   * socket dropped. The conn is freed right after. Optional. */
  void (*on_close)(pr_ws_conn *c, int code, void *user);
} pr_ws_handlers;

/* Takes over `tcp` after an upgrade request: writes "HTTP/1.1 101 Switching
 * Protocols" with Sec-WebSocket-Accept and `extra_headers` (NULL or complete
 * lines, each ending in "\r\n"), then reads frames. `accept_key` is the value
 * computed by pr_ws_accept_key (28 characters); the client's raw
 * Sec-WebSocket-Key (24 characters) is also accepted and converted. `leftover`
 * (bytes read after the request head) is processed before any new read, from
 * the loop (never inside this call). `opts` may be NULL. Returns 0 and *out:
 * the tcp is then ours, and if the socket already failed, on_close follows
 * with 1006. PR_EINVAL (bad key or argument): the tcp is still the caller's. */
int pr_ws_conn_start(uv_loop_t *loop, uv_tcp_t *tcp, const char *accept_key,
                     const char *extra_headers, const char *leftover, size_t leftover_len,
                     const pr_ws_opts *opts, const pr_ws_handlers *handlers, void *user,
                     pr_ws_conn **out);

/* Sends one message as a single frame. Written at once when the kernel takes
 * it; what it does not take is queued. Returns 0, PR_ECLOSED (closing or
 * closed) or PR_EBUSY (the outbound limit would be exceeded: the message is
 * not sent and the conn is being closed with 4008). Text is not re-validated. */
int pr_ws_send_text(pr_ws_conn *c, const char *data, size_t len);
int pr_ws_send_binary(pr_ws_conn *c, const char *data, size_t len);

/* Write coalescing: while a connection is corked, the frames sent to it
 * (data, pongs, close) are collected and pr_ws_uncork writes them in one
 * call, in order. The buffer exists only from the first frame to the uncork.
 * pr_ws_cork returns 1 when it corked c, 0 when c was corked already; the
 * caller that got 1 must call pr_ws_uncork before it returns to the loop
 * (the conn may be freed after that). The outbound limit is the same as
 * uncorked: collected bytes are offered to the kernel before they would pass
 * 64 KiB or max_outbound_bytes, and a message the kernel then does not take
 * counts against the limit as usual (PR_EBUSY, close 4008). A socket that
 * fails at the uncork is closed (on_close with 1006). */
int pr_ws_cork(pr_ws_conn *c);
void pr_ws_uncork(pr_ws_conn *c);

/* Starts the close handshake with `code` (1000-1003, 1007-1014, 3000-4999) and
 * an optional reason (cut to 123 bytes). on_close follows later with `code`.
 * Returns 0, PR_EINVAL (bad code) or PR_ECLOSED (already closing). */
int pr_ws_close(pr_ws_conn *c, int code, const char *reason);

void pr_ws_conn_set_user(pr_ws_conn *c, void *user);
void *pr_ws_conn_get_user(const pr_ws_conn *c);
/* 1 while messages can be sent (no close sent or received yet). */
int pr_ws_conn_is_open(const pr_ws_conn *c);
/* Bytes queued for this connection that the kernel has not taken yet. */
size_t pr_ws_conn_outbound(const pr_ws_conn *c);

/* User-space bytes an idle connection holds: sizeof(pr_ws_conn) +
 * sizeof(uv_tcp_t) + its slot in the loop's timer heap (allocator overhead
 * not included). For capacity plans. */
size_t pr_ws_conn_idle_bytes(void);

/* Process-wide counters (all loops). */
typedef struct {
  uint64_t frames_in, frames_out;
  uint64_t bytes_in, bytes_out; /* frame bytes, headers included */
  uint64_t slow_consumers_closed;
  uint64_t protocol_errors; /* connections we failed for bad input (1002, 1007, 1009) */
  uint64_t conns_open;
  uint64_t writes; /* write calls (uv_try_write or uv_write); frames_out / writes: coalescing */
} pr_ws_stats;

void pr_ws_get_stats(pr_ws_stats *out);

#endif
