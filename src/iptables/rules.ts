// The traffic-capture rule set, rendered as iptables-restore / ip6tables-restore input.
//
// Pure: a TrafficPolicy (plus, on a rerun, what the namespace already holds) in, restore text out.
// Everything lives in the nat table, in chains of our own, entered by one jump from PREROUTING
// (inbound) and one from OUTPUT (outbound):
//
//   PREROUTING -p tcp -> ENVOY_INBOUND
//     proxy ports, exclude-inbound-ports      RETURN
//     * or include-inbound-ports              -> ENVOY_INBOUND_REDIRECT (REDIRECT to 15006)
//   OUTPUT -p tcp -> ENVOY_OUTBOUND
//     -o lo from 127.0.0.6 / ::6              RETURN  (the proxy's inbound passthrough to the app)
//     -o lo, proxy UID/GID, not to loopback   -> ENVOY_INBOUND (the proxy calling its own pod)
//     proxy UID/GID                           RETURN
//     to loopback                             RETURN
//     exclude-outbound-ports / -ip-ranges     RETURN
//     * or include-outbound-ip-ranges         -> ENVOY_OUTBOUND_REDIRECT (REDIRECT to 15001)
import { isIP } from 'node:net';
import {
  CHAIN_PREFIX,
  INBOUND_PASSTHROUGH_SOURCE_V4,
  INBOUND_PASSTHROUGH_SOURCE_V6,
} from '../constants.ts';
import type { TrafficPolicy } from '../core/types.ts';

/** IPv4 (iptables) or IPv6 (ip6tables). */
export type IpFamily = 4 | 6;

/** The chains the capture creates, all in the nat table. */
export const CHAINS = {
  inbound: `${CHAIN_PREFIX}INBOUND`,
  inboundRedirect: `${CHAIN_PREFIX}INBOUND_REDIRECT`,
  outbound: `${CHAIN_PREFIX}OUTBOUND`,
  outboundRedirect: `${CHAIN_PREFIX}OUTBOUND_REDIRECT`,
} as const;

/** Every chain of the capture, in the order they are declared. */
export const CHAIN_NAMES: readonly string[] = [CHAINS.inbound, CHAINS.inboundRedirect, CHAINS.outbound, CHAINS.outboundRedirect];

/** The jumps from the built-in chains into the capture: exactly one of each after every run. */
export const JUMPS = [
  { from: 'PREROUTING', to: CHAINS.inbound },
  { from: 'OUTPUT', to: CHAINS.outbound },
] as const;

/** Most ports one `-m multiport` match accepts (a kernel limit, XT_MULTI_PORTS). */
export const MULTIPORT_MAX = 15;

/** Seconds iptables-restore waits for the xtables lock before giving up. */
export const XTABLES_WAIT_SECONDS = 30;

/** Arguments of every restore: keep everything not ours, and wait for the xtables lock. */
export const RESTORE_ARGS: readonly string[] = ['--noflush', `--wait=${XTABLES_WAIT_SECONDS}`];

/** Every comment starts with this, so `iptables-save` shows whose rules they are. */
const COMMENT_PREFIX = 'envoy-injector';

/** What the nat table of a namespace already holds of a previous run (see save.ts). */
export interface ExistingCapture {
  /** Chains named with CHAIN_PREFIX that exist now. */
  readonly chains: readonly string[];
  /** Rules in other chains that jump into one of them, exactly as `iptables-save` prints them. */
  readonly jumps: readonly string[];
}

/** A namespace without any previous capture. */
export const NO_EXISTING_CAPTURE: ExistingCapture = { chains: [], jumps: [] };

/** The addresses that differ between the two families. */
const FAMILY = {
  4: { loopback: '127.0.0.0/8', passthroughSource: `${INBOUND_PASSTHROUGH_SOURCE_V4}/32` },
  6: { loopback: '::1/128', passthroughSource: `${INBOUND_PASSTHROUGH_SOURCE_V6}/128` },
} as const;

interface Rule {
  readonly chain: string;
  readonly match: readonly string[];
  readonly comment: string;
  readonly target: readonly string[];
}

/** Splits a port list into groups one multiport match can hold. */
export function splitPorts(ports: readonly number[]): number[][] {
  const groups: number[][] = [];
  for (let i = 0; i < ports.length; i += MULTIPORT_MAX) groups.push(ports.slice(i, i + MULTIPORT_MAX));
  return groups;
}

