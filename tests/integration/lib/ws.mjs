// ws.mjs: a WebSocket test client on `ws` that records every frame and lets a
// test wait for the one it expects, with a timeout.
import WebSocket from 'ws';
import { registerCleanup } from './track.mjs';

/**
 * open(url, {headers, protocols}) -> client immediately; client.opened
 * resolves on open and rejects when the handshake fails (err.status holds
 * the HTTP status of a refused upgrade, err.code/err.reason a close before open).
 * connect(url, opts) = open + await opened.
 *
 * client.messages   every frame received: parsed JSON for text frames that
 *                   parse, else the string; Buffers for binary frames
 * client.next(pred, ms)     the next frame after the read cursor that
 *                   matches pred (default: any); moves the cursor past it
 * client.waitFor(pred, ms)  the first frame ever received that matches pred
 * client.send(obj)  JSON-encodes objects; strings and Buffers as is
 * client.close(code, reason) -> closed
 * client.closed     resolves {code, reason} when the socket closes
 * client.ws         the underlying ws.WebSocket
 */
export function open(url, { headers, protocols, handshakeTimeout = 5000, ...rest } = {}) {
  const ws = new WebSocket(url, protocols, { headers, handshakeTimeout, ...rest });
  const messages = [];
  const waiters = new Set();
  let cursor = 0;
  let closeInfo = null;
  let resolveClosed;
  const closed = new Promise((r) => (resolveClosed = r));
  const unregister = registerCleanup(async () => {
    if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
  });

  const opened = new Promise((resolve, reject) => {
    ws.once('open', () => resolve(true));
    ws.once('unexpected-response', (_req, res) => {
      const err = new Error(`WebSocket upgrade refused: HTTP ${res.statusCode}`);
      err.status = res.statusCode;
      let body = '';
      res.on('data', (d) => (body += d));
      res.once('end', () => {
        err.body = body;
        reject(err);
        ws.terminate();
      });
    });
    ws.once('error', (e) => reject(e));
    closed.then(({ code, reason }) => {
      const err = new Error(`WebSocket closed before open: ${code} ${reason}`);
      err.code = code;
      err.reason = reason;
      reject(err);
    });
  });
  opened.catch(() => {}); // callers that only look at `closed` must not get an unhandled rejection

  ws.on('error', () => {}); // reported through opened/closed
  ws.on('message', (data, isBinary) => {
    let m;
    if (isBinary) m = data;
    else {
      const s = data.toString('utf8');
      try {
        m = JSON.parse(s);
      } catch {
        m = s;
      }
    }
    messages.push(m);
    for (const w of [...waiters]) w.check();
  });
  ws.on('close', (code, reason) => {
    closeInfo = { code, reason: reason.toString() };
    unregister();
    for (const w of [...waiters]) w.fail();
    resolveClosed(closeInfo);
  });

  const wait = (pred, ms, fromCursor) =>
    new Promise((resolve, reject) => {
      const p = pred ?? (() => true);
      const w = {
        check() {
          const start = fromCursor ? cursor : 0;
          for (let i = start; i < messages.length; i++) {
            if (p(messages[i])) {
              if (fromCursor) cursor = i + 1;
              done();
              resolve(messages[i]);
              return true;
            }
          }
          return false;
        },
        fail() {
          done();
          reject(new Error(`WebSocket closed (${closeInfo.code} ${closeInfo.reason}) before a matching frame; got ${summary()}`));
        },
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no matching WebSocket frame within ${ms} ms; got ${summary()}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(w);
      };
      if (w.check()) return;
      if (closeInfo) return w.fail();
      waiters.add(w);
    });

  const summary = () => {
    const s = JSON.stringify(messages.map((m) => (Buffer.isBuffer(m) ? `<${m.length} bytes>` : m)));
    return s.length > 800 ? `${s.slice(0, 800)}...` : s;
  };

  return {
    ws,
    url,
    messages,
    opened,
    closed,
    get closeInfo() {
      return closeInfo;
    },
    get isOpen() {
      return ws.readyState === WebSocket.OPEN;
    },
    next: (pred, ms = 5000) => wait(pred, ms, true),
    waitFor: (pred, ms = 5000) => wait(pred, ms, false),
    send(obj) {
      ws.send(typeof obj === 'string' || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj));
    },
    close(code = 1000, reason = '') {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(code, reason);
      return closed;
    },
    terminate() {
      ws.terminate();
      return closed;
    },
  };
}

export async function connect(url, opts) {
  const c = open(url, opts);
  await c.opened;
  return c;
}
