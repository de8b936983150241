// `check` judges fetched objects with a pure function (src/check/assess.ts): these cases need no API
// server. Every finding carries a stable code from one table (src/check/findings.ts), as reasons do.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assessInstallation } from '../src/check/assess.ts';
import { FINDINGS } from '../src/check/findings.ts';
import type { InstallationObjects } from '../src/kube/installation.ts';
import { admissionContext } from '../src/core/context.ts';
import { compareProxy } from '../src/core/differences.ts';
import { injectPod } from '../src/core/inject.ts';
import fc from 'fast-check';
import { legalPod, OVERRIDE_SETTINGS, OVERRIDE_VALUES, type OverrideSetting } from './support/arbitrary-pod.ts';
import { TEST_VERSION, testConfig, testRuntime } from './support/config.ts';

const config = testConfig();
const now = new Date('2030-01-01T00:00:00Z');
const nothing: InstallationObjects = {
  webhookConfiguration: undefined,
  secretName: config.tls.secretName,
  secret: undefined,
  secretUnreadable: undefined,
  service: undefined,
  endpointSlices: [],
  labelledNamespaces: [],
  pods: [],
  overrideConfigMaps: [],
};

test('every finding code is kebab-case, with a check, a level and one sentence', () => {
  for (const [code, { check, level, sentence }] of Object.entries(FINDINGS)) {
    assert.match(code, /^[a-z]+(-[a-z0-9]+)*$/, code);
    assert.ok(['webhook-configuration', 'ca-bundle', 'service', 'nodes', 'namespaces', 'pods'].includes(check), code);
    assert.ok(['ok', 'info', 'warn', 'fail'].includes(level), code);
    assert.match(sentence, /^[A-Z].*\.$/, `${code}: one sentence`);
  }
});

test('nothing installed: each missing part is one finding with its code', () => {
  const findings = assessInstallation(nothing, config, testRuntime, { now });
  assert.deepEqual(
    findings.map((f) => [f.code, f.level]),
    [
      ['webhook-configuration-missing', 'fail'],
      ['secret-missing', 'fail'],
      ['service-missing', 'fail'],
      ['no-namespace-labelled', 'warn'],
    ],
  );
});

