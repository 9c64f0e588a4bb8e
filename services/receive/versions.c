/* versions.c: a fixed-size, direct-mapped table user hash -> highest version
 * pushed (see versions.h for why its collisions are harmless). */
#include "versions.h"
#include "base.h"

#include <string.h>

typedef struct {
  uint64_t key; /* 0: empty (a key of 0 is stored as 1) */
  uint64_t version;
} slot;

struct recv_versions {
  slot *slots; /* RECV_VERSIONS_SLOTS, faulted in at start (see recv_versions_new) */
};

recv_versions *recv_versions_new(void) {
  recv_versions *v = pr_malloc(sizeof(*v));
  /* A fixed cost of the instance (4 MiB), paid at start: with calloc's lazy
   * pages, the first few thousand users touched every page at random, and
   * the table's 4 MiB read as memory per connection. */
  v->slots = pr_malloc(RECV_VERSIONS_SLOTS * sizeof(slot));
  memset(v->slots, 0, RECV_VERSIONS_SLOTS * sizeof(slot));
  return v;
}

void recv_versions_free(recv_versions *v) {
  if (!v) return;
  pr_free(v->slots);
  pr_free(v);
}

uint64_t recv_versions_key(const char *user, size_t len) {
  uint64_t h = pr_hash64(user, len);
  return h ? h : 1;
}

bool recv_versions_accept(recv_versions *v, uint64_t key, uint64_t version) {
  slot *s = &v->slots[(key ^ (key >> 32)) & (RECV_VERSIONS_SLOTS - 1)];
  if (s->key == key && version <= s->version) return false;
  s->key = key;
  s->version = version;
  return true;
}
