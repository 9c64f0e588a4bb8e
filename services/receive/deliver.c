/* deliver.c: nng PULL -> bounded queue -> loop -> decode -> pushes. */
#include "deliver.h"
#include "base.h"
#include "batch.h"
#include "conn.h"
#include "json_out.h"
#include "log.h"
#include "registry.h"
#include "versions.h"
#include "event.h"

#include <arpa/inet.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

struct recv_deliver {
  recv_app *app;
  nng_socket sock;
  nng_aio *aio;
  uv_async_t async;
  pthread_mutex_t mu;
  nng_msg **queue; /* filled by the nng thread, under mu */
  size_t qlen;
  nng_msg **work;    /* swapped with queue by the loop */
  size_t held_bytes; /* under mu: bytes of the messages queued or being handled */
  size_t max_bytes;  /* --deliver-queue-max-bytes */
  atomic_uint_fast64_t queue_drops;
  /* the last delivery accepted in the batch being decoded: a delivery split
   * by the builder (too many recipients) repeats its version and must pass */
  uint64_t last_key, last_version;
  recv_corks corks; /* connections pushed to in this loop callback */
};

/* ---- nng thread --------------------------------------------------------------- */

static void on_recv(void *arg) {
  recv_deliver *d = arg;
  int rv = nng_aio_result(d->aio);
  if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) return; /* closing: do not re-arm */
  if (rv == 0) {
    nng_msg *m = nng_aio_get_msg(d->aio);
    size_t len = nng_msg_len(m);
    bool queued = false;
    pthread_mutex_lock(&d->mu);
    /* bounded by count and by bytes; one message is always taken when none
     * is held, so that a message of any accepted size can pass */
    if (d->qlen < RECV_DELIVER_QUEUE_MAX &&
        (d->held_bytes == 0 || d->held_bytes + len <= d->max_bytes)) {
      d->queue[d->qlen++] = m;
      d->held_bytes += len;
      queued = true;
    }
    pthread_mutex_unlock(&d->mu);
    if (queued)
      uv_async_send(&d->async);
    else {
      atomic_fetch_add(&d->queue_drops, 1);
      nng_msg_free(m);
    }
  }
  nng_recv_aio(d->sock, d->aio);
}

/* ---- loop thread ------------------------------------------------------------- */

/* A relayed heartbeat (broadcast = "heartbeats") repeats the last version:
 * it is not a change, so it takes its own frame type and skips the version
 * rule; a connection still waiting for its snapshot does not need it. */
static void relay(recv_deliver *d, const pr_delivery *dl) {
  recv_app *app = d->app;
  pr_presence_entry e = {dl->user, pr_status_name(dl->status), dl->last_seen, dl->version};
  pr_buf *frame = recv_scratch();
  pr_json_heartbeat(frame, &e);
  size_t pos = 0;
  pr_view r;
  while (pr_id_list_next(&dl->recipients, &pos, &r)) {
    recv_user *u = recv_registry_find(app->reg, r.p, r.len);
    for (recv_conn *c = u ? u->conns : NULL; c; c = c->unext)
      if (!c->snapshot_pending) recv_conn_send_corked(c, frame, &d->corks);
  }
  pr_counter_inc(app->m.deliveries);
}

static int visit(const pr_delivery *dl, void *arg) {
  recv_deliver *d = arg;
  recv_app *app = d->app;
  if (dl->kind == PR_EVENT_HEARTBEAT) {
    relay(d, dl);
    return 0;
  }
  uint64_t key = recv_versions_key(dl->user.p, dl->user.len);
  bool split = key == d->last_key && dl->version == d->last_version;
  if (!split && !recv_versions_accept(app->versions, key, dl->version)) {
    pr_counter_inc(app->m.drops[RECV_DROP_STALE]);
    return 0;
  }
  d->last_key = key;
  d->last_version = dl->version;
  pr_counter_inc(app->m.deliveries);

  pr_presence_entry e = {dl->user, pr_status_name(dl->status), dl->last_seen, dl->version};
  pr_buf *frame = recv_scratch();
  pr_json_presence(frame, &e);
  size_t pos = 0;
  pr_view r;
  while (pr_id_list_next(&dl->recipients, &pos, &r)) {
    recv_user *u = recv_registry_find(app->reg, r.p, r.len);
    if (!u) continue; /* gone meanwhile */
    for (recv_conn *c = u->conns; c; c = c->unext)
      recv_conn_push(c, &e, frame, &d->corks);
  }
  return 0;
}

