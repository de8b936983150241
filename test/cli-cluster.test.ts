// `envoy-injector check` against the fake API server (a healthy and a broken installation, the real
// binary through a kubeconfig file), and `envoy-injector certs`.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FINDINGS, type FindingCode } from '../src/check/findings.ts';
import { reportError } from '../src/cli.ts';
import { run as runCerts } from '../src/cli/certs.ts';
import { run as runCheck } from '../src/cli/check.ts';
import { loadConfig } from '../src/config.ts';
import { admissionContext } from '../src/core/context.ts';
import { injectPod } from '../src/core/inject.ts';
import { defaultProxyConfig } from '../src/core/overrides.ts';
import { hashProxyConfig } from '../src/core/status.ts';
import type { InjectorConfig, InjectorRuntime, JsonObject } from '../src/core/types.ts';
import { createKubeResources } from '../src/kube/resources.ts';
import { bundleTrusts, certificateCovers, generateCa, serviceDnsNames } from '../src/tls/certificates.ts';
import { ensureSecretBundle } from '../src/tls/secret-bundle.ts';
import { VERSION } from '../src/version.ts';
import { startFakeApiServer, type FakeApiServer, type KubeObject } from './support/fake-apiserver.ts';
import { manifestWebhookConfiguration, NAMESPACE, nodeObject } from './support/fake-apiserver-cluster.ts';

const MAIN = new URL('../src/main.ts', import.meta.url).pathname;
const MANIFEST_CONFIG = new URL('../manifests/config.yaml', import.meta.url).pathname;

/** Runs the real CLI (through tsx) without blocking the event loop (the fake API server runs in it). */
function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      env: { ...process.env, HOME: '/nonexistent', KUBECONFIG: '', ENVOY_INJECTOR_CONFIG: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Runs a command in this process as main.ts would (errors become one line and an exit code),
 * collecting its output; quicker than a process where the binary itself is not the point.
 */
async function inProcess(command: typeof runCerts, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  const out = { write: (chunk: string | Uint8Array) => ((stdout += String(chunk)), true) };
  try {
    return { code: await command(args, out), stdout, stderr: '' };
  } catch (error) {
    // reportError writes the one line to standard error: capture it for the assertion.
    const original = process.stderr.write.bind(process.stderr);
    let stderr = '';
    process.stderr.write = ((chunk: string) => ((stderr += chunk), true)) as typeof process.stderr.write;
    try {
      return { code: reportError(error), stdout, stderr };
    } finally {
      process.stderr.write = original;
    }
  }
}

// What the installed injector runs with: manifests/config.yaml in its namespace, on a cluster whose
// version (the fake's 1.31) gives native sidecars.
const config: InjectorConfig = loadConfig({ file: MANIFEST_CONFIG, env: { POD_NAMESPACE: NAMESPACE } });
const runtime: InjectorRuntime = { version: VERSION, nativeSidecarSupported: true };
const HASH = hashProxyConfig(defaultProxyConfig(config, runtime), runtime.version);

let fake: FakeApiServer;
let dir: string;
let kubeconfig: string;
before(async () => {
  fake = await startFakeApiServer({ version: { major: '1', minor: '31' } });
  dir = mkdtempSync(join(tmpdir(), 'envoy-injector-cli-'));
  kubeconfig = join(dir, 'kubeconfig');
  fake.writeKubeconfig(kubeconfig);
});
after(async () => {
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

function namespace(name: string, labels: Record<string, string> = {}): void {
  fake.put('namespaces', { metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } } });
}

/** A running pod as the API server returns it, injected (with `injectedWith`) or not. */
function pod(ns: string, name: string, options: { labels?: Record<string, string>; annotations?: Record<string, string>; hostNetwork?: boolean; injectedWith?: InjectorConfig } = {}): void {
  const spec: JsonObject = { containers: [{ name: 'app', image: 'nginx', ports: [{ containerPort: 8080 }] }], ...(options.hostNetwork ? { hostNetwork: true } : {}) };
  let object: JsonObject = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: options.labels ?? { app: name }, annotations: options.annotations ?? {} },
    spec,
  };
  if (options.injectedWith !== undefined) {
    const result = injectPod(object, admissionContext({ namespace: ns }), options.injectedWith, runtime);
    assert.equal(result.decision.action, 'inject', `${name} is injected`);
    object = result.pod as JsonObject;
  }
  fake.put('pods', { ...object, status: { phase: 'Running' } });
}

