// scenarios.test.mjs: one flow a user would see per approach and variation of
// the design (DESIGN §3, §4, §8), end to end against a running stack: real
// redis-server, presence-send, presence-fanout and presence-receive, clients
// on HTTP and WebSockets.
//
// Run: PR_BIN_DIR=build/bin node --test --test-concurrency=1 tests/integration/scenarios.test.mjs
// With PRESENCE_TEST_ENDPOINTS set (see lib/scenario_stack.mjs) the tests run
// against a stack that is already running; those that need other modes or
// kill processes skip there.
//
// "Nothing arrived" is asserted with a barrier, never by sleeping: either a
// later change of the same user (same partition, same fanout owner, same
// order) that must arrive after anything earlier, or a ping on the same
// connection answered after every delivery the instance had processed.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startScenarioStack, EXTERNAL, uid, framesAbout, waitPresence, pingBarrier, snapshotEntry, every,
} from './lib/scenario_stack.mjs';
import { waitFor, delay } from './lib/wait.mjs';
import { subscribe } from './lib/redis.mjs';
import { request } from './lib/http.mjs';

const NEEDS_OWN = 'needs a stack started by the test (other modes, short ttl, or killing a process); PRESENCE_TEST_ENDPOINTS is set';

/** Frames about `user` with index in [from, to) of client.messages. */
const between = (client, user, from, to = client.messages.length) =>
  client.messages.slice(from, to).filter((m) => m && m.type === 'presence' && m.user === user);

const indexOf = (client, frame) => client.messages.indexOf(frame);

async function status204(res, what) {
  assert.equal(res.status, 204, `${what}: ${res.status} ${res.text}`);
}

/** GET /v1/presence?users=... as `viewer`; returns the entry of `user`. */
async function presenceOf(s, viewer, user) {
  const res = await s.api(viewer).get(`/v1/presence?users=${encodeURIComponent(user)}`);
  assert.equal(res.status, 200, res.text);
  return res.body.users.find((u) => u.user === user);
}

// ---- one stack for the server-graph, changes-only scenarios ------------------