test('labelled namespaces: Pod Security that refuses envoy-init, and invalid defaults for their pods (SPEC.md §4b)', () => {
  const namespace = (name: string, labels: Record<string, string>, annotations: Record<string, string> = {}) => ({
    metadata: { name, labels: { 'envoy-injector.io/inject': 'enabled', ...labels }, annotations },
  });
  const findings = assessInstallation(
    {
      ...nothing,
      labelledNamespaces: [
        namespace('shop', { 'pod-security.kubernetes.io/enforce': 'restricted' }),
        namespace('api', {}, { 'envoy-injector.io/log-level': 'verbose', 'envoy-injector.io/drain-seconds': '9' }),
        namespace('kube-system', {}),
      ],
    },
    config,
    testRuntime,
    { now },
  ).filter((f) => f.check === 'namespaces');
  assert.deepEqual(
    findings.map((f) => f.code),
    ['namespaces-labelled', 'pod-security-enforced', 'capture-modes-admitted', 'namespace-annotation-invalid', 'namespaces-excluded'],
  );
  assert.match(findings[1]?.message ?? '', /^shop enforces Pod Security "restricted": every injected pod is refused there, .*use capture\.mode cni/);
  assert.equal(findings[2]?.message, 'both capture modes are admitted in: api');
  assert.match(findings[3]?.message ?? '', /^api: invalid defaults for its pods, .*envoy-injector\.io\/log-level="verbose" on namespace api \(accepted: one of trace/);
  assert.doesNotMatch(findings[3]?.message ?? '', /drain-seconds/, 'a valid default is not reported');
});

test('labelled namespaces in capture mode cni: which mode each admits, nothing refused (SPEC.md §4c)', () => {
  const namespace = (name: string, labels: Record<string, string>) => ({ metadata: { name, labels: { 'envoy-injector.io/inject': 'enabled', ...labels } } });
  const cni = testConfig({ ENVOY_INJECTOR_CAPTURE_MODE: 'cni' });
  const findings = assessInstallation(
    {
      ...nothing,
      labelledNamespaces: [
        namespace('shop', { 'pod-security.kubernetes.io/enforce': 'restricted' }),
        namespace('api', { 'pod-security.kubernetes.io/enforce': 'baseline' }),
        namespace('web', { 'pod-security.kubernetes.io/warn': 'restricted' }),
      ],
    },
    cni,
    testRuntime,
    { now },
  ).filter((f) => f.check === 'namespaces');
  assert.deepEqual(
    findings.map((f) => [f.code, f.level]),
    [
      ['namespaces-labelled', 'ok'],
      ['pod-security-cni-only', 'ok'],
      ['capture-modes-admitted', 'info'],
    ],
  );
  assert.equal(findings[1]?.message, 'injected pods are admitted in capture mode cni only (the mode in use) in: api (baseline), shop (restricted)');
  assert.equal(findings[2]?.message, 'both capture modes are admitted in: web');
});

test('pods: one not injected although it would be now is a failure; a summary per namespace', () => {
  const pod = { metadata: { name: 'web', namespace: 'shop' }, spec: { containers: [{ name: 'web', image: 'nginx' }] }, status: { phase: 'Running' } };
  const findings = assessInstallation(
    { ...nothing, pods: [{ key: 'shop/web', pod, namespaceLabels: { 'envoy-injector.io/inject': 'enabled' }, namespaceAnnotations: {} }] },
    config,
    testRuntime,
    { now },
  ).filter((f) => f.check === 'pods');
  assert.deepEqual(findings.map((f) => f.code), ['pod-not-injected', 'pods-need-attention']);
  assert.equal(findings[1]?.message, 'shop: 1 running pod: 0 injected, 1 not injected');
});

// A stale pod (SPEC.md §9): `check` names what differs between its proxy and the one injecting it now
// would give, compared field by field with the pod as the API server stores it.
const STATUS = 'envoy-injector.io/status';
type Obj = Record<string, any>;

/** The pod as the API server returns it: defaults filled in, the ServiceAccount token mounted everywhere. */
function asStored(pod: Obj, namespace: string): Obj {
  const stored = structuredClone(pod);
  stored.metadata = { ...stored.metadata, namespace, uid: 'u-1', resourceVersion: '7' };
  const token = { name: 'kube-api-access-x1y2z', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true };
  for (const list of ['initContainers', 'containers']) {
    for (const c of stored.spec[list] ?? []) {
      c.terminationMessagePath = '/dev/termination-log';
      c.terminationMessagePolicy ??= 'File';
      c.imagePullPolicy ??= 'IfNotPresent';
      c.volumeMounts = [...(c.volumeMounts ?? []), token];
      for (const probe of ['readinessProbe', 'startupProbe', 'livenessProbe']) {
        if (c[probe] !== undefined) c[probe] = { successThreshold: 1, timeoutSeconds: 1, periodSeconds: 10, failureThreshold: 3, ...c[probe] };
      }
      for (const e of c.env ?? []) if (e.valueFrom?.fieldRef !== undefined) e.valueFrom.fieldRef = { apiVersion: 'v1', ...e.valueFrom.fieldRef };
    }
  }
  stored.spec.volumes = [...(stored.spec.volumes ?? []), { name: 'kube-api-access-x1y2z', projected: { defaultMode: 420, sources: [] } }];
  stored.spec.nodeName = 'node-1';
  stored.spec.serviceAccountName = 'default';
  stored.status = { phase: 'Running' };
  return stored;
}

const app = (name: string, annotations: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, labels: { app: name }, annotations },
  spec: { containers: [{ name: 'app', image: 'registry.example/app:1', ports: [{ containerPort: 8080 }] }] },
});

/** The pod-stale-proxy finding of `pod` injected with `older` (and `olderRuntime`) and judged with `config`. */
function staleFinding(pod: Obj, older: typeof config, olderRuntime = testRuntime, current = config, runtime = testRuntime, namespaceAnnotations: Record<string, string> = {}) {
  const injected = injectPod(pod, admissionContext({ namespace: 'shop', namespaceAnnotations }), older, olderRuntime);
  assert.ok(injected.pod, 'injected');
  const findings = assessInstallation(
    { ...nothing, pods: [{ key: `shop/${pod.metadata.name}`, pod: asStored(injected.pod, 'shop'), namespaceLabels: { 'envoy-injector.io/inject': 'enabled' }, namespaceAnnotations }] },
    current,
    runtime,
    { now },
  ).filter((f) => f.check === 'pods');
  return findings;
}

