/* auth.c: JWT verification and HS256 minting on libjwt 1.10.
 *
 * libjwt's jwt_decode verifies with whatever algorithm the token's header
 * names, so given an RSA public key it would accept an HS256 token whose
 * secret is that PEM (algorithm confusion), and it does not check exp. So
 * the header's alg is checked here before libjwt sees the token, the decoded
 * alg is checked again after, and the claims are checked here.
 *
 * All of that costs more than the rest of a heartbeat, and a client sends
 * the same token on every request: an optional cache of verified tokens
 * (set-associative, LRU per set, whole-token compare) answers repeats. */
#include "auth.h"
#include "base.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define MAX_KEY_FILE (64 * 1024)

typedef struct token_cache token_cache;

struct pr_auth {
  jwt_alg_t alg;
  const char *alg_name;
  unsigned char *key; /* HS256 secret or the public key PEM */
  size_t keylen;
  long long (*now)(void);
  token_cache *cache; /* NULL: every token is verified in full */
};

static void fail_msg(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_msg(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

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
    fail_msg(err, errlen, "%s: %s", path, strerror(errno));
    return PR_ECONFIG;
  }
  unsigned char *buf = pr_malloc(MAX_KEY_FILE + 1);
  size_t n = fread(buf, 1, MAX_KEY_FILE + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad || n == 0 || n > MAX_KEY_FILE) {
    fail_msg(err, errlen, "%s: %s", path, bad ? "read error" : n ? "too big for a key" : "empty");
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
      fail_msg(err, errlen,
               "%s: is a private key; give the public key (openssl pkey -in KEY -pubout)", path);
    else
      fail_msg(err, errlen, "%s: not a PEM public key (-----BEGIN PUBLIC KEY-----)", path);
    return PR_ECONFIG;
  }
  int rc = PR_ECONFIG;
  int id = EVP_PKEY_get_base_id(pk);
  if (id == EVP_PKEY_RSA) {
    if (EVP_PKEY_get_bits(pk) < 2048) {
      fail_msg(err, errlen, "%s: RSA key of %d bits; at least 2048 are needed", path,
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
      fail_msg(err, errlen, "%s: EC key on curve '%s'; only P-256 (ES256) is supported", path,
               group);
      goto done;
    }
    a->alg = JWT_ALG_ES256, a->alg_name = "ES256";
    rc = 0;
  } else {
    fail_msg(err, errlen, "%s: unsupported key type (use RSA or EC P-256)", path);
  }
done:
  EVP_PKEY_free(pk);
  return rc;
}

int pr_auth_new(const pr_auth_opts *o, pr_auth **out, char *err, size_t errlen) {
  *out = NULL;
  int has_secret = o->hs256_secret != NULL, has_key = o->public_key_path != NULL;
  if (has_secret == has_key) {
    fail_msg(err, errlen,
             "give exactly one of a JWT secret (--jwt-secret or "
             "PRESENCE_JWT_SECRET) and a public key (--jwt-public-key)");
    return PR_ECONFIG;
  }
  pr_auth *a = pr_calloc(1, sizeof(*a));
  a->now = o->now;
  if (o->cache_entries) a->cache = cache_new(o->cache_entries);
  if (has_secret) {
    if (o->hs256_secret[0] == '\0') {
      fail_msg(err, errlen, "the JWT secret is empty");
      goto fail;
    }
    a->alg = JWT_ALG_HS256, a->alg_name = "HS256";
    a->keylen = strlen(o->hs256_secret);
    a->key = (unsigned char *)pr_strdup(o->hs256_secret);
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
  if (a->key) memset(a->key, 0, a->keylen);
  pr_free(a->key);
  pr_free(a);
}

const char *pr_auth_alg(const pr_auth *a) { return a->alg_name; }

/* ---- Verification ---- */

static int b64url_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

/* Decodes unpadded base64url; returns the length or -1. out has room for len. */
static long b64url_decode(const char *s, size_t len, unsigned char *out) {
  if (len % 4 == 1) return -1;
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    int v = b64url_value((unsigned char)s[i]);
    if (v < 0) return -1;
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
    }
  }
  return (long)o;
}

