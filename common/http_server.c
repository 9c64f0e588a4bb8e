/* http_server.c: the listener and the life of a connection: accept, read
 * into the server's one buffer, parse with http-parser (copying only what a
 * request keeps), dispatch one request at a time, keep-alive, graceful close,
 * and the single timer that enforces every timeout. */
#include <string.h>
#include <strings.h>
#include "base.h"
#include "http_internal.h"

enum { FEED_MORE, FEED_DISPATCHED, FEED_FAILED };

static void on_timer(uv_timer_t *t);
static void on_idle(uv_idle_t *h);
static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

/* ======================================================================
 * Lists and the timer
 * ====================================================================== */

static void list_remove(conn *c) {
  if (c->list == L_NONE) return;
  pr_http_server *s = c->srv;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->lists[c->list].head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    s->lists[c->list].tail = c->prev;
  c->prev = c->next = NULL;
  c->list = L_NONE;
}

static void timer_schedule(pr_http_server *s) {
  if (s->freeing) return;
  uint64_t due = 0;
  for (int l = L_HEAD; l <= L_LINGER; l++) {
    conn *h = s->lists[l].head;
    if (h && (!due || h->deadline < due)) due = h->deadline;
  }
  if (due == s->timer_due) return;
  s->timer_due = due;
  if (!due) {
    uv_timer_stop(&s->timer);
    return;
  }
  uint64_t now = uv_now(s->loop);
  uv_timer_start(&s->timer, on_timer, due > now ? due - now : 0, 0);
}

/* Appends c to `list`; a timed list gets deadline now + timeout_ms. Appending
 * with one constant timeout per list keeps each list sorted. */
static void list_move(conn *c, int list, uint64_t timeout_ms) {
  pr_http_server *s = c->srv;
  list_remove(c);
  c->list = (uint8_t)list;
  c->prev = s->lists[list].tail;
  c->next = NULL;
  if (c->prev)
    c->prev->next = c;
  else
    s->lists[list].head = c;
  s->lists[list].tail = c;
  c->deadline = timeout_ms ? uv_now(s->loop) + timeout_ms : 0;
  if (timeout_ms && s->lists[list].head == c) timer_schedule(s);
}

static size_t backlog_limit(const pr_http_server *s) {
  return s->opts.max_header_bytes + s->opts.max_body_bytes;
}

static void backlog_append(conn *c, const char *data, size_t len) {
  if ((size_t)c->backlog_len + len > c->backlog_cap) {
    size_t cap = c->backlog_cap ? c->backlog_cap : 1024;
    while (cap < (size_t)c->backlog_len + len)
      cap *= 2;
    c->backlog = pr_realloc(c->backlog, cap);
    c->backlog_cap = (uint32_t)cap;
  }
  memcpy(c->backlog + c->backlog_len, data, len);
  c->backlog_len += (uint32_t)len;
}

static void backlog_drop(conn *c) {
  pr_free(c->backlog);
  c->backlog = NULL;
  c->backlog_len = c->backlog_cap = 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = h->data;
  buf->base = c->srv->rbuf;
  buf->len = HTTP_READ_BUF_SIZE;
}

/* Reads unless closed, at EOF, or holding too many buffered bytes. */
static void conn_update_reading(conn *c) {
  int want = c->state != ST_CLOSED && !c->eof && c->backlog_len < backlog_limit(c->srv);
  if (want && !c->reading) {
    if (uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_read) == 0) c->reading = 1;
  } else if (!want && c->reading) {
    uv_read_stop((uv_stream_t *)c->tcp);
    c->reading = 0;
  }
}

/* ======================================================================
 * Closing
 * ====================================================================== */

static void handle_closed(pr_http_server *s) {
  if (--s->handles > 0 || !s->freeing) return;
  pr_http_done_cb cb = s->done_cb;
  void *arg = s->arg;
  pr_free(s->rbuf);
  pr_free(s);
  if (cb) cb(arg);
}

static void on_handle_close(uv_handle_t *h) { handle_closed(h->data); }

