// What init-iptables does about IPv6. Pure: the pod's IPv6 facts and the --ipv6 flag in, a plan out.
// The plan decides both halves of envoy-init alike — the ip6tables rules and, in the bootstrap it
// renders, the proxy's `::` listeners and `::6` passthrough source — so they always agree.
//
// The pod "has IPv6" when its network namespace has an IPv6 stack with an address (at least lo's
// ::1): a kernel booted with ipv6.disable=1 has no stack at all (Envoy's `::` listeners would make
// it crash-loop), and net.ipv6.conf.all.disable_ipv6=1 leaves no address.
//
// --ipv6=auto (default): IPv6 when the pod has it, then as --ipv6=true; else IPv4 only.
// --ipv6=true: the pod must have IPv6 (else it fails, naming the setting). The same policy is
// applied with ip6tables, also without a global address yet, so an address that appears later is
// covered too. If ip6tables cannot work here (no binary, no kernel support) that only matters when
// the pod has a global address: then it fails, else it notes it and carries on with IPv4.
// --ipv6=false: IPv4 only; a global IPv6 address would carry traffic past the proxy, so it fails
// closed naming the address and the setting.
import { INBOUND_PASSTHROUGH_SOURCE_V6 } from '../constants.ts';
import type { Ipv6Mode } from '../core/types.ts';
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

/** Returns the pod's usable IPv6 addresses (any scope): none means the pod has no IPv6. */
function usableIpv6Addresses(facts: Ipv6Facts): Ipv6Address[] {
  return facts.stack ? facts.addresses.filter((a) => (a.flags & IFA_F_DADFAILED) === 0) : [];
}

/** What to do about IPv6. */
export type Ipv6Plan =
  | { readonly action: 'skip'; readonly note: string }
  /** Apply with ip6tables; when not `required`, a backend that cannot do IPv6 NAT is only noted. */
  | { readonly action: 'apply'; readonly required: boolean; readonly note: string }
  | { readonly action: 'fail'; readonly failure: Failure };

/** Whether the proxy listens on `::` (and passes IPv6 through) under `plan`: exactly when IPv6 is captured. */
export function proxyListensOnIpv6(plan: Exclude<Ipv6Plan, { action: 'fail' }>): boolean {
  return plan.action === 'apply';
}

const SETTING = 'the annotation envoy-injector.io/ipv6 or the config key proxy.ipv6';

/** Decides what to do about IPv6 from the --ipv6 flag and the pod's IPv6 facts. */
export function planIpv6(mode: Ipv6Mode, facts: Ipv6Facts): Ipv6Plan {
  const global = globalIpv6Addresses(facts);
  if (mode === 'false') {
    if (global.length > 0) {
      return {
        action: 'fail',
        failure: {
          kind: 'ipv6-not-captured',
          message:
            `IPv6 would escape the proxy: the pod has the global IPv6 address ${global.join(', ')} but IPv6 capture is off ` +
            `(--ipv6=false, from ${SETTING}); set it to auto or true so the proxy listens on [::] and IPv6 is captured`,
        },
      };
    }
    return { action: 'skip', note: 'IPv6: not captured (--ipv6=false); the pod has no global IPv6 address' };
  }
  if (usableIpv6Addresses(facts).length === 0) {
    const why = facts.stack ? 'IPv6 is disabled in this pod (no IPv6 address, not even ::1)' : 'the kernel has no IPv6 in this pod';
    if (mode === 'auto') return { action: 'skip', note: `IPv6: ${why}; IPv4 only, and the proxy listens on IPv4 only (--ipv6=auto)` };
    return {
      action: 'fail',
      failure: {
        kind: 'no-ipv6',
        message: `IPv6 is required (--ipv6=true, from ${SETTING}) but ${why}; set it to auto to capture IPv4 only in such pods`,
      },
    };
  }
  return global.length > 0
    ? { action: 'apply', required: true, note: `IPv6: the pod has the global address ${global.join(', ')}; applying the same policy with ip6tables` }
    : {
        action: 'apply',
        required: false,
        note: 'IPv6: no global address yet; applying the same policy with ip6tables so an address added later is captured too',
      };
}
