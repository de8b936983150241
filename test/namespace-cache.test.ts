// The namespace watch cache (src/kube/namespace-cache.ts) against a scripted API: what it keeps,
// how it follows the watch, how it survives errors and 410 Gone (relist with backoff, serving the
// last good view, each problem logged once), and what a cache miss does. The real API servers are
// in test/envtest-namespace-defaults.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JsonObject } from '../src/core/types.ts';
import { NamespaceCache, namespaceEntry, type NamespaceApi, type NamespaceList, type ResyncReason, type WatchEvent } from '../src/kube/namespace-cache.ts';
import { admit } from '../src/server/admission.ts';
import { captureLogger } from './support/fake-apiserver-cluster.ts';
import { testConfig, testRuntime } from './support/config.ts';
import { waitFor } from './support/envtest.ts';

const ns = (name: string, annotations: Record<string, string> = {}, resourceVersion = '1'): JsonObject => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name, resourceVersion, annotations, labels: { big: 'x'.repeat(100) } },
  spec: { finalizers: ['kubernetes'] },
});

/** A scripted NamespaceApi: lists answer from `namespaces` (or fail), watches are driven by the test. */
class ScriptedApi implements NamespaceApi {
  namespaces: JsonObject[] = [];
  listFailures = 0;
  lists = 0;
  gets: string[] = [];
  getAnswer: (name: string) => Promise<JsonObject | undefined> = async () => undefined;
  watches: { rv: string; emit: (e: WatchEvent) => void; end: (error?: unknown) => void; stopped: boolean }[] = [];
  async list(): Promise<NamespaceList> {
    this.lists++;
    if (this.listFailures > 0) {
      this.listFailures--;
      throw new Error('connection refused');
    }
    return { items: structuredClone(this.namespaces), resourceVersion: String(100 + this.lists) };
  }
  async watch(rv: string, onEvent: (e: WatchEvent) => void, done: (error?: unknown) => void): Promise<() => void> {
    const entry = { rv, emit: onEvent, end: done, stopped: false };
    this.watches.push(entry);
    return () => {
      entry.stopped = true;
    };
  }
  async get(name: string): Promise<JsonObject | undefined> {
    this.gets.push(name);
    return this.getAnswer(name);
  }
  get current() {
    const last = this.watches.at(-1);
    assert.ok(last && !last.stopped, 'a watch is open');
    return last;
  }
}

function setup() {
  const api = new ScriptedApi();
  const log = captureLogger('info');
  const resyncs: ResyncReason[] = [];
  const cache = new NamespaceCache({ api, logger: log.logger, backoff: { first: 10, max: 40 } });
  cache.onResync((reason) => resyncs.push(reason));
  return { api, log, resyncs, cache };
}

test('keeps only names and envoy-injector.io annotations', () => {
  const entry = namespaceEntry(ns('shop', { 'envoy-injector.io/log-level': 'debug', 'kubectl.kubernetes.io/last-applied-configuration': '{…}' }));
  assert.deepEqual(entry, { name: 'shop', annotations: { 'envoy-injector.io/log-level': 'debug' } });
  assert.equal(namespaceEntry({ metadata: {} }), undefined);
});

test('not ready until listed once; then the watch keeps it current, from the list\'s resourceVersion', { timeout: 30_000 }, async () => {
  const { api, cache, resyncs } = setup();
  api.namespaces = [ns('shop', { 'envoy-injector.io/log-level': 'debug' }), ns('plain')];
  assert.equal(cache.readiness().ready, false);
  cache.start();
  try {
    await waitFor('the cache to sync', () => cache.synced());
    assert.deepEqual(cache.readiness(), { ready: true });
    assert.deepEqual(resyncs, ['start']);
    assert.equal(cache.size(), 2);
    assert.deepEqual(cache.get('shop'), { 'envoy-injector.io/log-level': 'debug' });
    assert.deepEqual(cache.get('plain'), {});
    await waitFor('the watch', () => api.watches.length === 1);
    assert.equal(api.current.rv, '101', 'watched from the list');
    api.current.emit({ type: 'MODIFIED', object: ns('shop', { 'envoy-injector.io/log-level': 'error' }, '105') });
    api.current.emit({ type: 'ADDED', object: ns('new', { 'envoy-injector.io/concurrency': '4' }, '106') });
    api.current.emit({ type: 'DELETED', object: ns('plain', {}, '107') });
    api.current.emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '110' } } });
    assert.deepEqual(cache.get('shop'), { 'envoy-injector.io/log-level': 'error' });
    assert.deepEqual(cache.get('new'), { 'envoy-injector.io/concurrency': '4' });
    assert.equal(cache.get('plain'), undefined);
    assert.ok((cache.ageSeconds() ?? 99) < 5);
    // The API server ends the watch after a while: resumed from the last resourceVersion, no relist.
    await new Promise((r) => setTimeout(r, 1_050));
    api.current.end();
    await waitFor('the watch to resume', () => api.watches.length === 2);
    assert.equal(api.current.rv, '110');
    assert.equal(api.lists, 1);
  } finally {
    cache.stop();
  }
});

