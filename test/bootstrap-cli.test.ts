// `envoy-injector bootstrap -f POD` prints exactly what the pod's envoy-init writes: the same
// rendering of the same flags (read from the pod, parsed as envoy-init parses them), with the pod's
// facts as far as its object tells them — for an injected pod as it runs (name, node, IPs known),
// one not scheduled yet, one not injected yet, and one injected by an older version that carried
// the bootstrap in ENVOY_BOOTSTRAP. The command runs once as the real binary; the other cases call
// the same CLI entry point in this process. (test/iptables-netns.test.ts compares it with the file
// the real init-iptables writes in a network namespace.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { INIT_CONTAINER_NAME, SIDECAR_CONTAINER_NAME } from '../src/constants.ts';
import { bootstrapFor } from '../src/cli/bootstrap.ts';
import { formatBootstrapFile, type PodIdentity } from '../src/core/bootstrap.ts';
import { admissionContext } from '../src/core/context.ts';
import { injectPod } from '../src/core/inject.ts';
import type { InjectorConfig, InjectorRuntime } from '../src/core/types.ts';
import { bootstrapOf, checkInjectedPod } from './support/check-injected.ts';
import { main, reportError } from '../src/cli.ts';
import { loadConfig } from '../src/config.ts';
import { VERSION } from '../src/version.ts';
import { testConfig } from './support/config.ts';
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

/** The CLI's own version, as the command runs: a pod it injected renders without a version note. */
const RUNTIME: InjectorRuntime = { version: VERSION, nativeSidecarSupported: false };

/** The facts of the running pod, as its envoy-init reads them from the downward API. */
const RUNNING: PodIdentity = {
  name: 'web-0',
  namespace: 'shop',
  instanceIps: '10.1.2.3,fd00:1::3',
  nodeName: 'node-7',
  serviceAccount: 'web',
  labels: { app: 'web' },
};

function inject(pod: Obj, config: InjectorConfig = testConfig(), runtime: InjectorRuntime = RUNTIME): Obj {
  const result = injectPod(pod, admissionContext({ namespace: 'shop' }), config, runtime);
  assert.ok(result.pod, 'injected');
  checkInjectedPod(result.pod as Obj);
  return result.pod as Obj;
}

test('a running injected pod: the printed bootstrap is exactly what its envoy-init writes, and it is valid', async () => {
  const pod = running(inject(POD));
  const file = write('running.json', pod);
  // What envoy-init renders in that pod (its IPs include IPv6, so it has IPv6).
  const expected = bootstrapOf(pod, { identity: RUNNING, ipv6: true, version: VERSION });
  assertValidBootstrap(expected);
  assert.equal(expected['node']['id'], 'web-0.shop');

  const inProcess = bootstrapFor(JSON.stringify(pod), file, testConfig(), RUNTIME, 'default');
  assert.equal(inProcess.fromInjectedPod, true);
  assert.deepEqual(inProcess.unresolved, []);
  assert.deepEqual(inProcess.assumptions, [], 'an IPv6 address among its IPs: nothing to assume');
  assert.deepEqual(inProcess.bootstrap, expected);

  const json = binary(['bootstrap', '-f', file]);
  assert.equal(json.code, 0, json.stderr);
  assert.equal(json.stdout, formatBootstrapFile(expected), 'byte for byte the file envoy-init writes');
  assert.equal(json.stderr, '', 'nothing left for the pod to fill in');
  const yaml = await cli(['bootstrap', '-f', file, '--output', 'yaml']);
  assert.equal(yaml.code, 0, yaml.stderr);
  assert.deepEqual(parseYaml(yaml.stdout), expected);
});

test('an injected pod not scheduled yet: what only the running pod knows stays a $(VAR) placeholder, and is named', async () => {
  const pod = inject(POD);
  const file = write('pending.yaml', stringifyYaml(pod));
  const run = await cli(['bootstrap', '-f', file]);
  assert.equal(run.code, 0, run.stderr);
  const printed = JSON.parse(run.stdout) as Obj;
  const placeholders = { ...RUNNING, instanceIps: '$(INSTANCE_IPS)', nodeName: '$(NODE_NAME)' };
  assert.deepEqual(printed, bootstrapOf(pod, { identity: placeholders, ipv6: true, version: VERSION }));
  assert.equal(printed['node']['metadata']['INSTANCE_IPS'], '$(INSTANCE_IPS)');
  assert.equal(printed['node']['metadata']['NODE_NAME'], '$(NODE_NAME)');
  assert.equal(
    run.stderr,
    'note: $(INSTANCE_IPS), $(NODE_NAME) are filled in by envoy-init from the running pod (downward API)\n' +
      'note: assumed the pod has IPv6 (ipv6: auto; envoy-init renders no [::] listeners in a pod without it)\n',
  );
});

