// browser.test.mjs: the browser client (clients/js/presence.js) and the demo
// page (web/), in three parts:
//   1. the client module in node (with `ws` as its WebSocket) against a
//      scripted receive: snapshot, version filter, reconnect and backoff,
//      close codes, liveness, resubscription. Needs nothing else.
//   2. the demo page in headless Chromium against the same scripted receive
//      (serving web/ like presence-receive does): rendering, status picker,
//      last seen, group panel. Needs /usr/bin/chromium.
//   3. the demo page in Chromium against the real stack: redis-server,
//      presence-send, presence-fanout and presence-receive (--static-dir web/)
//      from $PR_BIN_DIR (default build/bin). Needs the binaries and Chromium.
// Parts 2 and 3 skip with a message when what they need is missing.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { WebSocketServer, WebSocket } from 'ws';
import {
  REPO, binDir, freePort, startRedis, startService, mintToken, request, waitFor, delay, registerCleanup,
} from './lib/stack.mjs';
import { PresenceClient } from '../../clients/js/presence.js';

const WEB_DIR = path.join(REPO, 'web');
const CHROMIUM = process.env.PRESENCE_TEST_CHROMIUM || '/usr/bin/chromium';
const HAVE_CHROMIUM = fs.existsSync(CHROMIUM);
const NO_CHROMIUM = `Chromium not found at ${CHROMIUM} (apt-get install -y chromium; scripts/deps.sh lists it)`;
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// ---------------------------------------------------------------------------
// A scripted presence-receive: serves web/ (following symlinks, as receive's
// open() does) and speaks the WebSocket protocol as the test tells it to.

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

async function scriptedReceive({ onConnection, refuseUpgrade = () => false } = {}) {
  const conns = [];
  let attempts = 0;
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://127.0.0.1');
    const rel = u.pathname.endsWith('/') ? `${u.pathname}index.html` : u.pathname;
    if (rel.split('/').some((s) => s.startsWith('.'))) {
      res.writeHead(404).end();
      return;
    }
    fs.readFile(path.join(WEB_DIR, rel), (err, data) => {
      if (err) res.writeHead(404).end('not found\n');
      else res.writeHead(200, { 'content-type': TYPES[path.extname(rel)] ?? 'application/octet-stream' }).end(data);
    });
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    attempts++;
    const u = new URL(req.url, 'http://127.0.0.1');
    if (u.pathname !== '/v1/ws' || refuseUpgrade(u)) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const conn = {
        ws,
        params: u.searchParams,
        frames: [],
        mute: false, // true: stop answering pings
        closed: null,
        send: (o) => ws.send(JSON.stringify(o)),
      };
      ws.on('message', (d) => {
        const m = JSON.parse(d.toString());
        conn.frames.push(m);
        if (m.type === 'ping' && !conn.mute) conn.send({ type: 'pong' });
      });
      ws.on('close', (code) => (conn.closed = code));
      conns.push(conn);
      onConnection?.(conn, conns.length - 1);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  const self = {
    url,
    conns,
    get attempts() {
      return attempts;
    },
    conn: (i, ms = 5000) => waitFor(() => conns[i], ms, 10, `connection #${i}`),
    frame: (conn, pred, ms = 5000) => waitFor(() => conn.frames.find(pred), ms, 10, 'client frame'),
    async close() {
      for (const c of wss.clients) c.terminate();
      const closed = new Promise((r) => server.close(r));
      server.closeAllConnections(); // keep-alive sockets of the browser
      await closed;
    },
  };
  registerCleanup(() => self.close());
  return self;
}

const hello = (conn, user = 'alice', heartbeat_ms = 10000) =>
  conn.send({ type: 'hello', user, device: conn.params.get('device'), heartbeat_ms });
const entry = (user, status, version, last_seen = null) => ({ user, status, last_seen, version });

/** Collects a client's events: events[type] = [detail, ...]. */
function record(client) {
  const events = {};
  for (const t of ['state', 'open', 'hello', 'snapshot', 'presence', 'group', 'error', 'close']) {
    events[t] = [];
    client.on(t, (d) => events[t].push(d));
  }
  return events;
}

const clients = [];
function newClient(opts) {
  const c = new PresenceClient({ WebSocket, backoffBaseMs: 20, backoffCapMs: 200, ...opts });
  clients.push(c);
  return c;
}
after(() => {
  for (const c of clients) c.close();
});

