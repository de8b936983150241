// The `envoy-injector init-iptables` flags: rendered from a TrafficPolicy into the envoy-init
// container's args, and parsed back by the init command. One module so both sides always agree.
import { PORTS, PROXY_GID, PROXY_PORTS, PROXY_UID } from '../constants.ts';
import type { AllOr, TrafficPolicy } from './types.ts';
import {
  parseAllOrCidrList,
  parseAllOrPortList,
  parseBoolean,
  parseCidrList,
  parseInteger,
  parsePort,
  parsePortList,
  type Parsed,
} from './values.ts';

const list = (items: AllOr<number | string>): string => (items === '*' ? '*' : items.join(','));

/** Returns the `init-iptables` flags that make the init container apply `policy`. */
export function renderTrafficFlags(policy: TrafficPolicy): string[] {
  return [
    `--proxy-uid=${policy.proxyUid}`,
    `--proxy-gid=${policy.proxyGid}`,
    `--inbound-capture-port=${policy.inboundCapturePort}`,
    `--outbound-capture-port=${policy.outboundCapturePort}`,
    `--proxy-ports=${list(policy.proxyPorts)}`,
    `--include-inbound-ports=${list(policy.includeInboundPorts)}`,
    `--exclude-inbound-ports=${list(policy.excludeInboundPorts)}`,
    `--exclude-outbound-ports=${list(policy.excludeOutboundPorts)}`,
    `--include-outbound-ip-ranges=${list(policy.includeOutboundIpRanges)}`,
    `--exclude-outbound-ip-ranges=${list(policy.excludeOutboundIpRanges)}`,
    `--ipv6=${policy.ipv6}`,
  ];
}

/** The policy an `init-iptables` run uses for every flag it is not given. */
export const DEFAULT_TRAFFIC_POLICY: TrafficPolicy = {
  proxyUid: PROXY_UID,
  proxyGid: PROXY_GID,
  inboundCapturePort: PORTS.inboundCapture,
  outboundCapturePort: PORTS.outboundCapture,
  proxyPorts: PROXY_PORTS,
  includeInboundPorts: '*',
  excludeInboundPorts: [],
  excludeOutboundPorts: [],
  includeOutboundIpRanges: '*',
  excludeOutboundIpRanges: [],
  ipv6: true,
};

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const FLAG_PARSERS: {
  readonly [flag: string]: (value: string, policy: Mutable<TrafficPolicy>) => Parsed<unknown>;
} = {
  'proxy-uid': (v, p) => assign(parseInteger(v, 0, 2 ** 31 - 1), (x) => (p.proxyUid = x)),
  'proxy-gid': (v, p) => assign(parseInteger(v, 0, 2 ** 31 - 1), (x) => (p.proxyGid = x)),
  'inbound-capture-port': (v, p) => assign(parsePort(v), (x) => (p.inboundCapturePort = x)),
  'outbound-capture-port': (v, p) => assign(parsePort(v), (x) => (p.outboundCapturePort = x)),
  'proxy-ports': (v, p) => assign(parsePortList(v), (x) => (p.proxyPorts = x)),
  'include-inbound-ports': (v, p) => assign(parseAllOrPortList(v), (x) => (p.includeInboundPorts = x)),
  'exclude-inbound-ports': (v, p) => assign(parsePortList(v), (x) => (p.excludeInboundPorts = x)),
  'exclude-outbound-ports': (v, p) => assign(parsePortList(v), (x) => (p.excludeOutboundPorts = x)),
  'include-outbound-ip-ranges': (v, p) => assign(parseAllOrCidrList(v), (x) => (p.includeOutboundIpRanges = x)),
  'exclude-outbound-ip-ranges': (v, p) => assign(parseCidrList(v), (x) => (p.excludeOutboundIpRanges = x)),
  ipv6: (v, p) => assign(parseBoolean(v), (x) => (p.ipv6 = x)),
};

/** Names of the flags that make up a TrafficPolicy (without the leading `--`). */
export const TRAFFIC_FLAG_NAMES: readonly string[] = Object.keys(FLAG_PARSERS);

function assign<T>(parsed: Parsed<T>, set: (value: T) => unknown): Parsed<T> {
  if (parsed.ok) set(parsed.value);
  return parsed;
}

/**
 * Parses TrafficPolicy flags given as `{flag: value}` (flag without `--`) over the defaults, or
 * returns the first bad flag with what it accepts.
 */
export function parseTrafficFlags(
  values: Readonly<Record<string, string>>,
): { ok: true; policy: TrafficPolicy } | { ok: false; error: string } {
  const policy: Mutable<TrafficPolicy> = { ...DEFAULT_TRAFFIC_POLICY };
  for (const [flag, value] of Object.entries(values)) {
    const parse = FLAG_PARSERS[flag];
    if (parse === undefined) return { ok: false, error: `unknown flag --${flag}` };
    const parsed = parse(value, policy);
    if (!parsed.ok) return { ok: false, error: `--${flag}=${JSON.stringify(value)}: expected ${parsed.accepted}` };
  }
  return { ok: true, policy };
}
