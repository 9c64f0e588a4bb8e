/* test_http_server.c: the HTTP server over real loopback sockets. The loop
 * runs in a thread; the test talks to it with blocking sockets and runs code
 * on the loop through loop_call(). */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "base.h"
#include "http.h"

/* ---- the server side ---------------------------------------------------- */

typedef struct harness harness;
typedef void (*loop_fn)(harness *h, void *arg);

struct harness {
  uv_loop_t loop;
  uv_async_t stop, call;
  pthread_t thread;
  pr_http_server *srv;
  int port;
  loop_fn call_fn;
  void *call_arg;
  sem_t call_done;
  pr_http_req *held;       /* a request answered later by the test */
  pr_http_req *parked[64]; /* /park requests, answered later by the test in any order */
  int nparked;
  int held_gone;
  uv_tcp_t *detached;
  char detach_seen[256];
  pr_http_stats stats; /* snapshot taken on the loop */
  size_t inflight;
  int done_called;
};

static harness H;

typedef struct {
  uv_timer_t timer;
  pr_http_req *req;
} delayed;

static void on_delayed_close(uv_handle_t *t) { pr_free(t); }

static void on_delayed(uv_timer_t *t) {
  delayed *d = (delayed *)t;
  char body[128];
  snprintf(body, sizeof body, "%s %s", pr_http_req_method(d->req), pr_http_req_path(d->req));
  pr_http_respond_text(d->req, 200, body);
  uv_close((uv_handle_t *)t, on_delayed_close);
}

static void on_detached_close(uv_handle_t *t) {
  harness *h = t->data;
  h->detached = NULL;
  pr_free(t);
}

static void on_detached_write(uv_write_t *w, int status) { pr_free(w); }

static void detached_send(uv_tcp_t *t, const char *data, size_t len) {
  char *block = pr_malloc(sizeof(uv_write_t) + len);
  memcpy(block + sizeof(uv_write_t), data, len);
  uv_buf_t b = uv_buf_init(block + sizeof(uv_write_t), (unsigned)len);
  uv_write((uv_write_t *)block, (uv_stream_t *)t, &b, 1, on_detached_write);
}

static char detached_rbuf[4096];
static void detached_alloc(uv_handle_t *h, size_t s, uv_buf_t *b) {
  *b = uv_buf_init(detached_rbuf, sizeof detached_rbuf);
}

/* After the hand-off the socket echoes what it reads, prefixed, to show that
 * the new owner really drives it. */
static void detached_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  if (n < 0) {
    ((harness *)st->data)->detached = NULL;
    uv_close((uv_handle_t *)st, on_detached_close);
    return;
  }
  char out[4200];
  int len = snprintf(out, sizeof out, "ECHO:%.*s", (int)n, b->base);
  detached_send((uv_tcp_t *)st, out, (size_t)len);
}

static void handler(pr_http_req *req, void *arg) {
  harness *h = arg;
  const char *path = pr_http_req_path(req);
  char body[512];
  if (strncmp(path, "/async/", 7) == 0) {
    delayed *d = pr_malloc(sizeof *d);
    d->req = req;
    uv_timer_init(&h->loop, &d->timer);
    uv_timer_start(&d->timer, on_delayed, (uint64_t)atoi(path + 7), 0);
  } else if (strcmp(path, "/echo") == 0) {
    size_t len;
    const char *b = pr_http_req_body(req, &len);
    pr_http_respond(req, 200, "application/octet-stream", "X-Echo: yes\r\n", b, len);
  } else if (strcmp(path, "/query") == 0) {
    char a[32], b[32], c[32], small[2];
    int na = pr_http_req_query(req, "a", a, sizeof a);
    int nb = pr_http_req_query(req, "b", b, sizeof b);
    int nc = pr_http_req_query(req, "c", c, sizeof c);
    int nd = pr_http_req_query(req, "d", c, sizeof c);
    int ne = pr_http_req_query(req, "e", c, sizeof c);
    int nf = pr_http_req_query(req, "a", small, sizeof small);
    pr_http_req_query(req, "c", c, sizeof c);
    snprintf(body, sizeof body, "a=[%s]%d b=[%s]%d c=[%s]%d d=%d e=%d f=%d raw=[%s]", a, na, b, nb,
             c, nc, nd, ne == PR_EPROTO, nf == PR_ETOOBIG, pr_http_req_query_string(req));
    pr_http_respond_text(req, 200, body);
  } else if (strcmp(path, "/headers") == 0) {
    const char *x = pr_http_req_header(req, "x-MiXeD");
    const char *e = pr_http_req_header(req, "X-Empty");
    snprintf(body, sizeof body, "x=[%s] empty=[%s] missing=%d remote=%s ka=%d", x ? x : "(null)",
             e ? e : "(null)", pr_http_req_header(req, "Nope") == NULL, pr_http_req_remote(req),
             pr_http_req_keep_alive(req));
    pr_http_respond_text(req, 200, body);
  } else if (strcmp(path, "/upgrade") == 0) {
    if (!pr_http_req_upgrade(req)) {
      pr_http_respond_text(req, 426, "upgrade please\n");
      return;
    }
    uv_tcp_t *t;
    char *left;
    size_t left_len;
    if (pr_http_detach(req, &t, &left, &left_len) != 0) return;
    h->detached = t;
    snprintf(h->detach_seen, sizeof h->detach_seen, "data=%s", t->data ? "set" : "null");
    t->data = h;
    static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\n"
                             "Connection: Upgrade\r\n\r\n";
    detached_send(t, sw, sizeof sw - 1);
    char out[600];
    int n = snprintf(out, sizeof out, "LEFT[%.*s]", (int)left_len, left ? left : "");
    detached_send(t, out, (size_t)n);
    pr_free(left);
    uv_read_start((uv_stream_t *)t, detached_alloc, detached_read);
  } else if (strcmp(path, "/hold") == 0) {
    h->held = req;
  } else if (strncmp(path, "/park", 5) == 0 && h->nparked < (int)PR_ARRAY_LEN(h->parked)) {
    h->parked[h->nparked++] = req;
  } else {
    snprintf(body, sizeof body, "%s %s", pr_http_req_method(req), path);
    pr_http_respond_text(req, 200, body);
  }
}