describe('server graph, only changes broadcast (approaches 2, 3, 4, 5 and the variations)', () => {
  let s;
  let hbEvery; // how often an HTTP device heartbeats to stay alive
  before(async () => {
    s = await startScenarioStack({
      sends: 1, fanouts: 1, receives: 2, smallGroupMax: 3, heartbeatTtlMs: 1000, leaveGraceMs: 1000,
    });
    hbEvery = Math.min(250, s.cfg.heartbeatTtlMs / 4);
  });
  after(() => s?.stop());

  test('approach 2: a contact who is shared with sees the changes; a non-contact sees nothing', async () => {
    const [alice, bob, carol] = ['s2-alice', 's2-bob', 's2-carol'].map(uid);
    await s.share(bob, alice); // bob shares his presence with alice
    const a = await s.ws(alice, { device: 'laptop', receive: 0 });
    const c = await s.ws(carol, { device: 'laptop', receive: 0 });
    const b = await s.ws(bob, { device: 'phone', receive: 1 });
    assert.deepEqual(b.messages[0], { type: 'hello', user: bob, device: 'phone', heartbeat_ms: 20000 });

    const on = await waitPresence(a, bob, (m) => m.status === 'online');
    assert.equal(on.last_seen, null);
    b.send({ type: 'status', status: 'idle' });
    const idle = await waitPresence(a, bob, (m) => m.status === 'idle');
    assert.equal(idle.version, on.version + 1);

    // alice (same instance as carol) got both; a ping on carol's socket now
    // comes back after anything fanout had sent her
    await pingBarrier(c);
    assert.deepEqual(framesAbout(c, bob), [], 'carol is not a contact of bob');
    assert.equal(snapshotEntry(c, bob), undefined);
    // the direction matters: alice did not share with bob
    assert.equal(snapshotEntry(b, alice), undefined, 'bob may not watch alice');
    assert.equal((await presenceOf(s, bob, alice)).version, 0);
    // queries are filtered the same way
    assert.deepEqual(await presenceOf(s, carol, bob), { user: bob, status: 'offline', last_seen: null, version: 0 });
    assert.equal((await presenceOf(s, alice, bob)).status, 'idle');
  });

  test('approach 3: the snapshot on connect shows the current status, then changes are pushed', async () => {
    const [alice, bob] = ['s3-alice', 's3-bob'].map(uid);
    await s.share(bob, alice);
    const b = await s.ws(bob, { device: 'phone', receive: 1 });
    b.send({ type: 'status', status: 'dnd' });
    await waitFor(async () => (await presenceOf(s, bob, bob)).status === 'dnd', 3000, 25, 'bob dnd');

    const a = await s.ws(alice, { device: 'laptop', receive: 0 });
    assert.equal(a.messages[0].type, 'hello');
    assert.equal(a.messages[1].type, 'snapshot');
    const snap = snapshotEntry(a, bob);
    assert.ok(snap, `bob in alice's snapshot: ${JSON.stringify(a.messages[1])}`);
    assert.equal(snap.status, 'dnd');
    assert.equal(snap.last_seen, null);
    assert.ok(snap.version >= 2, `version ${snap.version}`);

    b.send({ type: 'status', status: 'none' });
    const pushed = await waitPresence(a, bob, (m) => m.version > snap.version);
    assert.equal(pushed.status, 'online');
    assert.equal(pushed.version, snap.version + 1);
    assert.ok(indexOf(a, pushed) > 1, 'the push comes after the snapshot');
  });

  test('approach 4: polling with ETag: 200, then 304 while unchanged, 200 with a new ETag after a change', async () => {
    const [alice, bob] = ['s4-alice', 's4-bob'].map(uid);
    await s.share(bob, alice);
    const b = await s.ws(bob, { device: 'phone', receive: 1 });
    const q = `/v1/presence?users=${bob}`;
    const first = await waitFor(async () => {
      const r = await s.api(alice).get(q);
      return r.status === 200 && r.body.users[0].status === 'online' && r;
    }, 3000, 25, 'bob online');
    const etag = first.headers.etag;
    assert.ok(etag, 'an ETag');
    assert.deepEqual(first.body.users[0], { user: bob, status: 'online', last_seen: null, version: first.body.users[0].version });

    for (let i = 0; i < 3; i++) {
      const again = await s.api(alice).get(q, { headers: { 'if-none-match': etag } });
      assert.equal(again.status, 304, `poll ${i}`);
      assert.equal(again.text, '');
    }
    // a different tag is not a match
    assert.equal((await s.api(alice).get(q, { headers: { 'if-none-match': '"nope"' } })).status, 200);

    b.send({ type: 'status', status: 'idle' });
    const changed = await waitFor(async () => {
      const r = await s.api(alice).get(q, { headers: { 'if-none-match': etag } });
      return r.status === 200 && r;
    }, 3000, 25, 'a 200 after the change');
    assert.equal(changed.body.users[0].status, 'idle');
    assert.equal(changed.body.users[0].version, first.body.users[0].version + 1);
    assert.ok(changed.headers.etag && changed.headers.etag !== etag, `new ETag ${changed.headers.etag} vs ${etag}`);
    assert.equal((await s.api(alice).get(q, { headers: { 'if-none-match': changed.headers.etag } })).status, 304);
  });

  test('approach 5: repeated identical heartbeats publish nothing and push nothing to watchers', async () => {
    const [alice, bob] = ['s5a-alice', 's5a-bob'].map(uid);
    await s.share(bob, alice);
    const a = await s.ws(alice, { receive: 0 });
    const sub = await subscribe(s.redisAddr, s.keys.eventsOf(bob));
    try {
      const hb = async (status) => status204(await s.api(bob).post('/v1/heartbeat', { device: 'phone', status }), 'heartbeat');
      await hb('online');
      const on = await waitPresence(a, bob, (m) => m.status === 'online');
      const mark = a.messages.length;
      for (let i = 0; i < 8; i++) await hb('online'); // within the ttl: nothing changes
      await hb('idle'); // the marker: a change, published after the repeats
      const idle = await waitPresence(a, bob, (m) => m.status === 'idle');
      assert.deepEqual(between(a, bob, mark, indexOf(a, idle) + 1), [idle], 'only the change was pushed');
      assert.equal(idle.version, on.version + 1);
      await sub.barrier();
      const evs = sub.events().filter((e) => e.user === bob);
      assert.deepEqual(evs.map((e) => [e.status, e.version]), [['online', on.version], ['idle', idle.version]],
        'one event per change on ev:{pN}');
    } finally {
      await sub.close();
    }
  });

  test('approach 5: stopping heartbeats yields exactly one offline push within ttl + sweep interval + 1 s', async (t) => {
    if (s.external) return t.skip(NEEDS_OWN);
    const [alice, bob] = ['s5b-alice', 's5b-bob'].map(uid);
    await s.share(bob, alice);
    const a = await s.ws(alice, { receive: 0 });
    let lastSent = 0;
    const stop = every(hbEvery, async () => {
      lastSent = Date.now();
      await status204(await s.api(bob).post('/v1/heartbeat', { device: 'phone' }), 'heartbeat');
    });
    let errors;
    try {
      const on = await waitPresence(a, bob, (m) => m.status === 'online');
      // kept alive by the heartbeats for longer than the ttl
      await waitFor(() => Date.now() - a.times[indexOf(a, on)] > s.cfg.heartbeatTtlMs * 1.5, 5000, 50);
      assert.deepEqual(framesAbout(a, bob), [on], 'no flapping while heartbeating');
    } finally {
      errors = await stop();
    }
    assert.deepEqual(errors, []);
    const bound = s.cfg.heartbeatTtlMs + s.cfg.sweepIntervalMs + 1000;
    const off = await waitPresence(a, bob, (m) => m.status === 'offline', bound + 2000);
    const took = a.times[indexOf(a, off)] - lastSent;
    t.diagnostic(`offline pushed ${took} ms after the last heartbeat (ttl ${s.cfg.heartbeatTtlMs} ms)`);
    assert.ok(took <= bound, `offline after ${took} ms > ${bound} ms`);
    assert.ok(took >= s.cfg.heartbeatTtlMs - 100, `not before the ttl (${took} ms)`);
    assert.equal(typeof off.last_seen, 'number');
    // the marker: bob comes back; everything before it has arrived
    await status204(await s.api(bob).post('/v1/heartbeat', { device: 'phone' }), 'heartbeat');
    const back = await waitPresence(a, bob, (m) => m.version > off.version);
    assert.equal(back.status, 'online');
    assert.deepEqual(between(a, bob, 0, indexOf(a, back)).map((m) => m.status), ['online', 'offline'],
      'exactly one offline');
    await status204(await s.api(bob).post('/v1/offline', {}), 'offline');
  });

  test('1-1 and small groups: co-members see each other; a large group makes nobody a watcher', async () => {
    const [alice, bob, carol] = ['sg-alice', 'sg-bob', 'sg-carol'].map(uid);
    const small = uid('sg-small');
    const large = uid('sg-large');
    const max = s.cfg.smallGroupMax;
    await s.addMembers(small, alice, bob, carol); // 3 members: small when max >= 3
    assert.ok(max >= 3);
    const lg = Array.from({ length: max + 1 }, (_, i) => uid(`sg-x${i}`)); // more than max: large
    await s.addMembers(large, ...lg);
    const [x1, x2] = lg;
    const xw = uid('sg-xw');
    await s.share(x2, xw); // a 1-1 contact of x2, next to x1 on the same instance

    const a = await s.ws(alice, { receive: 0 });
    const c = await s.ws(carol, { receive: 1 });
    const b = await s.ws(bob, { receive: 1 });
    for (const w of [a, c]) await waitPresence(w, bob, (m) => m.status === 'online');
    // bob connected last: his snapshot has both co-members
    assert.equal(snapshotEntry(b, alice)?.status, 'online');
    assert.equal(snapshotEntry(b, carol)?.status, 'online');
    b.send({ type: 'status', status: 'dnd' });
    for (const w of [a, c]) await waitPresence(w, bob, (m) => m.status === 'dnd');
    assert.equal((await presenceOf(s, alice, bob)).status, 'dnd');

    const w1 = await s.ws(x1, { receive: 0 });
    const ww = await s.ws(xw, { receive: 0 });
    const w2 = await s.ws(x2, { receive: 1 });
    await waitPresence(ww, x2, (m) => m.status === 'online');
    w2.send({ type: 'status', status: 'idle' });
    await waitPresence(ww, x2, (m) => m.status === 'idle');
    await pingBarrier(w1); // same instance as the contact that got both
    assert.deepEqual(framesAbout(w1, x2), [], 'no pushes through a large group');
    assert.equal(snapshotEntry(w2, x1), undefined, 'no snapshot entry through a large group');
    assert.deepEqual(await presenceOf(s, x1, x2), { user: x2, status: 'offline', last_seen: null, version: 0 });
  });

  test('multi-device: a user on HTTP and WebSocket stays online until both devices are gone', async () => {
    const [alice, bob] = ['md-alice', 'md-bob'].map(uid);
    await s.share(alice, bob);
    const w = await s.ws(bob, { receive: 0 });
    const hb = async (status) => status204(await s.api(alice).post('/v1/heartbeat', status ? { device: 'phone', status } : { device: 'phone' }), 'heartbeat');
    let stop = every(hbEvery, () => hb());
    try {
      let laptop = await s.ws(alice, { device: 'laptop', receive: 1 });
      const on = await waitPresence(w, alice, (m) => m.status === 'online');

      // 1. the WebSocket goes first: alice stays online on her phone
      await laptop.close();
      await waitFor(async () => (await s.r.hget(s.keys.presence(alice), 'd:laptop')) === null,
        s.cfg.leaveGraceMs + 3000, 25, 'the laptop removed after the leave grace');
      await hb('idle'); // marker
      const idle = await waitPresence(w, alice, (m) => m.status === 'idle');
      assert.deepEqual(between(w, alice, indexOf(w, on) + 1, indexOf(w, idle)), [], 'no offline while the phone lives');
      assert.equal(idle.version, on.version + 1);
      // ... and goes offline when the phone goes too
      assert.deepEqual(await stop(), []);
      await status204(await s.api(alice).post('/v1/offline', { device: 'phone' }), 'offline');
      const off1 = await waitPresence(w, alice, (m) => m.status === 'offline');
      assert.equal(off1.version, idle.version + 1);

      // 2. the other way round: the phone goes first, the laptop keeps her online
      stop = every(hbEvery, () => hb('online'));
      laptop = await s.ws(alice, { device: 'laptop', receive: 1 });
      const on2 = await waitPresence(w, alice, (m) => m.version > off1.version);
      assert.equal(on2.status, 'online');
      assert.deepEqual(await stop(), []);
      await status204(await s.api(alice).post('/v1/offline', { device: 'phone' }), 'offline');
      assert.equal((await presenceOf(s, bob, alice)).status, 'online');
      laptop.send({ type: 'status', status: 'idle' }); // marker
      const idle2 = await waitPresence(w, alice, (m) => m.version > on2.version);
      assert.equal(idle2.status, 'idle', 'no offline while the laptop is connected');
      assert.equal(idle2.version, on2.version + 1);
      const closedAt = Date.now();
      await laptop.close();
      const off2 = await waitPresence(w, alice, (m) => m.version > idle2.version, s.cfg.leaveGraceMs + 3000);
      assert.equal(off2.status, 'offline');
      const took = w.times[indexOf(w, off2)] - closedAt;
      assert.ok(took <= s.cfg.leaveGraceMs + 1000, `offline ${took} ms after the last device closed`);
    } finally {
      await stop();
    }
  });

  test('invisible: watchers see offline, the user reads invisible; back to none: online again', async () => {
    const [alice, bob] = ['iv-alice', 'iv-bob'].map(uid);
    await s.share(alice, bob);
    const w = await s.ws(bob, { receive: 0 });
    const a = await s.ws(alice, { receive: 1 });
    const on = await waitPresence(w, alice, (m) => m.status === 'online');

    a.send({ type: 'status', status: 'invisible' });
    const off = await waitPresence(w, alice, (m) => m.version > on.version);
    assert.equal(off.status, 'offline');
    assert.equal(typeof off.last_seen, 'number');
    assert.equal((await presenceOf(s, alice, alice)).status, 'invisible');
    const seen = await presenceOf(s, bob, alice);
    assert.equal(seen.status, 'offline');
    assert.equal(seen.version, off.version);
    // still invisible after another status frame: activity changes are not leaked
    a.send({ type: 'status', status: 'idle' });
    await waitFor(async () => (await s.r.hget(s.keys.presence(alice), 'rs')) === 'idle', 3000, 25, 'idle stored');
    a.send({ type: 'status', status: 'online' });

    a.send({ type: 'status', status: 'none' });
    const back = await waitPresence(w, alice, (m) => m.version > off.version);
    assert.equal(back.status, 'online');
    assert.equal(back.last_seen, null);
    assert.equal(back.version, off.version + 1, 'nothing was visible while invisible');
    assert.equal((await presenceOf(s, bob, alice)).status, 'online');
    assert.equal((await presenceOf(s, alice, alice)).status, 'online');
  });

  test('reconnect within the leave grace: no offline/online pair, version unchanged', async (t) => {
    const [alice, bob] = ['rc-alice', 'rc-bob'].map(uid);
    await s.share(alice, bob);
    const w = await s.ws(bob, { receive: 0 });
    let a = await s.ws(alice, { device: 'phone', receive: 1 });
    const on = await waitPresence(w, alice, (m) => m.status === 'online');
    const v0 = (await presenceOf(s, bob, alice)).version;
    assert.equal(v0, on.version);

    const droppedAt = Date.now();
    await a.terminate(); // the network drops (no close handshake)
    a = await s.ws(alice, { device: 'phone', receive: 1 });
    const gap = Date.now() - droppedAt;
    t.diagnostic(`reconnected ${gap} ms after the drop (grace ${s.cfg.leaveGraceMs} ms)`);
    assert.ok(gap < s.cfg.leaveGraceMs, 'reconnected within the grace');
    // Nothing observable marks the end of a grace that finds the device back,
    // so let the grace (and a margin) pass, then check.
    await delay(s.cfg.leaveGraceMs + 500);
    const now = await presenceOf(s, bob, alice);
    assert.equal(now.status, 'online');
    assert.equal(now.version, v0, 'version unchanged');
    a.send({ type: 'status', status: 'idle' }); // marker
    const idle = await waitPresence(w, alice, (m) => m.version > v0);
    assert.equal(idle.status, 'idle');
    assert.equal(idle.version, v0 + 1, 'no change in between');
    assert.deepEqual(between(w, alice, 0, indexOf(w, idle)), [on], 'no offline/online pair');
  });
});

