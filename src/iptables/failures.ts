// Why init-iptables failed, as one line and an exit code. Pure: a tool's exit and output in, the
// cause out. The messages matched are those of iptables 1.8 (both backends) and iproute2.

/** The causes init-iptables tells apart, each with its own exit code. */
export const FAILURE_KINDS = {
  /** iptables refused the rules, or something else went wrong. */
  failed: 1,
  /** Bad flags. */
  usage: 2,
  /** A program it needs (iptables-restore, ip6tables-restore, ip) is not installed. */
  'missing-binary': 3,
  /** Not root / no CAP_NET_ADMIN in the network namespace. */
  'no-permission': 4,
  /** The kernel lacks a table, match or target (a module is missing or not loaded). */
  'missing-kernel-support': 5,
  /** IPv6 traffic would escape the proxy: a global IPv6 address the rules cannot cover. */
  'ipv6-not-captured': 6,
  /** Another process held the xtables lock for longer than the wait. */
  'xtables-lock': 7,
  /** IPv6 is required (--ipv6=true) but the pod has none. */
  'no-ipv6': 8,
  /** The bootstrap could not be rendered or written (a pod fact missing, the directory missing or not writable). */
  bootstrap: 9,
  /** The pod's bootstrap override (its ConfigMap's envoy.yaml) is missing, not YAML, or clashes with the injector's bootstrap. */
  'bootstrap-override': 10,
  /** CNI mode: the capture the node's CNI plugin installs is not in place (envoy-init's check). */
  'not-captured': 11,
} as const;

/** One cause of failure (a key of FAILURE_KINDS). */
export type FailureKind = keyof typeof FAILURE_KINDS;

/** A failure of init-iptables: its kind (and so its exit code) and a one-line message. */
export interface Failure {
  readonly kind: FailureKind;
  readonly message: string;
}

/** Raised by the applier; the CLI prints the message and exits with the kind's code. */
export class InitIptablesError extends Error {
  readonly kind: FailureKind;

  constructor(failure: Failure) {
    super(failure.message);
    this.name = 'InitIptablesError';
    this.kind = failure.kind;
  }

  /** Exit code of this failure. */
  get exitCode(): number {
    return FAILURE_KINDS[this.kind];
  }
}

/** How a program run ended. */
export interface ToolResult {
  /** Exit code, or null when it could not be started or was killed. */
  readonly code: number | null;
  readonly stderr: string;
  /** errno code when the program could not be started (ENOENT: not installed). */
  readonly spawnError?: string;
}

const PATTERNS: readonly { readonly kind: FailureKind; readonly pattern: RegExp; readonly hint: string }[] = [
  {
    kind: 'no-permission',
    pattern: /permission denied|you must be root|operation not permitted/i,
    hint: 'run as root with NET_ADMIN and NET_RAW in the pod network namespace',
  },
  {
    kind: 'xtables-lock',
    pattern: /xtables lock|holding the xtables|another app is currently holding/i,
    hint: 'another process held the xtables lock too long',
  },
  {
    kind: 'missing-kernel-support',
    pattern:
      /table does not exist|unable to initialize table|do you need to insmod|protocol not supported|address family not supported|no chain\/target\/match by that name|could not fetch rule set generation id|(couldn't|can't) load (match|target)|extension .* revision .* not supported/i,
    hint: 'the node kernel lacks a netfilter module this backend needs (nat table, owner, multiport, REDIRECT, comment)',
  },
];

/** Returns the first line of a tool's error output that says something (skipping usage hints). */
export function firstErrorLine(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^(Try `|Error occurred at line)/.test(l));
  return lines[0] ?? '';
}

/** Returns why running `tool` failed, as a kind and one line naming the cause. */
export function classifyToolFailure(tool: string, result: ToolResult): Failure {
  if (result.spawnError === 'ENOENT') {
    return { kind: 'missing-binary', message: `missing binary: ${tool} is not installed (not found in PATH)` };
  }
  if (result.spawnError === 'EACCES') {
    return { kind: 'no-permission', message: `no permission: ${tool} cannot be executed (EACCES)` };
  }
  if (result.spawnError !== undefined) {
    return { kind: 'failed', message: `${tool} could not be started: ${result.spawnError}` };
  }
  const detail = firstErrorLine(result.stderr) || `exit code ${result.code ?? 'none (killed)'}`;
  for (const { kind, pattern, hint } of PATTERNS) {
    if (pattern.test(result.stderr)) return { kind, message: `${label(kind)}: ${tool}: ${detail} (${hint})` };
  }
  return { kind: 'failed', message: `${tool} failed: ${detail}` };
}

function label(kind: FailureKind): string {
  switch (kind) {
    case 'no-permission':
      return 'no permission';
    case 'missing-kernel-support':
      return 'missing kernel module';
    case 'xtables-lock':
      return 'xtables lock busy';
    default:
      return kind;
  }
}

/** Kinds that mean "this family/backend cannot work here" rather than "our rules are wrong". */
export const UNAVAILABLE_KINDS: readonly FailureKind[] = ['missing-binary', 'missing-kernel-support'];

/** Of several failures, returns the one whose cause to report first (permission, binary, kernel, other). */
export function mostRelevant(failures: readonly Failure[]): Failure | undefined {
  const order: readonly FailureKind[] = ['no-permission', 'missing-binary', 'missing-kernel-support', 'xtables-lock', 'failed'];
  return [...failures].sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind))[0];
}