static void on_done(void *arg) { ((harness *)arg)->done_called = 1; }

static void on_stop(uv_async_t *a) {
  harness *h = a->data;
  pr_http_server_stats(h->srv, &h->stats);
  pr_http_server_free(h->srv, on_done);
  h->srv = NULL;
  if (h->held) pr_http_respond_text(h->held, 200, "late"); /* an orphan by now */
  h->held = NULL;
  for (int i = 0; i < h->nparked; i++)
    if (h->parked[i]) pr_http_respond_text(h->parked[i], 200, "late");
  h->nparked = 0;
  if (h->detached) uv_close((uv_handle_t *)h->detached, on_detached_close);
  uv_close((uv_handle_t *)&h->stop, NULL);
  uv_close((uv_handle_t *)&h->call, NULL);
}

static void on_call(uv_async_t *a) {
  harness *h = a->data;
  h->call_fn(h, h->call_arg);
  sem_post(&h->call_done);
}

static void *loop_thread(void *arg) {
  uv_run(&((harness *)arg)->loop, UV_RUN_DEFAULT);
  return NULL;
}

static void loop_call(loop_fn fn, void *arg) {
  H.call_fn = fn;
  H.call_arg = arg;
  uv_async_send(&H.call);
  sem_wait(&H.call_done);
}

static void server_start(const pr_http_opts *opts) {
  memset(&H, 0, sizeof H);
  cr_assert_eq(uv_loop_init(&H.loop), 0);
  cr_assert_eq(pr_http_server_new(&H.loop, opts, handler, &H, &H.srv), 0);
  cr_assert_eq(pr_http_server_listen(H.srv, "127.0.0.1:0"), 0);
  H.port = pr_http_server_port(H.srv);
  cr_assert_gt(H.port, 0);
  uv_async_init(&H.loop, &H.stop, on_stop);
  uv_async_init(&H.loop, &H.call, on_call);
  H.stop.data = H.call.data = &H;
  sem_init(&H.call_done, 0, 0);
  pthread_create(&H.thread, NULL, loop_thread, &H);
}

/* Stops the server; H.stats then holds its final figures. */
static void server_stop(void) {
  uv_async_send(&H.stop);
  pthread_join(H.thread, NULL);
  cr_assert(H.done_called, "done_cb not called");
  cr_assert_eq(uv_loop_close(&H.loop), 0, "handles left open on the loop");
  sem_destroy(&H.call_done);
}

static void snap_stats(harness *h, void *arg) {
  pr_http_server_stats(h->srv, &h->stats);
  h->inflight = pr_http_server_inflight(h->srv);
  h->held_gone = h->held ? pr_http_req_is_gone(h->held) : -1;
}

/* Answers parked requests [from, to) last first, each with its path; then
 * forgets them (the ones answered). */
typedef struct {
  int from, to;
} park_range;

static void answer_parked(harness *h, void *arg) {
  park_range *r = arg;
  for (int i = r->to - 1; i >= r->from; i--) {
    if (!h->parked[i]) continue;
    char body[64];
    snprintf(body, sizeof body, "%s", pr_http_req_path(h->parked[i]));
    pr_http_respond_text(h->parked[i], 200, body);
    h->parked[i] = NULL;
  }
}

static void count_parked(harness *h, void *arg) {
  *(int *)arg = h->nparked;
  h->inflight = pr_http_server_inflight(h->srv);
  pr_http_server_stats(h->srv, &h->stats);
}

/* ---- the client side ---------------------------------------------------- */

typedef struct {
  int fd;
  char buf[1 << 17];
  size_t len;
} client;

typedef struct {
  int status;
  char head[16384];
  char body[1 << 17];
  size_t body_len;
} response;

static client *cli_open(void) {
  client *c = calloc(1, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)H.port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  cr_assert_eq(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
  struct timeval tv = {.tv_sec = 3};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return c;
}

static void cli_close(client *c) {
  close(c->fd);
  free(c);
}

static void cli_send(client *c, const void *data, size_t len) {
  const char *p = data;
  while (len) {
    ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
    if (n <= 0) return; /* the server may have closed: the reads will tell */
    p += n;
    len -= (size_t)n;
  }
}

static void cli_sends(client *c, const char *s) { cli_send(c, s, strlen(s)); }

/* Reads more bytes into c->buf; 0 at EOF/reset, -1 on timeout. */
static int cli_fill(client *c) {
  if (c->len == sizeof c->buf) return -1;
  ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
  if (n > 0) {
    c->len += (size_t)n;
    return 1;
  }
  if (n == 0 || errno == ECONNRESET) return 0;
  return -1;
}

static const char *resp_header(const response *r, const char *name) {
  static char val[1024];
  size_t nl = strlen(name);
  for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
    const char *line = p + 2;
    if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
      const char *v = line + nl + 1;
      while (*v == ' ')
        v++;
      const char *e = strstr(v, "\r\n");
      snprintf(val, sizeof val, "%.*s", (int)(e - v), v);
      return val;
    }
  }
  return NULL;
}

