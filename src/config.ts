// Reads the injector's configuration once: built-in defaults, then one YAML file, then environment
// variables. Everything is validated up front; a bad value stops the start with one line naming the
// key, where it came from and what is accepted.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { shorten } from './core/reasons.ts';
import { closest } from './core/suggest.ts';
import type { InjectorConfig } from './core/types.ts';
import {
  parseAllOrCidrList,
  parseAllOrPortList,
  parseBoolean,
  parseCidrList,
  parseCpu,
  parseHostPort,
  parseImage,
  parseInteger,
  parseLogLevel,
  parseMemory,
  parsePort,
  parsePortList,
  requestsAboveLimits,
  MAX_VALUE_LENGTH,
  type Parsed,
} from './core/values.ts';
import { ConfigError } from './errors.ts';
import { VERSION } from './version.ts';

/** Environment variable naming the config file (the `--config` flag takes precedence). */
export const CONFIG_FILE_ENV = 'ENVOY_INJECTOR_CONFIG';
/** Prefix of the environment variable of every config key, e.g. ENVOY_INJECTOR_PROXY_IMAGE. */
export const ENV_PREFIX = 'ENVOY_INJECTOR_';

/** The pinned default images: Envoy from its official line, envoy-init from this project's image. */
export const DEFAULT_PROXY_IMAGE = 'envoyproxy/envoy:v1.39.6';
export const DEFAULT_INIT_IMAGE = `ghcr.io/envoy-injector/envoy-injector:v${VERSION}`;

type Parser = (value: unknown) => Parsed<unknown>;

/** Parses a scalar written as a string, number or boolean (YAML and env give either). */
const scalar = (parse: (text: string) => Parsed<unknown>): Parser => (value) =>
  typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
    ? parse(String(value))
    : parse('\u0000');

/** Parses a list written as a YAML sequence of scalars or a comma-separated string. */
const list = (parse: (text: string) => Parsed<unknown>): Parser => (value) => {
  if (Array.isArray(value) && value.every((v) => typeof v === 'string' || typeof v === 'number')) {
    if (value.some((v) => String(v).includes(','))) return parse('\u0000');
    return parse(value.map(String).join(','));
  }
  return scalar(parse)(value);
};

const oneOf = (...choices: string[]) => (text: string): Parsed<string> =>
  choices.includes(text.trim())
    ? { ok: true, value: text.trim() }
    : { ok: false, accepted: `one of ${choices.join(', ')}` };

const nonEmpty = (what: string) => (text: string): Parsed<string> =>
  /^[^\s]+$/.test(text.trim()) ? { ok: true, value: text.trim() } : { ok: false, accepted: what };

const dnsName = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const k8sName = (text: string): Parsed<string> =>
  dnsName.test(text.trim()) && text.trim().length <= 63
    ? { ok: true, value: text.trim() }
    : { ok: false, accepted: 'a Kubernetes object name (lower-case letters, digits and -)' };

/** Most namespaces excludedNamespaces may list (each admission looks its namespace up in it). */
export const MAX_EXCLUDED_NAMESPACES = 1000;
/** Most names tls.dnsNames may list (each becomes a subjectAltName of the serving certificate). */
export const MAX_DNS_NAMES = 100;

/** A comma-separated list of at most `max` items each accepted by `item`, read only within MAX_VALUE_LENGTH. */
const cappedList = (max: number, what: string, item: (text: string) => boolean) => (text: string): Parsed<string[]> => {
  const accepted = `a list of at most ${max} ${what}`;
  if (text.length > MAX_VALUE_LENGTH) return { ok: false, accepted: `${accepted}, in at most ${MAX_VALUE_LENGTH} characters` };
  const items = text.trim() === '' ? [] : text.split(',').map((s) => s.trim());
  return items.length <= max && items.every(item) ? { ok: true, value: items } : { ok: false, accepted };
};

const nameList = cappedList(MAX_EXCLUDED_NAMESPACES, 'Kubernetes namespace names', (item) => k8sName(item).ok);

const hostList = cappedList(MAX_DNS_NAMES, 'DNS names or IP addresses', (item) => /^[A-Za-z0-9.*:-]+$/.test(item));

const optionalHostPort = (text: string): Parsed<string | null> => {
  if (text.trim() === '') return { ok: true, value: null };
  const parsed = parseHostPort(text);
  return parsed.ok ? { ok: true, value: text.trim() } : parsed;
};

interface Leaf {
  readonly path: string;
  readonly parse: Parser;
  readonly default: unknown;
}

