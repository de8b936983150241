// Property-based tests (fast-check) over the pure core and the admission handler: for any pod the
// generators can make (test/support/arbitrary-pod.ts), under each configuration, the core never
// throws and never mutates its input, and either skips or denies with known reason codes that the
// model expects, or returns a patch that applies cleanly with fast-json-patch and yields the pod
// the model describes (names unique, proxy ports its own, checkInjectedPod satisfied, the pod's own
// containers untouched) and that is not injected again. The handler (admit + error mapping) never
// throws on any body. The last test checks that the run exercised at least 10,000 cases.
//
// A failure prints fast-check's seed and path; rerun just that case with
// FC_SEED=<seed> FC_PATH=<path> node --import tsx --test test/property.test.ts
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { test } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import {
  INIT_CONTAINER_NAME,
  KUBECTL_DEFAULT_CONTAINER_ANNOTATION,
  PROXY_PORTS,
  SIDECAR_CONTAINER_NAME,
  STATUS_ANNOTATION,
} from '../src/constants.ts';
import { injectPod, type InjectionResult } from '../src/core/inject.ts';
import { REASONS, WARNINGS } from '../src/core/reasons.ts';
import { parseInitFlags } from '../src/core/init-flags.ts';
import type { AdmissionContext } from '../src/core/types.ts';
import { InjectorError } from '../src/errors.ts';
import { admit } from '../src/server/admission.ts';
import { buildApp } from '../src/server/app.ts';
import { toHttpError } from '../src/server/errors.ts';
import { admissionContext, anyPod, expectOutcome, INJECTED_VOLUMES, setups, VALID_STATUS, type GeneratedPod, type Setup } from './support/arbitrary-pod.ts';
import { checkInjectedPod } from './support/check-injected.ts';
import { applyJsonPatch } from './support/patch.ts';
import { STACK_TRACE } from './support/raw-https.ts';
import { decodeResponse, reviewFor } from './support/review.ts';

type Obj = Record<string, any>;

/** Cases run in this file; the last test checks the total. */
let cases = 0;
const MIN_CASES = 10_000;

