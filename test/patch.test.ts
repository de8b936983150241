// The patch (SPEC.md §6), judged by what it does: applied to the request object with fast-json-patch
// it gives exactly the injected pod — creating missing parents, with annotation keys escaped (RFC
// 6901) — it only adds, it never carries or rewrites the pod's own containers, and injecting the
// result again gives no patch.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { admissionContext } from '../src/core/context.ts';
import { injectPod } from '../src/core/inject.ts';
import { escapePointer } from '../src/core/patch.ts';
import type { JsonObject } from '../src/core/types.ts';
import { testConfig, testRuntime } from './support/config.ts';
import { applyJsonPatch } from './support/patch.ts';

const ctx = admissionContext({ namespace: 'demo' });
const containers = [{ name: 'web', image: 'nginx' }];
type Pod = Record<string, any>;

/** Injects `object`, applies the patch to it, checks the result is the injected pod and a fixed point. */
function patched(object: Pod, env: Record<string, string> = {}): { pod: Pod; patch: readonly { op: string; value?: unknown }[] } {
  const config = testConfig(env);
  const result = injectPod(object, ctx, config, testRuntime);
  assert.equal(result.decision.action, 'inject');
  const pod = applyJsonPatch(object, result.patch) as Pod;
  assert.deepEqual(pod, result.pod, 'the patch applied to the request object gives the injected pod');
  const again = injectPod(pod, ctx, config, testRuntime);
  assert.deepEqual(again.patch, [], 'injecting the injected pod gives no patch');
  return { pod, patch: result.patch };
}

test('RFC 6901: annotation keys with "/" and "~" land as written', () => {
  assert.equal(escapePointer('envoy-injector.io/status'), 'envoy-injector.io~1status');
  assert.equal(escapePointer('a~b/c'), 'a~0b~1c');
  const { pod } = patched({ metadata: { name: 'p', annotations: { x: 'y', 'a~b/c': 'd' } }, spec: { containers } });
  assert.deepEqual(Object.keys(pod['metadata']['annotations']), ['x', 'a~b/c', 'envoy-injector.io/status', 'kubectl.kubernetes.io/default-container']);
  assert.equal(pod['metadata']['annotations']['a~b/c'], 'd');
  assert.equal(pod['metadata']['annotations']['kubectl.kubernetes.io/default-container'], 'web');
  assert.equal(JSON.parse(pod['metadata']['annotations']['envoy-injector.io/status'])['version'], testRuntime.version);
});

test('missing parents are created: no metadata, null annotations, null or no initContainers, no volumes', () => {
  const noMetadata = patched({ spec: { containers } }).pod;
  assert.deepEqual(Object.keys(noMetadata['metadata']), ['annotations']);
  assert.ok(noMetadata['metadata']['annotations']['envoy-injector.io/status']);
  const nulls = patched({ metadata: { name: 'p', annotations: null }, spec: { containers, initContainers: null } }).pod;
  assert.equal(nulls['metadata']['name'], 'p');
  assert.ok(nulls['metadata']['annotations']['envoy-injector.io/status']);
  assert.deepEqual(nulls['spec']['initContainers'].map((c: Pod) => c['name']), ['envoy-init']);
  assert.deepEqual(nulls['spec']['volumes'].map((v: Pod) => v['name']), ['envoy-init-xtables-lock', 'envoy-bootstrap', 'envoy-podinfo']);
  const native = patched({ metadata: { name: 'p' }, spec: { containers } }, { ENVOY_INJECTOR_NATIVE_SIDECAR: 'true' }).pod;
  assert.deepEqual(native['spec']['initContainers'].map((c: Pod) => c['name']), ['envoy-init', 'envoy']);
});

test("only additions, and the pod's own containers are neither carried nor rewritten", () => {
  const pod = {
    metadata: { name: 'p' },
    spec: {
      initContainers: [{ name: 'setup', image: 'busybox' }],
      containers: [{ name: 'a', image: 'a' }, { name: 'b', image: 'b' }],
      volumes: [{ name: 'data', emptyDir: {} }],
    },
  };
  for (const native of ['false', 'true']) {
    const { pod: injected, patch } = patched(pod, { ENVOY_INJECTOR_NATIVE_SIDECAR: native });
    assert.ok(patch.every((op) => op.op === 'add'), 'every operation adds');
    // What the patch carries is only what was injected: none of the pod's own containers or volumes.
    const carried = JSON.stringify(patch.map((op) => op.value));
    for (const own of ['"setup"', '"a"', '"b"', '"data"']) assert.ok(!carried.includes(`"name":${own}`), `the patch does not carry ${own}`);
    const names = (list: Pod[]) => list.map((c) => c['name']);
    if (native === 'true') {
      assert.deepEqual(names(injected['spec']['initContainers']), ['envoy-init', 'envoy', 'setup']);
      assert.deepEqual(names(injected['spec']['containers']), ['a', 'b']);
    } else {
      assert.deepEqual(names(injected['spec']['initContainers']), ['setup', 'envoy-init']);
      assert.deepEqual(names(injected['spec']['containers']), ['envoy', 'a', 'b']);
    }
    assert.deepEqual(injected['spec']['containers'].filter((c: Pod) => c['name'] !== 'envoy'), pod.spec.containers);
    assert.deepEqual(injected['spec']['initContainers'].filter((c: Pod) => c['name'] === 'setup'), pod.spec.initContainers);
    assert.deepEqual(injected['spec']['volumes'].slice(0, 1), pod.spec.volumes);
  }
});

test('managedFields, status and unknown fields are carried through untouched', () => {
  const pod = {
    metadata: { name: 'p', managedFields: [{ manager: 'kubectl', operation: 'Update' }] },
    spec: { containers: [{ name: 'web', image: 'nginx', futureField: { x: 1 } }], futureSpecField: true },
    status: { phase: 'Pending' },
  };
  const { pod: injected } = patched(pod);
  assert.deepEqual(injected['metadata']['managedFields'], pod.metadata.managedFields);
  assert.deepEqual(injected['status'], pod.status);
  assert.equal(injected['spec']['futureSpecField'], true);
  assert.deepEqual((injected['spec']['containers'] as JsonObject[]).find((c) => c['name'] === 'web'), pod.spec.containers[0]);
});

test('an existing kubectl default-container annotation is kept', () => {
  const { pod } = patched({ metadata: { annotations: { 'kubectl.kubernetes.io/default-container': 'b' } }, spec: { containers } });
  assert.equal(pod['metadata']['annotations']['kubectl.kubernetes.io/default-container'], 'b');
});
