/* ws_codec.c: RFC 6455 frame headers, masking, the handshake key and close
 * payloads. Pure functions shared by the server connection and the C client. */
#include "ws.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

/* ---- handshake -------------------------------------------------------- */

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int is_b64(char ch) {
  return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
         ch == '+' || ch == '/';
}

int pr_ws_accept_key(const char *client_key, char out[PR_WS_ACCEPT_LEN + 1]) {
  /* 16 bytes encode to 22 significant characters and "==". */
  if (!client_key || strlen(client_key) != 24) return PR_EINVAL;
  for (int i = 0; i < 22; i++)
    if (!is_b64(client_key[i])) return PR_EINVAL;
  if (client_key[22] != '=' || client_key[23] != '=') return PR_EINVAL;

  char buf[24 + sizeof(ws_guid)];
  memcpy(buf, client_key, 24);
  memcpy(buf + 24, ws_guid, sizeof(ws_guid) - 1);
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)buf, 24 + sizeof(ws_guid) - 1, md);
  EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH); /* writes 28 + NUL */
  return 0;
}

/* ---- frame header ----------------------------------------------------- */

size_t pr_ws_header_len(const uint8_t *p, size_t n) {
  if (n < 2) return 2;
  size_t len = 2;
  uint8_t len7 = p[1] & 0x7f;
  if (len7 == 126)
    len += 2;
  else if (len7 == 127)
    len += 8;
  if (p[1] & 0x80) len += 4;
  return len;
}

static int opcode_is_known(int op) {
  return op == PR_WS_OP_CONT || op == PR_WS_OP_TEXT || op == PR_WS_OP_BINARY ||
         op == PR_WS_OP_CLOSE || op == PR_WS_OP_PING || op == PR_WS_OP_PONG;
}

int pr_ws_frame_parse(const uint8_t *p, size_t n, int flags, pr_ws_frame *f) {
  if (n < 1) return PR_ETRUNC;
  /* Judge the first byte as soon as it is there, so garbage fails early. */
  if (p[0] & 0x70) return PR_EPROTO; /* RSV1-3: no extension is negotiated */
  int fin = (p[0] & 0x80) != 0, op = p[0] & 0x0f;
  if (!opcode_is_known(op)) return PR_EPROTO;
  if (op >= 0x8 && !fin) return PR_EPROTO; /* control frames are never fragmented */
  if (n < 2) return PR_ETRUNC;

  int masked = (p[1] & 0x80) != 0;
  if (masked && (flags & PR_WS_FORBID_MASK)) return PR_EPROTO;
  if (!masked && (flags & PR_WS_REQUIRE_MASK)) return PR_EPROTO;
  uint8_t len7 = p[1] & 0x7f;
  if (op >= 0x8 && len7 > PR_WS_MAX_CONTROL) return PR_EPROTO;

  size_t hl = pr_ws_header_len(p, n);
  if (n < hl) return PR_ETRUNC;

  uint64_t len = len7;
  size_t i = 2;
  if (len7 == 126) {
    len = ((uint64_t)p[2] << 8) | p[3];
    i = 4;
  } else if (len7 == 127) {
    len = 0;
    for (i = 2; i < 10; i++)
      len = (len << 8) | p[i];
    if (len >> 63) return PR_EPROTO;
  }
  f->fin = fin;
  f->opcode = op;
  f->masked = masked;
  if (masked)
    memcpy(f->mask, p + i, 4);
  else
    memset(f->mask, 0, 4);
  f->header_len = hl;
  f->payload_len = len;
  return 0;
}

size_t pr_ws_frame_header(uint8_t *out, int opcode, int fin, uint64_t payload_len,
                          const uint8_t *mask) {
  size_t i = 2;
  out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
  uint8_t mbit = mask ? 0x80 : 0;
  if (payload_len < 126) {
    out[1] = (uint8_t)(mbit | payload_len);
  } else if (payload_len <= 0xffff) {
    out[1] = mbit | 126;
    out[2] = (uint8_t)(payload_len >> 8);
    out[3] = (uint8_t)payload_len;
    i = 4;
  } else {
    out[1] = mbit | 127;
    for (int k = 0; k < 8; k++)
      out[2 + k] = (uint8_t)(payload_len >> (56 - 8 * k));
    i = 10;
  }
  if (mask) {
    memcpy(out + i, mask, 4);
    i += 4;
  }
  return i;
}

void pr_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t pos) {
  size_t i = 0;
  /* Align the key with pos, then go a word at a time. */
  uint8_t key[8];
  for (int k = 0; k < 8; k++)
    key[k] = mask[(pos + (uint64_t)k) & 3];
  uint64_t word;
  memcpy(&word, key, 8);
  for (; i + 8 <= len; i += 8) {
    uint64_t v;
    memcpy(&v, data + i, 8);
    v ^= word;
    memcpy(data + i, &v, 8);
  }
  for (; i < len; i++)
    data[i] ^= key[i & 7];
}

/* ---- close payloads ----------------------------------------------------- */

int pr_ws_close_code_is_valid(int code) {
  if (code >= 1000 && code <= 1003) return 1;
  if (code >= 1007 && code <= 1014) return 1;
  return code >= 3000 && code <= 4999;
}

int pr_ws_close_parse(const uint8_t *p, size_t n, int *code, const char **reason,
                      size_t *reason_len) {
  *reason = "";
  *reason_len = 0;
  if (n == 0) {
    *code = PR_WS_CLOSE_NO_STATUS;
    return 0;
  }
  if (n == 1) return PR_EPROTO;
  int c = (p[0] << 8) | p[1];
  if (!pr_ws_close_code_is_valid(c)) return PR_EPROTO;
  if (pr_ws_utf8_check(p + 2, n - 2) != 0) return PR_EUTF8;
  *code = c;
  *reason = (const char *)p + 2;
  *reason_len = n - 2;
  return 0;
}

size_t pr_ws_close_payload(uint8_t *out, int code, const char *reason) {
  out[0] = (uint8_t)(code >> 8);
  out[1] = (uint8_t)code;
  size_t len = reason ? strlen(reason) : 0;
  if (len > PR_WS_MAX_CONTROL - 2) {
    len = PR_WS_MAX_CONTROL - 2;
    /* Do not cut inside a UTF-8 sequence: back off over continuation bytes. */
    while (len > 0 && ((uint8_t)reason[len] & 0xc0) == 0x80)
      len--;
  }
  if (len) memcpy(out + 2, reason, len);
  return 2 + len;
}
