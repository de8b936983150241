// `envoy-injector certs`: writes a CA and a serving certificate for the given names into a directory
// — for `tls.mode: files` without cert-manager, or for a local API server calling the webhook by URL.
import { Buffer } from 'node:buffer';
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { loadConfig } from '../config.ts';
import { UsageError } from '../errors.ts';
import { certificateNames, serviceDnsNames, SERVING_VALIDITY_DAYS } from '../tls/certificates.ts';
import { issueCertificates } from '../tls/issue.ts';
import { commandHelp, parseFlags, type CommandSpec } from './flags.ts';

/** The command's flags and help. */
export const CERTS_COMMAND: CommandSpec = {
  name: 'certs',
  summary: 'Write a CA and serving certificate.',
  synopsis: 'certs [flags]',
  description: `Writes ca.crt, ca.key, tls.crt and tls.key into a directory: a serving certificate for the given
names, signed by the CA already in that directory (kept, so a caBundle that trusts it stays valid)
or by a new one.`,
  flags: [
    { name: 'out', type: 'string', value: 'DIR', doc: 'Directory to write to (default: tls.certDir of the config, "certs").' },
    {
      name: 'dns-name',
      type: 'string',
      value: 'NAME',
      multiple: true,
      doc: "A DNS name or IP address for the certificate; repeat it or separate names with commas. Without it: the Service's names (see --service) and tls.dnsNames.",
    },
    {
      name: 'service',
      type: 'string',
      value: 'NAME',
      doc: 'Also name this Service: NAME, NAME.NS, NAME.NS.svc, NAME.NS.svc.cluster.local (default without --dns-name: tls.serviceName of the config).',
    },
    { name: 'namespace', short: 'n', type: 'string', value: 'NS', doc: "Namespace of that Service (default: the config's namespace)." },
    { name: 'days', type: 'string', value: 'N', doc: `Validity of the serving certificate in days (default ${SERVING_VALIDITY_DAYS}).` },
    { name: 'new-ca', type: 'boolean', doc: 'Generate a new CA even if the directory has one.' },
    { name: 'config', short: 'c', type: 'string', value: 'FILE', doc: 'Config file (default $ENVOY_INJECTOR_CONFIG).' },
  ],
};

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
export async function run(args: string[], out: { write(text: string): unknown } = process.stdout): Promise<number> {
  const parsed = parseFlags(CERTS_COMMAND, args);
  if (parsed.help) {
    out.write(commandHelp(CERTS_COMMAND));
    return 0;
  }
  const text = (name: string): string | undefined => {
    const value = parsed.values[name];
    return typeof value === 'string' ? value : undefined;
  };
  const dnsNames = parsed.values['dns-name'];
  const values = {
    out: text('out'),
    'dns-name': Array.isArray(dnsNames) ? (dnsNames as readonly string[]) : undefined,
    service: text('service'),
    namespace: text('namespace'),
    days: text('days'),
    'new-ca': parsed.values['new-ca'] === true,
    config: text('config'),
  };
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
