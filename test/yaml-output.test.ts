// The CLI's YAML output is read back exactly (SPEC.md §9: YAML out that `kubectl apply -f -`
// accepts): a table of hostile strings — what YAML 1.1 or 1.2 would read as a number, a boolean or
// null, and characters YAML readers do not take raw — goes through `inject` and comes back as the
// same strings under a YAML 1.1 reading, a 1.2 reading, and kubectl's own (Go) reader.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { mustBeQuoted, stringifyQuoted } from '../src/cli/documents.ts';
import { injectDocuments } from '../src/cli/inject.ts';
import { testConfig, testRuntime } from './support/config.ts';

/** Strings no plain scalar may carry unquoted, each with why. */
const HOSTILE: readonly (readonly [string, string])[] = [
  ['0o17', 'octal in YAML 1.2 (kubectl 1.32 reads a number)'],
  ['0O17', "octal for Go's integer parser"],
  ['-0o7', 'signed octal'],
  ['0x1F', 'hexadecimal'],
  ['0X1F', "hexadecimal for Go's integer parser"],
  ['0b1', 'binary in YAML 1.1'],
  ['0B1', "binary for Go's integer parser"],
  ['1e3', 'float in YAML 1.2'],
  ['1E3', 'float in YAML 1.2'],
  ['1.0e+3', 'float in YAML 1.1'],
  ['12e03', 'float'],
  ['.inf', 'infinity'],
  ['-.Inf', 'negative infinity'],
  ['.NaN', 'not a number'],
  ['1_000', 'YAML 1.1 integer with separators'],
  ['1__0', 'YAML 1.1 integer with separators'],
  ['0017', 'YAML 1.1 octal'],
  ['08', 'a leading zero'],
  ['+1', 'a signed integer'],
  ['-0', 'negative zero'],
  ['1.', 'a float'],
  ['.5', 'a float'],
  ['1:20', 'YAML 1.1 sexagesimal'],
  ['190:20:30', 'YAML 1.1 sexagesimal'],
  ['1:20.5', 'YAML 1.1 sexagesimal float'],
  ['yes', 'YAML 1.1 boolean'],
  ['Yes', 'YAML 1.1 boolean'],
  ['no', 'YAML 1.1 boolean'],
  ['on', 'YAML 1.1 boolean'],
  ['OFF', 'YAML 1.1 boolean'],
  ['y', 'YAML 1.1 boolean'],
  ['N', 'YAML 1.1 boolean'],
  ['true', 'boolean'],
  ['False', 'boolean'],
  ['~', 'null'],
  ['null', 'null'],
  ['NULL', 'null'],
  ['', 'the empty string (null when plain)'],
  ['2001-12-14', 'YAML 1.1 timestamp'],
  ['2001-12-14T21:59:43.10-05:00', 'YAML 1.1 timestamp'],
  ['=', 'YAML 1.1 value key'],
  ['<<', 'YAML 1.1 merge key'],
  ['\u0085x', 'NEL: a line break in YAML 1.1'],
  ['a\u2028b', 'line separator: a line break in YAML 1.1'],
  ['a\u2029b', 'paragraph separator: a line break in YAML 1.1'],
  ['\u0080', 'a C1 control'],
  ['x\u009f', 'a C1 control'],
  ['a\u007fb', 'DEL'],
  ['x\ufeffy', 'a byte order mark inside a scalar'],
  ['\u0000', 'NUL'],
  ['\u001b[31mred', 'an escape sequence'],
  ['a\tb', 'a tab'],
  ['a\nb', 'a line feed'],
  [' x', 'a leading space'],
  ['x ', 'a trailing space'],
  ['- a', 'a sequence indicator'],
  ['#x', 'a comment indicator'],
  ['x #y', 'a comment after a space'],
  ['x: y', 'a mapping indicator'],
  ['@x', 'a reserved indicator'],
  ['`x', 'a reserved indicator'],
  ['!x', 'a tag'],
  ['&a', 'an anchor'],
  ['*a', 'an alias'],
  ['%x', 'a directive indicator'],
  ['{x}', 'a flow mapping'],
  ['[x]', 'a flow sequence'],
  ['?', 'a key indicator'],
  ['|', 'a literal block indicator'],
  ["'", 'a single quote'],
  ['"', 'a double quote'],
  ['null ', 'null with a trailing space'],
  ['Yes please', 'a boolean word first'],
  ['é日本', 'non-ASCII text'],
];

/** Keys a pod may carry (annotation and label keys) that YAML 1.1 would read as something else. */
const HOSTILE_KEYS = ['on', 'yes', 'y', 'NO', 'null', '0o17', '1_000', '1e3'];

const q = (text: string) => JSON.stringify(text);

/** A pod that carries every hostile string in its annotations, an env var and an argument. */
function hostilePodYaml(): string {
  const lines = ['apiVersion: v1', 'kind: Pod', 'metadata:', '  name: hostile', '  annotations:'];
  HOSTILE.forEach(([value], i) => lines.push(`    example.com/a${i}: ${q(value)}`));
  for (const key of HOSTILE_KEYS) lines.push(`    ${q(key)}: ${q(key)}`);
  lines.push('  labels:');
  for (const key of HOSTILE_KEYS) lines.push(`    ${q(key)}: ${q(key)}`);
  lines.push('spec:', '  containers:', '    - name: app', '      image: nginx', '      args:');
  for (const [value] of HOSTILE) lines.push(`        - ${q(value)}`);
  lines.push('      env:');
  HOSTILE.forEach(([value], i) => lines.push(`        - name: V${i}`, `          value: ${q(value)}`));
  return `${lines.join('\n')}\n`;
}

