// The bootstrap rendered in the pod (SPEC.md §4), proven with the real `init-iptables` in network
// namespaces this file creates: it is run with the flags the injector rendered into a pod's envoy-init
// (only the two mount paths pointed at a temporary directory, as no volume is mounted here), the
// downward-API environment the kubelet would give it and a labels file in the kubelet's format. The
// file it writes is checked strictly against Envoy's v3 protos, compared byte for byte with what
// `envoy-injector bootstrap -f` prints for the same pod, and follows the pod's IPv6: listeners on
// `[::]` in a namespace with IPv6, none in one where `net.ipv6.conf.all.disable_ipv6=1`.
//
// NEEDS ROOT (see test/support/netns.ts): not root, these tests fail saying so, unless
// NETNS_TESTS=skip asks to skip them.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { main, reportError } from '../src/cli.ts';
import { BOOTSTRAP_DIR, BOOTSTRAP_FILES, INIT_CONTAINER_NAME, PODINFO_DIR, PODINFO_LABELS_FILE } from '../src/constants.ts';
import { admissionContext } from '../src/core/context.ts';
import { injectPod } from '../src/core/inject.ts';
import { holdScript, drainScript } from '../src/core/sidecar.ts';
import type { InjectorRuntime } from '../src/core/types.ts';
import { VERSION } from '../src/version.ts';
import { testConfig } from './support/config.ts';
import { assertBootstrapContract, assertValidBootstrap } from './support/envoy-proto-check.ts';
import { requireRootAndTools, runInitIptables, withTopology, type Topology } from './support/netns.ts';

type Obj = Record<string, any>;

const TIMEOUT = { timeout: 180_000 };
/** The version init-iptables runs with (its own), so `bootstrap -f` renders as the same version. */
const RUNTIME: InjectorRuntime = { version: VERSION, nativeSidecarSupported: false };
// No cluster here: the CLI must not look for one.
Object.assign(process.env, { HOME: '/nonexistent', KUBECONFIG: '', ENVOY_INJECTOR_NATIVE_SIDECAR: 'false' });

const LABELS = { app: 'web', 'app.kubernetes.io/version': '1.2', tier: 'front' };

function injected(annotations: Record<string, string> = {}): Obj {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-0', namespace: 'shop', labels: LABELS, annotations },
    spec: { serviceAccountName: 'web', containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 8080 }] }] },
  };
  const result = injectPod(pod, admissionContext({ namespace: 'shop' }), testConfig(), RUNTIME);
  assert.ok(result.pod, 'injected');
  return result.pod as Obj;
}

/** The labels file as the kubelet writes it: `key="value"` per label, sorted, Go-quoted, no final newline. */
const kubeletLabelsFile = (labels: Record<string, string>): string =>
  Object.keys(labels)
    .sort()
    .map((key) => `${key}=${JSON.stringify(labels[key])}`)
    .join('\n');

/**
 * A scratch directory standing in for the pod's two volumes, removed after the test. The bootstrap
 * directory is root's and 0755 (the kubelet's emptyDir is 0777; this one lets a test show what an
 * envoy-init that cannot write it says), the labels file readable by all.
 */
function volumes(t: TestContext): { bootstrapDir: string; labelsPath: string } {
  const root = mkdtempSync(join(tmpdir(), 'ei-bootstrap-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  chmodSync(root, 0o755);
  const bootstrapDir = join(root, 'envoy-bootstrap');
  mkdirSync(bootstrapDir, { mode: 0o755 });
  const labelsPath = join(root, 'labels');
  writeFileSync(labelsPath, kubeletLabelsFile(LABELS), { mode: 0o644 });
  return { bootstrapDir, labelsPath };
}

/** envoy-init's args as the injector rendered them, the mount paths pointed at `dirs`. */
function initArgs(pod: Obj, dirs: { bootstrapDir: string; labelsPath: string }): string[] {
  const init = (pod['spec']['initContainers'] as Obj[]).find((c) => c['name'] === INIT_CONTAINER_NAME) as Obj;
  const args = (init['args'] as string[]).slice(1);
  assert.ok(args.includes(`--bootstrap-dir=${BOOTSTRAP_DIR}`), 'the injector asks envoy-init to render the bootstrap');
  assert.ok(args.includes(`--pod-labels-path=${PODINFO_DIR}/${PODINFO_LABELS_FILE}`));
  return args.map((arg) =>
    arg === `--bootstrap-dir=${BOOTSTRAP_DIR}`
      ? `--bootstrap-dir=${dirs.bootstrapDir}`
      : arg === `--pod-labels-path=${PODINFO_DIR}/${PODINFO_LABELS_FILE}`
        ? `--pod-labels-path=${dirs.labelsPath}`
        : arg,
  );
}

/** The downward-API environment the kubelet gives envoy-init in that pod. */
const downwardEnv = (ips: string) => ({ POD_NAME: 'web-0', POD_NAMESPACE: 'shop', INSTANCE_IPS: ips, NODE_NAME: 'node-7', SERVICE_ACCOUNT: 'web' });

/** Runs `envoy-injector bootstrap -f` on `pod` in this process; returns what it prints. */
async function bootstrapCommand(pod: Obj, t: TestContext): Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ei-bootstrap-pod-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'pod.json');
  writeFileSync(file, JSON.stringify(pod));
  let stdout = '';
  let stderr = '';
  const io = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } };
  const code = await main(['bootstrap', '-f', file], io).catch((error: unknown) => reportError(error, io));
  return { code, stdout, stderr };
}

