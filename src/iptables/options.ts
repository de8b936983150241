// The flags of `envoy-injector init-iptables`: the proxy-config and bootstrap flags the injector
// renders into the envoy-init container (core/init-flags.ts, which also parses them, for this command
// and for `bootstrap -f` alike), plus the ones only a person runs it with.
import { BOOTSTRAP_FLAGS, initFlags, parseInitArgv, parseInitFlags, type InitInputs } from '../core/init-flags.ts';
import { builtInProxyConfig } from '../core/overrides.ts';
import type { TrafficPolicy } from '../core/types.ts';
import { BACKEND_REQUESTS, type BackendRequest } from './backend.ts';

/** Everything one run of init-iptables is asked to do. */
export interface InitOptions {
  readonly policy: TrafficPolicy;
  /** The proxy config and the bootstrap request, for rendering the bootstrap. */
  readonly inputs: InitInputs;
  /** Print the restore input for a fresh pod namespace and touch nothing. */
  readonly dryRun: boolean;
  /** Remove the capture instead of installing it (what the CNI plugin's DEL runs). */
  readonly remove: boolean;
  /** Check that exactly this policy's capture is installed, changing nothing (the CNI plugin's CHECK). */
  readonly check: boolean;
  readonly backend: BackendRequest;
}

/** Parsed arguments: a request for help, the options, or one line saying what is wrong. */
export type ParsedInitArgs =
  | { readonly ok: true; readonly help: true }
  | { readonly ok: true; readonly help: false; readonly options: InitOptions }
  | { readonly ok: false; readonly error: string };

/** The flags a person may give besides the policy: name with its value, and what it does. */
export const OTHER_INIT_FLAGS: readonly { readonly flag: string; readonly default: string; readonly doc: string }[] = [
  { flag: '--backend=auto|nft|legacy', default: 'auto', doc: 'The iptables backend; auto: the one already holding rules in this namespace, else nft.' },
  { flag: '--dry-run', default: '', doc: 'Print the restore input for a fresh pod namespace (IPv4, then IPv6 unless --ipv6=false) and change nothing (no bootstrap is written either); needs no privileges.' },
  { flag: '--check', default: '', doc: 'Check that exactly the capture of the policy flags is installed and change nothing (what the CNI plugin runs on CHECK).' },
  { flag: '--remove', default: '', doc: 'Remove the capture (every chain and jump of ours, both backends and families, and ::6 from lo) and change nothing else (what the CNI plugin runs on DEL).' },
  { flag: '-h, --help', default: '', doc: 'Show this help.' },
];

/** The README's Markdown as terminal text: no backticks, links as their text. */
const plain = (markdown: string): string => markdown.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1').replaceAll('`', '');

const FLAG_COLUMN = 42;
const WIDTH = 100;

/** One flag of the usage text: the flag, then its text wrapped in a column beside it. */
function usageLine(flag: string, doc: string): string {
  const lines: string[] = [];
  let current = '';
  for (const word of plain(doc).split(' ')) {
    if (current !== '' && FLAG_COLUMN + current.length + 1 + word.length > WIDTH) {
      lines.push(current);
      current = word;
    } else current = current === '' ? word : `${current} ${word}`;
  }
  lines.push(current);
  const head = `  ${flag}`;
  const first = head.length < FLAG_COLUMN ? head.padEnd(FLAG_COLUMN) + lines[0] : `${head}\n${' '.repeat(FLAG_COLUMN)}${lines[0]}`;
  return [first, ...lines.slice(1).map((l) => ' '.repeat(FLAG_COLUMN) + l)].join('\n');
}

/** Returns the usage text of init-iptables, its policy flags listed from their declarations. */
export function initIptablesUsage(): string {
  const defaults = builtInProxyConfig();
  const line = usageLine;
  const policy = initFlags().map((flag) => line(`--${flag.name}=${flag.syntax.hint}`, `${flag.doc} [${flag.syntax.format(flag.at.get(defaults))}]`));
  const bootstrap = BOOTSTRAP_FLAGS.map((flag) => line(`--${flag.name}=${flag.syntax.hint}`, flag.default === '' ? flag.doc : `${flag.doc} [${flag.default}]`));
  const other = OTHER_INIT_FLAGS.map((flag) => line(flag.flag, flag.default === '' ? flag.doc : `${flag.doc} [${flag.default}]`));
  return `Usage: envoy-injector init-iptables [flags]

Installs the pod's traffic capture: iptables (and ip6tables) NAT rules that redirect inbound TCP to
the proxy's inbound port and outbound TCP to its outbound port; with --bootstrap-dir, first renders
the pod's Envoy bootstrap there. This is what the envoy-init container runs; it needs root with
NET_ADMIN and NET_RAW in the pod's network namespace.

Policy flags (what the injector renders; defaults in brackets):
${policy.join('\n')}

Bootstrap flags (what the injector renders; the pod's name, namespace, IPs, node and service account
come from the environment: POD_NAME, POD_NAMESPACE, INSTANCE_IPS, NODE_NAME, SERVICE_ACCOUNT):
${bootstrap.join('\n')}

Other flags:
${other.join('\n')}
`;
}

/** Parses init-iptables arguments into options, or returns one line saying what is wrong. */
export function parseInitArgs(args: readonly string[]): ParsedInitArgs {
  let argv: ReturnType<typeof parseInitArgv>;
  try {
    argv = parseInitArgv(args);
  } catch (error) {
    // Every other command reads the config file; this one runs in the pod, where there is none.
    if (args.some((a) => /^(-c|--config)(=|$)/.test(a))) {
      return { ok: false, error: 'init-iptables reads no config file (-c/--config): its flags carry the whole policy' };
    }
    return { ok: false, error: (error as Error).message };
  }
  if (argv.help) return { ok: true, help: true };

  if ([argv.dryRun, argv.remove, argv.check].filter(Boolean).length > 1) {
    return { ok: false, error: '--dry-run, --remove and --check exclude each other' };
  }
  const backend = argv.backend ?? 'auto';
  if (!(BACKEND_REQUESTS as readonly string[]).includes(backend)) {
    return { ok: false, error: `--backend=${JSON.stringify(backend)}: expected one of ${BACKEND_REQUESTS.join(', ')}` };
  }
  const parsed = parseInitFlags(argv.flags);
  if (!parsed.ok) return { ok: false, error: parsed.error };
  const inputs: InitInputs = { proxy: parsed.proxy, bootstrap: parsed.bootstrap };
  return {
    ok: true,
    help: false,
    options: { policy: parsed.proxy.traffic, inputs, dryRun: argv.dryRun, remove: argv.remove, check: argv.check, backend: backend as BackendRequest },
  };
}
