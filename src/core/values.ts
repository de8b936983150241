// Parsers for the value syntaxes shared by annotations, config files, environment and CLI flags.
// Each returns the parsed value or the sentence describing what is accepted.
import { isIP } from 'node:net';
import { LOG_LEVELS, type AllOr, type LogLevel, type ProxyResources } from './types.ts';

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly accepted: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(accepted: string): Parsed<T> => ({ ok: false, accepted });

// The work of one admission must stay a small multiple of parsing its body (SPEC.md §6), and
// mutating admission sees a pod before the API server validates it: an annotation may hold
// megabytes. So every value is measured before it is read, and lists are capped. The caps are far
// above any real use, and keep envoy-init's arguments (one per list, rendered from the parsed
// values, never longer than the text they came from) far below Linux's 128 KiB per argument.

/** Longest value, in characters, any parser reads; a longer one is refused unread, with its length. */
export const MAX_VALUE_LENGTH = 32 * 1024;
/** Most ports a port list may hold. */
export const MAX_PORTS = 256;
/** Most CIDRs a CIDR list may hold. */
export const MAX_CIDRS = 512;

/** The refusal of a value longer than MAX_VALUE_LENGTH, saying what is accepted and how long it is. */
function tooLong<T>(text: string, accepted: string): Parsed<T> | undefined {
  return text.length > MAX_VALUE_LENGTH
    ? bad(`${accepted}, in at most ${MAX_VALUE_LENGTH} characters (this value has ${text.length})`)
    : undefined;
}

/**
 * Splits a comma-separated list, trimming blanks (the empty string is the empty list), or returns
 * undefined when it has more than `max` items; counted before anything is split.
 */
function splitList(text: string, max: number): string[] | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  let commas = 0;
  for (let at = trimmed.indexOf(','); at !== -1; at = trimmed.indexOf(',', at + 1)) {
    if (++commas >= max) return undefined;
  }
  return trimmed.split(',').map((item) => item.trim());
}

/** Counts the items of a list as splitList does, for the message that refuses too many. */
function countItems(text: string): number {
  return text.trim() === '' ? 0 : text.split(',').length;
}

const PORT_LIST = `a comma-separated list of at most ${MAX_PORTS} ports from 1 to 65535 (e.g. "8080,9090"), or empty for none`;

/** Parses one TCP port (1–65535). */
export function parsePort(text: string): Parsed<number> {
  const long = tooLong<number>(text, 'a port from 1 to 65535');
  if (long !== undefined) return long;
  if (!/^\d{1,5}$/.test(text.trim())) return bad('a port from 1 to 65535');
  const port = Number(text.trim());
  return port >= 1 && port <= 65535 ? ok(port) : bad('a port from 1 to 65535');
}

/** Parses `8080,9090` into distinct ports, in the order given. */
export function parsePortList(text: string): Parsed<number[]> {
  const long = tooLong<number[]>(text, PORT_LIST);
  if (long !== undefined) return long;
  const items = splitList(text, MAX_PORTS);
  if (items === undefined) return bad(`${PORT_LIST} (this one has ${countItems(text)})`);
  // A Set keeps the dedupe linear; insertion order is the order given.
  const ports = new Set<number>();
  for (const item of items) {
    const port = parsePort(item);
    if (!port.ok) return bad(PORT_LIST);
    ports.add(port.value);
  }
  return ok([...ports]);
}

/** Parses `*` (all ports) or a port list. */
export function parseAllOrPortList(text: string): Parsed<AllOr<number>> {
  if (text.length <= MAX_VALUE_LENGTH && text.trim() === '*') return ok('*');
  const list = parsePortList(text);
  return list.ok ? list : bad(`"*" for all ports, or ${list.accepted}`);
}

const CIDR_LIST = `a comma-separated list of at most ${MAX_CIDRS} IPv4/IPv6 CIDRs (e.g. "10.0.0.0/8,fd00::/8"), or empty for none`;

