// The fast path against the reference path (SPEC.md §6; README "Fast path"): for generated pods —
// every shape test/support/arbitrary-pod.ts makes, with hostile workload labels, names and
// container names (quotes, backslashes, U+2028, lone surrogates, `$`, `$(`, the fast path's own
// stand-ins), every setting annotation valid and invalid on the pod and on its namespace — both
// paths give byte-identical AdmissionReview answers, identical log lines and identical metrics.
// Templates are shared across the pods of a run (and evicted from a small cache), so a template
// made for one pod answers many others: the case that would show a missed key fact.
//
// The pure functions run for the ≥ 10,000 pods; a smaller sample goes through the HTTP server.
// A failure prints fast-check's seed and path; rerun that case with
// FC_SEED=<seed> FC_PATH=<path> node --import tsx --test test/fast-patch.test.ts
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { test } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import { DOMAIN, KUBECTL_DEFAULT_CONTAINER_ANNOTATION } from '../src/constants.ts';
import { createFastPatcher, FAST_PATCH_CACHE_SIZE, FAST_PATCH_MAX_KEY_LENGTH, FAST_PATCH_MAX_SLOT_LENGTH } from '../src/core/fast-patch.ts';
import { injectPod } from '../src/core/inject.ts';
import type { AdmissionContext } from '../src/core/types.ts';
import { admissionLogLine, answerAdmission, type AdmissionAnswer } from '../src/server/admission.ts';
import { buildApp } from '../src/server/app.ts';
import { createMetrics } from '../src/server/metrics.ts';
import { admissionContext, legalPod, anyPod, OVERRIDE_SETTINGS, OVERRIDE_VALUES, setups, type Setup } from './support/arbitrary-pod.ts';
import { reviewFor } from './support/review.ts';

type Obj = Record<string, any>;

const MIN_CASES = 10_000;
let cases = 0;
/** Answers the fast path gave itself (not by falling back), over the whole file. */
const paths = { hit: 0, miss: 0, reference: 0 };

function params<T>(numRuns: number): fc.Parameters<T> {
  const seed = process.env['FC_SEED'];
  const path = process.env['FC_PATH'];
  return seed === undefined ? { numRuns } : { numRuns, seed: Number(seed), ...(path === undefined ? {} : { path }) };
}

/** Text that JSON, the kubelet's `$(VAR)` expansion or the templates' slots could trip over. */
const hostileText = fc.oneof(
  fc.constantFrom(
    '"',
    '\\',
    '\\"',
    '\u2028',
    '\u2029',
    '$',
    '$$',
    '$(',
    '$(POD_NAME)',
    '$(POD_NAMESPACE)x',
    'a$(b',
    '$)',
    'ünïcode',
    '名前',
    '😀',
    '\ud800',
    '\udc00x',
    '\u0000',
    '\n\t',
    '</script>',
    '@@envoy-injector-fast-patch-workload@@',
    '@@envoy-injector-fast-patch-container@@',
    '--workload-name=x',
    '~1/~0',
    '',
  ),
  fc.string({ maxLength: 12, unit: 'binary' }),
  fc.string({ maxLength: 6 }).map((s) => `$(${s})`),
);
const hostileName = fc.tuple(hostileText, hostileText, fc.string({ maxLength: 4 })).map(([a, b, c]) => `${a}${c}${b}`);

/** A setting annotation with a valid, an invalid or a hostile value. */
const settingAnnotations = fc
  .subarray([...OVERRIDE_SETTINGS], { maxLength: 4 })
  .chain((settings) =>
    fc.tuple(
      ...settings.map((setting) =>
        fc
          .oneof(
            { weight: 4, arbitrary: fc.constantFrom(...OVERRIDE_VALUES[setting].valid) },
            { weight: 2, arbitrary: fc.constantFrom(...OVERRIDE_VALUES[setting].invalid) },
            { weight: 1, arbitrary: hostileText },
          )
          .map((value) => [`${DOMAIN}/${setting}`, value] as const),
      ),
    ),
  )
  .map((entries) => Object.fromEntries(entries) as Record<string, string>);

const SETTING_POOL = fc.sample(settingAnnotations, { numRuns: 24, seed: 15 });

