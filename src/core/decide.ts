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
  PORTS,
  PROXY_PORTS,
  PROXY_GID,
  PROXY_UID,
  SIDECAR_CONTAINER_NAME,
  STATUS_ANNOTATION,
  XTABLES_LOCK_VOLUME_NAME,
  overrideAnnotation,
} from '../constants.ts';
import { formatAnnotationErrors, resolveOverrides } from './overrides.ts';
import { readPod, type PodView } from './pod.ts';
import { reason, shorten, warning, type Reason, type Warning } from './reasons.ts';
import { closest } from './suggest.ts';
import type { AdmissionContext, EffectiveProxyConfig, InjectorConfig, InjectorRuntime } from './types.ts';
import { isGuaranteed, parseBoolean } from './values.ts';

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
    const surprise = surprisingSkipWarning(skips[0], pod, ctx);
    if (surprise !== undefined) warnings.unshift(surprise);
    return { decision: { action: 'skip', reasons: skips }, warnings, pod };
  }

  const denials: Reason[] = [];
  const overrides = resolveOverrides(pod.annotations, config, runtime);
  if (!overrides.ok) denials.push(reason('invalid-annotations', formatAnnotationErrors(overrides.errors)));
  denials.push(...portConflicts(pod, overrides.ok && overrides.config.nativeSidecar), ...nameConflicts(pod));
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
    if (!parsed.ok) reasons.push(reason('invalid-inject-annotation', `It is ${JSON.stringify(shorten(annotation))}.`));
    else if (!parsed.value) reasons.push(reason('disabled-by-annotation'));
  }
  if (podLabel === INJECT_LABEL_DISABLED) reasons.push(reason('disabled-by-pod-label'));
  if (pod.hostNetwork) reasons.push(reason('host-network'));
  if (pod.windows) reasons.push(reason('windows-pod'));
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
function portConflicts(pod: PodView, nativeSidecar: boolean): Reason[] {
  // Containers that run while the proxy does: the app's, the pod's own native sidecars, and with a
  // native proxy (started first) every init container; a classic proxy starts after them.
  const running = [...pod.initContainers.filter((c) => nativeSidecar || c.nativeSidecar), ...pod.containers];
  const conflicts = running.flatMap((c) =>
    c.tcpPorts.filter((p) => PROXY_PORTS.includes(p)).map((p) => `container ${c.name} declares port ${p}`),
  );
  return conflicts.length > 0 ? [reason('proxy-port-conflict', `${capitalize(conflicts.join('; '))}.`)] : [];
}

function nameConflicts(pod: PodView): Reason[] {
  return pod.volumeNames.includes(XTABLES_LOCK_VOLUME_NAME)
    ? [reason('name-conflict', `(volume ${XTABLES_LOCK_VOLUME_NAME})`)]
    : [];
}

/**
 * The warning for a skip the user would not expect, judged by the reason that decided it (the
 * first): a pod that opts in but sits in an excluded namespace, an unreadable inject annotation,
 * host networking, a container of its own named like the proxy, or another mesh's proxy.
 */
function surprisingSkipWarning(primary: Reason | undefined, pod: PodView, ctx: AdmissionContext): Warning | undefined {
  switch (primary?.code) {
    case 'namespace-excluded': {
      const annotation = pod.annotations[INJECT_ANNOTATION];
      const parsed = annotation === undefined ? undefined : parseBoolean(annotation);
      const optsIn = pod.labels[INJECT_LABEL] === INJECT_LABEL_ENABLED || (parsed?.ok === true && parsed.value);
      return optsIn ? warning('namespace-excluded', { namespace: shorten(ctx.namespace) }) : undefined;
    }
    case 'invalid-inject-annotation':
      return warning('invalid-inject-annotation', { value: JSON.stringify(shorten(pod.annotations[INJECT_ANNOTATION] ?? '')) });
    case 'host-network':
      return warning('host-network');
    case 'windows-pod':
      return warning('windows-pod');
    case 'already-injected': {
      // With the status annotation this is our own re-invocation: nothing surprising.
      if (pod.annotations[STATUS_ANNOTATION] !== undefined) return undefined;
      const taken = [...pod.initContainers, ...pod.containers].find(
        (c) => c.name === SIDECAR_CONTAINER_NAME || c.name === INIT_CONTAINER_NAME,
      );
      return taken === undefined ? undefined : warning('container-name-taken', { name: taken.name });
    }
    case 'other-mesh-present': {
      const others = [...pod.initContainers, ...pod.containers].filter((c) => OTHER_MESH_CONTAINERS.includes(c.name));
      return warning('other-mesh-present', { containers: others.map((c) => c.name).join(', ') });
    }
    default:
      return undefined;
  }
}

