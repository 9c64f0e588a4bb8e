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
 * socket. close_timeout_ms bounds both waits. */
#include "ws.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define DEF_MAX_MESSAGE  65536
#define DEF_MAX_OUTBOUND 262144
#define DEF_CLOSE_MS     2000
#define MAX_LIMIT        (1u << 30)
#define READ_BUF_SIZE    65536
#define CORK_MAX         65536 /* corked bytes beyond this are written at once */
#define ARENA_BLOCK      65536 /* the cork arena grows by blocks of (at least) this */

/* ---- stats --------------------------------------------------------------- */

static _Atomic uint64_t st_frames_in, st_frames_out, st_bytes_in, st_bytes_out, st_slow, st_proto,
    st_open, st_writes;

#define STAT_ADD(s, n) atomic_fetch_add_explicit(&(s), (uint64_t)(n), memory_order_relaxed)
#define STAT_SUB(s, n) atomic_fetch_sub_explicit(&(s), (uint64_t)(n), memory_order_relaxed)
#define STAT_GET(s)    atomic_load_explicit(&(s), memory_order_relaxed)

void pr_ws_get_stats(pr_ws_stats *out) {
  out->frames_in = STAT_GET(st_frames_in);
  out->frames_out = STAT_GET(st_frames_out);
  out->bytes_in = STAT_GET(st_bytes_in);
  out->bytes_out = STAT_GET(st_bytes_out);
  out->slow_consumers_closed = STAT_GET(st_slow);
  out->protocol_errors = STAT_GET(st_proto);
  out->conns_open = STAT_GET(st_open);
  out->writes = STAT_GET(st_writes);
}

/* ---- per-loop state: the read buffer and the timers -----------------------
 * libuv calls alloc then read for one stream at a time on a loop, and a read
 * callback consumes the whole buffer (keeping only an incomplete frame), so one
 * buffer serves every connection of the loop.
 *
 * Timers (leftover kick, idle timeout, close timeout) are one uv_timer_t per
 * loop and a binary min-heap of the connections that wait for a deadline: a
 * uv_timer_t is 152 bytes, more than the rest of an idle connection, while a
 * heap slot is one pointer. Loops may run in several threads, hence the lock
 * around the (short) list; each loop's state is used by its own thread only. */

typedef struct lctx {
  uv_loop_t *loop;
  size_t refs;
  struct lctx *next;
  uv_timer_t timer;
  uint64_t armed;    /* the deadline the uv timer is set for; UINT64_MAX: stopped */
  pr_ws_conn **heap; /* heap[0] has the earliest deadline */
  uint32_t n, cap;
  /* cork arena: the current block (its first bytes link the full blocks
   * behind it, freed at the rewind) and the connections corked */
  char *ablock;
  size_t aused, asize;
  uint32_t corked;
  char data[READ_BUF_SIZE];
} lctx;

static uv_once_t lc_once = UV_ONCE_INIT;
static uv_mutex_t lc_mu;
static lctx *lc_list;

static void lc_init(void) {
  if (uv_mutex_init(&lc_mu) != 0) abort();
}

static void lctx_on_timer(uv_timer_t *t);

/* ---- cork arena: bump allocation, rewound when no conn of the loop is corked */

typedef struct ablock_hdr {
  char *prev; /* the previous (full) block */
} ablock_hdr;

#define ARENA_HDR ((sizeof(ablock_hdr) + 15) & ~(size_t)15)

static void *arena_alloc(lctx *l, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (!l->ablock || l->aused + n > l->asize) {
    size_t size = ARENA_BLOCK > ARENA_HDR + n ? ARENA_BLOCK : ARENA_HDR + n;
    char *b = pr_malloc(size);
    ((ablock_hdr *)b)->prev = l->ablock; /* kept until the rewind: corks may point in it */
    l->ablock = b;
    l->asize = size;
    l->aused = ARENA_HDR;
  }
  void *p = l->ablock + l->aused;
  l->aused += n;
  return p;
}

