// The `envoy-injector init-iptables` flags: rendered from a pod's effective proxy config into the
// envoy-init container's args, and parsed back by the init command. Both sides come from the same
// declarations — the fixed values and every setting with a `flag` (settings.ts) — so a rendered
// flag always parses back to the value it was rendered from, and a setting cannot be accepted by
// annotation yet never reach envoy-init.
import { builtInProxyConfig } from './overrides.ts';
import type { Draft, PathLens } from './lens.ts';
import { FIXED_VALUES, SETTINGS, perTable, type SettingsTable } from './settings.ts';
import type { EffectiveProxyConfig, TrafficPolicy } from './types.ts';
import type { ValueType } from './value-types.ts';

/** One flag of init-iptables: its name (without `--`), syntax, place in the proxy config and help. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- flags of different types in one list
export interface InitFlag<T = any> {
  readonly name: string;
  readonly syntax: ValueType<T>;
  readonly at: PathLens<EffectiveProxyConfig, T>;
  readonly doc: string;
}

const initFlagsOf = perTable((table): readonly InitFlag[] => [
  ...FIXED_VALUES.map((f) => ({ name: f.flag, syntax: f.syntax, at: f.at, doc: f.doc })),
  ...table.flatMap((s) => (s.pod?.flag === undefined ? [] : [{ name: s.pod.flag, syntax: s.pod.syntax, at: s.pod.at, doc: s.doc.description }])),
]);

/** Returns every flag envoy-init takes from the injector, in the order they are rendered. */
export function initFlags(table: SettingsTable = SETTINGS): readonly InitFlag[] {
  return initFlagsOf(table);
}

/** Returns the `init-iptables` flags that make the init container apply `proxy`'s capture. */
export function renderInitFlags(proxy: EffectiveProxyConfig, table: SettingsTable = SETTINGS): string[] {
  return initFlags(table).map((flag) => `--${flag.name}=${flag.syntax.format(flag.at.get(proxy))}`);
}

/** The traffic policy an `init-iptables` run uses for every flag it is not given: the built-in defaults. */
export const DEFAULT_TRAFFIC_POLICY: TrafficPolicy = builtInProxyConfig().traffic;

/**
 * Parses init-iptables flags given as `{flag: value}` (flag without `--`) over the built-in
 * defaults, or returns the first bad flag with what it accepts.
 */
export function parseInitFlags(
  values: Readonly<Record<string, string>>,
  table: SettingsTable = SETTINGS,
): { ok: true; proxy: EffectiveProxyConfig } | { ok: false; error: string } {
  const flags = new Map(initFlags(table).map((flag) => [flag.name, flag]));
  const draft = structuredClone(builtInProxyConfig(table)) as Draft<EffectiveProxyConfig>;
  for (const [name, value] of Object.entries(values)) {
    const flag = flags.get(name);
    if (flag === undefined) return { ok: false, error: `unknown flag --${name}` };
    const parsed = flag.syntax.parse(value);
    if (!parsed.ok) return { ok: false, error: `--${name}=${JSON.stringify(value)}: expected ${parsed.accepted}` };
    flag.at.set(draft, parsed.value);
  }
  return { ok: true, proxy: draft as EffectiveProxyConfig };
}
