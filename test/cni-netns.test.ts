// CNI mode proven with the real thing: Debian's containernetworking-plugins (bridge with host-local
// IPAM, and loopback) chained with `envoy-injector cni` in one conflist, invoked as a runtime does
// it (CNI spec: each plugin in order, the configuration with prevResult on standard input, the
// CNI_* environment with K8S_POD_NAMESPACE/K8S_POD_NAME) on network namespaces the test creates: a
// "node" namespace where the plugins run (so the bridge and the API server live there, never in
// the host's) and a namespace per pod. The pod objects come from the wire-format fake API server,
// run in the node namespace. Real connections prove the capture properties of
// test/iptables-netns.test.ts; the unprivileged envoy-init check is proven with and without it.
//
// NEEDS ROOT (as test/iptables-netns.test.ts) and /usr/lib/cni (`.ci/run` installs
// containernetworking-plugins).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { admissionContext } from '../src/core/context.ts';
import { injectPod } from '../src/core/inject.ts';
import { connectIn, REPO, requireRootAndTools, runInitIptables, sh, startStandIn, waitForReady, withTopology, type Listener } from './support/netns.ts';
import { testConfig, testRuntime } from './support/config.ts';

const TIMEOUT = { timeout: 240_000 };
const CNI_PLUGINS = '/usr/lib/cni';
const APP_UID = 1000;
const INIT_UID = 1338;
const NODE_IP = '10.78.0.1';
const NODE_IP2 = '10.78.0.254';
const CHILD = new URL('./support/fake-apiserver-child.ts', import.meta.url).pathname;
const MAIN = new URL('../src/main.ts', import.meta.url).pathname;

type Obj = Record<string, any>;

/** A pod of namespace `shop` as the API server stores it: injected in CNI mode, or not at all. */
function podObject(name: string, options: { injected: boolean; mode?: 'cni' | 'init' }): Obj {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'shop',
      labels: { app: name },
      annotations: {
        'envoy-injector.io/exclude-inbound-ports': '9090',
        'envoy-injector.io/exclude-outbound-ports': '5432',
        'envoy-injector.io/exclude-outbound-ip-ranges': `${NODE_IP2}/32`,
      },
    },
    spec: { containers: [{ name: 'app', image: 'app:1', ports: [{ containerPort: 8080 }] }] },
  };
  if (!options.injected) return pod;
  const result = injectPod(pod, admissionContext({ namespace: 'shop' }), testConfig({ ENVOY_INJECTOR_CAPTURE_MODE: options.mode ?? 'cni' }), testRuntime);
  assert.ok(result.pod, 'the pod is injected');
  return result.pod as Obj;
}

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** One node: its namespace, the CNI bin dir holding our launcher, and the fake API server in it. */
interface Node {
  readonly ns: string;
  readonly dir: string;
  readonly kubeconfig: string;
  readonly binDir: string;
  readonly pods: string[];
  /** Runs one plugin in the node namespace as the runtime does. */
  plugin(type: string, conf: Obj, env: Record<string, string>): Promise<Run>;
  /** Creates a pod namespace; removed with the node. */
  podNamespace(): Promise<string>;
  remove(): Promise<void>;
}

