// `nativeSidecar: auto`: native sidecars are used when the API server is Kubernetes 1.29 or newer
// (sidecar containers on by default). Without a reachable cluster, classic sidecars.
import { VersionApi, type KubeConfig } from '@kubernetes/client-node';
import { withTimeout } from './client.ts';

/** First Kubernetes minor version (of major 1) with native sidecars enabled by default. */
export const NATIVE_SIDECAR_MIN_MINOR = 29;

/** Whether native sidecars are used, and how that was decided. */
export interface NativeSidecarSupport {
  readonly supported: boolean;
  /** How it was decided, for the start-up log and `explain`. */
  readonly detail: string;
}

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

/** Asks the API server its version; falls back to classic sidecars when it cannot be reached. */
export async function detectNativeSidecarSupport(kc: KubeConfig | undefined, timeoutMs = 3000): Promise<NativeSidecarSupport> {
  if (kc === undefined) return { supported: false, detail: 'no cluster configured; classic sidecars' };
  try {
    const info = await withTimeout(kc.makeApiClient(VersionApi).getCode(), timeoutMs, 'asking the API server its version');
    // Some distributions leave major/minor empty; gitVersion always carries them.
    const version = info.major && info.minor ? { major: info.major, minor: info.minor } : versionFromGitVersion(info.gitVersion ?? '');
    const supported = version !== undefined && versionSupportsNativeSidecars(version.major, version.minor);
    return {
      supported,
      detail: `API server ${info.gitVersion}: ${supported ? 'native sidecars' : 'classic sidecars (native needs ≥ 1.29)'}`,
    };
  } catch (error) {
    // client-node's errors span lines (code, body, headers): the first line says what happened.
    const first = String((error as Error)?.message ?? error).split('\n')[0];
    return { supported: false, detail: `could not read the API server's version (${first}); classic sidecars` };
  }
}
