// The decision (SPEC.md §3): whether a pod is injected, skipped or denied, with every reason, and
// the warnings its user should see. First the facts of the pod are gathered, once (a report, as
// Linkerd's pkg/inject/report.go); then the skip reasons, the denials, the warnings and the enable
// reasons are each read from those facts. Injection is planned here too (the plan is handed on,
// never built twice). Pure: a function of the pod, the admission context and config.
import {
  DOMAIN,
  INIT_CONTAINER_NAME,
  INJECT_ANNOTATION,
  INJECT_LABEL,
  INJECT_LABEL_DISABLED,
  INJECT_LABEL_ENABLED,
  OTHER_MESH_CONTAINERS,
  PORTS,
  PROXY_GID,
  PROXY_PORTS,
  PROXY_UID,
  SIDECAR_CONTAINER_NAME,
  INJECTED_VOLUME_NAMES,
  STATUS_ANNOTATION,
} from '../constants.ts';
import { describeExecSizeProblem, execSizeProblem } from './exec-size.ts';
import { planInjection, proxyVolumes, type PlannedInjection } from './plan.ts';
import { planReordering, type Reordering } from './reorder.ts';
import { parseStatus, type InjectionStatus } from './status.ts';
import { formatAnnotationErrors, resolveSettings, type ResolvedSetting, type SettingsResult } from './overrides.ts';
import { readPod, type PodView } from './pod.ts';
import { reason, shorten, warning, type Reason, type Warning } from './reasons.ts';
import { SETTING, SETTINGS, annotationOf, knownAnnotations, type SettingsTable } from './settings.ts';
import { MAX_EXEC_STRING_BYTES } from './sidecar.ts';
import { closest } from './suggest.ts';
import type { AdmissionContext, EffectiveProxyConfig, InjectorConfig, InjectorRuntime } from './types.ts';
import { isGuaranteed, parseBoolean } from './values.ts';

export type Decision =
  | {
      readonly action: 'inject';
      readonly reasons: readonly Reason[];
      readonly proxy: EffectiveProxyConfig;
      /** Every pod setting's effective value and where it came from (pod, namespace, config, default). */
      readonly settings: readonly ResolvedSetting[];
    }
  | { readonly action: 'skip' | 'deny' | 'reorder'; readonly reasons: readonly Reason[] };

/** A decision with the warnings to return and, once the object was read as a pod, what was learnt. */
export interface Evaluation {
  readonly decision: Decision;
  readonly warnings: readonly Warning[];
  readonly pod?: PodView;
  readonly facts?: PodFacts;
  /** What injecting adds, when the decision is to inject. */
  readonly injection?: PlannedInjection;
  /** The move that restores the injected order, when the decision is to reorder. */
  readonly reordering?: Reordering;
}

/** Default kubelet grace period when a pod sets none. */
const DEFAULT_GRACE_SECONDS = 30;

/** A container port the proxy needs. */
export interface ProxyPortClaim {
  readonly container: string;
  readonly port: number;
  /** Whether the container runs alongside any proxy: an app container or a native sidecar of the pod's. */
  readonly alongsideClassicProxy: boolean;
}

/** A container running as the proxy's UID or GID, whose traffic the capture rules exempt. */
export interface ProxyIdentityContainer {
  readonly container: string;
  readonly uid: boolean;
  readonly gid: boolean;
  /** An init container: it runs before a classic proxy, so only a native one matters to it. */
  readonly init: boolean;
}

