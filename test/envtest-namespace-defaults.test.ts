// Namespace defaults (SPEC.md §4b), proxy mounts and ADS volumes against real kube-apiservers
// (KUBEBUILDER_ASSETS; once per version), with the webhook as `npm start` runs it: `serve` in a
// child process with the API server's kubeconfig, so its namespace watch cache lists and watches
// that API server. A namespace's annotations change the pods injected in it, the pod's own
// annotation wins, an invalid namespace value denies the pod naming the namespace annotation, and
// an annotation changed after start is seen. Pods with proxy mounts and ADS CA / client
// certificate volumes are stored exactly as the core injects them.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadConfig } from '../src/config.ts';
import { INJECT_LABEL, SIDECAR_CONTAINER_NAME, STATUS_ANNOTATION } from '../src/constants.ts';
import { admissionContext } from '../src/core/context.ts';
import { injectPod } from '../src/core/inject.ts';
import type { InjectorConfig, InjectorRuntime } from '../src/core/types.ts';
import { describeApiServers, waitFor } from './support/envtest.ts';
import { startServe, webhookConfigurationByUrl, type ServeProcess } from './support/envtest-webhook.ts';

type Obj = Record<string, any>;

const ENABLED = { [INJECT_LABEL]: 'enabled' };
const pod = (name: string, annotations: Record<string, string> = {}): Obj => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, annotations },
  spec: { containers: [{ name: 'app', image: 'app:1' }] },
});
const allContainers = (p: Obj): Obj[] => [...(p['spec']['initContainers'] ?? []), ...p['spec']['containers']];
const initArgs = (p: Obj): string[] => allContainers(p).find((c) => c['name'] === 'envoy-init')?.['args'] ?? [];
const envoyOf = (p: Obj): Obj => allContainers(p).find((c) => c['name'] === SIDECAR_CONTAINER_NAME) as Obj;

