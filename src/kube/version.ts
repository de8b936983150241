// `nativeSidecar: auto`: native sidecars are used when the API server is Kubernetes 1.29 or newer
// (sidecar containers on by default) and so is the kubelet of every node. The version-skew policy
// lets kubelets run up to three minors behind the API server (control planes are upgraded first),
// and an older kubelet runs an init container with `restartPolicy: Always` as an ordinary init
// container that never exits: the pod would hang in Init. Decided once at start, with a few bounded
// retries; without a reachable cluster, or when the version cannot be read, classic sidecars.
import { VersionApi, type KubeConfig } from '@kubernetes/client-node';
import type { JsonObject } from '../core/types.ts';
import { KubeApiError } from './api-error.ts';
import { withTimeout } from './client.ts';
import { callRaw } from './raw.ts';
import { createKubeResources, type KubeResources, type NodeKubelet } from './resources.ts';
import { DETECT_DEFAULTS, NO_CLUSTER_SUPPORT, type DetectOptions } from './detect-options.ts';

/** First Kubernetes minor version (of major 1) with native sidecars enabled by default. */
export const NATIVE_SIDECAR_MIN_MINOR = 29;

/** Nodes listed at most in `older` details, so one line stays readable on a large cluster. */
const NAMED_NODES = 5;

/** What the nodes' kubelets mean for native sidecars. */
export interface KubeletSurvey {
  /** How many nodes were listed. */
  readonly nodes: number;
  /** Nodes whose kubelet is older than 1.29 or reports a version that does not parse, oldest first. */
  readonly older: readonly NodeKubelet[];
}

/** Whether native sidecars are used, and how that was decided. */
export interface NativeSidecarSupport {
  readonly supported: boolean;
  /** How it was decided, for the start-up log and `explain`. */
  readonly detail: string;
  /** What could not be checked (the version after every attempt, or the nodes), to log at warn. */
  readonly warning?: string;
  /** The nodes' kubelets, when they could be listed. */
  readonly kubelets?: KubeletSurvey;
  /** Whether the API server's version has native sidecars (≥ 1.29), when it could be read. */
  readonly apiServer?: boolean;
}

export { DETECT_DEFAULTS, maxDetectionMs, SERVER_DETECT_ATTEMPTS, type DetectOptions } from './detect-options.ts';

/** Whether a server version (`major`, `minor` as the API reports them, e.g. "1", "29+") has native sidecars. */
export function versionSupportsNativeSidecars(major: string, minor: string): boolean {
  const ma = Number.parseInt(major, 10);
  const mi = Number.parseInt(minor, 10);
  if (!Number.isFinite(ma) || !Number.isFinite(mi)) return false;
  return ma > 1 || (ma === 1 && mi >= NATIVE_SIDECAR_MIN_MINOR);
}

/** Reads major and minor from a gitVersion such as `v1.30.2-gke.1015000` (when major/minor are empty). */
export function versionFromGitVersion(gitVersion: string): { major: string; minor: string } | undefined {
  const match = /^v?(\d+)\.(\d+)/.exec(gitVersion);
  return match ? { major: match[1] as string, minor: match[2] as string } : undefined;
}

/** Returns the nodes whose kubelet cannot run native sidecars (an unparseable version counts: classic always works). */
export function surveyKubelets(nodes: readonly NodeKubelet[]): KubeletSurvey {
  const minor = (version: string) => {
    const parsed = versionFromGitVersion(version);
    return parsed === undefined ? -1 : Number(parsed.major) * 1000 + Number(parsed.minor);
  };
  const older = nodes
    .filter((node) => {
      const parsed = versionFromGitVersion(node.kubeletVersion);
      return parsed === undefined || !versionSupportsNativeSidecars(parsed.major, parsed.minor);
    })
    .sort((a, b) => minor(a.kubeletVersion) - minor(b.kubeletVersion) || a.name.localeCompare(b.name));
  return { nodes: nodes.length, older };
}

/** Names the older nodes in one short phrase: `2 of 5 nodes run an older kubelet (node-a v1.27.3, node-b v1.28.9)`. */
export function describeOlderKubelets(survey: KubeletSurvey): string {
  const named = survey.older.slice(0, NAMED_NODES).map((n) => `${n.name} ${n.kubeletVersion || '(no version)'}`);
  const more = survey.older.length > NAMED_NODES ? `, and ${survey.older.length - NAMED_NODES} more` : '';
  const verb = survey.older.length === 1 ? 'runs' : 'run';
  return `${survey.older.length} of ${survey.nodes} node${survey.nodes === 1 ? '' : 's'} ${verb} a kubelet older than 1.${NATIVE_SIDECAR_MIN_MINOR} (${named.join(', ')}${more})`;
}