// ---- approach 1: client graph, every heartbeat relayed -----------------------

describe('approach 1: client-held graph, heartbeats relayed', () => {
  let s;
  const INTERVAL = 200; // the clients' heartbeat interval in this scenario
  before(async () => {
    if (EXTERNAL) return;
    s = await startScenarioStack({
      sends: 1, fanouts: 1, receives: 1, graph: 'client', broadcast: 'heartbeats', heartbeatTtlMs: 1000,
      leaveGraceMs: 500,
    });
  });
  after(() => s?.stop());

  const aboutBob = (a, bob) => a.messages.filter((m) => m && (m.type === 'presence' || m.type === 'heartbeat') && m.user === bob);

  /** Waits until alice has n frames about bob; on failure says what she got and what receive dropped. */
  async function expectRelays(a, bob, n) {
    try {
      await waitFor(() => aboutBob(a, bob).length >= n, 2000, 10, `alice gets all ${n} heartbeats of bob`);
    } catch (e) {
      const metrics = (await request(`${s.receiveUrls[0]}/metrics`)).text;
      const drops = metrics.split('\n').filter((l) => /^recv_(drops_total|deliveries_total)/.test(l)).join(', ');
      e.message += `; alice got ${JSON.stringify(aboutBob(a, bob))}; receive metrics: ${drops}`;
      throw e;
    }
  }

  test('HTTP heartbeats naming alice in `to` are each relayed to her; offline by absence, then by ttl', async (t) => {
    if (!s) return t.skip(NEEDS_OWN);
    const [alice, bob] = ['c1-alice', 'c1-bob'].map(uid);
    const a = await s.ws(alice, { receive: 0 });
    const sub = await subscribe(s.redisAddr, s.keys.eventsOf(bob));
    const N = 5;
    let lastSent = 0;
    for (let i = 0; i < N; i++) {
      if (i > 0) await delay(INTERVAL); // the client's own pacing
      lastSent = Date.now();
      await status204(await s.api(bob).post('/v1/heartbeat', { device: 'phone', to: [alice] }), `heartbeat ${i}`);
    }
    // every heartbeat is one event on ev:{pN}: kind 1 for the first (a change), kind 2 relays after
    await sub.barrier();
    const evs = sub.events().filter((e) => e.user === bob);
    await sub.close();
    assert.deepEqual(evs.map((e) => [e.kind, e.status, e.version, e.to]),
      [[1, 'online', 1, [alice]], ...new Array(N - 1).fill([2, 'online', 1, [alice]])]);
    // ... and alice must get each of them (data-model.md: a receiver must not
    // drop a relay for not being newer)
    await expectRelays(a, bob, N);
    const frames = aboutBob(a, bob);
    // the first heartbeat is a change (a presence frame); the others relays of
    // the unchanged status: {"type":"heartbeat",...} repeating its version
    assert.deepEqual(frames[0], { type: 'presence', user: bob, status: 'online', last_seen: null, version: 1 });
    for (const f of frames.slice(1, N)) {
      assert.deepEqual(f, { type: 'heartbeat', user: bob, status: 'online', last_seen: null, version: 1 });
    }
    const lastRelayAt = a.times[indexOf(a, frames[N - 1])];

    // bob stops: no relay arrives within the heartbeat interval (alice can infer
    // offline by absence), and the ttl's offline follows
    const bound = s.cfg.heartbeatTtlMs + s.cfg.sweepIntervalMs + 1000;
    const off = await waitPresence(a, bob, (m) => m.status === 'offline', bound + 2000);
    const offAt = a.times[indexOf(a, off)];
    assert.ok(offAt - lastRelayAt > 2 * INTERVAL, `silence before the offline: ${offAt - lastRelayAt} ms`);
    assert.deepEqual(aboutBob(a, bob).slice(N), [off], 'nothing between the last relay and the offline');
    assert.ok(offAt - lastSent <= bound, `offline ${offAt - lastSent} ms after the last heartbeat`);
  });

  test('WebSocket heartbeat frames naming alice are each relayed to her', async (t) => {
    if (!s) return t.skip(NEEDS_OWN);
    const [alice, bob] = ['c1w-alice', 'c1w-bob'].map(uid);
    const a = await s.ws(alice, { receive: 0 });
    const b = await s.ws(bob, { device: 'phone', receive: 0 });
    const N = 5;
    for (let i = 0; i < N; i++) {
      if (i > 0) await delay(INTERVAL);
      b.send({ type: 'heartbeat', to: [alice] });
    }
    await pingBarrier(b); // no error frame for the heartbeats
    assert.deepEqual(b.messages.filter((m) => m.type === 'error'), []);
    await expectRelays(a, bob, N);
    // bob's connection made him online before he named alice: every frame she
    // gets is a relay of that status
    for (const f of aboutBob(a, bob)) {
      assert.deepEqual(f, { type: 'heartbeat', user: bob, status: 'online', last_seen: null, version: 1 });
    }
    const closedAt = Date.now();
    await b.close();
    const off = await waitPresence(a, bob, (m) => m.status === 'offline', s.cfg.leaveGraceMs + 3000);
    assert.ok(a.times[indexOf(a, off)] - closedAt <= s.cfg.leaveGraceMs + 1000);
  });

  test('`to` names the only recipients: a user not named gets nothing', async (t) => {
    if (!s) return t.skip(NEEDS_OWN);
    const [alice, bob, carol] = ['c1n-alice', 'c1n-bob', 'c1n-carol'].map(uid);
    const a = await s.ws(alice, { receive: 0 });
    const c = await s.ws(carol, { receive: 0 });
    await status204(await s.api(bob).post('/v1/heartbeat', { device: 'phone', status: 'online', to: [alice] }), 'heartbeat');
    await waitPresence(a, bob, (m) => m.status === 'online');
    await status204(await s.api(bob).post('/v1/heartbeat', { device: 'phone', status: 'idle', to: [alice] }), 'heartbeat');
    await waitPresence(a, bob, (m) => m.status === 'idle');
    await pingBarrier(c);
    assert.deepEqual(framesAbout(c, bob), []);
    await status204(await s.api(bob).post('/v1/offline', {}), 'offline');
  });
});