/* Parses a base64url JSON object part of the token. */
static json_t *decode_part(const char *s, size_t len) {
  unsigned char *raw = pr_malloc(len + 1);
  long n = b64url_decode(s, len, raw);
  json_t *j = n > 0 ? json_loadb((const char *)raw, (size_t)n, JSON_REJECT_DUPLICATES, NULL) : NULL;
  pr_free(raw);
  if (j && !json_is_object(j)) {
    json_decref(j);
    j = NULL;
  }
  return j;
}

/* The header must name exactly the configured algorithm. */
static int header_is_acceptable(const pr_auth *a, const char *s, size_t len) {
  json_t *h = decode_part(s, len);
  if (!h) return 0;
  json_t *alg = json_object_get(h, "alg");
  int ok = json_is_string(alg) && strcmp(json_string_value(alg), a->alg_name) == 0 &&
           json_object_get(h, "crit") == NULL; /* no extensions are understood */
  json_decref(h);
  return ok;
}

static int numeric_date(json_t *v, long long *out) {
  if (json_is_integer(v)) {
    *out = (long long)json_integer_value(v);
    return 1;
  }
  if (json_is_real(v) && json_real_value(v) > -9.2e18 && json_real_value(v) < 9.2e18) {
    *out = (long long)json_real_value(v);
    return 1;
  }
  return 0;
}

/* The whole check, without the cache. *nbf_out gets the token's nbf
 * (LLONG_MIN when it has none) for the cache. */
static int verify_full(const pr_auth *a, const char *token, size_t len, long long now,
                       pr_claims *out, long long *nbf_out) {
  /* Shape: three base64url parts, the signature not empty. */
  size_t dots[2], ndots = 0;
  for (size_t i = 0; i < len; i++) {
    if (token[i] == '.') {
      if (ndots == 2) return PR_EAUTH;
      dots[ndots++] = i;
    } else if (b64url_value((unsigned char)token[i]) < 0) {
      return PR_EAUTH;
    }
  }
  if (ndots != 2 || dots[0] == 0 || dots[1] == dots[0] + 1 || dots[1] + 1 == len) return PR_EAUTH;
  if (!header_is_acceptable(a, token, dots[0])) return PR_EAUTH;

  int rc = PR_EAUTH;
  jwt_t *jwt = NULL;
  json_t *claims = NULL;
  char *copy = pr_strndup(token, len);
  if (jwt_decode(&jwt, copy, a->key, (int)a->keylen) != 0 || !jwt) goto done;
  if (jwt_get_alg(jwt) != a->alg) goto done;
  /* The payload was covered by the signature just verified. */
  claims = decode_part(token + dots[0] + 1, dots[1] - dots[0] - 1);
  if (!claims) goto done;

  json_t *sub = json_object_get(claims, "sub");
  if (!json_is_string(sub)) goto done;
  const char *subs = json_string_value(sub);
  size_t sublen = json_string_length(sub);
  if (!pr_id_is_valid(subs, sublen)) goto done;
  long long exp, nbf = LLONG_MIN;
  if (!numeric_date(json_object_get(claims, "exp"), &exp)) goto done;
  json_t *nbfv = json_object_get(claims, "nbf");
  if (nbfv && (!numeric_date(nbfv, &nbf) || nbf > now)) goto done;
  *nbf_out = nbf;
  json_t *role = json_object_get(claims, "role");

  memcpy(out->sub, subs, sublen);
  out->sub[sublen] = '\0';
  out->exp = exp;
  out->admin = json_is_string(role) && strcmp(json_string_value(role), "admin") == 0;
  rc = exp <= now ? PR_EEXPIRED : 0;
  if (rc) memset(out, 0, sizeof(*out));

done:
  json_decref(claims);
  if (jwt) jwt_free(jwt);
  pr_free(copy);
  return rc;
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