// ---------------------------------------------------------------------------
describe('presence.js client (node, scripted receive)', () => {
  test('snapshot, version filter, get/all, setStatus, stable device', async () => {
    const srv = await scriptedReceive({
      onConnection: (c) => {
        hello(c);
        c.send({ type: 'snapshot', users: [entry('bob', 'online', 3), entry('carol', 'offline', 1, 1000)] });
      },
    });
    const client = newClient({ url: srv.url, token: 'tok-1', device: 'laptop' });
    const ev = record(client);
    const c0 = await srv.conn(0);
    assert.equal(c0.params.get('token'), 'tok-1');
    assert.equal(c0.params.get('device'), 'laptop');
    await waitFor(() => ev.snapshot.length === 1, 5000, 10, 'snapshot event');
    assert.equal(client.state, 'open');
    assert.equal(client.user, 'alice');
    assert.deepEqual(client.get('bob'), entry('bob', 'online', 3));
    assert.deepEqual([...client.all().keys()].sort(), ['bob', 'carol']);
    assert.equal(ev.snapshot[0].users.get('carol').last_seen, 1000);

    c0.send({ type: 'presence', ...entry('bob', 'offline', 2, 5) }); // older: dropped
    c0.send({ type: 'presence', ...entry('bob', 'idle', 4) }); // newer: applied
    c0.send({ type: 'presence', ...entry('bob', 'dnd', 4) }); // same version: dropped
    c0.send({ type: 'presence', ...entry('dave', 'online', 1) }); // someone new: applied
    await waitFor(() => client.get('dave'), 5000, 10, 'dave arrives');
    assert.equal(client.get('bob').status, 'idle');
    assert.deepEqual(ev.presence.map((p) => `${p.user}:${p.status}:${p.version}`), ['bob:idle:4', 'dave:online:1']);

    client.setStatus('dnd');
    assert.deepEqual(await srv.frame(c0, (f) => f.type === 'status'), { type: 'status', status: 'dnd' });
    assert.throws(() => client.setStatus('away'), TypeError);

    c0.send({ type: 'error', code: 'bad_request', message: 'nope' });
    await waitFor(() => ev.error.length === 1, 5000, 10, 'error event');
    assert.equal(ev.error[0].fatal, false);
    assert.equal(client.state, 'open');

    client.close();
    assert.equal(client.state, 'closed');
    await srv.close();
  });

  test('reconnects after a drop: fresh token, same device, state replaced, subscriptions and activity restored', async () => {
    const srv = await scriptedReceive({
      onConnection: (c, i) => {
        hello(c);
        c.send({
          type: 'snapshot',
          users: i === 0 ? [entry('bob', 'online', 7), entry('carol', 'online', 2)] : [entry('bob', 'offline', 1, 99)],
        });
      },
    });
    let calls = 0;
    const client = newClient({ url: `${srv.url}/v1/ws`, getToken: async () => `tok-${++calls}`, device: 'tab-1' });
    const ev = record(client);
    client.subscribe('team');
    const c0 = await srv.conn(0);
    await srv.frame(c0, (f) => f.type === 'subscribe' && f.group === 'team');
    c0.send({ type: 'group', group: 'team', online: 2, users: [entry('bob', 'online', 7), entry('erin', 'idle', 1)] });
    await waitFor(() => client.group('team'), 5000, 10, 'group state');
    assert.equal(client.group('team').online, 2);
    c0.send({ type: 'presence', ...entry('erin', 'offline', 2, 50) });
    await waitFor(() => client.group('team').users.get('erin').status === 'offline', 5000, 10, 'erin offline in group');
    assert.equal(client.group('team').online, 1);
    client.setStatus('idle');
    await srv.frame(c0, (f) => f.type === 'status' && f.status === 'idle');

    c0.ws.terminate(); // abrupt: close 1006
    const c1 = await srv.conn(1);
    assert.equal(c1.params.get('token'), 'tok-2');
    assert.equal(c1.params.get('device'), 'tab-1');
    await srv.frame(c1, (f) => f.type === 'subscribe' && f.group === 'team');
    await srv.frame(c1, (f) => f.type === 'status' && f.status === 'idle');
    await waitFor(() => ev.snapshot.length === 2, 5000, 10, 'second snapshot');
    // the fresh snapshot replaces everything, even with a lower version
    assert.deepEqual(client.all(), new Map([['bob', entry('bob', 'offline', 1, 99)]]));
    assert.ok(ev.close.some((c) => c.code === 1006 && c.willReconnect));
    assert.deepEqual(client.subscriptions(), ['team']);
    client.unsubscribe('team');
    await srv.frame(c1, (f) => f.type === 'unsubscribe' && f.group === 'team');
    assert.equal(client.group('team'), undefined);
    client.close();
    await srv.close();
  });

  test('4001 and 4003 stop the client with a fatal error event', async () => {
    for (const code of [4001, 4003]) {
      const srv = await scriptedReceive({
        onConnection: (c) => {
          hello(c);
          c.send({ type: 'snapshot', users: [] });
          c.ws.close(code, code === 4001 ? 'token expired' : 'forbidden');
        },
      });
      const client = newClient({ url: srv.url, token: 't', device: 'd' });
      const ev = record(client);
      await waitFor(() => ev.error.some((e) => e.fatal), 5000, 10, `fatal error after ${code}`);
      assert.equal(ev.error.find((e) => e.fatal).code, code);
      assert.equal(client.state, 'closed');
      await delay(300); // 10x the backoff base: a reconnect would have happened by now
      assert.equal(srv.attempts, 1, `no reconnect after ${code}`);
      await srv.close();
    }
  });

  test('1012 (draining) reconnects at once, other closes back off', async () => {
    const srv = await scriptedReceive({
      onConnection: (c, i) => {
        hello(c);
        c.send({ type: 'snapshot', users: [] });
        if (i === 0) c.ws.close(1012, 'draining');
      },
    });
    // a backoff base of 60 s: only the immediate path can reconnect within the test
    const client = newClient({ url: srv.url, token: 't', device: 'd', backoffBaseMs: 60000, backoffCapMs: 60000 });
    const t0 = Date.now();
    await srv.conn(1, 3000);
    assert.ok(Date.now() - t0 < 3000);
    client.close();
    await srv.close();
  });

  test('backoff: full jitter under an exponential ceiling, capped', async () => {
    const srv = await scriptedReceive({ refuseUpgrade: () => true });
    const base = 10;
    const cap = 80;
    const client = newClient({ url: srv.url, token: 't', device: 'd', backoffBaseMs: base, backoffCapMs: cap });
    const ev = record(client);
    const retries = () => ev.state.filter((s) => s.state === 'connecting' && s.attempt > 0);
    await waitFor(() => retries().length >= 8, 10000, 10, 'eight retries');
    client.close();
    const waits = retries().map((s) => s.retryInMs);
    assert.ok(waits.length >= 6, `retries: ${waits}`);
    waits.forEach((w, i) => assert.ok(w >= 0 && w < Math.min(cap, base * 2 ** i), `retry #${i} waited ${w} ms`));
    await srv.close();
  });

  test('liveness: pings every heartbeat_ms; silence for 2 x heartbeat_ms reconnects', async () => {
    const srv = await scriptedReceive({
      onConnection: (c) => {
        hello(c, 'alice', 100);
        c.send({ type: 'snapshot', users: [] });
      },
    });
    const client = newClient({ url: srv.url, token: 't', device: 'd' });
    const ev = record(client);
    const c0 = await srv.conn(0);
    await waitFor(() => c0.frames.filter((f) => f.type === 'ping').length >= 3, 3000, 10, 'three pings');
    assert.equal(srv.conns.length, 1, 'answered pings keep the connection');
    c0.mute = true; // the server goes silent
    const t0 = Date.now();
    await srv.conn(1, 3000);
    assert.ok(Date.now() - t0 >= 100, 'not before the silence bound');
    assert.ok(ev.close.some((c) => c.code === 4000 && c.willReconnect));
    client.close();
    await srv.close();
  });

  test('rejects a bad device id and a missing token', () => {
    assert.throws(() => new PresenceClient({ WebSocket, url: 'ws://127.0.0.1:1', token: 't', device: 'bad id' }), TypeError);
    assert.throws(() => new PresenceClient({ WebSocket, url: 'ws://127.0.0.1:1' }), TypeError);
  });
});

