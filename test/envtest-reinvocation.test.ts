// Re-invocation with a second webhook, against real kube-apiservers (KUBEBUILDER_ASSETS; once per
// version): beside the webhook as `npm start` runs it, a Vault-style webhook (a stand-in for
// HashiCorp's agent injector, in this process, over real TLS) adds its own init container. Its
// configuration's name sorts after ours, so the API server calls it second; ours has
// `reinvocationPolicy: IfNeeded` (manifests/), so it is called again. With a classic sidecar the
// Vault container appended after envoy-init would run with the capture on and no proxy: the stored
// pod has envoy-init moved last again, and the webhook logged the `reorder` decision. With a native
// sidecar, one put between envoy-init and envoy is moved out of the way the same; one put first is
// left there (it runs on the plain network, where it works).
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { INJECT_LABEL, INJECT_LABEL_ENABLED, STATUS_ANNOTATION } from '../src/constants.ts';
import { generateBundle } from '../src/tls/certificates.ts';
import { checkInjectedPod } from './support/check-injected.ts';
import { describeApiServers, waitFor } from './support/envtest.ts';
import { startServe, webhookConfigurationByUrl, type ServeProcess } from './support/envtest-webhook.ts';

type Obj = Record<string, any>;

/** Where the stand-in puts its init container, by the pod's annotation (Vault appends by default). */
const POSITION_ANNOTATION = 'test.example/vault-position';

/** The Vault-style webhook: answers every pod CREATE with a patch adding `vault-agent-init`. */
async function startVaultWebhook(): Promise<{ url: string; caPem: string; calls: number; close: () => Promise<void> }> {
  const bundle = await generateBundle(['127.0.0.1']);
  const state = { calls: 0 };
  const server: Server = createServer({ key: bundle.key, cert: bundle.cert }, (req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      state.calls += 1;
      const review = JSON.parse(body) as Obj;
      const pod = review['request']['object'] as Obj;
      const inits = (pod['spec']['initContainers'] ?? []) as Obj[];
      const container = { name: 'vault-agent-init', image: 'hashicorp/vault:1.17', args: ['agent', '-config=/vault/config.hcl', '-exit-after-auth'] };
      const position = pod['metadata']?.['annotations']?.[POSITION_ANNOTATION] ?? 'append';
      const patch = inits.some((c) => c['name'] === 'vault-agent-init')
        ? []
        : inits.length === 0
          ? [{ op: 'add', path: '/spec/initContainers', value: [container] }]
          : [{ op: 'add', path: `/spec/initContainers/${position === 'first' ? 0 : position === 'second' ? 1 : '-'}`, value: container }];
      const response = {
        uid: review['request']['uid'],
        allowed: true,
        ...(patch.length === 0 ? {} : { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') }),
      };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `https://127.0.0.1:${port}`,
    caPem: bundle.caCert,
    get calls() {
      return state.calls;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describeApiServers('re-invocation: a Vault-style webhook adds an init container after the injection', {}, (api, assets) => {
  let dir = '';
  let webhook: ServeProcess | undefined;
  let vault: Awaited<ReturnType<typeof startVaultWebhook>> | undefined;
  const namespace = 'with-vault';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'envtest-reinvocation-'));
    webhook = await startServe(dir, { nativeSidecar: 'false', logLevel: 'info' });
    vault = await startVaultWebhook();
    await api().ok('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', webhookConfigurationByUrl(webhook.url, webhook.caPem));
    // Sorted after "envoy-injector", it is called second, as a Vault injector installed beside it.
    await api().ok('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: 'vault-agent-injector-cfg' },
      webhooks: [
        {
          name: 'vault.hashicorp.com',
          clientConfig: { url: `${vault.url}/mutate`, caBundle: Buffer.from(vault.caPem).toString('base64') },
          rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
          namespaceSelector: { matchLabels: { 'vault-injection': 'enabled' } },
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
          failurePolicy: 'Fail',
          reinvocationPolicy: 'Never',
        },
      ],
    });
    await api().createNamespace(namespace, { [INJECT_LABEL]: INJECT_LABEL_ENABLED, 'vault-injection': 'enabled' });
    // Both configurations are picked up from the API server's informer: wait until a dry run has both.
    const probe = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'probe' }, spec: { containers: [{ name: 'app', image: 'app' }] } };
    await waitFor('the API server to call both webhooks', async () => {
      const response = await api().request('POST', `/api/v1/namespaces/${namespace}/pods?dryRun=All`, probe);
      const names = ((response.body?.spec?.initContainers ?? []) as Obj[]).map((c) => c['name']);
      return response.status === 201 && response.body.metadata.annotations?.[STATUS_ANNOTATION] !== undefined && names.includes('vault-agent-init');
    }, { timeoutMs: 60_000, detail: () => webhook?.tail(10) ?? '' });
  });

  after(async () => {
    await webhook?.stop();
    await vault?.close();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  /** Creates a pod; returns it as stored, with our webhook's admission log lines for it. */
  async function create(name: string, annotations: Record<string, string> = {}, spec: Obj = {}) {
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name, annotations }, spec: { containers: [{ name: 'app', image: 'app' }], ...spec } };
    const stored = (await api().ok('POST', `/api/v1/namespaces/${namespace}/pods`, pod)) as Obj;
    const lines = () => (webhook?.admissions(namespace) ?? []).filter((l) => l['pod'] === name);
    await waitFor(`the admission log lines of ${name}`, () => lines().length >= 2, { timeoutMs: 10_000 });
    return { stored, inits: (stored['spec']['initContainers'] as Obj[]).map((c) => c['name'] as string), decisions: lines().map((l) => [l['decision'], l['reasons']]) };
  }

  test('classic sidecar: Vault appends vault-agent-init after envoy-init; the re-invocation moves envoy-init last again', async () => {
    const { stored, inits, decisions } = await create('classic');
    assert.deepEqual(inits, ['vault-agent-init', 'envoy-init'], 'the stored order: Vault first, on the plain network, then the capture');
    assert.deepEqual(decisions[0], ['injected', ['enabled-by-namespace']]);
    assert.deepEqual(decisions[1], ['reordered', ['envoy-init-not-last']]);
    // Any further call (the ServiceAccount plugin's changes) found nothing more to do.
    for (const decision of decisions.slice(2)) assert.deepEqual(decision, ['skipped', ['already-injected']]);
    checkInjectedPod(stored);
  });

  test('a Vault container put first is left there: envoy-init is last already', async () => {
    const { inits, decisions } = await create('first', { [POSITION_ANNOTATION]: 'first' }, { initContainers: [{ name: 'migrate', image: 'migrate' }] });
    assert.deepEqual(inits, ['vault-agent-init', 'migrate', 'envoy-init']);
    assert.deepEqual(decisions[1], ['skipped', ['already-injected']]);
  });

  test('native sidecar: a container put between envoy-init and envoy is moved after envoy', { skip: assets.minor < 29 ? 'native sidecars need Kubernetes 1.29' : false }, async () => {
    const { stored, inits, decisions } = await create('native', { 'envoy-injector.io/native-sidecar': 'true', [POSITION_ANNOTATION]: 'second' });
    assert.deepEqual(inits, ['envoy-init', 'envoy', 'vault-agent-init']);
    assert.deepEqual(decisions[1], ['reordered', ['envoy-not-after-envoy-init']]);
    checkInjectedPod(stored);
    assert.ok((vault?.calls ?? 0) > 0);
  });
});
