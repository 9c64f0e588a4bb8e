/* http_write.c: answers in request order: the in-order queue of requests in
 * flight, answers made in place or kept until the earlier ones are out, one
 * coalesced write per connection and loop turn, the output buffer pool and
 * the Date line. */
#include <string.h>
#include "base.h"
#include "http_internal.h"

static void on_prepare(uv_prepare_t *h);
static void on_check(uv_check_t *h);

/* ======================================================================
 * Output buffers
 * ====================================================================== */

/* Gives b's output buffer back: to the server's few spares if it has the
 * usual size (answers are written at the end of each loop turn, so a buffer
 * is busy only for a turn), else to the allocator. */
void http_out_release(pr_http_server *s, http_busy *b) {
  if (!b->out) return;
  if (b->out_cap == HTTP_OUT_BLOCK && s->out_pooled < HTTP_OUT_POOL)
    s->out_pool[s->out_pooled++] = b->out;
  else
    pr_free(b->out);
  b->out = NULL;
  b->out_len = b->out_cap = 0;
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
  http_conn_settle(c); /* may resume requests held back by a full write queue */
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
      http_out_release(c->srv, b);
    }
  }
  http_conn_settle(c);
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

void http_queue_push(http_busy *b, pr_http_req *r) {
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
  http_busy *b = http_busy_get(c);
  if (!b->head) {
    memcpy(out_reserve(c->srv, b, len), data, len);
    b->out_len += (uint32_t)len;
  } else {
    pr_http_req *r = pr_calloc(1, sizeof *r);
    r->answered = 1;
    r->resp = pr_malloc(len);
    memcpy(r->resp, data, len);
    r->resp_len = (uint32_t)len;
    http_queue_push(b, r);
  }
  flush_add(c);
}

int http_conn_answer_closes(conn *c, const pr_http_req *req) {
  if (!req->keep_alive) return 1;
  if (req != c->busy->tail || c->req) return 0; /* more requests follow */
  if (c->srv->draining) return 1;
  return c->eof && !http_has_unparsed(c);
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
