/* http_load.c: the pipelining HTTP/1.1 load client (http_load.h). Answers are
 * parsed just enough to find their status and their end (Content-Length). */
#define _GNU_SOURCE /* memmem */
#include "http_load.h"
#include "base.h"
#include "bench.h"
#include "http.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

typedef struct {
  http_load *l;
  uv_tcp_t tcp;
  uv_connect_t creq;
  int idx, up, closing;
  uint64_t *tags; /* ring of the requests in flight */
  double *sent_at;
  int head, inflight;
  pr_buf in;
} hconn;

struct http_load {
  uv_loop_t *loop;
  http_load_opts o;
  struct sockaddr_storage dst;
  hconn *c;
  uv_timer_t pacer;
  double t0;
  uint64_t seq, issued_by_pacer;
  int paused, closing_handles;
  http_load_stats st;
};

typedef struct {
  uv_write_t req;
  char data[];
} hwreq;

static void on_written(uv_write_t *w, int status) {
  (void)status;
  pr_free(w);
}

static void conn_connect(hconn *c);

static void on_closed(uv_handle_t *h) {
  hconn *c = h->data;
  http_load *l = c->l;
  if (l->closing_handles) {
    if (--l->closing_handles == 0) {
      for (int i = 0; i < l->o.conns; i++) {
        pr_free(l->c[i].tags);
        pr_free(l->c[i].sent_at);
        pr_buf_free(&l->c[i].in);
      }
      pr_free(l->c);
      pr_free(l);
    }
    return;
  }
  c->closing = 0;
  conn_connect(c); /* the server dropped us: connect again */
}

static void conn_fail(hconn *c) {
  if (c->closing) return;
  http_load *l = c->l;
  l->st.conn_failures++;
  while (c->inflight) { /* what was in flight is lost */
    int i = c->head;
    c->head = (c->head + 1) % l->o.pipeline;
    c->inflight--;
    l->st.answered++;
    l->st.errors++;
    if (l->o.on_answer) l->o.on_answer(0, c->tags[i], c->sent_at[i], l->o.arg);
  }
  pr_buf_clear(&c->in);
  c->up = 0;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* Issues up to n requests on c (bounded by its free slots); returns how many. */
static int conn_issue(hconn *c, int n) {
  http_load *l = c->l;
  if (!c->up || l->paused) return 0;
  int room = l->o.pipeline - c->inflight;
  if (n > room) n = room;
  if (l->o.limit && l->seq + (uint64_t)n > l->o.limit) n = (int)(l->o.limit - l->seq);
  if (n <= 0) return 0;
  pr_buf b = PR_BUF_INIT;
  double now = bench_now();
  for (int k = 0; k < n; k++) {
    int slot = (c->head + c->inflight) % l->o.pipeline;
    c->tags[slot] = l->o.make(&b, l->seq++, c->idx, l->o.arg);
    c->sent_at[slot] = now;
    c->inflight++;
  }
  l->st.sent += (uint64_t)n;
  hwreq *w = pr_malloc(sizeof(*w) + b.len);
  memcpy(w->data, b.data, b.len);
  uv_buf_t ub = uv_buf_init(w->data, (unsigned)b.len);
  pr_buf_free(&b);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, on_written) != 0) {
    pr_free(w);
    conn_fail(c);
  }
  return n;
}

