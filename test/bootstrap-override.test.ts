// The user's own Envoy configuration (SPEC.md §4a): fragments merged beneath the generated bootstrap
// by envoy-init, refused by name when they clash with the injector's own; `bootstrap --override`
// printing byte for byte what envoy-init writes; the README's worked example (examples/grpc-web).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { main, reportError } from '../src/cli.ts';
import { BOOTSTRAP_FILES, INIT_CONTAINER_NAME } from '../src/constants.ts';
import { admissionContext } from '../src/core/context.ts';
import { injectPod } from '../src/core/inject.ts';
import { initInputsOf } from '../src/core/pod-bootstrap.ts';
import { readPod } from '../src/core/pod.ts';
import type { InjectorConfig, InjectorRuntime } from '../src/core/types.ts';
import { writeBootstrap } from '../src/iptables/bootstrap-writer.ts';
import { InitIptablesError } from '../src/iptables/failures.ts';
import { VERSION } from '../src/version.ts';
import { bootstrapOf } from './support/check-injected.ts';
import { testConfig, testConfigFromYaml } from './support/config.ts';
import { assertBootstrapContract, assertValidBootstrap } from './support/envoy-proto-check.ts';

type Obj = Record<string, any>;
const TIMEOUT = { timeout: 120_000 };
const RUNTIME: InjectorRuntime = { version: VERSION, nativeSidecarSupported: false };
Object.assign(process.env, { HOME: '/nonexistent', KUBECONFIG: '', ENVOY_INJECTOR_NATIVE_SIDECAR: 'false' });

function injected(annotations: Record<string, string> = { 'envoy-injector.io/bootstrap-override': 'web-envoy' }, config: InjectorConfig = testConfig()): Obj {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-0', namespace: 'shop', labels: { app: 'web' }, annotations },
    spec: { containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 8080 }] }] },
  };
  const result = injectPod(pod, admissionContext({ namespace: 'shop' }), config, RUNTIME);
  assert.ok(result.pod, JSON.stringify(result.decision));
  return result.pod as Obj;
}

const listener = (name: string, port: number, extra: Obj = {}): Obj => ({
  name,
  address: { socket_address: { address: '0.0.0.0', port_value: port } },
  filter_chains: [{ filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: name, cluster: 'blackhole' } }] }],
  ...extra,
});
const cluster = (name: string): Obj => ({ name, type: 'STATIC', connect_timeout: '1s' });

/** Each way a fragment clashes with the injector's bootstrap, with what the refusal must name. */
const CLASHES: readonly { name: string; fragment: Obj; refused: RegExp; ads?: boolean }[] = [
  ...['outbound_capture', 'inbound_capture', 'readiness', 'prometheus'].map((name) => ({
    name: `listener named ${name}`,
    fragment: { static_resources: { listeners: [listener(name, 9000)] } },
    refused: new RegExp(`static_resources\\.listeners\\[0\\]\\.name: "${name}" is a listener of the injector`),
  })),
  ...['outbound_passthrough', 'inbound_passthrough', 'blackhole', 'envoy_admin', 'xds_control_plane'].map((name) => ({
    name: `cluster named ${name}`,
    fragment: { static_resources: { clusters: [cluster(name)] } },
    refused: new RegExp(`static_resources\\.clusters\\[0\\]\\.name: "${name}" is a cluster of the injector`),
  })),
  ...[15000, 15001, 15006, 15021, 15090].map((port) => ({
    name: `listener on the proxy's port ${port}`,
    fragment: { static_resources: { listeners: [listener('mine', port)] } },
    refused: new RegExp(`listeners\\[0\\]\\.address\\.socket_address\\.port_value: port ${port} is the proxy's own`),
  })),
  {
    name: "an additional address on the proxy's port",
    fragment: { static_resources: { listeners: [listener('mine', 9000, { additional_addresses: [{ address: { socket_address: { address: '::', port_value: 15090 } } }] })] } },
    refused: /additional_addresses\[0\]\.address\.socket_address\.port_value: port 15090 is the proxy's own/,
  },
  {
    name: 'an admin address the injector would replace',
    fragment: { admin: { address: { socket_address: { address: '0.0.0.0', port_value: 9901 } } } },
    refused: /admin\.address\.socket_address\.port_value: the injector sets it \(to 15000\), which would replace the fragment's 9901/,
  },
  {
    name: 'an admin pipe the injector would clear',
    fragment: { admin: { address: { pipe: { path: '/run/admin.sock' } } } },
    refused: /admin\.address\.pipe: the injector sets socket_address instead, which would drop the fragment's/,
  },
  { name: "the node's id", fragment: { node: { id: 'mine' } }, refused: /node\.id: the injector sets it/ },
  { name: "the node's cluster", fragment: { node: { cluster: 'mine' } }, refused: /node\.cluster: the injector sets it/ },
  { name: 'a node metadata key of the injector', fragment: { node: { metadata: { POD_NAME: 'x' } } }, refused: /node\.metadata\["POD_NAME"\]: the injector sets it/ },
  {
    name: "ADS: a listener source the injector's ADS replaces",
    ads: true,
    fragment: { dynamic_resources: { lds_config: { path_config_source: { path: '/etc/lds.yaml' } } } },
    refused: /dynamic_resources\.lds_config\.path_config_source: the injector sets ads instead/,
  },
  { name: 'an unknown field', fragment: { static_resources: { listner: [] } }, refused: /static_resources\.listner: unknown field "listner" .*did you mean "listeners"/ },
  { name: 'a wrong type', fragment: { stats_flush_interval: 5 }, refused: /stats_flush_interval: expected a duration/ },
];

