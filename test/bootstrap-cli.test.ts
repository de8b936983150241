// `envoy-injector bootstrap -f POD` prints exactly what the pod's Envoy parses: the kubelet's
// expansion of ENVOY_BOOTSTRAP and of `--config-yaml $(ENVOY_BOOTSTRAP)`, read as YAML, for an
// injected pod as it runs (name, node, IPs known) and for one not injected yet. The command runs
// once as the real binary; the other cases call the same CLI entry point in this process.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { BOOTSTRAP_ENV, SIDECAR_CONTAINER_NAME } from '../src/constants.ts';
import { bootstrapFor } from '../src/cli/bootstrap.ts';
import { admissionContext } from '../src/core/context.ts';
import { expandEnvReferences } from '../src/core/env-expansion.ts';
import { injectPod } from '../src/core/inject.ts';
import type { InjectorConfig } from '../src/core/types.ts';
import { checkInjectedPod } from './support/check-injected.ts';
import { main, reportError } from '../src/cli.ts';
import { loadConfig } from '../src/config.ts';
import { VERSION } from '../src/version.ts';
import { testConfig, testRuntime } from './support/config.ts';
import { assertValidBootstrap } from './support/envoy-proto-check.ts';

type Obj = Record<string, any>;

const MAIN = new URL('../src/main.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-bootstrap-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// No cluster here: the CLI must not look for one (in this process or the binary's).
const CLI_ENV = { HOME: '/nonexistent', KUBECONFIG: '', ENVOY_INJECTOR_NATIVE_SIDECAR: 'false' };
Object.assign(process.env, CLI_ENV);

/** Runs the real binary (through tsx). */
function binary(args: string[]) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', env: { ...process.env, ...CLI_ENV } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Runs the CLI's entry point in this process, capturing what it writes, as main.ts does. */
async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const io = { stdout: { write: (text: string) => (stdout += text) }, stderr: { write: (text: string) => (stderr += text) } };
  const code = await main(args, io).catch((error: unknown) => reportError(error, io));
  return { code, stdout, stderr };
}

function write(name: string, content: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

const POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web-0', namespace: 'shop', labels: { app: 'web' } },
  spec: { serviceAccountName: 'web', containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 8080 }] }] },
};

/** The pod as the API server and kubelet see it once scheduled and running. */
function running(injected: Obj): Obj {
  return {
    ...injected,
    spec: { ...injected['spec'], nodeName: 'node-7' },
    status: { phase: 'Running', podIP: '10.1.2.3', podIPs: [{ ip: '10.1.2.3' }, { ip: 'fd00:1::3' }] },
  };
}

/** What Envoy parses: the kubelet expands env then args; Envoy reads --config-yaml as YAML. */
function whatEnvoyParses(pod: Obj, downward: Record<string, string>): Obj {
  const containers: Obj[] = [...(pod['spec']['initContainers'] ?? []), ...pod['spec']['containers']];
  const envoy = containers.find((c) => c['name'] === SIDECAR_CONTAINER_NAME) as Obj;
  const values: Record<string, string> = {};
  for (const e of envoy['env'] as Obj[]) {
    const value = e['valueFrom'] ? downward[e['name']] : expandEnvReferences(e['value'], values);
    if (value !== undefined) values[e['name']] = value;
  }
  const args = (envoy['args'] as string[]).map((a) => expandEnvReferences(a, values));
  return parseYaml(args[args.indexOf('--config-yaml') + 1] as string) as Obj;
}

function inject(pod: Obj, config: InjectorConfig = testConfig()): Obj {
  const result = injectPod(pod, admissionContext({ namespace: 'shop' }), config, testRuntime);
  assert.ok(result.pod, 'injected');
  checkInjectedPod(result.pod as Obj);
  return result.pod as Obj;
}

test('a running injected pod: the printed bootstrap is exactly what its Envoy parses, and it is valid', async () => {
  const pod = running(inject(POD));
  const file = write('running.json', pod);
  const expected = whatEnvoyParses(pod, {
    POD_NAME: 'web-0',
    POD_NAMESPACE: 'shop',
    INSTANCE_IPS: '10.1.2.3,fd00:1::3',
    NODE_NAME: 'node-7',
    SERVICE_ACCOUNT: 'web',
  });
  assertValidBootstrap(expected);
  assert.equal(expected['node']['id'], 'web-0.shop');

  const inProcess = bootstrapFor(JSON.stringify(pod), file, testConfig(), testRuntime, 'default');
  assert.equal(inProcess.fromInjectedPod, true);
  assert.deepEqual(inProcess.unresolved, []);
  assert.deepEqual(inProcess.bootstrap, expected);

  const json = binary(['bootstrap', '-f', file]);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout), expected);
  assert.equal(json.stderr, '', 'nothing left for the kubelet to fill in');
  const yaml = await cli(['bootstrap', '-f', file, '--output', 'yaml']);
  assert.equal(yaml.code, 0, yaml.stderr);
  assert.deepEqual(parseYaml(yaml.stdout), expected);
});

