// Golden tests (Istio style): every `*.yaml` of test/testdata/corpus and of each directory under
// test/testdata/inject is injected (a directory's `_config.yaml` is the injector config of its
// inputs, its `_namespace.yaml` the Namespace whose annotations are their defaults). Each pod or pod template that is injected is recorded in `X.yaml.injected`, and the
// bootstrap its envoy-init renders from its flags in `X.yaml.bootstrap` — with what only the running
// pod knows (its name, namespace, IPs, node, service account) as `$(VAR)`, and IPv6 as a pod that
// has it; each one skipped or denied in `X.yaml.skipped`, with its reasons and warnings. For every
// injected pod: the returned patch applied to the input with fast-json-patch gives the injected pod,
// and injecting it again gives no patch. Directories are discovered: a new one is picked up, an
// empty one fails. `REFRESH_GOLDEN=1 npm test` rewrites the goldens; review the diff.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments, stringify } from 'yaml';
import { findPodTargets, parseDocuments, describeTarget } from '../src/cli/documents.ts';
import { DOWNWARD_ENV, type PodIdentity } from '../src/core/bootstrap.ts';
import { admissionContext } from '../src/core/context.ts';
import { injectPod } from '../src/core/inject.ts';
import { expectedIpv6, initInputsOf, podOverrideSource, renderBootstrapFiles, unknownFact } from '../src/core/pod-bootstrap.ts';
import { readPod } from '../src/core/pod.ts';
import type { InjectorConfig, JsonObject } from '../src/core/types.ts';
import { checkInjectedPod } from './support/check-injected.ts';
import { testConfig, testConfigFromYaml, testRuntime } from './support/config.ts';
import { assertValidEnvoyMessage } from './support/envoy-proto.ts';
import { applyJsonPatch } from './support/patch.ts';

const ROOT = new URL('./testdata/', import.meta.url).pathname;
const REFRESH = process.env['REFRESH_GOLDEN'] === '1';

/** The golden directories: the corpus, and every directory under inject/. */
const DIRS = [
  'corpus',
  ...readdirSync(join(ROOT, 'inject'))
    .filter((name) => statSync(join(ROOT, 'inject', name)).isDirectory())
    .sort()
    .map((name) => `inject/${name}`),
];

const toYaml = (records: unknown[]): string =>
  records.map((r) => stringify(r, { sortMapEntries: true, lineWidth: 0 })).join('---\n');

function compareGolden(path: string, records: unknown[]): void {
  if (REFRESH) {
    if (records.length > 0) writeFileSync(path, toYaml(records));
    else if (existsSync(path)) unlinkSync(path);
    return;
  }
  if (records.length === 0) {
    assert.ok(!existsSync(path), `${path} exists but no pod of its input gives it; refresh the goldens`);
    return;
  }
  assert.ok(existsSync(path), `${path} is missing; run REFRESH_GOLDEN=1 npm test and review it`);
  // Compare parsed values, then text, so a failure shows a readable diff.
  const expected = parseAllDocuments(readFileSync(path, 'utf8')).map((d) => d.toJS());
  assert.deepEqual(JSON.parse(JSON.stringify(records)), expected, `${path} differs`);
}

function configFor(dir: string): InjectorConfig {
  const file = join(ROOT, dir, '_config.yaml');
  return existsSync(file) ? testConfigFromYaml(readFileSync(file, 'utf8')) : testConfig();
}

/**
 * The namespace annotations of a directory's cases: those of the Namespace in its `_namespace.yaml`
 * (SPEC.md §4b), as the webhook's namespace cache gives them; none without one.
 */
function namespaceAnnotationsFor(dir: string): Record<string, string> | undefined {
  const file = join(ROOT, dir, '_namespace.yaml');
  if (!existsSync(file)) return undefined;
  const namespace = parseAllDocuments(readFileSync(file, 'utf8'))[0]?.toJS() as { metadata?: { annotations?: Record<string, string> } };
  return namespace.metadata?.annotations ?? {};
}

const inputsOf = (dir: string): string[] =>
  readdirSync(join(ROOT, dir))
    .filter((f) => f.endsWith('.yaml') && !f.startsWith('_'))
    .sort();
const inputs = DIRS.flatMap((dir) => inputsOf(dir).map((file) => ({ dir, file })));

test('the corpus and the injection cases are all present, and every golden directory has a case', () => {
  assert.ok(inputs.filter((i) => i.dir === 'corpus').length >= 69, 'every corpus file is an input');
  assert.ok(DIRS.length >= 7, `the inject/ directories are discovered: ${DIRS.join(', ')}`);
  for (const dir of DIRS) assert.ok(inputsOf(dir).length > 0, `${dir} holds no case (a *.yaml input)`);
  const loose = readdirSync(join(ROOT, 'inject')).filter((name) => !statSync(join(ROOT, 'inject', name)).isDirectory());
  assert.deepEqual(loose, [], 'inject/ holds only case directories (a file there would be no one\'s input)');
});