function endpoints(ready: boolean[]): void {
  fake.put('endpointslices', {
    metadata: { name: 'envoy-injector-abcde', namespace: NAMESPACE, labels: { 'kubernetes.io/service-name': 'envoy-injector' } },
    addressType: 'IPv4',
    endpoints: ready.map((r, i) => ({ addresses: [`10.0.0.${i + 10}`], conditions: { ready: r } })),
    ports: [{ name: 'https', port: 8443, protocol: 'TCP' }],
  });
}

/** A healthy installation: the replicas' Secret and caBundle in place, two ready endpoints. */
async function healthyInstall(): Promise<string> {
  fake.reset();
  const resources = createKubeResources(fake.kubeConfig());
  const ensured = await ensureSecretBundle(
    resources,
    { namespace: NAMESPACE, name: config.tls.secretName, dnsNames: serviceDnsNames(config.tls.serviceName, NAMESPACE), renewBeforeDays: 30 },
    new Date(),
  );
  const mwc = manifestWebhookConfiguration();
  for (const webhook of mwc['webhooks']) webhook.clientConfig.caBundle = Buffer.from(ensured.bundle.trustBundle).toString('base64');
  fake.put('mutatingwebhookconfigurations', mwc);
  fake.put('services', {
    metadata: { name: 'envoy-injector', namespace: NAMESPACE },
    spec: { selector: { 'app.kubernetes.io/name': 'envoy-injector' }, ports: [{ name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' }] },
  });
  endpoints([true, true]);
  fake.put('nodes', nodeObject('node-a', 'v1.31.0'));
  fake.put('nodes', nodeObject('node-b', 'v1.30.4'));
  namespace(NAMESPACE, { 'envoy-injector.io/inject': 'disabled' });
  namespace('kube-system', { 'envoy-injector.io/inject': 'enabled' });
  namespace('shop', { 'envoy-injector.io/inject': 'enabled' });
  namespace('default');
  namespace('legacy', { 'envoy-injector.io/inject': 'disabled' });
  pod('shop', 'web-1', { injectedWith: config });
  pod('shop', 'web-2', { injectedWith: config });
  pod('shop', 'node-agent', { hostNetwork: true });
  pod('shop', 'batch-done', { injectedWith: config });
  fake.put('pods', { ...(fake.get('pods', 'shop', 'batch-done') as KubeObject), status: { phase: 'Succeeded' } });
  pod('default', 'opted-in', { labels: { 'envoy-injector.io/inject': 'enabled' }, injectedWith: config });
  pod('default', 'plain');
  pod('legacy', 'opted-in-but-namespace-off', { labels: { 'envoy-injector.io/inject': 'enabled' } });
  pod('kube-system', 'coredns');
  return new X509Certificate(ensured.bundle.cert).validTo;
}

test('check: a healthy installation', async () => {
  const notAfter = new Date(await healthyInstall()).toISOString().slice(0, 10);
  const run = await cli(['check', '-c', MANIFEST_CONFIG, '--kubeconfig', kubeconfig, '-n', NAMESPACE]);
  assert.equal(run.stderr, '');
  assert.equal(
    run.stdout,
    [
      `envoy-injector check: context fake, namespace ${NAMESPACE}, tls.mode secret`,
      'OK    MutatingWebhookConfiguration envoy-injector: by-namespace.envoy-injector.io (failurePolicy Fail), by-pod-label.envoy-injector.io (failurePolicy Fail) → Service envoy-injector/envoy-injector:443/mutate',
      `OK    the caBundle of every webhook trusts the serving certificate in Secret envoy-injector/envoy-injector-tls (expires ${notAfter})`,
      'OK    Service envoy-injector/envoy-injector: 2 ready endpoints',
      'OK    nativeSidecar auto: API server v1.31.0, every kubelet ≥ 1.29 (2 nodes): native sidecars',
      'OK    1 namespace labelled envoy-injector.io/inject=enabled: shop',
      'INFO  both capture modes are admitted in: shop',
      'INFO  labelled but excluded (never injected): kube-system',
      'OK    default: 1 running pod: 1 injected',
      'OK    legacy: 1 running pod: 0 injected, 1 skipped by design',
      'OK    shop: 3 running pods: 2 injected, 1 skipped by design',
      'no problems found',
      '',
    ].join('\n'),
  );
  assert.equal(run.code, 0);
});

test('check: a broken installation names every problem and exits 1', async () => {
  await healthyInstall();
  // The second webhook's caBundle was overwritten with another CA.
  const other = await generateCa();
  const mwc = fake.get('mutatingwebhookconfigurations', undefined, 'envoy-injector') as KubeObject;
  mwc['webhooks'][1].clientConfig.caBundle = Buffer.from(other.cert).toString('base64');
  fake.put('mutatingwebhookconfigurations', mwc);
  // No replica is ready.
  endpoints([false, false]);
  // Pods created while the webhook was down, before a config change, or with a now-invalid annotation.
  pod('shop', 'created-while-down');
  const older = loadConfig({ file: MANIFEST_CONFIG, env: { POD_NAMESPACE: NAMESPACE, ENVOY_INJECTOR_PROXY_CONCURRENCY: '4' } });
  pod('shop', 'old-config', { injectedWith: older });
  const olderHash = hashProxyConfig(defaultProxyConfig(older, runtime), runtime.version);
  pod('shop', 'bad-annotation', { annotations: { 'envoy-injector.io/concurrency': 'lots' } });
  pod('default', 'opted-in-missed', { labels: { 'envoy-injector.io/inject': 'enabled' } });

  const run = await cli(['check', '-c', MANIFEST_CONFIG, '--kubeconfig', kubeconfig, '-n', NAMESPACE]);
  assert.equal(run.stderr, '');
  assert.equal(run.code, 1);
  const lines = run.stdout.trimEnd().split('\n');
  assert.deepEqual(lines.slice(2, 4), [
    'FAIL  the caBundle of webhook by-pod-label.envoy-injector.io does not trust the serving certificate in Secret envoy-injector/envoy-injector-tls: the API server\'s calls fail TLS',
    'FAIL  Service envoy-injector/envoy-injector has no ready endpoints (2 not ready): pod creations the webhooks match fail while it has none',
  ]);
  for (const expected of [
    'FAIL  default/opted-in-missed: runs without the proxy, would be injected now (enabled-by-pod-label); it was created while the webhook was unreachable or before injection was enabled — restart its workload',
    'FAIL  shop/created-while-down: runs without the proxy, would be injected now (enabled-by-namespace); it was created while the webhook was unreachable or before injection was enabled — restart its workload',
    `WARN  shop/old-config: stale proxy: envoy --concurrency 4 → 2 (config hash ${olderHash} from ${VERSION}, now ${HASH}) — restart its workload to update it`,
    'INFO  default: 2 running pods: 1 injected, 1 not injected',
    'INFO  shop: 6 running pods: 2 injected, 1 stale, 1 not injected, 1 would be refused, 1 skipped by design',
    '4 failures, 2 warnings',
  ]) {
    assert.ok(lines.includes(expected), `missing line:\n${expected}\nin:\n${run.stdout}`);
  }
  assert.match(run.stdout, /^WARN {2}shop\/bad-annotation: runs without the proxy, and would be refused now: .*envoy-injector\.io\/concurrency="lots"/m);
  assert.notEqual(olderHash, HASH);

  // JSON output carries the same findings.
  const json = await inProcess(runCheck, ['-c', MANIFEST_CONFIG, '--kubeconfig', kubeconfig, '-n', NAMESPACE, '-o', 'json']);
  assert.equal(json.code, 1);
  const findings = JSON.parse(json.stdout) as { code: FindingCode; level: string; check: string; message: string }[];
  assert.equal(findings.filter((f) => f.level === 'fail').length, 4);
  for (const f of findings) {
    assert.deepEqual(Object.keys(f), ['code', 'level', 'check', 'message', ...(f.code === 'pod-stale-proxy' ? ['differences'] : [])]);
    assert.equal(f.level, FINDINGS[f.code].level, `${f.code} has its table's level`);
    assert.equal(f.check, FINDINGS[f.code].check, `${f.code} has its table's check`);
  }
  assert.deepEqual(
    findings.filter((f) => f.check === 'pods' && f.level !== 'ok').map((f) => f.code),
    ['pod-not-injected', 'pod-would-be-denied', 'pod-not-injected', 'pod-stale-proxy', 'pods-need-attention', 'pods-need-attention'],
  );
  assert.deepEqual([...new Set(findings.map((f) => f.check))], ['webhook-configuration', 'ca-bundle', 'service', 'nodes', 'namespaces', 'pods']);
  // What differs for the stale pod, as data.
  assert.deepEqual((findings.find((f) => f.code === 'pod-stale-proxy') as { differences?: unknown } | undefined)?.differences, [
    { what: 'envoy --concurrency', pod: '4', now: '2' },
  ]);
});

test('check: a missing installation and API errors are one clear line each', async () => {
  await healthyInstall();
  fake.remove('mutatingwebhookconfigurations', undefined, 'envoy-injector');
  fake.remove('secrets', NAMESPACE, config.tls.secretName);
  const missing = await inProcess(runCheck, ['-c', MANIFEST_CONFIG, '--kubeconfig', kubeconfig, '-n', NAMESPACE]);
  assert.equal(missing.code, 1);
  assert.match(missing.stdout, /^FAIL {2}MutatingWebhookConfiguration envoy-injector not found: nothing calls the injector \(install it: kubectl apply -k manifests\/\)$/m);
  assert.match(missing.stdout, /^FAIL {2}Secret envoy-injector\/envoy-injector-tls not found: the replicas have not created their certificate yet \(are they running\?\)$/m);

  const badToken = join(dir, 'bad-kubeconfig');
  writeFileSync(badToken, readFileSync(kubeconfig, 'utf8').replace(fake.token, 'wrong-token'));
  const unauthorized = await cli(['check', '-c', MANIFEST_CONFIG, '--kubeconfig', badToken]);
  assert.equal(unauthorized.code, 1);
  assert.equal(unauthorized.stdout, '');
  assert.equal(unauthorized.stderr, 'envoy-injector: reading MutatingWebhookConfiguration envoy-injector: Unauthorized (HTTP 401)\n');

  const none = await cli(['check', '-c', MANIFEST_CONFIG]);
  assert.equal(none.code, 2);
  assert.equal(none.stderr, 'envoy-injector: no cluster configured: set KUBECONFIG or pass --kubeconfig\n');
  const badContext = await inProcess(runCheck, ['--kubeconfig', kubeconfig, '--context', 'prod']);
  assert.equal(badContext.code, 2);
  assert.equal(badContext.stderr, 'envoy-injector: --context: the kubeconfig has no context "prod"\n');
});

test('certs: writes a CA and a serving certificate for the names given, keeping the CA on the next run', async () => {
  const out = join(dir, 'certs');
  const first = await cli(['certs', '--out', out, '--service', 'envoy-injector', '-n', 'mesh', '--dns-name', 'webhook.example.test,10.0.0.1']);
  assert.equal(first.code, 0, first.stderr);
  const ca = new X509Certificate(readFileSync(join(out, 'ca.crt')));
  const cert = new X509Certificate(readFileSync(join(out, 'tls.crt')));
  assert.ok(ca.ca && !cert.ca);
  assert.ok(cert.verify(ca.publicKey));
  assert.ok(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(readFileSync(join(out, 'tls.key')))));
  for (const name of ['envoy-injector', 'envoy-injector.mesh', 'envoy-injector.mesh.svc', 'envoy-injector.mesh.svc.cluster.local', 'webhook.example.test', '10.0.0.1']) {
    assert.ok(certificateCovers(cert, name), name);
  }
  assert.equal(statSync(join(out, 'tls.key')).mode & 0o077, 0);
  assert.equal(statSync(join(out, 'ca.key')).mode & 0o077, 0);
  assert.match(first.stdout, /^wrote .*ca\.crt \(CA, expires \d{4}-\d\d-\d\d; new: no CA in the directory\)$/m);
  assert.match(first.stdout, /^wrote .*tls\.crt \(names: envoy-injector, envoy-injector\.mesh, envoy-injector\.mesh\.svc, envoy-injector\.mesh\.svc\.cluster\.local, webhook\.example\.test, 10\.0\.0\.1; expires/m);
  const caBundle = /^caBundle \(base64 of .*\): (\S+)$/m.exec(first.stdout)?.[1] ?? '';
  assert.ok(bundleTrusts(Buffer.from(caBundle, 'base64').toString(), readFileSync(join(out, 'tls.crt'), 'utf8')));

  // Again with other names and a shorter validity: same CA, new certificate.
  const second = await inProcess(runCerts, ['--out', out, '--dns-name', 'localhost', '--days', '30']);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /^kept .*ca\.crt/m);
  assert.equal(new X509Certificate(readFileSync(join(out, 'ca.crt'))).fingerprint256, ca.fingerprint256);
  const renewed = new X509Certificate(readFileSync(join(out, 'tls.crt')));
  assert.ok(renewed.verify(ca.publicKey));
  assert.ok(certificateCovers(renewed, 'localhost') && !certificateCovers(renewed, 'webhook.example.test'));
  assert.ok(new Date(renewed.validTo).getTime() < Date.now() + 31 * 24 * 3600 * 1000);

  // --new-ca replaces it; without names the config's Service names are used.
  const third = await inProcess(runCerts, ['-c', MANIFEST_CONFIG, '--out', out, '--new-ca']);
  assert.equal(third.code, 0, third.stderr);
  assert.notEqual(new X509Certificate(readFileSync(join(out, 'ca.crt'))).fingerprint256, ca.fingerprint256);
  assert.ok(certificateCovers(new X509Certificate(readFileSync(join(out, 'tls.crt'))), 'envoy-injector.envoy-injector.svc'));

  for (const [args, message] of [
    [['--dns-name', 'not a name'], /^envoy-injector: --dns-name: "not a name" is neither a DNS name nor an IP address\n$/],
    [['--days', '0'], /^envoy-injector: --days must be a whole number of days from 1 to 3650, got "0"\n$/],
    [['--bogus'], /^envoy-injector: unknown flag --bogus; see envoy-injector certs --help\n$/],
  ] as const) {
    const bad = await inProcess(runCerts, ['--out', out, ...args]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, message);
  }
  rmSync(join(out, 'ca.key'));
  const half = await inProcess(runCerts, ['--out', out]);
  assert.equal(half.code, 1);
  assert.match(half.stderr, /^envoy-injector: .*ca\.key is missing while its pair is there; remove the other or pass --new-ca\n$/);
});

test('certs: a ca.key that does not belong to ca.crt fails with one line and writes nothing', async () => {
  const first = join(dir, 'mismatch-1');
  const second = join(dir, 'mismatch-2');
  for (const out of [first, second]) assert.equal((await inProcess(runCerts, ['--out', out, '--dns-name', 'a.example'])).code, 0);
  // The key of another CA lands next to the first CA's certificate (a copy from the wrong directory).
  writeFileSync(join(first, 'ca.key'), readFileSync(join(second, 'ca.key')));
  const before = Object.fromEntries(['ca.crt', 'ca.key', 'tls.crt', 'tls.key'].map((f) => [f, readFileSync(join(first, f), 'utf8')]));

  const run = await cli(['certs', '--out', first, '--dns-name', 'a.example']);
  assert.equal(run.code, 1);
  assert.equal(run.stdout, '');
  assert.equal(
    run.stderr,
    `envoy-injector: ${join(first, 'ca.key')} is not the key of the CA in ${join(first, 'ca.crt')}: put the matching key there, or pass --new-ca to make a new CA (then update every caBundle that trusts the old one)\n`,
  );
  for (const [file, text] of Object.entries(before)) assert.equal(readFileSync(join(first, file), 'utf8'), text, `${file} unchanged`);
  // What was there still verifies: the serving certificate against the CA.
  assert.ok(bundleTrusts(before['ca.crt'] as string, before['tls.crt'] as string));

  // A key that does not parse at all is one line too.
  writeFileSync(join(first, 'ca.key'), 'not a key\n');
  const garbage = await inProcess(runCerts, ['--out', first, '--dns-name', 'a.example']);
  assert.equal(garbage.code, 1);
  assert.match(garbage.stderr, /^envoy-injector: .*ca\.key does not hold a private key \(.*\): put the CA's key there, or pass --new-ca to make a new CA.*\n$/);
  assert.equal(readFileSync(join(first, 'tls.crt'), 'utf8'), before['tls.crt']);
});

test('check: a dual-stack Service counts each replica once, however many EndpointSlices list it', async () => {
  await healthyInstall();
  fake.remove('endpointslices', NAMESPACE, 'envoy-injector-abcde');
  // One replica, as the EndpointSlice controller writes it on a dual-stack cluster: a slice per family.
  const replica = { kind: 'Pod', namespace: NAMESPACE, name: 'envoy-injector-7d9f8-x2x4z', uid: '5a1c6a43-7f76-4c1b-9a3e-0f1d2c3b4a59' };
  for (const [suffix, addressType, address] of [['v4', 'IPv4', '10.0.0.10'], ['v6', 'IPv6', 'fd00:10::a']] as const) {
    fake.put('endpointslices', {
      metadata: { name: `envoy-injector-${suffix}`, namespace: NAMESPACE, labels: { 'kubernetes.io/service-name': 'envoy-injector' } },
      addressType,
      endpoints: [{ addresses: [address], conditions: { ready: true, serving: true, terminating: false }, targetRef: replica, nodeName: 'node-a' }],
      ports: [{ name: 'https', port: 8443, protocol: 'TCP' }],
    });
  }
  const run = await inProcess(runCheck, ['-c', MANIFEST_CONFIG, '--kubeconfig', kubeconfig, '-n', NAMESPACE]);
  assert.match(run.stdout, /^WARN {2}Service envoy-injector\/envoy-injector: 1 ready endpoint; one replica is a single point of failure$/m);

  // A second replica, ready in one family only while it starts: two replicas, one of them not ready.
  const second = { ...replica, name: 'envoy-injector-7d9f8-k8pq1', uid: '0b7e2f9c-3d41-4f6a-8c2b-6e5d4c3b2a19' };
  const v4 = fake.get('endpointslices', NAMESPACE, 'envoy-injector-v4') as KubeObject;
  v4['endpoints'].push({ addresses: ['10.0.0.11'], conditions: { ready: false }, targetRef: second });
  fake.put('endpointslices', v4);
  const v6 = fake.get('endpointslices', NAMESPACE, 'envoy-injector-v6') as KubeObject;
  v6['endpoints'].push({ addresses: ['fd00:10::b'], conditions: { ready: false }, targetRef: second });
  fake.put('endpointslices', v6);
  const again = await inProcess(runCheck, ['-c', MANIFEST_CONFIG, '--kubeconfig', kubeconfig, '-n', NAMESPACE]);
  assert.match(again.stdout, /^WARN {2}Service envoy-injector\/envoy-injector: 1 ready endpoint \(1 not ready\); one replica is a single point of failure$/m);
});

test('check: labelled namespaces whose Pod Security level refuses envoy-init are warned about', async () => {
  await healthyInstall();
  namespace('shop', { 'envoy-injector.io/inject': 'enabled', 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'v1.30' });
  namespace('payments', { 'envoy-injector.io/inject': 'enabled', 'pod-security.kubernetes.io/enforce': 'baseline' });
  namespace('batch', { 'envoy-injector.io/inject': 'enabled', 'pod-security.kubernetes.io/enforce': 'privileged', 'pod-security.kubernetes.io/warn': 'restricted' });
  // Not labelled for injection: its level does not matter to the injector.
  namespace('web', { 'pod-security.kubernetes.io/enforce': 'restricted' });
  const run = await inProcess(runCheck, ['-c', MANIFEST_CONFIG, '--kubeconfig', kubeconfig, '-n', NAMESPACE]);
  const json = await inProcess(runCheck, ['-c', MANIFEST_CONFIG, '--kubeconfig', kubeconfig, '-n', NAMESPACE, '-o', 'json']);
  const findings = JSON.parse(json.stdout) as { level: string; check: string; message: string }[];
  const label = { ok: 'OK  ', info: 'INFO', warn: 'WARN', fail: 'FAIL' } as Record<string, string>;
  const namespaceLines = findings.filter((f) => f.check === 'namespaces').map((f) => `${label[f.level]}  ${f.message}`);
  for (const line of namespaceLines) assert.ok(run.stdout.includes(`${line}\n`), `printed: ${line}`);
  assert.deepEqual(namespaceLines, [
    'OK    3 namespaces labelled envoy-injector.io/inject=enabled: batch, payments, shop',
    'WARN  payments enforces Pod Security "baseline": every injected pod is refused there, since envoy-init runs as root with NET_ADMIN and NET_RAW in capture mode init; use capture.mode cni (README "CNI mode"), set pod-security.kubernetes.io/enforce=privileged on the namespace (or exempt it in the API server\'s PodSecurity configuration), or stop injecting there',
    'WARN  shop enforces Pod Security "restricted": every injected pod is refused there, since envoy-init runs as root with NET_ADMIN and NET_RAW in capture mode init; use capture.mode cni (README "CNI mode"), set pod-security.kubernetes.io/enforce=privileged on the namespace (or exempt it in the API server\'s PodSecurity configuration), or stop injecting there',
    'INFO  batch: kubectl prints a Pod Security warning for every injected pod (pod-security.kubernetes.io/warn=restricted): envoy-init runs as root with NET_ADMIN and NET_RAW in capture mode init (capture mode cni would not warn)',
    'INFO  both capture modes are admitted in: batch',
    'INFO  labelled but excluded (never injected): kube-system',
  ]);
  assert.equal(run.code, 0, 'warnings only');
});

test('check: nodes whose kubelet is older than 1.29, with native sidecars possible, are warned about', async () => {
  await healthyInstall();
  fake.put('nodes', nodeObject('node-c', 'v1.28.15-eks-c9a6e6e'));
  const nodeLines = (stdout: string) => stdout.split('\n').filter((l) => /kubelet|nativeSidecar/.test(l));

  // auto: classic sidecars for replicas starting now, but one started before node-c joined is native.
  const auto = await inProcess(runCheck, ['-c', MANIFEST_CONFIG, '--kubeconfig', kubeconfig, '-n', NAMESPACE]);
  assert.deepEqual(nodeLines(auto.stdout), [
    'WARN  1 of 3 nodes runs a kubelet older than 1.29 (node-c v1.28.15-eks-c9a6e6e): nativeSidecar auto gives classic sidecars while they remain, but a replica started before such a node joined still injects native sidecars, which hang in Init there — restart the injector after adding one (kubectl -n envoy-injector rollout restart deployment/envoy-injector)',
  ]);

  // true: every injected pod that lands on node-c hangs.
  const forced = await cli(['check', '-c', MANIFEST_CONFIG, '--kubeconfig', kubeconfig, '-n', NAMESPACE], { ENVOY_INJECTOR_NATIVE_SIDECAR: 'true' });
  assert.equal(forced.stderr, '');
  assert.deepEqual(nodeLines(forced.stdout), [
    'WARN  1 of 3 nodes runs a kubelet older than 1.29 (node-c v1.28.15-eks-c9a6e6e): with nativeSidecar true, injected pods scheduled there hang in Init (the envoy init container never exits) — set nativeSidecar to auto or false, or upgrade those nodes',
  ]);

  // false: the kubelets do not matter, and the nodes are not even listed.
  fake.requests.length = 0;
  const classic = await cli(['check', '-c', MANIFEST_CONFIG, '--kubeconfig', kubeconfig, '-n', NAMESPACE], { ENVOY_INJECTOR_NATIVE_SIDECAR: 'false' });
  assert.deepEqual(nodeLines(classic.stdout), []);
  assert.equal(fake.requests.filter((r) => r.resource === 'nodes').length, 0);

  // Nodes that may not be listed: said, not guessed.
  fake.hook = (request) =>
    request.resource === 'nodes' ? { status: 403, reason: 'Forbidden', message: 'nodes is forbidden: User "jane" cannot list resource "nodes" in API group "" at the cluster scope' } : undefined;
  const refused = await inProcess(runCheck, ['-c', MANIFEST_CONFIG, '--kubeconfig', kubeconfig, '-n', NAMESPACE]);
  assert.deepEqual(nodeLines(refused.stdout), [
    'WARN  nativeSidecar auto: could not list the nodes to check their kubelets (listing nodes: nodes is forbidden: User "jane" cannot list resource "nodes" in API group "" at the cluster scope (HTTP 403))',
  ]);
  fake.hook = undefined;
});
