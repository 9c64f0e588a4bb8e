// fanout.test.mjs: presence-fanout against a real redis-server and the real
// binaries: partition ownership (split, takeover after kill -9, release on
// SIGTERM, no lease scan every tick when P is not a multiple of the workers),
// offline detection (sweeper and keyspace, with the measured lag), delivery to
// exactly the allowed watchers on two receive instances, nothing lost across a
// long fanout outage or a failed round (chg:{pN}), and the cleanup of a killed
// receive instance (retried at once after a failure; an instance back under
// the same id is kept). Tests that need presence-receive skip when it is not
// built.
//
// Run: node --test tests/integration/fanout.test.mjs   (PR_BIN_DIR=<build>/bin)
// The offline lag figures of docs/offline-detection.md are printed by the
// test "offline detection lag: sweeper vs keyspace" (FANOUT_LAG_DEVICES=N,
// FANOUT_LAG_BACKGROUND_KEYS=M other volatile keys in Redis).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  SERVICES, startStack, binDir, parseDevice, waitFor, connect, delay,
} from './lib/stack.mjs';

// presence-fanout serves only the ops routes, on --admin-listen.
SERVICES.fanout.args = (c) => [
  '--admin-listen', `127.0.0.1:${c.port}`,
  '--redis', c.redis,
  '--partitions', c.partitions,
  '--worker-id', `fanout-${c.index}-${c.stack.id}`,
  '--log-level', c.logLevel,
];

const P = 16;
const LEASE_MS = 1500; // --owner-lease-ms in these tests
const TICK_MS = LEASE_MS / 3; // the owner's tick (owner.c)
const fanoutArgs = ['--owner-lease-ms', LEASE_MS, '--batch-flush-ms', 2];
const hasReceive = () => fs.existsSync(path.join(binDir(), 'presence-receive'));
const NO_RECEIVE = 'presence-receive is not built (build/bin/presence-receive missing): skipped';

async function owners(redis, partitions = P) {
  const names = [];
  for (let p = 0; p < partitions; p++) names.push(`own:{p${p}}`);
  return redis.mget(...names);
}

const countOf = (list, v) => list.filter((x) => x === v).length;
const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];

