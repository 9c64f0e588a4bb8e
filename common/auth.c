/* auth.c: JWT verification (HS256 on OpenSSL's HMAC, RS256/ES256 on libjwt
 * 1.10) and HS256 minting (libjwt).
 *
 * HS256 is checked here: the signature first, then the header and the claims
 * (auth_json.c). libjwt parsed both parts with jansson and keyed a fresh HMAC
 * for every token, which was most of the cost of accepting a WebSocket, and
 * every connection carries a different token.
 *
 * For RS256/ES256, libjwt's jwt_decode verifies with whatever algorithm the
 * token's header names, so given an RSA public key it would accept an HS256
 * token whose secret is that PEM (algorithm confusion), and it does not check
 * exp. So the header's alg is checked here before libjwt sees the token, the
 * decoded alg is checked again after, and the claims are checked here.
 *
 * A client sends the same token on every request: an optional cache of
 * verified tokens (set-associative, LRU per set, whole-token compare)
 * answers repeats. */
#include "auth.h"
#include "auth_internal.h"
#include "base.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <jwt.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define MAX_KEY_FILE  (64 * 1024)
#define HS256_SIG_LEN 32 /* bytes of an HMAC-SHA256 */
#define HS256_SIG_B64 43 /* its unpadded base64url */
/* The longest decoded part: 3 bytes per 4 characters of the longest token. */
#define PART_MAX (PR_AUTH_MAX_TOKEN / 4 * 3 + 2)

typedef struct token_cache token_cache;

struct pr_auth {
  jwt_alg_t alg;
  const char *alg_name;
  unsigned char *key; /* HS256 secret or the public key PEM */
  size_t keylen;
  long long (*now)(void);
  /* HS256: contexts keyed with the secret. `hmac` is never changed after
   * pr_auth_new (it is duplicated when the spare is in use); `spare` is
   * re-initialised (same key) by whoever takes `spare_busy`. */
  EVP_MAC_CTX *hmac, *spare;
  atomic_flag spare_busy;
  token_cache *cache; /* NULL: every token is verified in full */
};

/* ---- Verified-token cache ---- */

/* One remembered token. The copy is the key: a lookup matches only the very
 * same bytes. */
typedef struct {
  uint64_t hash; /* of the token; 0: the slot is empty */
  char *token;   /* pr_malloc'd, len bytes (not terminated), PR_AUTH_CACHE_MAX_TOKEN at most */
  size_t len;
  uint64_t used; /* the cache's tick at the last hit or insert (LRU within a set) */
  long long nbf; /* LLONG_MIN when the token has none */
  pr_claims claims;
} cache_entry;

struct token_cache {
  cache_entry *slots; /* nsets x PR_AUTH_CACHE_WAYS */
  size_t nsets;       /* a power of two */
  uint64_t seed;      /* random: which tokens share a set cannot be chosen from outside */
  uint64_t tick;
  pr_auth_cache_stats stats;
};

static token_cache *cache_new(unsigned entries) {
  token_cache *c = pr_calloc(1, sizeof(*c));
  size_t sets = 1;
  while (sets * PR_AUTH_CACHE_WAYS < entries)
    sets <<= 1;
  c->nsets = sets;
  c->slots = pr_calloc(sets * PR_AUTH_CACHE_WAYS, sizeof(*c->slots));
  c->stats.capacity = sets * PR_AUTH_CACHE_WAYS;
  if (getrandom(&c->seed, sizeof(c->seed), GRND_NONBLOCK) != (ssize_t)sizeof(c->seed))
    c->seed = (uint64_t)(uintptr_t)c ^ ((uint64_t)time(NULL) << 32) ^ 0x9e3779b97f4a7c15ULL;
  return c;
}

static void entry_clear(token_cache *c, cache_entry *e) {
  if (e->token) memset(e->token, 0, e->len); /* it is a credential */
  pr_free(e->token);
  memset(e, 0, sizeof(*e));
  c->stats.entries--;
}

