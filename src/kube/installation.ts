// Fetches what `envoy-injector check` judges (SPEC.md §9): the webhook configuration, the replicas'
// Secret, the Service and its EndpointSlices, the namespaces labelled for injection and the pods the
// webhooks would have seen. Only API calls here; check/assess.ts judges the objects.
import { DOMAIN, INJECT_LABEL, INJECT_LABEL_ENABLED, OVERRIDE_KEY, OVERRIDE_VOLUME_NAME } from '../constants.ts';
import type { InjectorConfig, Json, JsonObject } from '../core/types.ts';
import { KubeApiError } from './api-error.ts';
import type { KubeResources } from './resources.ts';

/** A pod the webhooks would have been called for, with its namespace's labels as they see them. */
export interface FetchedPod {
  /** `namespace/name`. */
  readonly key: string;
  readonly pod: JsonObject;
  readonly namespaceLabels: Readonly<Record<string, string>>;
  /** Its namespace's annotations, whose setting annotations are its pods' defaults (SPEC.md §4b). */
  readonly namespaceAnnotations: Readonly<Record<string, string>>;
}

/** The objects of an installation, as the API server returned them. */
export interface InstallationObjects {
  readonly webhookConfiguration: JsonObject | undefined;
  readonly secretName: string;
  /** The Secret of the served certificate (undefined: not found, or unreadable). */
  readonly secret: JsonObject | undefined;
  /** Why the Secret could not be read (403), when it could not. */
  readonly secretUnreadable: string | undefined;
  readonly service: JsonObject | undefined;
  /** The Service's EndpointSlices (none when there is no Service). */
  readonly endpointSlices: readonly JsonObject[];
  /** Namespaces labelled envoy-injector.io/inject=enabled, excluded ones included. */
  readonly labelledNamespaces: readonly JsonObject[];
  /** Pods of the labelled namespaces that are not excluded, and pods labelled for injection elsewhere. */
  readonly pods: readonly FetchedPod[];
  /** The bootstrap override ConfigMaps those pods name (SPEC.md §4a), as read. */
  readonly overrideConfigMaps: readonly FetchedConfigMap[];
}

/** A ConfigMap pods name as their bootstrap override, and the pods naming it. */
export interface FetchedConfigMap {
  readonly namespace: string;
  readonly name: string;
  readonly pods: readonly string[];
  /** Undefined when it does not exist (or could not be read: then `unreadable` says why). */
  readonly configMap: JsonObject | undefined;
  readonly unreadable?: string;
}

const OVERRIDE_ANNOTATION = `${DOMAIN}/bootstrap-override`;

/**
 * The ConfigMap a pod loads as its bootstrap override: an injected pod's volume says it; a pod not
 * injected yet would get its annotation's, or its namespace's default.
 */
function overrideOf(pod: JsonObject, namespaceAnnotations: Readonly<Record<string, unknown>>): string | undefined {
  const spec = isObject(pod['spec']) ? pod['spec'] : {};
  for (const volume of Array.isArray(spec['volumes']) ? spec['volumes'] : []) {
    if (isObject(volume) && volume['name'] === OVERRIDE_VOLUME_NAME && isObject(volume['configMap'])) {
      const name = volume['configMap']['name'];
      if (typeof name === 'string') return name;
    }
  }
  const annotations = metadataOf(pod)['annotations'];
  const own = isObject(annotations) ? annotations[OVERRIDE_ANNOTATION] : undefined;
  const value = typeof own === 'string' ? own : namespaceAnnotations[OVERRIDE_ANNOTATION];
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

const isObject = (value: Json | undefined): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);
const metadataOf = (object: JsonObject): JsonObject => (isObject(object['metadata']) ? object['metadata'] : {});
const nameOf = (object: JsonObject): string => String(metadataOf(object)['name'] ?? '');
const namespaceOf = (object: JsonObject): string => String(metadataOf(object)['namespace'] ?? '');
const stringsOf = (object: JsonObject, field: 'labels' | 'annotations'): Record<string, string> => {
  const map = metadataOf(object)[field];
  return isObject(map) ? Object.fromEntries(Object.entries(map).filter((e): e is [string, string] => typeof e[1] === 'string')) : {};
};
const labelsOf = (object: JsonObject) => stringsOf(object, 'labels');
const annotationsOf = (object: JsonObject) => stringsOf(object, 'annotations');

