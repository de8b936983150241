// A checked, read-only view of a pod given as plain JSON (a Pod or a workload's pod template).
// The request object is never rebuilt from this view: it only tells the core what the pod holds.
import type { Json, JsonObject, ProxyResources } from './types.ts';
import { shorten } from './reasons.ts';
import { isGuaranteed } from './values.ts';

export interface ContainerView {
  readonly name: string;
  /** Where it sits: `containers` or `initContainers`. */
  readonly list: 'containers' | 'initContainers';
  readonly raw: JsonObject;
  /** Its TCP container ports (the protocol the proxy listens on; UDP and SCTP ports cannot clash). */
  readonly tcpPorts: readonly number[];
  /** `restartPolicy: Always` on an init container: a native sidecar of the pod's own. */
  readonly nativeSidecar: boolean;
  /** UID it runs as: its own securityContext, else the pod's. */
  readonly runAsUser: number | undefined;
  /** Primary GID it runs as: its own securityContext, else the pod's. */
  readonly runAsGroup: number | undefined;
  /** Its CPU and memory limits are set and its requests (where given) equal them: Guaranteed QoS. */
  readonly guaranteed: boolean;
}

export interface PodView {
  readonly raw: JsonObject;
  readonly name: string | undefined;
  readonly generateName: string | undefined;
  readonly namespace: string | undefined;
  readonly annotations: Readonly<Record<string, string>>;
  readonly labels: Readonly<Record<string, string>>;
  readonly hasMetadata: boolean;
  /** Whether `metadata.annotations` is an object (absent and `null` both mean no). */
  readonly hasAnnotations: boolean;
  readonly spec: JsonObject;
  readonly containers: readonly ContainerView[];
  readonly initContainers: readonly ContainerView[];
  readonly hasInitContainers: boolean;
  readonly volumeNames: readonly string[];
  readonly hasVolumes: boolean;
  readonly hostNetwork: boolean;
  /** The pod can only run on Windows nodes (spec.os, or a node selector or required affinity on kubernetes.io/os). */
  readonly windows: boolean;
  readonly serviceAccountName: string | undefined;
  readonly restartPolicy: string | undefined;
  readonly terminationGracePeriodSeconds: number | undefined;
  readonly ownerKinds: readonly string[];
}

export type ReadPodResult = { readonly ok: true; readonly pod: PodView } | { readonly ok: false; readonly problem: string };

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

class PodShapeError extends Error {}

function optionalObject(parent: JsonObject, key: string, path: string): JsonObject | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) throw new PodShapeError(`${path} must be an object`);
  return value;
}

function optionalArray(parent: JsonObject, key: string, path: string): Json[] | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw new PodShapeError(`${path} must be a list`);
  return value;
}

function optionalString(parent: JsonObject, key: string, path: string): string | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new PodShapeError(`${path} must be a string`);
  return value;
}

