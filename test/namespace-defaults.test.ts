// Namespace defaults (SPEC.md §4b) and where each value comes from: a namespace annotation
// `envoy-injector.io/<setting>` is the default of its pods, the pod's own annotation wins, an invalid
// one denies the pod naming the namespace, and `explain` shows every effective value with its source.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { main, reportError } from '../src/cli.ts';
import { explainDocuments, explainReport, formatExplanations } from '../src/cli/explain.ts';
import { admissionContext } from '../src/core/context.ts';
import { decide } from '../src/core/decide.ts';
import { injectPod } from '../src/core/inject.ts';
import { resolveSettings } from '../src/core/overrides.ts';
import { SETTING } from '../src/core/settings.ts';
import { testConfig, testConfigFromYaml, testRuntime } from './support/config.ts';

const config = testConfig();
const pod = (annotations: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', annotations },
  spec: { containers: [{ name: 'web', image: 'nginx' }] },
});
const ctx = (namespaceAnnotations?: Record<string, string>) => admissionContext({ namespace: 'shop', namespaceAnnotations });

test('each value records its source: the pod, its namespace, the config, or the built-in default', () => {
  const fromFile = testConfigFromYaml('proxy:\n  concurrency: 4\n');
  const result = resolveSettings(
    { 'envoy-injector.io/log-level': 'debug' },
    { name: 'shop', annotations: { 'envoy-injector.io/log-level': 'error', 'envoy-injector.io/drain-seconds': '9' } },
    fromFile,
    testRuntime,
  );
  assert.ok(result.ok);
  const source = (key: string) => result.settings.find((s) => s.setting.key === key)?.source;
  assert.equal(source('proxy.logLevel'), 'pod', "the pod's own annotation wins over its namespace's");
  assert.equal(source('proxy.drainSeconds'), 'namespace');
  assert.equal(source('proxy.concurrency'), 'config');
  assert.equal(source('proxy.image'), 'default');
  assert.equal(result.proxy.logLevel, 'debug');
  assert.equal(result.proxy.drainSeconds, 9);
  assert.equal(result.proxy.concurrency, 4);
  assert.equal(result.settings.length, Object.values(SETTING).filter((s) => 'pod' in s).length, 'one value per pod setting');
});

test('a namespace annotation is the default of its pods, and changes what they are injected with', () => {
  const plain = injectPod(pod(), ctx(), config, testRuntime);
  const defaulted = injectPod(pod(), ctx({ 'envoy-injector.io/exclude-outbound-ports': '5432,6379' }), config, testRuntime);
  assert.equal(defaulted.decision.action, 'inject');
  const args = (r: typeof plain) =>
    ((r.pod?.['spec'] as { initContainers: { args: string[] }[] }).initContainers.at(-1)?.args ?? []).join(' ');
  assert.match(args(defaulted), /--exclude-outbound-ports=5432,6379/);
  assert.match(args(plain), /--exclude-outbound-ports=(\s|$)/);
  assert.notEqual(defaulted.status?.configHash, plain.status?.configHash, 'the config hash covers namespace defaults');
  // The pod's own annotation still wins.
  const own = injectPod(
    pod({ 'envoy-injector.io/exclude-outbound-ports': '3306' }),
    ctx({ 'envoy-injector.io/exclude-outbound-ports': '5432' }),
    config,
    testRuntime,
  );
  assert.match(args(own), /--exclude-outbound-ports=3306(\s|$)/);
});