/* Reads one response; `head_only` for an answer to HEAD. Returns 0 or -1. */
static int cli_response_ex(client *c, response *r, int head_only) {
  char *end;
  c->buf[c->len] = '\0';
  while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
    if (cli_fill(c) <= 0) return -1;
  size_t hl = (size_t)(end - c->buf) + 4;
  memset(r, 0, sizeof *r);
  memcpy(r->head, c->buf, hl < sizeof r->head ? hl : sizeof r->head - 1);
  r->status = atoi(r->head + 9);
  const char *cl = resp_header(r, "Content-Length");
  size_t blen = cl && !head_only ? (size_t)atol(cl) : 0;
  while (c->len < hl + blen)
    if (cli_fill(c) <= 0) return -1;
  memcpy(r->body, c->buf + hl, blen);
  r->body_len = blen;
  memmove(c->buf, c->buf + hl + blen, c->len - hl - blen);
  c->len -= hl + blen;
  return 0;
}

static int cli_response(client *c, response *r) { return cli_response_ex(c, r, 0); }

/* 1 if the server closed the connection (after any unread bytes), -1 on timeout. */
static int cli_wait_closed(client *c) {
  for (;;) {
    c->len = 0;
    int r = cli_fill(c);
    if (r == 0) return 1;
    if (r < 0) return -1;
  }
}

static response R; /* big: keep it off the stack */

static void expect_status(client *c, int status) {
  cr_assert_eq(cli_response(c, &R), 0, "no response");
  cr_assert_eq(R.status, status, "status %d, wanted %d; head: %s", R.status, status, R.head);
}

/* ---- tests ---------------------------------------------------------------- */

TestSuite(http_server, .timeout = 30);

Test(http_server, simple_get) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "GET /hello?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /hello");
  cr_assert_not_null(resp_header(&R, "Date"));
  cr_assert_str_eq(resp_header(&R, "Content-Length"), "10");
  cr_assert_str_eq(resp_header(&R, "Content-Type"), "text/plain; charset=utf-8");
  cr_assert_null(resp_header(&R, "Connection"));
  cli_close(c);
  server_stop();
  cr_assert_eq(H.stats.requests, 1);
  cr_assert_eq(H.stats.responses_2xx, 1);
  cr_assert_eq(H.stats.connections_total, 1);
}

Test(http_server, keep_alive_two_requests) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "GET /one HTTP/1.1\r\nHost: t\r\n\r\n");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /one");
  cli_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "hello");
  cr_assert_str_eq(resp_header(&R, "X-Echo"), "yes");
  cli_close(c);
  server_stop();
  cr_assert_eq(H.stats.connections_total, 1);
  cr_assert_eq(H.stats.requests, 2);
}

Test(http_server, pipelined_in_order) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n"
               "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
               "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               "2\r\nxy\r\n1\r\nz\r\n0\r\n\r\n"
               "GET /d HTTP/1.1\r\nHost: t\r\n\r\n");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /a");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "abc");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "xyz");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /d");
  cli_close(c);
  server_stop();
}

Test(http_server, pipelined_async_in_order) {
  server_start(NULL);
  client *c = cli_open();
  /* the first waits longest: answered out of order they would show it */
  cli_sends(c, "GET /async/80 HTTP/1.1\r\n\r\nGET /async/30 HTTP/1.1\r\n\r\n"
               "GET /async/0 HTTP/1.1\r\n\r\nGET /sync HTTP/1.1\r\n\r\n");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /async/80");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /async/30");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /async/0");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /sync");
  cli_close(c);
  server_stop();
  cr_assert_eq(H.stats.requests, 4);
}

Test(http_server, many_pipelined_tiny_requests) {
  server_start(NULL);
  client *c = cli_open();
  static char big[40000];
  size_t len = 0;
  for (int i = 0; i < 1000; i++)
    len += (size_t)snprintf(big + len, sizeof big - len, "GET /%d HTTP/1.1\r\n\r\n", i);
  cli_send(c, big, len);
  for (int i = 0; i < 1000; i++) {
    char want[32];
    snprintf(want, sizeof want, "GET /%d", i);
    expect_status(c, 200);
    cr_assert_str_eq(R.body, want);
  }
  cli_close(c);
  server_stop();
  cr_assert_eq(H.stats.requests, 1000);
}

typedef struct {
  client *c;
  int n;
  size_t body;
} flood;

static void *flood_send(void *arg) {
  flood *f = arg;
  char *body = malloc(f->body);
  memset(body, 'f', f->body);
  char head[128];
  for (int i = 0; i < f->n; i++) {
    int hl =
        snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", f->body);
    body[0] = (char)('A' + i % 26);
    cli_send(f->c, head, (size_t)hl);
    cli_send(f->c, body, f->body);
  }
  free(body);
  return NULL;
}

