// Issuing a CA and a serving certificate into a directory on request (`envoy-injector certs`): the
// serving certificate is always new; a CA already in the directory is kept (so a caBundle that trusts
// it keeps working) unless a new one is asked for or it cannot be used.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { InjectorError } from '../errors.ts';
import { bundleTrusts, generateCa, generateServingCert, type CertificateBundle } from './certificates.ts';
import { writeFilesAtomically } from './atomic-write.ts';
import { CERT_FILES, readIfPresent, type CertFs } from './local.ts';

/** What `issueCertificates` wrote. */
export interface IssuedCertificates {
  readonly bundle: CertificateBundle;
  /** Whether the CA found in the directory was kept or a new one generated (and why). */
  readonly ca: { readonly action: 'kept' | 'generated'; readonly reason?: string };
  /** Paths written, by role. */
  readonly files: { readonly caCert: string; readonly caKey: string; readonly cert: string; readonly key: string };
}

/**
 * Returns the CA in `dir` if both its files are there and usable, or why a new one may be made (no
 * CA, or one that expires too soon to sign the new certificate); throws for what only the admin can
 * sort out (a half pair, a file that does not parse, a key that is not the CA's), since a new CA
 * would silently untrust every caBundle.
 */
function existingCa(dir: string, now: Date, validityDays: number, fs?: CertFs): { cert: string; key: string } | { reason: string } {
  const cert = readIfPresent(join(dir, CERT_FILES.caCert), fs);
  const key = readIfPresent(join(dir, CERT_FILES.caKey), fs);
  if (cert === undefined && key === undefined) return { reason: 'no CA in the directory' };
  if (cert === undefined || key === undefined) {
    throw new InjectorError(
      'tls',
      `${join(dir, cert === undefined ? CERT_FILES.caCert : CERT_FILES.caKey)} is missing while its pair is there; remove the other or pass --new-ca`,
    );
  }
  let ca: X509Certificate;
  try {
    ca = new X509Certificate(cert);
  } catch (error) {
    // A truncated file (a full disk) is not "no CA": the caBundles that trust it would be untrusted.
    throw new InjectorError(
      'tls',
      `${join(dir, CERT_FILES.caCert)} does not hold a certificate (${(error as Error).message}; truncated?): restore it, or pass --new-ca to make a new CA (then update every caBundle that trusts the old one)`,
    );
  }
  if (!ca.ca) {
    throw new InjectorError('tls', `${join(dir, CERT_FILES.caCert)} is not a CA certificate: put the CA there, or pass --new-ca to make a new CA`);
  }
  // The serving certificate must not outlive the CA that signs it.
  if (new Date(ca.validTo).getTime() < now.getTime() + validityDays * 24 * 60 * 60 * 1000) return { reason: 'the CA expires before the new certificate would' };
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new InjectorError(
      'tls',
      `${join(dir, CERT_FILES.caKey)} does not hold a private key (${(error as Error).message}): put the CA's key there, or pass --new-ca to make a new CA (then update every caBundle that trusts the old one)`,
    );
  }
  // Signing with another key would give a certificate that the caBundle (this ca.crt) cannot verify.
  if (!ca.checkPrivateKey(privateKey)) {
    throw new InjectorError(
      'tls',
      `${join(dir, CERT_FILES.caKey)} is not the key of the CA in ${join(dir, CERT_FILES.caCert)}: put the matching key there, or pass --new-ca to make a new CA (then update every caBundle that trusts the old one)`,
    );
  }
  return { cert, key };
}

/** Writes a serving certificate for `names` (and the CA that signed it) into `dir`. */
export async function issueCertificates(
  dir: string,
  names: readonly string[],
  options: { readonly validityDays: number; readonly newCa: boolean; readonly now?: Date; readonly fs?: CertFs },
): Promise<IssuedCertificates> {
  const now = options.now ?? new Date();
  const files = {
    caCert: join(dir, CERT_FILES.caCert),
    caKey: join(dir, CERT_FILES.caKey),
    cert: join(dir, CERT_FILES.cert),
    key: join(dir, CERT_FILES.key),
  };
  try {
    const found = options.newCa ? { reason: '--new-ca' } : existingCa(dir, now, options.validityDays, options.fs);
    let ca: { cert: string; key: string };
    let caResult: IssuedCertificates['ca'];
    if ('reason' in found) {
      ca = await generateCa(now);
      caResult = { action: 'generated', reason: found.reason };
    } else {
      ca = found;
      caResult = { action: 'kept' };
    }
    let serving: { cert: string; key: string };
    try {
      serving = await generateServingCert(ca, names, now, options.validityDays);
    } catch (error) {
      throw new InjectorError('tls', `cannot sign with the CA in ${dir} (${(error as Error).message}); pass --new-ca to replace it`, { cause: error });
    }
    // Checked as a client given ca.crt as its caBundle would, before anything is written.
    if (!bundleTrusts(ca.cert, serving.cert, now)) {
      throw new InjectorError('tls', `the certificate signed with the CA in ${dir} does not verify against its ${CERT_FILES.caCert}; nothing was written; pass --new-ca to replace the CA`);
    }
    // All or nothing (atomic-write.ts): a full disk leaves the previous files as they were. Keys
    // are private (0600), keys before the certificates that go with them.
    writeFilesAtomically(
      [
        ...(caResult.action === 'generated'
          ? [
              { path: files.caKey, data: ca.key, mode: 0o600 },
              { path: files.caCert, data: ca.cert, mode: 0o644 },
            ]
          : []),
        { path: files.key, data: serving.key, mode: 0o600 },
        { path: files.cert, data: serving.cert, mode: 0o644 },
      ],
      options.fs,
    );
    return { bundle: { caCert: ca.cert, caKey: ca.key, cert: serving.cert, key: serving.key }, ca: caResult, files };
  } catch (error) {
    if (error instanceof InjectorError) throw error;
    throw new InjectorError('tls', `cannot write certificates to ${dir}: ${(error as Error).message}`, { cause: error });
  }
}
