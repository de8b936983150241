// End to end against real kube-apiservers (KUBEBUILDER_ASSETS; once per version): the webhook as
// `npm start` runs it (`serve` in a child process, local TLS, a config file) is registered with the
// MutatingWebhookConfiguration of manifests/ pointed at it by URL with the generated CA. Every
// workload of the corpus is created as the Pod its controller would create, in a namespace labelled
// for injection and, as a control, in an unlabelled twin namespace. The expectation is computed by
// the core (injectPod) for the same pod:
//  - injected: stored with exactly one envoy and envoy-init (classic on 1.26, native on 1.30), the
//    status annotation the core computes, the injected containers as the core built them, and the
//    rest of the pod exactly as the API server stores the control; the ServiceAccount plugin edits
//    the pod after us, the webhook is called again (reinvocationPolicy IfNeeded) and adds nothing;
//  - skipped: stored exactly as the control, the reasons in the webhook's log;
//  - denied: refused by the webhook with the core's message;
//  - refused by the API server itself: the control is refused with the same message (its own
//    validation, not the injection), recorded with the reason.
// Warnings reach the client as the core wrote them. Unlabelled namespaces never reach the webhook;
// opt-outs are stored untouched; Pod Security levels refuse injected pods exactly where `check` warns.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { describeTarget, findPodTargets, parseDocuments } from '../src/cli/documents.ts';
import { loadConfig } from '../src/config.ts';
import { INIT_CONTAINER_NAME, INJECT_ANNOTATION, INJECT_LABEL, SIDECAR_CONTAINER_NAME, STATUS_ANNOTATION } from '../src/constants.ts';
import { admissionContext } from '../src/core/context.ts';
import { injectPod, type InjectionResult } from '../src/core/inject.ts';
import { parseStatus } from '../src/core/status.ts';
import type { InjectorConfig, InjectorRuntime } from '../src/core/types.ts';
import { podSecurityFindings } from '../src/check/assess.ts';
import { detectNativeSidecarSupport } from '../src/kube/version.ts';
import { formatWarnings, RESULT_OF_ACTION } from '../src/server/admission.ts';
import { runtimeFor } from '../src/runtime.ts';
import { checkInjectedPod } from './support/check-injected.ts';
import { describeApiServers, waitFor, type ApiResponse } from './support/envtest.ts';
import { startServe, webhookConfigurationByUrl, webhooksCalled, type ServeProcess } from './support/envtest-webhook.ts';
import { podForTarget, podLogName } from './support/workload-pods.ts';

type Obj = Record<string, any>;

const CORPUS = new URL('./testdata/corpus/', import.meta.url).pathname;
const FILES = readdirSync(CORPUS).filter((f) => f.endsWith('.yaml')).sort();
const ENABLED = { [INJECT_LABEL]: 'enabled' };
/** The volume the ServiceAccount admission plugin adds, named kube-api-access-<random>. */
const SA_VOLUME = /^kube-api-access-[a-z0-9]{5}$/;

/** What happened to each corpus pod, by outcome, for the closing counts. */
interface Tally {
  injected: string[];
  skipped: string[];
  denied: string[];
  refused: { target: string; message: string }[];
}

/** A pod as stored, without what differs between two namespaces or two creations. */
function comparable(pod: Obj): Obj {
  const copy = structuredClone(pod);
  for (const key of ['name', 'namespace', 'uid', 'resourceVersion', 'creationTimestamp', 'managedFields', 'selfLink']) delete copy.metadata[key];
  delete copy.status;
  // A control in an unlabelled namespace goes without the opt-in label (the webhook would see it).
  if (copy.metadata.labels?.[INJECT_LABEL] === 'enabled') delete copy.metadata.labels[INJECT_LABEL];
  // The ServiceAccount plugin's volume has a random suffix.
  return JSON.parse(JSON.stringify(copy).replace(/kube-api-access-[a-z0-9]{5}/g, 'kube-api-access-*')) as Obj;
}