// ---------------------------------------------------------------------------
// Chromium

let playwright = null;
async function launchBrowser() {
  playwright ??= await import('playwright-core');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-chromium-'));
  const context = await playwright.chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  const pageErrors = [];
  const close = async () => {
    await context.close().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  };
  registerCleanup(close);
  return {
    context,
    pageErrors,
    async page(url) {
      const p = await context.newPage();
      p.on('pageerror', (e) => pageErrors.push(`${url}: ${e.message}`));
      await p.goto(url);
      return p;
    },
    close,
  };
}

const byTestId = (id) => `[data-testid="${id}"]`;
const attr = (page, id, name) => page.getAttribute(byTestId(id), name, { timeout: 2000 }).catch(() => null);
const text = (page, id) => page.textContent(byTestId(id), { timeout: 2000 }).catch(() => null);

describe('demo page in Chromium (scripted receive)', { skip: HAVE_CHROMIUM ? false : NO_CHROMIUM }, () => {
  let browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(() => browser?.close());

  test('renders contacts and last seen, sends the picked status, shows pushes and a group', async () => {
    const now = Date.now();
    const srv = await scriptedReceive({
      onConnection: (c) => {
        hello(c, 'alice');
        c.send({
          type: 'snapshot',
          users: [entry('alice', 'online', 1), entry('bob', 'online', 3), entry('carol', 'offline', 2, now - 125000)],
        });
      },
    });
    const token = mintToken({ sub: 'alice', secret: 'x' });
    const page = await browser.page(`${srv.url}/?user=alice&token=${token}&device=web-test`);
    const c0 = await srv.conn(0);
    assert.equal(c0.params.get('device'), 'web-test');
    assert.equal(c0.params.get('token'), token);
    await waitFor(async () => (await attr(page, 'conn-state', 'data-state')) === 'open', 5000, 25, 'connected');
    await waitFor(async () => (await attr(page, 'contact-bob', 'data-status')) === 'online', 5000, 25, 'bob online');
    assert.equal(await attr(page, 'contact-carol', 'data-status'), 'offline');
    assert.equal(await text(page, 'last-seen-carol'), 'last seen 2 min ago');
    assert.equal(await page.$(byTestId('contact-alice')), null, 'self is not a contact');
    assert.equal(await text(page, 'last-seen-bob'), '');

    await page.selectOption(byTestId('status-picker'), 'dnd');
    await srv.frame(c0, (f) => f.type === 'status' && f.status === 'dnd');

    c0.send({ type: 'presence', ...entry('bob', 'offline', 4, Date.now() - 1000) });
    await waitFor(async () => (await attr(page, 'contact-bob', 'data-status')) === 'offline', 5000, 25, 'bob offline');
    assert.match(await text(page, 'last-seen-bob'), /^last seen (just now|\d+ s ago)$/);
    c0.send({ type: 'presence', ...entry('bob', 'online', 3) }); // stale: must not show
    c0.send({ type: 'presence', ...entry('carol', 'dnd', 3) });
    await waitFor(async () => (await attr(page, 'contact-carol', 'data-status')) === 'dnd', 5000, 25, 'carol dnd');
    assert.equal(await attr(page, 'contact-bob', 'data-status'), 'offline');

    await page.fill(byTestId('group-name'), 'team');
    await page.click(byTestId('group-subscribe'));
    await srv.frame(c0, (f) => f.type === 'subscribe' && f.group === 'team');
    c0.send({
      type: 'group', group: 'team', online: 2,
      users: [entry('alice', 'online', 1), entry('bob', 'offline', 4, now), entry('carol', 'dnd', 3)],
    });
    await waitFor(async () => (await text(page, 'group-online')) === '2', 5000, 25, 'group online count');
    assert.equal(await text(page, 'group-count'), '3');
    assert.equal(await attr(page, 'member-carol', 'data-status'), 'dnd');
    c0.send({ type: 'presence', ...entry('bob', 'idle', 5) });
    await waitFor(async () => (await text(page, 'group-online')) === '3', 5000, 25, 'online count follows pushes');

    c0.ws.close(1012, 'draining');
    await srv.conn(1);
    await waitFor(async () => (await attr(page, 'conn-state', 'data-state')) === 'open', 5000, 25, 'reconnected');
    assert.equal(srv.conns[1].params.get('device'), 'web-test');
    await page.close();
    assert.deepEqual(browser.pageErrors, []);
    await srv.close();
  });

  test('without a token the page asks for one', async () => {
    const srv = await scriptedReceive();
    const page = await browser.page(`${srv.url}/?user=bob`);
    assert.equal(await page.isVisible(byTestId('login-token')), true);
    assert.equal(await page.inputValue(byTestId('login-user')), 'bob');
    assert.equal(srv.attempts, 0);
    await page.close();
    await srv.close();
  });
});

