// Hostile requests over real HTTPS (SPEC.md §6, README "Errors" and "Limits and performance"):
// every one gets its documented status or is cut off by a timeout, the server keeps serving a
// normal request meanwhile, no response carries a stack trace, and the process does not crash
// (node:test fails the run on any uncaught exception or unhandled rejection in the server).
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { after, before, test } from 'node:test';
import { hostileReviews } from '../bench/hostile-reviews.ts';
import { BENCH_BASELINE_PATH } from '../src/server/app.ts';
import { checkInjectedPod } from './support/check-injected.ts';
import { removeCertificates, startServer, type TestServer } from './support/https-server.ts';
import { applyJsonPatch } from './support/patch.ts';
import {
  httpsGet,
  httpsPost,
  openTcp,
  openTls,
  rawExchange,
  readUntilClosed,
  requestHead,
  STACK_TRACE,
  type RawResult,
  type Target,
} from './support/raw-https.ts';
import { decodeResponse, reviewFor } from './support/review.ts';


/** A hung connection fails its test instead of the whole run. */
const TEST_TIMEOUT_MS = 60_000;
const POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { generateName: 'web-', labels: { app: 'web' } },
  spec: { containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 8080 }] }] },
};

const JSON_TYPE = { 'content-type': 'application/json' };

/** Every body any server sent in this file: none may look like a stack trace. */
const bodies: string[] = [];

function remember<T extends { body: string }>(result: T): T {
  bodies.push(result.body);
  return result;
}

let counter = 0;

/** A normal admission: 200 with a patch that injects the pod. */
async function expectServed(target: Target): Promise<void> {
  const uid = `normal-${++counter}`;
  const response = remember(await httpsPost(target, '/mutate', JSON.stringify(reviewFor(POD, { uid }))));
  assert.equal(response.status, 200, response.body);
  const review = decodeResponse(JSON.parse(response.body));
  assert.equal(review.uid, uid);
  assert.equal(review.allowed, true);
  checkInjectedPod(applyJsonPatch(POD, review.patch) as Record<string, unknown>);
}

/** The error body the webhook sends for a refused request: its stable code and a message. */
function errorOf(body: string): { error: string; message: string } {
  const parsed = JSON.parse(body) as { error: string; message: string };
  assert.equal(typeof parsed.error, 'string');
  assert.equal(typeof parsed.message, 'string');
  return parsed;
}

// `quick` cuts slow clients off after one second, and serves only the test of that; `patient`
// never does within a test, so nothing it serves races a timeout on a loaded machine.
let quick: TestServer;
let patient: TestServer;

before(async () => {
  quick = await startServer({ ENVOY_INJECTOR_SERVER_REQUEST_TIMEOUT_MS: '1000' });
  patient = await startServer({ ENVOY_INJECTOR_SERVER_REQUEST_TIMEOUT_MS: '120000', ENVOY_INJECTOR_SERVER_BODY_TIMEOUT_MS: '120000' });
});

after(async () => {
  await Promise.all([quick.close(), patient.close()]);
  await removeCertificates();
  for (const body of bodies) assert.doesNotMatch(body, STACK_TRACE);
});

test('malformed JSON gets 400 invalid-json', { timeout: TEST_TIMEOUT_MS }, async () => {
  const payloads: (string | Buffer)[] = [
    '{"apiVersion":',
    '{,}',
    'nul',
    '{"apiVersion":"admission.k8s.io/v1"}}',
    "{'apiVersion':'admission.k8s.io/v1'}",
    '',
    Buffer.from([0x7b, 0xff, 0xfe, 0x7d]),
  ];
  await Promise.all([
    ...payloads.map(async (payload) => {
      const response = remember(await httpsPost(patient, '/mutate', payload, JSON_TYPE));
      assert.equal(response.status, 400, String(payload));
      assert.equal(errorOf(response.body).error, 'invalid-json', String(payload));
    }),
    expectServed(patient),
  ]);
});

