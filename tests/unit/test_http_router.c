/* test_http_router.c: routing through a real server on loopback: captures,
 * 404, 405 + Allow, HEAD via GET, the fallback, and pattern validation. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "base.h"
#include "http.h"

static uv_loop_t loop;
static uv_async_t stop_async;
static pthread_t thread;
static pr_http_server *srv;
static pr_http_router *router;
static int port;

static void user_contact(pr_http_req *req, void *arg) {
  char body[2048];
  snprintf(body, sizeof body, "%s:%u:[%s][%s][%s]", (const char *)arg, pr_http_req_nparams(req),
           pr_http_req_param(req, 0), pr_http_req_param(req, 1),
           pr_http_req_param(req, 2) ? "?" : "null");
  pr_http_respond_text(req, 200, body);
}

static void plain(pr_http_req *req, void *arg) {
  char body[256];
  snprintf(body, sizeof body, "%s %s", (const char *)arg, pr_http_req_method(req));
  pr_http_respond_text(req, 200, body);
}

static void fallback(pr_http_req *req, void *arg) { pr_http_respond_text(req, 200, "fallback"); }

static void on_stop(uv_async_t *a) {
  pr_http_server_free(srv, NULL);
  uv_close((uv_handle_t *)a, NULL);
}

static void *run(void *arg) {
  uv_run(&loop, UV_RUN_DEFAULT);
  return NULL;
}

static void start(int with_fallback) {
  uv_loop_init(&loop);
  router = pr_http_router_new();
  cr_assert_eq(pr_http_router_add(router, "GET", "/v1/users/{}/contacts/{}", user_contact, "uc"),
               0);
  cr_assert_eq(
      pr_http_router_add(router, "DELETE", "/v1/users/{}/contacts/{}", user_contact, "del"), 0);
  cr_assert_eq(pr_http_router_add(router, "POST", "/v1/heartbeat", plain, "hb"), 0);
  cr_assert_eq(pr_http_router_add(router, "GET", "/healthz", plain, "health"), 0);
  cr_assert_eq(pr_http_router_add(router, "GET", "/", plain, "root"), 0);
  cr_assert_eq(pr_http_router_add(router, "PUT", "/v1/users/{}", user_contact, "put"), 0);
  if (with_fallback) pr_http_router_set_fallback(router, fallback, NULL);
  cr_assert_eq(pr_http_server_new(&loop, NULL, pr_http_router_handle, router, &srv), 0);
  cr_assert_eq(pr_http_server_listen(srv, "127.0.0.1:0"), 0);
  port = pr_http_server_port(srv);
  uv_async_init(&loop, &stop_async, on_stop);
  pthread_create(&thread, NULL, run, NULL);
}

static void stop(void) {
  uv_async_send(&stop_async);
  pthread_join(thread, NULL);
  cr_assert_eq(uv_loop_close(&loop), 0);
  pr_http_router_free(router);
}

/* Sends one request (Connection: close) and returns everything answered. */
static const char *ask(const char *method, const char *target) {
  static char out[8192];
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = {.tv_sec = 3};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char req[2048];
  int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nConnection: close\r\n\r\n", method, target);
  cr_assert_eq(send(fd, req, (size_t)n, 0), n);
  size_t len = 0;
  ssize_t r;
  while (len < sizeof out - 1 && (r = recv(fd, out + len, sizeof out - 1 - len, 0)) > 0)
    len += (size_t)r;
  out[len] = '\0';
  close(fd);
  return out;
}

static int status_of(const char *resp) {
  return strncmp(resp, "HTTP/1.1 ", 9) ? -1 : atoi(resp + 9);
}
static const char *body_of(const char *resp) {
  const char *p = strstr(resp, "\r\n\r\n");
  return p ? p + 4 : "";
}

TestSuite(http_router, .timeout = 30);

Test(http_router, captures_are_decoded) {
  start(0);
  const char *r = ask("GET", "/v1/users/al%20ice/contacts/b%2Fob?x=1");
  cr_assert_eq(status_of(r), 200, "%s", r);
  cr_assert_str_eq(body_of(r), "uc:2:[al ice][b/ob][null]");
  r = ask("DELETE", "/v1/users/a/contacts/b");
  cr_assert_str_eq(body_of(r), "del:2:[a][b][null]");
  r = ask("PUT", "/v1/users/z");
  cr_assert_str_eq(body_of(r), "put:1:[z][(null)][null]");
  stop();
}

