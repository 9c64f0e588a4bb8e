// send.test.mjs: presence-send against a real redis-server, through its HTTP
// contract (DESIGN §6): what a watcher reads after heartbeats and offlines,
// versions and events, expiry through the sweep script, ETags, privacy,
// input and auth errors, limits, a Redis outage, and a clean shutdown.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startStack, mintToken, waitFor, redisNowMs, sweep, parseDevice, decodeEvent, httpStatus, request,
} from './lib/stack.mjs';

const run = crypto.randomBytes(3).toString('hex');
let seq = 0;
/** A fresh user id per test, so tests never see each other's state. */
const uid = (name) => `${name}-${run}-${++seq}`;

// ---- helpers over a stack -------------------------------------------------

function helpers(stack) {
  const admin = () => stack.adminApi();
  const h = {
    /** owner shares presence with watcher: the watcher may watch the owner. */
    async share(owner, watcher) {
      const r = await admin().put(`/v1/users/${owner}/contacts/${watcher}`);
      assert.equal(r.status, 204, `share ${owner} -> ${watcher}: ${r.status} ${r.text}`);
    },
    async heartbeat(user, body) {
      const r = await stack.api(user).post('/v1/heartbeat', body);
      assert.equal(r.status, 204, `heartbeat ${user} ${JSON.stringify(body)}: ${r.status} ${r.text}`);
    },
    async offline(user, body) {
      const r = await stack.api(user).post('/v1/offline', body);
      assert.equal(r.status, 204, `offline ${user} ${JSON.stringify(body)}: ${r.status} ${r.text}`);
    },
    /** GET /v1/presence?users=... as viewer; returns the full response. */
    query(viewer, users, headers = {}) {
      return stack.api(viewer).get(`/v1/presence?users=${users.map(encodeURIComponent).join(',')}`, { headers });
    },
    /** What viewer reads about user: {user, status, last_seen, version}. */
    async read(viewer, user) {
      const r = await h.query(viewer, [user]);
      assert.equal(r.status, 200, `presence of ${user} as ${viewer}: ${r.status} ${r.text}`);
      assert.ok(Array.isArray(r.body?.users), `body: ${r.text}`);
      const e = r.body.users.find((x) => x.user === user);
      assert.ok(e, `no entry for ${user} in ${r.text}`);
      assert.deepEqual(Object.keys(e).sort(), ['last_seen', 'status', 'user', 'version']);
      return e;
    },
  };
  return h;
}

function assertError(r, status, what) {
  assert.equal(r.status, status, `${what}: expected ${status}, got ${r.status} ${r.text}`);
  assert.equal(typeof r.body?.error, 'string', `${what}: error body ${r.text}`);
  assert.equal(typeof r.body?.message, 'string', `${what}: error body ${r.text}`);
}

// ---- the main stack: default settings ------------------------------------

