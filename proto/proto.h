/* proto.h: the types every wire format shares: a string view into a message,
 * the presence status, and a validated list of ids inside a message.
 *
 * Ownership: nothing here owns memory. A pr_view and a pr_id_list point into
 * the bytes they were decoded from and are valid while those bytes live. */
#ifndef PR_PROTO_H
#define PR_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "ids.h" /* PR_ID_MAX */

/* Bytes [p, p + len), not NUL-terminated. */
typedef struct {
  const char *p;
  size_t len;
} pr_view;

#define PR_VIEW(s) ((pr_view){(s), sizeof(s) - 1}) /* from a string literal */
#define PR_VIEW_INIT(s)                                                                            \
  { (s), sizeof(s) - 1 }                  /* the same, in a static initializer */
pr_view pr_view_of(const char *s);        /* from a C string (NULL: empty) */
int pr_view_eq(pr_view a, const char *s); /* 1 if a equals the C string s */

/* The visible status of a user (DESIGN §4). Events and batches carry only the
 * first four; INVISIBLE is what a user reads for itself (JSON frames only). */
typedef enum {
  PR_STATUS_OFFLINE = 0,
  PR_STATUS_ONLINE = 1,
  PR_STATUS_IDLE = 2,
  PR_STATUS_DND = 3,
  PR_STATUS_INVISIBLE = 4,
} pr_status;

/* "offline", "online", "idle", "dnd", "invisible"; NULL for anything else. */
const char *pr_status_name(int status);
/* The status named by s[0..len), or PR_EINVAL if it names none. */
int pr_status_parse(const char *s, size_t len);

/* `n` ids (each 1..PR_ID_MAX bytes), stored as msgpack strings back to back in
 * the decoded message. The decoder has validated every one, so walking the
 * list cannot fail:
 *   size_t pos = 0; pr_view id;
 *   while (pr_id_list_next(&list, &pos, &id)) ... */
typedef struct {
  const char *raw; /* first id's msgpack header */
  size_t raw_len;
  uint32_t n;
} pr_id_list;

/* Stores the id at *pos in *out, advances *pos and returns 1; returns 0 at the end. */
int pr_id_list_next(const pr_id_list *list, size_t *pos, pr_view *out);

#endif
