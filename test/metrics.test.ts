// /metrics after a known sequence of admissions: exact counts by result and reason, the latency
// and patch-size histograms moving, request errors by status, warnings by code, the config and
// certificate gauges, and Node process metrics — each app with its own registry.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { STATUS_ANNOTATION } from '../src/constants.ts';
import { parseStatus } from '../src/core/status.ts';
import { REASONS, WARNINGS } from '../src/core/reasons.ts';
import type { InjectorConfig, InjectorRuntime } from '../src/core/types.ts';
import { buildApp } from '../src/server/app.ts';
import { LATENCY_BUCKETS_SECONDS, createMetrics, hashConfig, type MetricsOptions } from '../src/server/metrics.ts';
import { certificateExpiry, generateBundle } from '../src/tls/certificates.ts';
import { TEST_VERSION, testConfig } from './support/config.ts';
import { applyJsonPatch } from './support/patch.ts';
import { parsePrometheusText, samplesOf, valueOf, type Scrape } from './support/prometheus-text.ts';
import { decodeResponse, reviewFor } from './support/review.ts';

type Obj = Record<string, any>;

const POD: Obj = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { generateName: 'web-7d9c-', labels: { app: 'web' } },
  spec: { containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 8080 }] }] },
};
const withMeta = (metadata: Obj, spec: Obj = {}): Obj => ({
  ...POD,
  metadata: { ...POD['metadata'], ...metadata },
  spec: { ...POD['spec'], ...spec },
});

/**
 * A runtime whose version getter can be made to throw, to cause a real internal error: while
 * broken, every read throws, on the fast path and on the reference path it falls back to alike.
 */
function breakableRuntime(): { runtime: InjectorRuntime; breakNext: () => void; repair: () => void } {
  let broken = false;
  const runtime = {
    get version(): string {
      if (broken) throw new Error('simulated failure inside injection');
      return TEST_VERSION;
    },
    nativeSidecarSupported: false,
  };
  return { runtime, breakNext: () => (broken = true), repair: () => (broken = false) };
}

function setup(config: InjectorConfig, runtime: InjectorRuntime, options: Partial<MetricsOptions> = {}) {
  const metrics = createMetrics({ config, runtime, ...options });
  const app = buildApp({ config, runtime, logger: pino({ level: 'silent' }), metrics });
  const scrape = async (): Promise<Scrape> => {
    const response = await app.inject('/metrics');
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    return parsePrometheusText(response.body);
  };
  const mutate = async (object: Obj, review: Parameters<typeof reviewFor>[1] = {}) => {
    const response = await app.inject({ method: 'POST', url: '/mutate', payload: reviewFor(object, review) });
    assert.equal(response.statusCode, 200);
    return decodeResponse(response.json());
  };
  const raw = (payload: string, contentType = 'application/json') =>
    app.inject({ method: 'POST', url: '/mutate', payload, headers: { 'content-type': contentType } });
  return { app, metrics, scrape, mutate, raw };
}

/** Every valid (result, reason) pair: the series /metrics exposes from the start. */
function allAdmissionSeries(): Map<string, number> {
  const result = { inject: 'injected', reorder: 'reordered', skip: 'skipped', deny: 'denied' } as const;
  const series = new Map<string, number>([['error/internal-error', 0]]);
  for (const [code, { action }] of Object.entries(REASONS)) series.set(`${result[action]}/${code}`, 0);
  return series;
}

function admissionCounts(scrape: Scrape): Map<string, number> {
  return new Map(
    samplesOf(scrape, 'envoy_injector_admissions_total').map((s) => [`${s.labels['result']}/${s.labels['reason']}`, s.value]),
  );
}

function assertHistogram(scrape: Scrape, name: string, labels: Record<string, string>, count: number): number {
  const buckets = samplesOf(scrape, `${name}_bucket`, labels);
  assert.ok(buckets.length > 1, `${name} has buckets`);
  const values = buckets.map((b) => b.value);
  assert.deepEqual(values, [...values].sort((a, b) => a - b), `${name} buckets are cumulative`);
  assert.equal(valueOf(scrape, `${name}_bucket`, { ...labels, le: '+Inf' }), count, `${name} +Inf bucket`);
  assert.equal(valueOf(scrape, `${name}_count`, labels), count, `${name}_count ${JSON.stringify(labels)}`);
  return valueOf(scrape, `${name}_sum`, labels);
}

