// The Grafana dashboard (manifests/dashboards/envoy-injector.json) is valid dashboard JSON, and
// every panel query names only metrics — and labels — that a real /metrics scrape exposes.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { pino } from 'pino';
import { buildApp } from '../src/server/app.ts';
import { createMetrics } from '../src/server/metrics.ts';
import { testConfig, testRuntime } from './support/config.ts';
import { parsePrometheusText } from './support/prometheus-text.ts';
import { reviewFor } from './support/review.ts';

const DASHBOARD = new URL('../manifests/dashboards/envoy-injector.json', import.meta.url).pathname;

/** Labels Prometheus adds when it scrapes a pod (target labels), besides the metric's own. */
const TARGET_LABELS = new Set(['instance', 'job', 'namespace', 'pod', 'container', 'service', 'endpoint']);
/** Aggregation operators may put their `by (…)` before the parenthesis: `sum by (le) (…)`. */
const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'group', 'count', 'count_values', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'limitk', 'limit_ratio']);
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset']);
const LABEL_LIST_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

interface Selector {
  readonly metric: string;
  readonly labels: readonly string[];
}

/** What a PromQL expression refers to: metric selectors (with matcher labels) and grouping labels. */
function readPromql(expr: string): { selectors: Selector[]; grouping: string[] } {
  const selectors: Selector[] = [];
  const grouping: string[] = [];
  // Grafana variables stand for a duration or a regex inside strings; give them a neutral value.
  const text = expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m');
  const token = /\s+|"(?:[^"\\]|\\.)*"|\[[^\]]*\]|\{[^}]*\}|[a-zA-Z_:][a-zA-Z0-9_:]*|\d+(?:\.\d+)?(?:e[+-]?\d+)?|[()*/+\-<>=!,^%]+/gy;
  const tokens: string[] = [];
  for (let m = token.exec(text); m !== null && m[0] !== ''; m = token.exec(text)) if (m[0].trim() !== '') tokens.push(m[0]);
  assert.equal(token.lastIndex === 0 ? text.length : token.lastIndex, text.length, `the whole expression tokenizes: ${expr}`);
  const matcherLabels = (braces: string): string[] =>
    [...braces.slice(1, -1).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"/g)].map((m) => m[1] as string);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as string;
    const next = tokens[i + 1];
    if (!/^[a-zA-Z_:]/.test(t)) continue;
    if (LABEL_LIST_KEYWORDS.has(t) && next?.startsWith('(')) {
      // by (a, b): the label list runs to the closing parenthesis.
      for (i += 2; i < tokens.length && tokens[i] !== ')'; i++) if (/^[a-zA-Z_]/.test(tokens[i] as string)) grouping.push(tokens[i] as string);
      continue;
    }
    // A name followed by a parenthesis is a function or an aggregation, not a metric.
    if (KEYWORDS.has(t) || AGGREGATIONS.has(t) || next?.startsWith('(') || t === 'Inf' || t === 'NaN') continue;
    selectors.push({ metric: t, labels: next?.startsWith('{') ? matcherLabels(next) : [] });
  }
  return { selectors, grouping };
}

/** Every series name a real app exposes, with the labels each carries. */
async function exposedSeries(): Promise<Map<string, Set<string>>> {
  const metrics = createMetrics({
    config: testConfig(),
    runtime: testRuntime,
    certificates: { serving: () => new Date('2030-01-01T00:00:00Z'), ca: () => new Date('2035-01-01T00:00:00Z') },
  });
  const app = buildApp({ config: testConfig(), runtime: testRuntime, logger: pino({ level: 'silent' }), metrics });
  await app.inject({ method: 'POST', url: '/mutate', payload: reviewFor({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'a' }] } }) });
  const scrape = parsePrometheusText(await (await app.inject('/metrics')).body);
  const series = new Map<string, Set<string>>();
  const add = (name: string, labels: Iterable<string>) => {
    const set = series.get(name) ?? new Set<string>();
    for (const l of labels) set.add(l);
    series.set(name, set);
  };
  for (const s of scrape.samples) add(s.name, Object.keys(s.labels));
  // A histogram family without observations yet (GC) still has its series once it observes.
  for (const [family, type] of scrape.types) {
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) add(`${family}${suffix}`, suffix === '_bucket' ? ['le'] : []);
    else add(family, []);
  }
  // prom-client labels GC durations by kind.
  add('nodejs_gc_duration_seconds_sum', ['kind']);
  return series;
}

