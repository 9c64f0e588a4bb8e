/* client.c: the transport of pr_client: connect (optionally from a bound
 * source address), the HTTP upgrade, masked frames out, frames in, the close
 * handshake and reconnect with jittered exponential backoff. */
#define _GNU_SOURCE /* memmem */
#include "base.h"
#include "client_internal.h"
#include "http.h"
#include "ids.h"
#include "ws.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_HANDSHAKE 8192
#define MAX_MESSAGE   (16u << 20)

/* ---- small helpers ----------------------------------------------------- */

/* Mask keys and handshake keys only need to be unpredictable to proxies, not
 * secret: a per-process xorshift seeded from the clock is enough. */
static uint64_t rnd_state;
static uint64_t rnd(void) {
  if (!rnd_state) rnd_state = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 7;
  rnd_state ^= rnd_state << 17;
  return rnd_state;
}

static void base64_16(const uint8_t in[16], char out[25]) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < 15; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = tab[v >> 18 & 63];
    out[o++] = tab[v >> 12 & 63];
    out[o++] = tab[v >> 6 & 63];
    out[o++] = tab[v & 63];
  }
  uint32_t v = (uint32_t)in[15] << 16;
  out[o++] = tab[v >> 18 & 63];
  out[o++] = tab[v >> 12 & 63];
  out[o++] = '=';
  out[o++] = '=';
  out[o] = '\0';
}

static int parse_addr(const char *hostport, int port_required, client_addr *a) {
  char host[256];
  int port = 0;
  if (port_required) {
    if (pr_http_parse_hostport(hostport, host, sizeof(host), &port) != 0) return PR_EINVAL;
  } else {
    if (strlen(hostport) >= sizeof(host)) return PR_EINVAL;
    strcpy(host, hostport);
    if (host[0] == '[') { /* "[::1]" */
      size_t n = strlen(host);
      if (n < 3 || host[n - 1] != ']') return PR_EINVAL;
      memmove(host, host + 1, n - 2);
      host[n - 2] = '\0';
    }
  }
  memset(a, 0, sizeof(*a));
  if (uv_ip4_addr(host, port, &a->in4) == 0) return 0;
  if (uv_ip6_addr(host, port, &a->in6) == 0) return 0;
  return PR_EINVAL;
}

static socklen_t addr_len(const client_addr *a) {
  return a->sa.sa_family == AF_INET6 ? sizeof(a->in6) : sizeof(a->in4);
}

void client_report_error(pr_client *c, int err, const char *what) {
  if (c->h->on_error && !c->freeing) c->h->on_error(c, err, what, c->arg);
}

/* ---- writing ------------------------------------------------------------- */

typedef struct {
  uv_write_t req;
  char data[];
} wreq;

static void on_write(uv_write_t *req, int status) {
  (void)status; /* a failed write also fails the read side, which ends the connection */
  pr_free(req);
}

/* Writes all of data: what the kernel does not take now is copied and queued. */
static int write_raw(pr_client *c, const char *data, size_t len) {
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n >= 0 && (size_t)n == len) return 0;
  if (n < 0 && n != UV_EAGAIN) return PR_EIO;
  if (n < 0) n = 0;
  wreq *w = pr_malloc(sizeof(*w) + len - (size_t)n);
  memcpy(w->data, data + n, len - (size_t)n);
  uv_buf_t rest = uv_buf_init(w->data, (unsigned)(len - (size_t)n));
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &rest, 1, on_write) != 0) {
    pr_free(w);
    return PR_EIO;
  }
  return 0;
}

static int send_frame(pr_client *c, int opcode, const void *payload, size_t len) {
  uint8_t mask[4];
  uint64_t r = rnd();
  memcpy(mask, &r, 4);
  uint8_t stackbuf[512];
  size_t total = PR_WS_MAX_HEADER + len;
  uint8_t *buf = total <= sizeof(stackbuf) ? stackbuf : pr_malloc(total);
  size_t hl = pr_ws_frame_header(buf, opcode, 1, len, mask);
  memcpy(buf + hl, payload, len);
  pr_ws_mask(buf + hl, len, mask, 0);
  int rc = write_raw(c, (const char *)buf, hl + len);
  if (buf != stackbuf) pr_free(buf);
  return rc;
}

