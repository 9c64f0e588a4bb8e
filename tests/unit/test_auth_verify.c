/* Auth: JWT verification (HS256, RS256, ES256) and its rejections. */
#include "auth.h"
#include "base.h"

#include <criterion/criterion.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SECRET "test-secret-0123456789"

static char err[256];
static char key_path[64];

static void teardown(void) {
  if (key_path[0]) unlink(key_path);
  key_path[0] = '\0';
}
TestSuite(auth, .fini = teardown);

/* ---- helpers ---- */

static pr_auth *hs256(void) {
  pr_auth *a = NULL;
  pr_auth_opts o = {.hs256_secret = SECRET};
  cr_assert_eq(pr_auth_new(&o, &a, err, sizeof(err)), 0, "%s", err);
  cr_assert_str_eq(pr_auth_alg(a), "HS256");
  return a;
}

static int verify(pr_auth *a, const char *tok, pr_claims *c) {
  return pr_auth_verify(a, tok, strlen(tok), c);
}

/* Signs claims (JSON) with libjwt; key is a secret or a private key PEM. */
static char *sign(jwt_alg_t alg, const char *key, size_t keylen, const char *claims) {
  jwt_t *jwt = NULL;
  cr_assert_eq(jwt_new(&jwt), 0);
  cr_assert_eq(jwt_add_grants_json(jwt, claims), 0, "claims: %s", claims);
  cr_assert_eq(jwt_set_alg(jwt, alg, (const unsigned char *)key, (int)keylen), 0);
  char *s = jwt_encode_str(jwt);
  cr_assert_not_null(s);
  jwt_free(jwt);
  char *out = pr_strdup(s);
  free(s);
  return out;
}

static char *claims_json(const char *sub, long long exp_offset, const char *extra) {
  static char buf[512];
  snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"exp\":%lld%s%s}", sub,
           (long long)time(NULL) + exp_offset, extra ? "," : "", extra ? extra : "");
  return buf;
}

static char *b64url(const char *in) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t n = strlen(in);
  char *out = pr_malloc(n * 2 + 4), *o = out;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned char)in[i] << 16;
    if (i + 1 < n) v |= (unsigned char)in[i + 1] << 8;
    if (i + 2 < n) v |= (unsigned char)in[i + 2];
    *o++ = tbl[(v >> 18) & 63];
    *o++ = tbl[(v >> 12) & 63];
    if (i + 1 < n) *o++ = tbl[(v >> 6) & 63];
    if (i + 2 < n) *o++ = tbl[v & 63];
  }
  *o = '\0';
  return out;
}

/* header.payload.sig from JSON texts. */
static char *hand_token(const char *header, const char *payload, const char *sig) {
  char *h = b64url(header), *p = b64url(payload);
  size_t n = strlen(h) + strlen(p) + strlen(sig) + 3;
  char *t = pr_malloc(n);
  snprintf(t, n, "%s.%s.%s", h, p, sig);
  pr_free(h);
  pr_free(p);
  return t;
}

static char *pem_of(EVP_PKEY *pk, int private) {
  BIO *bio = BIO_new(BIO_s_mem());
  if (private)
    cr_assert(PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL));
  else
    cr_assert(PEM_write_bio_PUBKEY(bio, pk));
  char *data;
  long n = BIO_get_mem_data(bio, &data);
  char *out = pr_strndup(data, (size_t)n);
  BIO_free(bio);
  return out;
}

static void write_key_file(const char *pem) {
  snprintf(key_path, sizeof(key_path), "/tmp/pr_auth_key_XXXXXX");
  int fd = mkstemp(key_path);
  cr_assert(fd >= 0);
  cr_assert_eq(write(fd, pem, strlen(pem)), (ssize_t)strlen(pem));
  close(fd);
}

static pr_auth *from_key(EVP_PKEY *pk, char **pub_pem) {
  char *pub = pem_of(pk, 0);
  write_key_file(pub);
  pr_auth *a = NULL;
  pr_auth_opts o = {.public_key_path = key_path};
  cr_assert_eq(pr_auth_new(&o, &a, err, sizeof(err)), 0, "%s", err);
  if (pub_pem)
    *pub_pem = pub;
  else
    pr_free(pub);
  return a;
}

/* ---- HS256 ---- */

