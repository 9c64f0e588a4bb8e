/* static_files.c: serves the demo page's files from --static-dir. */
#include "static_files.h"
#include "base.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATIC_MAX_BYTES (8u << 20)
#define STATIC_PATH_MAX  1024

static const struct {
  const char *ext, *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".json", "application/json"},
};

static const char *type_of(const char *path) {
  const char *dot = strrchr(path, '.');
  for (size_t i = 0; dot && i < PR_ARRAY_LEN(types); i++)
    if (strcmp(dot, types[i].ext) == 0) return types[i].type;
  return "application/octet-stream";
}

/* 1 if every segment of the decoded path is a plain name (no "", ".", "..",
 * hidden files, backslashes). A trailing '/' is allowed (index.html). */
static int path_is_safe(const char *p) {
  if (p[0] != '/') return 0;
  for (const char *s = p + 1; *s;) {
    const char *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n == 0 && e) return 0; /* "//" */
    if (n > 0 && s[0] == '.') return 0;
    if (memchr(s, '\\', n)) return 0;
    if (!e) break;
    s = e + 1;
  }
  return 1;
}

/* Reads the whole regular file; returns 0, PR_ENOTFOUND or PR_ETOOBIG. */
static int read_file(const char *path, char **data, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return PR_ENOTFOUND;
  struct stat st;
  int rc = PR_ENOTFOUND;
  char *buf = NULL;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) goto fail;
  rc = PR_ETOOBIG;
  if (st.st_size > (off_t)STATIC_MAX_BYTES) goto fail;
  buf = pr_malloc((size_t)st.st_size + 1);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
    if (r <= 0) {
      rc = PR_ENOTFOUND;
      goto fail;
    }
    got += (size_t)r;
  }
  close(fd);
  *data = buf;
  *len = got;
  return 0;
fail:
  pr_free(buf);
  close(fd);
  return rc;
}

void recv_static_handle(pr_http_req *req, void *arg) {
  const char *dir = arg;
  enum http_method m = pr_http_req_method_id(req);
  if (!dir) {
    pr_http_respond_text(req, 404, "not found\n");
    return;
  }
  if (m != HTTP_GET && m != HTTP_HEAD) {
    pr_http_respond(req, 405, "text/plain; charset=utf-8", "Allow: GET, HEAD\r\n",
                    "method not allowed\n", 19);
    return;
  }
  const char *raw = pr_http_req_path(req);
  char path[STATIC_PATH_MAX];
  int n = pr_http_percent_decode(raw, strlen(raw), path, sizeof(path) - 16, 0);
  if (n < 0 || !path_is_safe(path)) {
    pr_http_respond_text(req, 404, "not found\n");
    return;
  }
  if (path[n - 1] == '/') memcpy(path + n, "index.html", 11);
  char full[STATIC_PATH_MAX + 512];
  if ((size_t)snprintf(full, sizeof(full), "%s%s", dir, path) >= sizeof(full)) {
    pr_http_respond_text(req, 404, "not found\n");
    return;
  }
  char *data = NULL;
  size_t len = 0;
  int rc = read_file(full, &data, &len);
  if (rc != 0) {
    pr_http_respond_text(req, rc == PR_ETOOBIG ? 500 : 404,
                         rc == PR_ETOOBIG ? "file too large\n" : "not found\n");
    return;
  }
  pr_http_respond(req, 200, type_of(full),
                  "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n", data, len);
  pr_free(data);
}