/* The client pipelines far more than the socket buffers hold before reading
 * any answer: the server must pause (not buffer without bound) and resume,
 * keeping every answer in order. */
Test(http_server, pipelined_flood_with_slow_reader) {
  server_start(NULL);
  client *c = cli_open();
  flood f = {.c = c, .n = 300, .body = 32768};
  pthread_t t;
  pthread_create(&t, NULL, flood_send, &f);
  usleep(300000); /* let buffers fill up on both sides */
  for (int i = 0; i < f.n; i++) {
    expect_status(c, 200);
    cr_assert_eq(R.body_len, f.body);
    cr_assert_eq(R.body[0], 'A' + i % 26, "answer %d out of order", i);
  }
  pthread_join(t, NULL);
  cli_close(c);
  server_stop();
  cr_assert_eq(H.stats.requests, 300);
}

Test(http_server, headers_and_remote) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "GET /headers HTTP/1.1\r\nX-Mixed: Some Value\r\nX-Empty:\r\n\r\n");
  expect_status(c, 200);
  cr_assert(strncmp(R.body, "x=[Some Value] empty=[] missing=1 remote=127.0.0.1:", 51) == 0, "%s",
            R.body);
  cr_assert(strstr(R.body, " ka=1"), "%s", R.body);
  cli_close(c);
  server_stop();
}

Test(http_server, query_decoding) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "GET /query?a=x%20y+z&b&c=%2C%e2%82%AC&e=%zz HTTP/1.1\r\n\r\n");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "a=[x y z]5 b=[]0 c=[,\xe2\x82\xac]4 d=-1 e=1 f=1 "
                           "raw=[a=x%20y+z&b&c=%2C%e2%82%AC&e=%zz]");
  cli_close(c);
  server_stop();
}

Test(http_server, head_has_length_but_no_body) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "HEAD /thing HTTP/1.1\r\n\r\nGET /next HTTP/1.1\r\n\r\n");
  cr_assert_eq(cli_response_ex(c, &R, 1), 0);
  cr_assert_eq(R.status, 200);
  cr_assert_str_eq(resp_header(&R, "Content-Length"), "11"); /* "HEAD /thing" */
  expect_status(c, 200); /* would fail if a body had been sent */
  cr_assert_str_eq(R.body, "GET /next");
  cli_close(c);
  server_stop();
}

Test(http_server, http10_closes) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "GET /old HTTP/1.0\r\n\r\n");
  expect_status(c, 200);
  cr_assert_str_eq(resp_header(&R, "Connection"), "close");
  cr_assert_eq(cli_wait_closed(c), 1);
  cli_close(c);
  c = cli_open();
  cli_sends(c, "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  expect_status(c, 200);
  cr_assert_str_eq(resp_header(&R, "Connection"), "keep-alive");
  cli_sends(c, "GET /again HTTP/1.1\r\nConnection: close\r\n\r\n");
  expect_status(c, 200);
  cr_assert_str_eq(resp_header(&R, "Connection"), "close");
  cr_assert_eq(cli_wait_closed(c), 1);
  cli_close(c);
  server_stop();
}

Test(http_server, half_close_still_answered) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "GET /async/20 HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
  shutdown(c->fd, SHUT_WR);
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /async/20");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /b");
  cr_assert_eq(cli_wait_closed(c), 1);
  cli_close(c);
  server_stop();
}

Test(http_server, expect_continue) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "POST /echo HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  expect_status(c, 100);
  cli_sends(c, "data");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "data");
  cli_close(c);
  server_stop();
}

Test(http_server, oversized_header_431) {
  server_start(NULL);
  client *c = cli_open();
  static char req[12000];
  int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nX-Big: ");
  memset(req + n, 'a', 9000);
  memcpy(req + n + 9000, "\r\n\r\n", 5);
  cli_sends(c, req);
  expect_status(c, 431);
  cr_assert_str_eq(resp_header(&R, "Connection"), "close");
  cr_assert_eq(cli_wait_closed(c), 1);
  cli_close(c);
  server_stop();
  cr_assert_eq(H.stats.bad_requests, 1);
  cr_assert_eq(H.stats.responses_4xx, 1);
  cr_assert_eq(H.stats.requests, 0);
}

Test(http_server, too_many_headers_431) {
  pr_http_opts o = {.max_headers = 10};
  server_start(&o);
  client *c = cli_open();
  char req[2048];
  int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\n");
  for (int i = 0; i < 10; i++)
    n += snprintf(req + n, sizeof req - (size_t)n, "X-H%d: v\r\n", i);
  snprintf(req + n, sizeof req - (size_t)n, "\r\n");
  cli_sends(c, req); /* exactly at the limit: fine */
  expect_status(c, 200);
  snprintf(req + n, sizeof req - (size_t)n, "X-One-Too-Many: v\r\n\r\n");
  cli_sends(c, req);
  expect_status(c, 431);
  cr_assert_eq(cli_wait_closed(c), 1);
  cli_close(c);
  server_stop();
}

Test(http_server, default_max_headers_64) {
  server_start(NULL);
  client *c = cli_open();
  char req[4096];
  int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\n");
  for (int i = 0; i < 65; i++)
    n += snprintf(req + n, sizeof req - (size_t)n, "X-%d: v\r\n", i);
  snprintf(req + n, sizeof req - (size_t)n, "\r\n");
  cli_sends(c, req);
  expect_status(c, 431);
  cli_close(c);
  server_stop();
}