static void cache_free(token_cache *c) {
  if (!c) return;
  for (size_t i = 0; i < c->nsets * PR_AUTH_CACHE_WAYS; i++)
    if (c->slots[i].hash) entry_clear(c, &c->slots[i]);
  pr_free(c->slots);
  pr_free(c);
}

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

/* A seeded hash, eight bytes at a time. Never 0 (0 marks an empty slot). */
static uint64_t token_hash(const token_cache *c, const char *s, size_t len) {
  uint64_t h = c->seed ^ (len * 0x9e3779b97f4a7c15ULL);
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    h = (h ^ mix64(w)) * 0x9fb21c651e98df25ULL;
  }
  uint64_t w = 0;
  memcpy(&w, s + i, len - i);
  h = mix64(h ^ w);
  return h ? h : 1;
}

static cache_entry *cache_set(token_cache *c, uint64_t h) {
  return &c->slots[(h & (c->nsets - 1)) * PR_AUTH_CACHE_WAYS];
}

static cache_entry *cache_find(token_cache *c, uint64_t h, const char *token, size_t len) {
  cache_entry *set = cache_set(c, h);
  for (int i = 0; i < PR_AUTH_CACHE_WAYS; i++) {
    cache_entry *e = &set[i];
    if (e->hash == h && e->len == len && memcmp(e->token, token, len) == 0) return e;
  }
  return NULL;
}

static void cache_put(token_cache *c, uint64_t h, const char *token, size_t len,
                      const pr_claims *claims, long long nbf) {
  cache_entry *set = cache_set(c, h), *victim = &set[0];
  for (int i = 0; i < PR_AUTH_CACHE_WAYS; i++) {
    if (!set[i].hash) {
      victim = &set[i];
      break;
    }
    if (set[i].used < victim->used) victim = &set[i];
  }
  if (victim->hash) {
    c->stats.evictions++;
    entry_clear(c, victim);
  }
  victim->hash = h;
  victim->token = pr_malloc(len);
  memcpy(victim->token, token, len);
  victim->len = len;
  victim->used = ++c->tick;
  victim->nbf = nbf;
  victim->claims = *claims;
  c->stats.entries++;
}

void pr_auth_cache_stats_get(const pr_auth *a, pr_auth_cache_stats *out) {
  if (a->cache)
    *out = a->cache->stats;
  else
    memset(out, 0, sizeof(*out));
}

/* ---- Keys ---- */

static int read_file(const char *path, unsigned char **out, size_t *outlen, char *err,
                     size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    pr_errf(err, errlen, "%s: %s", path, strerror(errno));
    return PR_ECONFIG;
  }
  unsigned char *buf = pr_malloc(MAX_KEY_FILE + 1);
  size_t n = fread(buf, 1, MAX_KEY_FILE + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad || n == 0 || n > MAX_KEY_FILE) {
    pr_errf(err, errlen, "%s: %s", path, bad ? "read error" : n ? "too big for a key" : "empty");
    pr_free(buf);
    return PR_ECONFIG;
  }
  buf[n] = '\0';
  *out = buf;
  *outlen = n;
  return 0;
}