/** The stored injected pod without exactly what injection added (per the core's own result). */
function withoutInjection(stored: Obj, input: Obj, expected: InjectionResult): Obj {
  const status = expected.status;
  assert.ok(status !== undefined);
  const copy = structuredClone(stored);
  const addedContainers = new Set([...status.initContainers, ...status.containers]);
  for (const key of ['initContainers', 'containers']) {
    if (copy.spec[key] === undefined) continue;
    copy.spec[key] = (copy.spec[key] as Obj[]).filter((c) => !addedContainers.has(c['name']));
    if (copy.spec[key].length === 0 && input['spec']?.[key] === undefined) delete copy.spec[key];
  }
  copy.spec.volumes = (copy.spec.volumes as Obj[]).filter((v) => !status.volumes.includes(v['name']));
  if (copy.spec.volumes.length === 0 && input['spec']?.volumes === undefined) delete copy.spec.volumes;
  const inputAnnotations = input['metadata']?.annotations ?? {};
  for (const key of Object.keys((expected.pod as Obj | undefined)?.['metadata']?.['annotations'] ?? {})) {
    if (!(key in inputAnnotations)) delete copy.metadata.annotations[key];
  }
  if (Object.keys(copy.metadata.annotations ?? {}).length === 0 && input['metadata']?.annotations == null) delete copy.metadata.annotations;
  return copy;
}

/**
 * Asserts that `actual` holds everything `expected` holds (objects: every key; arrays: the same
 * length, element by element), allowing the API server's defaults on top. The ServiceAccount
 * plugin's token mount is left out of volumeMounts first.
 */