test('after a known sequence of admissions, /metrics counts exactly what happened', async () => {
  const config = testConfig({ ENVOY_INJECTOR_SERVER_BODY_LIMIT_BYTES: '65536' });
  const { runtime, breakNext, repair } = breakableRuntime();
  const { scrape, mutate, raw, app } = setup(config, runtime);

  // Before anything: every known series exists at zero, and the histograms are empty.
  const before = await scrape();
  assert.deepEqual(admissionCounts(before), allAdmissionSeries());
  for (const result of ['injected', 'reordered', 'skipped', 'denied', 'error']) {
    assert.equal(assertHistogram(before, 'envoy_injector_admission_duration_seconds', { result }, 0), 0);
  }
  assert.equal(valueOf(before, 'envoy_injector_patch_bytes_count'), 0);
  for (const code of Object.keys(WARNINGS)) assert.equal(valueOf(before, 'envoy_injector_admission_warnings_total', { code }), 0);

  // Injected: three by the namespace (one also annotated "true"), one by its pod label, one with typos.
  const first = await mutate(POD, { uid: 'a1' });
  await mutate(POD, { uid: 'a2' });
  await mutate(withMeta({ annotations: { 'envoy-injector.io/inject': 'true' } }));
  await mutate(withMeta({ labels: { app: 'web', 'envoy-injector.io/inject': 'enabled' } }));
  const typos = await mutate(
    withMeta({ annotations: { 'envoy-injector.io/proxy-cpus': '1', 'envoy-injector.io/log-levl': 'debug' } }),
  );
  assert.equal(typos.warnings.length, 2);
  // Skipped, each for its own first reason.
  await mutate(withMeta({}, { hostNetwork: true }));
  await mutate(withMeta({}, { hostNetwork: true }));
  await mutate(withMeta({ annotations: { 'envoy-injector.io/inject': 'false' } }));
  await mutate({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' } }, { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } });
  await mutate(POD, { operation: 'UPDATE' });
  await mutate(applyJsonPatch(POD, first.patch));
  // In an excluded namespace and also host-networked: the namespace decides (the first reason).
  await mutate(withMeta({}, { hostNetwork: true }), { namespace: 'kube-system' });
  // Denied: invalid annotations come first even with a port conflict; a port conflict alone.
  const denied = await mutate(
    withMeta({ annotations: { 'envoy-injector.io/concurrency': '-1' } }, { containers: [{ name: 'web', image: 'w', ports: [{ containerPort: 15001 }] }] }),
  );
  assert.equal(denied.allowed, false);
  await mutate(withMeta({}, { containers: [{ name: 'web', image: 'w', ports: [{ containerPort: 15090 }] }] }));
  // An internal error.
  // A pod of a proxy config not seen yet, so that its patch is rendered (reading the version) rather
  // than taken from a template of the fast path.
  breakNext();
  const failed = await mutate(withMeta({ annotations: { 'envoy-injector.io/log-level': 'warning' } }), { uid: 'err-1' });
  repair();
  assert.equal(failed.status?.code, 500);
  // Rejected before admission: two 400s, one 415, one 413 — and a 404 that is not an error of ours.
  assert.equal((await raw('{"apiVersion":')).statusCode, 400);
  assert.equal((await raw('[]')).statusCode, 400);
  assert.equal((await raw('hello', 'text/plain')).statusCode, 415);
  assert.equal((await raw(JSON.stringify(reviewFor(withMeta({ name: 'x'.repeat(70_000) }))))).statusCode, 413);
  assert.equal((await app.inject('/nope')).statusCode, 404);

  const after = await scrape();
  const expected = allAdmissionSeries();
  expected.set('injected/enabled-by-namespace', 4);
  expected.set('injected/enabled-by-pod-label', 1);
  expected.set('skipped/host-network', 2);
  expected.set('skipped/disabled-by-annotation', 1);
  expected.set('skipped/not-a-pod', 1);
  expected.set('skipped/not-create', 1);
  expected.set('skipped/already-injected', 1);
  expected.set('skipped/namespace-excluded', 1);
  expected.set('denied/invalid-annotations', 1);
  expected.set('denied/proxy-port-conflict', 1);
  expected.set('error/internal-error', 1);
  assert.deepEqual(admissionCounts(after), expected);

  // The latency histogram moved by exactly the admissions of each result.
  const counts = { injected: 5, skipped: 7, denied: 2, error: 1 };
  for (const [result, count] of Object.entries(counts)) {
    const sum = assertHistogram(after, 'envoy_injector_admission_duration_seconds', { result }, count);
    assert.ok(sum > 0, `${result}: the duration sum moved`);
  }
  assert.deepEqual(
    samplesOf(after, 'envoy_injector_admission_duration_seconds_bucket', { result: 'injected' }).map((s) => s.labels['le']),
    [...LATENCY_BUCKETS_SECONDS.map(String), '+Inf'],
  );
  // Patch sizes: one observation per injected pod, the size of the decoded patch.
  const patchSum = assertHistogram(after, 'envoy_injector_patch_bytes', {}, 5);
  const firstPatchBytes = Buffer.byteLength(JSON.stringify(first.patch));
  assert.ok(patchSum >= 5 * firstPatchBytes * 0.9 && patchSum <= 5 * firstPatchBytes * 1.1, `patch sum ${patchSum}`);

  // Warnings count admissions that got the code: the two typos are one admission.
  const warnings = Object.fromEntries(
    samplesOf(after, 'envoy_injector_admission_warnings_total').map((s) => [s.labels['code'], s.value]),
  );
  assert.deepEqual(warnings, {
    ...Object.fromEntries(Object.keys(WARNINGS).map((code) => [code, 0])),
    'host-network': 2,
    'unknown-annotation': 1,
  });

  assert.equal(valueOf(after, 'envoy_injector_request_errors_total', { status: '400' }), 2);
  assert.equal(valueOf(after, 'envoy_injector_request_errors_total', { status: '413' }), 1);
  assert.equal(valueOf(after, 'envoy_injector_request_errors_total', { status: '415' }), 1);
  assert.equal(valueOf(after, 'envoy_injector_request_errors_total', { status: '500' }), 0);
  assert.equal(samplesOf(after, 'envoy_injector_request_errors_total', { status: '404' }).length, 0);

  // The paths that answered: a template was rendered for the first pod without annotations and the
  // first with some (misses), then reused by the pod-label pod, the second POD and the typos (hits);
  // skips, denials and the failure went by the reference path.
  assert.deepEqual(
    Object.fromEntries(samplesOf(after, 'envoy_injector_fast_path_total').map((s) => [s.labels['path'], s.value])),
    { hit: 3, miss: 2, reference: 10 },
  );
});

test('config info and load time, and the proxy config hash that injected pods carry', async () => {
  const config = testConfig();
  const { runtime } = breakableRuntime();
  const loadedAt = new Date('2025-03-01T12:00:00Z');
  const { scrape, mutate, metrics } = setup(config, runtime, { configLoadedAt: loadedAt });
  const scraped = await scrape();
  const [info] = samplesOf(scraped, 'envoy_injector_config_info');
  assert.ok(info);
  assert.equal(info.value, 1);
  assert.equal(info.labels['version'], TEST_VERSION);
  assert.equal(info.labels['config_hash'], hashConfig(config));
  assert.equal(info.labels['native_sidecar'], 'false');
  // A pod without overrides carries exactly this hash in its status annotation: a pod whose hash
  // differs runs a sidecar from another config.
  const injected = applyJsonPatch(POD, (await mutate(POD)).patch) as Obj;
  assert.equal(info.labels['proxy_config_hash'], parseStatus(injected['metadata']['annotations'][STATUS_ANNOTATION])?.configHash);
  assert.equal(valueOf(scraped, 'envoy_injector_config_load_timestamp_seconds'), loadedAt.getTime() / 1000);
  // A reloaded config replaces the info series (another hash) and the load time.
  const reloaded = testConfig({ ENVOY_INJECTOR_PROXY_CONCURRENCY: '4' });
  assert.notEqual(hashConfig(reloaded), hashConfig(config));
  metrics.setConfig(reloaded, runtime, new Date('2025-03-02T00:00:00Z'));
  const after = await scrape();
  assert.deepEqual(samplesOf(after, 'envoy_injector_config_info').map((s) => s.labels['config_hash']), [hashConfig(reloaded)]);
  assert.equal(valueOf(after, 'envoy_injector_config_load_timestamp_seconds'), Date.parse('2025-03-02T00:00:00Z') / 1000);
});

test('certificate expiry is read from the getters at each scrape; none loaded means no series', async () => {
  const bundle = await generateBundle(['localhost']);
  let serving: string | undefined;
  const { scrape } = setup(testConfig(), breakableRuntime().runtime, {
    certificates: {
      serving: () => (serving === undefined ? undefined : certificateExpiry(serving)),
      ca: () => {
        throw new Error('CA not readable');
      },
    },
  });
  assert.deepEqual(samplesOf(await scrape(), 'envoy_injector_certificate_expiry_timestamp_seconds'), []);
  serving = bundle.cert;
  const scraped = await scrape();
  assert.deepEqual(samplesOf(scraped, 'envoy_injector_certificate_expiry_timestamp_seconds'), [
    {
      name: 'envoy_injector_certificate_expiry_timestamp_seconds',
      labels: { certificate: 'serving' },
      value: certificateExpiry(bundle.cert).getTime() / 1000,
    },
  ]);
  // The generated serving certificate is valid for about a year from now.
  const days = (valueOf(scraped, 'envoy_injector_certificate_expiry_timestamp_seconds', { certificate: 'serving' }) * 1000 - Date.now()) / 86_400_000;
  assert.ok(days > 360 && days < 370, `${days} days`);
});

test('Node process metrics are exported with their usual names', async () => {
  const scraped = await setup(testConfig(), breakableRuntime().runtime).scrape();
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes']) {
    assert.equal(samplesOf(scraped, name).length, 1, name);
  }
  assert.equal(scraped.types.get('envoy_injector_admission_duration_seconds'), 'histogram');
  assert.equal(scraped.types.get('envoy_injector_admissions_total'), 'counter');
});

test('each app has its own registry: two in one process count separately', async () => {
  const one = setup(testConfig(), breakableRuntime().runtime, { processMetrics: false });
  const two = setup(testConfig(), breakableRuntime().runtime, { processMetrics: false });
  await one.mutate(POD);
  await one.mutate(POD);
  await two.mutate(POD);
  assert.equal(valueOf(await one.scrape(), 'envoy_injector_admissions_total', { result: 'injected', reason: 'enabled-by-namespace' }), 2);
  assert.equal(valueOf(await two.scrape(), 'envoy_injector_admissions_total', { result: 'injected', reason: 'enabled-by-namespace' }), 1);
  assert.equal(samplesOf(await one.scrape(), 'process_cpu_seconds_total').length, 0, 'process metrics can be left out');
});

test('labels stay within the known sets whatever the transport reports', async () => {
  const metrics = createMetrics({ config: testConfig(), runtime: breakableRuntime().runtime, processMetrics: false });
  metrics.recordAdmission({ result: 'skipped', reasons: ['made-up-reason'], warnings: ['made-up-warning'], patchBytes: 0 }, 0.001);
  metrics.recordAdmission({ result: 'injected', reasons: ['host-network'], warnings: [], patchBytes: 10 }, 0.001);
  metrics.recordRequestError(999);
  const scraped = parsePrometheusText(await metrics.render());
  assert.equal(valueOf(scraped, 'envoy_injector_admissions_total', { result: 'skipped', reason: 'unknown' }), 1);
  // A reason that never leads to that result is not a valid pair either.
  assert.equal(valueOf(scraped, 'envoy_injector_admissions_total', { result: 'injected', reason: 'unknown' }), 1);
  assert.equal(valueOf(scraped, 'envoy_injector_admission_warnings_total', { code: 'unknown' }), 1);
  assert.equal(valueOf(scraped, 'envoy_injector_request_errors_total', { status: 'unknown' }), 1);
});

test('without metrics in its deps the app serves no /metrics', async () => {
  const app = buildApp({ config: testConfig(), runtime: breakableRuntime().runtime, logger: pino({ level: 'silent' }) });
  assert.equal((await app.inject('/metrics')).statusCode, 404);
});