Test(http_server, body_too_big_content_length_413) {
  server_start(NULL);
  client *c = cli_open();
  /* refused from the head alone, before any body byte is sent */
  cli_sends(c, "POST /echo HTTP/1.1\r\nContent-Length: 65537\r\n\r\n");
  expect_status(c, 413);
  cr_assert_eq(cli_wait_closed(c), 1);
  cli_close(c);
  c = cli_open();
  static char body[65536];
  memset(body, 'b', sizeof body);
  cli_sends(c, "POST /echo HTTP/1.1\r\nContent-Length: 65536\r\n\r\n");
  cli_send(c, body, sizeof body); /* exactly the limit: accepted */
  expect_status(c, 200);
  cr_assert_eq(R.body_len, 65536);
  cli_close(c);
  server_stop();
  cr_assert_eq(H.stats.bad_requests, 1);
}

Test(http_server, body_too_big_chunked_413) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
  static char chunk[20000];
  memset(chunk, 'c', sizeof chunk);
  for (int i = 0; i < 4; i++) { /* 80000 bytes in all */
    cli_sends(c, "4e20\r\n");
    cli_send(c, chunk, sizeof chunk);
    cli_sends(c, "\r\n");
  }
  expect_status(c, 413);
  cr_assert_eq(cli_wait_closed(c), 1);
  cli_close(c);
  server_stop();
}

Test(http_server, malformed_400) {
  static const char *bad[] = {
      "GARBAGE\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
      "GET / HTTP/9.9x\r\n\r\n",
      "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "CONNECT example.org:443 HTTP/1.1\r\n\r\n",
  };
  server_start(NULL);
  for (size_t i = 0; i < PR_ARRAY_LEN(bad); i++) {
    client *c = cli_open();
    cli_sends(c, bad[i]);
    expect_status(c, 400);
    cr_assert_eq(cli_wait_closed(c), 1, "case %zu not closed", i);
    cli_close(c);
  }
  server_stop();
  cr_assert_eq(H.stats.bad_requests, PR_ARRAY_LEN(bad));
}

Test(http_server, header_timeout_408) {
  pr_http_opts o = {.header_timeout_ms = 150};
  server_start(&o);
  client *c = cli_open();
  cli_sends(c, "GET / HTTP/1.1\r\nHost: slo");
  uint64_t t0 = pr_now_mono_ms();
  expect_status(c, 408);
  cr_assert_eq(cli_wait_closed(c), 1);
  uint64_t took = pr_now_mono_ms() - t0;
  cr_assert(took >= 100 && took < 2000, "took %llu ms", (unsigned long long)took);
  cli_close(c);
  c = cli_open(); /* connects and says nothing: closed silently */
  cr_assert_eq(cli_wait_closed(c), 1);
  cr_assert_eq(c->len, 0);
  cli_close(c);
  server_stop();
  cr_assert_eq(H.stats.timeouts, 2);
}

Test(http_server, idle_keep_alive_closed) {
  pr_http_opts o = {.idle_timeout_ms = 150};
  server_start(&o);
  client *c = cli_open();
  cli_sends(c, "GET / HTTP/1.1\r\n\r\n");
  expect_status(c, 200);
  uint64_t t0 = pr_now_mono_ms();
  cr_assert_eq(cli_wait_closed(c), 1);
  cr_assert_lt(pr_now_mono_ms() - t0, 2000);
  cli_close(c);
  server_stop();
  cr_assert_eq(H.stats.timeouts, 0);
}

Test(http_server, max_connections) {
  pr_http_opts o = {.max_connections = 2};
  server_start(&o);
  client *a = cli_open(), *b = cli_open();
  cli_sends(a, "GET /a HTTP/1.1\r\n\r\n");
  expect_status(a, 200);
  cli_sends(b, "GET /b HTTP/1.1\r\n\r\n");
  expect_status(b, 200);
  client *c = cli_open();
  cr_assert_eq(cli_wait_closed(c), 1);
  cli_close(c);
  cli_sends(a, "GET /a2 HTTP/1.1\r\n\r\n"); /* the others still work */
  expect_status(a, 200);
  cli_close(a);
  cli_close(b);
  server_stop();
  cr_assert_eq(H.stats.connections_refused, 1);
  cr_assert_eq(H.stats.connections_total, 2);
}

static void respond_held(harness *h, void *arg) {
  pr_http_respond_text(h->held, 200, arg);
  h->held = NULL;
}

static void cli_reset(client *c) { /* close with RST: a client that is really gone */
  struct linger l = {.l_onoff = 1, .l_linger = 0};
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  cli_close(c);
}

static void wait_inflight(size_t n) {
  for (int i = 0; i < 400; i++) {
    loop_call(snap_stats, NULL);
    if (H.inflight == n) return;
    usleep(5000);
  }
  cr_assert_fail("inflight never reached %zu", n);
}

static void wait_no_connections(void) {
  for (int i = 0; i < 400; i++) {
    loop_call(snap_stats, NULL);
    if (H.stats.connections_open == 0) return;
    usleep(5000);
  }
  cr_assert_fail("connections still open");
}