static void on_async(uv_async_t *h) {
  recv_deliver *d = h->data;
  pthread_mutex_lock(&d->mu);
  nng_msg **batch = d->queue;
  size_t n = d->qlen;
  d->queue = d->work;
  d->qlen = 0;
  d->work = batch;
  pthread_mutex_unlock(&d->mu);
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) {
    nng_msg *m = batch[i];
    bytes += nng_msg_len(m);
    if (!d->app->finished) {
      d->last_key = d->last_version = 0;
      pr_view sender = {0};
      int rc = pr_batch_decode(nng_msg_body(m), nng_msg_len(m), NULL, &sender, visit, d);
      if (rc != 0) {
        pr_counter_inc(d->app->m.drops[RECV_DROP_BAD_BATCH]);
        pr_log_warn("receive", "bad batch", "err=\"%s\" bytes=%zu", pr_strerror(rc),
                    nng_msg_len(m));
      }
    }
    nng_msg_free(m);
  }
  /* every frame of every batch above to one connection: one write */
  recv_corks_flush(&d->corks);
  if (n) {
    pthread_mutex_lock(&d->mu);
    d->held_bytes -= bytes;
    pthread_mutex_unlock(&d->mu);
  }
}

/* "tcp://<addr>:<port>" of the listener's bound address. */
static char *bound_url(nng_listener l) {
  nng_sockaddr sa;
  if (nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa) != 0) return NULL;
  char host[INET6_ADDRSTRLEN] = "";
  char *out = pr_malloc(INET6_ADDRSTRLEN + 16);
  if (sa.s_family == NNG_AF_INET) {
    inet_ntop(AF_INET, &sa.s_in.sa_addr, host, sizeof(host));
    snprintf(out, INET6_ADDRSTRLEN + 16, "tcp://%s:%u", host, ntohs(sa.s_in.sa_port));
  } else if (sa.s_family == NNG_AF_INET6) {
    inet_ntop(AF_INET6, sa.s_in6.sa_addr, host, sizeof(host));
    snprintf(out, INET6_ADDRSTRLEN + 16, "tcp://[%s]:%u", host, ntohs(sa.s_in6.sa_port));
  } else {
    pr_free(out);
    return NULL;
  }
  return out;
}

int recv_deliver_start(recv_app *app, const char *url, char **bound, char *err, size_t errlen) {
  recv_deliver *d = pr_calloc(1, sizeof(*d));
  d->app = app;
  d->queue = pr_malloc(RECV_DELIVER_QUEUE_MAX * sizeof(nng_msg *));
  d->work = pr_malloc(RECV_DELIVER_QUEUE_MAX * sizeof(nng_msg *));
  d->max_bytes = (size_t)app->cfg.deliver_queue_max_bytes;
  pthread_mutex_init(&d->mu, NULL);
  atomic_init(&d->queue_drops, 0);
  nng_listener l;
  int rv;
  bool sock_open = false;
  if ((rv = nng_pull0_open(&d->sock)) != 0) goto fail;
  sock_open = true;
  if ((rv = nng_socket_set_size(d->sock, NNG_OPT_RECVMAXSZ, PR_BATCH_MAX_BYTES)) != 0) goto fail;
  if ((rv = nng_listen(d->sock, url, &l, 0)) != 0) goto fail;
  if ((rv = nng_aio_alloc(&d->aio, on_recv, d)) != 0) goto fail;
  *bound = bound_url(l);
  if (!*bound) *bound = pr_strdup(url);
  uv_async_init(app->loop, &d->async, on_async);
  d->async.data = d;
  app->deliver = d;
  nng_recv_aio(d->sock, d->aio);
  return 0;
fail:
  snprintf(err, errlen, "nng listen %s: %s", url, nng_strerror(rv));
  if (sock_open) nng_close(d->sock);
  pthread_mutex_destroy(&d->mu);
  pr_free(d->queue);
  pr_free(d->work);
  pr_free(d);
  return rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ? PR_EINVAL : PR_EIO;
}

static void on_async_closed(uv_handle_t *h) {
  recv_deliver *d = h->data;
  recv_corks_free(&d->corks);
  pthread_mutex_destroy(&d->mu);
  pr_free(d->queue);
  pr_free(d->work);
  pr_free(d);
}

void recv_deliver_close(recv_deliver *d) {
  if (!d) return;
  nng_close(d->sock); /* the pending receive completes with NNG_ECLOSED */
  nng_aio_stop(d->aio);
  nng_aio_free(d->aio);
  for (size_t i = 0; i < d->qlen; i++)
    nng_msg_free(d->queue[i]);
  d->qlen = 0;
  d->app->deliver = NULL;
  uv_close((uv_handle_t *)&d->async, on_async_closed);
}

uint64_t recv_deliver_queue_drops(const recv_deliver *d) {
  return atomic_load(&((recv_deliver *)d)->queue_drops);
}
