/* versions.h: the instance-wide map user -> highest version pushed, so that
 * no connection gets an update that is not newer than one it already got
 * (DESIGN §4: versions make delivery idempotent and order-safe).
 *
 * Bounded by design: a fixed table of RECV_VERSIONS_SLOTS slots (16 bytes
 * each, 4 MiB) indexed by a 64-bit hash of the user. Two users whose hashes
 * share a slot evict each other; an evicted user's next update is then taken
 * as new, which can only let through an update that a reordering made stale
 * (rare: one fanout worker owns a partition at a time), never drop a fresh
 * one. Snapshots do not raise it: a connection's snapshot must not hide an
 * update from the other connections that have not seen it; an update made
 * before a snapshot and delivered after it repeats the snapshot's version,
 * which clients drop by the same rule. Ownership: recv_versions_new's result is freed with
 * recv_versions_free. */
#ifndef RECV_VERSIONS_H
#define RECV_VERSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECV_VERSIONS_SLOTS (1u << 18)

typedef struct recv_versions recv_versions;

recv_versions *recv_versions_new(void);
void recv_versions_free(recv_versions *v);

/* 64-bit FNV-1a of the user (the key of the map). */
uint64_t recv_versions_key(const char *user, size_t len);
/* true (and records it) when `version` is newer than the last one recorded
 * for the user; false when it is older or equal. */
bool recv_versions_accept(recv_versions *v, uint64_t key, uint64_t version);

#endif