Test(http_server, reset_while_pending) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "GET /hold HTTP/1.1\r\n\r\n");
  wait_inflight(1);
  cr_assert_eq(H.held_gone, 0);
  cli_reset(c);
  for (int i = 0; i < 400 && H.held_gone != 1; i++) {
    usleep(5000);
    loop_call(snap_stats, NULL);
  }
  cr_assert_eq(H.held_gone, 1);
  cr_assert_eq(H.stats.connections_open, 0);
  cr_assert_eq(H.inflight, 1);
  loop_call(respond_held, "too late"); /* a no-op that frees the request */
  loop_call(snap_stats, NULL);
  cr_assert_eq(H.inflight, 0);
  cr_assert_eq(H.stats.responses_2xx, 0);
  server_stop();
}

/* A plain close looks like a half-close (EOF) to the server: it still answers,
 * the write meets a closed peer, and nothing is left behind. */
Test(http_server, close_while_pending) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "GET /hold HTTP/1.1\r\n\r\n");
  wait_inflight(1);
  cli_close(c);
  usleep(20000);
  loop_call(respond_held, "late");
  wait_inflight(0);
  wait_no_connections();
  server_stop();
}

Test(http_server, answer_after_server_freed) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "GET /hold HTTP/1.1\r\n\r\n");
  wait_inflight(1);
  server_stop(); /* frees the server, then answers the held request: a no-op */
  cr_assert_eq(cli_wait_closed(c), 1);
  cr_assert_eq(c->len, 0);
  cli_close(c);
}

static void stop_accepting(harness *h, void *arg) { pr_http_server_stop_accepting(h->srv); }

Test(http_server, drain) {
  server_start(NULL);
  client *busy = cli_open(), *idle = cli_open();
  cli_sends(idle, "GET / HTTP/1.1\r\n\r\n");
  expect_status(idle, 200);
  cli_sends(busy, "GET /hold HTTP/1.1\r\n\r\n");
  wait_inflight(1);
  loop_call(stop_accepting, NULL);
  cr_assert_eq(cli_wait_closed(idle), 1);   /* idle keep-alive closed at once */
  int fd = socket(AF_INET, SOCK_STREAM, 0); /* no longer listening */
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)H.port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  cr_assert_neq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  close(fd);
  loop_call(respond_held, "finished");
  expect_status(busy, 200); /* the in-flight request is still served */
  cr_assert_str_eq(R.body, "finished");
  cr_assert_str_eq(resp_header(&R, "Connection"), "close");
  cr_assert_eq(cli_wait_closed(busy), 1);
  cli_close(busy);
  cli_close(idle);
  wait_no_connections();
  cr_assert_eq(H.inflight, 0);
  server_stop();
}

Test(http_server, detach_hands_over_socket_and_leftover) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n"
               "early-bytes");
  char *end;
  while (!(end = memmem(c->buf, c->len, "]", 1)))
    cr_assert_eq(cli_fill(c), 1, "no hand-off answer; got %.*s", (int)c->len, c->buf);
  c->buf[c->len] = '\0';
  cr_assert(strncmp(c->buf, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0, "%s", c->buf);
  cr_assert(strstr(c->buf, "\r\n\r\nLEFT[early-bytes]"), "%s", c->buf);
  cr_assert_str_eq(H.detach_seen, "data=null");
  c->len = 0;
  cli_sends(c, "ping");
  while (c->len < 9)
    cr_assert_eq(cli_fill(c), 1);
  cr_assert(memcmp(c->buf, "ECHO:ping", 9) == 0);
  loop_call(snap_stats, NULL);
  cr_assert_eq(H.stats.connections_open, 0); /* no longer the server's */
  cr_assert_eq(H.inflight, 0);
  cli_close(c);
  /* without the upgrade headers the same handler answers normally and the
   * connection stays HTTP */
  c = cli_open();
  cli_sends(c, "GET /upgrade HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n");
  expect_status(c, 426);
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /after");
  cli_close(c);
  server_stop();
}

Test(http_server, detach_without_leftover) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "GET /upgrade HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: x\r\n\r\n");
  while (!memmem(c->buf, c->len, "]", 1))
    cr_assert_eq(cli_fill(c), 1);
  c->buf[c->len] = '\0';
  cr_assert(strstr(c->buf, "\r\n\r\nLEFT[]"), "%s", c->buf);
  cli_close(c);
  server_stop();
}

/* Random and mutated bytes must never crash the server; each connection
 * ends (answered 400 or closed) and the server still answers afterwards. */
Test(http_server, random_bytes_never_crash, .timeout = 60) {
  pr_http_opts o = {.header_timeout_ms = 500, .max_header_bytes = 2048, .max_headers = 8};
  server_start(&o);
  static const char *seeds[] = {
      "GET /a?b=c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
      "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      "GET /upgrade HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: ws\r\n\r\n",
      "GET / HTTP/1.0\r\n\r\n",
  };
  unsigned seed = 12345;
  static char buf[4096];
  for (int iter = 0; iter < 400; iter++) {
    size_t len;
    if (iter % 2 == 0) { /* pure noise */
      len = 1 + (size_t)rand_r(&seed) % sizeof buf;
      for (size_t i = 0; i < len; i++)
        buf[i] = (char)rand_r(&seed);
    } else { /* a valid request with a few bytes flipped */
      const char *s = seeds[(size_t)rand_r(&seed) % PR_ARRAY_LEN(seeds)];
      len = strlen(s);
      memcpy(buf, s, len);
      for (int k = 0; k < 3; k++)
        buf[(size_t)rand_r(&seed) % len] = (char)rand_r(&seed);
    }
    client *c = cli_open();
    cli_send(c, buf, len);
    shutdown(c->fd, SHUT_WR);
    cr_assert_eq(cli_wait_closed(c), 1, "iteration %d: connection not closed", iter);
    cli_close(c);
  }
  client *c = cli_open();
  cli_sends(c, "GET /still-alive HTTP/1.1\r\n\r\n");
  expect_status(c, 200);
  cli_close(c);
  server_stop();
  cr_assert_gt(H.stats.bad_requests, 100);
}

