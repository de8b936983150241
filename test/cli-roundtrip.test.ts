// Round trips of the CLI over the whole corpus, read back strictly by kubectl's rules
// (support/kubectl-read.ts): `inject` output, from YAML and from JSON input, is exactly the
// webhook's injection of every pod and pod template and every other document as it was;
// `uninject(inject(x))` gives x back (every document the same; a document without a pod byte for
// byte, in YAML as in JSON); and `inject(uninject(inject(x)))` is `inject(x)`. A fast-check property
// does the same over generated pods.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseAllDocuments, stringify } from 'yaml';
import { findPodTargets } from '../src/cli/documents.ts';
import { injectDocuments } from '../src/cli/inject.ts';
import { outputFormatOf, parseSource, printSources } from '../src/cli/manifests.ts';
import { uninjectSources } from '../src/cli/uninject.ts';
import { admissionContext } from '../src/core/context.ts';
import { injectPod } from '../src/core/inject.ts';
import { legalPod } from './support/arbitrary-pod.ts';
import { testConfig, testRuntime } from './support/config.ts';
import { isJsonStream, readAsKubectl } from './support/kubectl-read.ts';

type Obj = Record<string, any>;

const CORPUS = new URL('./testdata/corpus/', import.meta.url).pathname;
const FILES = readdirSync(CORPUS).filter((f) => f.endsWith('.yaml')).sort();
const config = testConfig();

/** The object with every pod and pod template replaced by what the core's injection makes of it. */
function injectedByCore(object: unknown): unknown {
  const copy = structuredClone(object) as Obj;
  let result: unknown = copy;
  for (const target of findPodTargets(object)) {
    const injected = injectPod(target.pod, admissionContext({ namespace: target.namespace ?? 'default', workloadKind: target.kind }), config, testRuntime).pod;
    if (injected === undefined) continue;
    if (target.path.length === 0) result = structuredClone(injected);
    else {
      let parent: any = copy;
      for (const key of target.path.slice(0, -1)) parent = parent[key];
      parent[target.path[target.path.length - 1] as string] = structuredClone(injected);
    }
  }
  return result;
}

/**
 * The object with the empty (or null) collections uninject may leave out dropped: Kubernetes reads
 * `annotations: {}`, `initContainers: []`, `volumes: null` and their absence alike (omitempty).
 */
function withoutEmpty(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutEmpty);
  if (typeof value !== 'object' || value === null) return value;
  const out: Obj = {};
  for (const [key, child] of Object.entries(value)) {
    const empty = child === null || (Array.isArray(child) && child.length === 0) || (typeof child === 'object' && child !== null && Object.keys(child).length === 0);
    if (empty && ['annotations', 'initContainers', 'volumes', 'metadata'].includes(key)) continue;
    out[key] = withoutEmpty(child);
  }
  // metadata: {annotations: {}} is empty once its annotations are.
  if (out['metadata'] !== undefined && Object.keys(out['metadata']).length === 0) delete out['metadata'];
  return out;
}

/** Runs a CLI command's core on one stream, as the binary does: parse, change, print in its format. */
function run(command: 'inject' | 'uninject', text: string, name: string): string {
  if (command === 'inject') return injectDocuments(text, name, config, testRuntime, 'default').output;
  const sources = [parseSource({ name, text })];
  uninjectSources(sources);
  return printSources(sources, outputFormatOf(sources, undefined));
}

/** Each YAML document's own text (its value's range), for byte comparisons. */
const documentTexts = (text: string) =>
  parseAllDocuments(text, { version: '1.1' })
    .filter((d) => d.toJS() !== null)
    .map((d) => text.slice(d.range[0], d.range[1]));

/** Checks inject, uninject and re-inject of one stream, whose objects are `objects`. */
function checkRoundTrip(text: string, name: string, objects: readonly unknown[]): void {
  const json = isJsonStream(text);
  const injected = run('inject', text, name);
  assert.equal(isJsonStream(injected), json, `${name}: ${json ? 'JSON' : 'YAML'} in, ${json ? 'JSON' : 'YAML'} out`);
  if (!json) assert.ok(!/^\s*\{/m.test(injected.split('\n').find((l) => /^[a-zA-Z]/.test(l)) ?? ''), `${name}: block YAML`);
  const read = readAsKubectl(injected);
  assert.equal(read.length, objects.length, `${name}: every document printed once`);
  read.forEach((object, i) => assert.deepEqual(object, injectedByCore(objects[i]), `${name} document ${i + 1}: the core's injection, the rest as read`));

  const uninjected = run('uninject', injected, name);
  const back = readAsKubectl(uninjected);
  assert.equal(back.length, objects.length);
  back.forEach((object, i) => assert.deepEqual(withoutEmpty(object), withoutEmpty(objects[i]), `${name} document ${i + 1}: uninject(inject(x)) is x`));
  // A document without a pod is printed as it was read, byte for byte.
  if (json) {
    const exact = objects.every((o) => JSON.stringify(withoutEmpty(o)) === JSON.stringify(o));
    if (exact) assert.equal(uninjected, text, `${name}: JSON byte for byte`);
  } else {
    const before = documentTexts(text);
    const after = documentTexts(uninjected);
    objects.forEach((object, i) => {
      if (findPodTargets(object).length === 0) assert.equal(after[i], before[i], `${name} document ${i + 1}: no pod, the same bytes`);
    });
    if (objects.every((o) => findPodTargets(o).length === 0)) assert.equal(injected, text, `${name}: nothing to inject, the same bytes`);
  }
  // uninject | inject gives what inject gave.
  assert.deepEqual(readAsKubectl(run('inject', uninjected, name)), read, `${name}: inject(uninject(inject(x))) is inject(x)`);
}

test('the corpus is here', () => assert.ok(FILES.length >= 69, String(FILES.length)));

for (const file of FILES) {
  test(`round trip, YAML and JSON: ${file}`, () => {
    const text = readFileSync(join(CORPUS, file), 'utf8');
    const objects = readAsKubectl(text);
    checkRoundTrip(text, file, objects);
    // The same objects as a JSON stream (kubectl's indentation), through the JSON path.
    const jsonText = objects.map((o) => `${JSON.stringify(o, null, 4)}\n`).join('');
    checkRoundTrip(jsonText, file.replace(/\.yaml$/, '.json'), objects);
  });
}

test('round trip of the whole corpus as one stream (documents after empty ones, comments between files)', () => {
  // Files joined as `cat a.yaml; echo ---; cat b.yaml` would: a file ending in `---` leaves an
  // empty document before the next file's first.
  const text = FILES.map((file) => {
    const content = readFileSync(join(CORPUS, file), 'utf8');
    return content.endsWith('\n') ? content : `${content}\n`;
  }).join('---\n');
  checkRoundTrip(`---\n---\n${text}`, 'corpus.yaml', readAsKubectl(text));
});

test('property: any generated pod round-trips through inject and uninject, as YAML and as JSON', () => {
  fc.assert(
    fc.property(legalPod, fc.boolean(), (pod, asList) => {
      const object = asList ? { apiVersion: 'v1', kind: 'List', items: [pod, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } }] } : pod;
      const yaml = `# generated\n${stringify(object, { lineWidth: 0, version: '1.1' })}`;
      checkRoundTrip(yaml, 'generated.yaml', readAsKubectl(yaml));
      checkRoundTrip(`${JSON.stringify(object, null, 2)}\n`, 'generated.json', [object]);
    }),
    { numRuns: 150 },
  );
});
