/* Auth: the HS256 path (HMAC first, then the strict JSON scanner) on tokens
 * built by hand, signed here with OpenSSL's HMAC() so that a header or
 * payload that no JWT library would emit still carries a valid signature.
 * Whatever gets past the signature must still be a well-formed token. */
#include "auth.h"
#include "base.h"

#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SECRET "hs256-secret-0123456789"

static pr_auth *auth;
static long long fake_now;
static long long clock_fn(void) { return fake_now; }

static void setup(void) {
  fake_now = (long long)time(NULL);
  char err[256];
  pr_auth_opts o = {.hs256_secret = SECRET, .now = clock_fn};
  cr_assert_eq(pr_auth_new(&o, &auth, err, sizeof(err)), 0, "%s", err);
}
static void teardown(void) { pr_auth_free(auth); }
TestSuite(hs256, .init = setup, .fini = teardown);

/* ---- building tokens ---- */

static char *b64url_n(const unsigned char *in, size_t n) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  char *out = pr_malloc(n * 4 / 3 + 4), *o = out;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16;
    if (i + 1 < n) v |= (unsigned)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    *o++ = tbl[(v >> 18) & 63];
    *o++ = tbl[(v >> 12) & 63];
    if (i + 1 < n) *o++ = tbl[(v >> 6) & 63];
    if (i + 2 < n) *o++ = tbl[v & 63];
  }
  *o = '\0';
  return out;
}

static char *b64url(const char *s) { return b64url_n((const unsigned char *)s, strlen(s)); }

/* "h.p.sig" for the given encoded parts, signed with secret. */
static char *sign_parts(const char *h64, const char *p64, const char *secret) {
  size_t n = strlen(h64) + strlen(p64) + 1;
  char *signing = pr_malloc(n + 1);
  snprintf(signing, n + 1, "%s.%s", h64, p64);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned maclen = 0;
  cr_assert_not_null(
      HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)signing, n, mac, &maclen));
  char *sig = b64url_n(mac, maclen);
  char *tok = pr_malloc(n + strlen(sig) + 2);
  sprintf(tok, "%s.%s", signing, sig);
  pr_free(sig);
  pr_free(signing);
  return tok;
}

/* A token from header and payload JSON texts, exactly as given. */
static char *token_json(const char *header, const char *payload) {
  char *h = b64url(header), *p = b64url(payload);
  char *t = sign_parts(h, p, SECRET);
  pr_free(h);
  pr_free(p);
  return t;
}

#define HDR "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* A payload {"sub":"alice","exp":now+60<extra>}. */
static const char *payload(const char *extra) {
  static char buf[PR_AUTH_MAX_TOKEN];
  snprintf(buf, sizeof(buf), "{\"sub\":\"alice\",\"exp\":%lld%s}", fake_now + 60,
           extra ? extra : "");
  return buf;
}

static int verify(const char *tok, pr_claims *c) {
  return pr_auth_verify(auth, tok, strlen(tok), c);
}

static int verify_json(const char *header, const char *body) {
  char *t = token_json(header, body);
  pr_claims c;
  int rc = verify(t, &c);
  pr_free(t);
  return rc;
}

/* ---- signature ---- */

Test(hs256, hand_made_token_verifies) {
  char *t = token_json(HDR, payload(NULL));
  pr_claims c;
  cr_assert_eq(verify(t, &c), 0);
  cr_assert_str_eq(c.sub, "alice");
  cr_assert_eq(c.exp, fake_now + 60);
  cr_assert_eq(c.admin, 0);
  pr_free(t);
}

Test(hs256, wrong_signature_of_the_right_length) {
  char *t = token_json(HDR, payload(NULL));
  char *sig = strrchr(t, '.') + 1;
  cr_assert_eq(strlen(sig), 43);
  pr_claims c;
  /* Every position, one character changed (the last one keeps its unused
   * bits zero, so the decoded bytes differ in a used bit). */
  for (size_t i = 0; i < 43; i++) {
    char keep = sig[i];
    sig[i] = i == 42 ? (keep == 'A' ? 'E' : 'A') : (keep == 'A' ? 'B' : 'A');
    cr_expect_eq(verify(t, &c), PR_EAUTH, "signature changed at %zu accepted", i);
    sig[i] = keep;
  }
  cr_assert_eq(verify(t, &c), 0);
  /* Signed with another secret. */
  char *h = b64url(HDR), *p = b64url(payload(NULL));
  char *other = sign_parts(h, p, "another-secret");
  cr_assert_eq(verify(other, &c), PR_EAUTH);
  cr_assert_str_eq(c.sub, "", "no claims on failure");
  pr_free(other);
  pr_free(h);
  pr_free(p);
  pr_free(t);
}

