// What differs between an injected pod's proxy and the one injecting that pod now would give (SPEC.md
// §9: `check` names what differs for a stale pod, "proxy image v1.38 → v1.39"). The pod as it runs is
// compared with the pod injecting it again gives — the pod uninjected (its status annotation says
// what injection added) and injected with today's config — field by field:
//   - the injector version, and native or classic sidecar (the status annotation);
//   - every envoy-init flag, parsed with the declarations init-iptables parses them with, named as
//     `explain` names the setting it carries (ports and exclusions, IPv6, access log, ADS, ...);
//   - the settings the injected containers carry as fields (proxy and envoy-init image, resources,
//     pull policy), found through the settings table, quantities compared by value;
//   - Envoy's flags one by one, and whatever else of the injected containers and volumes differs (the
//     bootstrap, hooks, probes), by its path.
// The pod comes from the API server, which defaults fields the injector leaves unset (probe periods,
// port protocols, fieldRef apiVersion, ...) and mounts the ServiceAccount token into every container:
// those are not differences. Pure.
import { INIT_CONTAINER_NAME, LEGACY_BOOTSTRAP_ENV, SIDECAR_CONTAINER_NAME } from '../constants.ts';
import { injectPod } from './inject.ts';
import { initFlags } from './init-flags.ts';
import { SETTINGS, podSettings, type Setting, type SettingsTable } from './settings.ts';
import { canonicalJson, type InjectionStatus } from './status.ts';
import type { AdmissionContext, InjectorConfig, InjectorRuntime, Json, JsonObject } from './types.ts';
import { planUninjection } from './uninject.ts';
import { quantityValue } from './values.ts';

/** One thing that differs: what it is, its value in the pod, and the value injecting the pod now gives. */
export interface ProxyDifference {
  /** As `explain` names the setting, or the injected field's place (`envoy lifecycle.preStop`). */
  readonly what: string;
  /** Its value in the pod as it runs (`not set` when the pod has none). */
  readonly pod: string;
  /** Its value in the pod injecting it now would give (`not set` when it would have none). */
  readonly now: string;
}

/** What comparing a stale pod with its injection now gives. */
export type ProxyComparison =
  | { readonly ok: true; readonly differences: readonly ProxyDifference[] }
  /** The pod cannot be compared: it cannot be uninjected, or would not be injected now. */
  | { readonly ok: false; readonly problem: string };

const NOT_SET = 'not set';
/** Longest value a structural difference shows (a script, a subtree of the bootstrap). */
const MAX_VALUE_CHARS = 120;

const isObject = (value: Json | undefined): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);
const nameOf = (item: Json | undefined): string | undefined => (isObject(item) && typeof item['name'] === 'string' ? item['name'] : undefined);

/**
 * Fields the API server sets on what the injector adds when they are unset (Kubernetes' SetDefaults
 * for containers, probes, ports, fieldRefs and volume sources): present only in the running pod,
 * they are defaults, not differences.
 */
const DEFAULTED_FIELDS = new Set([
  'terminationMessagePath',
  'terminationMessagePolicy',
  'imagePullPolicy',
  'timeoutSeconds',
  'periodSeconds',
  'successThreshold',
  'failureThreshold',
  'scheme',
  'protocol',
  'apiVersion',
  'defaultMode',
]);

