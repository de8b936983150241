// The few Kubernetes API operations the injector and `check` use, on raw JSON objects (see raw.ts),
// through client-node's CoreV1Api, AdmissionregistrationV1Api and DiscoveryV1Api.
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  type KubeConfig,
  type V1MutatingWebhookConfiguration,
  type V1Secret,
} from '@kubernetes/client-node';
import type { JsonObject } from '../core/types.ts';
import { isNotFound } from './api-error.ts';
import { callRaw, KUBE_REQUEST_TIMEOUT_MS } from './raw.ts';

/** Page size of list calls; pages are followed with `continue`. */
const LIST_PAGE_SIZE = 500;
/** Page size of the node list: a Node is several KB, and only two of its fields are kept. */
const NODE_PAGE_SIZE = 200;

/** A node's name and the version its kubelet reports (status.nodeInfo.kubeletVersion, "" when unset). */
export interface NodeKubelet {
  readonly name: string;
  readonly kubeletVersion: string;
}

/** Raw-JSON access to the objects envoy-injector reads and writes. */
export interface KubeResources {
  /** The Secret, or undefined when it does not exist. */
  getSecret(namespace: string, name: string): Promise<JsonObject | undefined>;
  /** Creates the Secret; throws a KubeApiError (409 AlreadyExists) when the name is taken. */
  createSecret(namespace: string, secret: JsonObject): Promise<JsonObject>;
  /** Replaces the Secret; its metadata.resourceVersion makes it conditional (409 Conflict). */
  replaceSecret(namespace: string, name: string, secret: JsonObject): Promise<JsonObject>;
  /** The MutatingWebhookConfiguration, or undefined when it does not exist. */
  getWebhookConfiguration(name: string): Promise<JsonObject | undefined>;
  /** Replaces it; its metadata.resourceVersion makes it conditional (409 Conflict). */
  replaceWebhookConfiguration(name: string, configuration: JsonObject): Promise<JsonObject>;
  /** The Service, or undefined when it does not exist. */
  getService(namespace: string, name: string): Promise<JsonObject | undefined>;
  /** EndpointSlices of a Service (label kubernetes.io/service-name). */
  listEndpointSlices(namespace: string, service: string): Promise<JsonObject[]>;
  /** Namespaces matching a label selector. */
  listNamespaces(labelSelector: string): Promise<JsonObject[]>;
  /** Pods of one namespace, or of all namespaces when `namespace` is undefined, matching a label selector. */
  listPods(namespace: string | undefined, labelSelector?: string): Promise<JsonObject[]>;
  /** Every node's kubelet version (only these two fields are kept of each page). */
  listNodeKubelets(): Promise<NodeKubelet[]>;
  /** The ConfigMap, or undefined when it does not exist (only `check` reads ConfigMaps, with the admin's kubeconfig). */
  getConfigMap?(namespace: string, name: string): Promise<JsonObject | undefined>;
}