int pr_client_send_text(pr_client *c, const char *data, size_t len) {
  if (!c || (!data && len)) return PR_EINVAL;
  if (c->state != ST_OPEN) return PR_ECLOSED;
  return send_frame(c, PR_WS_OP_TEXT, data, len);
}

/* ---- connection lifecycle ------------------------------------------------ */

static void start_connect(pr_client *c);

static void maybe_release(pr_client *c) {
  if (c->freeing && c->pending_closes == 0) {
    pr_buf_free(&c->in);
    pr_buf_free(&c->msg);
    pr_free(c->host);
    pr_free(c->target);
    pr_free(c);
  }
}

static void on_handle_closed(uv_handle_t *h) {
  pr_client *c = h->data;
  c->pending_closes--;
  maybe_release(c);
}

static void on_retry(uv_timer_t *t) { start_connect(t->data); }

static void on_tcp_closed(uv_handle_t *h) {
  pr_client *c = h->data;
  c->pending_closes--;
  c->tcp_live = 0;
  pr_buf_free(&c->in);
  pr_buf_free(&c->msg);
  if (c->freeing) {
    maybe_release(c);
    return;
  }
  c->state = ST_IDLE;
  if (c->h->on_close) c->h->on_close(c, c->close_code, c->arg);
  if (c->freeing) {
    maybe_release(c);
    return;
  }
  if (c->reconnect && !c->user_closed) {
    uint32_t d = c->backoff_ms / 2 + (uint32_t)(rnd() % (c->backoff_ms / 2 + 1));
    c->backoff_ms = c->backoff_ms * 2 > c->backoff_max_ms ? c->backoff_max_ms : c->backoff_ms * 2;
    uv_timer_start(&c->timer, on_retry, d, 0);
  }
}

/* Ends the current connection with `code` (reported by on_close). */
static void conn_end(pr_client *c, int code) {
  if (!c->tcp_live || c->state == ST_DOWN) return;
  c->state = ST_DOWN;
  c->hello = 0;
  c->close_code = code;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
  c->pending_closes++;
}

static void conn_fail(pr_client *c, int err, const char *what, int code) {
  client_report_error(c, err, what);
  conn_end(c, code);
}

void client_mark_hello(pr_client *c) {
  c->hello = 1;
  c->backoff_ms = 100;
}

static void on_open_timeout(uv_timer_t *t) {
  conn_fail(t->data, PR_ETIMEDOUT, "connect/upgrade timeout", PR_WS_CLOSE_ABNORMAL);
}

static void on_close_timeout(uv_timer_t *t) {
  pr_client *c = t->data;
  conn_end(c, c->close_code); /* the server did not answer our close: drop it */
}

/* ---- reading ------------------------------------------------------------- */

static void handle_control(pr_client *c, int op, const uint8_t *p, size_t n) {
  if (op == PR_WS_OP_PING) {
    send_frame(c, PR_WS_OP_PONG, p, n);
  } else if (op == PR_WS_OP_CLOSE) {
    int code = PR_WS_CLOSE_NO_STATUS;
    const char *reason;
    size_t rlen;
    if (pr_ws_close_parse(p, n, &code, &reason, &rlen) != 0) code = PR_WS_CLOSE_PROTOCOL;
    if (c->state == ST_OPEN) { /* echo the close, as RFC 6455 5.5.1 asks */
      uint8_t pl[PR_WS_MAX_CONTROL];
      size_t pn = pr_ws_close_payload(pl, code == PR_WS_CLOSE_NO_STATUS ? 1000 : code, NULL);
      send_frame(c, PR_WS_OP_CLOSE, pl, pn);
    }
    conn_end(c, code);
  }
}

