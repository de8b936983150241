// AdmissionResponse warnings over HTTP (what kubectl prints): one named case per situation a user
// would not expect, none for ordinary pods, and every warning within what the API server passes on.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { findPodTargets, parseDocuments } from '../src/cli/documents.ts';
import { MAX_UNKNOWN_ANNOTATION_WARNINGS } from '../src/core/decide.ts';
import { admissionContext } from '../src/core/context.ts';
import { injectPod } from '../src/core/inject.ts';
import { WARNINGS } from '../src/core/reasons.ts';
import type { InjectorConfig, InjectorRuntime } from '../src/core/types.ts';
import { WARNING_LIMITS, formatWarnings } from '../src/server/admission.ts';
import { buildApp } from '../src/server/app.ts';
import { checkInjectedPod } from './support/check-injected.ts';
import { testConfig, testRuntime } from './support/config.ts';
import { applyJsonPatch } from './support/patch.ts';
import { decodeResponse, reviewFor, type DecodedResponse } from './support/review.ts';

/** Kubernetes asks webhooks to keep each warning under 120 characters where possible. */
const RECOMMENDED_LENGTH = 120;
const PREFIX = 'envoy-injector: ';

type Obj = Record<string, any>;

const pod = (patch: { metadata?: Obj; spec?: Obj } = {}): Obj => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { generateName: 'web-7d9c-', labels: { app: 'web' }, ...patch.metadata },
  spec: { containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 8080 }] }], ...patch.spec },
});

/** What the Job controller creates for a Job (or for the Job a CronJob created). */
const jobPod = (jobName: string, restartPolicy: 'Never' | 'OnFailure', extra: Obj = {}): Obj =>
  pod({
    metadata: {
      generateName: `${jobName}-`,
      labels: { 'batch.kubernetes.io/job-name': jobName, 'job-name': jobName },
      ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: jobName, uid: 'b9c1', controller: true, blockOwnerDeletion: true }],
      ...extra,
    },
    spec: { restartPolicy, containers: [{ name: 'task', image: 'busybox' }] },
  });

async function admit(
  object: Obj,
  options: { namespace?: string; config?: InjectorConfig; runtime?: InjectorRuntime } = {},
): Promise<DecodedResponse> {
  const app = buildApp({ config: options.config ?? testConfig(), runtime: options.runtime ?? testRuntime, logger: pino({ level: 'silent' }) });
  const response = await app.inject({
    method: 'POST',
    url: '/mutate',
    payload: reviewFor(object, options.namespace === undefined ? {} : { namespace: options.namespace }),
  });
  assert.equal(response.statusCode, 200);
  return decodeResponse(response.json());
}

/** Asserts what every warning must be: prefixed, one line, within `limit` (the recommended length). */
function assertWellFormed(warnings: readonly string[], limit: number = RECOMMENDED_LENGTH): void {
  for (const w of warnings) {
    assert.ok(w.startsWith(PREFIX), `prefixed: ${w}`);
    assert.doesNotMatch(w, /\p{Cc}/u, 'no control characters (the API server would drop it)');
    assert.ok(Array.from(w).length <= limit, `${w.length} characters: ${w}`);
  }
}