/* Picks RS256 or ES256 from the key itself. */
static int detect_alg(const char *path, const unsigned char *pem, size_t len, pr_auth *a, char *err,
                      size_t errlen) {
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  if (!pk) {
    if (strstr((const char *)pem, "PRIVATE KEY"))
      pr_errf(err, errlen,
              "%s: is a private key; give the public key (openssl pkey -in KEY -pubout)", path);
    else
      pr_errf(err, errlen, "%s: not a PEM public key (-----BEGIN PUBLIC KEY-----)", path);
    return PR_ECONFIG;
  }
  int rc = PR_ECONFIG;
  int id = EVP_PKEY_get_base_id(pk);
  if (id == EVP_PKEY_RSA) {
    if (EVP_PKEY_get_bits(pk) < 2048) {
      pr_errf(err, errlen, "%s: RSA key of %d bits; at least 2048 are needed", path,
              EVP_PKEY_get_bits(pk));
      goto done;
    }
    a->alg = JWT_ALG_RS256, a->alg_name = "RS256";
    rc = 0;
  } else if (id == EVP_PKEY_EC) {
    char group[64] = "";
    size_t glen = 0;
    EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &glen);
    if (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0) {
      pr_errf(err, errlen, "%s: EC key on curve '%s'; only P-256 (ES256) is supported", path,
              group);
      goto done;
    }
    a->alg = JWT_ALG_ES256, a->alg_name = "ES256";
    rc = 0;
  } else {
    pr_errf(err, errlen, "%s: unsupported key type (use RSA or EC P-256)", path);
  }
done:
  EVP_PKEY_free(pk);
  return rc;
}

/* An HMAC-SHA256 context keyed with key, ready for update. */
static EVP_MAC_CTX *hmac_sha256_new(const unsigned char *key, size_t keylen) {
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *c = mac ? EVP_MAC_CTX_new(mac) : NULL;
  EVP_MAC_free(mac); /* the context holds its own reference */
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                         OSSL_PARAM_construct_end()};
  if (c && !EVP_MAC_init(c, key, keylen, params)) {
    EVP_MAC_CTX_free(c);
    c = NULL;
  }
  return c;
}

int pr_auth_new(const pr_auth_opts *o, pr_auth **out, char *err, size_t errlen) {
  *out = NULL;
  int has_secret = o->hs256_secret != NULL, has_key = o->public_key_path != NULL;
  if (has_secret == has_key) {
    pr_errf(err, errlen,
            "give exactly one of a JWT secret (--jwt-secret or "
            "PRESENCE_JWT_SECRET) and a public key (--jwt-public-key)");
    return PR_ECONFIG;
  }
  pr_auth *a = pr_calloc(1, sizeof(*a));
  a->now = o->now;
  if (o->cache_entries) a->cache = cache_new(o->cache_entries);
  if (has_secret) {
    if (o->hs256_secret[0] == '\0') {
      pr_errf(err, errlen, "the JWT secret is empty");
      goto fail;
    }
    a->alg = JWT_ALG_HS256, a->alg_name = "HS256";
    a->keylen = strlen(o->hs256_secret);
    a->key = (unsigned char *)pr_strdup(o->hs256_secret);
    atomic_flag_clear(&a->spare_busy);
    if (!(a->hmac = hmac_sha256_new(a->key, a->keylen)) || !(a->spare = EVP_MAC_CTX_dup(a->hmac))) {
      pr_errf(err, errlen, "HMAC-SHA256 is not available from OpenSSL");
      goto fail;
    }
  } else {
    if (read_file(o->public_key_path, &a->key, &a->keylen, err, errlen) < 0) goto fail;
    if (detect_alg(o->public_key_path, a->key, a->keylen, a, err, errlen) < 0) goto fail;
  }
  *out = a;
  return 0;
fail:
  pr_auth_free(a);
  return PR_ECONFIG;
}

void pr_auth_free(pr_auth *a) {
  if (!a) return;
  cache_free(a->cache);
  EVP_MAC_CTX_free(a->hmac);
  EVP_MAC_CTX_free(a->spare);
  if (a->key) memset(a->key, 0, a->keylen);
  pr_free(a->key);
  pr_free(a);
}

const char *pr_auth_alg(const pr_auth *a) { return a->alg_name; }

/* ---- Verification ---- */

/* HS256: the HMAC is checked before anything in the token is decoded, over
 * the exact bytes received, against the decoded signature (32 bytes, its one
 * canonical encoding), in constant time. The key is set once, in
 * pr_auth_new: re-keying (two SHA-256 blocks), fetching the algorithms and
 * parsing parameters per token (EVP_Q_mac, under libjwt's HMAC(), did all of
 * that every time) cost more than the MAC itself. The spare context is taken
 * with an atomic flag and re-initialised with the same key; a caller that
 * finds it taken (another thread) duplicates the template instead, so verify
 * stays callable from any thread when there is no cache. */
