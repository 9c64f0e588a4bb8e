/* peers.c: the table of receive instances fanout sends to, their PUSH
 * sockets and their batch builders (see peers.h). */
#include "peers.h"

#include "base.h"
#include "log.h"
#include "strmap.h"

#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <stdio.h>
#include <string.h>

struct fanout_peer {
  char id[PR_ID_MAX + 1];
  char *addr;
  nng_socket sock;
  bool open;
  pr_batch_builder b;
};

struct fanout_peers {
  fanout_app *app;
  fanout_peer **v;
  size_t n, cap;
  fo_strmap index; /* id -> position in v */
};

fanout_peers *fanout_peers_new(fanout_app *app) {
  fanout_peers *ps = pr_calloc(1, sizeof(*ps));
  ps->app = app;
  fo_strmap_init(&ps->index);
  return ps;
}

static void peer_close(fanout_peer *p) {
  if (p->open) nng_close(p->sock);
  p->open = false;
}

static void peer_free(fanout_peer *p) {
  peer_close(p);
  pr_batch_builder_free(&p->b);
  pr_free(p->addr);
  pr_free(p);
}

static void reindex(fanout_peers *ps) {
  fo_strmap_clear(&ps->index);
  int added;
  for (size_t i = 0; i < ps->n; i++)
    fo_strmap_put(&ps->index, ps->v[i]->id, strlen(ps->v[i]->id), i, &added);
}

void fanout_peers_free(fanout_peers *ps) {
  if (!ps) return;
  for (size_t i = 0; i < ps->n; i++)
    peer_free(ps->v[i]);
  pr_free(ps->v);
  fo_strmap_free(&ps->index);
  pr_free(ps);
}

fanout_peer *fanout_peers_find(fanout_peers *ps, const char *id, size_t len) {
  size_t i;
  return fo_strmap_get(&ps->index, id, len, &i) ? ps->v[i] : NULL;
}

void fanout_peers_set(fanout_peers *ps, const char *id, const char *addr) {
  fanout_peer *p = fanout_peers_find(ps, id, strlen(id));
  if (p) {
    if (strcmp(p->addr, addr) != 0) {
      pr_log_info("peers", "instance moved", "instance=%s addr=%s", id, addr);
      peer_close(p); /* redialled at the next send */
      pr_free(p->addr);
      p->addr = pr_strdup(addr);
    }
    return;
  }
  p = pr_calloc(1, sizeof(*p));
  snprintf(p->id, sizeof(p->id), "%s", id);
  p->addr = pr_strdup(addr);
  pr_batch_builder_init(&p->b, pr_view_of(ps->app->worker));
  if (ps->n == ps->cap) {
    ps->cap = ps->cap ? ps->cap * 2 : 8;
    ps->v = pr_realloc(ps->v, ps->cap * sizeof(*ps->v));
  }
  ps->v[ps->n++] = p;
  reindex(ps);
  pr_log_info("peers", "instance added", "instance=%s addr=%s", id, addr);
}

static void remove_at(fanout_peers *ps, size_t i) {
  pr_log_info("peers", "instance removed", "instance=%s", ps->v[i]->id);
  peer_free(ps->v[i]);
  ps->v[i] = ps->v[--ps->n];
}

void fanout_peers_remove(fanout_peers *ps, const char *id) {
  size_t i;
  if (!fo_strmap_get(&ps->index, id, strlen(id), &i)) return;
  remove_at(ps, i);
  reindex(ps);
}

void fanout_peers_retain(fanout_peers *ps, const char *const *ids, size_t n) {
  bool changed = false;
  for (size_t i = ps->n; i-- > 0;) {
    bool keep = false;
    for (size_t j = 0; j < n && !keep; j++)
      keep = strcmp(ps->v[i]->id, ids[j]) == 0;
    if (!keep) {
      remove_at(ps, i);
      changed = true;
    }
  }
  if (changed) reindex(ps);
}

pr_batch_builder *fanout_peer_builder(fanout_peer *p) { return &p->b; }

static int peer_open(fanout_peers *ps, fanout_peer *p) {
  int rv = nng_push0_open(&p->sock);
  if (rv) goto fail;
  nng_socket_set_int(p->sock, NNG_OPT_SENDBUF, (int)ps->app->cfg.send_buffer);
  nng_socket_set_ms(p->sock, NNG_OPT_RECONNMINT, 50);
  nng_socket_set_ms(p->sock, NNG_OPT_RECONNMAXT, 1000);
  p->open = true;
  /* NONBLOCK: the dial (and every redial) goes on in the background; batches
   * wait in the send buffer meanwhile. */
  rv = nng_dial(p->sock, p->addr, NULL, NNG_FLAG_NONBLOCK);
  if (rv) goto fail;
  return 0;
fail:
  pr_log_warn("peers", "dial failed", "instance=%s addr=%s err=\"%s\"", p->id, p->addr,
              nng_strerror(rv));
  peer_close(p);
  return PR_EIO;
}

void fanout_peer_flush(fanout_peers *ps, fanout_peer *p) {
  fanout_metrics *m = &ps->app->m;
  uint32_t n = pr_batch_count(&p->b);
  const char *data;
  size_t len;
  if (n == 0 || pr_batch_finish(&p->b, &data, &len) != 0) goto done;
  if (!p->open && peer_open(ps, p) != 0) {
    pr_counter_add(m->drops[FANOUT_DROP_DIAL_FAILED], n);
    goto done;
  }
  int rv = nng_send(p->sock, (void *)data, len, NNG_FLAG_NONBLOCK);
  if (rv == 0) {
    pr_counter_inc(m->batches);
    pr_counter_add(m->deliveries, n);
    pr_histogram_observe(m->batch_size, n);
  } else {
    if (rv != NNG_EAGAIN)
      pr_log_warn("peers", "send failed", "instance=%s err=\"%s\"", p->id, nng_strerror(rv));
    pr_counter_add(m->drops[FANOUT_DROP_SEND_FULL], n);
  }
done:
  pr_batch_reset(&p->b);
}