test('IPv6 follows the setting and what the pod object tells: no [::] with ipv6 false, and nothing assumed', async () => {
  const v4 = running({ ...inject({ ...POD, metadata: { ...POD.metadata, annotations: { 'envoy-injector.io/ipv6': 'false' } } }) });
  v4['status'] = { phase: 'Running', podIP: '10.1.2.3', podIPs: [{ ip: '10.1.2.3' }] };
  const run = await cli(['bootstrap', '-f', write('ipv4.json', v4)]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, '');
  const printed = JSON.parse(run.stdout) as Obj;
  assert.ok(!run.stdout.includes('"::'), 'no IPv6 address in an IPv4-only bootstrap');
  assert.deepEqual(printed, bootstrapOf(v4, { identity: { ...RUNNING, instanceIps: '10.1.2.3' }, ipv6: false, version: VERSION }));
  assertValidBootstrap(printed);
  // auto with IPv4 addresses only: the pod may still have IPv6 (link-local); that is assumed, and said.
  const auto = running(inject(POD));
  auto['status'] = v4['status'];
  const assumed = bootstrapFor(JSON.stringify(auto), 'auto.json', testConfig(), RUNTIME, 'default');
  assert.equal(assumed.assumptions.length, 1);
  assert.ok(JSON.stringify(assumed.bootstrap).includes('"::"'));
});

test('a pod not injected yet: injected with the same config first, giving the same bootstrap', async () => {
  const config = 'proxy:\n  ads:\n    address: xds.control-plane.svc:18000\n  accessLog: true\n';
  const configFile = write('config.yaml', config);
  const plainFile = write('plain.json', POD);
  const fromPlain = await cli(['bootstrap', '-f', plainFile, '-c', configFile]);
  assert.equal(fromPlain.code, 0, fromPlain.stderr);
  // The same config and version the command runs with.
  const cliConfig = loadConfig({ file: configFile, env: { ENVOY_INJECTOR_NATIVE_SIDECAR: 'false' } });
  const injected = injectPod(POD, admissionContext({ namespace: 'shop' }), cliConfig, RUNTIME).pod;
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
  // envoy-init's flags are read as envoy-init reads them: one it would refuse is named.
  const broken = structuredClone(inject(POD));
  const init = (broken['spec']['initContainers'] as Obj[]).find((c) => c['name'] === INIT_CONTAINER_NAME) as Obj;
  init['args'] = [...init['args'], '--exclude-inbound-ports=http'];
  const invalid = await cli(['bootstrap', '-f', write('broken.json', broken)]);
  assert.equal(invalid.code, 2);
  assert.match(invalid.stderr, /^envoy-injector: Pod web-0 \(document 1\): envoy-init's flags do not parse: --exclude-inbound-ports="http": expected .*\n$/);
});

test('a pod injected by another version: rendered from its own flags, with a note that its envoy-init may differ', async () => {
  const older = inject(POD, testConfig(), { version: '0.0.1', nativeSidecarSupported: false });
  const run = await cli(['bootstrap', '-f', write('older.json', older)]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, new RegExp(`note: the pod was injected by envoy-injector 0\\.0\\.1: this is what version ${VERSION.replaceAll('.', '\\.')} renders`));
  // Its own flags count, not the config the command runs with.
  const printed = JSON.parse(run.stdout) as Obj;
  const configHash = JSON.parse(older['metadata']['annotations']['envoy-injector.io/status'])['configHash'];
  assert.equal(printed['node']['metadata']['CONFIG_HASH'], configHash);
});

test('a pod injected before the bootstrap was rendered in the pod: its ENVOY_BOOTSTRAP, expanded as the kubelet does', async () => {
  const legacy = {
    ...POD,
    metadata: { ...POD.metadata, annotations: { 'envoy-injector.io/status': '{"version":"0.0.1","initContainers":["envoy-init"],"containers":["envoy"],"volumes":[],"configHash":"x"}' } },
    spec: {
      ...POD.spec,
      containers: [
        {
          name: SIDECAR_CONTAINER_NAME,
          image: 'envoyproxy/envoy:v1.39.6',
          args: ['--config-yaml', '$(ENVOY_BOOTSTRAP)'],
          env: [
            { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
            { name: 'ENVOY_BOOTSTRAP', value: '{"node":{"id":"$(POD_NAME)","cluster":"$(NODE_NAME)","metadata":{"x":"a$$b"}}}' },
          ],
        },
        ...POD.spec.containers,
      ],
    },
  };
  const run = await cli(['bootstrap', '-f', write('legacy.json', legacy)]);
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout), { node: { id: 'web-0', cluster: '$(NODE_NAME)', metadata: { x: 'a$b' } } });
  assert.equal(run.stderr, 'note: $(NODE_NAME) is filled in by the kubelet when the pod runs\n');
  const envoy = legacy.spec.containers[0] as Obj;
  envoy['env'] = [{ name: 'ENVOY_BOOTSTRAP', value: '{not json' }];
  const invalid = await cli(['bootstrap', '-f', write('legacy-broken.json', legacy)]);
  assert.equal(invalid.code, 2);
  assert.match(invalid.stderr, /ENVOY_BOOTSTRAP is not valid JSON\n$/);
});
