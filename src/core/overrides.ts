// The values a pod's proxy runs with (SPEC.md §5, §4b): for each pod setting, the pod's own
// annotation, else its namespace's, else the injector's config (which holds the built-in default
// unless it sets another). Every annotation in play is validated, all at once, and where each value
// came from is recorded. Pure: a function of the annotations, the config and the runtime facts.
import type { Draft } from './lens.ts';
import { shorten } from './reasons.ts';
import {
  FIXED_VALUES,
  SETTING,
  SETTINGS,
  annotationKey,
  annotationOf,
  defaultOf,
  perTable,
  podSettings,
  type Setting,
  type SettingSource,
  type SettingsTable,
} from './settings.ts';
import { canonicalJson } from './status.ts';
import type { EffectiveProxyConfig, InjectorConfig, InjectorRuntime } from './types.ts';
import type { ValueType } from './value-types.ts';
import { MAX_VALUE_LENGTH, requestsAboveLimits, type Parsed } from './values.ts';

/** One annotation whose value was refused, with what would have been accepted. */
export interface AnnotationError {
  readonly annotation: string;
  readonly value: string;
  readonly accepted: string;
  /** The namespace whose annotation it is, when it is not the pod's own. */
  readonly namespace?: string;
}

/** A pod setting's effective value and where it came from. */
export interface ResolvedSetting {
  readonly setting: Setting;
  readonly value: unknown;
  readonly source: SettingSource;
  /** The annotation's text, when an annotation (the pod's or its namespace's) gave the value. */
  readonly text?: string;
}

/** What the pod's namespace tells about its settings (SPEC.md §4b). */
export interface NamespaceDefaults {
  readonly name: string;
  readonly annotations: Readonly<Record<string, string>>;
}

export type SettingsResult =
  | { readonly ok: true; readonly proxy: EffectiveProxyConfig; readonly settings: readonly ResolvedSetting[] }
  | { readonly ok: false; readonly errors: readonly AnnotationError[] };

/** Builds an effective proxy config from the fixed values and one value per pod setting. */
function buildProxyConfig(table: SettingsTable, valueOf: (setting: Setting) => unknown): EffectiveProxyConfig {
  const draft: Draft<EffectiveProxyConfig> = {};
  for (const fixed of FIXED_VALUES) fixed.at.set(draft, fixed.value);
  for (const setting of podSettings(table)) setting.pod?.at.set(draft, valueOf(setting));
  // Every key of EffectiveProxyConfig is a fixed value's or a setting's place (test/settings.test.ts).
  return draft as EffectiveProxyConfig;
}

/** Returns a config-given value, and whether it is the built-in default or the config's own. */
function fromConfig(setting: Setting, config: InjectorConfig, runtime: InjectorRuntime): ResolvedSetting {
  const configured: unknown = setting.config.get(config);
  const source = canonicalJson(configured) === canonicalJson(defaultOf(setting, runtime.version)) ? 'default' : 'config';
  return { setting, value: setting.pod?.fromConfig(configured, runtime), source };
}

/**
 * The config-given value of every pod setting, computed once per table, config and runtime (all
 * three are made once and never changed): every admission starts from them.
 */
const CONFIG_VALUES = new WeakMap<SettingsTable, WeakMap<InjectorConfig, WeakMap<InjectorRuntime, ReadonlyMap<Setting, ResolvedSetting>>>>();
function configValues(table: SettingsTable, config: InjectorConfig, runtime: InjectorRuntime): ReadonlyMap<Setting, ResolvedSetting> {
  let byConfig = CONFIG_VALUES.get(table);
  if (byConfig === undefined) CONFIG_VALUES.set(table, (byConfig = new WeakMap()));
  let byRuntime = byConfig.get(config);
  if (byRuntime === undefined) byConfig.set(config, (byRuntime = new WeakMap()));
  let values = byRuntime.get(runtime);
  if (values === undefined) {
    values = new Map(podSettings(table).map((s) => [s, fromConfig(s, config, runtime)]));
    byRuntime.set(runtime, values);
  }
  return values;
}

/** Returns the proxy configuration the injector's config alone gives a pod (no annotations). */
export function defaultProxyConfig(config: InjectorConfig, runtime: InjectorRuntime, table: SettingsTable = SETTINGS): EffectiveProxyConfig {
  return buildProxyConfig(table, (setting) => setting.pod?.fromConfig(setting.config.get(config), runtime));
}