/** Whether another try may succeed: no answer, a timeout, throttling or a server-side error. */
function retryable(error: unknown): boolean {
  return !(error instanceof KubeApiError) || error.status === 0 || error.status === 429 || error.status >= 500;
}

/** Runs `attempt` up to `attempts` times while it fails with something another try may fix. */
async function withRetries<T>(attempt: () => Promise<T>, options: Required<DetectOptions>): Promise<{ value: T } | { error: unknown; tries: number }> {
  let delay = options.retryDelayMs;
  for (let tries = 1; ; tries++) {
    try {
      return { value: await attempt() };
    } catch (error) {
      if (tries >= options.attempts || !retryable(error)) return { error, tries };
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay *= 2;
    }
  }
}

const firstLine = (error: unknown) => String((error as Error)?.message ?? error).split('\n')[0];
const tried = (tries: number) => (tries > 1 ? ` after ${tries} tries` : '');

/** Returns the API server's version.Info (GET /version). */
async function readServerVersion(kc: KubeConfig, timeoutMs: number): Promise<JsonObject> {
  const api = kc.makeApiClient(VersionApi);
  return callRaw("reading the API server's version", (o) => api.getCode({}, o), undefined, timeoutMs);
}

/**
 * Returns the kubelet version of every node, read page by page so that only names and versions are
 * kept (a Node object is several KB); throws a KubeApiError when the nodes cannot be listed.
 */
export async function readKubeletSurvey(resources: KubeResources): Promise<KubeletSurvey> {
  return surveyKubelets(await resources.listNodeKubelets());
}

/**
 * Decides native sidecars for `nativeSidecar: auto`: asks the API server its version and lists the
 * nodes' kubelets, each with `attempts` tries; classic sidecars when the version cannot be read, the
 * API server is older than 1.29 or any kubelet is; the API server's version alone (with a warning)
 * when the nodes cannot be listed.
 */
export async function detectNativeSidecarSupport(kc: KubeConfig | undefined, options: DetectOptions = {}): Promise<NativeSidecarSupport> {
  if (kc === undefined) return NO_CLUSTER_SUPPORT;
  const settings = { ...DETECT_DEFAULTS, ...options };
  const resources = createKubeResources(kc, settings.nodesTimeoutMs);
  // Side by side: the start waits for the slower of the two, not their sum.
  const [versionResult, nodesResult] = await Promise.all([
    withRetries(() => readServerVersion(kc, settings.timeoutMs), settings),
    withRetries(() => withTimeout(readKubeletSurvey(resources), settings.nodesTimeoutMs, 'listing nodes'), settings),
  ]);
  if ('error' in versionResult) {
    const warning = `could not read the API server's version${tried(versionResult.tries)} (${firstLine(versionResult.error)})`;
    return { supported: false, detail: `${warning}; classic sidecars`, warning };
  }
  const info = versionResult.value;
  const text = (key: string) => (typeof info[key] === 'string' ? (info[key] as string) : '');
  // Some distributions leave major/minor empty; gitVersion always carries them.
  const version = text('major') && text('minor') ? { major: text('major'), minor: text('minor') } : versionFromGitVersion(text('gitVersion'));
  const server = `API server ${text('gitVersion') || 'of unknown version'}`;
  if (version === undefined || !versionSupportsNativeSidecars(version.major, version.minor)) {
    return {
      supported: false,
      detail: `${server}: classic sidecars (native needs ≥ 1.${NATIVE_SIDECAR_MIN_MINOR})`,
      ...(version === undefined ? {} : { apiServer: false }),
    };
  }
  if ('error' in nodesResult) {
    const warning = `could not list the nodes to check their kubelets${tried(nodesResult.tries)} (${firstLine(nodesResult.error)})`;
    return { supported: true, detail: `${server}: native sidecars; kubelets not checked: ${warning}`, warning, apiServer: true };
  }
  const kubelets = nodesResult.value;
  if (kubelets.older.length > 0) {
    return {
      supported: false,
      detail: `${server}, but ${describeOlderKubelets(kubelets)}: classic sidecars (native needs every kubelet ≥ 1.${NATIVE_SIDECAR_MIN_MINOR})`,
      kubelets,
      apiServer: true,
    };
  }
  const nodes = kubelets.nodes === 0 ? 'no nodes yet' : `every kubelet ≥ 1.${NATIVE_SIDECAR_MIN_MINOR} (${kubelets.nodes} node${kubelets.nodes === 1 ? '' : 's'})`;
  return { supported: true, detail: `${server}, ${nodes}: native sidecars`, kubelets, apiServer: true };
}