test('a pod injected as today is not stale, with every API server default and the token mount (and its namespace\'s defaults)', () => {
  const findings = staleFinding(app('web'), config);
  assert.deepEqual(findings.map((f) => [f.code, f.message]), [['pods-healthy', 'shop: 1 running pod: 1 injected']]);
  // A namespace default (SPEC.md §4b) is part of what the pod is judged with.
  const withDefault = staleFinding(app('web'), config, testRuntime, config, testRuntime, { 'envoy-injector.io/log-level': 'debug' });
  assert.deepEqual(withDefault.map((f) => f.code), ['pods-healthy']);
});

test('a stale pod: check names what differs — image, resources, ports and exclusions, version — and -o json lists it', () => {
  const older = testConfig({
    ENVOY_INJECTOR_PROXY_IMAGE: 'envoyproxy/envoy:v1.38.0',
    ENVOY_INJECTOR_PROXY_RESOURCES_REQUESTS_CPU: '200m',
    ENVOY_INJECTOR_PROXY_RESOURCES_LIMITS_MEMORY: '',
    ENVOY_INJECTOR_TRAFFIC_EXCLUDE_INBOUND_PORTS: '8080,9090',
    ENVOY_INJECTOR_TRAFFIC_EXCLUDE_OUTBOUND_IP_RANGES: '10.0.0.0/8',
    ENVOY_INJECTOR_INIT_IMAGE: 'ghcr.io/envoy-injector/envoy-injector:v0.0.9',
  });
  const findings = staleFinding(app('web'), older, { ...testRuntime, version: '0.0.9' });
  const stale = findings.find((f) => f.code === 'pod-stale-proxy');
  assert.ok(stale, JSON.stringify(findings));
  assert.deepEqual(stale.differences, [
    { what: 'injector version', pod: '0.0.9', now: TEST_VERSION },
    { what: 'inbound ports not captured', pod: '8080,9090', now: 'none' },
    { what: 'outbound destinations not captured', pod: '10.0.0.0/8', now: 'none' },
    { what: 'proxy image', pod: 'envoyproxy/envoy:v1.38.0', now: 'envoyproxy/envoy:v1.39.6' },
    { what: 'proxy CPU request', pod: '200m', now: '100m' },
    { what: 'proxy memory limit', pod: 'none', now: '1Gi' },
    { what: 'envoy-init image', pod: 'ghcr.io/envoy-injector/envoy-injector:v0.0.9', now: `ghcr.io/envoy-injector/envoy-injector:v${TEST_VERSION}` },
  ]);
  assert.match(
    stale.message,
    new RegExp(
      '^shop/web: stale proxy: injector version 0\\.0\\.9 → 0\\.0\\.0-test, inbound ports not captured 8080,9090 → none, ' +
        'outbound destinations not captured 10\\.0\\.0\\.0/8 → none, proxy image envoyproxy/envoy:v1\\.38\\.0 → v1\\.39\\.6, proxy CPU request 200m → 100m, ' +
        'proxy memory limit none → 1Gi, envoy-init image ghcr\\.io/envoy-injector/envoy-injector:v0\\.0\\.9 → v0\\.0\\.0-test ' +
        '\\(config hash [0-9a-f]{16} from 0\\.0\\.9, now [0-9a-f]{16}\\) — restart its workload to update it$',
    ),
  );
});

test('a stale pod: native against classic is one difference, not every field it changes; Envoy flags and the bootstrap by place', () => {
  const native = testConfig({ ENVOY_INJECTOR_NATIVE_SIDECAR: 'true' });
  const [stale] = staleFinding(app('web'), native, { ...testRuntime, nativeSidecarSupported: true });
  assert.equal(stale?.code, 'pod-stale-proxy');
  assert.deepEqual(stale?.differences, [{ what: 'native sidecar', pod: 'yes', now: 'no' }]);

  const older = testConfig({ ENVOY_INJECTOR_PROXY_LOG_LEVEL: 'debug', ENVOY_INJECTOR_PROXY_CONCURRENCY: '0', ENVOY_INJECTOR_PROXY_ACCESS_LOG: 'true' });
  const [flags] = staleFinding(app('web'), older);
  // The access log is an envoy-init flag (the bootstrap is rendered in the pod); the rest, Envoy's flags.
  assert.deepEqual(
    (flags?.differences ?? []).map((d) => `${d.what}: ${d.pod} → ${d.now}`),
    ['access log: true → false', 'envoy --log-level: debug → warning', 'envoy --concurrency: not given → 2', 'envoy --cpuset-threads: given → not given'],
  );

  // A pod of an older injector that carried its bootstrap in the environment: that says so too.
  const injected = injectPod(app('legacy'), admissionContext({ namespace: 'shop' }), config, testRuntime);
  assert.ok(injected.pod && injected.status);
  const legacy = asStored(injected.pod, 'shop');
  const envoy = legacy.spec.containers.find((c: Obj) => c.name === 'envoy');
  envoy.env = [...(envoy.env ?? []), { name: 'ENVOY_BOOTSTRAP', value: '{"admin":{}}' }];
  const result = compareProxy(legacy, injected.status, admissionContext({ namespace: 'shop' }), config, testRuntime);
  assert.ok(result.ok);
  assert.deepEqual(result.differences, [{ what: 'envoy env[ENVOY_BOOTSTRAP]', pod: 'set', now: 'not set' }]);
});