function assertContains(actual: unknown, expected: unknown, path: string): void {
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path}: an array`);
    const items = path.endsWith('.volumeMounts') ? actual.filter((m: Obj) => !SA_VOLUME.test(m['name'])) : actual;
    assert.equal(items.length, expected.length, `${path}: ${expected.length} items`);
    expected.forEach((item, i) => assertContains(items[i], item, `${path}[${i}]`));
  } else if (typeof expected === 'object' && expected !== null) {
    assert.ok(typeof actual === 'object' && actual !== null, `${path}: an object`);
    for (const [key, value] of Object.entries(expected)) assertContains((actual as Obj)[key], value, `${path}.${key}`);
  } else {
    assert.deepEqual(actual, expected, path);
  }
}

/**
 * Leaves out of an API server message what differs between twins: list indexes, which injection
 * shifts (`spec.containers[0]` → `[1]`), and the random suffix of generated names.
 */
function withoutIndexes(message: string, pod: Obj): string {
  const generateName = pod['metadata']?.generateName;
  const escaped = typeof generateName === 'string' ? generateName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') : undefined;
  const named = escaped === undefined ? message : message.replace(new RegExp(`${escaped}[a-z0-9]{5}\\b`, 'g'), `${generateName}*`);
  return named.replace(/\[\d+\]/g, '[*]');
}

describeApiServers('admission end to end: the corpus through a real API server and the webhook as npm start runs it', {}, (api, assets) => {
  let dir = '';
  let webhook: ServeProcess | undefined;
  let mwc: Obj = {};
  let config: InjectorConfig;
  let runtime: InjectorRuntime;
  const tally: Tally = { injected: [], skipped: [], denied: [], refused: [] };
  const reinvoked: string[] = [];
  const unlabelled: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'envtest-admission-'));
    // nativeSidecar auto: the server asks this API server its version and lists its nodes (none).
    webhook = await startServe(dir, { nativeSidecar: 'auto', logLevel: 'info' }, { KUBECONFIG: api().kubeconfig });
    config = loadConfig({ file: webhook.configFile, env: {} });
    const kc = new KubeConfig();
    kc.loadFromFile(api().kubeconfig);
    runtime = runtimeFor(await detectNativeSidecarSupport(kc));
    mwc = webhookConfigurationByUrl(webhook.url, webhook.caPem);
    await api().ok('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', mwc);
    // The API server picks the configuration up from its informer: wait until a dry run is injected.
    await api().createNamespace('probe', ENABLED);
    const probe = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'probe' }, spec: { containers: [{ name: 'app', image: 'app' }] } };
    await waitFor('the API server to call the webhook', async () => {
      const response = await api().request('POST', '/api/v1/namespaces/probe/pods?dryRun=All', probe);
      return response.status === 201 && response.body.metadata.annotations?.[STATUS_ANNOTATION] !== undefined;
    }, { timeoutMs: 60_000, detail: () => webhook?.tail(10) ?? '' });
  });

  after(async () => {
    await webhook?.stop();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  test('nativeSidecar auto, asked of the real API server: classic sidecars before 1.29, native from 1.29 (no nodes yet)', () => {
    const native = assets.major > 1 || assets.minor >= 29;
    assert.equal(runtime.nativeSidecarSupported, native);
    const detail = String(webhook?.listening['nativeSidecar']);
    assert.match(detail, new RegExp(`API server ${assets.version.replace(/\./g, '\\.')}`));
    assert.match(detail, native ? /no nodes yet: native sidecars/ : /classic sidecars/);
  });

  test('the webhook is registered as manifests/ has it, by URL with the generated CA', async () => {
    const stored = await api().ok('GET', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${mwc['metadata'].name}`);
    for (const [i, webhookEntry] of (mwc['webhooks'] as Obj[]).entries()) {
      const { clientConfig, ...rest } = webhookEntry;
      assertContains(stored.webhooks[i], rest, `webhooks[${i}]`);
      assert.equal(stored.webhooks[i].clientConfig.url, `${webhook?.url}/mutate`);
      assert.equal(stored.webhooks[i].reinvocationPolicy, 'IfNeeded');
    }
  });

  /** Creates `pod` in `namespace` (strict field validation, as kubectl apply does), its ServiceAccount first. */
  async function create(namespace: string, pod: Obj): Promise<ApiResponse> {
    const account = pod['spec']?.serviceAccountName ?? pod['spec']?.serviceAccount;
    if (typeof account === 'string' && account !== '') await api().ensureServiceAccount(namespace, account);
    return api().request('POST', `/api/v1/namespaces/${namespace}/pods?fieldValidation=Strict`, { ...pod, metadata: { ...pod['metadata'], namespace } });
  }

  /** Waits for the webhook's log lines of a pod (they come over a pipe) and returns them. */
  async function admissionsOf(namespace: string, pod: Obj, count: number): Promise<Obj[]> {
    const name = podLogName(pod);
    const lines = () => (webhook?.admissions(namespace) ?? []).filter((l) => l['pod'] === name);
    if (count > 0) await waitFor(`${count} admission log lines for ${namespace}/${name}`, () => lines().length >= count, { timeoutMs: 10_000 });
    return lines();
  }

  /** What became of one pod. */
  type Outcome = 'injected' | 'skipped' | 'not-sent' | 'denied' | 'refused';

  /**
   * Creates `twin` in the unlabelled `controlNamespace` (the control: what the API server stores, or
   * refuses, without the webhook) and `pod` in `namespace` (labelled `namespaceLabels`), and checks
   * what happened to `pod` against what the core decides for it. Returns the outcome; a refusal's
   * reason is the API server's message.
   */
  async function admitAndCheck(label: string, namespace: string, namespaceLabels: Record<string, string>, pod: Obj, controlNamespace: string, twin: Obj): Promise<{ outcome: Outcome; message: string; stored?: Obj }> {
    const podLabels: Record<string, string> = pod['metadata']?.labels ?? {};
    const expected = injectPod(pod, admissionContext({ namespace }), config, runtime);
    const sent = webhooksCalled(mwc, namespace, namespaceLabels, podLabels).length > 0;
    const twinSent = webhooksCalled(mwc, controlNamespace, {}, twin['metadata']?.labels ?? {}).length > 0;
    assert.ok(!twinSent, `${label}: the control's namespace must not reach the webhook`);
    const control = await create(controlNamespace, twin);
    const response = await create(namespace, pod);
    const message = String(response.body?.message ?? '');

    if (control.status !== 201) {
      // The API server refuses the pod without the webhook too: its own validation.
      assert.notEqual(response.status, 201, `${label}: refused without injection (${control.body?.message}) but stored with it`);
      const webhookDenial = expected.decision.action === 'deny' && sent && message.includes('denied the request');
      if (!webhookDenial) {
        assert.equal(withoutIndexes(message, pod), withoutIndexes(String(control.body?.message), twin), `${label}: refused for the same reason as without injection`);
        return { outcome: 'refused', message: String(control.body?.message) };
      }
    } else {
      // Unlabelled namespaces never reach the webhook: stored as created.
      assert.equal((await admissionsOf(controlNamespace, twin, 0)).length, 0, `${label}: the unlabelled namespace's pod is never sent to the webhook`);
      assert.ok(!(STATUS_ANNOTATION in (control.body.metadata.annotations ?? {})), `${label}: stored untouched in the unlabelled namespace`);
      unlabelled.push(label);
    }
    // The API server's own warnings (deprecated fields, duplicate ports) are the control's too.
    const own = control.warnings.map((w) => withoutIndexes(w, twin));
    const webhookWarnings = response.warnings.filter((w) => !own.includes(withoutIndexes(w, pod)));

    if (!sent) {
      assert.equal(response.status, 201, `${label}: stored (${message})`);
      assert.deepEqual(comparable(response.body), comparable(control.body), `${label}: not sent to the webhook, stored as the control`);
      assert.equal((await admissionsOf(namespace, pod, 0)).length, 0, `${label}: never sent`);
      return { outcome: 'not-sent', message, stored: response.body };
    }
    const lines = await admissionsOf(namespace, pod, 1);
    assert.equal(lines[0]?.['decision'], RESULT_OF_ACTION[expected.decision.action], `${label}: the webhook decided as the core does`);
    assert.deepEqual(lines[0]?.['reasons'], expected.decision.reasons.map((r) => r.code), `${label}: with the core's reasons`);
    assert.deepEqual(webhookWarnings, formatWarnings(expected.warnings.map((w) => w.message)), `${label}: the core's warnings reach the client`);

    switch (expected.decision.action) {
      case 'reorder':
        // Only a pod this webhook injected already can be reordered; a created one never is.
        return assert.fail(`${label}: a pod being created was reordered`);
      case 'deny': {
        assert.equal(response.status, 400, `${label}: denied (${message})`);
        const reasons = expected.decision.reasons.map((r) => r.message).join(' ');
        assert.ok(message.includes(`denied the request: envoy-injector refused to inject the pod: ${reasons}`), `${label}: with the core's message, got ${message}`);
        return { outcome: 'denied', message };
      }
      case 'skip': {
        assert.equal(response.status, 201, `${label}: stored (${message})`);
        assert.deepEqual(comparable(response.body), comparable(control.body), `${label}: skipped (${expected.decision.reasons.map((r) => r.code).join(', ')}), stored as the control`);
        return { outcome: 'skipped', message: expected.decision.reasons.map((r) => r.code).join(', '), stored: response.body };
      }
      case 'inject': {
        assert.equal(response.status, 201, `${label}: stored (${message})`);
        const stored = response.body as Obj;
        const injectedPod = expected.pod as Obj;
        assert.equal(stored.metadata.annotations[STATUS_ANNOTATION], injectedPod['metadata'].annotations[STATUS_ANNOTATION], `${label}: the status annotation the core computes`);
        const status = parseStatus(stored.metadata.annotations[STATUS_ANNOTATION]);
        assert.ok(status !== undefined);
        const native = status.initContainers.includes(SIDECAR_CONTAINER_NAME);
        for (const key of ['initContainers', 'containers'] as const) {
          for (const container of (injectedPod['spec'][key] as Obj[]).filter((c) => [SIDECAR_CONTAINER_NAME, INIT_CONTAINER_NAME].includes(c['name']))) {
            const found = (stored.spec[key] as Obj[]).filter((c) => c['name'] === container['name']);
            assert.equal(found.length, 1, `${label}: one ${container['name']} in ${key}`);
            assertContains(found[0] as Obj, container, `${label}: spec.${key}[${container['name']}]`);
          }
        }
        if (native) assert.equal(stored.spec.initContainers.find((c: Obj) => c.name === SIDECAR_CONTAINER_NAME).restartPolicy, 'Always', `${label}: a native sidecar`);
        // The rest of the pod is exactly what the API server stores without the webhook.
        assert.deepEqual(comparable(withoutInjection(stored, pod, expected)), comparable(control.body), `${label}: the pod's own part is untouched`);
        // Envoy would start with what was stored, and the pod holds every invariant.
        checkInjectedPod(stored);
        // The ServiceAccount plugin mounts its token into the containers we added: the object
        // changed after the webhook, so it was called again, and that call added nothing.
        const envoy = [...(stored.spec.initContainers ?? []), ...stored.spec.containers].find((c: Obj) => c.name === SIDECAR_CONTAINER_NAME);
        const tokenMounted = (envoy.volumeMounts ?? []).some((m: Obj) => SA_VOLUME.test(m['name']));
        const calls = await admissionsOf(namespace, pod, tokenMounted ? 2 : 1);
        assert.equal(calls.length, tokenMounted ? 2 : 1, `${label}: called ${tokenMounted ? 'again after the ServiceAccount plugin' : 'once'}`);
        if (tokenMounted) {
          assert.equal(calls[1]?.['decision'], 'skipped');
          assert.deepEqual(calls[1]?.['reasons'], ['already-injected']);
          reinvoked.push(label);
        }
        return { outcome: 'injected', message: native ? 'native' : 'classic', stored };
      }
    }
  }

  // The files are independent (a namespace pair each): a few at a time keep the API server busy.
  describe('the corpus', { concurrency: 4 }, () => FILES.forEach((file, index) => {
    test(`corpus ${file}`, async () => {
      const targets = parseDocuments(readFileSync(join(CORPUS, file), 'utf8'), file).flatMap((doc, documentIndex) =>
        findPodTargets(doc.toJS({ maxAliasCount: 100 })).map((target) => ({ target, label: `${file}: ${describeTarget(target, documentIndex)}` })),
      );
      const labelled = `corpus-${index}`;
      const plain = `plain-${index}`;
      await api().createNamespace(labelled, ENABLED);
      await api().createNamespace(plain);
      for (const { target, label } of targets) {
        const { outcome, message } = await admitAndCheck(label, labelled, ENABLED, podForTarget(target, labelled), plain, podForTarget(target, plain));
        if (outcome === 'refused') tally.refused.push({ target: label, message });
        else if (outcome === 'not-sent') tally.skipped.push(`${label} (not sent: pod label)`);
        else if (outcome === 'skipped') tally.skipped.push(`${label} (${message})`);
        else tally[outcome].push(label);
      }
    });
  }));

  /** A small app pod, compliant with the restricted Pod Security level on its own. */
  const appPod = (name: string, extra: { labels?: Record<string, string>; annotations?: Record<string, string>; ports?: number[] } = {}): Obj => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: name, ...extra.labels }, ...(extra.annotations === undefined ? {} : { annotations: extra.annotations }) },
    spec: {
      securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'app',
          image: 'registry.example/app:1',
          ports: (extra.ports ?? [8080]).map((containerPort) => ({ containerPort })),
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        },
      ],
    },
  });

  test('opt-outs are stored untouched, opt-ins by pod label are injected, invalid overrides are denied', async () => {
    await api().createNamespace('controls');
    await api().createNamespace('optout', ENABLED);
    await api().createNamespace('off', { [INJECT_LABEL]: 'disabled' });
    await api().createNamespace('unlabelled');
    const cases: { name: string; namespace: string; labels: Record<string, string>; pod: Obj; outcome: Outcome; reason?: RegExp }[] = [
      { name: 'annotation-false', namespace: 'optout', labels: ENABLED, pod: appPod('annotation-false', { annotations: { [INJECT_ANNOTATION]: 'false' } }), outcome: 'skipped', reason: /disabled-by-annotation/ },
      { name: 'label-disabled', namespace: 'optout', labels: ENABLED, pod: appPod('label-disabled', { labels: { [INJECT_LABEL]: 'disabled' } }), outcome: 'not-sent' },
      { name: 'invalid-inject-value', namespace: 'optout', labels: ENABLED, pod: appPod('invalid-inject-value', { annotations: { [INJECT_ANNOTATION]: 'maybe' } }), outcome: 'skipped', reason: /invalid-inject-annotation/ },
      { name: 'namespace-disabled', namespace: 'off', labels: { [INJECT_LABEL]: 'disabled' }, pod: appPod('namespace-disabled', { labels: ENABLED }), outcome: 'not-sent' },
      { name: 'unlabelled-namespace', namespace: 'unlabelled', labels: {}, pod: appPod('unlabelled-namespace'), outcome: 'not-sent' },
      { name: 'pod-label-opt-in', namespace: 'unlabelled', labels: {}, pod: appPod('pod-label-opt-in', { labels: ENABLED }), outcome: 'injected' },
      { name: 'bad-override', namespace: 'optout', labels: ENABLED, pod: appPod('bad-override', { annotations: { 'envoy-injector.io/proxy-cpu': 'lots', 'envoy-injector.io/log-level': 'loud' } }), outcome: 'denied', reason: /proxy-cpu.*lots|log-level.*loud/ },
      { name: 'proxy-port', namespace: 'optout', labels: ENABLED, pod: appPod('proxy-port', { ports: [15001] }), outcome: 'denied', reason: /15001/ },
    ];
    for (const c of cases) {
      // The control carries no pod label that the by-pod-label webhook would match.
      const twin = structuredClone(c.pod);
      if (twin['metadata'].labels[INJECT_LABEL] === 'enabled') delete twin['metadata'].labels[INJECT_LABEL];
      const result = await admitAndCheck(c.name, c.namespace, c.labels, c.pod, 'controls', twin);
      assert.equal(result.outcome, c.outcome, `${c.name}: ${result.message}`);
      if (c.reason !== undefined) assert.match(result.message, c.reason, c.name);
    }
  });

  test('pods with a bootstrap override (the README example) are stored injected: the ConfigMap volume and its read-only mount accepted', async () => {
    const example = new URL('../examples/grpc-web/', import.meta.url).pathname;
    const docs = parseDocuments(readFileSync(join(example, 'app.yaml'), 'utf8'), 'app.yaml').map((d) => d.toJS() as Obj);
    const configMap = docs.find((d) => d['kind'] === 'ConfigMap') as Obj;
    const deployment = docs.find((d) => d['kind'] === 'Deployment') as Obj;
    await api().createNamespace('override', ENABLED);
    await api().createNamespace('override-control');
    await api().ok('POST', '/api/v1/namespaces/override/configmaps', { ...configMap, metadata: { name: configMap['metadata'].name } });
    const template = deployment['spec']['template'];
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { ...template.metadata, name: 'greeter-0' }, spec: template.spec };
    const result = await admitAndCheck('bootstrap-override', 'override', ENABLED, pod, 'override-control', structuredClone(pod));
    assert.equal(result.outcome, 'injected', result.message);
    const stored = result.stored as Obj;
    const volume = (stored['spec']['volumes'] as Obj[]).find((v) => v['name'] === 'envoy-bootstrap-override');
    assert.equal(volume?.['configMap']?.['name'], 'greeter-envoy');
    // What envoy-init would merge from it: strictly valid for Envoy, with the gRPC-Web listener.
    const bootstrap = checkInjectedPod(stored, { overrideText: configMap['data']['envoy.yaml'] });
    assert.ok(bootstrap['static_resources']['listeners'].some((l: Obj) => l['name'] === 'grpc_web'));
    // An invalid name is denied by name before anything is stored.
    const bad = appPod('bad-override-name', { annotations: { 'envoy-injector.io/bootstrap-override': 'Not_A_Name' } });
    const denied = await admitAndCheck('bad-override-name', 'override', ENABLED, bad, 'override-control', structuredClone(bad));
    assert.equal(denied.outcome, 'denied');
    assert.match(denied.message, /envoy-injector\.io\/bootstrap-override.*Not_A_Name/);
  });

  test('a pod asking for a native sidecar: one where the API server has them, a clear denial where it has none', async () => {
    await api().createNamespace('native-asked', ENABLED);
    await api().createNamespace('native-asked-control');
    const pod = appPod('native-asked', { annotations: { 'envoy-injector.io/native-sidecar': 'true' } });
    const { outcome, message, stored } = await admitAndCheck('native-asked', 'native-asked', ENABLED, pod, 'native-asked-control', pod);
    if (runtime.nativeSidecarSupported) {
      assert.equal(outcome, 'injected', message);
      assert.equal((stored?.['spec'].initContainers as Obj[]).find((c) => c['name'] === SIDECAR_CONTAINER_NAME)?.['restartPolicy'], 'Always');
    } else {
      // Injected, the API server would drop restartPolicy from the patch and then refuse the pod for
      // the probes of envoy, a plain init container then: the webhook says why instead.
      assert.equal(outcome, 'denied', message);
      assert.match(message, /API server is older than Kubernetes 1\.29/);
    }
  });

  test('Pod Security: injected pods are refused exactly where check warns (baseline, restricted), stored under privileged', async () => {
    for (const level of ['privileged', 'baseline', 'restricted']) {
      const namespace = `pod-security-${level}`;
      await api().createNamespace(namespace, { ...ENABLED, 'pod-security.kubernetes.io/enforce': level });
      const refusedPerCheck = podSecurityFindings([await api().ok('GET', `/api/v1/namespaces/${namespace}`)]).some((f) => f.level === 'warn');
      const pod = appPod('app');
      const response = await create(namespace, pod);
      const [line] = await admissionsOf(namespace, pod, 1);
      assert.equal(line?.['decision'], 'injected', `${level}: the webhook injected the pod`);
      if (refusedPerCheck) {
        assert.equal(response.status, 403, `${level}: refused (${response.body?.message})`);
        assert.match(response.body.message, new RegExp(`violates PodSecurity "${level}:latest"`));
        assert.match(response.body.message, new RegExp(INIT_CONTAINER_NAME));
        // The same pod without the proxy passes: the refusal is the injection's.
        const optedOut = appPod('opted-out', { annotations: { [INJECT_ANNOTATION]: 'false' } });
        const stored = await create(namespace, optedOut);
        assert.equal(stored.status, 201, `${level}: the opted-out pod is stored (${stored.body?.message})`);
      } else {
        assert.equal(response.status, 201, `${level}: stored (${response.body?.message})`);
        checkInjectedPod(response.body);
      }
    }
  });

  test('the counts: every corpus pod injected, skipped, denied or refused by the API server itself', (t) => {
    const total = tally.injected.length + tally.skipped.length + tally.denied.length + tally.refused.length;
    const summary = `kube-apiserver ${assets.version}: ${total} corpus pods: ${tally.injected.length} stored injected (${runtime.nativeSidecarSupported ? 'native' : 'classic'}), ${tally.skipped.length} skipped, ${tally.denied.length} denied by the webhook, ${tally.refused.length} refused by the API server itself`;
    t.diagnostic(summary);
    for (const { target, message } of tally.refused) t.diagnostic(`refused by the API server: ${target}: ${message}`);
    for (const target of tally.denied) t.diagnostic(`denied: ${target}`);
    for (const target of tally.skipped) t.diagnostic(`skipped: ${target}`);
    process.stderr.write(`${summary}\n`);
    assert.ok(tally.injected.length > 0 && tally.skipped.length > 0, summary);
    assert.ok(reinvoked.length > 0, 'the webhook was called again after the ServiceAccount plugin for some pods');
    assert.ok(unlabelled.length > 0, 'pods were stored untouched in unlabelled namespaces');
    // Now that every log line has arrived: not one request came from the unlabelled namespaces.
    const controls = (webhook?.lines ?? []).filter((l) => l['msg'] === 'admission' && /^(plain-\d+|controls|native-asked-control)$/.test(String(l['namespace'])));
    assert.deepEqual(controls, [], 'the unlabelled namespaces never reached the webhook');
  });
});