describeApiServers('namespace defaults, proxy mounts and ADS volumes through a real API server', {}, (api) => {
  let dir = '';
  let webhook: ServeProcess | undefined;
  let config: InjectorConfig;
  // Classic sidecars whatever the version: this suite is about namespaces, not sidecar modes.
  const runtime: InjectorRuntime = { version: '', nativeSidecarSupported: false };

  /** Creates a labelled namespace with `annotations`, and its default ServiceAccount. */
  async function createNamespace(name: string, annotations: Record<string, string>): Promise<void> {
    await api().ok('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: ENABLED, annotations } });
    await api().ensureServiceAccount(name, 'default');
  }

  /** What the core makes of `p` in `namespace` with `annotations` as that namespace's defaults. */
  function expected(p: Obj, namespace: string, annotations: Record<string, string>): Obj {
    const result = injectPod(p, admissionContext({ namespace, namespaceAnnotations: annotations }), config, { ...runtime, version: String(webhook?.listening['version']) });
    assert.equal(result.decision.action, 'inject');
    return result.pod as Obj;
  }

  /**
   * Waits until every admission line written so far has been read: the lines come over a pipe,
   * in order, and may lag behind the API server's answer. A marker admission (a dry run in `probe`)
   * written after them is waited for instead of a fixed delay.
   */
  let markers = 0;
  async function linesSettled(): Promise<void> {
    const name = `marker-${++markers}`;
    const response = await api().request('POST', '/api/v1/namespaces/probe/pods?dryRun=All', pod(name));
    assert.equal(response.status, 201, response.body?.message);
    await waitFor(`the admission line of ${name}`, () => webhook?.admissions('probe').some((l) => l['pod'] === name), {
      timeoutMs: 30_000,
      detail: () => webhook?.tail(10) ?? '',
    });
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'envtest-namespaces-'));
    webhook = await startServe(
      dir,
      { nativeSidecar: 'false', logLevel: 'info', proxy: { ads: { caConfigMap: 'xds-ca', clientCertSecret: 'xds-client-cert' } } },
      { KUBECONFIG: api().kubeconfig },
    );
    assert.equal(webhook.listening['namespaceDefaults'], 'from the namespace watch cache');
    assert.ok(webhook.lines.some((l) => l['msg'] === 'namespace cache synced'), '/readyz answered 200 only once the cache was filled');
    config = loadConfig({ file: webhook.configFile, env: {} });
    await api().ok('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', webhookConfigurationByUrl(webhook.url, webhook.caPem));
    await api().createNamespace('probe', ENABLED);
    await waitFor('the API server to call the webhook', async () => {
      const response = await api().request('POST', '/api/v1/namespaces/probe/pods?dryRun=All', pod('probe'));
      return response.status === 201 && response.body.metadata.annotations?.[STATUS_ANNOTATION] !== undefined;
    }, { timeoutMs: 60_000, detail: () => webhook?.tail(10) ?? '' });
  });

  after(async () => {
    await webhook?.stop();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  test('a namespace\'s annotations are its pods\' defaults: mounts and ADS volumes stored as the core injects them', async () => {
    const annotations = {
      'envoy-injector.io/exclude-outbound-ports': '5432',
      'envoy-injector.io/proxy-mounts': 'secret/shop-tls=/etc/shop/tls,configmap/shop-lua=/etc/envoy-lua',
      'envoy-injector.io/ads-address': 'xds.shop-mesh.svc:15012',
    };
    // Created just before its first pod: the webhook may see the pod before the watch event.
    await createNamespace('shop', annotations);
    const response = await api().request('POST', '/api/v1/namespaces/shop/pods', pod('web'));
    assert.equal(response.status, 201, response.body?.message);
    const stored = response.body as Obj;
    assert.ok(initArgs(stored).includes('--exclude-outbound-ports=5432'));
    assert.ok(initArgs(stored).includes('--ads-address=xds.shop-mesh.svc:15012'));
    const want = expected(pod('web'), 'shop', annotations);
    assert.equal(stored.metadata.annotations[STATUS_ANNOTATION], want['metadata']['annotations'][STATUS_ANNOTATION]);
    // The injected volumes and envoy's mounts, as the API server stored them (it adds its defaults, e.g. defaultMode).
    const names = (stored['spec']['volumes'] as Obj[]).map((v) => v['name']);
    for (const volume of want['spec']['volumes'] as Obj[]) assert.ok(names.includes(volume['name']), `volume ${volume['name']} stored`);
    const byName = Object.fromEntries((stored['spec']['volumes'] as Obj[]).map((v) => [v['name'], v]));
    assert.equal(byName['envoy-ads-ca']?.configMap?.name, 'xds-ca');
    assert.deepEqual(byName['envoy-ads-client-cert']?.secret?.items, [{ key: 'tls.crt', path: 'tls.crt' }, { key: 'tls.key', path: 'tls.key' }]);
    const mounts = (envoyOf(stored)['volumeMounts'] as Obj[]).filter((m) => m['name'] !== 'kube-api-access' && !String(m['name']).startsWith('kube-api-access-'));
    assert.deepEqual(mounts, envoyOf(want)['volumeMounts'], "envoy's mounts, read-only, as injected");
    // Injected once (a reinvocation after the ServiceAccount plugin finds it injected and adds nothing).
    await linesSettled();
    assert.deepEqual(webhook?.admissions('shop').map((l) => l['decision']).filter((d) => d === 'injected'), ['injected']);
  });

  test("the pod's own annotation wins; an invalid namespace value denies the pod, naming the namespace annotation", async () => {
    await createNamespace('own', { 'envoy-injector.io/exclude-outbound-ports': '5432' });
    const own = await api().request('POST', '/api/v1/namespaces/own/pods', pod('web', { 'envoy-injector.io/exclude-outbound-ports': '3306' }));
    assert.equal(own.status, 201, own.body?.message);
    assert.ok(initArgs(own.body).includes('--exclude-outbound-ports=3306'));
    await createNamespace('bad', { 'envoy-injector.io/log-level': 'verbose' });
    const denied = await api().request('POST', '/api/v1/namespaces/bad/pods', pod('web'));
    assert.equal(denied.status, 400, JSON.stringify(denied.body));
    assert.match(denied.body.message, /envoy-injector\.io\/log-level="verbose" on namespace bad \(accepted: /);
    // Its own valid value takes the namespace's out of play.
    const fixed = await api().request('POST', '/api/v1/namespaces/bad/pods', pod('web', { 'envoy-injector.io/log-level': 'info' }));
    assert.equal(fixed.status, 201, fixed.body?.message);
  });

  test('an annotation changed after start is seen through the watch', async () => {
    await createNamespace('later', {});
    const before = await api().request('POST', '/api/v1/namespaces/later/pods?dryRun=All', pod('web'));
    assert.ok(initArgs(before.body).includes('--exclude-outbound-ports='));
    await api().ok('PATCH', '/api/v1/namespaces/later', { metadata: { annotations: { 'envoy-injector.io/exclude-outbound-ports': '6379' } } }, { contentType: 'application/merge-patch+json' });
    await waitFor('the webhook to see the new annotation', async () => {
      const response = await api().request('POST', '/api/v1/namespaces/later/pods?dryRun=All', pod('web'));
      return response.status === 201 && initArgs(response.body).includes('--exclude-outbound-ports=6379');
    }, { timeoutMs: 30_000, detail: () => webhook?.tail(10) ?? '' });
    // Seen from the cache: no read of a namespace it already holds, and no problem logged.
    await linesSettled();
    assert.ok(!webhook?.lines.some((l) => String(l['msg']).startsWith('namespace cache:')), 'no namespace cache problem');
  });
});
