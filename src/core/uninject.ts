// Uninjection (SPEC.md §9, `envoy-injector uninject`): what removes exactly what an injection added,
// read from the pod's status annotation — its containers, volumes and annotations — as a JSON
// Patch and the pod it gives. Nothing else of the pod is touched: a container, volume or annotation
// the status does not list is the pod's own. When the status cannot be read, or does not match the
// pod, nothing is removed (never half). Pure, like the injection.
import type { Operation } from 'fast-json-patch';
import { INIT_CONTAINER_NAME, KUBECTL_DEFAULT_CONTAINER_ANNOTATION, SIDECAR_CONTAINER_NAME, STATUS_ANNOTATION } from '../constants.ts';
import { escapePointer } from './patch.ts';
import { readPod, type PodView } from './pod.ts';
import { parseStatus, type InjectionStatus } from './status.ts';
import type { Json, JsonObject } from './types.ts';

/** What uninjecting a pod does. */
export type Uninjection =
  /** The pod carries nothing of the injector's. */
  | { readonly state: 'not-injected' }
  /** Nothing is removed, for the reason given. */
  | { readonly state: 'refused'; readonly problem: string }
  | {
      readonly state: 'removed';
      readonly status: InjectionStatus;
      /** Removes what the status lists (and the collections that it leaves empty). */
      readonly patch: readonly Operation[];
      /** The pod without them. */
      readonly pod: JsonObject;
      /** What was left in place although injection may have added it, and why. */
      readonly kept: readonly string[];
    };

const isObject = (value: Json | undefined): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);
const nameOf = (item: Json): string | undefined => (isObject(item) && typeof item['name'] === 'string' ? item['name'] : undefined);

/** The positions in `items` of the entries named `names`, or the first name missing or repeated. */
function positions(items: readonly Json[], names: readonly string[]): { ok: true; at: number[] } | { ok: false; name: string } {
  const at: number[] = [];
  for (const name of names) {
    const found = items.flatMap((item, index) => (nameOf(item) === name ? [index] : []));
    if (found.length !== 1) return { ok: false, name };
    at.push(found[0] as number);
  }
  return { ok: true, at };
}

/** Volume names mounted by containers that stay. */
function mountedVolumes(containers: readonly Json[]): Set<string> {
  const names = new Set<string>();
  for (const container of containers) {
    const mounts = isObject(container) ? container['volumeMounts'] : undefined;
    for (const mount of Array.isArray(mounts) ? mounts : []) {
      const name = nameOf(mount);
      if (name !== undefined) names.add(name);
    }
  }
  return names;
}

interface ListRemoval {
  readonly path: string;
  readonly items: readonly Json[];
  readonly remove: readonly number[];
}

/** Returns what removes exactly what the status annotation of `object` lists. */
export function planUninjection(object: unknown): Uninjection {
  const read = readPod(object);
  if (!read.ok) return { state: 'refused', problem: `it is not a well-formed pod: ${read.problem}` };
  const pod: PodView = read.pod;
  const text = pod.annotations[STATUS_ANNOTATION];
  const proxyNamed = [...pod.initContainers, ...pod.containers].find((c) => c.name === SIDECAR_CONTAINER_NAME || c.name === INIT_CONTAINER_NAME);
  if (text === undefined) {
    if (proxyNamed === undefined) return { state: 'not-injected' };
    return {
      state: 'refused',
      problem: `it has a container named ${proxyNamed.name} but no ${STATUS_ANNOTATION} annotation, which would say what injection added: it was not injected by envoy-injector, or the annotation was removed`,
    };
  }
  const status = parseStatus(text);
  if (status === undefined) {
    return { state: 'refused', problem: `its ${STATUS_ANNOTATION} annotation is not one this version of envoy-injector reads (another version wrote it?), so what injection added is not known` };
  }
  const spec = pod.spec;
  const initContainers = pod.hasInitContainers ? (spec['initContainers'] as Json[]) : [];
  const containers = spec['containers'] as Json[];
  const volumes = pod.hasVolumes ? (spec['volumes'] as Json[]) : [];
  const lists: ListRemoval[] = [];
  for (const [path, items, names, what] of [
    ['/spec/initContainers', initContainers, status.initContainers, 'init container'],
    ['/spec/containers', containers, status.containers, 'container'],
    ['/spec/volumes', volumes, status.volumes, 'volume'],
  ] as const) {
    const found = positions(items, names);
    if (!found.ok) return { state: 'refused', problem: `its status annotation lists the ${what} ${found.name}, which the pod does not have once and only once` };
    lists.push({ path, items, remove: found.at });
  }
  const staying = (list: ListRemoval) => list.items.filter((_, i) => !list.remove.includes(i));
  const [initList, containerList] = lists as [ListRemoval, ListRemoval, ListRemoval];
  const stillMounted = mountedVolumes([...staying(initList), ...staying(containerList)]);
  const mountedByPod = status.volumes.find((v) => stillMounted.has(v));
  if (mountedByPod !== undefined) {
    return { state: 'refused', problem: `a container of the pod's own mounts the volume ${mountedByPod}, which injection added` };
  }
  const addedAnnotations = status.annotations ?? [];
  const missing = addedAnnotations.find((key) => pod.annotations[key] === undefined);
  if (missing !== undefined) return { state: 'refused', problem: `its status annotation lists the annotation ${missing}, which the pod does not have` };
  const kept: string[] = [];
  if (status.annotations === undefined && pod.annotations[KUBECTL_DEFAULT_CONTAINER_ANNOTATION] !== undefined) {
    kept.push(`${KUBECTL_DEFAULT_CONTAINER_ANNOTATION} (the status annotation, written by ${status.version}, does not say whether injection set it)`);
  }

  const patch: Operation[] = [];
  const metadata = pod.raw['metadata'] as JsonObject;
  const annotations = metadata['annotations'] as JsonObject;
  const removedKeys = [STATUS_ANNOTATION, ...addedAnnotations];
  const keptAnnotations = Object.fromEntries(Object.entries(annotations).filter(([key]) => !removedKeys.includes(key)));
  // A collection emptied is removed: injection created it, or it was empty, which Kubernetes
  // treats as absent (omitempty) all the same.
  let keptMetadata: JsonObject | undefined;
  if (Object.keys(keptAnnotations).length > 0) {
    for (const key of removedKeys) patch.push({ op: 'remove', path: `/metadata/annotations/${escapePointer(key)}` });
    keptMetadata = { ...metadata, annotations: keptAnnotations };
  } else if (Object.keys(metadata).length > 1) {
    patch.push({ op: 'remove', path: '/metadata/annotations' });
    keptMetadata = Object.fromEntries(Object.entries(metadata).filter(([key]) => key !== 'annotations'));
  } else {
    patch.push({ op: 'remove', path: '/metadata' });
  }
  const keptSpec: JsonObject = { ...spec };
  for (const list of lists) {
    if (list.remove.length === 0) continue;
    const key = list.path.slice('/spec/'.length);
    const rest = staying(list);
    if (rest.length === 0 && key !== 'containers') {
      patch.push({ op: 'remove', path: list.path });
      delete keptSpec[key];
      continue;
    }
    // From the last to the first, so that every index still points at its entry.
    for (const index of [...list.remove].sort((a, b) => b - a)) patch.push({ op: 'remove', path: `${list.path}/${index}` });
    keptSpec[key] = rest;
  }
  const result: JsonObject = { ...pod.raw, spec: keptSpec };
  if (keptMetadata === undefined) delete result['metadata'];
  else result['metadata'] = keptMetadata;
  return { state: 'removed', status, patch, pod: result, kept };
}