test('an injected pod not scheduled yet: what only the kubelet knows stays a $(VAR) reference, and is named', async () => {
  const pod = inject(POD);
  const file = write('pending.yaml', stringifyYaml(pod));
  const run = await cli(['bootstrap', '-f', file]);
  assert.equal(run.code, 0, run.stderr);
  const printed = JSON.parse(run.stdout) as Obj;
  // The kubelet leaves a reference it cannot resolve as written; so does the command.
  assert.deepEqual(printed, whatEnvoyParses(pod, { POD_NAME: 'web-0', POD_NAMESPACE: 'shop', SERVICE_ACCOUNT: 'web' }));
  assert.equal(printed['node']['metadata']['INSTANCE_IPS'], '$(INSTANCE_IPS)');
  assert.equal(printed['node']['metadata']['NODE_NAME'], '$(NODE_NAME)');
  assert.equal(run.stderr, 'note: $(INSTANCE_IPS), $(NODE_NAME) are filled in by the kubelet when the pod runs\n');
});

test('a pod not injected yet: injected with the same config first, giving the same bootstrap', async () => {
  const config = 'proxy:\n  ads:\n    address: xds.control-plane.svc:18000\n  accessLog: true\n';
  const configFile = write('config.yaml', config);
  const plainFile = write('plain.json', POD);
  const fromPlain = await cli(['bootstrap', '-f', plainFile, '-c', configFile]);
  assert.equal(fromPlain.code, 0, fromPlain.stderr);
  // The same config and version the command runs with.
  const cliConfig = loadConfig({ file: configFile, env: { ENVOY_INJECTOR_NATIVE_SIDECAR: 'false' } });
  const injected = injectPod(POD, admissionContext({ namespace: 'shop' }), cliConfig, { version: VERSION, nativeSidecarSupported: false }).pod;
  assert.ok(injected);
  const fromInjected = await cli(['bootstrap', '-f', write('injected.json', injected), '-c', configFile]);
  assert.equal(fromInjected.code, 0, fromInjected.stderr);
  const printed = JSON.parse(fromPlain.stdout) as Obj;
  assert.deepEqual(printed, JSON.parse(fromInjected.stdout));
  assert.ok(printed['dynamic_resources'], 'the config file was used: ADS');
  // A Deployment's template has no name yet: the pod name is the kubelet's to fill in too.
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: POD.spec } },
  };
  const fromTemplate = await cli(['bootstrap', '-f', write('deployment.json', deployment)]);
  assert.equal(fromTemplate.code, 0, fromTemplate.stderr);
  assert.equal((JSON.parse(fromTemplate.stdout) as Obj)['node']['id'], '$(POD_NAME).shop');
  assert.match(fromTemplate.stderr, /\$\(POD_NAME\)/);
});

test('a pod that would not be injected, or a document without a pod, is one clear error line', async () => {
  const hostNetwork = write('host.json', { ...POD, spec: { ...POD.spec, hostNetwork: true } });
  const skipped = await cli(['bootstrap', '-f', hostNetwork]);
  // Skipped is an outcome (exit 1), not a usage error (2): the input was read and judged.
  assert.equal(skipped.code, 1);
  assert.match(skipped.stderr, /^envoy-injector: Pod web-0 \(document 1\) would not be injected: \[host-network\] .*\n$/);
  const service = await cli(['bootstrap', '-f', write('service.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: web}\n')]);
  assert.equal(service.code, 2);
  assert.match(service.stderr, /^envoy-injector: .*service\.yaml: no Pod or pod template found\n$/);
  // The bootstrap env var is escaped for the kubelet: a pod carrying the proxy without it is named.
  const broken = structuredClone(inject(POD));
  const envoy = (broken['spec']['containers'] as Obj[]).find((c) => c['name'] === SIDECAR_CONTAINER_NAME) as Obj;
  envoy['env'] = (envoy['env'] as Obj[]).map((e) => (e['name'] === BOOTSTRAP_ENV ? { ...e, value: '{not json' } : e));
  const invalid = await cli(['bootstrap', '-f', write('broken.json', broken)]);
  assert.equal(invalid.code, 2);
  assert.match(invalid.stderr, /ENVOY_BOOTSTRAP is not valid JSON\n$/);
});
