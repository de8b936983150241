// The real-API-server harness itself (test/support/envtest.ts): how KUBEBUILDER_ASSETS is read, and
// that a started etcd + kube-apiserver answers as admin, holds nothing of the proxy environment, and
// is gone — processes and temporary directory — once stopped.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  ASSETS_ENV,
  assetDirectories,
  EnvtestSetupError,
  parseKubeVersion,
  parseWarningHeaders,
  resolveAssets,
  startEnvtest,
} from './support/envtest.ts';

test('KUBEBUILDER_ASSETS: a directory of binaries, a directory of version directories, or several joined by ":"', () => {
  const files = new Set(['/a/kube-apiserver', '/versions/1.26.1-linux-amd64/kube-apiserver', '/versions/1.30.0-linux-amd64/kube-apiserver']);
  const dirs: Record<string, string[]> = { '/versions': ['1.30.0-linux-amd64', '1.26.1-linux-amd64', 'README'], '/empty': [] };
  const exists = (path: string) => files.has(path);
  const list = (dir: string) => {
    const entries = dirs[dir];
    if (entries === undefined) throw new Error('ENOENT');
    return [...entries];
  };
  assert.deepEqual(assetDirectories('/a', exists, list), ['/a']);
  assert.deepEqual(assetDirectories('/versions', exists, list), ['/versions/1.26.1-linux-amd64', '/versions/1.30.0-linux-amd64']);
  assert.deepEqual(assetDirectories('/a:/versions/1.30.0-linux-amd64:', exists, list), ['/a', '/versions/1.30.0-linux-amd64']);
  assert.throws(() => assetDirectories('/empty', exists, list), (e: Error) => e instanceof EnvtestSetupError && /holds no kube-apiserver/.test(e.message));
  assert.throws(() => assetDirectories('/a:/nowhere', exists, list), /\/nowhere, which does not exist/);
});

test('unset or empty KUBEBUILDER_ASSETS means no versions (the suites are skipped loudly); a broken one is an error, never a skip', () => {
  assert.deepEqual(resolveAssets({}), []);
  assert.deepEqual(resolveAssets({ [ASSETS_ENV]: ' ' }), []);
  const dir = mkdtempSync(join(tmpdir(), 'envtest-assets-'));
  try {
    assert.throws(() => resolveAssets({ [ASSETS_ENV]: dir, PATH: '' }), /holds no kube-apiserver/);
    // A kube-apiserver that is not executable, then one without etcd anywhere.
    writeFileSync(join(dir, 'kube-apiserver'), '#!/bin/sh\necho "Kubernetes v1.29.3"\n');
    assert.throws(() => resolveAssets({ [ASSETS_ENV]: dir, PATH: '' }), /is not an executable file/);
    chmodSync(join(dir, 'kube-apiserver'), 0o755);
    assert.throws(() => resolveAssets({ [ASSETS_ENV]: dir, PATH: '' }), /no etcd beside .*apt-get install etcd-server/);
    // etcd beside it: the version comes from `kube-apiserver --version`.
    writeFileSync(join(dir, 'etcd'), '#!/bin/sh\n', { mode: 0o755 });
    const [assets] = resolveAssets({ [ASSETS_ENV]: dir, PATH: '' });
    assert.equal(assets?.version, 'v1.29.3');
    assert.equal(assets?.minor, 29);
    assert.equal(assets?.etcd, join(dir, 'etcd'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('versions and Warning headers are read as the binaries and the API server write them', () => {
  assert.deepEqual(parseKubeVersion('Kubernetes v1.30.0\n'), { version: 'v1.30.0', major: 1, minor: 30 });
  assert.deepEqual(parseKubeVersion('Kubernetes v1.26.1-dirty'), { version: 'v1.26.1-dirty', major: 1, minor: 26 });
  assert.equal(parseKubeVersion('no version'), undefined);
  assert.deepEqual(parseWarningHeaders(['299 - "a \\"quoted\\" word"', '299 - "one", 299 - "two"']), ['a "quoted" word', 'one', 'two']);
  assert.deepEqual(parseWarningHeaders(undefined), []);
});

const [first] = (() => {
  try {
    return resolveAssets();
  } catch {
    // describeApiServers in the other suites reports a broken KUBEBUILDER_ASSETS.
    return [];
  }
})();

test(
  'startEnvtest: a ready API server, admin access, a namespace with its default ServiceAccount, and nothing left once stopped',
  { skip: first === undefined ? `${ASSETS_ENV} is not set (see README "Development")` : false, timeout: 300_000 },
  async () => {
    if (first === undefined) return;
    const saved = process.env['HTTPS_PROXY'];
    // A proxy the children must not use: nothing listens there.
    process.env['HTTPS_PROXY'] = 'http://127.0.0.1:9';
    const envtest = await startEnvtest(first).finally(() => {
      if (saved === undefined) delete process.env['HTTPS_PROXY'];
      else process.env['HTTPS_PROXY'] = saved;
    });
    let stopped = false;
    try {
      const version = await envtest.ok('GET', '/version');
      assert.equal(version.gitVersion, first.version);
      await envtest.createNamespace('harness', { team: 'a' });
      const sa = await envtest.ok('GET', '/api/v1/namespaces/harness/serviceaccounts/default');
      assert.equal(sa.metadata.name, 'default');
      const kubectl = await envtest.kubectl(['get', 'namespace', 'harness', '-o', 'jsonpath={.metadata.labels.team}']);
      assert.equal(kubectl.code, 0, kubectl.stderr);
      assert.equal(kubectl.stdout, 'a');
      // Token authentication is on: an unknown token is refused.
      const denied = await envtest.request('GET', '/api/v1/namespaces', undefined, { token: 'not-a-token' });
      assert.equal(denied.status, 401);
      const pids = envtestPids(envtest.dir);
      assert.ok(pids.length >= 2, `etcd and kube-apiserver run (found ${pids.length} processes using ${envtest.dir})`);
      for (const pid of pids) assert.ok(!environmentOf(pid).includes('HTTPS_PROXY'), `process ${pid} runs without the proxy variables`);
      await envtest.stop();
      stopped = true;
      assert.ok(!existsSync(envtest.dir), 'the temporary directory is removed');
      assert.deepEqual(pids.filter((pid) => existsSync(`/proc/${pid}`)), [], 'etcd and kube-apiserver are gone');
    } finally {
      if (!stopped) await envtest.stop();
    }
  },
);

/** PIDs of processes whose command line names `dir` (the children started for it). */
function envtestPids(dir: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        return readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(dir);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

/** The environment variable names of a process. */
function environmentOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/environ`, 'utf8')
    .split('\0')
    .map((entry) => entry.slice(0, entry.indexOf('=')));
}
