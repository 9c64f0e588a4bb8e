/* event.c: decode (fanout, from Redis pub/sub) and encode (tests, tools) of
 * the presence event [1, kind, user, status, last_seen, version, ts_ms, to]. */
#include <msgpack.h>
#include <string.h>

#include "base.h"
#include "event.h"
#include "mp_read.h"

int pr_event_decode(const char *data, size_t len, pr_event *out) {
  pr_mp_reader r;
  uint64_t n, format, kind;
  int err;
  pr_mp_init(&r, data, len);
  if ((err = pr_mp_read_array(&r, &n))) return err;
  if (n < 8) return PR_EPROTO;
  if ((err = pr_mp_read_uint(&r, &format))) return err;
  if (format != PR_EVENT_FORMAT) return PR_EPROTO;
  if ((err = pr_mp_read_uint(&r, &kind))) return err;
  if (kind != PR_EVENT_TRANSITION && kind != PR_EVENT_HEARTBEAT) return PR_EPROTO;
  out->kind = (int)kind;
  if ((err = pr_mp_read_id(&r, &out->user))) return err;
  if ((err = pr_mp_read_status(&r, &out->status))) return err;
  if ((err = pr_mp_read_uint(&r, &out->last_seen))) return err;
  if ((err = pr_mp_read_uint(&r, &out->version))) return err;
  if ((err = pr_mp_read_uint(&r, &out->ts_ms))) return err;
  if ((err = pr_mp_read_id_list(&r, PR_EVENT_MAX_TO, 1, &out->to))) return err;
  for (uint64_t i = 8; i < n; i++) /* later additions this reader does not know */
    if ((err = pr_mp_skip(&r, 1))) return err;
  return pr_mp_left(&r) == 0 ? 0 : PR_EPROTO;
}

static int buf_write(void *data, const char *p, size_t n) {
  pr_buf_append(data, p, n);
  return 0;
}

static int id_ok(pr_view v) { return v.len >= 1 && v.len <= PR_ID_MAX && v.p; }

int pr_event_encode(const pr_event *ev, const pr_view *to, size_t n_to, pr_buf *out) {
  const char *status = pr_status_name(ev->status);
  if (ev->kind != PR_EVENT_TRANSITION && ev->kind != PR_EVENT_HEARTBEAT) return PR_EINVAL;
  if (!status || ev->status == PR_STATUS_INVISIBLE || !id_ok(ev->user)) return PR_EINVAL;
  if (n_to > PR_EVENT_MAX_TO) return PR_EINVAL;
  for (size_t i = 0; i < n_to; i++)
    if (!id_ok(to[i])) return PR_EINVAL;

  msgpack_packer pk;
  msgpack_packer_init(&pk, out, buf_write);
  msgpack_pack_array(&pk, 8);
  msgpack_pack_uint64(&pk, PR_EVENT_FORMAT);
  msgpack_pack_uint64(&pk, (uint64_t)ev->kind);
  msgpack_pack_str_with_body(&pk, ev->user.p, ev->user.len);
  msgpack_pack_str_with_body(&pk, status, strlen(status));
  msgpack_pack_uint64(&pk, ev->last_seen);
  msgpack_pack_uint64(&pk, ev->version);
  msgpack_pack_uint64(&pk, ev->ts_ms);
  msgpack_pack_array(&pk, n_to);
  for (size_t i = 0; i < n_to; i++)
    msgpack_pack_str_with_body(&pk, to[i].p, to[i].len);
  return 0;
}