/** fast-check parameters: a fixed run size, or one replayed case when FC_SEED/FC_PATH are given. */
function params<T>(numRuns: number): fc.Parameters<T> {
  const seed = process.env['FC_SEED'];
  const path = process.env['FC_PATH'];
  return seed === undefined ? { numRuns } : { numRuns, seed: Number(seed), ...(path === undefined ? {} : { path }) };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

const names = (list: Obj[] | undefined) => (list ?? []).map((c) => c['name'] as string);

/** Returns what was added to `after` relative to `before` (by name), and what else changed. */
function stripInjected(injected: Obj, original: Obj): Obj {
  const pod = structuredClone(injected);
  const spec = pod['spec'];
  const drop = (key: string, keep: (item: Obj) => boolean) => {
    spec[key] = (spec[key] as Obj[]).filter(keep);
    // Lists the injection created are removed whole, as they were absent (or null) before.
    if (!Object.hasOwn(original['spec'], key) || original['spec'][key] === null) spec[key] = original['spec'][key];
    if (spec[key] === undefined) delete spec[key];
  };
  drop('initContainers', (c) => c['name'] !== INIT_CONTAINER_NAME && c['name'] !== SIDECAR_CONTAINER_NAME);
  spec['containers'] = (spec['containers'] as Obj[]).filter((c) => c['name'] !== SIDECAR_CONTAINER_NAME);
  // The fixed volumes, and those of the proxy's mounts and ADS material (their own prefixes).
  drop('volumes', (v) => !INJECTED_VOLUMES.includes(v['name']) && !/^envoy-(mount|ads)-/.test(v['name']));
  const originalAnnotations = original['metadata']?.['annotations'];
  const annotations = pod['metadata']['annotations'] as Obj;
  delete annotations[STATUS_ANNOTATION];
  if (originalAnnotations?.[KUBECTL_DEFAULT_CONTAINER_ANNOTATION] === undefined) delete annotations[KUBECTL_DEFAULT_CONTAINER_ANNOTATION];
  if (originalAnnotations === undefined || originalAnnotations === null) pod['metadata']['annotations'] = originalAnnotations;
  if (pod['metadata']['annotations'] === undefined) delete pod['metadata']['annotations'];
  if (!Object.hasOwn(original, 'metadata')) delete pod['metadata'];
  return pod;
}

/** Path patterns of the only operations a patch may contain: additions at known places. */
const PATCH_PATHS = [
  /^\/metadata$/,
  /^\/metadata\/annotations$/,
  /^\/metadata\/annotations\/[^/]+$/,
  /^\/spec\/initContainers(\/(\d+|-))?$/,
  /^\/spec\/containers\/\d+$/,
  /^\/spec\/volumes(\/-)?$/,
];

function arg(args: string[], flag: string): string | undefined {
  const index = args.indexOf(flag);
  return index === -1 ? undefined : args[index + 1];
}

/** Checks one injection result against the model; throws an assertion error on any difference. */
function checkCase(generated: GeneratedPod, ctx: AdmissionContext, setup: Setup): void {
  const expected = expectOutcome(generated, ctx, setup);
  const snapshot = JSON.stringify(generated.object);
  // Frozen: any write to the input throws (ESM is strict mode), which fails the property.
  const object = deepFreeze(structuredClone(generated.object));
  let result: InjectionResult;
  try {
    result = injectPod(object, ctx, setup.config, setup.runtime);
  } catch (error) {
    assert.fail(`injectPod threw (${setup.name}): ${(error as Error).stack}`);
  }
  assert.equal(JSON.stringify(object), snapshot, 'the input is unchanged');

  const { decision } = result;
  const codes = decision.reasons.map((r) => r.code);
  for (const r of decision.reasons) {
    assert.ok(Object.hasOwn(REASONS, r.code), `known reason ${r.code}`);
    assert.equal(REASONS[r.code].action, decision.action, `${r.code} belongs to a ${decision.action}`);
    assert.ok(r.message.length > 0);
  }
  for (const w of result.warnings) assert.ok(Object.hasOwn(WARNINGS, w.code), `known warning ${w.code}`);
  assert.deepEqual({ action: decision.action, reasons: codes }, { action: expected.action, reasons: expected.reasons }, setup.name);
  assert.deepEqual(result.warnings.map((w) => w.code).sort(), [...expected.warnings].sort(), 'warnings');

  if (decision.action === 'reorder') {
    // One move, that puts envoy-init last and changes nothing else; the pod it gives is left alone.
    assert.equal(result.patch.length, 1);
    assert.equal(result.patch[0]!.op, 'move');
    const reordered = applyJsonPatch(generated.object, result.patch) as Obj;
    assert.deepEqual(reordered as unknown, result.pod, 'the move yields the reordered pod');
    const before = names((generated.object as Obj)['spec']['initContainers']);
    assert.deepEqual(names(reordered['spec']['initContainers']), [...before.filter((n) => n !== INIT_CONTAINER_NAME), INIT_CONTAINER_NAME]);
    assert.deepEqual({ ...reordered, spec: { ...reordered['spec'], initContainers: null } }, { ...(generated.object as Obj), spec: { ...(generated.object as Obj)['spec'], initContainers: null } });
    const again = injectPod(deepFreeze(structuredClone(reordered)), ctx, setup.config, setup.runtime);
    assert.equal(again.decision.action, 'skip');
    assert.deepEqual(again.patch, []);
    return;
  }
  if (decision.action !== 'inject') {
    assert.deepEqual(result.patch, []);
    assert.equal(result.pod, undefined);
    if (decision.action === 'deny' && codes.includes('invalid-annotations')) {
      const message = decision.reasons.find((r) => r.code === 'invalid-annotations')!.message;
      for (const key of expected.invalidAnnotations) assert.ok(message.includes(`${key}=`), `the denial names ${key}: ${message}`);
    }
    return;
  }

  // The patch: only additions at known places, applying cleanly (fast-json-patch validates each
  // operation) to exactly the injected pod.
  assert.ok(result.patch.length > 0);
  for (const op of result.patch) {
    assert.equal(op.op, 'add');
    assert.ok(PATCH_PATHS.some((p) => p.test(op.path)), `patch path ${op.path}`);
  }
  const pod = generated.object as Obj;
  const injected = applyJsonPatch(pod, result.patch) as Obj;
  assert.deepEqual(injected as unknown, result.pod, 'the patch yields the injected pod');
  checkInjectedPod(injected);

  // Names unique and the proxy's ports its own.
  const spec = injected['spec'];
  const allNames = [...names(spec['initContainers']), ...names(spec['containers'])];
  assert.equal(new Set(allNames).size, allNames.length, 'container names are unique');
  const volumeNames = names(spec['volumes']);
  assert.equal(new Set(volumeNames).size, volumeNames.length, 'volume names are unique');
  const envoy = [...(spec['initContainers'] ?? []), ...spec['containers']].find((c: Obj) => c['name'] === SIDECAR_CONTAINER_NAME) as Obj;
  const envoyPorts = (envoy['ports'] as Obj[]).map((p) => p['containerPort'] as number);
  assert.ok(envoyPorts.every((p) => PROXY_PORTS.includes(p)));
  // No container running beside the proxy listens on its TCP ports (other protocols cannot clash;
  // a plain init container before a classic proxy has finished before it starts).
  const native = (spec['initContainers'] ?? []).some((c: Obj) => c['name'] === SIDECAR_CONTAINER_NAME);
  const beside = [...((spec['initContainers'] ?? []) as Obj[]).filter((c) => native || c['restartPolicy'] === 'Always'), ...spec['containers']] as Obj[];
  for (const c of beside) {
    if (c['name'] === SIDECAR_CONTAINER_NAME) continue;
    for (const p of c['ports'] ?? []) {
      if ((p['protocol'] ?? 'TCP') !== 'TCP') continue;
      assert.ok(!envoyPorts.includes(p['containerPort']) && !PROXY_PORTS.includes(p['containerPort']));
    }
  }

  // Only additions: without what was injected, the pod is exactly the input.
  assert.deepEqual(stripInjected(injected, pod), pod, 'nothing of the pod itself changed');
  // Where things go (SPEC.md §4).
  const proxy = expected.proxy!;
  const originalInit = names(pod['spec']['initContainers']);
  const originalApp = names(pod['spec']['containers']);
  if (proxy.nativeSidecar) {
    assert.deepEqual(names(spec['initContainers']), [INIT_CONTAINER_NAME, SIDECAR_CONTAINER_NAME, ...originalInit]);
    assert.deepEqual(names(spec['containers']), originalApp);
  } else {
    assert.deepEqual(names(spec['initContainers']), [...originalInit, INIT_CONTAINER_NAME]);
    assert.deepEqual(names(spec['containers']), [SIDECAR_CONTAINER_NAME, ...originalApp]);
    const defaultContainer = pod['metadata']?.['annotations']?.[KUBECTL_DEFAULT_CONTAINER_ANNOTATION] ?? originalApp[0];
    assert.equal(injected['metadata']['annotations'][KUBECTL_DEFAULT_CONTAINER_ANNOTATION], defaultContainer);
  }

  // The overrides took effect (README "Per-pod overrides").
  const args = envoy['args'] as string[];
  assert.equal(envoy['image'], proxy.image);
  assert.equal(arg(args, '--log-level'), proxy.logLevel);
  // 0 means one worker per CPU the container may use: Envoy's --cpuset-threads, not --concurrency 0
  // (which Envoy would run with a single worker).
  if (proxy.concurrency === 0) {
    assert.ok(args.includes('--cpuset-threads') && !args.includes('--concurrency'), 'concurrency 0 is --cpuset-threads');
  } else {
    assert.equal(arg(args, '--concurrency'), String(proxy.concurrency));
  }
  assert.equal(arg(args, '--drain-time-s'), String(proxy.drainSeconds));
  // Each proxy mount is a read-only mount of envoy's, of a volume of its own.
  const mounts = (envoy['volumeMounts'] as Obj[]).filter((m) => String(m['name']).startsWith('envoy-mount-'));
  assert.deepEqual(mounts.map((m) => m['mountPath']), proxy.mountPaths, 'proxy mounts');
  assert.ok(mounts.every((m) => m['readOnly'] === true && volumeNames.includes(m['name'])));
  assert.deepEqual(envoy['resources']['requests'] ?? {}, proxy.requests);
  assert.deepEqual(envoy['resources']['limits'] ?? {}, proxy.limits);
  assert.equal(envoy['lifecycle']?.['postStart'] !== undefined, !proxy.nativeSidecar && proxy.hold, 'postStart hold');
  assert.equal(envoy['lifecycle']?.['preStop'] !== undefined, !proxy.nativeSidecar && proxy.drainSeconds > 0, 'preStop drain');
  const init = (spec['initContainers'] as Obj[]).find((c) => c['name'] === INIT_CONTAINER_NAME)!;
  const flags = Object.fromEntries((init['args'] as string[]).slice(1).map((a) => a.slice(2).split(/=(.*)/s).slice(0, 2)));
  assert.ok(parseInitFlags(flags).ok);
  for (const [flag, value] of Object.entries(proxy.traffic)) assert.equal(flags[flag], value, `--${flag}`);

  // Idempotent: the injected pod is left alone.
  const again = injectPod(deepFreeze(structuredClone(injected)), ctx, setup.config, setup.runtime);
  assert.equal(again.decision.action, 'skip');
  assert.ok(again.decision.reasons.some((r) => r.code === 'already-injected'));
  assert.deepEqual(again.patch, []);
}

const SETUPS = setups();

/** The core under each configuration: 1,750 cases each. */
for (const setup of SETUPS) {
  test(`the core, any pod, ${setup.name}`, () => {
    fc.assert(
      fc.property(anyPod, admissionContext(setup.config), (generated, ctx) => {
        cases++;
        checkCase(generated, ctx, setup);
      }),
      params(1_750),
    );
  });
}

// The generators reach a re-invoked pod of ours whose order needs restoring about once in 10,000
// cases (found so by a run of this file): that case, checked against the model in every setup.
test('the model and the core agree on a re-invoked pod with an init container after envoy-init', () => {
  const object = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { annotations: { 'envoy-injector.io/ipv6': 'auto', 'envoy-injector.io/status': VALID_STATUS } },
    spec: { containers: [{ name: 'b', image: 'nginx' }], initContainers: [{ name: 'envoy-init', image: 'nginx' }, { name: 'a', image: 'nginx' }], volumes: [] },
  };
  const ctx: AdmissionContext = { kind: 'Pod', operation: 'CREATE', namespace: 'demo' };
  for (const setup of SETUPS) {
    assert.equal(expectOutcome({ object } as GeneratedPod, ctx, setup).action, 'reorder', setup.name);
    checkCase({ object } as GeneratedPod, ctx, setup);
  }
});