static int hs256_signature_ok(const pr_auth *a, const char *token, size_t signed_len,
                              const char *sig, size_t siglen) {
  unsigned char want[EVP_MAX_MD_SIZE], got[HS256_SIG_B64 * 3 / 4 + 1];
  if (siglen != HS256_SIG_B64 || pr_auth_b64url_decode(sig, siglen, got) != HS256_SIG_LEN) return 0;
  pr_auth *m = (pr_auth *)a; /* only spare_busy and the spare it guards change */
  int own = !atomic_flag_test_and_set_explicit(&m->spare_busy, memory_order_acquire);
  EVP_MAC_CTX *c = own ? m->spare : EVP_MAC_CTX_dup(a->hmac);
  size_t n = 0;
  int ok = c && (!own || EVP_MAC_init(c, NULL, 0, NULL)) &&
           EVP_MAC_update(c, (const unsigned char *)token, signed_len) &&
           EVP_MAC_final(c, want, &n, sizeof(want)) && n == HS256_SIG_LEN;
  if (own)
    atomic_flag_clear_explicit(&m->spare_busy, memory_order_release);
  else
    EVP_MAC_CTX_free(c);
  return ok && CRYPTO_memcmp(want, got, HS256_SIG_LEN) == 0;
}

/* Decodes a base64url part into buf (room for PART_MAX) and checks it. */
static int header_is_acceptable(const pr_auth *a, const char *s, size_t len, unsigned char *buf) {
  long n = pr_auth_b64url_decode(s, len, buf);
  return n > 0 && pr_auth_json_header(buf, (size_t)n, a->alg_name) == 0;
}

/* RS256 / ES256 through libjwt, after the header check (libjwt would verify
 * with whatever alg the token names), and the alg it decoded checked again. */
static int libjwt_signature_ok(const pr_auth *a, const char *token, size_t len) {
  jwt_t *jwt = NULL;
  char *copy = pr_strndup(token, len);
  int ok = jwt_decode(&jwt, copy, a->key, (int)a->keylen) == 0 && jwt && jwt_get_alg(jwt) == a->alg;
  if (jwt) jwt_free(jwt);
  pr_free(copy);
  return ok;
}

/* The whole check, without the cache. *nbf_out gets the token's nbf
 * (LLONG_MIN when it has none) for the cache. */
static int verify_full(const pr_auth *a, const char *token, size_t len, long long now,
                       pr_claims *out, long long *nbf_out) {
  /* Shape: three parts, none empty. Their characters are checked where
   * each is decoded (only base64url decodes). */
  const char *d1 = memchr(token, '.', len);
  const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
  if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token))) return PR_EAUTH;
  size_t dots[2] = {(size_t)(d1 - token), (size_t)(d2 - token)};
  if (dots[0] == 0 || dots[1] == dots[0] + 1 || dots[1] + 1 == len) return PR_EAUTH;

  /* Room for the decoded header or payload (len <= PR_AUTH_MAX_TOKEN). */
  unsigned char buf[PART_MAX];
  if (a->alg == JWT_ALG_HS256) {
    if (!hs256_signature_ok(a, token, dots[1], token + dots[1] + 1, len - dots[1] - 1))
      return PR_EAUTH;
    if (!header_is_acceptable(a, token, dots[0], buf)) return PR_EAUTH;
  } else {
    if (!header_is_acceptable(a, token, dots[0], buf)) return PR_EAUTH;
    if (!libjwt_signature_ok(a, token, len)) return PR_EAUTH;
  }

  /* The payload was covered by the signature just verified. */
  long n = pr_auth_b64url_decode(token + dots[0] + 1, dots[1] - dots[0] - 1, buf);
  pr_auth_json_claims cl;
  if (n <= 0 || pr_auth_json_claims_parse(buf, (size_t)n, &cl) != 0) return PR_EAUTH;
  if (!cl.has_sub || !cl.has_exp) return PR_EAUTH;
  if (cl.has_nbf && cl.nbf > now) return PR_EAUTH;
  *nbf_out = cl.has_nbf ? cl.nbf : LLONG_MIN;
  if (cl.exp <= now) return PR_EEXPIRED;
  memcpy(out->sub, cl.sub, sizeof(out->sub));
  out->exp = cl.exp;
  out->admin = cl.admin;
  return 0;
}