type Panel = Record<string, any>;
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Record<string, any>;
const panels = (dashboard['panels'] as Panel[]).flatMap((p) => [p, ...((p['panels'] as Panel[] | undefined) ?? [])]);

test('the dashboard is valid Grafana dashboard JSON', () => {
  assert.equal(dashboard['uid'], 'envoy-injector');
  assert.equal(typeof dashboard['title'], 'string');
  assert.ok(Number.isInteger(dashboard['schemaVersion']) && dashboard['schemaVersion'] >= 36);
  const variables = dashboard['templating']['list'] as Record<string, any>[];
  const datasource = variables.find((v) => v['type'] === 'datasource');
  assert.equal(datasource?.['query'], 'prometheus');
  const ids = panels.map((p) => p['id']);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of panels) {
    const { x, y, w, h } = p['gridPos'];
    assert.ok([x, y, w, h].every(Number.isInteger) && x >= 0 && w > 0 && h > 0 && x + w <= 24, `${p['title']}: gridPos fits 24 columns`);
    if (p['type'] === 'row') continue;
    assert.ok(['stat', 'timeseries', 'table'].includes(p['type']), `${p['title']}: a known panel type`);
    assert.equal(p['datasource']['uid'], '${datasource}', `${p['title']}: uses the datasource variable`);
    assert.ok(p['targets'].length > 0, `${p['title']}: has queries`);
    const refIds = p['targets'].map((t: Panel) => t['refId']);
    assert.equal(new Set(refIds).size, refIds.length, `${p['title']}: refIds are unique`);
  }
  // Panels do not overlap.
  const cells = new Set<string>();
  for (const p of panels) {
    const { x, y, w, h } = p['gridPos'];
    for (let i = x; i < x + w; i++) for (let j = y; j < y + h; j++) {
      assert.ok(!cells.has(`${i},${j}`), `${p['title']} overlaps another panel`);
      cells.add(`${i},${j}`);
    }
  }
});

test('every panel query names only metrics and labels /metrics exposes', async () => {
  const series = await exposedSeries();
  const used = new Set<string>();
  const queries = [
    ...panels.flatMap((p) => (p['targets'] ?? []).map((t: Panel) => ({ where: p['title'] as string, expr: t['expr'] as string }))),
    ...(dashboard['templating']['list'] as Panel[])
      .filter((v) => v['type'] === 'query')
      .map((v) => ({ where: `variable ${v['name']}`, expr: (v['definition'] as string).replace(/^label_values\((\w+), (\w+)\)$/, '$1{$2=~".+"}') })),
  ];
  assert.ok(queries.length >= 20);
  for (const { where, expr } of queries) {
    const { selectors, grouping } = readPromql(expr);
    assert.ok(selectors.length > 0, `${where}: ${expr} selects a metric`);
    const available = new Set<string>(TARGET_LABELS);
    for (const { metric, labels } of selectors) {
      const known = series.get(metric);
      assert.ok(known, `${where}: ${metric} is not exposed at /metrics`);
      used.add(metric);
      for (const label of labels) assert.ok(known.has(label) || TARGET_LABELS.has(label), `${where}: ${metric} has no label ${label}`);
      for (const label of known) available.add(label);
    }
    for (const label of grouping) assert.ok(available.has(label), `${where}: no metric of ${expr} has the label ${label}`);
  }
  // Every injector metric is on the dashboard.
  for (const name of series.keys()) {
    if (!name.startsWith('envoy_injector_')) continue;
    const family = name.replace(/_(bucket|sum|count)$/, '');
    assert.ok([...used].some((u) => u === name || u.replace(/_(bucket|sum|count)$/, '') === family), `${name} is on the dashboard`);
  }
});

test('the PromQL reader finds metrics, matcher labels and grouping labels', () => {
  const read = readPromql('histogram_quantile(0.99, sum by (le, result) (rate(a_bucket{instance=~"$instance",x!="y"}[$__rate_interval]))) / on(job) b - time() > 0');
  assert.deepEqual(read.selectors, [
    { metric: 'a_bucket', labels: ['instance', 'x'] },
    { metric: 'b', labels: [] },
  ]);
  assert.deepEqual(read.grouping, ['le', 'result', 'job']);
});