Test(hs256, truncated_or_extended_signature) {
  char *t = token_json(HDR, payload(NULL));
  size_t n = strlen(t);
  pr_claims c;
  cr_assert_eq(pr_auth_verify(auth, t, n - 1, &c), PR_EAUTH, "42 characters");
  cr_assert_eq(pr_auth_verify(auth, t, n - 2, &c), PR_EAUTH, "41 characters");
  cr_assert_eq(pr_auth_verify(auth, t, strrchr(t, '.') - t + 2, &c), PR_EAUTH, "1 character");
  char *longer = pr_malloc(n + 8);
  sprintf(longer, "%sA", t);
  cr_assert_eq(verify(longer, &c), PR_EAUTH, "44 characters");
  sprintf(longer, "%sAAAA", t);
  cr_assert_eq(verify(longer, &c), PR_EAUTH, "47 characters (35 bytes)");
  sprintf(longer, "%s=", t);
  cr_assert_eq(verify(longer, &c), PR_EAUTH, "padded");
  pr_free(longer);
  pr_free(t);
}

Test(hs256, bad_base64url) {
  char *t = token_json(HDR, payload(NULL));
  char *sig = strrchr(t, '.') + 1;
  pr_claims c;
  const char bad[] = {'+', '/', '=', ' ', '\0' + 1, '\x80', '.'};
  for (size_t i = 0; i < sizeof(bad); i++) {
    char keep = sig[10];
    sig[10] = bad[i];
    cr_expect_eq(verify(t, &c), PR_EAUTH, "byte 0x%02x in the signature accepted",
                 (unsigned char)bad[i]);
    sig[10] = keep;
  }
  /* The same signature with non-zero unused bits in its last character
   * decodes to the same bytes; only the canonical form is accepted. */
  char keep = sig[42];
  const char *tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  int v = (int)(strchr(tbl, keep) - tbl);
  sig[42] = tbl[v | 1];
  cr_assert_eq(verify(t, &c), PR_EAUTH, "non-canonical last character");
  sig[42] = keep;
  cr_assert_eq(verify(t, &c), 0);
  pr_free(t);

  /* Characters outside base64url in the header or the payload, under a
   * valid HMAC of exactly those bytes. */
  char *h = b64url(HDR), *p = b64url(payload(NULL));
  char *ph = pr_strdup(p);
  ph[5] = '+';
  char *t2 = sign_parts(h, ph, SECRET);
  cr_assert_eq(verify(t2, &c), PR_EAUTH, "'+' in the payload");
  pr_free(t2);
  char *hh = pr_strdup(h);
  hh[3] = '/';
  t2 = sign_parts(hh, p, SECRET);
  cr_assert_eq(verify(t2, &c), PR_EAUTH, "'/' in the header");
  pr_free(t2);
  /* A payload of 4k+1 characters cannot be base64. */
  char *p1 = pr_malloc(strlen(p) + 8);
  sprintf(p1, "%s%s", p, strlen(p) % 4 == 0 ? "A" : strlen(p) % 4 == 2 ? "AAA" : "AA");
  t2 = sign_parts(h, p1, SECRET);
  cr_assert_eq(verify(t2, &c), PR_EAUTH, "payload of 4k+1 characters");
  pr_free(t2);
  pr_free(p1);
  pr_free(hh);
  pr_free(ph);
  pr_free(h);
  pr_free(p);
}

