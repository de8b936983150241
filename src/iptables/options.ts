// The flags of `envoy-injector init-iptables`: the TrafficPolicy flags the injector renders into the
// envoy-init container (core/traffic-flags.ts), plus the ones only a person runs it with.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { TRAFFIC_FLAG_NAMES, parseTrafficFlags } from '../core/traffic-flags.ts';
import type { TrafficPolicy } from '../core/types.ts';
import { BACKEND_REQUESTS, type BackendRequest } from './backend.ts';

/** Everything one run of init-iptables is asked to do. */
export interface InitOptions {
  readonly policy: TrafficPolicy;
  /** Print the restore input for a fresh pod namespace and touch nothing. */
  readonly dryRun: boolean;
  readonly backend: BackendRequest;
}

/** Parsed arguments: a request for help, the options, or one line saying what is wrong. */
export type ParsedInitArgs =
  | { readonly ok: true; readonly help: true }
  | { readonly ok: true; readonly help: false; readonly options: InitOptions }
  | { readonly ok: false; readonly error: string };

/** Usage text of init-iptables. */
export const INIT_IPTABLES_USAGE = `Usage: envoy-injector init-iptables [flags]

Installs the pod's traffic capture: iptables (and ip6tables) NAT rules that redirect inbound TCP to
the proxy's inbound port and outbound TCP to its outbound port. This is what the envoy-init
container runs; it needs root with NET_ADMIN and NET_RAW in the pod's network namespace.

Policy flags (what the injector renders; defaults in brackets):
  --proxy-uid=N, --proxy-gid=N        traffic of this UID/GID is never captured [1337]
  --inbound-capture-port=PORT         [15006]
  --outbound-capture-port=PORT        [15001]
  --proxy-ports=P,...                 never captured inbound [15000,15001,15006,15021,15090]
  --include-inbound-ports=*|P,...     [*] (empty: no inbound capture)
  --exclude-inbound-ports=P,...       []
  --exclude-outbound-ports=P,...      []
  --include-outbound-ip-ranges=*|CIDR,...  [*] (empty: no outbound capture)
  --exclude-outbound-ip-ranges=CIDR,...    []
  --ipv6=true|false                   the proxy listens on IPv6, so capture it too [true]

Other flags:
  --backend=auto|nft|legacy           iptables backend [auto: the one already holding rules in
                                      this namespace, else nft]
  --dry-run                           print the restore input for a fresh pod namespace (IPv4,
                                      then IPv6) and change nothing; needs no privileges
  -h, --help                          show this help
`;

const OPTIONS = {
  ...Object.fromEntries(TRAFFIC_FLAG_NAMES.map((name) => [name, { type: 'string' }])),
  'dry-run': { type: 'boolean' },
  backend: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** Parses init-iptables arguments into options, or returns one line saying what is wrong. */
export function parseInitArgs(args: readonly string[]): ParsedInitArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...args], options: OPTIONS, allowPositionals: false, strict: true }));
  } catch (error) {
    // Every other command reads the config file; this one runs in the pod, where there is none.
    if (args.some((a) => /^(-c|--config)(=|$)/.test(a))) {
      return { ok: false, error: 'init-iptables reads no config file (-c/--config): its flags carry the whole policy' };
    }
    return { ok: false, error: (error as Error).message };
  }
  if (values['help'] === true) return { ok: true, help: true };

  const backend = (values['backend'] ?? 'auto') as string;
  if (!(BACKEND_REQUESTS as readonly string[]).includes(backend)) {
    return { ok: false, error: `--backend=${JSON.stringify(backend)}: expected one of ${BACKEND_REQUESTS.join(', ')}` };
  }
  const trafficValues: Record<string, string> = {};
  for (const name of TRAFFIC_FLAG_NAMES) {
    const value = values[name];
    if (typeof value === 'string') trafficValues[name] = value;
  }
  const parsed = parseTrafficFlags(trafficValues);
  if (!parsed.ok) return { ok: false, error: parsed.error };
  return {
    ok: true,
    help: false,
    options: { policy: parsed.policy, dryRun: values['dry-run'] === true, backend: backend as BackendRequest },
  };
}
