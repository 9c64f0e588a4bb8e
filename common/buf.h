/* buf.h: a growable byte buffer, the one used to build responses and frames.
 *
 * Ownership: the buffer owns `data`; pr_buf_free releases it; pr_buf_take
 * hands it to the caller (who frees it with pr_free) and empties the buffer. */
#ifndef PR_BUF_H
#define PR_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct {
  char *data;
  size_t len, cap;
} pr_buf;

#define PR_BUF_INIT                                                                                \
  { NULL, 0, 0 }

void pr_buf_reserve(pr_buf *b, size_t extra);
void pr_buf_append(pr_buf *b, const void *data, size_t len);
void pr_buf_puts(pr_buf *b, const char *s);
void pr_buf_putc(pr_buf *b, char c);
void pr_buf_printf(pr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pr_buf_clear(pr_buf *b);              /* len = 0, keeps memory */
char *pr_buf_take(pr_buf *b, size_t *len); /* NUL-terminated; caller frees */
void pr_buf_consume(pr_buf *b, size_t n);  /* drops the first n bytes */
void pr_buf_free(pr_buf *b);

#endif
