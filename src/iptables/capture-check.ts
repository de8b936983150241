// What envoy-init does in CNI mode instead of installing the capture: it checks, without any
// privilege, that the node's CNI plugin installed it. An unprivileged process cannot read the nat
// table, so the check is functional (as Istio's istio-validation container does it): listen on the
// outbound capture port on 127.0.0.1 (where REDIRECT sends locally generated traffic) and connect to
// an address the pod's own policy must redirect; the connection arriving at the listener, from the
// very port the client connected from, proves the outbound capture is in place.
//
// The probe destination is chosen from the pod's effective policy (included ranges minus excluded
// ranges and ports, minus loopback and addresses no connection can go to), so an exclusion can never
// make the check pass by accident or fail for nothing. A policy that captures no outbound IPv4
// traffic cannot be checked this way (inbound capture is invisible from inside the pod): then it
// says so rather than claiming a capture it did not see.
import { createConnection, createServer, isIP, type Server, type Socket } from 'node:net';
import type { TrafficPolicy } from '../core/types.ts';
import { InitIptablesError } from './failures.ts';

/** An inclusive range of IPv4 addresses as 32-bit numbers. */
interface Range {
  readonly first: number;
  readonly last: number;
}

/** Addresses a probe must never go to: this network (0/8), loopback, multicast and reserved, broadcast. */
const UNROUTABLE: readonly string[] = ['0.0.0.0/8', '127.0.0.0/8', '224.0.0.0/4', '240.0.0.0/4'];
/** Preferred destinations, in order: documentation ranges (RFC 5737), which no real service holds. */
const PREFERRED_ADDRESSES: readonly string[] = ['192.0.2.1', '198.51.100.1', '203.0.113.1'];
/** Preferred destination ports, in order, before any other. */
const PREFERRED_PORTS: readonly number[] = [80, 443, 8080];

const toNumber = (address: string): number =>
  address.split('.').reduce((value, octet) => value * 256 + Number(octet), 0);
