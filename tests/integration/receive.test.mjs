// receive.test.mjs: presence-receive against a real redis-server: the
// WebSocket handshake checks, hello + snapshot, registration in Redis, client
// frames, leave grace, rate limit, idle timeout, drain on SIGTERM, static
// files, and deliveries pushed over nng (a minimal PUSH peer below stands in
// for presence-fanout; the end-to-end test through fanout runs when its
// binary exists).
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import http from 'node:http';
import {
  startStack, binDir, encode, request, open, connect, waitFor, parseDevice, runDir, mintToken, evalScript,
} from './lib/stack.mjs';

const has = (bin) => fs.existsSync(path.join(binDir(), bin));
const HAS_SEND = has('presence-send');
const HAS_FANOUT = has('presence-fanout');

// ---- helpers -------------------------------------------------------------

/** A minimal nng PUSH peer (SP over TCP: 8-byte handshake, then 8-byte
 * big-endian length + body per message), to deliver batches like fanout. */
async function nngPush(url) {
  const m = /^tcp:\/\/([^:]+):(\d+)$/.exec(url);
  assert.ok(m, `nng url ${url}`);
  const sock = net.connect({ host: m[1], port: Number(m[2]) });
  await new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  sock.write(Buffer.from([0x00, 0x53, 0x50, 0x00, 0x00, 0x50, 0x00, 0x00])); // SP v0, PUSH (0x50)
  const peer = await new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 8) {
        sock.off('data', onData);
        resolve(got.subarray(0, 8));
      }
    };
    sock.on('data', onData);
    sock.once('error', reject);
  });
  assert.equal(peer.readUInt16BE(4), 0x51, 'the peer is a PULL socket');
  return {
    send(body) {
      const len = Buffer.alloc(8);
      len.writeBigUInt64BE(BigInt(body.length));
      sock.write(Buffer.concat([len, body]));
    },
    close: () => sock.destroy(),
  };
}

/** [1, sender, [[user, status, last_seen, version, ts_ms, [recipients]], ...]] */
const batch = (deliveries) =>
  encode([1, 'test-fanout', deliveries.map((d) => [d.user, d.status, d.last_seen ?? 0, d.version, Date.now(), d.to])]);

/** A raw HTTP upgrade request; resolves {status, headers, body, upgraded}. */
function rawUpgrade(port, { headers = {}, pathQ = '/v1/ws' } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path: pathQ, agent: false,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', ...headers },
    });
    req.once('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, headers: res.headers, body: '', upgraded: true });
    });
    req.once('response', (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.once('end', () => resolve({ status: res.statusCode, headers: res.headers, body, upgraded: false }));
    });
    req.once('error', reject);
    req.end();
  });
}

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

const idOf = (svc) => svc.args[svc.args.indexOf('--instance-id') + 1];
const esc = (s) => s.replace(/[.]/g, '\\.');

async function leaseOf(redis, svc) {
  const id = svc.args[svc.args.indexOf('--instance-id') + 1];
  return { id, addr: await redis.get(`inst:${id}`) };
}

// ---- the main stack ------------------------------------------------------