test('truncated bodies: answered 400 when the client stops sending, nothing breaks when it vanishes', { timeout: TEST_TIMEOUT_MS }, async () => {
  const body = JSON.stringify(reviewFor(POD));
  const head = requestHead('/mutate', { ...JSON_TYPE, 'Content-Length': body.length + 500 });
  // Content-Length larger than what is sent, then the client half-closes: the body can never come.
  const halfClosed = rawExchange(patient, head + body.slice(0, 100), { end: true });
  // Content-Length larger than what is sent, then the connection is gone altogether.
  const vanished = (async () => {
    const socket = await openTls(patient);
    const closed = patient.serverSideClosed(socket.localPort as number);
    socket.write(head + body.slice(0, 100));
    await new Promise<void>((resolve) => socket.write('', () => resolve()));
    socket.destroy();
    await closed;
  })();
  // Content-Length shorter than what is sent: the body is cut there, so it is not valid JSON, and
  // the rest is not a request (whichever of the two the server notices first, it answers 400).
  const shorter = rawExchange(patient, requestHead('/mutate', { ...JSON_TYPE, 'Content-Length': 40 }) + body);
  const [halfClosedResult, , shorterResult] = await Promise.all([halfClosed, vanished, shorter, expectServed(patient)]);
  remember(halfClosedResult);
  assert.equal(halfClosedResult.status, 400, halfClosedResult.raw);
  remember(shorterResult);
  assert.match(shorterResult.raw, /^HTTP\/1\.1 400 /);
  assert.doesNotMatch(shorterResult.raw, /HTTP\/1\.1 [235]\d\d /);
  await expectServed(patient);
});

test('a body that is not JSON gets 415', { timeout: TEST_TIMEOUT_MS }, async () => {
  const body = JSON.stringify(reviewFor(POD));
  const types = ['text/plain', 'application/x-www-form-urlencoded', 'application/yaml', 'multipart/form-data; boundary=x', 'application/xml'];
  await Promise.all([
    ...types.map(async (type) => {
      const response = remember(await httpsPost(patient, '/mutate', body, { 'content-type': type }));
      assert.equal(response.status, 415, type);
      assert.equal(errorOf(response.body).error, 'unsupported-media-type', type);
    }),
    (async () => {
      // No Content-Type at all.
      const result = remember(await rawExchange(patient, requestHead('/mutate', { 'Content-Length': body.length, Connection: 'close' }) + body));
      assert.equal(result.status, 415, result.raw);
    })(),
    (async () => {
      // JSON with parameters is JSON.
      const response = remember(await httpsPost(patient, '/mutate', body, { 'content-type': 'application/json; charset=utf-8' }));
      assert.equal(response.status, 200);
    })(),
    expectServed(patient),
  ]);
});

test('reviews missing request, uid or object, or carrying another kind of object, get 400 with the reason', { timeout: TEST_TIMEOUT_MS }, async () => {
  const review = reviewFor(POD) as { request: Record<string, unknown> };
  const without = (key: string) => {
    const request = { ...review.request };
    delete request[key];
    return { ...review, request };
  };
  const cases: [string, unknown, RegExp][] = [
    ['no request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, /no request object/],
    ['request is a string', { ...review, request: 'pod' }, /no request object/],
    ['no uid', without('uid'), /request\.uid is missing/],
    ['uid is a number', { ...review, request: { ...review.request, uid: 42 } }, /request\.uid is missing/],
    ['no object', without('object'), /request\.object is missing/],
    ['object is a list', { ...review, request: { ...review.request, object: [POD] } }, /request\.object is missing/],
    ['no kind', without('kind'), /request\.kind is missing/],
    ['no operation', without('operation'), /request\.operation is missing/],
    ['a Service as a Pod', reviewFor({ ...POD, kind: 'Service' }), /request\.object is a Service but request\.kind is Pod/],
    ['not a review at all', POD, /unsupported apiVersion/],
  ];
  await Promise.all([
    ...cases.map(async ([name, body, message]) => {
      const response = remember(await httpsPost(patient, '/mutate', JSON.stringify(body)));
      assert.equal(response.status, 400, name);
      const error = errorOf(response.body);
      assert.equal(error.error, 'invalid-review', name);
      assert.match(error.message, message, name);
    }),
    (async () => {
      // A review of another kind is well-formed: allowed unchanged.
      const deployment = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec: {} };
      const body = JSON.stringify(reviewFor(deployment, { uid: 'dep', kind: { group: 'apps', version: 'v1', kind: 'Deployment' } }));
      const response = remember(await httpsPost(patient, '/mutate', body));
      assert.equal(response.status, 200);
      const decoded = decodeResponse(JSON.parse(response.body));
      assert.equal(decoded.allowed, true);
      assert.deepEqual(decoded.patch, []);
    })(),
    expectServed(patient),
  ]);
});

