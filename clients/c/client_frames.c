/* client_frames.c: turns the server's JSON text frames (docs/api.md) into
 * pr_client callbacks: presence frames by the allocation-free scanner
 * (client_scan.c) when they have the server's shape, everything else with
 * jansson. */
#include "base.h"
#include "client_internal.h"

#include <jansson.h>
#include <string.h>

static uint64_t u64_field(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

/* Fills e from {"user","status","last_seen","version"}; PR_EPROTO if a field is missing. */
static int entry_of(json_t *o, pr_client_entry *e) {
  e->user = json_string_value(json_object_get(o, "user"));
  e->status = json_string_value(json_object_get(o, "status"));
  if (!e->user || !e->status) return PR_EPROTO;
  e->last_seen = u64_field(o, "last_seen");
  e->version = u64_field(o, "version");
  return 0;
}

static int on_snapshot(pr_client *c, json_t *m) {
  json_t *users = json_object_get(m, "users");
  if (!json_is_array(users)) return PR_EPROTO;
  size_t n = json_array_size(users);
  pr_client_entry *e = pr_malloc((n ? n : 1) * sizeof(*e));
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++)
    rc = entry_of(json_array_get(users, i), &e[i]);
  if (!rc && c->h->on_snapshot) c->h->on_snapshot(c, e, n, c->arg);
  pr_free(e);
  return rc;
}

/* Larger than any user id and status the server sends; longer ones take
 * the jansson path. */
#define SCAN_SCRATCH 512

int client_dispatch_text(pr_client *c, const char *data, size_t len) {
  char scratch[SCAN_SCRATCH];
  pr_client_entry pe;
  if (client_scan_presence(data, len, &pe, scratch, sizeof(scratch)) == 0) {
    if (c->h->on_presence) c->h->on_presence(c, &pe, c->arg);
    return 0;
  }
  json_error_t je;
  json_t *m = json_loadb(data, len, 0, &je);
  const char *type = json_is_object(m) ? json_string_value(json_object_get(m, "type")) : NULL;
  int rc = 0;
  if (!type) {
    rc = PR_EPROTO;
  } else if (strcmp(type, "presence") == 0) {
    pr_client_entry e;
    rc = entry_of(m, &e);
    if (!rc && c->h->on_presence) c->h->on_presence(c, &e, c->arg);
  } else if (strcmp(type, "hello") == 0) {
    const char *user = json_string_value(json_object_get(m, "user"));
    const char *device = json_string_value(json_object_get(m, "device"));
    if (!user || !device) {
      rc = PR_EPROTO;
    } else {
      client_mark_hello(c);
      if (c->h->on_hello) c->h->on_hello(c, user, device, u64_field(m, "heartbeat_ms"), c->arg);
    }
  } else if (strcmp(type, "snapshot") == 0) {
    rc = on_snapshot(c, m);
  } else if (c->h->on_frame) {
    c->h->on_frame(c, type, data, len, c->arg);
  }
  if (rc) client_report_error(c, rc, "unexpected frame from server");
  json_decref(m);
  return rc;
}
