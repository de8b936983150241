// The webhook over HTTP: the AdmissionReview protocol (SPEC.md §6) through app.inject(), and the
// same over real TLS with a client that verifies the generated CA.
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { buildApp } from '../src/server/app.ts';
import type { InjectorConfig } from '../src/core/types.ts';
import { ensureLocalCertificates } from '../src/tls/local.ts';
import { checkInjectedPod } from './support/check-injected.ts';
import { testConfig, testRuntime } from './support/config.ts';
import { applyJsonPatch } from './support/patch.ts';
import { decodeResponse, reviewFor } from './support/review.ts';

/** A logger whose lines the tests can read. */
function captureLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

const POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { generateName: 'web-7d9c-', labels: { app: 'web' } },
  spec: { containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 8080 }] }] },
};

function app(config: InjectorConfig = testConfig()) {
  const { logger, lines } = captureLogger();
  return { app: buildApp({ config, runtime: testRuntime, logger }), lines };
}

async function mutate(body: unknown, config?: InjectorConfig) {
  const { app: instance, lines } = app(config);
  const response = await instance.inject({ method: 'POST', url: '/mutate', payload: body as object });
  return { response, lines };
}

test('a pod review (v1) is answered with a patch that injects the pod, echoing the uid', async () => {
  const { response, lines } = await mutate(reviewFor(POD, { uid: 'uid-1' }));
  assert.equal(response.statusCode, 200);
  const review = decodeResponse(response.json());
  assert.equal(review.apiVersion, 'admission.k8s.io/v1');
  assert.equal(review.uid, 'uid-1');
  assert.equal(review.allowed, true);
  assert.equal(review.patchType, 'JSONPatch');
  const injected = applyJsonPatch(POD, review.patch) as Record<string, any>;
  checkInjectedPod(injected);
  assert.deepEqual(
    injected['spec']['containers'].map((c: { name: string }) => c.name),
    ['envoy', 'web'],
  );
  // Re-invocation (reinvocationPolicy: IfNeeded) of the injected pod is a no-op.
  const again = decodeResponse((await mutate(reviewFor(injected))).response.json());
  assert.equal(again.allowed, true);
  assert.deepEqual(again.patch, []);
  assert.equal(again.patchType, undefined);
  // One log line for the admission, with what SPEC.md §8 asks for and no pod body.
  const line = lines.find((l) => l['msg'] === 'admission');
  assert.ok(line);
  assert.equal(line['uid'], 'uid-1');
  assert.equal(line['namespace'], 'demo');
  assert.equal(line['pod'], 'web-7d9c-');
  assert.equal(line['decision'], 'injected');
  assert.deepEqual(line['reasons'], ['enabled-by-namespace']);
  assert.equal(typeof line['durationMs'], 'number');
  assert.equal(JSON.stringify(lines.filter((l) => l['level'] === 30)).includes('"containers"'), false);
});

test('a v1beta1 review is answered in v1beta1', async () => {
  const review = decodeResponse((await mutate(reviewFor(POD, { apiVersion: 'admission.k8s.io/v1beta1' }))).response.json());
  assert.equal(review.apiVersion, 'admission.k8s.io/v1beta1');
  assert.equal(review.allowed, true);
  assert.ok(review.patch.length > 0);
});

test('a skipped pod is allowed unchanged; a surprising skip carries a warning', async () => {
  const hostNetwork = { ...POD, spec: { ...POD.spec, hostNetwork: true } };
  const review = decodeResponse((await mutate(reviewFor(hostNetwork))).response.json());
  assert.equal(review.allowed, true);
  assert.deepEqual(review.patch, []);
  assert.equal(review.warnings.length, 1);
  assert.match(review.warnings[0] ?? '', /^envoy-injector: .*hostNetwork/);
  const optOut = { ...POD, metadata: { ...POD.metadata, annotations: { 'envoy-injector.io/inject': 'false' } } };
  const quiet = decodeResponse((await mutate(reviewFor(optOut))).response.json());
  assert.deepEqual(quiet.warnings, []);
});

test('an ordinary pod gets no warnings', async () => {
  const review = decodeResponse((await mutate(reviewFor(POD))).response.json());
  assert.deepEqual(review.warnings, []);
});

test('objects that are not pods, and operations other than CREATE, are allowed unchanged', async () => {
  const deployment = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' } };
  const notPod = decodeResponse(
    (await mutate(reviewFor(deployment, { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } }))).response.json(),
  );
  assert.equal(notPod.allowed, true);
  assert.deepEqual(notPod.patch, []);
  const update = decodeResponse((await mutate(reviewFor(POD, { operation: 'UPDATE' }))).response.json());
  assert.equal(update.allowed, true);
  assert.deepEqual(update.patch, []);
});

test('invalid annotations deny the pod with one message and the uid', async () => {
  const pod = { ...POD, metadata: { ...POD.metadata, annotations: { 'envoy-injector.io/concurrency': '-1' } } };
  const { response } = await mutate(reviewFor(pod, { uid: 'uid-deny' }));
  assert.equal(response.statusCode, 200);
  const review = decodeResponse(response.json());
  assert.equal(review.uid, 'uid-deny');
  assert.equal(review.allowed, false);
  assert.equal(review.status?.code, 400);
  assert.match(review.status?.message ?? '', /envoy-injector refused .*envoy-injector\.io\/concurrency="-1" \(accepted: a whole number from 0 to 256\)/);
});

