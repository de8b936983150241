// The AdmissionReview envelope is decoded totally (SPEC.md §6, README "Errors"): any JSON value in
// any field of the review is answered 200 (a review the webhook can answer) or 400
// `invalid-review` with a short message — never a 500, never an echo of more than a shortened
// value, whatever the value holds (a `toString` key, 20,000 levels of nesting, megabytes).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import { buildApp } from '../src/server/app.ts';
import { decodeReview, describeValue } from '../src/server/review.ts';
import { ReviewDecodeError } from '../src/errors.ts';
import { testConfig, testRuntime } from './support/config.ts';
import { STACK_TRACE } from './support/raw-https.ts';
import { decodeResponse, reviewFor } from './support/review.ts';

type Obj = Record<string, any>;

const TEST_TIMEOUT_MS = 120_000;
const POD = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web' }, spec: { containers: [{ name: 'web', image: 'nginx' }] } };
/** Longest message a refusal may carry: a sentence and a shortened value, never the value itself. */
const MAX_MESSAGE = 200;

/** Every field of the review the webhook reads, and a few it does not (they must be harmless too). */
const FIELDS: readonly (readonly string[])[] = [
  [],
  ['apiVersion'],
  ['kind'],
  ['request'],
  ['request', 'uid'],
  ['request', 'kind'],
  ['request', 'kind', 'kind'],
  ['request', 'kind', 'group'],
  ['request', 'kind', 'version'],
  ['request', 'operation'],
  ['request', 'object'],
  ['request', 'object', 'kind'],
  ['request', 'object', 'metadata'],
  ['request', 'object', 'metadata', 'namespace'],
  ['request', 'object', 'metadata', 'name'],
  ['request', 'object', 'metadata', 'generateName'],
  ['request', 'subResource'],
  ['request', 'namespace'],
  ['request', 'dryRun'],
  ['request', 'oldObject'],
  ['request', 'userInfo'],
  ['request', 'options'],
];

/** The review as JSON text, with the value at `path` replaced by the JSON text `value`. */
function withField(path: readonly string[], value: string): string {
  if (path.length === 0) return value;
  const marker = '"__FIELD__"';
  // A copy: reviewFor shares POD, which the other cases use unchanged.
  const review = JSON.parse(JSON.stringify(reviewFor(POD))) as Obj;
  let node = review;
  for (const key of path.slice(0, -1)) node = node[key];
  node[path.at(-1) as string] = '__FIELD__';
  // Spliced in as text: a 20,000-level value is never built (or stringified) in this process.
  return JSON.stringify(review).replace(marker, () => value);
}

function deep(depth: number, open: string, close: string): string {
  return `${open.repeat(depth)}1${close.repeat(depth)}`;
}

/** Values no API server sends, each as JSON text. */
const HOSTILE_VALUES: readonly (readonly [string, string])[] = [
  ['a toString key', '{"toString":1}'],
  ['toString and valueOf keys', '{"toString":{"a":1},"valueOf":"x"}'],
  ['a 20,000-deep array', deep(20_000, '[', ']')],
  ['a 20,000-deep object', deep(20_000, '{"kind":', '}')],
  ['a 1 MB string', JSON.stringify('k'.repeat(1024 * 1024))],
  ['a string with control characters', JSON.stringify('Pod\r\nX-Injected: 1\u0000')],
  ['null', 'null'],
  ['a number', '1e308'],
  ['a negative zero', '-0'],
  ['a boolean', 'true'],
  ['an empty object', '{}'],
  ['an empty list', '[]'],
  ['an empty string', '""'],
];

const app = buildApp({ config: testConfig(), runtime: testRuntime, logger: pino({ level: 'silent' }) });

/** Posts a review body and checks the answer is 200 or a short 400; returns its status. */
async function post(body: string, name: string): Promise<number> {
  const response = await app.inject({ method: 'POST', url: '/mutate', payload: body, headers: { 'content-type': 'application/json' } });
  assert.ok([200, 400].includes(response.statusCode), `${name}: ${response.statusCode} ${response.body.slice(0, 300)}`);
  assert.doesNotMatch(response.body, STACK_TRACE, name);
  const parsed = JSON.parse(response.body) as Obj;
  if (response.statusCode === 400) {
    assert.ok(['invalid-review', 'invalid-json'].includes(parsed['error']), `${name}: ${response.body}`);
    assert.ok(parsed['message'].length <= MAX_MESSAGE, `${name}: a short message (${parsed['message'].length} characters)`);
  } else {
    const review = decodeResponse(parsed);
    assert.equal(typeof review.allowed, 'boolean', name);
    assert.ok(review.status === undefined || review.status.message.length <= 2 * MAX_MESSAGE, `${name}: ${review.status?.message.slice(0, 300)}`);
  }
  return response.statusCode;
}

