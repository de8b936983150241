// Resolves the facts the core needs about where it runs, once at start (server and CLI alike).
import type { Logger } from 'pino';
import type { InjectorConfig, InjectorRuntime } from './core/types.ts';
import { NO_CLUSTER_SUPPORT, type DetectOptions } from './kube/detect-options.ts';
import { findKubeConfigSources } from './kube/sources.ts';
import type { NativeSidecarSupport } from './kube/version.ts';
import { VERSION } from './version.ts';

export interface ResolvedRuntime {
  readonly runtime: InjectorRuntime;
  /** How `nativeSidecar` was resolved, for logs and `explain`. */
  readonly nativeSidecarDetail: string;
}

/** How `resolveRuntime` asks the cluster, and where it reports what it could not check. */
export interface ResolveOptions extends DetectOptions {
  /** Logs at warn what could not be checked (the server passes its logger; the CLI prints the detail). */
  readonly logger?: Logger;
}

/** Returns the runtime facts for `config`, asking the API server only when `nativeSidecar: auto`. */
export async function resolveRuntime(config: InjectorConfig, options: ResolveOptions = {}): Promise<ResolvedRuntime> {
  if (config.nativeSidecar !== 'auto') {
    return {
      runtime: { version: VERSION, nativeSidecarSupported: config.nativeSidecar === 'true' },
      nativeSidecarDetail: `nativeSidecar: ${config.nativeSidecar}`,
    };
  }
  const { logger, ...detect } = options;
  // The Kubernetes client is loaded only when there is a cluster to ask (it is most of a start).
  const support: NativeSidecarSupport =
    findKubeConfigSources() === undefined
      ? NO_CLUSTER_SUPPORT
      : await (async () => {
          const [{ loadKubeConfig }, { detectNativeSidecarSupport }] = await Promise.all([import('./kube/client.ts'), import('./kube/version.ts')]);
          return detectNativeSidecarSupport(loadKubeConfig(), detect);
        })();
  if (support.warning !== undefined) {
    // Decided once for the life of the process: say so where an admin looks.
    logger?.warn(
      { nativeSidecar: support.supported ? 'native' : 'classic', warning: support.warning },
      `nativeSidecar auto: ${support.warning}; ${support.supported ? 'going by the API server version alone' : 'classic sidecars'} until restarted`,
    );
  }
  return {
    runtime: runtimeFor(support),
    nativeSidecarDetail: `nativeSidecar: auto (${support.detail})`,
  };
}

/** Returns the runtime facts of `nativeSidecar: auto` as detected (the server, `check` and the tests). */
export function runtimeFor(support: NativeSidecarSupport): InjectorRuntime {
  return {
    version: VERSION,
    nativeSidecarSupported: support.supported,
    ...(support.apiServer === undefined ? {} : { apiServerNativeSidecars: support.apiServer }),
  };
}