/** Everything the decision is made of, gathered once per pod. */
export interface PodFacts {
  readonly pod: PodView;
  readonly namespace: string;
  /** Excluded by the injector's config (excludedNamespaces, or its own namespace). */
  readonly namespaceExcluded: boolean;
  /** The namespace's annotations should be known but could not be read: the config's defaults apply. */
  readonly namespaceAnnotationsUnknown: boolean;
  /** Whether the namespace's labels are known (the webhook is only called for matching ones). */
  readonly namespaceLabelsKnown: boolean;
  /** The namespace's inject label, when its labels are known. */
  readonly namespaceLabel: string | undefined;
  /** The pod's inject label. */
  readonly podLabel: string | undefined;
  /** The inject annotation as written and what it says (undefined: neither "true" nor "false"). */
  readonly injectAnnotation: { readonly text: string; readonly value: boolean | undefined } | undefined;
  /** The pod asks to be injected, by its label or its annotation. */
  readonly optsIn: boolean;
  readonly statusAnnotation: boolean;
  /** The status annotation, when it is one this injector reads. */
  readonly status: InjectionStatus | undefined;
  /** The first container of the pod's own named like an injected one. */
  readonly proxyNamedContainer: string | undefined;
  readonly otherMeshContainers: readonly string[];
  /** Volumes of the pod's with a name the injection needs. */
  readonly takenVolumeNames: readonly string[];
  /** Annotations under the domain the injector does not know. */
  readonly unknownAnnotations: readonly string[];
  /** The pod settings resolved from the pod's and its namespace's annotations and the config. */
  readonly settings: SettingsResult;
  readonly proxyPortClaims: readonly ProxyPortClaim[];
  readonly proxyIdentityContainers: readonly ProxyIdentityContainer[];
  /** A Job's pod, or one that never restarts: it should complete. */
  readonly runsToCompletion: boolean;
  /** Every container of the pod (init containers included) qualifies for Guaranteed QoS. */
  readonly guaranteedQoS: boolean;
  readonly terminationGracePeriodSeconds: number;
}

/** Decides what happens to `object` (a Pod, or a workload's pod template) and why, and plans the injection. */
export function decide(
  object: unknown,
  ctx: AdmissionContext,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  settings: SettingsTable = SETTINGS,
): Evaluation {
  const evaluation = evaluate(object, ctx, config, runtime, settings);
  const { decision, pod } = evaluation;
  if (decision.action !== 'inject' || pod === undefined) return evaluation;
  const injection = planInjection(pod, decision.proxy, runtime, settings);
  // Any string exec would refuse (E2BIG): the pod would hang in Init, so deny it by name.
  for (const container of [...injection.plan.initContainers, ...injection.plan.containers]) {
    const problem = execSizeProblem(container);
    if (problem !== undefined) {
      const denial = reason('exec-too-large', describeExecSizeProblem(problem, decision.settings, ctx.namespace));
      return { ...evaluation, decision: { action: 'deny', reasons: [denial] } };
    }
  }
  return { ...evaluation, injection };
}

/**
 * Decides like `decide` without planning the injection: the decision, its warnings and the facts
 * it was read from. The webhook's fast path (fast-patch.ts) plans from a cache instead.
 */
export function evaluate(
  object: unknown,
  ctx: AdmissionContext,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  settings: SettingsTable = SETTINGS,
): Evaluation {
  if (ctx.kind !== 'Pod') return skip([reason('not-a-pod', `(kind ${ctx.kind || 'unknown'})`)]);
  if (ctx.subResource) return skip([reason('subresource', `(${ctx.subResource})`)]);
  if (ctx.operation !== 'CREATE') return skip([reason('not-create', `(operation ${ctx.operation || 'unknown'})`)]);

  const read = readPod(object);
  if (!read.ok) return { decision: { action: 'deny', reasons: [reason('invalid-pod', `${read.problem}.`)] }, warnings: [] };
  const pod = read.pod;
  const facts = gatherFacts(pod, ctx, config, runtime, settings);
  const warnings: Warning[] = unknownAnnotationWarnings(facts.unknownAnnotations, knownAnnotations(settings));

  const skips = skipReasons(facts);
  // Our own pod, re-invoked after another webhook changed it: only its order may need restoring.
  const status = skips[0]?.code === 'already-injected' ? facts.status : undefined;
  const reordering = status === undefined ? undefined : planReordering(pod, status);
  if (reordering !== undefined) return { decision: { action: 'reorder', reasons: [reordering.reason] }, warnings, pod, facts, reordering };
  if (skips.length > 0) {
    const surprise = surprisingSkipWarning(skips[0], facts);
    if (surprise !== undefined) warnings.unshift(surprise);
    return { decision: { action: 'skip', reasons: skips }, warnings, pod, facts };
  }

  const resolved = facts.settings;
  const denials = denialReasons(facts, runtime);
  if (denials.length > 0 || !resolved.ok) return { decision: { action: 'deny', reasons: denials }, warnings, pod, facts };

  warnings.push(...injectionWarnings(facts, resolved.proxy, config, runtime));
  return {
    decision: { action: 'inject', reasons: enableReasons(facts), proxy: resolved.proxy, settings: resolved.settings },
    warnings,
    pod,
    facts,
  };
}

