// The envoy container (SPEC.md §4): native or classic, held until ready, drained on termination,
// started with the bootstrap envoy-init rendered into the emptyDir it mounts read-only. The
// lifecycle scripts — files envoy-init writes beside the bootstrap — run in a real bash against real
// TCP servers standing in for Envoy.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BOOTSTRAP_DIR, BOOTSTRAP_FILES, BOOTSTRAP_VOLUME_NAME } from '../src/constants.ts';
import { defaultProxyConfig } from '../src/core/overrides.ts';
import { buildSidecar, drainScript, envoyArgs, holdScript, HOLD_TIMEOUT_SECONDS } from '../src/core/sidecar.ts';
import type { EffectiveProxyConfig } from '../src/core/types.ts';
import { testConfig, testRuntime } from './support/config.ts';
import { assertEnvoyContainer, parseEnvoyArgs } from './support/envoy-proto-check.ts';

type Obj = Record<string, any>;

function proxyWith(overrides: Partial<EffectiveProxyConfig> = {}): EffectiveProxyConfig {
  return { ...defaultProxyConfig(testConfig(), testRuntime), ...overrides };
}

function sidecar(overrides: Partial<EffectiveProxyConfig> = {}): Obj {
  return buildSidecar(proxyWith(overrides)) as Obj;
}

test('classic sidecar: held until ready by postStart, drained by preStop, no startup probe', () => {
  const c = sidecar({ nativeSidecar: false, holdApplicationUntilProxyStarts: true, drainSeconds: 5 });
  assertEnvoyContainer(c, false);
  // The hooks run the scripts envoy-init wrote; the drain's length is the preStop's argument.
  assert.deepEqual(c['lifecycle']['postStart'], { exec: { command: ['bash', `${BOOTSTRAP_DIR}/${BOOTSTRAP_FILES.hold}`] } });
  assert.deepEqual(c['lifecycle']['preStop'], { exec: { command: ['bash', `${BOOTSTRAP_DIR}/${BOOTSTRAP_FILES.drain}`, '5'] } });
  assert.equal(c['restartPolicy'], undefined);
  assert.equal(c['startupProbe'], undefined);
  assert.deepEqual(c['readinessProbe'], { httpGet: { path: '/ready', port: 15021, scheme: 'HTTP' }, periodSeconds: 2, timeoutSeconds: 1, failureThreshold: 3 });
  // Without hold or drain, no hook at all.
  const bare = sidecar({ nativeSidecar: false, holdApplicationUntilProxyStarts: false, drainSeconds: 0 });
  assertEnvoyContainer(bare, false);
  assert.equal(bare['lifecycle'], undefined);
});

test('native sidecar: restartPolicy Always and a startup probe; no hooks, whatever hold and drain say', () => {
  const c = sidecar({ nativeSidecar: true, holdApplicationUntilProxyStarts: true, drainSeconds: 30 });
  assertEnvoyContainer(c, true);
  assert.equal(c['restartPolicy'], 'Always');
  // Probed every second (the kubelet's finest period) for as long as the classic hold waits.
  assert.deepEqual(c['startupProbe'], {
    httpGet: { path: '/ready', port: 15021, scheme: 'HTTP' },
    periodSeconds: 1,
    timeoutSeconds: 1,
    failureThreshold: HOLD_TIMEOUT_SECONDS,
  });
  // Kubernetes starts the app once the probe passes and stops this container after the app.
  assert.equal(c['lifecycle'], undefined);
});

test('the bootstrap is a file of the emptyDir, mounted read-only; envoy carries no environment', () => {
  const c = sidecar();
  assert.deepEqual(c['volumeMounts'], [{ name: BOOTSTRAP_VOLUME_NAME, mountPath: BOOTSTRAP_DIR, readOnly: true }]);
  assert.equal(c['env'], undefined);
  assert.equal(JSON.stringify(c).includes('$('), false, 'nothing for the kubelet to expand');
});