// ---- crashes -----------------------------------------------------------------

describe('a receive instance killed with kill -9', () => {
  test('its users read offline on the other instance within its lease ttl + 2 s, one offline frame each', async (t) => {
    if (EXTERNAL) return t.skip(NEEDS_OWN);
    const s = await startScenarioStack({ sends: 1, fanouts: 1, receives: 2, leaseTtlMs: 2000 });
    try {
      const watcher = uid('kr-watcher');
      const users = ['kr-u1', 'kr-u2', 'kr-u3'].map(uid);
      for (const u of users) await s.share(u, watcher);
      const w = await s.ws(watcher, { receive: 0 });
      for (const u of users) await s.ws(u, { device: 'phone', receive: 1 });
      await s.ws(users[0], { device: 'tablet', receive: 1 }); // two devices on the doomed instance
      const on = {};
      for (const u of users) on[u] = await waitPresence(w, u, (m) => m.status === 'online');

      const killedAt = Date.now();
      await s.receives[1].kill9();
      const bound = s.cfg.leaseTtlMs + 2000;
      const off = {};
      for (const u of users) {
        off[u] = await waitPresence(w, u, (m) => m.status === 'offline', bound + 3000);
        const took = w.times[indexOf(w, off[u])] - killedAt;
        t.diagnostic(`${u}: offline ${took} ms after kill -9 (lease ${s.cfg.leaseTtlMs} ms)`);
        assert.ok(took <= bound, `${u} offline after ${took} ms > ${bound} ms`);
        assert.equal(off[u].version, on[u].version + 1);
      }
      // the marker: each comes back over HTTP; before that, exactly one offline each
      for (const u of users) await status204(await s.api(u).post('/v1/heartbeat', { device: 'web' }), 'heartbeat');
      for (const u of users) {
        const back = await waitPresence(w, u, (m) => m.version > off[u].version);
        assert.equal(back.status, 'online');
        assert.equal(back.version, off[u].version + 1, 'no other change in between');
        assert.deepEqual(between(w, u, 0, indexOf(w, back)).map((m) => m.status), ['online', 'offline'], u);
      }
    } finally {
      await s.stop();
    }
  });
});

