/* http_server.c: the listener and the life of a connection: accept, read
 * into the server's one buffer, parse with http-parser (copying only what a
 * request keeps), dispatch pipelined requests without waiting for earlier
 * answers (up to HTTP_PIPELINE_MAX per connection, answers kept in request
 * order), write the answers of a loop turn together, keep-alive, graceful
 * close, and the single timer that enforces every timeout. */
#include <string.h>
#include <strings.h>
#include "base.h"
#include "http_internal.h"

enum { PARSE_OK, PARSE_GONE }; /* GONE: c was closed or detached meanwhile */

static void on_timer(uv_timer_t *t);
static void on_idle(uv_idle_t *h);
static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);
static void on_prepare(uv_prepare_t *h);
static void on_check(uv_check_t *h);
static void conn_settle(conn *c);

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

/* ======================================================================
 * The busy part: queue of requests in flight, unparsed input, output
 * ====================================================================== */

static http_busy *busy_get(conn *c) {
  if (!c->busy) {
    c->busy = pr_calloc(1, sizeof *c->busy);
    c->busy->conn = c;
  }
  return c->busy;
}

/* Gives b's output buffer back: to the server's few spares if it has the
 * usual size (answers are written at the end of each loop turn, so a buffer
 * is busy only for a turn), else to the allocator. */
static void out_release(pr_http_server *s, http_busy *b) {
  if (!b->out) return;
  if (b->out_cap == HTTP_OUT_BLOCK && s->out_pooled < HTTP_OUT_POOL)
    s->out_pool[s->out_pooled++] = b->out;
  else
    pr_free(b->out);
  b->out = NULL;
  b->out_len = b->out_cap = 0;
}

/* Empties b: answered (and server-made) entries are freed, unanswered ones
 * become orphans their handler frees by answering. */
static void busy_clear(pr_http_server *s, http_busy *b) {
  for (pr_http_req *r = b->head, *next; r; r = next) {
    next = r->qnext;
    r->qnext = NULL;
    if (r->answered)
      http_req_free(r);
    else
      r->conn = NULL;
  }
  b->head = b->tail = NULL;
  b->count = 0;
  pr_free(b->in);
  b->in = NULL;
  b->in_off = b->in_len = b->in_cap = 0;
  out_release(s, b);
}

/* Drops c's busy part; one waiting in the flush list is freed by the flusher. */
static void busy_drop(conn *c) {
  http_busy *b = c->busy;
  if (!b) return;
  busy_clear(c->srv, b);
  c->busy = NULL;
  if (b->in_flush)
    b->conn = NULL;
  else
    pr_free(b);
}

/* Frees c's busy part once it holds nothing (an idle connection keeps none). */
static void busy_release(conn *c) {
  http_busy *b = c->busy;
  if (b && !b->count && !b->out_len && b->in_off == b->in_len && !b->in_flush) busy_drop(c);
}

static int has_unparsed(const conn *c) { return c->busy && c->busy->in_off < c->busy->in_len; }

static size_t unparsed_limit(const pr_http_server *s) {
  return s->opts.max_header_bytes + s->opts.max_body_bytes;
}

/* Keeps bytes that may not be parsed yet; the unparsed rest stays in place
 * (in_off moves) and is compacted only when the buffer must grow. */
static void in_append(conn *c, const char *data, size_t len) {
  http_busy *b = busy_get(c);
  if (b->in_off == b->in_len) b->in_off = b->in_len = 0;
  if ((size_t)b->in_len + len > b->in_cap && b->in_off) {
    memmove(b->in, b->in + b->in_off, b->in_len - b->in_off);
    b->in_len -= b->in_off;
    b->in_off = 0;
  }
  if ((size_t)b->in_len + len > b->in_cap) {
    size_t cap = b->in_cap ? b->in_cap : 1024;
    while (cap < (size_t)b->in_len + len)
      cap *= 2;
    b->in = pr_realloc(b->in, cap);
    b->in_cap = (uint32_t)cap;
  }
  memcpy(b->in + b->in_len, data, len);
  b->in_len += (uint32_t)len;
}

static void in_discard(conn *c) {
  if (c->busy) c->busy->in_off = c->busy->in_len = 0;
}

