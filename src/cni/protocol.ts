// The CNI protocol as the `envoy-injector-cni` plugin speaks it (CNI spec 0.4.0 and 1.0.0, chained):
// the network configuration on standard input, the CNI_* environment, the result and error JSON on
// standard output. Pure: text and variables in, a parsed request or an error result out.

/** The plugin's `type` in a conflist: the name of its executable in the CNI bin dir. */
export const PLUGIN_TYPE = 'envoy-injector-cni';

/** CNI versions the plugin accepts; chaining (prevResult) exists from 0.3.0 on, CHECK from 0.4.0. */
export const SUPPORTED_VERSIONS: readonly string[] = ['0.3.0', '0.3.1', '0.4.0', '1.0.0'];

/** The runtime capability through which containerd and CRI-O hand the pod's annotations to a plugin. */
export const POD_ANNOTATIONS_CAPABILITY = 'io.kubernetes.cri.pod-annotations';

/** Well-known CNI error codes (spec §"Error"), and this plugin's own (100 and up). */
export const CNI_ERRORS = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  invalidEnvironment: 4,
  decoding: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  /** The pod is injected in CNI mode and its capture could not be installed or checked. */
  captureFailed: 100,
} as const;

/** A CNI error: its code and one line (with optional details). */
export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details?: string,
  ) {
    super(message);
    this.name = 'CniError';
  }
}

/** The plugin's own part of its network configuration (what the node agent writes into the conflist). */
export interface PluginConfig {
  readonly cniVersion: string;
  readonly name: string;
  /** The kubeconfig the node agent writes: the API server and the agent's ServiceAccount token. */
  readonly kubeconfig: string | null;
  /** Namespaces whose pods are never looked up (the injector's own, kube-system, …). */
  readonly excludedNamespaces: readonly string[];
  /** The previous plugin's result, passed through unchanged. */
  readonly prevResult: Record<string, unknown> | null;
  /** Pod annotations from the runtime, when it passes them (see POD_ANNOTATIONS_CAPABILITY). */
  readonly podAnnotations: Readonly<Record<string, string>> | null;
}

/** The CNI_* environment of one invocation. */
export interface CniEnvironment {
  readonly command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION';
  readonly containerId: string;
  readonly netns: string;
  readonly ifname: string;
  /** K8S_POD_NAMESPACE and K8S_POD_NAME from CNI_ARGS, when the runtime is Kubernetes'. */
  readonly pod: { readonly namespace: string; readonly name: string } | null;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses CNI_ARGS (`K=V;K=V`) into its pairs. */
export function parseCniArgs(text: string): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) pairs[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return pairs;
}

/** Reads the CNI_* environment; throws CniError (code 4) naming what is missing. */
export function readEnvironment(env: Readonly<Record<string, string | undefined>>): CniEnvironment {
  const command = env['CNI_COMMAND'];
  if (command !== 'ADD' && command !== 'DEL' && command !== 'CHECK' && command !== 'VERSION') {
    throw new CniError(CNI_ERRORS.invalidEnvironment, `CNI_COMMAND must be ADD, DEL, CHECK or VERSION, got ${JSON.stringify(command ?? '')}`);
  }
  const args = parseCniArgs(env['CNI_ARGS'] ?? '');
  const namespace = args['K8S_POD_NAMESPACE'];
  const name = args['K8S_POD_NAME'];
  const base = {
    command,
    containerId: env['CNI_CONTAINERID'] ?? '',
    netns: env['CNI_NETNS'] ?? '',
    ifname: env['CNI_IFNAME'] ?? '',
    pod: namespace && name ? { namespace, name } : null,
  } as const;
  if (command === 'VERSION') return base;
  const missing = ['CNI_CONTAINERID', 'CNI_IFNAME', ...(command === 'DEL' ? [] : ['CNI_NETNS'])].filter((n) => !env[n]);
  if (missing.length > 0) throw new CniError(CNI_ERRORS.invalidEnvironment, `${command} needs ${missing.join(', ')} in the environment`);
  return base;
}

/** Parses the network configuration on standard input; throws CniError (codes 1, 6, 7). */
export function parseConfig(text: string): PluginConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new CniError(CNI_ERRORS.decoding, `the network configuration on standard input is not JSON: ${(error as Error).message}`);
  }
  if (!isObject(raw)) throw new CniError(CNI_ERRORS.decoding, 'the network configuration must be a JSON object');
  const version = raw['cniVersion'];
  if (typeof version !== 'string' || !SUPPORTED_VERSIONS.includes(version)) {
    throw new CniError(
      CNI_ERRORS.incompatibleVersion,
      `cniVersion ${JSON.stringify(version ?? null)} is not supported (supported: ${SUPPORTED_VERSIONS.join(', ')})`,
    );
  }
  const kubeconfig = raw['kubeconfig'];
  if (kubeconfig !== undefined && typeof kubeconfig !== 'string') throw new CniError(CNI_ERRORS.invalidConfig, '"kubeconfig" must be a path');
  const excluded = raw['excludedNamespaces'] ?? [];
  if (!Array.isArray(excluded) || !excluded.every((n) => typeof n === 'string')) {
    throw new CniError(CNI_ERRORS.invalidConfig, '"excludedNamespaces" must be a list of namespace names');
  }
  const prev = raw['prevResult'];
  if (prev !== undefined && !isObject(prev)) throw new CniError(CNI_ERRORS.invalidConfig, '"prevResult" must be an object');
  const runtimeConfig = isObject(raw['runtimeConfig']) ? raw['runtimeConfig'] : {};
  const annotations = runtimeConfig[POD_ANNOTATIONS_CAPABILITY];
  return {
    cniVersion: version,
    name: typeof raw['name'] === 'string' ? raw['name'] : '',
    kubeconfig: typeof kubeconfig === 'string' && kubeconfig !== '' ? kubeconfig : null,
    excludedNamespaces: excluded as string[],
    prevResult: prev === undefined ? null : (prev as Record<string, unknown>),
    podAnnotations:
      isObject(annotations) && Object.values(annotations).every((v) => typeof v === 'string') ? (annotations as Record<string, string>) : null,
  };
}

/** The VERSION answer. */
export function versionResult(cniVersion: string): string {
  return JSON.stringify({ cniVersion, supportedVersions: SUPPORTED_VERSIONS });
}

/**
 * The ADD (and 0.3.x CHECK-less) result of a chained plugin: the previous plugin's result, unchanged
 * but for the version it is written in (the configuration's, as the spec asks).
 */
export function passThrough(config: PluginConfig): string {
  const prev = config.prevResult ?? {};
  return JSON.stringify({ ...prev, cniVersion: config.cniVersion });
}

/** The error JSON the spec asks for on standard output: code, one-line msg, optional details. */
export function errorResult(cniVersion: string, error: CniError): string {
  return JSON.stringify({ cniVersion, code: error.code, msg: error.message, ...(error.details === undefined ? {} : { details: error.details }) });
}
