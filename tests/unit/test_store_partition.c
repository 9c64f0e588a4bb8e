/* partition.h: the CRC16 of Redis Cluster slots, user -> partition, and the
 * key names of docs/data-model.md (built and parsed back). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "partition.h"

Test(store_partition, crc16_matches_redis_cluster) {
  cr_assert_eq(pr_crc16("123456789", 9), 0x31C3); /* the CRC16/XMODEM check value */
  /* CLUSTER KEYSLOT somekey = 11058 (Redis documentation) */
  cr_assert_eq(pr_crc16("somekey", 7) % 16384, 11058);
  cr_assert_eq(pr_crc16("", 0), 0);
}

Test(store_partition, partition_is_crc_mod_p) {
  cr_assert_eq(pr_partition_of("123456789", 9, 1024), 0x31C3 % 1024);
  cr_assert_eq(pr_partition_of("alice", 5, 1), 0);
  for (unsigned p = 1; p < 50; p++)
    cr_assert_lt(pr_partition_of("bob", 3, p), p);
  /* users spread over the partitions */
  unsigned seen[16] = {0};
  for (int i = 0; i < 1000; i++) {
    char u[16];
    int n = snprintf(u, sizeof(u), "user%d", i);
    seen[pr_partition_of(u, (size_t)n, 16)]++;
  }
  for (int p = 0; p < 16; p++)
    cr_assert_gt(seen[p], 20, "partition %d got %u", p, seen[p]);
}

Test(store_partition, key_names) {
  char buf[PR_KEY_MAX];
  cr_assert_eq(pr_key_presence(buf, sizeof(buf), 7, "alice"), 13);
  cr_assert_str_eq(buf, "pr:{p7}:alice");
  pr_key_deadlines(buf, sizeof(buf), 1023);
  cr_assert_str_eq(buf, "dl:{p1023}");
  pr_key_events(buf, sizeof(buf), 0);
  cr_assert_str_eq(buf, "ev:{p0}");
  pr_key_owner(buf, sizeof(buf), 12);
  cr_assert_str_eq(buf, "own:{p12}");
  pr_key_route(buf, sizeof(buf), 12, "a:b");
  cr_assert_str_eq(buf, "rt:{p12}:a:b");
  pr_key_hb(buf, sizeof(buf), 3, "a:b", "c:d");
  cr_assert_str_eq(buf, "hb:{p3}:a:b/c:d");
  char small[8];
  cr_assert_eq(pr_key_presence(small, sizeof(small), 7, "alice"), PR_ETOOBIG);
  /* the longest valid key fits */
  char id[65];
  memset(id, 'x', 64);
  id[64] = '\0';
  cr_assert_gt(pr_key_hb(buf, sizeof(buf), PR_PARTITIONS_MAX - 1, id, id), 0);
}

Test(store_partition, parse_event_channel) {
  unsigned p = 99;
  cr_assert_eq(pr_key_events_parse("ev:{p42}", 8, &p), 0);
  cr_assert_eq(p, 42);
  cr_assert_eq(pr_key_events_parse("ev:{p42}x", 9, &p), PR_EINVAL);
  cr_assert_eq(pr_key_events_parse("ev:{42}", 7, &p), PR_EINVAL);
  cr_assert_eq(pr_key_events_parse("dl:{p1}", 7, &p), PR_EINVAL);
  cr_assert_eq(pr_key_events_parse("ev:{p}", 6, &p), PR_EINVAL);
  cr_assert_eq(pr_key_events_parse("ev:{p99999}", 11, &p), PR_EINVAL);
}

Test(store_partition, parse_hb_key) {
  char buf[PR_KEY_MAX];
  int n = pr_key_hb(buf, sizeof(buf), 5, "u:1@x", "phone:2");
  unsigned p = 0;
  const char *user;
  size_t ulen;
  cr_assert_eq(pr_key_hb_parse(buf, (size_t)n, &p, &user, &ulen), 0);
  cr_assert_eq(p, 5);
  cr_assert_eq(ulen, 5);
  cr_assert_eq(memcmp(user, "u:1@x", 5), 0);
  cr_assert_eq(pr_key_hb_parse("hb:{p5}:alice", 13, &p, &user, &ulen), PR_EINVAL);
  cr_assert_eq(pr_key_hb_parse("hb:{p5}:/d", 10, &p, &user, &ulen), PR_EINVAL);
  cr_assert_eq(pr_key_hb_parse("hb:{p5}:u/", 10, &p, &user, &ulen), PR_EINVAL);
  cr_assert_eq(pr_key_hb_parse("pr:{p5}:u/d", 11, &p, &user, &ulen), PR_EINVAL);
  cr_assert_eq(pr_key_hb_parse("hb:{p5}u/d", 10, &p, &user, &ulen), PR_EINVAL);
}