test('410 Gone: lists again at once; errors: relists with backoff, serving the last good view, logged once', { timeout: 30_000 }, async () => {
  const { api, cache, resyncs, log } = setup();
  api.namespaces = [ns('shop', { 'envoy-injector.io/log-level': 'debug' })];
  cache.start();
  try {
    await waitFor('the watch', () => api.watches.length === 1);
    api.namespaces = [ns('shop', { 'envoy-injector.io/log-level': 'info' })];
    api.current.emit({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } });
    await waitFor('the relist', () => api.watches.length === 2);
    assert.deepEqual(resyncs, ['start', 'expired']);
    assert.deepEqual(cache.get('shop'), { 'envoy-injector.io/log-level': 'info' }, 'the relist replaced the view');
    // The watch breaks and the API is down for three lists: the last view keeps serving.
    api.listFailures = 3;
    api.watches[1]?.end(new Error('socket hang up'));
    await waitFor('the recovery', () => api.watches.length === 3, { timeoutMs: 20_000 });
    assert.deepEqual(resyncs, ['start', 'expired', 'error', 'error', 'error', 'error']);
    assert.deepEqual(cache.get('shop'), { 'envoy-injector.io/log-level': 'info' });
    assert.equal(cache.readiness().ready, true, 'still ready: it serves from the last good view');
    const problems = log.lines.filter((l) => String(l['msg']).startsWith('namespace cache:') && l['level'] === 40);
    assert.deepEqual(problems.map((l) => l['msg']), [
      'namespace cache: the namespace watch failed; serving from the last good view',
      'namespace cache: listing namespaces failed; serving from the last good view',
    ], 'each problem logged once, not once per retry');
    assert.equal(log.lines.filter((l) => l['msg'] === 'namespace cache: recovered').length, 1);
  } finally {
    cache.stop();
  }
});

test('a cache miss: one bounded read shared by concurrent admissions; a failed read admits with the config defaults and a warning', { timeout: 30_000 }, async () => {
  const { api, cache } = setup();
  cache.start();
  try {
    await waitFor('the cache to sync', () => cache.synced());
    let release: (() => void) | undefined;
    api.getAnswer = (name) => new Promise((resolve) => (release = () => resolve(ns(name, { 'envoy-injector.io/log-level': 'trace' }))));
    const [a, b] = [cache.defaultsFor('fresh'), cache.defaultsFor('fresh')];
    await waitFor('the read', () => release !== undefined);
    release?.();
    assert.deepEqual(await a, { known: true, annotations: { 'envoy-injector.io/log-level': 'trace' } });
    assert.deepEqual(await b, await a);
    assert.deepEqual(api.gets, ['fresh'], 'one read for both');
    assert.deepEqual(cache.defaultsFor('fresh'), { known: true, annotations: { 'envoy-injector.io/log-level': 'trace' } }, 'then from the cache, synchronously');
    // Gone (404): no defaults. Failing: unknown, and the admission says so.
    api.getAnswer = async () => undefined;
    assert.deepEqual(await cache.defaultsFor('gone'), { known: true, annotations: {} });
    api.getAnswer = async () => {
      throw new Error('reading Namespace lagging: timed out after 2000 ms');
    };
    const unknown = await cache.defaultsFor('lagging');
    assert.equal(unknown.known, false);
    const review = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: 'u1',
        kind: { group: '', version: 'v1', kind: 'Pod' },
        operation: 'CREATE',
        namespace: 'lagging',
        object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'a' }] } },
      },
    };
    const outcome = admit(review, testConfig(), testRuntime, unknown);
    assert.equal(outcome.result, 'injected');
    assert.deepEqual(outcome.warnings, ['namespace-defaults-unknown']);
    assert.match(JSON.stringify(outcome.review), /Namespace lagging's envoy-injector.io defaults could not be read/);
    // Known defaults reach the core.
    const known = admit(review, testConfig(), testRuntime, { known: true, annotations: { 'envoy-injector.io/log-level': 'trace' } });
    assert.equal(known.injection?.decision.action === 'inject' && known.injection.decision.proxy.logLevel, 'trace');
  } finally {
    cache.stop();
  }
});