const toAddress = (value: number): string => [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');

/** Returns the address range of an IPv4 CIDR. */
function rangeOf(cidr: string): Range {
  const [address = '', bits = '32'] = cidr.split('/');
  const size = 2 ** (32 - Number(bits));
  const first = Math.floor(toNumber(address) / size) * size;
  return { first, last: first + size - 1 };
}

/** Returns `ranges` without any address of `removed`. */
function subtract(ranges: readonly Range[], removed: Range): Range[] {
  return ranges.flatMap((r) => {
    if (removed.last < r.first || removed.first > r.last) return [r];
    const parts: Range[] = [];
    if (removed.first > r.first) parts.push({ first: r.first, last: removed.first - 1 });
    if (removed.last < r.last) parts.push({ first: removed.last + 1, last: r.last });
    return parts;
  });
}

/** Where the check connects, or why the policy leaves nothing to check. */
export type CaptureProbe =
  | { readonly check: true; readonly address: string; readonly port: number }
  | { readonly check: false; readonly reason: string };

/**
 * Chooses the probe destination from the pod's policy: an IPv4 address and a port whose outbound
 * connection the capture redirects to the outbound capture port. Pure.
 */
export function chooseProbe(policy: TrafficPolicy): CaptureProbe {
  const v4 = (cidrs: readonly string[]) => cidrs.filter((c) => isIP(c.split('/')[0] ?? '') === 4);
  const include = policy.includeOutboundIpRanges;
  let ranges: Range[] = include === '*' ? [rangeOf('0.0.0.0/0')] : v4(include).map(rangeOf);
  for (const cidr of [...UNROUTABLE, ...v4(policy.excludeOutboundIpRanges)]) ranges = subtract(ranges, rangeOf(cidr));
  if (ranges.length === 0) {
    return {
      check: false,
      reason:
        include !== '*' && v4(include).length === 0
          ? 'the pod captures no outbound IPv4 traffic (include-outbound-ip-ranges holds no IPv4 range)'
          : 'every outbound IPv4 destination of the pod is excluded from capture',
    };
  }
  const inRanges = (value: number) => ranges.some((r) => value >= r.first && value <= r.last);
  const preferred = PREFERRED_ADDRESSES.map(toNumber).find(inRanges);
  // Else the middle of the first range left: never its network or broadcast address.
  const first = ranges[0] as Range;
  const address = toAddress(preferred ?? first.first + Math.floor((first.last - first.first) / 2));
  const excluded = new Set(policy.excludeOutboundPorts);
  const port = [...PREFERRED_PORTS, ...Array.from({ length: 65535 }, (_, i) => i + 1)].find((p) => !excluded.has(p));
  if (port === undefined) return { check: false, reason: 'every outbound port of the pod is excluded from capture' };
  return { check: true, address, port };
}

/** How the check went: captured (with the probe), or not checkable (with the reason). */
export type CaptureCheck =
  | { readonly checked: true; readonly address: string; readonly port: number }
  | { readonly checked: false; readonly reason: string };

/** What the failure line says about who installs the capture in CNI mode, and what to look at. */
export const NODE_AGENT_HINT =
  'in capture.mode cni the node agent (DaemonSet envoy-injector-node, in the injector\'s namespace) installs it through its CNI plugin before the pod\'s containers start: is the agent running and ready on this node? (a pod created before it was ready is not captured: delete it so it is recreated)';

const errorText = (error: unknown): string => (error as NodeJS.ErrnoException)?.code ?? (error as Error)?.message ?? String(error);

/**
 * Checks that the outbound capture of `policy` is in place in this network namespace; needs no
 * privilege. Throws InitIptablesError (kind `not-captured`) with one line when it is not.
 */
export async function checkCapture(policy: TrafficPolicy, options: { readonly timeoutMs?: number; readonly nodeName?: string } = {}): Promise<CaptureCheck> {
  const probe = chooseProbe(policy);
  if (!probe.check) return { checked: false, reason: probe.reason };
  const timeoutMs = options.timeoutMs ?? 3000;
  const node = options.nodeName === undefined || options.nodeName === '' ? 'this node' : `node ${options.nodeName}`;
  const fail = (what: string): never => {
    throw new InitIptablesError({
      kind: 'not-captured',
      message: `traffic capture is not in place on ${node}: ${what}; ${NODE_AGENT_HINT}`,
    });
  };

  const accepted = new Set<number>();
  let arrived: ((port: number) => void) | undefined;
  const server: Server = createServer((socket: Socket) => {
    // Only the remote port matters; the connection is closed at once.
    const port = socket.remotePort;
    socket.destroy();
    if (port !== undefined) {
      accepted.add(port);
      arrived?.(port);
    }
  });
  const sockets: Socket[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: policy.outboundCapturePort, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((error: unknown) =>
      fail(`cannot listen on 127.0.0.1:${policy.outboundCapturePort} to check it (${errorText(error)})`),
    );
    const target = `${probe.address}:${probe.port}`;
    const outcome = await new Promise<{ ok: true } | { ok: false; why: string }>((resolve) => {
      const client = createConnection({ host: probe.address, port: probe.port });
      sockets.push(client);
      const timer = setTimeout(() => resolve({ ok: false, why: `no answer within ${timeoutMs} ms` }), timeoutMs);
      const settle = (value: { ok: true } | { ok: false; why: string }) => {
        clearTimeout(timer);
        resolve(value);
      };
      client.once('connect', () => {
        const local = client.localPort;
        if (local !== undefined && accepted.has(local)) settle({ ok: true });
        else {
          // The connection went somewhere: it may still be the listener, whose accept comes later.
          arrived = (port) => {
            if (port === local) settle({ ok: true });
          };
          if (local !== undefined && accepted.has(local)) settle({ ok: true });
          else setTimeout(() => settle({ ok: false, why: `the connection to ${target} reached that address itself` }), Math.min(timeoutMs, 1000));
        }
      });
      client.once('error', (error) => settle({ ok: false, why: errorText(error) }));
    });
    if (!outcome.ok) {
      fail(`a connection to ${target} was not redirected to the proxy's port ${policy.outboundCapturePort} (${outcome.why})`);
    }
    return { checked: true, address: probe.address, port: probe.port };
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
