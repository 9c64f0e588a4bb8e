// procs.mjs: starts redis-server and the Presence binaries on free loopback
// ports, waits for readiness by polling with a deadline (never a fixed
// sleep), and stops them (SIGTERM, then SIGKILL after a bound). Every process
// is tracked (track.mjs) so that nothing outlives the test file.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runDir, trackProcess, untrackProcess, dumpLogs, VERBOSE } from './track.mjs';
import { delay } from './wait.mjs';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const SANITIZED = !!process.env.PR_SANITIZED;
const envMs = (name, def) => (Number(process.env[name]) > 0 ? Number(process.env[name]) : def);
/** Readiness deadline (PRESENCE_TEST_READY_MS overrides; longer under sanitizers). */
export const READY_MS = envMs('PRESENCE_TEST_READY_MS', SANITIZED ? 30000 : 10000);
/** How long stop() waits after SIGTERM before SIGKILL. */
export const STOP_MS = envMs('PRESENCE_TEST_STOP_MS', SANITIZED ? 20000 : 5000);

/** The directory of the binaries: $PR_BIN_DIR or <repo>/build/bin. */
export function binDir() {
  return process.env.PR_BIN_DIR || path.join(REPO, 'build', 'bin');
}

/** A free TCP port on 127.0.0.1 (bound to port 0, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

let seq = 0;
const ADDR_IN_USE = /address already in use|EADDRINUSE|in use/i;

function readTail(file, lines = 40) {
  try {
    return fs.readFileSync(file, 'utf8').replace(/\n$/, '').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Spawns cmd with stdout+stderr appended to logPath and tracks it. Returns a
 * record {name, kind, pid, logPath, exited (promise of code or signal name),
 * exitInfo, expected, stop(ms), kill9(), signal(sig)}.
 */
function spawnLogged(name, kind, cmd, args, { env, cwd, logPath }) {
  fs.appendFileSync(logPath, `### ${new Date().toISOString()} ${cmd} ${args.join(' ')}\n`);
  const fd = fs.openSync(logPath, 'a');
  let child;
  try {
    child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...(env ?? {}) }, cwd });
  } finally {
    fs.closeSync(fd);
  }
  const rec = { name, kind, pid: child.pid, logPath, child, expected: false, exitInfo: null, exitValue: undefined };
  rec.exited = new Promise((resolve) => {
    const done = (value, info) => {
      if (rec.exitInfo) return;
      rec.exitInfo = info;
      rec.exitAt = Date.now();
      rec.exitValue = value;
      untrackProcess(rec);
      if (!rec.expected) process.stderr.write(`[harness] ${name} (pid ${rec.pid}) exited unexpectedly: ${info}\n`);
      if (VERBOSE) dumpLogs(100000, rec);
      resolve(value);
    };
    child.once('exit', (code, signal) => done(code ?? signal, code !== null ? `code ${code}` : `signal ${signal}`));
    child.once('error', (err) => done(`error: ${err.message}`, `spawn error ${err.code ?? err.message}`));
  });
  rec.signal = (sig) => {
    if (rec.exitInfo) return false;
    try {
      return process.kill(rec.pid, sig);
    } catch {
      return false;
    }
  };
  rec.stop = async (ms = STOP_MS) => {
    if (rec.exitInfo) return rec.exitValue;
    rec.expected = true;
    rec.signal('SIGTERM');
    let t;
    const timedOut = await Promise.race([
      rec.exited.then(() => false),
      new Promise((r) => (t = setTimeout(() => r(true), ms))),
    ]);
    clearTimeout(t);
    if (timedOut) {
      process.stderr.write(`[harness] ${name} (pid ${rec.pid}) ignored SIGTERM for ${ms} ms: SIGKILL\n`);
      rec.signal('SIGKILL');
      await rec.exited;
    }
    return rec.exitValue;
  };
  rec.kill9 = async () => {
    if (rec.exitInfo) return rec.exitValue;
    rec.expected = true;
    rec.signal('SIGKILL');
    return rec.exited;
  };
  if (child.pid) trackProcess(rec);
  return rec;
}

/** Sends PING over a raw socket; true when +PONG comes back. */
export function redisPing(port, host = '127.0.0.1', timeoutMs = 500) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    let buf = '';
    const end = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => end(false));
    sock.once('error', () => end(false));
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) end(buf.startsWith('+PONG'));
    });
    sock.once('connect', () => sock.write('PING\r\n'));
  });
}

async function waitUntil(rec, check, deadlineMs, what) {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (rec.exitInfo) {
      const err = new Error(
        `${rec.name} exited (${rec.exitInfo}) before ${what}; log ${rec.logPath}:\n${readTail(rec.logPath)}`,
      );
      err.exited = true;
      err.addrInUse = ADDR_IN_USE.test(readTail(rec.logPath, 20));
      throw err;
    }
    if (await check()) return;
    if (Date.now() >= deadline) {
      await rec.kill9();
      throw new Error(
        `${rec.name} (pid ${rec.pid}) not ${what} after ${deadlineMs} ms; killed. Log ${rec.logPath}:\n${readTail(rec.logPath)}`,
      );
    }
    await delay(25);
  }
}

