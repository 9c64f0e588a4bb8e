/* Ids: the one identifier rule, 1..64 bytes of [A-Za-z0-9_.:@-]. */
#include "ids.h"

#include <criterion/criterion.h>
#include <string.h>

static int valid(const char *s) { return pr_id_is_valid(s, strlen(s)); }

Test(ids, accepts) {
  cr_assert(valid("alice"));
  cr_assert(valid("a"));
  cr_assert(valid("Z9"));
  cr_assert(valid("user_1.phone:2@example.com-x"));
  cr_assert(valid("-"));
  cr_assert(valid(":@._-"));
  char max[65];
  memset(max, 'x', 64);
  max[64] = '\0';
  cr_assert(valid(max), "64 bytes");
}

Test(ids, rejects) {
  cr_assert_not(valid(""));
  cr_assert_not(pr_id_is_valid(NULL, 0));
  char over[66];
  memset(over, 'x', 65);
  over[65] = '\0';
  cr_assert_not(valid(over), "65 bytes");
  const char *bad[] = {"a b",      "a/b",  "a{b",  "a}b", "a*b", "a\"b", "a\\b",
                       "\xc3\xbc", "a\tb", "a\nb", "a,b", "a+b", "a#b",  "a%b"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    cr_expect_not(valid(bad[i]), "'%s' accepted", bad[i]);
}

Test(ids, length_is_what_counts) {
  cr_assert_not(pr_id_is_valid("ab\0c", 4), "an embedded NUL is not allowed");
  cr_assert(pr_id_is_valid("ab\0c", 2), "only len bytes are read");
  cr_assert(pr_id_is_valid("alice bob", 5));
}
