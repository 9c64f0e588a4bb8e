// jwt.mjs: mints client tokens for tests with node:crypto (DESIGN §6: `sub`
// is the user, `exp` required, `role: "admin"` for graph administration),
// including the broken ones the services must refuse.
import crypto from 'node:crypto';

const b64url = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
const HMAC = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };

/**
 * mintToken({sub, admin, expSeconds, secret, alg, ...}) -> compact JWT.
 *   sub          user id (required unless omitSub)
 *   admin        adds claim role: "admin"
 *   expSeconds   exp = now + expSeconds (default 3600; negative gives an expired token)
 *   exp          absolute exp (seconds), overrides expSeconds; omitExp: no exp claim
 *   secret       HMAC secret (required for HS*)
 *   alg          'HS256' (default), 'HS384', 'HS512', or 'none' (unsigned: "h.p.")
 *   wrongSignature  sign with a different secret (same header), for 401 tests
 *   claims       extra claims merged last; header: extra header fields
 */
export function mintToken(o = {}) {
  const alg = o.alg ?? 'HS256';
  const now = Math.floor(Date.now() / 1000);
  const payload = {};
  if (!o.omitSub) payload.sub = o.sub;
  payload.iat = now;
  if (!o.omitExp) payload.exp = o.exp ?? now + (o.expSeconds ?? 3600);
  if (o.admin) payload.role = 'admin';
  Object.assign(payload, o.claims ?? {});
  const header = { alg, typ: 'JWT', ...(o.header ?? {}) };
  const signingInput = `${b64url(header)}.${b64url(payload)}`;
  if (alg === 'none') return `${signingInput}.`;
  const hash = HMAC[alg];
  if (!hash) throw new Error(`mintToken: unsupported alg ${alg}`);
  if (!o.secret) throw new Error('mintToken: secret is required');
  const key = o.wrongSignature ? `${o.secret}-but-wrong` : o.secret;
  const sig = crypto.createHmac(hash, key).update(signingInput).digest('base64url');
  return `${signingInput}.${sig}`;
}

/** Decodes a token without verifying it: {header, payload, signature}. */
export function decodeToken(token) {
  const [h, p, s] = String(token).split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString()),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString()),
    signature: s ?? '',
  };
}

/** Verifies an HS* token (for the harness's own tests). Returns the payload or throws. */
export function verifyToken(token, secret) {
  const [h, p, s] = String(token).split('.');
  const { header, payload } = decodeToken(token);
  const hash = HMAC[header.alg];
  if (!hash) throw new Error(`alg ${header.alg} refused`);
  const want = crypto.createHmac(hash, secret).update(`${h}.${p}`).digest();
  const got = Buffer.from(s ?? '', 'base64url');
  if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) throw new Error('bad signature');
  if (typeof payload.exp !== 'number' || payload.exp <= Math.floor(Date.now() / 1000)) throw new Error('expired');
  return payload;
}
