// The value syntaxes of settings: how a value is read from an annotation, an environment variable,
// a config file or an init-iptables flag, and written back the same way. Each pairs a parser of
// values.ts (which stay the primitives) with its inverse, so a value written by `format` always
// parses back to itself (test/settings.test.ts checks it for every setting).
import { checkFragments } from './bootstrap-override.ts';
import { formatProxyMounts, parseProxyMounts } from './proxy-mounts.ts';
import { type AllOr, type Ipv6Mode, type JsonObject, type LogLevel, type ProxyMount } from './types.ts';

export { MAX_PROXY_MOUNTS, RESERVED_MOUNT_PATHS } from './proxy-mounts.ts';
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
  MAX_VALUE_LENGTH,
  type Parsed,
} from './values.ts';

/** A value syntax: parse text into a value, or format a value back into text that parses to it. */
export interface ValueType<T> {
  /** Parses the text of an annotation, environment variable or flag. */
  readonly parse: (text: string) => Parsed<T>;
  /** Writes `value` in the same syntax. */
  readonly format: (value: T) => string;
  /** A placeholder for usage texts, e.g. `P,...` or `true|false`. */
  readonly hint: string;
  /** A list: the config file may also give it as a YAML sequence of scalars. */
  readonly list?: boolean;
  /**
   * For a structured value (a YAML mapping in the config file, such as a bootstrap fragment): reads
   * it as YAML gave it; `parse` then reads the text form (the environment variable's).
   */
  readonly fromYaml?: (value: unknown) => Parsed<T>;
}

const list = (items: AllOr<number | string>): string => (items === '*' ? '*' : items.join(','));
const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(accepted: string): Parsed<T> => ({ ok: false, accepted });

/** Comma-separated ports, empty for none. */
export const portList: ValueType<readonly number[]> = { parse: parsePortList, format: list, hint: 'P,...', list: true };
/** `*` for all ports, or a port list. */
export const allOrPortList: ValueType<AllOr<number>> = { parse: parseAllOrPortList, format: list, hint: '*|P,...', list: true };
/** Comma-separated IPv4/IPv6 CIDRs, empty for none. */
export const cidrList: ValueType<readonly string[]> = { parse: parseCidrList, format: list, hint: 'CIDR,...', list: true };
/** `*` for all destinations, or a CIDR list. */
export const allOrCidrList: ValueType<AllOr<string>> = { parse: parseAllOrCidrList, format: list, hint: '*|CIDR,...', list: true };
/** One TCP port. */
export const port: ValueType<number> = { parse: parsePort, format: String, hint: 'PORT' };
/** `true` or `false`. */
export const boolean: ValueType<boolean> = { parse: parseBoolean, format: String, hint: 'true|false' };
/** An Envoy log level. */
export const logLevel: ValueType<LogLevel> = { parse: parseLogLevel, format: (level) => level, hint: 'LEVEL' };
/** A Kubernetes CPU quantity. */
export const cpu: ValueType<string> = { parse: parseCpu, format: (value) => value, hint: 'CPU' };
/** A Kubernetes memory quantity in bytes. */
export const memory: ValueType<string> = { parse: parseMemory, format: (value) => value, hint: 'MEMORY' };
/** A container image reference. */
export const image: ValueType<string> = { parse: parseImage, format: (value) => value, hint: 'IMAGE' };

/** `auto`, `true` or `false` (any case, like a boolean). */
export const ipv6Mode: ValueType<Ipv6Mode> = {
  parse: (text) => {
    const value = text.trim().toLowerCase();
    return value === 'auto' || value === 'true' || value === 'false' ? ok(value) : bad('"auto", "true" or "false"');
  },
  format: (value) => value,
  hint: 'auto|true|false',
};

/** A whole number from `min` to `max`. */
export function integer(min: number, max: number): ValueType<number> {
  return { parse: (text) => parseInteger(text, min, max), format: String, hint: 'N' };
}

/** One of `choices`, exactly as written (surrounding blanks ignored). */
export function oneOf<const C extends string>(...choices: C[]): ValueType<C> {
  return {
    parse: (text) => ((choices as string[]).includes(text.trim()) ? ok(text.trim() as C) : bad(`one of ${choices.join(', ')}`)),
    format: (value) => value,
    hint: choices.join('|'),
  };
}

/** `inner`, or the empty string for "not set". */
export function optional<T>(inner: ValueType<T>): ValueType<T | undefined> {
  return {
    parse: (text) => (text.trim() === '' ? ok(undefined) : inner.parse(text)),
    format: (value) => (value === undefined ? '' : inner.format(value)),
    hint: inner.hint,
    ...(inner.list === undefined ? {} : { list: inner.list }),
  };
}

/** Any text without blanks, described as `what`. */
export function word(what: string): ValueType<string> {
  return { parse: (text) => (/^[^\s]+$/.test(text.trim()) ? ok(text.trim()) : bad(what)), format: (value) => value, hint: 'TEXT' };
}

const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const isObjectName = (text: string): boolean => DNS_NAME.test(text) && text.length <= 63;
const splitItems = (text: string): string[] => (text.trim() === '' ? [] : text.split(',').map((s) => s.trim()));