Test(hs256, payload_tampering) {
  char *t = token_json(HDR, payload(NULL));
  char *p = strchr(t, '.') + 1;
  pr_claims c;
  /* Any one character of the payload changed. */
  for (char *q = p; *q != '.'; q++) {
    char keep = *q;
    *q = keep == 'x' ? 'y' : 'x';
    cr_expect_eq(verify(t, &c), PR_EAUTH, "payload changed at %td accepted", q - p);
    *q = keep;
  }
  /* Another payload (a later exp, another user, admin) under the signature. */
  char *evil = token_json(HDR, "{\"sub\":\"mallory\",\"exp\":9999999999,\"role\":\"admin\"}");
  char *e1 = strchr(evil, '.'), *e2 = strrchr(evil, '.');
  char *t1 = strchr(t, '.'), *t2 = strrchr(t, '.');
  char forged[1024];
  snprintf(forged, sizeof(forged), "%.*s%.*s%s", (int)(t1 - t), t, (int)(e2 - e1), e1, t2);
  cr_assert_eq(verify(forged, &c), PR_EAUTH);
  /* And the header swapped for one naming the same alg differently spaced. */
  char *h2 = b64url("{\"alg\": \"HS256\"}");
  snprintf(forged, sizeof(forged), "%s%s", h2, t1);
  cr_assert_eq(verify(forged, &c), PR_EAUTH);
  pr_free(h2);
  pr_free(evil);
  pr_free(t);
}

/* ---- header ---- */

Test(hs256, header_spaces_and_extra_fields) {
  cr_expect_eq(verify_json("{\"alg\":\"HS256\"}", payload(NULL)), 0, "alg only");
  cr_expect_eq(
      verify_json(" \t\r\n{ \"typ\" : \"JWT\" ,\n\t\"alg\"\t:\t\"HS256\" , \"kid\": \"k1\" }\n ",
                  payload(NULL)),
      0, "whitespace everywhere JSON allows it");
  cr_expect_eq(
      verify_json("{\"alg\":\"HS256\",\"x5t\":null,\"ext\":[1,-2.5e3,true,false,{\"a\":[{}]}],"
                  "\"name\":\"\\u00e9\\ud83d\\ude00\\n\"}",
                  payload(NULL)),
      0, "unknown members of every type are skipped");
  cr_expect_eq(verify_json("{\"alg\":\"\\u0048S256\"}", payload(NULL)), 0, "alg through an escape");
  cr_expect_eq(verify_json("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", payload(NULL)), PR_EAUTH,
               "crit: no extension is understood");
  cr_expect_eq(verify_json("{\"typ\":\"JWT\"}", payload(NULL)), PR_EAUTH, "no alg");
  cr_expect_eq(verify_json("{\"alg\":\"HS256 \"}", payload(NULL)), PR_EAUTH, "alg with a space");
  cr_expect_eq(verify_json("{\"alg\":\"hs256\"}", payload(NULL)), PR_EAUTH, "alg case");
  cr_expect_eq(verify_json("{\"alg\":[\"HS256\"]}", payload(NULL)), PR_EAUTH, "alg an array");
  cr_expect_eq(verify_json("{\"alg\":\"none\"}", payload(NULL)), PR_EAUTH, "alg none");
  cr_expect_eq(verify_json("[\"HS256\"]", payload(NULL)), PR_EAUTH, "not an object");
  cr_expect_eq(verify_json("{\"alg\":\"HS256\"} x", payload(NULL)), PR_EAUTH, "trailing bytes");
  cr_expect_eq(verify_json("{\"alg\":\"HS256\"}{}", payload(NULL)), PR_EAUTH, "two objects");
}

Test(hs256, duplicate_members) {
  /* A member this module reads, named twice, is refused: another reader of
   * the same token might take the other one. */
  cr_expect_eq(verify_json("{\"alg\":\"HS256\",\"alg\":\"HS256\"}", payload(NULL)), PR_EAUTH);
  cr_expect_eq(verify_json("{\"alg\":\"none\",\"alg\":\"HS256\"}", payload(NULL)), PR_EAUTH);
  char body[256];
  snprintf(body, sizeof(body), "{\"sub\":\"alice\",\"sub\":\"mallory\",\"exp\":%lld}",
           fake_now + 60);
  cr_expect_eq(verify_json(HDR, body), PR_EAUTH, "sub twice");
  snprintf(body, sizeof(body), "{\"sub\":\"alice\",\"\\u0073ub\":\"mallory\",\"exp\":%lld}",
           fake_now + 60);
  cr_expect_eq(verify_json(HDR, body), PR_EAUTH, "sub twice, once escaped");
  cr_expect_eq(verify_json(HDR, payload(",\"exp\":9999999999")), PR_EAUTH, "exp twice");
  cr_expect_eq(verify_json(HDR, payload(",\"nbf\":1,\"nbf\":2")), PR_EAUTH, "nbf twice");
  cr_expect_eq(verify_json(HDR, payload(",\"role\":\"user\",\"role\":\"admin\"")), PR_EAUTH,
               "role twice");
  /* Members nobody reads may repeat (defined: they are never interpreted). */
  cr_expect_eq(verify_json(HDR, payload(",\"x\":1,\"x\":2")), 0);
  cr_expect_eq(verify_json(HDR, payload(",\"o\":{\"sub\":\"a\",\"sub\":\"b\"}")), 0,
               "nested objects are not read");
}

