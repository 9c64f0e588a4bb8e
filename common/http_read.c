/* http_read.c: reading and parsing: the read callback into the server's one
 * buffer, the http-parser callbacks (the request copies only what it keeps),
 * unparsed and pipelined bytes, and dispatching requests to the handler. */
#include <string.h>
#include <strings.h>
#include "base.h"
#include "http_internal.h"

enum { PARSE_OK, PARSE_GONE }; /* GONE: c was closed or detached meanwhile */

static void on_idle(uv_idle_t *h);
static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

/* ======================================================================
 * Unparsed input and reading
 * ====================================================================== */

static size_t unparsed_limit(const pr_http_server *s) {
  return s->opts.max_header_bytes + s->opts.max_body_bytes;
}

/* Keeps bytes that may not be parsed yet; the unparsed rest stays in place
 * (in_off moves) and is compacted only when the buffer must grow. */
static void in_append(conn *c, const char *data, size_t len) {
  http_busy *b = http_busy_get(c);
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

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = h->data;
  buf->base = c->srv->rbuf;
  buf->len = HTTP_READ_BUF_SIZE;
}

/* Reads unless closed, at EOF, or holding too many unparsed bytes. */
void http_conn_update_reading(conn *c) {
  size_t held = http_has_unparsed(c) ? c->busy->in_len - c->busy->in_off : 0;
  int want = c->state != ST_CLOSED && !c->eof && held < unparsed_limit(c->srv);
  if (want && !c->reading) {
    if (uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_read) == 0) c->reading = 1;
  } else if (!want && c->reading) {
    uv_read_stop((uv_stream_t *)c->tcp);
    c->reading = 0;
  }
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
  if (c->list != L_HEAD) http_list_move(c, L_HEAD, c->srv->opts.header_timeout_ms);
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
  http_list_move(c, L_IDLE, s->opts.idle_timeout_ms);
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
void http_conn_kick(conn *c) {
  int go = c->state == ST_HOLD ? conn_is_quiet(c) : http_has_unparsed(c) && may_parse(c);
  if (!go || c->list == L_READY) return;
  http_list_move(c, L_READY, 0);
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
  http_queue_push(http_busy_get(c), req);
  if (!req->keep_alive) c->closing = 1; /* nothing after it is read */
  if (req->upgrade) c->upgrading = 1;   /* nothing after it until answered or detached */
  c->state = ST_WAIT;
  if (c->list != L_PENDING) http_list_move(c, L_PENDING, 0);
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
      http_conn_fail(c, c->err_status ? c->err_status : e == HPE_HEADER_OVERFLOW ? 431 : 400);
      return PARSE_OK;
    }
    if (e != HPE_PAUSED) break;                 /* all parsed, the request is incomplete */
    http_parser_init(&c->parser, HTTP_REQUEST); /* keeps parser.data */
    c->err_status = 0;
    if (c->req->upgrade && !conn_is_quiet(c)) { /* hand-off only as the oldest */
      if (!from_in) in_append(c, data + done, len - done);
      c->state = ST_HOLD;
      http_list_move(c, L_PENDING, 0);
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
  http_conn_update_reading(c);
  if (c->state == ST_LINGER) {
    if (!c->writes) http_conn_close(c); /* else on_shutdown closes */
    return;
  }
  if (c->state == ST_HEAD || c->state == ST_BODY) { /* a partial request: dropped */
    http_req_free(c->req);
    c->req = NULL;
    c->state = ST_WAIT;
    http_list_move(c, L_PENDING, 0);
  }
  if (c->state == ST_WAIT && !http_has_unparsed(c) &&
      (!c->busy || (!c->busy->count && !c->busy->out_len))) {
    if (c->writes)
      http_conn_end(c);
    else
      http_conn_close(c);
    return;
  }
  http_conn_settle(c); /* answer what is due, then end */
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
  if (http_has_unparsed(c) || !may_parse(c)) {
    in_append(c, buf->base, (size_t)n);
  } else if (conn_parse(c, buf->base, (size_t)n, 0) == PARSE_GONE) {
    return;
  }
  http_conn_update_reading(c);
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
  if (http_has_unparsed(c)) {
    http_busy *b = c->busy;
    if (conn_parse(c, b->in + b->in_off, b->in_len - b->in_off, 1) == PARSE_GONE) return;
  }
  if (c->eof && (c->state == ST_HEAD || c->state == ST_BODY)) { /* a partial request at EOF */
    http_req_free(c->req);
    c->req = NULL;
    c->state = ST_WAIT;
    http_list_move(c, L_PENDING, 0);
  }
  http_conn_update_reading(c);
  http_conn_settle(c);
}

/* Runs held (pipelined) requests from the loop rather than from inside an
 * answer or a write callback, so a handler that answers at once does not
 * recurse. */
static void on_idle(uv_idle_t *h) {
  pr_http_server *s = h->data;
  conn *c;
  while ((c = s->lists[L_READY].head)) {
    http_list_move(c, L_PENDING, 0);
    conn_resume(c);
  }
  uv_idle_stop(h);
}