/** The bootstrap the pod's envoy-init renders, with every fact of the running pod as `$(VAR)`. */
function renderedTemplate(pod: JsonObject, overrides: ReadonlyMap<string, string>): ReturnType<typeof renderBootstrapFiles> {
  const read = readPod(pod);
  assert.ok(read.ok);
  const inputs = initInputsOf(read.pod);
  assert.ok(inputs?.ok && inputs.inputs.bootstrap, 'envoy-init renders the bootstrap');
  const facts = Object.fromEntries(DOWNWARD_ENV.map((e) => [e.field, unknownFact(e.name)]));
  const identity = { ...facts, labels: read.pod.labels } as unknown as PodIdentity;
  const { ipv6 } = expectedIpv6(inputs.inputs.proxy.traffic.ipv6, undefined);
  const configMap = inputs.inputs.proxy.bootstrapOverrideConfigMap;
  const podOverride = configMap === null ? undefined : { text: overrideText(overrides, configMap), source: podOverrideSource(configMap) };
  return renderBootstrapFiles({ ...inputs.inputs, bootstrap: inputs.inputs.bootstrap }, identity, ipv6, testRuntime.version, podOverride);
}

/** The `envoy.yaml` of every ConfigMap in an input file: the bootstrap overrides its pods may name. */
function overridesIn(docs: readonly { toJS: () => unknown }[]): Map<string, string> {
  const found = new Map<string, string>();
  for (const doc of docs) {
    const value = doc.toJS() as JsonObject | null;
    const data = value?.['data'] as JsonObject | undefined;
    const name = (value?.['metadata'] as JsonObject | undefined)?.['name'];
    if (value?.['kind'] === 'ConfigMap' && typeof name === 'string' && typeof data?.['envoy.yaml'] === 'string') found.set(name, data['envoy.yaml']);
  }
  return found;
}

function overrideText(overrides: ReadonlyMap<string, string>, configMap: string): string {
  const text = overrides.get(configMap);
  assert.ok(text !== undefined, `the input file holds ConfigMap ${configMap} with key envoy.yaml`);
  return text;
}

function overrideOptions(pod: JsonObject, overrides: ReadonlyMap<string, string>): { overrideText?: string } {
  const read = readPod(pod);
  const inputs = read.ok ? initInputsOf(read.pod) : undefined;
  const configMap = inputs?.ok ? inputs.inputs.proxy.bootstrapOverrideConfigMap : null;
  return configMap === null || configMap === undefined ? {} : { overrideText: overrideText(overrides, configMap) };
}

for (const { dir, file } of inputs) {
  test(`golden ${dir}/${file}`, () => {
    const config = configFor(dir);
    const namespaceAnnotations = namespaceAnnotationsFor(dir);
    const path = join(ROOT, dir, file);
    const injected: unknown[] = [];
    const bootstraps: unknown[] = [];
    const skipped: unknown[] = [];
    const docs = parseDocuments(readFileSync(path, 'utf8'), file);
    const overrides = overridesIn(docs);
    docs.forEach((doc, index) => {
      for (const target of findPodTargets(doc.toJS())) {
        const name = describeTarget(target, index);
        const ctx = admissionContext({ namespace: target.namespace ?? 'default', workloadKind: target.kind, namespaceAnnotations });
        const before = structuredClone(target.pod);
        const result = injectPod(target.pod, ctx, config, testRuntime);
        assert.deepEqual(target.pod, before, `${name}: the core does not modify its input`);
        const warnings = result.warnings.map((w) => ({ code: w.code, message: w.message }));
        const reasons = result.decision.reasons.map((r) => ({ code: r.code, message: r.message }));
        if (result.decision.action !== 'inject') {
          assert.equal(result.patch.length, 0, `${name}: no patch unless injected`);
          skipped.push({ target: name, action: result.decision.action, reasons, warnings });
          continue;
        }
        assert.ok(result.pod, `${name}: an injected pod`);
        const patched = applyJsonPatch(target.pod, result.patch);
        assert.deepEqual(patched, result.pod, `${name}: the patch applied to the input gives the injected pod`);
        checkInjectedPod(patched as Record<string, unknown>, overrideOptions(patched as JsonObject, overrides));
        const again = injectPod(patched, ctx, config, testRuntime);
        assert.equal(again.patch.length, 0, `${name}: injecting the injected pod again gives no patch`);
        assert.equal(again.decision.action, 'skip');
        assert.equal(again.decision.reasons[0]?.code, 'already-injected');
        injected.push({ target: name, reasons, warnings, pod: patched });
        const rendered = renderedTemplate(patched as JsonObject, overrides);
        // The files envoy-init writes for the ADS connection's TLS (file-based SDS), checked as strictly as the bootstrap.
        const sds = Object.fromEntries(rendered.files.filter((f) => f.name.endsWith('.sds.json')).map((f) => [f.name, JSON.parse(f.content) as unknown]));
        for (const content of Object.values(sds)) assertValidEnvoyMessage('envoy.service.discovery.v3.DiscoveryResponse', content);
        bootstraps.push({ target: name, bootstrap: rendered.bootstrap, ...(Object.keys(sds).length > 0 ? { sds } : {}) });
      }
    });
    compareGolden(`${path}.injected`, injected);
    compareGolden(`${path}.bootstrap`, bootstraps);
    compareGolden(`${path}.skipped`, skipped);
  });
}

test('every golden file belongs to an input', () => {
  for (const dir of DIRS) {
    for (const file of readdirSync(join(ROOT, dir))) {
      const match = /^(.*\.yaml)\.(injected|bootstrap|skipped)$/.exec(file);
      if (match) assert.ok(existsSync(join(ROOT, dir, match[1] as string)), `${dir}/${file} has no input`);
    }
  }
});
