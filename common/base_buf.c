/* base_buf.c: growable byte buffer. */
#include "buf.h"
#include "base.h"

#include <stdio.h>
#include <string.h>

void pr_buf_reserve(pr_buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1)
    cap *= 2;
  b->data = pr_realloc(b->data, cap);
  b->cap = cap;
}

void pr_buf_append(pr_buf *b, const void *data, size_t len) {
  pr_buf_reserve(b, len);
  if (len) memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
}

void pr_buf_puts(pr_buf *b, const char *s) { pr_buf_append(b, s, strlen(s)); }

void pr_buf_putc(pr_buf *b, char c) { pr_buf_append(b, &c, 1); }

void pr_buf_printf(pr_buf *b, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n > 0) {
    pr_buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    b->len += (size_t)n;
  }
  va_end(ap2);
}

void pr_buf_clear(pr_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

char *pr_buf_take(pr_buf *b, size_t *len) {
  if (!b->data) pr_buf_reserve(b, 0), b->data[0] = '\0';
  char *p = b->data;
  if (len) *len = b->len;
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}

void pr_buf_consume(pr_buf *b, size_t n) {
  if (n >= b->len) {
    pr_buf_clear(b);
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  b->data[b->len] = '\0';
}

void pr_buf_free(pr_buf *b) {
  pr_free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