/** A legal or broken pod, then made hostile where the patch embeds the pod's own strings. */
const hostilePod = fc
  .tuple(
    anyPod,
    fc.record(
      {
        workloadLabel: fc.tuple(fc.constantFrom('app.kubernetes.io/name', 'app', 'k8s-app', 'name'), hostileName),
        generateName: hostileName,
        name: hostileName,
        firstContainer: hostileName.filter((n) => n !== ''),
        // Mostly one of a few sets, as the replicas of a cluster's workloads share theirs.
        settings: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...SETTING_POOL) }, { weight: 1, arbitrary: settingAnnotations }),
        defaultContainer: hostileText,
      },
      { requiredKeys: [] },
    ),
  )
  .map(([generated, hostile]) => {
    const object = generated.object;
    if (typeof object !== 'object' || object === null || Array.isArray(object)) return object;
    const pod = structuredClone(object) as Obj;
    const metadata = typeof pod['metadata'] === 'object' && pod['metadata'] !== null && !Array.isArray(pod['metadata']) ? pod['metadata'] : undefined;
    if (metadata !== undefined) {
      if (hostile.workloadLabel !== undefined && (metadata['labels'] === undefined || isMap(metadata['labels']))) {
        metadata['labels'] = { ...metadata['labels'], [hostile.workloadLabel[0]]: hostile.workloadLabel[1] };
      }
      if (hostile.generateName !== undefined) metadata['generateName'] = hostile.generateName;
      if (hostile.name !== undefined) metadata['name'] = hostile.name;
      const annotations = metadata['annotations'];
      if (hostile.settings !== undefined && (annotations === undefined || isMap(annotations))) {
        metadata['annotations'] = { ...annotations, ...hostile.settings };
      }
      if (hostile.defaultContainer !== undefined && (metadata['annotations'] === undefined || isMap(metadata['annotations']))) {
        metadata['annotations'] = { ...metadata['annotations'], [KUBECTL_DEFAULT_CONTAINER_ANNOTATION]: hostile.defaultContainer };
      }
    }
    const first = pod['spec']?.['containers']?.[0];
    if (hostile.firstContainer !== undefined && isMap(first) && typeof first['name'] === 'string') {
      const taken = (pod['spec']['containers'] as Obj[]).slice(1).some((c) => isMap(c) && c['name'] === hostile.firstContainer);
      if (!taken) first['name'] = hostile.firstContainer;
    }
    return pod;
  });

