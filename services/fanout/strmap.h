/* strmap.h: a small open-addressing map from byte strings to indexes, for
 * the per-batch lookups of fanout (user -> route row, instance -> peer).
 *
 * Ownership: the map stores the key pointers it is given, not copies: each
 * key must stay valid and unchanged while the map holds it. fo_strmap_free
 * releases the table only. */
#ifndef FANOUT_STRMAP_H
#define FANOUT_STRMAP_H

#include <stddef.h>

typedef struct {
  const char **keys;
  size_t *lens;
  size_t *vals;
  size_t cap; /* a power of two, or 0 */
  size_t n;
} fo_strmap;

void fo_strmap_init(fo_strmap *m);
void fo_strmap_free(fo_strmap *m);
/* Empties the map, keeping its table. */
void fo_strmap_clear(fo_strmap *m);
/* Looks key up; when absent, adds it with value `val`. Returns the value in
 * the map and sets *added to 1 if the key was added, else 0. */
size_t fo_strmap_put(fo_strmap *m, const char *key, size_t len, size_t val, int *added);
/* Sets the value of key, which must be present (else nothing happens). */
void fo_strmap_set(fo_strmap *m, const char *key, size_t len, size_t val);
/* 1 and *val when key is present, else 0. */
int fo_strmap_get(const fo_strmap *m, const char *key, size_t len, size_t *val);

#endif
