// `uninject` (SPEC.md §9): removes exactly what injection added, as the status annotation lists it,
// and nothing of the pod's own; refuses (exit 1, the document printed as it was) what it cannot
// tell apart; `uninject | inject` upgrades a manifest injected with an older config. And the CLI
// side of re-invocation: `inject` on a manifest whose init containers another webhook put out of
// order moves them back, keeping the moved container's comments.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { main, reportError } from '../src/cli.ts';
import { injectDocuments } from '../src/cli/inject.ts';
import { KUBECTL_DEFAULT_CONTAINER_ANNOTATION, STATUS_ANNOTATION } from '../src/constants.ts';
import { admissionContext } from '../src/core/context.ts';
import { injectPod } from '../src/core/inject.ts';
import { planUninjection } from '../src/core/uninject.ts';
import { TEST_VERSION, testConfig, testRuntime } from './support/config.ts';
import { readAsKubectl } from './support/kubectl-read.ts';
import { applyJsonPatch } from './support/patch.ts';

type Obj = Record<string, any>;

Object.assign(process.env, { HOME: '/nonexistent', KUBECONFIG: '', ENVOY_INJECTOR_CONFIG: '', ENVOY_INJECTOR_INIT_IMAGE: `ghcr.io/envoy-injector/envoy-injector:v${TEST_VERSION}` });

async function cli(args: string[], stdin = '') {
  let stdout = '';
  let stderr = '';
  const io = { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) }, readStdin: () => stdin };
  const code = await main(args, io).catch((error: unknown) => reportError(error, io));
  return { code, stdout, stderr };
}

const POD: Obj = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', labels: { app: 'web' }, annotations: { team: 'shop' } },
  spec: {
    initContainers: [{ name: 'migrate', image: 'migrate' }],
    containers: [{ name: 'web', image: 'nginx', volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
    volumes: [{ name: 'data', emptyDir: {} }],
  },
};
const inject = (pod: unknown, config = testConfig()) => {
  const result = injectPod(pod, admissionContext({ namespace: 'shop' }), config, testRuntime);
  assert.ok(result.pod, 'injected');
  return result.pod as Obj;
};

test('uninject removes what the status lists, classic and native, and gives the pod back exactly', () => {
  for (const native of [false, true]) {
    const injected = inject(POD, testConfig({ ENVOY_INJECTOR_NATIVE_SIDECAR: String(native) }));
    const plan = planUninjection(injected);
    assert.equal(plan.state, 'removed');
    if (plan.state !== 'removed') return;
    assert.deepEqual(plan.pod, POD, `native ${native}`);
    assert.deepEqual(applyJsonPatch(injected, plan.patch), POD, 'the patch gives the same pod');
    assert.deepEqual(plan.kept, []);
  }
  // What injection created (annotations, init containers, volumes) goes when it empties.
  const bare = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'bare' }, spec: { containers: [{ name: 'a', image: 'a' }] } };
  const plan = planUninjection(inject(bare));
  assert.equal(plan.state, 'removed');
  if (plan.state === 'removed') assert.deepEqual(plan.pod, bare);
  const template = { spec: { containers: [{ name: 'a', image: 'a' }] } };
  const fromTemplate = planUninjection(inject(template));
  assert.equal(fromTemplate.state, 'removed');
  if (fromTemplate.state === 'removed') assert.deepEqual(fromTemplate.pod, template, 'metadata injection created goes too');
});

test("the pod's own kubectl.kubernetes.io/default-container stays; an older status's is kept and said so", () => {
  const own = { ...POD, metadata: { ...POD['metadata'], annotations: { [KUBECTL_DEFAULT_CONTAINER_ANNOTATION]: 'web' } } };
  const ownPlan = planUninjection(inject(own));
  assert.equal(ownPlan.state, 'removed');
  if (ownPlan.state === 'removed') assert.deepEqual(ownPlan.pod, own);
  // A status written before it listed annotations: whether injection set it is not known.
  const injected = inject(POD);
  const status = JSON.parse(injected['metadata']['annotations'][STATUS_ANNOTATION]) as Obj;
  delete status['annotations'];
  const legacy = structuredClone(injected);
  legacy['metadata']['annotations'][STATUS_ANNOTATION] = JSON.stringify(status);
  const plan = planUninjection(legacy);
  assert.equal(plan.state, 'removed');
  if (plan.state !== 'removed') return;
  assert.equal((plan.pod as Obj)['metadata']['annotations'][KUBECTL_DEFAULT_CONTAINER_ANNOTATION], 'web');
  assert.match(plan.kept[0] ?? '', /^kubectl\.kubernetes\.io\/default-container \(the status annotation, written by 0\.0\.0-test, does not say whether injection set it\)$/);
});