async function natRules(topo: Topology, family: 4 | 6): Promise<string> {
  return topo.exec(topo.pod, family === 4 ? 'iptables-nft-save' : 'ip6tables-nft-save', ['-t', 'nat']);
}

describe('the bootstrap envoy-init renders in the pod (needs root)', () => {
  test('a pod with IPv6: [::] listeners, valid, and byte for byte what bootstrap -f prints for that pod', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    await withTopology(t, { ipv6: true }, async (topo) => {
      const pod = injected();
      const dirs = volumes(t);
      const ips = `${topo.podIp},${topo.podIp6}`;
      const run = await runInitIptables(topo.pod, initArgs(pod, dirs), { env: downwardEnv(ips) });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /bootstrap written to .* \(bootstrap\.json, hold\.sh, drain\.sh\): listeners on IPv4 and IPv6\n/);
      assert.match(run.stdout, /traffic capture installed with nft \(IPv4 and IPv6\)/);
      const text = readFileSync(join(dirs.bootstrapDir, BOOTSTRAP_FILES.bootstrap), 'utf8');
      const bootstrap = JSON.parse(text) as Obj;
      assertValidBootstrap(bootstrap);
      assertBootstrapContract(bootstrap);
      assert.ok(text.includes('"address": "::"'), 'listeners on [::]');
      assert.deepEqual(bootstrap['node']['metadata']['LABELS'], LABELS, 'the labels, read from the downward-API file');
      assert.equal(bootstrap['node']['id'], 'web-0.shop');
      assert.equal(bootstrap['node']['metadata']['INSTANCE_IPS'], ips);

      // The same pod as the API server holds it once running: bootstrap -f prints exactly the file.
      const running = { ...pod, spec: { ...pod['spec'], nodeName: 'node-7' }, status: { podIPs: [{ ip: topo.podIp }, { ip: topo.podIp6 }] } };
      const printed = await bootstrapCommand(running, t);
      assert.equal(printed.code, 0, printed.stderr);
      assert.equal(printed.stderr, '', 'nothing unknown, nothing assumed');
      assert.equal(printed.stdout, text, 'bootstrap -f prints byte for byte what envoy-init wrote');

      // The hooks beside it, world-readable for envoy's UID.
      assert.equal(readFileSync(join(dirs.bootstrapDir, BOOTSTRAP_FILES.hold), 'utf8'), holdScript());
      assert.equal(readFileSync(join(dirs.bootstrapDir, BOOTSTRAP_FILES.drain), 'utf8'), drainScript());
      for (const file of Object.values(BOOTSTRAP_FILES)) assert.equal(statSync(join(dirs.bootstrapDir, file)).mode & 0o777, 0o644, file);

      // A rerun (envoy-init again in a new sandbox) rewrites the same files and leaves nothing else.
      const again = await runInitIptables(topo.pod, initArgs(pod, dirs), { env: downwardEnv(ips) });
      assert.equal(again.code, 0, again.stderr);
      assert.equal(readFileSync(join(dirs.bootstrapDir, BOOTSTRAP_FILES.bootstrap), 'utf8'), text);
      assert.deepEqual(readdirSync(dirs.bootstrapDir).sort(), Object.values(BOOTSTRAP_FILES).sort(), 'no temporary file left');
    });
  });

  test('a pod whose IPv6 is disabled (disable_ipv6=1): no [::] anywhere, IPv4 rules only; ipv6 true fails instead', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    await withTopology(t, {}, async (topo) => {
      await topo.exec(topo.pod, 'sysctl', ['-w', 'net.ipv6.conf.all.disable_ipv6=1']);
      const pod = injected();
      const dirs = volumes(t);
      const run = await runInitIptables(topo.pod, initArgs(pod, dirs), { env: downwardEnv(topo.podIp) });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /IPv6: IPv6 is disabled in this pod \(no IPv6 address, not even ::1\); IPv4 only/);
      assert.match(run.stdout, /listeners on IPv4 only\n/);
      assert.match(run.stdout, /traffic capture installed with nft \(IPv4\)/);
      const text = readFileSync(join(dirs.bootstrapDir, BOOTSTRAP_FILES.bootstrap), 'utf8');
      assert.ok(!text.includes('::'), 'no IPv6 address in the bootstrap');
      const bootstrap = JSON.parse(text) as Obj;
      assertValidBootstrap(bootstrap);
      assertBootstrapContract(bootstrap);
      assert.equal(bootstrap['node']['metadata']['IPV6_CAPTURE'], false);
      assert.match(await natRules(topo, 4), /ENVOY_OUTBOUND/);
      assert.doesNotMatch(await natRules(topo, 6), /ENVOY_/, 'no IPv6 rules either');

      // The same pod asking for IPv6 (annotation ipv6: "true") fails before writing or applying anything.
      const forced = injected({ 'envoy-injector.io/ipv6': 'true' });
      const other = volumes(t);
      await topo.exec(topo.pod, 'iptables-nft', ['-t', 'nat', '-F']);
      const failed = await runInitIptables(topo.pod, initArgs(forced, other), { env: downwardEnv(topo.podIp) });
      assert.equal(failed.code, 8);
      assert.match(failed.stderr, /^envoy-injector init-iptables: IPv6 is required \(--ipv6=true, .*\) but IPv6 is disabled in this pod .*\n$/);
      assert.deepEqual(readdirSync(other.bootstrapDir), [], 'nothing written');
    });
  });

  test('a missing volume, pod fact or labels file is one clear line and exit 9, before anything is applied', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    await withTopology(t, {}, async (topo) => {
      const pod = injected();
      const dirs = volumes(t);
      const env = downwardEnv(topo.podIp);
      const cases: [string, string[], Record<string, string>, RegExp][] = [
        [
          'no bootstrap directory',
          initArgs(pod, { ...dirs, bootstrapDir: join(dirs.bootstrapDir, 'missing') }),
          env,
          /^envoy-injector init-iptables: cannot render the bootstrap: .*\/missing: no such file or directory \(is the envoy-bootstrap volume mounted\?\)\n$/,
        ],
        [
          'a file where the directory should be',
          initArgs(pod, { ...dirs, bootstrapDir: dirs.labelsPath }),
          env,
          /^envoy-injector init-iptables: cannot render the bootstrap: .*labels is not a directory\n$/,
        ],
        [
          'no labels file',
          initArgs(pod, { ...dirs, labelsPath: join(dirs.bootstrapDir, 'nolabels') }),
          env,
          /^envoy-injector init-iptables: cannot render the bootstrap: cannot read the pod's labels from .*nolabels: no such file or directory \(is the envoy-podinfo volume mounted\?\)\n$/,
        ],
        [
          'no downward-API environment',
          initArgs(pod, dirs),
          { ...env, NODE_NAME: '', POD_NAME: '' },
          /^envoy-injector init-iptables: cannot render the bootstrap: the environment lacks POD_NAME, NODE_NAME \(the injector sets them from the downward API/,
        ],
      ];
      for (const [name, args, runEnv, message] of cases) {
        // An empty value stands for an unset variable here (the test process may have it set).
        const unset = Object.entries(runEnv).filter(([, v]) => v === '').map(([k]) => k);
        const run = await runInitIptables(topo.pod, args, { env: Object.fromEntries(Object.entries(runEnv).filter(([, v]) => v !== '')), unset });
        assert.equal(run.code, 9, `${name}: ${run.stderr}`);
        assert.match(run.stderr, message, name);
        assert.doesNotMatch(await natRules(topo, 4), /ENVOY_/, `${name}: nothing applied`);
      }
      // Unwritable: envoy-init as another user than the directory's owner (0755, root's).
      const unwritable = await runInitIptables(topo.pod, initArgs(pod, dirs), { env, uid: 4242 });
      assert.equal(unwritable.code, 9, unwritable.stderr);
      assert.match(unwritable.stderr, /cannot write .*bootstrap\.json: permission denied \(envoy-init must be able to write the envoy-bootstrap volume\)\n$/);
      assert.ok(!existsSync(join(dirs.bootstrapDir, BOOTSTRAP_FILES.bootstrap)));
    });
  });

  test('without --bootstrap-dir (init-iptables by hand on a host) nothing is written and no pod fact is needed', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    await withTopology(t, {}, async (topo) => {
      const run = await runInitIptables(topo.pod, ['--exclude-inbound-ports=9090'], { unset: ['POD_NAME', 'POD_NAMESPACE'] });
      assert.equal(run.code, 0, run.stderr);
      assert.doesNotMatch(run.stdout, /bootstrap/);
      assert.match(run.stdout, /traffic capture installed/);
    });
  });
});