// The generators' reach is checked on one fixed sample: with a new seed each run, the rarest
// decision here (proxy-port-conflict, ~10 in 1,000 cases; 3 to 16 over 150 seeds) was absent from
// one CI run. A fixed seed keeps the check of what the generators can make, without the chance.
const COVERAGE_SEED = 20261204;

test('the generators reach every decision: injected, skipped and denied pods all occur', () => {
  const setup = SETUPS[0]!;
  const seen = new Map<string, number>();
  fc.assert(
    fc.property(anyPod, admissionContext(setup.config), (generated, ctx) => {
      cases++;
      const { action, reasons } = expectOutcome(generated, ctx, setup);
      for (const key of [action, ...reasons]) seen.set(key, (seen.get(key) ?? 0) + 1);
    }),
    { numRuns: 1_000, seed: COVERAGE_SEED },
  );
  // A generator that drifted into producing only skips would test nothing.
  assert.ok((seen.get('inject') ?? 0) > 300, `injected: ${JSON.stringify([...seen])}`);
  for (const key of ['skip', 'deny', 'invalid-pod', 'invalid-annotations', 'proxy-port-conflict', 'already-injected', 'host-network']) {
    assert.ok((seen.get(key) ?? 0) > 0, `${key} occurs: ${JSON.stringify([...seen])}`);
  }
});