const parseStatusText = (text: string | undefined): InjectionStatus | undefined => (text === undefined ? undefined : parseStatus(text));

function skip(reasons: Reason[]): Evaluation {
  return { decision: { action: 'skip', reasons }, warnings: [] };
}

/** Gathers the facts of a pod that the decision and its warnings are read from. */
function gatherFacts(
  pod: PodView,
  ctx: AdmissionContext,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  settings: SettingsTable = SETTINGS,
): PodFacts {
  const all = [...pod.initContainers, ...pod.containers];
  const podLabel = pod.labels[INJECT_LABEL];
  const injectText = pod.annotations[INJECT_ANNOTATION];
  const injectParsed = injectText === undefined ? undefined : parseBoolean(injectText);
  const injectAnnotation =
    injectText === undefined ? undefined : { text: injectText, value: injectParsed?.ok === true ? injectParsed.value : undefined };
  const prefix = `${DOMAIN}/`;
  const known = knownAnnotations(settings);
  const namespaceAnnotations = ctx.namespaceAnnotations;
  const resolvedSettings = resolveSettings(
    pod.annotations,
    namespaceAnnotations === undefined ? undefined : { name: ctx.namespace, annotations: namespaceAnnotations },
    config,
    runtime,
    settings,
  );
  return {
    pod,
    namespace: ctx.namespace,
    namespaceExcluded: config.excludedNamespaces.includes(ctx.namespace) || ctx.namespace === config.namespace,
    namespaceLabelsKnown: ctx.namespaceLabels !== undefined,
    namespaceAnnotationsUnknown: ctx.namespaceAnnotationsUnknown === true,
    namespaceLabel: ctx.namespaceLabels?.[INJECT_LABEL],
    podLabel,
    injectAnnotation,
    optsIn: podLabel === INJECT_LABEL_ENABLED || injectAnnotation?.value === true,
    statusAnnotation: pod.annotations[STATUS_ANNOTATION] !== undefined,
    status: parseStatusText(pod.annotations[STATUS_ANNOTATION]),
    proxyNamedContainer: all.find((c) => c.name === SIDECAR_CONTAINER_NAME || c.name === INIT_CONTAINER_NAME)?.name,
    otherMeshContainers: all.map((c) => c.name).filter((name) => OTHER_MESH_CONTAINERS.includes(name)),
    takenVolumeNames: takenVolumeNames(pod, resolvedSettings),
    unknownAnnotations: Object.keys(pod.annotations).filter((key) => key.startsWith(prefix) && !known.includes(key)),
    settings: resolvedSettings,
    proxyPortClaims: all.flatMap((c) =>
      c.tcpPorts
        .filter((port) => PROXY_PORTS.includes(port))
        .map((port) => ({ container: c.name, port, alongsideClassicProxy: c.list === 'containers' || c.nativeSidecar })),
    ),
    proxyIdentityContainers: all.flatMap((c) => {
      // The capture rules exempt the proxy's UID and its GID alike.
      const uid = c.runAsUser === PROXY_UID;
      const gid = c.runAsGroup === PROXY_GID;
      return uid || gid ? [{ container: c.name, uid, gid, init: c.list === 'initContainers' }] : [];
    }),
    runsToCompletion: runsToCompletion(pod, ctx),
    guaranteedQoS: all.every((c) => c.guaranteed),
    terminationGracePeriodSeconds: pod.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS,
  };
}

