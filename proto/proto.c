/* proto.c: views, status names and id lists shared by the wire formats. */
#include <string.h>

#include "base.h"
#include "mp_read.h"
#include "proto.h"

static const char *const status_names[] = {
    [PR_STATUS_OFFLINE] = "offline", [PR_STATUS_ONLINE] = "online",       [PR_STATUS_IDLE] = "idle",
    [PR_STATUS_DND] = "dnd",         [PR_STATUS_INVISIBLE] = "invisible",
};

pr_view pr_view_of(const char *s) { return (pr_view){s ? s : "", s ? strlen(s) : 0}; }

int pr_view_eq(pr_view a, const char *s) {
  size_t n = strlen(s);
  return a.len == n && (n == 0 || memcmp(a.p, s, n) == 0);
}

const char *pr_status_name(int status) {
  if (status < 0 || (size_t)status >= PR_ARRAY_LEN(status_names)) return NULL;
  return status_names[status];
}

int pr_status_parse(const char *s, size_t len) {
  for (size_t i = 0; i < PR_ARRAY_LEN(status_names); i++)
    if (strlen(status_names[i]) == len && memcmp(status_names[i], s, len) == 0) return (int)i;
  return PR_EINVAL;
}

int pr_id_list_next(const pr_id_list *list, size_t *pos, pr_view *out) {
  if (*pos >= list->raw_len) return 0;
  pr_mp_reader r;
  pr_mp_init(&r, list->raw + *pos, list->raw_len - *pos);
  /* The decoder validated the list; a failure here means a hand-made list. */
  if (pr_mp_read_str(&r, out) != 0) return 0;
  *pos = (size_t)((const char *)r.p - list->raw);
  return 1;
}
