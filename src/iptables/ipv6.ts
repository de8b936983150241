// What init-iptables does about IPv6. Pure: the pod's IPv6 facts and the --ipv6 flag in, a plan out.
//
// --ipv6=true (the proxy listens on [::]): whenever the pod has an IPv6 stack the same policy is
// applied with ip6tables, also without a global address yet, so an address that appears later is
// covered too. If ip6tables cannot work here (no binary, no kernel support) that only matters when
// the pod has a global address: then it fails, else it notes it and carries on with IPv4.
// --ipv6=false (the proxy does not listen on IPv6): a global IPv6 address would carry traffic
// past the proxy, so it fails closed naming the address and the config key.
import { INBOUND_PASSTHROUGH_SOURCE_V6 } from '../constants.ts';
import type { Failure } from './failures.ts';

/** One line of /proc/net/if_inet6. */
export interface Ipv6Address {
  readonly address: string;
  readonly interface: string;
  /** Kernel scope: 0 global, 0x10 host, 0x20 link (ULAs such as fd00::/8 are global). */
  readonly scope: number;
  readonly flags: number;
}

/** The IPv6 facts of the pod's network namespace. */
export interface Ipv6Facts {
  /** Whether the kernel has IPv6 at all in this namespace (/proc/net/if_inet6 exists). */
  readonly stack: boolean;
  readonly addresses: readonly Ipv6Address[];
}

const IFA_F_DADFAILED = 0x08;

/** Formats 32 hex digits as an IPv6 address in its canonical short form (RFC 5952). */
export function formatIpv6(hex: string): string {
  const groups = (hex.toLowerCase().match(/.{4}/g) ?? []).map((g) => g.replace(/^0+(?=.)/, ''));
  let best = { start: -1, length: 0 };
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== '0') {
      i += 1;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j += 1;
    if (j - i > best.length && j - i >= 2) best = { start: i, length: j - i };
    i = j;
  }
  if (best.start < 0) return groups.join(':');
  const head = groups.slice(0, best.start).join(':');
  const tail = groups.slice(best.start + best.length).join(':');
  return `${head}::${tail}`;
}

/** Parses /proc/net/if_inet6 (address, ifindex, prefix length, scope, flags, interface; hex). */
export function parseIfInet6(text: string): Ipv6Address[] {
  return text
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields.length >= 6 && /^[0-9a-f]{32}$/i.test(fields[0] ?? ''))
    .map(([hex = '', , , scope = '0', flags = '0', name = '']) => ({
      address: formatIpv6(hex),
      interface: name,
      scope: Number.parseInt(scope, 16),
      flags: Number.parseInt(flags, 16),
    }));
}

/** Returns the pod's global IPv6 addresses (those that can carry traffic beyond the pod's link). */
export function globalIpv6Addresses(facts: Ipv6Facts): string[] {
  return facts.addresses
    .filter((a) => a.scope === 0 && (a.flags & IFA_F_DADFAILED) === 0 && a.address !== INBOUND_PASSTHROUGH_SOURCE_V6)
    .map((a) => a.address);
}

/** What to do about IPv6. */
export type Ipv6Plan =
  | { readonly action: 'skip'; readonly note: string }
  /** Apply with ip6tables; when not `required`, a backend that cannot do IPv6 NAT is only noted. */
  | { readonly action: 'apply'; readonly required: boolean; readonly note: string }
  | { readonly action: 'fail'; readonly failure: Failure };

/** Decides what to do about IPv6 from the --ipv6 flag and the pod's IPv6 facts. */
export function planIpv6(ipv6: boolean, facts: Ipv6Facts): Ipv6Plan {
  const global = globalIpv6Addresses(facts);
  if (!ipv6) {
    if (global.length > 0) {
      return {
        action: 'fail',
        failure: {
          kind: 'ipv6-not-captured',
          message:
            `IPv6 would escape the proxy: the pod has the global IPv6 address ${global.join(', ')} but IPv6 capture is off ` +
            '(--ipv6=false, from the injector config key proxy.ipv6); set proxy.ipv6: true so the proxy listens on [::] and IPv6 is captured',
        },
      };
    }
    return { action: 'skip', note: 'IPv6: not captured (--ipv6=false); the pod has no global IPv6 address' };
  }
  if (!facts.stack) return { action: 'skip', note: 'IPv6: the kernel has no IPv6 in this pod; IPv4 only' };
  return global.length > 0
    ? { action: 'apply', required: true, note: `IPv6: the pod has the global address ${global.join(', ')}; applying the same policy with ip6tables` }
    : {
        action: 'apply',
        required: false,
        note: 'IPv6: no global address yet; applying the same policy with ip6tables so an address added later is captured too',
      };
}
