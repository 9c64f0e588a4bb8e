/* auth.c: JWT verification and HS256 minting on libjwt 1.10.
 *
 * libjwt's jwt_decode verifies with whatever algorithm the token's header
 * names, so given an RSA public key it would accept an HS256 token whose
 * secret is that PEM (algorithm confusion), and it does not check exp. So
 * the header's alg is checked here before libjwt sees the token, the decoded
 * alg is checked again after, and the claims are checked here. */
#include "auth.h"
#include "base.h"

#include <errno.h>
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
#include <time.h>

#define MAX_KEY_FILE (64 * 1024)

struct pr_auth {
  jwt_alg_t alg;
  const char *alg_name;
  unsigned char *key; /* HS256 secret or the public key PEM */
  size_t keylen;
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

int pr_auth_verify(const pr_auth *a, const char *token, size_t len, pr_claims *out) {
  memset(out, 0, sizeof(*out));
  if (!token || len == 0 || len > PR_AUTH_MAX_TOKEN) return PR_EAUTH;
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
  long long exp, nbf;
  if (!numeric_date(json_object_get(claims, "exp"), &exp)) goto done;
  long long now = (long long)time(NULL);
  json_t *nbfv = json_object_get(claims, "nbf");
  if (nbfv && (!numeric_date(nbfv, &nbf) || nbf > now)) goto done;
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
  for (size_t k = i; k < end; k++)
    if (value[k] == ' ' || value[k] == '\t') return PR_EAUTH;
  *tok = value + i;
  *toklen = end - i;
  return 0;
}
