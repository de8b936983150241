// `explain` golden tests: every corpus file (test/testdata/corpus) and every own case
// (test/testdata/explain/cases) is explained as text and as JSON, and compared with
// test/testdata/explain/{corpus,cases}/X.yaml.{txt,json}. A golden that no input gives fails;
// `REFRESH_GOLDEN=1 npm test` rewrites them — review the diff. The JSON is also checked against
// its documented shape, and the real binary must print the same as the goldens.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { explainDocuments, explainReport, formatExplanations, type ExplainOptions, type ExplainReport } from '../src/cli/explain.ts';
import { REASONS, WARNINGS } from '../src/core/reasons.ts';
import { annotationNames } from '../src/core/settings.ts';
import { TEST_VERSION, testConfig, testRuntime } from './support/config.ts';

const DATA = new URL('./testdata/', import.meta.url).pathname;
const GOLDEN = join(DATA, 'explain');
const MAIN = new URL('../src/main.ts', import.meta.url).pathname;
const REFRESH = process.env['REFRESH_GOLDEN'] === '1';
/** How native sidecars resolve with the pinned test config (nativeSidecar: false). */
const NATIVE_SIDECAR_DETAIL = 'nativeSidecar: false';

interface Input {
  /** Directory of the goldens, under test/testdata/explain. */
  readonly group: 'corpus' | 'cases';
  readonly file: string;
  readonly path: string;
}

const yamlFiles = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort() : []);
const INPUTS: readonly Input[] = [
  ...yamlFiles(join(DATA, 'corpus')).map((file) => ({ group: 'corpus' as const, file, path: join(DATA, 'corpus', file) })),
  ...yamlFiles(join(GOLDEN, 'cases')).map((file) => ({ group: 'cases' as const, file, path: join(GOLDEN, 'cases', file) })),
];

/** A case may name its namespace labels in a leading `# namespace-labels: k=v,...` comment. */
function optionsFor(text: string): ExplainOptions {
  const match = /^# namespace-labels: (.*)$/m.exec(text);
  const namespaceLabels =
    match === null
      ? undefined
      : Object.fromEntries((match[1] as string).split(',').map((pair) => pair.trim().split('=') as [string, string]));
  return {
    defaultNamespace: 'default',
    nativeSidecarDetail: NATIVE_SIDECAR_DETAIL,
    ...(namespaceLabels === undefined ? {} : { namespaceLabels }),
  };
}

function explain(input: Input): { text: string; json: string; report: ExplainReport } {
  const source = readFileSync(input.path, 'utf8');
  const options = optionsFor(source);
  const explanations = explainDocuments(source, input.file, testConfig(), testRuntime, options);
  const report = explainReport(explanations, testRuntime, options);
  return { text: formatExplanations(explanations, options), json: `${JSON.stringify(report, null, 2)}\n`, report };
}

function compareGolden(path: string, actual: string): void {
  if (REFRESH) {
    writeFileSync(path, actual);
    return;
  }
  assert.ok(existsSync(path), `${path} is missing; run REFRESH_GOLDEN=1 npm test and review it`);
  assert.equal(actual, readFileSync(path, 'utf8'), `${path} differs`);
}

const isStringArray = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isNumberArray = (v: unknown) => Array.isArray(v) && v.every((x) => Number.isInteger(x));
const keys = (v: unknown) => Object.keys(v as object).sort();

