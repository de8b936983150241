// The command line's conventions (SPEC.md §9, kubectl's): help, flags a command refuses, -f files,
// directories, -R and -, JSON in JSON out and YAML in YAML out, -o, the exit code table, one-line
// errors for broken input, and the explicit offline mode (--cluster, --native-sidecar) with no
// kubeconfig read without --cluster. Most cases run the CLI's entry point in this process; the
// ones about the process (a bare command, the kubeconfig never opened) run the real binary.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { EXIT_CODES, globalHelp, main, reportError } from '../src/cli.ts';
import { TEST_VERSION } from './support/config.ts';
import { nodeObject } from './support/fake-apiserver-cluster.ts';
import { startFakeApiServer } from './support/fake-apiserver.ts';
import { readAsKubectl } from './support/kubectl-read.ts';

type Obj = Record<string, any>;

const MAIN = new URL('../src/main.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The environment of every run: the pinned test images, no cluster, no config file. */
const ENV = {
  HOME: '/nonexistent',
  KUBECONFIG: '',
  ENVOY_INJECTOR_CONFIG: '',
  ENVOY_INJECTOR_INIT_IMAGE: `ghcr.io/envoy-injector/envoy-injector:v${TEST_VERSION}`,
};
for (const [key, value] of Object.entries(ENV)) process.env[key] = value;
delete process.env['ENVOY_INJECTOR_NATIVE_SIDECAR'];

/** Runs the CLI's entry point in this process, as main.ts does, with `stdin` as standard input. */
async function cli(args: string[], stdin = '') {
  let stdout = '';
  let stderr = '';
  const io = {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    readStdin: () => stdin,
  };
  const code = await main(args, io).catch((error: unknown) => reportError(error, io));
  return { code, stdout, stderr };
}

/** Runs the real binary (through tsx) with `env` added; resolves when it exits (killed after 60 s). */
function binary(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function write(name: string, content: string): string {
  const path = join(dir, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, content);
  return path;
}

const pod = (name: string, extra: Obj = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, ...extra['metadata'] },
  spec: { containers: [{ name: 'app', image: 'nginx' }], ...extra['spec'] },
});
const podYaml = (name: string) => `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\nspec:\n  containers:\n    - name: app\n      image: nginx\n`;
const names = (objects: unknown[]) => objects.map((o) => (o as Obj)['metadata']['name']);
const injected = (object: unknown) => (object as Obj)['metadata']['annotations']?.['envoy-injector.io/status'] !== undefined;

test('a bare envoy-injector prints the help and exits 0, as kubectl does; the server is `serve`', async () => {
  const bare = await binary([]);
  assert.equal(bare.code, 0, bare.stderr);
  assert.equal(bare.stdout, globalHelp());
  assert.match(bare.stdout, /^ {2}serve {10}Run the admission webhook/m);
  for (const args of [['--help'], ['-h'], ['help']]) assert.equal((await cli(args)).stdout, globalHelp());
  // The help ends with the one table of exit codes every command follows.
  for (const { code, meaning } of EXIT_CODES) assert.ok(bare.stdout.includes(`  ${code}  ${meaning}`));
  const flagFirst = await cli(['-c', 'config.yaml']);
  assert.equal(flagFirst.code, 2);
  assert.equal(flagFirst.stderr, 'envoy-injector: expected a command before -c (the webhook is "envoy-injector serve"); see envoy-injector --help\n');
  const typo = await cli(['injct', '-f', 'x']);
  assert.equal(typo.code, 2);
  assert.equal(typo.stderr, 'envoy-injector: unknown command "injct" (did you mean inject?); see envoy-injector --help\n');
});

