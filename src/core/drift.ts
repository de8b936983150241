// Whether an injected pod's proxy is what the injector would give it today (SPEC.md §9: stale
// sidecars). Pure: the pod as the API server returns it, its admission context and the config.
import { STATUS_ANNOTATION } from '../constants.ts';
import { resolveSettings, type AnnotationError } from './overrides.ts';
import { SETTINGS, type SettingsTable } from './settings.ts';
import { hashProxyConfig, parseStatus, type InjectionStatus } from './status.ts';
import type { AdmissionContext, InjectorConfig, InjectorRuntime } from './types.ts';

/** How an injected pod's proxy compares with what the injector would inject now. */
export type ProxyDrift =
  | { readonly state: 'current'; readonly status: InjectionStatus; readonly configHash: string }
  | { readonly state: 'stale'; readonly status: InjectionStatus; readonly expectedHash: string }
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
 * (the config hash it was injected with against the one its annotations give now), or undefined
 * when the pod has no status annotation.
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
  return expectedHash === status.configHash
    ? { state: 'current', status, configHash: expectedHash }
    : { state: 'stale', status, expectedHash };
}