/** Parses one CIDR (`10.0.0.0/8`, `fd00::/8`) or a bare address (a /32 or /128). */
export function parseCidr(text: string): Parsed<string> {
  const long = tooLong<string>(text, 'an IPv4 or IPv6 CIDR such as 10.0.0.0/8 or fd00::/8');
  if (long !== undefined) return long;
  const [address = '', prefix, ...rest] = text.trim().split('/');
  const family = isIP(address);
  // isIP accepts an IPv6 zone (fe80::1%eth0), which iptables does not: a rule with one would fail
  // in envoy-init instead of the pod being denied here.
  if (family === 0 || rest.length > 0 || address.includes('%')) return bad('an IPv4 or IPv6 CIDR such as 10.0.0.0/8 or fd00::/8');
  if (prefix === undefined) return ok(address);
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) {
    return bad(`an IPv${family} CIDR with a prefix length from 0 to ${max}`);
  }
  return ok(`${address}/${Number(prefix)}`);
}

/** Parses a CIDR list into distinct CIDRs, in the order given. */
export function parseCidrList(text: string): Parsed<string[]> {
  const long = tooLong<string[]>(text, CIDR_LIST);
  if (long !== undefined) return long;
  const items = splitList(text, MAX_CIDRS);
  if (items === undefined) return bad(`${CIDR_LIST} (this one has ${countItems(text)})`);
  // A Set keeps the dedupe linear (an array's `includes` made a long list quadratic).
  const cidrs = new Set<string>();
  for (const item of items) {
    const cidr = parseCidr(item);
    if (!cidr.ok) return bad(CIDR_LIST);
    cidrs.add(cidr.value);
  }
  return ok([...cidrs]);
}

/** Parses `*` (all destinations) or a CIDR list. */
export function parseAllOrCidrList(text: string): Parsed<AllOr<string>> {
  if (text.length <= MAX_VALUE_LENGTH && text.trim() === '*') return ok('*');
  const list = parseCidrList(text);
  return list.ok ? list : bad(`"*" for all destinations, or ${list.accepted}`);
}

/** Parses `true` or `false` (any letter case). */
export function parseBoolean(text: string): Parsed<boolean> {
  const long = tooLong<boolean>(text, '"true" or "false"');
  if (long !== undefined) return long;
  const value = text.trim().toLowerCase();
  if (value === 'true') return ok(true);
  if (value === 'false') return ok(false);
  return bad('"true" or "false"');
}

/** Parses a whole number from `min` to `max`. */
export function parseInteger(text: string, min: number, max: number): Parsed<number> {
  const long = tooLong<number>(text, `a whole number from ${min} to ${max}`);
  if (long !== undefined) return long;
  const value = text.trim();
  if (!/^\d{1,10}$/.test(value) || Number(value) < min || Number(value) > max) {
    return bad(`a whole number from ${min} to ${max}`);
  }
  return ok(Number(value));
}

/** Parses an Envoy log level (`warn` is accepted for `warning`). */
export function parseLogLevel(text: string): Parsed<LogLevel> {
  const long = tooLong<LogLevel>(text, `one of ${LOG_LEVELS.join(', ')}`);
  if (long !== undefined) return long;
  const value = text.trim().toLowerCase();
  const level = value === 'warn' ? 'warning' : value;
  return (LOG_LEVELS as readonly string[]).includes(level)
    ? ok(level as LogLevel)
    : bad(`one of ${LOG_LEVELS.join(', ')}`);
}

// Kubernetes resource quantity: a decimal number with an optional binary (Ki…Ei), decimal
// (n, u, m, k, M…E) or exponent suffix (apimachinery's resource.Quantity grammar).
const QUANTITY = /^\+?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;
const SUFFIX_FACTOR: Record<string, number> = {
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
  n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
};

