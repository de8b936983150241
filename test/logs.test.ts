// The admission log (SPEC.md §8): exactly one line per admission, bound to that request, with the
// decision, reasons and duration — and never the pod's body at info, whatever the pod holds.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import type { InjectorRuntime } from '../src/core/types.ts';
import { buildApp } from '../src/server/app.ts';
import { testConfig, testRuntime } from './support/config.ts';
import { decodeResponse, reviewFor } from './support/review.ts';

type Line = Record<string, unknown>;

/** Values that appear only in pod bodies: if a log line holds one, a body leaked. */
const SECRET = 'marker-s3cr3t-value';
const LABEL = 'marker-team-label';
const IMAGE = 'registry.example.com/team/app-marker:1.2.3';

const POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    generateName: 'web-7d9c-',
    labels: { app: 'web', team: LABEL },
    annotations: { 'example.com/token': SECRET, 'envoy-injector.io/proxy-cpu': '200m' },
  },
  spec: {
    containers: [{ name: 'web', image: IMAGE, env: [{ name: 'PASSWORD', value: SECRET }], args: [`--token=${SECRET}`] }],
  },
};

function appWithLog(level: 'info' | 'debug', runtime: InjectorRuntime = testRuntime) {
  const lines: Line[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const text of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(text) as Line);
      done();
    },
  });
  const app = buildApp({ config: testConfig(), runtime, logger: pino({ level }, stream) });
  const mutate = async (object: unknown, options: Parameters<typeof reviewFor>[1] = {}) => {
    const response = await app.inject({ method: 'POST', url: '/mutate', payload: reviewFor(object, options) });
    return decodeResponse(response.json());
  };
  return { app, lines, mutate };
}

const INFO = 30;
const admissionLines = (lines: readonly Line[]) => lines.filter((l) => l['msg'] === 'admission' || l['msg'] === 'admission failed');

test('one info line per admission with what SPEC.md §8 asks for, bound to the request', async () => {
  const { lines, mutate } = appWithLog('info');
  await Promise.all([
    mutate(POD, { uid: 'uid-a', namespace: 'shop' }),
    mutate({ ...POD, metadata: { ...POD.metadata, name: 'named-pod', generateName: undefined } }, { uid: 'uid-b', namespace: 'shop' }),
    mutate({ ...POD, spec: { ...POD.spec, hostNetwork: true } }, { uid: 'uid-c', namespace: 'infra' }),
  ]);
  const admissions = admissionLines(lines);
  assert.equal(admissions.length, 3, 'exactly one line per admission');
  assert.equal(lines.length, 3, 'and nothing else at info');
  const byUid = new Map(admissions.map((l) => [l['uid'], l]));
  const a = byUid.get('uid-a');
  assert.ok(a);
  assert.equal(a['level'], INFO);
  assert.equal(a['namespace'], 'shop');
  assert.equal(a['pod'], 'web-7d9c-', 'generateName when the name is not known yet');
  assert.equal(a['decision'], 'injected');
  assert.deepEqual(a['reasons'], ['enabled-by-namespace']);
  assert.deepEqual(a['warnings'], []);
  assert.equal(a['kind'], 'Pod');
  assert.equal(a['operation'], 'CREATE');
  assert.ok(typeof a['durationMs'] === 'number' && a['durationMs'] >= 0);
  assert.ok(typeof a['patchOperations'] === 'number' && a['patchOperations'] > 0);
  assert.equal(byUid.get('uid-b')?.['pod'], 'named-pod');
  const c = byUid.get('uid-c');
  assert.equal(c?.['decision'], 'skipped');
  assert.equal(c?.['namespace'], 'infra');
  assert.deepEqual(c?.['reasons'], ['host-network']);
  assert.deepEqual(c?.['warnings'], ['host-network']);
  // Each line carries its own request's id: concurrent admissions never mix.
  const ids = admissions.map((l) => l['reqId']);
  assert.ok(ids.every((id) => id !== undefined));
  assert.equal(new Set(ids).size, 3);
});

test('no pod body at info: not its env, args, labels, annotations or images', async () => {
  const { lines, mutate } = appWithLog('info');
  await mutate(POD);
  await mutate({ ...POD, metadata: { ...POD.metadata, annotations: { 'envoy-injector.io/concurrency': SECRET } } });
  await mutate({ ...POD, spec: { ...POD.spec, hostNetwork: true } });
  assert.equal(admissionLines(lines).length, 3);
  const text = JSON.stringify(lines);
  for (const leak of [SECRET, LABEL, IMAGE, '"containers"', '"spec"', '"metadata"', 'ENVOY_BOOTSTRAP']) {
    assert.ok(!text.includes(leak), `${leak} is not logged at info`);
  }
  assert.deepEqual(admissionLines(lines).map((l) => l['decision']), ['injected', 'denied', 'skipped']);
});

test('at debug the patch is logged as well, still without the pod body', async () => {
  const { lines, mutate } = appWithLog('debug');
  const review = await mutate(POD, { uid: 'uid-d' });
  const patchLine = lines.find((l) => l['msg'] === 'patch');
  assert.ok(patchLine, 'the patch is logged at debug');
  assert.equal(patchLine['level'], 20);
  assert.equal(patchLine['uid'], 'uid-d');
  assert.deepEqual(patchLine['patch'], review.patch);
  // The patch adds to the pod without copying its containers, env or other annotations; only the
  // bootstrap's node metadata repeats the pod's labels.
  assert.ok(!JSON.stringify(lines).includes(SECRET), 'the pod’s env, args and annotations are not logged at debug either');
});

test('an internal error is one error line with the uid and the cause; the client gets neither stack nor cause', async () => {
  const runtime = {
    get version(): string {
      throw new Error(`cannot read version ${SECRET}`);
    },
    nativeSidecarSupported: false,
  };
  const { app, lines } = appWithLog('info', runtime);
  const response = await app.inject({ method: 'POST', url: '/mutate', payload: reviewFor(POD, { uid: 'uid-e' }) });
  assert.ok(!response.body.includes(SECRET));
  const [line, ...rest] = admissionLines(lines);
  assert.equal(rest.length, 0);
  assert.ok(line);
  assert.equal(line['msg'], 'admission failed');
  assert.equal(line['level'], 50);
  assert.equal(line['uid'], 'uid-e');
  assert.equal(line['decision'], 'error');
  assert.deepEqual(line['reasons'], ['internal-error']);
  assert.match(String((line['err'] as { message?: string })['message']), /cannot read version/);
});

test('a rejected request is one warn line with its status, without the body', async () => {
  const { app, lines } = appWithLog('info');
  const response = await app.inject({
    method: 'POST',
    url: '/mutate',
    payload: `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"token":"${SECRET}"}`,
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(response.statusCode, 400);
  assert.equal(lines.length, 1);
  assert.equal(lines[0]?.['level'], 40);
  assert.equal(lines[0]?.['status'], 400);
  assert.ok(!JSON.stringify(lines).includes(SECRET));
});
