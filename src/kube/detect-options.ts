// How `nativeSidecar: auto` asks the cluster, apart from the asking (version.ts): loaded by the
// server's start without loading @kubernetes/client-node, which only a configured cluster needs.

/** How hard to try (the server retries at start; the CLI asks once). */
export interface DetectOptions {
  /** Tries of each lookup before giving up (default 1). */
  readonly attempts?: number;
  /** Time allowed for each try of the version (default 3000 ms). */
  readonly timeoutMs?: number;
  /** Time allowed for each try of the node list, all its pages (default 5000 ms). */
  readonly nodesTimeoutMs?: number;
  /** Wait before the second try, doubled before each further one (default 500 ms). */
  readonly retryDelayMs?: number;
}

/** Defaults of DetectOptions. */
export const DETECT_DEFAULTS = { attempts: 1, timeoutMs: 3000, nodesTimeoutMs: 5000, retryDelayMs: 500 } as const;
/** Tries the server makes at start: its choice holds for its whole life, so a blip must not decide it. */
export const SERVER_DETECT_ATTEMPTS = 3;

/**
 * The longest detection can take with `options`: the lookups run side by side, each with its tries
 * and the waits between them (kept well under the Deployment's startup probe budget).
 */
export function maxDetectionMs(options: DetectOptions = {}): number {
  const { attempts, timeoutMs, nodesTimeoutMs, retryDelayMs } = { ...DETECT_DEFAULTS, ...options };
  const waits = Array.from({ length: attempts - 1 }, (_, i) => retryDelayMs * 2 ** i).reduce((a, b) => a + b, 0);
  return attempts * Math.max(timeoutMs, nodesTimeoutMs) + waits;
}

/** What `auto` decides without a configured cluster (no kubeconfig, not in a pod): classic sidecars. */
export const NO_CLUSTER_SUPPORT: { readonly supported: false; readonly detail: string; readonly warning?: string } = {
  supported: false,
  detail: 'no cluster configured; classic sidecars',
};