test('JSON nested 100,000 levels deep is answered like any other body', { timeout: TEST_TIMEOUT_MS }, async () => {
  const depth = 100_000;
  const arrays = '['.repeat(depth) + '1' + ']'.repeat(depth);
  const objects = (key: string) => `{"${key}":`.repeat(depth) + '1' + '}'.repeat(depth);
  const withField = (value: string) =>
    JSON.stringify(reviewFor({ ...POD, spec: { containers: [{ name: 'web', image: 'nginx', extra: 'DEEP' }] } }, { uid: 'deep' })).replace(
      '"DEEP"',
      value,
    );
  const inAnnotation = JSON.stringify(reviewFor({ ...POD, metadata: { name: 'p', annotations: { a: 'DEEP' } } }, { uid: 'deep' })).replace(
    '"DEEP"',
    arrays,
  );
  await Promise.all([
    (async () => {
      // The whole body: valid JSON, but not an AdmissionReview.
      const response = remember(await httpsPost(patient, '/mutate', arrays));
      assert.equal(response.status, 400);
      assert.equal(errorOf(response.body).error, 'invalid-review');
    })(),
    ...[arrays, objects('x'), objects('constructor')].map(async (deep) => {
      // Deep inside a field the injector does not read: injected, the field left alone.
      const response = remember(await httpsPost(patient, '/mutate', withField(deep)));
      assert.equal(response.status, 200);
      const review = decodeResponse(JSON.parse(response.body));
      assert.equal(review.uid, 'deep');
      assert.equal(review.allowed, true);
      assert.ok(review.patch.length > 0);
      assert.ok(review.patch.every((op) => op.op === 'add' && !op.path.startsWith('/spec/containers/1')));
    }),
    (async () => {
      // Deep __proto__ keys are refused by the parser (prototype poisoning), however deep.
      const response = remember(await httpsPost(patient, '/mutate', withField(objects('__proto__'))));
      assert.equal(response.status, 400);
      assert.equal(errorOf(response.body).error, 'invalid-json');
    })(),
    (async () => {
      // Where the injector expects a string: the pod is refused with the field named.
      const response = remember(await httpsPost(patient, '/mutate', inAnnotation));
      assert.equal(response.status, 200);
      const review = decodeResponse(JSON.parse(response.body));
      assert.equal(review.allowed, false);
      assert.equal(review.status?.code, 400);
      assert.match(review.status?.message ?? '', /metadata\.annotations\["a"\] must be a string/);
    })(),
    expectServed(patient),
  ]);
});

test('a 10 MB body gets 413, with or without Content-Length', { timeout: TEST_TIMEOUT_MS }, async () => {
  const tenMb = Buffer.alloc(10 * 1024 * 1024, 0x20);
  tenMb.write(JSON.stringify(reviewFor(POD)));
  const declared = (async () => {
    // The answer comes as soon as the Content-Length is read, so the body is not sent: the answer
    // is read as it comes instead of racing an upload the server has refused (a server closing on
    // unread data resets the connection, and a reset may drop the answer on the client's side).
    const socket = await openTls(patient);
    const closed = readUntilClosed(socket);
    socket.write(requestHead('/mutate', { ...JSON_TYPE, 'Content-Length': tenMb.length }));
    const result = remember(await closed);
    assert.equal(result.status, 413, result.raw.slice(0, 200));
    assert.equal(errorOf(result.body).error, 'body-too-large');
    assert.equal(result.headers['connection'], 'close');
  })();
  const chunked = (async () => {
    const socket = await openTls(patient);
    const closed = readUntilClosed(socket);
    socket.write(requestHead('/mutate', { ...JSON_TYPE, 'Transfer-Encoding': 'chunked' }));
    // 1 MiB chunks, each once the previous one is written, until the server answers or hangs up;
    // it must do so before 10 MB.
    let sent = 0;
    let answered = false;
    socket.once('data', () => (answered = true));
    while (!answered && !socket.destroyed && sent < tenMb.length) {
      const chunk = tenMb.subarray(sent, sent + 1024 * 1024);
      await new Promise<void>((resolve) => socket.write(`${chunk.length.toString(16)}\r\n${chunk.toString('latin1')}\r\n`, 'latin1', () => resolve()));
      sent += chunk.length;
    }
    if (!answered && !socket.destroyed) socket.end('0\r\n\r\n');
    const result = remember(await closed.catch(() => ({ raw: '', headers: {}, body: '' }) as RawResult));
    // Either the answer arrived before the server hung up on the rest of the body, or the write
    // of the rest failed first; in both cases the server never took more than its limit.
    if (result.status !== undefined) {
      assert.equal(result.status, 413, result.raw.slice(0, 200));
      assert.equal(errorOf(result.body).error, 'body-too-large');
    } else {
      assert.ok(result.error, 'cut off without an answer');
    }
    assert.ok(answered || socket.destroyed);
  })();
  await Promise.all([declared, chunked, expectServed(patient)]);
});

