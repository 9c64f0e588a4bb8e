/* partition.h: which partition a user belongs to, and the Redis key names of
 * a partition (docs/data-model.md). Every key one store script touches carries
 * the partition's hash tag `{pN}`, so the scripts also run on a Redis Cluster.
 *
 * The key builders write a NUL-terminated name into the caller's buffer and
 * return its length, or PR_ETOOBIG when it does not fit (PR_KEY_MAX always
 * fits valid ids). Nothing here allocates. Implemented in store_partition.c. */
#ifndef PR_PARTITION_H
#define PR_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#define PR_PARTITIONS_DEFAULT 1024
#define PR_PARTITIONS_MAX     16384 /* one partition per Redis Cluster slot at most */
/* Room for the longest key: "hb:{p16383}:" + 64-byte user + "/" + 64-byte device. */
#define PR_KEY_MAX 160

/* CRC16/XMODEM (polynomial 0x1021, init 0), the checksum of Redis Cluster slots. */
uint16_t pr_crc16(const char *buf, size_t len);
/* crc16(user) mod partitions; partitions must be >= 1. */
unsigned pr_partition_of(const char *user, size_t len, unsigned partitions);

int pr_key_presence(char *buf, size_t cap, unsigned p, const char *user); /* pr:{pN}:<user> */
int pr_key_deadlines(char *buf, size_t cap, unsigned p);                  /* dl:{pN} */
int pr_key_events(char *buf, size_t cap, unsigned p);                     /* ev:{pN} */
int pr_key_owner(char *buf, size_t cap, unsigned p);                      /* own:{pN} */
int pr_key_route(char *buf, size_t cap, unsigned p, const char *user);    /* rt:{pN}:<user> */
/* hb:{pN}:<user>/<device>: ids may contain ':', never '/', so the split is unambiguous. */
int pr_key_hb(char *buf, size_t cap, unsigned p, const char *user, const char *device);

/* Parses an event channel name "ev:{pN}" into *p. Returns 0 or PR_EINVAL. */
int pr_key_events_parse(const char *channel, size_t len, unsigned *p);
/* Parses "hb:{pN}:<user>/<device>" (the name in an expired-key notification,
 * keyspace mode) into *p and the user, as a pointer into `key` and a length.
 * Returns 0, or PR_EINVAL for any other key (the caller validates the user). */
int pr_key_hb_parse(const char *key, size_t len, unsigned *p, const char **user, size_t *user_len);

#endif
