// The lean /mutate route (src/server/lean-mutate.ts) keeps the whole contract of fastify's /mutate
// route: the same requests, sent over real TLS to a server with the lean route and to one without
// it (AppDeps.leanMutate=false, every request through fastify), get byte-identical answers (status,
// headers but Date, body), the same log records (but time and duration) and the same metric changes.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import secureJsonParse from 'secure-json-parse';
import { isLeanMutate, mayHoldPoisonedKeys } from '../src/server/lean-mutate.ts';
import { captureLogger } from './support/fake-apiserver-cluster.ts';
import { removeCertificates, startServer, type TestServer } from './support/https-server.ts';
import { httpsGet, openTls, readUntilClosed, requestHead } from './support/raw-https.ts';
import { reviewFor } from './support/review.ts';

const TEST_TIMEOUT_MS = 120_000;
const BODY_LIMIT = 64 * 1024;
const ENV = {
  ENVOY_INJECTOR_SERVER_BODY_LIMIT_BYTES: String(BODY_LIMIT),
  ENVOY_INJECTOR_SERVER_BODY_TIMEOUT_MS: '300',
  ENVOY_INJECTOR_SERVER_REQUEST_TIMEOUT_MS: '60000',
};
const POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', namespace: 'demo', labels: { app: 'web', hostile: 'a"b\\c\u2028$(X)' } },
  spec: { containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 8080 }] }] },
};
const json = (value: unknown) => JSON.stringify(value);

/** One request of the set: its head's path and headers, the body, and how much of it is sent. */
interface Case {
  readonly name: string;
  readonly path?: string;
  readonly headers?: Readonly<Record<string, string | number>>;
  readonly body: string;
  /** Bytes of the body actually sent (the rest never comes: a slow body). */
  readonly send?: number;
  /** Whether the lean route takes it (decided on the headers). */
  readonly lean: boolean;
}