/** A Kubernetes object name (a DNS label). */
export const objectName: ValueType<string> = {
  parse: (text) =>
    isObjectName(text.trim()) ? ok(text.trim()) : bad('a Kubernetes object name (lower-case letters, digits and -)'),
  format: (value) => value,
  hint: 'NAME',
};

/** Most namespaces excludedNamespaces may list (each admission looks its namespace up in it). */
export const MAX_EXCLUDED_NAMESPACES = 1000;
/** Most names tls.dnsNames may list (each becomes a subjectAltName of the serving certificate). */
export const MAX_DNS_NAMES = 100;

/** A comma-separated list of at most `max` items each accepted by `item`, read only within MAX_VALUE_LENGTH. */
function cappedList(max: number, what: string, item: (text: string) => boolean): (text: string) => Parsed<readonly string[]> {
  const accepted = `a list of at most ${max} ${what}`;
  return (text) => {
    if (text.length > MAX_VALUE_LENGTH) return bad(`${accepted}, in at most ${MAX_VALUE_LENGTH} characters`);
    const items = splitItems(text);
    return items.length <= max && items.every(item) ? ok(items) : bad(accepted);
  };
}

/** Comma-separated namespace names, at most MAX_EXCLUDED_NAMESPACES. */
export const namespaceList: ValueType<readonly string[]> = {
  parse: cappedList(MAX_EXCLUDED_NAMESPACES, 'Kubernetes namespace names', isObjectName),
  format: list,
  hint: 'NAME,...',
  list: true,
};

/** Comma-separated DNS names or IP addresses, at most MAX_DNS_NAMES. */
export const hostList: ValueType<readonly string[]> = {
  parse: cappedList(MAX_DNS_NAMES, 'DNS names or IP addresses', (item) => /^[A-Za-z0-9.*:-]+$/.test(item)),
  format: list,
  hint: 'HOST,...',
  list: true,
};

/** `host:port` of a gRPC endpoint, or empty for none (null). */
export const optionalHostPort: ValueType<string | null> = {
  parse: (text) => {
    if (text.trim() === '') return ok(null);
    const parsed = parseHostPort(text);
    return parsed.ok ? ok(text.trim()) : parsed;
  },
  format: (value) => value ?? '',
  hint: 'HOST:PORT',
};

const SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The name of a ConfigMap or Secret (a DNS subdomain), or empty for none (null). */
export const optionalResourceName: ValueType<string | null> = {
  parse: (text) => {
    const value = text.trim();
    if (value === '') return ok(null);
    return SUBDOMAIN.test(value) ? ok(value) : bad('a ConfigMap or Secret name (lower-case letters, digits, - and .), or empty for none');
  },
  format: (value) => value ?? '',
  hint: 'NAME',
};

/** The proxy's mounts: `secret/NAME=/abs/path,configmap/NAME=/abs/path`. */
export const proxyMounts: ValueType<readonly ProxyMount[]> = {
  parse: parseProxyMounts,
  format: formatProxyMounts,
  hint: 'KIND/NAME=PATH,...',
  list: true,
};

/** A Kubernetes object name, or the empty text for none (null). */
export const optionalObjectName: ValueType<string | null> = {
  parse: (text) => (text.trim() === '' ? ok(null) : objectName.parse(text)),
  format: (value) => value ?? '',
  hint: 'NAME',
};

/**
 * The largest cluster-wide bootstrap fragment, as compact JSON: it travels in every injected pod's
 * envoy-init args (bytes stored in etcd and sent on every watch), far below Linux's 128 KiB per argument.
 */
export const MAX_FRAGMENT_BYTES = 16 * 1024;

/** Checks a bootstrap fragment: a mapping that reads as a partial Bootstrap, with no clash with the injector's own. */
function checkedFragment(value: unknown, source: string): Parsed<JsonObject | null> {
  if (value === null) return ok(null);
  const { problems } = checkFragments([{ source, value }]);
  if (problems.length > 0) return bad(`a partial Envoy Bootstrap without clashes: ${problems.join('; ')}`);
  const bytes = Buffer.byteLength(JSON.stringify(value));
  if (bytes > MAX_FRAGMENT_BYTES) {
    return bad(`a fragment of at most ${MAX_FRAGMENT_BYTES} bytes of JSON (it travels in every injected pod), got ${bytes}: put larger configuration in a ConfigMap per namespace`);
  }
  return ok(value as JsonObject);
}

/**
 * A bootstrap fragment: a YAML mapping in the config file, JSON text in the environment and in
 * envoy-init's flag (compact JSON), empty for none (null).
 */
export const bootstrapFragment: ValueType<JsonObject | null> = {
  parse: (text) => {
    if (text.trim() === '') return ok(null);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return bad('a JSON object (a partial Envoy Bootstrap)');
    }
    return typeof value === 'object' && value !== null ? checkedFragment(value, 'the fragment') : bad('a JSON object (a partial Envoy Bootstrap)');
  },
  format: (value) => (value === null ? '' : JSON.stringify(value)),
  fromYaml: (value) => (Array.isArray(value) ? bad('a mapping (a partial Envoy Bootstrap)') : checkedFragment(value, 'the fragment')),
  hint: 'JSON',
};