test('an ordinary pod, a Deployment pod and a v1beta1 review get no warnings', async () => {
  assert.deepEqual((await admit(pod())).warnings, []);
  const replicaSetPod = pod({
    metadata: { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9c', uid: 'a1', controller: true }] },
    spec: { securityContext: { runAsUser: 1000 }, terminationGracePeriodSeconds: 30 },
  });
  const review = await admit(replicaSetPod);
  assert.equal(review.allowed, true);
  assert.ok(review.patch.length > 0, 'it is injected');
  assert.deepEqual(review.warnings, []);
  // Opting out is what the user asked for: not a surprise.
  assert.deepEqual((await admit(pod({ metadata: { annotations: { 'envoy-injector.io/inject': 'false' } } }))).warnings, []);
  // A namespace excluded by config, for a pod that did not ask to be injected: no surprise either.
  assert.deepEqual((await admit(pod(), { namespace: 'kube-system' })).warnings, []);
});

test('hostNetwork: skipped with a warning saying why', async () => {
  const review = await admit(pod({ spec: { hostNetwork: true } }));
  assert.equal(review.allowed, true);
  assert.deepEqual(review.patch, []);
  assert.deepEqual(review.warnings, [`${PREFIX}${WARNINGS['host-network']}`]);
  assertWellFormed(review.warnings);
});

test('an invalid inject annotation value: skipped with a warning quoting the value and what is accepted', async () => {
  const review = await admit(pod({ metadata: { annotations: { 'envoy-injector.io/inject': 'enabled' } } }));
  assert.equal(review.allowed, true);
  assert.deepEqual(review.patch, []);
  assert.deepEqual(review.warnings, [
    `${PREFIX}Pod not injected: annotation envoy-injector.io/inject is "enabled"; use "true" or "false".`,
  ]);
  assertWellFormed(review.warnings);
  // A long or multi-line value is shortened to one line, still naming the annotation.
  const hostile = await admit(pod({ metadata: { annotations: { 'envoy-injector.io/inject': `yes\nplease${'!'.repeat(500)}` } } }));
  assert.equal(hostile.warnings.length, 1);
  assert.match(hostile.warnings[0] ?? '', /annotation envoy-injector\.io\/inject is "yes please!+…"; use "true" or "false"\.$/);
  assertWellFormed(hostile.warnings, WARNING_LIMITS.maxLength);
});

test('an app container running as UID 1337: injected, with a warning naming the container', async () => {
  const object = pod({
    spec: {
      securityContext: { runAsUser: 1337 },
      containers: [
        { name: 'web', image: 'nginx' },
        { name: 'worker', image: 'worker', securityContext: { runAsUser: 1000 } },
      ],
    },
  });
  const review = await admit(object);
  assert.equal(review.allowed, true);
  checkInjectedPod(applyJsonPatch(object, review.patch));
  // The pod-level UID applies to web; worker overrides it and is not named.
  assert.deepEqual(review.warnings, [`${PREFIX}Container web runs as UID 1337, the proxy's, so its traffic bypasses the proxy.`]);
  assertWellFormed(review.warnings);
});

test('an app container running as GID 1337 bypasses the proxy too: the warning says which identity', async () => {
  const object = pod({
    spec: {
      securityContext: { runAsGroup: 1337 },
      containers: [
        { name: 'web', image: 'nginx', securityContext: { runAsUser: 1000 } },
        { name: 'both', image: 'worker', securityContext: { runAsUser: 1337 } },
        { name: 'other', image: 'worker', securityContext: { runAsGroup: 2000 } },
      ],
    },
  });
  const review = await admit(object);
  assert.equal(review.allowed, true);
  assert.deepEqual(review.warnings, [
    `${PREFIX}Container web runs as GID 1337, the proxy's, so its traffic bypasses the proxy.`,
    `${PREFIX}Container both runs as UID and GID 1337, the proxy's, so its traffic bypasses the proxy.`,
  ]);
  assertWellFormed(review.warnings);
});

test('a Job pod without a native sidecar: injected, with a warning that it will not complete and the fix', async () => {
  const review = await admit(jobPod('migrate', 'Never'));
  assert.equal(review.allowed, true);
  assert.ok(review.patch.length > 0);
  assert.deepEqual(review.warnings, [
    `${PREFIX}Pod will not complete: classic sidecars never exit. Set envoy-injector.io/native-sidecar: "true".`,
  ]);
  assertWellFormed(review.warnings);
});

test('a CronJob pod (created by its Job) without a native sidecar gets the same warning', async () => {
  const cronJobPod = jobPod('nightly-report-28912345', 'OnFailure', {
    annotations: { 'batch.kubernetes.io/cronjob-scheduled-timestamp': '2024-12-12T03:00:00Z' },
  });
  const review = await admit(cronJobPod);
  assert.equal(review.allowed, true);
  assert.equal(review.warnings.length, 1);
  assert.match(review.warnings[0] ?? '', /^envoy-injector: Pod will not complete: classic sidecars never exit\./);
  assertWellFormed(review.warnings);
});

test('a Job pod with a native sidecar completes: no warning', async () => {
  const native = await admit(jobPod('migrate', 'Never'), { runtime: { ...testRuntime, nativeSidecarSupported: true }, config: testConfig({ ENVOY_INJECTOR_NATIVE_SIDECAR: 'auto' }) });
  assert.ok(native.patch.length > 0);
  assert.deepEqual(native.warnings, []);
  const optedIn = await admit(jobPod('migrate', 'Never', { annotations: { 'envoy-injector.io/native-sidecar': 'true' } }));
  assert.ok(optedIn.patch.length > 0);
  assert.deepEqual(optedIn.warnings, []);
});

test('a Job pod on a cluster too old for native sidecars is told how to stop the proxy instead', async () => {
  const review = await admit(jobPod('migrate', 'Never'), {
    config: testConfig({ ENVOY_INJECTOR_NATIVE_SIDECAR: 'auto' }),
    runtime: { ...testRuntime, nativeSidecarSupported: false },
  });
  assert.deepEqual(review.warnings, [
    `${PREFIX}Pod will not complete: classic sidecars never exit. When done, POST to 127.0.0.1:15000/quitquitquit.`,
  ]);
  assertWellFormed(review.warnings);
});

test('an unknown envoy-injector.io annotation: a warning with the closest known name, or none if nothing is close', async () => {
  const review = await admit(
    pod({ metadata: { annotations: { 'envoy-injector.io/proxy-memroy': '256Mi', 'envoy-injector.io/team': 'payments', 'example.com/other': 'x' } } }),
  );
  assert.equal(review.allowed, true);
  assert.ok(review.patch.length > 0, 'an unknown annotation does not stop injection');
  assert.deepEqual(review.warnings, [
    `${PREFIX}Ignored unknown annotation envoy-injector.io/proxy-memroy. Did you mean envoy-injector.io/proxy-memory?`,
    `${PREFIX}Ignored unknown annotation envoy-injector.io/team.`,
  ]);
  assertWellFormed(review.warnings);
});

test('thousands of unknown annotations: the first 16 are named, the rest counted in one warning', () => {
  const annotations = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`envoy-injector.io/proxy-cpu-${i}`, 'x']));
  const { warnings } = injectPod(pod({ metadata: { annotations } }), { kind: 'Pod', operation: 'CREATE', namespace: 'demo' }, testConfig(), testRuntime);
  assert.equal(warnings.length, MAX_UNKNOWN_ANNOTATION_WARNINGS + 1);
  assert.ok(warnings.slice(0, -1).every((w) => w.code === 'unknown-annotation'));
  assert.equal(warnings[1]?.message, 'Ignored unknown annotation envoy-injector.io/proxy-cpu-1. Did you mean envoy-injector.io/proxy-cpu?');
  assert.deepEqual(warnings.at(-1), {
    code: 'more-unknown-annotations',
    message: `Ignored ${20_000 - MAX_UNKNOWN_ANNOTATION_WARNINGS} more unknown envoy-injector.io annotations.`,
  });
  assertWellFormed(warnings.map((w) => `${PREFIX}${w.message}`));
  // A key longer than any known one gets no "did you mean" search at all (it could not be a typo).
  const long = injectPod(
    pod({ metadata: { annotations: { [`envoy-injector.io/proxy-cpu${'u'.repeat(100_000)}`]: 'x' } } }),
    { kind: 'Pod', operation: 'CREATE', namespace: 'demo' },
    testConfig(),
    testRuntime,
  );
  assert.equal(long.warnings.length, 1);
  assert.match(long.warnings[0]?.message ?? '', /^Ignored unknown annotation envoy-injector\.io\/proxy-cpuu+…\.$/);
});

