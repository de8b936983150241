// Reads the injector's configuration once: built-in defaults, then one YAML file, then environment
// variables. Everything is validated up front; a bad value stops the start with one line naming the
// key, where it came from and what is accepted.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import type { Draft } from './core/lens.ts';
import { INIT_IMAGE_REPOSITORY, SETTINGS, defaultOf, envVarFor, type Setting, type SettingsTable } from './core/settings.ts';
import { shorten } from './core/reasons.ts';
import { closest } from './core/suggest.ts';
import type { InjectorConfig } from './core/types.ts';
import type { ValueType } from './core/value-types.ts';
import { requestsAboveLimits, type Parsed } from './core/values.ts';
import { ConfigError } from './errors.ts';
import { VERSION } from './version.ts';

export { envVarFor };

/** Environment variable naming the config file (the `--config` flag takes precedence). */
export const CONFIG_FILE_ENV = 'ENVOY_INJECTOR_CONFIG';

/**
 * Parses YAML, loading the parser on first use: a start without a config file (the local default)
 * does not pay for it. Synchronous, as loading the config is.
 */
function parseYaml(text: string): unknown {
  const yaml = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  return yaml.parse(text);
}

/** The pinned default image of envoy-init: this project's own, at this version. */
export const DEFAULT_INIT_IMAGE = `${INIT_IMAGE_REPOSITORY}:v${VERSION}`;

/**
 * Parses a value as the YAML file or the environment gives it: a scalar (string, number or
 * boolean) as its text, and for a list also a YAML sequence of scalars (joined with commas).
 */
function parseGiven<T>(syntax: ValueType<T>, value: unknown): Parsed<T> {
  if (syntax.fromYaml !== undefined && typeof value === 'object' && value !== null) return syntax.fromYaml(value);
  if (syntax.list === true && Array.isArray(value) && value.every((v) => typeof v === 'string' || typeof v === 'number')) {
    // An item holding a comma would become two items once joined.
    if (value.some((v) => String(v).includes(','))) return syntax.parse('\u0000');
    return syntax.parse(value.map(String).join(','));
  }
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return syntax.parse(String(value));
  // A mapping or a list where a scalar belongs: fail with what the key accepts.
  return syntax.parse('\u0000');
}

/** The documented keys of the config file with their env vars and defaults (for the README and `--help`). */
export function describeConfigKeys(table: SettingsTable = SETTINGS): { key: string; env: string; default: unknown }[] {
  return table.map((s) => ({ key: s.key, env: s.env, default: defaultOf(s, VERSION) }));
}

export interface LoadConfigOptions {
  /** Path of the YAML config file; falls back to $ENVOY_INJECTOR_CONFIG, then to none. */
  readonly file?: string | undefined;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Reads a file (tests inject this); defaults to fs. */
  readonly readFile?: (path: string) => string;
  /** The settings to read (tests extend the table); defaults to every setting of the injector. */
  readonly settings?: SettingsTable;
}