/** One rule per group of at most 15 ports, each matching those destination ports. */
function portRules(chain: string, ports: readonly number[], comment: string, target: readonly string[]): Rule[] {
  const groups = splitPorts(ports);
  return groups.map((group, i) => ({
    chain,
    match: ['-p', 'tcp', '-m', 'multiport', '--dports', group.join(',')],
    comment: groups.length > 1 ? `${comment} (${i + 1}/${groups.length})` : comment,
    target,
  }));
}

const ofFamily = (cidrs: readonly string[], family: IpFamily): string[] =>
  cidrs.filter((cidr) => isIP(cidr.split('/')[0] ?? '') === family);

function inboundRules(policy: TrafficPolicy): Rule[] {
  const redirect = ['-j', CHAINS.inboundRedirect];
  return [
    // The proxy's own ports first: readiness/metrics scrapes reach Envoy directly, and a connection
    // to a capture port is never redirected onto itself.
    ...portRules(CHAINS.inbound, policy.proxyPorts, `${COMMENT_PREFIX}: proxy ports are not captured`, ['-j', 'RETURN']),
    ...portRules(CHAINS.inbound, policy.excludeInboundPorts, `${COMMENT_PREFIX}: exclude-inbound-ports`, ['-j', 'RETURN']),
    ...(policy.includeInboundPorts === '*'
      ? [{ chain: CHAINS.inbound, match: ['-p', 'tcp'], comment: `${COMMENT_PREFIX}: capture inbound TCP`, target: redirect }]
      : portRules(CHAINS.inbound, policy.includeInboundPorts, `${COMMENT_PREFIX}: include-inbound-ports`, redirect)),
    {
      chain: CHAINS.inboundRedirect,
      match: ['-p', 'tcp'],
      comment: `${COMMENT_PREFIX}: to the inbound capture port`,
      target: ['-j', 'REDIRECT', '--to-ports', String(policy.inboundCapturePort)],
    },
  ];
}

function outboundRules(policy: TrafficPolicy, family: IpFamily): Rule[] {
  const { loopback, passthroughSource } = FAMILY[family];
  const chain = CHAINS.outbound;
  const owners = [
    ['--uid-owner', String(policy.proxyUid), 'UID'],
    ['--gid-owner', String(policy.proxyGid), 'GID'],
  ] as const;
  const include = policy.includeOutboundIpRanges;
  return [
    // Envoy's inbound passthrough connects to the app from 127.0.0.6 (::6): let it through, or it
    // would be captured again and loop through the proxy forever.
    {
      chain,
      match: ['-o', 'lo', '-s', passthroughSource],
      comment: `${COMMENT_PREFIX}: inbound passthrough from the proxy to the app`,
      target: ['-j', 'RETURN'],
    },
    // The proxy connecting to its own pod (the app called its pod IP or a Service VIP that resolved
    // to itself, and the outbound side forwarded it): that connection goes over lo and is handed to
    // the inbound side, which applies the inbound port rules (excluded ports fall through to RETURN).
    ...owners.map(([flag, id, what]) => ({
      chain,
      match: ['-o', 'lo', '!', '-d', loopback, '-m', 'owner', flag, id],
      comment: `${COMMENT_PREFIX}: proxy ${what} calling its own pod goes to the inbound side`,
      target: ['-j', CHAINS.inbound],
    })),
    // Everything else the proxy sends leaves as it is: capturing it would loop.
    ...owners.map(([flag, id, what]) => ({
      chain,
      match: ['-m', 'owner', flag, id],
      comment: `${COMMENT_PREFIX}: proxy ${what} is not captured`,
      target: ['-j', 'RETURN'],
    })),
    { chain, match: ['-d', loopback], comment: `${COMMENT_PREFIX}: loopback is not captured`, target: ['-j', 'RETURN'] },
    ...portRules(chain, policy.excludeOutboundPorts, `${COMMENT_PREFIX}: exclude-outbound-ports`, ['-j', 'RETURN']),
    ...ofFamily(policy.excludeOutboundIpRanges, family).map((cidr) => ({
      chain,
      match: ['-d', cidr],
      comment: `${COMMENT_PREFIX}: exclude-outbound-ip-ranges`,
      target: ['-j', 'RETURN'],
    })),
    // What is left is captured: all of it, or only the included ranges of this family (a family
    // with no included range is not captured outbound at all).
    ...(include === '*'
      ? [{ chain, match: [], comment: `${COMMENT_PREFIX}: capture outbound TCP`, target: ['-j', CHAINS.outboundRedirect] }]
      : ofFamily(include, family).map((cidr) => ({
          chain,
          match: ['-d', cidr],
          comment: `${COMMENT_PREFIX}: include-outbound-ip-ranges`,
          target: ['-j', CHAINS.outboundRedirect],
        }))),
    {
      chain: CHAINS.outboundRedirect,
      match: ['-p', 'tcp'],
      comment: `${COMMENT_PREFIX}: to the outbound capture port`,
      target: ['-j', 'REDIRECT', '--to-ports', String(policy.outboundCapturePort)],
    },
  ];
}