/* Captures of every length, so that adding them lands at every position
 * relative to the request's storage growing (a capture must not be read from
 * storage that adding the previous one moved). */
Test(http_router, captures_of_every_length) {
  start(0);
  char target[1400], want[1400], a[600];
  for (int len = 1; len < 500; len += 3) {
    memset(a, 'a', (size_t)len);
    a[len] = '\0';
    snprintf(target, sizeof target, "/v1/users/%s/contacts/%%41%s", a, a);
    snprintf(want, sizeof want, "uc:2:[%s][A%s][null]", a, a);
    const char *r = ask("GET", target);
    cr_assert_str_eq(body_of(r), want, "length %d: %s", len, r);
  }
  stop();
}

Test(http_router, unknown_path_404) {
  start(0);
  cr_assert_eq(status_of(ask("GET", "/nope")), 404);
  cr_assert_eq(status_of(ask("GET", "/v1/users//contacts/b")), 404); /* empty capture */
  cr_assert_eq(status_of(ask("GET", "/v1/users/a/contacts/b/c")), 404);
  cr_assert_eq(status_of(ask("GET", "/healthz/")), 404);
  cr_assert_eq(status_of(ask("OPTIONS", "*")), 404);
  cr_assert_str_eq(body_of(ask("GET", "/")), "root GET");
  stop();
}

Test(http_router, wrong_method_405_with_allow) {
  start(0);
  const char *r = ask("GET", "/v1/heartbeat");
  cr_assert_eq(status_of(r), 405);
  cr_assert(strstr(r, "\r\nAllow: POST\r\n"), "%s", r);
  r = ask("POST", "/v1/users/a/contacts/b");
  cr_assert_eq(status_of(r), 405);
  cr_assert(strstr(r, "\r\nAllow: GET, DELETE, HEAD\r\n"), "%s", r);
  stop();
}

Test(http_router, head_uses_get_route) {
  start(0);
  const char *r = ask("HEAD", "/healthz");
  cr_assert_eq(status_of(r), 200, "%s", r);
  cr_assert(strstr(r, "\r\nContent-Length: 11\r\n"), "%s", r); /* "health HEAD" */
  cr_assert_str_eq(body_of(r), "");
  cr_assert_eq(status_of(ask("HEAD", "/v1/heartbeat")), 405);
  stop();
}

Test(http_router, bad_capture_encoding_400) {
  start(0);
  cr_assert_eq(status_of(ask("GET", "/v1/users/a%zz/contacts/b")), 400);
  cr_assert_eq(status_of(ask("GET", "/v1/users/a%00/contacts/b")), 400);
  stop();
}

Test(http_router, fallback_replaces_404) {
  start(1);
  const char *r = ask("GET", "/static/app.js");
  cr_assert_eq(status_of(r), 200);
  cr_assert_str_eq(body_of(r), "fallback");
  cr_assert_eq(status_of(ask("GET", "/v1/heartbeat")), 405); /* known path: still 405 */
  stop();
}

Test(http_router, bad_patterns_rejected) {
  pr_http_router *r = pr_http_router_new();
  cr_assert_eq(pr_http_router_add(r, "GET", "no-slash", plain, NULL), PR_EINVAL);
  cr_assert_eq(pr_http_router_add(r, "GET", "/a/{x}", plain, NULL), PR_EINVAL);
  cr_assert_eq(pr_http_router_add(r, "GET", "/a/b{}", plain, NULL), PR_EINVAL);
  cr_assert_eq(pr_http_router_add(r, "get", "/a", plain, NULL), PR_EINVAL);
  cr_assert_eq(pr_http_router_add(r, "", "/a", plain, NULL), PR_EINVAL);
  cr_assert_eq(pr_http_router_add(r, "GET", "/a", NULL, NULL), PR_EINVAL);
  cr_assert_eq(pr_http_router_add(r, "GET", "/{}/{}/{}/{}/{}/{}/{}/{}/{}", plain, NULL), PR_EINVAL);
  cr_assert_eq(pr_http_router_add(r, "GET", "/{}/{}/{}/{}/{}/{}/{}/{}", plain, NULL), 0);
  pr_http_router_free(r);
}
