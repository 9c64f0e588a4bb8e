/* http.h: the HTTP/1.1 server every service uses (libuv + http-parser), with a
 * small router and the hand-off of Upgrade requests to the WebSocket module.
 *
 * Ownership: the server owns its connections and every pr_http_req it hands
 * to a handler until the handler answers it with exactly one of
 * pr_http_respond* or pr_http_detach; after that call the req is gone. A req
 * whose client disconnected stays valid until that call (which then does
 * nothing but free it). The router is owned by the caller (pr_http_router_free
 * after the server is freed). Strings returned by pr_http_req_* live as long
 * as the req.
 *
 * Lean by design: reads go into one 64 KiB buffer per server, a connection
 * keeps bytes only while a request is incomplete or may not be parsed yet,
 * an idle keep-alive connection is its uv_tcp_t plus ~110 bytes (its queue
 * of requests in flight exists only while there are some), answers are
 * written with uv_try_write, those of one loop turn together, and all
 * timeouts run off one timer per server. */
#ifndef PR_HTTP_H
#define PR_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <http_parser.h>
#include <uv.h>

/* ---- server ------------------------------------------------------------ */

/* Limits; a field left 0 takes its default. The server answers and closes
 * when a limit is broken: 431 (head bytes or header count), 413 (body, by
 * Content-Length before reading it, or chunked as it arrives), 408 (request
 * head not complete within header_timeout_ms, or its body not complete within
 * idle_timeout_ms of the head), 400 (malformed). */
typedef struct {
  size_t max_header_bytes;    /* request line + headers; default 8192 */
  unsigned max_headers;       /* default 64 */
  size_t max_body_bytes;      /* default 65536 */
  unsigned header_timeout_ms; /* default 10000; also bounds a silent new connection */
  unsigned idle_timeout_ms;   /* idle keep-alive connections are closed; default 60000 */
  unsigned max_connections;   /* beyond it new connections are accepted and closed; 10000 */
  int listen_backlog;         /* default 511 */
} pr_http_opts;

#define PR_HTTP_DEFAULT_MAX_HEADER_BYTES  8192
#define PR_HTTP_DEFAULT_MAX_HEADERS       64
#define PR_HTTP_DEFAULT_MAX_BODY_BYTES    65536
#define PR_HTTP_DEFAULT_HEADER_TIMEOUT_MS 10000
#define PR_HTTP_DEFAULT_IDLE_TIMEOUT_MS   60000
#define PR_HTTP_DEFAULT_MAX_CONNECTIONS   10000
#define PR_HTTP_MAX_PARAMS                8 /* `{}` captures per route */

typedef struct pr_http_server pr_http_server;
typedef struct pr_http_req pr_http_req;

/* Called once per complete request, on the loop thread. The handler answers
 * now or later (after an async Redis reply) with pr_http_respond* or
 * pr_http_detach. Pipelined requests are handed over without waiting for
 * the earlier answers, up to 32 per connection in flight (then the
 * connection reads no further); answers go out in request order whatever
 * order they are given in. A request after Connection: close is never
 * handed over; an Upgrade request only once every earlier one is answered
 * and written, and nothing after it until it is answered or detached. */
typedef void (*pr_http_handler)(pr_http_req *req, void *arg);
/* Called by pr_http_server_free once every handle is closed. */
typedef void (*pr_http_done_cb)(void *arg);

typedef struct {
  uint64_t requests; /* complete requests handed to the handler */
  uint64_t responses_2xx, responses_3xx, responses_4xx, responses_5xx;
  uint64_t bad_requests;        /* 400, 413 and 431 sent by the server itself */
  uint64_t timeouts;            /* 408 sent, or a silent new connection closed */
  uint64_t connections_open;    /* now (detached ones no longer count) */
  uint64_t connections_total;   /* accepted since start, refused ones excluded */
  uint64_t connections_refused; /* closed at once over max_connections */
} pr_http_stats;

/* Creates a server on `loop`; `opts` may be NULL (all defaults). `handler` and
 * `arg` receive every request (pass pr_http_router_handle and a router to
 * route). Returns 0 and *out, or PR_EINVAL. */
int pr_http_server_new(uv_loop_t *loop, const pr_http_opts *opts, pr_http_handler handler,
                       void *arg, pr_http_server **out);