/* ---- claims ---- */

Test(hs256, exp_types) {
  char body[256];
  const char *bad[] = {"\"9999999999\"",
                       "true",
                       "null",
                       "[9999999999]",
                       "{}",
                       "1e30",
                       "9223372036854775808",
                       "99999999999999999999999",
                       "0x10",
                       "+5",
                       "01",
                       "1.",
                       ".5",
                       "1e",
                       "-"};
  for (size_t i = 0; i < PR_ARRAY_LEN(bad); i++) {
    snprintf(body, sizeof(body), "{\"sub\":\"alice\",\"exp\":%s}", bad[i]);
    cr_expect_eq(verify_json(HDR, body), PR_EAUTH, "exp %s accepted", bad[i]);
  }
  pr_claims c;
  /* A NumericDate may have a fraction (RFC 7519 §2); it is truncated. */
  snprintf(body, sizeof(body), "{\"sub\":\"alice\",\"exp\":%lld.75}", fake_now + 60);
  char *t = token_json(HDR, body);
  cr_assert_eq(verify(t, &c), 0);
  cr_assert_eq(c.exp, fake_now + 60);
  pr_free(t);
  /* Exponent forms: 1.9e10 is 19000000000, 25e-1 is 2 (expired). */
  t = token_json(HDR, "{\"sub\":\"alice\",\"exp\":1.9e10}");
  cr_assert_eq(verify(t, &c), 0);
  cr_assert_eq(c.exp, 19000000000LL);
  pr_free(t);
  t = token_json(HDR, "{\"sub\":\"alice\",\"exp\":1.9E+10}");
  cr_assert_eq(verify(t, &c), 0);
  cr_assert_eq(c.exp, 19000000000LL);
  pr_free(t);
  cr_expect_eq(verify_json(HDR, "{\"sub\":\"alice\",\"exp\":25e-1}"), PR_EEXPIRED);
  cr_expect_eq(verify_json(HDR, "{\"sub\":\"alice\",\"exp\":-1.5}"), PR_EEXPIRED);
  cr_expect_eq(verify_json(HDR, "{\"sub\":\"alice\",\"exp\":9223372036854775807}"), 0,
               "the largest exp");
  /* exp == now with a fraction: truncated to now, which has passed. */
  snprintf(body, sizeof(body), "{\"sub\":\"alice\",\"exp\":%lld.999}", fake_now);
  cr_expect_eq(verify_json(HDR, body), PR_EEXPIRED);
}

