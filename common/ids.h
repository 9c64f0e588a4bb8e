/* ids.h: the one rule for user, device and group identifiers:
 * 1 to 64 bytes of [A-Za-z0-9_.:@-]. Validate every id from a client with it
 * before it reaches Redis or a log line. (Implemented in auth_ids.c.) */
#ifndef PR_IDS_H
#define PR_IDS_H

#include <stddef.h>

#define PR_ID_MAX 64

/* 1 if s[0..len) is a valid id, else 0 (s may be NULL when len is 0). */
int pr_id_is_valid(const char *s, size_t len);

#endif
