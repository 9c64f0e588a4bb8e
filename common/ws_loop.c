/* ws_loop.c: the per-loop state of the WebSocket connections: the shared
 * read buffer, the cork arena and the timer heap (one uv_timer_t per loop
 * for every connection's one deadline). */
#include <stdlib.h>
#include <string.h>

#include "ws_internal.h"

#define ARENA_BLOCK 65536 /* the cork arena grows by blocks of (at least) this */

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

void *ws_arena_alloc(lctx *l, size_t n) {
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
void ws_arena_rewind(lctx *l) {
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

lctx *ws_lctx_acquire(uv_loop_t *loop) {
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
void ws_lctx_release(lctx *l) {
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
  ws_arena_rewind(l);
  pr_free(l->ablock);
  l->ablock = NULL;
  /* A loop torn down with uv_walk may have closed the timer already (without
   * our callback): then the memory stays, as the connections' would. */
  if (!uv_is_closing((uv_handle_t *)&l->timer)) uv_close((uv_handle_t *)&l->timer, lctx_free);
}

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

void ws_timer_stop(pr_ws_conn *c) {
  if (!c->hslot) return;
  heap_remove(c->lc, c);
  lctx_arm(c->lc);
}

/* (Re)starts c's one timer: ws_on_timer(c) runs `ms` from now (never once c is
 * closed: the heap must not hold a conn that is being freed). */
void ws_timer_start(pr_ws_conn *c, uint64_t ms) {
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
    ws_on_timer(c); /* may restart c's timer (for later) or close c */
  }
  lctx_arm(l);
}