/** Asserts the documented JSON shape (README "explain"), field by field, for a whole report. */
function assertShape(report: ExplainReport, where: string): void {
  const r = report as unknown as Record<string, any>;
  assert.deepEqual(keys(r), ['injector', 'namespaceLabels', 'schemaVersion', 'workloads'], where);
  assert.equal(r['schemaVersion'], 1);
  assert.deepEqual(keys(r['injector']), ['nativeSidecar', 'version']);
  assert.ok(r['namespaceLabels'] === null || typeof r['namespaceLabels'] === 'object');
  for (const w of r['workloads'] as Record<string, any>[]) {
    const at = `${where}: ${w['kind']} ${w['name']}`;
    assert.deepEqual(keys(w), ['action', 'adds', 'document', 'kind', 'name', 'namespace', 'overrides', 'reasons', 'warnings'], at);
    assert.ok(Number.isInteger(w['document']) && w['document'] >= 1, at);
    for (const k of ['kind', 'name', 'namespace']) assert.equal(typeof w[k], 'string', at);
    assert.ok(['inject', 'skip', 'deny'].includes(w['action']), at);
    assert.ok(w['reasons'].length >= 1, `${at}: every decision has a reason`);
    for (const reason of w['reasons']) {
      assert.ok(keys(reason).every((k) => ['code', 'detail', 'fix', 'message', 'sentence'].includes(k)), at);
      assert.ok(reason['code'] in REASONS, at);
      assert.equal(reason['sentence'], REASONS[reason['code'] as keyof typeof REASONS].sentence, at);
      assert.ok(reason['message'].startsWith(reason['sentence']), at);
      assert.equal(REASONS[reason['code'] as keyof typeof REASONS].action, w['action'], `${at}: the reason leads to the action`);
    }
    for (const warning of w['warnings']) {
      assert.deepEqual(keys(warning), ['code', 'message'], at);
      assert.ok(warning['code'] in WARNINGS, at);
    }
    if (w['action'] !== 'inject') {
      assert.equal(w['adds'], null, at);
      assert.deepEqual(w['overrides'], [], at);
      continue;
    }
    for (const o of w['overrides']) {
      assert.deepEqual(keys(o), ['annotation', 'default', 'setting', 'value'], at);
      assert.ok(annotationNames().includes(o['setting']), at);
      assert.equal(o['annotation'], `envoy-injector.io/${o['setting']}`, at);
    }
    const adds = w['adds'];
    assert.deepEqual(keys(adds), ['annotations', 'capture', 'containers', 'initContainers', 'initContainersPosition', 'proxy', 'volumes'], at);
    for (const k of ['annotations', 'containers', 'initContainers', 'volumes']) assert.ok(isStringArray(adds[k]), at);
    assert.ok(['first', 'last'].includes(adds['initContainersPosition']), at);
    assert.deepEqual(
      keys(adds['proxy']),
      ['accessLog', 'ads', 'concurrency', 'configHash', 'drainSeconds', 'holdApplicationUntilProxyStarts', 'image', 'logLevel', 'mounts', 'resources', 'sidecar'],
      at,
    );
    assert.match(adds['proxy']['configHash'], /^[0-9a-f]{16}$/, at);
    assert.ok(['native', 'classic'].includes(adds['proxy']['sidecar']), at);
    const capture = adds['capture'];
    assert.deepEqual(keys(capture), ['bypassGid', 'bypassUid', 'inbound', 'initImage', 'ipv6', 'ipv6Mode', 'outbound', 'proxyPorts'], at);
    assert.ok(['auto', 'true', 'false'].includes(capture['ipv6Mode']), at);
    assert.equal(capture['ipv6'], capture['ipv6Mode'] !== 'false', `${at}: ipv6 keeps its meaning (IPv6 may be captured)`);
    assert.deepEqual(keys(capture['inbound']), ['excludePorts', 'port', 'ports'], at);
    assert.deepEqual(keys(capture['outbound']), ['excludeIpRanges', 'excludePorts', 'ipRanges', 'port'], at);
    assert.ok(capture['inbound']['ports'] === '*' || isNumberArray(capture['inbound']['ports']), at);
    assert.ok(capture['outbound']['ipRanges'] === '*' || isStringArray(capture['outbound']['ipRanges']), at);
  }
}

test('the whole corpus and the own cases are explained', () => {
  assert.ok(INPUTS.filter((i) => i.group === 'corpus').length >= 69, 'every corpus file is an input');
  assert.ok(INPUTS.filter((i) => i.group === 'cases').length >= 3);
});

