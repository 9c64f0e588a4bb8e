/* http_internal.h: the structures and functions shared by the http_*.c files
 * (server, read, write, request/response, router). Not part of the public
 * API: include http.h.
 *
 * Ownership: a conn belongs to its server and is freed in its tcp close
 * callback (or by pr_http_detach); a req belongs to its conn while it is
 * being read, then to whoever answers it (see http.h); an answered req that
 * waits for an earlier answer belongs to its conn's queue again. A conn's
 * `busy` part exists only while it has requests in flight, answers to write
 * or unparsed bytes, and is freed with the conn (or by the flusher, if the
 * conn went away while the busy part waited in the flush list). */
#ifndef PR_HTTP_INTERNAL_H
#define PR_HTTP_INTERNAL_H

#include <time.h>
#include "http.h"

#define HTTP_READ_BUF_SIZE 65536
#define HTTP_LINGER_MS     3000  /* how long a closing connection may take to flush */
#define HTTP_WRITE_HIGH    65536 /* unsent bytes above which pipelined requests wait */
#define HTTP_PIPELINE_MAX  32    /* requests dispatched and not yet written, per connection */
#define HTTP_OUT_BLOCK     4096  /* an output buffer; up to HTTP_OUT_POOL spares are kept, as */
#define HTTP_OUT_POOL      32    /* a malloc of >= 1 KiB costs ~10k instructions under churn */

/* Where the request being read is; plus the ends of a connection's life. */
enum conn_state {
  ST_WAIT,   /* between requests (new: head list; idle keep-alive: idle list; else pending) */
  ST_HEAD,   /* reading a request head (head list) */
  ST_BODY,   /* reading a request body (idle list) */
  ST_HOLD,   /* an Upgrade request, complete, waits until nothing else is in flight */
  ST_LINGER, /* last answer written, shutdown sent, draining reads (linger list) */
  ST_CLOSED, /* uv_close called (no list) */
};

/* The server's lists. The timed ones stay sorted by deadline because every
 * member of a list was appended with the same timeout. L_PENDING: waiting for
 * answers, no timer; L_READY: unparsed bytes or a held request to resume. */
enum { L_HEAD, L_IDLE, L_LINGER, L_PENDING, L_READY, L_COUNT, L_NONE = L_COUNT };

typedef struct conn conn;
typedef struct http_busy http_busy;

/* What a connection holds only while it is busy. */
struct http_busy {
  conn *conn;               /* NULL once the conn is gone (freed by the flusher) */
  http_busy *flush_next;    /* in srv's flush list */
  pr_http_req *head, *tail; /* dispatched and not yet written, oldest first (req->qnext) */
  unsigned count;           /* entries in that queue */
  char *in;                 /* bytes read and not yet parsed: in[in_off .. in_len) */
  uint32_t in_off, in_len, in_cap;
  char *out;                 /* answers ready, in order: out[HTTP_WOFF .. HTTP_WOFF + out_len) */
  uint32_t out_len, out_cap; /* out_cap counts the HTTP_WOFF prefix */
  uint8_t in_flush;
};

struct conn {
  uv_tcp_t *tcp; /* tcp->data == this conn */
  pr_http_server *srv;
  conn *prev, *next; /* in srv->lists[list] */
  uint64_t deadline; /* uv_now() ms, for the timed lists */
  pr_http_req *req;  /* being read (or held, ST_HOLD); not yet dispatched */
  http_busy *busy;   /* NULL while idle */
  uint32_t writes;   /* uv_write requests in flight */
  uint8_t list, state;
  uint8_t reading : 1, eof : 1, closing : 1, upgrading : 1;
  uint16_t err_status; /* set by a parser callback to fail the request */
  http_parser parser;
};

typedef struct {
  uint32_t name, value; /* offsets into req->head */
} http_hdr;

struct pr_http_req {
  conn *conn;               /* NULL once the client is gone */
  pr_http_server *srv;      /* NULL once the server is freed or the req answered */
  pr_http_req *prev, *next; /* in srv's list of dispatched, unanswered requests */
  pr_http_req *qnext;       /* in conn->busy's queue */
  char *head;               /* NUL-terminated strings: url, headers, path, query, ... */
  uint32_t head_len, head_cap;
  http_hdr *hdrs;
  unsigned nhdrs, hdrs_cap;
  char *body;
  size_t body_len, body_cap;
  size_t head_bytes; /* counted against max_header_bytes */
  char *resp;        /* an answer waiting for the earlier ones (pr_malloc) */
  uint32_t resp_len;
  uint32_t url, path, query, remote;
  uint32_t params[PR_HTTP_MAX_PARAMS];
  uint8_t nparams;
  uint8_t method;
  uint8_t keep_alive : 1, upgrade : 1, http10 : 1, dispatched : 1, answered : 1;
  uint8_t token; /* what the parser delivered last: 0 none, 1 url, 2 field, 3 value */
};