test('uninject refuses, removing nothing, what it cannot tell apart from the pod', () => {
  const injected = inject(POD);
  const withStatus = (text: string) => {
    const copy = structuredClone(injected);
    copy['metadata']['annotations'][STATUS_ANNOTATION] = text;
    return copy;
  };
  const noInit = structuredClone(injected);
  noInit['spec']['initContainers'] = noInit['spec']['initContainers'].filter((c: Obj) => c['name'] !== 'envoy-init');
  const mounted = structuredClone(injected);
  mounted['spec']['containers'][1]['volumeMounts'].push({ name: 'envoy-init-xtables-lock', mountPath: '/run' });
  const ownEnvoy = { ...POD, spec: { ...POD['spec'], containers: [{ name: 'envoy', image: 'envoyproxy/envoy' }] } };
  const cases: [string, unknown, RegExp][] = [
    ['another version wrote the status', withStatus('{"v2":true}'), /annotation is not one this version of envoy-injector reads/],
    ['not JSON', withStatus('injected'), /annotation is not one this version of envoy-injector reads/],
    ['a listed container is gone', noInit, /lists the init container envoy-init, which the pod does not have once and only once/],
    ["the pod's own container mounts an added volume", mounted, /a container of the pod's own mounts the volume envoy-init-xtables-lock/],
    ['an envoy of its own, no status', ownEnvoy, /has a container named envoy but no envoy-injector\.io\/status annotation/],
  ];
  for (const [name, pod, problem] of cases) {
    const plan = planUninjection(pod);
    assert.equal(plan.state, 'refused', name);
    if (plan.state === 'refused') assert.match(plan.problem, problem, name);
  }
  assert.equal(planUninjection(POD).state, 'not-injected');
});

test('the CLI: a refused pod is printed as it was, reported, and uninject exits 1', async () => {
  const injected = inject(POD);
  injected['metadata']['annotations'][STATUS_ANNOTATION] = '{"v2":true}';
  const input = `${JSON.stringify(injected, null, 2)}\n`;
  const run = await cli(['uninject', '-f', '-'], input);
  assert.equal(run.code, 1);
  assert.equal(run.stdout, input);
  assert.match(run.stderr, /^Pod web \(document 1\): not uninjected: its envoy-injector\.io\/status annotation is not one .*; it is printed as it was\n$/);
});

test('YAML: comments and the layout of the pod survive inject and uninject', async () => {
  const text = [
    '# the shop front',
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata:',
    '  name: web # its name',
    'spec:',
    '  selector:',
    '    matchLabels: {app: web}',
    '  template:',
    '    metadata:',
    '      labels: {app: web}',
    '    spec:',
    '      # the app itself',
    '      containers:',
    '      - name: web # keep this comment',
    '        image: nginx',
    '        env:',
    '        - {name: MODE, value: "on"}',
    '',
  ].join('\n');
  const injected = injectDocuments(text, 'web.yaml', testConfig(), testRuntime, 'default').output;
  for (const comment of ['# the shop front', '# its name', '# the app itself', '# keep this comment']) assert.ok(injected.includes(comment), comment);
  // YAML 1.1: "on" stays a string for kubectl.
  assert.equal((readAsKubectl(injected)[0] as Obj)['spec']['template']['spec']['containers'][1]['env'][0]['value'], 'on');
  const back = await cli(['uninject', '-f', '-'], injected);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(back.stdout, text, 'byte for byte: the layout (unindented sequences, flow mappings) is the input\'s');
});

test('uninject | inject upgrades a manifest injected offline with an older config', async () => {
  const older = testConfig({ ENVOY_INJECTOR_PROXY_IMAGE: 'envoyproxy/envoy:v1.38.0', ENVOY_INJECTOR_PROXY_CONCURRENCY: '4' });
  const text = `${JSON.stringify(POD)}\n`;
  const old = injectDocuments(text, 'pod.json', older, testRuntime, 'default').output;
  // inject alone leaves it: it is injected already.
  const again = await cli(['inject', '-f', '-'], old);
  assert.match(again.stderr, /skipped: \[already-injected\]/);
  assert.equal(again.stdout, old);
  const uninjected = await cli(['uninject', '-f', '-'], old);
  const upgraded = await cli(['inject', '-f', '-'], uninjected.stdout);
  assert.equal(upgraded.code, 0, upgraded.stderr);
  const fresh = await cli(['inject', '-f', '-'], text);
  assert.equal(upgraded.stdout, fresh.stdout);
  const envoy = (JSON.parse(upgraded.stdout) as Obj)['spec']['containers'][0];
  assert.equal(envoy['image'], testConfig().proxy.image);
});

test('inject restores the order of init containers another webhook broke, moving the container with its comments', async () => {
  const injected = injectDocuments(
    'apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n    - name: web\n      image: nginx\n',
    'web.yaml',
    testConfig(),
    testRuntime,
    'default',
  ).output;
  // What Vault's agent injector does after us: it appends its init container (initContainers is
  // followed by volumes in the injected pod).
  const vaultContainer = '    - name: vault-agent-init # appended by Vault\n      image: hashicorp/vault\n';
  assert.ok(injected.includes('\n  volumes:\n'));
  const appended = injected.replace('\n  volumes:\n', `\n${vaultContainer}  volumes:\n`);
  const names = (text: string) => ((parseYaml(text) as Obj)['spec']['initContainers'] as Obj[]).map((c) => c['name']);
  assert.deepEqual(names(appended), ['envoy-init', 'vault-agent-init']);
  const reordered = await cli(['inject', '-f', '-'], appended);
  assert.equal(reordered.code, 0, reordered.stderr);
  assert.match(reordered.stderr, /^Pod web \(document 1\): reordered: \[envoy-init-not-last\] .*\(after it: vault-agent-init\)\n$/);
  assert.deepEqual(names(reordered.stdout), ['vault-agent-init', 'envoy-init']);
  assert.ok(reordered.stdout.includes('vault-agent-init # appended by Vault'), 'the moved container keeps its comment');
  // Once in order, nothing more to do.
  const again = await cli(['inject', '-f', '-'], reordered.stdout);
  assert.equal(again.stdout, reordered.stdout);
  assert.match(again.stderr, /skipped: \[already-injected\]/);
  const vault = injected.replace('\n  initContainers:\n', `\n  initContainers:\n${vaultContainer}`);
  assert.deepEqual(names(vault), ['vault-agent-init', 'envoy-init']);
  // Put first, before the capture, it is where it runs on the plain network: left alone.
  const first = await cli(['inject', '-f', '-'], vault);
  assert.match(first.stderr, /skipped: \[already-injected\]/);
  assert.equal(first.stdout, vault);
});
