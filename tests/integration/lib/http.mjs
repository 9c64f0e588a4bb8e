// http.mjs: HTTP requests to the services with a bearer token, over node:http
// so that a server answering early (413) or closing is still read reliably.
import http from 'node:http';

/**
 * request(url, {method, token, headers, json, body, timeoutMs}) ->
 * {status, headers, text, body}. `json` is sent as application/json;
 * `body` (string or Buffer) is sent as is. `body` of the result is the parsed
 * JSON when the response is JSON (or parses as JSON), else null.
 */
export function request(url, { method = 'GET', token, headers = {}, json, body, timeoutMs = 10000 } = {}) {
  const u = new URL(url);
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let payload = body;
  if (json !== undefined) {
    payload = JSON.stringify(json);
    h['content-type'] ??= 'application/json';
  }
  if (payload !== undefined) h['content-length'] = Buffer.byteLength(payload);
  return new Promise((resolve, reject) => {
    let responded = false;
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h, agent: false, timeout: timeoutMs },
      (res) => {
        responded = true;
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        const finish = () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed = null;
          if (text) {
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = null;
            }
          }
          resolve({ status: res.statusCode, headers: res.headers, text, body: parsed });
        };
        res.once('end', finish);
        res.once('error', finish);
        res.once('aborted', finish);
      },
    );
    req.once('timeout', () => req.destroy(new Error(`${method} ${url}: no response after ${timeoutMs} ms`)));
    req.on('error', (e) => {
      if (!responded) reject(e); // a write error after the answer (EPIPE on 413) is not a failure
    });
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/**
 * api(baseUrl, token) -> {get(path, opts), post(path, json, opts),
 * put(path, json, opts), del(path, opts), request(path, opts), withToken(t)}.
 * Paths are relative to baseUrl; opts as for request().
 */
export function api(baseUrl, token) {
  const base = String(baseUrl).replace(/\/$/, '');
  const call = (method, p, opts = {}) => request(base + p, { token, ...opts, method: opts.method ?? method });
  return {
    baseUrl: base,
    token,
    request: (p, opts) => call(opts?.method ?? 'GET', p, opts),
    get: (p, opts) => call('GET', p, opts),
    post: (p, json, opts = {}) => call('POST', p, json === undefined ? opts : { json, ...opts }),
    put: (p, json, opts = {}) => call('PUT', p, json === undefined ? opts : { json, ...opts }),
    del: (p, opts) => call('DELETE', p, opts),
    withToken: (t) => api(base, t),
  };
}
