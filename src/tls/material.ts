// The key and certificate (chain) the HTTPS server presents, checked before the server may use it.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { splitPemCertificates } from './certificates.ts';

/** Lowest TLS version the webhook accepts; used when the server is built and on every reload. */
export const TLS_MIN_VERSION = 'TLSv1.2' as const;

/**
 * Cipher suites the webhook accepts. TLS 1.2: ECDHE key exchange (forward secrecy) with an AEAD
 * cipher only, as Mozilla's "intermediate" profile and the API server's own defaults do: no CBC
 * (Lucky 13 and its kind), no SHA-1 MACs, no static RSA. TLS 1.3 has only AEAD suites; all three
 * are listed so that setting this list does not change them.
 */
export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** The TLS options of the server's secure context for `key` and `cert`, at start and on every reload alike. */
export function secureContextOptions(key: string, cert: string) {
  // The server's order, not the client's: the strongest suite both have.
  return { key, cert, minVersion: TLS_MIN_VERSION, ciphers: TLS_CIPHERS, honorCipherOrder: true } as const;
}

/** A serving key and certificate chain that passed validation, with facts read from the leaf. */
export interface ServingMaterial {
  readonly key: string;
  /** PEM: the leaf first, then any intermediates. */
  readonly cert: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SHA-256 fingerprint of the leaf, for logs and to tell certificates apart. */
  readonly fingerprint: string;
}

/**
 * Returns the material as ServingMaterial, or a one-line problem: unparseable, key not matching the
 * certificate, not valid yet or expired at `now`, or refused by the TLS library itself.
 */
export function checkServingMaterial(key: string, cert: string, now: Date): ServingMaterial | { problem: string } {
  const [leafPem] = splitPemCertificates(cert);
  if (leafPem === undefined) return { problem: 'the certificate file holds no PEM certificate' };
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(leafPem);
  } catch (error) {
    return { problem: `the certificate does not parse (${(error as Error).message})` };
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    return { problem: `the private key does not parse (${(error as Error).message})` };
  }
  if (!leaf.checkPrivateKey(privateKey)) return { problem: 'the private key does not match the certificate' };
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (notAfter.getTime() <= now.getTime()) return { problem: `the certificate expired on ${notAfter.toISOString()}` };
  // A few minutes of clock skew are tolerated, as TLS clients usually do not.
  if (notBefore.getTime() > now.getTime() + 5 * 60 * 1000) {
    return { problem: `the certificate is not valid before ${notBefore.toISOString()}` };
  }
  try {
    // Exactly what the server will do with it: catches what the checks above cannot (e.g. a chain
    // OpenSSL refuses).
    createSecureContext(secureContextOptions(key, cert));
  } catch (error) {
    return { problem: `the TLS library refuses it (${(error as Error).message})` };
  }
  return { key, cert, notBefore, notAfter, fingerprint: leaf.fingerprint256 };
}

/** Whether `value` is usable material rather than a problem. */
export function isMaterial(value: ServingMaterial | { problem: string }): value is ServingMaterial {
  return !('problem' in value);
}