test('hostile values in every field get 200 or 400 with a short message, never 500', { timeout: TEST_TIMEOUT_MS }, async () => {
  for (const path of FIELDS) {
    for (const [what, value] of HOSTILE_VALUES) await post(withField(path, value), `${path.join('.') || '(body)'} = ${what}`);
  }
});

test('the cases of the issue: a toString trap in request.kind.group and a 20,000-deep kind are 400 naming the field', { timeout: TEST_TIMEOUT_MS }, async () => {
  const group = await app.inject({ method: 'POST', url: '/mutate', payload: withField(['request', 'kind', 'group'], '{"toString":1}'), headers: { 'content-type': 'application/json' } });
  assert.equal(group.statusCode, 400);
  assert.deepEqual(group.json(), { error: 'invalid-review', message: 'not a valid AdmissionReview: request.kind.group must be a string, not an object' });
  for (const [path, message] of [
    [['kind'], 'not a valid AdmissionReview: unsupported kind a list: expected AdmissionReview'],
    [['apiVersion'], 'not a valid AdmissionReview: unsupported apiVersion a list: expected admission.k8s.io/v1 or admission.k8s.io/v1beta1'],
    [['request', 'kind'], 'not a valid AdmissionReview: request.kind is missing or has no kind'],
    [['request', 'kind', 'kind'], 'not a valid AdmissionReview: request.kind.kind must be a string, not a list'],
    [['request', 'operation'], 'not a valid AdmissionReview: request.operation must be a string, not a list'],
    [['request', 'namespace'], 'not a valid AdmissionReview: request.namespace must be a string, not a list'],
  ] as const) {
    const response = await app.inject({ method: 'POST', url: '/mutate', payload: withField(path, deep(20_000, '[', ']')), headers: { 'content-type': 'application/json' } });
    assert.equal(response.statusCode, 400, path.join('.'));
    assert.deepEqual(response.json(), { error: 'invalid-review', message }, path.join('.'));
  }
  // A long string is quoted shortened.
  const long = await app.inject({ method: 'POST', url: '/mutate', payload: withField(['kind'], JSON.stringify(`Admission${'x'.repeat(100_000)}`)), headers: { 'content-type': 'application/json' } });
  assert.equal(long.statusCode, 400);
  assert.equal(long.json().message, `not a valid AdmissionReview: unsupported kind "Admission${'x'.repeat(30)}…": expected AdmissionReview`);
  // Names longer than any real one are refused rather than carried into reasons and logs.
  const operation = await app.inject({ method: 'POST', url: '/mutate', payload: withField(['request', 'operation'], JSON.stringify('C'.repeat(300))), headers: { 'content-type': 'application/json' } });
  assert.equal(operation.json().message, 'not a valid AdmissionReview: request.operation is longer than 256 characters');
});

test('well-typed values the API server does send still decode (lenient where the API is)', () => {
  const review = reviewFor(POD) as Obj;
  const decoded = decodeReview({ ...review, request: { ...review.request, kind: { version: 'v1', kind: 'Pod' }, namespace: null, subResource: '', dryRun: null } });
  assert.deepEqual(decoded.context, { kind: 'Pod', operation: 'CREATE', namespace: '' });
  const other = decodeReview({ ...review, request: { ...review.request, kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, object: { kind: 'Deployment' } } });
  assert.equal(other.context.kind, 'Deployment.apps');
});

test('any JSON value at any field: decodeReview returns or throws ReviewDecodeError, nothing else (property)', { timeout: TEST_TIMEOUT_MS }, () => {
  fc.assert(
    fc.property(fc.constantFrom(...FIELDS), fc.jsonValue({ maxDepth: 4 }), (path, value) => {
      const body = JSON.parse(withField(path, JSON.stringify(value) ?? 'null')) as unknown;
      try {
        decodeReview(body);
      } catch (error) {
        assert.ok(error instanceof ReviewDecodeError, String(error));
        assert.ok(error.message.length <= MAX_MESSAGE, error.message);
      }
    }),
    { numRuns: 3_000 },
  );
});

test('describeValue never calls into the value', () => {
  const trap = { toString: () => assert.fail('toString called'), valueOf: () => assert.fail('valueOf called') };
  assert.equal(describeValue(trap), 'an object');
  assert.equal(describeValue([trap]), 'a list');
  assert.equal(describeValue('x'.repeat(1000)).length, 42);
  assert.equal(describeValue(undefined), 'null');
});
