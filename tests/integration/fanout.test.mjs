// fanout.test.mjs: presence-fanout against a real redis-server and the real
// binaries: partition ownership (split, takeover after kill -9, release on
// SIGTERM), offline detection (sweeper and keyspace, with the measured lag),
// delivery to exactly the allowed watchers on two receive instances, and the
// cleanup of a killed receive instance. Tests that need presence-receive skip
// when it is not built.
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