async function createNode(t: TestContext, pods: readonly Obj[]): Promise<Node> {
  const id = randomBytes(3).toString('hex');
  const ns = `ei-cni-${id}-node`;
  const dir = mkdtempSync(join(tmpdir(), 'ei-cni-'));
  const binDir = join(dir, 'bin');
  const kubeconfig = join(dir, 'envoy-injector-cni.kubeconfig');
  const children: ChildProcess[] = [];
  const podNamespaces: string[] = [];
  const node: Node = {
    ns,
    dir,
    kubeconfig,
    binDir,
    pods: podNamespaces,
    plugin(type, conf, env) {
      const program = type === 'envoy-injector-cni' ? join(binDir, type) : join(CNI_PLUGINS, type);
      return new Promise((resolve, reject) => {
        const child = spawn('ip', ['netns', 'exec', ns, program], {
          cwd: REPO,
          env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', CNI_PATH: `${CNI_PLUGINS}:${binDir}`, ...env },
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
        child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
        child.on('error', reject);
        child.on('close', (code) => resolve({ code, stdout, stderr }));
        child.stdin.end(JSON.stringify(conf));
      });
    },
    async podNamespace() {
      const name = `ei-cni-${id}-p${podNamespaces.length}`;
      await sh('ip', ['netns', 'add', name]);
      podNamespaces.push(name);
      return name;
    },
    async remove() {
      for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
      await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : null)));
      for (const name of [...podNamespaces, ns]) await sh('ip', ['netns', 'del', name]).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  t.after(() => node.remove());
  try {
    await sh('ip', ['netns', 'add', ns]);
    await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    // The plugin as the node agent installs it: a launcher in the CNI bin dir (here running the
    // checkout through tsx, from the repository, instead of the copied node and app).
    await sh('mkdir', ['-p', binDir]);
    writeFileSync(join(binDir, 'envoy-injector-cni'), `#!/bin/sh\ncd ${REPO}\nexec ${process.execPath} --import tsx ${MAIN} cni\n`);
    chmodSync(join(binDir, 'envoy-injector-cni'), 0o755);
    const api = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', CHILD, JSON.stringify({ kubeconfig, pods })], {
      cwd: REPO,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.push(api);
    await waitForReady(api, 'fake API server');
  } catch (error) {
    await node.remove();
    throw error;
  }
  return node;
}

/** The conflist: bridge with host-local IPAM, then this plugin (as the node agent appends it). */
function conflist(node: Node, cniVersion: string, options: { kubeconfig?: string } = {}): Obj {
  return {
    cniVersion,
    name: 'ei-test',
    plugins: [
      {
        type: 'bridge',
        bridge: 'eicni0',
        isGateway: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.78.0.0/24', gateway: NODE_IP }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(node.dir, 'ipam') },
      },
      { type: 'envoy-injector-cni', kubeconfig: options.kubeconfig ?? node.kubeconfig, excludedNamespaces: ['envoy-injector', 'kube-system'] },
    ],
  };
}

/** The runtime's side: loopback, then every plugin of the conflist in order (reverse for DEL). */
async function invoke(
  node: Node,
  list: Obj,
  command: 'ADD' | 'DEL' | 'CHECK',
  pod: { ns: string; namespace: string; name: string },
  options: { prevResult?: Obj; runtimeConfig?: Obj; loopback?: boolean } = {},
): Promise<{ result: Obj | undefined; runs: { type: string; run: Run }[] }> {
  const env = {
    CNI_COMMAND: command,
    CNI_CONTAINERID: `ctr-${pod.name}`,
    CNI_NETNS: `/var/run/netns/${pod.ns}`,
    CNI_IFNAME: 'eth0',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=ctr-${pod.name}`,
  };
  const runs: { type: string; run: Run }[] = [];
  // The runtime sets up lo once per sandbox (loopback's own ADD refuses a lo holding ::6, which
  // the capture adds, so a repeated ADD of the chain leaves it out, as a runtime's retry does).
  if (command === 'ADD' && options.loopback !== false) {
    const lo = await node.plugin('loopback', { cniVersion: list['cniVersion'], name: 'cni-loopback', type: 'loopback' }, { ...env, CNI_IFNAME: 'lo' });
    assert.equal(lo.code, 0, lo.stderr + lo.stdout);
  }
  const plugins = command === 'DEL' ? [...(list['plugins'] as Obj[])].reverse() : (list['plugins'] as Obj[]);
  let prev: Obj | undefined = options.prevResult;
  for (const plugin of plugins) {
    const conf = {
      ...plugin,
      cniVersion: list['cniVersion'],
      name: list['name'],
      ...(prev === undefined ? {} : { prevResult: prev }),
      ...(options.runtimeConfig === undefined ? {} : { runtimeConfig: options.runtimeConfig }),
    };
    const run = await node.plugin(plugin['type'], conf, env);
    runs.push({ type: plugin['type'], run });
    if (run.code !== 0) return { result: undefined, runs };
    if (command === 'ADD') prev = JSON.parse(run.stdout);
  }
  return { result: prev, runs };
}

const natRules = async (ns: string): Promise<string> =>
  (await sh('ip', ['netns', 'exec', ns, 'iptables-nft-save', '-t', 'nat']))
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/, '[0:0]'))
    .join('\n');

const podIpOf = (result: Obj): string => String(result['ips'][0]['address']).split('/')[0] as string;

function requireCniPlugins(): void {
  for (const type of ['bridge', 'host-local', 'loopback']) {
    assert.ok(existsSync(join(CNI_PLUGINS, type)), `${CNI_PLUGINS}/${type} is missing: apt-get install containernetworking-plugins (.ci/run does)`);
  }
}

const PROXY_LISTENERS: Listener[] = [
  { port: 15001, family: 4, role: 'outbound', name: 'outbound' },
  { port: 15006, family: 4, role: 'inbound', name: 'inbound' },
];
const APP_LISTENERS: Listener[] = [8080, 9090].map((port) => ({ port, family: 4, role: 'echo', name: 'app' }) as const);
const REMOTE_LISTENERS: Listener[] = [8080, 5432].map((port) => ({ port, family: 4, role: 'echo', name: 'remote' }) as const);

for (const cniVersion of ['1.0.0', '0.4.0']) {
  describe(`the chained plugin, CNI ${cniVersion} (needs root)`, () => {
    test(`an injected pod is captured as envoy-init would; ADD twice = once; CHECK; DEL cleans up (${cniVersion})`, TIMEOUT, async (t) => {
      if (!requireRootAndTools(t)) return;
      requireCniPlugins();
      const node = await createNode(t, [podObject('web', { injected: true }), podObject('plain', { injected: false })]);
      const list = conflist(node, cniVersion);
      const ns = await node.podNamespace();
      const web = { ns, namespace: 'shop', name: 'web' };

      // Before the plugin ran: the unprivileged envoy-init check fails with one line naming the agent.
      const before = await runInitIptables(ns, ['--capture-mode=cni'], { uid: INIT_UID });
      assert.equal(before.code, 11, before.stderr);
      assert.equal(before.stderr.trim().split('\n').length, 1, before.stderr);
      assert.match(before.stderr, /traffic capture is not in place .*DaemonSet envoy-injector-node/);

      const add = await invoke(node, list, 'ADD', web);
      for (const { type, run } of add.runs) assert.equal(run.code, 0, `${type}: ${run.stdout} ${run.stderr}`);
      const bridge = JSON.parse(add.runs[0]?.run.stdout ?? '{}');
      assert.deepEqual(add.result, { ...bridge, cniVersion }, "the plugin's result is the bridge's, passed through");
      const rules = await natRules(ns);
      assert.match(rules, /-A OUTPUT -p tcp .*-j ENVOY_OUTBOUND/);
      assert.match(rules, /--dports 5432 .*-j RETURN/, "the pod's own exclusions, from its envoy-init flags");

      // Everything else once, with the current spec version: 0.4.0 differs in the runtime's side only.
      if (cniVersion === '1.0.0') {
        // envoy-init in CNI mode, as the injected pod runs it: unprivileged, and the check passes.
        const check = await runInitIptables(ns, ['--capture-mode=cni', '--exclude-outbound-ports=5432', `--exclude-outbound-ip-ranges=${NODE_IP2}/32`], { uid: INIT_UID, noCapabilities: false });
        assert.equal(check.code, 0, check.stderr);
        assert.match(check.stdout, /traffic capture in place .*192\.0\.2\.1:80 was redirected to 15001/);

        await sh('ip', ['-n', node.ns, 'addr', 'add', `${NODE_IP2}/24`, 'dev', 'eicni0']);
        const podIp = podIpOf(add.result as Obj);
        const servers = [
          await startStandIn(ns, PROXY_LISTENERS, { uid: 1337, gid: 1337 }),
          await startStandIn(ns, APP_LISTENERS),
          await startStandIn(node.ns, REMOTE_LISTENERS),
        ];
        t.after(() => servers.forEach((s) => s.exitCode === null && s.kill('SIGKILL')));
        const cases: [string, string, Parameters<typeof connectIn>[1], string][] = [
          ['app UID outbound goes to 15001 with its original destination', ns, { host: NODE_IP, port: 8080, uid: APP_UID }, `outbound(${NODE_IP}:8080)>remote:8080 from ${podIp}`],
          ['proxy UID 1337 outbound is not captured', ns, { host: NODE_IP, port: 8080, uid: 1337 }, `remote:8080 from ${podIp}`],
          ['exclude-outbound-ports', ns, { host: NODE_IP, port: 5432, uid: APP_UID }, `remote:5432 from ${podIp}`],
          ['exclude-outbound-ip-ranges', ns, { host: NODE_IP2, port: 8080, uid: APP_UID }, `remote:8080 from ${podIp}`],
          ['inbound goes to 15006, then to the app from 127.0.0.6', node.ns, { host: podIp, port: 8080 }, `inbound(${podIp}:8080)>app:8080 from 127.0.0.6`],
          ['exclude-inbound-ports', node.ns, { host: podIp, port: 9090 }, `app:9090 from ${NODE_IP}`],
          ['a connection from 127.0.0.6 is not looped', ns, { host: podIp, port: 8080, uid: 1337, bind: '127.0.0.6' }, 'app:8080 from 127.0.0.6'],
        ];
        for (const [name, from, target, expected] of cases) {
          await t.test(name, async () => assert.equal(await connectIn(from, target), expected));
      }

      // ADD twice = once (the runtime retries ADD after a timeout): the nat table is unchanged.
      const again = await invoke(node, { ...list, plugins: [list['plugins'][1]] }, 'ADD', web, { prevResult: add.result as Obj, loopback: false });
      assert.equal(again.runs[0]?.run.code, 0, again.runs[0]?.run.stdout);
      assert.equal(await natRules(ns), rules);

      const checked = await invoke(node, list, 'CHECK', web, { prevResult: add.result as Obj });
      for (const { type, run } of checked.runs) assert.equal(run.code, 0, `${type}: ${run.stdout} ${run.stderr}`);
      // CHECK notices a capture that is not the pod's any more.
      await sh('ip', ['netns', 'exec', ns, 'iptables-nft', '-t', 'nat', '-F', 'ENVOY_OUTBOUND']);
      const broken = await invoke(node, { ...list, plugins: [list['plugins'][1]] }, 'CHECK', web, { prevResult: add.result as Obj });
      const error = JSON.parse(broken.runs[0]?.run.stdout ?? '{}');
      assert.equal(broken.runs[0]?.run.code, 1);
      assert.equal(error.code, 100);
      assert.match(error.msg, /^pod shop\/web: the capture is not as installed: .*ENVOY_OUTBOUND has 0 rules/);

      }
      const del = await invoke(node, list, 'DEL', web, { prevResult: add.result as Obj });
      for (const { type, run } of del.runs) assert.equal(run.code, 0, `${type}: ${run.stdout} ${run.stderr}`);
      assert.doesNotMatch(await natRules(ns), /ENVOY_/, 'DEL removed every chain and jump of ours');
    });
  });
}

describe('pods the plugin does not own (needs root)', () => {
  test('a pod that is not injected, or injected in init mode, is untouched; its result passed through', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    requireCniPlugins();
    const node = await createNode(t, [podObject('plain', { injected: false }), podObject('old', { injected: true, mode: 'init' })]);
    const list = conflist(node, '1.0.0');
    for (const name of ['plain', 'old', 'unknown']) {
      const ns = await node.podNamespace();
      const add = await invoke(node, list, 'ADD', { ns, namespace: 'shop', name });
      for (const { type, run } of add.runs) assert.equal(run.code, 0, `${name}: ${type}: ${run.stdout} ${run.stderr}`);
      assert.deepEqual(add.result, JSON.parse(add.runs[0]?.run.stdout ?? ''));
      assert.doesNotMatch(await natRules(ns), /ENVOY_/, `${name}: nothing installed`);
    }
  });

  test('an unreachable API server leaves other pods working; a pod the runtime says is injected fails with one line', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    requireCniPlugins();
    const node = await createNode(t, []);
    const dead = join(node.dir, 'dead.kubeconfig');
    // Nothing listens on port 1 in the node namespace: connection refused at once.
    writeFileSync(dead, `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`);
    const list = conflist(node, '1.0.0', { kubeconfig: dead });
    const ns = await node.podNamespace();
    const add = await invoke(node, list, 'ADD', { ns, namespace: 'shop', name: 'plain' });
    for (const { type, run } of add.runs) assert.equal(run.code, 0, `${type}: ${run.stdout} ${run.stderr}`);
    assert.match(add.runs[1]?.run.stderr ?? '', /left alone, the API server cannot be asked \(ECONNREFUSED\)/);
    // The pod works: the bridge's address and route are in place, and it reaches the node.
    await startStandIn(node.ns, REMOTE_LISTENERS).then((s) => t.after(() => s.kill('SIGKILL')));
    assert.equal(await connectIn(ns, { host: NODE_IP, port: 8080 }), `remote:8080 from ${podIpOf(add.result as Obj)}`);

    const ns2 = await node.podNamespace();
    const injected = await invoke(node, list, 'ADD', { ns: ns2, namespace: 'shop', name: 'web' }, {
      runtimeConfig: { 'io.kubernetes.cri.pod-annotations': { 'envoy-injector.io/status': '{}' } },
    });
    const run = injected.runs[1]?.run;
    assert.equal(run?.code, 1);
    const error = JSON.parse(run?.stdout ?? '{}');
    assert.equal(error.code, 11);
    assert.match(error.msg, /^pod shop\/web is injected but cannot be read from the API server \(ECONNREFUSED\); retried by the kubelet$/);
  });
});

describe('the CNI protocol (needs root for the namespace)', () => {
  test('VERSION, and errors as the error JSON with a code and one line', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    const node = await createNode(t, []);
    const version = await node.plugin('envoy-injector-cni', { cniVersion: '1.0.0' }, { CNI_COMMAND: 'VERSION' });
    assert.equal(version.code, 0);
    assert.deepEqual(JSON.parse(version.stdout), { cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] });
    const old = await node.plugin('envoy-injector-cni', { cniVersion: '0.2.0', name: 'x', type: 'envoy-injector-cni' }, { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c', CNI_NETNS: '/nonexistent', CNI_IFNAME: 'eth0' });
    assert.equal(old.code, 1);
    assert.equal(JSON.parse(old.stdout).code, 1);
    const unchained = await node.plugin('envoy-injector-cni', { cniVersion: '1.0.0', name: 'x', type: 'envoy-injector-cni' }, { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c', CNI_NETNS: '/nonexistent', CNI_IFNAME: 'eth0' });
    assert.equal(JSON.parse(unchained.stdout).code, 7);
    assert.match(JSON.parse(unchained.stdout).msg, /chained plugin/);
    // DEL of a namespace already gone succeeds (the spec asks DEL to be idempotent).
    const gone = await node.plugin('envoy-injector-cni', { cniVersion: '1.0.0', name: 'x', type: 'envoy-injector-cni' }, { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c', CNI_NETNS: '/var/run/netns/ei-gone', CNI_IFNAME: 'eth0' });
    assert.equal(gone.code, 0, gone.stdout);
  });
});

describe("envoy-init's unprivileged check follows the pod's policy (needs root)", () => {
  test('included and excluded ranges steer the probe; a wrong policy is caught; no outbound capture is reported as unchecked', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    await withTopology(t, {}, async (topo) => {
      const policy = ['--include-outbound-ip-ranges=10.99.0.0/16', '--exclude-outbound-ip-ranges=10.99.0.0/24', '--exclude-outbound-ports=80'];
      // Installed as the CNI plugin does it (root, init-iptables), then checked as envoy-init is in CNI mode.
      const applied = await runInitIptables(topo.pod, policy);
      assert.equal(applied.code, 0, applied.stderr);
      const ok = await runInitIptables(topo.pod, ['--capture-mode=cni', ...policy], { uid: INIT_UID });
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /traffic capture in place .*a connection to 10\.99\.128\.127:443 was redirected to 15001/);
      // A policy that captures what these rules do not: the probe to 192.0.2.1 is not redirected.
      const wrong = await runInitIptables(topo.pod, ['--capture-mode=cni'], { uid: INIT_UID });
      assert.equal(wrong.code, 11, wrong.stdout + wrong.stderr);
      assert.match(wrong.stderr, /^envoy-injector init-iptables: traffic capture is not in place on this node: a connection to 192\.0\.2\.1:80 was not redirected/);
      const none = await runInitIptables(topo.pod, ['--capture-mode=cni', '--include-outbound-ip-ranges='], { uid: INIT_UID });
      assert.equal(none.code, 0, none.stderr);
      assert.match(none.stdout, /traffic capture not checked: the pod captures no outbound IPv4 traffic/);
    });
  });
});
