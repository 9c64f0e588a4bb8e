/* auth_ids.c: the identifier rule (ids.h). */
#include "ids.h"

int pr_id_is_valid(const char *s, size_t len) {
  if (!s || len == 0 || len > PR_ID_MAX) return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '.' || c == ':' || c == '@' || c == '-';
    if (!ok) return 0;
  }
  return 1;
}
