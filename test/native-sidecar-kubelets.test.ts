// `nativeSidecar: auto` against the fake API server (client-node through a real KubeConfig, over
// verified TLS): native sidecars only when the API server and every node's kubelet are ≥ 1.29, the
// API server's version alone (with a warning) when nodes cannot be listed, and the version lookup
// retried at start before classic sidecars are settled on, with a warning in the log. Node objects
// on a real API server (every kubelet ≥ 1.29, one at 1.28) are in envtest-installation.test.ts; the
// fake stays for pages, refusals and failures on demand.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import { detectNativeSidecarSupport, maxDetectionMs, SERVER_DETECT_ATTEMPTS, surveyKubelets } from '../src/kube/version.ts';
import { resolveRuntime } from '../src/runtime.ts';
import { testConfig } from './support/config.ts';
import { startFakeApiServer, type FakeApiServer } from './support/fake-apiserver.ts';
import { captureLogger, nodeObject } from './support/fake-apiserver-cluster.ts';

let fake: FakeApiServer;
let dir: string;
before(async () => {
  fake = await startFakeApiServer({ version: { major: '1', minor: '30', gitVersion: 'v1.30.6-eks-7f9249a' } });
  dir = mkdtempSync(join(tmpdir(), 'envoy-injector-kubelets-'));
});
after(async () => {
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => fake.reset());

const FORBIDDEN_NODES = {
  status: 403,
  reason: 'Forbidden',
  message: 'nodes is forbidden: User "system:serviceaccount:envoy-injector:envoy-injector" cannot list resource "nodes" in API group "" at the cluster scope',
};
const versionRequests = () => fake.requests.filter((r) => r.resource === 'version');
const nodeRequests = () => fake.requests.filter((r) => r.resource === 'nodes');

test('nodes listed page by page (continue tokens), and an old kubelet on the last page still counts', async () => {
  for (let i = 0; i < 450; i++) fake.put('nodes', nodeObject(`node-${String(i).padStart(3, '0')}`, i === 449 ? 'v1.27.16' : 'v1.31.2'));
  const support = await detectNativeSidecarSupport(fake.kubeConfig());
  assert.equal(support.supported, false);
  assert.match(support.detail, /1 of 450 nodes runs a kubelet older than 1\.29 \(node-449 v1\.27\.16\)/);
  assert.equal(nodeRequests().length, 3, 'three pages of 200');
  assert.ok(nodeRequests().slice(1).every((r) => /[?&]continue=/.test(r.path)));
});

test('nodes the service account may not list: the API server version alone, with a warning saying so', async () => {
  fake.put('nodes', nodeObject('node-a', 'v1.28.15'));
  fake.hook = (request) => (request.resource === 'nodes' ? FORBIDDEN_NODES : undefined);
  const support = await detectNativeSidecarSupport(fake.kubeConfig(), { attempts: 3, retryDelayMs: 10 });
  assert.equal(support.supported, true);
  assert.equal(
    support.warning,
    'could not list the nodes to check their kubelets (listing nodes: nodes is forbidden: User "system:serviceaccount:envoy-injector:envoy-injector" cannot list resource "nodes" in API group "" at the cluster scope (HTTP 403))',
  );
  assert.equal(support.detail, `API server v1.30.6-eks-7f9249a: native sidecars; kubelets not checked: ${support.warning}`);
  assert.equal(nodeRequests().length, 1, 'a refusal is an answer: not retried');
});

test('the version lookup is retried: an API server failing twice, then answering, gives native sidecars', async () => {
  fake.put('nodes', nodeObject('node-a', 'v1.30.6'));
  let calls = 0;
  fake.hook = (request) => {
    if (request.resource !== 'version') return undefined;
    calls++;
    if (calls === 1) return { status: 503, reason: 'ServiceUnavailable', message: 'the server is currently unable to handle the request' };
    if (calls === 2) return { status: 429, reason: 'TooManyRequests', message: 'Too many requests, please try again later.' };
    return undefined;
  };
  const support = await detectNativeSidecarSupport(fake.kubeConfig(), { attempts: 3, retryDelayMs: 10 });
  assert.equal(support.supported, true, support.detail);
  assert.equal(support.warning, undefined);
  assert.deepEqual(versionRequests().map((r) => r.status), [503, 429, 200]);
});

test('at start the server retries, then settles on classic sidecars with a warning in its log; a refusal is not retried', async () => {
  const kubeconfig = join(dir, 'kubeconfig');
  fake.writeKubeconfig(kubeconfig);
  const saved = { KUBECONFIG: process.env['KUBECONFIG'], HOME: process.env['HOME'], KUBERNETES_SERVICE_HOST: process.env['KUBERNETES_SERVICE_HOST'] };
  Object.assign(process.env, { KUBECONFIG: kubeconfig, HOME: '/nonexistent' });
  delete process.env['KUBERNETES_SERVICE_HOST'];
  try {
    fake.hook = (request) =>
      request.resource === 'version' ? { status: 500, reason: 'InternalError', message: 'etcdserver: leader changed' } : undefined;
    const { logger, lines } = captureLogger('info');
    const resolved = await resolveRuntime(testConfig({ ENVOY_INJECTOR_NATIVE_SIDECAR: 'auto' }), { logger, attempts: SERVER_DETECT_ATTEMPTS, retryDelayMs: 10 });
    assert.equal(resolved.runtime.nativeSidecarSupported, false);
    assert.equal(
      resolved.nativeSidecarDetail,
      "nativeSidecar: auto (could not read the API server's version after 3 tries (reading the API server's version: etcdserver: leader changed (HTTP 500)); classic sidecars)",
    );
    assert.equal(versionRequests().length, SERVER_DETECT_ATTEMPTS);
    const warnings = lines.filter((l) => l.level === 40);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]?.msg, /^nativeSidecar auto: could not read the API server's version after 3 tries .*; classic sidecars until restarted$/);

    fake.requests.length = 0;
    fake.hook = (request) => (request.resource === 'version' ? { status: 403, reason: 'Forbidden', message: 'forbidden: User "system:anonymous" cannot get path "/version"' } : undefined);
    const refused = await resolveRuntime(testConfig({ ENVOY_INJECTOR_NATIVE_SIDECAR: 'auto' }), { attempts: SERVER_DETECT_ATTEMPTS, retryDelayMs: 10 });
    assert.equal(refused.runtime.nativeSidecarSupported, false);
    assert.equal(versionRequests().length, 1);
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
});

test('surveyKubelets: versions as kubelets report them; one that does not parse counts as older', () => {
  const survey = surveyKubelets([
    { name: 'gke-1', kubeletVersion: 'v1.30.5-gke.1014001' },
    { name: 'kind-1', kubeletVersion: 'v1.29.0' },
    { name: 'old-2', kubeletVersion: 'v1.28.9' },
    { name: 'old-1', kubeletVersion: 'v1.27.16+k3s1' },
    { name: 'virtual', kubeletVersion: '' },
    { name: 'future', kubeletVersion: 'v2.0.0' },
  ]);
  assert.equal(survey.nodes, 6);
  assert.deepEqual(survey.older.map((n) => n.name), ['virtual', 'old-1', 'old-2']);
});

test('the retries at start stay bounded', () => {
  // The worst case (every try timing out) is what the Deployment's startup probe must allow for;
  // manifests.test.ts checks the probe against maxDetectionMs.
  assert.equal(maxDetectionMs({ attempts: SERVER_DETECT_ATTEMPTS }), 3 * 5000 + 500 + 1000);
  assert.equal(maxDetectionMs(), 5000);
});