struct pr_http_server {
  uv_loop_t *loop;
  pr_http_opts opts;
  pr_http_handler handler;
  void *arg;
  uv_tcp_t listener;
  uv_timer_t timer;
  uv_idle_t idle;       /* resumes parsing (pipelined requests) outside callbacks */
  uv_prepare_t prepare; /* the flushers: answers of a loop turn become one write, */
  uv_check_t check;     /* before the loop blocks (prepare) and after I/O (check) */
  struct {
    conn *head, *tail;
  } lists[L_COUNT];
  http_busy *flush_head, *flush_tail;
  char *out_pool[HTTP_OUT_POOL]; /* spare HTTP_OUT_BLOCK output buffers */
  unsigned out_pooled;
  pr_http_req *reqs; /* dispatched, unanswered */
  size_t inflight;
  size_t nconns;
  size_t handles; /* open uv handles (listener, timer, idle, flushers, connections) */
  uint64_t timer_due;
  pr_http_stats stats;
  pr_http_done_cb done_cb;
  char *rbuf; /* the one read buffer */
  /* the conn whose bytes are being parsed from rbuf, and what is left of
   * them after the request just dispatched (for a detach from the handler) */
  conn *feed_conn;
  const char *feed_rest;
  size_t feed_rest_len;
  int port, last_err;
  uint8_t listening : 1, listener_closed : 1, draining : 1, freeing : 1;
  time_t date_sec;
  char date_line[48]; /* "Date: ...\r\n", renewed once a second */
  uint8_t date_line_len;
};

/* Write blocks start with room for their uv_write_t (one allocation, freed
 * in the write callback). */
#define HTTP_WOFF sizeof(uv_write_t)

/* 1 if c holds bytes read and not yet parsed. */
static inline int http_has_unparsed(const conn *c) {
  return c->busy && c->busy->in_off < c->busy->in_len;
}

/* http_server.c */
void http_conn_close(conn *c);
/* Appends c to `list`; a timed list gets deadline now + timeout_ms. */
void http_list_move(conn *c, int list, uint64_t timeout_ms);
/* c's busy part, made on first use. */
http_busy *http_busy_get(conn *c);
/* Graceful end once every answer is handed to libuv: shutdown, linger, close. */
void http_conn_end(conn *c);
/* Refuses the request being read with `status`; the connection then ends. */
void http_conn_fail(conn *c, int status);
/* Decides what c does next once answers may have been written. */
void http_conn_settle(conn *c);
/* Gives away c's socket and unparsed bytes and frees c (see pr_http_detach). */
int http_conn_detach(conn *c, pr_http_req *req, uv_tcp_t **tcp, char **leftover,
                     size_t *leftover_len); /* req: unlinked from the server already */

/* http_read.c */
/* Reads unless closed, at EOF, or holding too many unparsed bytes. */
void http_conn_update_reading(conn *c);
/* Resumes c from the loop if it holds something it may go on with. */
void http_conn_kick(conn *c);

/* http_write.c */
/* Gives b's output buffer back (to the server's spares or the allocator). */
void http_out_release(pr_http_server *s, http_busy *b);
/* Appends r to b's queue of requests in flight. */
void http_queue_push(http_busy *b, pr_http_req *r);
/* The date line for this second ("Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"). */
const char *http_date_line(pr_http_server *srv, size_t *len);
/* Queues an answer written by the server itself (an error, 100 Continue)
 * behind the requests in flight; copies data. */
void http_conn_queue_raw(conn *c, const char *data, size_t len);
/* Where req's answer (at most cap bytes) is to be written: straight into the
 * connection's output when every earlier answer is out, else a block of
 * req's own. Then http_conn_answered takes the len bytes written: they go
 * out at the end of the loop turn, after every earlier answer; req then
 * belongs to the conn. closes: the answer ends the connection. */
char *http_conn_answer_buf(conn *c, pr_http_req *req, size_t cap);
void http_conn_answered(conn *c, pr_http_req *req, size_t len, int closes);
/* 1 if no request may follow req's answer on c (its answer says close). */
int http_conn_answer_closes(conn *c, const pr_http_req *req);

/* http_req.c */
/* The room a response needs in front of its body, at most. */
size_t http_head_size(const char *ctype, size_t elen);
/* Writes the status line and headers of a response into out (room from
 * http_head_size) and counts it in the stats; returns the bytes written. */
size_t http_format_head(pr_http_server *srv, char *out, int status, const char *ctype,
                        const char *extra, size_t elen, size_t len, int keep_alive, int http10);
pr_http_req *http_req_new(void);
void http_req_free(pr_http_req *req);
/* Frees what a req keeps for its handler (strings, headers, body). */
void http_req_drop_input(pr_http_req *req);
void http_req_reserve(pr_http_req *req, size_t extra);
/* Appends s[0..len) to req->head; returns its offset. _str adds a NUL. */
uint32_t http_req_append(pr_http_req *req, const char *s, size_t len);
uint32_t http_req_append_str(pr_http_req *req, const char *s, size_t len);
/* Router helper: appends the percent-decoded capture found at
 * path[path_off .. path_off + len) as the next param. Returns 0, PR_EPROTO or
 * PR_EINVAL. (Offsets, not pointers: appending may move req->head.) */
int http_req_add_param(pr_http_req *req, size_t path_off, size_t len);

#endif
