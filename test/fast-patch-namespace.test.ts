// The fast path and namespace defaults (SPEC.md §4b, §6): what the namespace cache knows of a pod's
// namespace reaches the template key, so a namespace default changes the fast path's answer exactly
// as it changes the reference path's — in the core, and through the webhook with a namespace cache.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { test } from 'node:test';
import { pino } from 'pino';
import { DOMAIN } from '../src/constants.ts';
import { createFastPatcher } from '../src/core/fast-patch.ts';
import { injectPod } from '../src/core/inject.ts';
import type { AdmissionContext } from '../src/core/types.ts';
import type { NamespaceDefaultsLookup } from '../src/kube/namespace-cache.ts';
import { buildApp } from '../src/server/app.ts';
import { setups } from './support/arbitrary-pod.ts';
import { reviewFor } from './support/review.ts';

const [setup] = setups();
assert.ok(setup);

const pod = (annotations: Record<string, string> = {}) => ({
  metadata: { generateName: 'web-', labels: { app: 'web' }, annotations },
  spec: { containers: [{ name: 'web', image: 'nginx' }] },
});
const ctx: AdmissionContext = { kind: 'Pod', operation: 'CREATE', namespace: 'shop' };
const CPU = `${DOMAIN}/proxy-cpu`;

/** The envoy container's CPU request in a decoded patch. */
function proxyCpu(patchJson: string): unknown {
  const ops = JSON.parse(patchJson) as { path: string; value: any }[];
  for (const op of ops) {
    const containers = Array.isArray(op.value) ? op.value : [op.value];
    for (const c of containers) if (c?.name === 'envoy') return c.resources?.requests?.cpu;
  }
  return undefined;
}

test('a namespace default changes the fast path answer, and its key tells the namespaces apart', () => {
  const fast = createFastPatcher(setup.config, setup.runtime);
  const answer = (object: unknown, context: AdmissionContext) => {
    const result = fast.inject(object, context);
    assert.equal(result.handled, true);
    if (!result.handled) throw new Error('unreachable');
    const reference = injectPod(object, context, setup.config, setup.runtime);
    const json = JSON.stringify(reference.patch);
    assert.equal(result.injection.patchBase64, Buffer.from(json, 'utf8').toString('base64'), 'byte for byte the reference patch');
    return { cache: result.injection.cache, json: Buffer.from(result.injection.patchBase64, 'base64').toString('utf8') };
  };
  const plain = answer(pod(), ctx);
  assert.equal(plain.cache, 'miss');
  assert.equal(answer(pod(), ctx).cache, 'hit');
  const defaultCpu = proxyCpu(plain.json);
  assert.notEqual(defaultCpu, '250m', 'the config does not already ask for the namespace value');

  // The same pod in a namespace whose default sets the proxy's CPU: not the first template.
  const withDefault = { ...ctx, namespaceAnnotations: { [CPU]: '250m' } };
  const defaulted = answer(pod(), withDefault);
  assert.equal(defaulted.cache, 'miss', 'a template of its own');
  assert.notEqual(defaulted.json, plain.json);
  assert.equal(proxyCpu(defaulted.json), '250m');
  assert.equal(answer(pod(), withDefault).cache, 'hit');

  // Another value in the namespace: yet another template; the pod's own annotation wins over it.
  const other = answer(pod(), { ...ctx, namespaceAnnotations: { [CPU]: '300m' } });
  assert.equal(other.cache, 'miss');
  assert.equal(proxyCpu(other.json), '300m');
  assert.equal(proxyCpu(answer(pod({ [CPU]: '120m' }), withDefault).json), '120m');
  // An annotation of the namespace that is no setting changes nothing: the first template answers.
  const unrelated = answer(pod(), { ...ctx, namespaceAnnotations: { 'example.com/team': 'shop' } });
  assert.equal(unrelated.cache, 'hit');
  assert.equal(unrelated.json, plain.json);
});

test('through the webhook, the namespace cache answer reaches the fast path as it reaches the reference path', { timeout: 60_000 }, async () => {
  const known: Record<string, Record<string, string>> = { shop: { [CPU]: '250m' }, plain: {} };
  const namespaces = {
    defaultsFor: (name: string): NamespaceDefaultsLookup =>
      known[name] === undefined ? { known: false, reason: 'not found' } : { known: true, annotations: known[name] },
  };
  const fast = buildApp({ config: setup.config, runtime: setup.runtime, logger: pino({ level: 'silent' }), namespaces });
  // At debug level every admission goes by the reference path.
  const reference = buildApp({ config: setup.config, runtime: setup.runtime, logger: pino({ level: 'debug' }, { write: () => {} }), namespaces });
  try {
    const patchOf = async (namespace: string) => {
      const payload = JSON.stringify(reviewFor(pod(), { namespace }));
      const send = (app: typeof fast) => app.inject({ method: 'POST', url: '/mutate', payload, headers: { 'content-type': 'application/json' } });
      // Twice on the fast app: a template made, then a template hit.
      const [first, second, slow] = [await send(fast), await send(fast), await send(reference)];
      assert.equal(first.statusCode, 200);
      assert.equal(first.body, slow.body, `namespace ${namespace}: the fast path answers what the reference path answers`);
      assert.equal(second.body, slow.body);
      const response = (JSON.parse(first.body) as { response: { patch: string; warnings?: string[] } }).response;
      return { json: Buffer.from(response.patch, 'base64').toString('utf8'), warnings: response.warnings ?? [] };
    };
    const plain = await patchOf('plain');
    const shop = await patchOf('shop');
    assert.notEqual(proxyCpu(plain.json), '250m');
    assert.equal(proxyCpu(shop.json), '250m', 'the namespace default is in the patch');
    // A namespace the cache does not know: config defaults and a warning, on both paths alike.
    const unknown = await patchOf('elsewhere');
    assert.equal(unknown.json, plain.json);
    assert.ok(unknown.warnings.some((w) => /elsewhere/.test(w)), unknown.warnings.join('\n'));
  } finally {
    await Promise.all([fast.close(), reference.close()]);
  }
});