/**
 * Returns the proxy configuration of the built-in defaults alone, as `init-iptables` assumes for
 * every flag it is not given (it reads no config file).
 */
export function builtInProxyConfig(table: SettingsTable = SETTINGS): EffectiveProxyConfig {
  const runtime: InjectorRuntime = { version: '', nativeSidecarSupported: false };
  return buildProxyConfig(table, (setting) => setting.pod?.fromConfig(defaultOf(setting, runtime.version), runtime));
}

/**
 * Resolves the pod's effective proxy configuration, recording where each value came from, or
 * returns every annotation in play that is invalid (all of them, not just the first). A namespace
 * annotation is only in play where the pod sets no value of its own.
 */
export function resolveSettings(
  podAnnotations: Readonly<Record<string, string>>,
  namespace: NamespaceDefaults | undefined,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  table: SettingsTable = SETTINGS,
): SettingsResult {
  // The result is a function of the texts in play (and, for a namespace's, the namespace's name),
  // so the results of recent combinations are kept: the replicas of a workload share theirs.
  const key = textsKey(podAnnotations, namespace, table);
  if (key.length > MAX_MEMO_KEY_LENGTH) return resolveTexts(podAnnotations, namespace, config, runtime, table);
  const memo = memoOf(table, config, runtime);
  const known = memo.get(key);
  if (known !== undefined) return known;
  // Shared by every pod of the combination from now on: frozen, so none can change it for the others.
  const result = deepFreeze(resolveTexts(podAnnotations, namespace, config, runtime, table));
  memo.set(key, result);
  if (memo.size > MEMO_SIZE) memo.delete(memo.keys().next().value as string);
  return result;
}

/** Combinations of annotation texts whose resolved settings are kept, per config (first in, first out). */
const MEMO_SIZE = 256;
/** Longer keys (huge annotation values) are resolved every time rather than kept. */
const MAX_MEMO_KEY_LENGTH = 2_048;
const MEMOS = new WeakMap<SettingsTable, WeakMap<InjectorConfig, WeakMap<InjectorRuntime, Map<string, SettingsResult>>>>();
function memoOf(table: SettingsTable, config: InjectorConfig, runtime: InjectorRuntime): Map<string, SettingsResult> {
  let byConfig = MEMOS.get(table);
  if (byConfig === undefined) MEMOS.set(table, (byConfig = new WeakMap()));
  let byRuntime = byConfig.get(config);
  if (byRuntime === undefined) byConfig.set(config, (byRuntime = new WeakMap()));
  let memo = byRuntime.get(runtime);
  if (memo === undefined) byRuntime.set(runtime, (memo = new Map()));
  return memo;
}

/** The annotation keys of a table's pod settings, in its order. */
const annotationKeysOf = perTable((table) =>
  podSettings(table).flatMap((s) => (s.pod?.annotation === undefined ? [] : [annotationKey(s.pod.annotation)])),
);

/** textsKey of a pod and namespace that give no setting's annotation: one `-` per setting. */
const noTextsKeyOf = perTable((table) => '-'.repeat(annotationKeysOf(table).length));

/**
 * Returns what resolveSettings reads of the annotations, as one string: each setting's own and
 * inherited text (length-prefixed, so no two combinations meet), and the namespace's name when
 * it gives one.
 */
function textsKey(
  podAnnotations: Readonly<Record<string, string>>,
  namespace: NamespaceDefaults | undefined,
  table: SettingsTable,
): string {
  const annotations = annotationKeysOf(table);
  // Most pods set none of them and inherit none: their key is the same string every time, one
  // whose hash the memo's lookups already know (no string built and hashed per admission).
  if (!annotations.some((annotation) => podAnnotations[annotation] !== undefined || namespace?.annotations[annotation] !== undefined)) {
    return noTextsKeyOf(table);
  }
  let key = '';
  let inherited = false;
  for (const annotation of annotations) {
    const own = podAnnotations[annotation];
    if (own !== undefined) {
      key += `p${own.length}:${own}`;
      continue;
    }
    const fromNamespace = namespace?.annotations[annotation];
    if (fromNamespace !== undefined) {
      inherited = true;
      key += `n${fromNamespace.length}:${fromNamespace}`;
    } else key += '-';
  }
  if (inherited) key += `@${namespace?.name ?? ''}`;
  return key;
}

/** Freezes the plain data of a result (the settings table's entries it refers to are frozen already or left alone). */
function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  Object.freeze(value);
  for (const [key, child] of Object.entries(value)) if (key !== 'setting') deepFreeze(child);
  return value;
}

