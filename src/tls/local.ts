// The local default (SPEC.md §7): a CA and serving certificate generated into a directory on first
// start and reused afterwards; the serving certificate is renewed (same CA) when it no longer fits.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import { InjectorError } from '../errors.ts';
import { writeFilesAtomically, type WriteFs } from './atomic-write.ts';
import { bundleTrusts, generateCa, generateServingCert, servingCertProblem, type CertificateBundle } from './certificates.ts';

/** File names inside the certificate directory (the same keys a kubernetes.io/tls Secret uses). */
export const CERT_FILES = { caCert: 'ca.crt', caKey: 'ca.key', cert: 'tls.crt', key: 'tls.key' } as const;

/** Names every local serving certificate carries, so a local API server can call the webhook. */
export const LOCAL_NAMES: readonly string[] = ['localhost', '127.0.0.1', '::1'];

/** The file-system calls of the local certificates: reading them, and writing them atomically. */
export type CertFs = WriteFs & Pick<typeof nodeFs, 'readFileSync'>;

/** Returns a file's text, or undefined when it does not exist (any other error is thrown). */
export function readIfPresent(path: string, fs: Pick<typeof nodeFs, 'readFileSync'> = nodeFs): string | undefined {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** The local default's certificates and what was done to obtain them. */
export interface LocalCertificates {
  readonly bundle: CertificateBundle;
  /** What was done: reused as is, serving certificate renewed, or everything generated. */
  readonly action: 'reused' | 'renewed' | 'generated';
  readonly reason?: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Returns the CA in `dir` when it can sign, or undefined with the reason when a new one is due (no
 * CA yet, or it expires within the renewal window). Throws for a CA that is there but unusable — a
 * half pair, a file that does not parse (truncated by a full disk), a key that is not the CA's:
 * making a new CA then would silently untrust every caBundle configured with the old one.
 */
async function existingCa(
  dir: string,
  files: { caCert: string | undefined; caKey: string | undefined },
  names: readonly string[],
  now: Date,
  renewBeforeDays: number,
): Promise<{ ca: { cert: string; key: string } } | { reason: string }> {
  const certPath = join(dir, CERT_FILES.caCert);
  const keyPath = join(dir, CERT_FILES.caKey);
  const fix = `restore it, or remove ${certPath} and ${keyPath} to make a new CA (then give every caBundle that trusts the old one the new ${CERT_FILES.caCert})`;
  if (files.caCert === undefined && files.caKey === undefined) return { reason: 'no CA yet' };
  if (files.caCert === undefined || files.caKey === undefined) {
    throw new InjectorError('tls', `${files.caCert === undefined ? certPath : keyPath} is missing while its pair is there: ${fix}`);
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(files.caCert);
  } catch (error) {
    throw new InjectorError('tls', `${certPath} does not hold a certificate (${(error as Error).message}): ${fix}`);
  }
  let key;
  try {
    key = createPrivateKey(files.caKey);
  } catch (error) {
    throw new InjectorError('tls', `${keyPath} does not hold a private key (${(error as Error).message}; truncated?): ${fix}`);
  }
  if (!cert.ca) throw new InjectorError('tls', `${certPath} is not a CA certificate: ${fix}`);
  if (!cert.checkPrivateKey(key)) throw new InjectorError('tls', `${keyPath} is not the key of the CA in ${certPath}: ${fix}`);
  if (new Date(cert.validTo).getTime() <= now.getTime() + renewBeforeDays * DAY_MS) return { reason: 'the CA expires soon' };
  const ca = { cert: files.caCert, key: files.caKey };
  // Signed and verified once before anything is written.
  const probe = await generateServingCert(ca, names, now).catch((error: unknown) => {
    throw new InjectorError('tls', `cannot sign with the CA in ${dir} (${(error as Error).message}): ${fix}`);
  });
  if (!bundleTrusts(ca.cert, probe.cert, now)) throw new InjectorError('tls', `a certificate signed with the CA in ${dir} does not verify against ${certPath}: ${fix}`);
  return { ca };
}

/**
 * Returns the CA and serving certificate in `dir` for `names`, generating whatever is missing,
 * expiring or not matching. The CA is kept whenever it is still good, so callers that trust it
 * (a caBundle already configured) keep working; a CA that is there but unusable is an error, never
 * silently replaced. Files are replaced atomically (see atomic-write.ts): a failed write leaves
 * the previous ones as they were.
 */
export async function ensureLocalCertificates(
  dir: string,
  extraNames: readonly string[],
  renewBeforeDays: number,
  now: Date = new Date(),
  fs: CertFs = nodeFs,
): Promise<LocalCertificates> {
  const names = [...new Set([...LOCAL_NAMES, ...extraNames])];
  const path = (file: string) => join(dir, file);
  try {
    const existing = {
      caCert: readIfPresent(path(CERT_FILES.caCert), fs),
      caKey: readIfPresent(path(CERT_FILES.caKey), fs),
      cert: readIfPresent(path(CERT_FILES.cert), fs),
      key: readIfPresent(path(CERT_FILES.key), fs),
    };
    const complete = Object.values(existing).every((v) => v !== undefined);
    const problem = complete ? servingCertProblem(existing as CertificateBundle, names, now, renewBeforeDays) : 'no certificates yet';
    if (problem === undefined) return { bundle: existing as CertificateBundle, action: 'reused' };

    const found = await existingCa(dir, existing, names, now, renewBeforeDays);
    const ca = 'ca' in found ? found.ca : await generateCa(now);
    const serving = await generateServingCert(ca, names, now);
    const bundle: CertificateBundle = { caCert: ca.cert, caKey: ca.key, cert: serving.cert, key: serving.key };
    // The CA files only when the CA is new; keys before the certificates that go with them.
    writeFilesAtomically(
      [
        ...('ca' in found
          ? []
          : [
              { path: path(CERT_FILES.caKey), data: bundle.caKey, mode: 0o600 },
              { path: path(CERT_FILES.caCert), data: bundle.caCert, mode: 0o644 },
            ]),
        { path: path(CERT_FILES.key), data: bundle.key, mode: 0o600 },
        { path: path(CERT_FILES.cert), data: bundle.cert, mode: 0o644 },
      ],
      fs,
    );
    if ('ca' in found) return { bundle, action: 'renewed', reason: problem };
    return { bundle, action: 'generated', reason: found.reason === 'no CA yet' ? problem : `${problem}; new CA: ${found.reason}` };
  } catch (error) {
    if (error instanceof InjectorError) throw error;
    throw new InjectorError('tls', `cannot prepare certificates in ${dir}: ${(error as Error).message}`, { cause: error });
  }
}