test('other surprising skips: opting in inside an excluded namespace, an own envoy container, another mesh', async () => {
  const optIn = await admit(pod({ metadata: { labels: { 'envoy-injector.io/inject': 'enabled' } } }), { namespace: 'kube-system' });
  assert.deepEqual(optIn.warnings, [
    `${PREFIX}Pod not injected although it opts in: the injector's config excludes namespace kube-system.`,
  ]);
  const annotated = await admit(pod({ metadata: { annotations: { 'envoy-injector.io/inject': 'true' } } }), { namespace: 'envoy-injector' });
  assert.deepEqual(annotated.warnings, [
    `${PREFIX}Pod not injected although it opts in: the injector's config excludes namespace envoy-injector.`,
  ]);
  const ownEnvoy = await admit(pod({ spec: { containers: [{ name: 'envoy', image: 'envoyproxy/envoy' }] } }));
  assert.deepEqual(ownEnvoy.patch, []);
  assert.deepEqual(ownEnvoy.warnings, [
    `${PREFIX}Pod not injected: its container name envoy is reserved for the proxy; rename it to inject the pod.`,
  ]);
  const istio = await admit(
    pod({ spec: { initContainers: [{ name: 'istio-init', image: 'i' }], containers: [{ name: 'web', image: 'w' }, { name: 'istio-proxy', image: 'p' }] } }),
  );
  assert.deepEqual(istio.warnings, [
    `${PREFIX}Pod not injected: another mesh's proxy already captures its traffic (istio-init, istio-proxy).`,
  ]);
  for (const review of [optIn, annotated, ownEnvoy, istio]) assertWellFormed(review.warnings);
  // Our own re-invocation of an injected pod is expected: silent.
  const injected = applyJsonPatch(pod(), (await admit(pod())).patch);
  assert.deepEqual((await admit(injected)).warnings, []);
});

