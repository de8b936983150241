// The optional kustomize components of manifests/components/ (README "Optional hardening
// components"): each validates against the Kubernetes schema, the webhook guard's policy compares
// every field a webhook has except its caBundle (so a field added to the API shows here) and
// matches the injector's own service account, the NetworkPolicy admits exactly the webhook's
// port on the injector's pods, and an overlay enabling both renders with kubectl kustomize. (What
// the policy's CEL allows and refuses is tested against a real 1.30 API server in
// test/envtest-webhook-guard.test.ts.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding } from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { parseAllDocuments } from 'yaml';

type Obj = Record<string, any>;
const MANIFESTS = new URL('../manifests/', import.meta.url).pathname;
const COMPONENTS = join(MANIFESTS, 'components');

function documents(path: string): Obj[] {
  return parseAllDocuments(readFileSync(path, 'utf8')).flatMap((doc) => {
    assert.deepEqual(doc.errors, [], path);
    const value = doc.toJS() as Obj | null;
    return value === null ? [] : [value];
  });
}

/** The objects of a component, by kind. */
function component(name: string): Obj[] {
  const dir = join(COMPONENTS, name);
  const [kustomization] = documents(join(dir, 'kustomization.yaml'));
  assert.equal(kustomization?.['apiVersion'], 'kustomize.config.k8s.io/v1alpha1');
  assert.equal(kustomization?.['kind'], 'Component');
  const resources = kustomization?.['resources'] as string[];
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
  assert.deepEqual([...resources].sort(), files.sort(), `${name}: every file is a resource of the component`);
  return resources.flatMap((file) => documents(join(dir, file)));
}

const base = ['serviceaccount.yaml', 'deployment.yaml', 'mutatingwebhookconfiguration.yaml'].flatMap((f) => documents(join(MANIFESTS, f)));
const serviceAccount = base.find((o) => o['kind'] === 'ServiceAccount') as Obj;
const deployment = base.find((o) => o['kind'] === 'Deployment') as Obj;

test('the components are exactly webhook-guard and network-policy', () => {
  assert.deepEqual(readdirSync(COMPONENTS).sort(), ['network-policy', 'webhook-guard']);
});

test('webhook-guard: a ValidatingAdmissionPolicy (v1) and its Deny binding, for UPDATEs of webhook configurations by the injector', () => {
  const objects = component('webhook-guard');
  const policy = objects.find((o) => o['kind'] === 'ValidatingAdmissionPolicy') as Obj;
  const binding = objects.find((o) => o['kind'] === 'ValidatingAdmissionPolicyBinding') as Obj;
  assert.equal(objects.length, 2);
  new ValidatingAdmissionPolicy(policy as never).validate();
  new ValidatingAdmissionPolicyBinding(binding as never).validate();
  assert.equal(policy['apiVersion'], 'admissionregistration.k8s.io/v1', 'GA in Kubernetes 1.30');
  assert.equal(binding['spec'].policyName, policy['metadata'].name);
  assert.deepEqual(binding['spec'].validationActions, ['Deny']);
  assert.equal(binding['spec'].matchResources, undefined, 'every object the policy matches');
  const spec = policy['spec'];
  assert.equal(spec.failurePolicy, 'Fail', 'an expression that fails refuses the change');
  assert.deepEqual(spec.matchConstraints.resourceRules, [
    { apiGroups: ['admissionregistration.k8s.io'], apiVersions: ['*'], operations: ['UPDATE'], resources: ['mutatingwebhookconfigurations'] },
  ]);
  // The injector's own identity, as the API server names a service account.
  const username = `system:serviceaccount:${serviceAccount['metadata'].namespace}:${serviceAccount['metadata'].name}`;
  assert.equal(deployment['spec'].template.spec.serviceAccountName, serviceAccount['metadata'].name);
  assert.deepEqual(spec.matchConditions, [{ name: 'injector-service-account', expression: `request.userInfo.username == "${username}"` }]);
  for (const v of spec.validations) {
    assert.equal(v.reason, 'Forbidden');
    assert.match(v.message, /^the envoy-injector service account may/);
  }
});

/** Field names of a client-node model (Kubernetes 1.34's API). */
const fieldsOf = (model: string): string[] =>
  (k8s as unknown as Record<string, { getAttributeTypeMap(): { baseName: string }[] }>)[model]!.getAttributeTypeMap().map((a) => a.baseName);