for (const c of CLASHES) {
  test(`a fragment with ${c.name} is refused by name, at the config check and by envoy-init`, () => {
    const ads = c.ads === true ? 'proxy: {ads: {address: "xds.cp:18000"}}' : '';
    // As the cluster-wide fragment: refused when the config loads (static checks), or when merged.
    const config = testConfigFromYaml(ads || '{}');
    const pod = injected(undefined, config);
    assert.throws(() => bootstrapOf(pod, { overrideText: JSON.stringify(c.fragment) }), c.refused);
  });
}

test('names defined by both the cluster-wide and the pod fragment are refused', () => {
  const config = testConfigFromYaml(`proxy: {bootstrapOverride: {static_resources: {clusters: [{name: collector, type: STATIC, connect_timeout: 1s}]}}}`);
  const pod = injected(undefined, config);
  assert.throws(() => bootstrapOf(pod, { overrideText: 'static_resources: {clusters: [{name: collector}]}' }), /static_resources\.clusters: "collector" is defined by more than one fragment/);
});

test("the cluster-wide fragment is checked when the config loads: clashes, shape and size are refused naming it", () => {
  assert.throws(
    () => testConfigFromYaml('proxy: {bootstrapOverride: {static_resources: {listeners: [{name: readiness}]}}}'),
    /proxy\.bootstrapOverride.*"readiness" is a listener of the injector/,
  );
  assert.throws(() => testConfigFromYaml('proxy: {bootstrapOverride: [1]}'), /proxy\.bootstrapOverride.*a mapping/);
  assert.throws(
    () => testConfigFromYaml('{}', { ENVOY_INJECTOR_PROXY_BOOTSTRAP_OVERRIDE: '{"admn": {}}' }),
    /unknown field "admn".*did you mean "admin"/,
  );
  const big = { layered_runtime: { layers: [{ name: 'static', static_layer: { blob: 'x'.repeat(17_000) } }] } };
  assert.throws(() => testConfigFromYaml('{}', { ENVOY_INJECTOR_PROXY_BOOTSTRAP_OVERRIDE: JSON.stringify(big) }), /at most 16384 bytes of JSON .* got 17/);
});

