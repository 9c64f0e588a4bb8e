/* base_alloc.c: the one allocator wrapper (out of memory aborts here), the
 * clocks and the string hash. */
#include "base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void oom(size_t n) {
  fprintf(stderr, "level=fatal msg=\"out of memory\" bytes=%zu\n", n);
  abort();
}

void *pr_malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom(n);
  return p;
}

void *pr_calloc(size_t count, size_t n) {
  void *p = calloc(count ? count : 1, n ? n : 1);
  if (!p) oom(count * n);
  return p;
}

void *pr_realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) oom(n);
  return q;
}

char *pr_strdup(const char *s) { return pr_strndup(s, strlen(s)); }

char *pr_strndup(const char *s, size_t n) {
  char *p = pr_malloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

void pr_free(void *p) { free(p); }

static uint64_t clock_ms(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t pr_now_mono_ms(void) { return clock_ms(CLOCK_MONOTONIC); }
uint64_t pr_now_wall_ms(void) { return clock_ms(CLOCK_REALTIME); }

uint64_t pr_hash64(const void *p, size_t n) {
  const unsigned char *s = p;
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ s[i]) * 1099511628211ull;
  return h;
}
