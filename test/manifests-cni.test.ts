// manifests/cni/ (README "CNI mode"): the component validates against the Kubernetes schema, gives
// the node agent exactly `get pods`, runs it on every node with only the host directories it
// writes, switches the injector to capture.mode cni, and renders with kubectl kustomize on top of
// manifests/ as an overlay enabling it would.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ServiceAccount } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';

type Obj = Record<string, any>;
const MANIFESTS = new URL('../manifests/', import.meta.url).pathname;
const DIR = join(MANIFESTS, 'cni');

const documents = (text: string, what: string): Obj[] =>
  parseAllDocuments(text).flatMap((doc) => {
    assert.deepEqual(doc.errors, [], what);
    const value = doc.toJS() as Obj | null;
    return value === null ? [] : [value];
  });

test('manifests/cni is a Component of a ServiceAccount, get-pods RBAC and the DaemonSet, and validates', () => {
  const [kustomization] = documents(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8'), 'kustomization.yaml');
  assert.equal(kustomization?.['kind'], 'Component');
  const objects = (kustomization?.['resources'] as string[]).flatMap((f) => documents(readFileSync(join(DIR, f), 'utf8'), f));
  const byKind = Object.fromEntries(objects.map((o) => [o['kind'], o]));
  new ServiceAccount(byKind['ServiceAccount'] as never).validate();
  new ClusterRole(byKind['ClusterRole'] as never).validate();
  new ClusterRoleBinding(byKind['ClusterRoleBinding'] as never).validate();
  new DaemonSet(byKind['DaemonSet'] as never).validate();
  assert.deepEqual(byKind['ClusterRole'].rules, [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }]);
  assert.deepEqual(byKind['ClusterRoleBinding'].subjects, [{ kind: 'ServiceAccount', name: 'envoy-injector-node', namespace: 'envoy-injector' }]);
  const ds = byKind['DaemonSet'];
  assert.equal(ds.metadata.name, 'envoy-injector-node');
  assert.equal(ds.metadata.namespace, 'envoy-injector');
  const pod = ds.spec.template.spec;
  assert.equal(pod.serviceAccountName, 'envoy-injector-node');
  assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }], 'every node');
  assert.equal(pod.hostNetwork, undefined, 'no host network: the agent only writes files');
  const [container] = pod.containers;
  assert.deepEqual(container.args, ['cni-node']);
  assert.equal(container.securityContext.privileged, false);
  assert.equal(container.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(container.securityContext.capabilities, { drop: ['ALL'] });
  assert.deepEqual(
    pod.volumes.map((v: Obj) => v.hostPath.path).sort(),
    ['/etc/cni/net.d', '/opt/cni/bin', '/opt/envoy-injector-cni'],
    'only the directories it writes',
  );
});

test('an overlay enabling manifests/cni renders with kubectl kustomize, the injector in capture mode cni', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ei-kustomize-'));
  try {
    // kustomize refuses absolute paths outside its root: a copy beside the overlay.
    cpSync(MANIFESTS, join(dir, 'manifests'), { recursive: true });
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [manifests]\ncomponents: [manifests/cni]\n',
    );
    const run = spawnSync(process.env['KUBECTL'] ?? 'kubectl', ['kustomize', dir], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const objects = documents(run.stdout, 'kubectl kustomize output');
    const deployment = objects.find((o) => o['kind'] === 'Deployment');
    const env = deployment?.['spec'].template.spec.containers[0].env as Obj[];
    assert.deepEqual(env.find((e) => e['name'] === 'ENVOY_INJECTOR_CAPTURE_MODE'), { name: 'ENVOY_INJECTOR_CAPTURE_MODE', value: 'cni' });
    assert.ok(env.some((e) => e['name'] === 'ENVOY_INJECTOR_CONFIG'), "the base's env is kept");
    const namespace = objects.find((o) => o['kind'] === 'Namespace');
    assert.equal(namespace?.['metadata'].labels['pod-security.kubernetes.io/enforce'], 'privileged');
    assert.equal(namespace?.['metadata'].labels['pod-security.kubernetes.io/warn'], 'restricted');
    assert.equal(namespace?.['metadata'].labels['envoy-injector.io/inject'], 'disabled');
    assert.ok(objects.some((o) => o['kind'] === 'DaemonSet' && o['metadata'].name === 'envoy-injector-node'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