/* Room for `len` more output bytes; returns where they go. */
static char *out_reserve(pr_http_server *s, http_busy *b, size_t len) {
  size_t need = HTTP_WOFF + (size_t)b->out_len + len;
  if (!b->out) {
    b->out = s->out_pooled ? s->out_pool[--s->out_pooled] : pr_malloc(HTTP_OUT_BLOCK);
    b->out_cap = HTTP_OUT_BLOCK;
  }
  if (need > b->out_cap) {
    size_t cap = b->out_cap;
    while (cap < need)
      cap *= 2;
    b->out = pr_realloc(b->out, cap);
    b->out_cap = (uint32_t)cap;
  }
  return b->out + HTTP_WOFF + b->out_len;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = h->data;
  buf->base = c->srv->rbuf;
  buf->len = HTTP_READ_BUF_SIZE;
}

/* Reads unless closed, at EOF, or holding too many unparsed bytes. */
static void conn_update_reading(conn *c) {
  size_t held = has_unparsed(c) ? c->busy->in_len - c->busy->in_off : 0;
  int want = c->state != ST_CLOSED && !c->eof && held < unparsed_limit(c->srv);
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
  while (s->out_pooled)
    pr_free(s->out_pool[--s->out_pooled]);
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
  if (c->req) { /* being read: never dispatched */
    http_req_free(c->req);
    c->req = NULL;
  }
  busy_drop(c); /* dispatched requests become orphans */
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

/* Graceful end once every answer is handed to libuv: shutdown, linger, close. */
static void conn_end(conn *c) {
  if (c->state == ST_CLOSED || c->state == ST_LINGER) return;
  if (c->req) {
    http_req_free(c->req);
    c->req = NULL;
  }
  c->state = ST_LINGER;
  in_discard(c);
  busy_release(c);
  list_move(c, L_LINGER, HTTP_LINGER_MS);
  uv_shutdown_t *sh = pr_malloc(sizeof *sh);
  if (uv_shutdown(sh, (uv_stream_t *)c->tcp, on_shutdown) != 0) {
    pr_free(sh);
    http_conn_close(c);
    return;
  }
  conn_update_reading(c);
}

/* Refuses the request being read: its error answer follows the answers
 * still due, then the connection ends. Reads are discarded meanwhile. */
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
  char body[128], out[512];
  int n = pr_http_error_body(status, body, sizeof body);
  size_t blen = n > 0 ? (size_t)n : 0;
  size_t len = http_format_head(s, out, status, "application/json", NULL, 0, blen, 0, 0);
  memcpy(out + len, body, blen);
  c->closing = 1;
  c->state = ST_WAIT;
  in_discard(c);
  list_move(c, L_PENDING, 0);
  http_conn_queue_raw(c, out, len + blen);
}

/* ======================================================================
 * Writing: answers in request order, one write per connection and turn
 * ====================================================================== */

static void flush_add(conn *c) {
  pr_http_server *s = c->srv;
  http_busy *b = c->busy;
  if (b->in_flush) return;
  b->in_flush = 1;
  b->flush_next = NULL;
  if (s->flush_tail) {
    s->flush_tail->flush_next = b;
  } else {
    s->flush_head = b;
    if (!s->freeing) {
      uv_prepare_start(&s->prepare, on_prepare);
      uv_check_start(&s->check, on_check);
    }
  }
  s->flush_tail = b;
}

static void on_write(uv_write_t *w, int status) {
  conn *c = w->handle->data; /* a conn is detached only with no write in flight */
  pr_free(w);
  if (!c) return;
  c->writes--;
  if (c->state == ST_CLOSED || c->state == ST_LINGER) return;
  if (status < 0) {
    http_conn_close(c);
    return;
  }
  conn_settle(c); /* may resume requests held back by a full write queue */
}

/* Writes what the kernel takes at once; the rest goes to uv_write in the
 * same block (its uv_write_t in front), so nothing is copied. */
static void conn_flush(conn *c) {
  http_busy *b = c->busy;
  if (b->out_len) {
    uv_buf_t buf = uv_buf_init(b->out + HTTP_WOFF, b->out_len);
    int n = c->writes ? UV_EAGAIN : uv_try_write((uv_stream_t *)c->tcp, &buf, 1);
    if (n < 0 && n != UV_EAGAIN) {
      http_conn_close(c);
      return;
    }
    if (n < 0) n = 0;
    if ((uint32_t)n < b->out_len) {
      char *block = b->out;
      uv_buf_t rest = uv_buf_init(block + HTTP_WOFF + n, b->out_len - (uint32_t)n);
      b->out = NULL;
      b->out_len = b->out_cap = 0;
      if (uv_write((uv_write_t *)block, (uv_stream_t *)c->tcp, &rest, 1, on_write) != 0) {
        pr_free(block);
        http_conn_close(c);
        return;
      }
      c->writes++;
    } else {
      out_release(c->srv, b);
    }
  }
  conn_settle(c);
}

