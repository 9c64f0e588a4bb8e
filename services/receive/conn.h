/* conn.h: one client WebSocket of presence-receive: its place in the local
 * index, the snapshot it gets on connect (and the updates held meanwhile),
 * the rate limit of its frames, and the frames sent to it.
 *
 * Ownership: recv_conn_open creates the conn and hands it to the ws module;
 * the conn is freed after its socket closed and the last async operation
 * that holds it (Redis replies) returned: recv_conn_hold/recv_conn_release
 * count those. A released conn whose socket is closed must not be touched. */
#ifndef RECV_CONN_H
#define RECV_CONN_H

#include "app.h"
#include "buf.h"
#include "json_out.h"
#include "ws.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct recv_user recv_user;
typedef struct recv_dev recv_dev;
typedef struct recv_held recv_held;

/* Small on purpose (DESIGN: under 1 KiB per idle connection, ws included):
 * no fixed arrays; the user and device strings live in the registry. */
typedef struct recv_conn {
  pr_ws_conn *ws; /* NULL once the socket closed */
  recv_app *app;
  recv_dev *dev;                   /* set while attached (dev->user: its user) */
  struct recv_conn *uprev, *unext; /* the user's connections on this instance */
  recv_held *held;                 /* updates held while the snapshot is pending */
  uint32_t tokens_milli;           /* rate limit bucket, in thousandths of a frame */
  uint32_t refill_ms;              /* loop time (truncated) of the last refill */
  uint32_t reg_start_ms;           /* loop time when the registration was sent */
  uint32_t refused;                /* frames refused by the rate limit lately */
  uint8_t refs;                    /* async operations holding the conn */
  uint8_t snapshot_pending : 1, closed : 1, counted : 1;
  uint8_t subscribing : 1; /* a subscribe is in flight (one at a time) */
  uint32_t exp_slot;       /* index + 1 in the token expiry heap (expiry.h); 0: none */
} recv_conn;

/* Takes over an upgraded socket (see pr_ws_conn_start): sends hello, registers
 * the device, sends the snapshot, and closes it with 4001 once `exp` (the
 * token's, seconds since the epoch) has passed. user and device are validated
 * ids. Returns 0 (the tcp is the conn's), or PR_EINVAL (the tcp is still the
 * caller's). */
int recv_conn_open(recv_app *app, uv_tcp_t *tcp, const char *accept_key, const char *leftover,
                   size_t leftover_len, const char *user, const char *device, int64_t exp);

/* Async operations a connection may have in flight; frames that would start
 * more are refused (a client cannot pile up work behind a slow Redis). */
#define RECV_CONN_MAX_INFLIGHT 32

void recv_conn_hold(recv_conn *c);
/* true when RECV_CONN_MAX_INFLIGHT operations are in flight. */
bool recv_conn_is_busy(const recv_conn *c);
/* Drops one hold; frees the conn when its socket is closed and no hold is left. */
void recv_conn_release(recv_conn *c);
/* 1 while frames can be sent. */
bool recv_conn_is_open(const recv_conn *c);

/* Sends b's bytes as a text frame (slow consumers are closed by the ws module). */
void recv_conn_send(recv_conn *c, const pr_buf *b);
/* Sends {"type":"error","code":code,"message":message}. */
void recv_conn_send_error(recv_conn *c, const char *code, const char *message);
/* The connections a loop callback corked (pr_ws_cork) while it pushed
 * frames: each gets what was pushed to it in one write at recv_corks_flush,
 * which the callback must call before it returns. Owned by the caller; the
 * array is kept (and grows to the connections reached in one callback). */
typedef struct {
  pr_ws_conn **v;
  size_t n, cap;
} recv_corks;

/* Pushes one presence update, or holds it while the snapshot is pending.
 * `frame` is its presence frame, already written. With `corks`, the
 * connection is corked (and listed there) before the frame goes out. */
void recv_conn_push(recv_conn *c, const pr_presence_entry *e, const pr_buf *frame,
                    recv_corks *corks);
/* Sends b's bytes as a text frame through the cork list (see recv_conn_push). */
void recv_conn_send_corked(recv_conn *c, const pr_buf *b, recv_corks *corks);
/* Uncorks every listed connection (one write each) and empties the list. */
void recv_corks_flush(recv_corks *k);
void recv_corks_free(recv_corks *k);

/* Closes with `code` (drain: 1012). */
void recv_conn_close(recv_conn *c, int code, const char *reason);

/* A buffer for building one frame at a time (loop thread only), cleared. */
pr_buf *recv_scratch(void);
void recv_scratch_free(void);

#endif