function jumpRules(): Rule[] {
  return JUMPS.map(({ from, to }) => ({
    chain: from,
    match: ['-p', 'tcp'],
    comment: `${COMMENT_PREFIX}: ${from === 'PREROUTING' ? 'inbound' : 'outbound'} capture`,
    target: ['-j', to],
  }));
}

const renderRule = (rule: Rule): string =>
  ['-A', rule.chain, ...rule.match, '-m', 'comment', '--comment', `"${rule.comment}"`, ...rule.target].join(' ');

/** Returns the number of rules the capture puts in each of its chains and jumps (for verification). */
export function countRules(policy: TrafficPolicy, family: IpFamily): Readonly<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const rule of [...inboundRules(policy), ...outboundRules(policy, family), ...jumpRules()]) {
    counts[rule.chain] = (counts[rule.chain] ?? 0) + 1;
  }
  return counts;
}

/**
 * Returns the restore input that installs `policy` for one family in one transaction: it declares
 * (and so creates or flushes) every chain of ours, removes the jumps and stale chains a previous
 * run left (`existing`), then adds the rules and exactly one jump from PREROUTING and OUTPUT.
 * Fed to `iptables-restore --noflush`, so rules that are not ours are kept.
 */
export function renderIptablesRules(
  policy: TrafficPolicy,
  family: IpFamily,
  existing: ExistingCapture = NO_EXISTING_CAPTURE,
): string {
  const stale = existing.chains.filter((chain) => !CHAIN_NAMES.includes(chain));
  const lines = [
    '*nat',
    // Declaring a chain under --noflush creates it, or empties it if it exists: this is what makes
    // a rerun rebuild our chains instead of appending a second copy of every rule.
    ...[...CHAIN_NAMES, ...stale].map((chain) => `:${chain} - [0:0]`),
    // Jumps live in built-in chains we must not flush: delete each one a previous run left (every
    // copy, as iptables-save printed it) before adding the one we want.
    ...existing.jumps.map((jump) => jump.replace(/^-A /, '-D ')),
    // Chains of an older rule set that this one no longer uses: emptied above, now unreferenced.
    ...stale.map((chain) => `-X ${chain}`),
    ...inboundRules(policy).map(renderRule),
    ...outboundRules(policy, family).map(renderRule),
    ...jumpRules().map(renderRule),
    'COMMIT',
  ];
  return `${lines.join('\n')}\n`;
}

/** The restore program of a family without backend suffix, as named in messages and dry runs. */
export const RESTORE_PROGRAM: Readonly<Record<IpFamily, string>> = { 4: 'iptables-restore', 6: 'ip6tables-restore' };

/**
 * Returns what `init-iptables --dry-run` prints: the restore input a fresh pod namespace gets, for
 * IPv4 and (unless the policy never captures IPv6) IPv6, each block headed by a comment naming its
 * program: with `--ipv6=auto` a pod without IPv6 gets only the first.
 */
export function renderDryRun(policy: TrafficPolicy): string {
  const families: IpFamily[] = policy.ipv6 === 'false' ? [4] : [4, 6];
  return families
    .map((family) => `# IPv${family}: ${RESTORE_PROGRAM[family]} ${RESTORE_ARGS.join(' ')}\n${renderIptablesRules(policy, family)}`)
    .join('');
}

/**
 * Returns the restore input that removes a capture from one family's nat table: the jumps into our
 * chains (each as `iptables-save` printed it), then our chains, emptied and deleted. Nothing that is
 * not ours is touched (`--noflush`). Null when there is nothing to remove.
 */
export function renderRemoval(existing: ExistingCapture): string | null {
  if (existing.chains.length === 0 && existing.jumps.length === 0) return null;
  const lines = [
    '*nat',
    ...existing.chains.map((chain) => `:${chain} - [0:0]`),
    ...existing.jumps.map((jump) => jump.replace(/^-A /, '-D ')),
    ...existing.chains.map((chain) => `-X ${chain}`),
    'COMMIT',
  ];
  return `${lines.join('\n')}\n`;
}
