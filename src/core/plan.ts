// What injecting a pod adds, planned once from its effective proxy config: the containers, the
// volumes and the annotations. The bootstrap is not among them: envoy-init renders it in the pod
// from its flags (see pod-bootstrap.ts).
import { KUBECTL_DEFAULT_CONTAINER_ANNOTATION, STATUS_ANNOTATION } from '../constants.ts';
import { buildInitContainer, buildVolumes } from './init-container.ts';
import type { InjectionPlan } from './patch.ts';
import type { PodView } from './pod.ts';
import { SETTINGS, type SettingsTable } from './settings.ts';
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
function workloadName(pod: PodView): string {
  for (const key of WORKLOAD_LABELS) {
    const value = pod.labels[key];
    if (value) return value;
  }
  const base = pod.generateName?.replace(/-+$/, '') || pod.name;
  return base || 'unknown';
}

/** Returns everything the injection adds to `pod` given its effective proxy config. */
export function planInjection(
  pod: PodView,
  proxy: EffectiveProxyConfig,
  runtime: InjectorRuntime,
  settings: SettingsTable = SETTINGS,
): PlannedInjection {
  const configHash = hashProxyConfig(proxy, runtime.version, settings);
  const init = buildInitContainer(proxy, { workloadName: workloadName(pod), configHash }, settings);
  const sidecar = buildSidecar(proxy);
  const volumes = buildVolumes(proxy.captureMode);
  // Native: envoy-init then envoy go first, so the pod's own init containers already have a working
  // proxy. Classic: envoy-init goes last so theirs keep a plain network, and envoy leads the containers.
  const initContainers = proxy.nativeSidecar ? [init, sidecar] : [init];
  const containers = proxy.nativeSidecar ? [] : [sidecar];
  const status: InjectionStatus = {
    version: runtime.version,
    initContainers: initContainers.map((c) => c.name),
    containers: containers.map((c) => c.name),
    volumes: volumes.map((v) => v.name),
    configHash,
  };
  const annotations: Record<string, string> = { [STATUS_ANNOTATION]: renderStatus(status) };
  // With envoy first among the containers, kubectl logs/exec would default to it; point them at
  // the app's first container instead, unless the pod already chose one.
  const firstApp = pod.containers[0]?.name;
  if (!proxy.nativeSidecar && firstApp !== undefined && pod.annotations[KUBECTL_DEFAULT_CONTAINER_ANNOTATION] === undefined) {
    annotations[KUBECTL_DEFAULT_CONTAINER_ANNOTATION] = firstApp;
  }
  return { plan: { annotations, initContainers, initContainersFirst: proxy.nativeSidecar, containers, volumes }, status };
}
