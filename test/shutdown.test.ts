// Graceful shutdown of the real process (SPEC.md §8): `envoy-injector serve` under load gets
// SIGTERM; every request it had already received is answered, new connections are refused, a
// client that never finishes its request cannot hold the exit past the request timeout, and the
// process exits with code 0 (the grace-period timer would exit 1). Deterministic on a loaded
// machine: no step has to happen within a timeout of the server's (each test sets them far away
// except the one it is about), the load loops are stopped and the child killed in `finally`.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureLocalCertificates } from '../src/tls/local.ts';
import { checkInjectedPod } from './support/check-injected.ts';
import { applyJsonPatch } from './support/patch.ts';
import {
  firstData,
  httpsGet,
  httpsPost,
  openTcp,
  openTls,
  readUntilClosed,
  requestHead,
  STACK_TRACE,
  type RawResult,
  type Target,
} from './support/raw-https.ts';
import { decodeResponse, reviewFor } from './support/review.ts';

const ROOT = new URL('..', import.meta.url).pathname;

const POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { generateName: 'web-', labels: { app: 'web' } },
  spec: { containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 8080 }] }] },
};

/** A port nobody listens on right now (the config takes 1–65535, so not 0). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The child's pino lines, and a way to wait for one. */
function logLines(child: ChildProcess) {
  const lines: Record<string, unknown>[] = [];
  const waiters: { match: (line: Record<string, unknown>) => boolean; resolve: () => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      line = { msg: text, notJson: true };
    }
    lines.push(line);
    for (const waiter of waiters.filter((w) => w.match(line))) waiter.resolve();
  });
  return {
    lines,
    waitFor: (msg: string) =>
      new Promise<void>((resolve, reject) => {
        if (lines.some((l) => l['msg'] === msg)) return resolve();
        waiters.push({ match: (l) => l['msg'] === msg, resolve });
        child.once('exit', (code) => reject(new Error(`exited (${code}) before logging "${msg}"`)));
      }),
  };
}

/**
 * Keeps admissions flowing on keep-alive connections until stopped; records each outcome. `stop`
 * ends every loop (aborting its request in flight) and resolves once they have all returned, so
 * a test's `finally` can always call it.
 */
function load(target: Target, clients: number) {
  const outcomes: { answeredBeforeSigterm: boolean; status?: number; body?: string; error?: string; uid: string }[] = [];
  let stopped = false;
  let sigtermSent = false;
  let n = 0;
  const firstSuccess: Promise<void>[] = [];
  const agents: Agent[] = [];
  const loops = Array.from({ length: clients }, (_, client) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    let succeeded: () => void = () => {};
    firstSuccess.push(new Promise((resolve) => (succeeded = resolve)));
    return (async () => {
      while (!stopped) {
        const uid = `load-${client}-${n++}`;
        try {
          const response = await httpsPost(target, '/mutate', JSON.stringify(reviewFor(POD, { uid })), { 'content-type': 'application/json' }, agent);
          outcomes.push({ answeredBeforeSigterm: !sigtermSent, status: response.status, body: response.body, uid });
          if (response.status === 200) succeeded();
        } catch (error) {
          if (stopped) break;
          outcomes.push({ answeredBeforeSigterm: !sigtermSent, error: (error as NodeJS.ErrnoException).code ?? String(error), uid });
          // Never spin: a refused connect fails at once.
          await sleep(20);
        }
      }
    })();
  });
  return {
    outcomes,
    running: Promise.all(firstSuccess),
    sigterm: () => (sigtermSent = true),
    stop: async () => {
      stopped = true;
      // Aborts a request still waiting for its answer, so no loop waits on a server that is gone.
      for (const agent of agents) agent.destroy();
      await Promise.all(loops);
    },
  };
}

