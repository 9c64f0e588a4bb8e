/* http_util.c: the small pure helpers of the HTTP module: status texts,
 * percent-decoding, query lookup and "host:port" parsing. */
#include <ctype.h>
#include <string.h>
#include "base.h"
#include "http.h"

#include <stdio.h>

const char *pr_http_status_text(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 406: return "Not Acceptable";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 412: return "Precondition Failed";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Content";
  case 426: return "Upgrade Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Unknown";
  }
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

int pr_http_percent_decode(const char *in, size_t len, char *out, size_t outlen,
                           int plus_as_space) {
  size_t o = 0;
  if (outlen == 0 || len > (size_t)INT32_MAX) return PR_ETOOBIG;
  for (size_t i = 0; i < len; i++) {
    char ch = in[i];
    if (ch == '%') {
      int hi = i + 2 < len ? hexval(in[i + 1]) : -1;
      int lo = hi >= 0 ? hexval(in[i + 2]) : -1;
      if (lo < 0 || (hi | lo) == 0) return PR_EPROTO;
      ch = (char)(hi * 16 + lo);
      i += 2;
    } else if (ch == '+' && plus_as_space) {
      ch = ' ';
    } else if (ch == '\0') {
      return PR_EPROTO;
    }
    if (o + 1 >= outlen) return PR_ETOOBIG;
    out[o++] = ch;
  }
  out[o] = '\0';
  return (int)o;
}

int pr_http_req_query(const pr_http_req *req, const char *key, char *out, size_t outlen) {
  const char *q = pr_http_req_query_string(req);
  size_t klen = strlen(key);
  char name[256];
  while (*q) {
    const char *amp = strchr(q, '&');
    const char *end = amp ? amp : q + strlen(q);
    const char *eq = memchr(q, '=', (size_t)(end - q));
    const char *kend = eq ? eq : end;
    int n = pr_http_percent_decode(q, (size_t)(kend - q), name, sizeof name, 1);
    if (n >= 0 && (size_t)n == klen && memcmp(name, key, klen) == 0) {
      if (!eq) {
        if (outlen == 0) return PR_ETOOBIG;
        out[0] = '\0';
        return 0;
      }
      return pr_http_percent_decode(eq + 1, (size_t)(end - eq - 1), out, outlen, 1);
    }
    q = amp ? amp + 1 : end;
  }
  return -1;
}

static int host_char_ok(unsigned char ch, int bracketed) {
  if (bracketed) return isxdigit(ch) || ch == ':' || ch == '.';
  return isalnum(ch) || ch == '.' || ch == '-' || ch == '_';
}

int pr_http_parse_hostport(const char *s, char *host, size_t hostlen, int *port) {
  if (!s || !host || hostlen == 0 || !port) return PR_EINVAL;
  const char *h, *hend, *colon;
  int bracketed = s[0] == '[';
  if (bracketed) {
    h = s + 1;
    hend = strchr(h, ']');
    if (!hend || hend[1] != ':') return PR_EINVAL;
    colon = hend + 1;
  } else {
    h = s;
    colon = strrchr(s, ':');
    if (!colon) return PR_EINVAL;
    hend = colon;
  }
  size_t hl = (size_t)(hend - h);
  if (hl == 0 || hl >= hostlen) return PR_EINVAL;
  for (const char *p = h; p < hend; p++)
    if (!host_char_ok((unsigned char)*p, bracketed)) return PR_EINVAL;
  const char *p = colon + 1;
  size_t digits = strlen(p);
  if (digits == 0 || digits > 5) return PR_EINVAL;
  long v = 0;
  for (; *p; p++) {
    if (*p < '0' || *p > '9') return PR_EINVAL;
    v = v * 10 + (*p - '0');
  }
  if (v > 65535) return PR_EINVAL;
  memcpy(host, h, hl);
  host[hl] = '\0';
  *port = (int)v;
  return 0;
}

/* The error code word of the JSON bodies the server and router write. */
static const char *error_code(int status) {
  switch (status) {
  case 400: return "bad_request";
  case 404: return "not_found";
  case 405: return "method_not_allowed";
  case 408: return "request_timeout";
  case 413: return "body_too_large";
  case 431: return "headers_too_large";
  default: return status >= 500 ? "internal" : "error";
  }
}

int pr_http_error_body(int status, char *out, size_t outlen) {
  int n = snprintf(out, outlen, "{\"error\":\"%s\",\"message\":\"%s\"}", error_code(status),
                   pr_http_status_text(status));
  return n < 0 || (size_t)n >= outlen ? PR_ETOOBIG : n;
}

void pr_http_respond_error(pr_http_req *req, int status, const char *extra_headers) {
  char body[128];
  int n = pr_http_error_body(status, body, sizeof body);
  pr_http_respond(req, status, "application/json", extra_headers, body, n > 0 ? (size_t)n : 0);
}