test('webhook-guard: every field of a webhook but its caBundle is compared, and the metadata an update can change', () => {
  const policy = component('webhook-guard').find((o) => o['kind'] === 'ValidatingAdmissionPolicy') as Obj;
  const expressions = (policy['spec'].validations as Obj[]).map((v) => v.expression as string);
  const [names, fields, metadata] = expressions;
  // Webhooks are compared as a list of names, in order: none added, removed, renamed or reordered.
  assert.equal(names, 'variables.webhooks.map(w, w.name) == variables.oldWebhooks.map(w, w.name)');
  const compared = (path: string) => fields?.includes(`(has(w.${path}) ? has(o.${path}) && w.${path} == o.${path} : !has(o.${path}))`);
  const webhookFields = fieldsOf('V1MutatingWebhook').filter((f) => f !== 'name' && f !== 'clientConfig');
  const clientConfigFields = fieldsOf('AdmissionregistrationV1WebhookClientConfig').filter((f) => f !== 'caBundle');
  assert.ok(webhookFields.length >= 10 && clientConfigFields.length === 2, `${webhookFields} / ${clientConfigFields}`);
  for (const field of webhookFields) assert.ok(compared(field), `webhooks[*].${field} is compared`);
  for (const field of clientConfigFields) assert.ok(compared(`clientConfig.${field}`), `webhooks[*].clientConfig.${field} is compared`);
  assert.doesNotMatch(fields ?? '', /caBundle/, 'the caBundle is the one thing left free');
  assert.match(fields ?? '', /^variables\.webhooks\.all\(w, variables\.oldWebhooks\.exists\(o, o\.name == w\.name && /);
  for (const field of ['labels', 'annotations', 'ownerReferences', 'finalizers']) {
    assert.ok(
      metadata?.includes(`(has(object.metadata.${field}) ? has(oldObject.metadata.${field}) && object.metadata.${field} == oldObject.metadata.${field} : !has(oldObject.metadata.${field}))`),
      `metadata.${field} is compared`,
    );
  }
});

test('network-policy: ingress to the injector pods on the webhook port only', () => {
  const objects = component('network-policy');
  assert.equal(objects.length, 1);
  const policy = objects[0] as Obj;
  new NetworkPolicy(policy as never).validate();
  assert.equal(policy['metadata'].namespace, deployment['metadata'].namespace);
  // Selects exactly the Deployment's pods.
  assert.deepEqual(policy['spec'].podSelector.matchLabels, deployment['spec'].selector.matchLabels);
  assert.deepEqual(policy['spec'].policyTypes, ['Ingress'], 'egress stays open: secret mode talks to the API server');
  const port = deployment['spec'].template.spec.containers[0].ports.find((p: Obj) => p.name === 'https');
  assert.deepEqual(policy['spec'].ingress, [{ ports: [{ protocol: 'TCP', port: port.containerPort }] }]);
  assert.equal(port.containerPort, 8443);
});

test('an overlay enabling both components renders with kubectl kustomize (kustomize >= 3.7)', { timeout: 60_000 }, (t) => {
  const kubectl = process.env['KUBECTL'] ?? 'kubectl';
  const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-overlay-'));
  try {
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'resources:',
        // kustomize takes bases and components by relative path only.
        `  - ${relative(dir, MANIFESTS)}`,
        'components:',
        `  - ${relative(dir, join(COMPONENTS, 'webhook-guard'))}`,
        `  - ${relative(dir, join(COMPONENTS, 'network-policy'))}`,
        '',
      ].join('\n'),
    );
    const run = spawnSync(kubectl, ['kustomize', dir], { encoding: 'utf8', timeout: 50_000 });
    assert.ok(run.error === undefined, `cannot run ${kubectl}: ${run.error?.message}`);
    if (run.status !== 0 && /components|Component/.test(run.stderr) && /unknown field|not supported|no matches for/.test(run.stderr)) {
      // kubectl up to 1.20 embeds kustomize 2.0, which has no components (the default manifests/
      // are kept working with it and rendered by manifests.test.ts); the structure is checked above.
      t.skip(`${kubectl}'s kustomize has no components: ${run.stderr.trim().split('\n')[0]}`);
      return;
    }
    assert.equal(run.status, 0, run.stderr);
    const kinds = parseAllDocuments(run.stdout).map((d) => (d.toJS() as Obj)['kind'] as string);
    for (const kind of ['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding', 'NetworkPolicy', 'MutatingWebhookConfiguration', 'Deployment']) {
      assert.equal(kinds.filter((k) => k === kind).length, 1, kind);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