/**
 * Fetches the installation `config` describes, with the served certificate in Secret `secretName`.
 * Throws only for API failures (a Secret it may not read is reported, not thrown).
 */
export async function fetchInstallation(resources: KubeResources, config: InjectorConfig, secretName: string): Promise<InstallationObjects> {
  const { namespace } = config;
  const webhookConfiguration = await resources.getWebhookConfiguration(config.tls.webhookConfigName);
  let secret: JsonObject | undefined;
  let secretUnreadable: string | undefined;
  try {
    secret = await resources.getSecret(namespace, secretName);
  } catch (error) {
    if (!(error instanceof KubeApiError) || error.status !== 403) throw error;
    secretUnreadable = error.message;
  }
  const service = await resources.getService(namespace, config.tls.serviceName);
  const endpointSlices = service === undefined ? [] : await resources.listEndpointSlices(namespace, config.tls.serviceName);

  // Pods of excluded namespaces are never injected: they are not even listed.
  const excluded = (ns: string) => ns === namespace || config.excludedNamespaces.includes(ns);
  const labelledNamespaces = await resources.listNamespaces(`${INJECT_LABEL}=${INJECT_LABEL_ENABLED}`);
  const labelled = labelledNamespaces.map(nameOf);
  const pods = new Map<string, FetchedPod>();
  for (const namespaceObject of [...labelledNamespaces].sort((a, b) => nameOf(a).localeCompare(nameOf(b)))) {
    const ns = nameOf(namespaceObject);
    if (excluded(ns)) continue;
    for (const pod of await resources.listPods(ns)) {
      const key = `${ns}/${nameOf(pod)}`;
      pods.set(key, { key, pod, namespaceLabels: { [INJECT_LABEL]: INJECT_LABEL_ENABLED }, namespaceAnnotations: annotationsOf(namespaceObject) });
    }
  }
  // Pods that opted in by label: only in namespaces without the label (the second webhook's scope).
  const optedIn = (await resources.listPods(undefined, `${INJECT_LABEL}=${INJECT_LABEL_ENABLED}`)).filter(
    (pod) => !excluded(namespaceOf(pod)) && !labelled.includes(namespaceOf(pod)),
  );
  // Their namespaces might carry `disabled`: look their labels up.
  const namespaces = new Map<string, JsonObject>();
  if (optedIn.length > 0) {
    for (const ns of await resources.listNamespaces(INJECT_LABEL)) namespaces.set(nameOf(ns), ns);
  }
  for (const pod of optedIn) {
    const key = `${namespaceOf(pod)}/${nameOf(pod)}`;
    const ns = namespaces.get(namespaceOf(pod));
    // A namespace without the label is not listed: its annotations are not known (taken as none).
    pods.set(key, { key, pod, namespaceLabels: ns === undefined ? {} : labelsOf(ns), namespaceAnnotations: ns === undefined ? {} : annotationsOf(ns) });
  }
  // The bootstrap override ConfigMaps the pods name, each read once.
  const nsAnnotations = new Map(labelledNamespaces.map((ns) => [nameOf(ns), isObject(metadataOf(ns)['annotations']) ? (metadataOf(ns)['annotations'] as JsonObject) : {}]));
  const named = new Map<string, { namespace: string; name: string; pods: string[] }>();
  for (const { key, pod } of pods.values()) {
    const ns = key.slice(0, key.indexOf('/'));
    const name = overrideOf(pod, nsAnnotations.get(ns) ?? {});
    if (name === undefined) continue;
    const entry = named.get(`${ns}/${name}`) ?? { namespace: ns, name, pods: [] };
    entry.pods.push(key);
    named.set(`${ns}/${name}`, entry);
  }
  const overrideConfigMaps: FetchedConfigMap[] = [];
  for (const entry of [...named.values()].sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))) {
    try {
      overrideConfigMaps.push({ ...entry, configMap: await resources.getConfigMap?.(entry.namespace, entry.name) });
    } catch (error) {
      if (!(error instanceof KubeApiError) || error.status !== 403) throw error;
      overrideConfigMaps.push({ ...entry, configMap: undefined, unreadable: error.message });
    }
  }
  return {
    overrideConfigMaps,
    webhookConfiguration,
    secretName,
    secret,
    secretUnreadable,
    service,
    endpointSlices,
    labelledNamespaces,
    pods: [...pods.values()].sort((a, b) => a.key.localeCompare(b.key)),
  };
}
