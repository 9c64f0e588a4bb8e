/* ws_write.c: output: frames written straight to the kernel, what it does
 * not take queued in two write buffers (in flight, pending), cork/uncork into
 * the loop's cork arena, the outbound limit, and the send API. */
#include <string.h>

#include "ws_internal.h"

#define CORK_MAX 65536 /* corked bytes beyond this are written at once */

static size_t outbound(const pr_ws_conn *c) {
  if (c->in_arena) return c->corked->len; /* nothing in flight then */
  return (c->wr_inflight ? c->wr_inflight->len : 0) + (c->wr_pending ? c->wr_pending->len : 0);
}

/* ---- output -------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status);

static int start_write(pr_ws_conn *c, wbuf *w) {
  c->wr_inflight = w;
  STAT_ADD(ws_st_writes, 1);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
  if (uv_write(&w->req, (uv_stream_t *)c->tcp, &b, 1, on_write) < 0) {
    c->wr_inflight = NULL;
    pr_free(w);
    return PR_EIO;
  }
  return 0;
}

static void on_write(uv_write_t *req, int status) {
  pr_ws_conn *c = req->handle->data;
  pr_free(req); /* the wbuf: req is its first member */
  c->wr_inflight = NULL;
  if (c->state == ST_CLOSED) return; /* cancelled by the close */
  if (status < 0) {
    ws_teardown(c, PR_WS_CLOSE_ABNORMAL);
    return;
  }
  if (c->wr_pending) {
    wbuf *w = c->wr_pending;
    c->wr_pending = NULL;
    if (start_write(c, w) < 0) {
      ws_teardown(c, PR_WS_CLOSE_ABNORMAL);
      return;
    }
  }
  ws_maybe_shutdown(c);
}

/* Copies the bytes of bufs after the first `skip` into `dst`. */
static void copy_bufs(char *dst, const uv_buf_t *b, unsigned nb, size_t skip) {
  for (unsigned i = 0; i < nb; i++) {
    if (skip >= b[i].len) {
      skip -= b[i].len;
      continue;
    }
    memcpy(dst, b[i].base + skip, b[i].len - skip);
    dst += b[i].len - skip;
    skip = 0;
  }
}

/* Appends the bytes of bufs after the first `skip` (`rest` of them) to
 * wr_pending, which it creates or grows. */
static void pending_append(pr_ws_conn *c, const uv_buf_t *b, unsigned nb, size_t skip,
                           size_t rest) {
  wbuf *p = c->wr_pending;
  size_t need = (p ? p->len : 0) + rest;
  if (!p || need > p->cap) {
    size_t cap = p ? p->cap * 2 : 1024;
    if (cap < need) cap = need;
    p = pr_realloc(p, sizeof(*p) + cap);
    if (!c->wr_pending) p->len = 0;
    p->cap = cap;
    c->wr_pending = p;
  }
  copy_bufs(p->data + p->len, b, nb, skip);
  p->len += rest;
}

/* Appends total bytes of bufs to the cork buffer (created, or moved to a
 * larger one, in the arena). */
static void cork_append(pr_ws_conn *c, const uv_buf_t *b, unsigned nb, size_t total) {
  cbuf *k = c->in_arena ? c->corked : NULL;
  size_t need = (k ? k->len : 0) + total;
  if (!k || need > k->cap) {
    size_t cap = k ? 2 * (size_t)k->cap : 512;
    if (cap > CORK_MAX) cap = CORK_MAX;
    if (cap < need) cap = need;
    cbuf *n = ws_arena_alloc(c->lc, sizeof(*n) + cap);
    n->len = k ? k->len : 0;
    n->cap = (uint32_t)cap;
    if (k) memcpy(n->data, k->data, k->len);
    c->corked = k = n;
    c->in_arena = 1;
  }
  copy_bufs(k->data + k->len, b, nb, 0);
  k->len += (uint32_t)total;
}

/* Writes the cork buffer (nothing in flight): what the kernel takes at once,
 * the rest copied to a write buffer for uv_write. 0 or PR_EIO. */
static int cork_flush(pr_ws_conn *c) {
  cbuf *k = c->corked;
  c->corked = NULL;
  c->in_arena = 0;
  STAT_ADD(ws_st_writes, 1);
  uv_buf_t b = uv_buf_init(k->data, k->len);
  int n = uv_try_write((uv_stream_t *)c->tcp, &b, 1);
  if (n == UV_EAGAIN)
    n = 0;
  else if (n < 0)
    return PR_EIO;
  if ((size_t)n == k->len) return 0;
  size_t rest = k->len - (size_t)n;
  wbuf *w = pr_malloc(sizeof(*w) + rest);
  w->len = w->cap = rest;
  memcpy(w->data, k->data + n, rest);
  return start_write(c, w);
}

