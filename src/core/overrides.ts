// Per-pod overrides (SPEC.md §5): the annotations a pod may set, validated together, merged over
// the injector's configuration into the pod's effective proxy configuration.
import { OVERRIDE_SETTINGS, PORTS, PROXY_GID, PROXY_PORTS, PROXY_UID, overrideAnnotation, type OverrideSetting } from '../constants.ts';
import { shorten } from './reasons.ts';
import type { EffectiveProxyConfig, InjectorConfig, InjectorRuntime, ResourceList } from './types.ts';
import {
  parseAllOrCidrList,
  parseAllOrPortList,
  parseBoolean,
  parseCidrList,
  parseCpu,
  parseImage,
  parseInteger,
  parseLogLevel,
  parseMemory,
  parsePortList,
  requestsAboveLimits,
  type Parsed,
} from './values.ts';

/** One annotation whose value was refused, with what would have been accepted. */
export interface AnnotationError {
  readonly annotation: string;
  readonly value: string;
  readonly accepted: string;
}

export type OverridesResult =
  | { readonly ok: true; readonly config: EffectiveProxyConfig; readonly overrides: Readonly<Record<string, string>> }
  | { readonly ok: false; readonly errors: readonly AnnotationError[] };

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Draft = Omit<Mutable<EffectiveProxyConfig>, 'traffic' | 'resources'> & {
  traffic: Mutable<EffectiveProxyConfig['traffic']>;
  resources: { requests: ResourceList; limits: ResourceList };
};

/** How each override annotation is parsed and where its value goes. */
const APPLY: { readonly [S in OverrideSetting]: (value: string, draft: Draft) => Parsed<unknown> } = {
  'exclude-inbound-ports': (v, d) => set(parsePortList(v), (x) => (d.traffic.excludeInboundPorts = x)),
  'include-inbound-ports': (v, d) => set(parseAllOrPortList(v), (x) => (d.traffic.includeInboundPorts = x)),
  'exclude-outbound-ports': (v, d) => set(parsePortList(v), (x) => (d.traffic.excludeOutboundPorts = x)),
  'exclude-outbound-ip-ranges': (v, d) => set(parseCidrList(v), (x) => (d.traffic.excludeOutboundIpRanges = x)),
  'include-outbound-ip-ranges': (v, d) => set(parseAllOrCidrList(v), (x) => (d.traffic.includeOutboundIpRanges = x)),
  'proxy-image': (v, d) => set(parseImage(v), (x) => (d.image = x)),
  'proxy-cpu': (v, d) => set(parseCpu(v), (x) => (d.resources.requests = { ...d.resources.requests, cpu: x })),
  'proxy-memory': (v, d) => set(parseMemory(v), (x) => (d.resources.requests = { ...d.resources.requests, memory: x })),
  'proxy-cpu-limit': (v, d) => set(parseCpu(v), (x) => (d.resources.limits = { ...d.resources.limits, cpu: x })),
  'proxy-memory-limit': (v, d) => set(parseMemory(v), (x) => (d.resources.limits = { ...d.resources.limits, memory: x })),
  'log-level': (v, d) => set(parseLogLevel(v), (x) => (d.logLevel = x)),
  concurrency: (v, d) => set(parseInteger(v, 0, 256), (x) => (d.concurrency = x)),
  'native-sidecar': (v, d) => set(parseBoolean(v), (x) => (d.nativeSidecar = x)),
  'hold-application-until-proxy-starts': (v, d) => set(parseBoolean(v), (x) => (d.holdApplicationUntilProxyStarts = x)),
  'drain-seconds': (v, d) => set(parseInteger(v, 0, 3600), (x) => (d.drainSeconds = x)),
};

function set<T>(parsed: Parsed<T>, assign: (value: T) => unknown): Parsed<T> {
  if (parsed.ok) assign(parsed.value);
  return parsed;
}

/** Returns the proxy configuration the injector's config alone gives a pod (no overrides). */
export function defaultProxyConfig(config: InjectorConfig, runtime: InjectorRuntime): EffectiveProxyConfig {
  const nativeSidecar = config.nativeSidecar === 'auto' ? runtime.nativeSidecarSupported : config.nativeSidecar === 'true';
  return {
    image: config.proxy.image,
    resources: config.proxy.resources,
    logLevel: config.proxy.logLevel,
    concurrency: config.proxy.concurrency,
    nativeSidecar,
    holdApplicationUntilProxyStarts: config.proxy.holdApplicationUntilProxyStarts,
    drainSeconds: config.proxy.drainSeconds,
    imagePullPolicy: config.proxy.imagePullPolicy,
    accessLog: config.proxy.accessLog,
    ads: config.proxy.ads,
    initImage: config.init.image,
    initResources: config.init.resources,
    traffic: {
      proxyUid: PROXY_UID,
      proxyGid: PROXY_GID,
      inboundCapturePort: PORTS.inboundCapture,
      outboundCapturePort: PORTS.outboundCapture,
      proxyPorts: PROXY_PORTS,
      ...config.traffic,
      ipv6: config.proxy.ipv6,
    },
  };
}

/**
 * Resolves the pod's effective proxy configuration from the config and the pod's override
 * annotations, or returns every annotation that is invalid (all of them, not just the first).
 */
export function resolveOverrides(
  annotations: Readonly<Record<string, string>>,
  config: InjectorConfig,
  runtime: InjectorRuntime,
): OverridesResult {
  const base = defaultProxyConfig(config, runtime);
  const draft: Draft = {
    ...base,
    resources: { requests: { ...base.resources.requests }, limits: { ...base.resources.limits } },
    traffic: { ...base.traffic },
  };
  const errors: AnnotationError[] = [];
  const overrides: Record<string, string> = {};
  for (const setting of OVERRIDE_SETTINGS) {
    const annotation = overrideAnnotation(setting);
    const value = annotations[annotation];
    if (value === undefined) continue;
    const parsed = APPLY[setting](value, draft);
    if (parsed.ok) overrides[annotation] = value;
    else errors.push({ annotation, value, accepted: parsed.accepted });
  }
  errors.push(...checkRequestsWithinLimits(draft, overrides));
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, config: draft, overrides };
}

/** A request above its limit would be refused by the API server; say which annotation caused it. */
function checkRequestsWithinLimits(draft: Draft, overrides: Readonly<Record<string, string>>): AnnotationError[] {
  return requestsAboveLimits(draft.resources).map((resource) => {
    const request = draft.resources.requests[resource] as string;
    const limit = draft.resources.limits[resource] as string;
    const requestKey = overrideAnnotation(resource === 'cpu' ? 'proxy-cpu' : 'proxy-memory');
    const limitKey = overrideAnnotation(resource === 'cpu' ? 'proxy-cpu-limit' : 'proxy-memory-limit');
    const annotation = overrides[requestKey] !== undefined ? requestKey : limitKey;
    const hint = overrides[limitKey] === undefined ? `; set ${limitKey} as well` : '';
    return {
      annotation,
      value: annotation === requestKey ? request : limit,
      accepted: `a ${resource} request no larger than its limit (request ${request}, limit ${limit}${hint})`,
    };
  });
}

/** Formats annotation errors as the one message a denied pod shows. */
export function formatAnnotationErrors(errors: readonly AnnotationError[]): string {
  // Values are quoted shortened: an annotation may hold up to 256 KiB, a denial message should not.
  return errors.map((e) => `${e.annotation}=${JSON.stringify(shorten(e.value, 64))} (accepted: ${e.accepted})`).join('; ');
}
