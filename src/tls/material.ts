// The key and certificate (chain) the HTTPS server presents, checked before the server may use it.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { splitPemCertificates } from './certificates.ts';

/** Lowest TLS version the webhook accepts; used when the server is built and on every reload. */
export const TLS_MIN_VERSION = 'TLSv1.2' as const;

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
    createSecureContext({ key, cert, minVersion: TLS_MIN_VERSION });
  } catch (error) {
    return { problem: `the TLS library refuses it (${(error as Error).message})` };
  }
  return { key, cert, notBefore, notAfter, fingerprint: leaf.fingerprint256 };
}

/** Whether `value` is usable material rather than a problem. */
export function isMaterial(value: ServingMaterial | { problem: string }): value is ServingMaterial {
  return !('problem' in value);
}