/**
 * Starts redis-server on a free loopback port with no persistence, in its own
 * temp dir, and waits until PING answers.
 * Returns {host, port, url: "127.0.0.1:PORT", dir, logPath, pid, stop(),
 * kill9(), restart(), log(), running}. restart() starts it again on the same
 * port and dir (after stopping it if it still runs).
 */
export async function startRedis({ args = [], port: wantPort, readyMs = READY_MS } = {}) {
  const dir = fs.mkdtempSync(path.join(runDir(), 'redis-'));
  const logPath = path.join(dir, 'redis.log');
  let port = wantPort;
  let rec = null;

  const launch = async (p) => {
    const argv = ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...args];
    rec = spawnLogged(`redis-server:${p}`, 'redis', 'redis-server', argv, { logPath });
    await waitUntil(rec, () => redisPing(p), readyMs, 'answering PING');
  };

  for (let attempt = 0; ; attempt++) {
    if (!wantPort) port = await freePort();
    try {
      await launch(port);
      break;
    } catch (e) {
      if (e.exited && e.addrInUse && !wantPort && attempt < 4) continue; // lost the port race: new port
      if (/ENOENT/.test(String(e.message))) e.message = `redis-server not found on PATH (install redis-server): ${e.message}`;
      throw e;
    }
  }

  const self = {
    host: '127.0.0.1',
    port,
    url: `127.0.0.1:${port}`,
    dir,
    logPath,
    get pid() {
      return rec.pid;
    },
    get running() {
      return !rec.exitInfo;
    },
    log: () => fs.readFileSync(logPath, 'utf8'),
    stop: (ms) => rec.stop(ms),
    kill9: () => rec.kill9(),
    async restart() {
      if (!rec.exitInfo) await rec.stop();
      // The port was ours a moment ago; redis sets SO_REUSEADDR, so TIME_WAIT does not block it.
      await launch(port);
      return self;
    },
  };
  return self;
}

function listenPortOf(args) {
  for (let i = 0; i < args.length; i++) {
    const a = String(args[i]);
    const v = a === '--listen' ? String(args[i + 1] ?? '') : a.startsWith('--listen=') ? a.slice(9) : null;
    if (v != null) {
      const m = /:(\d+)$/.exec(v);
      if (m) return Number(m[1]);
    }
  }
  return null;
}

/** Polls http://127.0.0.1:port/path; resolves to the status code or 0 when not reachable. */
export function httpStatus(port, p, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode));
      res.once('error', () => resolve(res.statusCode));
    });
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', () => resolve(0));
  });
}

/**
 * Starts `${PR_BIN_DIR}/<name>` and waits until it is ready.
 *   args     array, or function (port) => array; with a function the harness
 *            picks a free port (retrying with a new one if it was taken)
 *   opts.env extra environment; opts.cwd
 *   opts.ready  HTTP path polled until 200 ('/readyz' default, '/healthz', or null: no polling)
 *   opts.readyPort  port to poll (default: the picked port, or --listen's port in args)
 *   opts.readyFn    async () => boolean, an extra readiness condition
 *   opts.readyMs    deadline (default 10 s); the start fails fast with the
 *            log tail if the process exits meanwhile
 *   opts.bin        explicit path of the executable
 * Returns {name, pid, port, url, logPath, log(), logTail(n), stop(ms) -> exit
 * code (or signal name), kill9(), signal(sig), exited, running, exitValue}.
 */
export async function startService(name, args = [], opts = {}) {
  const bin = opts.bin ?? path.join(binDir(), name);
  try {
    fs.accessSync(bin, fs.constants.X_OK);
  } catch {
    throw new Error(
      `${name}: no executable at ${bin}. Build it first (make build), or set PR_BIN_DIR to the directory holding the binaries.`,
    );
  }
  const ready = opts.ready === undefined ? '/readyz' : opts.ready;
  const readyMs = opts.readyMs ?? READY_MS;
  for (let attempt = 0; ; attempt++) {
    const picked = typeof args === 'function' ? await freePort() : null;
    const argv = (typeof args === 'function' ? await args(picked) : args).map(String);
    const port = opts.readyPort ?? picked ?? listenPortOf(argv);
    if (ready && !port) throw new Error(`${name}: cannot tell which port to poll for ${ready}: give --listen or opts.readyPort`);
    const logPath = path.join(runDir(), `${name}-${++seq}.log`);
    const rec = spawnLogged(name, 'service', bin, argv, { env: opts.env, cwd: opts.cwd, logPath });
    try {
      await waitUntil(
        rec,
        async () => (!ready || (await httpStatus(port, ready)) === 200) && (!opts.readyFn || (await opts.readyFn())),
        readyMs,
        ready ? `ready (GET ${ready} on port ${port} = 200)` : 'ready',
      );
    } catch (e) {
      if (e.exited && e.addrInUse && typeof args === 'function' && attempt < 4) continue;
      throw e;
    }
    return {
      name,
      pid: rec.pid,
      port,
      url: port ? `http://127.0.0.1:${port}` : null,
      args: argv,
      logPath,
      log: () => fs.readFileSync(logPath, 'utf8'),
      logTail: (n = 40) => readTail(logPath, n),
      stop: (ms) => rec.stop(ms),
      kill9: () => rec.kill9(),
      signal: (sig) => rec.signal(sig),
      exited: rec.exited,
      get running() {
        return !rec.exitInfo;
      },
      get exitValue() {
        return rec.exitValue;
      },
    };
  }
}