/** Review bodies: well-formed reviews of any pod, reviews with a field broken, and any JSON at all. */
const reviewBody = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(anyPod, fc.uuid()).map(([pod, uid]) => reviewFor(pod.object, { uid }) as unknown) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(
        anyPod,
        fc.constantFrom('apiVersion', 'kind', 'request', 'request.uid', 'request.kind', 'request.operation', 'request.object', 'request.namespace', 'request.subResource'),
        fc.jsonValue({ maxDepth: 2 }),
      )
      .map(([pod, field, value]) => {
        const review = reviewFor(pod.object, { uid: 'broken' }) as Obj;
        const [head, tail] = field.split('.') as [string, string | undefined];
        if (tail === undefined) review[head] = value;
        else review[head][tail] = value;
        return review as unknown;
      }),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<unknown> },
);

test('the admission handler answers every review or refuses it as invalid; it never throws anything else', () => {
  const { config, runtime } = SETUPS[0]!;
  fc.assert(
    fc.property(reviewBody, (body) => {
      cases++;
      let outcome: ReturnType<typeof admit>;
      try {
        outcome = admit(body, config, runtime);
      } catch (error) {
        assert.ok(error instanceof InjectorError && error.code === 'invalid-review', `unexpected throw: ${(error as Error)?.stack}`);
        const mapped = toHttpError(error, config.server);
        assert.equal(mapped.statusCode, 400);
        assert.equal(mapped.serverFault, false);
        assert.doesNotMatch(mapped.body.message, STACK_TRACE);
        return;
      }
      // No internal error on any input: that would be a bug in the core.
      assert.notEqual(outcome.result, 'error', String((outcome.error as Error | undefined)?.stack));
      const review = decodeResponse(outcome.review);
      assert.equal(review.uid, (body as Obj)['request']['uid']);
      assert.equal(typeof review.allowed, 'boolean');
      if (review.allowed) assert.equal(outcome.result === 'denied', false);
      else assert.equal(review.status?.code, 400);
      assert.doesNotMatch(JSON.stringify(outcome.review), STACK_TRACE);
    }),
    params(2_000),
  );
});