const CASES: readonly Case[] = [
  { name: 'injection v1', body: json(reviewFor(POD, { uid: 'u-1' })), lean: true },
  { name: 'injection v1beta1', body: json(reviewFor(POD, { uid: 'u-2', apiVersion: 'admission.k8s.io/v1beta1' })), lean: true },
  { name: 'injection with the query the API server adds', path: '/mutate?timeout=10s', body: json(reviewFor(POD, { uid: 'u-3' })), lean: true },
  { name: 'charset in the content type', headers: { 'content-type': 'application/json; charset=utf-8' }, body: json(reviewFor(POD, { uid: 'u-4' })), lean: true },
  { name: 'skip', body: json(reviewFor({ ...POD, spec: { ...POD.spec, hostNetwork: true } }, { uid: 'u-5' })), lean: true },
  {
    name: 'denial',
    body: json(reviewFor({ ...POD, metadata: { ...POD.metadata, annotations: { 'envoy-injector.io/concurrency': 'many' } } }, { uid: 'u-6' })),
    lean: true,
  },
  { name: 'not a pod', body: json(reviewFor({ kind: 'ConfigMap', metadata: { name: 'c' } }, { uid: 'u-7', kind: { group: '', version: 'v1', kind: 'ConfigMap' } })), lean: true },
  { name: 'malformed JSON', body: '{"apiVersion": ', lean: true },
  { name: 'empty body', body: '', lean: true },
  { name: '__proto__ poisoning', body: '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","__proto__":{"x":1}}', lean: true },
  { name: 'constructor.prototype poisoning', body: '{"constructor":{"prototype":{"x":1}}}', lean: true },
  { name: 'hostile envelope: uid an object', body: json({ ...reviewFor(POD), request: { ...(reviewFor(POD)['request'] as object), uid: { toString: 1 } } }), lean: true },
  { name: 'hostile envelope: kind a number', body: json({ ...reviewFor(POD), kind: 7 }), lean: true },
  { name: 'JSON that is not an object', body: '[1,2,3]', lean: true },
  // The lean route skips secure-json-parse's scans when no poisoned key can be there: escapes of
  // the letters, a byte-order mark and the API server's own escapes of < > & must all still agree.
  { name: '__proto__ spelled with escapes', body: '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","_\\u005f\\u0070roto__":{"x":1}}', lean: true },
  { name: 'constructor spelled with escapes', body: '{"\\u0063onstructo\\u0072":{"prototype":{"x":1}}}', lean: true },
  { name: 'byte-order mark before the review', body: `\ufeff${json(reviewFor(POD, { uid: 'u-10' }))}`, lean: true },
  {
    name: "the API server's escapes of < > &",
    body: json(reviewFor({ ...POD, metadata: { ...POD.metadata, annotations: { note: 'a<b>&c' } } }, { uid: 'u-11' })).replace(/[<>&]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`),
    lean: true,
  },
  { name: 'slow body cut off by the deadline', body: json(reviewFor(POD, { uid: 'u-8' })), send: 40, lean: true },
  { name: 'wrong content type', headers: { 'content-type': 'text/plain' }, body: 'hello', lean: false },
  { name: 'oversized by its Content-Length', body: 'x'.repeat(BODY_LIMIT + 1), send: 0, lean: false },
  { name: 'chunked body', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, body: `5\r\n[1,2]\r\n0\r\n\r\n`, lean: false },
  { name: 'another path', path: '/mutate/', body: json(reviewFor(POD, { uid: 'u-9' })), lean: false },
];

/** The head fields a request sends (Content-Length counts the whole body, sent or not). */
function headersOf(c: Case): Record<string, string | number> {
  const headers: Record<string, string | number> = { ...(c.headers ?? { 'content-type': 'application/json' }), connection: 'close' };
  if (headers['transfer-encoding'] === undefined) headers['content-length'] = Buffer.byteLength(c.body);
  return headers;
}

/** Sends one case on its own connection; resolves with the raw answer, Date removed. */
async function exchange(server: TestServer, c: Case): Promise<string> {
  const socket = await openTls(server);
  const result = readUntilClosed(socket);
  socket.write(requestHead(c.path ?? '/mutate', headersOf(c)));
  const bytes = Buffer.from(c.body);
  socket.write(bytes.subarray(0, c.send ?? bytes.length));
  const { raw } = await result;
  return raw.replace(/\r\ndate: [^\r]*/i, '');
}

/** The injector's own series of /metrics, but the time-dependent ones (durations). */
async function counters(server: TestServer): Promise<string[]> {
  const { body } = await httpsGet(server, '/metrics');
  return body
    .split('\n')
    .filter((line) => line.startsWith('envoy_injector_') && !/duration|latency|seconds/.test(line));
}

// As text (key order kept), so that the lines are the same bytes but for their time and duration.
const logged = (lines: Record<string, unknown>[]) =>
  lines.filter((l) => !String(l['msg']).startsWith('Server listening')).map(({ time: _t, durationMs: _d, ...rest }) => JSON.stringify(rest));

after(removeCertificates);

test('the lean route takes exactly the API server shape of POST /mutate, decided on the headers', { timeout: TEST_TIMEOUT_MS }, () => {
  for (const c of CASES) {
    const request = { method: 'POST', url: c.path ?? '/mutate', headers: Object.fromEntries(Object.entries(headersOf(c)).map(([k, v]) => [k, String(v)])) };
    assert.equal(isLeanMutate(request as unknown as IncomingMessage, BODY_LIMIT), c.lean, c.name);
  }
  const get = { method: 'GET', url: '/mutate', headers: { 'content-type': 'application/json', 'content-length': '2' } };
  assert.equal(isLeanMutate(get as unknown as IncomingMessage, BODY_LIMIT), false, 'only POST');
});

test('each request gets the same bytes, log records and metric changes from the lean route as from fastify', { timeout: TEST_TIMEOUT_MS }, async () => {
  const leanLog = captureLogger('info');
  const referenceLog = captureLogger('info');
  const lean = await startServer(ENV, leanLog.logger);
  const reference = await startServer(ENV, referenceLog.logger, { leanMutate: false });
  try {
    const leanBefore = await counters(lean);
    const referenceBefore = await counters(reference);
    assert.deepEqual(leanBefore, referenceBefore);
    for (const c of CASES) {
      const fromLean = await exchange(lean, c);
      const fromReference = await exchange(reference, c);
      assert.match(fromReference, /^HTTP\/1\.1 \d{3} /, `${c.name}: answered`);
      assert.equal(fromLean, fromReference, c.name);
      // Refusal lines are written at most once a second: each case starts a new second.
      if (c.send !== undefined) await sleep(1_100);
    }
    assert.deepEqual(logged(leanLog.lines), logged(referenceLog.lines));
    assert.ok(leanLog.lines.some((l) => l['msg'] === 'admission' && l['decision'] === 'injected'));
    assert.ok(leanLog.lines.some((l) => l['msg'] === 'request rejected'));
    assert.ok(leanLog.lines.some((l) => l['msg'] === 'requests refused'));
    const leanAfter = await counters(lean);
    assert.notDeepEqual(leanAfter, leanBefore, 'the requests were counted');
    assert.deepEqual(leanAfter, await counters(reference));
  } finally {
    await lean.close();
    await reference.close();
  }
});

/** JSON text of nested objects with the given keys, each character of a key escaped where `escape` says. */
type Tree = { readonly entries: readonly (readonly [string, Tree | number])[] };
function serialize(tree: Tree, escape: (i: number) => number): string {
  let n = 0;
  const key = (k: string) =>
    [...k]
      .map((ch) => {
        const how = escape(n++);
        if (how === 0) return JSON.stringify(ch).slice(1, -1);
        const hex = ch.charCodeAt(0).toString(16).padStart(4, '0');
        return `\\u${how === 1 ? hex : hex.toUpperCase()}`;
      })
      .join('');
  const walk = (t: Tree): string => `{${t.entries.map(([k, v]) => `"${key(k)}":${typeof v === 'number' ? v : walk(v)}`).join(',')}}`;
  return walk(tree);
}

test('JSON.parse stands in for secure-json-parse only where no poisoned key can be', { timeout: TEST_TIMEOUT_MS }, () => {
  const PARSE = { protoAction: 'error', constructorAction: 'error' } as const;
  const keyOf = fc.oneof(fc.constantFrom('__proto__', 'constructor', 'prototype', 'proto', '_', 'x<&>'), fc.string({ maxLength: 6 }));
  const { tree } = fc.letrec<{ tree: Tree }>((tie) => ({
    tree: fc.record({ entries: fc.array(fc.tuple(keyOf, fc.oneof({ depthSize: 'small' }, fc.integer(), tie('tree'))), { maxLength: 4 }) }),
  }));
  let poisoned = 0;
  fc.assert(
    fc.property(tree, fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 64 }), fc.boolean(), (t, escapes, bom) => {
      const text = `${bom ? '\ufeff' : ''}${serialize(t, (i) => escapes[i % escapes.length]!)}`;
      let reference: unknown;
      try {
        reference = secureJsonParse.parse(text, undefined, PARSE);
      } catch {
        poisoned += 1;
        assert.equal(mayHoldPoisonedKeys(text), true, text);
        return;
      }
      if (!mayHoldPoisonedKeys(text)) assert.deepEqual(JSON.parse(text), reference, text);
    }),
    { numRuns: 3_000 },
  );
  assert.ok(poisoned > 100, `poisoned texts were generated (${poisoned})`);
  assert.equal(mayHoldPoisonedKeys('{"a":"\\u0026"}'), false, "the API server's escapes alone need no scan");
});
