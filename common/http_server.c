/* http_server.c: the listener and the life of a connection: accept, the
 * server's lists and the single timer that enforces every timeout, the busy
 * part, graceful close and refusal, keep-alive, the hand-off, the server's life.
 * Reading is in http_read.c, writing in http_write.c. */
#include <string.h>
#include "base.h"
#include "http_internal.h"

static void on_timer(uv_timer_t *t);

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
void http_list_move(conn *c, int list, uint64_t timeout_ms) {
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

http_busy *http_busy_get(conn *c) {
  if (!c->busy) {
    c->busy = pr_calloc(1, sizeof *c->busy);
    c->busy->conn = c;
  }
  return c->busy;
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
  http_out_release(s, b);
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

static void in_discard(conn *c) {
  if (c->busy) c->busy->in_off = c->busy->in_len = 0;
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
void http_conn_end(conn *c) {
  if (c->state == ST_CLOSED || c->state == ST_LINGER) return;
  if (c->req) {
    http_req_free(c->req);
    c->req = NULL;
  }
  c->state = ST_LINGER;
  in_discard(c);
  busy_release(c);
  http_list_move(c, L_LINGER, HTTP_LINGER_MS);
  uv_shutdown_t *sh = pr_malloc(sizeof *sh);
  if (uv_shutdown(sh, (uv_stream_t *)c->tcp, on_shutdown) != 0) {
    pr_free(sh);
    http_conn_close(c);
    return;
  }
  http_conn_update_reading(c);
}

/* Refuses the request being read: its error answer follows the answers
 * still due, then the connection ends. Reads are discarded meanwhile. */
void http_conn_fail(conn *c, int status) {
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
  http_list_move(c, L_PENDING, 0);
  http_conn_queue_raw(c, out, len + blen);
}

/* ======================================================================
 * The keep-alive cycle and the timeouts
 * ====================================================================== */

/* Decides what c does next once answers may have been written: go on with
 * held requests, wait, end, or idle as a keep-alive connection. */
void http_conn_settle(conn *c) {
  pr_http_server *s = c->srv;
  if (c->state == ST_CLOSED || c->state == ST_LINGER) return;
  http_busy *b = c->busy;
  if (b && (b->count || b->out_len || b->in_flush)) { /* answers still due */
    http_conn_kick(c);
    return;
  }
  if (c->closing || (!c->req && (s->draining || (c->eof && !http_has_unparsed(c))))) {
    http_conn_end(c);
    return;
  }
  if (c->req) { /* being read (its list is set) or held */
    http_conn_kick(c);
    return;
  }
  if (http_has_unparsed(c)) {
    http_conn_kick(c);
    return;
  }
  busy_release(c);
  if (c->list != L_IDLE) http_list_move(c, L_IDLE, s->opts.idle_timeout_ms);
  http_conn_update_reading(c);
}

static void expire(conn *c) {
  if (c->state == ST_WAIT && c->list == L_IDLE) { /* idle keep-alive */
    http_conn_close(c);
    return;
  }
  if (c->req) {
    http_conn_fail(c, 408);
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
  http_list_move(c, L_HEAD, s->opts.header_timeout_ms);
  http_conn_update_reading(c);
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
  if (http_has_unparsed(c)) {
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
        http_conn_end(c); /* an answer is still being written */
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