test("COMMAND --help shows that command's own flags, and every command refuses the others", async () => {
  const own: Record<string, string[]> = {
    inject: ['--file', '--recursive', '--output', '--namespace-annotation', '--cluster', '--native-sidecar', '--kubeconfig', '--context', '--config', '--namespace'],
    uninject: ['--file', '--recursive', '--output'],
    explain: ['--namespace-labels', '--show-settings', '--cluster', '--native-sidecar'],
    bootstrap: ['--output', '--cluster', '--native-sidecar'],
    serve: ['--config'],
    check: ['--kubeconfig', '--context', '--secret', '--output'],
    certs: ['--out', '--dns-name', '--new-ca'],
  };
  const notOwn: Record<string, string[]> = {
    inject: ['--show-settings', '--namespace-labels', '--secret'],
    uninject: ['--config', '--cluster', '--namespace', '--native-sidecar'],
    explain: ['--secret'],
    bootstrap: ['--namespace-labels', '--show-settings'],
    serve: ['--file', '--output'],
  };
  for (const [command, flags] of Object.entries(own)) {
    const help = await cli([command, '--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, new RegExp(`^Usage: envoy-injector ${command}`));
    for (const flag of flags) assert.ok(help.stdout.includes(flag), `${command} --help lists ${flag}`);
    for (const flag of notOwn[command] ?? []) {
      assert.ok(!help.stdout.includes(`${flag} `) && !help.stdout.includes(`${flag}\n`), `${command} --help does not list ${flag}`);
      const refused = await cli([command, flag, ...(flag === '--show-settings' || flag === '--cluster' ? [] : ['x'])]);
      assert.equal(refused.code, 2, `${command} ${flag}`);
      assert.match(refused.stderr, new RegExp(`^envoy-injector: (${command} does not take ${flag} \\(a flag of [a-z, ]+\\)|unknown flag ${flag}); see envoy-injector ${command} --help\\n$`));
    }
  }
  assert.equal((await cli(['help', 'inject'])).stdout, (await cli(['inject', '--help'])).stdout);
  assert.match((await binary(['init-iptables', '--help'])).stdout, /^Usage: envoy-injector init-iptables/);
});

test('bad flags are one line and exit 2: unknown, a missing value, given twice, a value not accepted, an argument', async () => {
  const file = write('bad-flags/pod.yaml', podYaml('p'));
  const cases: [string[], string][] = [
    [['inject', '-f', file, '--ouput', 'json'], 'unknown flag --ouput (did you mean --output?); see envoy-injector inject --help'],
    [['inject', '-f'], '-f needs a value (-f FILE|DIR|-); see envoy-injector inject --help'],
    [['inject', '-f', '--recursive'], '-f needs a value (-f FILE|DIR|-); see envoy-injector inject --help'],
    [['inject', '-f', file, '-o', 'json', '-o', 'yaml'], '-o given twice; see envoy-injector inject --help'],
    [['inject', '-f', file, '-o', 'xml'], '-o must be one of json, yaml, not "xml"'],
    [['explain', '-f', file, '--output=yaml'], '--output must be one of text, json, not "yaml"'],
    [['inject', '-f', file, '--native-sidecar=maybe'], '--native-sidecar must be one of true, false, not "maybe"'],
    [['inject', file], `inject takes no argument ${JSON.stringify(file)} (input files go after -f); see envoy-injector inject --help`],
    [['inject', '-f', file, '--recursive=yes'], '--recursive takes no value; see envoy-injector inject --help'],
    [['inject'], 'inject needs -f FILE, a directory or - (standard input); see envoy-injector inject --help'],
    [['uninject'], 'uninject needs -f FILE, a directory or - (standard input); see envoy-injector uninject --help'],
    [['inject', '-f', file, '--cluster', '--native-sidecar', 'true'], '--native-sidecar and --cluster exclude each other: --cluster asks the cluster what --native-sidecar would assume'],
    [['inject', '-f', file, '--kubeconfig', file], '--kubeconfig is only read with --cluster'],
    [['explain', '-f', file, '--context', 'prod'], '--context is only read with --cluster'],
    [['inject', '-f', '-', '-f', '-'], '-f - (standard input) can be given once'],
    [['inject', '-f', 'https://example.com/pod.yaml'], '-f https://example.com/pod.yaml: URLs are not fetched; download the manifest first (curl -sL URL | envoy-injector COMMAND -f -)'],
  ];
  for (const [args, message] of cases) {
    const run = await cli(args);
    assert.equal(run.code, 2, args.join(' '));
    assert.equal(run.stderr, `envoy-injector: ${message}\n`, args.join(' '));
    assert.equal(run.stdout, '');
  }
  // kubectl's spellings of a value: `-o=json`, `-ojson`, `--output=json`.
  for (const spelling of [['-o=json'], ['-ojson'], ['--output=json'], ['--output', 'json']]) {
    const run = await cli(['inject', '-f', file, ...spelling]);
    assert.equal(run.code, 0, run.stderr);
    assert.ok(injected(JSON.parse(run.stdout)), spelling.join(' '));
  }
});

test('-f is repeatable and takes files, directories (their .json, .yaml, .yml in order; -R for subdirectories) and -', async () => {
  const tree = join(dir, 'tree');
  write('tree/b.yaml', podYaml('b'));
  write('tree/a.yml', podYaml('a'));
  write('tree/c.json', JSON.stringify(pod('c')));
  write('tree/notes.txt', 'not a manifest');
  write('tree/d/e.yaml', podYaml('e'));
  symlinkSync(join(tree, 'b.yaml'), join(tree, 'link.yaml'));
  const flat = await cli(['inject', '-f', tree]);
  assert.equal(flat.code, 0, flat.stderr);
  // A directory is read as kubectl reads it: no EISDIR, its manifests in lexical order.
  assert.deepEqual(names(readAsKubectl(flat.stdout)), ['a', 'b', 'c', 'b']);
  assert.ok(readAsKubectl(flat.stdout).every(injected));
  const recursive = await cli(['inject', '-R', '-f', tree]);
  assert.deepEqual(names(readAsKubectl(recursive.stdout)), ['a', 'b', 'c', 'e', 'b']);
  // Several -f, a file named whatever its extension, and standard input, in the order given.
  const other = write('odd.manifest', podYaml('odd'));
  const several = await cli(['inject', '-f', other, '-f', '-', '-f', join(tree, 'a.yml')], podYaml('stdin'));
  assert.equal(several.code, 0, several.stderr);
  assert.deepEqual(names(readAsKubectl(several.stdout)), ['odd', 'stdin', 'a']);
  // Messages name the file once several are read.
  const badPod = podYaml('bad').replace('  name: bad\n', '  name: bad\n  annotations: {envoy-injector.io/drain-seconds: forever}\n');
  const denied = await cli(['inject', '-f', other, '-f', '-'], badPod);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /^Pod bad \(standard input document 1\): error: \[invalid-annotations\]/m);
  const explained = await cli(['explain', '-f', other, '-f', join(tree, 'c.json'), '-o', 'json']);
  assert.deepEqual(
    (JSON.parse(explained.stdout) as Obj)['workloads'].map((w: Obj) => [w['file'], w['document'], w['name']]),
    [
      [other, 1, 'odd'],
      [join(tree, 'c.json'), 1, 'c'],
    ],
  );
  const empty = write('empty-dir/.keep', '');
  const none = await cli(['inject', '-f', join(empty, '..')]);
  assert.equal(none.code, 2);
  assert.equal(none.stderr, `envoy-injector: ${join(empty, '..')} holds no .json, .yaml, .yml files (add -R to read its subdirectories)\n`);
  const missing = await cli(['inject', '-f', join(dir, 'nope')]);
  assert.equal(missing.code, 2);
  assert.equal(missing.stderr, `envoy-injector: cannot read ${join(dir, 'nope')}: no such file or directory\n`);
});

test('JSON in gives JSON out, YAML in block YAML out; -o json|yaml forces the format; mixed inputs give YAML', async () => {
  const json = write('formats/pod.json', `${JSON.stringify(pod('j'), null, 4)}\n`);
  const yamlFile = write('formats/pod.yaml', podYaml('yam'));
  const fromJson = await cli(['inject', '-f', json]);
  assert.equal(fromJson.code, 0, fromJson.stderr);
  // Plain JSON that jq and kubectl read, with the input's indentation.
  const parsed = JSON.parse(fromJson.stdout) as Obj;
  assert.ok(injected(parsed));
  assert.match(fromJson.stdout, /^\{\n {4}"apiVersion": "v1",\n {4}"kind": "Pod",\n {4}"metadata": \{\n {8}"name": "j",/);
  // A JSON stream of several objects stays one: each object on its own, one after the other.
  const stream = await cli(['inject', '-f', '-'], `${JSON.stringify(pod('s1'))}\n${JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc' } })}\n${JSON.stringify(pod('s2'))}`);
  assert.deepEqual(names(readAsKubectl(stream.stdout)), ['s1', 'svc', 's2']);
  assert.equal(stream.stdout.split('\n')[1], '{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc"}}', 'an untouched object is printed as it was read');
  const fromYaml = await cli(['inject', '-f', yamlFile]);
  assert.ok(!fromYaml.stdout.trimStart().startsWith('{') && injected(parseYaml(fromYaml.stdout)));
  // JSON documents inside a YAML stream are YAML: printed back as block YAML, never half flow.
  const flowDocs = await cli(['inject', '-f', '-'], `---\n${JSON.stringify(pod('f1'))}\n---\n${JSON.stringify(pod('f2'))}\n`);
  assert.equal(flowDocs.code, 0, flowDocs.stderr);
  assert.ok(!/^[ -]*\{ ?"/m.test(flowDocs.stdout), 'no flow mapping of JSON keys left in the output');
  assert.deepEqual(names(readAsKubectl(flowDocs.stdout)), ['f1', 'f2']);
  const forcedJson = await cli(['inject', '-f', yamlFile, '-o', 'json']);
  assert.ok(injected(JSON.parse(forcedJson.stdout)));
  const forcedYaml = await cli(['inject', '-f', json, '-o', 'yaml']);
  assert.ok(!forcedYaml.stdout.startsWith('{') && injected(parseYaml(forcedYaml.stdout)));
  const mixed = await cli(['inject', '-f', json, '-f', yamlFile]);
  assert.ok(!mixed.stdout.startsWith('{'));
  assert.deepEqual(names(readAsKubectl(mixed.stdout)), ['j', 'yam']);
  const mixedJson = await cli(['inject', '-f', json, '-f', yamlFile, '-o', 'json']);
  assert.deepEqual(names(readAsKubectl(mixedJson.stdout)), ['j', 'yam']);
  // uninject follows the same rules.
  const back = await cli(['uninject', '-f', '-'], fromJson.stdout);
  assert.equal(back.stdout, `${JSON.stringify(pod('j'), null, 4)}\n`);
});

test('broken input is one line naming the file, the document and the line, never quoting the source or ending on a colon', async () => {
  const cases: [string, string, RegExp][] = [
    ['broken.yaml', 'kind: Service\n---\nkind: Pod\nmetadata: [\n', /^broken\.yaml: document 2 is not valid YAML \(line 5, column 1\): Flow sequence in block collection must be sufficiently indented and end with a \]$/],
    ['indent.yaml', 'kind: Pod\nmetadata:\n  name: a\n   b: c\n', /^indent\.yaml: document 1 is not valid YAML \(line 3, column 9\): [A-Z][^:]*[^:]$/],
    ['broken.json', '{"kind": "Pod",\n "metadata": {"name": "a",}}\n', /^broken\.json: document 1 is not valid JSON \(line 2, column 27\): expected a member name in double quotes$/],
    ['second.json', '{"kind": "Pod"}\n{"kind": }\n', /^second\.json: document 2 is not valid JSON \(line 2, column 10\): expected a value/],
    // Anchors belong to their document: an alias to another document's is named as such.
    ['alias.yaml', 'kind: ConfigMap\ndata: &shared {a: b}\n---\nkind: Pod\nmetadata: {name: p}\nspec: *shared\n', /^alias\.yaml: document 2 \(line 6\): alias \*shared names no anchor of this document \(anchors do not carry over from one document to the next\)$/],
  ];
  for (const [name, text, message] of cases) {
    const file = write(`broken/${name}`, text);
    for (const command of ['inject', 'uninject', 'explain', 'bootstrap']) {
      const run = await cli([command, '-f', file]);
      assert.equal(run.code, 2, `${command} ${name}: ${run.stderr}`);
      const line = run.stderr.replace(/^envoy-injector: /, '').replace(join(dir, 'broken') + '/', '');
      assert.match(line.trimEnd(), message, `${command} ${name}`);
      assert.equal(run.stderr.split('\n').length, 2, 'one line');
      assert.ok(!run.stderr.includes('unexpected error'));
    }
  }
  // A document that reads `{a: 1}` is flow YAML, not broken JSON.
  const flow = await cli(['explain', '-f', '-'], '{kind: Pod, metadata: {name: flow}, spec: {containers: [{name: a, image: b}]}}\n');
  assert.equal(flow.code, 0, flow.stderr);
  assert.match(flow.stdout, /^Pod flow \(namespace default, document 1\): INJECT/);
});

test('exit codes: 1 for a negative outcome (denied, would be denied, not injected, not uninjected), 2 for usage', async () => {
  const denied = write('exit/denied.yaml', podYaml('d').replace('  name: d\n', '  name: d\n  annotations: {envoy-injector.io/log-level: loud}\n'));
  const skipped = write('exit/skipped.yaml', podYaml('s').replace('spec:\n', 'spec:\n  hostNetwork: true\n'));
  const fine = write('exit/fine.yaml', podYaml('f'));
  const explain = await cli(['explain', '-f', denied]);
  assert.equal(explain.code, 1, 'explain: a workload would be denied');
  assert.match(explain.stdout, /DENY/);
  assert.equal((await cli(['explain', '-f', fine, '-f', skipped])).code, 0, 'explain: injected and skipped are fine');
  assert.equal((await cli(['inject', '-f', denied])).code, 1);
  const bootstrap = await cli(['bootstrap', '-f', skipped]);
  assert.equal(bootstrap.code, 1, 'bootstrap: the pod is skipped, which is an outcome, not a usage error');
  assert.match(bootstrap.stderr, /^envoy-injector: Pod s \(document 1\) would not be injected: \[host-network\]/);
  assert.equal((await cli(['bootstrap', '-f', fine])).code, 0);
  const config = await cli(['inject', '-f', fine, '-c', join(dir, 'no-config.yaml')]);
  assert.equal(config.code, 2);
  assert.match(config.stderr, /^envoy-injector: cannot read config file .*no-config\.yaml: no such file\n$/);
});

test('offline: no cluster is asked and no kubeconfig read without --cluster; --native-sidecar decides', async () => {
  // A kubeconfig that is not even valid YAML, and one whose server accepts connections and never
  // answers: neither costs anything, because neither is opened.
  const garbage = write('kube/garbage', '::: not a kubeconfig :::\n');
  const accepted: Socket[] = [];
  const blackhole = createServer((socket) => accepted.push(socket));
  await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
  try {
    const port = (blackhole.address() as { port: number }).port;
    const hanging = write(
      'kube/hanging',
      `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`,
    );
    const file = write('kube/pod.yaml', podYaml('p'));
    for (const kubeconfig of [garbage, hanging]) {
      for (const args of [['inject', '-f', file], ['explain', '-f', file], ['bootstrap', '-f', file]]) {
        const run = await binary(args, { KUBECONFIG: kubeconfig });
        assert.equal(run.code, 0, `${args[0]} with ${kubeconfig}: ${run.stderr}`);
      }
    }
    assert.equal(accepted.length, 0, 'the cluster was never contacted');
  } finally {
    for (const socket of accepted) socket.destroy();
    await new Promise((resolve) => blackhole.close(resolve));
  }
});

test('--native-sidecar=true|false decides offline; the config\'s own true or false counts; auto is classic offline', async () => {
  const file = write('native/job.yaml', podYaml('j').replace('spec:\n', 'spec:\n  restartPolicy: Never\n'));
  const asks = write('native/asks.yaml', podYaml('a').replace('  name: a\n', '  name: a\n  annotations: {envoy-injector.io/native-sidecar: "true"}\n'));
  const sidecar = (text: string) => {
    const spec = (readAsKubectl(text)[0] as Obj)['spec'];
    return (spec['initContainers'] as Obj[]).some((c) => c['name'] === 'envoy') ? 'native' : 'classic';
  };
  assert.equal(sidecar((await cli(['inject', '-f', file])).stdout), 'classic');
  assert.equal(sidecar((await cli(['inject', '-f', file, '--native-sidecar=true'])).stdout), 'native');
  assert.equal(sidecar((await cli(['inject', '-f', file, '--native-sidecar', 'false'])).stdout), 'classic');
  const config = write('native/config.yaml', 'nativeSidecar: "true"\n');
  assert.equal(sidecar((await cli(['inject', '-f', file, '-c', config])).stdout), 'native');
  assert.equal(sidecar((await cli(['inject', '-f', file, '-c', config, '--native-sidecar=false'])).stdout), 'classic');
  // The explain output says which decided.
  const explained = JSON.parse((await cli(['explain', '-f', file, '-o', 'json'])).stdout) as Obj;
  assert.equal(explained['injector']['nativeSidecar'], 'nativeSidecar: auto, offline: classic (--cluster asks the cluster, --native-sidecar=true decides)');
  const flagged = JSON.parse((await cli(['explain', '-f', file, '-o', 'json', '--native-sidecar=true'])).stdout) as Obj;
  assert.equal(flagged['injector']['nativeSidecar'], '--native-sidecar=true');
  // No cluster was asked: no warning claims anything about one.
  const run = await cli(['inject', '-f', asks]);
  assert.equal(run.code, 0);
  assert.equal(sidecar(run.stdout), 'native', "the pod's annotation asks for it");
  assert.ok(!/cluster/.test(run.stderr), run.stderr);
});

test('--cluster asks the kubeconfig\'s cluster (--kubeconfig, --context), as the webhook does with nativeSidecar: auto', async () => {
  const server130 = await startFakeApiServer({ version: { major: '1', minor: '30', gitVersion: 'v1.30.2' } });
  const server128 = await startFakeApiServer({ version: { major: '1', minor: '28', gitVersion: 'v1.28.9' } });
  const oldNodes = await startFakeApiServer({ version: { major: '1', minor: '30', gitVersion: 'v1.30.2' } });
  try {
    server130.put('nodes', nodeObject('node-1', 'v1.30.2'));
    oldNodes.put('nodes', nodeObject('node-1', 'v1.28.9'));
    const kOld = join(dir, 'kube-old-nodes');
    oldNodes.writeKubeconfig(kOld);
    const k130 = join(dir, 'kube-130');
    const k128 = join(dir, 'kube-128');
    server130.writeKubeconfig(k130);
    server128.writeKubeconfig(k128);
    const file = write('cluster/pod.yaml', podYaml('p'));
    const asks = write('cluster/asks.yaml', podYaml('a').replace('  name: a\n', '  name: a\n  annotations: {envoy-injector.io/native-sidecar: "true"}\n'));
    const native = await cli(['inject', '-f', file, '--cluster', '--kubeconfig', k130]);
    assert.equal(native.code, 0, native.stderr);
    assert.ok(((readAsKubectl(native.stdout)[0] as Obj)['spec']['initContainers'] as Obj[]).some((c) => c['name'] === 'envoy'));
    assert.match(native.stderr, /^note: nativeSidecar: auto \(context [^:]+: API server v1\.30\.2, every kubelet ≥ 1\.29 \(1 node\): native sidecars\)\n/);
    assert.ok(server130.requests.some((r) => r.resource === 'version'));
    // A cluster whose kubelets lack them: classic, and now the warning about the cluster is true.
    const old = await cli(['inject', '-f', asks, '--cluster', '--kubeconfig', kOld]);
    assert.equal(old.code, 0, old.stderr);
    assert.match(old.stderr, /warning: \[native-sidecar-unsupported\] .*this cluster lacks them/);
    // An API server without them would refuse the pod: denied, naming the API server.
    const older = await cli(['inject', '-f', asks, '--cluster', '--kubeconfig', k128]);
    assert.equal(older.code, 1, older.stderr);
    assert.match(older.stderr, /error: \[api-server-lacks-native-sidecars\]/);
    const context = await cli(['explain', '-f', file, '--cluster', '--kubeconfig', k130, '--context', 'nope']);
    assert.equal(context.code, 2);
    assert.equal(context.stderr, 'envoy-injector: --context: the kubeconfig has no context "nope"\n');
    const none = await cli(['bootstrap', '-f', file, '--cluster']);
    assert.equal(none.code, 2);
    assert.equal(none.stderr, 'envoy-injector: no cluster configured: set KUBECONFIG or pass --kubeconfig\n');
  } finally {
    await server130.close();
    await server128.close();
    await oldNodes.close();
  }
});