/** The pod's own volumes named like one the injection adds: the fixed ones, and those its proxy config asks for. */
function takenVolumeNames(pod: PodView, settings: SettingsResult): string[] {
  const names = new Set(INJECTED_VOLUME_NAMES);
  if (settings.ok) for (const volume of proxyVolumes(settings.proxy).volumes) names.add(volume.name);
  return [...new Set(pod.volumeNames.filter((name) => names.has(name)))];
}

const capitalize = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1);

/** Every reason not to inject, in the order of SPEC.md §3. */
function skipReasons(facts: PodFacts): Reason[] {
  const reasons: Reason[] = [];
  if (facts.namespaceExcluded) reasons.push(reason('namespace-excluded', `(namespace ${facts.namespace})`));
  if (facts.namespaceLabelsKnown) {
    if (facts.namespaceLabel === INJECT_LABEL_DISABLED) reasons.push(reason('namespace-disabled'));
    else if (facts.namespaceLabel !== INJECT_LABEL_ENABLED && facts.podLabel !== INJECT_LABEL_ENABLED) {
      reasons.push(reason('namespace-not-enabled'));
    }
  }
  const inject = facts.injectAnnotation;
  if (inject !== undefined) {
    if (inject.value === undefined) reasons.push(reason('invalid-inject-annotation', `It is ${JSON.stringify(shorten(inject.text))}.`));
    else if (!inject.value) reasons.push(reason('disabled-by-annotation'));
  }
  if (facts.podLabel === INJECT_LABEL_DISABLED) reasons.push(reason('disabled-by-pod-label'));
  if (facts.pod.hostNetwork) reasons.push(reason('host-network'));
  if (facts.pod.windows) reasons.push(reason('windows-pod'));
  if (isInjected(facts)) {
    const detail = facts.statusAnnotation
      ? undefined
      : '(It has a container named envoy or envoy-init but no status annotation: it may run its own Envoy.)';
    reasons.push(reason('already-injected', detail));
  }
  if (facts.otherMeshContainers.length > 0) {
    reasons.push(reason('other-mesh-present', `(container ${facts.otherMeshContainers.join(', ')})`));
  }
  return reasons;
}

/** Whether the pod already carries this injector's proxy. */
function isInjected(facts: Pick<PodFacts, 'statusAnnotation' | 'proxyNamedContainer'>): boolean {
  return facts.statusAnnotation || facts.proxyNamedContainer !== undefined;
}

function enableReasons(facts: PodFacts): Reason[] {
  const reasons: Reason[] = [];
  const podLabelEnabled = facts.podLabel === INJECT_LABEL_ENABLED;
  const namespaceLabel = facts.namespaceLabel;
  if (namespaceLabel === INJECT_LABEL_ENABLED || (namespaceLabel === undefined && !podLabelEnabled)) {
    reasons.push(reason('enabled-by-namespace'));
  }
  if (podLabelEnabled) reasons.push(reason('enabled-by-pod-label'));
  if (facts.injectAnnotation !== undefined) reasons.push(reason('enabled-by-annotation'));
  return reasons;
}

/** Why the pod, to be injected, cannot be: bad annotations, ports the proxy needs, names it needs. */
function denialReasons(facts: PodFacts, runtime: InjectorRuntime): Reason[] {
  const denials: Reason[] = [];
  if (!facts.settings.ok) denials.push(reason('invalid-annotations', formatAnnotationErrors(facts.settings.errors)));
  // Containers that run while the proxy does: the app's, the pod's own native sidecars, and with a
  // native proxy (started first) every init container; a classic proxy starts after them.
  const native = facts.settings.ok && facts.settings.proxy.nativeSidecar;
  const conflicts = facts.proxyPortClaims
    .filter((claim) => native || claim.alongsideClassicProxy)
    .map((claim) => `container ${claim.container} declares port ${claim.port}`);
  if (conflicts.length > 0) denials.push(reason('proxy-port-conflict', `${capitalize(conflicts.join('; '))}.`));
  if (facts.takenVolumeNames.length > 0) denials.push(reason('name-conflict', `(volume ${facts.takenVolumeNames.join(', ')})`));
  // Only an annotation can ask for a native sidecar that `auto` did not choose. An API server
  // without them drops restartPolicy from our patch, leaving envoy a plain init container whose
  // probes it then refuses with a message about the injected container: say it ourselves, clearly.
  if (native && runtime.apiServerNativeSidecars === false) {
    denials.push(reason('api-server-lacks-native-sidecars', `Remove the annotation ${annotationOf(SETTING.nativeSidecar)} or set it to "false".`));
  }
  return denials;
}