Test(http_server, listen_errors) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  pr_http_server *s, *s2, *s3;
  cr_assert_eq(pr_http_server_new(&loop, NULL, handler, NULL, &s), 0);
  cr_assert_eq(pr_http_server_listen(s, "localhost:80"), PR_EINVAL); /* numeric only */
  cr_assert_eq(pr_http_server_listen(s, "127.0.0.1"), PR_EINVAL);
  cr_assert_eq(pr_http_server_port(s), 0);
  cr_assert_eq(pr_http_server_listen(s, "127.0.0.1:0"), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", pr_http_server_port(s));
  cr_assert_eq(pr_http_server_new(&loop, NULL, handler, NULL, &s2), 0);
  cr_assert_eq(pr_http_server_listen(s2, addr), PR_EIO);
  cr_assert_str_eq(pr_http_server_error(s2), uv_strerror(UV_EADDRINUSE));
  cr_assert_eq(pr_http_server_new(&loop, NULL, NULL, NULL, &s3), PR_EINVAL);
  cr_assert_null(s3);
  pr_http_server_free(s, NULL);
  pr_http_server_free(s2, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

/* Twenty pipelined requests whose answers come in reverse order (the first
 * waits longest): all are dispatched at once and still arrive in order. */
Test(http_server, pipelined_answers_out_of_order_arrive_in_order) {
  server_start(NULL);
  client *c = cli_open();
  char req[2048];
  size_t len = 0;
  for (int i = 0; i < 20; i++)
    len += (size_t)snprintf(req + len, sizeof req - len, "GET /async/%d HTTP/1.1\r\n\r\n",
                            200 - 10 * i);
  uint64_t t0 = pr_now_mono_ms();
  cli_send(c, req, len);
  for (int i = 0; i < 20; i++) {
    char want[32];
    snprintf(want, sizeof want, "GET /async/%d", 200 - 10 * i);
    expect_status(c, 200);
    cr_assert_str_eq(R.body, want);
  }
  /* one after the other they would take 2.1 s; dispatched together, ~0.2 s */
  uint64_t took = pr_now_mono_ms() - t0;
  cr_assert_lt(took, 1500, "took %llu ms: not dispatched together", (unsigned long long)took);
  cli_close(c);
  server_stop();
  cr_assert_eq(H.stats.requests, 20);
}

static int wait_parked(int n) {
  int got = -1;
  for (int i = 0; i < 400; i++) {
    loop_call(count_parked, &got);
    if (got == n) return got;
    usleep(5000);
  }
  return got;
}

/* At most 32 requests of one connection are in flight: the rest wait unread
 * (unparsed) until answers make room, then go on in order. */
Test(http_server, pipeline_bound_stops_dispatch) {
  server_start(NULL);
  client *c = cli_open();
  static char req[8192];
  size_t len = 0;
  for (int i = 0; i < 40; i++)
    len += (size_t)snprintf(req + len, sizeof req - len, "GET /park/%d HTTP/1.1\r\n\r\n", i);
  cli_send(c, req, len);
  cr_assert_eq(wait_parked(32), 32);
  usleep(50000);
  int got;
  loop_call(count_parked, &got);
  cr_assert_eq(got, 32, "the bound did not hold: %d dispatched", got);
  cr_assert_eq(H.stats.requests, 32);
  cr_assert_eq(H.inflight, 32);
  /* answer 1..31 first (they wait for 0): still no room, nothing written */
  loop_call(answer_parked, &(park_range){1, 32});
  usleep(50000);
  loop_call(count_parked, &got);
  cr_assert_eq(got, 32);
  cr_assert_eq(H.inflight, 1);
  struct timeval tv = {.tv_usec = 100000};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  cr_assert_eq(cli_fill(c), -1, "an answer came before the first one");
  tv.tv_sec = 3;
  tv.tv_usec = 0;
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  loop_call(answer_parked, &(park_range){0, 1});
  cr_assert_eq(wait_parked(40), 40); /* room again: the last 8 dispatched */
  loop_call(answer_parked, &(park_range){32, 40});
  for (int i = 0; i < 40; i++) {
    char want[32];
    snprintf(want, sizeof want, "/park/%d", i);
    expect_status(c, 200);
    cr_assert_str_eq(R.body, want);
  }
  cli_close(c);
  server_stop();
  cr_assert_eq(H.stats.requests, 40);
}

/* Bytes beyond the bound stay unparsed, and past the unparsed limit the
 * server stops reading: the client's sends then block. */
Test(http_server, pipeline_bound_stops_reading) {
  pr_http_opts o = {.max_header_bytes = 1024, .max_body_bytes = 1024};
  server_start(&o);
  client *c = cli_open();
  int rcv = 4096;
  setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &rcv, sizeof rcv);
  static char req[1 << 16];
  size_t len = 0;
  for (int i = 0; i < 32; i++)
    len += (size_t)snprintf(req + len, sizeof req - len, "GET /park/%d HTTP/1.1\r\n\r\n", i);
  cli_send(c, req, len);
  cr_assert_eq(wait_parked(32), 32);
  /* then as much as the server and the kernel take, without blocking */
  memset(req, 0, sizeof req);
  len = 0;
  while (len + 64 < sizeof req)
    len += (size_t)snprintf(req + len, sizeof req - len, "GET /x HTTP/1.1\r\n\r\n");
  size_t sent = 0;
  for (int i = 0; i < 2000; i++) {
    ssize_t n = send(c->fd, req + (sent % len), len - (sent % len), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0) {
      usleep(2000);
      if (send(c->fd, req, 1, MSG_DONTWAIT | MSG_NOSIGNAL) <= 0) break;
      sent++;
      continue;
    }
    sent += (size_t)n;
  }
  /* unbounded reading would swallow all of it (64 KiB x 2000); kernel
   * buffers hold at most a few MiB (tcp_rmem, tcp_wmem) */
  cr_assert_lt(sent, (size_t)16 << 20, "the server kept reading: %zu bytes taken", sent);
  cr_log_info("sent %zu bytes before blocking", sent);
  int got;
  loop_call(count_parked, &got);
  cr_assert_eq(got, 32);
  cli_reset(c); /* unseen until the server reads or writes again */
  loop_call(answer_parked, &(park_range){0, 32});
  wait_inflight(0);
  wait_no_connections();
  server_stop();
}

/* An Upgrade after pipelined requests is handed off only once every earlier
 * answer is written, with the bytes after it as leftover. */
Test(http_server, detach_after_pipelined_requests) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "GET /async/60 HTTP/1.1\r\n\r\nGET /a HTTP/1.1\r\n\r\nGET /async/10 HTTP/1.1\r\n\r\n"
               "GET /upgrade HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n"
               "after-upgrade");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /async/60");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /a");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /async/10");
  while (!memmem(c->buf, c->len, "]", 1))
    cr_assert_eq(cli_fill(c), 1, "no hand-off answer; got %.*s", (int)c->len, c->buf);
  c->buf[c->len] = '\0';
  cr_assert(strncmp(c->buf, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0, "%s", c->buf);
  cr_assert(strstr(c->buf, "\r\n\r\nLEFT[after-upgrade]"), "%s", c->buf);
  c->len = 0;
  cli_sends(c, "ping");
  while (c->len < 9)
    cr_assert_eq(cli_fill(c), 1);
  cr_assert(memcmp(c->buf, "ECHO:ping", 9) == 0);
  loop_call(snap_stats, NULL);
  cr_assert_eq(H.stats.connections_open, 0);
  cr_assert_eq(H.inflight, 0);
  cr_assert_eq(H.stats.requests, 4);
  cli_close(c);
  server_stop();
}

