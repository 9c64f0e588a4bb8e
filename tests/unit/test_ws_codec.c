/* test_ws_codec.c: the pure WebSocket codec (frames, masking, UTF-8, close
 * payloads, handshake key). */
#include <criterion/criterion.h>
#include <string.h>

#include "ws.h"

/* ---- handshake key ----------------------------------------------------- */

Test(ws_codec, accept_key_rfc_example) {
  char out[PR_WS_ACCEPT_LEN + 1];
  cr_assert_eq(pr_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
  cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

Test(ws_codec, accept_key_rejects_bad_keys) {
  char out[PR_WS_ACCEPT_LEN + 1];
  cr_assert_eq(pr_ws_accept_key("", out), PR_EINVAL);
  cr_assert_eq(pr_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=", out), PR_EINVAL);   /* 23 chars */
  cr_assert_eq(pr_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ===", out), PR_EINVAL); /* 25 chars */
  cr_assert_eq(pr_ws_accept_key("dGhlIHNhbXBsZSBub25jZQQ=", out), PR_EINVAL);  /* 17 bytes */
  cr_assert_eq(pr_ws_accept_key("dGhlIHNhbXBsZSBub25j!Q==", out), PR_EINVAL);  /* bad char */
  cr_assert_eq(pr_ws_accept_key("AAAAAAAAAAAAAAAAAAAAAA==", out), 0);
}

/* ---- frames ----------------------------------------------------------- */

Test(ws_codec, unmasked_frame) {
  const uint8_t fr[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
  pr_ws_frame f;
  cr_assert_eq(pr_ws_frame_parse(fr, sizeof(fr), 0, &f), 0);
  cr_assert_eq(f.fin, 1);
  cr_assert_eq(f.opcode, PR_WS_OP_TEXT);
  cr_assert_eq(f.masked, 0);
  cr_assert_eq(f.header_len, 2);
  cr_assert_eq(f.payload_len, 5);
  cr_assert_eq(pr_ws_frame_parse(fr, sizeof(fr), PR_WS_FORBID_MASK, &f), 0);
  cr_assert_eq(pr_ws_frame_parse(fr, sizeof(fr), PR_WS_REQUIRE_MASK, &f), PR_EPROTO);
}

Test(ws_codec, masked_frame_rfc_example) {
  uint8_t fr[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  pr_ws_frame f;
  cr_assert_eq(pr_ws_frame_parse(fr, sizeof(fr), PR_WS_REQUIRE_MASK, &f), 0);
  cr_assert_eq(f.masked, 1);
  cr_assert_eq(f.header_len, 6);
  cr_assert_eq(f.payload_len, 5);
  pr_ws_mask(fr + f.header_len, 5, f.mask, 0);
  cr_assert_eq(memcmp(fr + 6, "Hello", 5), 0);
  cr_assert_eq(pr_ws_frame_parse(fr, sizeof(fr), PR_WS_FORBID_MASK, &f), PR_EPROTO);
}

Test(ws_codec, mask_in_pieces_matches_whole) {
  const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
  uint8_t a[101], b[101];
  for (int i = 0; i < 101; i++)
    a[i] = b[i] = (uint8_t)(i * 7);
  pr_ws_mask(a, sizeof(a), key, 0);
  pr_ws_mask(b, 3, key, 0);
  pr_ws_mask(b + 3, 50, key, 3);
  pr_ws_mask(b + 53, 48, key, 53);
  cr_assert_eq(memcmp(a, b, sizeof(a)), 0);
  cr_assert_eq(a[0], (uint8_t)(0 ^ 0x12));
  cr_assert_eq(a[5], (uint8_t)(35 ^ 0x34));
  pr_ws_mask(a, sizeof(a), key, 0); /* unmask */
  for (int i = 0; i < 101; i++)
    cr_assert_eq(a[i], (uint8_t)(i * 7));
}

static void roundtrip(uint64_t len, const uint8_t *mask, size_t want_hl) {
  uint8_t h[PR_WS_MAX_HEADER];
  size_t hl = pr_ws_frame_header(h, PR_WS_OP_BINARY, 1, len, mask);
  cr_assert_eq(hl, want_hl, "len %llu: header %zu, want %zu", (unsigned long long)len, hl, want_hl);
  pr_ws_frame f;
  cr_assert_eq(pr_ws_frame_parse(h, hl, mask ? PR_WS_REQUIRE_MASK : PR_WS_FORBID_MASK, &f), 0);
  cr_assert_eq(f.payload_len, len);
  cr_assert_eq(f.header_len, hl);
  cr_assert_eq(f.opcode, PR_WS_OP_BINARY);
  cr_assert_eq(f.masked, mask != NULL);
  if (mask) cr_assert_eq(memcmp(f.mask, mask, 4), 0);
  /* Every cut of the header asks for more bytes. */
  for (size_t cut = 0; cut < hl; cut++)
    cr_assert_eq(pr_ws_frame_parse(h, cut, 0, &f), PR_ETRUNC, "len %llu cut %zu",
                 (unsigned long long)len, cut);
  cr_assert_eq(pr_ws_header_len(h, hl), hl);
}

Test(ws_codec, lengths_7_16_64_bit) {
  const uint8_t key[4] = {1, 2, 3, 4};
  const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 1ull << 40, (1ull << 63) - 1};
  const size_t hls[] = {2, 2, 2, 4, 4, 4, 10, 10, 10};
  for (size_t i = 0; i < PR_ARRAY_LEN(lens); i++) {
    roundtrip(lens[i], NULL, hls[i]);
    roundtrip(lens[i], key, hls[i] + 4);
  }
  /* The exact 16-bit encoding. */
  uint8_t h[PR_WS_MAX_HEADER];
  cr_assert_eq(pr_ws_frame_header(h, PR_WS_OP_TEXT, 1, 300, NULL), 4);
  cr_assert_eq(h[0], 0x81);
  cr_assert_eq(h[1], 126);
  cr_assert_eq(h[2], 0x01);
  cr_assert_eq(h[3], 0x2c);
}

Test(ws_codec, length_with_top_bit_is_protocol_error) {
  uint8_t h[] = {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1};
  pr_ws_frame f;
  cr_assert_eq(pr_ws_frame_parse(h, sizeof(h), 0, &f), PR_EPROTO);
  h[2] = 0x7f;
  cr_assert_eq(pr_ws_frame_parse(h, sizeof(h), 0, &f), 0);
}

Test(ws_codec, rsv_bits_and_bad_opcodes) {
  pr_ws_frame f;
  for (int rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
    uint8_t h[] = {(uint8_t)(0x81 | rsv), 0x00};
    cr_assert_eq(pr_ws_frame_parse(h, 2, 0, &f), PR_EPROTO, "rsv %x", rsv);
    cr_assert_eq(pr_ws_frame_parse(h, 1, 0, &f), PR_EPROTO, "rsv %x judged on byte 1", rsv);
  }
  const int bad[] = {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf};
  for (size_t i = 0; i < PR_ARRAY_LEN(bad); i++) {
    uint8_t h[] = {(uint8_t)(0x80 | bad[i]), 0x00};
    cr_assert_eq(pr_ws_frame_parse(h, 2, 0, &f), PR_EPROTO, "opcode %x", bad[i]);
  }
  const int good[] = {0, 1, 2, 8, 9, 0xa};
  for (size_t i = 0; i < PR_ARRAY_LEN(good); i++) {
    uint8_t h[] = {(uint8_t)(0x80 | good[i]), 0x00};
    cr_assert_eq(pr_ws_frame_parse(h, 2, 0, &f), 0, "opcode %x", good[i]);
    cr_assert_eq(f.opcode, good[i]);
  }
}

Test(ws_codec, control_frames_limits) {
  pr_ws_frame f;
  uint8_t ping125[] = {0x89, 125};
  cr_assert_eq(pr_ws_frame_parse(ping125, 2, 0, &f), 0);
  uint8_t ping126[] = {0x89, 126, 0, 126};
  cr_assert_eq(pr_ws_frame_parse(ping126, 4, 0, &f), PR_EPROTO);
  uint8_t close127[] = {0x88, 127, 0, 0, 0, 0, 0, 0, 0, 2};
  cr_assert_eq(pr_ws_frame_parse(close127, 10, 0, &f), PR_EPROTO);
  uint8_t ping_nofin[] = {0x09, 0};
  cr_assert_eq(pr_ws_frame_parse(ping_nofin, 2, 0, &f), PR_EPROTO);
  uint8_t text_nofin[] = {0x01, 0};
  cr_assert_eq(pr_ws_frame_parse(text_nofin, 2, 0, &f), 0);
  cr_assert_eq(f.fin, 0);
}

static size_t put_frame(uint8_t *out, int op, int fin, const char *payload, const uint8_t *key) {
  size_t n = strlen(payload);
  size_t hl = pr_ws_frame_header(out, op, fin, n, key);
  memcpy(out + hl, payload, n);
  pr_ws_mask(out + hl, n, key, 0);
  return hl + n;
}

/* A stream of masked frames, "κό" + ping + "σμε" with the split inside a
 * character, walked as a receiver would: parse, unmask, reassemble, validate. */
Test(ws_codec, fragmentation_with_ping_between) {
  const uint8_t key[4] = {0xa1, 0xb2, 0xc3, 0xd4};
  const char *word = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"; /* κόσμε */
  char first[8], second[16];
  memcpy(first, word, 4); /* κ + two of ό's three bytes */
  first[4] = 0;
  strcpy(second, word + 4);
  uint8_t stream[128];
  size_t n = 0;
  n += put_frame(stream + n, PR_WS_OP_TEXT, 0, first, key);
  n += put_frame(stream + n, PR_WS_OP_PING, 1, "hb", key);
  n += put_frame(stream + n, PR_WS_OP_CONT, 1, second, key);

  char msg[64];
  size_t msg_len = 0;
  int ops[3], nframes = 0, pings = 0;
  pr_ws_utf8 v;
  pr_ws_utf8_init(&v);
  for (size_t off = 0; off < n;) {
    pr_ws_frame f;
    cr_assert_eq(pr_ws_frame_parse(stream + off, n - off, PR_WS_REQUIRE_MASK, &f), 0);
    uint8_t *p = stream + off + f.header_len;
    pr_ws_mask(p, f.payload_len, f.mask, 0);
    ops[nframes++] = f.opcode;
    if (f.opcode == PR_WS_OP_PING) {
      pings++;
      cr_assert_eq(memcmp(p, "hb", 2), 0);
    } else {
      cr_assert_eq(pr_ws_utf8_feed(&v, p, f.payload_len), 0);
      memcpy(msg + msg_len, p, f.payload_len);
      msg_len += f.payload_len;
      if (f.opcode == PR_WS_OP_TEXT) cr_assert_eq(f.fin, 0);
      if (f.opcode == PR_WS_OP_CONT) cr_assert_eq(f.fin, 1);
    }
    off += f.header_len + f.payload_len;
  }
  cr_assert_eq(nframes, 3);
  cr_assert_eq(ops[0], PR_WS_OP_TEXT);
  cr_assert_eq(ops[1], PR_WS_OP_PING);
  cr_assert_eq(ops[2], PR_WS_OP_CONT);
  cr_assert_eq(pings, 1);
  cr_assert_eq(pr_ws_utf8_finish(&v), 0);
  cr_assert_eq(msg_len, strlen(word));
  cr_assert_eq(memcmp(msg, word, msg_len), 0);
}

/* ---- UTF-8 ------------------------------------------------------------ */

static int check(const char *s, size_t n) { return pr_ws_utf8_check((const uint8_t *)s, n); }
#define CHECK(lit) check(lit, sizeof(lit) - 1)

Test(ws_utf8, valid) {
  cr_assert_eq(CHECK(""), 0);
  cr_assert_eq(CHECK("plain ascii, long enough for the word loop"), 0);
  cr_assert_eq(CHECK("\xc2\x80"), 0);         /* U+0080 */
  cr_assert_eq(CHECK("\xdf\xbf"), 0);         /* U+07FF */
  cr_assert_eq(CHECK("\xe0\xa0\x80"), 0);     /* U+0800 */
  cr_assert_eq(CHECK("\xed\x9f\xbf"), 0);     /* U+D7FF */
  cr_assert_eq(CHECK("\xee\x80\x80"), 0);     /* U+E000 */
  cr_assert_eq(CHECK("\xef\xbf\xbf"), 0);     /* U+FFFF */
  cr_assert_eq(CHECK("\xf0\x90\x80\x80"), 0); /* U+10000 */
  cr_assert_eq(CHECK("\xf4\x8f\xbf\xbf"), 0); /* U+10FFFF */
  cr_assert_eq(CHECK("h\xc3\xa9llo w\xc3\xb6rld \xf0\x9f\x98\x80 ok"), 0);
}

static const char *const invalid[] = {
    "\x80",                /* lone continuation */
    "\xbf",                /* lone continuation */
    "\xc0\x80",            /* overlong NUL */
    "\xc1\xbf",            /* overlong */
    "\xe0\x80\x80",        /* overlong 3-byte */
    "\xe0\x9f\xbf",        /* overlong 3-byte */
    "\xf0\x80\x80\x80",    /* overlong 4-byte */
    "\xf0\x8f\xbf\xbf",    /* overlong 4-byte */
    "\xed\xa0\x80",        /* U+D800 surrogate */
    "\xed\xbf\xbf",        /* U+DFFF surrogate */
    "\xf4\x90\x80\x80",    /* U+110000 */
    "\xf5\x80\x80\x80",    /* lead past F4 */
    "\xff",                /* never valid */
    "\xc2",                /* truncated */
    "\xe2\x82",            /* truncated */
    "\xf0\x9f\x98",        /* truncated */
    "\xc2\x41",            /* missing continuation */
    "abc\xce\xba\xe1\xbd", /* ends mid-character */
};

Test(ws_utf8, invalid_whole) {
  for (size_t i = 0; i < PR_ARRAY_LEN(invalid); i++)
    cr_assert_eq(check(invalid[i], strlen(invalid[i])), PR_EUTF8, "case %zu", i);
}

/* Invalid input stays invalid however it is split across fragments. */
Test(ws_utf8, invalid_split_rejected) {
  for (size_t i = 0; i < PR_ARRAY_LEN(invalid); i++) {
    size_t n = strlen(invalid[i]);
    for (size_t cut = 0; cut <= n; cut++) {
      pr_ws_utf8 v;
      pr_ws_utf8_init(&v);
      const uint8_t *p = (const uint8_t *)invalid[i];
      int rc = pr_ws_utf8_feed(&v, p, cut);
      if (rc == 0) rc = pr_ws_utf8_feed(&v, p + cut, n - cut);
      if (rc == 0) rc = pr_ws_utf8_finish(&v);
      cr_assert_eq(rc, PR_EUTF8, "case %zu cut %zu", i, cut);
    }
  }
}

/* Valid text split at every byte (inside characters too) is accepted, and a
 * fragment boundary alone never counts as the end of the message. */
Test(ws_utf8, valid_split_accepted) {
  const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"; /* a é € 😀 z */
  size_t n = strlen(s);
  for (size_t cut = 0; cut <= n; cut++) {
    for (size_t cut2 = cut; cut2 <= n; cut2++) {
      pr_ws_utf8 v;
      pr_ws_utf8_init(&v);
      const uint8_t *p = (const uint8_t *)s;
      cr_assert_eq(pr_ws_utf8_feed(&v, p, cut), 0);
      cr_assert_eq(pr_ws_utf8_feed(&v, p + cut, cut2 - cut), 0);
      cr_assert_eq(pr_ws_utf8_feed(&v, p + cut2, n - cut2), 0);
      cr_assert_eq(pr_ws_utf8_finish(&v), 0, "cuts %zu %zu", cut, cut2);
    }
  }
  pr_ws_utf8 v;
  pr_ws_utf8_init(&v);
  cr_assert_eq(pr_ws_utf8_feed(&v, (const uint8_t *)"\xe2\x82", 2), 0);
  cr_assert_eq(pr_ws_utf8_finish(&v), PR_EUTF8); /* mid-character */
}

Test(ws_utf8, invalid_after_long_ascii_run) {
  char buf[70];
  memset(buf, 'x', sizeof(buf));
  buf[67] = (char)0xed;
  buf[68] = (char)0xa0;
  buf[69] = (char)0x80;
  cr_assert_eq(check(buf, sizeof(buf)), PR_EUTF8);
  buf[68] = (char)0x9f;
  cr_assert_eq(check(buf, sizeof(buf)), 0);
}

/* ---- close payloads ---------------------------------------------------- */

Test(ws_close, code_validity) {
  const int valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                       1012, 1013, 1014, 3000, 3999, 4000, 4008, 4999};
  const int bad[] = {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
  for (size_t i = 0; i < PR_ARRAY_LEN(valid); i++)
    cr_assert(pr_ws_close_code_is_valid(valid[i]), "%d", valid[i]);
  for (size_t i = 0; i < PR_ARRAY_LEN(bad); i++)
    cr_assert_not(pr_ws_close_code_is_valid(bad[i]), "%d", bad[i]);
}

Test(ws_close, parse) {
  int code;
  const char *reason;
  size_t rlen;
  cr_assert_eq(pr_ws_close_parse((const uint8_t *)"", 0, &code, &reason, &rlen), 0);
  cr_assert_eq(code, 1005);
  cr_assert_eq(pr_ws_close_parse((const uint8_t *)"\x03", 1, &code, &reason, &rlen), PR_EPROTO);
  cr_assert_eq(pr_ws_close_parse((const uint8_t *)"\x03\xe8"
                                                  "bye",
                                 5, &code, &reason, &rlen),
               0);
  cr_assert_eq(code, 1000);
  cr_assert_eq(rlen, 3);
  cr_assert_eq(memcmp(reason, "bye", 3), 0);
  cr_assert_eq(pr_ws_close_parse((const uint8_t *)"\x03\xed", 2, &code, &reason, &rlen),
               PR_EPROTO); /* 1005 may not be sent */
  cr_assert_eq(pr_ws_close_parse((const uint8_t *)"\x03\xe7", 2, &code, &reason, &rlen),
               PR_EPROTO); /* 999 */
  cr_assert_eq(pr_ws_close_parse((const uint8_t *)"\x0f\xa0", 2, &code, &reason, &rlen), 0);
  cr_assert_eq(code, 4000);
  cr_assert_eq(pr_ws_close_parse((const uint8_t *)"\x03\xe8\xc0\x80", 4, &code, &reason, &rlen),
               PR_EUTF8);
}

Test(ws_close, payload_builds_and_truncates_on_char_boundary) {
  uint8_t out[PR_WS_MAX_CONTROL];
  cr_assert_eq(pr_ws_close_payload(out, 4008, "slow consumer"), 15);
  cr_assert_eq(out[0], 0x0f);
  cr_assert_eq(out[1], 0xa8);
  cr_assert_eq(memcmp(out + 2, "slow consumer", 13), 0);
  cr_assert_eq(pr_ws_close_payload(out, 1000, NULL), 2);

  char longr[300];
  memset(longr, 'a', sizeof(longr));
  longr[299] = 0;
  cr_assert_eq(pr_ws_close_payload(out, 1000, longr), 125);

  /* 122 ASCII bytes then "é" (2 bytes): byte 123 would split it. */
  memset(longr, 'a', 122);
  strcpy(longr + 122, "\xc3\xa9zz");
  size_t n = pr_ws_close_payload(out, 1000, longr);
  cr_assert_eq(n, 2 + 122);
  cr_assert_eq(pr_ws_utf8_check(out + 2, n - 2), 0);
}
