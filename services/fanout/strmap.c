/* strmap.c: linear probing over a power-of-two table, FNV-1a hashes, grown
 * at half full. No removal: callers clear and refill (see strmap.h). */
#include "strmap.h"

#include "base.h"

#include <stdint.h>
#include <string.h>

static uint64_t hash(const char *s, size_t len) { return pr_hash64(s, len); }

void fo_strmap_init(fo_strmap *m) { memset(m, 0, sizeof(*m)); }

void fo_strmap_free(fo_strmap *m) {
  pr_free(m->keys);
  pr_free(m->lens);
  pr_free(m->vals);
  memset(m, 0, sizeof(*m));
}

void fo_strmap_clear(fo_strmap *m) {
  if (m->cap) memset(m->keys, 0, m->cap * sizeof(*m->keys));
  m->n = 0;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t find(const fo_strmap *m, const char *key, size_t len) {
  size_t i = (size_t)hash(key, len) & (m->cap - 1);
  while (m->keys[i] && (m->lens[i] != len || memcmp(m->keys[i], key, len) != 0))
    i = (i + 1) & (m->cap - 1);
  return i;
}

static void grow(fo_strmap *m) {
  fo_strmap old = *m;
  m->cap = old.cap ? old.cap * 2 : 64;
  m->keys = pr_calloc(m->cap, sizeof(*m->keys));
  m->lens = pr_malloc(m->cap * sizeof(*m->lens));
  m->vals = pr_malloc(m->cap * sizeof(*m->vals));
  for (size_t i = 0; i < old.cap; i++) {
    if (!old.keys[i]) continue;
    size_t j = find(m, old.keys[i], old.lens[i]);
    m->keys[j] = old.keys[i];
    m->lens[j] = old.lens[i];
    m->vals[j] = old.vals[i];
  }
  fo_strmap_free(&old);
}

size_t fo_strmap_put(fo_strmap *m, const char *key, size_t len, size_t val, int *added) {
  if ((m->n + 1) * 2 > m->cap) grow(m);
  size_t i = find(m, key, len);
  *added = !m->keys[i];
  if (*added) {
    m->keys[i] = key;
    m->lens[i] = len;
    m->vals[i] = val;
    m->n++;
  }
  return m->vals[i];
}

void fo_strmap_set(fo_strmap *m, const char *key, size_t len, size_t val) {
  if (m->n == 0) return;
  size_t i = find(m, key, len);
  if (m->keys[i]) m->vals[i] = val;
}

int fo_strmap_get(const fo_strmap *m, const char *key, size_t len, size_t *val) {
  if (m->n == 0) return 0;
  size_t i = find(m, key, len);
  if (!m->keys[i]) return 0;
  *val = m->vals[i];
  return 1;
}
