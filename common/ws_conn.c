/* ws_conn.c: a server-side WebSocket connection on libuv.
 *
 * Lean by design: reads go into one 64 KiB buffer per loop; a connection keeps
 * bytes only for an incomplete frame (part), for a fragmented message while it
 * is being reassembled (frag) and for output the kernel did not take (two
 * write buffers: the one libuv is writing and the one collecting behind it).
 * An idle connection holds none of them.
 *
 * Cork: while a connection is corked and nothing is in flight, frames
 * collect in a cork buffer carved from the loop's cork arena (no malloc per
 * connection), and the uncork writes them in one call; only what the kernel
 * does not take is copied to a write buffer. The arena is rewound when the
 * loop's last corked connection is uncorked, so a cork buffer lives only
 * within the callback that corked its connection.
 *
 * Close: we send a close frame (CLOSE_SENT) and wait for the peer's; once both
 * are exchanged, or after a protocol failure, we DRAIN: shut down our side
 * after the queued output, discard input until the peer's EOF, then close the
 * socket. close_timeout_ms bounds both waits.
 *
 * This file: start, close and the connection's life; reading is in
 * ws_read.c, writing in ws_write.c, the per-loop state in ws_loop.c. */
#include <string.h>

#include "buf.h"
#include "ws_internal.h"

#define DEF_MAX_MESSAGE  65536
#define DEF_MAX_OUTBOUND 262144
#define DEF_CLOSE_MS     2000
#define MAX_LIMIT        (1u << 30)

/* ---- stats --------------------------------------------------------------- */

_Atomic uint64_t ws_st_frames_in, ws_st_frames_out, ws_st_bytes_in, ws_st_bytes_out, ws_st_slow,
    ws_st_proto, ws_st_open, ws_st_writes;

void pr_ws_get_stats(pr_ws_stats *out) {
  out->frames_in = STAT_GET(ws_st_frames_in);
  out->frames_out = STAT_GET(ws_st_frames_out);
  out->bytes_in = STAT_GET(ws_st_bytes_in);
  out->bytes_out = STAT_GET(ws_st_bytes_out);
  out->slow_consumers_closed = STAT_GET(ws_st_slow);
  out->protocol_errors = STAT_GET(ws_st_proto);
  out->conns_open = STAT_GET(ws_st_open);
  out->writes = STAT_GET(ws_st_writes);
}

size_t pr_ws_conn_idle_bytes(void) {
  return sizeof(pr_ws_conn) + sizeof(uv_tcp_t) + sizeof(pr_ws_conn *); /* + its heap slot */
}

/* ---- closing ------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) {
  pr_ws_conn *c = h->data;
  if (c->h->on_close) c->h->on_close(c, c->close_code, c->user);
  pr_free(c->part);
  pr_free(c->frag);
  if (!c->in_arena) pr_free(c->wr_pending);
  ws_lctx_release(c->lc);
  pr_free(c->tcp);
  STAT_SUB(ws_st_open, 1);
  pr_free(c);
}

/* Closes the socket now. Buffers are freed with the conn, after the close
 * callbacks, because a caller up the stack may still be using them. */
void ws_teardown(pr_ws_conn *c, int code) {
  if (c->state == ST_CLOSED) return;
  if (!c->close_code) c->close_code = (uint16_t)code;
  ws_timer_stop(c);
  c->state = ST_CLOSED;
  uv_close((uv_handle_t *)c->tcp, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  pr_ws_conn *c = req->handle->data;
  pr_free(req);
  if (status < 0 && c->state != ST_CLOSED) ws_teardown(c, PR_WS_CLOSE_ABNORMAL);
}

/* In DRAIN, once all our output is in libuv's queue, ask for the FIN after it. */
void ws_maybe_shutdown(pr_ws_conn *c) {
  if (c->state != ST_DRAIN || c->shut || c->wr_pending) return;
  c->shut = 1;
  uv_shutdown_t *req = pr_malloc(sizeof(*req));
  if (uv_shutdown(req, (uv_stream_t *)c->tcp, on_shutdown) < 0) {
    pr_free(req);
    ws_teardown(c, PR_WS_CLOSE_ABNORMAL);
  }
}

void ws_enter_drain(pr_ws_conn *c) {
  c->state = ST_DRAIN;
  ws_timer_start(c, c->close_ms);
  ws_maybe_shutdown(c);
}

/* Sends our close frame (from OPEN). Returns 0 or PR_EIO (then torn down). */
static int send_close(pr_ws_conn *c, int code, const char *reason) {
  uint8_t pl[PR_WS_MAX_CONTROL];
  size_t n = pr_ws_close_payload(pl, code, reason);
  c->close_code = (uint16_t)code;
  if (ws_send_frame(c, PR_WS_OP_CLOSE, pl, n, 1) < 0) {
    ws_teardown(c, code);
    return PR_EIO;
  }
  return 0;
}

static void start_close(pr_ws_conn *c, int code, const char *reason) {
  if (send_close(c, code, reason) < 0) return;
  c->state = ST_CLOSE_SENT;
  ws_timer_start(c, c->close_ms);
}

/* The peer broke the protocol or a limit: close with `code`, then drain. */
void ws_conn_fail(pr_ws_conn *c, int code, const char *reason) {
  STAT_ADD(ws_st_proto, 1);
  if (c->state == ST_OPEN && send_close(c, code, reason) < 0) return;
  ws_enter_drain(c);
}

void ws_slow_consumer(pr_ws_conn *c) {
  STAT_ADD(ws_st_slow, 1);
  start_close(c, PR_WS_CLOSE_SLOW, "slow consumer");
}

/* ---- timer --------------------------------------------------------------- */

static void arm_idle(pr_ws_conn *c) {
  if (!c->idle_ms) return;
  uint64_t now = uv_now(c->tcp->loop), idle = now - c->last_rx;
  if (idle >= c->idle_ms) {
    start_close(c, PR_WS_CLOSE_GOING_AWAY, "idle timeout");
    return;
  }
  ws_timer_start(c, c->idle_ms - idle);
}

/* Frames do not touch the timer (no heap work per frame): when it fires, it
 * re-arms for what is left of the idle period since the last frame. */
void ws_on_timer(pr_ws_conn *c) {
  switch (c->state) {
  case ST_OPEN:
    ws_kick_leftover(c);
    if (c->state == ST_OPEN) arm_idle(c);
    return;
  case ST_CLOSE_SENT:
  case ST_DRAIN: ws_teardown(c, c->close_code); return; /* the peer took too long */
  default: return;
  }
}

/* ---- public API ---------------------------------------------------------- */

static int accept_is_valid(const char *k) {
  for (int i = 0; i < 27; i++) {
    char ch = k[i];
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
          ch == '+' || ch == '/'))
      return 0;
  }
  return k[27] == '=';
}

