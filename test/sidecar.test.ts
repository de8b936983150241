// The envoy container (SPEC.md §4): native or classic, held until ready, drained on termination,
// its bootstrap delivered through the kubelet's variable expansion. The lifecycle scripts run in a
// real bash against real TCP servers standing in for Envoy.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { BOOTSTRAP_ENV } from '../src/constants.ts';
import { buildBootstrap, DOWNWARD_ENV } from '../src/core/bootstrap.ts';
import { escapeEnvReferences, expandEnvReferences } from '../src/core/env-expansion.ts';
import { defaultProxyConfig } from '../src/core/overrides.ts';
import { buildSidecar, drainScript, envoyArgs, holdScript, HOLD_TIMEOUT_SECONDS, MAX_EXEC_STRING_BYTES, oversizedBootstrap, renderBootstrapEnv } from '../src/core/sidecar.ts';
import type { EffectiveProxyConfig } from '../src/core/types.ts';
import { testConfig, testRuntime } from './support/config.ts';
import { assertEnvoyContainer, liveEnvReferences, parseEnvoyArgs } from './support/envoy-proto-check.ts';

type Obj = Record<string, any>;

function proxyWith(overrides: Partial<EffectiveProxyConfig> = {}): EffectiveProxyConfig {
  return { ...defaultProxyConfig(testConfig(), testRuntime), ...overrides };
}

function sidecar(overrides: Partial<EffectiveProxyConfig> = {}): Obj {
  const proxy = proxyWith(overrides);
  const bootstrap = buildBootstrap({ proxy, workloadName: 'web', labels: { app: 'web' }, injectorVersion: '0.0.0-test', configHash: 'cafe' });
  return buildSidecar(proxy, renderBootstrapEnv(bootstrap)) as Obj;
}

test('classic sidecar: held until ready by postStart, drained by preStop, no startup probe', () => {
  const c = sidecar({ nativeSidecar: false, holdApplicationUntilProxyStarts: true, drainSeconds: 5 });
  assertEnvoyContainer(c, false);
  assert.deepEqual(c['lifecycle']['postStart'], { exec: { command: ['bash', '-c', holdScript()] } });
  assert.deepEqual(c['lifecycle']['preStop'], { exec: { command: ['bash', '-c', drainScript(5)] } });
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

test('Envoy flags: --config-yaml alone, concurrency 0 means one worker per CPU of the cpuset', () => {
  const args = (overrides: Partial<EffectiveProxyConfig>) => envoyArgs(proxyWith(overrides));
  assert.deepEqual(args({ concurrency: 2, drainSeconds: 5, logLevel: 'warning' }), [
    '--config-yaml', '$(ENVOY_BOOTSTRAP)',
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

test('the bootstrap travels through the kubelet: env expansion, then args expansion, then YAML parsing', () => {
  const proxy = proxyWith();
  // A value with `$` in it must reach Envoy unchanged; references to the downward API expand.
  const bootstrap = { node: { id: '$(POD_NAME).$(POD_NAMESPACE)', cluster: 'web', metadata: { literal: 'a$b $(HOME) $$(x) $' } } };
  const c = buildSidecar(proxy, renderBootstrapEnv(bootstrap)) as Obj;
  const env: Obj[] = c['env'];
  assert.deepEqual(env.map((e) => e['name']), [...DOWNWARD_ENV.map((e) => e.name), BOOTSTRAP_ENV], 'the bootstrap comes after the variables it refers to');
  for (const e of env.slice(0, -1)) assert.ok(e['valueFrom']['fieldRef']['fieldPath']);
  const downward = { POD_NAME: 'web-0', POD_NAMESPACE: 'shop', INSTANCE_IPS: '10.0.0.1,fd00::1', NODE_NAME: 'n1', SERVICE_ACCOUNT: 'web' };
  // The kubelet: each env value is expanded with the variables defined before it…
  const values: Record<string, string> = { ...downward, HOME: '/root' };
  const raw: string = env.at(-1)?.['value'];
  assert.deepEqual(liveEnvReferences(raw).sort(), ['POD_NAME', 'POD_NAMESPACE'], 'only the downward-API references stay live');
  values[BOOTSTRAP_ENV] = expandEnvReferences(raw, values);
  // …then command and args with all of them, without expanding the inserted text again.
  const argv = (c['args'] as string[]).map((a) => expandEnvReferences(a, values));
  const yaml = argv[argv.indexOf('--config-yaml') + 1] as string;
  // Envoy parses --config-yaml as YAML; JSON is YAML.
  assert.deepEqual(parseYaml(yaml), { node: { id: 'web-0.shop', cluster: 'web', metadata: { literal: 'a$b $(HOME) $$(x) $' } } });
  assert.equal(escapeEnvReferences('$(POD_NAME)$(HOME)', ['POD_NAME']), '$(POD_NAME)$$(HOME)');
});

test('the bootstrap is compact JSON; one Linux could not pass to Envoy is measured as oversized', () => {
  const proxy = proxyWith();
  const sidecarFor = (labels: Record<string, string>, startable = true) => {
    const bootstrap = buildBootstrap({ proxy, workloadName: 'web', labels, injectorVersion: '0.0.0-test', configHash: 'cafe' });
    const c = buildSidecar(proxy, renderBootstrapEnv(bootstrap)) as Obj;
    if (startable) assertEnvoyContainer(c, false);
    return c;
  };
  const small = sidecarFor({ app: 'web' });
  assert.match((small['env'] as Obj[]).at(-1)?.['value'] as string, /^\{"node":\{"id":/);
  const envOf = (c: Obj): string => (c['env'] as Obj[]).at(-1)?.['value'] as string;
  assert.equal(oversizedBootstrap(envOf(small)), undefined);
  // 1,400 labels of 80 characters: about 121 KiB, under the 128 KiB exec limit with room for expansion.
  const label = (i: number) => [`example.com/label-${String(i).padStart(4, '0')}`, 'v'.repeat(55)];
  assert.equal(oversizedBootstrap(envOf(sidecarFor(Object.fromEntries(Array.from({ length: 1400 }, (_, i) => label(i)))))), undefined);
  // 2,000 of them no longer fit: the size is reported (injectPod denies the pod with it).
  const size = oversizedBootstrap(envOf(sidecarFor(Object.fromEntries(Array.from({ length: 2000 }, (_, i) => label(i))), false)));
  assert.ok(size !== undefined && size > MAX_EXEC_STRING_BYTES);
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

/** Runs `script` with bash -c, as the kubelet runs the hook, without blocking the event loop. */
function bash(script: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'ignore', 'pipe'] });
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
    const script = drainScript(1, admin.port);
    assert.match(script, / sleep 1$/);
    const run = await bash(script);
    assert.equal(run.code, 0, run.stderr);
    // Admin mutations must be POSTs; skip_exit keeps Envoy up for the app's outbound calls.
    assert.deepEqual(admin.requests, ['POST /healthcheck/fail', 'POST /drain_listeners?inboundonly&graceful&skip_exit']);
  } finally {
    await admin.close();
  }
});

test('drain: an unreachable admin interface does not fail the hook (the kubelet goes on either way)', async () => {
  const run = await bash(drainScript(0, await closedPort()));
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, '');
});
