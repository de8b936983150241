// The raw-JSON Kubernetes API layer against the fake API server: fields client-node does not model
// survive a read-modify-replace, lists are followed across pages, errors are one line with the API
// server's own words, and an API server that does not answer is given up on.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { isAlreadyExists, isConflict, isNotFound, KubeApiError } from '../src/kube/api-error.ts';
import { createKubeResources } from '../src/kube/resources.ts';
import { startFakeApiServer, type FakeApiServer } from './support/fake-apiserver.ts';

let fake: FakeApiServer;
before(async () => {
  fake = await startFakeApiServer();
});
after(async () => {
  await fake.close();
});

test('a read-modify-replace keeps fields client-node does not model', async () => {
  fake.reset();
  fake.put('mutatingwebhookconfigurations', {
    metadata: { name: 'hooks', labels: { a: 'b' } },
    webhooks: [{ name: 'x.example.io', clientConfig: { service: { name: 's', namespace: 'n' } }, sideEffects: 'None', admissionReviewVersions: ['v1'], newerField: [1, 2] }],
    topLevelNewerField: 'kept',
  });
  const resources = createKubeResources(fake.kubeConfig());
  const read = (await resources.getWebhookConfiguration('hooks')) as Record<string, any>;
  read['webhooks'][0].timeoutSeconds = 5;
  const written = (await resources.replaceWebhookConfiguration('hooks', read)) as Record<string, any>;
  assert.deepEqual(written['webhooks'][0].newerField, [1, 2]);
  assert.equal(written['topLevelNewerField'], 'kept');
  assert.equal(fake.get('mutatingwebhookconfigurations', undefined, 'hooks')?.['webhooks'][0].newerField.length, 2);
  assert.equal(fake.get('mutatingwebhookconfigurations', undefined, 'hooks')?.['webhooks'][0].timeoutSeconds, 5);
  // The creationTimestamp is sent back as the API server wrote it, not re-formatted.
  assert.equal(written['metadata'].creationTimestamp, read['metadata'].creationTimestamp);
});

test('API errors keep their status and reason, with one-line messages', async () => {
  fake.reset();
  const resources = createKubeResources(fake.kubeConfig());
  assert.equal(await resources.getSecret('ns', 'missing'), undefined, 'NotFound on a read is "absent"');
  const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'ns' }, data: {} };
  const created = await resources.createSecret('ns', secret);
  const exists = await resources.createSecret('ns', secret).catch((e: unknown) => e);
  assert.ok(isAlreadyExists(exists) && !isConflict(exists));
  assert.equal((exists as Error).message, 'creating Secret ns/s: secrets "s" already exists (HTTP 409)');
  await resources.replaceSecret('ns', 's', created);
  const stale = await resources.replaceSecret('ns', 's', created).catch((e: unknown) => e);
  assert.ok(isConflict(stale));
  assert.match((stale as Error).message, /^updating Secret ns\/s: Operation cannot be fulfilled on secrets "s": the object has been modified/);
  const gone = await resources.replaceSecret('ns', 'nope', { ...secret, metadata: { name: 'nope', namespace: 'ns' } }).catch((e: unknown) => e);
  assert.ok(isNotFound(gone));
  const invalid = await resources.createSecret('ns', { ...secret, metadata: { name: 't' }, type: 'kubernetes.io/tls' }).catch((e: unknown) => e);
  assert.ok(invalid instanceof KubeApiError && invalid.status === 422 && invalid.reason === 'Invalid');
  assert.equal(invalid.message, 'creating Secret ns/t: Secret "t" is invalid: data[tls.crt]: Required value (HTTP 422)');
  for (const error of [exists, stale, gone, invalid]) assert.doesNotMatch((error as Error).message, /\n|Headers|HTTP-Code/);
});

test('lists are followed across pages', async () => {
  fake.reset();
  for (let i = 0; i < 1234; i++) {
    fake.put('pods', { metadata: { name: `p-${String(i).padStart(4, '0')}`, namespace: 'big', labels: { i: String(i % 2) } }, spec: {} });
  }
  const resources = createKubeResources(fake.kubeConfig());
  const pods = await resources.listPods('big');
  assert.equal(pods.length, 1234);
  assert.equal(new Set(pods.map((p) => (p['metadata'] as { name: string }).name)).size, 1234);
  assert.equal(fake.requests.filter((r) => r.resource === 'pods').length, 3, 'pages of 500');
  assert.equal((await resources.listPods(undefined, 'i=1')).length, 617);
});

test('an API server that does not answer is given up on with a clear error', async () => {
  fake.reset();
  fake.hook = () => new Promise((resolve) => setTimeout(resolve, 2000));
  const resources = createKubeResources(fake.kubeConfig(), 200);
  const error = await resources.getSecret('ns', 's').catch((e: unknown) => e);
  assert.ok(error instanceof KubeApiError);
  assert.equal(error.reason, 'Timeout');
  assert.equal(error.message, 'reading Secret ns/s: the API server did not answer in time');
  fake.hook = undefined;
});