static uint32_t limit(size_t v, uint32_t def) {
  if (v == 0) return def;
  return v > MAX_LIMIT ? MAX_LIMIT : (uint32_t)v;
}

int pr_ws_conn_start(uv_loop_t *loop, uv_tcp_t *tcp, const char *accept_key,
                     const char *extra_headers, const char *leftover, size_t leftover_len,
                     const pr_ws_opts *opts, const pr_ws_handlers *handlers, void *user,
                     pr_ws_conn **out) {
  char accept[PR_WS_ACCEPT_LEN + 1];
  if (!loop || !tcp || tcp->loop != loop || !accept_key || !handlers || !handlers->on_message ||
      !out)
    return PR_EINVAL;
  if (leftover_len > MAX_LIMIT || (leftover_len && !leftover)) return PR_EINVAL;
  size_t kl = strlen(accept_key);
  if (kl == 24) {
    if (pr_ws_accept_key(accept_key, accept) != 0) return PR_EINVAL;
  } else if (kl == PR_WS_ACCEPT_LEN && accept_is_valid(accept_key)) {
    memcpy(accept, accept_key, sizeof(accept));
  } else {
    return PR_EINVAL;
  }

  pr_ws_conn *c = pr_calloc(1, sizeof(*c));
  c->tcp = tcp;
  c->h = handlers;
  c->user = user;
  c->max_msg = limit(opts ? opts->max_message_bytes : 0, DEF_MAX_MESSAGE);
  c->max_out = limit(opts ? opts->max_outbound_bytes : 0, DEF_MAX_OUTBOUND);
  c->idle_ms = opts ? opts->idle_timeout_ms : 0;
  c->close_ms = opts && opts->close_timeout_ms ? opts->close_timeout_ms : DEF_CLOSE_MS;
  c->state = ST_OPEN;
  c->lc = ws_lctx_acquire(loop);
  c->last_rx = uv_now(loop);
  tcp->data = c;
  STAT_ADD(ws_st_open, 1);
  *out = c;

  uv_tcp_nodelay(tcp, 1); /* frames are small and latency matters; failure is harmless */

  pr_buf resp = PR_BUF_INIT;
  pr_buf_printf(&resp,
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
                accept, extra_headers ? extra_headers : "");
  uv_buf_t b = uv_buf_init(resp.data, (unsigned)resp.len);
  int rc = ws_out_write(c, &b, 1, resp.len, 1);
  pr_buf_free(&resp);
  if (rc < 0) {
    ws_teardown(c, PR_WS_CLOSE_ABNORMAL);
    return 0;
  }

  if (leftover_len) {
    /* Processed from the loop, so no callback runs before this call returns. */
    ws_part_keep(c, (const uint8_t *)leftover, leftover_len, leftover_len);
    c->kick = 1;
    ws_timer_start(c, 0);
  } else {
    arm_idle(c);
  }
  uv_read_stop((uv_stream_t *)tcp);
  if (uv_read_start((uv_stream_t *)tcp, ws_on_alloc, ws_on_read) < 0)
    ws_teardown(c, PR_WS_CLOSE_ABNORMAL);
  return 0;
}

int pr_ws_close(pr_ws_conn *c, int code, const char *reason) {
  if (!pr_ws_close_code_is_valid(code)) return PR_EINVAL;
  if (c->state != ST_OPEN) return PR_ECLOSED;
  start_close(c, code, reason);
  return 0;
}

void pr_ws_conn_set_user(pr_ws_conn *c, void *user) { c->user = user; }
void *pr_ws_conn_get_user(const pr_ws_conn *c) { return c->user; }
int pr_ws_conn_is_open(const pr_ws_conn *c) { return c->state == ST_OPEN; }
