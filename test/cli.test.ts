// The CLI (SPEC.md §9): inject, explain and bootstrap, called in-process and as the real binary.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { bootstrapFor } from '../src/cli/bootstrap.ts';
import { formatInjectReports, injectDocuments } from '../src/cli/inject.ts';
import { admissionContext } from '../src/core/context.ts';
import { injectPod } from '../src/core/inject.ts';
import { bootstrapOf, checkInjectedPod } from './support/check-injected.ts';
import { testConfig, testRuntime } from './support/config.ts';

const MIXED = new URL('./testdata/cli/mixed.yaml', import.meta.url).pathname;
const MAIN = new URL('../src/main.ts', import.meta.url).pathname;

/** Runs the real CLI (through tsx) and returns its exit code and output. */
function cli(args: string[], input?: string, env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    input,
    encoding: 'utf8',
    env: { ...process.env, HOME: '/nonexistent', KUBECONFIG: '', ENVOY_INJECTOR_NATIVE_SIDECAR: 'false', ...env },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('inject: Deployment and CronJob injected, Service passed through, hostNetwork DaemonSet reported', () => {
  const text = readFileSync(MIXED, 'utf8');
  const { output, reports } = injectDocuments(text, 'mixed.yaml', testConfig(), testRuntime, 'default');
  const docs = parseAllDocuments(output).map((d) => d.toJS() as Record<string, any>);
  assert.deepEqual(
    docs.map((d) => d['kind']),
    ['Deployment', 'CronJob', 'Service', 'DaemonSet'],
  );
  checkInjectedPod(docs[0]!['spec']['template']);
  checkInjectedPod(docs[1]!['spec']['jobTemplate']['spec']['template']);
  // Untouched documents keep their text, comments included.
  // …byte for byte: the Service's document is printed as it was read.
  assert.ok(output.includes('---\napiVersion: v1\nkind: Service\nmetadata: {name: web}   # keep me\nspec: {ports: [{port: 80}]}\n---\n'), output);
  assert.deepEqual(docs[3], parseAllDocuments(text)[3]?.toJS());
  assert.match(output, /^# A Deployment, a CronJob/);

  assert.deepEqual(
    reports.map((r) => [r.kind, r.result.decision.action]),
    [
      ['Deployment', 'inject'],
      ['CronJob', 'inject'],
      ['DaemonSet', 'skip'],
    ],
  );
  const lines = formatInjectReports(reports);
  assert.ok(lines.some((l) => /^DaemonSet agent \(document 4\): skipped: \[host-network\]/.test(l)), lines.join('\n'));
  // A CronJob with a classic sidecar would never complete: the user is told.
  assert.ok(lines.some((l) => /^CronJob tick \(document 2\): warning: \[pod-will-not-complete\]/.test(l)));
});

test('the inject binary: stdout is the stream, stderr the report, exit 0', () => {
  const run = cli(['inject', '-f', MIXED]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(parseAllDocuments(run.stdout).length, 4);
  assert.match(run.stderr, /DaemonSet agent \(document 4\): skipped: \[host-network\]/);
  // Standard input works the same.
  const piped = cli(['inject', '-f', '-'], readFileSync(MIXED, 'utf8'));
  assert.equal(piped.stdout, run.stdout);
});

test('the binary writes all of a large output into a pipe before it exits', () => {
  // Fifteen pods inject to well over the 64 KiB a pipe holds: process.exit() must not cut it off.
  const pods = Array.from({ length: 15 }, (_, i) => `apiVersion: v1\nkind: Pod\nmetadata: {name: p${i}}\nspec:\n  containers: [{name: a, image: nginx}]\n`);
  const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-pipe-'));
  let run: { code: number | null; stdout: string; stderr: string };
  try {
    const file = join(dir, 'pods.yaml');
    writeFileSync(file, pods.join('---\n'));
    // A reader that starts late, like kubectl: the pipe fills up while the injector is done.
    const shell = `"${process.execPath}" --import tsx "${MAIN}" inject -f "${file}" | (sleep 1; cat)`;
    const result = spawnSync('sh', ['-c', shell], {
      encoding: 'utf8',
      env: { ...process.env, HOME: '/nonexistent', KUBECONFIG: '', ENVOY_INJECTOR_NATIVE_SIDECAR: 'false' },
      maxBuffer: 16 * 1024 * 1024,
    });
    run = { code: result.status, stdout: result.stdout, stderr: result.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(run.code, 0, run.stderr);
  assert.ok(Buffer.byteLength(run.stdout) > 64 * 1024, `${Buffer.byteLength(run.stdout)} bytes`);
  const docs = parseAllDocuments(run.stdout);
  assert.equal(docs.length, 15);
  for (const doc of docs) checkInjectedPod(doc.toJS() as Record<string, unknown>);
});

test('a reader that goes away (| head) does not keep the binary from exiting, and gets no stack trace', { timeout: 120_000 }, () => {
  // Far more than a pipe holds: the writes after head has gone fail with EPIPE.
  const pods = Array.from({ length: 60 }, (_, i) => `apiVersion: v1\nkind: Pod\nmetadata: {name: p${i}}\nspec:\n  containers: [{name: a, image: nginx}]\n`);
  const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-pipe-'));
  try {
    const file = join(dir, 'pods.yaml');
    writeFileSync(file, pods.join('---\n'));
    const shell = `"${process.execPath}" --import tsx "${MAIN}" inject -f "${file}" | head -c 100 >/dev/null; echo "injector exit \${PIPESTATUS[0]}" >&2`;
    const result = spawnSync('bash', ['-c', shell], {
      encoding: 'utf8',
      env: { ...process.env, HOME: '/nonexistent', KUBECONFIG: '', ENVOY_INJECTOR_NATIVE_SIDECAR: 'false' },
      // A hang would be the bug: fail the test instead of the run.
      timeout: 100_000,
    });
    assert.equal(result.signal, null, 'the shell was not killed by the timeout');
    assert.match(result.stderr, /injector exit \d+\n$/);
    assert.doesNotMatch(result.stderr, /\n\s+at |EPIPE/, result.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('inject keeps strings that YAML 1.1 (kubectl) would read as booleans or numbers quoted', () => {
  const deployment = [
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata: {name: d}',
    'spec:',
    '  selector: {matchLabels: {app: d}}',
    '  template:',
    '    metadata: {labels: {app: d, legacy: "yes"}}',
    '    spec:',
    '      nodeSelector: {feature: "on"}',
    '      containers:',
    '      - {name: a, image: nginx, env: [{name: A, value: "no"}, {name: B, value: "off"}, {name: C, value: "1_000"}, {name: D, value: "0b11"}, {name: E, value: "y"}]}',
    '',
  ].join('\n');
  const { output } = injectDocuments(deployment, 'd.yaml', testConfig(), testRuntime, 'default');
  // Read back the way kubectl reads it (YAML 1.1): every value is still the string it was.
  const template = (parseAllDocuments(output, { version: '1.1' })[0]?.toJS() as Record<string, any>)['spec']['template'];
  assert.equal(template['metadata']['labels']['legacy'], 'yes');
  assert.equal(template['spec']['nodeSelector']['feature'], 'on');
  const env = (template['spec']['containers'] as Record<string, any>[]).find((c) => c['name'] === 'a')?.['env'];
  assert.deepEqual(
    env.map((e: { value: string }) => e.value),
    ['no', 'off', '1_000', '0b11', 'y'],
  );
});

test('inject: a denied document is reported and the exit code says so', () => {
  const pod = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    envoy-injector.io/drain-seconds: forever\nspec:\n  containers: [{name: a, image: a}]\n';
  const run = cli(['inject', '-f', '-'], pod);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /Pod p \(document 1\): error: \[invalid-annotations\].*drain-seconds="forever"/);
  assert.match(run.stdout, /drain-seconds: forever/, 'the document is passed through unchanged');
});

test('CLI errors are one clear line', () => {
  const missing = cli(['inject', '-f', '/no/such/file.yaml']);
  assert.equal(missing.code, 2);
  assert.equal(missing.stderr, 'envoy-injector: cannot read /no/such/file.yaml: no such file or directory\n');
  const broken = cli(['inject', '-f', '-'], 'kind: Pod\nmetadata: [\n');
  assert.equal(broken.code, 2);
  assert.match(broken.stderr, /^envoy-injector: standard input: document 1 is not valid YAML \(line \d+, column \d+\): .*[^:]\n$/);
  const flag = cli(['inject', '--bogus']);
  assert.equal(flag.code, 2);
  assert.equal(flag.stderr, 'envoy-injector: unknown flag --bogus; see envoy-injector inject --help\n');
  const config = cli(['inject', '-f', MIXED], undefined, { ENVOY_INJECTOR_PROXY_CONCURRENCY: 'many' });
  assert.equal(config.code, 2);
  assert.equal(
    config.stderr,
    'envoy-injector: invalid config proxy.concurrency="many" (from env ENVOY_INJECTOR_PROXY_CONCURRENCY): expected a whole number from 0 to 256\n',
  );
  const noFile = cli(['explain']);
  assert.equal(noFile.code, 2);
  assert.match(noFile.stderr, /explain needs -f FILE/);
});

test('bootstrap: prints exactly the bootstrap the injected pod runs with', () => {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-0', namespace: 'shop', labels: { app: 'web' } },
    spec: { serviceAccountName: 'web', containers: [{ name: 'web', image: 'nginx' }] },
  };
  const injected = injectPod(pod, admissionContext({ namespace: 'shop' }), testConfig(), testRuntime).pod;
  assert.ok(injected);
  const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-cli-'));
  try {
    const file = join(dir, 'pod.json');
    writeFileSync(file, JSON.stringify(injected));
    const fromInjected = bootstrapFor(readFileSync(file, 'utf8'), file, testConfig(), testRuntime, 'default');
    assert.equal(fromInjected.fromInjectedPod, true);
    const node = fromInjected.bootstrap['node'] as Record<string, any>;
    assert.equal(node['id'], 'web-0.shop');
    assert.equal(node['metadata']['SERVICE_ACCOUNT'], 'web');
    assert.deepEqual(fromInjected.unresolved, ['INSTANCE_IPS', 'NODE_NAME']);
    // The same as what the kubelet would hand Envoy, given the same downward-API values.
    const expected = bootstrapOf(injected as Record<string, unknown>);
    assert.deepEqual(Object.keys(fromInjected.bootstrap), Object.keys(expected));
    assert.deepEqual(fromInjected.bootstrap['static_resources'], expected['static_resources']);
    // An uninjected pod is injected first, giving the same bootstrap.
    writeFileSync(file, JSON.stringify(pod));
    const fromPlain = bootstrapFor(readFileSync(file, 'utf8'), file, testConfig(), testRuntime, 'default');
    assert.equal(fromPlain.fromInjectedPod, false);
    assert.deepEqual(fromPlain.bootstrap, fromInjected.bootstrap);
    const run = cli(['bootstrap', '-f', file]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((JSON.parse(run.stdout) as { node: { id: string } }).node.id, 'web-0.shop');
    assert.match(run.stderr, /\$\(INSTANCE_IPS\).*filled in by envoy-init from the running pod/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