/** resolveSettings without the memo. */
function resolveTexts(
  podAnnotations: Readonly<Record<string, string>>,
  namespace: NamespaceDefaults | undefined,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  table: SettingsTable,
): SettingsResult {
  const errors: AnnotationError[] = [];
  const configured = configValues(table, config, runtime);
  const resolved = new Map<Setting, ResolvedSetting>();
  for (const setting of podSettings(table)) {
    const pod = setting.pod;
    if (pod === undefined) continue;
    const key = pod.annotation === undefined ? undefined : annotationKey(pod.annotation);
    const own = key === undefined ? undefined : podAnnotations[key];
    const inherited = key === undefined || own !== undefined ? undefined : namespace?.annotations[key];
    const text = own ?? inherited;
    if (key === undefined || text === undefined) {
      resolved.set(setting, configured.get(setting) ?? fromConfig(setting, config, runtime));
      continue;
    }
    // A value longer than any setting's is refused unread, with its length (whatever the syntax).
    const parsed = text.length > MAX_VALUE_LENGTH ? tooLongFor(pod.syntax, text) : pod.syntax.parse(text);
    const source: SettingSource = own !== undefined ? 'pod' : 'namespace';
    if (parsed.ok) resolved.set(setting, { setting, value: parsed.value, source, text });
    else {
      const where = source === 'namespace' ? { namespace: namespace?.name ?? '' } : {};
      errors.push({ annotation: key, value: text, accepted: parsed.accepted, ...where });
      // The rest is still checked as if it were not given, so that one message lists everything.
      resolved.set(setting, configured.get(setting) ?? fromConfig(setting, config, runtime));
    }
  }
  const proxy = buildProxyConfig(table, (setting) => resolved.get(setting)?.value);
  errors.push(...checkRequestsWithinLimits(proxy, resolved, namespace?.name ?? ''));
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, proxy, settings: [...resolved.values()] };
}

/** The request and limit settings of each resource of the proxy. */
const RESOURCE_SETTINGS = {
  cpu: { request: SETTING.proxyCpu, limit: SETTING.proxyCpuLimit },
  memory: { request: SETTING.proxyMemory, limit: SETTING.proxyMemoryLimit },
} as const;

/** A request above its limit would be refused by the API server; say which annotation caused it. */
function checkRequestsWithinLimits(
  proxy: EffectiveProxyConfig,
  resolved: ReadonlyMap<Setting, ResolvedSetting>,
  namespace: string,
): AnnotationError[] {
  return requestsAboveLimits(proxy.resources).map((resource) => {
    const request = proxy.resources.requests[resource] as string;
    const limit = proxy.resources.limits[resource] as string;
    const settings = RESOURCE_SETTINGS[resource];
    const byAnnotation = (s: Setting) => {
      const source = resolved.get(s)?.source;
      return source === 'pod' || source === 'namespace';
    };
    // The config's own request and limit were checked at start: an annotation raised or lowered one.
    const blamed = byAnnotation(settings.request) ? settings.request : settings.limit;
    const limitKey = annotationOf(settings.limit);
    const hint = byAnnotation(settings.limit) ? '' : `; set ${limitKey} as well`;
    const inherited = resolved.get(blamed)?.source === 'namespace';
    return {
      annotation: annotationOf(blamed),
      value: blamed === settings.request ? request : limit,
      accepted: `a ${resource} request no larger than its limit (request ${request}, limit ${limit}${hint})`,
      ...(inherited ? { namespace } : {}),
    };
  });
}

/** Formats annotation errors as the one message a denied pod shows. */
export function formatAnnotationErrors(errors: readonly AnnotationError[]): string {
  // Values are quoted shortened: an annotation may hold up to 256 KiB, a denial message should not.
  return errors
    .map((e) => {
      const where = e.namespace === undefined ? '' : ` on namespace ${e.namespace}`;
      return `${e.annotation}=${JSON.stringify(shorten(e.value, 64))}${where} (accepted: ${e.accepted})`;
    })
    .join('; ');
}

/** The refusal of a value over MAX_VALUE_LENGTH: what the syntax accepts (from a one-character probe) and the length. */
function tooLongFor(syntax: ValueType<unknown>, text: string): Parsed<never> {
  const probe = syntax.parse('\u0000');
  const accepted = probe.ok ? 'a shorter value' : probe.accepted;
  return { ok: false, accepted: `${accepted}, in at most ${MAX_VALUE_LENGTH} characters (this value has ${text.length})` };
}