test('Envoy flags: -c the rendered file, concurrency 0 means one worker per CPU of the cpuset', () => {
  const args = (overrides: Partial<EffectiveProxyConfig>) => envoyArgs(proxyWith(overrides));
  assert.deepEqual(args({ concurrency: 2, drainSeconds: 5, logLevel: 'warning' }), [
    '-c', '/etc/envoy-bootstrap/bootstrap.json',
    '--log-level', 'warning',
    '--concurrency', '2',
    '--disable-hot-restart',
    '--drain-time-s', '5',
    '--drain-strategy', 'immediate',
  ]);
  // Envoy runs one worker for --concurrency 0; leaving the flag out with --cpuset-threads gives
  // one per CPU the container may use.
  const zero = parseEnvoyArgs(args({ concurrency: 0 }));
  assert.equal(zero.has('--concurrency'), false);
  assert.equal(zero.get('--cpuset-threads'), '');
  assert.equal(parseEnvoyArgs(args({ drainSeconds: 0 })).get('--drain-time-s'), '0');
});

// ---- the lifecycle scripts, in a real bash ------------------------------------------------

/** An HTTP server on an ephemeral loopback port answering with `respond`, recording requests. */
async function fakeEnvoy(respond: (req: IncomingMessage, res: ServerResponse, n: number) => void) {
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    respond(req, res, requests.length);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { port, requests, close };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const scripts = mkdtempSync(join(tmpdir(), 'envoy-injector-hooks-'));
after(() => rmSync(scripts, { recursive: true, force: true }));
let scriptCount = 0;

/**
 * Runs `script` as the kubelet runs the hook: `bash FILE ARGS…`, the file as envoy-init writes it
 * (here into a temporary directory), without blocking the event loop.
 */
function bash(script: string, args: readonly string[] = []): Promise<{ code: number | null; stderr: string }> {
  const file = join(scripts, `hook-${(scriptCount += 1)}.sh`);
  writeFileSync(file, script, { mode: 0o644 });
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [file, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

test('bash is here to run the hooks (the proxy image must have it too)', () => {
  assert.equal(spawnSync('bash', ['-c', 'echo ok']).stdout.toString(), 'ok\n');
});

test('hold: retries until /ready answers 200, then lets the app start', async () => {
  const envoy = await fakeEnvoy((_req, res, n) => {
    res.writeHead(n < 3 ? 503 : 200, { 'content-type': 'text/plain' });
    res.end(n < 3 ? 'PRE_INITIALIZING\n' : 'LIVE\n');
  });
  try {
    const run = await bash(holdScript(envoy.port, 60));
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(envoy.requests, ['GET /ready', 'GET /ready', 'GET /ready']);
  } finally {
    await envoy.close();
  }
});

test('hold: fails the start with a message when Envoy never gets ready', async () => {
  const port = await closedPort();
  const refused = await bash(holdScript(port, 1));
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^envoy not ready after 1s\n$/);
  const draining = await fakeEnvoy((_req, res) => {
    res.writeHead(503);
    res.end('DRAINING\n');
  });
  try {
    const run = await bash(holdScript(draining.port, 1));
    assert.equal(run.code, 1);
    assert.match(run.stderr, /envoy not ready after 1s/);
    assert.ok(draining.requests.length >= 1);
  } finally {
    await draining.close();
  }
});

test('hold: an Envoy that accepts but never answers does not hang the hook', async () => {
  const silent = await fakeEnvoy(() => {
    /* never answers: `read -t` gives up and the loop tries again until the deadline */
  });
  try {
    const run = await bash(holdScript(silent.port, 1));
    assert.equal(run.code, 1);
    assert.match(run.stderr, /envoy not ready after 1s/);
  } finally {
    await silent.close();
  }
});

test('drain: fails health (so /ready turns 503), drains inbound listeners gracefully, then waits', async () => {
  const admin = await fakeEnvoy((req, res) => {
    assert.equal(req.headers['content-length'], '0');
    res.writeHead(200);
    res.end('OK\n');
  });
  try {
    const started = Date.now();
    const run = await bash(drainScript(admin.port), ['1']);
    assert.equal(run.code, 0, run.stderr);
    // It waits the seconds it is given (a lower bound: sleep never returns early).
    assert.ok(Date.now() - started >= 950, 'the hook waited for the drain');
    // Admin mutations must be POSTs; skip_exit keeps Envoy up for the app's outbound calls.
    assert.deepEqual(admin.requests, ['POST /healthcheck/fail', 'POST /drain_listeners?inboundonly&graceful&skip_exit']);
  } finally {
    await admin.close();
  }
});

test('drain: an unreachable admin interface does not fail the hook (the kubelet goes on either way)', async () => {
  const run = await bash(drainScript(await closedPort()), ['0']);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, '');
});