Test(hs256, nbf_and_role_and_sub) {
  char extra[128];
  snprintf(extra, sizeof(extra), ",\"nbf\":%lld", fake_now + 1);
  cr_expect_eq(verify_json(HDR, payload(extra)), PR_EAUTH, "nbf in the future");
  snprintf(extra, sizeof(extra), ",\"nbf\":%lld", fake_now);
  cr_expect_eq(verify_json(HDR, payload(extra)), 0, "nbf now");
  cr_expect_eq(verify_json(HDR, payload(",\"nbf\":\"0\"")), PR_EAUTH, "nbf a string");

  pr_claims c;
  char *t = token_json(HDR, payload(",\"role\":\"\\u0061dmin\""));
  cr_assert_eq(verify(t, &c), 0);
  cr_assert_eq(c.admin, 1);
  pr_free(t);
  const char *not_admin[] = {"\"Admin\"", "\"admin \"", "[\"admin\"]",
                             "1",         "null",       "\"administrator\""};
  for (size_t i = 0; i < PR_ARRAY_LEN(not_admin); i++) {
    char r[64];
    snprintf(r, sizeof(r), ",\"role\":%s", not_admin[i]);
    t = token_json(HDR, payload(r));
    cr_expect_eq(verify(t, &c), 0);
    cr_expect_eq(c.admin, 0, "role %s is admin", not_admin[i]);
    pr_free(t);
  }

  char body[256];
  snprintf(body, sizeof(body), "{\"exp\":%lld,\"sub\":\"\\u0061l\\/ice\"}", fake_now + 60);
  cr_expect_eq(verify_json(HDR, body), PR_EAUTH, "sub with a '/' through an escape");
  snprintf(body, sizeof(body), "{\"exp\":%lld,\"sub\":\"\\u0061lice\"}", fake_now + 60);
  t = token_json(HDR, body);
  cr_assert_eq(verify(t, &c), 0);
  cr_assert_str_eq(c.sub, "alice");
  pr_free(t);
}

Test(hs256, malformed_json_under_a_valid_signature) {
  char e[32];
  snprintf(e, sizeof(e), "%lld", fake_now + 60);
  char body[512];
  const char *fmt[] = {
      "{\"sub\":\"alice\",\"exp\":%s,}",                         /* trailing comma */
      "{\"sub\":\"alice\" \"exp\":%s}",                          /* missing comma */
      "{\"sub\":\"alice\",\"exp\":%s",                           /* unterminated */
      "{\"sub\":\"alice\",\"exp\":%s}}",                         /* extra brace */
      "{sub:\"alice\",\"exp\":%s}",                              /* bare name */
      "{\"sub\":'alice',\"exp\":%s}",                            /* single quotes */
      "{\"sub\":\"al\tice\",\"exp\":%s}",                        /* raw control character */
      "{\"sub\":\"alice\",\"exp\":%s,\"x\":\"\\ud800\"}",        /* lone surrogate */
      "{\"sub\":\"alice\",\"exp\":%s,\"x\":\"\\udc00\\ud800\"}", /* reversed pair */
      "{\"sub\":\"alice\",\"exp\":%s,\"x\":\"\\u0000\"}",        /* NUL */
      "{\"sub\":\"alice\",\"exp\":%s,\"x\":\"\\x41\"}",          /* unknown escape */
      "{\"sub\":\"alice\",\"exp\":%s,\"x\":\"\\u12\"}",          /* short escape */
      "{\"sub\":\"alice\",\"exp\":%s,\"x\":\"\xc3\x28\"}",       /* invalid UTF-8 */
      "{\"sub\":\"alice\",\"exp\":%s,\"x\":\"\xc0\xaf\"}",       /* overlong */
      "{\"sub\":\"alice\",\"exp\":%s,\"x\":\"\xed\xa0\x80\"}",   /* surrogate in UTF-8 */
      "{\"sub\":\"alice\",\"exp\":%s,\"x\":tru}",
      "{\"sub\":\"alice\",\"exp\":%s,\"x\":nul}",
      "{\"sub\":\"alice\",\"exp\":%s,\"x\":[1,]}",
      "{\"sub\":\"alice\",\"exp\":%s,\"x\":{\"a\"}}",
      "{\"sub\":\"alice\",\"exp\":%s,\"x\":-}",
      "{\"sub\":\"alice\",\"exp\":%s,\"x\":NaN}",
  };
  for (size_t i = 0; i < PR_ARRAY_LEN(fmt); i++) {
    snprintf(body, sizeof(body), fmt[i], e);
    cr_expect_eq(verify_json(HDR, body), PR_EAUTH, "accepted: %s", body);
  }
  /* The same shapes done right are fine. */
  snprintf(body, sizeof(body), "{\"sub\":\"alice\",\"exp\":%s,\"x\":\"\xc3\xa9\\ud83d\\ude00\"}",
           e);
  cr_expect_eq(verify_json(HDR, body), 0);
  cr_expect_eq(verify_json(HDR, "{}"), PR_EAUTH, "no claims");
  cr_expect_eq(verify_json(HDR, ""), PR_EAUTH, "empty payload");
}

