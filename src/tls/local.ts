// The local default (SPEC.md §7): a CA and serving certificate generated into a directory on first
// start and reused afterwards; the serving certificate is renewed (same CA) when it no longer fits.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InjectorError } from '../errors.ts';
import { generateCa, generateServingCert, servingCertProblem, type CertificateBundle } from './certificates.ts';

/** File names inside the certificate directory (the same keys a kubernetes.io/tls Secret uses). */
export const CERT_FILES = { caCert: 'ca.crt', caKey: 'ca.key', cert: 'tls.crt', key: 'tls.key' } as const;

/** Names every local serving certificate carries, so a local API server can call the webhook. */
export const LOCAL_NAMES: readonly string[] = ['localhost', '127.0.0.1', '::1'];

/** Returns a file's text, or undefined when it does not exist (any other error is thrown). */
export function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
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

/**
 * Returns the CA and serving certificate in `dir` for `names`, generating whatever is missing,
 * expiring or not matching. The CA is kept whenever it is still good, so callers that trust it
 * (a caBundle already configured) keep working.
 */
export async function ensureLocalCertificates(
  dir: string,
  extraNames: readonly string[],
  renewBeforeDays: number,
  now: Date = new Date(),
): Promise<LocalCertificates> {
  const names = [...new Set([...LOCAL_NAMES, ...extraNames])];
  const path = (file: string) => join(dir, file);
  try {
    const existing = {
      caCert: readIfPresent(path(CERT_FILES.caCert)),
      caKey: readIfPresent(path(CERT_FILES.caKey)),
      cert: readIfPresent(path(CERT_FILES.cert)),
      key: readIfPresent(path(CERT_FILES.key)),
    };
    const complete = Object.values(existing).every((v) => v !== undefined);
    const problem = complete ? servingCertProblem(existing as CertificateBundle, names, now, renewBeforeDays) : 'no certificates yet';
    if (problem === undefined) return { bundle: existing as CertificateBundle, action: 'reused' };

    // Keep a CA that is still usable; only the serving certificate is replaced then.
    let ca = existing.caCert !== undefined && existing.caKey !== undefined ? { cert: existing.caCert, key: existing.caKey } : undefined;
    if (ca !== undefined) {
      const probe = await generateServingCert(ca, names, now).catch(() => undefined);
      const caProblem =
        probe === undefined
          ? 'unusable'
          : servingCertProblem({ caCert: ca.cert, caKey: ca.key, ...probe }, names, now, renewBeforeDays);
      if (caProblem !== undefined) ca = undefined;
    }
    const action = ca === undefined ? 'generated' : 'renewed';
    ca ??= await generateCa(now);
    const serving = await generateServingCert(ca, names, now);
    const bundle: CertificateBundle = { caCert: ca.cert, caKey: ca.key, cert: serving.cert, key: serving.key };
    mkdirSync(dir, { recursive: true });
    writeFileSync(path(CERT_FILES.caCert), bundle.caCert);
    writeFileSync(path(CERT_FILES.caKey), bundle.caKey, { mode: 0o600 });
    writeFileSync(path(CERT_FILES.cert), bundle.cert);
    writeFileSync(path(CERT_FILES.key), bundle.key, { mode: 0o600 });
    return { bundle, action, reason: problem };
  } catch (error) {
    if (error instanceof InjectorError) throw error;
    throw new InjectorError('tls', `cannot prepare certificates in ${dir}: ${(error as Error).message}`, { cause: error });
  }
}
