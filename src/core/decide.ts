// The decision (SPEC.md §3): whether a pod is injected, skipped or denied, with every reason, and
// the warnings its user should see. Pure: a function of the pod, the admission context and config.
import {
  DOMAIN,
  INIT_CONTAINER_NAME,
  INJECT_ANNOTATION,
  INJECT_LABEL,
  INJECT_LABEL_DISABLED,
  INJECT_LABEL_ENABLED,
  KNOWN_ANNOTATIONS,
  OTHER_MESH_CONTAINERS,
  PROXY_PORTS,
  PROXY_UID,
  SIDECAR_CONTAINER_NAME,
  STATUS_ANNOTATION,
  XTABLES_LOCK_VOLUME_NAME,
} from '../constants.ts';
import { formatAnnotationErrors, resolveOverrides } from './overrides.ts';
import { readPod, type PodView } from './pod.ts';
import { reason, warning, type Reason, type Warning, type WarningCode } from './reasons.ts';
import { closest } from './suggest.ts';
import type { AdmissionContext, EffectiveProxyConfig, InjectorConfig, InjectorRuntime } from './types.ts';
import { parseBoolean } from './values.ts';

export type Decision =
  | {
      readonly action: 'inject';
      readonly reasons: readonly Reason[];
      readonly proxy: EffectiveProxyConfig;
      /** The override annotations that took effect, by key. */
      readonly overrides: Readonly<Record<string, string>>;
    }
  | { readonly action: 'skip' | 'deny'; readonly reasons: readonly Reason[] };

/** A decision with the warnings to return and, once the object was read as a pod, the pod. */
export interface Evaluation {
  readonly decision: Decision;
  readonly warnings: readonly Warning[];
  readonly pod?: PodView;
}

/** Default kubelet grace period when a pod sets none. */
const DEFAULT_GRACE_SECONDS = 30;

/** Skip reasons a user would not expect: they come back as warnings too. */
const SURPRISING_SKIPS: ReadonlySet<string> = new Set<WarningCode>([
  'host-network',
  'invalid-inject-annotation',
  'other-mesh-present',
]);

/** Decides what happens to `object` (a Pod, or a workload's pod template) and why. */
export function decide(
  object: unknown,
  ctx: AdmissionContext,
  config: InjectorConfig,
  runtime: InjectorRuntime,
): Evaluation {
  if (ctx.kind !== 'Pod') return skip([reason('not-a-pod', `(kind ${ctx.kind || 'unknown'})`)]);
  if (ctx.subResource) return skip([reason('subresource', `(${ctx.subResource})`)]);
  if (ctx.operation !== 'CREATE') return skip([reason('not-create', `(operation ${ctx.operation || 'unknown'})`)]);

  const read = readPod(object);
  if (!read.ok) return { decision: { action: 'deny', reasons: [reason('invalid-pod', `${read.problem}.`)] }, warnings: [] };
  const pod = read.pod;
  const warnings: Warning[] = unknownAnnotationWarnings(pod);

  const skips = skipReasons(pod, ctx, config);
  if (skips.length > 0) {
    const primary = skips[0];
    if (primary !== undefined && SURPRISING_SKIPS.has(primary.code)) {
      warnings.unshift(warning(primary.code as WarningCode, primary.detail));
    }
    return { decision: { action: 'skip', reasons: skips }, warnings, pod };
  }

  const denials: Reason[] = [];
  const overrides = resolveOverrides(pod.annotations, config, runtime);
  if (!overrides.ok) denials.push(reason('invalid-annotations', formatAnnotationErrors(overrides.errors)));
  denials.push(...portConflicts(pod), ...nameConflicts(pod));
  if (denials.length > 0 || !overrides.ok) return { decision: { action: 'deny', reasons: denials }, warnings, pod };

  warnings.push(...injectionWarnings(pod, ctx, overrides.config, config, runtime));
  return {
    decision: { action: 'inject', reasons: enableReasons(pod, ctx), proxy: overrides.config, overrides: overrides.overrides },
    warnings,
    pod,
  };
}

function skip(reasons: Reason[]): Evaluation {
  return { decision: { action: 'skip', reasons }, warnings: [] };
}

const capitalize = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1);

/** Every reason not to inject, in the order of SPEC.md §3. */
function skipReasons(pod: PodView, ctx: AdmissionContext, config: InjectorConfig): Reason[] {
  const reasons: Reason[] = [];
  if (config.excludedNamespaces.includes(ctx.namespace) || ctx.namespace === config.namespace) {
    reasons.push(reason('namespace-excluded', `(namespace ${ctx.namespace})`));
  }
  const podLabel = pod.labels[INJECT_LABEL];
  if (ctx.namespaceLabels !== undefined) {
    const namespaceLabel = ctx.namespaceLabels[INJECT_LABEL];
    if (namespaceLabel === INJECT_LABEL_DISABLED) reasons.push(reason('namespace-disabled'));
    else if (namespaceLabel !== INJECT_LABEL_ENABLED && podLabel !== INJECT_LABEL_ENABLED) {
      reasons.push(reason('namespace-not-enabled'));
    }
  }
  const annotation = pod.annotations[INJECT_ANNOTATION];
  if (annotation !== undefined) {
    const parsed = parseBoolean(annotation);
    if (!parsed.ok) reasons.push(reason('invalid-inject-annotation', `It is ${JSON.stringify(annotation)}.`));
    else if (!parsed.value) reasons.push(reason('disabled-by-annotation'));
  }
  if (podLabel === INJECT_LABEL_DISABLED) reasons.push(reason('disabled-by-pod-label'));
  if (pod.hostNetwork) reasons.push(reason('host-network'));
  if (isInjected(pod)) {
    const detail =
      pod.annotations[STATUS_ANNOTATION] === undefined
        ? '(It has a container named envoy or envoy-init but no status annotation: it may run its own Envoy.)'
        : undefined;
    reasons.push(reason('already-injected', detail));
  }
  const others = [...pod.initContainers, ...pod.containers]
    .map((c) => c.name)
    .filter((name) => OTHER_MESH_CONTAINERS.includes(name));
  if (others.length > 0) reasons.push(reason('other-mesh-present', `(container ${others.join(', ')})`));
  return reasons;
}