Test(hs256, nesting_is_bounded) {
  char body[512], deep[200];
  size_t n = 0;
  for (int i = 0; i < 30; i++)
    deep[n++] = '[';
  for (int i = 0; i < 30; i++)
    deep[n++] = ']';
  deep[n] = '\0';
  snprintf(body, sizeof(body), ",\"x\":%s", deep);
  cr_expect_eq(verify_json(HDR, payload(body)), 0, "31 levels with the top object");
  n = 0;
  for (int i = 0; i < 32; i++)
    deep[n++] = '[';
  for (int i = 0; i < 32; i++)
    deep[n++] = ']';
  deep[n] = '\0';
  snprintf(body, sizeof(body), ",\"x\":%s", deep);
  cr_expect_eq(verify_json(HDR, payload(body)), PR_EAUTH, "33 levels");
}

Test(hs256, very_long_tokens) {
  /* A padding claim sized so that the token is exactly PR_AUTH_MAX_TOKEN. */
  char *base = token_json(HDR, payload(",\"pad\":\"\""));
  size_t room = PR_AUTH_MAX_TOKEN - strlen(base); /* in token characters */
  pr_free(base);
  size_t pad = room / 4 * 3; /* 3 payload bytes per 4 characters */
  char *extra = pr_malloc(pad + 16);
  char *big = NULL;
  for (;; pad--) {
    snprintf(extra, pad + 16, ",\"pad\":\"%*s\"", (int)pad, "");
    memset(extra + 8, 'p', pad);
    big = token_json(HDR, payload(extra));
    if (strlen(big) <= PR_AUTH_MAX_TOKEN) break;
    pr_free(big);
  }
  pr_claims c;
  cr_assert_geq(strlen(big), PR_AUTH_MAX_TOKEN - 4);
  cr_assert_eq(verify(big, &c), 0, "%zu bytes", strlen(big));
  cr_assert_str_eq(c.sub, "alice");
  pr_free(big);
  /* Over the limit by a little: refused before any work. */
  snprintf(extra, pad + 16, ",\"pad\":\"%*s\"", (int)(pad + 6), "");
  memset(extra + 8, 'p', pad + 6);
  big = token_json(HDR, payload(extra));
  cr_assert_gt(strlen(big), PR_AUTH_MAX_TOKEN);
  cr_assert_eq(verify(big, &c), PR_EAUTH);
  pr_free(big);
  pr_free(extra);
}

/* ---- threads ---- */

typedef struct {
  char *tok[4];
  int bad;
} thread_arg;

static void *verify_loop(void *p) {
  thread_arg *ta = p;
  for (int i = 0; i < 2000; i++) {
    pr_claims c;
    const char *t = ta->tok[i % 4];
    int rc = pr_auth_verify(auth, t, strlen(t), &c);
    int want = i % 4 == 3 ? PR_EAUTH : 0;
    if (rc != want) ta->bad++;
  }
  return NULL;
}

Test(hs256, verify_from_several_threads) {
  /* Without a cache a pr_auth may be shared by threads: they contend for the
   * spare HMAC context and fall back to copies of the keyed one. */
  thread_arg ta[4] = {{{0}, 0}};
  char users[4][16];
  for (int k = 0; k < 4; k++) {
    for (int j = 0; j < 4; j++) {
      char body[128];
      snprintf(users[j], sizeof(users[j]), "user%d", k * 4 + j);
      snprintf(body, sizeof(body), "{\"sub\":\"%s\",\"exp\":%lld}", users[j], fake_now + 60);
      ta[k].tok[j] = token_json(HDR, body);
    }
    ta[k].tok[3][strlen(ta[k].tok[3]) - 5] ^= 1; /* a bad signature */
  }
  pthread_t th[4];
  for (int k = 0; k < 4; k++)
    cr_assert_eq(pthread_create(&th[k], NULL, verify_loop, &ta[k]), 0);
  for (int k = 0; k < 4; k++) {
    pthread_join(th[k], NULL);
    cr_expect_eq(ta[k].bad, 0, "thread %d: %d wrong answers", k, ta[k].bad);
    for (int j = 0; j < 4; j++)
      pr_free(ta[k].tok[j]);
  }
}
