// clang-format off
// clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon tests/fuzz/fuzz_http.c common/http_*.c common/base_*.c -luv -lhttp_parser -lpthread -o fuzz_http && ./fuzz_http -max_total_time=60
// clang-format on
/* fuzz_http.c: libFuzzer target for the HTTP server. Each input is written,
 * as one client's bytes followed by EOF, to a real server on loopback that
 * routes, answers (some answers late, some requests detached); the loop runs
 * until the server closes the connection. Also feeds the input to the pure
 * helpers (percent-decoding, host:port). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base.h"
#include "http.h"

static uv_loop_t loop;
static pr_http_server *srv;
static pr_http_router *router;
static int port;

static void on_timer_close(uv_handle_t *h) { pr_free(h); }

static void on_late(uv_timer_t *t) {
  pr_http_respond_text(t->data, 200, "late");
  uv_close((uv_handle_t *)t, on_timer_close);
}

static void on_any(pr_http_req *req, void *arg) {
  char v[64];
  size_t len;
  const char *body = pr_http_req_body(req, &len);
  pr_http_req_query(req, "a", v, sizeof v);
  pr_http_req_header(req, "Host");
  pr_http_req_remote(req);
  if (pr_http_req_nparams(req) && strcmp(pr_http_req_param(req, 0), "late") == 0) {
    uv_timer_t *t = pr_malloc(sizeof *t);
    uv_timer_init(&loop, t);
    t->data = req;
    uv_timer_start(t, on_late, 0, 0);
    return;
  }
  pr_http_respond(req, 200, "text/plain", "X-A: b\r\n", body, len);
}

static void on_tcp_close(uv_handle_t *h) { pr_free(h); }

static void on_upgrade(pr_http_req *req, void *arg) {
  if (!pr_http_req_upgrade(req)) {
    pr_http_respond_text(req, 426, "no");
    return;
  }
  uv_tcp_t *tcp;
  char *left;
  size_t left_len;
  if (pr_http_detach(req, &tcp, &left, &left_len) != 0) return;
  pr_free(left);
  uv_close((uv_handle_t *)tcp, on_tcp_close);
}

static void setup(void) {
  pr_http_opts o = {.header_timeout_ms = 200, .idle_timeout_ms = 200, .max_header_bytes = 4096};
  uv_loop_init(&loop);
  router = pr_http_router_new();
  pr_http_router_add(router, "GET", "/x/{}", on_any, NULL);
  pr_http_router_add(router, "POST", "/x/{}/y/{}", on_any, NULL);
  pr_http_router_add(router, "GET", "/ws", on_upgrade, NULL);
  if (pr_http_server_new(&loop, &o, pr_http_router_handle, router, &srv) != 0 ||
      pr_http_server_listen(srv, "127.0.0.1:0") != 0)
    abort();
  port = pr_http_server_port(srv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!srv) setup();

  char out[256], host[64];
  int p;
  pr_http_percent_decode((const char *)data, size, out, sizeof out, 1);
  char *s = pr_strndup((const char *)data, size < 200 ? size : 200);
  pr_http_parse_hostport(s, host, sizeof host, &p);
  pr_free(s);

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) abort();
  fcntl(fd, F_SETFL, O_NONBLOCK);
  size_t off = 0;
  int shut = 0;
  char sink[65536];
  for (int spins = 0; spins < 100000; spins++) {
    if (off < size) {
      ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
      if (n > 0)
        off += (size_t)n;
      else if (n < 0 && errno != EAGAIN)
        off = size;
    }
    if (off == size && !shut) shut = !shutdown(fd, SHUT_WR) || 1;
    uv_run(&loop, UV_RUN_NOWAIT);
    ssize_t r = recv(fd, sink, sizeof sink, 0);
    if (r == 0 || (r < 0 && errno != EAGAIN)) break; /* the server closed */
    if (r < 0) usleep(50);
  }
  close(fd);
  return 0;
}