/* Frees every block but the current one and empties it. */
static void arena_rewind(lctx *l) {
  if (!l->ablock) return;
  char *b = ((ablock_hdr *)l->ablock)->prev;
  while (b) {
    char *prev = ((ablock_hdr *)b)->prev;
    pr_free(b);
    b = prev;
  }
  ((ablock_hdr *)l->ablock)->prev = NULL;
  l->aused = ARENA_HDR;
}

static lctx *lctx_acquire(uv_loop_t *loop) {
  uv_once(&lc_once, lc_init);
  uv_mutex_lock(&lc_mu);
  lctx *l = lc_list;
  while (l && l->loop != loop)
    l = l->next;
  if (!l) {
    l = pr_calloc(1, sizeof(*l));
    l->loop = loop;
    l->armed = UINT64_MAX;
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    l->next = lc_list;
    lc_list = l;
  }
  l->refs++;
  uv_mutex_unlock(&lc_mu);
  return l;
}

static void lctx_free(uv_handle_t *h) { pr_free(h->data); }

/* From the loop's thread (a close callback), after the last connection. */
static void lctx_release(lctx *l) {
  uv_mutex_lock(&lc_mu);
  int last = --l->refs == 0;
  if (last) {
    lctx **pp = &lc_list;
    while (*pp != l)
      pp = &(*pp)->next;
    *pp = l->next;
  }
  uv_mutex_unlock(&lc_mu);
  if (!last) return;
  pr_free(l->heap);
  l->heap = NULL;
  arena_rewind(l);
  pr_free(l->ablock);
  l->ablock = NULL;
  /* A loop torn down with uv_walk may have closed the timer already (without
   * our callback): then the memory stays, as the connections' would. */
  if (!uv_is_closing((uv_handle_t *)&l->timer)) uv_close((uv_handle_t *)&l->timer, lctx_free);
}

/* ---- the connection ---------------------------------------------------- */

enum { ST_OPEN, ST_CLOSE_SENT, ST_DRAIN, ST_CLOSED };

/* Output the kernel did not take; `req` first so the write callback can cast. */
typedef struct wbuf {
  uv_write_t req;
  size_t len, cap;
  char data[];
} wbuf;

/* A fragmented message being reassembled. */
typedef struct frag {
  size_t len, cap;
  pr_ws_utf8 utf8;
  uint8_t is_text;
  char data[];
} frag;

/* One incomplete frame (or the upgrade leftover until kicked). */
typedef struct part {
  uint32_t len, cap;
  uint8_t data[];
} part;

/* Frames collected while corked (in the loop's cork arena). */
typedef struct cbuf {
  uint32_t len, cap;
  char data[];
} cbuf;

/* Every byte here is paid once per idle connection (see pr_ws_conn_idle_bytes):
 * 104 bytes, a 112-byte malloc chunk. */
struct pr_ws_conn {
  uv_tcp_t *tcp;
  const pr_ws_handlers *h;
  void *user;
  lctx *lc;
  part *part;
  frag *frag;
  wbuf *wr_inflight;
  union {
    wbuf *wr_pending; /* queued behind wr_inflight */
    cbuf *corked;     /* while `in_arena`: collected while corked, nothing in flight */
  };
  uint64_t last_rx; /* uv_now() of the last frame received */
  uint64_t due;     /* uv_now() deadline of the timer, while in the heap */
  uint32_t max_msg, max_out, idle_ms, close_ms;
  uint32_t hslot; /* index in lc->heap + 1; 0: no timer running */
  uint16_t close_code;
  uint8_t state;
  uint8_t kick : 1;     /* `part` holds the unprocessed upgrade leftover */
  uint8_t shut : 1;     /* uv_shutdown requested */
  uint8_t cork : 1;     /* corked: see pr_ws_cork */
  uint8_t in_arena : 1; /* the union holds `corked` (and it is not NULL) */
};

size_t pr_ws_conn_idle_bytes(void) {
  return sizeof(pr_ws_conn) + sizeof(uv_tcp_t) + sizeof(pr_ws_conn *); /* + its heap slot */
}

static void on_timer(pr_ws_conn *c);
static void teardown(pr_ws_conn *c, int code);