int pr_auth_verify(const pr_auth *a, const char *token, size_t len, pr_claims *out) {
  memset(out, 0, sizeof(*out));
  if (!token || len == 0 || len > PR_AUTH_MAX_TOKEN) return PR_EAUTH;
  long long now = a->now ? a->now() : (long long)time(NULL);
  token_cache *c = len <= PR_AUTH_CACHE_MAX_TOKEN ? a->cache : NULL;
  uint64_t h = 0;
  if (c) {
    h = token_hash(c, token, len);
    cache_entry *e = cache_find(c, h, token, len);
    if (e) {
      c->stats.hits++;
      /* The same answers as verify_full for the same token at this time. */
      if (e->nbf > now) return PR_EAUTH; /* only if the clock went back */
      if (e->claims.exp <= now) {
        entry_clear(c, e);
        return PR_EEXPIRED;
      }
      e->used = ++c->tick;
      *out = e->claims;
      return 0;
    }
    c->stats.misses++;
  }
  long long nbf = LLONG_MIN;
  int rc = verify_full(a, token, len, now, out, &nbf);
  if (rc == 0 && c) cache_put(c, h, token, len, out, nbf);
  return rc;
}

/* ---- Minting ---- */

int pr_auth_mint_hs256(const char *secret, const char *sub, int admin, long long ttl_s,
                       char **out) {
  *out = NULL;
  if (!secret || !*secret || !sub || !pr_id_is_valid(sub, strlen(sub))) return PR_EINVAL;
  jwt_t *jwt = NULL;
  int rc = PR_EINVAL;
  if (jwt_new(&jwt) != 0) goto done;
  long long now = (long long)time(NULL);
  if (jwt_add_grant(jwt, "sub", sub) != 0) goto done;
  if (jwt_add_grant_int(jwt, "iat", (long)now) != 0) goto done;
  if (jwt_add_grant_int(jwt, "exp", (long)(now + ttl_s)) != 0) goto done;
  if (admin && jwt_add_grant(jwt, "role", "admin") != 0) goto done;
  if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) != 0)
    goto done;
  char *s = jwt_encode_str(jwt);
  if (!s) goto done;
  *out = pr_strdup(s);
  free(s); /* libjwt 1.10 allocates with malloc and has no jwt_free_str */
  rc = 0;
done:
  if (jwt) jwt_free(jwt);
  return rc;
}

int pr_auth_parse_bearer(const char *value, size_t len, const char **tok, size_t *toklen) {
  size_t i = 0;
  while (i < len && (value[i] == ' ' || value[i] == '\t'))
    i++;
  if (len - i < 7 || strncasecmp(value + i, "bearer", 6) != 0 ||
      (value[i + 6] != ' ' && value[i + 6] != '\t'))
    return PR_EAUTH;
  i += 6;
  while (i < len && (value[i] == ' ' || value[i] == '\t'))
    i++;
  size_t end = len;
  while (end > i && (value[end - 1] == ' ' || value[end - 1] == '\t'))
    end--;
  if (end == i) return PR_EAUTH;
  if (memchr(value + i, ' ', end - i) || memchr(value + i, '\t', end - i)) return PR_EAUTH;
  *tok = value + i;
  *toklen = end - i;
  return 0;
}
