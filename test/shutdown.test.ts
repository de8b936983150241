// Graceful shutdown of the real process (SPEC.md §8): `envoy-injector serve` under load gets
// SIGTERM; every request it had already received is answered, new connections are refused, a
// client that never finishes its request cannot hold the exit past the request timeout, and the
// process exits with code 0 (the grace-period timer would exit 1).
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
const REQUEST_TIMEOUT_MS = 4_000;
const GRACE_MS = 30_000;

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

/** Keeps admissions flowing on keep-alive connections until stopped; records each outcome. */
function load(target: Target, clients: number) {
  const outcomes: { answeredBeforeSigterm: boolean; status?: number; body?: string; error?: string; uid: string }[] = [];
  let stopped = false;
  let sigtermSent = false;
  let n = 0;
  const firstSuccess: Promise<void>[] = [];
  const loops = Array.from({ length: clients }, (_, client) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
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
          outcomes.push({ answeredBeforeSigterm: !sigtermSent, error: (error as NodeJS.ErrnoException).code ?? String(error), uid });
          // Refused: the server is gone for good; do not spin.
          if (sigtermSent) await sleep(20);
        }
      }
      agent.destroy();
    })();
  });
  return {
    outcomes,
    running: Promise.all(firstSuccess),
    sigterm: () => (sigtermSent = true),
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
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
    throw error;
  }
}

test('SIGTERM under load: admissions already received are answered, new connections refused, exit 0', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-shutdown-'));
  const child: { process?: ChildProcess } = {};
  try {
    const { bundle } = await ensureLocalCertificates(dir, [], 30);
    const target: Target = { port: await freePort(), ca: bundle.caCert };
    // A clean environment: nothing of the developer's own injector config leaks in.
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('ENVOY_INJECTOR_')));
    const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve'], {
      cwd: ROOT,
      env: {
        ...env,
        ENVOY_INJECTOR_TLS_CERT_DIR: dir,
        ENVOY_INJECTOR_SERVER_PORT: String(target.port),
        ENVOY_INJECTOR_NATIVE_SIDECAR: 'false',
        ENVOY_INJECTOR_SERVER_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        ENVOY_INJECTOR_SERVER_SHUTDOWN_GRACE_MS: String(GRACE_MS),
        ENVOY_INJECTOR_SERVER_MAX_CONCURRENT_ADMISSIONS: '1000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.process = proc;
    let stderr = '';
    proc.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      proc.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const log = logLines(proc);
    await log.waitFor('envoy-injector listening');

    const traffic = load(target, 6);
    await traffic.running;
    // Received before SIGTERM: four admissions waiting for their bodies, and one client that will
    // never send its body.
    const held = await Promise.all([hold(target, 'held-1'), hold(target, 'held-2'), hold(target, 'held-3'), hold(target, 'held-4')]);
    const stuck = await hold(target, 'stuck');

    traffic.sigterm();
    proc.kill('SIGTERM');
    await log.waitFor('shutting down: finishing in-flight requests');
    // New connections are refused once the listener is closed (it closes right after that line).
    let attempts = 0;
    while (!(await refused(target))) {
      assert.ok(++attempts < 500, 'the listener closes');
      await sleep(10);
    }
    for (let i = 0; i < 3; i++) assert.equal(await refused(target), true, 'and stays closed');

    // Every admission received before SIGTERM is answered in full.
    for (const h of held) {
      const result = await h.finish();
      assertInjected(result.status, result.body, h.uid);
      assert.equal(result.headers['connection'], 'close', 'the connection is closed after the answer');
    }
    await traffic.stop();

    // The stuck client is cut off one request timeout after SIGTERM, and that ends the shutdown.
    const stuckResult: RawResult = await stuck.result;
    assert.equal(stuckResult.status, undefined, stuckResult.raw);
    const { code, signal } = await exited;
    assert.equal(signal, null);
    assert.equal(code, 0, `exit code 0 (the grace timer exits 1); stderr: ${stderr}`);

    // Under load: every admission that reached the server was injected, also those arriving on a
    // kept-alive connection once closing had begun (served, then the connection closed: no 503,
    // which the API server would not retry). Around SIGTERM a client may instead meet a connection
    // the server closed as idle just as it sent, or, later, a refused connect.
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
    assert.ok(messages.includes('closing connections still open after the request timeout'));
    assert.ok(messages.includes('shut down'));
    assert.ok(!messages.includes('grace period over: exiting with requests still open'));
    assert.ok(log.lines.every((l) => l['msg'] !== 'uncaught exception' && l['msg'] !== 'unhandled rejection'));
    assert.ok(log.lines.every((l) => (l['level'] as number) < 50), 'nothing logged at error');
  } finally {
    if (child.process !== undefined && child.process.exitCode === null) child.process.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