/* ---- timers: the loop's heap ----------------------------------------------- */

static void heap_set(lctx *l, uint32_t i, pr_ws_conn *c) {
  l->heap[i] = c;
  c->hslot = i + 1;
}

static void heap_up(lctx *l, uint32_t i) {
  pr_ws_conn *c = l->heap[i];
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (l->heap[p]->due <= c->due) break;
    heap_set(l, i, l->heap[p]);
    i = p;
  }
  heap_set(l, i, c);
}

static void heap_down(lctx *l, uint32_t i) {
  pr_ws_conn *c = l->heap[i];
  for (;;) {
    uint32_t k = 2 * i + 1;
    if (k >= l->n) break;
    if (k + 1 < l->n && l->heap[k + 1]->due < l->heap[k]->due) k++;
    if (c->due <= l->heap[k]->due) break;
    heap_set(l, i, l->heap[k]);
    i = k;
  }
  heap_set(l, i, c);
}

static void heap_remove(lctx *l, pr_ws_conn *c) {
  uint32_t i = c->hslot - 1;
  c->hslot = 0;
  pr_ws_conn *last = l->heap[--l->n];
  if (i == l->n) return;
  heap_set(l, i, last);
  if (i > 0 && l->heap[(i - 1) / 2]->due > last->due)
    heap_up(l, i);
  else
    heap_down(l, i);
}

/* Sets the loop's timer for the earliest deadline. */
static void lctx_arm(lctx *l) {
  if (l->n == 0) {
    if (l->armed != UINT64_MAX) uv_timer_stop(&l->timer);
    l->armed = UINT64_MAX;
    return;
  }
  uint64_t due = l->heap[0]->due;
  if (due == l->armed) return;
  uint64_t now = uv_now(l->loop);
  l->armed = due;
  uv_timer_start(&l->timer, lctx_on_timer, due > now ? due - now : 0, 0);
}

static void timer_stop(pr_ws_conn *c) {
  if (!c->hslot) return;
  heap_remove(c->lc, c);
  lctx_arm(c->lc);
}

/* (Re)starts c's one timer: on_timer(c) runs `ms` from now (never once c is
 * closed: the heap must not hold a conn that is being freed). */
static void timer_start(pr_ws_conn *c, uint64_t ms) {
  lctx *l = c->lc;
  if (c->state == ST_CLOSED) return;
  if (c->hslot) heap_remove(l, c);
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 64;
    l->heap = pr_realloc(l->heap, l->cap * sizeof(*l->heap));
  }
  c->due = uv_now(l->loop) + ms;
  l->heap[l->n] = c;
  heap_up(l, l->n++);
  lctx_arm(l);
}

static void lctx_on_timer(uv_timer_t *t) {
  lctx *l = t->data;
  uint64_t now = uv_now(l->loop);
  l->armed = UINT64_MAX; /* a one-shot timer that fired is stopped */
  while (l->n > 0 && l->heap[0]->due <= now) {
    pr_ws_conn *c = l->heap[0];
    heap_remove(l, c);
    on_timer(c); /* may restart c's timer (for later) or close c */
  }
  lctx_arm(l);
}

static size_t outbound(const pr_ws_conn *c) {
  if (c->in_arena) return c->corked->len; /* nothing in flight then */
  return (c->wr_inflight ? c->wr_inflight->len : 0) + (c->wr_pending ? c->wr_pending->len : 0);
}

