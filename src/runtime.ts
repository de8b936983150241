// Resolves the facts the core needs about where it runs, once at start (server and CLI alike).
import type { InjectorConfig, InjectorRuntime } from './core/types.ts';
import { loadKubeConfig } from './kube/client.ts';
import { detectNativeSidecarSupport } from './kube/version.ts';
import { VERSION } from './version.ts';

export interface ResolvedRuntime {
  readonly runtime: InjectorRuntime;
  /** How `nativeSidecar` was resolved, for logs and `explain`. */
  readonly nativeSidecarDetail: string;
}

/** Returns the runtime facts for `config`, asking the API server only when `nativeSidecar: auto`. */
export async function resolveRuntime(config: InjectorConfig): Promise<ResolvedRuntime> {
  if (config.nativeSidecar !== 'auto') {
    return {
      runtime: { version: VERSION, nativeSidecarSupported: config.nativeSidecar === 'true' },
      nativeSidecarDetail: `nativeSidecar: ${config.nativeSidecar}`,
    };
  }
  const support = await detectNativeSidecarSupport(loadKubeConfig());
  return {
    runtime: { version: VERSION, nativeSidecarSupported: support.supported },
    nativeSidecarDetail: `nativeSidecar: auto (${support.detail})`,
  };
}
