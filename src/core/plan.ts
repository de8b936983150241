// What injecting a pod adds, planned once from its effective proxy config: the containers, the
// volumes and the annotations. The bootstrap is not among them: envoy-init renders it in the pod
// from its flags (see pod-bootstrap.ts).
import { KUBECTL_DEFAULT_CONTAINER_ANNOTATION, STATUS_ANNOTATION } from '../constants.ts';
import { adsVolumes } from './ads-volumes.ts';
import { buildInitContainer, buildVolumes } from './init-container.ts';
import type { InjectionPlan } from './patch.ts';
import type { PodView } from './pod.ts';
import { SETTINGS, type SettingsTable } from './settings.ts';
import { proxyMountVolumes } from './proxy-mounts.ts';
import { buildSidecar } from './sidecar.ts';
import { hashProxyConfig, renderStatus, type InjectionStatus } from './status.ts';
import type { EffectiveProxyConfig, InjectorRuntime } from './types.ts';

/** Everything an injection of one pod adds. */
export interface PlannedInjection {
  readonly plan: InjectionPlan;
  readonly status: InjectionStatus;
}

/** Label keys that name the workload a pod belongs to, most specific first. */
const WORKLOAD_LABELS = ['app.kubernetes.io/name', 'app', 'k8s-app', 'name'];

/** Returns the workload name used for the proxy's node.cluster (known at admission: the generateName is not, once the pod runs). */
export function workloadName(pod: Pick<PodView, 'labels' | 'generateName' | 'name'>): string {
  for (const key of WORKLOAD_LABELS) {
    const value = pod.labels[key];
    if (value) return value;
  }
  const base = pod.generateName?.replace(/-+$/, '') || pod.name;
  return base || 'unknown';
}

/** Returns the volumes of `envoy` beyond the bootstrap's, and its mounts of them: ADS's, then `proxy-mounts`. */
export function proxyVolumes(proxy: EffectiveProxyConfig): ReturnType<typeof adsVolumes> {
  const ads = adsVolumes(proxy);
  const mounts = proxyMountVolumes(proxy.mounts);
  return { volumes: [...ads.volumes, ...mounts.volumes], volumeMounts: [...ads.volumeMounts, ...mounts.volumeMounts] };
}

/**
 * Everything of the pod an injection plan is made from, besides its effective proxy config. The
 * webhook's fast path (fast-patch.ts) keys its templates on these facts, with the two strings
 * substituted per pod: a plan must read the pod only through them.
 */
export interface PlanFacts {
  /** See workloadName. */
  readonly workloadName: string;
  /** The name of the pod's first app container (a pod always has one). */
  readonly firstContainer: string | undefined;
  /** The pod already names its default container for kubectl. */
  readonly defaultContainerChosen: boolean;
}

/** Returns the facts of `pod` that its injection plan is made from. */
export function planFacts(pod: PodView): PlanFacts {
  return {
    workloadName: workloadName(pod),
    firstContainer: pod.containers[0]?.name,
    defaultContainerChosen: pod.annotations[KUBECTL_DEFAULT_CONTAINER_ANNOTATION] !== undefined,
  };
}

/** Returns everything the injection adds to `pod` given its effective proxy config. */
export function planInjection(
  pod: PodView,
  proxy: EffectiveProxyConfig,
  runtime: InjectorRuntime,
  settings: SettingsTable = SETTINGS,
): PlannedInjection {
  return planFromFacts(planFacts(pod), proxy, runtime, settings);
}

/** Returns everything the injection adds to a pod of these facts given its effective proxy config. */
export function planFromFacts(
  facts: PlanFacts,
  proxy: EffectiveProxyConfig,
  runtime: InjectorRuntime,
  settings: SettingsTable = SETTINGS,
): PlannedInjection {
  const configHash = hashProxyConfig(proxy, runtime.version, settings);
  const init = buildInitContainer(proxy, { workloadName: facts.workloadName, configHash }, settings);
  // The proxy's own volumes — ADS material, then the user's mounts — follow the injector's.
  const extra = proxyVolumes(proxy);
  const built = buildSidecar(proxy);
  const sidecar = { ...built, volumeMounts: [...(built.volumeMounts ?? []), ...extra.volumeMounts] };
  const volumes = [...buildVolumes(proxy), ...extra.volumes];
  // Native: envoy-init then envoy go first, so the pod's own init containers already have a working
  // proxy. Classic: envoy-init goes last so theirs keep a plain network, and envoy leads the containers.
  const initContainers = proxy.nativeSidecar ? [init, sidecar] : [init];
  const containers = proxy.nativeSidecar ? [] : [sidecar];
  // With envoy first among the containers, kubectl logs/exec would default to it; point them at
  // the app's first container instead, unless the pod already chose one.
  const firstApp = facts.firstContainer;
  const added: Record<string, string> = {};
  if (!proxy.nativeSidecar && firstApp !== undefined && !facts.defaultContainerChosen) {
    added[KUBECTL_DEFAULT_CONTAINER_ANNOTATION] = firstApp;
  }
  const status: InjectionStatus = {
    version: runtime.version,
    initContainers: initContainers.map((c) => c.name),
    containers: containers.map((c) => c.name),
    volumes: volumes.map((v) => v.name),
    annotations: Object.keys(added),
    configHash,
  };
  const annotations: Record<string, string> = { [STATUS_ANNOTATION]: renderStatus(status), ...added };
  return { plan: { annotations, initContainers, initContainersFirst: proxy.nativeSidecar, containers, volumes }, status };
}