static void flush_all(pr_http_server *s) {
  http_busy *b;
  while ((b = s->flush_head)) {
    s->flush_head = b->flush_next;
    if (!s->flush_head) s->flush_tail = NULL;
    b->flush_next = NULL;
    b->in_flush = 0;
    if (b->conn)
      conn_flush(b->conn);
    else
      pr_free(b); /* its conn went away; busy_drop emptied it */
  }
  uv_prepare_stop(&s->prepare);
  uv_check_stop(&s->check);
}

static void on_prepare(uv_prepare_t *h) { flush_all(h->data); }
static void on_check(uv_check_t *h) { flush_all(h->data); }

/* Moves the answered requests at the head of the queue to the output. */
static void queue_pop_answered(pr_http_server *s, http_busy *b) {
  pr_http_req *r;
  while ((r = b->head) && r->answered) {
    if (r->resp) { /* answered before an earlier one */
      memcpy(out_reserve(s, b, r->resp_len), r->resp, r->resp_len);
      b->out_len += r->resp_len;
    }
    b->head = r->qnext;
    if (!b->head) b->tail = NULL;
    b->count--;
    http_req_free(r);
  }
}

static void queue_push(http_busy *b, pr_http_req *r) {
  r->qnext = NULL;
  if (b->tail)
    b->tail->qnext = r;
  else
    b->head = r;
  b->tail = r;
  b->count++;
}

char *http_conn_answer_buf(conn *c, pr_http_req *req, size_t cap) {
  http_busy *b = c->busy;
  if (req == b->head) return out_reserve(c->srv, b, cap); /* the common case: no copy later */
  return req->resp = pr_malloc(cap);
}

void http_conn_answered(conn *c, pr_http_req *req, size_t len, int closes) {
  http_busy *b = c->busy;
  req->answered = 1;
  if (closes) c->closing = 1;
  if (req->upgrade) c->upgrading = 0;
  http_req_drop_input(req);
  if (req == b->head)
    b->out_len += (uint32_t)len;
  else
    req->resp_len = (uint32_t)len;
  queue_pop_answered(c->srv, b);
  flush_add(c);
}

void http_conn_queue_raw(conn *c, const char *data, size_t len) {
  http_busy *b = busy_get(c);
  if (!b->head) {
    memcpy(out_reserve(c->srv, b, len), data, len);
    b->out_len += (uint32_t)len;
  } else {
    pr_http_req *r = pr_calloc(1, sizeof *r);
    r->answered = 1;
    r->resp = pr_malloc(len);
    memcpy(r->resp, data, len);
    r->resp_len = (uint32_t)len;
    queue_push(b, r);
  }
  flush_add(c);
}