/* A client that goes away with answers queued behind an unanswered one:
 * the queued answers are dropped, the late answers only free their
 * requests, nothing is left over. */
Test(http_server, client_gone_with_answers_queued) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "GET /park/0 HTTP/1.1\r\n\r\nGET /park/1 HTTP/1.1\r\n\r\n"
               "GET /park/2 HTTP/1.1\r\n\r\nGET /park/3 HTTP/1.1\r\n\r\n");
  cr_assert_eq(wait_parked(4), 4);
  loop_call(answer_parked, &(park_range){1, 3}); /* queued behind /park/0 */
  loop_call(snap_stats, NULL);
  cr_assert_eq(H.inflight, 2);
  cli_reset(c);
  wait_no_connections();
  loop_call(answer_parked, &(park_range){0, 4}); /* orphans now */
  loop_call(snap_stats, NULL);
  cr_assert_eq(H.inflight, 0);
  cr_assert_eq(H.stats.responses_2xx, 2); /* the two formatted before the reset */
  /* the server is fine afterwards */
  c = cli_open();
  cli_sends(c, "GET /after HTTP/1.1\r\n\r\n");
  expect_status(c, 200);
  cli_close(c);
  server_stop();
}

/* The server's own error for a later request waits for the answers before
 * it, then the connection ends. */
Test(http_server, error_after_pipelined_requests_in_order) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "GET /async/50 HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGARBAGE\r\n\r\n");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /async/50");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /b");
  expect_status(c, 400);
  cr_assert_str_eq(resp_header(&R, "Connection"), "close");
  cr_assert_eq(cli_wait_closed(c), 1);
  cli_close(c);
  server_stop();
  cr_assert_eq(H.stats.bad_requests, 1);
}

/* Connection: close in the middle of a pipeline: the requests after it are
 * never handed to the handler. */
Test(http_server, pipelined_close_stops_there) {
  server_start(NULL);
  client *c = cli_open();
  cli_sends(c, "GET /async/30 HTTP/1.1\r\n\r\nGET /last HTTP/1.1\r\nConnection: close\r\n\r\n"
               "GET /never HTTP/1.1\r\n\r\n");
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /async/30");
  cr_assert_null(resp_header(&R, "Connection"));
  expect_status(c, 200);
  cr_assert_str_eq(R.body, "GET /last");
  cr_assert_str_eq(resp_header(&R, "Connection"), "close");
  cr_assert_eq(cli_wait_closed(c), 1);
  cli_close(c);
  server_stop();
  cr_assert_eq(H.stats.requests, 2);
}