describe('a fanout worker killed with kill -9 (two workers)', () => {
  test('changes made after the kill on its partitions reach the watchers after the takeover', async (t) => {
    if (EXTERNAL) return t.skip(NEEDS_OWN);
    const s = await startScenarioStack({ sends: 1, fanouts: 2, receives: 1, ownerLeaseMs: 2000 });
    try {
      const P = s.partitions;
      const [dead, alive] = s.workerIds;
      const ownKeys = Array.from({ length: P }, (_, p) => `own:{p${p}}`);
      const owners = await waitFor(async () => {
        const o = await s.r.mget(...ownKeys);
        return o.every((x) => x === dead || x === alive) && o.includes(dead) && o.includes(alive) && o;
      }, 4 * s.cfg.ownerLeaseMs, 25, 'both workers own partitions');
      const deadParts = owners.map((o, p) => (o === dead ? p : -1)).filter((p) => p >= 0);
      const aliveParts = owners.map((o, p) => (o === alive ? p : -1)).filter((p) => p >= 0);
      const userIn = (p, prefix) => {
        for (let i = 0; ; i++) if (s.partitionOf(uid(`${prefix}${i}`)) === p) return uid(`${prefix}${i}`);
      };
      const lost = deadParts.slice(0, 3).map((p) => userIn(p, 'kf-d'));
      const kept = userIn(aliveParts[0], 'kf-a'); // a control on the surviving worker
      const watcher = uid('kf-watcher');
      for (const u of [...lost, kept]) await s.share(u, watcher);
      const w = await s.ws(watcher, { receive: 0 });
      const conns = {};
      const on = {};
      for (const u of [...lost, kept]) {
        conns[u] = await s.ws(u, { device: 'phone', receive: 0 });
        on[u] = await waitPresence(w, u, (m) => m.status === 'online');
      }

      const killedAt = Date.now();
      await s.fanouts[0].kill9();
      for (const u of [...lost, kept]) conns[u].send({ type: 'status', status: 'idle' });
      for (const u of [...lost, kept]) conns[u].send({ type: 'status', status: 'dnd' });

      const kd = await waitPresence(w, kept, (m) => m.status === 'dnd', 3000);
      t.diagnostic(`surviving worker's partition: delivered ${w.times[indexOf(w, kd)] - killedAt} ms after the kill`);
      const bound = s.cfg.ownerLeaseMs + s.cfg.ownerLeaseMs / 3 + 2000;
      for (const u of lost) {
        const dnd = await waitPresence(w, u, (m) => m.status === 'dnd', bound + 3000);
        const took = w.times[indexOf(w, dnd)] - killedAt;
        t.diagnostic(`${u} (partition ${s.partitionOf(u)}): dnd delivered ${took} ms after the kill`);
        assert.ok(took <= bound, `${u}: ${took} ms > ${bound} ms`);
        assert.equal(dnd.version, Number(await s.r.hget(s.keys.presence(u), 'ver')), 'the latest version');
        assert.ok(dnd.version >= on[u].version + 2);
      }
      await waitFor(async () => (await s.r.mget(...ownKeys)).every((o) => o === alive), 2000, 25,
        'the survivor owns every partition');
    } finally {
      await s.stop();
    }
  });
});