/** What the hostile strings are, read back from a pod document. */
function hostileStrings(pod: any): { annotations: string[]; keys: string[]; labelKeys: string[]; args: string[]; env: string[] } {
  const app = pod.spec.containers.find((c: any) => c.name === 'app');
  return {
    annotations: HOSTILE.map((_, i) => pod.metadata.annotations[`example.com/a${i}`]),
    keys: HOSTILE_KEYS.map((key) => pod.metadata.annotations[key]),
    labelKeys: HOSTILE_KEYS.map((key) => pod.metadata.labels[key]),
    args: app.args,
    env: HOSTILE.map((_, i) => app.env.find((e: any) => e.name === `V${i}`)?.value),
  };
}

const EXPECTED = {
  annotations: HOSTILE.map(([v]) => v),
  keys: HOSTILE_KEYS,
  labelKeys: HOSTILE_KEYS,
  args: HOSTILE.map(([v]) => v),
  env: HOSTILE.map(([v]) => v),
};

function injected(): string {
  const { output, reports } = injectDocuments(hostilePodYaml(), 'hostile.yaml', testConfig(), testRuntime, 'default');
  assert.equal(reports[0]?.result.decision.action, 'inject', JSON.stringify(reports[0]?.result.decision.reasons));
  return output;
}

test('inject: hostile strings come back as the same strings under YAML 1.1 and 1.2 readings', { timeout: 60_000 }, () => {
  const output = injected();
  // Nothing a YAML reader refuses or splits is left raw.
  assert.doesNotMatch(output, /[\u007f-\u009f\u2028\u2029\ufeff]/);
  for (const version of ['1.1', '1.2'] as const) {
    const [doc] = parseAllDocuments(output, { version });
    assert.deepEqual(doc?.errors, [], version);
    assert.deepEqual(hostileStrings(doc?.toJS()), EXPECTED, `YAML ${version}`);
  }
  // The output of a document that was not changed stays as written.
  const passed = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  # a comment\n  k: v\n  n: "0o17"\n';
  assert.equal(injectDocuments(passed, 'c.yaml', testConfig(), testRuntime, 'default').output, passed);
});

test('inject: hostile strings come back the same through kubectl\'s own reader', { timeout: 60_000 }, (t) => {
  const kubectl = process.env['KUBECTL'] ?? 'kubectl';
  const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-yaml-'));
  try {
    writeFileSync(join(dir, 'pod.yaml'), injected());
    // `annotate --local` reads the file as `kubectl apply -f` does (YAML to JSON in Go, offline)
    // and prints the object as JSON: a string kubectl took for a number fails the decode of the
    // Pod, and a folded or dropped character shows in the JSON.
    const run = spawnSync(kubectl, ['annotate', '--local', '-f', join(dir, 'pod.yaml'), 'example.com/probe=1', '-o', 'json'], {
      encoding: 'utf8',
      timeout: 50_000,
      env: { ...process.env, KUBECONFIG: join(dir, 'no-kubeconfig') },
    });
    if (run.error !== undefined && (run.error as NodeJS.ErrnoException).code === 'ENOENT') {
      // .ci/run installs kubectl; a developer machine without it says so rather than passing.
      t.skip(`${kubectl} is not installed: kubectl's reading is not checked (the YAML 1.1/1.2 readings are)`);
      return;
    }
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(hostileStrings(JSON.parse(run.stdout)), EXPECTED);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mustBeQuoted: what some reading would take for another type, or mangle', () => {
  // Syntax the printer quotes by itself (indicators, spaces at the ends, `: `, ` #`), and two
  // strings that are strings as written in every reading: in the table for the round trip.
  const printerQuotes = new Set(['- a', '#x', 'x #y', 'x: y', '@x', '`x', '!x', '&a', '*a', '%x', '{x}', '[x]', '?', '|', "'", '"', ' x', 'x ', 'null ', 'Yes please', 'é日本']);
  for (const [value, why] of HOSTILE) assert.equal(mustBeQuoted(value), !printerQuotes.has(value), `${q(value)}: ${why}`);
  for (const value of ['nginx', 'envoyproxy/envoy:v1.39.6', 'web-7d9c', 'app.kubernetes.io/name', 'IfNotPresent', 'Infinity', 'NaN', 'yesterday', 'on-call', 'a b']) {
    assert.equal(mustBeQuoted(value), false, value);
    assert.equal(parse(`v: ${value}`, { version: '1.1' }).v, value, `${value} (1.1)`);
    assert.equal(parse(`v: ${value}`, { version: '1.2' }).v, value, `${value} (1.2)`);
  }
});

test('bootstrap -o yaml: the same quoting', () => {
  const value = Object.fromEntries(HOSTILE.map(([v], i) => [`k${i}`, v]));
  const text = stringifyQuoted({ labels: value, list: HOSTILE.map(([v]) => v) });
  assert.doesNotMatch(text, /[\u007f-\u009f\u2028\u2029\ufeff]/);
  for (const version of ['1.1', '1.2'] as const) assert.deepEqual(parse(text, { version }), { labels: value, list: HOSTILE.map(([v]) => v) }, version);
});
