// The local TLS default: generated on first start, reused after, renewed with the same CA; files
// replaced atomically (a failed write leaves the old ones), and a damaged CA is an error, never
// silently replaced by a new one.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import * as nodeFs from 'node:fs';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { certificateCovers } from '../src/tls/certificates.ts';
import { ensureLocalCertificates, type CertFs } from '../src/tls/local.ts';

test('certificates are generated once, reused, and renewed with the same CA when names change', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-certs-'));
  try {
    const first = await ensureLocalCertificates(dir, [], 30);
    assert.equal(first.action, 'generated');
    const cert = new X509Certificate(readFileSync(join(dir, 'tls.crt')));
    for (const name of ['localhost', '127.0.0.1', '::1']) assert.ok(certificateCovers(cert, name), name);
    assert.ok(cert.verify(new X509Certificate(readFileSync(join(dir, 'ca.crt'))).publicKey));
    assert.equal(cert.ca, false);
    assert.equal(new X509Certificate(readFileSync(join(dir, 'ca.crt'))).ca, true);
    assert.equal(statSync(join(dir, 'tls.key')).mode & 0o077, 0, 'keys are private');

    const second = await ensureLocalCertificates(dir, [], 30);
    assert.equal(second.action, 'reused');
    assert.equal(second.bundle.cert, first.bundle.cert);

    const third = await ensureLocalCertificates(dir, ['webhook.example.test'], 30);
    assert.equal(third.action, 'renewed');
    assert.equal(third.bundle.caCert, first.bundle.caCert, 'the CA is kept');
    assert.ok(certificateCovers(new X509Certificate(third.bundle.cert), 'webhook.example.test'));

    // A certificate that expires within the renewal window is replaced.
    const later = new Date(Date.now() + 340 * 24 * 3600 * 1000);
    const fourth = await ensureLocalCertificates(dir, ['webhook.example.test'], 30, later);
    assert.equal(fourth.action, 'renewed');
    assert.match(fourth.reason ?? '', /expires/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a directory that cannot be created is one clear error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-certs-'));
  try {
    // A regular file where the directory should be.
    writeFileSync(join(dir, 'file'), '');
    await assert.rejects(
      ensureLocalCertificates(join(dir, 'file', 'certs'), [], 30),
      (error: Error) => /^cannot prepare certificates in .*file\/certs: .*ENOTDIR/.test(error.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Every file of `dir` with its bytes, temporary files included. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((name) => [name, readFileSync(join(dir, name), 'latin1')]));
}

/** The real file system, except that `call` fails with `code` for files whose name matches `target`. */
function failingFs(call: 'writeSync' | 'fsyncSync' | 'openSync', code: string, target: RegExp): CertFs {
  const paths = new Map<number, string>();
  const fail = () => Object.assign(new Error(`${code}: simulated failure, ${call}`), { code });
  return {
    ...nodeFs,
    openSync: ((path: nodeFs.PathLike, flags?: nodeFs.OpenMode, mode?: nodeFs.Mode) => {
      if (call === 'openSync' && target.test(String(path))) throw fail();
      const fd = nodeFs.openSync(path, flags ?? "r", mode);
      paths.set(fd, String(path));
      return fd;
    }) as typeof nodeFs.openSync,
    writeSync: ((fd: number, ...rest: unknown[]) => {
      if (call === 'writeSync' && target.test(paths.get(fd) ?? '')) throw fail();
      return (nodeFs.writeSync as (...args: unknown[]) => number)(fd, ...rest);
    }) as typeof nodeFs.writeSync,
    fsyncSync: (fd: number) => {
      if (call === 'fsyncSync' && target.test(paths.get(fd) ?? '')) throw fail();
      nodeFs.fsyncSync(fd);
    },
  };
}

test('a write that fails (ENOSPC, EIO) leaves the previous files as they were, and nothing half-written', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-certs-'));
  try {
    await ensureLocalCertificates(dir, [], 30);
    const before = snapshot(dir);
    // A renewal (new names) writes tls.key and tls.crt; a CA rotation (the CA expiring) all four.
    const rotation = new Date(Date.now() + 3640 * 24 * 3600 * 1000);
    for (const [what, fs, names, now] of [
      ['ENOSPC writing tls.crt', failingFs('writeSync', 'ENOSPC', /tls\.crt/), ['more.example.test'], undefined],
      ['EIO syncing tls.key', failingFs('fsyncSync', 'EIO', /tls\.key/), ['more.example.test'], undefined],
      ['ENOSPC writing ca.crt in a CA rotation', failingFs('writeSync', 'ENOSPC', /ca\.crt/), [], rotation],
      ['ENOSPC writing tls.crt in a CA rotation', failingFs('writeSync', 'ENOSPC', /tls\.crt/), [], rotation],
      ['EDQUOT creating the temporary ca.key', failingFs('openSync', 'EDQUOT', /ca\.key/), [], rotation],
    ] as const) {
      await assert.rejects(ensureLocalCertificates(dir, names, 30, now ?? new Date(), fs), (error: Error) => {
        assert.match(error.message, new RegExp(`^cannot prepare certificates in ${dir}: (ENOSPC|EIO|EDQUOT): simulated failure`), what);
        return true;
      });
      assert.deepEqual(snapshot(dir), before, `${what}: the previous files, byte for byte, and no temporary file`);
    }
    // The next start with a working disk renews normally, with the same CA.
    const next = await ensureLocalCertificates(dir, ['more.example.test'], 30);
    assert.equal(next.action, 'renewed');
    assert.equal(next.bundle.caCert, before['ca.crt']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a truncated, mismatched or unreadable CA is an error naming the file, never a silent new CA', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-certs-'));
  try {
    await ensureLocalCertificates(dir, [], 30);
    const good = snapshot(dir);
    const caKey = join(dir, 'ca.key');
    const cases: [string, () => void, RegExp, CertFs?][] = [
      ['ca.key truncated (a full disk while it was written in place)', () => writeFileSync(caKey, good['ca.key']!.slice(0, 100)), /ca\.key does not hold a private key .*truncated\?\): restore it, or remove .*ca\.crt and .*ca\.key to make a new CA/],
      ['ca.key empty', () => writeFileSync(caKey, ''), /ca\.key does not hold a private key/],
      ['ca.key missing', () => rmSync(caKey), /ca\.key is missing while its pair is there/],
      ['ca.key of another CA', () => writeFileSync(caKey, good['tls.key']!), /ca\.key is not the key of the CA in .*ca\.crt/],
      ['ca.crt truncated', () => writeFileSync(join(dir, 'ca.crt'), good['ca.crt']!.slice(0, 200)), /ca\.crt does not hold a certificate/],
      ['ca.key unreadable', () => {}, /^cannot prepare certificates in .*: EACCES/, { ...nodeFs, readFileSync: ((path: nodeFs.PathOrFileDescriptor, options?: unknown) => {
        if (String(path).endsWith('ca.key')) throw Object.assign(new Error('EACCES: permission denied, open'), { code: 'EACCES' });
        return nodeFs.readFileSync(path, options as BufferEncoding);
      }) as typeof nodeFs.readFileSync }],
    ];
    for (const [what, damage, message, fs] of cases) {
      for (const [name, text] of Object.entries(good)) writeFileSync(join(dir, name), text);
      damage();
      const damaged = snapshot(dir);
      // At the next start as such, and when a renewal is due.
      await assert.rejects(ensureLocalCertificates(dir, [], 30, new Date(), fs), (error: Error) => (assert.match(error.message, message, what), true));
      await assert.rejects(ensureLocalCertificates(dir, ['new.example.test'], 30, new Date(), fs), (error: Error) => (assert.match(error.message, message, what), true));
      assert.deepEqual(snapshot(dir), damaged, `${what}: nothing written`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('keys are written 0600 and certificates 0644 whatever the umask', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-certs-'));
  const umask = process.umask(0o000);
  try {
    await ensureLocalCertificates(dir, [], 30);
    const mode = (name: string) => statSync(join(dir, name)).mode & 0o777;
    assert.deepEqual(
      ['ca.key', 'tls.key', 'ca.crt', 'tls.crt'].map(mode),
      [0o600, 0o600, 0o644, 0o644],
    );
  } finally {
    process.umask(umask);
    rmSync(dir, { recursive: true, force: true });
  }
});
