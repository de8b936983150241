// Golden tests (Istio style): every `*.yaml` under the DIRS of test/testdata is injected; each
// pod or pod template that is injected is recorded in `X.yaml.injected`, each one skipped or denied
// in `X.yaml.skipped`, with its reasons and warnings. For every injected pod, the returned patch
// applied to the input with fast-json-patch must give the golden pod, and injecting that pod again
// must give no patch. `REFRESH_GOLDEN=1 npm test` rewrites the goldens; review the diff.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments, stringify } from 'yaml';
import { findPodTargets, parseDocuments, describeTarget } from '../src/cli/documents.ts';
import { injectPod } from '../src/core/inject.ts';
import type { InjectorConfig } from '../src/core/types.ts';
import { checkInjectedPod } from './support/check-injected.ts';
import { testConfig, testConfigFromYaml, testRuntime } from './support/config.ts';
import { applyJsonPatch } from './support/patch.ts';

const ROOT = new URL('./testdata/', import.meta.url).pathname;
/** Directories of inputs; a `_config.yaml` in one is the injector config for its inputs. */
const DIRS = ['corpus', 'inject', 'inject-native', 'inject-auto', 'inject-ads', 'inject-ads-tls', 'inject-ipv4-access-log'];
const REFRESH = process.env['REFRESH_GOLDEN'] === '1';

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

const inputs = DIRS.flatMap((dir) =>
  existsSync(join(ROOT, dir))
    ? readdirSync(join(ROOT, dir))
        .filter((f) => f.endsWith('.yaml') && !f.startsWith('_'))
        .sort()
        .map((file) => ({ dir, file }))
    : [],
);

test('the corpus and the injection cases are all present', () => {
  assert.ok(inputs.filter((i) => i.dir === 'corpus').length >= 69, 'every corpus file is an input');
});

for (const { dir, file } of inputs) {
  test(`golden ${dir}/${file}`, () => {
    const config = configFor(dir);
    const path = join(ROOT, dir, file);
    const injected: unknown[] = [];
    const skipped: unknown[] = [];
    parseDocuments(readFileSync(path, 'utf8'), file).forEach((doc, index) => {
      for (const target of findPodTargets(doc.toJS())) {
        const name = describeTarget(target, index);
        const ctx = { kind: 'Pod', operation: 'CREATE', namespace: target.namespace ?? 'default', workloadKind: target.kind };
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
        checkInjectedPod(patched as Record<string, unknown>);
        const again = injectPod(patched, ctx, config, testRuntime);
        assert.equal(again.patch.length, 0, `${name}: injecting the injected pod again gives no patch`);
        assert.equal(again.decision.action, 'skip');
        assert.equal(again.decision.reasons[0]?.code, 'already-injected');
        // The bootstrap again, as a structure: in the pod it is one compact JSON string, unreadable in a diff.
        injected.push({ target: name, reasons, warnings, pod: patched, bootstrap: result.bootstrap });
      }
    });
    compareGolden(`${path}.injected`, injected);
    compareGolden(`${path}.skipped`, skipped);
  });
}

test('every golden file belongs to an input', () => {
  for (const dir of DIRS) {
    if (!existsSync(join(ROOT, dir))) continue;
    for (const file of readdirSync(join(ROOT, dir))) {
      const match = /^(.*\.yaml)\.(injected|skipped)$/.exec(file);
      if (match) assert.ok(existsSync(join(ROOT, dir, match[1] as string)), `${dir}/${file} has no input`);
    }
  }
});