/* ---- output -------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status);
static void maybe_shutdown(pr_ws_conn *c);

static int start_write(pr_ws_conn *c, wbuf *w) {
  c->wr_inflight = w;
  STAT_ADD(st_writes, 1);
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
    teardown(c, PR_WS_CLOSE_ABNORMAL);
    return;
  }
  if (c->wr_pending) {
    wbuf *w = c->wr_pending;
    c->wr_pending = NULL;
    if (start_write(c, w) < 0) {
      teardown(c, PR_WS_CLOSE_ABNORMAL);
      return;
    }
  }
  maybe_shutdown(c);
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
    cbuf *n = arena_alloc(c->lc, sizeof(*n) + cap);
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
  STAT_ADD(st_writes, 1);
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
static int out_write(pr_ws_conn *c, const uv_buf_t *b, unsigned nb, size_t total, int force) {
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
    STAT_ADD(st_writes, 1);
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

static int send_frame(pr_ws_conn *c, int opcode, const void *data, size_t len, int force) {
  uint8_t hdr[PR_WS_MAX_HEADER];
  size_t hl = pr_ws_frame_header(hdr, opcode, 1, len, NULL);
  uv_buf_t b[2] = {uv_buf_init((char *)hdr, (unsigned)hl),
                   uv_buf_init((char *)data, (unsigned)len)};
  int rc = out_write(c, b, len ? 2 : 1, hl + len, force);
  if (rc == 0) {
    STAT_ADD(st_frames_out, 1);
    STAT_ADD(st_bytes_out, hl + len);
  }
  return rc;
}

/* ---- closing ------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) {
  pr_ws_conn *c = h->data;
  if (c->h->on_close) c->h->on_close(c, c->close_code, c->user);
  pr_free(c->part);
  pr_free(c->frag);
  if (!c->in_arena) pr_free(c->wr_pending);
  lctx_release(c->lc);
  pr_free(c->tcp);
  STAT_SUB(st_open, 1);
  pr_free(c);
}

/* Closes the socket now. Buffers are freed with the conn, after the close
 * callbacks, because a caller up the stack may still be using them. */