static void handle_data(pr_client *c, const pr_ws_frame *f, const uint8_t *p, size_t n) {
  if (f->opcode != PR_WS_OP_CONT) {
    if (c->msg.len || c->msg_op) {
      conn_fail(c, PR_EPROTO, "new message inside a fragmented one", PR_WS_CLOSE_PROTOCOL);
      return;
    }
    if (f->fin) {
      if (f->opcode == PR_WS_OP_TEXT) client_dispatch_text(c, (const char *)p, n);
      return;
    }
    c->msg_op = (uint8_t)f->opcode;
  } else if (!c->msg_op) {
    conn_fail(c, PR_EPROTO, "continuation without a message", PR_WS_CLOSE_PROTOCOL);
    return;
  }
  if (c->msg.len + n > MAX_MESSAGE) {
    conn_fail(c, PR_ETOOBIG, "message too big", PR_WS_CLOSE_TOO_BIG);
    return;
  }
  pr_buf_append(&c->msg, p, n);
  if (f->fin) {
    if (c->msg_op == PR_WS_OP_TEXT) client_dispatch_text(c, c->msg.data, c->msg.len);
    c->msg_op = 0;
    pr_buf_clear(&c->msg);
    if (c->msg.cap > 65536) pr_buf_free(&c->msg);
  }
}

/* Processes the complete frames in p[0..n); returns the bytes consumed. */
static size_t process_frames(pr_client *c, const uint8_t *p, size_t n) {
  size_t off = 0;
  while (off < n && (c->state == ST_OPEN || c->state == ST_CLOSING) && !c->freeing) {
    pr_ws_frame f;
    int rc = pr_ws_frame_parse(p + off, n - off, PR_WS_FORBID_MASK, &f);
    if (rc == PR_ETRUNC) break;
    if (rc != 0) {
      conn_fail(c, PR_EPROTO, "bad frame from server", PR_WS_CLOSE_PROTOCOL);
      break;
    }
    if (f.payload_len > MAX_MESSAGE) {
      conn_fail(c, PR_ETOOBIG, "frame too big", PR_WS_CLOSE_TOO_BIG);
      break;
    }
    if (n - off < f.header_len + f.payload_len) break;
    const uint8_t *pl = p + off + f.header_len;
    size_t pn = (size_t)f.payload_len;
    off += f.header_len + pn;
    if (f.opcode >= PR_WS_OP_CLOSE)
      handle_control(c, f.opcode, pl, pn);
    else
      handle_data(c, &f, pl, pn);
  }
  return off;
}

/* The 101 answer in c->in: checks it; returns the head length, 0 if more
 * bytes are needed, or < 0 after failing the connection. */