test('a stale pod whose annotations changed is compared with them as they are now; one with nothing visible says so', () => {
  // Its annotation was edited after the injection (the hash covers it): the image it asks for now.
  const pod = app('web');
  const injected = injectPod(pod, admissionContext({ namespace: 'shop' }), config, testRuntime);
  assert.ok(injected.pod);
  const edited = asStored(injected.pod, 'shop');
  edited.metadata.annotations['envoy-injector.io/proxy-image'] = 'registry.example/envoy:v1.39.6-patched';
  const [stale] = assessInstallation(
    { ...nothing, pods: [{ key: 'shop/web', pod: edited, namespaceLabels: { 'envoy-injector.io/inject': 'enabled' }, namespaceAnnotations: {} }] },
    config,
    testRuntime,
    { now },
  ).filter((f) => f.check === 'pods');
  assert.deepEqual(stale?.differences, [{ what: 'proxy image', pod: 'envoyproxy/envoy:v1.39.6', now: 'registry.example/envoy:v1.39.6-patched' }]);
  assert.match(stale?.message ?? '', /stale proxy: proxy image envoyproxy\/envoy:v1\.39\.6 → registry\.example\/envoy:v1\.39\.6-patched \(/);

  // A quantity written otherwise (0.1 = 100m) changes the hash but nothing the pod runs with.
  const [same] = staleFinding(app('web'), testConfig({ ENVOY_INJECTOR_PROXY_RESOURCES_REQUESTS_CPU: '0.1' }));
  assert.equal(same?.code, 'pod-stale-proxy');
  assert.deepEqual(same?.differences, []);
  assert.match(same?.message ?? '', /^shop\/web: stale proxy: config hash [0-9a-f]{16} from 0\.0\.0-test, now [0-9a-f]{16}; nothing the injected containers show differs — /);
});

test('a stale pod that cannot be compared says why, and is still reported stale', () => {
  const injected = injectPod(app('web'), admissionContext({ namespace: 'shop' }), testConfig({ ENVOY_INJECTOR_PROXY_IMAGE: 'envoyproxy/envoy:v1.38.0' }), testRuntime);
  assert.ok(injected.pod);
  const stored = asStored(injected.pod, 'shop');
  // Someone removed the xtables-lock volume that the status lists.
  stored.spec.volumes = stored.spec.volumes.filter((v: Obj) => v.name !== 'envoy-init-xtables-lock');
  const [stale] = assessInstallation(
    { ...nothing, pods: [{ key: 'shop/web', pod: stored, namespaceLabels: { 'envoy-injector.io/inject': 'enabled' }, namespaceAnnotations: {} }] },
    config,
    testRuntime,
    { now },
  ).filter((f) => f.check === 'pods');
  assert.equal(stale?.code, 'pod-stale-proxy');
  assert.equal(stale?.differences, undefined);
  assert.match(stale?.message ?? '', /\(what differs is not known: its status annotation lists the volume envoy-init-xtables-lock, which the pod does not have once and only once\) — restart/);
  assert.ok(STATUS in stored.metadata.annotations);
});

test('property: a pod injected with the config it is judged with shows no difference, however the API server stores it', () => {
  const ctx = admissionContext({ namespace: 'demo', namespaceLabels: { 'envoy-injector.io/inject': 'enabled' } });
  let compared = 0;
  fc.assert(
    fc.property(legalPod, fc.boolean(), (pod, native) => {
      const setupConfig = native ? testConfig({ ENVOY_INJECTOR_NATIVE_SIDECAR: 'true' }) : config;
      const runtime = { ...testRuntime, nativeSidecarSupported: native };
      const injected = injectPod(pod, ctx, setupConfig, runtime);
      if (injected.decision.action !== 'inject' || injected.pod === undefined || injected.status === undefined) return;
      compared++;
      const result = compareProxy(asStored(injected.pod, 'demo'), injected.status, ctx, setupConfig, runtime);
      assert.ok(result.ok, result.ok ? '' : result.problem);
      assert.deepEqual(result.differences, []);
    }),
    { numRuns: 200 },
  );
  assert.ok(compared > 50, `only ${compared} pods were injected`);
});

/**
 * What a stale pod's differences call a setting changed by annotation: its `explain` label where the
 * pod carries it as a setting (envoy-init's flags, the containers' fields), else the place it shows.
 */
const SHOWN_AS: Readonly<Record<OverrideSetting, RegExp>> = {
  'exclude-inbound-ports': /^inbound ports not captured$/,
  'include-inbound-ports': /^inbound ports captured$/,
  'exclude-outbound-ports': /^outbound ports not captured$/,
  'exclude-outbound-ip-ranges': /^outbound destinations not captured$/,
  'include-outbound-ip-ranges': /^outbound destinations captured$/,
  'proxy-image': /^proxy image$/,
  'proxy-cpu': /^proxy CPU request$/,
  'proxy-memory': /^proxy memory request$/,
  'proxy-cpu-limit': /^proxy CPU limit$/,
  'proxy-memory-limit': /^proxy memory limit$/,
  'log-level': /^envoy --log-level$/,
  concurrency: /^envoy --(concurrency|cpuset-threads)$/,
  'native-sidecar': /^native sidecar$/,
  'hold-application-until-proxy-starts': /^envoy lifecycle\.postStart$/,
  'drain-seconds': /^envoy (--drain-time-s|lifecycle\.preStop)$/,
  ipv6: /^IPv6$/,
  // (and the ConfigMap's volume and envoy-init's mount of it, which follow from it)
  'bootstrap-override': /^(bootstrap override ConfigMap|envoy-init volumeMounts\[envoy-bootstrap-override\]|volume envoy-bootstrap-override)$/,
  'ads-address': /^xDS control plane \(ADS\)$/,
  // (and the volumes and envoy's mounts of them, which follow from it)
  'proxy-mounts': /^(proxy mounts|envoy volumeMounts\[envoy-mount-[-a-z0-9]+\]|volume envoy-mount-[-a-z0-9]+)$/,
};

test('property: a setting the pod was injected with otherwise is named, through the settings table, and only what follows from it', () => {
  const ctx = admissionContext({ namespace: 'demo', namespaceLabels: { 'envoy-injector.io/inject': 'enabled' } });
  const pod = app('web');
  let stale = 0;
  fc.assert(
    fc.property(
      fc.constantFrom(...OVERRIDE_SETTINGS).chain((setting) => fc.tuple(fc.constant(setting), fc.constantFrom(...OVERRIDE_VALUES[setting].valid))),
      ([setting, value]) => {
        const annotation = `envoy-injector.io/${setting}`;
        const injected = injectPod({ ...pod, metadata: { ...pod.metadata, annotations: { [annotation]: value } } }, ctx, config, testRuntime);
        // Skipped or denied with this value (a port clash, a request above its limit): nothing to compare.
        if (injected.pod === undefined || injected.status === undefined) return;
        const stored = asStored(injected.pod, 'demo');
        // The annotation is gone now (edited away): the pod is judged without it.
        delete stored.metadata.annotations[annotation];
        const now = injectPod(pod, ctx, config, testRuntime);
        if (now.status?.configHash === injected.status.configHash) return;
        stale++;
        const result = compareProxy(stored, injected.status, ctx, config, testRuntime);
        assert.ok(result.ok, `${annotation}=${value}: ${result.ok ? '' : result.problem}`);
        const whats = result.differences.map((d) => d.what);
        const own = whats.filter((w) => SHOWN_AS[setting].test(w));
        assert.ok(own.length > 0, `${annotation}=${value}: ${whats.join('; ')}`);
        // Besides the setting itself, only its bootstrap, and envoy's flags and hooks for the kind of sidecar.
        for (const w of whats.filter((x) => !SHOWN_AS[setting].test(x))) {
          assert.match(w, /^(Envoy bootstrap |envoy (--|lifecycle\.))/, `${annotation}=${value}: ${w}`);
        }
      },
    ),
    { numRuns: 150 },
  );
  assert.ok(stale > 40, `only ${stale} were stale`);
});
