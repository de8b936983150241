// What an injection adds to a pod, applied two ways from the same plan: as the injected pod and as
// the minimal JSON Patch the webhook returns. Only additions; the pod's own entries are never rewritten.
import type { Operation } from 'fast-json-patch';
import type { PodView } from './pod.ts';
import type { Container, Json, JsonObject, Volume } from './types.ts';

/** Everything an injection adds. */
export interface InjectionPlan {
  /** Annotations to set (keys the pod does not have yet). */
  readonly annotations: Readonly<Record<string, string>>;
  /** Init containers to add, at the front (native sidecar) or the back (classic) of the list. */
  readonly initContainers: readonly Container[];
  readonly initContainersFirst: boolean;
  /** Containers to add at the front of `spec.containers`. */
  readonly containers: readonly Container[];
  readonly volumes: readonly Volume[];
}

const asJson = (value: Container | Volume): Json => value as unknown as Json;

/** Escapes one JSON Pointer reference token (RFC 6901). */
export function escapePointer(token: string): string {
  return token.replaceAll('~', '~0').replaceAll('/', '~1');
}

/**
 * Returns the injected pod. Unchanged parts are shared with the input rather than copied, so this
 * stays cheap for large pods; neither object may be mutated afterwards.
 */
export function applyPlan(pod: PodView, plan: InjectionPlan): JsonObject {
  const raw = pod.raw;
  const metadata = (pod.hasMetadata ? raw['metadata'] : {}) as JsonObject;
  const annotations = (pod.hasAnnotations ? metadata['annotations'] : {}) as JsonObject;
  const spec: JsonObject = { ...pod.spec };
  if (plan.initContainers.length > 0) {
    const existing = pod.hasInitContainers ? (pod.spec['initContainers'] as Json[]) : [];
    const added = plan.initContainers.map(asJson);
    spec['initContainers'] = plan.initContainersFirst ? [...added, ...existing] : [...existing, ...added];
  }
  if (plan.containers.length > 0) {
    spec['containers'] = [...plan.containers.map(asJson), ...(pod.spec['containers'] as Json[])];
  }
  if (plan.volumes.length > 0) {
    const existing = pod.hasVolumes ? (pod.spec['volumes'] as Json[]) : [];
    spec['volumes'] = [...existing, ...plan.volumes.map(asJson)];
  }
  if (Object.keys(plan.annotations).length === 0) return { ...raw, spec };
  return { ...raw, metadata: { ...metadata, annotations: { ...annotations, ...plan.annotations } }, spec };
}

/**
 * What of a pod decides the shape of its patch: which parents exist. The webhook's fast path
 * (fast-patch.ts) keys its templates on exactly these, so createPatch reads nothing else.
 */
export type PatchShape = Pick<PodView, 'hasMetadata' | 'hasAnnotations' | 'hasInitContainers' | 'hasVolumes'>;

/** Returns the JSON Patch that turns the pod into `applyPlan(pod, plan)`. */
export function createPatch(pod: PatchShape, plan: InjectionPlan): Operation[] {
  const ops: Operation[] = [];
  const annotationEntries = Object.entries(plan.annotations);
  if (annotationEntries.length > 0) {
    // Create missing parents first: `add` needs the parent to exist.
    if (!pod.hasMetadata) {
      ops.push({ op: 'add', path: '/metadata', value: { annotations: { ...plan.annotations } } });
    } else if (!pod.hasAnnotations) {
      ops.push({ op: 'add', path: '/metadata/annotations', value: { ...plan.annotations } });
    } else {
      for (const [key, value] of annotationEntries) {
        ops.push({ op: 'add', path: `/metadata/annotations/${escapePointer(key)}`, value });
      }
    }
  }
  if (plan.initContainers.length > 0) {
    if (!pod.hasInitContainers) {
      ops.push({ op: 'add', path: '/spec/initContainers', value: plan.initContainers.map(asJson) });
    } else if (plan.initContainersFirst) {
      // Insert at explicit indexes so the added containers keep their order at the front.
      plan.initContainers.forEach((container, index) =>
        ops.push({ op: 'add', path: `/spec/initContainers/${index}`, value: asJson(container) }),
      );
    } else {
      for (const container of plan.initContainers) {
        ops.push({ op: 'add', path: '/spec/initContainers/-', value: asJson(container) });
      }
    }
  }
  plan.containers.forEach((container, index) =>
    ops.push({ op: 'add', path: `/spec/containers/${index}`, value: asJson(container) }),
  );
  if (plan.volumes.length > 0) {
    if (!pod.hasVolumes) {
      ops.push({ op: 'add', path: '/spec/volumes', value: plan.volumes.map(asJson) });
    } else {
      for (const volume of plan.volumes) ops.push({ op: 'add', path: '/spec/volumes/-', value: asJson(volume) });
    }
  }
  return ops;
}