/** Whether the pod already carries this injector's proxy. */
export function isInjected(pod: PodView): boolean {
  if (pod.annotations[STATUS_ANNOTATION] !== undefined) return true;
  return [...pod.initContainers, ...pod.containers].some(
    (c) => c.name === SIDECAR_CONTAINER_NAME || c.name === INIT_CONTAINER_NAME,
  );
}

function enableReasons(pod: PodView, ctx: AdmissionContext): Reason[] {
  const reasons: Reason[] = [];
  const podLabelEnabled = pod.labels[INJECT_LABEL] === INJECT_LABEL_ENABLED;
  const namespaceLabel = ctx.namespaceLabels?.[INJECT_LABEL];
  if (namespaceLabel === INJECT_LABEL_ENABLED || (namespaceLabel === undefined && !podLabelEnabled)) {
    reasons.push(reason('enabled-by-namespace'));
  }
  if (podLabelEnabled) reasons.push(reason('enabled-by-pod-label'));
  if (pod.annotations[INJECT_ANNOTATION] !== undefined) reasons.push(reason('enabled-by-annotation'));
  return reasons;
}

/** Containers declaring a port the proxy listens on would fail to bind, or steal its traffic. */
function portConflicts(pod: PodView): Reason[] {
  const conflicts = [...pod.initContainers, ...pod.containers].flatMap((c) =>
    c.ports.filter((p) => PROXY_PORTS.includes(p)).map((p) => `container ${c.name} declares port ${p}`),
  );
  return conflicts.length > 0 ? [reason('proxy-port-conflict', `${capitalize(conflicts.join('; '))}.`)] : [];
}

function nameConflicts(pod: PodView): Reason[] {
  return pod.volumeNames.includes(XTABLES_LOCK_VOLUME_NAME)
    ? [reason('name-conflict', `(volume ${XTABLES_LOCK_VOLUME_NAME})`)]
    : [];
}

function unknownAnnotationWarnings(pod: PodView): Warning[] {
  const prefix = `${DOMAIN}/`;
  const known = KNOWN_ANNOTATIONS.map((k) => k.slice(prefix.length));
  return Object.keys(pod.annotations)
    .filter((key) => key.startsWith(prefix) && !KNOWN_ANNOTATIONS.includes(key))
    .map((key) => {
      const suggestion = closest(key.slice(prefix.length), known);
      const hint = suggestion === undefined ? 'It has no effect.' : `Did you mean ${prefix}${suggestion}?`;
      return warning('unknown-annotation', `${key}: ${hint}`);
    });
}

function injectionWarnings(
  pod: PodView,
  ctx: AdmissionContext,
  proxy: EffectiveProxyConfig,
  config: InjectorConfig,
  runtime: InjectorRuntime,
): Warning[] {
  const warnings: Warning[] = [];
  // `auto` found no native sidecar support, yet the pod's annotation asks for one.
  if (proxy.nativeSidecar && config.nativeSidecar === 'auto' && !runtime.nativeSidecarSupported) {
    warnings.push(warning('native-sidecar-unsupported'));
  }
  // In classic mode the pod's init containers run before envoy-init, so their UID does not matter.
  const checked = proxy.nativeSidecar ? [...pod.initContainers, ...pod.containers] : pod.containers;
  const proxyUid = checked.filter((c) => c.runAsUser === PROXY_UID).map((c) => c.name);
  if (proxyUid.length > 0) warnings.push(warning('proxy-uid-container', `(container ${proxyUid.join(', ')})`));
  if (!proxy.nativeSidecar && runsToCompletion(pod, ctx)) {
    warnings.push(
      warning('pod-will-not-complete', 'Use native sidecars (Kubernetes ≥ 1.29): annotate envoy-injector.io/native-sidecar: "true".'),
    );
  }
  const grace = pod.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS;
  if (!proxy.nativeSidecar && proxy.drainSeconds >= grace) {
    warnings.push(
      warning('drain-exceeds-grace-period', `(drain ${proxy.drainSeconds}s, terminationGracePeriodSeconds ${grace}s)`),
    );
  }
  return warnings;
}

function runsToCompletion(pod: PodView, ctx: AdmissionContext): boolean {
  if (ctx.workloadKind === 'Job' || ctx.workloadKind === 'CronJob') return true;
  if (pod.ownerKinds.includes('Job')) return true;
  return pod.restartPolicy === 'Never' || pod.restartPolicy === 'OnFailure';
}
