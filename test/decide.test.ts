// The decision table: one named row per reason code (SPEC.md §3). A reason without a row fails.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { admissionContext } from '../src/core/context.ts';
import { decide } from '../src/core/decide.ts';
import { injectPod } from '../src/core/inject.ts';
import { readPod } from '../src/core/pod.ts';
import { REASONS, type ReasonCode } from '../src/core/reasons.ts';
import type { AdmissionContext, InjectorConfig, InjectorRuntime } from '../src/core/types.ts';
import { testConfig, testRuntime } from './support/config.ts';
import { applyJsonPatch } from './support/patch.ts';

const pod = (patch: { metadata?: object; spec?: object } = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', ...patch.metadata },
  spec: { containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 8080 }] }], ...patch.spec },
});

interface Row {
  readonly name: string;
  readonly object: unknown;
  readonly ctx?: Partial<AdmissionContext>;
  /** What `nativeSidecar: auto` found (default: testRuntime). */
  readonly runtime?: InjectorRuntime;
  readonly action: 'inject' | 'skip' | 'deny' | 'reorder';
  /** The reasons expected, in order. */
  readonly reasons: readonly ReasonCode[];
  /** A config of the row's own (default: the test config). */
  readonly config?: InjectorConfig;
}

/** An injected pod to which a later webhook (Vault's agent injector, say) added an init container. */
function reinvoked(native: boolean, where: 'append' | 'after-envoy-init' | 'first'): object {
  const annotations = native ? { 'envoy-injector.io/native-sidecar': 'true' } : {};
  const injected = injectPod(pod({ metadata: { annotations } }), admissionContext({ namespace: 'demo' }), testConfig(), testRuntime).pod as Record<string, any>;
  const inits = [...(injected['spec']['initContainers'] as object[])];
  const vault = { name: 'vault-agent-init', image: 'hashicorp/vault' };
  if (where === 'append') inits.push(vault);
  else if (where === 'first') inits.unshift(vault);
  else inits.splice(1, 0, vault);
  return { ...injected, spec: { ...injected['spec'], initContainers: inits } };
}

const config = testConfig();

/**
 * A config built past loadConfig's caps (as another caller of the core could): 10,000 excluded
 * CIDRs render one envoy-init argument over Linux's 128 KiB.
 */