Test(auth, minted_hs256_verifies) {
  pr_auth *a = hs256();
  char *tok;
  cr_assert_eq(pr_auth_mint_hs256(SECRET, "alice", 0, 60, &tok), 0);
  pr_claims c;
  cr_assert_eq(verify(a, tok, &c), 0);
  cr_assert_str_eq(c.sub, "alice");
  cr_assert_eq(c.admin, 0);
  long long now = (long long)time(NULL);
  cr_assert(c.exp >= now + 58 && c.exp <= now + 61, "exp %lld", c.exp);
  pr_free(tok);
  pr_auth_free(a);
}

Test(auth, admin_role_parsed) {
  pr_auth *a = hs256();
  char *tok;
  cr_assert_eq(pr_auth_mint_hs256(SECRET, "root", 1, 60, &tok), 0);
  pr_claims c;
  cr_assert_eq(verify(a, tok, &c), 0);
  cr_assert_eq(c.admin, 1);
  pr_free(tok);
  /* Only the exact string "admin" counts. */
  char *other =
      sign(JWT_ALG_HS256, SECRET, strlen(SECRET), claims_json("bob", 60, "\"role\":\"Admin\""));
  cr_assert_eq(verify(a, other, &c), 0);
  cr_assert_eq(c.admin, 0);
  pr_free(other);
  pr_auth_free(a);
}

Test(auth, expired) {
  pr_auth *a = hs256();
  char *tok;
  cr_assert_eq(pr_auth_mint_hs256(SECRET, "alice", 0, -10, &tok), 0);
  pr_claims c;
  cr_assert_eq(verify(a, tok, &c), PR_EEXPIRED);
  cr_assert_str_eq(c.sub, "", "no claims are handed out for an expired token");
  pr_free(tok);
  cr_assert_eq(pr_auth_mint_hs256(SECRET, "alice", 0, 0, &tok), 0);
  cr_assert_eq(verify(a, tok, &c), PR_EEXPIRED, "exp == now is expired (no leeway)");
  pr_free(tok);
  pr_auth_free(a);
}

Test(auth, wrong_signature) {
  pr_auth *a = hs256();
  char *tok;
  cr_assert_eq(pr_auth_mint_hs256("another-secret", "alice", 0, 60, &tok), 0);
  pr_claims c;
  cr_assert_eq(verify(a, tok, &c), PR_EAUTH);
  pr_free(tok);

  /* A payload swapped under a valid signature. */
  char *good, *evil;
  cr_assert_eq(pr_auth_mint_hs256(SECRET, "alice", 0, 60, &good), 0);
  cr_assert_eq(pr_auth_mint_hs256(SECRET, "mallory", 1, 60, &evil), 0);
  char *g1 = strchr(good, '.'), *g2 = strrchr(good, '.');
  char *e1 = strchr(evil, '.'), *e2 = strrchr(evil, '.');
  char forged[2048];
  snprintf(forged, sizeof(forged), "%.*s%.*s%s", (int)(g1 - good), good, (int)(e2 - e1), e1, g2);
  cr_assert_eq(verify(a, forged, &c), PR_EAUTH);
  pr_free(good);
  pr_free(evil);
  pr_auth_free(a);
}