static void on_refused_close(uv_handle_t *h) {
  pr_http_server *s = h->data;
  pr_free(h);
  handle_closed(s);
}

static void on_conn_close(uv_handle_t *h) {
  conn *c = h->data;
  pr_http_server *s = c->srv;
  pr_free(h);
  pr_free(c);
  handle_closed(s);
}

void http_conn_close(conn *c) {
  if (c->state == ST_CLOSED) return;
  list_remove(c);
  c->state = ST_CLOSED;
  if (c->req) {
    if (c->req->dispatched)
      c->req->conn = NULL; /* answered later as a no-op */
    else
      http_req_free(c->req);
    c->req = NULL;
  }
  backlog_drop(c);
  c->reading = 0;
  c->srv->nconns--;
  uv_close((uv_handle_t *)c->tcp, on_conn_close);
}

static void on_shutdown(uv_shutdown_t *sh, int status) {
  conn *c = sh->handle->data;
  pr_free(sh);
  if (!c || c->state == ST_CLOSED) return;
  if (status < 0 || c->eof) http_conn_close(c);
  /* else: wait for the peer's EOF (or the linger deadline) so that closing
   * with unread bytes does not reset the answer away */
}

void http_conn_end(conn *c) {
  if (c->state == ST_CLOSED || c->state == ST_LINGER) return;
  if (c->req && !c->req->dispatched) {
    http_req_free(c->req);
    c->req = NULL;
  }
  c->state = ST_LINGER;
  backlog_drop(c);
  list_move(c, L_LINGER, HTTP_LINGER_MS);
  uv_shutdown_t *sh = pr_malloc(sizeof *sh);
  if (uv_shutdown(sh, (uv_stream_t *)c->tcp, on_shutdown) != 0) {
    pr_free(sh);
    http_conn_close(c);
    return;
  }
  conn_update_reading(c);
}

/* Answers a request the server itself refuses, then closes. */
static void conn_fail(conn *c, int status) {
  pr_http_server *s = c->srv;
  if (status == 408)
    s->stats.timeouts++;
  else
    s->stats.bad_requests++;
  if (c->req) {
    http_req_free(c->req);
    c->req = NULL;
  }
  char body[128];
  int n = pr_http_error_body(status, body, sizeof body);
  if (http_conn_send(c, status, "application/json", NULL, body, n > 0 ? (size_t)n : 0, 0, 0, 0) < 0)
    return;
  http_conn_end(c);
}

/* ======================================================================
 * Writing
 * ====================================================================== */

static void on_write(uv_write_t *w, int status) {
  conn *c = w->handle->data; /* NULL once detached */
  pr_free(w);
  if (!c) return;
  c->writes--;
  if (c->state == ST_CLOSED) return;
  if (status < 0) {
    http_conn_close(c);
    return;
  }
  if (c->wait_write && c->tcp->write_queue_size <= HTTP_WRITE_HIGH) http_conn_next(c);
}

int http_conn_write_block(conn *c, char *block, size_t len) {
  uv_write_t *w = (uv_write_t *)block;
  uv_buf_t b = uv_buf_init(block + HTTP_WOFF, (unsigned)len);
  if (uv_write(w, (uv_stream_t *)c->tcp, &b, 1, on_write) != 0) {
    pr_free(block);
    return PR_EIO;
  }
  c->writes++;
  return 0;
}

int http_conn_write(conn *c, const char *data, size_t len) {
  char *block = pr_malloc(HTTP_WOFF + len);
  memcpy(block + HTTP_WOFF, data, len);
  return http_conn_write_block(c, block, len);
}

/* ======================================================================
 * Parsing: the request keeps copies of what it needs; nothing else is kept
 * ====================================================================== */

enum { TOK_NONE, TOK_URL, TOK_FIELD, TOK_VALUE };

static int on_message_begin(http_parser *p) {
  conn *c = p->data;
  if (c->req) http_req_free(c->req);
  c->req = http_req_new();
  c->req->conn = c;
  /* a new connection keeps the deadline it got when accepted */
  if (c->list != L_HEAD) list_move(c, L_HEAD, c->srv->opts.header_timeout_ms);
  c->state = ST_HEAD;
  return 0;
}