const hugeTrafficConfig: InjectorConfig = {
  ...config,
  traffic: { ...config.traffic, excludeOutboundIpRanges: Array.from({ length: 10_000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`) },
};

const ROWS: readonly Row[] = [
  { name: 'a Service is not a pod', object: { kind: 'Service' }, ctx: { kind: 'Service' }, action: 'skip', reasons: ['not-a-pod'] },
  { name: 'an update is not a creation', object: pod(), ctx: { operation: 'UPDATE' }, action: 'skip', reasons: ['not-create'] },
  {
    name: 'an ephemeral-containers subresource',
    object: pod(),
    ctx: { subResource: 'ephemeralcontainers' },
    action: 'skip',
    reasons: ['subresource'],
  },
  { name: 'kube-system is excluded', object: pod(), ctx: { namespace: 'kube-system' }, action: 'skip', reasons: ['namespace-excluded'] },
  {
    name: "the injector's own namespace is excluded",
    object: pod(),
    ctx: { namespace: 'envoy-injector' },
    action: 'skip',
    reasons: ['namespace-excluded'],
  },
  {
    name: 'namespace labelled disabled',
    object: pod(),
    ctx: { namespaceLabels: { 'envoy-injector.io/inject': 'disabled' } },
    action: 'skip',
    reasons: ['namespace-disabled'],
  },
  { name: 'namespace not labelled', object: pod(), ctx: { namespaceLabels: {} }, action: 'skip', reasons: ['namespace-not-enabled'] },
  {
    name: 'opt-out annotation',
    object: pod({ metadata: { annotations: { 'envoy-injector.io/inject': 'false' } } }),
    action: 'skip',
    reasons: ['disabled-by-annotation'],
  },
  {
    name: 'pod labelled disabled',
    object: pod({ metadata: { labels: { 'envoy-injector.io/inject': 'disabled' } } }),
    action: 'skip',
    reasons: ['disabled-by-pod-label'],
  },
  {
    name: 'unparseable inject annotation',
    object: pod({ metadata: { annotations: { 'envoy-injector.io/inject': 'maybe' } } }),
    action: 'skip',
    reasons: ['invalid-inject-annotation'],
  },
  { name: 'host network', object: pod({ spec: { hostNetwork: true } }), action: 'skip', reasons: ['host-network'] },
  { name: 'a Windows pod (spec.os)', object: pod({ spec: { os: { name: 'windows' } } }), action: 'skip', reasons: ['windows-pod'] },
  {
    name: 'a pod pinned to Windows nodes by its node selector',
    object: pod({ spec: { nodeSelector: { 'kubernetes.io/os': 'windows' } } }),
    action: 'skip',
    reasons: ['windows-pod'],
  },
  {
    name: 'a pod whose every required node affinity term asks for Windows',
    object: pod({
      spec: {
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                { matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In', values: ['windows'] }] },
                { matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In', values: ['windows'] }, { key: 'zone', operator: 'Exists' }] },
              ],
            },
          },
        },
      },
    }),
    action: 'skip',
    reasons: ['windows-pod'],
  },
  {
    name: 'a pod that may land on Linux too is injected',
    object: pod({
      spec: {
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                { matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In', values: ['windows'] }] },
                { matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In', values: ['linux'] }] },
              ],
            },
          },
        },
      },
    }),
    action: 'inject',
    reasons: ['enabled-by-namespace'],
  },
  {
    name: 'status annotation present',
    object: pod({ metadata: { annotations: { 'envoy-injector.io/status': '{}' } } }),
    action: 'skip',
    reasons: ['already-injected'],
  },
  {
    name: 're-invoked: a later webhook appended an init container after envoy-init (classic)',
    object: reinvoked(false, 'append'),
    action: 'reorder',
    reasons: ['envoy-init-not-last'],
  },
  {
    name: 're-invoked: a later webhook put an init container between envoy-init and envoy (native)',
    object: reinvoked(true, 'after-envoy-init'),
    action: 'reorder',
    reasons: ['envoy-not-after-envoy-init'],
  },
  {
    name: 're-invoked: an init container put first, before the capture, is where it works (native)',
    object: reinvoked(true, 'first'),
    action: 'skip',
    reasons: ['already-injected'],
  },
  {
    name: 're-invoked: an init container put first is before envoy-init, as it should be (classic)',
    object: reinvoked(false, 'first'),
    action: 'skip',
    reasons: ['already-injected'],
  },
  {
    name: 'a container named envoy',
    object: pod({ spec: { containers: [{ name: 'envoy', image: 'envoyproxy/envoy' }] } }),
    action: 'skip',
    reasons: ['already-injected'],
  },
  {
    name: "another mesh's proxy",
    object: pod({ spec: { containers: [{ name: 'app', image: 'a' }, { name: 'istio-proxy', image: 'b' }] } }),
    action: 'skip',
    reasons: ['other-mesh-present'],
  },
  { name: 'a pod without spec', object: { kind: 'Pod', metadata: { name: 'x' } }, action: 'deny', reasons: ['invalid-pod'] },
  {
    name: 'invalid override annotation',
    object: pod({ metadata: { annotations: { 'envoy-injector.io/proxy-cpu': 'lots' } } }),
    action: 'deny',
    reasons: ['invalid-annotations'],
  },
  {
    name: 'app container declares a proxy port',
    object: pod({ spec: { containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 15090 }] }] } }),
    action: 'deny',
    reasons: ['proxy-port-conflict'],
  },
  {
    // The labels reach the bootstrap through a file of the downward API, never an exec argument.
    name: 'thousands of labels: the bootstrap is rendered in the pod, so no exec limit applies to it',
    object: pod({
      metadata: { labels: Object.fromEntries(Array.from({ length: 2500 }, (_, i) => [`example.com/label-${i}`, 'v'.repeat(40)])) },
    }),
    action: 'inject',
    reasons: ['enabled-by-namespace'],
  },
  {
    name: 'a volume of the pod named like one the injector adds',
    object: pod({ spec: { containers: [{ name: 'web', image: 'nginx' }], volumes: [{ name: 'envoy-bootstrap', emptyDir: {} }] } }),
    action: 'deny',
    reasons: ['name-conflict'],
  },
  {
    // The labels reach the bootstrap through the podinfo volume, not an exec argument (issue 15a).
    name: 'thousands of labels are injected: no argument carries them',
    object: pod({
      metadata: { labels: Object.fromEntries(Array.from({ length: 2050 }, (_, i) => [`example.com/label-${i}`, 'v'.repeat(40)])) },
    }),
    action: 'inject',
    reasons: ['enabled-by-namespace'],
  },
  {
    name: 'an envoy-init argument too large for Linux (a CIDR list past the caps, from the config)',
    object: pod(),
    config: hugeTrafficConfig,
    action: 'deny',
    reasons: ['exec-too-large'],
  },
  {
    name: 'a UDP port or a plain init container on a proxy port cannot clash with a classic proxy',
    object: pod({
      spec: {
        initContainers: [{ name: 'setup', image: 'busybox', ports: [{ containerPort: 15001 }] }],
        containers: [{ name: 'dns', image: 'coredns', ports: [{ containerPort: 15090, protocol: 'UDP' }] }],
      },
    }),
    action: 'inject',
    reasons: ['enabled-by-namespace'],
  },
  {
    name: 'an init container on a proxy port clashes with a native proxy, which starts first',
    object: pod({
      metadata: { annotations: { 'envoy-injector.io/native-sidecar': 'true' } },
      spec: { initContainers: [{ name: 'setup', image: 'busybox', ports: [{ containerPort: 15001 }] }] },
    }),
    action: 'deny',
    reasons: ['proxy-port-conflict'],
  },
  {
    name: 'a native sidecar asked for where the API server has none (older than 1.29)',
    object: pod({ metadata: { annotations: { 'envoy-injector.io/native-sidecar': 'true' } } }),
    runtime: { ...testRuntime, apiServerNativeSidecars: false },
    action: 'deny',
    reasons: ['api-server-lacks-native-sidecars'],
  },
  {
    name: 'a native sidecar asked for where the API server has them but a kubelet is older: injected (with a warning)',
    object: pod({ metadata: { annotations: { 'envoy-injector.io/native-sidecar': 'true' } } }),
    runtime: { ...testRuntime, apiServerNativeSidecars: true },
    action: 'inject',
    reasons: ['enabled-by-namespace'],
  },
  {
    // Issue 12a's volume is reserved whether or not the pod names a bootstrap override.
    name: 'pod already has a volume named like the bootstrap override volume',
    object: pod({ spec: { volumes: [{ name: 'envoy-bootstrap-override', emptyDir: {} }] } }),
    action: 'deny',
    reasons: ['name-conflict'],
  },
  {
    name: 'pod already has the xtables lock volume',
    object: pod({ spec: { volumes: [{ name: 'envoy-init-xtables-lock', emptyDir: {} }] } }),
    action: 'deny',
    reasons: ['name-conflict'],
  },
  { name: 'enabled namespace', object: pod(), action: 'inject', reasons: ['enabled-by-namespace'] },
  {
    name: 'pod label opt-in in an unlabelled namespace',
    object: pod({ metadata: { labels: { 'envoy-injector.io/inject': 'enabled' } } }),
    ctx: { namespaceLabels: {} },
    action: 'inject',
    reasons: ['enabled-by-pod-label'],
  },
  {
    name: 'explicit opt-in annotation',
    object: pod({ metadata: { annotations: { 'envoy-injector.io/inject': 'true' } } }),
    action: 'inject',
    reasons: ['enabled-by-namespace', 'enabled-by-annotation'],
  },
];

for (const row of ROWS) {
  test(`decision: ${row.name}`, () => {
    const ctx: AdmissionContext = admissionContext({ namespace: 'demo', ...row.ctx });
    // decide() is the whole decision (check relies on it): injectPod only carries it out.
    const runtime = row.runtime ?? testRuntime;
    const rowConfig = row.config ?? config;
    const { decision, patch } = injectPod(row.object, ctx, rowConfig, runtime);
    assert.deepEqual(decide(row.object, ctx, rowConfig, runtime).decision, decision);
    assert.equal(decision.action, row.action);
    if (row.action === 'skip' || row.action === 'deny') assert.deepEqual(patch, []);
    if (row.action === 'reorder') {
      // One `move`; applied, the order is right, and a further re-invocation changes nothing.
      assert.equal(patch.length, 1);
      assert.equal(patch[0]?.op, 'move');
      const moved = applyJsonPatch(row.object, patch);
      assert.deepEqual(moved, injectPod(row.object, ctx, config, runtime).pod);
      const again = injectPod(moved, ctx, config, runtime);
      assert.equal(again.decision.action, 'skip');
      assert.deepEqual(again.patch, []);
    }
    assert.deepEqual(
      decision.reasons.map((r) => r.code),
      row.reasons,
    );
    for (const r of decision.reasons) assert.ok(r.message.startsWith(REASONS[r.code].sentence), 'message starts with the sentence');
  });
}

test('every reason code has a row in the decision table', () => {
  const covered = new Set(ROWS.flatMap((r) => r.reasons));
  const missing = (Object.keys(REASONS) as ReasonCode[]).filter((code) => !covered.has(code));
  assert.deepEqual(missing, []);
});

test('every reason code is kebab-case and leads to the action its table says', () => {
  for (const [code, { action }] of Object.entries(REASONS)) {
    assert.match(code, /^[a-z]+(-[a-z0-9]+)*$/);
    const row = ROWS.find((r) => r.reasons[0] === code);
    if (row !== undefined) assert.equal(row.action, action, code);
  }
});

test('skips are evaluated in SPEC order and all of them are reported', () => {
  const object = pod({ metadata: { annotations: { 'envoy-injector.io/inject': 'false' } }, spec: { hostNetwork: true } });
  const { decision, warnings } = decide(object, admissionContext({ namespace: 'kube-system' }), config, testRuntime);
  assert.deepEqual(
    decision.reasons.map((r) => r.code),
    ['namespace-excluded', 'disabled-by-annotation', 'host-network'],
  );
  // Only a surprising first reason is also a warning: a pod in kube-system is expected to be skipped.
  assert.deepEqual(warnings, []);
});

test('a surprising skip is also a warning', () => {
  const { warnings } = decide(pod({ spec: { hostNetwork: true } }), admissionContext({ namespace: 'demo' }), config, testRuntime);
  assert.deepEqual(
    warnings.map((w) => w.code),
    ['host-network'],
  );
});

test('invalid annotations are all listed in one message with value and what is accepted', () => {
  const object = pod({
    metadata: {
      annotations: {
        'envoy-injector.io/proxy-cpu': 'lots',
        'envoy-injector.io/exclude-outbound-ip-ranges': '10.0.0.0/33',
        'envoy-injector.io/log-level': 'chatty',
      },
    },
  });
  const { decision } = decide(object, admissionContext({ namespace: 'demo' }), config, testRuntime);
  assert.equal(decision.action, 'deny');
  const message = decision.reasons[0]?.message ?? '';
  assert.match(message, /envoy-injector\.io\/proxy-cpu="lots" \(accepted: a Kubernetes CPU quantity/);
  assert.match(message, /envoy-injector\.io\/exclude-outbound-ip-ranges="10\.0\.0\.0\/33" \(accepted: .*CIDR/);
  assert.match(message, /envoy-injector\.io\/log-level="chatty" \(accepted: one of trace, debug/);
});

test('a container port counts as TCP unless it names another protocol', () => {
  const read = readPod({
    spec: {
      containers: [
        { name: 'a', ports: [{ containerPort: 80 }, { containerPort: 81, protocol: null }, { containerPort: 82, protocol: 'UDP' }, { containerPort: 83, protocol: 'TCP' }] },
      ],
    },
  });
  assert.ok(read.ok);
  assert.deepEqual(read.pod.containers[0]?.tcpPorts, [80, 81, 83]);
});

test('malformed pods are denied with the path of the problem, never thrown', () => {
  const ctx: AdmissionContext = admissionContext({ namespace: 'demo' });
  const cases: [unknown, RegExp][] = [
    [null, /JSON object/],
    [{ spec: { containers: 'web' } }, /spec\.containers must be a list/],
    [{ spec: { containers: [] } }, /spec\.containers is empty/],
    [{ spec: { containers: [{ image: 'x' }] } }, /spec\.containers\[0\]\.name is missing/],
    [{ metadata: { annotations: { a: 1 } }, spec: { containers: [{ name: 'a' }] } }, /metadata\.annotations\["a"\] must be a string/],
    [{ spec: { containers: [{ name: 'a', ports: [{ containerPort: '80' }] }] } }, /containerPort must be a whole number/],
    [{ spec: { containers: [{ name: 'a', ports: [{ containerPort: 80.5 }] }] } }, /spec\.containers\[0\]\.ports\[0\]\.containerPort must be a whole number\.$/],
    [{ spec: { containers: [{ name: 'a', ports: 'http' }] } }, /spec\.containers\[0\]\.ports must be a list\.$/],
    [{ spec: { containers: [{ name: 'a', ports: [{ containerPort: 80 }, 8080] }] } }, /spec\.containers\[0\]\.ports\[1\] must be an object\.$/],
    [{ spec: { initContainers: [{ name: 'i', ports: [{ containerPort: null }] }], containers: [{ name: 'a' }] } }, /spec\.initContainers\[0\]\.ports\[0\]\.containerPort is missing\.$/],
    [{ spec: { containers: [{ name: 'a', ports: [{ containerPort: 80, protocol: 6 }] }] } }, /spec\.containers\[0\]\.ports\[0\]\.protocol must be a string\.$/],
  ];
  for (const [object, message] of cases) {
    const { decision } = decide(object, ctx, config, testRuntime);
    assert.equal(decision.action, 'deny');
    assert.match(decision.reasons[0]?.message ?? '', message);
  }
});
