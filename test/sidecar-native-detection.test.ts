// `nativeSidecar: auto` (SPEC.md §4): at start the injector asks the API server its version
// (GET /version) and uses native sidecars from Kubernetes 1.29 (when every node's kubelet is 1.29
// too: native-sidecar-kubelets.test.ts). Here the API server is a small in-process HTTPS server
// answering in its wire format (version.Info, a NodeList), reached through a real kubeconfig file and
// @kubernetes/client-node, over TLS verified against its CA, for what a real one cannot do on
// demand: report "30+" or empty major/minor, refuse, hang, or not listen. What real 1.26 and 1.30
// API servers answer (classic and native) is in envtest-admission.test.ts and
// envtest-installation.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '../src/kube/client.ts';
import { detectNativeSidecarSupport, versionSupportsNativeSidecars } from '../src/kube/version.ts';
import { resolveRuntime } from '../src/runtime.ts';
import { generateBundle } from '../src/tls/certificates.ts';
import { testConfig } from './support/config.ts';

/** What an API server of `gitVersion` answers on GET /version (k8s.io/apimachinery version.Info). */
function versionInfo(major: string, minor: string, gitVersion: string) {
  return {
    major,
    minor,
    gitVersion,
    gitCommit: '6f1d1a7c0e0f2e0b6c0ac5d1f5e2b1e3b9a8f7c6',
    gitTreeState: 'clean',
    buildDate: '2025-01-15T10:00:00Z',
    goVersion: 'go1.23.4',
    compiler: 'gc',
    platform: 'linux/amd64',
  };
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

let dir: string;
let caCert: string;
let server: Server;
let port: number;
let handler: Handler = () => undefined;
const seen: { method: string | undefined; url: string | undefined; authorization: string | undefined }[] = [];
const sockets = new Set<Socket>();

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'envoy-injector-apiserver-'));
  const bundle = await generateBundle(['localhost', '127.0.0.1']);
  caCert = bundle.caCert;
  server = createServer({ key: bundle.key, cert: bundle.cert }, (req, res) => {
    seen.push({ method: req.method, url: req.url, authorization: req.headers['authorization'] });
    handler(req, res);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

/** Writes a kubeconfig for `server` (with its CA) and returns the env that points at it. */
function kubeconfigEnv(serverUrl: string): Record<string, string> {
  const file = join(dir, `kubeconfig-${seen.length}-${Math.random().toString(36).slice(2)}`);
  writeFileSync(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: test',
      '  cluster:',
      `    server: ${serverUrl}`,
      `    certificate-authority-data: ${Buffer.from(caCert).toString('base64')}`,
      'users:',
      '- name: injector',
      '  user:',
      '    token: test-token',
      'contexts:',
      '- name: test',
      '  context: {cluster: test, user: injector}',
      'current-context: test',
      '',
    ].join('\n'),
  );
  return { KUBECONFIG: file, HOME: '/nonexistent' };
}

/** A KubeConfig loaded from a kubeconfig file for `serverUrl`, as kubectl would read it. */
function kubeconfigFor(serverUrl: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigEnv(serverUrl)['KUBECONFIG'] as string);
  return kc;
}

/** Answers GET /version with `gitVersion`, and the node list with one node whose kubelet runs it too. */
function answerVersion(major: string, minor: string, gitVersion: string): Handler {
  return (req, res) => {
    if (req.method === 'GET' && req.url?.startsWith('/api/v1/nodes?')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          kind: 'NodeList',
          apiVersion: 'v1',
          metadata: { resourceVersion: '4711' },
          items: [{ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-1' }, status: { nodeInfo: { kubeletVersion: gitVersion } } }],
        }),
      );
      return;
    }
    if (req.method !== 'GET' || req.url !== '/version') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(versionInfo(major, minor, gitVersion)));
  };
}

test('versionSupportsNativeSidecars: 1.29 and later, as the API reports major and minor', () => {
  const rows: readonly [string, string, boolean][] = [
    ['1', '29', true],
    ['1', '30', true],
    ['1', '33', true],
    ['1', '28', false],
    ['1', '27', false],
    // Managed clusters add a "+" to the minor (GKE, EKS).
    ['1', '29+', true],
    ['1', '28+', false],
    ['2', '0', true],
    ['0', '99', false],
    ['', '', false],
    ['1', '', false],
    ['one', 'twenty-nine', false],
  ];
  for (const [major, minor, expected] of rows) assert.equal(versionSupportsNativeSidecars(major, minor), expected, `${major}.${minor}`);
});