function isMap(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A review around a hostile pod: either version, a hostile uid now and then. */
const review = fc
  .record({
    pod: fc.oneof({ weight: 3, arbitrary: hostilePod }, { weight: 1, arbitrary: legalPod as fc.Arbitrary<unknown> }),
    apiVersion: fc.constantFrom('admission.k8s.io/v1', 'admission.k8s.io/v1', 'admission.k8s.io/v1beta1') as fc.Arbitrary<'admission.k8s.io/v1' | 'admission.k8s.io/v1beta1'>,
    uid: fc.oneof({ weight: 5, arbitrary: fc.uuid() }, { weight: 1, arbitrary: hostileName.filter((u) => u !== '' && u.length <= 256) }),
    namespace: fc.oneof({ weight: 12, arbitrary: fc.constantFrom('demo', 'team-a') }, { weight: 1, arbitrary: fc.constant('kube-system') }),
    operation: fc.oneof({ weight: 20, arbitrary: fc.constant('CREATE') }, { weight: 1, arbitrary: fc.constant('UPDATE') }),
  })
  .map(({ pod, ...options }) => reviewFor(pod, options));

/** Returns the answer and the exception, if any, of answering `body` one way. */
function attempt(answer: () => AdmissionAnswer): { answer?: AdmissionAnswer; error?: string } {
  try {
    return { answer: answer() };
  } catch (error) {
    return { error: `${(error as Error).name}: ${(error as Error).message}` };
  }
}

/** The metrics text without the counter that tells the paths apart (it differs by design). */
async function comparableMetrics(metrics: ReturnType<typeof createMetrics>): Promise<string> {
  return (await metrics.render())
    .split('\n')
    .filter((line) => !line.includes('envoy_injector_fast_path_total'))
    .join('\n');
}

/** Runs the differential over `runs` reviews under `setup`, with templates cached up to `capacity`. */
async function differential(setup: Setup, runs: number, capacity: number): Promise<void> {
  const { config, runtime } = setup;
  const fast = createFastPatcher(config, runtime, undefined, capacity);
  const loadedAt = new Date(0);
  const referenceMetrics = createMetrics({ config, runtime, processMetrics: false, configLoadedAt: loadedAt });
  const fastMetrics = createMetrics({ config, runtime, processMetrics: false, configLoadedAt: loadedAt });
  fc.assert(
    fc.property(review, (body) => {
      cases++;
      const reference = attempt(() => answerAdmission(body, config, runtime));
      const quick = attempt(() => answerAdmission(body, config, runtime, fast));
      assert.equal(quick.error, reference.error, 'both paths refuse the same bodies alike');
      if (reference.answer === undefined || quick.answer === undefined) return;
      assert.equal(quick.answer.body, reference.answer.body, 'byte-identical AdmissionReview');
      const { path, ...quickRecord } = quick.answer.record;
      const { path: referencePath, ...referenceRecord } = reference.answer.record;
      assert.equal(referencePath, 'reference');
      paths[path]++;
      // Errors carry the thrown object, compared by message.
      assert.deepEqual(
        { ...quickRecord, error: String(quickRecord.error ?? '') },
        { ...referenceRecord, error: String(referenceRecord.error ?? '') },
      );
      assert.deepEqual(admissionLogLine(quick.answer.record, 0.25), admissionLogLine(reference.answer.record, 0.25), 'the same log line');
      referenceMetrics.recordAdmission(reference.answer.record, 0.00025);
      fastMetrics.recordAdmission(quick.answer.record, 0.00025);
    }),
    params(runs),
  );
  assert.equal(await comparableMetrics(fastMetrics), await comparableMetrics(referenceMetrics), 'identical metrics');
  assert.ok(fast.size <= capacity, `the cache holds ${fast.size} templates, at most ${capacity}`);
}

const SETUPS = setups();
const RUNS_PER_SETUP = Math.ceil(9_000 / SETUPS.length);

for (const [index, setup] of SETUPS.entries()) {
  // Half of the setups with a cache smaller than the variety of keys, so templates are evicted and made again.
  const capacity = index % 2 === 0 ? FAST_PATCH_CACHE_SIZE : 8;
  test(`fast path = reference path, byte for byte: ${setup.name} (cache ${capacity})`, { timeout: 120_000 }, async () => {
    await differential(setup, RUNS_PER_SETUP, capacity);
  });
}

/** Namespace annotations: what the webhook does not know yet but the core takes (SPEC.md §4b). */
const withNamespaceAnnotations = (setup: Setup) =>
  fc.tuple(hostilePod, admissionContext(setup.config), fc.option(settingAnnotations, { nil: undefined })).map(
    ([object, ctx, namespaceAnnotations]): [unknown, AdmissionContext] => [
      object,
      namespaceAnnotations === undefined ? ctx : { ...ctx, namespaceAnnotations },
    ],
  );

test('the core fast path gives the reference patch for pods whose namespace sets defaults too', { timeout: 120_000 }, () => {
  for (const setup of SETUPS) {
    const fast = createFastPatcher(setup.config, setup.runtime, undefined, 32);
    fc.assert(
      fc.property(withNamespaceAnnotations(setup), ([object, ctx]) => {
        cases++;
        const reference = injectPod(object, ctx, setup.config, setup.runtime);
        const result = fast.inject(object, ctx);
        if (!result.handled) {
          if (result.why === 'not-injected') assert.notEqual(reference.decision.action, 'inject');
          return;
        }
        assert.equal(reference.decision.action, 'inject');
        const json = JSON.stringify(reference.patch);
        assert.equal(result.injection.patchBase64, Buffer.from(json, 'utf8').toString('base64'));
        assert.equal(result.injection.patchBytes, Buffer.byteLength(json));
        assert.equal(result.injection.patchOperations, reference.patch.length);
        assert.deepEqual(result.injection.decision, reference.decision);
        assert.deepEqual(result.injection.warnings, reference.warnings);
      }),
      params(Math.ceil(1_200 / SETUPS.length)),
    );
  }
});

test('a key too long for the cache, or a template that cannot be made, is answered by the reference path', () => {
  const [setup] = SETUPS;
  assert.ok(setup);
  const fast = createFastPatcher(setup.config, setup.runtime);
  const pod = (annotations: Record<string, string>) => ({
    metadata: { generateName: 'web-', annotations },
    spec: { containers: [{ name: 'web', image: 'nginx' }] },
  });
  const ctx: AdmissionContext = { kind: 'Pod', operation: 'CREATE', namespace: 'demo' };
  // Two lists of 256 ports (the most a list may have): together longer than a key may be.
  const ports = Array.from({ length: 256 }, (_, i) => String(10_000 + i)).join(',');
  assert.ok(2 * ports.length > FAST_PATCH_MAX_KEY_LENGTH);
  const longPod = pod({ [`${DOMAIN}/exclude-outbound-ports`]: ports, [`${DOMAIN}/exclude-inbound-ports`]: ports });
  assert.equal(injectPod(longPod, ctx, setup.config, setup.runtime).decision.action, 'inject');
  assert.deepEqual(fast.inject(longPod, ctx), { handled: false, why: 'uncacheable' });
  assert.equal(fast.size, 0, 'nothing was cached for it');
  // An image that spells the workload's stand-in: the slot cannot be told apart, so no template.
  const spelt = pod({ [`${DOMAIN}/proxy-image`]: 'envoy@@envoy-injector-fast-patch-workload@@' });
  assert.equal(injectPod(spelt, ctx, setup.config, setup.runtime).decision.action, 'deny', 'not a valid image: denied either way');
  const sentinelLabel = { metadata: { labels: { app: '@@envoy-injector-fast-patch-workload@@' } }, spec: { containers: [{ name: 'web', image: 'nginx' }] } };
  const answered = fast.inject(sentinelLabel, ctx);
  assert.equal(answered.handled, true, 'a pod value that spells a stand-in is only a value');
  const reference = injectPod(sentinelLabel, ctx, setup.config, setup.runtime);
  if (answered.handled) assert.equal(answered.injection.patchBase64, Buffer.from(JSON.stringify(reference.patch)).toString('base64'));
  assert.deepEqual(fast.inject({ spec: { hostNetwork: true, containers: [{ name: 'w' }] } }, ctx), { handled: false, why: 'not-injected' });
  // A name longer than any valid one: the reference path, which sees it whole, answers.
  const longName = { metadata: { generateName: `${'w'.repeat(FAST_PATCH_MAX_SLOT_LENGTH)}-x-` }, spec: { containers: [{ name: 'web', image: 'nginx' }] } };
  assert.deepEqual(fast.inject(longName, ctx), { handled: false, why: 'uncacheable' });
});

test('over HTTP the fast path answers what the reference path answers, with the same headers', { timeout: 60_000 }, async () => {
  const [setup] = SETUPS;
  assert.ok(setup);
  const app = buildApp({ config: setup.config, runtime: setup.runtime, logger: pino({ level: 'silent' }) });
  const debug = buildApp({ config: setup.config, runtime: setup.runtime, logger: pino({ level: 'debug' }, { write: () => {} }) });
  try {
    const bodies = fc.sample(review, { numRuns: 150, seed: 15 });
    for (const body of bodies) {
      cases++;
      const payload = JSON.stringify(body);
      const [quick, reference] = await Promise.all([
        app.inject({ method: 'POST', url: '/mutate', payload, headers: { 'content-type': 'application/json' } }),
        debug.inject({ method: 'POST', url: '/mutate', payload, headers: { 'content-type': 'application/json' } }),
      ]);
      assert.equal(quick.statusCode, reference.statusCode);
      assert.equal(quick.headers['content-type'], reference.headers['content-type']);
      assert.equal(quick.headers['content-length'], reference.headers['content-length']);
      assert.equal(quick.body, reference.body);
      if (quick.statusCode === 200) {
        assert.equal(quick.headers['content-type'], 'application/json; charset=utf-8');
        const { answer } = attempt(() => answerAdmission(body, setup.config, setup.runtime));
        assert.equal(quick.body, answer?.body, 'the reference path answers the review exactly so');
      }
    }
  } finally {
    await Promise.all([app.close(), debug.close()]);
  }
});

test(`the differential ran at least ${MIN_CASES} cases, most of them answered by templates`, () => {
  assert.ok(cases >= MIN_CASES, `${cases} cases`);
  // About a third of the generated pods are injected (the rest skipped or denied, by the reference path).
  assert.ok(paths.hit > 800, `${paths.hit} answers from cached templates`);
  assert.ok(paths.miss > 200, `${paths.miss} templates made`);
  assert.ok(paths.reference > 3_000, `${paths.reference} answers by the reference path`);
});