Test(auth, alg_none_rejected) {
  pr_auth *a = hs256();
  char payload[256];
  snprintf(payload, sizeof(payload), "{\"sub\":\"alice\",\"exp\":%lld}",
           (long long)time(NULL) + 60);
  pr_claims c;
  char *t1 = hand_token("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, "");
  cr_assert_eq(verify(a, t1, &c), PR_EAUTH);
  char *t2 = hand_token("{\"alg\":\"none\"}", payload, "c2ln");
  cr_assert_eq(verify(a, t2, &c), PR_EAUTH);
  char *t3 = hand_token("{\"alg\":\"NONE\"}", payload, "c2ln");
  cr_assert_eq(verify(a, t3, &c), PR_EAUTH);
  /* Two-part token (no signature part at all). */
  char t4[1024];
  snprintf(t4, sizeof(t4), "%.*s", (int)(strrchr(t1, '.') - t1), t1);
  cr_assert_eq(verify(a, t4, &c), PR_EAUTH);
  pr_free(t1);
  pr_free(t2);
  pr_free(t3);
  pr_auth_free(a);
}

Test(auth, other_hmac_alg_rejected) {
  pr_auth *a = hs256();
  char *tok = sign(JWT_ALG_HS512, SECRET, strlen(SECRET), claims_json("alice", 60, NULL));
  pr_claims c;
  cr_assert_eq(verify(a, tok, &c), PR_EAUTH, "HS512 with the right secret is still not HS256");
  pr_free(tok);
  pr_auth_free(a);
}

Test(auth, missing_or_bad_exp) {
  pr_auth *a = hs256();
  pr_claims c;
  char *t1 = sign(JWT_ALG_HS256, SECRET, strlen(SECRET), "{\"sub\":\"alice\"}");
  cr_assert_eq(verify(a, t1, &c), PR_EAUTH);
  char *t2 = sign(JWT_ALG_HS256, SECRET, strlen(SECRET), "{\"sub\":\"alice\",\"exp\":\"never\"}");
  cr_assert_eq(verify(a, t2, &c), PR_EAUTH);
  pr_free(t1);
  pr_free(t2);
  pr_auth_free(a);
}

Test(auth, bad_sub) {
  pr_auth *a = hs256();
  pr_claims c;
  char long_sub[66];
  memset(long_sub, 'a', 65);
  long_sub[65] = '\0';
  const char *bad[] = {"a b", long_sub, "", "a/b", "\\u00fc"};
  for (size_t i = 0; i < PR_ARRAY_LEN(bad); i++) {
    char *t = sign(JWT_ALG_HS256, SECRET, strlen(SECRET), claims_json(bad[i], 60, NULL));
    cr_expect_eq(verify(a, t, &c), PR_EAUTH, "sub '%s' accepted", bad[i]);
    pr_free(t);
  }
  long_sub[64] = '\0';
  char *t = sign(JWT_ALG_HS256, SECRET, strlen(SECRET), claims_json(long_sub, 60, NULL));
  cr_assert_eq(verify(a, t, &c), 0, "64 bytes is the maximum, and allowed");
  cr_assert_str_eq(c.sub, long_sub);
  pr_free(t);

  char exp_only[128];
  snprintf(exp_only, sizeof(exp_only), "{\"exp\":%lld}", (long long)time(NULL) + 60);
  t = sign(JWT_ALG_HS256, SECRET, strlen(SECRET), exp_only);
  cr_assert_eq(verify(a, t, &c), PR_EAUTH, "missing sub");
  pr_free(t);
  snprintf(exp_only, sizeof(exp_only), "{\"sub\":42,\"exp\":%lld}", (long long)time(NULL) + 60);
  t = sign(JWT_ALG_HS256, SECRET, strlen(SECRET), exp_only);
  cr_assert_eq(verify(a, t, &c), PR_EAUTH, "numeric sub");
  pr_free(t);
  pr_auth_free(a);
}

Test(auth, nbf_in_future_rejected) {
  pr_auth *a = hs256();
  char extra[64];
  snprintf(extra, sizeof(extra), "\"nbf\":%lld", (long long)time(NULL) + 3600);
  char *t = sign(JWT_ALG_HS256, SECRET, strlen(SECRET), claims_json("alice", 7200, extra));
  pr_claims c;
  cr_assert_eq(verify(a, t, &c), PR_EAUTH);
  pr_free(t);
  pr_auth_free(a);
}

Test(auth, malformed) {
  pr_auth *a = hs256();
  pr_claims c;
  const char *bad[] = {"",   "abc",  "a.b",         "a.b.c.d",
                       "..", "a..c", "!!!.???.###", "eyJhbGciOiJIUzI1NiJ9.e30=.abc"};
  for (size_t i = 0; i < PR_ARRAY_LEN(bad); i++)
    cr_expect_eq(verify(a, bad[i], &c), PR_EAUTH, "'%s' accepted", bad[i]);
  /* A valid token with a NUL inside the given length, and a too-long token. */
  char *tok;
  cr_assert_eq(pr_auth_mint_hs256(SECRET, "alice", 0, 60, &tok), 0);
  size_t n = strlen(tok);
  cr_assert_eq(pr_auth_verify(a, tok, n + 1, &c), PR_EAUTH, "trailing NUL included");
  cr_assert_eq(pr_auth_verify(a, tok, n, &c), 0, "the same token without it is fine");
  cr_assert_eq(pr_auth_verify(a, tok, n - 1, &c), PR_EAUTH, "truncated signature");
  char *huge = pr_malloc(PR_AUTH_MAX_TOKEN + 2);
  memset(huge, 'a', PR_AUTH_MAX_TOKEN + 1);
  huge[PR_AUTH_MAX_TOKEN + 1] = '\0';
  cr_assert_eq(verify(a, huge, &c), PR_EAUTH);
  pr_free(huge);
  pr_free(tok);
  pr_auth_free(a);
}

Test(auth, verify_uses_only_len_bytes) {
  pr_auth *a = hs256();
  char *tok;
  cr_assert_eq(pr_auth_mint_hs256(SECRET, "alice", 0, 60, &tok), 0);
  size_t n = strlen(tok);
  char *buf = pr_malloc(n + 8);
  memcpy(buf, tok, n);
  memcpy(buf + n, "&x=1 ", 6); /* e.g. the rest of a query string */
  pr_claims c;
  cr_assert_eq(pr_auth_verify(a, buf, n, &c), 0);
  cr_assert_str_eq(c.sub, "alice");
  pr_free(buf);
  pr_free(tok);
  pr_auth_free(a);
}

/* ---- RS256 / ES256 and algorithm confusion ---- */

Test(auth, rs256_ok_and_hs256_forgery_with_public_key_rejected) {
  EVP_PKEY *pk = EVP_RSA_gen(2048);
  cr_assert_not_null(pk);
  char *pub;
  pr_auth *a = from_key(pk, &pub);
  cr_assert_str_eq(pr_auth_alg(a), "RS256");
  char *priv = pem_of(pk, 1);

  char *tok =
      sign(JWT_ALG_RS256, priv, strlen(priv), claims_json("alice", 60, "\"role\":\"admin\""));
  pr_claims c;
  cr_assert_eq(verify(a, tok, &c), 0);
  cr_assert_str_eq(c.sub, "alice");
  cr_assert_eq(c.admin, 1);
  pr_free(tok);

  /* The classic confusion: HS256 keyed with the public key PEM. */
  char *forged = sign(JWT_ALG_HS256, pub, strlen(pub), claims_json("mallory", 60, NULL));
  cr_assert_eq(verify(a, forged, &c), PR_EAUTH);
  /* Why the header check matters: libjwt 1.10.2's jwt_decode alone accepts
   * this forgery (it verifies with the algorithm the token names). */
  jwt_t *probe = NULL;
  int libjwt_rc = jwt_decode(&probe, forged, (const unsigned char *)pub, (int)strlen(pub));
  if (probe) jwt_free(probe);
  cr_log_info("libjwt jwt_decode on the forgery returns %d", libjwt_rc);
  pr_free(forged);

  /* A header claiming RS256 over an HMAC signature fails the RSA check. */
  char *hmac = sign(JWT_ALG_HS256, pub, strlen(pub), claims_json("mallory", 60, NULL));
  char *payload_sig = strchr(hmac, '.');
  char *rs_header = hand_token("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", "{}", "x");
  *strchr(rs_header, '.') = '\0';
  char relabelled[4096];
  snprintf(relabelled, sizeof(relabelled), "%s%s", rs_header, payload_sig);
  cr_assert_eq(verify(a, relabelled, &c), PR_EAUTH);
  pr_free(rs_header);
  pr_free(hmac);

  char *expired = sign(JWT_ALG_RS256, priv, strlen(priv), claims_json("alice", -5, NULL));
  cr_assert_eq(verify(a, expired, &c), PR_EEXPIRED);
  pr_free(expired);

  /* A token signed by another RSA key. */
  EVP_PKEY *other = EVP_RSA_gen(2048);
  char *other_priv = pem_of(other, 1);
  char *t2 = sign(JWT_ALG_RS256, other_priv, strlen(other_priv), claims_json("alice", 60, NULL));
  cr_assert_eq(verify(a, t2, &c), PR_EAUTH);
  pr_free(t2);
  pr_free(other_priv);
  EVP_PKEY_free(other);

  pr_free(priv);
  pr_free(pub);
  EVP_PKEY_free(pk);
  pr_auth_free(a);
}

Test(auth, es256_ok_other_algs_rejected) {
  EVP_PKEY *pk = EVP_EC_gen("P-256");
  cr_assert_not_null(pk);
  char *pub;
  pr_auth *a = from_key(pk, &pub);
  cr_assert_str_eq(pr_auth_alg(a), "ES256");
  char *priv = pem_of(pk, 1);
  char *tok = sign(JWT_ALG_ES256, priv, strlen(priv), claims_json("bob", 60, NULL));
  pr_claims c;
  cr_assert_eq(verify(a, tok, &c), 0);
  cr_assert_str_eq(c.sub, "bob");
  pr_free(tok);

  char *forged = sign(JWT_ALG_HS256, pub, strlen(pub), claims_json("mallory", 60, NULL));
  cr_assert_eq(verify(a, forged, &c), PR_EAUTH);
  pr_free(forged);

  pr_free(priv);
  pr_free(pub);
  EVP_PKEY_free(pk);
  pr_auth_free(a);
}

Test(auth, hs256_config_rejects_rs256_token) {
  EVP_PKEY *pk = EVP_RSA_gen(2048);
  char *priv = pem_of(pk, 1);
  char *tok = sign(JWT_ALG_RS256, priv, strlen(priv), claims_json("alice", 60, NULL));
  pr_auth *a = hs256();
  pr_claims c;
  cr_assert_eq(verify(a, tok, &c), PR_EAUTH);
  pr_free(tok);
  pr_free(priv);
  EVP_PKEY_free(pk);
  pr_auth_free(a);
}

/* ---- configuration errors ---- */

Test(auth, new_needs_exactly_one_key) {
  pr_auth *a = (pr_auth *)1;
  pr_auth_opts none = {0};
  cr_assert_eq(pr_auth_new(&none, &a, err, sizeof(err)), PR_ECONFIG);
  cr_assert_null(a);
  cr_assert(strstr(err, "exactly one"), "%s", err);
  pr_auth_opts both = {.hs256_secret = "x", .public_key_path = "/tmp/k"};
  cr_assert_eq(pr_auth_new(&both, &a, err, sizeof(err)), PR_ECONFIG);
  pr_auth_opts empty = {.hs256_secret = ""};
  cr_assert_eq(pr_auth_new(&empty, &a, err, sizeof(err)), PR_ECONFIG);
  cr_assert_str_eq(err, "the JWT secret is empty");
}

Test(auth, new_rejects_bad_key_files) {
  pr_auth *a = NULL;
  pr_auth_opts o = {.public_key_path = "/nonexistent/key.pem"};
  cr_assert_eq(pr_auth_new(&o, &a, err, sizeof(err)), PR_ECONFIG);
  cr_assert_str_eq(err, "/nonexistent/key.pem: No such file or directory");

  write_key_file("not a key\n");
  o.public_key_path = key_path;
  cr_assert_eq(pr_auth_new(&o, &a, err, sizeof(err)), PR_ECONFIG);
  cr_assert(strstr(err, "not a PEM public key"), "%s", err);
  teardown();

  EVP_PKEY *pk = EVP_EC_gen("P-256");
  char *priv = pem_of(pk, 1);
  write_key_file(priv);
  o.public_key_path = key_path;
  cr_assert_eq(pr_auth_new(&o, &a, err, sizeof(err)), PR_ECONFIG);
  cr_assert(strstr(err, "is a private key"), "%s", err);
  teardown();
  pr_free(priv);
  EVP_PKEY_free(pk);

  pk = EVP_EC_gen("P-384");
  char *pub = pem_of(pk, 0);
  write_key_file(pub);
  o.public_key_path = key_path;
  cr_assert_eq(pr_auth_new(&o, &a, err, sizeof(err)), PR_ECONFIG);
  cr_assert(strstr(err, "only P-256"), "%s", err);
  pr_free(pub);
  EVP_PKEY_free(pk);
}

/* ---- minting and bearer ---- */

Test(auth, mint_rejects_bad_input) {
  char *tok = (char *)1;
  cr_assert_eq(pr_auth_mint_hs256("", "alice", 0, 60, &tok), PR_EINVAL);
  cr_assert_null(tok);
  cr_assert_eq(pr_auth_mint_hs256(SECRET, "a b", 0, 60, &tok), PR_EINVAL);
  cr_assert_eq(pr_auth_mint_hs256(SECRET, "", 0, 60, &tok), PR_EINVAL);
}

Test(auth, parse_bearer) {
  const char *tok;
  size_t n;
  const char *h = "Bearer abc.def.ghi";
  cr_assert_eq(pr_auth_parse_bearer(h, strlen(h), &tok, &n), 0);
  cr_assert_eq(n, 11);
  cr_assert(strncmp(tok, "abc.def.ghi", n) == 0);
  h = "  bearer   xyz  ";
  cr_assert_eq(pr_auth_parse_bearer(h, strlen(h), &tok, &n), 0);
  cr_assert_eq(n, 3);
  cr_assert(strncmp(tok, "xyz", 3) == 0);
  const char *bad[] = {"", "Bearer", "Bearer ", "Basic abc", "Bearerabc", "Bearer a b"};
  for (size_t i = 0; i < PR_ARRAY_LEN(bad); i++)
    cr_expect_eq(pr_auth_parse_bearer(bad[i], strlen(bad[i]), &tok, &n), PR_EAUTH, "'%s'", bad[i]);
}