/* One piece of the url, a header name or a header value. Pieces of one token
 * may arrive in several calls; a token ends when another kind begins. */
static int head_piece(conn *c, int tok, const char *at, size_t len) {
  pr_http_req *r = c->req;
  const pr_http_opts *o = &c->srv->opts;
  if (c->state != ST_HEAD) return 0; /* chunked trailers: ignored */
  if (r->token != tok) {
    if (r->token != TOK_NONE) http_req_append(r, "", 1);
    uint32_t off = r->head_len;
    if (tok == TOK_URL) {
      r->url = off;
    } else if (tok == TOK_FIELD) {
      if (r->nhdrs >= o->max_headers) {
        c->err_status = 431;
        return -1;
      }
      if (r->nhdrs == r->hdrs_cap) {
        r->hdrs_cap = r->hdrs_cap ? r->hdrs_cap * 2 : 8;
        r->hdrs = pr_realloc(r->hdrs, r->hdrs_cap * sizeof *r->hdrs);
      }
      r->hdrs[r->nhdrs].name = off;
      r->hdrs[r->nhdrs].value = UINT32_MAX;
      r->nhdrs++;
      r->head_bytes += 4; /* ": " and CRLF */
    } else if (r->nhdrs > 0) {
      r->hdrs[r->nhdrs - 1].value = off;
    }
    r->token = (uint8_t)tok;
  }
  r->head_bytes += len;
  if (r->head_bytes > o->max_header_bytes) {
    c->err_status = 431;
    return -1;
  }
  if (len) http_req_append(r, at, len);
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  return head_piece(p->data, TOK_URL, at, len);
}
static int on_header_field(http_parser *p, const char *at, size_t len) {
  return head_piece(p->data, TOK_FIELD, at, len);
}
static int on_header_value(http_parser *p, const char *at, size_t len) {
  return head_piece(p->data, TOK_VALUE, at, len);
}

static int on_headers_complete(http_parser *p) {
  conn *c = p->data;
  pr_http_req *r = c->req;
  pr_http_server *s = c->srv;
  if (r->token != TOK_NONE) http_req_append(r, "", 1);
  r->token = TOK_NONE;
  if (r->url == UINT32_MAX || p->method == HTTP_CONNECT) {
    c->err_status = 400;
    return -1;
  }
  r->method = (uint8_t)p->method;
  r->keep_alive = http_should_keep_alive(p) != 0;
  r->upgrade = p->upgrade != 0;
  r->http10 = p->http_major == 1 && p->http_minor == 0;

  size_t ulen = strlen(r->head + r->url);
  struct http_parser_url u;
  http_parser_url_init(&u);
  if (http_parser_parse_url(r->head + r->url, ulen, 0, &u) != 0) {
    c->err_status = 400;
    return -1;
  }
  http_req_reserve(r, ulen + 4); /* the copies below cannot move r->head */
  const char *url = r->head + r->url;
  if (u.field_set & (1 << UF_PATH))
    r->path = http_req_append_str(r, url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
  else
    r->path = http_req_append_str(r, "/", 1);
  if (u.field_set & (1 << UF_QUERY))
    r->query = http_req_append_str(r, url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
  else
    r->query = http_req_append_str(r, "", 0);

  int has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length);
  if ((p->flags & F_CONTENTLENGTH) && p->content_length > s->opts.max_body_bytes) {
    c->err_status = 413;
    return -1;
  }
  if ((p->flags & F_CONTENTLENGTH) && p->content_length) {
    r->body_cap = (size_t)p->content_length + 1;
    r->body = pr_malloc(r->body_cap);
  }
  const char *expect = pr_http_req_header(r, "Expect");
  if (expect && has_body && !r->http10 && strcasecmp(expect, "100-continue") == 0) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (http_conn_write(c, cont, sizeof cont - 1) < 0) {
      c->err_status = 400;
      return -1;
    }
  }
  c->state = ST_BODY;
  list_move(c, L_IDLE, s->opts.idle_timeout_ms);
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  conn *c = p->data;
  pr_http_req *r = c->req;
  if (r->body_len + len > c->srv->opts.max_body_bytes) {
    c->err_status = 413;
    return -1;
  }
  if (r->body_len + len + 1 > r->body_cap) {
    size_t cap = r->body_cap ? r->body_cap * 2 : 1024;
    while (cap < r->body_len + len + 1)
      cap *= 2;
    r->body = pr_realloc(r->body, cap);
    r->body_cap = cap;
  }
  memcpy(r->body + r->body_len, at, len);
  r->body_len += len;
  r->body[r->body_len] = '\0';
  return 0;
}