/* Binds and listens on "ip:port" ("127.0.0.1:8080", "[::1]:0", "0.0.0.0:8081");
 * port 0 picks a free port. Returns 0, PR_EINVAL (bad address) or PR_EIO
 * (bind/listen failed: pr_http_server_error() says why). */
int pr_http_server_listen(pr_http_server *srv, const char *hostport);
/* The bound port after a successful listen, else 0. */
int pr_http_server_port(const pr_http_server *srv);
/* A static text for the last listen failure ("address already in use"). */
const char *pr_http_server_error(const pr_http_server *srv);
/* Drain (SIGTERM): stops listening, closes idle keep-alive connections now,
 * lets requests being read or answered finish (their responses carry
 * Connection: close) and closes each connection after its answer. Watch
 * pr_http_server_inflight() and stats.connections_open reach 0, then free. */
void pr_http_server_stop_accepting(pr_http_server *srv);
/* Requests handed to the handler and not yet answered (disconnected ones
 * included until answered). */
size_t pr_http_server_inflight(const pr_http_server *srv);
void pr_http_server_stats(const pr_http_server *srv, pr_http_stats *out);
/* Closes the listener and every connection, then frees the server and calls
 * done_cb(arg) (arg: the handler's arg given to pr_http_server_new) once all
 * its handles are closed; done_cb may be NULL. Unanswered requests become
 * orphans: answering them later just frees them. Detached sockets are not
 * touched. */
void pr_http_server_free(pr_http_server *srv, pr_http_done_cb done_cb);

/* ---- request ----------------------------------------------------------- */

const char *pr_http_req_method(const pr_http_req *req);         /* "GET" */
enum http_method pr_http_req_method_id(const pr_http_req *req); /* HTTP_GET */
/* Path without the query, raw (not percent-decoded), e.g. "/v1/users/a%20b". */
const char *pr_http_req_path(const pr_http_req *req);
/* Raw query string without '?', "" when there is none. */
const char *pr_http_req_query_string(const pr_http_req *req);
/* The first header of that name (case-insensitive), or NULL if absent. */
const char *pr_http_req_header(const pr_http_req *req, const char *name);
/* The first query parameter `key`, percent-decoded ('+' is a space), copied
 * NUL-terminated into out. Returns its length, -1 if absent, PR_ETOOBIG if it
 * does not fit in outlen (including the NUL), PR_EPROTO if badly encoded. A
 * key without '=' has the value "". */
int pr_http_req_query(const pr_http_req *req, const char *key, char *out, size_t outlen);
/* The body (NUL-terminated for convenience; len excludes the NUL). Never NULL. */
const char *pr_http_req_body(const pr_http_req *req, size_t *len);
int pr_http_req_keep_alive(const pr_http_req *req); /* 1 if the client keeps the connection */
int pr_http_req_upgrade(const pr_http_req *req);    /* 1 for Connection: Upgrade + Upgrade: */
/* The peer as "ip:port" ("[ip6]:port"), or "-" if the client is gone. */
const char *pr_http_req_remote(pr_http_req *req);
/* 1 if the connection is gone (reset by the client, failed, or the server
 * freed) while the request waited for its answer. A client that merely
 * half-closes (EOF) still gets the answer, as HTTP allows; writing to one
 * that closed fully fails quietly and ends the connection. */
int pr_http_req_is_gone(const pr_http_req *req);
/* Route captures (set by the router): the i-th `{}` segment, percent-decoded,
 * or NULL if there is no such capture. */
const char *pr_http_req_param(const pr_http_req *req, unsigned i);
unsigned pr_http_req_nparams(const pr_http_req *req);

/* ---- response ---------------------------------------------------------- */

/* Sends the answer and frees the req. Always writes Date and Content-Length
 * (except 204 and 304, which have no body and where a Content-Length would
 * be wrong: RFC 9110 8.6), the
 * Content-Type when given, `extra_headers` verbatim (each "Name: value\r\n"),
 * and Connection: close when the connection closes after it. For a HEAD
 * request the body is not sent (Content-Length still gives its length).
 * `status` must be 200..599 (others become 500). Harmless no-op (beyond
 * freeing the req) when the client is gone. */