test('an invalid namespace value denies the pod, naming the namespace annotation; one the pod overrides does not', () => {
  const { decision } = decide(pod(), ctx({ 'envoy-injector.io/log-level': 'verbose', 'envoy-injector.io/concurrency': 'many' }), config, testRuntime);
  assert.equal(decision.action, 'deny');
  assert.equal(decision.reasons[0]?.code, 'invalid-annotations');
  assert.match(decision.reasons[0]?.message ?? '', /envoy-injector\.io\/log-level="verbose" on namespace shop \(accepted: one of trace/);
  assert.match(decision.reasons[0]?.message ?? '', /envoy-injector\.io\/concurrency="many" on namespace shop/);
  // The pod sets its own log level, so the namespace's is not in play.
  const overridden = decide(pod({ 'envoy-injector.io/log-level': 'info' }), ctx({ 'envoy-injector.io/log-level': 'verbose' }), config, testRuntime);
  assert.equal(overridden.decision.action, 'inject');
  // A namespace request above the config's limit names the namespace annotation that raised it.
  const limit = decide(pod(), ctx({ 'envoy-injector.io/proxy-memory': '4Gi' }), config, testRuntime);
  assert.match(limit.decision.reasons[0]?.message ?? '', /proxy-memory="4Gi" on namespace shop \(accepted: a memory request no larger than its limit/);
});

test('explain: namespace defaults appear among the overrides, and --show-settings lists every value with its source', () => {
  const options = {
    defaultNamespace: 'shop',
    nativeSidecarDetail: 'nativeSidecar: false',
    namespaceAnnotations: { 'envoy-injector.io/drain-seconds': '9' },
    showSettings: true,
  };
  const manifest = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations:\n    envoy-injector.io/log-level: debug\nspec:\n  containers: [{ name: web, image: nginx }]\n';
  const explanations = explainDocuments(manifest, 'web.yaml', config, testRuntime, options);
  const [web] = explanations;
  assert.ok(web !== undefined && web.action === 'inject');
  assert.deepEqual(web.overrides, [
    { annotation: 'envoy-injector.io/log-level', setting: 'log-level', value: 'debug', default: 'warning' },
    { annotation: 'envoy-injector.io/drain-seconds', setting: 'drain-seconds', value: '9', default: '5', namespace: 'shop' },
  ]);
  const sources = Object.fromEntries((web.settings ?? []).map((s) => [s.key, s.source]));
  assert.equal(sources['proxy.logLevel'], 'pod');
  assert.equal(sources['proxy.drainSeconds'], 'namespace');
  assert.equal(sources['nativeSidecar'], 'config', 'the test config sets nativeSidecar: false');
  assert.equal(sources['proxy.image'], 'default');
  const text = formatExplanations(explanations, options);
  assert.match(text, /envoy-injector\.io\/drain-seconds: "9" from namespace shop \(default "5"\)/);
  assert.match(text, /\n  settings:\n/);
  assert.match(text, /    proxy drain: 9s \(the namespace's annotation; proxy\.drainSeconds\)/);
  assert.match(text, /    proxy log level: debug \(the pod's annotation; proxy\.logLevel\)/);
  assert.match(text, /    inbound ports captured: all \(default; traffic\.includeInboundPorts\)/);
  const report = explainReport(explanations, testRuntime, options);
  assert.deepEqual(report.namespaceAnnotations, options.namespaceAnnotations);
  // Without the new options the output is what it always was: no settings, no namespaceAnnotations.
  const plain = explainReport(explainDocuments(manifest, 'web.yaml', config, testRuntime, { defaultNamespace: 'shop', nativeSidecarDetail: '' }), testRuntime, { defaultNamespace: 'shop', nativeSidecarDetail: '' });
  assert.equal('namespaceAnnotations' in plain, false);
  assert.equal('settings' in (plain.workloads[0] ?? {}), false);
});

test('the CLI takes --namespace-annotation (repeatable, values with commas) and refuses options a command does not read', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-ns-'));
  try {
    const file = join(dir, 'web.yaml');
    writeFileSync(file, 'apiVersion: v1\nkind: Pod\nmetadata: { name: web }\nspec:\n  containers: [{ name: web, image: nginx }]\n');
    const run = async (args: string[]) => {
      let stdout = '';
      let stderr = '';
      const io = { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) } };
      let code: number;
      try {
        code = await main(args, io);
      } catch (error) {
        code = reportError(error, io);
      }
      return { code, stdout, stderr };
    };
    const env = { ENVOY_INJECTOR_NATIVE_SIDECAR: 'false' };
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      const explained = await run([
        'explain', '-f', file, '-o', 'json',
        '--namespace-annotation', 'envoy-injector.io/exclude-inbound-ports=9090,9091',
        '--namespace-annotation', 'envoy-injector.io/log-level=debug',
      ]);
      assert.equal(explained.code, 0, explained.stderr);
      const report = JSON.parse(explained.stdout) as { workloads: { overrides: { setting: string; value: string; namespace?: string }[] }[] };
      assert.deepEqual(
        report.workloads[0]?.overrides.map((o) => [o.setting, o.value, o.namespace]),
        [
          ['exclude-inbound-ports', '9090,9091', 'default'],
          ['log-level', 'debug', 'default'],
        ],
      );
      const injected = await run(['inject', '-f', file, '--namespace-annotation', 'envoy-injector.io/log-level=verbose']);
      assert.equal(injected.code, 1, 'a pod the namespace default makes invalid is denied');
      assert.match(injected.stderr, /log-level="verbose" on namespace default/);
      const refused = await run(['inject', '-f', file, '--namespace-labels', 'a=b']);
      assert.equal(refused.code, 2);
      assert.equal(refused.stderr, 'envoy-injector: inject does not take --namespace-labels (a flag of explain); see envoy-injector inject --help\n');
      const malformed = await run(['explain', '-f', file, '--namespace-annotation', 'log-level']);
      assert.equal(malformed.code, 2);
      assert.match(malformed.stderr, /--namespace-annotation: expected KEY=VALUE, got "log-level"/);
    } finally {
      for (const key of Object.keys(env)) {
        if (saved[key] === undefined) delete process.env[key];
        else process.env[key] = saved[key];
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
