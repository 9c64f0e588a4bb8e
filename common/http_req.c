/* http_req.c: what a handler sees of a request (accessors), and the answer
 * (pr_http_respond, pr_http_detach). A request keeps its strings in one
 * growable block (req->head) addressed by offsets. */
#include <string.h>
#include <strings.h>
#include "base.h"
#include "buf.h"
#include "http_internal.h"

/* ======================================================================
 * The request's storage
 * ====================================================================== */

pr_http_req *http_req_new(void) {
  pr_http_req *r = pr_calloc(1, sizeof *r);
  r->url = r->path = r->query = r->remote = UINT32_MAX;
  return r;
}

void http_req_free(pr_http_req *r) {
  pr_free(r->head);
  pr_free(r->hdrs);
  pr_free(r->body);
  pr_free(r);
}

void http_req_reserve(pr_http_req *r, size_t extra) {
  size_t need = (size_t)r->head_len + extra;
  if (need <= r->head_cap) return;
  size_t cap = r->head_cap ? r->head_cap : 256;
  while (cap < need)
    cap *= 2;
  r->head = pr_realloc(r->head, cap);
  r->head_cap = (uint32_t)cap;
}

uint32_t http_req_append(pr_http_req *r, const char *s, size_t len) {
  http_req_reserve(r, len);
  uint32_t off = r->head_len;
  memcpy(r->head + off, s, len);
  r->head_len += (uint32_t)len;
  return off;
}

uint32_t http_req_append_str(pr_http_req *r, const char *s, size_t len) {
  http_req_reserve(r, len + 1);
  uint32_t off = http_req_append(r, s, len);
  r->head[r->head_len++] = '\0';
  return off;
}

int http_req_add_param(pr_http_req *r, size_t path_off, size_t len) {
  if (r->nparams >= PR_HTTP_MAX_PARAMS || r->path == UINT32_MAX) return PR_EINVAL;
  http_req_reserve(r, len + 1); /* may move r->head: take the source after it */
  const char *raw = r->head + r->path + path_off;
  int n = pr_http_percent_decode(raw, len, r->head + r->head_len, len + 1, 0);
  if (n < 0) return n;
  r->params[r->nparams++] = r->head_len;
  r->head_len += (uint32_t)n + 1;
  return 0;
}

/* ======================================================================
 * Accessors
 * ====================================================================== */

static const char *head_str(const pr_http_req *r, uint32_t off) {
  return off == UINT32_MAX ? "" : r->head + off;
}

const char *pr_http_req_method(const pr_http_req *r) {
  return http_method_str((enum http_method)r->method);
}
enum http_method pr_http_req_method_id(const pr_http_req *r) { return (enum http_method)r->method; }
const char *pr_http_req_path(const pr_http_req *r) { return head_str(r, r->path); }
const char *pr_http_req_query_string(const pr_http_req *r) { return head_str(r, r->query); }
int pr_http_req_keep_alive(const pr_http_req *r) { return r->keep_alive; }
int pr_http_req_upgrade(const pr_http_req *r) { return r->upgrade; }
int pr_http_req_is_gone(const pr_http_req *r) { return r->conn == NULL; }
unsigned pr_http_req_nparams(const pr_http_req *r) { return r->nparams; }

const char *pr_http_req_header(const pr_http_req *r, const char *name) {
  for (unsigned i = 0; i < r->nhdrs; i++)
    if (strcasecmp(r->head + r->hdrs[i].name, name) == 0) return head_str(r, r->hdrs[i].value);
  return NULL;
}

const char *pr_http_req_body(const pr_http_req *r, size_t *len) {
  if (len) *len = r->body_len;
  return r->body ? r->body : "";
}

const char *pr_http_req_param(const pr_http_req *r, unsigned i) {
  return i < r->nparams ? r->head + r->params[i] : NULL;
}

