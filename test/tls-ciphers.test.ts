// The webhook's TLS (README "TLS modes"): TLS 1.2 only with ECDHE and an AEAD cipher, TLS 1.3 as
// is, nothing older. Checked with a real TLS client (Node's, i.e. OpenSSL) offering one suite at a
// time, against the server built as serve builds it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect, type ConnectionOptions } from 'node:tls';
import { removeCertificates, startServer, type TestServer } from './support/https-server.ts';

let server: TestServer;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server.close();
  await removeCertificates();
});

/** Connects with `options`; resolves with the protocol and cipher agreed, or the handshake's error. */
function handshake(options: ConnectionOptions): Promise<{ protocol: string | null; cipher: string } | { error: string }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: server.port, ca: server.ca, servername: 'localhost', ...options });
    socket.once('secureConnect', () => {
      const result = { protocol: socket.getProtocol(), cipher: socket.getCipher().standardName };
      socket.destroy();
      resolve(result);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
  });
}

test('TLS 1.2 with a CBC or SHA-1 suite only is refused', { timeout: 60_000 }, async () => {
  // The suites OpenSSL still offers for TLS 1.2 that are not ECDHE + AEAD (the certificate is ECDSA).
  for (const cipher of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA', 'ECDHE-ECDSA-AES128-SHA256', 'ECDHE-ECDSA-AES256-SHA384']) {
    const result = await handshake({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: cipher });
    assert.ok('error' in result, `${cipher} was accepted: ${JSON.stringify(result)}`);
    assert.match(result.error, /HANDSHAKE_FAILURE|NO_SHARED_CIPHER|ECONNRESET/, cipher);
  }
});

test('TLS 1.2 with ECDHE and AES-GCM or ChaCha20-Poly1305 is accepted, TLS 1.3 as by default', { timeout: 60_000 }, async () => {
  for (const [cipher, standard] of [
    ['ECDHE-ECDSA-AES128-GCM-SHA256', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'],
    ['ECDHE-ECDSA-AES256-GCM-SHA384', 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384'],
    ['ECDHE-ECDSA-CHACHA20-POLY1305', 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256'],
  ] as const) {
    assert.deepEqual(await handshake({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: cipher }), { protocol: 'TLSv1.2', cipher: standard });
  }
  // A client offering everything, CBC first, still gets an AEAD suite: the server's order decides.
  const mixed = await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256' });
  assert.ok(!('error' in mixed) && /_GCM_/.test(mixed.cipher), JSON.stringify(mixed));
  for (const suite of ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']) {
    assert.deepEqual(await handshake({ minVersion: 'TLSv1.3', ciphers: suite }), { protocol: 'TLSv1.3', cipher: suite });
  }
  const defaults = await handshake({});
  assert.ok(!('error' in defaults) && defaults.protocol === 'TLSv1.3', JSON.stringify(defaults));
});

test('TLS 1.1 and older are refused', { timeout: 60_000 }, async () => {
  const result = await handshake({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
  assert.ok('error' in result, JSON.stringify(result));
});
