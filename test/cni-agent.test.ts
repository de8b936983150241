// The node agent (`envoy-injector cni-node`) on a temporary node layout: real conflist files of a
// bridge setup and of Calico, the plugin added last and kept valid, idempotent, put back when the
// primary CNI rewrites its file, the kubeconfig rewritten when the token rotates, and everything of
// its own removed on SIGTERM. The agent runs as a real process.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { addPlugin, pluginEntry, primaryConfig, removePlugin } from '../src/cni/conflist.ts';
import { waitFor } from './support/envtest.ts';

const TIMEOUT = { timeout: 120_000 };
const MAIN = new URL('../src/main.ts', import.meta.url).pathname;
const REPO = new URL('../', import.meta.url).pathname;

const BRIDGE = {
  cniVersion: '1.0.0',
  name: 'bridge',
  plugins: [
    { type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.0.0/24' }]] } },
    { type: 'portmap', capabilities: { portMappings: true } },
  ],
};
// As Calico's install-cni writes it (abridged), with fields the agent must keep as they are.
const CALICO = {
  name: 'k8s-pod-network',
  cniVersion: '0.3.1',
  plugins: [
    {
      type: 'calico',
      log_level: 'info',
      datastore_type: 'kubernetes',
      nodename: 'node-1',
      mtu: 0,
      ipam: { type: 'calico-ipam' },
      policy: { type: 'k8s' },
      kubernetes: { kubeconfig: '/etc/cni/net.d/calico-kubeconfig' },
    },
    { type: 'portmap', snat: true, capabilities: { portMappings: true } },
    { type: 'bandwidth', capabilities: { bandwidth: true } },
  ],
};
const ENTRY = pluginEntry({ kubeconfig: '/etc/cni/net.d/envoy-injector-cni.kubeconfig', excludedNamespaces: ['envoy-injector'] });

test('the first configuration in lexical order is the one edited', () => {
  assert.equal(primaryConfig(['99-loopback.conf', '10-calico.conflist', 'calico-kubeconfig', '.hidden.conflist', '05-x.json']), '05-x.json');
  assert.equal(primaryConfig(['envoy-injector-cni.kubeconfig']), undefined);
});

for (const [name, list] of [['bridge', BRIDGE], ['calico', CALICO]] as const) {
  test(`${name}: added last, everything else kept; added twice = once; removed exactly`, () => {
    const text = `${JSON.stringify(list, null, 2)}\n`;
    const added = addPlugin('10-x.conflist', text, ENTRY);
    assert.ok(added.ok && added.changed);
    const parsed = JSON.parse(added.text);
    assert.deepEqual(parsed, { ...list, plugins: [...list.plugins, ENTRY] });
    const again = addPlugin('10-x.conflist', added.text, ENTRY);
    assert.ok(again.ok && !again.changed && again.text === added.text);
    const removed = removePlugin('10-x.conflist', added.text);
    assert.ok(removed.ok && removed.changed);
    assert.deepEqual(JSON.parse(removed.text), list);
  });
}

test('a single-plugin .conf becomes a conflist; a file that is not a configuration is refused with the reason', () => {
  const added = addPlugin('10-flannel.conf', JSON.stringify({ cniVersion: '0.3.1', name: 'cbr0', type: 'flannel', delegate: { isDefaultGateway: true } }), ENTRY);
  assert.ok(added.ok);
  assert.deepEqual(JSON.parse(added.text), { cniVersion: '0.3.1', name: 'cbr0', plugins: [{ type: 'flannel', delegate: { isDefaultGateway: true } }, ENTRY] });
  const bad = addPlugin('10-x.conflist', '{"plugins": ', ENTRY);
  assert.ok(!bad.ok);
  assert.match(bad.error, /^10-x\.conflist is not JSON/);
});

test('the agent installs, keeps itself in the conflist, follows token rotation, and uninstalls on SIGTERM', TIMEOUT, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'ei-agent-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const dirs = { bin: join(root, 'opt/cni/bin'), conf: join(root, 'etc/cni/net.d'), install: join(root, 'opt/envoy-injector-cni'), app: join(root, 'app'), sa: join(root, 'sa') };
  for (const dir of Object.values(dirs)) mkdirSync(dir, { recursive: true });
  mkdirSync(join(dirs.app, 'dist'), { recursive: true });
  writeFileSync(join(dirs.app, 'package.json'), '{"name":"envoy-injector"}\n');
  writeFileSync(join(dirs.app, 'dist/main.js'), '// the app\n');
  writeFileSync(join(dirs.sa, 'token'), 'token-1\n');
  writeFileSync(join(dirs.sa, 'ca.crt'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  const conflist = join(dirs.conf, '10-calico.conflist');
  writeFileSync(conflist, JSON.stringify(CALICO, null, 2));
  writeFileSync(join(dirs.conf, '99-loopback.conf'), JSON.stringify({ cniVersion: '0.3.1', name: 'lo', type: 'loopback' }));

  const agent = spawn(
    process.execPath,
    ['--import', 'tsx', MAIN, 'cni-node', `--cni-bin-dir=${dirs.bin}`, `--cni-conf-dir=${dirs.conf}`, `--install-dir=${dirs.install}`,
      '--host-install-dir=/opt/envoy-injector-cni', `--token-file=${dirs.sa}/token`, `--ca-file=${dirs.sa}/ca.crt`, `--app-dir=${dirs.app}`,
      '--excluded-namespaces=envoy-injector,kube-system', '--resync-seconds=1'],
    { cwd: REPO, env: { ...process.env, KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  agent.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
  agent.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
  const exited = new Promise<number | null>((resolve) => agent.on('exit', (code) => resolve(code)));
  t.after(() => {
    if (agent.exitCode === null) agent.kill('SIGKILL');
  });
  const pluginsOf = () => (JSON.parse(readFileSync(conflist, 'utf8')).plugins as { type: string }[]).map((p) => p.type);
  const kubeconfig = join(dirs.conf, 'envoy-injector-cni.kubeconfig');

  await waitFor('the plugin in the conflist', async () => (existsSync(conflist) && pluginsOf().at(-1) === 'envoy-injector-cni' ? true : undefined), { timeoutMs: 60_000 });
  assert.deepEqual(pluginsOf(), ['calico', 'portmap', 'bandwidth', 'envoy-injector-cni']);
  const launcher = readFileSync(join(dirs.bin, 'envoy-injector-cni'), 'utf8');
  assert.match(launcher, /^#!\/bin\/sh\n/);
  assert.match(launcher, /exec "\/opt\/envoy-injector-cni\/node" "\/opt\/envoy-injector-cni\/app\/dist\/main\.js" cni\n/);
  assert.equal(statSync(join(dirs.bin, 'envoy-injector-cni')).mode & 0o777, 0o755);
  assert.ok(existsSync(join(dirs.install, 'node')) && existsSync(join(dirs.install, 'app/dist/main.js')));
  const config = parseYaml(readFileSync(kubeconfig, 'utf8'));
  assert.equal(config.clusters[0].cluster.server, 'https://10.96.0.1:443');
  assert.equal(config.users[0].user.token, 'token-1');
  assert.equal(statSync(kubeconfig).mode & 0o777, 0o600, 'the kubeconfig holds a token: root only');
  const entry = JSON.parse(readFileSync(conflist, 'utf8')).plugins[3];
  assert.deepEqual(entry.excludedNamespaces, ['envoy-injector', 'kube-system']);
  assert.equal(entry.kubeconfig, '/etc/cni/net.d/envoy-injector-cni.kubeconfig');

  // The primary CNI rewrites its configuration (Calico does on every restart): the agent puts itself back.
  writeFileSync(conflist, JSON.stringify(CALICO, null, 2));
  await waitFor('the plugin back in the conflist', async () => (pluginsOf().at(-1) === 'envoy-injector-cni' ? true : undefined), { timeoutMs: 60_000 });
  assert.equal(pluginsOf().filter((p) => p === 'envoy-injector-cni').length, 1);

  // The kubelet rotates the projected token: the kubeconfig follows.
  writeFileSync(join(dirs.sa, 'token'), 'token-2\n');
  await waitFor('the rotated token', async () => (parseYaml(readFileSync(kubeconfig, 'utf8')).users[0].user.token === 'token-2' ? true : undefined), { timeoutMs: 60_000 });

  agent.kill('SIGTERM');
  assert.equal(await exited, 0, output);
  assert.deepEqual(JSON.parse(readFileSync(conflist, 'utf8')), CALICO, 'the conflist is as Calico wrote it');
  assert.ok(!existsSync(kubeconfig) && !existsSync(join(dirs.bin, 'envoy-injector-cni')) && !existsSync(dirs.install), output);
  assert.deepEqual(readdirSync(dirs.conf).sort(), ['10-calico.conflist', '99-loopback.conf']);
});