const char *pr_http_req_remote(pr_http_req *r) {
  if (r->remote != UINT32_MAX) return r->head + r->remote;
  if (!r->conn) return "-";
  struct sockaddr_storage ss;
  int len = sizeof ss;
  char ip[64], out[80];
  if (uv_tcp_getpeername(r->conn->tcp, (struct sockaddr *)&ss, &len) != 0) return "-";
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    uv_ip6_name(a, ip, sizeof ip);
    snprintf(out, sizeof out, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    uv_ip4_name(a, ip, sizeof ip);
    snprintf(out, sizeof out, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
  }
  r->remote = http_req_append_str(r, out, strlen(out));
  return r->head + r->remote;
}

/* ======================================================================
 * Answering
 * ====================================================================== */

/* Unlinks a request from its server and frees it. */
static void req_release(pr_http_req *r) {
  pr_http_server *s = r->srv;
  if (s && r->dispatched) {
    if (r->prev)
      r->prev->next = r->next;
    else
      s->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    s->inflight--;
  }
  if (r->conn) r->conn->req = NULL;
  http_req_free(r);
}

int http_conn_send(conn *c, int status, const char *ctype, const char *extra, const void *body,
                   size_t len, int head_only, int keep_alive, int http10) {
  pr_http_server *s = c->srv;
  if (status < 200 || status > 599) status = 500;
  int no_body = status == 204 || status == 304;
  size_t blen = head_only || no_body ? 0 : len;
  size_t elen = extra ? strlen(extra) : 0;

  pr_buf b = PR_BUF_INIT;
  pr_buf_reserve(&b, HTTP_WOFF + 256 + (ctype ? strlen(ctype) : 0) + elen + blen);
  b.len = HTTP_WOFF; /* room for the uv_write_t */
  pr_buf_printf(&b, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, pr_http_status_text(status),
                http_date(s));
  if (ctype) pr_buf_printf(&b, "Content-Type: %s\r\n", ctype);
  if (!no_body) pr_buf_printf(&b, "Content-Length: %zu\r\n", len);
  if (!keep_alive)
    pr_buf_puts(&b, "Connection: close\r\n");
  else if (http10)
    pr_buf_puts(&b, "Connection: keep-alive\r\n");
  if (elen) pr_buf_append(&b, extra, elen);
  pr_buf_puts(&b, "\r\n");
  if (blen) pr_buf_append(&b, body, blen);

  if (status < 300)
    s->stats.responses_2xx++;
  else if (status < 400)
    s->stats.responses_3xx++;
  else if (status < 500)
    s->stats.responses_4xx++;
  else
    s->stats.responses_5xx++;

  size_t total;
  char *block = pr_buf_take(&b, &total);
  if (http_conn_write_block(c, block, total - HTTP_WOFF) < 0) {
    http_conn_close(c);
    return PR_EIO;
  }
  return 0;
}

void pr_http_respond(pr_http_req *req, int status, const char *content_type,
                     const char *extra_headers, const void *body, size_t len) {
  conn *c = req->conn;
  if (!c) { /* the client left while we worked */
    req_release(req);
    return;
  }
  int keep = req->keep_alive && !c->srv->draining && !(c->eof && !c->backlog_len);
  /* body and headers may point into req: send before freeing it */
  int r = http_conn_send(c, status, content_type, extra_headers, body, len,
                         req->method == HTTP_HEAD, keep, req->http10);
  req_release(req);
  if (r < 0) return;
  if (keep)
    http_conn_next(c);
  else
    http_conn_end(c);
}

void pr_http_respond_text(pr_http_req *req, int status, const char *text) {
  pr_http_respond(req, status, "text/plain; charset=utf-8", NULL, text, text ? strlen(text) : 0);
}

void pr_http_respond_json(pr_http_req *req, int status, const char *json) {
  pr_http_respond(req, status, "application/json", NULL, json, json ? strlen(json) : 0);
}

int pr_http_detach(pr_http_req *req, uv_tcp_t **tcp, char **leftover, size_t *leftover_len) {
  conn *c = req->conn;
  *tcp = NULL;
  *leftover = NULL;
  *leftover_len = 0;
  req_release(req);
  if (!c) return PR_ECLOSED;
  return http_conn_detach(c, tcp, leftover, leftover_len);
}
