// track.mjs: every process and client the harness starts is registered here,
// so that nothing outlives the test file: the root `after` hook stops them
// gracefully; 'exit', SIGINT, SIGTERM and a crash (uncaught error with no test
// runner to catch it) kill what is left with SIGKILL, synchronously. A failing
// test prints the new log output of every process (so does
// PRESENCE_TEST_VERBOSE=1 when a process stops).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, beforeEach } from 'node:test';

export const VERBOSE = process.env.PRESENCE_TEST_VERBOSE === '1';
export const KEEP = process.env.PRESENCE_TEST_KEEP === '1';

const procs = new Set(); // records of live child processes (see procs.mjs)
const everyProc = []; // every record ever started, for log dumps
const cleanups = new Set(); // async closers of clients (redis, ws)
let failures = 0;
let testStartedAt = 0;
let dir = null;

/** The run's temp directory (logs, redis dirs), created on first use. */
export function runDir() {
  if (!dir) dir = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-test-'));
  return dir;
}

export function trackProcess(rec) {
  procs.add(rec);
  everyProc.push(rec);
}

export function untrackProcess(rec) {
  procs.delete(rec);
}

/** Registers an async closer run by cleanupAll() before processes stop; returns an unregister function. */
export function registerCleanup(fn) {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** Marks the run as failed (the temp dir is then kept) and prints new logs. */
export function noteFailure(why) {
  failures++;
  if (why) process.stderr.write(`\n[harness] ${why}\n`);
  dumpLogs();
}

/** Prints what each process logged since the last dump (last `maxLines` lines each). */
export function dumpLogs(maxLines = 120, only = null) {
  for (const rec of only ? [only] : everyProc) {
    // Only what may concern the current test: live processes and those that ended during it.
    if (!only && rec.exitInfo && (rec.exitAt ?? 0) < testStartedAt) continue;
    let text = '';
    try {
      const buf = fs.readFileSync(rec.logPath);
      text = buf.subarray(rec.dumped ?? 0).toString('utf8');
      rec.dumped = buf.length;
    } catch {
      continue;
    }
    if (!text.trim()) continue;
    const lines = text.replace(/\n$/, '').split('\n');
    const shown = lines.slice(-maxLines);
    const state = rec.exitInfo ? `exited ${rec.exitInfo}` : 'running';
    process.stderr.write(
      `\n----- ${rec.name} (pid ${rec.pid}, ${state}) log ${rec.logPath}` +
        (shown.length < lines.length ? ` (last ${shown.length} of ${lines.length} new lines)` : '') +
        ` -----\n${shown.join('\n')}\n----- end ${rec.name} -----\n`,
    );
  }
}

/** Skips what has been logged so far in later dumps (after a passing test). */
function markLogsSeen() {
  for (const rec of everyProc) {
    try {
      rec.dumped = fs.statSync(rec.logPath).size;
    } catch {
      /* gone */
    }
  }
}

/** Kills every live process with SIGKILL, synchronously (for exit paths). */
export function killAllSync() {
  for (const rec of procs) {
    try {
      rec.expected = true;
      process.kill(rec.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  procs.clear();
}

/** Closes clients, then stops services, then redis servers (SIGTERM, SIGKILL after a bound). */
export async function cleanupAll() {
  const closers = [...cleanups];
  cleanups.clear();
  await Promise.allSettled(closers.map((fn) => fn()));
  const live = [...procs];
  await Promise.allSettled(live.filter((r) => r.kind !== 'redis').map((r) => r.stop()));
  await Promise.allSettled(live.filter((r) => r.kind === 'redis').map((r) => r.stop()));
  killAllSync();
}

function removeRunDir() {
  if (!dir) return;
  if (failures > 0 || KEEP) {
    process.stderr.write(`[harness] logs kept in ${dir}\n`);
    return;
  }
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    /* best effort */
  }
}

let exitInstalled = false;
let testHooksInstalled = false;
/**
 * Installs the exit paths, and the node:test hooks when `withTestHooks`:
 * a root afterEach that prints logs when a test failed and a root after that
 * stops everything. Called at import when running under node:test.
 */
export function installHooks(withTestHooks = true) {
  if (withTestHooks && !testHooksInstalled) {
    testHooksInstalled = true;
    beforeEach(() => {
      testStartedAt = Date.now();
    });
    afterEach((t) => {
      if (t && t.passed === false) noteFailure(`test failed: ${t.name}`);
      else markLogsSeen();
    });
    after(async () => {
      await cleanupAll();
    });
  }
  if (exitInstalled) return;
  exitInstalled = true;
  process.on('exit', () => {
    killAllSync();
    if (VERBOSE) dumpLogs(100000);
    removeRunDir();
  });
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
    process.once(sig, () => {
      killAllSync();
      process.exit(code);
    });
  }
  process.on('uncaughtExceptionMonitor', (err, origin) => {
    // With a test runner listening, the error fails the current test and the
    // run goes on (the after hook cleans up); with nobody listening the
    // process is about to die without emitting 'exit', so kill everything now.
    noteFailure(`${origin}: ${err && err.stack ? err.stack : err}`);
    if (process.listenerCount('uncaughtException') === 0) killAllSync();
  });
}

const underTest =
  !!process.env.NODE_TEST_CONTEXT || /\.test\.[cm]?js$/.test(process.argv[1] ?? '');
installHooks(underTest);
