// `envoy-injector certs`: writes a CA and a serving certificate for the given names into a directory
// — for `tls.mode: files` without cert-manager, or for a local API server calling the webhook by URL.
import { Buffer } from 'node:buffer';
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.ts';
import { UsageError } from '../errors.ts';
import { certificateNames, serviceDnsNames, SERVING_VALIDITY_DAYS } from '../tls/certificates.ts';
import { issueCertificates } from '../tls/issue.ts';

const USAGE = `Usage: envoy-injector certs [options]

Writes ca.crt, ca.key, tls.crt and tls.key into a directory: a serving certificate for the given
names, signed by the CA already in that directory (kept, so a caBundle that trusts it stays valid)
or by a new one.

Options:
  --out DIR             Directory to write to (default: tls.certDir of the config, "certs").
  --dns-name NAME       A DNS name or IP address for the certificate; repeat it or separate names
                        with commas. Without it: the Service's names (see --service) and tls.dnsNames.
  --service NAME        Also name this Service: NAME, NAME.NS, NAME.NS.svc, NAME.NS.svc.cluster.local
                        (default without --dns-name: tls.serviceName of the config).
  -n, --namespace NS    Namespace of that Service (default: the config's namespace).
  --days N              Validity of the serving certificate in days (default ${SERVING_VALIDITY_DAYS}).
  --new-ca              Generate a new CA even if the directory has one.
  -c, --config FILE     Config file (default $ENVOY_INJECTOR_CONFIG).
  -h, --help            Show this help.
`;

const DNS_NAME = /^(\*\.)?(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Returns the names, lower-cased and de-duplicated, or throws naming the first invalid one. */
function checkNames(names: readonly string[]): string[] {
  const result: string[] = [];
  for (const raw of names) {
    const name = raw.trim().toLowerCase();
    if (name === '') continue;
    if (isIP(name) === 0 && !DNS_NAME.test(name)) throw new UsageError(`--dns-name: ${JSON.stringify(raw)} is neither a DNS name nor an IP address`);
    if (!result.includes(name)) result.push(name);
  }
  return result;
}

/** Runs the command, writing its report to `out`; resolves to the exit code. */
export async function run(args: string[], out: Pick<NodeJS.WritableStream, 'write'> = process.stdout): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      out: { type: 'string' },
      'dns-name': { type: 'string', multiple: true },
      service: { type: 'string' },
      namespace: { type: 'string', short: 'n' },
      days: { type: 'string' },
      'new-ca': { type: 'boolean' },
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
    strict: true,
  });
  if (values.help) {
    out.write(USAGE);
    return 0;
  }
  const config = loadConfig({ file: values.config });
  const days = values.days === undefined ? SERVING_VALIDITY_DAYS : Number(values.days);
  if (!Number.isInteger(days) || days < 1 || days > 3650) throw new UsageError(`--days must be a whole number of days from 1 to 3650, got ${JSON.stringify(values.days)}`);

  const explicit = (values['dns-name'] ?? []).flatMap((n) => n.split(','));
  const service = values.service ?? (explicit.length === 0 ? config.tls.serviceName : undefined);
  const namespace = values.namespace ?? config.namespace;
  const names = checkNames([
    ...(service === undefined ? [] : serviceDnsNames(service, namespace)),
    ...(explicit.length === 0 ? config.tls.dnsNames : explicit),
  ]);
  if (names.length === 0) throw new UsageError('no names for the certificate: give --dns-name or --service');

  const dir = values.out ?? config.tls.certDir;
  const issued = await issueCertificates(dir, names, { validityDays: days, newCa: values['new-ca'] === true });
  const cert = new X509Certificate(issued.bundle.cert);
  const ca = new X509Certificate(issued.bundle.caCert);
  const day = (text: string) => new Date(text).toISOString().slice(0, 10);
  const lines = [
    `${issued.ca.action === 'kept' ? 'kept' : 'wrote'} ${issued.files.caCert} (CA, expires ${day(ca.validTo)}${issued.ca.action === 'generated' ? `; new: ${issued.ca.reason}` : ''})`,
    ...(issued.ca.action === 'generated' ? [`wrote ${issued.files.caKey} (the CA's private key: keep it out of version control)`] : []),
    `wrote ${issued.files.cert} (names: ${certificateNames(cert).join(', ')}; expires ${day(cert.validTo)})`,
    `wrote ${issued.files.key} (private key)`,
    `caBundle (base64 of ${issued.files.caCert}): ${Buffer.from(issued.bundle.caCert).toString('base64')}`,
  ];
  out.write(`${lines.join('\n')}\n`);
  return 0;
}
