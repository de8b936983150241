// Whether an injected pod's proxy is what the injector would give it today (SPEC.md §9: stale
// sidecars). Pure: the pod as the API server returns it, its admission context and the config.
import { STATUS_ANNOTATION } from '../constants.ts';
import { compareProxy, type ProxyComparison } from './differences.ts';
import { resolveSettings, type AnnotationError } from './overrides.ts';
import { SETTINGS, type SettingsTable } from './settings.ts';
import { hashProxyConfig, parseStatus, type InjectionStatus } from './status.ts';
import type { AdmissionContext, InjectorConfig, InjectorRuntime, JsonObject } from './types.ts';

/** How an injected pod's proxy compares with what the injector would inject now. */
export type ProxyDrift =
  | { readonly state: 'current'; readonly status: InjectionStatus; readonly configHash: string }
  /** Injected otherwise than now: what differs (SPEC.md §9), as far as the pod shows it. */
  | { readonly state: 'stale'; readonly status: InjectionStatus; readonly expectedHash: string; readonly comparison: ProxyComparison }
  /** Its status annotation is not one this injector writes. */
  | { readonly state: 'unknown-status' }
  /** Its annotations (or its namespace's) would be refused now. */
  | { readonly state: 'invalid-annotations'; readonly errors: readonly AnnotationError[] };

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Reads a pod's annotations leniently: whatever the API server stored, as far as strings go. */
function annotationsOf(pod: unknown): Record<string, string> {
  const metadata = isObject(pod) ? pod['metadata'] : undefined;
  const annotations = isObject(metadata) ? metadata['annotations'] : undefined;
  if (!isObject(annotations)) return {};
  return Object.fromEntries(Object.entries(annotations).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/**
 * Returns how the proxy of a pod carrying the status annotation compares with today's config
 * (the config hash it was injected with against the one its annotations give now, and for a stale
 * one what differs), or undefined when the pod has no status annotation.
 */
export function proxyDrift(
  pod: unknown,
  ctx: AdmissionContext,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  settings: SettingsTable = SETTINGS,
): ProxyDrift | undefined {
  const annotations = annotationsOf(pod);
  const text = annotations[STATUS_ANNOTATION];
  if (text === undefined) return undefined;
  const status = parseStatus(text);
  if (status === undefined) return { state: 'unknown-status' };
  const namespace = ctx.namespaceAnnotations === undefined ? undefined : { name: ctx.namespace, annotations: ctx.namespaceAnnotations };
  const resolved = resolveSettings(annotations, namespace, config, runtime, settings);
  if (!resolved.ok) return { state: 'invalid-annotations', errors: resolved.errors };
  const expectedHash = hashProxyConfig(resolved.proxy, runtime.version, settings);
  if (expectedHash === status.configHash) return { state: 'current', status, configHash: expectedHash };
  const comparison = isObject(pod) ? compareProxy(pod as JsonObject, status, ctx, config, runtime, settings) : { ok: false as const, problem: 'it is not an object' };
  return { state: 'stale', status, expectedHash, comparison };
}
