/* http_req.c: what a handler sees of a request (accessors), and the answer
 * (pr_http_respond, pr_http_detach). A request keeps its strings in one
 * growable block (req->head) addressed by offsets. */
#include <string.h>
#include <strings.h>
#include "base.h"
#include "http_internal.h"

/* ======================================================================
 * The request's storage
 * ====================================================================== */

pr_http_req *http_req_new(void) {
  pr_http_req *r = pr_calloc(1, sizeof *r);
  r->url = r->path = r->query = r->remote = UINT32_MAX;
  return r;
}

void http_req_drop_input(pr_http_req *r) {
  pr_free(r->head);
  pr_free(r->hdrs);
  pr_free(r->body);
  r->head = NULL;
  r->hdrs = NULL;
  r->body = NULL;
  r->head_len = r->head_cap = 0;
  r->nhdrs = r->hdrs_cap = 0;
  r->body_len = r->body_cap = 0;
}

void http_req_free(pr_http_req *r) {
  pr_free(r->head);
  pr_free(r->hdrs);
  pr_free(r->body);
  pr_free(r->resp);
  pr_free(r);
}

void http_req_reserve(pr_http_req *r, size_t extra) {
  size_t need = (size_t)r->head_len + extra;
  if (need <= r->head_cap) return;
  size_t cap = r->head_cap ? r->head_cap : 512; /* a head with a bearer token fits */
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

/* Unlinks an answered request from its server's list of unanswered ones. */
static void req_unlink(pr_http_req *r) {
  pr_http_server *s = r->srv;
  if (!s) return;
  if (r->prev)
    r->prev->next = r->next;
  else
    s->reqs = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
  r->srv = NULL;
  s->inflight--;
}

size_t http_head_size(const char *ctype, size_t elen) {
  /* status line 64, Date 48, Content-Length 40, Connection 24, CRLFs */
  return 192 + (ctype ? strlen(ctype) + 16 : 0) + elen;
}

static char *put(char *p, const char *s, size_t len) {
  memcpy(p, s, len);
  return p + len;
}
#define PUT_LIT(p, lit) put(p, lit, sizeof lit - 1)

static char *put_u64(char *p, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n)
    *p++ = tmp[--n];
  return p;
}

size_t http_format_head(pr_http_server *s, char *out, int status, const char *ctype,
                        const char *extra, size_t elen, size_t len, int keep_alive, int http10) {
  char *p = PUT_LIT(out, "HTTP/1.1 ");
  p[0] = (char)('0' + status / 100);
  p[1] = (char)('0' + status / 10 % 10);
  p[2] = (char)('0' + status % 10);
  p[3] = ' ';
  p += 4;
  const char *text = pr_http_status_text(status);
  p = put(p, text, strlen(text));
  p = PUT_LIT(p, "\r\n");
  size_t dlen;
  const char *date = http_date_line(s, &dlen);
  p = put(p, date, dlen);
  if (ctype) {
    p = PUT_LIT(p, "Content-Type: ");
    p = put(p, ctype, strlen(ctype));
    p = PUT_LIT(p, "\r\n");
  }
  if (status != 204 && status != 304) { /* no body there: a length would be wrong */
    p = PUT_LIT(p, "Content-Length: ");
    p = put_u64(p, len);
    p = PUT_LIT(p, "\r\n");
  }
  if (!keep_alive)
    p = PUT_LIT(p, "Connection: close\r\n");
  else if (http10)
    p = PUT_LIT(p, "Connection: keep-alive\r\n");
  if (elen) p = put(p, extra, elen);
  p = PUT_LIT(p, "\r\n");

  if (status < 300)
    s->stats.responses_2xx++;
  else if (status < 400)
    s->stats.responses_3xx++;
  else if (status < 500)
    s->stats.responses_4xx++;
  else
    s->stats.responses_5xx++;
  return (size_t)(p - out);
}

void pr_http_respond(pr_http_req *req, int status, const char *content_type,
                     const char *extra_headers, const void *body, size_t len) {
  conn *c = req->conn;
  req_unlink(req);
  if (!c) { /* the client left while we worked */
    http_req_free(req);
    return;
  }
  if (status < 200 || status > 599) status = 500;
  int no_body = status == 204 || status == 304;
  size_t blen = req->method == HTTP_HEAD || no_body ? 0 : len;
  size_t elen = extra_headers ? strlen(extra_headers) : 0;
  int closes = http_conn_answer_closes(c, req);
  /* body and headers may point into req: written before its input is freed */
  char *out = http_conn_answer_buf(c, req, http_head_size(content_type, elen) + blen);
  size_t n = http_format_head(c->srv, out, status, content_type, extra_headers, elen, len, !closes,
                              req->http10);
  if (blen) memcpy(out + n, body, blen);
  http_conn_answered(c, req, n + blen, closes);
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
  req_unlink(req);
  if (!c) {
    http_req_free(req);
    return PR_ECLOSED;
  }
  return http_conn_detach(c, req, tcp, leftover, leftover_len);
}