/**
 * The warning for a skip the user would not expect, judged by the reason that decided it (the
 * first): a pod that opts in but sits in an excluded namespace, an unreadable inject annotation,
 * host networking, a container of its own named like the proxy, or another mesh's proxy.
 */
function surprisingSkipWarning(primary: Reason | undefined, facts: PodFacts): Warning | undefined {
  switch (primary?.code) {
    case 'namespace-excluded':
      return facts.optsIn ? warning('namespace-excluded', { namespace: shorten(facts.namespace) }) : undefined;
    case 'invalid-inject-annotation':
      return warning('invalid-inject-annotation', { value: JSON.stringify(shorten(facts.injectAnnotation?.text ?? '')) });
    case 'host-network':
      return warning('host-network');
    case 'windows-pod':
      return warning('windows-pod');
    case 'already-injected':
      // With the status annotation this is our own re-invocation: nothing surprising.
      if (facts.statusAnnotation || facts.proxyNamedContainer === undefined) return undefined;
      return warning('container-name-taken', { name: facts.proxyNamedContainer });
    case 'other-mesh-present':
      return warning('other-mesh-present', { containers: facts.otherMeshContainers.join(', ') });
    default:
      return undefined;
  }
}

/**
 * Unknown annotations examined one by one (each with a "did you mean"); any beyond are counted in
 * one more warning, so 20,000 of them cost a count, not 20,000 searches and warnings.
 */
export const MAX_UNKNOWN_ANNOTATION_WARNINGS = 16;

function unknownAnnotationWarnings(unknown: readonly string[], knownKeys: readonly string[]): Warning[] {
  const prefix = `${DOMAIN}/`;
  const known = knownKeys.map((k) => k.slice(prefix.length));
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

function injectionWarnings(facts: PodFacts, proxy: EffectiveProxyConfig, config: InjectorConfig, runtime: InjectorRuntime): Warning[] {
  const warnings: Warning[] = [];
  if (facts.namespaceAnnotationsUnknown) warnings.push(warning('namespace-defaults-unknown', { namespace: shorten(facts.namespace) }));
  // `auto` found no native sidecar support, yet the pod's annotation asks for one.
  if (proxy.nativeSidecar && config.nativeSidecar === 'auto' && !runtime.nativeSidecarSupported) {
    warnings.push(warning('native-sidecar-unsupported'));
  }
  // In classic mode the pod's init containers run before envoy-init, so their UID does not matter.
  for (const c of facts.proxyIdentityContainers.filter((c) => proxy.nativeSidecar || !c.init)) {
    const identity = c.uid && c.gid ? `UID and GID ${PROXY_UID}` : c.uid ? `UID ${PROXY_UID}` : `GID ${PROXY_GID}`;
    warnings.push(warning('proxy-uid-container', { container: shorten(c.container), identity }));
  }
  if (!proxy.nativeSidecar && facts.runsToCompletion) {
    // On a cluster too old for native sidecars (nativeSidecar: auto said no) the app must stop Envoy.
    const tooOld = config.nativeSidecar === 'auto' && !runtime.nativeSidecarSupported;
    const fix = tooOld
      ? `When done, POST to 127.0.0.1:${PORTS.admin}/quitquitquit.`
      : `Set ${annotationOf(SETTING.nativeSidecar)}: "true".`;
    warnings.push(warning('pod-will-not-complete', { fix }));
  }
  // Guaranteed QoS needs every container (init containers included) at requests = limits; the
  // injected ones must match too, or the pod silently becomes Burstable (and loses pinned CPUs).
  if (facts.guaranteedQoS && !(isGuaranteed(proxy.resources) && isGuaranteed(proxy.initResources))) {
    warnings.push(warning('qos-downgraded'));
  }
  const grace = facts.terminationGracePeriodSeconds;
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