async function metric(stack, name, labels = '') {
  const text = await (await fetch(`${stack.fanout.url}/metrics`)).text();
  const esc = `${name}${labels}`.replace(/[{}"]/g, (c) => `\\${c}`);
  const m = text.match(new RegExp(`^${esc} ([0-9.e+]+)$`, 'm'));
  return m ? Number(m[1]) : null;
}

/** A user id of partition p whose name starts with prefix. */
function userIn(stack, p, prefix) {
  for (let i = 0; ; i++) if (stack.partitionOf(`${prefix}${i}`) === p) return `${prefix}${i}`;
}

describe('partition ownership', () => {
  test('two workers split the partitions; kill -9 of one: the other owns all within the lease ttl and an HTTP device expiring meanwhile yields exactly one offline event', async (t) => {
    const stack = await startStack({
      partitions: P, fanouts: 2, fanoutArgs, sendArgs: ['--heartbeat-ttl-ms', '1000'],
    });
    try {
      const r = stack.redisClient();
      const [w0, w1] = stack.fanouts.map((f) => f.args[f.args.indexOf('--worker-id') + 1]);
      const split = await waitFor(async () => {
        const o = await owners(r);
        return countOf(o, w0) === P / 2 && countOf(o, w1) === P / 2 && o;
      }, 4 * LEASE_MS, 25, 'an even split');
      assert.equal(split.length, P);

      // a device on a partition of w0, due while nobody owns it
      const p = split.indexOf(w0);
      const user = userIn(stack, p, 'takeover-');
      const sub = await stack.subscribeUser(user);
      assert.equal((await stack.api(user).post('/v1/heartbeat', { device: 'phone' })).status, 204);
      await sub.waitForCount(1);
      const killedAt = Date.now();
      await stack.fanouts[0].kill9();

      const all = await waitFor(async () => countOf(await owners(r), w1) === P && Date.now(), LEASE_MS + TICK_MS + 1500, 25, 'takeover');
      t.diagnostic(`takeover: all ${P} partitions owned ${all - killedAt} ms after kill -9 (lease ${LEASE_MS} ms)`);
      assert.ok(all - killedAt <= LEASE_MS + TICK_MS + 500, `takeover took ${all - killedAt} ms`);

      await sub.waitForCount(2, 5000);
      // a few more sweep turns, then nothing else may have been published
      await waitFor(async () => (await r.zscore(stack.keys.deadlinesOf(user), user)) === null, 2000);
      await sub.barrier();
      const ev = sub.events();
      assert.deepEqual(ev.map((e) => e.status), ['online', 'offline']);
      assert.equal(await r.hget(stack.keys.presence(user), 'st'), 'offline');
    } finally {
      await stack.stop();
    }
  });

  test('P not a multiple of the workers: a worker left below ceil(P / workers) does not read every lease at each tick', async (t) => {
    const stack = await startStack({ partitions: P, fanouts: 3, sends: 0, fanoutArgs });
    try {
      const r = stack.redisClient();
      const ids = stack.fanouts.map((f) => f.args[f.args.indexOf('--worker-id') + 1]);
      // settled: every partition owned, nobody above ceil(16 / 3) = 6
      await waitFor(async () => {
        const o = await owners(r);
        return countOf(o, null) === 0 && ids.every((w) => countOf(o, w) <= 6);
      }, 8 * LEASE_MS, 25, 'a split of 16 over 3');
      await delay(6 * TICK_MS); // the first scans that find nothing are over
      // the scan's GETs (the lease scripts' GETs run inside Lua; no receive instance, no event here)
      const mon = await r.monitor();
      let n = 0;
      mon.on('monitor', (time, args, source) => {
        if (source !== 'lua' && String(args[0]).toLowerCase() === 'get' && String(args[1]).startsWith('own:')) n++;
      });
      await delay(4 * TICK_MS);
      mon.disconnect();
      const o = await owners(r);
      t.diagnostic(`partitions per worker ${ids.map((w) => countOf(o, w)).join('/')}: ${n} GETs in 4 ticks`);
      // every tick, 10 to 12 free-looking partitions per worker below 6: >= 40
      assert.ok(n < 30, `${n} GETs of own:{pN} in 4 ticks`);
    } finally {
      await stack.stop();
    }
  });

  test('SIGTERM: exit 0, its partitions are released and it leaves wk', async () => {
    const stack = await startStack({ partitions: P, fanouts: 1, fanoutArgs, sends: 0 });
    try {
      const r = stack.redisClient();
      const w = stack.fanout.args[stack.fanout.args.indexOf('--worker-id') + 1];
      await waitFor(async () => countOf(await owners(r), w) === P, 4 * LEASE_MS, 25, 'owns all');
      assert.ok((await r.zscore('wk', w)) !== null);
      assert.equal(await stack.fanout.stop(), 0);
      assert.deepEqual(await owners(r), new Array(P).fill(null));
      assert.equal(await r.zscore('wk', w), null);
    } finally {
      await stack.stop();
    }
  });
});

/**
 * n HTTP devices with a 1 s ttl heartbeat once and stop; returns the lag of
 * each offline event: its ts_ms minus the device's deadline (both Redis time).
 */
async function measureOfflineLag(stack, n, prefix, background) {
  const r = stack.redisClient();
  // other volatile keys (sessions, caches) that share Redis's expiry sampling
  for (let i = 0; i < background; i += 1000) {
    const pipe = r.pipeline();
    for (let j = i; j < Math.min(background, i + 1000); j++) pipe.set(`bg:${j}`, '1', 'PX', 3600000);
    await pipe.exec();
  }
  const users = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  const channels = [...new Set(users.map((u) => stack.keys.eventsOf(u)))];
  const sub = await stack.subscribe(channels);
  // deadlines spread over a second, so that they fall at every phase of the sweep
  await Promise.all(users.map(async (u, i) => {
    await delay((1000 * i) / n);
    const res = await stack.api(u).post('/v1/heartbeat', { device: 'd' });
    assert.equal(res.status, 204);
  }));
  const deadline = {};
  for (const u of users) deadline[u] = parseDevice(await r.hget(stack.keys.presence(u), 'd:d')).deadline;
  // keyspace mode may take far longer: wait up to 60 s and report what arrived
  await waitFor(() => sub.events().filter((e) => e.status === 'offline').length >= n, 60000, 25).catch(() => null);
  const lags = sub.events().filter((e) => e.status === 'offline').map((e) => e.ts_ms - deadline[e.user]).sort((a, b) => a - b);
  await sub.close();
  return lags;
}

const figures = (lags, n) =>
  lags.length === 0 ? `none of ${n} within 60 s`
    : `p50=${quantile(lags, 0.5)} ms p99=${quantile(lags, 0.99)} max=${lags[lags.length - 1]} ms (${lags.length} of ${n} within 60 s)`;

describe('offline detection', () => {
  for (const mode of ['sweeper', 'keyspace']) {
    test(`${mode}: an HTTP device with a 1 s ttl reads offline to its watcher within ttl + sweep interval + 1 s`, async (t) => {
      const stack = await startStack({
        partitions: P, fanouts: 1, receives: hasReceive() ? 1 : 0,
        fanoutArgs: [...fanoutArgs, '--offline', mode],
        sendArgs: ['--heartbeat-ttl-ms', '1000', '--offline', mode],
      });
      try {
        const r = stack.redisClient();
        await waitFor(async () => countOf(await owners(r), null) === 0, 4 * LEASE_MS, 25, 'owned');
        const user = `lag-${mode}`;
        let watcher = null;
        if (stack.receive) {
          assert.equal((await stack.adminApi().put(`/v1/users/${user}/contacts/watcher`)).status < 300, true);
          watcher = await stack.ws('watcher', 'laptop');
          await watcher.waitFor((m) => m.type === 'snapshot');
        }
        const sub = await stack.subscribeUser(user);
        assert.equal((await stack.api(user).post('/v1/heartbeat', { device: 'd' })).status, 204);
        const sentAt = Date.now();
        const dl = parseDevice(await r.hget(stack.keys.presence(user), 'd:d')).deadline;
        await sub.waitForCount(2, 5000);
        const off = sub.events()[1];
        assert.equal(off.status, 'offline');
        const bound = 1000 + 250 + 1000;
        if (watcher) {
          const f = await watcher.waitFor((m) => m.type === 'presence' && m.user === user && m.status === 'offline', bound);
          assert.equal(f.version, off.version);
          t.diagnostic(`${mode}: watcher read offline ${Date.now() - sentAt} ms after the last heartbeat`);
        } else {
          t.diagnostic(`${mode}: ${NO_RECEIVE}; checked on the event channel only`);
        }
        t.diagnostic(`${mode}: offline event ${off.ts_ms - dl} ms after the deadline (Redis clock)`);
        assert.ok(off.ts_ms - dl <= bound - 1000, `offline ${off.ts_ms - dl} ms late`);
        assert.ok(Date.now() - sentAt <= bound + 1000);
      } finally {
        await stack.stop();
      }
    });
  }

  test('offline detection lag: sweeper vs keyspace (figures for docs/offline-detection.md)', async (t) => {
    const n = Number(process.env.FANOUT_LAG_DEVICES) || 200;
    const background = Number(process.env.FANOUT_LAG_BACKGROUND_KEYS) || 0;
    const out = {};
    for (const mode of ['sweeper', 'keyspace']) {
      const stack = await startStack({
        partitions: P, fanouts: 1,
        fanoutArgs: [...fanoutArgs, '--offline', mode],
        sendArgs: ['--heartbeat-ttl-ms', '1000', '--offline', mode],
      });
      try {
        const r = stack.redisClient();
        await waitFor(async () => countOf(await owners(r), null) === 0, 4 * LEASE_MS, 25, 'owned');
        out[mode] = await measureOfflineLag(stack, n, `m-${mode}-`, background);
      } finally {
        await stack.stop();
      }
      const line = `offline lag ${mode}: ${n} devices, 1 s ttl, ${background} other volatile keys: ${figures(out[mode], n)}`;
      t.diagnostic(line);
      process.stdout.write(`# ${line}\n`);
    }
    assert.equal(out.sweeper.length, n, 'the sweeper expires every device');
    assert.ok(quantile(out.sweeper, 0.99) <= 250 + 250, 'sweeper p99 within a sweep interval (+ margin)');
  });
});

describe('delivery to receive instances', () => {
  test('a transition reaches exactly the allowed watchers on two receive instances, and nobody else', async (t) => {
    if (!hasReceive()) return t.skip(NO_RECEIVE);
    const stack = await startStack({ partitions: P, fanouts: 1, receives: 2, fanoutArgs });
    try {
      const admin = stack.adminApi();
      // bob watches alice by contact; carol by a small group; dave by nothing
      assert.ok((await admin.put('/v1/users/alice/contacts/bob')).status < 300);
      assert.ok((await admin.put('/v1/groups/g1/members/alice')).status < 300);
      assert.ok((await admin.put('/v1/groups/g1/members/carol')).status < 300);
      assert.ok((await admin.put('/v1/users/eve/contacts/dave')).status < 300);
      const url1 = (u, d) => stack.wsUrl(u, d).replace(stack.receiveUrl.replace(/^http/, 'ws'), stack.receives[1].url.replace(/^http/, 'ws'));
      const bob = await stack.ws('bob', 'b');
      const carol = await connect(url1('carol', 'c'));
      const dave0 = await stack.ws('dave', 'd0');
      const dave1 = await connect(url1('dave', 'd1'));
      const alice1 = await connect(url1('alice', 'other-device'));
      for (const c of [bob, carol, dave0, dave1, alice1]) await c.waitFor((m) => m.type === 'snapshot');

      await stack.api('alice').post('/v1/heartbeat', { device: 'phone', status: 'dnd' });
      const isAlice = (m) => m.type === 'presence' && m.user === 'alice' && m.status === 'dnd';
      await bob.waitFor(isAlice, 3000);
      await carol.waitFor(isAlice, 3000);
      await alice1.waitFor(isAlice, 3000); // the subject's own other device
      // a later event dave may see arrives on both of his instances: alice's never did
      await stack.api('eve').post('/v1/heartbeat', { device: 'x' });
      const isEve = (m) => m.type === 'presence' && m.user === 'eve' && m.status === 'online';
      await dave0.waitFor(isEve, 3000);
      await dave1.waitFor(isEve, 3000);
      for (const c of [dave0, dave1]) assert.equal(c.messages.filter((m) => m.type === 'presence' && m.user === 'alice').length, 0);
      for (const c of [bob, carol]) assert.equal(c.messages.filter((m) => m.type === 'presence' && m.user === 'eve').length, 0);
      assert.equal(bob.messages.filter(isAlice).length, 1);
    } finally {
      await stack.stop();
    }
  });

  test('a change published while its partition has no owner reaches the watcher after the takeover (chg catch-up)', async (t) => {
    if (!hasReceive()) return t.skip(NO_RECEIVE);
    const stack = await startStack({ partitions: P, fanouts: 2, receives: 1, fanoutArgs });
    try {
      const r = stack.redisClient();
      const [w0, w1] = stack.fanouts.map((f) => f.args[f.args.indexOf('--worker-id') + 1]);
      const o = await waitFor(async () => {
        const x = await owners(r);
        return countOf(x, w0) === P / 2 && countOf(x, w1) === P / 2 && x;
      }, 4 * LEASE_MS, 25, 'an even split');
      const user = userIn(stack, o.indexOf(w0), 'gap-');
      assert.ok((await stack.adminApi().put(`/v1/users/${user}/contacts/watcher`)).status < 300);
      const watcher = await stack.ws('watcher', 'w');
      await watcher.waitFor((m) => m.type === 'snapshot');
      await stack.fanouts[0].kill9();
      // published while nobody listens on the partition's channel
      assert.equal((await stack.api(user).post('/v1/heartbeat', { device: 'd', status: 'idle' })).status, 204);
      const f = await watcher.waitFor((m) => m.type === 'presence' && m.user === user && m.status === 'idle', LEASE_MS + TICK_MS + 2000);
      assert.equal(f.version, 1);
    } finally {
      await stack.stop();
    }
  });

  test('a fanout outage longer than its lease + 2 s loses nothing: the next worker delivers the change from chg:{pN}, then trims it', async (t) => {
    if (!hasReceive()) return t.skip(NO_RECEIVE);
    const stack = await startStack({ partitions: P, fanouts: 1, receives: 1, fanoutArgs, receiveArgs: ['--leave-grace-ms', 0] });
    try {
      const r = stack.redisClient();
      await waitFor(async () => countOf(await owners(r), null) === 0, 4 * LEASE_MS, 25, 'owned');
      assert.ok((await stack.adminApi().put('/v1/users/alice/contacts/bob')).status < 300);
      const bob = await stack.ws('bob', 'b');
      await bob.waitFor((m) => m.type === 'snapshot');
      const alice = await stack.ws('alice', 'phone');
      await bob.waitFor((m) => m.type === 'presence' && m.user === 'alice' && m.status === 'online', 3000);
      await stack.fanouts[0].kill9();
      await alice.close();
      const chg = `chg:{p${stack.partitionOf('alice')}}`;
      await waitFor(async () => (await r.hget(stack.keys.presence('alice'), 'st')) === 'offline', 3000, 25, 'alice offline in Redis');
      assert.notEqual(await r.zscore(chg, 'alice'), null);
      // no fanout for longer than the dead worker's lease + 2 s
      await delay(LEASE_MS + 2000 + 1000);
      await stack.startService('fanout');
      const f = await bob.waitFor((m) => m.type === 'presence' && m.user === 'alice' && m.status === 'offline', LEASE_MS + TICK_MS + 2000);
      assert.equal(f.version, 2);
      // delivered: the owner trims it (a snapshot, then the trim a turn later, 3 s margin)
      await waitFor(async () => (await r.zscore(chg, 'alice')) === null, 2 * 2000 + 2000, 50, 'alice trimmed from chg');
    } finally {
      await stack.stop();
    }
  });

  test('a round that fails on a Redis error is caught up again from chg:{pN} once the error is gone', async (t) => {
    if (!hasReceive()) return t.skip(NO_RECEIVE);
    const stack = await startStack({ partitions: P, fanouts: 1, receives: 1, fanoutArgs });
    try {
      const r = stack.redisClient();
      await waitFor(async () => countOf(await owners(r), null) === 0, 4 * LEASE_MS, 25, 'owned');
      assert.ok((await stack.adminApi().put('/v1/users/alice/contacts/bob')).status < 300);
      const bob = await stack.ws('bob', 'b');
      await bob.waitFor((m) => m.type === 'snapshot');
      // the catch-up that follows the takeover is over (it re-read bob's change)
      await waitFor(async () => (await metric(stack, 'presence_fanout_catchup_total')) >= 1, 3000, 25, 'the first catch-up');
      await r.set('ug:alice', 'not-a-set'); // the watchers read of alice fails (WRONGTYPE)
      assert.equal((await stack.api('alice').post('/v1/heartbeat', { device: 'd', status: 'idle' })).status, 204);
      await waitFor(async () => (await metric(stack, 'presence_fanout_drops_total', '{reason="redis"}')) >= 1, 3000, 25, 'a failed round');
      await r.del('ug:alice');
      const f = await bob.waitFor((m) => m.type === 'presence' && m.user === 'alice' && m.status === 'idle', 5000);
      assert.equal(f.version, 1);
    } finally {
      await stack.stop();
    }
  });

  test('--broadcast heartbeats: a heartbeat in the same batching window does not replace the status change', async (t) => {
    if (!hasReceive()) return t.skip(NO_RECEIVE);
    const hb = ['--broadcast', 'heartbeats'];
    const stack = await startStack({
      partitions: P, fanouts: 1, receives: 1,
      fanoutArgs: ['--owner-lease-ms', LEASE_MS, '--batch-flush-ms', 300, ...hb], sendArgs: hb, receiveArgs: hb,
    });
    try {
      const r = stack.redisClient();
      await waitFor(async () => countOf(await owners(r), null) === 0, 4 * LEASE_MS, 25, 'owned');
      assert.ok((await stack.adminApi().put('/v1/users/alice/contacts/bob')).status < 300);
      const bob = await stack.ws('bob', 'b');
      await bob.waitFor((m) => m.type === 'snapshot');
      const alice = stack.api('alice');
      assert.equal((await alice.post('/v1/heartbeat', { device: 'd' })).status, 204);
      await bob.waitFor((m) => m.type === 'presence' && m.user === 'alice' && m.status === 'online', 3000);
      // a change (kind 1, version 2), then a heartbeat repeating version 2 (kind 2), well within 300 ms
      assert.equal((await alice.post('/v1/heartbeat', { device: 'd', status: 'idle' })).status, 204);
      assert.equal((await alice.post('/v1/heartbeat', { device: 'd' })).status, 204);
      const f = await bob.waitFor((m) => m.type === 'presence' && m.user === 'alice' && m.status === 'idle', 2000);
      assert.equal(f.version, 2);
    } finally {
      await stack.stop();
    }
  });

  test('--batch-max bounds the deliveries of one batch', async (t) => {
    if (!hasReceive()) return t.skip(NO_RECEIVE);
    const stack = await startStack({
      partitions: P, fanouts: 1, receives: 1,
      fanoutArgs: ['--owner-lease-ms', LEASE_MS, '--batch-flush-ms', 300, '--batch-max', 2],
    });
    try {
      const r = stack.redisClient();
      await waitFor(async () => countOf(await owners(r), null) === 0, 4 * LEASE_MS, 25, 'owned');
      const users = ['bm-a', 'bm-b', 'bm-c', 'bm-d', 'bm-e', 'bm-f'];
      for (const u of users) assert.ok((await stack.adminApi().put(`/v1/users/${u}/contacts/bob`)).status < 300);
      const bob = await stack.ws('bob', 'b');
      await bob.waitFor((m) => m.type === 'snapshot');
      // six changes well within one 300 ms window, all for bob on the one instance
      await Promise.all(users.map((u) => stack.api(u).post('/v1/heartbeat', { device: 'd' })));
      for (const u of users) await bob.waitFor((m) => m.type === 'presence' && m.user === u, 3000);
      const count = await metric(stack, 'presence_fanout_batch_deliveries_count');
      const upTo2 = await metric(stack, 'presence_fanout_batch_deliveries_bucket', '{le="2"}');
      assert.ok(count >= 3, `six deliveries in batches of at most 2: ${count} batches`);
      assert.equal(upTo2, count, 'every batch holds at most 2 deliveries');
    } finally {
      await stack.stop();
    }
  });

  test('a receive instance whose address cannot be dialled: its deliveries are dropped as reason="dial_failed"', async () => {
    const stack = await startStack({ partitions: P, fanouts: 1, fanoutArgs });
    try {
      const r = stack.redisClient();
      await waitFor(async () => countOf(await owners(r), null) === 0, 4 * LEASE_MS, 25, 'owned');
      assert.ok((await stack.adminApi().put('/v1/users/alice/contacts/bob')).status < 300);
      // bob is held by an instance whose lease names an address nng cannot dial
      await r.set('inst:nowhere', 'bogus://nowhere', 'PX', 60000);
      await r.hset(stack.keys.route('bob'), 'b', 'nowhere');
      assert.equal((await stack.api('alice').post('/v1/heartbeat', { device: 'd' })).status, 204);
      await waitFor(async () => (await metric(stack, 'presence_fanout_drops_total', '{reason="dial_failed"}')) >= 1, 3000, 25, 'a dial_failed drop');
      assert.equal(await metric(stack, 'presence_fanout_drops_total', '{reason="send_full"}'), 0);
    } finally {
      await stack.stop();
    }
  });

  test('kill -9 of a receive instance: its users read offline on another instance within its lease ttl + 2 s, one offline event each', async (t) => {
    if (!hasReceive()) return t.skip(NO_RECEIVE);
    const leaseTtl = 1500;
    const stack = await startStack({
      partitions: P, fanouts: 1, receives: 2, fanoutArgs,
      receiveArgs: ['--lease-ttl-ms', leaseTtl],
    });
    try {
      const admin = stack.adminApi();
      const users = ['k1', 'k2', 'k3'];
      for (const u of users) assert.ok((await admin.put(`/v1/users/${u}/contacts/watcher`)).status < 300);
      const sub = await stack.subscribe([...new Set(users.map((u) => stack.keys.eventsOf(u)))]);
      const ws1 = (u, d) => connect(stack.wsUrl(u, d).replace(stack.receiveUrl.replace(/^http/, 'ws'), stack.receives[1].url.replace(/^http/, 'ws')));
      const watcher = await ws1('watcher', 'w');
      await watcher.waitFor((m) => m.type === 'snapshot');
      const conns = [];
      for (const u of users) conns.push(await stack.ws(u, 'phone'), await stack.ws(u, 'tablet'));
      for (const u of users) await watcher.waitFor((m) => m.type === 'presence' && m.user === u && m.status === 'online', 3000);

      const killedAt = Date.now();
      await stack.receives[0].kill9();
      for (const u of users) await watcher.waitFor((m) => m.type === 'presence' && m.user === u && m.status === 'offline', leaseTtl + 2000 + 500);
      const took = Date.now() - killedAt;
      t.diagnostic(`killed receive: watchers read offline ${took} ms after kill -9 (lease ${leaseTtl} ms)`);
      assert.ok(took <= leaseTtl + 2000, `took ${took} ms`);
      const r = stack.redisClient();
      await waitFor(async () => (await r.sismember('insts', stack.receives[0].args[stack.receives[0].args.indexOf('--instance-id') + 1])) === 0, 3000);
      await sub.barrier();
      for (const u of users) {
        const offs = sub.events().filter((e) => e.user === u && e.status === 'offline');
        assert.equal(offs.length, 1, `${u}: ${offs.length} offline events`);
      }
      const m = await (await fetch(`${stack.fanout.url}/metrics`)).text();
      assert.match(m, /presence_fanout_instances_cleaned_total 1\b/);
    } finally {
      await stack.stop();
    }
  });
});

describe('cleanup of dead receive instances', () => {
  test('a cleanup that fails is retried at the next check, not when its 30 s lock expires', async (t) => {
    if (!hasReceive()) return t.skip(NO_RECEIVE);
    const leaseTtl = 1500;
    const stack = await startStack({ partitions: P, fanouts: 1, receives: 2, fanoutArgs, receiveArgs: ['--lease-ttl-ms', leaseTtl] });
    try {
      const r = stack.redisClient();
      assert.ok((await stack.adminApi().put('/v1/users/k1/contacts/watcher')).status < 300);
      const watcher = await connect(stack.wsUrl('watcher', 'w').replace(stack.receiveUrl.replace(/^http/, 'ws'), stack.receives[1].url.replace(/^http/, 'ws')));
      await watcher.waitFor((m) => m.type === 'snapshot');
      await stack.ws('k1', 'phone');
      await watcher.waitFor((m) => m.type === 'presence' && m.user === 'k1' && m.status === 'online', 3000);
      await stack.receives[0].kill9();
      // conn_del of k1 fails (WRONGTYPE on its route) until the route is repaired
      const rt = stack.keys.route('k1');
      await r.multi().del(rt).set(rt, 'x').exec();
      await waitFor(() => stack.fanout.log().includes('cleanup incomplete'), leaseTtl + 3000, 25, 'a failed cleanup');
      await r.del(rt);
      await watcher.waitFor((m) => m.type === 'presence' && m.user === 'k1' && m.status === 'offline', 2000);
    } finally {
      await stack.stop();
    }
  });

  test('an instance that registers again while it is being cleaned keeps its entry in insts and its new devices in ic', async () => {
    const stack = await startStack({ partitions: P, fanouts: 1, sends: 0, fanoutArgs });
    try {
      const r = stack.redisClient();
      const id = 'rereg';
      // a dead instance with many devices (of users without records): a cleanup that takes a while
      for (let i = 0; i < 20000; i += 5000) {
        await r.sadd(`ic:${id}`, ...Array.from({ length: 5000 }, (_, j) => `ghost${i + j}/d`));
      }
      await r.sadd('insts', id);
      await waitFor(async () => (await r.exists(`cl:${id}`)) === 1, 3000, 2, 'the cleanup started');
      // the instance is back under the same id (what presence-receive does on start)
      const [, , , [, left]] = await r.multi().set(`inst:${id}`, 'tcp://127.0.0.1:1', 'PX', 60000)
        .sadd('insts', id).sadd(`ic:${id}`, 'newuser/phone').scard(`ic:${id}`).exec();
      assert.ok(left > 20000, 'the cleanup was still running when the instance came back');
      // the cleanup ends (it releases its lock), or it wrongly forgot the instance
      await waitFor(async () => (await r.exists(`cl:${id}`)) === 0 || (await r.sismember(`ic:${id}`, 'newuser/phone')) === 0, 10000, 10, 'the end of the cleanup');
      assert.equal(await r.sismember('insts', id), 1);
      assert.equal(await r.sismember(`ic:${id}`, 'newuser/phone'), 1);
    } finally {
      await stack.stop();
    }
  });
});

describe('admin', () => {
  test('/healthz, /readyz and /metrics answer on --admin-listen', async () => {
    const stack = await startStack({ partitions: P, fanouts: 1, sends: 0, fanoutArgs });
    try {
      assert.equal((await fetch(`${stack.fanout.url}/healthz`)).status, 200);
      assert.equal((await fetch(`${stack.fanout.url}/readyz`)).status, 200);
      const r = stack.redisClient();
      await waitFor(async () => countOf(await owners(r), null) === 0, 4 * LEASE_MS);
      const text = await (await fetch(`${stack.fanout.url}/metrics`)).text();
      for (const name of ['presence_fanout_events_total', 'presence_fanout_deliveries_total', 'presence_fanout_batch_deliveries_bucket',
        'presence_fanout_lag_ms_bucket', 'presence_fanout_sweeps_total', 'presence_fanout_expired_total',
        'presence_fanout_instances_cleaned_total', 'presence_fanout_drops_total']) assert.ok(text.includes(name), name);
      assert.match(text, new RegExp(`presence_fanout_partitions_owned ${P}\\b`));
    } finally {
      await stack.stop();
    }
  });
});