for (const input of INPUTS) {
  test(`explain golden ${input.group}/${input.file}`, () => {
    const { text, json, report } = explain(input);
    assertShape(report, input.file);
    // Text and JSON say the same: every workload, action and reason code appears in the text.
    for (const w of report.workloads) {
      assert.ok(text.includes(`(namespace ${w.namespace}, document ${w.document}): ${w.action.toUpperCase()}`), `${input.file}: ${w.name}`);
      for (const r of w.reasons) assert.ok(text.includes(`    ${r.code}: ${r.message}`), `${input.file}: ${r.code}`);
    }
    compareGolden(join(GOLDEN, input.group, `${input.file}.txt`), text);
    compareGolden(join(GOLDEN, input.group, `${input.file}.json`), json);
  });
}

test('every explain golden belongs to an input', () => {
  const inputs = new Set(INPUTS.map((i) => `${i.group}/${i.file}`));
  for (const group of ['corpus', 'cases'] as const) {
    for (const file of readdirSync(join(GOLDEN, group))) {
      if (group === 'cases' && file.endsWith('.yaml')) continue;
      const match = /^(.*\.yaml)\.(txt|json)$/.exec(file);
      assert.ok(match, `${group}/${file} is not an explain golden (X.yaml.txt or X.yaml.json)`);
      const owner = `${group}/${match[1]}`;
      if (REFRESH && !inputs.has(owner)) {
        unlinkSync(join(GOLDEN, group, file));
        continue;
      }
      assert.ok(inputs.has(owner), `${group}/${file} has no input; refresh the goldens`);
    }
  }
  for (const entry of readdirSync(GOLDEN)) {
    assert.ok(['corpus', 'cases', 'README.md'].includes(entry), `unexpected ${entry} in test/testdata/explain`);
  }
});

test('the own cases show what the corpus cannot: overrides with defaults, fixes, every warning kind', () => {
  const cases = INPUTS.filter((i) => i.group === 'cases').map(explain);
  const workloads = cases.flatMap((c) => c.report.workloads);
  const migrate = workloads.find((w) => w.name === 'migrate');
  assert.ok(migrate?.adds);
  assert.deepEqual(
    migrate.overrides.map((o) => [o.setting, o.value, o.default]),
    [
      ['include-inbound-ports', '8080', '*'],
      ['exclude-outbound-ip-ranges', '10.0.0.0/8,fd00::/8', ''],
      ['proxy-cpu', '250m', '100m'],
      ['proxy-memory-limit', '512Mi', '1Gi'],
      ['log-level', 'debug', 'warning'],
      ['drain-seconds', '10', '5'],
    ],
  );
  assert.deepEqual(migrate.adds.capture.inbound.ports, [8080]);
  assert.deepEqual(migrate.warnings.map((w) => w.code), ['unknown-annotation', 'proxy-uid-container', 'pod-will-not-complete']);
  assert.match(migrate.warnings[0]?.message ?? '', /Did you mean envoy-injector\.io\/exclude-outbound-ports\?/);
  const broken = workloads.find((w) => w.name === 'broken');
  assert.equal(broken?.action, 'deny');
  assert.deepEqual(broken.reasons.map((r) => r.code), ['invalid-annotations', 'proxy-port-conflict']);
  assert.match(broken.reasons[0]?.message ?? '', /exclude-inbound-ports="80,99999".*concurrency="many".*proxy-cpu="2"/);
  assert.ok(broken.reasons.every((r) => r.fix !== undefined), 'a denial says how to fix it');
  const plain = workloads.find((w) => w.name === 'plain');
  assert.deepEqual(plain?.reasons.map((r) => [r.code, r.fix]), [
    ['namespace-not-enabled', 'kubectl label namespace default envoy-injector.io/inject=enabled, or label the pod (template) envoy-injector.io/inject=enabled.'],
  ]);
  assert.equal(workloads.find((w) => w.name === 'opted-in')?.reasons[0]?.code, 'enabled-by-pod-label');
  assert.deepEqual(workloads.find((w) => w.name === 'system-pod')?.warnings.map((w) => w.code), ['namespace-excluded']);
  const native = workloads.find((w) => w.name === 'native');
  assert.equal(native?.adds?.proxy.sidecar, 'native');
  assert.equal(native.adds.initContainersPosition, 'first');
  assert.deepEqual(native.adds.containers, []);
  assert.equal(workloads.find((w) => w.name === 'unsure')?.warnings[0]?.code, 'invalid-inject-annotation');
  // An injected workload has no fix to offer; the reasons only say why.
  assert.ok(workloads.filter((w) => w.action === 'inject').every((w) => w.reasons.every((r) => r.fix === undefined)));
});