describe('presence-receive', () => {
  let stack, redis, rc, inst;
  before(async () => {
    stack = await startStack({
      sends: HAS_SEND ? 1 : 0,
      fanouts: HAS_FANOUT ? 1 : 0,
      receives: 1,
      receiveArgs: ['--leave-grace-ms', '600', '--lease-ttl-ms', '1500'],
    });
    redis = stack.redisClient();
    rc = stack.receive;
    inst = await leaseOf(redis, rc);
  });

  test('the lease names the nng address and the instance is in insts', async () => {
    assert.match(inst.addr, /^tcp:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(await redis.sismember('insts', inst.id), 1);
    const ttl = await redis.pttl(`inst:${inst.id}`);
    assert.ok(ttl > 0 && ttl <= 1500, `pttl ${ttl}`);
  });

  test('handshake: missing key 400, wrong version 426, bad/expired/absent token 401, no upgrade', async () => {
    const tok = stack.token('hs-user');
    const q = `/v1/ws?token=${encodeURIComponent(tok)}`;
    let r = await rawUpgrade(rc.port, { pathQ: q, headers: { 'Sec-WebSocket-Version': '13' } });
    assert.equal(r.status, 400);
    assert.equal(r.upgraded, false);
    r = await rawUpgrade(rc.port, { pathQ: q, headers: { 'Sec-WebSocket-Version': '8', 'Sec-WebSocket-Key': KEY } });
    assert.equal(r.status, 426);
    assert.equal(r.headers['sec-websocket-version'], '13');
    const base = { 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': KEY };
    for (const [what, pathQ, extra] of [
      ['absent', '/v1/ws', {}],
      ['bad signature', `/v1/ws?token=${stack.token('hs-user', { wrongSignature: true })}`, {}],
      ['expired', `/v1/ws?token=${stack.token('hs-user', { expSeconds: -10 })}`, {}],
      ['alg none', `/v1/ws?token=${mintToken({ sub: 'hs-user', alg: 'none' })}`, {}],
      ['bad bearer', '/v1/ws', { Authorization: 'Bearer nope' }],
    ]) {
      r = await rawUpgrade(rc.port, { pathQ, headers: { ...base, ...extra } });
      assert.equal(r.status, 401, what);
      assert.equal(r.upgraded, false, what);
      assert.match(JSON.parse(r.body).error, /unauthorized|token_expired/, what);
    }
    // a bearer header works too, and a bad device id is a 400
    r = await rawUpgrade(rc.port, { headers: { ...base, Authorization: `Bearer ${tok}` } });
    assert.equal(r.status, 101);
    r = await rawUpgrade(rc.port, { pathQ: `${q}&device=${encodeURIComponent('bad/dev')}`, headers: base });
    assert.equal(r.status, 400);
    const metrics = (await request(`${rc.url}/metrics`)).text;
    assert.match(metrics, /recv_upgrades_refused_total\{reason="unauthorized"\} [5-9]/);
    assert.match(metrics, /recv_upgrades_refused_total\{reason="version"\} [1-9]/);
  });

  test('hello then snapshot listing a contact, and registration in Redis', async () => {
    // bob shares his presence with alice (ct:bob ∋ alice, cw:alice ∋ bob)
    await redis.sadd('ct:snap-bob', 'snap-alice');
    await redis.sadd('cw:snap-alice', 'snap-bob');
    const bob = await stack.ws('snap-bob', 'phone');
    assert.equal((await bob.next()).type, 'hello');
    await bob.next((m) => m.type === 'snapshot');
    await waitFor(async () => (await redis.hget(stack.keys.presence('snap-bob'), 'st')) === 'online', 3000);

    const alice = await stack.ws('snap-alice', 'laptop');
    const hello = await alice.next();
    assert.deepEqual(hello, { type: 'hello', user: 'snap-alice', device: 'laptop', heartbeat_ms: 20000 });
    const snap = await alice.next();
    assert.equal(snap.type, 'snapshot');
    const b = snap.users.find((u) => u.user === 'snap-bob');
    assert.ok(b, JSON.stringify(snap));
    assert.equal(b.status, 'online');
    assert.equal(b.last_seen, null);
    assert.ok(b.version >= 1);

    const rec = await redis.hgetall(stack.keys.presence('snap-alice'));
    assert.deepEqual(parseDevice(rec['d:laptop']), { kind: 'conn', activity: 'online', instance: inst.id });
    assert.equal(await redis.hget(stack.keys.route('snap-alice'), 'laptop'), inst.id);
    assert.equal(await redis.sismember(`ic:${inst.id}`, 'snap-alice/laptop'), 1);
    await alice.close();
    await bob.close();
  });

  test('a device id is generated when absent', async () => {
    const c = await connect(stack.wsUrl('gen-user'));
    const hello = await c.next();
    assert.match(hello.device, /^ws-[0-9a-f]{16}$/);
    await waitFor(async () => (await redis.hget(stack.keys.presence('gen-user'), `d:${hello.device}`)) !== null, 3000);
    await c.close();
  });

  test('status frames change the stored status; bad frames get errors and the connection stays', async () => {
    const c = await stack.ws('st-user', 'tab');
    await c.next((m) => m.type === 'snapshot');
    c.send({ type: 'status', status: 'idle' });
    await waitFor(async () => (await redis.hget(stack.keys.presence('st-user'), 'st')) === 'idle', 3000, 25, 'idle');
    assert.equal(parseDevice(await redis.hget(stack.keys.presence('st-user'), 'd:tab')).activity, 'idle');
    c.send({ type: 'status', status: 'dnd' });
    await waitFor(async () => (await redis.hget(stack.keys.presence('st-user'), 'st')) === 'dnd', 3000, 25, 'dnd');
    if (HAS_SEND) {
      const r = await stack.api('st-user').get('/v1/presence?users=st-user');
      assert.equal(r.status, 200);
      assert.equal(r.body.users[0].status, 'dnd');
    }
    for (const bad of ['{nope', '[]', '{"type":"what"}', '{"type":"status","status":"away"}',
                       '{"type":"subscribe","group":"bad group"}', '{"type":5}']) {
      c.send(bad);
      const e = await c.next((m) => m.type === 'error');
      assert.equal(e.code, 'bad_request', bad);
    }
    c.send({ type: 'ping' });
    assert.deepEqual(await c.next((m) => m.type === 'pong'), { type: 'pong' });
    assert.ok(c.isOpen);
    await c.close();
  });

  test('subscribe answers the group state to members and forbidden to others', async () => {
    await redis.sadd('gm:sub-team', 'sub-a', 'sub-b');
    const b = await stack.ws('sub-b', 'd');
    await b.next((m) => m.type === 'snapshot');
    const a = await stack.ws('sub-a', 'd');
    await a.next((m) => m.type === 'snapshot');
    a.send({ type: 'subscribe', group: 'sub-team' });
    const g = await a.next((m) => m.type === 'group');
    assert.equal(g.group, 'sub-team');
    assert.equal(g.online, 2);
    assert.deepEqual(g.users.map((u) => u.user).sort(), ['sub-a', 'sub-b']);
    const x = await stack.ws('sub-x', 'd');
    x.send({ type: 'subscribe', group: 'sub-team' });
    assert.equal((await x.next((m) => m.type === 'error')).code, 'forbidden');
    x.send({ type: 'unsubscribe', group: 'sub-team' });
    x.send({ type: 'ping' });
    await x.next((m) => m.type === 'pong');
    await Promise.all([a.close(), b.close(), x.close()]);
  });

  test('close: offline after the leave grace; reconnect within it: no offline, same version', async () => {
    const key = stack.keys.presence('grace-user');
    let c = await stack.ws('grace-user', 'phone');
    await c.next((m) => m.type === 'snapshot');
    await waitFor(async () => (await redis.hget(key, 'st')) === 'online', 3000);
    const v1 = await redis.hget(key, 'ver');

    await c.close();
    c = await stack.ws('grace-user', 'phone'); // within the 600 ms grace
    await c.next((m) => m.type === 'snapshot');
    // wait past the grace: still online, version unchanged
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await redis.hget(key, 'st'), 'online');
    assert.equal(await redis.hget(key, 'ver'), v1);

    const closedAt = Date.now();
    await c.close();
    await waitFor(async () => (await redis.hget(key, 'st')) === 'offline', 3000, 25, 'offline');
    assert.ok(Date.now() - closedAt >= 500, 'not before the grace');
    assert.equal(await redis.hget(key, 'd:phone'), null);
    assert.equal(await redis.hget(stack.keys.route('grace-user'), 'phone'), null);
    assert.equal(await redis.sismember(`ic:${inst.id}`, 'grace-user/phone'), 0);
  });

  test('two connections of one device: it leaves only when the last closes', async () => {
    const key = stack.keys.presence('two-user');
    const a = await stack.ws('two-user', 'same');
    const b = await stack.ws('two-user', 'same');
    await a.next((m) => m.type === 'snapshot');
    await b.next((m) => m.type === 'snapshot');
    await a.close();
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await redis.hget(key, 'st'), 'online');
    await b.close();
    await waitFor(async () => (await redis.hget(key, 'st')) === 'offline', 3000, 25, 'offline');
  });

  test('deliveries over nng reach every connection of the recipients, newer versions only', async () => {
    const w1 = await stack.ws('dl-watcher', 'a');
    const w2 = await stack.ws('dl-watcher', 'b');
    await w1.next((m) => m.type === 'snapshot');
    await w2.next((m) => m.type === 'snapshot');
    const push = await nngPush(inst.addr);
    push.send(batch([{ user: 'dl-subject', status: 'online', version: 5, to: ['dl-watcher', 'dl-nobody'] }]));
    for (const w of [w1, w2]) {
      const p = await w.next((m) => m.type === 'presence' && m.user === 'dl-subject');
      assert.deepEqual(p, { type: 'presence', user: 'dl-subject', status: 'online', last_seen: null, version: 5 });
    }
    // older and equal versions are dropped; a newer one passes
    push.send(batch([
      { user: 'dl-subject', status: 'idle', version: 4, to: ['dl-watcher'] },
      { user: 'dl-subject', status: 'idle', version: 5, to: ['dl-watcher'] },
      { user: 'dl-subject', status: 'offline', last_seen: 1764423000000, version: 6, to: ['dl-watcher'] },
    ]));
    const p = await w1.next((m) => m.type === 'presence' && m.user === 'dl-subject');
    assert.equal(p.version, 6);
    assert.equal(p.last_seen, 1764423000000);
    // a malformed batch is dropped, the socket keeps working
    push.send(Buffer.from([0x93, 0x01]));
    push.send(batch([{ user: 'dl-subject', status: 'online', version: 7, to: ['dl-watcher'] }]));
    assert.equal((await w1.next((m) => m.type === 'presence' && m.user === 'dl-subject')).version, 7);
    assert.equal(w1.messages.filter((m) => m.type === "presence" && m.user === "dl-subject").length, 3, JSON.stringify(w1.messages));
    const metrics = (await request(`${rc.url}/metrics`)).text;
    assert.match(metrics, /recv_drops_total\{reason="stale"\} ([2-9]|[1-9]\d+)/);
    assert.match(metrics, /recv_drops_total\{reason="bad_batch"\} [1-9]/);
    push.close();
    await Promise.all([w1.close(), w2.close()]);
  });

  test('a status change reaches a watcher through fanout', { skip: !HAS_FANOUT && 'presence-fanout not built' }, async () => {
    await redis.sadd('ct:fo-bob', 'fo-alice');
    await redis.sadd('cw:fo-alice', 'fo-bob');
    const alice = await stack.ws('fo-alice', 'laptop');
    await alice.next((m) => m.type === 'snapshot');
    const bob = await stack.ws('fo-bob', 'phone');
    await bob.next((m) => m.type === 'snapshot');
    const on = await alice.next((m) => m.type === 'presence' && m.user === 'fo-bob' && m.status === 'online', 5000);
    bob.send({ type: 'status', status: 'idle' });
    const idle = await alice.next((m) => m.type === 'presence' && m.user === 'fo-bob', 5000);
    assert.equal(idle.status, 'idle');
    assert.ok(idle.version > on.version);
    await Promise.all([alice.close(), bob.close()]);
  });

  test('a lost lease is recreated under a new instance id and every held device registered again', async () => {
    const c = await stack.ws('lease-user', 'dev');
    await c.next((m) => m.type === 'snapshot');
    await waitFor(async () => (await redis.hget(stack.keys.presence('lease-user'), 'st')) === 'online', 3000);
    const before = await redis.hget(stack.keys.route('lease-user'), 'dev');
    // what fanout's cleanup does to a dead instance
    await redis.del(`inst:${before}`, `ic:${before}`, stack.keys.presence('lease-user'), stack.keys.route('lease-user'));
    await redis.srem('insts', before);
    let id;
    await waitFor(async () => {
      id = await redis.hget(stack.keys.route('lease-user'), 'dev');
      return id && (await redis.get(`inst:${id}`)) === inst.addr;
    }, 3000, 25, 'registered again');
    assert.match(id, new RegExp(`^${esc(inst.id)}\\.\\d+$`), 'a new epoch of the id');
    await waitFor(async () => (await redis.hget(stack.keys.presence('lease-user'), 'st')) === 'online', 3000, 25, 'device back');
    assert.equal(await redis.sismember('insts', id), 1);
    assert.equal(await redis.sismember(`ic:${id}`, 'lease-user/dev'), 1);
    assert.equal(parseDevice(await redis.hget(stack.keys.presence('lease-user'), 'd:dev')).instance, id);
    const ready = await request(`${rc.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.match(ready.text, new RegExp(`instance=${esc(id)}\\n`));
    await c.close();
  });

  test('a token that expires closes its connection with 4001', async () => {
    const t0 = Date.now();
    const c = await stack.ws(stack.token('exp-user', { expSeconds: 2 }), 'd');
    await c.next((m) => m.type === 'snapshot');
    const { code } = await c.closed;
    assert.equal(code, 4001);
    const took = Date.now() - t0;
    assert.ok(took >= 900 && took < 3500, `closed after ${took} ms`);
    assert.match((await request(`${rc.url}/metrics`)).text, /^recv_tokens_expired_total [1-9]/m);
  });

  test('subscribe: one in flight per connection, and at most --small-group-max members listed', async () => {
    const members = Array.from({ length: 150 }, (_, i) => `big-${String(i).padStart(3, '0')}`);
    await redis.sadd('gm:big-team', ...members);
    const a = await stack.ws('big-000', 'd');
    await a.next((m) => m.type === 'snapshot');
    // two subscribes in one TCP segment: the second is read while the first is in flight
    a.ws._socket.cork();
    a.send({ type: 'subscribe', group: 'big-team' });
    a.send({ type: 'subscribe', group: 'big-team' });
    a.ws._socket.uncork();
    const e = await a.waitFor((m) => m.type === 'error');
    assert.equal(e.code, 'rate_limited');
    const g = await a.waitFor((m) => m.type === 'group');
    assert.equal(g.users.length, 100, 'the first --small-group-max members');
    assert.equal(new Set(g.users.map((u) => u.user)).size, 100);
    for (const u of g.users) assert.ok(members.includes(u.user), u.user);
    assert.equal(g.online, g.users.find((u) => u.user === 'big-000') ? 1 : 0, 'online among those listed');
    // once answered, the next subscribe is taken
    a.send({ type: 'subscribe', group: 'big-team' });
    await waitFor(() => a.messages.filter((m) => m.type === 'group').length === 2, 3000, 25, 'second reply');
    assert.equal(a.messages.filter((m) => m.type === 'error').length, 1);
    await a.close();
  });

  test('healthz, readyz, metrics', async () => {
    assert.equal((await request(`${rc.url}/healthz`)).status, 200);
    assert.equal((await request(`${rc.url}/readyz`)).status, 200);
    const m = (await request(`${rc.url}/metrics`)).text;
    for (const name of ['recv_connections_open', 'recv_frames_in_total', 'recv_bytes_out_total',
                        'recv_deliveries_total', 'recv_slow_consumers_closed_total', 'recv_registration_seconds_count']) {
      assert.match(m, new RegExp(`^${name}`, 'm'), name);
    }
  });
});

// ---- instances with their own flags --------------------------------------

describe('presence-receive limits and drain', () => {
  let stack, redis;
  const staticDir = fs.mkdtempSync(path.join(runDir(), 'static-'));
  fs.writeFileSync(path.join(staticDir, 'index.html'), '<!doctype html><title>demo</title>');
  fs.writeFileSync(path.join(staticDir, 'app.js'), 'console.log(1)');
  before(async () => {
    stack = await startStack({
      sends: 0,
      receives: 1,
      receiveArgs: ['--rate-limit', '2', '--rate-burst', '4', '--heartbeat-ms', '300',
                    '--allowed-origins', 'https://ok.example, https://also.example', '--static-dir', staticDir,
                    '--leave-grace-ms', '0'],
    });
    redis = stack.redisClient();
  });

  test('rate limit: rate_limited errors, then close 4008', async () => {
    const c = await stack.ws('rl-user', 'd');
    await c.next((m) => m.type === 'snapshot');
    for (let i = 0; i < 30; i++) c.send({ type: 'ping' });
    const e = await c.waitFor((m) => m.type === 'error');
    assert.equal(e.code, 'rate_limited');
    assert.equal((await c.closed).code, 4008);
  });

  test('a silent connection is closed after twice heartbeat_ms; frames keep it alive', async () => {
    const c = await stack.ws('idle-user', 'd');
    const started = Date.now();
    const timer = setInterval(() => c.send({ type: 'ping' }), 200);
    await new Promise((r) => setTimeout(r, 900));
    clearInterval(timer);
    assert.ok(c.isOpen, 'pings keep it open');
    const { code } = await c.closed;
    assert.equal(code, 1001);
    assert.ok(Date.now() - started < 3000);
    // grace 0: offline right away
    await waitFor(async () => (await redis.hget(stack.keys.presence('idle-user'), 'st')) === 'offline', 3000);
  });

  test('origin allow-list: 403 for another origin', async () => {
    const url = stack.wsUrl('or-user', 'd');
    const bad = open(url, { headers: { Origin: 'https://evil.example' } });
    await assert.rejects(bad.opened, (e) => e.status === 403);
    const ok = await connect(url, { headers: { Origin: 'https://also.example' } });
    await ok.close();
  });

  test('static files: index, types, no traversal', async () => {
    const base = stack.receiveUrl;
    let r = await request(`${base}/`);
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /text\/html/);
    r = await request(`${base}/app.js`);
    assert.match(r.headers['content-type'], /javascript/);
    for (const p of ['/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/.hidden', '/nope.html']) {
      assert.equal((await request(`${base}${p}`)).status, 404, p);
    }
    assert.equal((await request(`${base}/app.js`, { method: 'POST', body: 'x' })).status, 405);
  });

  test('SIGTERM: clients get 1012, their devices leave Redis at once, exit 0', async () => {
    const svc = stack.receive;
    const id = svc.args[svc.args.indexOf('--instance-id') + 1];
    const a = await stack.ws('dr-a', 'd1');
    const b = await stack.ws('dr-b', 'd2');
    const c = await stack.ws('dr-c', 'd3');
    await a.next((m) => m.type === 'snapshot');
    await b.next((m) => m.type === 'snapshot');
    await c.next((m) => m.type === 'snapshot');
    // dr-c also heartbeats over HTTP (another device): the drain must not take dr-c offline
    const k = stack.keys;
    await evalScript(redis, 'heartbeat', [k.presence('dr-c'), k.deadlinesOf('dr-c'), k.eventsOf('dr-c'), k.hb('dr-c', 'phone')],
                     ['dr-c', 'phone', '60000', '', '0', '0']);
    await waitFor(async () => (await redis.hget(stack.keys.presence('dr-b'), 'st')) === 'online', 3000);
    const t0 = Date.now();
    const stopped = svc.stop(); // SIGTERM (SIGKILL only if it hangs)
    assert.equal((await a.closed).code, 1012);
    assert.equal((await b.closed).code, 1012);
    assert.equal((await c.closed).code, 1012);
    assert.equal(await stopped, 0);
    assert.ok(Date.now() - t0 < 10000);
    for (const u of ['dr-a', 'dr-b']) assert.equal(await redis.hget(stack.keys.presence(u), 'st'), 'offline', u);
    assert.equal(await redis.hget(stack.keys.presence('dr-c'), 'st'), 'online', 'held by its HTTP device');
    assert.equal(await redis.hget(stack.keys.presence('dr-c'), 'd:d3'), null, 'its WebSocket device is gone');
    assert.equal(await redis.exists(`inst:${id}`, `ic:${id}`), 0);
    assert.equal(await redis.sismember('insts', id), 0);
  });
});

// ---- instance epochs, Redis stalls, drain failures, the nng queue -------


/** What presence-fanout does to a dead instance (services/fanout/instances.c),
 * step by step: conn_del for every pair of ic:<id>, then DEL ic:<id>, SREM insts. */
async function cleanInstanceByHand(stack, redis, id) {
  for (const pair of await redis.smembers(`ic:${id}`)) {
    const [user, device] = pair.split('/');
    const k = stack.keys;
    await evalScript(redis, 'conn_del', [k.presence(user), k.deadlinesOf(user), k.eventsOf(user), k.route(user)],
                     [user, device, id]);
  }
  await redis.del(`ic:${id}`);
  await redis.srem('insts', id);
}

describe('presence-receive after a lost lease', () => {
  let stack, redis;
  before(async () => {
    stack = await startStack({
      sends: 0,
      fanouts: HAS_FANOUT ? 1 : 0,
      receives: 1,
      receiveArgs: ['--leave-grace-ms', '600', '--lease-ttl-ms', '1500'],
    });
    redis = stack.redisClient();
  });

  test('the old id\'s cleanup, racing with the re-registration, removes nobody; kill -9 still ends offline', async () => {
    const base = idOf(stack.receive);
    const addr = await redis.get(`inst:${base}`);
    await redis.sadd('ct:ep-v', 'ep-u'); // ep-u watches ep-v
    await redis.sadd('cw:ep-u', 'ep-v');
    const u = await stack.ws('ep-u', 'dev');
    await u.next((m) => m.type === 'snapshot');
    const rec = stack.keys.presence('ep-u');
    await waitFor(async () => (await redis.hget(rec, 'st')) === 'online', 3000, 25, 'online');

    // the lease lapses as if receive had stalled past its ttl ...
    await redis.del(`inst:${base}`);
    // ... receive finds it lost and registers again
    let id;
    await waitFor(async () => {
      id = await redis.hget(stack.keys.route('ep-u'), 'dev');
      return id && (await redis.get(`inst:${id}`)) === addr;
    }, 5000, 25, 'registered again');
    // ... and only now does fanout's cleanup of the dead id run
    await cleanInstanceByHand(stack, redis, base);

    assert.equal(await redis.hget(rec, 'st'), 'online', 'the live device survives the old id\'s cleanup');
    assert.match(id, new RegExp(`^${esc(base)}\\.\\d+$`));
    assert.equal(parseDevice(await redis.hget(rec, 'd:dev')).instance, id);
    assert.equal(await redis.sismember('insts', id), 1, 'the new id is tracked');
    assert.equal(await redis.sismember(`ic:${id}`, 'ep-u/dev'), 1);
    assert.ok((await redis.pttl(`inst:${id}`)) > 0);
    const ready = await request(`${stack.receive.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.match(ready.text, new RegExp(`instance=${esc(id)}\\n`));
    const m = (await request(`${stack.receive.url}/metrics`)).text;
    assert.match(m, /^recv_lease_losses_total 1$/m);
    assert.match(m, new RegExp(`^recv_instance_epoch ${id.slice(base.length + 1)}$`, 'm'));
    if (!HAS_FANOUT) return;

    // deliveries still arrive: fanout routes rt -> the new id -> its lease -> the same nng address
    const v = await stack.ws('ep-v', 'dev');
    await v.next((x) => x.type === 'snapshot');
    await u.next((x) => x.type === 'presence' && x.user === 'ep-v' && x.status === 'online', 5000);
    // a killed instance is still cleaned: offline within the lease ttl + 2 s
    await stack.receive.kill9();
    await waitFor(async () => (await redis.hget(rec, 'st')) === 'offline', 6000, 50, 'offline after kill -9');
    assert.equal(await redis.hget(stack.keys.presence('ep-v'), 'st'), 'offline');
  });
});

describe('presence-receive and a Redis stall', () => {
  let stack, redis;
  before(async () => {
    stack = await startStack({
      sends: 0,
      receives: 1,
      redisArgs: ['--enable-debug-command', 'local'],
      receiveArgs: ['--leave-grace-ms', '1000', '--lease-ttl-ms', '8000'],
    });
    redis = stack.redisClient();
  });

  test('a timeout as a device leaves never brings it back online', async () => {
    const user = 'stall-user';
    // one removal first, so that Redis knows the conn_del script (a NOSCRIPT
    // would make the late removal below fail instead of running late)
    const warm = await stack.ws('stall-warm', 'd');
    await warm.next((m) => m.type === 'snapshot');
    await warm.close();
    await waitFor(async () => (await redis.hget(stack.keys.presence('stall-warm'), 'st')) === 'offline', 3000);
    const c = await stack.ws(user, 'd');
    await c.next((m) => m.type === 'snapshot');
    await waitFor(async () => (await redis.hget(stack.keys.presence(user), 'st')) === 'online', 3000);
    const events = await stack.subscribeUser(user);
    const mine = () => events.events().filter((e) => e.user === user).map((e) => e.status);

    await c.close();
    // Redis stalls 3.2 s: the removal sent when the 1 s grace ends times out
    // (2 s), and Redis runs it late anyway (offline)
    const sleeper = stack.redisClient();
    await sleeper.call('DEBUG', 'SLEEP', '3.2');
    // the connection drops right after: the refresh on reconnect redoes
    // failed registrations at once (before the removal is retried)
    const list = await redis.call('CLIENT', 'LIST');
    for (const line of String(list).split('\n')) {
      const id = /\bid=(\d+)\b.*\bname=receive\b/.exec(line);
      if (id) await redis.call('CLIENT', 'KILL', 'ID', id[1]);
    }
    await waitFor(async () => (await redis.hget(stack.keys.presence(user), 'st')) === 'offline', 5000, 25, 'offline');
    await waitFor(async () => /^presence_redis_ready 1$/m.test((await request(`${stack.receive.url}/metrics`)).text), 5000, 25, 'reconnected');
    await new Promise((r) => setTimeout(r, 1500)); // past the removal's retry
    await events.barrier();
    assert.deepEqual(mine(), ['offline'], 'one offline, no online after it');
    assert.equal(await redis.hget(stack.keys.presence(user), 'st'), 'offline');
  });
});

describe('presence-receive drain when Redis refuses a removal', () => {
  let stack, redis;
  before(async () => {
    stack = await startStack({ sends: 0, receives: 1 });
    redis = stack.redisClient();
  });

  test('the instance stays listed for fanout\'s cleanup; only its lease goes', async () => {
    const svc = stack.receive;
    const id = idOf(svc);
    const a = await stack.ws('dd-a', 'd');
    const b = await stack.ws('dd-b', 'd');
    await a.next((m) => m.type === 'snapshot');
    await b.next((m) => m.type === 'snapshot');
    await waitFor(async () => (await redis.hget(stack.keys.presence('dd-b'), 'st')) === 'online', 3000);
    // dd-b's route is not a hash any more: its conn_del fails (WRONGTYPE)
    await redis.del(stack.keys.route('dd-b'));
    await redis.set(stack.keys.route('dd-b'), 'broken');
    assert.equal(await svc.stop(), 0);
    assert.equal(await redis.hget(stack.keys.presence('dd-a'), 'st'), 'offline');
    assert.equal(await redis.exists(`inst:${id}`), 0, 'the lease is gone: the instance looks dead');
    assert.equal(await redis.sismember('insts', id), 1, 'still listed for cleanup');
    assert.equal(await redis.sismember(`ic:${id}`, 'dd-b/d'), 1, 'its device still listed');
    // fanout's cleanup, once the route is readable again, removes the device left
    await redis.del(stack.keys.route('dd-b'));
    await cleanInstanceByHand(stack, redis, id);
    assert.equal(await redis.hget(stack.keys.presence('dd-b'), 'st'), 'offline');
  });
});

describe('presence-receive nng queue bound in bytes', () => {
  let stack;
  before(async () => {
    stack = await startStack({ sends: 0, receives: 1, receiveArgs: ['--deliver-queue-max-bytes', '1048576'] });
  });

  test('batches beyond the bytes bound are dropped and counted; the queue recovers', async () => {
    const w = await stack.ws('q-watcher', 'd');
    await w.next((m) => m.type === 'snapshot');
    const addr = await stack.redisClient().get(`inst:${idOf(stack.receive)}`);
    const push = await nngPush(addr);
    const big = batch(Array.from({ length: 12000 }, (_, i) => (
      { user: `q-subject-${i}-${'x'.repeat(40)}`, status: 'online', version: 1, to: ['q-nobody'] })));
    assert.ok(big.length > 600000 && big.length < 1048576, `${big.length} bytes`);
    for (let i = 0; i < 24; i++) push.send(big); // ~17 MB at once, 1 MiB allowed
    const drops = async () => {
      const m = /^recv_drops_total\{reason="queue_full"\} (\d+)$/m.exec((await request(`${stack.receive.url}/metrics`)).text);
      return m ? Number(m[1]) : 0;
    };
    await waitFor(async () => (await drops()) > 0, 5000, 50, 'queue_full drops');
    push.send(batch([{ user: 'q-after', status: 'online', version: 1, to: ['q-watcher'] }]));
    assert.equal((await w.next((m) => m.type === 'presence' && m.user === 'q-after', 5000)).version, 1);
    push.close();
    await w.close();
  });
});
