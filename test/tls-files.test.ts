// tls.mode files: certificates mounted from a Secret are reloaded while the webhook serves real
// admission requests over TLS — no request fails, open connections keep working, new connections get
// the new certificate, and material that does not validate is never served.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startInjector, type RunningInjector } from '../src/serve.ts';
import { generateCa, generateServingCert } from '../src/tls/certificates.ts';
import { testConfig, testRuntime } from './support/config.ts';
import { captureLogger, eventually, httpsRequest, SERVICE_HOST } from './support/fake-apiserver-cluster.ts';
import { decodeResponse, reviewFor } from './support/review.ts';

const POD = { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'web-' }, spec: { containers: [{ name: 'web', image: 'nginx' }] } };
const REVIEW = JSON.stringify(reviewFor(POD));

/**
 * A directory written the way the kubelet writes a Secret volume: the files live in a hidden
 * timestamped directory, `..data` is a symlink to it, `tls.crt` and `tls.key` are symlinks through
 * `..data`, and an update swaps `..data` atomically with a rename.
 */
class SecretVolume {
  readonly dir = mkdtempSync(join(tmpdir(), 'envoy-injector-secret-volume-'));
  #generation = 0;
  #current: string | undefined;

  write(files: Record<string, string>): void {
    const name = `..2025_01_01_00_00_00.${String(++this.#generation).padStart(9, '0')}`;
    mkdirSync(join(this.dir, name));
    for (const [file, content] of Object.entries(files)) writeFileSync(join(this.dir, name, file), content, { mode: 0o644 });
    symlinkSync(name, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    for (const file of Object.keys(files)) {
      try {
        symlinkSync(join('..data', file), join(this.dir, file));
      } catch {
        // Already linked through ..data.
      }
    }
    if (this.#current !== undefined) rmSync(join(this.dir, this.#current), { recursive: true });
    this.#current = name;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const ca = await generateCa();
async function servingPair(): Promise<{ 'tls.crt': string; 'tls.key': string; fingerprint: string }> {
  const serving = await generateServingCert(ca, [SERVICE_HOST, 'localhost']);
  return { 'tls.crt': serving.cert, 'tls.key': serving.key, fingerprint: new X509Certificate(serving.cert).fingerprint256 };
}

async function startFilesMode(dir: string, env: Record<string, string> = {}): Promise<{ injector: RunningInjector; lines: Record<string, any>[] }> {
  const base = testConfig({ ENVOY_INJECTOR_TLS_MODE: 'files', ENVOY_INJECTOR_TLS_CERT_DIR: dir, ENVOY_INJECTOR_TLS_RESYNC_SECONDS: '5', ...env });
  const config = { ...base, server: { ...base.server, host: '127.0.0.1', port: 0 } };
  const { logger, lines } = captureLogger('info');
  return { injector: await startInjector(config, { logger, runtime: testRuntime }), lines };
}

test('rotating the mounted certificate under load: no failed request, new connections get the new certificate', async (t) => {
  const volume = new SecretVolume();
  const first = await servingPair();
  volume.write({ 'tls.crt': first['tls.crt'], 'tls.key': first['tls.key'], 'ca.crt': ca.cert });
  const { injector, lines } = await startFilesMode(volume.dir);
  const port = (injector.app.server.address() as { port: number }).port;
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 3 });
  const failures: string[] = [];
  const fresh = new Set<string>();
  let requests = 0;
  let reused = 0;
  let stop = false;
  const load = async (agent: Agent | undefined) => {
    while (!stop) {
      try {
        const result = await httpsRequest(port, '/mutate', { ca: ca.cert, method: 'POST', body: REVIEW, ...(agent === undefined ? {} : { agent }) });
        requests++;
        if (result.reused) reused++;
        else fresh.add(result.fingerprint);
        if (result.status !== 200 || decodeResponse(JSON.parse(result.body)).allowed !== true) failures.push(`status ${result.status}`);
      } catch (error) {
        failures.push((error as Error).message);
      }
    }
  };
  try {
    assert.equal(injector.tls.current()?.fingerprint, first.fingerprint);
    assert.deepEqual(injector.tls.readiness(), { ready: true });
    // Three kept-alive connections and two new connections per request, in parallel.
    const loops = [load(keepAlive), load(keepAlive), load(keepAlive), load(undefined), load(undefined)];
    await eventually('load running', () => requests > 30);

    let previous = first;
    for (let rotation = 1; rotation <= 3; rotation++) {
      const next = await servingPair();
      volume.write({ 'tls.crt': next['tls.crt'], 'tls.key': next['tls.key'], 'ca.crt': ca.cert });
      await eventually(`rotation ${rotation} served to new connections`, () => fresh.has(next.fingerprint));
      assert.equal(injector.tls.current()?.fingerprint, next.fingerprint);
      assert.equal(injector.tls.certificateNotAfter()?.getTime(), new Date(new X509Certificate(next['tls.crt']).validTo).getTime());
      assert.notEqual(next.fingerprint, previous.fingerprint);
      previous = next;
      const at = requests;
      await eventually('more requests after the rotation', () => requests > at + 30);
    }

    // A pair that does not belong together (an admin mistake) is refused; the last good one stays.
    const stray = await servingPair();
    volume.write({ 'tls.crt': stray['tls.crt'], 'tls.key': previous['tls.key'], 'ca.crt': ca.cert });
    await eventually('the refusal is logged', () => lines.some((l) => l['msg'] === 'new certificate files refused; still serving the previous certificate'));
    const refusal = lines.find((l) => l['msg'] === 'new certificate files refused; still serving the previous certificate');
    assert.match(refusal?.['problem'], /the private key does not match the certificate/);
    const after = await httpsRequest(port, '/readyz', { ca: ca.cert });
    assert.equal(after.fingerprint, previous.fingerprint);
    assert.equal(after.status, 200);

    stop = true;
    await Promise.all(loops);
    assert.deepEqual(failures, [], `${failures.length} of ${requests} requests failed`);
    t.diagnostic(`${requests} admission requests over TLS (${reused} on kept-alive connections), 3 rotations, ${failures.length} failed`);
    assert.ok(reused > 0 && requests - reused > 0, `both kept-alive (${reused}) and new (${requests - reused}) connections were used`);
    assert.ok(!fresh.has(stray.fingerprint));
    assert.equal(lines.filter((l) => l['msg'] === 'serving certificate reloaded').length, 3);
  } finally {
    stop = true;
    keepAlive.destroy();
    await injector.close();
    volume.remove();
  }
});

test('files written one after the other (not atomically) are picked up once both match', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-plain-'));
  try {
    const first = await servingPair();
    writeFileSync(join(dir, 'tls.crt'), first['tls.crt']);
    writeFileSync(join(dir, 'tls.key'), first['tls.key']);
    const { injector } = await startFilesMode(dir);
    try {
      const port = (injector.app.server.address() as { port: number }).port;
      const next = await servingPair();
      writeFileSync(join(dir, 'tls.crt'), next['tls.crt']);
      // The new certificate with the old key is never served (a re-read now refuses it).
      await injector.tls.resync();
      assert.equal(injector.tls.current()?.fingerprint, first.fingerprint);
      writeFileSync(join(dir, 'tls.key'), next['tls.key']);
      await eventually('the new pair is served', () => injector.tls.current()?.fingerprint === next.fingerprint);
      assert.equal((await httpsRequest(port, '/readyz', { ca: ca.cert })).fingerprint, next.fingerprint);
    } finally {
      await injector.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('no certificate yet: a placeholder serves /healthz, /readyz says what is missing, then the files arrive', async () => {
  const volume = new SecretVolume();
  try {
    const { injector } = await startFilesMode(volume.dir);
    try {
      const port = (injector.app.server.address() as { port: number }).port;
      const readiness = injector.tls.readiness();
      assert.equal(readiness.ready, false);
      assert.match(readiness.reason ?? '', /no usable certificate in .*: .*tls\.crt does not exist/);
      assert.equal(injector.tls.certificateNotAfter(), undefined);
      const { get } = await import('node:https');
      const status = (path: string) =>
        new Promise<number>((resolve, reject) =>
          get({ host: '127.0.0.1', port, path, rejectUnauthorized: false }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          }).on('error', reject),
        );
      assert.equal(await status('/healthz'), 200);
      assert.equal(await status('/readyz'), 503);

      const pair = await servingPair();
      volume.write({ 'tls.crt': pair['tls.crt'], 'tls.key': pair['tls.key'] });
      await eventually('the certificate is loaded', () => injector.tls.readiness().ready, 30_000);
      const result = await httpsRequest(port, '/readyz', { ca: ca.cert });
      assert.equal(result.status, 200);
      assert.equal(result.fingerprint, pair.fingerprint);
    } finally {
      await injector.close();
    }
  } finally {
    volume.remove();
  }
});

test('a certificate that does not name the Service (or a configured name) is not served: not ready, saying what is missing', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-names-'));
  const write = (pair: { cert: string; key: string }) => {
    writeFileSync(join(dir, 'tls.crt'), pair.cert);
    writeFileSync(join(dir, 'tls.key'), pair.key);
  };
  try {
    // Names only localhost: the API server, which calls envoy-injector.envoy-injector.svc, could
    // not verify it.
    write(await generateServingCert(ca, ['localhost']));
    const { injector } = await startFilesMode(dir, { ENVOY_INJECTOR_TLS_DNS_NAMES: 'webhook.example.test' });
    try {
      const port = (injector.app.server.address() as { port: number }).port;
      assert.equal(injector.tls.current(), undefined, 'not served');
      const readiness = injector.tls.readiness();
      assert.equal(readiness.ready, false);
      assert.match(
        readiness.reason ?? '',
        /tls\.crt does not name envoy-injector\.envoy-injector\.svc, webhook\.example\.test \(it names localhost; the API server calls envoy-injector\.envoy-injector\.svc\)/,
      );
      // The placeholder certificate is served meanwhile (trusted by nothing), and /readyz says 503.
      const { get } = await import('node:https');
      const readyz = await new Promise<number>((resolve, reject) =>
        get({ host: '127.0.0.1', port, path: '/readyz', rejectUnauthorized: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject),
      );
      assert.equal(readyz, 503);

      // The Service's name but not the configured one: still not ready, naming only what is missing.
      write(await generateServingCert(ca, [SERVICE_HOST]));
      await injector.tls.resync();
      assert.equal(injector.tls.current(), undefined);
      assert.match(injector.tls.readiness().reason ?? '', /does not name webhook\.example\.test \(it names envoy-injector\.envoy-injector\.svc;/);

      // Both: served and ready.
      const good = await generateServingCert(ca, [SERVICE_HOST, 'webhook.example.test']);
      write(good);
      await injector.tls.resync();
      assert.deepEqual(injector.tls.readiness(), { ready: true });
      assert.equal((await httpsRequest(port, '/readyz', { ca: ca.cert })).status, 200);

      // A new pair without the names, while a good one is served: refused, the good one kept.
      write(await generateServingCert(ca, ['localhost']));
      await injector.tls.resync();
      assert.equal(injector.tls.current()?.cert, good.cert);
      assert.deepEqual(injector.tls.readiness(), { ready: true });
    } finally {
      await injector.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
