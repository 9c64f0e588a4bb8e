// cclient.test.mjs: the project's own C client (clients/c, through the
// presence-watch tool) against the real stack: hello and snapshot arrive, a
// status frame reaches a watcher, a close makes the watcher see offline after
// the leave grace, a bad token is refused before the upgrade.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startStack, binDir, waitFor } from './lib/stack.mjs';
import { registerCleanup } from './lib/track.mjs';

const GRACE_MS = 500;
let stack;

before(async () => {
  stack = await startStack({
    partitions: 16,
    fanouts: 1,
    receives: 1,
    receiveArgs: ['--leave-grace-ms', String(GRACE_MS)],
  });
  const admin = stack.adminApi();
  for (const [u, c] of [['calice', 'cbob'], ['cbob', 'calice']]) {
    assert.equal((await admin.put(`/v1/users/${u}/contacts/${c}`)).status, 204);
  }
});
after(async () => stack && stack.stop());

/** Starts presence-watch as `user`; returns {events, waitFor(pred), send(cmd), exited}. */
function watch(user, device, token = stack.token(user)) {
  const child = spawn(path.join(binDir(), 'presence-watch'),
    ['--url', `127.0.0.1:${stack.receive.port}`, '--token', token, '--device', device],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  // (it also exits by itself when this process dies: its stdin closes)
  registerCleanup(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const w = { events: [], err: '' };
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      w.events.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
  });
  child.stderr.on('data', (d) => (w.err += d));
  w.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  w.waitFor = (pred, ms = 5000, what = 'an event') =>
    waitFor(() => w.events.find(pred), ms, 10, `${user}: ${what} (got ${JSON.stringify(w.events)} ${w.err})`);
  w.send = (cmd) => child.stdin.write(`${cmd}\n`);
  w.end = () => child.stdin.end();
  return w;
}

test('hello and snapshot, a status frame reaches the watcher, close shows offline after the grace', async () => {
  const bob = watch('cbob', 'laptop');
  await bob.waitFor((e) => e.event === 'hello' && e.user === 'cbob' && e.device === 'laptop');
  await bob.waitFor((e) => e.event === 'snapshot');

  const alice = watch('calice', 'phone');
  await alice.waitFor((e) => e.event === 'snapshot' && e.users.some((u) => u.user === 'cbob' && u.status === 'online'),
    5000, 'a snapshot listing cbob online');
  await bob.waitFor((e) => e.event === 'presence' && e.entry.user === 'calice' && e.entry.status === 'online');

  alice.send('status dnd');
  await bob.waitFor((e) => e.event === 'presence' && e.entry.user === 'calice' && e.entry.status === 'dnd');

  const closedAt = Date.now();
  alice.send('close');
  assert.equal(await alice.exited, 0);
  const off = await bob.waitFor((e) => e.event === 'presence' && e.entry.user === 'calice' && e.entry.status === 'offline',
    GRACE_MS + 3000, 'calice offline');
  assert.ok(Date.now() - closedAt >= GRACE_MS - 50, 'not before the leave grace');
  assert.ok(off.entry.last_seen > 0);
  bob.end();
  assert.equal(await bob.exited, 0);
});

test('a bad token is refused with HTTP 401 before the upgrade', async () => {
  const w = watch('cbob', 'x', 'not-a-token');
  const c = await w.waitFor((e) => e.event === 'close');
  assert.equal(c.code, 401);
  assert.ok(!w.events.some((e) => e.event === 'hello'));
  assert.equal(await w.exited, 1);
});