describe('presence-send', () => {
  let stack;
  let h;
  let redis;
  before(async () => {
    stack = await startStack({ sends: 1 });
    h = helpers(stack);
    redis = stack.redisClient();
  });
  after(() => stack?.stop());

  test('health, readiness and metrics answer', async () => {
    assert.equal((await request(`${stack.sendUrl}/healthz`)).status, 200);
    assert.equal((await request(`${stack.sendUrl}/readyz`)).status, 200);
    const m = await request(`${stack.sendUrl}/metrics`);
    assert.equal(m.status, 200);
    assert.match(m.headers['content-type'] ?? '', /^text\/plain/);
    assert.match(m.text, /^# (HELP|TYPE) \w+/m);
  });

  test('a heartbeat makes a watcher see online', async () => {
    const alice = uid('alice');
    const bob = uid('bob');
    await h.share(alice, bob);
    const before = await h.read(bob, alice);
    assert.equal(before.status, 'offline');
    await h.heartbeat(alice, { device: 'phone' });
    const after = await h.read(bob, alice);
    assert.equal(after.status, 'online');
    assert.equal(after.version, before.version + 1);
  });

  test('a heartbeat without a body counts for the default device', async () => {
    const alice = uid('alice');
    const bob = uid('bob');
    await h.share(alice, bob);
    const r = await stack.api(alice).post('/v1/heartbeat');
    assert.equal(r.status, 204, r.text);
    assert.equal((await h.read(bob, alice)).status, 'online');
    assert.ok(await redis.hget(stack.keys.presence(alice), 'd:default'), 'device "default" stored');
  });

  test('idle, dnd and invisible as a watcher and as the owner reads them', async () => {
    const alice = uid('alice');
    const bob = uid('bob');
    await h.share(alice, bob);
    await h.heartbeat(alice, { device: 'phone', status: 'online' });
    assert.equal((await h.read(bob, alice)).status, 'online');

    await h.heartbeat(alice, { device: 'phone', status: 'idle' });
    assert.equal((await h.read(bob, alice)).status, 'idle');

    await h.heartbeat(alice, { device: 'phone', status: 'dnd' });
    assert.equal((await h.read(bob, alice)).status, 'dnd');

    await h.heartbeat(alice, { device: 'phone', status: 'none' }); // clears dnd; the device is still idle
    assert.equal((await h.read(bob, alice)).status, 'idle');

    await h.heartbeat(alice, { device: 'phone', status: 'online' });
    assert.equal((await h.read(bob, alice)).status, 'online');

    await h.heartbeat(alice, { device: 'phone', status: 'invisible' });
    const hidden = await h.read(bob, alice);
    assert.equal(hidden.status, 'offline');
    assert.equal(typeof hidden.last_seen, 'number', 'an invisible user looks like one who left: last_seen set');
    assert.equal((await h.read(alice, alice)).status, 'invisible');

    // the preference stays until changed: a plain heartbeat keeps her invisible
    await h.heartbeat(alice, { device: 'phone' });
    assert.equal((await h.read(bob, alice)).status, 'offline');
    await h.heartbeat(alice, { device: 'laptop' });
    assert.equal((await h.read(bob, alice)).status, 'offline');

    await h.heartbeat(alice, { device: 'phone', status: 'none' });
    assert.equal((await h.read(bob, alice)).status, 'online');
  });

  test('two devices stay online until both are gone', async () => {
    const alice = uid('alice');
    const bob = uid('bob');
    await h.share(alice, bob);
    const v0 = (await h.read(bob, alice)).version;
    await h.heartbeat(alice, { device: 'phone' });
    await h.heartbeat(alice, { device: 'laptop' });
    assert.equal((await h.read(bob, alice)).status, 'online');

    await h.offline(alice, { device: 'phone' });
    const one = await h.read(bob, alice);
    assert.equal(one.status, 'online', 'the laptop still heartbeats');
    assert.equal(one.version, v0 + 1);

    const t0 = await redisNowMs(redis);
    await h.offline(alice, { device: 'laptop' });
    const gone = await h.read(bob, alice);
    assert.equal(gone.status, 'offline');
    assert.equal(gone.version, v0 + 2);
    assert.equal(typeof gone.last_seen, 'number');
    assert.ok(gone.last_seen >= t0 && gone.last_seen <= (await redisNowMs(redis)), `last_seen ${gone.last_seen}`);
  });

  test('offline without a device ends all of the user\'s HTTP devices', async () => {
    const alice = uid('alice');
    const bob = uid('bob');
    await h.share(alice, bob);
    await h.heartbeat(alice, { device: 'phone' });
    await h.heartbeat(alice, { device: 'laptop' });
    await h.offline(alice);
    assert.equal((await h.read(bob, alice)).status, 'offline');
  });

  test('the version grows by exactly one per visible change, and events follow', async () => {
    const alice = uid('alice');
    const bob = uid('bob');
    await h.share(alice, bob);
    const sub = await stack.subscribeUser(alice);
    const v0 = (await h.read(bob, alice)).version;
    const steps = [
      [{ device: 'phone' }, 'online', 1],
      [{ device: 'phone' }, 'online', 0],
      [{ device: 'laptop' }, 'online', 0],
      [{ device: 'phone', status: 'idle' }, 'online', 0], // the laptop is still online
      [{ device: 'laptop', status: 'idle' }, 'idle', 1],
      [{ device: 'laptop', status: 'idle' }, 'idle', 0],
      [{ device: 'phone', status: 'dnd' }, 'dnd', 1],
      [{ device: 'phone', status: 'dnd' }, 'dnd', 0],
      [{ device: 'phone', status: 'online' }, 'dnd', 0], // dnd wins over activity
      [{ device: 'phone', status: 'none' }, 'online', 1],
    ];
    let v = v0;
    let events = 0;
    for (const [body, status, changes] of steps) {
      await h.heartbeat(alice, body);
      v += changes;
      events += changes;
      const e = await h.read(bob, alice);
      assert.deepEqual([e.status, e.version], [status, v], `after ${JSON.stringify(body)}`);
      await sub.barrier();
      assert.equal(sub.count, events, `events after ${JSON.stringify(body)}`);
    }
    const evs = sub.events();
    assert.deepEqual(evs.map((e) => [e.kind, e.user, e.status, e.version]), [
      [1, alice, 'online', v0 + 1],
      [1, alice, 'idle', v0 + 2],
      [1, alice, 'dnd', v0 + 3],
      [1, alice, 'online', v0 + 4],
    ]);
    for (const e of evs) {
      assert.equal(e.last_seen, 0);
      assert.deepEqual(e.to, []);
    }
  });

  test('a heartbeat that changes nothing publishes nothing', async () => {
    const alice = uid('alice');
    const sub = await stack.subscribeUser(alice);
    const t0 = await redisNowMs(redis);
    await h.heartbeat(alice, { device: 'phone' });
    await sub.barrier();
    assert.equal(sub.count, 1, 'the first heartbeat publishes one event');
    const [e] = sub.events();
    assert.equal(e.user, alice);
    assert.equal(e.status, 'online');
    assert.equal(e.kind, 1);
    assert.ok(e.ts_ms >= t0, 'ts_ms comes from Redis time');
    await h.heartbeat(alice, { device: 'phone' });
    await h.heartbeat(alice, { device: 'phone', status: 'online' });
    await sub.barrier();
    assert.equal(sub.count, 1, 'repeated heartbeats publish nothing');
    // ...but they do move the device's deadline forward
    const d1 = parseDevice(await redis.hget(stack.keys.presence(alice), 'd:phone'));
    await waitFor(async () => (await redisNowMs(redis)) > d1.seen, 1000, 2);
    await h.heartbeat(alice, { device: 'phone' });
    const d2 = parseDevice(await redis.hget(stack.keys.presence(alice), 'd:phone'));
    assert.ok(d2.deadline > d1.deadline, `deadline ${d1.deadline} -> ${d2.deadline}`);
    assert.equal(Number(await redis.zscore(stack.keys.deadlinesOf(alice), alice)), d2.deadline);
  });

  test('ETag: an unchanged poll is 304, a change gives a new tag', async () => {
    const alice = uid('alice');
    const carol = uid('carol');
    const bob = uid('bob');
    await h.share(alice, bob);
    await h.share(carol, bob);
    await h.heartbeat(alice, { device: 'phone' });
    const r1 = await h.query(bob, [alice, carol]);
    assert.equal(r1.status, 200);
    const tag = r1.headers.etag;
    assert.ok(tag, 'an ETag header');
    const r2 = await h.query(bob, [alice, carol], { 'if-none-match': tag });
    assert.equal(r2.status, 304);
    assert.equal(r2.text, '');
    const r3 = await h.query(bob, [alice, carol], { 'if-none-match': '"something-else"' });
    assert.equal(r3.status, 200);
    assert.equal(r3.headers.etag, tag);

    await h.heartbeat(carol, { device: 'phone' });
    const r4 = await h.query(bob, [alice, carol], { 'if-none-match': tag });
    assert.equal(r4.status, 200);
    assert.ok(r4.headers.etag && r4.headers.etag !== tag, 'a new ETag after a change');
    assert.equal(r4.body.users.find((u) => u.user === carol).status, 'online');
    assert.equal((await h.query(bob, [alice, carol], { 'if-none-match': r4.headers.etag })).status, 304);
  });

  test('a non-watcher reads offline with last_seen null, even while the user is online', async () => {
    const alice = uid('alice');
    const bob = uid('bob');
    const eve = uid('eve');
    await h.share(alice, bob);
    await h.heartbeat(alice, { device: 'phone', status: 'dnd' });
    assert.equal((await h.read(bob, alice)).status, 'dnd');
    const seen = await h.read(eve, alice);
    assert.equal(seen.status, 'offline');
    assert.equal(seen.last_seen, null);
    await h.offline(alice);
    assert.equal(typeof (await h.read(bob, alice)).last_seen, 'number');
    assert.equal((await h.read(eve, alice)).last_seen, null, 'last_seen is not leaked either');
    // sharing is directed: alice shared with bob, not bob with alice
    await h.heartbeat(bob, { device: 'phone' });
    assert.deepEqual(
      [(await h.read(alice, bob)).status, (await h.read(alice, bob)).last_seen],
      ['offline', null],
    );
  });

  test('graph: contacts and small groups decide who may watch, and can be undone', async () => {
    const alice = uid('alice');
    const bob = uid('bob');
    const dave = uid('dave');
    const g = uid('group');
    const admin = stack.adminApi();
    await h.heartbeat(alice, { device: 'phone' });

    // a contact, then removed
    await h.share(alice, bob);
    assert.equal((await h.read(bob, alice)).status, 'online');
    assert.equal((await admin.del(`/v1/users/${alice}/contacts/${bob}`)).status, 204);
    assert.deepEqual(await h.read(bob, alice).then((e) => [e.status, e.last_seen]), ['offline', null]);

    // co-members of a small group watch each other
    for (const u of [alice, dave]) assert.equal((await admin.put(`/v1/groups/${g}/members/${u}`)).status, 204);
    assert.equal((await h.read(dave, alice)).status, 'online');
    const m = await admin.get(`/v1/groups/${g}/members`);
    assert.equal(m.status, 200, m.text);
    assert.deepEqual([...m.body.members].sort(), [alice, dave].sort());
    assert.equal(m.body.cursor, '0');
    assert.equal((await admin.del(`/v1/groups/${g}/members/${alice}`)).status, 204);
    assert.equal((await h.read(dave, alice)).status, 'offline');
    assert.deepEqual((await admin.get(`/v1/groups/${g}/members`)).body.members, [dave]);
  });

  test('group members are listed page by page with a cursor', async () => {
    const g = uid('big');
    const admin = stack.adminApi();
    const members = Array.from({ length: 250 }, (_, i) => `m${i}-${run}`);
    for (const u of members) assert.equal((await admin.put(`/v1/groups/${g}/members/${u}`)).status, 204);
    const got = new Set();
    let cursor = '0';
    let pages = 0;
    do {
      const r = await admin.get(`/v1/groups/${g}/members?cursor=${encodeURIComponent(cursor)}`);
      assert.equal(r.status, 200, r.text);
      for (const u of r.body.members) got.add(u);
      cursor = r.body.cursor;
      assert.equal(typeof cursor, 'string');
      assert.ok(++pages < 1000, 'the cursor ends');
    } while (cursor !== '0');
    assert.deepEqual([...got].sort(), [...members].sort());
  });

  test('400 on bad ids and bad JSON, and nothing reaches Redis', async () => {
    const alice = uid('alice');
    const a = stack.api(alice);
    const admin = stack.adminApi();
    const dev65 = 'd'.repeat(65);
    assertError(await a.post('/v1/heartbeat', { device: dev65 }), 400, '65-byte device');
    assertError(await a.post('/v1/heartbeat', { device: '' }), 400, 'empty device');
    assertError(await a.post('/v1/heartbeat', { device: 'ph one' }), 400, 'device with a space');
    assertError(await a.post('/v1/heartbeat', { status: 'busy' }), 400, 'unknown status');
    assertError(await a.post('/v1/heartbeat', undefined, { body: '{"device":', headers: { 'content-type': 'application/json' } }), 400, 'truncated JSON');
    assertError(await a.post('/v1/heartbeat', undefined, { body: 'not json', headers: { 'content-type': 'application/json' } }), 400, 'not JSON');
    assertError(await a.post('/v1/heartbeat', [1, 2]), 400, 'JSON that is not an object');
    assertError(await a.post('/v1/heartbeat', { device: 7 }), 400, 'device that is not a string');
    assertError(await a.post('/v1/offline', { device: dev65 }), 400, 'offline with a 65-byte device');
    assertError(await h.query(alice, ['a b']), 400, 'user "a b" in a query');
    assertError(await h.query(alice, ['u'.repeat(65)]), 400, '65-byte user in a query');
    assertError(await a.get('/v1/presence'), 400, 'query without users');
    assertError(await admin.put(`/v1/users/${encodeURIComponent('a b')}/contacts/bob`), 400, 'contact owner "a b"');
    assertError(await admin.put(`/v1/users/bob/contacts/${'c'.repeat(65)}`), 400, '65-byte contact');
    assertError(await admin.put(`/v1/groups/${encodeURIComponent('g/x')}/members/bob`), 400, 'group "g/x"');
    assertError(await admin.put(`/v1/groups/${encodeURIComponent('g x')}/members/bob`), 400, 'group "g x"');

    // nothing of it was stored
    assert.equal(await redis.exists(stack.keys.presence(alice)), 0, 'no record for a refused heartbeat');
    assert.equal(await redis.exists('ct:a b'), 0);
    const stray = [];
    for (const pattern of ['*a b*', `*${dev65}*`, '*g x*', '*busy*']) stray.push(...(await redis.keys(pattern)));
    assert.deepEqual(stray, []);

    // and the service still works
    await h.heartbeat(alice, { device: 'phone' });
  });

  test('401 on a bad signature, an expired token, alg none, a missing token', async () => {
    const alice = uid('alice');
    const secret = stack.secret;
    const bad = {
      'no token': undefined,
      'wrong signature': mintToken({ sub: alice, secret, wrongSignature: true }),
      'expired': mintToken({ sub: alice, secret, expSeconds: -5 }),
      'alg none': mintToken({ sub: alice, alg: 'none' }),
      'HS512 (not the configured alg)': mintToken({ sub: alice, secret, alg: 'HS512' }),
      'no exp': mintToken({ sub: alice, secret, omitExp: true }),
      'invalid sub': mintToken({ sub: 'a b', secret }),
      'garbage': 'not.a.token',
    };
    for (const [what, token] of Object.entries(bad)) {
      const api = stack.api(null).withToken(token);
      assertError(await api.post('/v1/heartbeat', { device: 'phone' }), 401, `heartbeat, ${what}`);
      assertError(await api.get(`/v1/presence?users=${alice}`), 401, `presence, ${what}`);
      assertError(await api.post('/v1/offline', {}), 401, `offline, ${what}`);
    }
    const noScheme = await request(`${stack.sendUrl}/v1/heartbeat`, {
      method: 'POST',
      headers: { authorization: mintToken({ sub: alice, secret }) },
    });
    assertError(noScheme, 401, 'token without "Bearer"');
    assert.equal(await redis.exists(stack.keys.presence(alice)), 0, 'no refused request was stored');
    // an admin token is only for graph calls of a valid signature
    assertError(await stack.api(null).withToken(mintToken({ sub: 'admin', admin: true, secret, wrongSignature: true })).put(`/v1/users/${alice}/contacts/bob`), 401, 'forged admin');
  });

  test('403 on graph calls without the admin role', async () => {
    const alice = uid('alice');
    const bob = uid('bob');
    const a = stack.api(alice);
    assertError(await a.put(`/v1/users/${alice}/contacts/${bob}`), 403, 'PUT contact');
    assertError(await a.del(`/v1/users/${alice}/contacts/${bob}`), 403, 'DELETE contact');
    assertError(await a.put(`/v1/groups/g-${run}/members/${alice}`), 403, 'PUT member');
    assertError(await a.del(`/v1/groups/g-${run}/members/${alice}`), 403, 'DELETE member');
    assertError(await a.get(`/v1/groups/g-${run}/members`), 403, 'GET members');
    const other = stack.api(alice, { claims: { role: 'user' } });
    assertError(await other.put(`/v1/users/${alice}/contacts/${bob}`), 403, 'role user');
    assert.equal(await redis.exists(`ct:${alice}`), 0, 'the refused share was not stored');
    await h.heartbeat(alice, { device: 'phone' });
    assert.equal((await h.read(bob, alice)).status, 'offline', 'bob still may not watch alice');
  });

  test('404 and 405 on unknown paths and methods', async () => {
    const a = stack.api(uid('alice'));
    assertError(await a.get('/v1/nope'), 404, 'unknown path');
    assertError(await a.get('/v1/heartbeat'), 405, 'GET heartbeat');
    assertError(await a.put('/v1/presence?users=x'), 405, 'PUT presence');
  });

  test('413 on an oversized body', async () => {
    const alice = uid('alice');
    const body = JSON.stringify({ device: 'phone', pad: 'x'.repeat(70000) });
    const r = await stack.api(alice).post('/v1/heartbeat', undefined, { body, headers: { 'content-type': 'application/json' } });
    assertError(r, 413, 'a 70 kB heartbeat');
    assert.equal(await redis.exists(stack.keys.presence(alice)), 0);
    await h.heartbeat(alice, { device: 'phone' });
  });

  test('at most --max-query-users (1000) users per query', async () => {
    const viewer = uid('viewer');
    const users = Array.from({ length: 1000 }, (_, i) => `q${i}`);
    const ok = await h.query(viewer, users);
    assert.equal(ok.status, 200, ok.text.slice(0, 200));
    assert.equal(ok.body.users.length, 1000);
    assertError(await h.query(viewer, [...users, 'q1000']), 400, '1001 users');
  });
});

// ---- a stack with a short ttl and small limits ---------------------------

describe('presence-send with --heartbeat-ttl-ms 1000', () => {
  let stack;
  let h;
  let redis;
  before(async () => {
    if (process.env.PRESENCE_TEST_ENDPOINTS) return;
    stack = await startStack({
      sends: 1,
      sendArgs: ['--heartbeat-ttl-ms', '1000', '--max-query-users', '5', '--max-body-bytes', '1024'],
    });
    h = helpers(stack);
    redis = stack.redisClient();
  });
  after(() => stack?.stop());

  test('an expired heartbeat reads offline after the sweep, with one event', async (t) => {
    if (!stack) return t.skip('needs its own stack');
    const alice = uid('alice');
    const bob = uid('bob');
    await h.share(alice, bob);
    const sub = await stack.subscribeUser(alice);
    const v0 = (await h.read(bob, alice)).version;
    await h.heartbeat(alice, { device: 'phone' });
    assert.equal((await h.read(bob, alice)).status, 'online');
    await sub.barrier();
    assert.equal(sub.count, 1);

    const dev = parseDevice(await redis.hget(stack.keys.presence(alice), 'd:phone'));
    assert.equal(dev.kind, 'http');
    assert.equal(dev.deadline - dev.seen, 1000, 'deadline = last heartbeat + ttl');
    await waitFor(async () => (await redisNowMs(redis)) > dev.deadline, 5000, 20, 'redis time past the deadline');

    const p = stack.partitionOf(alice);
    const r = await sweep(redis, p);
    assert.deepEqual(r, { owner: 1, users: 1, events: 1 });

    const e = await h.read(bob, alice);
    assert.equal(e.status, 'offline');
    assert.equal(e.version, v0 + 2);
    assert.equal(e.last_seen, dev.seen, 'last_seen is the last heartbeat');
    await sub.barrier();
    assert.equal(sub.count, 2, 'exactly one event for the expiry');
    const ev = sub.events()[1];
    assert.deepEqual([ev.kind, ev.user, ev.status, ev.last_seen, ev.version], [1, alice, 'offline', dev.seen, v0 + 2]);
    assert.equal(await redis.zscore(stack.keys.deadlinesOf(alice), alice), null, 'no deadline left');

    // a second sweep finds nothing and publishes nothing
    assert.deepEqual(await sweep(redis, p), { owner: 1, users: 0, events: 0 });
    await sub.barrier();
    assert.equal(sub.count, 2);
    assert.equal((await h.read(bob, alice)).version, v0 + 2);
  });

  test('the sweep leaves a device that is still heartbeating alone', async (t) => {
    if (!stack) return t.skip('needs its own stack');
    const alice = uid('alice');
    const bob = uid('bob');
    await h.share(alice, bob);
    await h.heartbeat(alice, { device: 'phone' });
    await h.heartbeat(alice, { device: 'laptop' });
    const phone = parseDevice(await redis.hget(stack.keys.presence(alice), 'd:phone'));
    await waitFor(async () => (await redisNowMs(redis)) > phone.deadline - 500, 5000, 20);
    // the laptop keeps going, the phone stops
    await waitFor(async () => {
      await h.heartbeat(alice, { device: 'laptop' });
      return (await redisNowMs(redis)) > phone.deadline;
    }, 5000, 100, 'past the phone deadline while the laptop heartbeats');
    await sweep(redis, stack.partitionOf(alice));
    assert.equal((await h.read(bob, alice)).status, 'online');
    const rec = await redis.hgetall(stack.keys.presence(alice));
    assert.equal(rec['d:phone'], undefined, 'the expired phone was removed');
    assert.ok(rec['d:laptop']);
  });

  test('limits follow the flags: --max-query-users 5, --max-body-bytes 1024', async (t) => {
    if (!stack) return t.skip('needs its own stack');
    const viewer = uid('viewer');
    assert.equal((await h.query(viewer, ['a', 'b', 'c', 'd', 'e'])).status, 200);
    assertError(await h.query(viewer, ['a', 'b', 'c', 'd', 'e', 'f']), 400, '6 users');
    const big = JSON.stringify({ device: 'phone', pad: 'x'.repeat(1100) });
    assertError(await stack.api(viewer).post('/v1/heartbeat', undefined, { body: big, headers: { 'content-type': 'application/json' } }), 413, '1.1 kB body');
  });
});

// ---- Redis outage and shutdown --------------------------------------------

describe('presence-send and its Redis', () => {
  let stack;
  let h;
  before(async () => {
    if (process.env.PRESENCE_TEST_ENDPOINTS) return;
    stack = await startStack({ sends: 1 });
    h = helpers(stack);
  });
  after(() => stack?.stop());

  test('Redis killed: /readyz 503; restarted on the same port: ready and heartbeats work again', async (t) => {
    if (!stack) return t.skip('needs its own stack');
    const alice = uid('alice');
    const bob = uid('bob');
    await h.share(alice, bob);
    await h.heartbeat(alice, { device: 'phone' });
    const pid = stack.send.pid;

    await stack.redis.kill9();
    await waitFor(async () => (await httpStatus(stack.send.port, '/readyz')) === 503, 10000, 50, '/readyz 503 while Redis is down');
    assert.equal(await httpStatus(stack.send.port, '/healthz'), 200, 'the process itself is up');
    const during = await stack.api(alice).post('/v1/heartbeat', { device: 'phone' });
    assert.ok(during.status >= 500, `a heartbeat during the outage fails: ${during.status}`);

    await stack.redis.restart();
    await waitFor(async () => (await httpStatus(stack.send.port, '/readyz')) === 200, 15000, 50, '/readyz 200 after the restart');
    // The restarted redis is empty (no persistence): share again, then heartbeat.
    await waitFor(async () => (await stack.adminApi().put(`/v1/users/${alice}/contacts/${bob}`)).status === 204, 5000, 50);
    await h.heartbeat(alice, { device: 'phone' });
    assert.equal((await h.read(bob, alice)).status, 'online');
    assert.equal(stack.send.pid, pid);
    assert.equal(stack.send.running, true, 'presence-send was not restarted');
  });

  test('SIGTERM: presence-send exits with code 0', async (t) => {
    if (!stack) return t.skip('needs its own stack');
    await h.heartbeat(uid('alice'), { device: 'phone' });
    assert.equal(await stack.send.stop(), 0, `exit; log:\n${stack.send.logTail()}`);
  });
});