/* Parses complete answers at the start of c->in; returns bytes consumed. */
static size_t parse_answers(hconn *c) {
  http_load *l = c->l;
  size_t off = 0;
  while (c->inflight && off < c->in.len) {
    const char *p = c->in.data + off;
    size_t n = c->in.len - off;
    const char *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end) break;
    size_t head = (size_t)(end - p) + 4;
    int status = 0;
    sscanf(p, "HTTP/1.%*d %d", &status);
    size_t body = 0;
    for (const char *h = strstr(p, "\r\n"); h && h < end; h = strstr(h + 2, "\r\n"))
      if (strncasecmp(h + 2, "Content-Length:", 15) == 0) body = (size_t)atol(h + 17);
    if (n < head + body) break;
    off += head + body;
    int i = c->head;
    c->head = (c->head + 1) % l->o.pipeline;
    c->inflight--;
    l->st.answered++;
    if (status >= 200 && status < 300)
      l->st.ok++;
    else
      l->st.errors++;
    if (l->o.on_answer) l->o.on_answer(status, c->tags[i], c->sent_at[i], l->o.arg);
  }
  return off;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  static char buf[65536];
  (void)h;
  (void)hint;
  *b = uv_buf_init(buf, sizeof(buf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  hconn *c = s->data;
  if (nread == 0) return;
  if (nread < 0) {
    conn_fail(c);
    return;
  }
  pr_buf_append(&c->in, b->base, (size_t)nread);
  pr_buf_consume(&c->in, parse_answers(c));
  if (c->l->o.rate <= 0) conn_issue(c, c->l->o.pipeline); /* closed loop: refill */
}

static void on_connect(uv_connect_t *r, int status) {
  hconn *c = r->data;
  if (status < 0) {
    if (status != UV_ECANCELED) conn_fail(c);
    return;
  }
  c->up = 1;
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (c->l->o.rate <= 0) conn_issue(c, c->l->o.pipeline);
}

static void conn_connect(hconn *c) {
  http_load *l = c->l;
  uv_tcp_init(l->loop, &c->tcp);
  c->tcp.data = c;
  const char *src = l->o.naddrs ? l->o.addrs[(size_t)c->idx % l->o.naddrs] : NULL;
  if (src) {
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    if (fd < 0 || uv_ip4_addr(src, 0, &a) != 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
        uv_tcp_open(&c->tcp, fd)) {
      if (fd >= 0) close(fd);
      conn_fail(c);
      return;
    }
  }
  c->creq.data = c;
  if (uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&l->dst, on_connect) != 0) conn_fail(c);
}

static void on_pace(uv_timer_t *t) {
  http_load *l = t->data;
  if (l->paused) return;
  uint64_t due = (uint64_t)((bench_now() - l->t0) * l->o.rate);
  if (due <= l->issued_by_pacer) return;
  uint64_t want = due - l->issued_by_pacer;
  /* spread over the connections, a share each, then whatever is left */
  int per = (int)(want / (uint64_t)l->o.conns) + 1;
  for (int i = 0; i < l->o.conns && want; i++) {
    int n = conn_issue(&l->c[i], per < (int)want ? per : (int)want);
    want -= (uint64_t)n;
    l->issued_by_pacer += (uint64_t)n;
  }
}

int http_load_start(uv_loop_t *loop, const http_load_opts *o, http_load **out) {
  char host[128];
  int port;
  if (!o->make || o->conns < 1 || o->pipeline < 1 ||
      pr_http_parse_hostport(o->url, host, sizeof(host), &port) != 0)
    return PR_EINVAL;
  http_load *l = pr_calloc(1, sizeof(*l));
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&l->dst) != 0) {
    pr_free(l);
    return PR_EINVAL;
  }
  l->loop = loop;
  l->o = *o;
  l->t0 = bench_now();
  l->c = pr_calloc((size_t)o->conns, sizeof(*l->c));
  for (int i = 0; i < o->conns; i++) {
    hconn *c = &l->c[i];
    c->l = l;
    c->idx = i;
    c->tags = pr_calloc((size_t)o->pipeline, sizeof(*c->tags));
    c->sent_at = pr_calloc((size_t)o->pipeline, sizeof(*c->sent_at));
    conn_connect(c);
  }
  uv_timer_init(loop, &l->pacer);
  l->pacer.data = l;
  if (o->rate > 0) uv_timer_start(&l->pacer, on_pace, 1, 1);
  *out = l;
  return 0;
}

void http_load_pause(http_load *l) {
  l->paused = 1;
  uv_timer_stop(&l->pacer);
}

void http_load_stats_get(const http_load *l, http_load_stats *out) { *out = l->st; }

static void on_pacer_closed(uv_handle_t *h) {
  http_load *l = h->data;
  if (--l->closing_handles == 0) {
    for (int i = 0; i < l->o.conns; i++) {
      pr_free(l->c[i].tags);
      pr_free(l->c[i].sent_at);
      pr_buf_free(&l->c[i].in);
    }
    pr_free(l->c);
    pr_free(l);
  }
}

void http_load_free(http_load *l) {
  l->paused = 1;
  l->closing_handles = 1;
  for (int i = 0; i < l->o.conns; i++) {
    hconn *c = &l->c[i];
    l->closing_handles++; /* a connection already closing counts down in on_closed too */
    if (c->closing) continue;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
  }
  uv_close((uv_handle_t *)&l->pacer, on_pacer_closed);
}