function optionalInteger(parent: JsonObject | undefined, key: string, path: string): number | undefined {
  const value = parent?.[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new PodShapeError(`${path} must be a whole number`);
  return value;
}

function stringMap(parent: JsonObject | undefined, key: string, path: string): Readonly<Record<string, string>> {
  if (parent === undefined) return {};
  const value = optionalObject(parent, key, path);
  if (value === undefined) return {};
  // Checked, not copied: the request object is never modified, and copying 20,000 annotations cost
  // more than parsing them.
  for (const k of Object.keys(value)) {
    // The key is quoted shortened: mutating admission sees keys before the API server refuses them.
    if (typeof value[k] !== 'string') throw new PodShapeError(`${path}[${JSON.stringify(shorten(k, 63))}] must be a string`);
  }
  return value as Readonly<Record<string, string>>;
}

function readContainers(
  spec: JsonObject,
  list: 'containers' | 'initContainers',
  pod: { runAsUser: number | undefined; runAsGroup: number | undefined },
): ContainerView[] {
  const items = optionalArray(spec, list, `spec.${list}`) ?? [];
  return items.map((item, index) => {
    const path = `spec.${list}[${index}]`;
    if (!isObject(item)) throw new PodShapeError(`${path} must be an object`);
    const name = optionalString(item, 'name', `${path}.name`);
    if (name === undefined || name === '') throw new PodShapeError(`${path}.name is missing`);
    // A loop whose paths are spelt only for an error: this runs for every port of every admission.
    const ports = optionalArray(item, 'ports', `${path}.ports`) ?? [];
    const tcpPorts: number[] = [];
    for (let i = 0; i < ports.length; i++) {
      const port = ports[i];
      if (!isObject(port)) throw new PodShapeError(`${path}.ports[${i}] must be an object`);
      const { containerPort, protocol } = port;
      if (containerPort === undefined || containerPort === null) throw new PodShapeError(`${path}.ports[${i}].containerPort is missing`);
      if (typeof containerPort !== 'number' || !Number.isInteger(containerPort)) {
        throw new PodShapeError(`${path}.ports[${i}].containerPort must be a whole number`);
      }
      if (protocol !== undefined && protocol !== null && typeof protocol !== 'string') throw new PodShapeError(`${path}.ports[${i}].protocol must be a string`);
      if ((protocol ?? 'TCP') === 'TCP') tcpPorts.push(containerPort);
    }
    const securityContext = optionalObject(item, 'securityContext', `${path}.securityContext`);
    const runAsUser = optionalInteger(securityContext, 'runAsUser', `${path}.securityContext.runAsUser`) ?? pod.runAsUser;
    const runAsGroup = optionalInteger(securityContext, 'runAsGroup', `${path}.securityContext.runAsGroup`) ?? pod.runAsGroup;
    return {
      name,
      list,
      raw: item,
      tcpPorts,
      nativeSidecar: list === 'initContainers' && item['restartPolicy'] === 'Always',
      runAsUser,
      runAsGroup,
      guaranteed: isGuaranteed(readResources(item['resources'])),
    };
  });
}

/** Reads a container's resources leniently (the API server validated them), as far as QoS needs. */
function readResources(resources: Json | undefined): ProxyResources {
  // Built by assignment, not by spreading literals: this runs for every container of every admission.
  const list = (value: Json | undefined) => {
    const out: { cpu?: string; memory?: string } = {};
    if (isObject(value)) {
      const { cpu, memory } = value;
      if (typeof cpu === 'string') out.cpu = cpu;
      if (typeof memory === 'string') out.memory = memory;
    }
    return out;
  };
  return isObject(resources) ? { requests: list(resources['requests']), limits: list(resources['limits']) } : { requests: {}, limits: {} };
}

const OS_LABEL = 'kubernetes.io/os';

/**
 * Whether the pod can only be scheduled on Windows nodes. Read leniently: a field of an unexpected
 * shape is ignored here (the API server validates scheduling fields itself).
 */
function runsOnWindows(spec: JsonObject): boolean {
  const os = spec['os'];
  if (isObject(os) && os['name'] === 'windows') return true;
  const nodeSelector = spec['nodeSelector'];
  if (isObject(nodeSelector) && nodeSelector[OS_LABEL] === 'windows') return true;
  // Required node affinity: its terms are ORed, so every one of them must ask for Windows only.
  const affinity = spec['affinity'];
  const nodeAffinity = isObject(affinity) ? affinity['nodeAffinity'] : undefined;
  const required = isObject(nodeAffinity) ? nodeAffinity['requiredDuringSchedulingIgnoredDuringExecution'] : undefined;
  const terms = isObject(required) ? required['nodeSelectorTerms'] : undefined;
  if (!Array.isArray(terms) || terms.length === 0) return false;
  return terms.every((term) => {
    const expressions = isObject(term) ? term['matchExpressions'] : undefined;
    return (
      Array.isArray(expressions) &&
      expressions.some(
        (e) =>
          isObject(e) &&
          e['key'] === OS_LABEL &&
          e['operator'] === 'In' &&
          Array.isArray(e['values']) &&
          e['values'].length > 0 &&
          e['values'].every((v) => v === 'windows'),
      )
    );
  });
}

/** The kinds of the pod's owners, read leniently (the API server validates ownerReferences). */
function ownerKindsOf(ownerReferences: readonly Json[]): string[] {
  const kinds: string[] = [];
  for (const ref of ownerReferences) if (isObject(ref) && typeof ref['kind'] === 'string') kinds.push(ref['kind']);
  return kinds;
}

/** Checks that `object` has the shape of a pod and returns a view of it, or the first problem found. */
export function readPod(object: unknown): ReadPodResult {
  try {
    if (!isObject(object)) throw new PodShapeError('the pod must be a JSON object');
    const metadata = optionalObject(object, 'metadata', 'metadata');
    const spec = optionalObject(object, 'spec', 'spec');
    if (spec === undefined) throw new PodShapeError('spec is missing');
    const podSecurityContext = optionalObject(spec, 'securityContext', 'spec.securityContext');
    const podIdentity = {
      runAsUser: optionalInteger(podSecurityContext, 'runAsUser', 'spec.securityContext.runAsUser'),
      runAsGroup: optionalInteger(podSecurityContext, 'runAsGroup', 'spec.securityContext.runAsGroup'),
    };
    const containers = readContainers(spec, 'containers', podIdentity);
    if (containers.length === 0) throw new PodShapeError('spec.containers is empty');
    const initContainers = readContainers(spec, 'initContainers', podIdentity);
    const volumes = optionalArray(spec, 'volumes', 'spec.volumes');
    const volumeNames = (volumes ?? []).map((volume, index) => {
      if (!isObject(volume)) throw new PodShapeError(`spec.volumes[${index}] must be an object`);
      return optionalString(volume, 'name', `spec.volumes[${index}].name`) ?? '';
    });
    const ownerReferences = metadata === undefined ? [] : (optionalArray(metadata, 'ownerReferences', 'metadata.ownerReferences') ?? []);
    const hostNetwork = spec['hostNetwork'];
    if (hostNetwork !== undefined && hostNetwork !== null && typeof hostNetwork !== 'boolean') {
      throw new PodShapeError('spec.hostNetwork must be true or false');
    }
    return {
      ok: true,
      pod: {
        raw: object,
        name: metadata && optionalString(metadata, 'name', 'metadata.name'),
        generateName: metadata && optionalString(metadata, 'generateName', 'metadata.generateName'),
        namespace: metadata && optionalString(metadata, 'namespace', 'metadata.namespace'),
        annotations: stringMap(metadata, 'annotations', 'metadata.annotations'),
        labels: stringMap(metadata, 'labels', 'metadata.labels'),
        hasMetadata: metadata !== undefined,
        hasAnnotations: isObject(metadata?.['annotations']),
        spec,
        containers,
        initContainers,
        hasInitContainers: Array.isArray(spec['initContainers']),
        volumeNames,
        hasVolumes: Array.isArray(volumes),
        hostNetwork: hostNetwork === true,
        windows: runsOnWindows(spec),
        serviceAccountName: optionalString(spec, 'serviceAccountName', 'spec.serviceAccountName'),
        restartPolicy: optionalString(spec, 'restartPolicy', 'spec.restartPolicy'),
        terminationGracePeriodSeconds: optionalInteger(
          spec,
          'terminationGracePeriodSeconds',
          'spec.terminationGracePeriodSeconds',
        ),
        ownerKinds: ownerKindsOf(ownerReferences),
      },
    };
  } catch (error) {
    if (error instanceof PodShapeError) return { ok: false, problem: error.message };
    throw error;
  }
}