/** `envoy-injector serve` in a child process, with its log lines and its exit. */
async function startServe(dir: string, env: Record<string, string>) {
  const { bundle } = await ensureLocalCertificates(dir, [], 30);
  const target: Target = { port: await freePort(), ca: bundle.caCert };
  // A clean environment: nothing of the developer's own injector config leaks in.
  const clean = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('ENVOY_INJECTOR_')));
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve'], {
    cwd: ROOT,
    env: {
      ...clean,
      ENVOY_INJECTOR_TLS_CERT_DIR: dir,
      ENVOY_INJECTOR_SERVER_PORT: String(target.port),
      ENVOY_INJECTOR_NATIVE_SIDECAR: 'false',
      ENVOY_INJECTOR_SERVER_MAX_CONCURRENT_ADMISSIONS: '1000',
      ENVOY_INJECTOR_SERVER_MAX_REQUESTS_PER_PEER: '1000',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr = { text: '' };
  proc.stderr!.on('data', (chunk: Buffer) => (stderr.text += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const log = logLines(proc);
  return { proc, target, log, exited, stderr };
}

/** An admission the server has taken (it answered 100 Continue) whose body is still to come. */
async function hold(target: Target, uid: string) {
  const body = JSON.stringify(reviewFor(POD, { uid }));
  const socket = await openTls(target);
  const result = readUntilClosed(socket);
  const interim = firstData(socket);
  socket.write(requestHead('/mutate', { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Expect: '100-continue' }));
  assert.match(await interim, /^HTTP\/1\.1 100 Continue/);
  return {
    uid,
    result,
    finish: () => {
      socket.write(body);
      return result;
    },
  };
}

function assertInjected(status: number | undefined, body: string, uid: string): void {
  assert.equal(status, 200, body);
  const review = decodeResponse(JSON.parse(body));
  assert.equal(review.uid, uid);
  assert.equal(review.allowed, true);
  checkInjectedPod(applyJsonPatch(POD, review.patch) as Record<string, unknown>);
}

/** Whether a new TCP connection to the port is refused. */
async function refused(target: Target): Promise<boolean> {
  try {
    const socket = await openTcp(target);
    socket.destroy();
    return false;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ECONNREFUSED') return true;
    // A connect that reached the backlog just as the listener closed is reset, not refused: the
    // listener is closing, but not yet known closed; the caller polls again.
    if ((error as NodeJS.ErrnoException).code === 'ECONNRESET') return false;
    throw error;
  }
}

test('SIGTERM under load: admissions already received are answered, new connections refused, exit 0', { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-shutdown-'));
  let child: ChildProcess | undefined;
  let traffic: ReturnType<typeof load> | undefined;
  try {
    // Timeouts far beyond the test: nothing here races them on a loaded machine (the cut-off of a
    // stuck client after the request timeout is the next test's).
    const served = await startServe(dir, {
      ENVOY_INJECTOR_SERVER_REQUEST_TIMEOUT_MS: '120000',
      ENVOY_INJECTOR_SERVER_BODY_TIMEOUT_MS: '120000',
      ENVOY_INJECTOR_SERVER_SHUTDOWN_GRACE_MS: '150000',
    });
    child = served.proc;
    const { target, log, exited, stderr } = served;
    await log.waitFor('envoy-injector listening');

    traffic = load(target, 6);
    await traffic.running;
    // Received before SIGTERM: four admissions waiting for their bodies.
    const held = await Promise.all([hold(target, 'held-1'), hold(target, 'held-2'), hold(target, 'held-3'), hold(target, 'held-4')]);

    traffic.sigterm();
    child.kill('SIGTERM');
    await log.waitFor('shutting down: finishing in-flight requests');
    // New connections are refused once the listener is closed (it closes right after that line);
    // polled until then, however long a loaded machine takes (the test's timeout bounds it).
    while (!(await refused(target))) await sleep(10);
    for (let i = 0; i < 3; i++) assert.equal(await refused(target), true, 'and stays closed');

    // Every admission received before SIGTERM is answered in full.
    for (const h of held) {
      const result = await h.finish();
      assertInjected(result.status, result.body, h.uid);
      assert.equal(result.headers['connection'], 'close', 'the connection is closed after the answer');
    }
    await traffic.stop();

    const { code, signal } = await exited;
    assert.equal(signal, null);
    assert.equal(code, 0, `exit code 0 (the grace timer exits 1); stderr: ${stderr.text}`);

    // Under load: every admission that reached the server was injected, also those arriving on a
    // kept-alive connection once closing had begun (served, then the connection closed: no 503,
    // which the API server would not retry). Around SIGTERM a client may instead meet a connection
    // the server closed as idle just as it sent, or, later, a refused connect: both are what a
    // closing server does, so both are accepted, but only after SIGTERM.
    const answered = traffic.outcomes.filter((o) => o.answeredBeforeSigterm);
    assert.ok(answered.length > 0);
    for (const o of traffic.outcomes) {
      if (o.error === undefined) assertInjected(o.status, o.body ?? '', o.uid);
      else {
        assert.equal(o.answeredBeforeSigterm, false, `${o.uid}: ${o.error}`);
        assert.match(o.error, /ECONNREFUSED|ECONNRESET|EPIPE|socket hang up/, o.uid);
      }
    }
    for (const o of traffic.outcomes) assert.doesNotMatch(o.body ?? '', STACK_TRACE);

    const messages = log.lines.map((l) => l['msg']);
    assert.ok(messages.includes('shut down'));
    assert.ok(!messages.includes('grace period over: exiting with requests still open'));
    assert.ok(log.lines.every((l) => l['msg'] !== 'uncaught exception' && l['msg'] !== 'unhandled rejection'));
    assert.ok(log.lines.every((l) => (l['level'] as number) < 50), 'nothing logged at error');
  } finally {
    await traffic?.stop();
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a client that never finishes its request cannot hold the exit past the request timeout', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-shutdown-'));
  let child: ChildProcess | undefined;
  try {
    // The body deadline far away, so what ends the stuck request is the cut-off of the shutdown.
    const served = await startServe(dir, {
      ENVOY_INJECTOR_SERVER_REQUEST_TIMEOUT_MS: '2000',
      ENVOY_INJECTOR_SERVER_BODY_TIMEOUT_MS: '120000',
      ENVOY_INJECTOR_SERVER_SHUTDOWN_GRACE_MS: '100000',
    });
    child = served.proc;
    const { target, log, exited, stderr } = served;
    await log.waitFor('envoy-injector listening');
    const stuck = await hold(target, 'stuck');

    child.kill('SIGTERM');
    // Closing stops Node's own request timeout: the shutdown closes what is still open once a
    // whole request timeout has passed, and that ends it (exit 0, not the grace timer's 1).
    const stuckResult: RawResult = await stuck.result;
    assert.equal(stuckResult.status, undefined, stuckResult.raw);
    const { code, signal } = await exited;
    assert.equal(signal, null);
    assert.equal(code, 0, `exit code 0 (the grace timer exits 1); stderr: ${stderr.text}`);
    const messages = log.lines.map((l) => l['msg']);
    assert.ok(messages.includes('closing connections still open after the request timeout'));
    assert.ok(messages.includes('shut down'));
  } finally {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a broken stdout (serve | head -2) never keeps the process from exiting on SIGTERM', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-shutdown-'));
  let child: ChildProcess | undefined;
  try {
    const served = await startServe(dir, { ENVOY_INJECTOR_SERVER_SHUTDOWN_GRACE_MS: '100000' });
    child = served.proc;
    const { target, log, exited, stderr } = served;
    // The reader goes away after two lines, as `head -2` does: every later log line meets EPIPE.
    await new Promise<void>((resolve) => {
      const check = () => (log.lines.length >= 2 ? resolve() : setTimeout(check, 5));
      check();
    });
    child.stdout!.destroy();
    // Probes log nothing, so the lines written after the server is up are the shutdown's, just
    // before the exit (polled until it answers: the test's timeout bounds the wait).
    for (;;) {
      const up = await httpsGet(target, '/healthz').then((r) => r.status === 200, () => false);
      if (up) break;
      await sleep(20);
    }
    child.kill('SIGTERM');
    // Before, pino's exit-time flush retried EPIPE forever: this waited until the test timed out.
    const { code, signal } = await exited;
    assert.equal(signal, null);
    assert.equal(code, 0, stderr.text);
    assert.doesNotMatch(stderr.text, /\n\s+at |EPIPE/);
  } finally {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
