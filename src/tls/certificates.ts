// Generating and checking the webhook's CA and serving certificate (with selfsigned), shared by the
// local default, the self-bootstrapped Secret and the `certs` command.
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';

/**
 * selfsigned's generate, loaded when a certificate is made: a start that reuses its certificates
 * (every start but the first) does not pay for loading it.
 */
async function generate(...args: Parameters<typeof import('selfsigned').generate>): ReturnType<typeof import('selfsigned').generate> {
  const selfsigned = await import('selfsigned');
  return selfsigned.generate(...args);
}

/** A CA and a serving certificate it signed, all PEM. */
export interface CertificateBundle {
  readonly caCert: string;
  readonly caKey: string;
  readonly cert: string;
  readonly key: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** Validity of a generated CA. */
export const CA_VALIDITY_DAYS = 3650;
/** Validity of a generated serving certificate. */
export const SERVING_VALIDITY_DAYS = 365;

/**
 * Returns a new self-signed CA (ECDSA P-256, SHA-256) named `envoy-injector CA <random>`: during a
 * CA rotation or reset a caBundle holds two of them, and OpenSSL-based clients pick the issuer of a
 * certificate by its name alone (these certificates carry no key identifiers), so two CAs of one
 * name would make the certificates of one of them fail with "certificate signature failure".
 */
export async function generateCa(now: Date = new Date(), commonName = `envoy-injector CA ${randomBytes(4).toString('hex')}`): Promise<{ cert: string; key: string }> {
  const result = await generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    // Backdated a little so a node whose clock lags still accepts it.
    notBeforeDate: new Date(now.getTime() - 60 * 60 * 1000),
    notAfterDate: new Date(now.getTime() + CA_VALIDITY_DAYS * DAY_MS),
    extensions: [
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { cert: result.cert, key: result.private };
}

/** Returns a serving certificate for `names` (DNS names and IPs) signed by `ca`. */
export async function generateServingCert(
  ca: { cert: string; key: string },
  names: readonly string[],
  now: Date = new Date(),
  validityDays = SERVING_VALIDITY_DAYS,
): Promise<{ cert: string; key: string }> {
  const [commonName = 'envoy-injector'] = names.filter((n) => isIP(n) === 0);
  const result = await generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(now.getTime() - 60 * 60 * 1000),
    notAfterDate: new Date(now.getTime() + validityDays * DAY_MS),
    ca,
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: names.map((name) => (isIP(name) === 0 ? { type: 2 as const, value: name } : { type: 7 as const, ip: name })),
      },
    ],
  });
  return { cert: result.cert, key: result.private };
}

/** Returns a new CA and a serving certificate for `names` signed by it. */
export async function generateBundle(names: readonly string[], now: Date = new Date()): Promise<CertificateBundle> {
  const ca = await generateCa(now);
  const serving = await generateServingCert(ca, names, now);
  return { caCert: ca.cert, caKey: ca.key, cert: serving.cert, key: serving.key };
}

/** Why a serving certificate cannot be used as is, or undefined when it can. */
export function servingCertProblem(
  bundle: CertificateBundle,
  names: readonly string[],
  now: Date,
  renewBeforeDays: number,
): string | undefined {
  let ca: X509Certificate;
  let cert: X509Certificate;
  try {
    ca = new X509Certificate(bundle.caCert);
    cert = new X509Certificate(bundle.cert);
    createPrivateKey(bundle.key);
    createPrivateKey(bundle.caKey);
  } catch (error) {
    return `certificate material does not parse (${(error as Error).message})`;
  }
  if (!cert.checkPrivateKey(createPrivateKey(bundle.key))) return 'the serving key does not match its certificate';
  if (!ca.checkPrivateKey(createPrivateKey(bundle.caKey))) return 'the CA key does not match the CA certificate';
  if (!cert.verify(ca.publicKey)) return 'the serving certificate is not signed by the CA';
  if (new Date(ca.validTo).getTime() <= now.getTime() + renewBeforeDays * DAY_MS) return 'the CA expires soon';
  if (new Date(cert.validTo).getTime() <= now.getTime() + renewBeforeDays * DAY_MS) {
    return `the serving certificate expires on ${new Date(cert.validTo).toISOString()}`;
  }
  const missing = names.filter((name) => !certificateCovers(cert, name));
  if (missing.length > 0) return `the serving certificate does not name ${missing.join(', ')}`;
  return undefined;
}

/** Whether the certificate's subjectAltName covers a DNS name or an IP address (any spelling). */
export function certificateCovers(cert: X509Certificate, name: string): boolean {
  return isIP(name) === 0
    ? cert.checkHost(name, { subject: 'never' }) !== undefined
    : cert.checkIP(name) !== undefined;
}

/** Returns the DNS names and IP addresses a certificate's subjectAltName lists. */
export function certificateNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '')
    .split(', ')
    .map((entry) => entry.replace(/^(DNS|IP Address):/, ''))
    .filter((entry) => entry !== '');
}

/** Returns when a certificate expires. */
export function certificateExpiry(pem: string): Date {
  return new Date(new X509Certificate(pem).validTo);
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** Returns each certificate of a PEM text (a bundle or a chain), normalized to end in one newline. */
export function splitPemCertificates(text: string): string[] {
  return (text.match(PEM_CERTIFICATE) ?? []).map((pem) => `${pem.replace(/\r\n/g, '\n').trim()}\n`);
}

/** Returns the PEM certificates of `text` joined in order: equal bundles give equal text. */
export function normalizePemBundle(text: string): string {
  return splitPemCertificates(text).join('');
}

/** The names a Service is called by inside the cluster (the API server uses `<svc>.<ns>.svc`). */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

function parseCertificates(pems: readonly string[]): X509Certificate[] {
  const parsed: X509Certificate[] = [];
  for (const pem of pems) {
    try {
      parsed.push(new X509Certificate(pem));
    } catch {
      // An unparseable entry trusts nothing; the others still count (as for the API server).
    }
  }
  return parsed;
}

/**
 * Whether a serving certificate (PEM, leaf first, optionally followed by intermediates) chains up
 * to one of the CAs of `caBundle` (PEM), as a client given that caBundle would check. Validity
 * dates are checked at `now`.
 */
export function bundleTrusts(caBundle: string, servingChain: string, now: Date = new Date()): boolean {
  const roots = parseCertificates(splitPemCertificates(caBundle));
  const [leaf, ...intermediates] = parseCertificates(splitPemCertificates(servingChain));
  if (leaf === undefined || roots.length === 0) return false;
  const valid = (cert: X509Certificate) =>
    new Date(cert.validFrom).getTime() <= now.getTime() && now.getTime() < new Date(cert.validTo).getTime();
  const signedBy = (cert: X509Certificate, issuer: X509Certificate) =>
    cert.checkIssued(issuer) && cert.verify(issuer.publicKey) && valid(issuer);
  let current = leaf;
  if (!valid(current)) return false;
  // Walk up through the intermediates the server would send, at most once each.
  const unused = [...intermediates];
  for (;;) {
    if (roots.some((root) => signedBy(current, root) || current.fingerprint256 === root.fingerprint256)) return true;
    const index = unused.findIndex((candidate) => candidate.ca && signedBy(current, candidate));
    if (index < 0) return false;
    current = unused.splice(index, 1)[0] as X509Certificate;
  }
}