test('a failure inside injection is answered allowed: false with the uid, without internals', async () => {
  // A config whose reading throws stands for any fault inside the core.
  const base = testConfig();
  const broken = {
    ...base,
    proxy: {
      ...base.proxy,
      get image(): string {
        throw new Error('internal detail that must not reach the client');
      },
    },
  } as InjectorConfig;
  const { response, lines } = await mutate(reviewFor(POD, { uid: 'uid-err' }), broken);
  assert.equal(response.statusCode, 200);
  const review = decodeResponse(response.json());
  assert.equal(review.uid, 'uid-err');
  assert.equal(review.allowed, false);
  assert.equal(review.status?.code, 500);
  assert.match(review.status?.message ?? '', /internal error \(request uid uid-err\)/);
  assert.doesNotMatch(response.body, /at .*\.ts:\d+|stack|Error:|internal detail/);
  assert.ok(lines.some((l) => l['msg'] === 'admission failed' && l['decision'] === 'error'), 'the error is logged');
});

test('malformed requests get 400 with a message', async () => {
  const { app: instance } = app();
  const cases: [string, RegExp][] = [
    ['{"apiVersion":', /not valid JSON/],
    ['[]', /JSON object/],
    ['{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview","request":{}}', /unsupported apiVersion/],
    ['{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}', /unsupported kind "Pod"/],
    ['{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}', /no request/],
    [JSON.stringify({ ...reviewFor(POD), request: { ...(reviewFor(POD)['request'] as object), uid: '' } }), /uid/],
    [JSON.stringify({ ...reviewFor(POD), request: { ...(reviewFor(POD)['request'] as object), object: null } }), /object is missing/],
    [JSON.stringify(reviewFor({ ...POD, kind: 'Service' })), /request\.object is a Service but request\.kind is Pod/],
    ['{"__proto__":{"polluted":true}}', /not valid JSON/],
  ];
  for (const [payload, message] of cases) {
    const response = await instance.inject({ method: 'POST', url: '/mutate', payload, headers: { 'content-type': 'application/json' } });
    assert.equal(response.statusCode, 400, payload);
    assert.match(response.json<{ message: string }>().message, message, payload);
  }
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
});

test('non-JSON bodies get 415 and oversized bodies 413', async () => {
  const config = testConfig({ ENVOY_INJECTOR_SERVER_BODY_LIMIT_BYTES: '2048' });
  const { app: instance } = app(config);
  const text = await instance.inject({ method: 'POST', url: '/mutate', payload: 'hello', headers: { 'content-type': 'text/plain' } });
  assert.equal(text.statusCode, 415);
  assert.equal(text.json<{ error: string }>().error, 'unsupported-media-type');
  const big = JSON.stringify(reviewFor({ ...POD, metadata: { name: 'x'.repeat(4096) } }));
  const large = await instance.inject({ method: 'POST', url: '/mutate', payload: big, headers: { 'content-type': 'application/json' } });
  assert.equal(large.statusCode, 413);
  assert.match(large.json<{ message: string }>().message, /limit of 2048 bytes/);
});

test('health, readiness and unknown routes', async () => {
  const { logger } = captureLogger();
  let ready = false;
  const instance = buildApp({
    config: testConfig(),
    runtime: testRuntime,
    logger,
    readiness: () => (ready ? { ready } : { ready, reason: 'certificate not loaded' }),
  });
  assert.equal((await instance.inject('/healthz')).statusCode, 200);
  const notReady = await instance.inject('/readyz');
  assert.equal(notReady.statusCode, 503);
  assert.match(notReady.body, /certificate not loaded/);
  ready = true;
  assert.equal((await instance.inject('/readyz')).statusCode, 200);
  const missing = await instance.inject('/nope');
  assert.equal(missing.statusCode, 404);
  // After a fault the process must be restarted for, liveness fails (and says why).
  let fault: string | undefined;
  const faulty = buildApp({
    config: testConfig(),
    runtime: testRuntime,
    logger,
    liveness: () => (fault === undefined ? { ready: true } : { ready: false, reason: fault }),
  });
  assert.equal((await faulty.inject('/healthz')).statusCode, 200);
  fault = 'uncaught exception (see the logs)';
  const unhealthy = await faulty.inject('/healthz');
  assert.equal(unhealthy.statusCode, 503);
  assert.deepEqual(unhealthy.json(), { status: 'unhealthy', reason: 'uncaught exception (see the logs)' });
});

// Real TLS: the server is started with certificates generated by the local default, and the
// client trusts only the generated CA and checks the name.
let dir: string;
let tlsApp: ReturnType<typeof buildApp>;
let caCert: string;
let port: number;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'envoy-injector-tls-'));
  const { bundle } = await ensureLocalCertificates(dir, [], 30);
  caCert = bundle.caCert;
  const { logger } = captureLogger();
  tlsApp = buildApp({ config: testConfig(), runtime: testRuntime, logger, tls: { key: bundle.key, cert: bundle.cert } });
  await tlsApp.listen({ host: '127.0.0.1', port: 0 });
  port = (tlsApp.server.address() as { port: number }).port;
});

after(async () => {
  await tlsApp.close();
  rmSync(dir, { recursive: true, force: true });
});

function post(host: string, path: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', servername: host, port, path, method: 'POST', ca: caCert, headers: { 'content-type': 'application/json' } },
      (res) => {
        let data = '';
        res.on('data', (chunk: Buffer) => (data += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('over real TLS, a client trusting only the generated CA gets the patch', async () => {
  const response = await post('localhost', '/mutate', JSON.stringify(reviewFor(POD, { uid: 'tls-1' })));
  assert.equal(response.status, 200);
  const review = decodeResponse(JSON.parse(response.body));
  assert.equal(review.uid, 'tls-1');
  checkInjectedPod(applyJsonPatch(POD, review.patch) as Record<string, unknown>);
});

test('over real TLS, a name the certificate does not carry is refused by the client', async () => {
  await assert.rejects(post('evil.example.com', '/mutate', '{}'), /does not match|altnames/i);
});