/** Flattens YAML into `key → value`, refusing keys the config does not have. */
function flatten(value: unknown, prefix: string, source: string, table: SettingsTable, out: Map<string, unknown>): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(prefix || '(root)', `${source}: expected a mapping of config keys`);
  }
  for (const [key, child] of Object.entries(value)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    const isLeaf = table.some((s) => s.key === path);
    const isBranch = table.some((s) => s.key.startsWith(`${path}.`));
    if (isLeaf) out.set(path, child);
    else if (isBranch && child === null) continue; // e.g. `ads:` left empty
    else if (isBranch) flatten(child, path, source, table, out);
    else {
      const suggestion = closest(path, table.map((s) => s.key));
      const hint = suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`;
      throw new ConfigError(path, `${source}: unknown config key ${path}${hint}`);
    }
  }
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
  const table = options.settings ?? SETTINGS;
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
    if (document !== null && document !== undefined) flatten(document, '', `config file ${file}`, table, flat);
    for (const [path, value] of flat) values.set(path, { value, source: `config file ${file}` });
  }
  // The downward API gives the injector's own namespace as POD_NAMESPACE.
  if (env['POD_NAMESPACE']) values.set('namespace', { value: env['POD_NAMESPACE'], source: 'env POD_NAMESPACE' });
  for (const setting of table) {
    const value = env[setting.env];
    if (value !== undefined) values.set(setting.key, { value, source: `env ${setting.env}` });
  }

  checkEnvironmentNames(env, table);

  const draft: Draft<InjectorConfig> = {};
  for (const setting of table) readSetting(setting, values.get(setting.key), draft);
  // Every key of InjectorConfig is some setting's place (test/settings.test.ts checks it).
  const result = draft as InjectorConfig;
  checkRequestsWithinLimits(result.proxy.resources, 'proxy.resources');
  checkRequestsWithinLimits(result.init.resources, 'init.resources');
  return deepFreeze(result);
}

/** Prefix of every environment variable the injector reads (its config keys' and the config file's). */
const ENV_PREFIX = 'ENVOY_INJECTOR_';

/**
 * What Kubernetes puts in a pod's environment for every Service of its namespace (unless the pod
 * sets enableServiceLinks: false): for a Service named envoy-injector, ENVOY_INJECTOR_SERVICE_HOST,
 * ENVOY_INJECTOR_SERVICE_PORT[_<PORT NAME>], ENVOY_INJECTOR_PORT and
 * ENVOY_INJECTOR_PORT_443_TCP[_PROTO|_PORT|_ADDR]; the same after ENVOY_INJECTOR_<REST>_ for a
 * Service named envoy-injector-<rest>. Each is recognised by its name and its value together (an IP
 * address, a port, a protocol, or protocol://address:port), so that a misspelt config variable
 * ending in _PORT is still reported.
 */
const PORT_VALUE = /^\d{1,5}$/;
const isPort = (value: string) => PORT_VALUE.test(value);
const isLink = (value: string) => /^(?:tcp|udp|sctp):\/\/(?:\[[0-9A-Fa-f:.]+\]|[0-9.]+):\d{1,5}$/.test(value);
const SERVICE_LINKS: readonly { readonly suffix: RegExp; readonly value: (value: string) => boolean }[] = [
  { suffix: /_SERVICE_HOST$/, value: (v) => isIP(v) !== 0 },
  { suffix: /_SERVICE_PORT(?:_[A-Z0-9_]+)?$/, value: isPort },
  { suffix: /_PORT$/, value: isLink },
  { suffix: /_PORT_\d+_(?:TCP|UDP|SCTP)$/, value: isLink },
  { suffix: /_PORT_\d+_(?:TCP|UDP|SCTP)_PROTO$/, value: (v) => /^(?:tcp|udp|sctp)$/.test(v) },
  { suffix: /_PORT_\d+_(?:TCP|UDP|SCTP)_PORT$/, value: isPort },
  { suffix: /_PORT_\d+_(?:TCP|UDP|SCTP)_ADDR$/, value: (v) => isIP(v) !== 0 },
];

/** Whether `name=value` is a Service link variable Kubernetes set (see SERVICE_LINKS). */
export function isServiceLink(name: string, value: string | undefined): boolean {
  if (value === undefined || !/^ENVOY_INJECTOR(?:_[A-Z0-9_]+)?$/.test(name)) return false;
  return SERVICE_LINKS.some((link) => link.suffix.test(name) && link.value(value));
}

/**
 * Refuses an environment variable under the injector's prefix that it does not read, as an unknown
 * key of the file is refused: a misspelt ENVOY_INJECTOR_PROXY_IMGE would otherwise be ignored.
 * Service link variables are not the injector's (see SERVICE_LINKS).
 */
function checkEnvironmentNames(env: Readonly<Record<string, string | undefined>>, table: SettingsTable): void {
  const known = [CONFIG_FILE_ENV, ...table.map((s) => s.env)];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith(ENV_PREFIX) || known.includes(name) || isServiceLink(name, env[name])) continue;
    const suggestion = closest(name, known);
    const hint = suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`;
    throw new ConfigError('(env)', `unknown environment variable ${name}${hint}: it is no setting of the injector (see the README's Configuration)`);
  }
}

/** Validates one setting's given value (or its default) into the config being built. */
function readSetting<C>(setting: Setting<C>, given: { value: unknown; source: string } | undefined, draft: Draft<InjectorConfig>): void {
  // An empty YAML value (`image:`) is as good as not given.
  const useDefault = given === undefined || given.value === null;
  const value = useDefault ? defaultOf(setting, VERSION) : given.value;
  const parsed = useDefault ? { ok: true as const, value: value as C } : parseGiven(setting.syntax, value);
  if (!parsed.ok) {
    throw new ConfigError(setting.key, `invalid config ${setting.key}=${show(value)} (from ${given?.source}): expected ${parsed.accepted}`);
  }
  setting.config.set(draft, parsed.value);
}

function checkRequestsWithinLimits(resources: InjectorConfig['proxy']['resources'], path: string): void {
  const [resource] = requestsAboveLimits(resources);
  if (resource === undefined) return;
  throw new ConfigError(
    `${path}.requests.${resource}`,
    `invalid config ${path}.requests.${resource}=${JSON.stringify(resources.requests[resource])}: expected no more than ${path}.limits.${resource} (${resources.limits[resource]})`,
  );
}