/**
 * Unknown annotations examined one by one (each with a "did you mean"); any beyond are counted in
 * one more warning, so 20,000 of them cost a count, not 20,000 searches and warnings.
 */
export const MAX_UNKNOWN_ANNOTATION_WARNINGS = 16;

function unknownAnnotationWarnings(pod: PodView): Warning[] {
  const prefix = `${DOMAIN}/`;
  const known = KNOWN_ANNOTATIONS.map((k) => k.slice(prefix.length));
  const unknown = Object.keys(pod.annotations).filter((key) => key.startsWith(prefix) && !KNOWN_ANNOTATIONS.includes(key));
  const warnings = unknown.slice(0, MAX_UNKNOWN_ANNOTATION_WARNINGS).map((key) => {
    const suggestion = closest(key.slice(prefix.length), known);
    return warning('unknown-annotation', {
      annotation: shorten(key, 63),
      suggestion: suggestion === undefined ? '' : ` Did you mean ${prefix}${suggestion}?`,
    });
  });
  const more = unknown.length - warnings.length;
  if (more > 0) warnings.push(warning('more-unknown-annotations', { count: String(more), prefix: DOMAIN }));
  return warnings;
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
  for (const c of checked) {
    // The capture rules exempt the proxy's UID and its GID alike.
    const uid = c.runAsUser === PROXY_UID;
    const gid = c.runAsGroup === PROXY_GID;
    if (uid || gid) {
      const identity = uid && gid ? `UID and GID ${PROXY_UID}` : uid ? `UID ${PROXY_UID}` : `GID ${PROXY_GID}`;
      warnings.push(warning('proxy-uid-container', { container: shorten(c.name), identity }));
    }
  }
  if (!proxy.nativeSidecar && runsToCompletion(pod, ctx)) {
    // On a cluster too old for native sidecars (nativeSidecar: auto said no) the app must stop Envoy.
    const tooOld = config.nativeSidecar === 'auto' && !runtime.nativeSidecarSupported;
    const fix = tooOld
      ? `When done, POST to 127.0.0.1:${PORTS.admin}/quitquitquit.`
      : `Set ${overrideAnnotation('native-sidecar')}: "true".`;
    warnings.push(warning('pod-will-not-complete', { fix }));
  }
  // Guaranteed QoS needs every container (init containers included) at requests = limits; the
  // injected ones must match too, or the pod silently becomes Burstable (and loses pinned CPUs).
  const all = [...pod.initContainers, ...pod.containers];
  if (all.every((c) => c.guaranteed) && !(isGuaranteed(proxy.resources) && isGuaranteed(proxy.initResources))) {
    warnings.push(warning('qos-downgraded'));
  }
  const grace = pod.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS;
  if (!proxy.nativeSidecar && proxy.drainSeconds >= grace) {
    warnings.push(warning('drain-exceeds-grace-period', { drain: String(proxy.drainSeconds), grace: String(grace) }));
  }
  return warnings;
}

function runsToCompletion(pod: PodView, ctx: AdmissionContext): boolean {
  if (ctx.workloadKind === 'Job' || ctx.workloadKind === 'CronJob') return true;
  // Pods of a CronJob are created by its Job, so they are owned by a Job too.
  if (pod.ownerKinds.includes('Job')) return true;
  return pod.restartPolicy === 'Never' || pod.restartPolicy === 'OnFailure';
}