int http_conn_answer_closes(conn *c, const pr_http_req *req) {
  if (!req->keep_alive) return 1;
  if (req != c->busy->tail || c->req) return 0; /* more requests follow */
  if (c->srv->draining) return 1;
  return c->eof && !has_unparsed(c);
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
    http_conn_queue_raw(c, cont, sizeof cont - 1); /* after the answers still due */
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
  http_parser_pause(p, 1); /* one request at a time: the caller dispatches it */
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

/* ======================================================================
 * Dispatching
 * ====================================================================== */

/* 1 if nothing of c is in flight or unwritten: an Upgrade may be handed off. */
static int conn_is_quiet(const conn *c) {
  return !c->writes && (!c->busy || (!c->busy->count && !c->busy->out_len));
}

/* 1 if c may start parsing its next request now. */
static int may_parse(const conn *c) {
  if (c->state >= ST_HOLD || c->closing || c->upgrading) return 0;
  if (c->srv->draining && !c->req) return 0; /* finish the request being read, no more */
  if (c->busy && c->busy->count >= HTTP_PIPELINE_MAX) return 0;
  return c->tcp->write_queue_size <= HTTP_WRITE_HIGH; /* else the client is not reading */
}

/* Resumes c from the loop (on_idle) if it holds something it may go on with. */
static void conn_kick(conn *c) {
  int go = c->state == ST_HOLD ? conn_is_quiet(c) : has_unparsed(c) && may_parse(c);
  if (!go || c->list == L_READY) return;
  list_move(c, L_READY, 0);
  uv_idle_start(&c->srv->idle, on_idle);
}

/* Hands c's complete request to the handler, which may answer, keep or
 * detach it. The caller checks s->feed_conn and c->state afterwards. */
static void conn_dispatch(conn *c) {
  pr_http_server *s = c->srv;
  pr_http_req *req = c->req;
  c->req = NULL;
  req->dispatched = 1;
  req->srv = s;
  req->prev = NULL;
  req->next = s->reqs;
  if (s->reqs) s->reqs->prev = req;
  s->reqs = req;
  s->inflight++;
  s->stats.requests++;
  queue_push(busy_get(c), req);
  if (!req->keep_alive) c->closing = 1; /* nothing after it is read */
  if (req->upgrade) c->upgrading = 1;   /* nothing after it until answered or detached */
  c->state = ST_WAIT;
  if (c->list != L_PENDING) list_move(c, L_PENDING, 0);
  s->feed_conn = c;
  s->handler(req, s->arg);
}

/* Parses data[0..len) and dispatches its requests while allowed; what may
 * not be parsed yet is kept. from_in: data is c's own unparsed bytes. */
static int conn_parse(conn *c, const char *data, size_t len, int from_in) {
  pr_http_server *s = c->srv;
  size_t done = 0;
  while (done < len && may_parse(c)) {
    size_t n = http_parser_execute(&c->parser, &parser_settings, data + done, len - done);
    done += n;
    if (from_in) c->busy->in_off += (uint32_t)n;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->err_status || (e != HPE_OK && e != HPE_PAUSED)) {
      conn_fail(c, c->err_status ? c->err_status : e == HPE_HEADER_OVERFLOW ? 431 : 400);
      return PARSE_OK;
    }
    if (e != HPE_PAUSED) break;                 /* all parsed, the request is incomplete */
    http_parser_init(&c->parser, HTTP_REQUEST); /* keeps parser.data */
    c->err_status = 0;
    if (c->req->upgrade && !conn_is_quiet(c)) { /* hand-off only as the oldest */
      if (!from_in) in_append(c, data + done, len - done);
      c->state = ST_HOLD;
      list_move(c, L_PENDING, 0);
      return PARSE_OK;
    }
    s->feed_rest = from_in ? NULL : data + done;
    s->feed_rest_len = from_in ? 0 : len - done;
    conn_dispatch(c);
    if (s->feed_conn != c) return PARSE_GONE; /* detached */
    s->feed_conn = NULL;
    if (c->state == ST_CLOSED) return PARSE_GONE;
  }
  if (done < len && !from_in && !c->closing && c->state != ST_LINGER)
    in_append(c, data + done, len - done);
  return PARSE_OK;
}

/* ======================================================================
 * Reading and the keep-alive cycle
 * ====================================================================== */

static void conn_eof(conn *c) {
  c->eof = 1;
  conn_update_reading(c);
  if (c->state == ST_LINGER) {
    if (!c->writes) http_conn_close(c); /* else on_shutdown closes */
    return;
  }
  if (c->state == ST_HEAD || c->state == ST_BODY) { /* a partial request: dropped */
    http_req_free(c->req);
    c->req = NULL;
    c->state = ST_WAIT;
    list_move(c, L_PENDING, 0);
  }
  if (c->state == ST_WAIT && !has_unparsed(c) &&
      (!c->busy || (!c->busy->count && !c->busy->out_len))) {
    if (c->writes)
      conn_end(c);
    else
      http_conn_close(c);
    return;
  }
  conn_settle(c); /* answer what is due, then end */
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  conn *c = st->data;
  if (!c || n == 0) return;
  if (n < 0) {
    if (n == UV_EOF)
      conn_eof(c);
    else
      http_conn_close(c);
    return;
  }
  if (c->state == ST_LINGER || c->closing) return; /* discarded */
  if (has_unparsed(c) || !may_parse(c)) {
    in_append(c, buf->base, (size_t)n);
  } else if (conn_parse(c, buf->base, (size_t)n, 0) == PARSE_GONE) {
    return;
  }
  conn_update_reading(c);
}

/* Decides what c does next once answers may have been written: go on with
 * held requests, wait, end, or idle as a keep-alive connection. */
static void conn_settle(conn *c) {
  pr_http_server *s = c->srv;
  if (c->state == ST_CLOSED || c->state == ST_LINGER) return;
  http_busy *b = c->busy;
  if (b && (b->count || b->out_len || b->in_flush)) { /* answers still due */
    conn_kick(c);
    return;
  }
  if (c->closing || (!c->req && (s->draining || (c->eof && !has_unparsed(c))))) {
    conn_end(c);
    return;
  }
  if (c->req) { /* being read (its list is set) or held */
    conn_kick(c);
    return;
  }
  if (has_unparsed(c)) {
    conn_kick(c);
    return;
  }
  busy_release(c);
  if (c->list != L_IDLE) list_move(c, L_IDLE, s->opts.idle_timeout_ms);
  conn_update_reading(c);
}