static long check_handshake(pr_client *c) {
  const char *s = c->in.data;
  const char *end = memmem(s, c->in.len, "\r\n\r\n", 4);
  if (!end) {
    if (c->in.len > MAX_HANDSHAKE) conn_fail(c, PR_ETOOBIG, "upgrade answer too big", 1006);
    return c->in.len > MAX_HANDSHAKE ? -1 : 0;
  }
  size_t head = (size_t)(end - s) + 4;
  int status = 0;
  if (sscanf(s, "HTTP/1.1 %d", &status) != 1) status = 0;
  if (status != 101) {
    char what[96];
    snprintf(what, sizeof(what), "upgrade refused: HTTP %d", status);
    conn_fail(c, status == 401 ? PR_EAUTH : PR_EPROTO, what, status > 0 ? status : 1006);
    return -1;
  }
  char expect[PR_WS_ACCEPT_LEN + 1];
  pr_ws_accept_key(c->key, expect);
  int ok = 0;
  for (const char *l = strstr(s, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n")) {
    const char *name = l + 2;
    if (strncasecmp(name, "Sec-WebSocket-Accept:", 21) != 0) continue;
    const char *v = name + 21;
    while (*v == ' ')
      v++;
    ok = strncmp(v, expect, PR_WS_ACCEPT_LEN) == 0;
    break;
  }
  if (!ok) {
    conn_fail(c, PR_EPROTO, "bad Sec-WebSocket-Accept", 1006);
    return -1;
  }
  return (long)head;
}

static _Thread_local char read_buf[65536]; /* shared by every client of the thread */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)h;
  (void)hint;
  *b = uv_buf_init(read_buf, sizeof(read_buf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  pr_client *c = s->data;
  if (nread == 0) return;
  if (nread < 0) {
    if (c->state == ST_HANDSHAKE) client_report_error(c, PR_ECLOSED, "closed during upgrade");
    conn_end(c, c->state == ST_CLOSING ? c->close_code : PR_WS_CLOSE_ABNORMAL);
    return;
  }
  if (c->state == ST_HANDSHAKE) {
    pr_buf_append(&c->in, b->base, (size_t)nread);
    long head = check_handshake(c);
    if (head <= 0) return;
    uv_timer_stop(&c->timer);
    c->state = ST_OPEN;
    pr_buf_consume(&c->in, (size_t)head);
    size_t used = process_frames(c, (const uint8_t *)c->in.data, c->in.len);
    if (c->tcp_live && !c->freeing) pr_buf_consume(&c->in, used);
    return;
  }
  if (c->state != ST_OPEN && c->state != ST_CLOSING) return;
  if (c->in.len == 0) { /* common case: parse straight from the shared buffer */
    size_t used = process_frames(c, (const uint8_t *)b->base, (size_t)nread);
    if (used < (size_t)nread && c->state != ST_DOWN && !c->freeing)
      pr_buf_append(&c->in, b->base + used, (size_t)nread - used);
    return;
  }
  pr_buf_append(&c->in, b->base, (size_t)nread);
  size_t used = process_frames(c, (const uint8_t *)c->in.data, c->in.len);
  if (c->state == ST_DOWN || c->freeing) return;
  pr_buf_consume(&c->in, used);
  if (c->in.len == 0) pr_buf_free(&c->in); /* idle connections hold no buffer */
}

static void on_connect(uv_connect_t *req, int status) {
  pr_client *c = req->data;
  if (status == UV_ECANCELED || c->state != ST_CONNECTING) return;
  if (status < 0) {
    conn_fail(c, PR_EIO, uv_strerror(status), PR_WS_CLOSE_ABNORMAL);
    return;
  }
  uint8_t raw[16];
  uint64_t a = rnd(), b = rnd();
  memcpy(raw, &a, 8);
  memcpy(raw + 8, &b, 8);
  base64_16(raw, c->key);
  pr_buf req_buf = PR_BUF_INIT;
  pr_buf_printf(&req_buf,
                "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                c->target, c->host, c->key);
  int rc = write_raw(c, req_buf.data, req_buf.len);
  pr_buf_free(&req_buf);
  if (rc != 0 || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    conn_fail(c, PR_EIO, "write/read failed", PR_WS_CLOSE_ABNORMAL);
    return;
  }
  c->state = ST_HANDSHAKE;
}

/* A socket bound to the source address without a port (IP_BIND_ADDRESS_NO_PORT
 * lets the kernel pick the port at connect time, per destination, so many
 * source addresses multiply the usable ports). */
static int open_bound(pr_client *c) {
  int fd = socket(c->bind.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return PR_EIO;
  int one = 1;
  (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
  if (bind(fd, &c->bind.sa, addr_len(&c->bind)) != 0 || uv_tcp_open(&c->tcp, fd) != 0) {
    close(fd);
    return PR_EIO;
  }
  return 0;
}

static void start_connect(pr_client *c) {
  if (c->freeing || c->tcp_live) return;
  c->attempts++;
  c->hello = 0;
  c->msg_op = 0;
  uv_tcp_init(c->loop, &c->tcp);
  c->tcp.data = c;
  c->tcp_live = 1;
  c->state = ST_CONNECTING;
  c->close_code = PR_WS_CLOSE_ABNORMAL;
  uv_timer_start(&c->timer, on_open_timeout, c->open_timeout_ms, 0);
  if (c->has_bind && open_bound(c) != 0) {
    conn_fail(c, PR_EIO, "bind to the source address failed", PR_WS_CLOSE_ABNORMAL);
    return;
  }
  c->connect_req.data = c;
  int rc = uv_tcp_connect(&c->connect_req, &c->tcp, &c->addr.sa, on_connect);
  if (rc != 0) conn_fail(c, PR_EIO, uv_strerror(rc), PR_WS_CLOSE_ABNORMAL);
}

/* ---- public API -------------------------------------------------------------- */

/* Appends s percent-encoded for a query value (ids and JWTs need no escape,
 * but a caller's device id might). */
static void put_query_value(pr_buf *b, const char *s) {
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
        strchr("-_.~", ch))
      pr_buf_putc(b, (char)ch);
    else
      pr_buf_printf(b, "%%%02X", ch);
  }
}

int pr_client_new(uv_loop_t *loop, const pr_client_opts *opts, const pr_client_handlers *handlers,
                  void *arg, pr_client **out) {
  if (!loop || !opts || !handlers || !opts->url || !opts->token || !*opts->token) return PR_EINVAL;
  pr_client *c = pr_calloc(1, sizeof(*c));
  if (parse_addr(opts->url, 1, &c->addr) != 0) goto fail;
  if (opts->bind_addr && *opts->bind_addr) {
    if (parse_addr(opts->bind_addr, 0, &c->bind) != 0) goto fail;
    c->has_bind = 1;
  }
  c->loop = loop;
  c->h = handlers;
  c->arg = arg;
  c->reconnect = opts->reconnect ? 1 : 0;
  c->backoff_ms = 100;
  c->backoff_max_ms = opts->backoff_max_ms ? opts->backoff_max_ms : 5000;
  if (c->backoff_max_ms < 100) c->backoff_max_ms = 100;
  c->open_timeout_ms = opts->open_timeout_ms ? opts->open_timeout_ms : 10000;
  c->host = pr_strdup(opts->url);
  pr_buf t = PR_BUF_INIT;
  pr_buf_puts(&t, opts->path && *opts->path ? opts->path : "/v1/ws");
  pr_buf_puts(&t, strchr(t.data, '?') ? "&token=" : "?token=");
  put_query_value(&t, opts->token);
  if (opts->device && *opts->device) {
    pr_buf_puts(&t, "&device=");
    put_query_value(&t, opts->device);
  }
  c->target = pr_buf_take(&t, NULL);
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  *out = c;
  start_connect(c);
  return 0;
fail:
  pr_free(c);
  return PR_EINVAL;
}

int pr_client_set_status(pr_client *c, const char *status) {
  static const char *const ok[] = {"online", "idle", "dnd", "invisible", "none"};
  for (size_t i = 0; status && i < PR_ARRAY_LEN(ok); i++) {
    if (strcmp(ok[i], status) != 0) continue;
    char m[64];
    int n = snprintf(m, sizeof(m), "{\"type\":\"status\",\"status\":\"%s\"}", ok[i]);
    return pr_client_send_text(c, m, (size_t)n);
  }
  return PR_EINVAL;
}

int pr_client_subscribe(pr_client *c, const char *group) {
  if (!group || !pr_id_is_valid(group, strlen(group))) return PR_EINVAL;
  char m[128];
  int n = snprintf(m, sizeof(m), "{\"type\":\"subscribe\",\"group\":\"%s\"}", group);
  return pr_client_send_text(c, m, (size_t)n);
}

int pr_client_ping(pr_client *c) {
  static const char m[] = "{\"type\":\"ping\"}";
  return pr_client_send_text(c, m, sizeof(m) - 1);
}

int pr_client_close(pr_client *c) {
  c->user_closed = 1;
  if (c->state == ST_OPEN) {
    uint8_t pl[PR_WS_MAX_CONTROL];
    size_t pn = pr_ws_close_payload(pl, PR_WS_CLOSE_NORMAL, NULL);
    c->close_code = PR_WS_CLOSE_NORMAL;
    if (send_frame(c, PR_WS_OP_CLOSE, pl, pn) != 0) {
      conn_end(c, PR_WS_CLOSE_ABNORMAL);
      return 0;
    }
    c->state = ST_CLOSING;
    uv_timer_start(&c->timer, on_close_timeout, 2000, 0); /* the server has 2 s to answer */
    return 0;
  }
  if (c->tcp_live && c->state != ST_DOWN) {
    conn_end(c, PR_WS_CLOSE_ABNORMAL);
    return 0;
  }
  uv_timer_stop(&c->timer);
  return PR_ECLOSED;
}

void pr_client_free(pr_client *c) {
  if (!c || c->freeing) return;
  c->freeing = 1;
  if (c->tcp_live && c->state != ST_DOWN) {
    c->state = ST_DOWN;
    uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
    c->pending_closes++;
  }
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  c->pending_closes++;
}

int pr_client_is_open(const pr_client *c) { return c->state == ST_OPEN && c->hello; }
void *pr_client_arg(const pr_client *c) { return c->arg; }
unsigned pr_client_attempts(const pr_client *c) { return c->attempts; }