static int on_message_complete(http_parser *p) {
  /* stop here: the rest of the bytes wait until this request is answered */
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Hands c's complete request to the handler. Must be the caller's last use of
 * c: the handler may answer, close or detach it. */
static void conn_dispatch(conn *c) {
  pr_http_server *s = c->srv;
  pr_http_req *req = c->req;
  req->dispatched = 1;
  req->srv = s;
  req->prev = NULL;
  req->next = s->reqs;
  if (s->reqs) s->reqs->prev = req;
  s->reqs = req;
  s->inflight++;
  s->stats.requests++;
  c->state = ST_PENDING;
  list_move(c, L_PENDING, 0);
  conn_update_reading(c);
  s->handler(req, s->arg);
}

/* Parses data (the shared buffer or a taken backlog). The caller must not
 * use c after FEED_DISPATCHED. */
static int conn_feed(conn *c, const char *data, size_t len) {
  size_t n = http_parser_execute(&c->parser, &parser_settings, data, len);
  enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
  if (c->err_status || (e != HPE_OK && e != HPE_PAUSED)) {
    conn_fail(c, c->err_status ? c->err_status : e == HPE_HEADER_OVERFLOW ? 431 : 400);
    return FEED_FAILED;
  }
  if (e == HPE_PAUSED) {
    if (n < len) backlog_append(c, data + n, len - n);
    conn_dispatch(c);
    return FEED_DISPATCHED;
  }
  return FEED_MORE;
}

/* ======================================================================
 * Reading and the keep-alive cycle
 * ====================================================================== */

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  conn *c = st->data;
  if (!c || n == 0) return;
  if (n < 0) {
    if (n != UV_EOF) {
      http_conn_close(c);
      return;
    }
    c->eof = 1;
    conn_update_reading(c);
    if (c->state == ST_PENDING || c->state == ST_READY) return; /* answer, then close */
    if (c->state == ST_LINGER && c->writes) return;             /* on_shutdown closes */
    http_conn_close(c);
    return;
  }
  switch (c->state) {
  case ST_LINGER: return; /* discarded */
  case ST_PENDING:
  case ST_READY:
    backlog_append(c, buf->base, (size_t)n);
    conn_update_reading(c);
    return;
  default: conn_feed(c, buf->base, (size_t)n); return;
  }
}

void http_conn_next(conn *c) {
  pr_http_server *s = c->srv;
  http_parser_init(&c->parser, HTTP_REQUEST); /* keeps parser.data */
  c->err_status = 0;
  if (c->tcp->write_queue_size > HTTP_WRITE_HIGH) {
    /* the client is not reading its answers: let on_write resume us */
    c->state = ST_READY;
    c->wait_write = 1;
    list_move(c, L_PENDING, 0);
  } else if (c->backlog_len) {
    c->wait_write = 0;
    c->state = ST_READY;
    list_move(c, L_READY, 0);
    uv_idle_start(&s->idle, on_idle);
  } else if (c->eof || s->draining) {
    c->wait_write = 0;
    http_conn_end(c);
    return;
  } else {
    c->wait_write = 0;
    c->state = ST_WAIT;
    list_move(c, L_IDLE, s->opts.idle_timeout_ms);
  }
  conn_update_reading(c);
}