/** Runs the real CLI (through tsx) with the pinned test images, as the goldens were made. */
function cli(args: string[]) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    encoding: 'utf8',
    env: {
      ...process.env,
      HOME: '/nonexistent',
      KUBECONFIG: '',
      ENVOY_INJECTOR_CONFIG: '',
      ENVOY_INJECTOR_NATIVE_SIDECAR: 'false',
      ENVOY_INJECTOR_INIT_IMAGE: `ghcr.io/envoy-injector/envoy-injector:v${TEST_VERSION}`,
    },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('the binary prints exactly the goldens, text and JSON (only the injector version, and so the config hash, differ)', () => {
  const file = join(GOLDEN, 'cases', 'namespace-labels.yaml');
  const args = ['explain', '-f', file, '--namespace-labels', 'team=payments'];
  // The config hash covers the injector version, which the binary reports as the real one.
  const hashless = (text: string) => text.replace(/(config hash: |"configHash": ?")[0-9a-f]{16}/g, '$1HASH');
  const text = cli(args);
  assert.equal(text.code, 0, text.stderr);
  assert.equal(hashless(text.stdout), hashless(readFileSync(`${file}.txt`, 'utf8')));
  const json = cli([...args, '--output', 'json']);
  assert.equal(json.code, 0, json.stderr);
  const golden = JSON.parse(hashless(readFileSync(`${file}.json`, 'utf8'))) as ExplainReport;
  const printed = JSON.parse(hashless(json.stdout)) as ExplainReport;
  assert.notEqual(printed.injector.version, TEST_VERSION);
  assert.deepEqual({ ...printed, injector: { ...printed.injector, version: TEST_VERSION } }, golden);
});

test('explain on the CLI test stream: JSON names every reason by code, with and without namespace labels', () => {
  const mixed = join(DATA, 'cli', 'mixed.yaml');
  const text = cli(['explain', '-f', mixed]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /Deployment web \(namespace default, document 1\): INJECT/);
  assert.match(text.stdout, /DaemonSet agent \(namespace default, document 4\): SKIP \(created unchanged\)\n {2}reasons:\n {4}host-network: /);
  const json = cli(['explain', '-f', mixed, '-o', 'json', '--namespace-labels', 'team=a']);
  assert.equal(json.code, 0, json.stderr);
  const report = JSON.parse(json.stdout) as ExplainReport;
  assert.deepEqual(report.namespaceLabels, { team: 'a' });
  assert.deepEqual(
    report.workloads.map((e) => [e.kind, e.action, e.reasons.map((r) => r.code)]),
    [
      ['Deployment', 'skip', ['namespace-not-enabled']],
      ['CronJob', 'skip', ['namespace-not-enabled']],
      ['DaemonSet', 'skip', ['namespace-not-enabled', 'host-network']],
    ],
  );
  const empty = spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'explain', '-f', '-'], { input: 'kind: Service\n', encoding: 'utf8', env: { ...process.env, ENVOY_INJECTOR_NATIVE_SIDECAR: 'false' } });
  assert.equal(empty.stdout, 'No pods or pod templates found.\n');
});
