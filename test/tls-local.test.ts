// The local TLS default: generated on first start, reused after, renewed with the same CA.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { certificateCovers } from '../src/tls/certificates.ts';
import { ensureLocalCertificates } from '../src/tls/local.ts';

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