/** Every config key, its parser and its default. The env var of each is derived from its path. */
const LEAVES: readonly Leaf[] = [
  { path: 'server.host', parse: scalar(nonEmpty('a host name or IP address to listen on')), default: '127.0.0.1' },
  { path: 'server.port', parse: scalar(parsePort), default: 8443 },
  { path: 'server.bodyLimitBytes', parse: scalar((t) => parseInteger(t, 1024, 64 * 1024 * 1024)), default: 7 * 1024 * 1024 },
  { path: 'server.requestTimeoutMs', parse: scalar((t) => parseInteger(t, 100, 600_000)), default: 10_000 },
  { path: 'server.maxConcurrentAdmissions', parse: scalar((t) => parseInteger(t, 1, 100_000)), default: 32 },
  { path: 'server.maxRequestsPerPeer', parse: scalar((t) => parseInteger(t, 1, 100_000)), default: 32 },
  { path: 'server.bodyTimeoutMs', parse: scalar((t) => parseInteger(t, 100, 600_000)), default: 5_000 },
  { path: 'server.shutdownGraceMs', parse: scalar((t) => parseInteger(t, 0, 600_000)), default: 20_000 },
  { path: 'tls.mode', parse: scalar(oneOf('local', 'files', 'secret')), default: 'local' },
  { path: 'tls.certDir', parse: scalar(nonEmpty('a directory path')), default: 'certs' },
  { path: 'tls.dnsNames', parse: list(hostList), default: [] },
  { path: 'tls.serviceName', parse: scalar(k8sName), default: 'envoy-injector' },
  { path: 'tls.secretName', parse: scalar(k8sName), default: 'envoy-injector-tls' },
  { path: 'tls.webhookConfigName', parse: scalar(k8sName), default: 'envoy-injector' },
  // Below half of the serving certificate's 365 days, so a renewed certificate is not due again at once.
  { path: 'tls.renewBeforeDays', parse: scalar((t) => parseInteger(t, 1, 180)), default: 30 },
  { path: 'tls.resyncSeconds', parse: scalar((t) => parseInteger(t, 5, 86_400)), default: 60 },
  { path: 'namespace', parse: scalar(k8sName), default: 'envoy-injector' },
  { path: 'excludedNamespaces', parse: list(nameList), default: ['kube-system', 'kube-public', 'kube-node-lease'] },
  { path: 'logLevel', parse: scalar(oneOf('trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent')), default: 'info' },
  { path: 'nativeSidecar', parse: scalar(oneOf('auto', 'true', 'false')), default: 'auto' },
  { path: 'proxy.image', parse: scalar(parseImage), default: DEFAULT_PROXY_IMAGE },
  { path: 'proxy.imagePullPolicy', parse: scalar(oneOf('Always', 'IfNotPresent', 'Never')), default: 'IfNotPresent' },
  { path: 'proxy.logLevel', parse: scalar(parseLogLevel), default: 'warning' },
  { path: 'proxy.concurrency', parse: scalar((t) => parseInteger(t, 0, 256)), default: 2 },
  { path: 'proxy.resources.requests.cpu', parse: scalar(optional(parseCpu)), default: '100m' },
  { path: 'proxy.resources.requests.memory', parse: scalar(optional(parseMemory)), default: '128Mi' },
  // CPU limits are set so that namespaces whose ResourceQuota or LimitRange requires them accept
  // injected pods (LimitRange defaults are applied before webhooks run, not to what they add).
  { path: 'proxy.resources.limits.cpu', parse: scalar(optional(parseCpu)), default: '2' },
  { path: 'proxy.resources.limits.memory', parse: scalar(optional(parseMemory)), default: '1Gi' },
  { path: 'proxy.holdApplicationUntilProxyStarts', parse: scalar(parseBoolean), default: true },
  { path: 'proxy.drainSeconds', parse: scalar((t) => parseInteger(t, 0, 3600)), default: 5 },
  { path: 'proxy.accessLog', parse: scalar(parseBoolean), default: false },
  { path: 'proxy.ipv6', parse: scalar(parseBoolean), default: true },
  { path: 'proxy.ads.address', parse: scalar(optionalHostPort), default: '' },
  { path: 'proxy.ads.tls', parse: scalar(parseBoolean), default: false },
  { path: 'init.image', parse: scalar(parseImage), default: DEFAULT_INIT_IMAGE },
  { path: 'init.resources.requests.cpu', parse: scalar(optional(parseCpu)), default: '10m' },
  { path: 'init.resources.requests.memory', parse: scalar(optional(parseMemory)), default: '32Mi' },
  { path: 'init.resources.limits.cpu', parse: scalar(optional(parseCpu)), default: '500m' },
  { path: 'init.resources.limits.memory', parse: scalar(optional(parseMemory)), default: '128Mi' },
  { path: 'traffic.includeInboundPorts', parse: list(parseAllOrPortList), default: '*' },
  { path: 'traffic.excludeInboundPorts', parse: list(parsePortList), default: [] },
  { path: 'traffic.excludeOutboundPorts', parse: list(parsePortList), default: [] },
  { path: 'traffic.includeOutboundIpRanges', parse: list(parseAllOrCidrList), default: '*' },
  { path: 'traffic.excludeOutboundIpRanges', parse: list(parseCidrList), default: [] },
];

/** An empty string means "not set" (e.g. no CPU limit). */
function optional(parse: (text: string) => Parsed<string>) {
  return (text: string): Parsed<string | undefined> => (text.trim() === '' ? { ok: true, value: undefined } : parse(text));
}

