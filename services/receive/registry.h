/* registry.h: the local index of presence-receive and its registration in
 * Redis. Users -> their connections and devices on this instance (one hash
 * table); each device is registered with conn_set + SADD ic:<id> when its
 * first connection arrives, and removed (conn_del + SREM) after the leave
 * grace once its last connection closed, unless it came back meanwhile.
 * Pending leaves sit in one list ordered by deadline, run by one timer.
 *
 * Ownership: the registry owns users and devices; connections are the conn
 * module's and are only linked here (attach/detach). Strings passed in are
 * copied. */
#ifndef RECV_REGISTRY_H
#define RECV_REGISTRY_H

#include "app.h"
#include "conn.h"

#include <stdbool.h>
#include <stddef.h>

struct recv_user {
  struct recv_user *hnext; /* hash chain */
  recv_conn *conns;        /* open connections of this user here */
  recv_dev *devs;
  uint32_t hash;
  uint8_t len;
  char id[]; /* NUL-terminated */
};

struct recv_dev {
  struct recv_dev *next;          /* in user->devs */
  struct recv_dev *lprev, *lnext; /* in the leave list */
  recv_user *user;
  uint64_t leave_at; /* loop time (ms) when the device goes */
  uint32_t nconns;   /* open connections of this user+device here */
  uint8_t in_leave : 1;
  uint8_t dirty : 1; /* a registration or status write failed: the resync redoes it */
  uint8_t deleting;  /* removals in flight */
  uint8_t epoch;     /* low 8 bits of the epoch it was last registered under */
  char id[];
};

recv_registry *recv_registry_new(recv_app *app);
/* Frees users and devices (no Redis call); conns must be detached already. */
void recv_registry_free(recv_registry *reg);

/* Links c under user/device (copies the ids), cancels a pending leave of
 * that device, and registers the device in Redis (conn_set with the status
 * kept + SADD ic). Never fails (a failed registration is retried by the
 * lease's resync). */
void recv_registry_attach(recv_registry *reg, recv_conn *c, const char *user, const char *device);
/* Unlinks c; when it was its device's last connection, schedules the leave
 * (immediately with --leave-grace-ms 0; not at all while draining). */
void recv_registry_detach(recv_registry *reg, recv_conn *c);
/* The user's entry, or NULL when it has no connection here. */
recv_user *recv_registry_find(recv_registry *reg, const char *user, size_t len);

/* A registration or status write of d failed (d->dirty): the next resync
 * registers it again if it still has open connections. */
void recv_registry_write_failed(recv_registry *reg, recv_dev *d);
/* Some device is dirty. */
bool recv_registry_needs_resync(const recv_registry *reg);
/* Registers again (conn_set + SADD ic, pipelined) every dirty device that
 * still has open connections, and clears every dirty flag. A device waiting
 * out its leave grace is never registered again: that would bring a user who
 * left back online. */
void recv_registry_resync(recv_registry *reg);
/* The instance id changed (app->epoch, app->instance: a lost lease): marks
 * every device with open connections dirty, so that the next resync
 * registers it under the new id. Devices in their leave grace keep their
 * registration under the old id (their removal names it; fanout's cleanup of
 * the old id removes them too). */
void recv_registry_renew(recv_registry *reg);

size_t recv_registry_users(const recv_registry *reg);
size_t recv_registry_devices(const recv_registry *reg);
/* Calls fn on every open connection (fn may close it). */
void recv_registry_each_conn(recv_registry *reg, void (*fn)(recv_conn *c, void *arg), void *arg);

/* Drain: cancels every pending leave and removes every device of this
 * instance from Redis at once (conn_del each, pipelined); once every one
 * succeeded, DEL ic:<id>, SREM insts <id> and DEL inst:<id>. If any failed,
 * only DEL inst:<id>: the instance then looks dead and fanout's cleanup
 * removes what is left (ic:<id> still lists it). done(ok, arg) once every
 * reply came (ok = 1 if Redis took them all). Returns 0, or PR_EUNAVAIL
 * (Redis down: done is not called). */
int recv_registry_drain(recv_registry *reg, void (*done)(bool ok, void *arg), void *arg);

/* Stops the leave timer (teardown). */
void recv_registry_close(recv_registry *reg);

#endif