async function orUndefined(read: Promise<JsonObject>): Promise<JsonObject | undefined> {
  try {
    return await read;
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

/** Follows `continue` tokens until the list is complete, keeping what `keep` makes of each item. */
async function listAll<T = JsonObject>(
  what: string,
  page: (cont: string | undefined) => Promise<JsonObject>,
  keep: (item: JsonObject) => T = (item) => item as T,
): Promise<T[]> {
  const items: T[] = [];
  let cont: string | undefined;
  do {
    const list = await page(cont);
    if (!Array.isArray(list['items'])) throw new Error(`${what}: the API server answered without items`);
    for (const item of list['items']) if (typeof item === 'object' && item !== null && !Array.isArray(item)) items.push(keep(item));
    const metadata = list['metadata'] as { continue?: unknown } | undefined;
    cont = typeof metadata?.continue === 'string' && metadata.continue !== '' ? metadata.continue : undefined;
  } while (cont !== undefined);
  return items;
}

/** A node's name and kubelet version, read from the Node object. */
function nodeKubelet(node: JsonObject): NodeKubelet {
  const field = (object: unknown, key: string): unknown =>
    typeof object === 'object' && object !== null && !Array.isArray(object) ? (object as JsonObject)[key] : undefined;
  const name = field(node['metadata'], 'name');
  const version = field(field(node['status'], 'nodeInfo'), 'kubeletVersion');
  return { name: typeof name === 'string' ? name : '', kubeletVersion: typeof version === 'string' ? version : '' };
}

/** Returns KubeResources talking to the cluster of `kc`. */
export function createKubeResources(kc: KubeConfig, timeoutMs: number = KUBE_REQUEST_TIMEOUT_MS): KubeResources {
  const core = kc.makeApiClient(CoreV1Api);
  const admission = kc.makeApiClient(AdmissionregistrationV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  // The typed body is only used to route the call; the raw JSON is what is sent (raw.ts).
  const asSecret = (object: JsonObject) => object as unknown as V1Secret;
  const asWebhook = (object: JsonObject) => object as unknown as V1MutatingWebhookConfiguration;

  return {
    getSecret: (namespace, name) =>
      orUndefined(callRaw(`reading Secret ${namespace}/${name}`, (o) => core.readNamespacedSecret({ namespace, name }, o), undefined, timeoutMs)),
    createSecret: (namespace, secret) =>
      callRaw(
        `creating Secret ${namespace}/${String((secret['metadata'] as JsonObject | undefined)?.['name'] ?? '')}`,
        (o) => core.createNamespacedSecret({ namespace, body: asSecret(secret) }, o),
        secret,
        timeoutMs,
      ),
    replaceSecret: (namespace, name, secret) =>
      callRaw(
        `updating Secret ${namespace}/${name}`,
        (o) => core.replaceNamespacedSecret({ namespace, name, body: asSecret(secret) }, o),
        secret,
        timeoutMs,
      ),
    getWebhookConfiguration: (name) =>
      orUndefined(
        callRaw(`reading MutatingWebhookConfiguration ${name}`, (o) => admission.readMutatingWebhookConfiguration({ name }, o), undefined, timeoutMs),
      ),
    replaceWebhookConfiguration: (name, configuration) =>
      callRaw(
        `updating MutatingWebhookConfiguration ${name}`,
        (o) => admission.replaceMutatingWebhookConfiguration({ name, body: asWebhook(configuration) }, o),
        configuration,
        timeoutMs,
      ),
    getConfigMap: (namespace, name) =>
      orUndefined(callRaw(`reading ConfigMap ${namespace}/${name}`, (o) => core.readNamespacedConfigMap({ namespace, name }, o), undefined, timeoutMs)),
    getService: (namespace, name) =>
      orUndefined(callRaw(`reading Service ${namespace}/${name}`, (o) => core.readNamespacedService({ namespace, name }, o), undefined, timeoutMs)),
    listEndpointSlices: (namespace, service) =>
      listAll(`listing EndpointSlices of Service ${namespace}/${service}`, (cont) =>
        callRaw(
          `listing EndpointSlices of Service ${namespace}/${service}`,
          (o) =>
            discovery.listNamespacedEndpointSlice(
              { namespace, labelSelector: `kubernetes.io/service-name=${service}`, limit: LIST_PAGE_SIZE, ...(cont === undefined ? {} : { _continue: cont }) },
              o,
            ),
          undefined,
          timeoutMs,
        ),
      ),
    listNamespaces: (labelSelector) =>
      listAll('listing namespaces', (cont) =>
        callRaw(
          'listing namespaces',
          (o) => core.listNamespace({ labelSelector, limit: LIST_PAGE_SIZE, ...(cont === undefined ? {} : { _continue: cont }) }, o),
          undefined,
          timeoutMs,
        ),
      ),
    listNodeKubelets: () =>
      listAll(
        'listing nodes',
        (cont) =>
          callRaw('listing nodes', (o) => core.listNode({ limit: NODE_PAGE_SIZE, ...(cont === undefined ? {} : { _continue: cont }) }, o), undefined, timeoutMs),
        nodeKubelet,
      ),
    listPods: (namespace, labelSelector) => {
      const what = namespace === undefined ? 'listing pods in all namespaces' : `listing pods in namespace ${namespace}`;
      const selector = labelSelector === undefined ? {} : { labelSelector };
      return listAll(what, (cont) =>
        callRaw(
          what,
          (o) => {
            const page = { limit: LIST_PAGE_SIZE, ...selector, ...(cont === undefined ? {} : { _continue: cont }) };
            return namespace === undefined ? core.listPodForAllNamespaces(page, o) : core.listNamespacedPod({ namespace, ...page }, o);
          },
          undefined,
          timeoutMs,
        ),
      );
    },
  };
}