/** Returns the environment variable that sets the config key `path`. */
export function envVarFor(path: string): string {
  return ENV_PREFIX + path.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/\./g, '_').toUpperCase();
}

/** The documented keys of the config file with their env vars and defaults (for the README and `--help`). */
export function describeConfigKeys(): { key: string; env: string; default: unknown }[] {
  return LEAVES.map((leaf) => ({ key: leaf.path, env: envVarFor(leaf.path), default: leaf.default }));
}

export interface LoadConfigOptions {
  /** Path of the YAML config file; falls back to $ENVOY_INJECTOR_CONFIG, then to none. */
  readonly file?: string | undefined;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Reads a file (tests inject this); defaults to fs. */
  readonly readFile?: (path: string) => string;
}

/** Flattens YAML into `path → value`, refusing keys the config does not have. */
function flatten(value: unknown, prefix: string, source: string, out: Map<string, unknown>): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(prefix || '(root)', `${source}: expected a mapping of config keys`);
  }
  for (const [key, child] of Object.entries(value)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    const isLeaf = LEAVES.some((leaf) => leaf.path === path);
    const isBranch = LEAVES.some((leaf) => leaf.path.startsWith(`${path}.`));
    if (isLeaf) out.set(path, child);
    else if (isBranch && child === null) continue; // e.g. `ads:` left empty
    else if (isBranch) flatten(child, path, source, out);
    else {
      const suggestion = closest(path, LEAVES.map((leaf) => leaf.path));
      const hint = suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`;
      throw new ConfigError(path, `${source}: unknown config key ${path}${hint}`);
    }
  }
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = target;
  for (const key of keys.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as Record<string, unknown>;
  }
  const last = keys[keys.length - 1] as string;
  if (value !== undefined) node[last] = value;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** A value quoted in an error line: shortened, so a huge value does not make a huge line. */
const show = (value: unknown): string => {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  return typeof value === 'string' ? JSON.stringify(shorten(text, 80)) : shorten(text, 80);
};

/**
 * Returns the validated, frozen configuration from defaults, the YAML file and the environment,
 * or throws a ConfigError whose message is one line naming the key and what is accepted.
 */
export function loadConfig(options: LoadConfigOptions = {}): InjectorConfig {
  const env = options.env ?? process.env;
  const readFile = options.readFile ?? ((path: string) => readFileSync(path, 'utf8'));
  const file = options.file ?? (env[CONFIG_FILE_ENV] || undefined);

  const values = new Map<string, { value: unknown; source: string }>();
  if (file !== undefined) {
    let text: string;
    try {
      text = readFile(file);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
      throw new ConfigError('(file)', `cannot read config file ${file}: ${reason}`);
    }
    let document: unknown;
    try {
      document = parseYaml(text);
    } catch (error) {
      const message = (error as Error).message.split('\n')[0];
      throw new ConfigError('(file)', `config file ${file} is not valid YAML: ${message}`);
    }
    const flat = new Map<string, unknown>();
    if (document !== null && document !== undefined) flatten(document, '', `config file ${file}`, flat);
    for (const [path, value] of flat) values.set(path, { value, source: `config file ${file}` });
  }
  // The downward API gives the injector's own namespace as POD_NAMESPACE.
  if (env['POD_NAMESPACE']) values.set('namespace', { value: env['POD_NAMESPACE'], source: 'env POD_NAMESPACE' });
  for (const leaf of LEAVES) {
    const name = envVarFor(leaf.path);
    const value = env[name];
    if (value !== undefined) values.set(leaf.path, { value, source: `env ${name}` });
  }

  const config: Record<string, unknown> = {};
  for (const leaf of LEAVES) {
    const given = values.get(leaf.path);
    const raw = given === undefined || given.value === null ? leaf.default : given.value;
    const parsed = leaf.parse(raw);
    if (!parsed.ok) {
      const from = given === undefined ? 'built-in default' : given.source;
      throw new ConfigError(
        leaf.path,
        `invalid config ${leaf.path}=${show(raw)} (from ${from}): expected ${parsed.accepted}`,
      );
    }
    setPath(config, leaf.path, parsed.value);
  }

  const proxy = config['proxy'] as Record<string, unknown>;
  const ads = proxy['ads'] as { address: string | null; tls: boolean };
  proxy['ads'] = ads.address === null ? null : { address: ads.address, tls: ads.tls };
  const result = config as unknown as InjectorConfig;
  checkRequestsWithinLimits(result.proxy.resources, 'proxy.resources');
  checkRequestsWithinLimits(result.init.resources, 'init.resources');
  return deepFreeze(result);
}

function checkRequestsWithinLimits(resources: InjectorConfig['proxy']['resources'], path: string): void {
  const [resource] = requestsAboveLimits(resources);
  if (resource === undefined) return;
  throw new ConfigError(
    `${path}.requests.${resource}`,
    `invalid config ${path}.requests.${resource}=${JSON.stringify(resources.requests[resource])}: expected no more than ${path}.limits.${resource} (${resources.limits[resource]})`,
  );
}