// ---------------------------------------------------------------------------
// The real stack

const BINS = ['presence-send', 'presence-fanout', 'presence-receive'];
const missingBins = BINS.filter((b) => {
  try {
    fs.accessSync(path.join(binDir(), b), fs.constants.X_OK);
    return false;
  } catch {
    return true;
  }
});
const stackSkip = !HAVE_CHROMIUM
  ? NO_CHROMIUM
  : missingBins.length
    ? `not built in ${binDir()}: ${missingBins.join(', ')} (make build, or set PR_BIN_DIR)`
    : false;

describe('demo page in Chromium (real stack)', { skip: stackSkip }, () => {
  const LEAVE_GRACE_MS = 500;
  const secret = `browser-test-${process.pid}`;
  let redis;
  let send;
  let receive;
  let browser;

  before(async () => {
    redis = await startRedis();
    const common = ['--redis', redis.url, '--partitions', '16'];
    // fanout first, then receive, then send, so that nothing is published unheard
    await startService('presence-fanout', (p) => [...common, '--admin-listen', `127.0.0.1:${p}`, '--worker-id', 'f1']);
    const nngPort = await freePort();
    receive = await startService('presence-receive', (p) => [
      ...common, '--listen', `127.0.0.1:${p}`, '--nng-listen', `tcp://127.0.0.1:${nngPort}`,
      '--instance-id', 'r1', '--jwt-secret', secret, '--static-dir', WEB_DIR,
      '--leave-grace-ms', String(LEAVE_GRACE_MS),
    ]);
    send = await startService('presence-send', (p) => [...common, '--listen', `127.0.0.1:${p}`, '--jwt-secret', secret]);
    browser = await launchBrowser();
  });
  after(() => browser?.close()); // the harness's root after hook stops the processes

  test('the static server serves the page and the symlinked client', async () => {
    const page = await request(`${receive.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.text, /data-testid="status-picker"/);
    const js = await request(`${receive.url}/presence.js`);
    assert.equal(js.status, 200, 'receive did not serve web/presence.js (a symlink to ../clients/js/presence.js)');
    assert.match(js.headers['content-type'], /javascript/);
    assert.match(js.text, /export class PresenceClient/);
  });

  test("bob sees alice's dnd, then alice offline with a last seen after her page closes", { timeout: 60000 }, async () => {
    const admin = mintToken({ sub: 'ops', admin: true, secret });
    for (const [u, c] of [['alice', 'bob'], ['bob', 'alice']]) {
      const r = await request(`${send.url}/v1/users/${u}/contacts/${c}`, { method: 'PUT', token: admin });
      assert.equal(r.status, 204, `PUT contact ${u} ${c}: ${r.status} ${r.text}`);
    }
    const url = (user) =>
      `${receive.url}/?user=${user}&token=${encodeURIComponent(mintToken({ sub: user, secret }))}&device=web-${user}`;
    const alice = await browser.page(url('alice'));
    const bob = await browser.page(url('bob'));
    for (const p of [alice, bob]) {
      await waitFor(async () => (await attr(p, 'conn-state', 'data-state')) === 'open', 10000, 25, 'page connected');
    }
    await waitFor(async () => (await attr(bob, 'contact-alice', 'data-status')) === 'online', 10000, 25,
      "bob's page shows alice online");

    await alice.selectOption(byTestId('status-picker'), 'dnd');
    await waitFor(async () => (await attr(bob, 'contact-alice', 'data-status')) === 'dnd', 10000, 25,
      "bob's page shows alice dnd");

    const closedAt = Date.now();
    await alice.close();
    const bound = LEAVE_GRACE_MS + 1000 + 3000; // leave grace + 1 s (DESIGN §8) + slack
    await waitFor(async () => (await attr(bob, 'contact-alice', 'data-status')) === 'offline', bound, 25,
      "bob's page shows alice offline");
    const took = Date.now() - closedAt;
    const seen = await text(bob, 'last-seen-alice');
    assert.match(seen, /^last seen (just now|\d+ s ago)$/, `last seen text: ${seen}`);
    assert.ok(took <= bound, `offline after ${took} ms`);
    await bob.close();
    assert.deepEqual(browser.pageErrors, []);
  });
});
