// The patch: only additions, missing parents created first, keys escaped (RFC 6901).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { injectPod } from '../src/core/inject.ts';
import { escapePointer } from '../src/core/patch.ts';
import { testConfig, testRuntime } from './support/config.ts';
import { applyJsonPatch } from './support/patch.ts';

const ctx = { kind: 'Pod', operation: 'CREATE', namespace: 'demo' };
const containers = [{ name: 'web', image: 'nginx' }];

function inject(object: Record<string, unknown>, env: Record<string, string> = {}) {
  const result = injectPod(object, ctx, testConfig(env), testRuntime);
  assert.equal(result.decision.action, 'inject');
  assert.deepEqual(applyJsonPatch(object, result.patch), result.pod);
  return result;
}

test('RFC 6901 escaping of annotation keys', () => {
  assert.equal(escapePointer('envoy-injector.io/status'), 'envoy-injector.io~1status');
  assert.equal(escapePointer('a~b/c'), 'a~0b~1c');
  const result = inject({ metadata: { name: 'p', annotations: { x: 'y' } }, spec: { containers } });
  const paths = result.patch.map((op) => op.path);
  assert.ok(paths.includes('/metadata/annotations/envoy-injector.io~1status'));
  assert.ok(paths.includes('/metadata/annotations/kubectl.kubernetes.io~1default-container'));
});

test('missing parents are created: no metadata, null annotations, no initContainers, no volumes', () => {
  const noMetadata = inject({ spec: { containers } });
  assert.equal(noMetadata.patch[0]?.path, '/metadata');
  const nullAnnotations = inject({ metadata: { name: 'p', annotations: null }, spec: { containers, initContainers: null } });
  assert.equal(nullAnnotations.patch[0]?.path, '/metadata/annotations');
  assert.ok(nullAnnotations.patch.some((op) => op.path === '/spec/initContainers' && op.op === 'add'));
  assert.ok(nullAnnotations.patch.some((op) => op.path === '/spec/volumes'));
});

test('only add operations, and the pod\'s own containers are never rewritten', () => {
  const pod = {
    metadata: { name: 'p' },
    spec: {
      initContainers: [{ name: 'setup', image: 'busybox' }],
      containers: [{ name: 'a', image: 'a' }, { name: 'b', image: 'b' }],
      volumes: [{ name: 'data', emptyDir: {} }],
    },
  };
  for (const native of ['false', 'true']) {
    const result = inject(pod, { ENVOY_INJECTOR_NATIVE_SIDECAR: native });
    assert.ok(result.patch.every((op) => op.op === 'add'));
    const touched = result.patch.map((op) => op.path);
    // Inserted at explicit indexes or appended; no path points into an existing container.
    for (const path of touched) assert.doesNotMatch(path, /^\/spec\/(init)?[cC]ontainers\/\d+\/./);
    const injected = result.pod as { spec: { initContainers: { name: string }[]; containers: { name: string }[] } };
    if (native === 'true') {
      assert.deepEqual(injected.spec.initContainers.map((c) => c.name), ['envoy-init', 'envoy', 'setup']);
      assert.deepEqual(injected.spec.containers.map((c) => c.name), ['a', 'b']);
    } else {
      assert.deepEqual(injected.spec.initContainers.map((c) => c.name), ['setup', 'envoy-init']);
      assert.deepEqual(injected.spec.containers.map((c) => c.name), ['envoy', 'a', 'b']);
    }
    assert.deepEqual(injected.spec.containers.slice(native === 'true' ? 0 : 1), pod.spec.containers);
  }
});

test('managedFields and unknown fields are carried through untouched', () => {
  const pod = {
    metadata: { name: 'p', managedFields: [{ manager: 'kubectl', operation: 'Update' }] },
    spec: { containers: [{ name: 'web', image: 'nginx', futureField: { x: 1 } }], futureSpecField: true },
    status: { phase: 'Pending' },
  };
  const result = inject(pod);
  const injected = result.pod as typeof pod;
  assert.deepEqual(injected.metadata.managedFields, pod.metadata.managedFields);
  assert.equal(injected.spec.futureSpecField, true);
  assert.ok(result.patch.every((op) => !op.path.includes('managedFields') && !op.path.includes('status')));
});

test('an existing kubectl default-container annotation is kept', () => {
  const pod = { metadata: { annotations: { 'kubectl.kubernetes.io/default-container': 'b' } }, spec: { containers } };
  const result = inject(pod);
  assert.ok(!result.patch.some((op) => op.path.includes('default-container')));
});
