// The `envoy-injector init-iptables` flags: rendered from a pod's effective proxy config (and what
// the bootstrap needs to know about the pod at admission) into the envoy-init container's args, and
// parsed back by the init command — and by `bootstrap -f`, which reads them from the pod to print
// what envoy-init writes. Both sides come from the same declarations — the fixed values and every
// setting with a `flag` (settings.ts), and the bootstrap flags below — so a rendered flag always
// parses back to the value it was rendered from, and a setting cannot be accepted by annotation yet
// never reach envoy-init.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { builtInProxyConfig } from './overrides.ts';
import type { Draft, PathLens } from './lens.ts';
import { FIXED_VALUES, SETTINGS, perTable, type SettingsTable } from './settings.ts';
import type { EffectiveProxyConfig, TrafficPolicy } from './types.ts';
import type { ValueType } from './value-types.ts';
import type { Parsed } from './values.ts';

/** One flag of init-iptables: its name (without `--`), syntax, place in the proxy config and help. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- flags of different types in one list
export interface InitFlag<T = any> {
  readonly name: string;
  readonly syntax: ValueType<T>;
  readonly at: PathLens<EffectiveProxyConfig, T>;
  readonly doc: string;
  /** Left out when its value is the empty text. */
  readonly onlyWhenSet?: boolean;
}

const initFlagsOf = perTable((table): readonly InitFlag[] => [
  ...FIXED_VALUES.map((f) => ({ name: f.flag, syntax: f.syntax, at: f.at, doc: f.doc })),
  ...table.flatMap((s) =>
    s.pod?.flag === undefined
      ? []
      : [{ name: s.pod.flag, syntax: s.pod.syntax, at: s.pod.at, doc: s.doc.description, ...(s.pod.flagOnlyWhenSet === true ? { onlyWhenSet: true } : {}) }],
  ),
]);

/** Returns every flag of the proxy config envoy-init takes from the injector, in the order they are rendered. */
export function initFlags(table: SettingsTable = SETTINGS): readonly InitFlag[] {
  return initFlagsOf(table);
}

/**
 * What envoy-init needs besides the proxy config to render the pod's bootstrap (SPEC.md §4): where
 * to write it, where the downward API puts the pod's labels, and what only the admission knows. The
 * rest (name, namespace, IPs, node, service account) the pod learns at run time from its
 * downward-API environment.
 */
export interface BootstrapRequest {
  /** The directory to write into: the `envoy-bootstrap` emptyDir, which `envoy` mounts read-only. */
  readonly dir: string;
  /** The downward-API file of `metadata.labels`, or null for a pod without labels to read. */
  readonly podLabelsPath: string | null;
  /** The workload the pod belongs to (a label, or its generateName: unknown once it runs). */
  readonly workloadName: string;
  /** The hash of the effective proxy config, as in the status annotation. */
  readonly configHash: string;
}

/** Everything envoy-init's flags tell it: the pod's proxy config, and whether and how to render the bootstrap. */
export interface InitInputs {
  readonly proxy: EffectiveProxyConfig;
  /** Null without --bootstrap-dir: then nothing is written (init-iptables run by hand on a host). */
  readonly bootstrap: BootstrapRequest | null;
}

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(accepted: string): Parsed<T> => ({ ok: false, accepted });

/** An absolute path: what the injector mounts, so no relative path can depend on a working directory. */
const absolutePath: ValueType<string> = {
  parse: (text) => (/^\/[^\0]*$/.test(text) ? ok(text) : bad('an absolute path')),
  format: (value) => value,
  hint: 'PATH',
};
/** Any text; the empty text when not known. */
const text: ValueType<string> = { parse: (value) => ok(value), format: (value) => value, hint: 'TEXT' };

/** One bootstrap flag: its name, syntax, the request field it sets, and its help. */
export interface BootstrapFlag {
  readonly name: string;
  readonly syntax: ValueType<string>;
  readonly field: 'dir' | 'podLabelsPath' | 'workloadName' | 'configHash';
  readonly doc: string;
  /** What the README and --help show as its default. */
  readonly default: string;
}

/** The bootstrap flags, in the order they are rendered (after the proxy config's). */
export const BOOTSTRAP_FLAGS: readonly BootstrapFlag[] = [
  {
    name: 'bootstrap-dir',
    syntax: absolutePath,
    field: 'dir',
    doc: "Render the pod's Envoy bootstrap from these flags and the pod's downward-API facts into `bootstrap.json` in this directory, with the classic sidecar's hooks `hold.sh` and `drain.sh` beside it (each written atomically); without it nothing is written.",
    default: '',
  },
  {
    name: 'pod-labels-path',
    syntax: absolutePath,
    field: 'podLabelsPath',
    doc: "The downward-API file of the pod's `metadata.labels`, for the bootstrap's node metadata; without it the labels are empty.",
    default: '',
  },
  {
    name: 'workload-name',
    syntax: text,
    field: 'workloadName',
    doc: "The workload the pod belongs to (its `app.kubernetes.io/name`, `app`, `k8s-app` or `name` label, else its generateName): the bootstrap's node cluster `<workload>.<namespace>`.",
    default: 'unknown',
  },
  {
    name: 'config-hash',
    syntax: text,
    field: 'configHash',
    doc: "The hash of the pod's effective proxy config (as in its status annotation), for the bootstrap's node metadata.",
    default: '',
  },
];