test('a drain time not shorter than the grace period is warned about', async () => {
  const review = await admit(pod({ spec: { terminationGracePeriodSeconds: 5 } }));
  assert.deepEqual(review.warnings, [
    `${PREFIX}Proxy drain (5s) is not shorter than terminationGracePeriodSeconds (5s): it will be cut off.`,
  ]);
});

test('a Guaranteed pod is told it becomes Burstable; a Burstable pod is not', async () => {
  const guaranteed = { limits: { cpu: '1', memory: '256Mi' } };
  const review = await admit(pod({ spec: { containers: [{ name: 'web', image: 'nginx', resources: guaranteed }] } }));
  assert.equal(review.allowed, true);
  assert.deepEqual(review.warnings, [`${PREFIX}Pod loses Guaranteed QoS: the injected containers' requests differ from their limits.`]);
  assertWellFormed(review.warnings);
  const burstable = await admit(pod({ spec: { containers: [{ name: 'web', image: 'nginx', resources: { limits: { cpu: '1' } } }] } }));
  assert.deepEqual(burstable.warnings, []);
});

test('hostile annotations: each warning stays one line within 256 characters, and a flood is capped', async () => {
  const annotations: Record<string, string> = {};
  for (let i = 0; i < 30; i++) annotations[`envoy-injector.io/typo-${i}`] = 'x';
  annotations[`envoy-injector.io/${'a'.repeat(300)}\r\nX-Injected: 1`] = 'x';
  const review = await admit(pod({ metadata: { annotations } }));
  assert.equal(review.allowed, true);
  assert.equal(review.warnings.length, WARNING_LIMITS.maxCount);
  // 31 unknown annotations: the first 16 each get a warning (with its "did you mean" search), the
  // other 15 one warning counting them; of those 17, the client gets 7 and a pointer to explain.
  assert.equal(review.warnings.at(-1), `${PREFIX}10 more warnings; run "envoy-injector explain -f" on the manifest to see them all.`);
  for (const w of review.warnings) {
    assert.ok(w.startsWith(PREFIX));
    assert.doesNotMatch(w, /\p{Cc}/u);
    assert.ok(Array.from(w).length <= WARNING_LIMITS.maxLength, `${w.length} characters`);
  }
});

test('formatWarnings cuts at 256 characters (counting code points) and replaces control characters', () => {
  const [long] = formatWarnings([`${'é'.repeat(300)}`]);
  assert.equal(Array.from(long ?? '').length, 256);
  assert.ok(long?.endsWith('é…'));
  assert.deepEqual(formatWarnings(['a\tb\u0000c']), [`${PREFIX}a b c`]);
});

test('every warning the corpus produces is one line within 256 characters', () => {
  const dir = new URL('./testdata/corpus/', import.meta.url).pathname;
  const config = testConfig();
  let count = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
    for (const doc of parseDocuments(readFileSync(join(dir, file), 'utf8'), file)) {
      for (const target of findPodTargets(doc.toJS())) {
        const result = injectPod(target.pod, admissionContext({ namespace: 'default', workloadKind: target.kind }), config, testRuntime);
        for (const w of formatWarnings(result.warnings.map((x) => x.message))) {
          count++;
          assert.doesNotMatch(w, /\p{Cc}/u, file);
          assert.ok(Array.from(w).length <= WARNING_LIMITS.maxLength, `${file}: ${w}`);
          assert.ok(w.length <= RECOMMENDED_LENGTH, `${file}: ${w.length} characters: ${w}`);
        }
      }
    }
  }
  assert.ok(count >= 10, `the corpus gives warnings to check (${count})`);
});