test('error mapping turns anything thrown into a status and a safe message', () => {
  const thrown = fc.oneof(
    fc.anything(),
    fc.record({ code: fc.oneof(fc.string(), fc.constantFrom('FST_ERR_CTP_BODY_TOO_LARGE', 'FST_ERR_CTP_INVALID_MEDIA_TYPE', 'invalid-review')), statusCode: fc.anything(), message: fc.string() }),
    fc.string().map((message) => new Error(message)),
    fc.string().map((message) => new SyntaxError(message)),
    fc.string().map((message) => Object.assign(new Error(`secret ${message}`), { statusCode: 599 })),
  );
  fc.assert(
    fc.property(thrown, (error) => {
      cases++;
      const mapped = toHttpError(error, { bodyLimitBytes: 1024 });
      assert.ok(Number.isInteger(mapped.statusCode) && mapped.statusCode >= 400 && mapped.statusCode <= 599);
      assert.equal(typeof mapped.body.error, 'string');
      assert.doesNotMatch(mapped.body.message, STACK_TRACE);
      // Server faults never echo what the error said.
      if (mapped.serverFault) assert.equal(mapped.body.message, 'internal error; see the injector logs');
    }),
    params(1_000),
  );
});

test('the HTTP handler (fastify, in process) answers any body with 200, 400, 413 or 415 and no stack trace', async () => {
  const { config, runtime } = SETUPS[0]!;
  const app = buildApp({ config: { ...config, server: { ...config.server, bodyLimitBytes: 64 * 1024 } }, runtime, logger: pino({ level: 'silent' }) });
  const payload = fc.oneof(
    reviewBody.map((body) => JSON.stringify(body)),
    fc.string({ maxLength: 50 }),
    fc.json({ maxDepth: 2 }),
    fc.constant('x'.repeat(70 * 1024)),
  );
  const contentType = fc.oneof(
    { weight: 6, arbitrary: fc.constant('application/json') },
    { weight: 1, arbitrary: fc.constantFrom('application/json; charset=utf-8', 'text/plain', 'application/yaml', '') },
  );
  await fc.assert(
    fc.asyncProperty(payload, contentType, async (body, type) => {
      cases++;
      const response = await app.inject({ method: 'POST', url: '/mutate', payload: body, headers: type === '' ? {} : { 'content-type': type } });
      assert.ok([200, 400, 413, 415].includes(response.statusCode), `${response.statusCode} ${response.body}`);
      assert.doesNotMatch(response.body, STACK_TRACE);
      const parsed = JSON.parse(response.body) as Obj;
      if (response.statusCode === 200) {
        assert.equal(parsed['kind'], 'AdmissionReview');
        const review = decodeResponse(parsed);
        if (review.patch.length > 0) assert.equal(review.patchType, 'JSONPatch');
        assert.ok(Buffer.byteLength(response.body) > 0);
      } else {
        assert.equal(typeof parsed['error'], 'string');
      }
    }),
    params(1_000),
  );
  await app.close();
});

test(`the properties above ran at least ${MIN_CASES} cases`, () => {
  // Replaying one case (FC_SEED) runs fewer on purpose.
  if (process.env['FC_SEED'] !== undefined) return;
  assert.ok(cases >= MIN_CASES, `${cases} cases`);
});