test('~2 MB hostile reviews each get a documented answer while a concurrent /healthz answers', { timeout: TEST_TIMEOUT_MS }, async () => {
  // What each is answered (README "Per-pod overrides" limits, "When a pod is injected"): a list or
  // value past its cap denies naming the annotation and its size; unknown keys are warned about
  // (16 by name, the rest counted) and the pod injected; so is a pod of 20k labels (no argument carries them).
  const expected: Record<string, { allowed: boolean; message?: RegExp; warnings?: number }> = {
    'distinct IPv4 CIDRs in exclude-outbound-ip-ranges': { allowed: false, message: /envoy-injector\.io\/exclude-outbound-ip-ranges=.*this value has \d+\)/ },
    'distinct IPv6 CIDRs in include-outbound-ip-ranges': { allowed: false, message: /envoy-injector\.io\/include-outbound-ip-ranges=.*this value has \d+\)/ },
    'long port list in exclude-inbound-ports': { allowed: false, message: /envoy-injector\.io\/exclude-inbound-ports=.*this value has \d+\)/ },
    'port list of blanks and commas': { allowed: false, message: /envoy-injector\.io\/exclude-outbound-ports=.*this value has \d+\)/ },
    '1 MB unknown annotation key': { allowed: true, warnings: 1 },
    '1 MB misspelt annotation key': { allowed: true, warnings: 1 },
    '20k unknown annotation keys': { allowed: true, warnings: 8 },
    '2 MB inject annotation value': { allowed: true, warnings: 1 },
    '2 MB proxy-image value': { allowed: false, message: /envoy-injector\.io\/proxy-image=.*this value has \d+\)/ },
    '2 MB log-level value': { allowed: false, message: /envoy-injector\.io\/log-level=.*this value has \d+\)/ },
    // The labels reach the bootstrap through the podinfo volume, not an exec argument.
    '20k labels': { allowed: true },
    '10k containers': { allowed: true },
    '20k volumes': { allowed: true },
  };
  const reviews = hostileReviews();
  assert.deepEqual(reviews.map((r) => r.name).sort(), Object.keys(expected).sort(), 'every hostile review has its expected answer');
  const answers = reviews.map(async (review) => {
    const response = await httpsPost(patient, '/mutate', review.body);
    assert.equal(response.status, 200, `${review.name}: ${response.body.slice(0, 200)}`);
    // The answer is small whatever the request held: no value is echoed in full.
    assert.ok(response.body.length < 32 * 1024, `${review.name}: ${response.body.length} bytes`);
    const decoded = decodeResponse(JSON.parse(response.body));
    const want = expected[review.name]!;
    assert.equal(decoded.allowed, want.allowed, `${review.name}: ${decoded.status?.message.slice(0, 300)}`);
    if (want.message !== undefined) {
      assert.equal(decoded.status?.code, 400, review.name);
      assert.match(decoded.status?.message ?? '', want.message, review.name);
    }
    if (want.warnings !== undefined) assert.equal(decoded.warnings.length, want.warnings, review.name);
  });
  // Sent with the hostile reviews, answered among them: no review stalls the server.
  const health = httpsGet(patient, '/healthz');
  await Promise.all(answers);
  assert.equal((await health).status, 200);
  await expectServed(patient);
});

