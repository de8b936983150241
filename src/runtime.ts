// Resolves the facts the core needs about where it runs, once at start (server and CLI alike).
import type { Logger } from 'pino';
import type { InjectorConfig, InjectorRuntime } from './core/types.ts';
import { NO_CLUSTER_SUPPORT, type DetectOptions } from './kube/detect-options.ts';
import type { KubeConfigChoice } from './kube/client.ts';
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

/** How an offline command (inject, explain, bootstrap) decides native sidecars: SPEC.md §9. */
export interface OfflineChoice {
  /** `--native-sidecar=true|false`. */
  readonly nativeSidecar?: 'true' | 'false' | undefined;
  /** `--cluster`: ask the kubeconfig's cluster, as the webhook would at start. */
  readonly cluster: boolean;
  /** `--kubeconfig` and `--context`, with `--cluster`. */
  readonly kubeConfig?: KubeConfigChoice;
}

/** What an offline command runs with: the config (its `auto` resolved), the runtime, and how. */
export interface ResolvedOffline extends ResolvedRuntime {
  readonly config: InjectorConfig;
}

/**
 * Returns the config and runtime an offline command injects with. A cluster is consulted only with
 * `--cluster`, through the kubeconfig, with the same detection (and timeouts) as the webhook's
 * `nativeSidecar: auto`; without it no kubeconfig is even read. Otherwise `--native-sidecar`
 * decides, else the config's own `true` or `false`, else (`auto`) classic sidecars. An offline
 * `auto` becomes `false` in the config the core sees, so that no message claims anything about a
 * cluster that was not asked.
 */
export async function resolveOffline(config: InjectorConfig, choice: OfflineChoice, options: DetectOptions = {}): Promise<ResolvedOffline> {
  const fixed = (mode: 'true' | 'false', detail: string): ResolvedOffline => ({
    config: config.nativeSidecar === mode ? config : { ...config, nativeSidecar: mode },
    runtime: { version: VERSION, nativeSidecarSupported: mode === 'true' },
    nativeSidecarDetail: detail,
  });
  if (choice.nativeSidecar !== undefined) return fixed(choice.nativeSidecar, `--native-sidecar=${choice.nativeSidecar}`);
  if (config.nativeSidecar !== 'auto') {
    const asked = choice.cluster ? '; the cluster was not asked' : '';
    return fixed(config.nativeSidecar, `nativeSidecar: ${config.nativeSidecar}${asked}`);
  }
  if (!choice.cluster) return fixed('false', 'nativeSidecar: auto, offline: classic (--cluster asks the cluster, --native-sidecar=true decides)');
  // The Kubernetes client is loaded only now, with a cluster to ask.
  const [{ chooseKubeConfig }, { detectNativeSidecarSupport }] = await Promise.all([import('./kube/client.ts'), import('./kube/version.ts')]);
  const kc = chooseKubeConfig(choice.kubeConfig ?? {});
  const support = await detectNativeSidecarSupport(kc, options);
  return {
    config,
    runtime: runtimeFor(support),
    nativeSidecarDetail: `nativeSidecar: auto (context ${kc.getCurrentContext()}: ${support.detail})`,
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