/* Writes directly what the kernel takes and queues the rest. A message is
 * refused (PR_EBUSY, nothing written) when the kernel takes none of it and it
 * would take the queue past max_out; `force` (close frames, the 101) skips the
 * limit. Once the kernel took part of a frame, the rest is always queued so the
 * stream stays well framed. PR_EIO: the socket failed.
 *
 * Corked with nothing in flight, the message is only collected; the kernel
 * is offered the collected bytes once they would pass CORK_MAX (or max_out,
 * if lower), before this message, so the limit applies as it does uncorked. */
int ws_out_write(pr_ws_conn *c, const uv_buf_t *b, unsigned nb, size_t total, int force) {
  if (c->cork && !c->wr_inflight) {
    size_t cap = c->max_out < CORK_MAX ? c->max_out : CORK_MAX;
    if (c->in_arena && c->corked->len + total > cap && cork_flush(c) < 0) return PR_EIO;
    if (!c->wr_inflight && (c->in_arena ? c->corked->len : 0) + total <= cap) {
      cork_append(c, b, nb, total);
      return 0;
    }
  }
  size_t done = 0;
  if (!c->wr_inflight) {
    STAT_ADD(ws_st_writes, 1);
    int n = uv_try_write((uv_stream_t *)c->tcp, b, nb);
    if (n == UV_EAGAIN)
      n = 0;
    else if (n < 0)
      return PR_EIO;
    done = (size_t)n;
    if (done == total) return 0;
  }
  size_t rest = total - done;
  if (!force && done == 0 && outbound(c) + rest > c->max_out) return PR_EBUSY;

  if (!c->wr_inflight) {
    wbuf *w = pr_malloc(sizeof(*w) + rest);
    w->len = w->cap = rest;
    copy_bufs(w->data, b, nb, done);
    return start_write(c, w);
  }
  pending_append(c, b, nb, done, rest);
  return 0;
}

int ws_send_frame(pr_ws_conn *c, int opcode, const void *data, size_t len, int force) {
  uint8_t hdr[PR_WS_MAX_HEADER];
  size_t hl = pr_ws_frame_header(hdr, opcode, 1, len, NULL);
  uv_buf_t b[2] = {uv_buf_init((char *)hdr, (unsigned)hl),
                   uv_buf_init((char *)data, (unsigned)len)};
  int rc = ws_out_write(c, b, len ? 2 : 1, hl + len, force);
  if (rc == 0) {
    STAT_ADD(ws_st_frames_out, 1);
    STAT_ADD(ws_st_bytes_out, hl + len);
  }
  return rc;
}

/* ---- public API ---------------------------------------------------------- */

static int send_data(pr_ws_conn *c, int opcode, const char *data, size_t len) {
  if (c->state != ST_OPEN) return PR_ECLOSED;
  int rc = ws_send_frame(c, opcode, data, len, 0);
  if (rc == PR_EBUSY) {
    ws_slow_consumer(c);
    return PR_EBUSY;
  }
  if (rc < 0) {
    ws_teardown(c, PR_WS_CLOSE_ABNORMAL);
    return PR_ECLOSED;
  }
  return 0;
}

int pr_ws_send_text(pr_ws_conn *c, const char *data, size_t len) {
  return send_data(c, PR_WS_OP_TEXT, data, len);
}

int pr_ws_send_binary(pr_ws_conn *c, const char *data, size_t len) {
  return send_data(c, PR_WS_OP_BINARY, data, len);
}

int pr_ws_cork(pr_ws_conn *c) {
  if (c->cork) return 0;
  c->cork = 1;
  c->lc->corked++;
  return 1;
}

void pr_ws_uncork(pr_ws_conn *c) {
  if (!c->cork) return;
  c->cork = 0;
  if (c->in_arena) {
    if (c->state == ST_CLOSED) { /* torn down while corked: nothing to write */
      c->corked = NULL;
      c->in_arena = 0;
    } else if (cork_flush(c) < 0) {
      ws_teardown(c, PR_WS_CLOSE_ABNORMAL);
    } else {
      ws_maybe_shutdown(c);
    }
  }
  if (--c->lc->corked == 0) ws_arena_rewind(c->lc);
}

size_t pr_ws_conn_outbound(const pr_ws_conn *c) { return outbound(c); }
