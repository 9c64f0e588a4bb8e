/* http_internal.h: the structures shared by the http_*.c files (server,
 * request/response, router). Not part of the public API: include http.h.
 *
 * Ownership: a conn belongs to its server and is freed in its tcp close
 * callback (or by pr_http_detach); a req belongs to its conn while it is
 * being read, then to whoever answers it (see http.h). */
#ifndef PR_HTTP_INTERNAL_H
#define PR_HTTP_INTERNAL_H

#include <time.h>
#include "http.h"

#define HTTP_READ_BUF_SIZE 65536
#define HTTP_LINGER_MS     3000  /* how long a closing connection may take to flush */
#define HTTP_WRITE_HIGH    65536 /* unsent bytes above which pipelined requests wait */

/* Where a connection is in its life; each state lives in one list. */
enum conn_state {
  ST_WAIT,    /* no request bytes yet (new: head list; keep-alive: idle list) */
  ST_HEAD,    /* reading a request head (head list) */
  ST_BODY,    /* reading a request body (idle list) */
  ST_PENDING, /* request handed to the handler, unanswered (pending list) */
  ST_READY,   /* answered; buffered requests wait their turn (ready or pending list) */
  ST_LINGER,  /* last answer written, shutdown sent, draining reads (linger list) */
  ST_CLOSED,  /* uv_close called (no list) */
};

/* The server's lists. The timed ones stay sorted by deadline because every
 * member of a list was appended with the same timeout. */
enum { L_HEAD, L_IDLE, L_LINGER, L_PENDING, L_READY, L_COUNT, L_NONE = L_COUNT };

typedef struct conn conn;
struct conn {
  uv_tcp_t *tcp; /* tcp->data == this conn */
  pr_http_server *srv;
  conn *prev, *next; /* in srv->lists[list] */
  uint64_t deadline; /* uv_now() ms, for the timed lists */
  pr_http_req *req;  /* being read, or dispatched and unanswered */
  char *backlog;     /* bytes read after a complete request (pr_malloc) */
  uint32_t backlog_len, backlog_cap;
  uint32_t writes; /* uv_write requests in flight */
  uint8_t list, state;
  uint8_t reading : 1, eof : 1, wait_write : 1;
  uint16_t err_status; /* set by a parser callback to fail the request */
  http_parser parser;
};

typedef struct {
  uint32_t name, value; /* offsets into req->head */
} http_hdr;

struct pr_http_req {
  conn *conn;               /* NULL once the client is gone */
  pr_http_server *srv;      /* NULL once the server is freed */
  pr_http_req *prev, *next; /* in srv's list of dispatched requests */
  char *head;               /* NUL-terminated strings: url, headers, path, query, ... */
  uint32_t head_len, head_cap;
  http_hdr *hdrs;
  unsigned nhdrs, hdrs_cap;
  char *body;
  size_t body_len, body_cap;
  size_t head_bytes; /* counted against max_header_bytes */
  uint32_t url, path, query, remote;
  uint32_t params[PR_HTTP_MAX_PARAMS];
  uint8_t nparams;
  uint8_t method;
  uint8_t keep_alive : 1, upgrade : 1, http10 : 1, dispatched : 1;
  uint8_t token; /* what the parser delivered last: 0 none, 1 url, 2 field, 3 value */
};

struct pr_http_server {
  uv_loop_t *loop;
  pr_http_opts opts;
  pr_http_handler handler;
  void *arg;
  uv_tcp_t listener;
  uv_timer_t timer;
  uv_idle_t idle; /* runs buffered (pipelined) requests outside callbacks */
  struct {
    conn *head, *tail;
  } lists[L_COUNT];
  pr_http_req *reqs; /* dispatched, unanswered */
  size_t inflight;
  size_t nconns;
  size_t handles; /* open uv handles (listener, timer, idle, connections) */
  uint64_t timer_due;
  pr_http_stats stats;
  pr_http_done_cb done_cb;
  char *rbuf; /* the one read buffer */
  int port, last_err;
  uint8_t listening : 1, listener_closed : 1, draining : 1, freeing : 1;
  time_t date_sec;
  char date[40];
};

/* Response blocks start with room for their uv_write_t (one allocation,
 * freed in the write callback). */
#define HTTP_WOFF sizeof(uv_write_t)

/* http_server.c */
void http_conn_close(conn *c);
void http_conn_end(conn *c);  /* graceful: shutdown, linger, close */
void http_conn_next(conn *c); /* after a keep-alive answer */
const char *http_date(pr_http_server *srv);
/* Writes block[HTTP_WOFF .. HTTP_WOFF + len) (block from pr_malloc) and frees
 * the block when done. Returns 0, or PR_EIO (block freed, c left open). */
int http_conn_write_block(conn *c, char *block, size_t len);
int http_conn_write(conn *c, const char *data, size_t len); /* copies data */
/* Gives away c's socket and buffered bytes and frees c (see pr_http_detach). */
int http_conn_detach(conn *c, uv_tcp_t **tcp, char **leftover, size_t *leftover_len);

/* http_req.c */
pr_http_req *http_req_new(void);
void http_req_free(pr_http_req *req);
void http_req_reserve(pr_http_req *req, size_t extra);
/* Appends s[0..len) to req->head; returns its offset. _str adds a NUL. */
uint32_t http_req_append(pr_http_req *req, const char *s, size_t len);
uint32_t http_req_append_str(pr_http_req *req, const char *s, size_t len);
/* Writes a whole response on c (counted in stats); returns 0, or PR_EIO after
 * closing c. */
int http_conn_send(conn *c, int status, const char *ctype, const char *extra, const void *body,
                   size_t len, int head_only, int keep_alive, int http10);
/* Router helper: appends the percent-decoded capture found at
 * path[path_off .. path_off + len) as the next param. Returns 0, PR_EPROTO or
 * PR_EINVAL. (Offsets, not pointers: appending may move req->head.) */
int http_req_add_param(pr_http_req *req, size_t path_off, size_t len);

#endif