/** Slow clients of every kind, each given its socket's close as a RawResult. */
async function slowClients(target: Target) {
  const body = JSON.stringify(reviewFor(POD));
  const tls = async (bytes: string) => {
    const socket = await openTls(target);
    const result = readUntilClosed(socket);
    if (bytes !== '') socket.write(bytes);
    return { socket, result };
  };
  const tcp = async () => {
    const socket = await openTcp(target);
    return { socket, result: readUntilClosed(socket) };
  };
  const continued = () => tls(requestHead('/mutate', { ...JSON_TYPE, 'Content-Length': body.length, Expect: '100-continue' }));
  const dribble = async () => {
    // Slowloris: one byte of the headers at a time, never reaching their end.
    const client = await tls('POST /mutate HTTP/1.1\r\nHost: localhost\r\nX-Slow: ');
    const timer = setInterval(() => client.socket.write('a'), 100);
    void client.result.finally(() => clearInterval(timer));
    return client;
  };
  return {
    'headers never finished': await tls('POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: applica'),
    'body never finished': await tls(requestHead('/mutate', { ...JSON_TYPE, 'Content-Length': body.length }) + body.slice(0, body.length / 2)),
    'body never sent after 100 Continue': await continued(),
    'headers dribbled a byte at a time': await dribble(),
    'connected but silent': await tls(''),
    'TLS handshake never started': await tcp(),
  };
}

test('slow clients are cut off by the request timeout while others are served', { timeout: TEST_TIMEOUT_MS }, async () => {
  const clients = await slowClients(quick);
  // Others are served by the patient server: on a loaded machine even a normal request may take
  // quick's one second (its TLS handshake has that long too), which would make this a race.
  const served = Promise.all([expectServed(patient), expectServed(patient), expectServed(patient)]);
  for (const [name, { result }] of Object.entries(clients)) {
    const closed = remember(await result);
    if (name === 'TLS handshake never started') {
      // Dropped by the TLS handshake timeout: there is no HTTP to answer with.
      assert.equal(closed.raw, '', name);
    } else {
      assert.equal(closed.status, 408, `${name}: ${closed.raw}`);
      assert.equal(JSON.parse(closed.body).statusCode, 408, name);
    }
  }
  await served;
});

test('while slow clients hang on, the server serves everyone else', { timeout: TEST_TIMEOUT_MS }, async () => {
  const clients = await slowClients(patient);
  try {
    for (let i = 0; i < 10; i++) await expectServed(patient);
    assert.equal((await httpsGet(patient, '/healthz')).status, 200);
    // The slow clients are all still connected: nothing above waited for them.
    for (const [name, { socket }] of Object.entries(clients)) assert.equal(socket.destroyed, false, name);
  } finally {
    // Else the patient server would wait for them (two minutes) when the file closes it.
    for (const { socket } of Object.values(clients)) socket.destroy();
  }
  await Promise.all(Object.values(clients).map(({ result }) => result));
  await expectServed(patient);
});

test('many concurrent connections: each is answered 200, or 503 with Retry-After beyond the bound', { timeout: TEST_TIMEOUT_MS }, async () => {
  // Idle connections held open all along, then a burst of admissions on fresh connections.
  const idle = await Promise.all(Array.from({ length: 100 }, () => openTls(patient)));
  try {
    const burst = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const uid = `burst-${i}`;
        const response = remember(await httpsPost(patient, '/mutate', JSON.stringify(reviewFor(POD, { uid }))));
        return { uid, response };
      }),
    );
    const statuses = new Map<number, number>();
    for (const { uid, response } of burst) {
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      if (response.status === 200) {
        const review = decodeResponse(JSON.parse(response.body));
        assert.equal(review.uid, uid);
        assert.equal(review.allowed, true);
        checkInjectedPod(applyJsonPatch(POD, review.patch) as Record<string, unknown>);
      } else {
        // Beyond a bound: the admission slots, or the requests in progress from this one address
        // (every client here is 127.0.0.1). Which one a burst meets first depends on how the
        // machine schedules it; both are the documented refusal.
        assert.equal(response.status, 503, response.body);
        assert.equal(response.headers['retry-after'], '1');
        assert.ok(['overloaded', 'too-many-requests-from-peer'].includes(errorOf(response.body).error), response.body);
      }
    }
    assert.ok((statuses.get(200) ?? 0) > 0, `some were served: ${JSON.stringify([...statuses])}`);
    await expectServed(patient);
  } finally {
    for (const socket of idle) socket.destroy();
  }
});

test("the benchmark's baseline route does not exist outside the benchmark", { timeout: TEST_TIMEOUT_MS }, async () => {
  const response = remember(await httpsPost(patient, BENCH_BASELINE_PATH, JSON.stringify(reviewFor(POD))));
  assert.equal(response.status, 404);
});