/* Runs buffered (pipelined) requests from the loop rather than from inside
 * pr_http_respond, so a handler that answers at once does not recurse. */
static void on_idle(uv_idle_t *h) {
  pr_http_server *s = h->data;
  conn *c;
  while ((c = s->lists[L_READY].head)) {
    char *b = c->backlog;
    size_t n = c->backlog_len;
    c->backlog = NULL;
    c->backlog_len = c->backlog_cap = 0;
    c->state = ST_WAIT;
    list_move(c, L_IDLE, s->opts.idle_timeout_ms);
    conn_update_reading(c);
    int r = conn_feed(c, b, n);
    pr_free(b);
    if (r == FEED_MORE && c->eof) http_conn_close(c); /* a partial request at EOF */
  }
  uv_idle_stop(h);
}

static void expire(conn *c) {
  if (c->state == ST_WAIT && c->list == L_IDLE) { /* idle keep-alive */
    http_conn_close(c);
    return;
  }
  if (c->req) {
    conn_fail(c, 408);
    return;
  }
  c->srv->stats.timeouts++; /* connected and sent nothing */
  http_conn_close(c);
}

static void on_timer(uv_timer_t *t) {
  pr_http_server *s = t->data;
  s->timer_due = 0;
  uint64_t now = uv_now(s->loop);
  conn *c;
  while ((c = s->lists[L_HEAD].head) && c->deadline <= now)
    expire(c);
  while ((c = s->lists[L_IDLE].head) && c->deadline <= now)
    expire(c);
  while ((c = s->lists[L_LINGER].head) && c->deadline <= now)
    http_conn_close(c);
  timer_schedule(s);
}

/* ======================================================================
 * Accepting and the server's life
 * ====================================================================== */

static void on_connection(uv_stream_t *l, int status) {
  pr_http_server *s = l->data;
  if (status < 0) return;
  uv_tcp_t *t = pr_malloc(sizeof *t);
  uv_tcp_init(s->loop, t);
  s->handles++;
  t->data = s;
  if (uv_accept(l, (uv_stream_t *)t) != 0) {
    uv_close((uv_handle_t *)t, on_refused_close);
    return;
  }
  if (s->nconns >= s->opts.max_connections || s->draining) {
    s->stats.connections_refused++;
    uv_close((uv_handle_t *)t, on_refused_close);
    return;
  }
  conn *c = pr_calloc(1, sizeof *c);
  c->tcp = t;
  c->srv = s;
  c->list = L_NONE;
  c->state = ST_WAIT;
  t->data = c;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  s->nconns++;
  s->stats.connections_total++;
  uv_tcp_nodelay(t, 1);
  list_move(c, L_HEAD, s->opts.header_timeout_ms);
  conn_update_reading(c);
}

int http_conn_detach(conn *c, uv_tcp_t **tcp, char **leftover, size_t *leftover_len) {
  pr_http_server *s = c->srv;
  if (c->state != ST_PENDING) return PR_ECLOSED;
  if (c->reading) uv_read_stop((uv_stream_t *)c->tcp);
  list_remove(c);
  c->tcp->data = NULL;
  *tcp = c->tcp;
  if (c->backlog_len) {
    *leftover = c->backlog;
    *leftover_len = c->backlog_len;
  } else {
    pr_free(c->backlog);
  }
  s->nconns--;
  s->handles--; /* no longer ours to close */
  pr_free(c);
  return 0;
}

static unsigned or_default(unsigned v, unsigned d) { return v ? v : d; }