test("what a fragment adds and the injector leaves alone is kept: locality, its own metadata, the admin's access log", () => {
  const fragment = {
    node: { locality: { zone: 'eu-west-1a' }, metadata: { team: 'payments' } },
    admin: { access_log: [{ name: 'envoy.access_loggers.stdout', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog' } }] },
    static_resources: { listeners: [listener('mine', 9000)], clusters: [cluster('collector')] },
  };
  const bootstrap = bootstrapOf(injected(), { overrideText: JSON.stringify(fragment) });
  assertValidBootstrap(bootstrap);
  assertBootstrapContract(bootstrap);
  assert.deepEqual(bootstrap['node']['locality'], { zone: 'eu-west-1a' });
  assert.equal(bootstrap['node']['metadata']['team'], 'payments');
  assert.equal(bootstrap['node']['metadata']['POD_NAME'], 'pod-0', "the injector's metadata on top");
  assert.equal(bootstrap['admin']['access_log'].length, 1);
  assert.deepEqual(bootstrap['admin']['address'], { socket_address: { address: '127.0.0.1', port_value: 15000 } });
  const names = bootstrap['static_resources']['listeners'].map((l: Obj) => l['name']);
  assert.deepEqual(names, ['mine', 'outbound_capture', 'inbound_capture', 'readiness', 'prometheus'], "appended: the fragment's first, the injector's after");
});

function scratch(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'ei-override-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const io = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } };
  const code = await main(args, io).catch((error: unknown) => reportError(error, io));
  return { code, stdout, stderr };
}

const ENV = { POD_NAME: 'web-0', POD_NAMESPACE: 'shop', INSTANCE_IPS: '10.0.0.7,fd00::7', NODE_NAME: 'node-7', SERVICE_ACCOUNT: 'default' };

/** Renders as envoy-init does (the writer, its override file pointed at `overrideFile`); returns the file or the failure. */
function envoyInit(pod: Obj, dir: string, overrideFile: string): { text: string } | { error: InitIptablesError } {
  const read = readPod(pod);
  assert.ok(read.ok);
  const inputs = initInputsOf(read.pod);
  assert.ok(inputs?.ok && inputs.inputs.bootstrap);
  // The labels file as the kubelet writes it.
  const labels = join(dir, 'labels');
  writeFileSync(labels, 'app="web"');
  try {
    writeBootstrap({ ...inputs.inputs, bootstrap: { ...inputs.inputs.bootstrap, dir, podLabelsPath: labels } }, true, VERSION, ENV, overrideFile);
  } catch (error) {
    assert.ok(error instanceof InitIptablesError, String(error));
    return { error };
  }
  return { text: readFileSync(join(dir, BOOTSTRAP_FILES.bootstrap), 'utf8') };
}

test("envoy-init merges the ConfigMap's file, and bootstrap -f --override prints byte for byte what it wrote", TIMEOUT, async (t) => {
  const dir = scratch(t);
  const fragment = join(dir, 'envoy.yaml');
  writeFileSync(fragment, readFileSync(new URL('../examples/grpc-web/envoy.yaml', import.meta.url)));
  const pod = injected();
  const mounts = ((pod['spec']['initContainers'] as Obj[]).find((c) => c['name'] === INIT_CONTAINER_NAME) as Obj)['volumeMounts'] as Obj[];
  assert.ok(mounts.some((m) => m['mountPath'] === '/etc/envoy-override' && m['readOnly'] === true));
  const written = envoyInit(pod, dir, fragment);
  assert.ok('text' in written, 'error' in written ? written.error.message : '');
  const bootstrap = JSON.parse(written.text) as Obj;
  assertValidBootstrap(bootstrap);
  assertBootstrapContract(bootstrap);
  assert.ok(bootstrap['static_resources']['listeners'].some((l: Obj) => l['name'] === 'grpc_web'));

  // The same pod once running, as the API server holds it: every fact envoy-init read is in it.
  const running = { ...pod, spec: { ...pod['spec'], nodeName: 'node-7' }, status: { podIPs: [{ ip: '10.0.0.7' }, { ip: 'fd00::7' }] } };
  const podFile = join(dir, 'pod.json');
  writeFileSync(podFile, JSON.stringify(running));
  const printed = await cli(['bootstrap', '-f', podFile, '--override', fragment]);
  assert.equal(printed.code, 0, printed.stderr);
  assert.equal(printed.stderr, '', 'nothing unknown, nothing assumed');
  assert.equal(printed.stdout, written.text, 'bootstrap -f --override prints exactly the file envoy-init writes');
});

test('envoy-init: a missing or clashing override is one line naming the ConfigMap, exit 10, nothing written', (t) => {
  const dir = scratch(t);
  const missing = envoyInit(injected(), dir, join(dir, 'absent.yaml'));
  assert.ok('error' in missing);
  assert.equal(missing.error.exitCode, 10);
  assert.match(missing.error.message, /^cannot read the bootstrap override ConfigMap web-envoy \(key envoy\.yaml\) at .*absent\.yaml: no such file or directory \(does the ConfigMap exist/);
  assert.doesNotMatch(missing.error.message, /\n/);

  const clashing = join(dir, 'clash.yaml');
  writeFileSync(clashing, 'static_resources:\n  listeners:\n    - name: readiness\n');
  const refused = envoyInit(injected(), dir, clashing);
  assert.ok('error' in refused);
  assert.equal(refused.error.exitCode, 10);
  assert.match(refused.error.message, /^cannot merge the bootstrap override: ConfigMap web-envoy \(key envoy\.yaml\): static_resources\.listeners\[0\]\.name: "readiness" is a listener of the injector/);

  writeFileSync(clashing, 'static_resources: [unclosed\n');
  const notYaml = envoyInit(injected(), dir, clashing);
  assert.ok('error' in notYaml);
  assert.match(notYaml.error.message, /ConfigMap web-envoy \(key envoy\.yaml\): not valid YAML \(line \d+\)/);
  assert.doesNotMatch(notYaml.error.message, /\n/);
  assert.ok(!existsSync(join(dir, BOOTSTRAP_FILES.bootstrap)), 'nothing written');
});

test('bootstrap --override: refused when the pod names no ConfigMap, required when it names one', TIMEOUT, async (t) => {
  const dir = scratch(t);
  const fragment = join(dir, 'envoy.yaml');
  writeFileSync(fragment, '{}');
  const plain = join(dir, 'plain.json');
  writeFileSync(plain, JSON.stringify(injected({})));
  const unwanted = await cli(['bootstrap', '-f', plain, '--override', fragment]);
  assert.equal(unwanted.code, 2);
  assert.match(unwanted.stderr, /--override .*names no bootstrap override ConfigMap \(annotation envoy-injector\.io\/bootstrap-override\)/);
  const named = join(dir, 'named.json');
  writeFileSync(named, JSON.stringify(injected()));
  const missing = await cli(['bootstrap', '-f', named]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /loads ConfigMap web-envoy \(key envoy\.yaml\) as its bootstrap override: give that envoy\.yaml with --override FILE/);
  // Strictly against the protos: an unknown @type the schema cannot see.
  writeFileSync(fragment, 'static_resources: {clusters: [{name: c, connect_timeout: 1s, typed_extension_protocol_options: {x: {"@type": type.googleapis.com/envoy.Nope}}}]}');
  const strict = await cli(['bootstrap', '-f', named, '--override', fragment]);
  assert.equal(strict.code, 1);
  assert.match(strict.stderr, /Envoy would refuse it: .*static_resources\.clusters\[0\]\.typed_extension_protocol_options\["x"\]\.@type: unknown @type/);
});

test("the README's worked example: bootstrap -f app.yaml --override envoy.yaml gives a valid bootstrap with the gRPC-Web listener", TIMEOUT, async () => {
  const example = new URL('../examples/grpc-web/', import.meta.url).pathname;
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  assert.ok(readme.includes('envoy-injector bootstrap -f app.yaml --override envoy.yaml'), 'the README runs this command');
  // The ConfigMap in the manifest holds exactly envoy.yaml.
  const docs = parseAllDocuments(readFileSync(join(example, 'app.yaml'), 'utf8')).map((d) => d.toJS() as Obj);
  const configMap = docs.find((d) => d['kind'] === 'ConfigMap');
  assert.equal(configMap?.['data']?.['envoy.yaml'], readFileSync(join(example, 'envoy.yaml'), 'utf8'));
  const deployment = docs.find((d) => d['kind'] === 'Deployment');
  assert.equal(deployment?.['spec']['template']['metadata']['annotations']['envoy-injector.io/bootstrap-override'], configMap?.['metadata']['name']);

  const run = await cli(['bootstrap', '-f', join(example, 'app.yaml'), '--override', join(example, 'envoy.yaml')]);
  assert.equal(run.code, 0, run.stderr);
  const bootstrap = JSON.parse(run.stdout) as Obj;
  assertValidBootstrap(bootstrap);
  assertBootstrapContract(bootstrap);
  const grpcWeb = bootstrap['static_resources']['listeners'].find((l: Obj) => l['name'] === 'grpc_web');
  assert.equal(grpcWeb?.['address']['socket_address']['port_value'], 8081);
  const hcm = grpcWeb['filter_chains'][0]['filters'][0]['typed_config'];
  assert.deepEqual(
    hcm['http_filters'].map((f: Obj) => f['name']),
    ['envoy.filters.http.grpc_web', 'envoy.filters.http.cors', 'envoy.filters.http.router'],
  );
  const upstream = bootstrap['static_resources']['clusters'].find((c: Obj) => c['name'] === 'greeter_grpc');
  assert.equal(upstream?.['load_assignment']['endpoints'][0]['lb_endpoints'][0]['endpoint']['address']['socket_address']['port_value'], 9090);
  // README shows the output (abridged): its listener names are the ones printed.
  for (const name of ['grpc_web', 'greeter_grpc']) assert.ok(readme.includes(name), `README shows ${name}`);
});

test('the cluster-wide fragment is checked strictly when a command loads the config (protos loaded only then)', TIMEOUT, async (t) => {
  const dir = scratch(t);
  const config = join(dir, 'config.yaml');
  writeFileSync(config, 'proxy:\n  bootstrapOverride:\n    static_resources:\n      clusters: [{name: c, connect_timeout: 1s, typed_extension_protocol_options: {x: {"@type": type.googleapis.com/envoy.Nope}}}]\n');
  const pod = join(dir, 'pod.json');
  writeFileSync(pod, JSON.stringify(injected({})));
  const run = await cli(['explain', '-f', pod, '-c', config]);
  assert.equal(run.code, 2, 'an invalid config is exit 2, as the CLI exit-code table says');
  assert.match(run.stderr, /^envoy-injector: invalid config proxy\.bootstrapOverride: Envoy would refuse it: .*typed_extension_protocol_options\["x"\]\.@type: unknown @type/);
  writeFileSync(config, 'proxy:\n  bootstrapOverride:\n    node: {id: mine}\n');
  const lost = await cli(['explain', '-f', pod, '-c', config]);
  assert.equal(lost.code, 2);
  assert.match(lost.stderr, /proxy\.bootstrapOverride: node\.id: the injector sets it/);
});

test('check: each override ConfigMap pods name is valid, missing (or without envoy.yaml), invalid or unreadable', TIMEOUT, async () => {
  const { checkOverrides } = await import('../src/cli/check.ts');
  const { overrideFindings } = await import('../src/check/assess.ts');
  const cm = (data: Record<string, string>) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data });
  const example = readFileSync(new URL('../examples/grpc-web/envoy.yaml', import.meta.url), 'utf8');
  const checks = await checkOverrides([
    { namespace: 'shop', name: 'greeter-envoy', pods: ['shop/a', 'shop/b'], configMap: cm({ 'envoy.yaml': example }) },
    { namespace: 'shop', name: 'gone', pods: ['shop/c'], configMap: undefined },
    { namespace: 'shop', name: 'nokey', pods: ['shop/d'], configMap: cm({ 'other.yaml': '{}' }) },
    { namespace: 'shop', name: 'clash', pods: ['shop/e'], configMap: cm({ 'envoy.yaml': 'admin: {address: {socket_address: {address: 0.0.0.0, port_value: 9901}}}' }) },
    { namespace: 'shop', name: 'typo', pods: ['shop/f'], configMap: cm({ 'envoy.yaml': 'static_resources: {clusters: [{name: c, conect_timeout: 1s}]}' }) },
    { namespace: 'shop', name: 'secret', pods: ['shop/g'], configMap: undefined, unreadable: 'configmaps "secret" is forbidden' },
  ]);
  assert.deepEqual(checks.map((c) => c.state), ['valid', 'missing', 'missing', 'invalid', 'invalid', 'unreadable']);
  const findings = overrideFindings(checks);
  assert.deepEqual(findings.map((f) => f.level), ['ok', 'fail', 'fail', 'fail', 'fail', 'warn']);
  assert.match(findings[0]?.message ?? '', /^ConfigMap shop\/greeter-envoy: a valid bootstrap override for 2 pods \(shop\/a, shop\/b\)/);
  assert.match(findings[2]?.message ?? '', /no key envoy\.yaml/);
  assert.match(findings[3]?.message ?? '', /admin\.address\.socket_address\.port_value: the injector sets it/);
  assert.match(findings[4]?.message ?? '', /unknown field "conect_timeout".*did you mean "connect_timeout"/);
});