test('managed clusters report "30+": native sidecars', async () => {
  handler = answerVersion('1', '30+', 'v1.30.5-gke.1014001');
  const support = await detectNativeSidecarSupport(kubeconfigFor(`https://127.0.0.1:${port}`));
  assert.equal(support.supported, true);
  assert.match(support.detail, /v1\.30\.5-gke\.1014001/);
});

test('an API server refusing the request: classic sidecars', async () => {
  handler = (_req, res) => {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 }));
  };
  const support = await detectNativeSidecarSupport(kubeconfigFor(`https://127.0.0.1:${port}`));
  assert.equal(support.supported, false);
  // One line with the API server's own words (client-node's error spans lines: code, body, headers).
  assert.equal(support.detail, "could not read the API server's version (reading the API server's version: Unauthorized (HTTP 401)); classic sidecars");
});

test('an API server that does not answer in time: classic sidecars after the timeout', async () => {
  handler = () => {
    /* holds the request: the injector must not wait forever at start */
  };
  const support = await detectNativeSidecarSupport(kubeconfigFor(`https://127.0.0.1:${port}`), { timeoutMs: 300, nodesTimeoutMs: 300 });
  const warning = "could not read the API server's version (reading the API server's version: the API server did not answer in time)";
  assert.deepEqual(support, { supported: false, detail: `${warning}; classic sidecars`, warning });
});

test('nothing listening at the server address: classic sidecars', async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const closedPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const support = await detectNativeSidecarSupport(kubeconfigFor(`https://127.0.0.1:${closedPort}`));
  assert.equal(support.supported, false);
  assert.match(support.detail, /^could not read the API server's version \(.*\); classic sidecars$/);
});

test('an API server leaving major and minor empty: the version is read from gitVersion', async () => {
  handler = answerVersion('', '', 'v1.30.2-eks-1234');
  const support = await detectNativeSidecarSupport(kubeconfigFor(`https://127.0.0.1:${port}`));
  assert.equal(support.supported, true);
  assert.equal(support.detail, 'API server v1.30.2-eks-1234, every kubelet ≥ 1.29 (1 node): native sidecars');
  handler = answerVersion('', '', 'v1.27.1');
  assert.equal((await detectNativeSidecarSupport(kubeconfigFor(`https://127.0.0.1:${port}`))).supported, false);
});

test('loadKubeConfig reads the environment it is given, not the process environment', () => {
  const env = kubeconfigEnv(`https://127.0.0.1:${port}`);
  const kc = loadKubeConfig(env);
  assert.equal(kc?.getCurrentCluster()?.server, `https://127.0.0.1:${port}`);
});

test('no cluster at all (no service account, no kubeconfig): classic sidecars without waiting', async () => {
  const kc = loadKubeConfig({ HOME: '/nonexistent', KUBECONFIG: '' });
  assert.equal(kc, undefined);
  assert.deepEqual(await detectNativeSidecarSupport(kc), { supported: false, detail: 'no cluster configured; classic sidecars' });
});

test('at start, `auto` resolves through the kubeconfig of the environment; true/false never ask', async () => {
  handler = answerVersion('1', '31', 'v1.31.2');
  const saved = { KUBECONFIG: process.env['KUBECONFIG'], HOME: process.env['HOME'], KUBERNETES_SERVICE_HOST: process.env['KUBERNETES_SERVICE_HOST'] };
  // loadKubeConfig reads the process's environment at start, as the server and CLI do.
  Object.assign(process.env, kubeconfigEnv(`https://127.0.0.1:${port}`));
  delete process.env['KUBERNETES_SERVICE_HOST'];
  try {
    seen.length = 0;
    const auto = await resolveRuntime(testConfig({ ENVOY_INJECTOR_NATIVE_SIDECAR: 'auto' }));
    assert.equal(auto.runtime.nativeSidecarSupported, true);
    assert.equal(auto.nativeSidecarDetail, 'nativeSidecar: auto (API server v1.31.2, every kubelet ≥ 1.29 (1 node): native sidecars)');
    assert.equal(seen.length, 2, 'the version and the nodes');
    const fixed = await resolveRuntime(testConfig({ ENVOY_INJECTOR_NATIVE_SIDECAR: 'false' }));
    assert.equal(fixed.runtime.nativeSidecarSupported, false);
    assert.equal(fixed.nativeSidecarDetail, 'nativeSidecar: false');
    assert.equal(seen.length, 2, 'an explicit setting does not ask the API server');
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
});