int pr_http_server_new(uv_loop_t *loop, const pr_http_opts *opts, pr_http_handler handler,
                       void *arg, pr_http_server **out) {
  if (out) *out = NULL;
  if (!loop || !handler || !out) return PR_EINVAL;
  pr_http_server *s = pr_calloc(1, sizeof *s);
  pr_http_opts o = {0};
  if (opts) o = *opts;
  s->opts.max_header_bytes =
      o.max_header_bytes ? o.max_header_bytes : PR_HTTP_DEFAULT_MAX_HEADER_BYTES;
  s->opts.max_headers = or_default(o.max_headers, PR_HTTP_DEFAULT_MAX_HEADERS);
  s->opts.max_body_bytes = o.max_body_bytes ? o.max_body_bytes : PR_HTTP_DEFAULT_MAX_BODY_BYTES;
  s->opts.header_timeout_ms = or_default(o.header_timeout_ms, PR_HTTP_DEFAULT_HEADER_TIMEOUT_MS);
  s->opts.idle_timeout_ms = or_default(o.idle_timeout_ms, PR_HTTP_DEFAULT_IDLE_TIMEOUT_MS);
  s->opts.max_connections = or_default(o.max_connections, PR_HTTP_DEFAULT_MAX_CONNECTIONS);
  s->opts.listen_backlog = o.listen_backlog > 0 ? o.listen_backlog : 511;
  s->loop = loop;
  s->handler = handler;
  s->arg = arg;
  s->rbuf = pr_malloc(HTTP_READ_BUF_SIZE);
  uv_tcp_init(loop, &s->listener);
  uv_timer_init(loop, &s->timer);
  uv_idle_init(loop, &s->idle);
  s->listener.data = s->timer.data = s->idle.data = s;
  s->handles = 3;
  *out = s;
  return 0;
}

int pr_http_server_listen(pr_http_server *s, const char *hostport) {
  char host[64];
  int port;
  struct sockaddr_storage ss;
  if (pr_http_parse_hostport(hostport, host, sizeof host, &port) != 0) return PR_EINVAL;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
    return PR_EINVAL;
  if (s->listening || s->listener_closed) return PR_EINVAL;
  int r = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)&s->listener, s->opts.listen_backlog, on_connection);
  if (r != 0) {
    s->last_err = r;
    return PR_EIO;
  }
  struct sockaddr_storage bound;
  int len = sizeof bound;
  if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len) == 0)
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
  s->listening = 1;
  return 0;
}

int pr_http_server_port(const pr_http_server *s) { return s->listening ? s->port : 0; }

const char *pr_http_server_error(const pr_http_server *s) {
  return s->last_err ? uv_strerror(s->last_err) : "no error";
}

static void close_listener(pr_http_server *s) {
  if (s->listener_closed) return;
  s->listener_closed = 1;
  s->listening = 0;
  uv_close((uv_handle_t *)&s->listener, on_handle_close);
}

void pr_http_server_stop_accepting(pr_http_server *s) {
  if (s->draining) return;
  s->draining = 1;
  close_listener(s);
  static const int lists[] = {L_HEAD, L_IDLE};
  for (size_t i = 0; i < PR_ARRAY_LEN(lists); i++) {
    conn *c = s->lists[lists[i]].head, *next;
    for (; c; c = next) {
      next = c->next;
      if (c->state == ST_WAIT) http_conn_close(c);
    }
  }
}

size_t pr_http_server_inflight(const pr_http_server *s) { return s->inflight; }

void pr_http_server_stats(const pr_http_server *s, pr_http_stats *out) {
  *out = s->stats;
  out->connections_open = s->nconns;
}

void pr_http_server_free(pr_http_server *s, pr_http_done_cb done_cb) {
  if (!s) return;
  s->freeing = 1;
  s->done_cb = done_cb;
  close_listener(s);
  uv_close((uv_handle_t *)&s->timer, on_handle_close);
  uv_close((uv_handle_t *)&s->idle, on_handle_close);
  for (int l = 0; l < L_COUNT; l++)
    while (s->lists[l].head)
      http_conn_close(s->lists[l].head);
  for (pr_http_req *r = s->reqs, *next; r; r = next) {
    next = r->next;
    r->srv = NULL;
    r->prev = r->next = NULL;
  }
  s->reqs = NULL;
  s->inflight = 0;
}

const char *http_date(pr_http_server *s) {
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t now = time(NULL);
  if (now != s->date_sec) {
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(s->date, sizeof s->date, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
             tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    s->date_sec = now;
  }
  return s->date;
}