void pr_http_respond(pr_http_req *req, int status, const char *content_type,
                     const char *extra_headers, const void *body, size_t len);
/* text/plain; charset=utf-8 */
void pr_http_respond_text(pr_http_req *req, int status, const char *text);
/* application/json; `json` is sent as is. */
void pr_http_respond_json(pr_http_req *req, int status, const char *json);
/* The errors the server and the router produce themselves (400, 404, 405,
 * 408, 413, 431) have a JSON body, like the services' own errors:
 * {"error":"not_found","message":"Not Found"}. pr_http_error_body writes it
 * into out (returns its length or PR_ETOOBIG); pr_http_respond_error answers
 * with it. */
int pr_http_error_body(int status, char *out, size_t outlen);
void pr_http_respond_error(pr_http_req *req, int status, const char *extra_headers);
/* "OK", "Not Found", ... ("Unknown" for codes it does not know). */
const char *pr_http_status_text(int status);

/* ---- upgrade hand-off (WebSocket) -------------------------------------- */

/* Takes the connection away from the HTTP server: it stops reading, drops the
 * connection from its timers, frees its own state and the req, and gives the
 * caller the socket (*tcp: allocated with pr_malloc, ->data set to NULL,
 * reading stopped; the caller owns it and must uv_close it and pr_free it in
 * the close callback) and the bytes already read after the request head
 * (*leftover: pr_malloc'd, caller frees with pr_free; NULL and 0 if none).
 * Nothing has been written for this request: the caller writes its own 101.
 * Works for the oldest unanswered request of its connection when nothing
 * after it has been read into a request and every earlier answer is written:
 * always so for one with pr_http_req_upgrade() (see pr_http_handler).
 * Returns 0; PR_ECLOSED if the client is already gone; PR_EBUSY if the
 * connection is not in that state (it is closed). In both error cases the
 * req is freed too and the outputs are NULL/0. */
int pr_http_detach(pr_http_req *req, uv_tcp_t **tcp, char **leftover, size_t *leftover_len);

/* ---- router ------------------------------------------------------------ */

/* Routes (method, pattern) to handlers. A pattern is an absolute path whose
 * segments are literal or `{}` (one non-empty segment, captured):
 * "/v1/users/{}/contacts/{}". The first route added that matches wins.
 * Dispatch: no pattern matches the path -> 404 (or the fallback handler if
 * one is set); the path matches but not the method -> 405 with an Allow
 * header; a capture with a bad %-escape or %00 -> 400. HEAD requests are
 * served by the GET route of that path (the response body is dropped by
 * pr_http_respond); Allow lists HEAD whenever GET is allowed. */
typedef struct pr_http_router pr_http_router;

pr_http_router *pr_http_router_new(void);
/* Returns 0, or PR_EINVAL (pattern not starting with '/', more than
 * PR_HTTP_MAX_PARAMS captures, empty method). */
int pr_http_router_add(pr_http_router *r, const char *method, const char *pattern,
                       pr_http_handler handler, void *arg);
/* Called instead of answering 404 for an unknown path (e.g. static files). */
void pr_http_router_set_fallback(pr_http_router *r, pr_http_handler handler, void *arg);
/* A pr_http_handler: pass it with the router as arg to pr_http_server_new. */
void pr_http_router_handle(pr_http_req *req, void *router);
void pr_http_router_free(pr_http_router *r);

/* ---- helpers ----------------------------------------------------------- */

/* Splits "host:port" ("127.0.0.1:8080", "[::1]:80", "redis:6379") into host
 * (brackets removed, NUL-terminated, at most hostlen-1 bytes) and port
 * 0..65535. Returns 0 or PR_EINVAL (no port, bad port, empty or too long or
 * odd host). Used for --listen validation. */
int pr_http_parse_hostport(const char *hostport, char *host, size_t hostlen, int *port);
/* Percent-decodes in[0..len) into out (NUL-terminated); '+' becomes a space
 * when plus_as_space. Returns the decoded length, PR_EPROTO for a bad escape
 * or an encoded NUL, PR_ETOOBIG if out is too small. */
int pr_http_percent_decode(const char *in, size_t len, char *out, size_t outlen, int plus_as_space);

#endif