static void teardown(pr_ws_conn *c, int code) {
  if (c->state == ST_CLOSED) return;
  if (!c->close_code) c->close_code = (uint16_t)code;
  timer_stop(c);
  c->state = ST_CLOSED;
  uv_close((uv_handle_t *)c->tcp, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  pr_ws_conn *c = req->handle->data;
  pr_free(req);
  if (status < 0 && c->state != ST_CLOSED) teardown(c, PR_WS_CLOSE_ABNORMAL);
}

/* In DRAIN, once all our output is in libuv's queue, ask for the FIN after it. */
static void maybe_shutdown(pr_ws_conn *c) {
  if (c->state != ST_DRAIN || c->shut || c->wr_pending) return;
  c->shut = 1;
  uv_shutdown_t *req = pr_malloc(sizeof(*req));
  if (uv_shutdown(req, (uv_stream_t *)c->tcp, on_shutdown) < 0) {
    pr_free(req);
    teardown(c, PR_WS_CLOSE_ABNORMAL);
  }
}

static void enter_drain(pr_ws_conn *c) {
  c->state = ST_DRAIN;
  timer_start(c, c->close_ms);
  maybe_shutdown(c);
}

/* Sends our close frame (from OPEN). Returns 0 or PR_EIO (then torn down). */
static int send_close(pr_ws_conn *c, int code, const char *reason) {
  uint8_t pl[PR_WS_MAX_CONTROL];
  size_t n = pr_ws_close_payload(pl, code, reason);
  c->close_code = (uint16_t)code;
  if (send_frame(c, PR_WS_OP_CLOSE, pl, n, 1) < 0) {
    teardown(c, code);
    return PR_EIO;
  }
  return 0;
}

static void start_close(pr_ws_conn *c, int code, const char *reason) {
  if (send_close(c, code, reason) < 0) return;
  c->state = ST_CLOSE_SENT;
  timer_start(c, c->close_ms);
}

/* The peer broke the protocol or a limit: close with `code`, then drain. */
static void conn_fail(pr_ws_conn *c, int code, const char *reason) {
  STAT_ADD(st_proto, 1);
  if (c->state == ST_OPEN && send_close(c, code, reason) < 0) return;
  enter_drain(c);
}

static void slow_consumer(pr_ws_conn *c) {
  STAT_ADD(st_slow, 1);
  start_close(c, PR_WS_CLOSE_SLOW, "slow consumer");
}

/* ---- input --------------------------------------------------------------- */

static int input_open(const pr_ws_conn *c) {
  return c->state == ST_OPEN || c->state == ST_CLOSE_SENT;
}

/* A close code for a header that breaks ordering or size rules, else 0. */
static int check_header(const pr_ws_conn *c, const pr_ws_frame *f) {
  switch (f->opcode) {
  case PR_WS_OP_TEXT:
  case PR_WS_OP_BINARY:
    if (c->frag) return PR_WS_CLOSE_PROTOCOL; /* new message inside a fragmented one */
    return f->payload_len > c->max_msg ? PR_WS_CLOSE_TOO_BIG : 0;
  case PR_WS_OP_CONT:
    if (!c->frag) return PR_WS_CLOSE_PROTOCOL; /* continuation of nothing */
    return f->payload_len > c->max_msg - c->frag->len ? PR_WS_CLOSE_TOO_BIG : 0;
  default: return 0;
  }
}

static void deliver(pr_ws_conn *c, int is_text, const char *data, size_t len) {
  if (c->state == ST_OPEN) c->h->on_message(c, is_text, data, len, c->user);
}

/* Appends to the fragmented message; 0 or PR_EUTF8. */
static int frag_append(pr_ws_conn *c, const uint8_t *p, size_t n) {
  frag *f = c->frag;
  if (f->is_text && pr_ws_utf8_feed(&f->utf8, p, n) != 0) return PR_EUTF8;
  if (f->len + n > f->cap) {
    size_t cap = f->cap * 2;
    if (cap > c->max_msg) cap = c->max_msg;
    if (cap < f->len + n) cap = f->len + n;
    f = pr_realloc(f, sizeof(*f) + cap);
    f->cap = cap;
    c->frag = f;
  }
  if (n) memcpy(f->data + f->len, p, n);
  f->len += n;
  return 0;
}

static void on_close_frame(pr_ws_conn *c, const uint8_t *p, size_t n) {
  int code;
  const char *reason;
  size_t reason_len;
  int rc = pr_ws_close_parse(p, n, &code, &reason, &reason_len);
  if (rc == PR_EUTF8) {
    conn_fail(c, PR_WS_CLOSE_BAD_DATA, "invalid utf-8 in close reason");
    return;
  }
  if (rc < 0) {
    conn_fail(c, PR_WS_CLOSE_PROTOCOL, "bad close frame");
    return;
  }
  if (c->state == ST_OPEN) {
    /* Echo the peer's code (an empty close is answered with an empty close). */
    uint8_t pl[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    c->close_code = (uint16_t)code;
    if (send_frame(c, PR_WS_OP_CLOSE, pl, code == PR_WS_CLOSE_NO_STATUS ? 0 : 2, 1) < 0) {
      teardown(c, code);
      return;
    }
  }
  enter_drain(c);
}

/* One complete frame whose header passed check_header; payload is mutable. */
static void handle_frame(pr_ws_conn *c, const pr_ws_frame *f, uint8_t *payload) {
  size_t len = (size_t)f->payload_len;
  if (f->masked) pr_ws_mask(payload, len, f->mask, 0);
  STAT_ADD(st_frames_in, 1);
  STAT_ADD(st_bytes_in, f->header_len + len);
  c->last_rx = uv_now(c->tcp->loop);
  if (c->h->on_activity) c->h->on_activity(c, c->user);
  if (!input_open(c)) return;

  switch (f->opcode) {
  case PR_WS_OP_PING:
    if (c->state == ST_OPEN) {
      int rc = send_frame(c, PR_WS_OP_PONG, payload, len, 0);
      if (rc == PR_EBUSY)
        slow_consumer(c);
      else if (rc < 0)
        teardown(c, PR_WS_CLOSE_ABNORMAL);
    }
    return;
  case PR_WS_OP_PONG: return;
  case PR_WS_OP_CLOSE: on_close_frame(c, payload, len); return;
  case PR_WS_OP_TEXT:
  case PR_WS_OP_BINARY: {
    int is_text = f->opcode == PR_WS_OP_TEXT;
    if (f->fin) {
      if (is_text && pr_ws_utf8_check(payload, len) != 0) {
        conn_fail(c, PR_WS_CLOSE_BAD_DATA, "invalid utf-8");
        return;
      }
      deliver(c, is_text, (const char *)payload, len);
      return;
    }
    size_t cap = len > 1024 ? len : 1024; /* len <= max_msg: check_header saw to it */
    if (cap > c->max_msg) cap = c->max_msg > len ? c->max_msg : len;
    frag *fr = pr_malloc(sizeof(*fr) + cap);
    fr->len = 0;
    fr->cap = cap;
    fr->is_text = (uint8_t)is_text;
    pr_ws_utf8_init(&fr->utf8);
    c->frag = fr;
    if (frag_append(c, payload, len) != 0) conn_fail(c, PR_WS_CLOSE_BAD_DATA, "invalid utf-8");
    return;
  }
  case PR_WS_OP_CONT: {
    if (frag_append(c, payload, len) != 0) {
      conn_fail(c, PR_WS_CLOSE_BAD_DATA, "invalid utf-8");
      return;
    }
    if (!f->fin) return;
    frag *fr = c->frag;
    c->frag = NULL;
    if (fr->is_text && pr_ws_utf8_finish(&fr->utf8) != 0)
      conn_fail(c, PR_WS_CLOSE_BAD_DATA, "invalid utf-8");
    else
      deliver(c, fr->is_text, fr->data, fr->len);
    pr_free(fr);
    return;
  }
  }
}

/* Keeps an incomplete frame's n bytes, with room for `want` in all. */
static void part_keep(pr_ws_conn *c, const uint8_t *p, size_t n, size_t want) {
  size_t cap = want > n ? want : n;
  c->part = pr_malloc(sizeof(part) + cap);
  memcpy(c->part->data, p, n);
  c->part->len = (uint32_t)n;
  c->part->cap = (uint32_t)cap;
}

/* Parses a header and applies the rules; 0, PR_ETRUNC or a close code > 0
 * (the caller fails the connection with it). */
static int parse_checked(const pr_ws_conn *c, const uint8_t *p, size_t n, pr_ws_frame *f) {
  int rc = pr_ws_frame_parse(p, n, PR_WS_REQUIRE_MASK, f);
  if (rc == PR_ETRUNC) return rc;
  if (rc < 0) return PR_WS_CLOSE_PROTOCOL;
  return check_header(c, f);
}

/* Handles every complete frame of p[0..n) (part must be empty) and keeps an
 * incomplete tail in part. */
static void input_span(pr_ws_conn *c, uint8_t *p, size_t n) {
  while (n > 0 && input_open(c)) {
    pr_ws_frame f;
    int rc = parse_checked(c, p, n, &f);
    if (rc == PR_ETRUNC) {
      part_keep(c, p, n, pr_ws_header_len(p, n));
      return;
    }
    if (rc > 0) {
      conn_fail(c, rc, rc == PR_WS_CLOSE_TOO_BIG ? "message too big" : "protocol error");
      return;
    }
    size_t total = f.header_len + (size_t)f.payload_len;
    if (n < total) {
      part_keep(c, p, n, total);
      return;
    }
    handle_frame(c, &f, p + f.header_len);
    p += total;
    n -= total;
  }
}

/* New bytes from the socket: first complete the frame in part (copying only
 * what it needs), then work on the rest in place. */
static void on_input(pr_ws_conn *c, uint8_t *p, size_t n) {
  while (c->part && n > 0 && input_open(c)) {
    pr_ws_frame f;
    int rc = parse_checked(c, c->part->data, c->part->len, &f);
    size_t want;
    if (rc == PR_ETRUNC) {
      want = pr_ws_header_len(c->part->data, c->part->len);
    } else if (rc > 0) {
      conn_fail(c, rc, rc == PR_WS_CLOSE_TOO_BIG ? "message too big" : "protocol error");
      return;
    } else {
      want = f.header_len + (size_t)f.payload_len;
    }
    size_t take = want - c->part->len;
    if (take > n) take = n;
    if (want > c->part->cap) {
      c->part = pr_realloc(c->part, sizeof(part) + want);
      c->part->cap = (uint32_t)want;
    }
    memcpy(c->part->data + c->part->len, p, take);
    c->part->len += (uint32_t)take;
    p += take;
    n -= take;
    if (rc == 0 && c->part->len == want) {
      part *buf = c->part;
      c->part = NULL;
      handle_frame(c, &f, buf->data + f.header_len);
      pr_free(buf);
    }
  }
  if (!c->part) input_span(c, p, n);
}

/* Processes the upgrade leftover (it may hold several frames). */
static void kick_leftover(pr_ws_conn *c) {
  if (!c->kick) return;
  c->kick = 0;
  part *buf = c->part;
  c->part = NULL;
  input_span(c, buf->data, buf->len);
  pr_free(buf);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  pr_ws_conn *c = h->data;
  *buf = uv_buf_init(c->lc->data, READ_BUF_SIZE);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  pr_ws_conn *c = s->data;
  if (c->state == ST_CLOSED) return;
  if (nread < 0) {
    teardown(c, PR_WS_CLOSE_ABNORMAL); /* EOF or error; keeps a code already set */
    return;
  }
  if (nread == 0 || c->state == ST_DRAIN) return;
  kick_leftover(c);
  on_input(c, (uint8_t *)buf->base, (size_t)nread);
}

/* ---- timer --------------------------------------------------------------- */

static void arm_idle(pr_ws_conn *c) {
  if (!c->idle_ms) return;
  uint64_t now = uv_now(c->tcp->loop), idle = now - c->last_rx;
  if (idle >= c->idle_ms) {
    start_close(c, PR_WS_CLOSE_GOING_AWAY, "idle timeout");
    return;
  }
  timer_start(c, c->idle_ms - idle);
}

/* Frames do not touch the timer (no heap work per frame): when it fires, it
 * re-arms for what is left of the idle period since the last frame. */
static void on_timer(pr_ws_conn *c) {
  switch (c->state) {
  case ST_OPEN:
    kick_leftover(c);
    if (c->state == ST_OPEN) arm_idle(c);
    return;
  case ST_CLOSE_SENT:
  case ST_DRAIN: teardown(c, c->close_code); return; /* the peer took too long */
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
  c->lc = lctx_acquire(loop);
  c->last_rx = uv_now(loop);
  tcp->data = c;
  STAT_ADD(st_open, 1);
  *out = c;

  uv_tcp_nodelay(tcp, 1); /* frames are small and latency matters; failure is harmless */

  pr_buf resp = PR_BUF_INIT;
  pr_buf_printf(&resp,
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
                accept, extra_headers ? extra_headers : "");
  uv_buf_t b = uv_buf_init(resp.data, (unsigned)resp.len);
  int rc = out_write(c, &b, 1, resp.len, 1);
  pr_buf_free(&resp);
  if (rc < 0) {
    teardown(c, PR_WS_CLOSE_ABNORMAL);
    return 0;
  }

  if (leftover_len) {
    /* Processed from the loop, so no callback runs before this call returns. */
    part_keep(c, (const uint8_t *)leftover, leftover_len, leftover_len);
    c->kick = 1;
    timer_start(c, 0);
  } else {
    arm_idle(c);
  }
  uv_read_stop((uv_stream_t *)tcp);
  if (uv_read_start((uv_stream_t *)tcp, on_alloc, on_read) < 0) teardown(c, PR_WS_CLOSE_ABNORMAL);
  return 0;
}

static int send_data(pr_ws_conn *c, int opcode, const char *data, size_t len) {
  if (c->state != ST_OPEN) return PR_ECLOSED;
  int rc = send_frame(c, opcode, data, len, 0);
  if (rc == PR_EBUSY) {
    slow_consumer(c);
    return PR_EBUSY;
  }
  if (rc < 0) {
    teardown(c, PR_WS_CLOSE_ABNORMAL);
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
      teardown(c, PR_WS_CLOSE_ABNORMAL);
    } else {
      maybe_shutdown(c);
    }
  }
  if (--c->lc->corked == 0) arena_rewind(c->lc);
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
size_t pr_ws_conn_outbound(const pr_ws_conn *c) { return outbound(c); }
