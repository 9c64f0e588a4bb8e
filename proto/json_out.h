/* json_out.h: the JSON that Presence sends to clients (WebSocket frames, HTTP
 * bodies), fixed in shape and written straight into a pr_buf without a DOM.
 * Shapes: DESIGN §6 and docs/api.md.
 *
 * Ownership: every function appends to the caller's buffer and keeps nothing;
 * entries and strings are only read during the call. */
#ifndef PR_JSON_OUT_H
#define PR_JSON_OUT_H

#include "buf.h"
#include "proto.h"

/* One user's presence as a client sees it. */
typedef struct {
  pr_view user;
  const char *status; /* "online", ... (pr_status_name), NUL-terminated */
  uint64_t last_seen; /* ms since the epoch; 0 is written as null */
  uint64_t version;
} pr_presence_entry;

/* Appends s[0..len) as a quoted JSON string. Escapes `"` and `\`, the
 * control characters 0x00-0x1f (\b \f \n \r \t, the others as \u00XX) and
 * 0x7f (\u007f). Valid UTF-8 passes through unchanged (U+2028/9 included).
 * Invalid UTF-8 becomes U+FFFD, one per maximal ill-formed subsequence (the
 * Unicode / WHATWG practice): a stray continuation byte, a bad lead byte, an
 * overlong form, a surrogate, a code point over U+10FFFF or a truncated
 * sequence each yield one U+FFFD, and decoding resumes at the first byte that
 * could not belong to it. Returns the number of U+FFFD written. */
size_t pr_json_str(pr_buf *b, const char *s, size_t len);
void pr_json_u64(pr_buf *b, uint64_t v); /* decimal digits */

/* The frames, exactly (no spaces), appended to b:
 * {"type":"hello","user":"alice","device":"laptop","heartbeat_ms":20000} */
void pr_json_hello(pr_buf *b, pr_view user, pr_view device, uint64_t heartbeat_ms);
/* {"type":"snapshot","users":[E, ...]} with E =
 * {"user":"bob","status":"online","last_seen":null,"version":3} */
void pr_json_snapshot(pr_buf *b, const pr_presence_entry *e, size_t n);
/* {"type":"presence","user":"bob","status":"offline","last_seen":1764423000000,"version":8} */
void pr_json_presence(pr_buf *b, const pr_presence_entry *e);
/* {"type":"heartbeat","user":"bob","status":"online","last_seen":null,"version":8}: a
 * relayed heartbeat (broadcast = "heartbeats"); its version repeats the last transition's. */
void pr_json_heartbeat(pr_buf *b, const pr_presence_entry *e);
/* {"type":"group","group":"g","online":N,"users":[E, ...]} (reply to subscribe) */
void pr_json_group(pr_buf *b, pr_view group, uint64_t online, const pr_presence_entry *e, size_t n);
/* {"type":"presence_batch","group":"g","online":N,"users":[E, ...]} (coalesced group pushes) */
void pr_json_presence_batch(pr_buf *b, pr_view group, uint64_t online, const pr_presence_entry *e,
                            size_t n);
/* {"type":"error","code":"bad_request","message":"..."} (code, message: C strings) */
void pr_json_error(pr_buf *b, const char *code, const char *message);
/* {"type":"pong"} */
void pr_json_pong(pr_buf *b);
/* The body of GET /v1/presence: {"users":[E, ...]} */
void pr_json_presence_body(pr_buf *b, const pr_presence_entry *e, size_t n);
/* One entry E alone, for callers composing their own arrays. */
void pr_json_entry(pr_buf *b, const pr_presence_entry *e);

#endif
