// injectPod: the one entry point the webhook, the CLI and the tests share. Pure: no I/O, no clock.
import type { Operation } from 'fast-json-patch';
import { KUBECTL_DEFAULT_CONTAINER_ANNOTATION, SIDECAR_CONTAINER_NAME, STATUS_ANNOTATION } from '../constants.ts';
import { buildBootstrap } from './bootstrap.ts';
import { decide, type Decision, type Evaluation } from './decide.ts';
import { describeExecSizeProblem, execSizeProblem } from './exec-size.ts';
import { buildInitContainer, buildVolumes } from './init-container.ts';
import { applyPlan, createPatch, type InjectionPlan } from './patch.ts';
import type { PodView } from './pod.ts';
import { buildSidecar, MAX_EXEC_STRING_BYTES, oversizedBootstrap } from './sidecar.ts';
import { reason, type Warning } from './reasons.ts';
import { hashProxyConfig, renderStatus, type InjectionStatus } from './status.ts';
import type { AdmissionContext, EffectiveProxyConfig, InjectorConfig, InjectorRuntime, JsonObject } from './types.ts';

/** The outcome of one injection: the decision and, when injected, the pod and its patch. */
export interface InjectionResult {
  readonly decision: Decision;
  readonly warnings: readonly Warning[];
  /** JSON Patch for the request object; empty unless the pod is injected. */
  readonly patch: readonly Operation[];
  /** The injected pod (only when injected). */
  readonly pod?: JsonObject;
  /** The bootstrap the proxy starts with (only when injected). */
  readonly bootstrap?: JsonObject;
  readonly status?: InjectionStatus;
}

/** Label keys that name the workload a pod belongs to, most specific first. */
const WORKLOAD_LABELS = ['app.kubernetes.io/name', 'app', 'k8s-app', 'name'];

/** Returns the workload name used for the proxy's node.cluster. */
export function workloadName(pod: PodView): string {
  for (const key of WORKLOAD_LABELS) {
    const value = pod.labels[key];
    if (value) return value;
  }
  const base = pod.generateName?.replace(/-+$/, '') || pod.name;
  return base || 'unknown';
}

/** Returns everything the injection adds to `pod` given its effective proxy config. */
export function planInjection(pod: PodView, proxy: EffectiveProxyConfig, runtime: InjectorRuntime): {
  plan: InjectionPlan;
  bootstrap: JsonObject;
  status: InjectionStatus;
} {
  const configHash = hashProxyConfig(proxy, runtime.version);
  const bootstrap = buildBootstrap({
    proxy,
    workloadName: workloadName(pod),
    labels: pod.labels,
    injectorVersion: runtime.version,
    configHash,
  });
  const init = buildInitContainer(proxy);
  const sidecar = buildSidecar(proxy, bootstrap);
  const volumes = buildVolumes();
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
  return {
    plan: { annotations, initContainers, initContainersFirst: proxy.nativeSidecar, containers, volumes },
    bootstrap,
    status,
  };
}

/** Decides about `object` and, when it is to be injected, returns the injected pod and its patch. */
export function injectPod(
  object: unknown,
  ctx: AdmissionContext,
  config: InjectorConfig,
  runtime: InjectorRuntime,
): InjectionResult {
  const evaluation: Evaluation = decide(object, ctx, config, runtime);
  const { decision, warnings, pod } = evaluation;
  if (decision.action !== 'inject' || pod === undefined) return { decision, warnings, patch: [] };
  // The labels are copied whole into the bootstrap (node metadata), JSON-escaped: when they alone
  // are over the limit, so is the bootstrap, known without building it (20,000 labels cost four
  // times their parsing to build, render and then refuse).
  let labelBytes = 0;
  for (const key of Object.keys(pod.labels)) labelBytes += key.length + (pod.labels[key] ?? '').length;
  if (labelBytes > MAX_EXEC_STRING_BYTES) {
    const detail = `(its labels alone are ${labelBytes} characters; remove labels from the pod, which its node metadata carries.)`;
    return { decision: { action: 'deny', reasons: [reason('bootstrap-too-large', detail)] }, warnings, patch: [] };
  }
  const { plan, bootstrap, status } = planInjection(pod, decision.proxy, runtime);
  // Only the built container tells how large the bootstrap really is (thousands of labels).
  const sidecar = [...plan.initContainers, ...plan.containers].find((c) => c.name === SIDECAR_CONTAINER_NAME);
  const oversized = sidecar === undefined ? undefined : oversizedBootstrap(sidecar);
  if (oversized !== undefined) {
    const detail = `(${oversized} bytes; remove labels from the pod, which its node metadata carries.)`;
    return { decision: { action: 'deny', reasons: [reason('bootstrap-too-large', detail)] }, warnings, patch: [] };
  }
  // Any other string exec would refuse (E2BIG): the pod would hang in Init, so deny it by name.
  for (const container of [...plan.initContainers, ...plan.containers]) {
    const problem = execSizeProblem(container);
    if (problem !== undefined) {
      const detail = describeExecSizeProblem(problem, decision.overrides);
      return { decision: { action: 'deny', reasons: [reason('exec-too-large', detail)] }, warnings, patch: [] };
    }
  }
  // (Built eagerly: a lazy getter here made every injection's garbage collection three times as
  // costly, 50 µs an admission, more than copying 20,000 annotations costs a hostile one.)
  return { decision, warnings, patch: createPatch(pod, plan), pod: applyPlan(pod, plan), bootstrap, status };
}