/* Goes on with c's held Upgrade request or unparsed bytes. */
static void conn_resume(conn *c) {
  pr_http_server *s = c->srv;
  if (c->state == ST_HOLD) {
    if (!conn_is_quiet(c)) return; /* kicked again when it is */
    s->feed_rest = NULL;
    s->feed_rest_len = 0;
    conn_dispatch(c);
    if (s->feed_conn != c) return;
    s->feed_conn = NULL;
    if (c->state == ST_CLOSED) return;
  }
  if (has_unparsed(c)) {
    http_busy *b = c->busy;
    if (conn_parse(c, b->in + b->in_off, b->in_len - b->in_off, 1) == PARSE_GONE) return;
  }
  if (c->eof && (c->state == ST_HEAD || c->state == ST_BODY)) { /* a partial request at EOF */
    http_req_free(c->req);
    c->req = NULL;
    c->state = ST_WAIT;
    list_move(c, L_PENDING, 0);
  }
  conn_update_reading(c);
  conn_settle(c);
}

/* Runs held (pipelined) requests from the loop rather than from inside an
 * answer or a write callback, so a handler that answers at once does not
 * recurse. */
static void on_idle(uv_idle_t *h) {
  pr_http_server *s = h->data;
  conn *c;
  while ((c = s->lists[L_READY].head)) {
    list_move(c, L_PENDING, 0);
    conn_resume(c);
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
 * Accepting, the hand-off and the server's life
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

int http_conn_detach(conn *c, pr_http_req *req, uv_tcp_t **tcp, char **leftover,
                     size_t *leftover_len) {
  pr_http_server *s = c->srv;
  http_busy *b = c->busy;
  /* the oldest request in flight, nothing read or dispatched after it and
   * nothing left to write: else the socket is not the caller's to take */
  if (c->state != ST_WAIT || c->req || !b || b->head != req || b->tail != req || b->out_len ||
      c->writes) {
    req->answered = 1; /* freed with the connection */
    http_conn_close(c);
    return PR_EBUSY;
  }
  const char *rest = NULL;
  size_t rest_len = 0;
  if (has_unparsed(c)) {
    rest = b->in + b->in_off;
    rest_len = b->in_len - b->in_off;
  } else if (s->feed_conn == c) {
    rest = s->feed_rest;
    rest_len = s->feed_rest_len;
  }
  if (rest_len) {
    *leftover = pr_malloc(rest_len);
    memcpy(*leftover, rest, rest_len);
    *leftover_len = rest_len;
  }
  if (s->feed_conn == c) s->feed_conn = NULL; /* tells conn_parse that c is gone */
  if (c->reading) uv_read_stop((uv_stream_t *)c->tcp);
  list_remove(c);
  req->answered = 1;
  busy_drop(c); /* frees req */
  c->tcp->data = NULL;
  *tcp = c->tcp;
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
  uv_prepare_init(loop, &s->prepare);
  uv_check_init(loop, &s->check);
  s->listener.data = s->timer.data = s->idle.data = s->prepare.data = s->check.data = s;
  s->handles = 5;
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
      if (c->state != ST_WAIT) continue; /* a request being read finishes */
      if (c->writes)
        conn_end(c); /* an answer is still being written */
      else
        http_conn_close(c);
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
  uv_close((uv_handle_t *)&s->prepare, on_handle_close);
  uv_close((uv_handle_t *)&s->check, on_handle_close);
  for (int l = 0; l < L_COUNT; l++)
    while (s->lists[l].head)
      http_conn_close(s->lists[l].head);
  for (http_busy *b = s->flush_head, *next; b; b = next) { /* all orphans by now */
    next = b->flush_next;
    if (b->conn) b->conn->busy = NULL;
    busy_clear(s, b);
    pr_free(b);
  }
  s->flush_head = s->flush_tail = NULL;
  for (pr_http_req *r = s->reqs, *next; r; r = next) {
    next = r->next;
    r->srv = NULL;
    r->prev = r->next = NULL;
  }
  s->reqs = NULL;
  s->inflight = 0;
}

const char *http_date_line(pr_http_server *s, size_t *len) {
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t now = time(NULL);
  if (now != s->date_sec || !s->date_line_len) { /* once a second: printf is fine here */
    struct tm tm;
    gmtime_r(&now, &tm);
    int n = snprintf(s->date_line, sizeof s->date_line,
                     "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n", days[tm.tm_wday], tm.tm_mday,
                     months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    s->date_line_len = (uint8_t)(n > 0 && (size_t)n < sizeof s->date_line ? n : 0);
    s->date_sec = now;
  }
  *len = s->date_line_len;
  return s->date_line;
}