function short(value: Json | undefined): string {
  if (value === undefined) return NOT_SET;
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS - 1)}…` : text;
}

/** Where a pod setting's value sits in an injected container, by the start of its place in the proxy config. */
const CONTAINER_PLACES: readonly { readonly prefix: string; readonly container: string; readonly field: string }[] = [
  { prefix: 'image', container: SIDECAR_CONTAINER_NAME, field: 'image' },
  { prefix: 'resources', container: SIDECAR_CONTAINER_NAME, field: 'resources' },
  { prefix: 'imagePullPolicy', container: SIDECAR_CONTAINER_NAME, field: 'imagePullPolicy' },
  { prefix: 'imagePullPolicy', container: INIT_CONTAINER_NAME, field: 'imagePullPolicy' },
  { prefix: 'initImage', container: INIT_CONTAINER_NAME, field: 'image' },
  { prefix: 'initResources', container: INIT_CONTAINER_NAME, field: 'resources' },
];
/** The container fields compared as settings (CONTAINER_PLACES) or as flags, not structurally. */
const COMPARED_FIELDS = new Set(['name', 'image', 'imagePullPolicy', 'resources', 'args']);
/** The envoy container's fields that follow from its being a native or a classic sidecar. */
const NATIVE_OR_CLASSIC_FIELDS: ReadonlySet<string> = new Set(['restartPolicy', 'startupProbe', 'lifecycle']);

function at(value: Json | undefined, path: readonly string[]): Json | undefined {
  let current = value;
  for (const key of path) current = isObject(current) ? current[key] : undefined;
  return current;
}

/** A setting's value as `explain` shows it, from the text the pod carries (as it is when it does not parse). */
function showSetting(setting: Setting, text: string | undefined): string {
  const pod = setting.pod;
  if (pod === undefined) return text ?? NOT_SET;
  if (text === undefined) {
    // Unset is a value of an optional setting (a resource: `none`), which its config syntax reads from ''.
    const unset = setting.syntax.parse('');
    return unset.ok && unset.value === undefined ? pod.explain.show(undefined) : NOT_SET;
  }
  const parsed = pod.syntax.parse(text);
  return parsed.ok ? pod.explain.show(parsed.value) : text;
}

/** Whether two field values mean the same: quantities by value, the rest as text. */
function sameValue(a: Json | undefined, b: Json | undefined, quantity: boolean): boolean {
  if (quantity && typeof a === 'string' && typeof b === 'string') return quantityValue(a) === quantityValue(b);
  return canonicalJson(a ?? null) === canonicalJson(b ?? null);
}

/**
 * The flags of a command line by name, dashes included (`--name=value`, `--name value`, `-c value`,
 * a bare `--flag`), and its other arguments in order.
 */
function flagValues(args: readonly Json[]): { flags: Map<string, string | undefined>; positional: string[] } {
  const flags = new Map<string, string | undefined>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (typeof arg !== 'string') continue;
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    if (eq > 0) {
      flags.set(arg.slice(0, eq), arg.slice(eq + 1));
      continue;
    }
    const next = args[i + 1];
    if (typeof next === 'string' && !next.startsWith('-')) {
      flags.set(arg, next);
      i++;
    } else flags.set(arg, undefined);
  }
  return { flags, positional };
}

const argsOf = (container: JsonObject | undefined): Json[] => (Array.isArray(container?.['args']) ? (container['args'] as Json[]) : []);

/** The union of two maps' keys, `first`'s order first. */
const union = <K>(first: Iterable<K>, second: Iterable<K>): K[] => [...new Set([...first, ...second])];

class Differences {
  readonly list: ProxyDifference[] = [];
  add(what: string, pod: string, now: string): void {
    if (pod === now) return;
    if (this.list.some((d) => d.what === what && d.pod === pod && d.now === now)) return;
    this.list.push({ what, pod, now });
  }
}

/** envoy-init's flags, each named as `explain` names the setting it carries. */
function compareInitFlags(
  actual: JsonObject | undefined,
  expected: JsonObject | undefined,
  table: SettingsTable,
  same: ReadonlyMap<string, string>,
  out: Differences,
): void {
  const declared = new Map(initFlags(table).map((flag) => [flag.name, flag]));
  const carrier = new Map(podSettings(table).flatMap((s) => (s.pod?.flag === undefined ? [] : [[s.pod.flag, s] as const])));
  const unprefix = (flags: Map<string, string | undefined>) => new Map([...flags].map(([name, value]) => [name.replace(/^--?/, ''), value]));
  const podArgs = flagValues(argsOf(actual));
  const nowArgs = flagValues(argsOf(expected));
  const pod = unprefix(podArgs.flags);
  const now = unprefix(nowArgs.flags);
  out.add(`${INIT_CONTAINER_NAME} arguments`, podArgs.positional.join(' '), nowArgs.positional.join(' '));
  for (const name of union([...declared.keys()].filter((n) => pod.has(n) || now.has(n)), union(pod.keys(), now.keys()))) {
    const a = pod.get(name);
    const b = now.get(name);
    const flag = declared.get(name);
    const setting = carrier.get(name);
    if (flag !== undefined) {
      const pa = a === undefined ? undefined : flag.syntax.parse(a);
      const pb = b === undefined ? undefined : flag.syntax.parse(b);
      if (pa?.ok === true && pb?.ok === true && canonicalJson(pa.value) === canonicalJson(pb.value)) continue;
    } else if (a === b || (a !== undefined && same.get(a) === b)) continue;
    const what = setting?.pod?.explain.label ?? `envoy-init --${name}`;
    const show = (text: string | undefined) => (text === undefined ? 'not given' : setting === undefined ? text : showSetting(setting, text));
    out.add(what, show(a), show(b));
  }
}

/** The settings an injected container carries as fields (image, resources, pull policy). */
function compareContainerSettings(containers: { pod: Map<string, JsonObject>; now: Map<string, JsonObject> }, table: SettingsTable, out: Differences): void {
  for (const setting of podSettings(table)) {
    const path = setting.pod?.at.path ?? [];
    for (const place of CONTAINER_PLACES.filter((p) => p.prefix === path[0])) {
      const field = [place.field, ...path.slice(1)];
      const a = at(containers.pod.get(place.container), field);
      const b = at(containers.now.get(place.container), field);
      if (sameValue(a, b, place.field === 'resources')) continue;
      const text = (value: Json | undefined) => (typeof value === 'string' ? value : value === undefined ? undefined : JSON.stringify(value));
      out.add(setting.pod?.explain.label ?? field.join('.'), showSetting(setting, text(a)), showSetting(setting, text(b)));
    }
  }
}

/** Envoy's command-line flags, one by one. */
function compareEnvoyFlags(actual: JsonObject | undefined, expected: JsonObject | undefined, out: Differences): void {
  const pod = flagValues(argsOf(actual));
  const now = flagValues(argsOf(expected));
  out.add(`${SIDECAR_CONTAINER_NAME} arguments`, pod.positional.join(' '), now.positional.join(' '));
  for (const name of union(now.flags.keys(), pod.flags.keys())) {
    const show = (flags: Map<string, string | undefined>) => (!flags.has(name) ? 'not given' : (flags.get(name) ?? 'given'));
    out.add(`${SIDECAR_CONTAINER_NAME} ${name}`, show(pod.flags), show(now.flags));
  }
}

interface StructuralOptions {
  /** Fields present only in the pod that are API server defaults. */
  readonly defaults: boolean;
  /** Volume mounts of volumes the injector did not add (the ServiceAccount token's) are the API server's. */
  readonly injectedVolumes: ReadonlySet<string>;
  /** Text in the pod standing for text of the injection now (its config hash, its version). */
  readonly same: ReadonlyMap<string, string>;
}

/** A place in an injected object: what it is (`envoy`, `volume x`), then the path inside it. */
interface Place {
  readonly head: string;
  readonly path: string;
}
const inside = (place: Place, key: string): Place => ({ head: place.head, path: place.path === '' ? key : `${place.path}.${key}` });
/** The entry of a named list: `env[POD_NAME]`. */
const entry = (place: Place, name: string): Place => ({ head: place.head, path: `${place.path}[${name}]` });
const named = (place: Place): string => (place.path === '' ? place.head : `${place.head} ${place.path}`);

/** A value as a difference shows it: a scalar as it is, a subtree as `set` beside a side without one. */
function shown(value: Json | undefined, other: Json | undefined): string {
  if (value !== null && typeof value === 'object' && other === undefined) return 'set';
  return short(value);
}

/** The differences between two JSON values by path: objects by key, named lists by name, other lists whole. */
function compareStructure(place: Place, a: Json | undefined, b: Json | undefined, options: StructuralOptions, out: Differences): void {
  if (a === undefined && b === undefined) return;
  if (isObject(a) && isObject(b)) {
    for (const key of union(Object.keys(b), Object.keys(a))) {
      if (!(key in b) && options.defaults && DEFAULTED_FIELDS.has(key)) continue;
      compareStructure(inside(place, key), a[key], b[key], options, out);
    }
    return;
  }
  const isNamed = (list: Json[]) => list.every((item) => nameOf(item) !== undefined);
  // A list of named entries on one side only is compared with an empty one (the token mount the API
  // server adds to a container the injector gave no volumeMounts).
  if (Array.isArray(a) !== Array.isArray(b) && (a === undefined || b === undefined)) {
    const list = (Array.isArray(a) ? a : b) as Json[];
    if (list.length > 0 && isNamed(list)) return compareStructure(place, a ?? [], b ?? [], options, out);
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length + b.length > 0 && isNamed(a) && isNamed(b)) {
    const byName = (list: Json[]) => new Map(list.map((item) => [nameOf(item) as string, item]));
    const pod = byName(a);
    const now = byName(b);
    for (const name of union(now.keys(), pod.keys())) {
      if (!now.has(name) && place.path.endsWith('volumeMounts') && !options.injectedVolumes.has(name)) continue;
      const pa = pod.get(name);
      const pb = now.get(name);
      if (name === LEGACY_BOOTSTRAP_ENV && place.path === 'env' && isObject(pa) && isObject(pb)) {
        compareBootstrap(pa['value'], pb['value'], options, out);
        continue;
      }
      compareStructure(entry(place, name), pa, pb, options, out);
    }
    return;
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    // A list compared element by element, but reported whole.
    const inner = new Differences();
    a.forEach((item, i) => compareStructure(place, item, b[i], options, inner));
    if (inner.list.length > 0) out.add(named(place), short(a), short(b));
    return;
  }
  const same = (value: Json | undefined) => (typeof value === 'string' ? (options.same.get(value) ?? value) : value);
  if (a === undefined || b === undefined || canonicalJson(same(a)) !== canonicalJson(b)) out.add(named(place), shown(a, b), shown(b, a));
}

/** The bootstrap an envoy container of an older injector carries in its environment, compared by its fields. */
function compareBootstrap(a: Json | undefined, b: Json | undefined, options: StructuralOptions, out: Differences): void {
  const parse = (value: Json | undefined): Json | undefined => {
    if (typeof value !== 'string') return value;
    try {
      return JSON.parse(value) as Json;
    } catch {
      return value;
    }
  };
  compareStructure({ head: 'Envoy bootstrap', path: '' }, parse(a), parse(b), { ...options, defaults: false }, out);
}

/** The injected containers of a pod by name, as its status lists them. */
function injectedContainers(pod: JsonObject, status: InjectionStatus): Map<string, JsonObject> {
  const spec = isObject(pod['spec']) ? pod['spec'] : {};
  const found = new Map<string, JsonObject>();
  for (const [list, names] of [['initContainers', status.initContainers], ['containers', status.containers]] as const) {
    const items = Array.isArray(spec[list]) ? (spec[list] as Json[]) : [];
    for (const item of items) {
      const name = nameOf(item);
      if (name !== undefined && names.includes(name) && isObject(item)) found.set(name, item);
    }
  }
  return found;
}

function injectedVolumes(pod: JsonObject, status: InjectionStatus): Map<string, JsonObject> {
  const spec = isObject(pod['spec']) ? pod['spec'] : {};
  const volumes = Array.isArray(spec['volumes']) ? (spec['volumes'] as Json[]) : [];
  return new Map(volumes.flatMap((v) => (isObject(v) && status.volumes.includes(nameOf(v) ?? '') ? [[nameOf(v) as string, v] as const] : [])));
}

/**
 * Returns what differs between the proxy `pod` runs (injected with `status`) and the one injecting
 * the pod now gives, in the order an admin reads them: version, sidecar kind, the settings, then the
 * rest by place. Empty when nothing visible differs (the config hash may still: it covers settings
 * the containers do not show apart).
 */
export function compareProxy(
  pod: JsonObject,
  status: InjectionStatus,
  ctx: AdmissionContext,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  table: SettingsTable = SETTINGS,
): ProxyComparison {
  const uninjected = planUninjection(pod);
  if (uninjected.state !== 'removed') {
    return { ok: false, problem: uninjected.state === 'refused' ? uninjected.problem : 'it carries nothing of the injection' };
  }
  const injected = injectPod(uninjected.pod, ctx, config, runtime, table);
  if (injected.decision.action !== 'inject' || injected.pod === undefined || injected.status === undefined) {
    const reasons = injected.decision.reasons.map((r) => r.code).join(', ');
    return { ok: false, problem: `injecting it now would not inject it (${injected.decision.action}: ${reasons})` };
  }
  const now = injected.status;
  const out = new Differences();
  out.add('injector version', status.version, now.version);
  const nativeSetting = podSettings(table).find((s) => s.pod?.at.path.join('.') === 'nativeSidecar');
  const native = (s: InjectionStatus) => s.initContainers.includes(SIDECAR_CONTAINER_NAME);
  const showNative = (value: boolean) => nativeSetting?.pod?.explain.show(value) ?? String(value);
  out.add(nativeSetting?.pod?.explain.label ?? 'native sidecar', showNative(native(status)), showNative(native(now)));

  // The config hash and version the pod carries stand for today's (they differ, and are said above).
  const same = new Map([
    [status.configHash, now.configHash],
    [status.version, now.version],
  ]);
  const containers = { pod: injectedContainers(pod, status), now: injectedContainers(injected.pod, now) };
  compareInitFlags(containers.pod.get(INIT_CONTAINER_NAME), containers.now.get(INIT_CONTAINER_NAME), table, same, out);
  compareContainerSettings(containers, table, out);
  compareEnvoyFlags(containers.pod.get(SIDECAR_CONTAINER_NAME), containers.now.get(SIDECAR_CONTAINER_NAME), out);

  const options: StructuralOptions = {
    defaults: true,
    injectedVolumes: new Set([...status.volumes, ...now.volumes]),
    same,
  };
  // What makes a sidecar native or classic is said once, above, not field by field.
  const kind = native(status) === native(now) ? new Set<string>() : NATIVE_OR_CLASSIC_FIELDS;
  for (const name of union(containers.now.keys(), containers.pod.keys())) {
    const a = containers.pod.get(name);
    const b = containers.now.get(name);
    if (a === undefined || b === undefined) {
      out.add(`container ${name}`, a === undefined ? NOT_SET : 'injected', b === undefined ? NOT_SET : 'injected');
      continue;
    }
    const rest = (c: JsonObject) => Object.fromEntries(Object.entries(c).filter(([key]) => !COMPARED_FIELDS.has(key) && !(name === SIDECAR_CONTAINER_NAME && kind.has(key))));
    compareStructure({ head: name, path: '' }, rest(a), rest(b), options, out);
  }
  const volumes = { pod: injectedVolumes(pod, status), now: injectedVolumes(injected.pod, now) };
  for (const name of union(volumes.now.keys(), volumes.pod.keys())) {
    compareStructure({ head: `volume ${name}`, path: '' }, volumes.pod.get(name), volumes.now.get(name), options, out);
  }
  return { ok: true, differences: out.list };
}

/** Returns a difference as one phrase: `proxy image envoyproxy/envoy:v1.38.0 → v1.39.6`. */
export function formatDifference(difference: ProxyDifference): string {
  const { what, pod, now } = difference;
  // The same image repository: the new tag (or digest) alone says it.
  const repository = (image: string) => /^(.*?)([:@][^/:@]*)$/.exec(image);
  const a = repository(pod);
  const b = repository(now);
  const shown = a !== null && b !== null && a[1] === b[1] && a[1] !== '' && /image/.test(what) ? (b[2] as string).slice(1) : now;
  return `${what} ${pod} → ${shown}`;
}
