/* ws_internal.h: what the ws_*.c files of the connection layer share: the
 * connection and its buffers, the per-loop state, the stats counters and the
 * functions that cross files. Not part of the public API: include ws.h. */
#ifndef PR_WS_INTERNAL_H
#define PR_WS_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "ws.h"

#define READ_BUF_SIZE 65536

/* ---- stats (ws_conn.c) ---------------------------------------------------- */

extern _Atomic uint64_t ws_st_frames_in, ws_st_frames_out, ws_st_bytes_in, ws_st_bytes_out,
    ws_st_slow, ws_st_proto, ws_st_open, ws_st_writes;

#define STAT_ADD(s, n) atomic_fetch_add_explicit(&(s), (uint64_t)(n), memory_order_relaxed)
#define STAT_SUB(s, n) atomic_fetch_sub_explicit(&(s), (uint64_t)(n), memory_order_relaxed)
#define STAT_GET(s)    atomic_load_explicit(&(s), memory_order_relaxed)

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

/* ---- ws_loop.c: the per-loop state ---------------------------------------- */

/* The state of c's loop, made for its first connection; released from the
 * loop's thread (a close callback) by each connection. */
lctx *ws_lctx_acquire(uv_loop_t *loop);
void ws_lctx_release(lctx *l);
/* n bytes from the loop's cork arena, valid until the rewind. */
void *ws_arena_alloc(lctx *l, size_t n);
/* Frees every block but the current one and empties it. */
void ws_arena_rewind(lctx *l);
/* (Re)starts c's one timer: ws_on_timer(c) runs `ms` from now (never once c
 * is closed); ws_timer_stop cancels it. */
void ws_timer_start(pr_ws_conn *c, uint64_t ms);
void ws_timer_stop(pr_ws_conn *c);

/* ---- ws_conn.c: closing and the timer ------------------------------------- */

/* Closes the socket now (the conn is freed after the close callbacks). */
void ws_teardown(pr_ws_conn *c, int code);
/* In DRAIN, once all our output is in libuv's queue, ask for the FIN after it. */
void ws_maybe_shutdown(pr_ws_conn *c);
/* Shut down our side after the queued output, discard input until EOF. */
void ws_enter_drain(pr_ws_conn *c);
/* The peer broke the protocol or a limit: close with `code`, then drain. */
void ws_conn_fail(pr_ws_conn *c, int code, const char *reason);
/* Closes with PR_WS_CLOSE_SLOW (the outbound limit was hit). */
void ws_slow_consumer(pr_ws_conn *c);
/* c's timer fired (kick the leftover, idle timeout, close timeout). */
void ws_on_timer(pr_ws_conn *c);

/* ---- ws_read.c: input ------------------------------------------------------ */

void ws_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
void ws_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
/* Keeps an incomplete frame's n bytes, with room for `want` in all. */
void ws_part_keep(pr_ws_conn *c, const uint8_t *p, size_t n, size_t want);
/* Processes the upgrade leftover (it may hold several frames). */
void ws_kick_leftover(pr_ws_conn *c);

/* ---- ws_write.c: output ---------------------------------------------------- */

/* Writes directly what the kernel takes and queues the rest (or collects it
 * while corked). 0, PR_EBUSY (refused: over max_out, unless `force`) or PR_EIO. */
int ws_out_write(pr_ws_conn *c, const uv_buf_t *b, unsigned nb, size_t total, int force);
/* One unfragmented frame through ws_out_write. */
int ws_send_frame(pr_ws_conn *c, int opcode, const void *data, size_t len, int force);

#endif