/** Returns the `init-iptables` flags that make envoy-init apply `proxy`'s capture and render `bootstrap`. */
export function renderInitFlags(proxy: EffectiveProxyConfig, bootstrap: BootstrapRequest | null, table: SettingsTable = SETTINGS): string[] {
  const flags = initFlags(table).flatMap((flag) => {
    const value = flag.syntax.format(flag.at.get(proxy));
    return value === '' && flag.onlyWhenSet === true ? [] : [`--${flag.name}=${value}`];
  });
  if (bootstrap === null) return flags;
  for (const flag of BOOTSTRAP_FLAGS) {
    const value = bootstrap[flag.field];
    if (value !== null) flags.push(`--${flag.name}=${flag.syntax.format(value)}`);
  }
  return flags;
}

/** The traffic policy an `init-iptables` run uses for every flag it is not given: the built-in defaults. */
export const DEFAULT_TRAFFIC_POLICY: TrafficPolicy = builtInProxyConfig().traffic;

/**
 * Parses init-iptables flags given as `{flag: value}` (flag without `--`) over the built-in
 * defaults, or returns the first bad flag with what it accepts. Flags are applied in the order they
 * are declared, whatever order they were given in (the ADS address before its TLS choice).
 */
export function parseInitFlags(
  values: Readonly<Record<string, string>>,
  table: SettingsTable = SETTINGS,
): ({ ok: true } & InitInputs) | { ok: false; error: string } {
  const known = new Set([...initFlags(table).map((f) => f.name), ...BOOTSTRAP_FLAGS.map((f) => f.name)]);
  for (const name of Object.keys(values)) {
    if (!known.has(name)) return { ok: false, error: `unknown flag --${name}` };
  }
  const draft = structuredClone(builtInProxyConfig(table)) as Draft<EffectiveProxyConfig>;
  for (const flag of initFlags(table)) {
    const value = values[flag.name];
    if (value === undefined) continue;
    const parsed = flag.syntax.parse(value);
    if (!parsed.ok) return { ok: false, error: `--${flag.name}=${JSON.stringify(value)}: expected ${parsed.accepted}` };
    flag.at.set(draft, parsed.value);
  }
  const request: Record<BootstrapFlag['field'], string | null> = { dir: null, podLabelsPath: null, workloadName: 'unknown', configHash: '' };
  for (const flag of BOOTSTRAP_FLAGS) {
    const value = values[flag.name];
    if (value === undefined) continue;
    const parsed = flag.syntax.parse(value);
    if (!parsed.ok) return { ok: false, error: `--${flag.name}=${JSON.stringify(value)}: expected ${parsed.accepted}` };
    request[flag.field] = parsed.value;
  }
  const { dir, podLabelsPath, workloadName, configHash } = request;
  return {
    ok: true,
    proxy: draft as EffectiveProxyConfig,
    bootstrap: dir === null ? null : { dir, podLabelsPath, workloadName: workloadName ?? 'unknown', configHash: configHash ?? '' },
  };
}

/** Options of init-iptables that only a person gives (never rendered by the injector): they do not change what is rendered. */
const OTHER_OPTIONS = {
  'dry-run': { type: 'boolean' },
  remove: { type: 'boolean' },
  check: { type: 'boolean' },
  backend: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** What an init-iptables command line says: its flag values, and the options only a person gives. */
export interface InitArgv {
  readonly flags: Readonly<Record<string, string>>;
  readonly dryRun: boolean;
  readonly remove: boolean;
  readonly check: boolean;
  readonly backend: string | undefined;
  readonly help: boolean;
}

const optionsOf = perTable((table) => ({
  ...Object.fromEntries([...initFlags(table), ...BOOTSTRAP_FLAGS].map((flag) => [flag.name, { type: 'string' as const }])),
  ...OTHER_OPTIONS,
}));

/**
 * Parses an init-iptables command line (after the command name), as envoy-init does; throws
 * node:util's parse error (ERR_PARSE_ARGS_*) on an unknown or malformed option.
 */
export function parseInitArgv(args: readonly string[], table: SettingsTable = SETTINGS): InitArgv {
  const { values } = parseArgs({ args: [...args], options: optionsOf(table), allowPositionals: false, strict: true });
  const flags: Record<string, string> = {};
  for (const [name, value] of Object.entries(values)) if (typeof value === 'string' && name !== 'backend') flags[name] = value;
  return {
    flags,
    dryRun: values['dry-run'] === true,
    remove: values['remove'] === true,
    check: values['check'] === true,
    backend: typeof values['backend'] === 'string' ? values['backend'] : undefined,
    help: values['help'] === true,
  };
}