/** Returns the numeric value of a Kubernetes quantity (e.g. `100m` → 0.1), or NaN. */
export function quantityValue(text: string): number {
  const match = QUANTITY.exec(text);
  if (!match) return Number.NaN;
  const suffix = match[3] ?? '';
  const number = Number(match[1]);
  if (/^[eE]/.test(suffix)) return number * 10 ** Number(suffix.slice(1));
  return number * (SUFFIX_FACTOR[suffix] ?? Number.NaN);
}

/** Returns the resources (cpu, memory) whose request is above its limit: the API server refuses those. */
export function requestsAboveLimits(resources: ProxyResources): ('cpu' | 'memory')[] {
  return (['cpu', 'memory'] as const).filter((name) => {
    const request = resources.requests[name];
    const limit = resources.limits[name];
    return request !== undefined && limit !== undefined && quantityValue(request) > quantityValue(limit);
  });
}

/**
 * Whether resources qualify a container for Guaranteed QoS: CPU and memory limits set, and requests
 * equal to them (an unset request defaults to its limit, as the API server does).
 */
export function isGuaranteed(resources: ProxyResources): boolean {
  return (['cpu', 'memory'] as const).every((name) => {
    const limit = resources.limits[name];
    const request = resources.requests[name] ?? limit;
    return limit !== undefined && request !== undefined && quantityValue(limit) === quantityValue(request);
  });
}

/** Parses a CPU quantity such as `100m` or `2`. */
export function parseCpu(text: string): Parsed<string> {
  const long = tooLong<string>(text, 'a Kubernetes CPU quantity such as 100m or 2');
  if (long !== undefined) return long;
  const value = text.trim();
  return QUANTITY.test(value) && Number.isFinite(quantityValue(value))
    ? ok(value)
    : bad('a Kubernetes CPU quantity such as 100m or 2');
}

/** Parses a memory quantity such as `128Mi` or `1Gi`. */
export function parseMemory(text: string): Parsed<string> {
  const long = tooLong<string>(text, 'a Kubernetes memory quantity in bytes such as 128Mi or 1Gi');
  if (long !== undefined) return long;
  const value = text.trim();
  // Memory is counted in bytes: the sub-unit suffixes (`128m` is 0.128 bytes, a common slip for
  // `128M`) give a container no memory at all, which the kubelet then refuses to create.
  const bytes = QUANTITY.test(value) && !/[num]$/.test(value) ? quantityValue(value) : Number.NaN;
  return Number.isFinite(bytes) && bytes >= 1 ? ok(value) : bad('a Kubernetes memory quantity in bytes such as 128Mi or 1Gi');
}

// Image reference grammar (distribution/reference): [domain[:port]/]path[:tag][@digest].
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:]+\\])(?::\\d+)?`;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const IMAGE = new RegExp(
  `^(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*(?::[\\w][\\w.-]{0,127})?` +
    '(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$',
);

/** Parses a container image reference such as `envoyproxy/envoy:v1.36.2`. */
export function parseImage(text: string): Parsed<string> {
  const long = tooLong<string>(text, 'a container image reference such as envoyproxy/envoy:v1.36.2');
  if (long !== undefined) return long;
  const value = text.trim();
  return value.length <= 512 && IMAGE.test(value)
    ? ok(value)
    : bad('a container image reference such as envoyproxy/envoy:v1.36.2');
}

/** Parses `host:port` of a gRPC endpoint (DNS name, IPv4, or bracketed IPv6). */
export function parseHostPort(text: string): Parsed<{ host: string; port: number }> {
  const long = tooLong<{ host: string; port: number }>(text, 'host:port, e.g. xds.control-plane.svc:18000');
  if (long !== undefined) return long;
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text.trim());
  const port = match ? parsePort(match[2] ?? '') : undefined;
  if (!match || !port?.ok) return bad('host:port, e.g. xds.control-plane.svc:18000');
  const host = (match[1] ?? '').replace(/^\[(.*)\]$/, '$1');
  if (host.includes(':') && isIP(host) !== 6) return bad('host:port, e.g. xds.control-plane.svc:18000');
  return ok({ host, port: port.value });
}
